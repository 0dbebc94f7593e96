//! The MPMC ring: order, wrap-around and the full/empty edges in one
//! process; header validation on open; scribbled positions and sequence
//! words (once, exhaustively against the module documentation's table, and
//! continuously from another process) giving `Corrupted` or another
//! bounded answer; a claimed but unpublished slot reading as `Empty`; the
//! recovery of slots held by a stopped participant (`stalled_push`,
//! `stalled_pop`, `repair`, `release_claims`), by hand in one process and
//! against producer processes killed mid-push; and 4 producer and 4
//! consumer processes moving a million values through one ring, each
//! delivered exactly once.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_command, child_role, finish, report, wait_until};
use shmkit::ring::mpmc::{HeapMpmcRing, Holder, MpmcRing, Participant, Stall, MAX_CAPACITY};
use shmkit::ring::{PopError, PushError};
use shmkit::testing::mpmc::{self as seq, word, State};
use shmkit::{Error, LayoutId, Region, RegionOptions, ShmSafe};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// Bytes from a ring's offset to its first slot, and to its positions
/// (the layout in `shmkit::ring::mpmc`'s documentation).
const SLOTS: usize = 384;
const CAPACITY_FIELD: usize = 8;
const STRIDE_FIELD: usize = 32;
const ENQUEUE: usize = 128;
const DEQUEUE: usize = 256;

/// Offset of slot `i`'s sequence word in a ring of `u64` at `ring`.
fn seq_at(ring: usize, i: usize) -> usize {
    ring + SLOTS + 16 * i
}

/// Slot `i`'s sequence word in a ring of `u64` at offset 0. Like
/// `set_word`, for tests in which one thread uses the ring.
fn word_of(region: &Region, i: usize) -> u64 {
    // SAFETY: no other thread uses the ring (see above), and the word is an
    // atomic, which no `&mut` covers.
    unsafe { region.read(seq_at(0, i)) }.unwrap()
}

/// Writes slot `i`'s sequence word in a ring of `u64` at offset 0, as a
/// participant stopped mid-operation (or a scribbling peer) leaves it.
fn set_word(region: &Region, i: usize, w: u64) {
    // SAFETY: no other thread uses the ring (see `word_of`), and the word
    // is an atomic, which no reference to plain data covers.
    unsafe { region.write(seq_at(0, i), &w) }.unwrap();
}

/// Every slot's sequence word in a ring of `u64` at offset 0.
fn words(region: &Region, capacity: usize) -> Vec<u64> {
    (0..capacity).map(|i| word_of(region, i)).collect()
}

fn participant(id: u8) -> Participant {
    Participant::new(id).unwrap()
}

fn layout() -> LayoutId {
    LayoutId::named("shmkit-test-mpmc", 1)
}

/// An anonymous region holding a ring of `u64` of `capacity` at `offset`.
fn ring_region(offset: usize, capacity: usize) -> Region {
    let size = offset + MpmcRing::<u64>::bytes_for(capacity).unwrap();
    RegionOptions::new()
        .size(size)
        .layout(layout())
        .anonymous_with(|r| MpmcRing::<u64>::create(r, offset, capacity).map(drop))
        .unwrap()
}

/// Another handle of `region`'s object, mapped afresh: it keeps its own
/// record of what it placed, so it may view the ring's words as plain
/// atomics, as another process would (the first handle refuses to place
/// anything over its ring).
fn second_handle(region: &Region) -> Region {
    let opts = RegionOptions::new().any_layout();
    match region.name() {
        Some(name) => opts.open(name),
        None => opts.from_fd(region.as_fd().try_clone_to_owned().unwrap()),
    }
    .unwrap()
}

/// Waits for a spinning loop: mostly `spin_loop`, a `yield_now` every so
/// often (8 processes share 2 CPUs here, and a descheduled producer holds
/// its slot until it runs again), and a deadline.
struct Idle {
    spins: u32,
    deadline: Instant,
}

impl Idle {
    fn new(limit: Duration) -> Self {
        Self {
            spins: 0,
            deadline: Instant::now() + limit,
        }
    }

    fn wait(&mut self, what: &str) {
        self.spins += 1;
        if self.spins % 16 == 0 {
            assert!(Instant::now() < self.deadline, "timed out: {what}");
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn push_blocking(ring: &MpmcRing<'_, u64>, v: u64, idle: &mut Idle) {
    loop {
        match ring.try_push(v) {
            Ok(()) => return,
            Err(PushError::Full(_)) => idle.wait("push: ring stays full"),
            Err(e) => panic!("push {v:#x}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------
// Cross-process: 4 producers, 4 consumers.

const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: u64 = 250_000;
const TOTAL: u64 = PRODUCERS * PER_PRODUCER;
const WORDS: usize = TOTAL.div_ceil(64) as usize;
const STRESS_CAPACITY: usize = 256;
/// The control block, then the bitmap, then the ring.
const BITMAP: usize = 128;
const RING: usize = (BITMAP + WORDS * 8).div_ceil(128) * 128;
const FD_VAR: &str = "SHMKIT_TEST_FD";

#[repr(C)]
struct Control {
    ready: AtomicU64,
    start: AtomicU64,
    producers_done: AtomicU64,
}
// SAFETY: repr(C); every field is an integer atomic.
unsafe impl ShmSafe for Control {}

fn stress_options() -> RegionOptions {
    RegionOptions::new()
        .size(RING + MpmcRing::<u64>::bytes_for(STRESS_CAPACITY).unwrap())
        .layout(layout())
}

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "producer" | "consumer" => {
            // SAFETY: the parent passed this descriptor for us alone.
            let region = unsafe { stress_options().from_env(FD_VAR) }.expect("from_env");
            let control = region.place::<Control>(0).unwrap();
            let bitmap = region.place_slice::<AtomicU64>(BITMAP, WORDS).unwrap();
            let ring = MpmcRing::<u64>::open(&region, RING).expect("open ring");
            let id: u64 = args[0].parse().unwrap();
            // Spin (not sleep) at the gate, so that all start at once.
            control.ready.fetch_add(1, Ordering::AcqRel);
            let mut idle = Idle::new(LIMIT);
            while control.start.load(Ordering::Acquire) == 0 {
                idle.wait("start");
            }
            if role == "producer" {
                produce(&ring, control, id);
            } else {
                consume(&ring, control, bitmap);
            }
        }
        "named-producer" => {
            let region = RegionOptions::new()
                .layout(layout())
                .open(&args[0])
                .expect("open named");
            let ring = MpmcRing::<u64>::open(&region, 0).expect("open ring");
            let mut idle = Idle::new(LIMIT);
            for i in 0..10_000 {
                push_blocking(&ring, i, &mut idle);
            }
        }
        "killable-producer" => killable_producer(&args),
        "scribbler" => {
            // SAFETY: as above.
            let region = unsafe { RegionOptions::new().layout(layout()).from_env(FD_VAR) }
                .expect("from_env");
            let until = Instant::now() + Duration::from_millis(args[0].parse().unwrap());
            let capacity: usize = args[1].parse().unwrap();
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
            let mut writes = 0u64;
            while Instant::now() < until {
                let (offset, value) = scribble(&mut rng, capacity);
                // SAFETY: this child does nothing else with the region: the
                // ring's users are other processes, to which it is a peer.
                unsafe { region.write(offset, &value) }.unwrap();
                writes += 1;
            }
            report(writes);
        }
        other => panic!("unknown child role {other}"),
    }
}

fn produce(ring: &MpmcRing<'_, u64>, control: &Control, id: u64) {
    let mut idle = Idle::new(LIMIT);
    for i in 0..PER_PRODUCER {
        push_blocking(ring, id << 32 | i, &mut idle);
    }
    control.producers_done.fetch_add(1, Ordering::AcqRel);
}

/// Pops until every producer is done and nothing is left to claim; marks
/// each value in the shared bitmap, failing on a value seen before, and
/// checks that each producer's values come in push order.
fn consume(ring: &MpmcRing<'_, u64>, control: &Control, bitmap: &[AtomicU64]) {
    let mut idle = Idle::new(LIMIT);
    let mut last = [None::<u64>; PRODUCERS as usize];
    let mut count = 0u64;
    loop {
        match ring.try_pop() {
            Ok(v) => {
                let (p, i) = (v >> 32, v & 0xffff_ffff);
                assert!(p < PRODUCERS && i < PER_PRODUCER, "bad value {v:#x}");
                if let Some(prev) = last[p as usize] {
                    assert!(prev < i, "producer {p}: {i} after {prev}");
                }
                last[p as usize] = Some(i);
                let bit = p * PER_PRODUCER + i;
                let mask = 1u64 << (bit % 64);
                let old = bitmap[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
                assert_eq!(old & mask, 0, "value {v:#x} delivered twice");
                count += 1;
            }
            Err(PopError::Empty) => {
                // Every push has published (Acquire on the counter) and
                // every position is claimed: whatever is left is in
                // other consumers' hands.
                if control.producers_done.load(Ordering::Acquire) == PRODUCERS && ring.is_empty() {
                    break;
                }
                idle.wait("pop: ring stays empty");
            }
            Err(e) => panic!("pop: {e}"),
        }
    }
    report(count);
}

#[test]
fn four_producer_and_four_consumer_processes_deliver_every_value_exactly_once() {
    let region = stress_options()
        .anonymous_with(|r| MpmcRing::<u64>::create(r, RING, STRESS_CAPACITY).map(drop))
        .unwrap();
    let control = region.place::<Control>(0).unwrap();
    let bitmap = region.place_slice::<AtomicU64>(BITMAP, WORDS).unwrap();
    let spawn = |role: &str, id: usize| -> Child {
        let mut cmd = child_command(role, &[&id.to_string()]);
        region.pass_to_child(&mut cmd, FD_VAR);
        cmd.spawn().expect("spawn child")
    };
    let consumers: Vec<_> = (0..CONSUMERS).map(|c| spawn("consumer", c)).collect();
    let producers: Vec<_> = (0..PRODUCERS as usize)
        .map(|p| spawn("producer", p))
        .collect();
    wait_until(LIMIT, "children ready", || {
        control.ready.load(Ordering::Acquire) == (CONSUMERS + PRODUCERS as usize) as u64
    });
    let started = Instant::now();
    control.start.store(1, Ordering::Release);
    for p in producers {
        finish(p, LIMIT);
    }
    let counts: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| finish(c, LIMIT))
        .map(|l| l.parse().unwrap())
        .collect();
    eprintln!(
        "4P/4C processes: {TOTAL} values in {:?}, per consumer {counts:?}",
        started.elapsed()
    );
    assert_eq!(counts.len(), CONSUMERS);
    assert_eq!(counts.iter().sum::<u64>(), TOTAL);
    let delivered: u64 = bitmap
        .iter()
        .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
        .sum();
    assert_eq!(delivered, TOTAL, "every value delivered");
    let ring = MpmcRing::<u64>::open(&region, RING).unwrap();
    assert_eq!(ring.len(), 0);
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
}

#[test]
fn named_region_ring_fed_by_a_child_process() {
    let name = common::unique_name("mpmc");
    let region = RegionOptions::new()
        .size(MpmcRing::<u64>::bytes_for(16).unwrap())
        .layout(layout())
        .create_with(&name, |r| MpmcRing::<u64>::create(r, 0, 16).map(drop))
        .unwrap();
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    let child = common::spawn("named-producer", &[&name]);
    let mut idle = Idle::new(LIMIT);
    for expected in 0..10_000 {
        loop {
            match ring.try_pop() {
                Ok(v) => {
                    assert_eq!(v, expected);
                    break;
                }
                Err(PopError::Empty) => idle.wait("values from the child"),
                Err(e) => panic!("{e}"),
            }
        }
    }
    finish(child, LIMIT);
    assert!(ring.is_empty());
}

// ---------------------------------------------------------------------
// Cross-process: producers killed mid-push, their claims repaired.

/// Producer processes killed per round.
const KILLED: usize = 2;
const KILL_ROUNDS: u64 = 40;
const KILL_CAPACITY: usize = 1 << 16;
/// The progress block (one counter per producer of the round), then the
/// ring.
const KILL_RING: usize = 128;
/// Generous: a round takes a few milliseconds.
const ROUND_LIMIT: Duration = Duration::from_secs(30);
/// The parent's participant ids: its consumer, and its fresh producer.
const CONSUMER_ID: u8 = 62;
const PROBE_ID: u8 = 61;
/// The tag of the parent's fresh producer's values.
const PROBE_TAG: u64 = 0xffff_ffff;

/// Pushes `tag << 32 | seq` for seq = 0, 1, ... as participant `id` into
/// the named ring, as fast as it can, storing how many pushes returned in
/// its progress counter after each; runs until killed (or, orphaned,
/// for a minute).
fn killable_producer(args: &[String]) {
    let region = RegionOptions::new()
        .layout(layout())
        .open(&args[0])
        .expect("open named");
    let id: u8 = args[1].parse().unwrap();
    let tag: u64 = args[2].parse().unwrap();
    let progress = &region.place_slice::<AtomicU64>(0, KILLED).unwrap()[id as usize];
    let ring = MpmcRing::<u64>::open(&region, KILL_RING).expect("open ring");
    let me = participant(id);
    let orphaned = Instant::now() + Duration::from_secs(60);
    for seq in 0.. {
        loop {
            match ring.try_push_as(me, tag << 32 | seq) {
                Ok(()) => break,
                Err(PushError::Full(_)) => {
                    assert!(Instant::now() < orphaned, "never killed");
                    std::hint::spin_loop();
                }
                Err(e) => panic!("push {seq}: {e}"),
            }
        }
        progress.store(seq + 1, Ordering::Release);
    }
}

/// Kills (and reaps) the children still in it when dropped, so that a
/// failing test leaves no producer behind.
struct Kids(Vec<Option<Child>>);

impl Kids {
    /// SIGKILLs child `k`, waits for it, and checks that it was running
    /// until then (it died of this signal, not of a failure of its own).
    fn kill(&mut self, k: usize) {
        let mut child = self.0[k].take().expect("killed twice");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "producer {k} ended by itself: {status:?}"
        );
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the parent gives back the slots killed producers hold, by round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cleanup {
    /// Its pops repair what they wait on, as soon as its holder is dead
    /// (while the other producer still runs, too).
    Pops,
    /// Its pops stop at a dead producer's claim; a fresh producer then
    /// pushes until it waits, and repairs what `stalled_push` names.
    FreshPush,
    /// `release_claims` for each dead id, as a successor taking the id
    /// over would.
    Release,
}

/// What the parent learns in the kill test.
#[derive(Default)]
struct KillStats {
    /// Per producer of the current round: the next sequence number
    /// expected from it.
    next: [u64; KILLED],
    /// Per producer of the current round: the slots it still held when
    /// it was reaped.
    left: [u32; KILLED],
    /// Per producer of the current round: how many of its slots were
    /// repaired.
    repaired: [u32; KILLED],
    probe_sent: u64,
    probe_got: u64,
    via_pop: u32,
    via_push: u32,
    via_release: u32,
    delivered: u64,
}

impl KillStats {
    /// Accepts a value popped in `round`: a value of one of the round's
    /// producers must be the next one it pushed (so: every value at most
    /// once, each producer's in order, none lost but a killed one's
    /// unfinished push), a probe the next probe.
    fn accept(&mut self, round: u64, v: u64) {
        let (tag, seq) = (v >> 32, v & 0xffff_ffff);
        if tag == PROBE_TAG {
            assert_eq!(seq, self.probe_got, "probe value {v:#x}");
            self.probe_got += 1;
        } else {
            let k = tag.wrapping_sub(round * KILLED as u64);
            assert!(
                k < KILLED as u64,
                "round {round}: value {v:#x} of another round"
            );
            assert_eq!(seq, self.next[k as usize], "round {round}: producer {k}");
            self.next[k as usize] += 1;
        }
        self.delivered += 1;
    }

    /// Repairs a stall an operation waits on, which must be the claim of
    /// one of the round's producers, dead (killed and reaped before the
    /// stall was read, so that nothing can change its word).
    fn repair(&mut self, ring: &MpmcRing<'_, u64>, stall: Stall, dead: &[bool; KILLED]) {
        let k = holder_of(stall);
        assert!(dead[k], "repairing live producer {k}'s {stall:?}");
        // SAFETY: the claim is a child producer's (this process pushes as
        // `probe` and pops as `consumer`, other ids): no thread of this
        // process holds it.
        let repaired = unsafe { ring.repair(stall) };
        assert!(repaired, "a dead producer's claim changed: {stall:?}");
        self.repaired[k] += 1;
    }
}

/// The killable producer whose claim `stall` is.
fn holder_of(stall: Stall) -> usize {
    let k = match stall.holder() {
        Holder::Producer(p) if (p.id() as usize) < KILLED => p.id() as usize,
        other => panic!("{stall:?} held by {other:?}, not a killable producer"),
    };
    let (position, state, _) = seq::parts(stall.word());
    assert_eq!(state, State::Claimed, "{stall:?}");
    assert_eq!(position % KILL_CAPACITY as u64, stall.slot() as u64);
    k
}

/// Producer processes pushing as participants 0 and 1 are SIGKILLed at
/// random moments, round after round, while the parent pops (as
/// participant 62). Slots a killed producer still holds are given back by
/// the parent's pops (`stalled_pop`, `repair`), by a fresh producer of
/// the parent's (participant 61) that finds them in its way
/// (`stalled_push`, `repair`), or by `release_claims`, by turns. The ring
/// never wedges (each round finishes within a generous deadline); values
/// arrive at most once, each producer's in order, and all of those its
/// pushes returned for; a producer killed mid-push loses exactly that
/// value; exactly the claims killed producers left (counted by scanning
/// the ring when each is reaped) are repaired, none is left for the next
/// round's producer that reuses the id. Whether a kill lands mid-push is
/// chance: the number of repairs is printed, not required.
#[test]
fn producers_killed_mid_push_are_repaired() {
    let name = common::unique_name("mpmc-kill");
    let region = RegionOptions::new()
        .size(KILL_RING + MpmcRing::<u64>::bytes_for(KILL_CAPACITY).unwrap())
        .layout(layout())
        .create_with(&name, |r| {
            MpmcRing::<u64>::create(r, KILL_RING, KILL_CAPACITY).map(drop)
        })
        .unwrap();
    let ring = MpmcRing::<u64>::open(&region, KILL_RING).unwrap();
    let progress = region.place_slice::<AtomicU64>(0, KILLED).unwrap();
    // Each slot's word, then its value, seen through another handle (this
    // one holds the ring's slots as such).
    let watch = second_handle(&region);
    let slots = watch
        .place_slice::<AtomicU64>(KILL_RING + SLOTS, 2 * KILL_CAPACITY)
        .unwrap();
    let (consumer, probe) = (participant(CONSUMER_ID), participant(PROBE_ID));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    let mut stats = KillStats::default();
    let (mut repairs, mut left) = (0u32, 0u32);
    let started = Instant::now();
    for round in 0..KILL_ROUNDS {
        let cleanup = [Cleanup::Pops, Cleanup::FreshPush, Cleanup::Release][round as usize % 3];
        let deadline = Instant::now() + ROUND_LIMIT;
        let wedged = |what: &str| {
            assert!(
                Instant::now() < deadline,
                "round {round} ({cleanup:?}) wedged: {what} (seed {seed:#x})"
            );
        };
        // The ids are reused: nothing of the last round's producers may
        // still hold a slot.
        for (k, counter) in progress.iter().enumerate() {
            let holder = Holder::Producer(participant(k as u8));
            // SAFETY: these ids are the child producers'; this process
            // pushes and pops under other ids.
            let released = unsafe { ring.release_claims(holder) };
            assert_eq!(released, 0, "round {round}: {holder:?}");
            counter.store(0, Ordering::Relaxed);
        }
        stats.next = [0; KILLED];
        stats.left = [0; KILLED];
        stats.repaired = [0; KILLED];
        let mut kids = Kids(
            (0..KILLED)
                .map(|k| {
                    let tag = round * KILLED as u64 + k as u64;
                    let args = [name.as_str(), &k.to_string(), &tag.to_string()];
                    Some(common::spawn("killable-producer", &args))
                })
                .collect(),
        );
        // Each producer dies 0..1 ms after its first push returned (the
        // ring is large enough that it rarely fills by then, so that the
        // producers are mostly pushing, not waiting).
        let mut kill_at = [None::<Instant>; KILLED];
        let mut dead = [false; KILLED];
        while !dead.iter().all(|&d| d) {
            wedged("producers running");
            match ring.try_pop_as(consumer) {
                Ok(v) => stats.accept(round, v),
                Err(PopError::Empty) => {
                    if let Some(stall) = ring.stalled_pop() {
                        let k = holder_of(stall);
                        if dead[k] && cleanup == Cleanup::Pops {
                            stats.repair(&ring, stall, &dead);
                            stats.via_pop += 1;
                        }
                    }
                }
                Err(e) => panic!("round {round}: pop: {e}"),
            }
            let now = Instant::now();
            for k in 0..KILLED {
                match kill_at[k] {
                    _ if dead[k] => {}
                    None if progress[k].load(Ordering::Acquire) > 0 => {
                        kill_at[k] = Some(now + Duration::from_micros(rng.next() % 1000));
                    }
                    Some(at) if now >= at => {
                        kids.kill(k);
                        // Reaped: what it holds now, it holds for good.
                        stats.left[k] = slots
                            .iter()
                            .step_by(2)
                            .map(|w| seq::parts(w.load(Ordering::Acquire)))
                            .filter(|&(_, state, who)| state == State::Claimed && who as usize == k)
                            .count() as u32;
                        dead[k] = true;
                    }
                    _ => {}
                }
            }
        }

        // Pops until one would wait; returns what it waits on, if anyone.
        let pop_until_wait = |stats: &mut KillStats| loop {
            wedged("pops");
            match ring.try_pop_as(consumer) {
                Ok(v) => stats.accept(round, v),
                Err(PopError::Empty) => return ring.stalled_pop(),
                Err(e) => panic!("round {round}: pop: {e}"),
            }
        };
        // Pops everything, repairing what the pops wait on.
        let drain = |stats: &mut KillStats| {
            while let Some(stall) = pop_until_wait(stats) {
                stats.repair(&ring, stall, &dead);
                stats.via_pop += 1;
            }
        };
        // A fresh producer's push of the next probe.
        let push_probe = |stats: &mut KillStats| {
            let r = ring.try_push_as(probe, PROBE_TAG << 32 | stats.probe_sent);
            match r {
                Ok(()) => stats.probe_sent += 1,
                Err(PushError::Full(_)) => {}
                Err(e) => panic!("round {round}: fresh push: {e}"),
            }
            r
        };
        match cleanup {
            Cleanup::Pops => {
                drain(&mut stats);
                assert_eq!(push_probe(&mut stats), Ok(()), "round {round}: drained");
                drain(&mut stats);
            }
            Cleanup::FreshPush => {
                // The pops stop at the first dead claim, if any; the
                // fresh producer fills the ring up to it, a lap on.
                let first = pop_until_wait(&mut stats);
                let mut named = Vec::new();
                loop {
                    wedged("fresh pushes");
                    if push_probe(&mut stats).is_ok() {
                        continue;
                    }
                    match ring.stalled_push() {
                        Some(stall) => {
                            named.push(stall);
                            stats.repair(&ring, stall, &dead);
                            stats.via_push += 1;
                        }
                        None => break, // full of values
                    }
                }
                assert_eq!(named.first().copied(), first, "round {round}");
                drain(&mut stats);
            }
            Cleanup::Release => {
                for k in 0..KILLED {
                    // SAFETY: as above: a child producer's id.
                    let n = unsafe { ring.release_claims(Holder::Producer(participant(k as u8))) };
                    stats.repaired[k] += n as u32;
                    stats.via_release += n as u32;
                }
                assert_eq!(pop_until_wait(&mut stats), None, "round {round}: released");
                assert_eq!(push_probe(&mut stats), Ok(()), "round {round}: drained");
                assert_eq!(pop_until_wait(&mut stats), None, "round {round}: released");
            }
        }
        // Drained and healthy.
        assert_eq!(
            stats.probe_got, stats.probe_sent,
            "round {round}: probe lost"
        );
        assert_eq!(ring.stalled_pop(), None);
        assert_eq!(ring.stalled_push(), None);
        assert_eq!(ring.len(), 0, "round {round}");
        assert_eq!(ring.try_pop_as(consumer), Err(PopError::Empty));
        // Producer k's pushes 0..P returned (P its progress; or 0..=P if
        // it died between its last push and storing its progress): those
        // arrived, nothing more. One that left a claim died inside push
        // P: exactly 0..P arrived.
        for (k, counter) in progress.iter().enumerate() {
            let returned = counter.load(Ordering::Acquire);
            let got = stats.next[k];
            let what = format!("round {round} ({cleanup:?}): producer {k}");
            assert!(returned > 0, "{what} never pushed");
            assert!(stats.left[k] <= 1, "{what} held {} slots", stats.left[k]);
            assert_eq!(stats.repaired[k], stats.left[k], "{what}: repairs");
            if stats.left[k] == 1 {
                assert_eq!(got, returned, "{what} killed mid-push");
            } else {
                assert!(
                    got == returned || got == returned + 1,
                    "{what}: {got} arrived, {returned} returned"
                );
            }
            repairs += stats.repaired[k];
            left += stats.left[k];
        }
    }
    assert_eq!(repairs, left);
    assert_eq!(repairs, stats.via_pop + stats.via_push + stats.via_release);
    eprintln!(
        "{} producers killed in {:?} (seed {seed:#x}): {} values delivered; {repairs} claims \
         left and repaired ({} by pops, {} by fresh pushes, {} released)",
        KILL_ROUNDS * KILLED as u64,
        started.elapsed(),
        stats.delivered,
        stats.via_pop,
        stats.via_push,
        stats.via_release
    );
}

// ---------------------------------------------------------------------
// One process.

/// Pushes and pops `0..laps * capacity` in bursts of every size up to one
/// past the capacity, checking order, `Full`, `Empty` and `len`.
fn exercise(ring: MpmcRing<'_, u64>, laps: u64) {
    let cap = ring.capacity() as u64;
    let (mut next_in, mut next_out) = (0u64, 0u64);
    let mut burst = 0;
    while next_out < laps * cap {
        burst = (burst + 1) % (cap + 2);
        for _ in 0..burst {
            match ring.try_push(next_in) {
                Ok(()) => next_in += 1,
                Err(PushError::Full(_)) => {
                    assert_eq!(next_in - next_out, cap);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
            assert_eq!(ring.len() as u64, next_in - next_out);
        }
        for _ in 0..burst.div_ceil(2) + 1 {
            match ring.try_pop() {
                Ok(v) => {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
                Err(PopError::Empty) => {
                    assert_eq!(next_in, next_out);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    while let Ok(v) = ring.try_pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_in, next_out);
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    assert!(ring.is_empty());
}

#[test]
fn order_and_wrap_around_at_every_small_capacity() {
    for cap in [1, 2, 4, 8, 64] {
        exercise(HeapMpmcRing::new(cap).unwrap().ring(), 200);
        let region = ring_region(256, cap);
        exercise(MpmcRing::open(&region, 256).unwrap(), 200);
    }
}

#[test]
fn full_and_empty_edges() {
    for cap in [1usize, 2, 4, 1024] {
        let heap = HeapMpmcRing::<u64>::new(cap).unwrap();
        let ring = heap.ring();
        assert_eq!(ring.capacity(), cap);
        for lap in 0..3u64 {
            assert_eq!(ring.try_pop(), Err(PopError::Empty));
            for i in 0..cap as u64 {
                ring.try_push(lap << 32 | i).unwrap();
            }
            assert_eq!(ring.len(), cap);
            assert_eq!(ring.try_push(u64::MAX), Err(PushError::Full(u64::MAX)));
            assert_eq!(ring.len(), cap);
            for i in 0..cap as u64 {
                assert_eq!(ring.try_pop(), Ok(lap << 32 | i));
            }
            assert_eq!(ring.try_pop(), Err(PopError::Empty));
            assert!(ring.is_empty());
        }
    }
}

#[test]
fn capacity_one_alternates() {
    let heap = HeapMpmcRing::<u64>::new(1).unwrap();
    let ring = heap.ring();
    for i in 0..10_000 {
        ring.try_push(i).unwrap();
        assert_eq!(ring.try_push(i), Err(PushError::Full(i)));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.try_pop(), Ok(i));
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Wide {
    bytes: [u8; 64],
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(256))]
struct TooAligned {
    bytes: [u8; 256],
}

#[test]
fn elements_of_other_sizes_and_alignments() {
    fn round_trip<T: bytemuck::Pod + Send + PartialEq + std::fmt::Debug>(make: impl Fn(u8) -> T) {
        let size = 128 + MpmcRing::<T>::bytes_for(4).unwrap();
        let region = RegionOptions::new()
            .size(size)
            .anonymous_with(|r| MpmcRing::<T>::create(r, 128, 4).map(drop))
            .unwrap();
        let ring = MpmcRing::<T>::open(&region, 128).unwrap();
        for i in 0..50u8 {
            ring.try_push(make(i)).unwrap();
            ring.try_push(make(i.wrapping_mul(7))).unwrap();
            assert_eq!(ring.try_pop(), Ok(make(i)));
            assert_eq!(ring.try_pop(), Ok(make(i.wrapping_mul(7))));
        }
    }
    round_trip(|i| [i; 3]);
    round_trip(|i| [u16::from(i); 5]);
    round_trip(|i| [u64::from(i) << 40; 4]);
    round_trip(|i| Wide { bytes: [i; 64] });
    round_trip(|_| ());
    // A slot is the sequence number and the value, padded to the value's
    // alignment.
    assert_eq!(MpmcRing::<[u8; 3]>::bytes_for(4).unwrap(), 384 + 4 * 16);
    assert_eq!(MpmcRing::<[u64; 4]>::bytes_for(4).unwrap(), 384 + 4 * 40);
    assert_eq!(MpmcRing::<Wide>::bytes_for(4).unwrap(), 384 + 4 * 128);
}

fn invalid_size(r: Result<impl std::fmt::Debug, Error>) -> u64 {
    match r {
        Err(Error::InvalidSize { size, .. }) => size,
        other => panic!("expected InvalidSize, got {other:?}"),
    }
}

#[test]
fn bad_parameters_are_refused() {
    for cap in [0usize, 3, 6, 1000, MAX_CAPACITY * 2] {
        assert_eq!(
            invalid_size(MpmcRing::<u64>::bytes_for(cap)),
            cap as u64,
            "{cap}"
        );
        invalid_size(HeapMpmcRing::<u64>::new(cap));
    }
    assert_eq!(invalid_size(MpmcRing::<TooAligned>::bytes_for(4)), 256);
    invalid_size(HeapMpmcRing::<TooAligned>::new(4));
    // An offset not 128-aligned, a region too small, an offset past it.
    let region = Region::anonymous(4096).unwrap();
    assert!(matches!(
        MpmcRing::<u64>::create(&region, 64, 4),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::create(&region, 0, 256),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::create(&region, usize::MAX & !127, 4),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::create(&region, 1024, 3),
        Err(Error::InvalidSize { .. })
    ));
}

fn corrupted<T>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(Error::Corrupted { what }) => what,
        Err(e) => panic!("expected Corrupted, got {e:?}"),
        Ok(_) => panic!("expected Corrupted, got a ring"),
    }
}

#[test]
fn open_validates_the_header() {
    // Zero-filled memory is not a ring.
    let zeroed = Region::anonymous(4096).unwrap();
    corrupted(MpmcRing::<u64>::open(&zeroed, 0));
    corrupted(MpmcRing::<u64>::open(&zeroed, 1024));
    assert!(matches!(
        MpmcRing::<u64>::open(&zeroed, 64),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::open(&zeroed, 4096),
        Err(Error::OutOfBounds { .. })
    ));

    let region = ring_region(128, 8);
    MpmcRing::<u64>::open(&region, 128).unwrap();
    // Another element type: size, then alignment.
    assert!(matches!(
        MpmcRing::<[u64; 2]>::open(&region, 128),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        MpmcRing::<[u32; 2]>::open(&region, 128),
        Err(Error::LayoutMismatch { .. })
    ));
    // Not where the ring is: this handle placed the ring's header and
    // slots there, and refuses another header over them; a handle that
    // placed nothing finds no ring header there.
    for offset in [0, 256] {
        assert!(matches!(
            MpmcRing::<u64>::open(&region, offset),
            Err(Error::PlacementConflict {
                placed_offset: 128,
                ..
            })
        ));
        corrupted(MpmcRing::<u64>::open(&second_handle(&region), offset));
    }

    // Scribbled header fields.
    let scribbled = |offset: usize, value: u64| {
        let region = ring_region(128, 8);
        // SAFETY (every raw copy in this test): one thread uses the ring, and
        // the MPMC ring lends no reference to its memory, so a copy races with
        // nothing and breaks no borrow; writes play a peer scribbling on it.
        unsafe { region.write(128 + offset, &value) }.unwrap();
        MpmcRing::<u64>::open(&region, 128).map(|r| r.capacity())
    };
    corrupted(scribbled(0, 0));
    corrupted(scribbled(0, u64::from_le_bytes(*b"shmkMPSC")));
    for bad in [0, 3, 7, 12, u64::MAX, 1 << 40] {
        corrupted(scribbled(CAPACITY_FIELD, bad));
    }
    // A valid capacity too large for the region.
    assert!(matches!(
        scribbled(CAPACITY_FIELD, 16),
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(scribbled(CAPACITY_FIELD, 4).unwrap(), 4);
    corrupted(scribbled(STRIDE_FIELD, 8));
    assert!(matches!(
        scribbled(16, 4),
        Err(Error::LayoutMismatch { .. })
    ));
}

/// The capacity of the rings the scribble tests scribble on.
const SCRIBBLE_CAP: u64 = 4;

/// A ring of `u64` of capacity 4 at offset 0, three laps on: positions
/// `0..12` pushed and popped, then `112` and `113` pushed at positions 12
/// and 13 (the value at position `p` is `100 + p`). Slot 0 holds
/// `Full(12)`, slot 1 `Full(13)`, slot 2 `Empty(14)`, slot 3 `Empty(15)`;
/// `enqueue` is 14, `dequeue` 12.
fn three_laps() -> Region {
    let region = ring_region(0, SCRIBBLE_CAP as usize);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    for p in 0..12 {
        ring.try_push(100 + p).unwrap();
        assert_eq!(ring.try_pop(), Ok(100 + p));
    }
    ring.try_push(112).unwrap();
    ring.try_push(113).unwrap();
    assert_eq!(
        words(&region, 4),
        [
            word(12, State::Full, 0),
            word(13, State::Full, 0),
            word(14, State::Empty, 0),
            word(15, State::Empty, 0),
        ]
    );
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    assert_eq!(unsafe { region.read::<u64>(ENQUEUE) }.unwrap(), 14);
    assert_eq!(unsafe { region.read::<u64>(DEQUEUE) }.unwrap(), 12);
    region
}

/// What one `try_push` on a scribbled ring must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PushAnswer {
    /// `Ok`, the value landing at this position (slot `Full(p)`,
    /// `enqueue` then `p + 1`).
    At(u64),
    Full,
    Corrupted,
}

/// What one `try_pop` on a scribbled ring must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PopAnswer {
    /// `Ok(100 + p)`, taken from this position (slot then
    /// `Empty(p + capacity)`, `dequeue` `p + 1`).
    At(u64),
    Empty,
    Corrupted,
}

/// Runs one `try_push` of 999 on `region` (a ring of capacity 4 at offset
/// 0) and checks it gives `expected`: where the value landed, or, for a
/// refusal, that nothing in the ring changed.
fn check_push(region: &Region, expected: PushAnswer, what: &str) {
    let ring = MpmcRing::<u64>::open(region, 0).unwrap();
    let before = words(region, 4);
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    let enqueue = unsafe { region.read::<u64>(ENQUEUE) }.unwrap();
    let dequeue = unsafe { region.read::<u64>(DEQUEUE) }.unwrap();
    let r = ring.try_push(999);
    match expected {
        PushAnswer::At(p) => {
            assert_eq!(r, Ok(()), "{what}");
            let slot = (p % SCRIBBLE_CAP) as usize;
            assert_eq!(word_of(region, slot), word(p, State::Full, 0), "{what}");
            assert_eq!(
                unsafe { region.read::<u64>(seq_at(0, slot) + 8) }.unwrap(),
                999
            );
            assert_eq!(
                unsafe { region.read::<u64>(ENQUEUE) }.unwrap(),
                p + 1,
                "{what}"
            );
        }
        PushAnswer::Full | PushAnswer::Corrupted => {
            if expected == PushAnswer::Full {
                assert_eq!(r, Err(PushError::Full(999)), "{what}");
            } else {
                assert!(matches!(r, Err(PushError::Corrupted(_))), "{what}: {r:?}");
            }
            assert_eq!(words(region, 4), before, "{what}: words changed");
            assert_eq!(
                unsafe { region.read::<u64>(ENQUEUE) }.unwrap(),
                enqueue,
                "{what}"
            );
        }
    }
    assert_eq!(
        unsafe { region.read::<u64>(DEQUEUE) }.unwrap(),
        dequeue,
        "{what}"
    );
}

/// [`check_push`] for one `try_pop`.
fn check_pop(region: &Region, expected: PopAnswer, what: &str) {
    let ring = MpmcRing::<u64>::open(region, 0).unwrap();
    let before = words(region, 4);
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    let enqueue = unsafe { region.read::<u64>(ENQUEUE) }.unwrap();
    let dequeue = unsafe { region.read::<u64>(DEQUEUE) }.unwrap();
    let r = ring.try_pop();
    match expected {
        PopAnswer::At(p) => {
            assert_eq!(r, Ok(100 + (p & seq::POSITION_MASK)), "{what}");
            let slot = (p % SCRIBBLE_CAP) as usize;
            let next = p.wrapping_add(SCRIBBLE_CAP);
            assert_eq!(word_of(region, slot), word(next, State::Empty, 0), "{what}");
            assert_eq!(
                unsafe { region.read::<u64>(DEQUEUE) }.unwrap(),
                p + 1,
                "{what}"
            );
        }
        PopAnswer::Empty | PopAnswer::Corrupted => {
            if expected == PopAnswer::Empty {
                assert_eq!(r, Err(PopError::Empty), "{what}");
            } else {
                assert!(matches!(r, Err(PopError::Corrupted(_))), "{what}: {r:?}");
            }
            assert_eq!(words(region, 4), before, "{what}: words changed");
            assert_eq!(
                unsafe { region.read::<u64>(DEQUEUE) }.unwrap(),
                dequeue,
                "{what}"
            );
        }
    }
    assert_eq!(
        unsafe { region.read::<u64>(ENQUEUE) }.unwrap(),
        enqueue,
        "{what}"
    );
}

/// A position counter set to each value in a window of three laps either
/// side of the ring's positions, and to far values: each gives exactly the
/// answer the module documentation's table predicts for the slot it lands
/// on (in [`three_laps`], slots 0..4 hold `Full(12)`, `Full(13)`,
/// `Empty(14)`, `Empty(15)`), and an operation that refuses changes
/// nothing.
#[test]
fn scribbled_positions_give_corrupted() {
    use PopAnswer as Pop;
    use PushAnswer as Push;
    let c = SCRIBBLE_CAP;
    // enqueue = e. Behind by up to a lap over done positions (Full(p) and
    // Empty(p + c) mean "help"), the stale-looking counter is helped on to
    // 14. 9 and 8 find Full(p + c) (reload: the counter did not move), 7
    // and below a later lap. 15 finds its turn (a plausible but wrong
    // value: position 14 is skipped). 16 and 17 find Full(p - c): a full
    // ring. 18 and 19 find Empty(p - c), and 20 on are two laps behind.
    let push_expected = |e: u64| match e {
        10..=14 => Push::At(14),
        15 => Push::At(15),
        16 | 17 => Push::Full,
        _ => Push::Corrupted,
    };
    for e in 14 - 3 * c..=14 + 3 * c {
        let region = three_laps();
        // SAFETY (every raw copy in this test): one thread uses the ring, and
        // the MPMC ring lends no reference to its memory, so a copy races with
        // nothing and breaks no borrow; writes play a peer scribbling on it.
        unsafe { region.write(ENQUEUE, &e) }.unwrap();
        check_push(&region, push_expected(e), &format!("enqueue {e}"));
    }
    // Far values: two laps behind or ahead (mod 2^56), and bits above the
    // 56 a word keeps, which positions ignore.
    for (e, expected) in [
        (0, Push::Corrupted),
        (1000, Push::Corrupted),
        (u64::MAX, Push::Corrupted),
        (1 << 63, Push::Corrupted),
        (14 - 2 * c, Push::Corrupted),
        (14 + (1 << 56), Push::At(14 + (1 << 56))),
        (16 + (1 << 56), Push::Full),
        (18 + (1 << 56), Push::Corrupted),
    ] {
        let region = three_laps();
        unsafe { region.write(ENQUEUE, &e) }.unwrap();
        check_push(&region, expected, &format!("enqueue {e:#x}"));
    }
    // Pushes that refused changed nothing: with the counter restored,
    // the ring works on.
    let region = three_laps();
    unsafe { region.write(ENQUEUE, &9u64) }.unwrap();
    check_push(&region, Push::Corrupted, "enqueue 9");
    unsafe { region.write(ENQUEUE, &14u64) }.unwrap();
    check_push(&region, Push::At(14), "enqueue restored");

    // dequeue = d. Behind, over done positions (Empty and Full of later
    // laps mean "help", any number of laps on: repairs can leave a slot
    // laps ahead of its consumers): helped on to 12. 13 takes position 13
    // (a plausible but wrong value: 112 is skipped). 14 and 15 find their
    // producer's turn: an empty ring. 16 and on find Full or Empty of a
    // lap behind: no consumer sees that.
    let pop_expected = |d: u64| match d {
        0..=12 => Pop::At(12),
        13 => Pop::At(13),
        14 | 15 => Pop::Empty,
        _ => Pop::Corrupted,
    };
    for d in 12 - 3 * c..=12 + 3 * c {
        let region = three_laps();
        unsafe { region.write(DEQUEUE, &d) }.unwrap();
        check_pop(&region, pop_expected(d), &format!("dequeue {d}"));
    }
    for (d, expected) in [
        (1001, Pop::Corrupted),
        (16 + (1 << 56), Pop::Corrupted),
        // 200 laps behind: helped on, one position a step.
        (12u64.wrapping_sub(200 * c), Pop::At(12)),
        (u64::MAX, Pop::At(12)),
        // Bits above the 56 a word keeps are ignored.
        (1 << 63, Pop::At((1 << 63) + 12)),
        (12 + (1 << 56), Pop::At(12 + (1 << 56))),
        (14 + (1 << 56), Pop::Empty),
    ] {
        let region = three_laps();
        unsafe { region.write(DEQUEUE, &d) }.unwrap();
        check_pop(&region, expected, &format!("dequeue {d:#x}"));
    }
    // 2000 laps behind: more steps than one operation takes
    // (`RETRY_LIMIT`); each pop gives up with `Empty`, having moved the
    // counter on (and changed nothing else), until one gets there.
    let region = three_laps();
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    let mut d = 12u64.wrapping_sub(2000 * c);
    unsafe { region.write(DEQUEUE, &d) }.unwrap();
    let before = words(&region, 4);
    let mut gave_up = 0;
    loop {
        match ring.try_pop() {
            Ok(v) => {
                assert_eq!(v, 112);
                break;
            }
            Err(PopError::Empty) => {
                let now = unsafe { region.read::<u64>(DEQUEUE) }.unwrap();
                assert!(seq::distance(now, d) > 0, "dequeue {d:#x} to {now:#x}");
                assert!(seq::distance(now, 12) < 0, "dequeue passed 12: {now:#x}");
                assert_eq!(words(&region, 4), before);
                d = now;
                gave_up += 1;
                assert!(gave_up <= 8000, "no progress");
            }
            Err(e) => panic!("dequeue {d:#x}: {e}"),
        }
    }
    assert!(gave_up > 0);
    assert_eq!(ring.try_pop(), Ok(113));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    assert_eq!(ring.len(), 0);

    let region = three_laps();
    unsafe { region.write(DEQUEUE, &16u64) }.unwrap();
    check_pop(&region, Pop::Corrupted, "dequeue 16");
    unsafe { region.write(DEQUEUE, &12u64) }.unwrap();
    check_pop(&region, Pop::At(12), "dequeue restored");
    check_pop(&region, Pop::At(13), "dequeue restored, second");
    check_pop(&region, Pop::Empty, "dequeue restored, empty");

    // `len` stays within the capacity whatever the positions say.
    let region = three_laps();
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    assert_eq!(ring.len(), 2);
    unsafe { region.write(ENQUEUE, &1_000_000u64) }.unwrap();
    assert_eq!(ring.len(), 4);
    unsafe { region.write(DEQUEUE, &10u64) }.unwrap();
    unsafe { region.write(ENQUEUE, &5u64) }.unwrap();
    assert_eq!(ring.len(), 0);
}

/// Every word a slot can hold for positions within three laps of the
/// position the next operation serves, in every state, naming no
/// participant, participant 1, 62 or the anonymous one, and words far
/// ahead: the words the module documentation's table lists give exactly
/// its answer, every other word `Corrupted` (a position not in this slot,
/// `Empty`/`Full` naming a participant, a lap behind in another state, two
/// laps behind, `Taking` ahead, or anything ahead of a producer, with the
/// counter not moved), and refusals change nothing.
#[test]
fn scribbled_sequence_numbers_give_corrupted() {
    use PopAnswer as Pop;
    use PushAnswer as Push;
    use State::{Claimed, Empty, Full, Taking};
    let c = SCRIBBLE_CAP;
    let candidates = |p: u64| {
        let mut all = Vec::new();
        for q in p - 3 * c..=p + 3 * c {
            for state in [Empty, Claimed, Full, Taking] {
                for who in [0, 1, 62, 63] {
                    all.push((q, state, who));
                }
            }
        }
        all
    };
    // `Empty` and `Full` name no participant.
    let well_formed = |state, who| matches!(state, Claimed | Taking) || who == 0;

    // The next push is position 14, in slot 2.
    let p = 14;
    let mut plausible = 0;
    for (q, state, who) in candidates(p) {
        let expected = if !well_formed(state, who) {
            Push::Corrupted
        } else {
            match (q as i64 - p as i64, state) {
                (0, Empty) => Push::At(p),
                (0, Claimed | Full | Taking) => Push::At(p + 1),
                (4, Empty) => Push::At(p + 1),
                (-4, Claimed | Full | Taking) => Push::Full,
                _ => Push::Corrupted,
            }
        };
        plausible += u32::from(expected != Push::Corrupted);
        let region = three_laps();
        set_word(&region, 2, word(q, state, who));
        check_push(
            &region,
            expected,
            &format!("push at {p} over {state:?}({q}, {who})"),
        );
    }
    // Empty(p); Empty(p + c); Claimed(p), Taking(p), Claimed(p - c),
    // Taking(p - c) by 4 participants each; Full(p), Full(p - c).
    assert_eq!(plausible, 2 + 4 * 4 + 2);

    // The next pop is position 12, in slot 0.
    let p = 12;
    let mut plausible = 0;
    for (q, state, who) in candidates(p) {
        let expected = if !well_formed(state, who) {
            Pop::Corrupted
        } else {
            match (q as i64 - p as i64, state) {
                (0, Full) => Pop::At(p),
                (0, Empty | Claimed) => Pop::Empty,
                (0, Taking) => Pop::At(p + 1),
                // Any number of laps ahead: helped past.
                (d, Empty | Claimed | Full) if d > 0 && d % 4 == 0 => Pop::At(p + 1),
                (-4, Taking) => Pop::Empty,
                _ => Pop::Corrupted,
            }
        };
        plausible += u32::from(expected != Pop::Corrupted);
        let region = three_laps();
        set_word(&region, 0, word(q, state, who));
        check_pop(
            &region,
            expected,
            &format!("pop at {p} over {state:?}({q}, {who})"),
        );
    }
    // Full(p), Empty(p); Claimed(p), Taking(p), Taking(p - c) by 4
    // participants each; Empty and Full of 3 laps ahead, Claimed by 4.
    assert_eq!(plausible, 2 + 3 * 4 + 3 * (2 + 4));

    // Far ahead, as far as a position can be (2^55 - 1 before it wraps to
    // behind): consumers help past Empty, Claimed and Full (not Taking),
    // producers reload and find the counter unmoved.
    for q in [12 + 1000 * c, 12 + (1 << 55) - c] {
        for (state, who, pop) in [
            (Empty, 0, Pop::At(13)),
            (Full, 0, Pop::At(13)),
            (Claimed, 7, Pop::At(13)),
            (Taking, 7, Pop::Corrupted),
        ] {
            let region = three_laps();
            set_word(&region, 0, word(q, state, who));
            check_pop(&region, pop, &format!("pop over {state:?}({q:#x})"));
            let region = three_laps();
            set_word(&region, 2, word(q + 2, state, who));
            let what = format!("push over {state:?}({:#x})", q + 2);
            check_push(&region, Push::Corrupted, &what);
        }
    }
    // 2^55 ahead is as far behind.
    for state in [Empty, Full] {
        let region = three_laps();
        set_word(&region, 0, word(12 + (1 << 55), state, 0));
        check_pop(
            &region,
            Pop::Corrupted,
            &format!("pop over {state:?}(12 + 2^55)"),
        );
    }

    // Raw values: corrupt for both, but for `1 << 63`, which is
    // Empty(2^55): 2^55 - 12 ahead of the pop's position 12, a multiple of
    // the capacity (helped past), and not in the push's slot.
    for (raw, pop) in [
        (0u64, Pop::Corrupted),
        (1, Pop::Corrupted),
        (u64::MAX, Pop::Corrupted),
        (1 << 63, Pop::At(13)),
        (0xdead_beef, Pop::Corrupted),
        (word(14, Empty, 0) | 1, Pop::Corrupted),
    ] {
        let region = three_laps();
        set_word(&region, 2, raw);
        check_push(&region, Push::Corrupted, &format!("push over {raw:#x}"));
        let region = three_laps();
        set_word(&region, 0, raw);
        check_pop(&region, pop, &format!("pop over {raw:#x}"));
    }
}

/// A producer that claims a position and stops before publishing it (as
/// if killed, having moved `enqueue` past it or not) makes consumers see
/// `Empty` at that position though later values are queued, and
/// producers `Full` a lap later; nobody hangs, and the ring resumes when
/// the slot is published.
#[test]
fn claimed_but_unpublished_slot_reads_as_empty() {
    for helped in [true, false] {
        let region = ring_region(0, 4);
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        ring.try_push(10).unwrap();
        // Participant 7 claims position 1 and stalls.
        set_word(&region, 1, word(1, State::Claimed, 7));
        if helped {
            // SAFETY (every raw copy in this test): one thread uses the ring, and
            // the MPMC ring lends no reference to its memory, so a copy races with
            // nothing and breaks no borrow; writes play a peer scribbling on it.
            unsafe { region.write(ENQUEUE, &2u64) }.unwrap();
        }
        ring.try_push(12).unwrap();
        ring.try_push(13).unwrap();
        assert_eq!(ring.try_pop(), Ok(10));
        for _ in 0..1000 {
            assert_eq!(ring.try_pop(), Err(PopError::Empty), "helped: {helped}");
        }
        assert_eq!(ring.len(), 3, "values claimed and published count");
        ring.try_push(14).unwrap();
        assert_eq!(ring.try_push(15), Err(PushError::Full(15)));
        assert_eq!(word_of(&region, 1), word(1, State::Claimed, 7));
        // The stalled producer resumes: writes its value, publishes Full(1).
        unsafe { region.write(seq_at(0, 1) + 8, &11u64) }.unwrap();
        set_word(&region, 1, word(1, State::Full, 0));
        for v in 11..=14 {
            assert_eq!(ring.try_pop(), Ok(v));
        }
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
        ring.try_push(15).unwrap();
        assert_eq!(ring.try_pop(), Ok(15));
    }
}

/// A consumer that claims a position and stops before releasing the slot
/// makes producers see `Full` when they come round to it, and consumers
/// `Empty` there; it resumes by releasing the slot for the next lap.
#[test]
fn claimed_but_unreleased_slot_reads_as_full() {
    for helped in [true, false] {
        let region = ring_region(0, 2);
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        ring.try_push(0).unwrap();
        ring.try_push(1).unwrap();
        // Participant 9 claims position 0 and stalls.
        set_word(&region, 0, word(0, State::Taking, 9));
        if helped {
            // SAFETY (every raw copy in this test): one thread uses the ring, and
            // the MPMC ring lends no reference to its memory, so a copy races with
            // nothing and breaks no borrow; writes play a peer scribbling on it.
            unsafe { region.write(DEQUEUE, &1u64) }.unwrap();
        }
        assert_eq!(ring.try_pop(), Ok(1));
        assert_eq!(
            ring.try_push(2),
            Err(PushError::Full(2)),
            "helped: {helped}"
        );
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
        assert_eq!(word_of(&region, 0), word(0, State::Taking, 9));
        // It resumes: releases slot 0 for position 2.
        set_word(&region, 0, word(2, State::Empty, 0));
        ring.try_push(2).unwrap();
        assert_eq!(ring.try_pop(), Ok(2));
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
    }
}

// ---------------------------------------------------------------------
// Recovery from a participant that stopped mid-operation, in one process:
// its claim is written by hand, as a process killed there leaves it.

/// A producer stopped after claiming position 1 (with or without having
/// moved `enqueue` past it) is named by `stalled_pop` once consumers reach
/// it, and by `stalled_push` once producers come round a lap later;
/// `repair` gives the slot back once, after which the later values are
/// delivered, producers a lap later pass, and the stopped producer's value
/// never arrives.
#[test]
fn stopped_producer_is_named_and_repaired() {
    for helped in [true, false] {
        let region = ring_region(0, 4);
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        ring.try_push(10).unwrap();
        // SAFETY (every raw copy in this test): one thread uses the ring, and
        // the MPMC ring lends no reference to its memory, so a copy races with
        // nothing and breaks no borrow; writes play a peer scribbling on it.
        unsafe { region.write(seq_at(0, 1) + 8, &11u64) }.unwrap();
        set_word(&region, 1, word(1, State::Claimed, 5));
        if helped {
            unsafe { region.write(ENQUEUE, &2u64) }.unwrap();
        }
        ring.try_push(12).unwrap();
        ring.try_push(13).unwrap();
        // Nothing is stuck yet: the push at 4 has its turn, the pop at 0
        // its value.
        assert_eq!(ring.stalled_pop(), None);
        assert_eq!(ring.stalled_push(), None);
        assert_eq!(ring.try_pop(), Ok(10));
        for _ in 0..10 {
            assert_eq!(ring.try_pop(), Err(PopError::Empty), "helped: {helped}");
        }
        let stall = ring.stalled_pop().expect("a pop waits for producer 5");
        assert_eq!(stall.holder(), Holder::Producer(participant(5)));
        assert_eq!(stall.slot(), 1);
        assert_eq!(stall.word(), word(1, State::Claimed, 5));
        // Asking again finds the same slot and changes nothing.
        assert_eq!(ring.stalled_pop(), Some(stall));
        assert_eq!(word_of(&region, 1), word(1, State::Claimed, 5));
        // Producers a lap later are blocked by the same slot.
        assert_eq!(ring.stalled_push(), None);
        ring.try_push(14).unwrap();
        assert_eq!(ring.try_push(15), Err(PushError::Full(15)));
        assert_eq!(ring.stalled_push(), Some(stall));

        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert!(unsafe { ring.repair(stall) });
        assert_eq!(word_of(&region, 1), word(5, State::Empty, 0));
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert!(
            !unsafe { ring.repair(stall) },
            "a second repair of the same stall"
        );
        assert_eq!(word_of(&region, 1), word(5, State::Empty, 0));
        assert_eq!(ring.stalled_pop(), None);
        assert_eq!(ring.stalled_push(), None);
        // The producer a lap later proceeds; every later value arrives,
        // in order, and 11 (never published) does not.
        ring.try_push(15).unwrap();
        for v in 12..=15 {
            assert_eq!(ring.try_pop(), Ok(v), "helped: {helped}");
        }
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
        assert_eq!(ring.len(), 0);
        // And the ring goes on for laps.
        exercise(ring, 5);
        assert_eq!(ring.stalled_pop(), None);
        assert_eq!(ring.stalled_push(), None);
    }
}

/// A consumer stopped while taking position 0 blocks producers a lap
/// later (`Full`); `stalled_push` names it; after `repair` pushes proceed,
/// and the value it took is never delivered.
#[test]
fn stopped_consumer_is_named_and_repaired() {
    for helped in [true, false] {
        let region = ring_region(0, 2);
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        ring.try_push(100).unwrap();
        ring.try_push(101).unwrap();
        set_word(&region, 0, word(0, State::Taking, 9));
        if helped {
            // SAFETY (every raw copy in this test): one thread uses the ring, and
            // the MPMC ring lends no reference to its memory, so a copy races with
            // nothing and breaks no borrow; writes play a peer scribbling on it.
            unsafe { region.write(DEQUEUE, &1u64) }.unwrap();
        }
        assert_eq!(ring.try_pop(), Ok(101));
        for _ in 0..10 {
            assert_eq!(
                ring.try_push(102),
                Err(PushError::Full(102)),
                "helped: {helped}"
            );
        }
        let stall = ring.stalled_push().expect("a push waits for consumer 9");
        assert_eq!(stall.holder(), Holder::Consumer(participant(9)));
        assert_eq!(stall.slot(), 0);
        assert_eq!(stall.word(), word(0, State::Taking, 9));
        // The pop at 2 waits for the push at 2, which waits for consumer
        // 9: `stalled_pop` names it too.
        assert_eq!(ring.stalled_pop(), Some(stall));

        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert!(unsafe { ring.repair(stall) });
        assert_eq!(word_of(&region, 0), word(2, State::Empty, 0));
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert!(!unsafe { ring.repair(stall) });
        assert_eq!(ring.stalled_push(), None);
        assert_eq!(ring.stalled_pop(), None);
        ring.try_push(102).unwrap();
        ring.try_push(103).unwrap();
        assert_eq!(ring.try_push(104), Err(PushError::Full(104)));
        assert_eq!(ring.stalled_push(), None, "full of values: no holder");
        assert_eq!(ring.try_pop(), Ok(102));
        assert_eq!(ring.try_pop(), Ok(103));
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
        exercise(ring, 5);
    }
}

/// On healthy rings (empty, partly filled, full; at every lap; heap and
/// region) nothing holds a slot: `stalled_push` and `stalled_pop` are
/// `None`, including when an operation waits for ordinary producers or
/// consumers, and asking does not disturb the ring.
#[test]
fn no_stall_on_healthy_rings() {
    fn check(ring: MpmcRing<'_, u64>) {
        let cap = ring.capacity() as u64;
        let none = |what: &str| {
            assert_eq!(ring.stalled_push(), None, "stalled_push, {what}");
            assert_eq!(ring.stalled_pop(), None, "stalled_pop, {what}");
        };
        for lap in 0..3u64 {
            none("empty");
            assert_eq!(ring.try_pop(), Err(PopError::Empty));
            none("empty, after a pop");
            for i in 0..cap {
                ring.try_push(lap << 32 | i).unwrap();
                none("filling");
            }
            assert_eq!(ring.try_push(0), Err(PushError::Full(0)));
            none("full");
            for i in 0..cap {
                assert_eq!(ring.try_pop(), Ok(lap << 32 | i));
                none("draining");
            }
            // A partial lap, so that the next one starts mid-ring.
            ring.try_push(7).unwrap();
            none("one value");
            assert_eq!(ring.try_pop(), Ok(7));
        }
        assert!(ring.is_empty());
    }
    for cap in [1usize, 2, 4, 8] {
        check(HeapMpmcRing::new(cap).unwrap().ring());
        let region = ring_region(128, cap);
        check(MpmcRing::open(&region, 128).unwrap());
    }
}

/// `release_claims` repairs exactly the slots one participant holds in
/// one role, and returns how many: other participants' claims, and the
/// same participant's claims in the other role, are untouched.
#[test]
fn release_claims_repairs_one_participants_slots() {
    use State::{Claimed, Empty, Full, Taking};
    let region = ring_region(0, 8);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    for v in 100..104 {
        ring.try_push(v).unwrap();
    }
    assert_eq!(ring.try_pop(), Ok(100));
    // Consumers 3 and 4 took positions 1 and 2; producers 3, 4 and 3
    // claimed positions 4, 5 and 6; all moved their counters on.
    set_word(&region, 1, word(1, Taking, 3));
    set_word(&region, 2, word(2, Taking, 4));
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    unsafe { region.write(DEQUEUE, &3u64) }.unwrap();
    set_word(&region, 4, word(4, Claimed, 3));
    set_word(&region, 5, word(5, Claimed, 4));
    set_word(&region, 6, word(6, Claimed, 3));
    unsafe { region.write(ENQUEUE, &7u64) }.unwrap();
    let mut expected = vec![
        word(8, Empty, 0),
        word(1, Taking, 3),
        word(2, Taking, 4),
        word(3, Full, 0),
        word(4, Claimed, 3),
        word(5, Claimed, 4),
        word(6, Claimed, 3),
        word(7, Empty, 0),
    ];
    assert_eq!(words(&region, 8), expected);

    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Producer(participant(3))) },
        2
    );
    expected[4] = word(12, Empty, 0);
    expected[6] = word(14, Empty, 0);
    assert_eq!(words(&region, 8), expected);
    for holder in [
        Holder::Producer(participant(3)),
        Holder::Producer(participant(5)),
        Holder::Consumer(participant(5)),
        Holder::Producer(Participant::ANONYMOUS),
        Holder::Consumer(Participant::ANONYMOUS),
    ] {
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert_eq!(unsafe { ring.release_claims(holder) }, 0, "{holder:?}");
    }
    assert_eq!(words(&region, 8), expected);

    // The pop at 3 gets 103, the one at 4 passes the released slot and
    // waits at 5 for producer 4.
    assert_eq!(ring.try_pop(), Ok(103));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    let stall = ring.stalled_pop().unwrap();
    assert_eq!(
        (stall.holder(), stall.slot()),
        (Holder::Producer(participant(4)), 5)
    );
    // Pushes at 7 and 8 proceed; the one at 9 waits for consumer 3.
    ring.try_push(107).unwrap();
    ring.try_push(108).unwrap();
    assert_eq!(ring.try_push(109), Err(PushError::Full(109)));
    let stall = ring.stalled_push().unwrap();
    assert_eq!(
        (stall.holder(), stall.slot()),
        (Holder::Consumer(participant(3)), 1)
    );
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Consumer(participant(3))) },
        1
    );
    ring.try_push(109).unwrap();
    // The push at 10 waits for consumer 4, whose producer role's release
    // does not free it.
    assert_eq!(ring.try_push(110), Err(PushError::Full(110)));
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Producer(participant(4))) },
        1
    );
    assert_eq!(word_of(&region, 2), word(2, Taking, 4));
    assert_eq!(ring.try_push(110), Err(PushError::Full(110)));
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Consumer(participant(4))) },
        1
    );
    ring.try_push(110).unwrap();
    // The values of the stopped participants never arrive.
    for v in [107, 108, 109, 110] {
        assert_eq!(ring.try_pop(), Ok(v));
    }
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    for id in [3, 4] {
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert_eq!(
            unsafe { ring.release_claims(Holder::Producer(participant(id))) },
            0
        );
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        assert_eq!(
            unsafe { ring.release_claims(Holder::Consumer(participant(id))) },
            0
        );
    }
    assert_eq!(ring.stalled_pop(), None);
    assert_eq!(ring.stalled_push(), None);
    exercise(ring, 3);
}

/// A dead producer's slot repaired on two laps running before any consumer
/// passes it (the first repair by the push a lap later, the second by
/// `release_claims` for the id's next holder, which died too) is two laps
/// ahead of the consumer when it gets there: the consumer passes it (the
/// module documentation's footnote), takes the value behind it, and the
/// ring goes on.
#[test]
fn repairs_on_several_laps_before_a_consumer_passes() {
    let region = ring_region(0, 2);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    // Producer 1 claims position 0 and dies; 101 is pushed at 1.
    set_word(&region, 0, word(0, State::Claimed, 1));
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    unsafe { region.write(ENQUEUE, &1u64) }.unwrap();
    ring.try_push(101).unwrap();
    assert_eq!(ring.try_push(102), Err(PushError::Full(102)));
    let stall = ring.stalled_push().unwrap();
    assert_eq!(stall.holder(), Holder::Producer(participant(1)));
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert!(unsafe { ring.repair(stall) });
    // Its successor (id 1 again) claims position 2 and dies too.
    set_word(&region, 0, word(2, State::Claimed, 1));
    unsafe { region.write(ENQUEUE, &3u64) }.unwrap();
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Producer(participant(1))) },
        1
    );
    assert_eq!(word_of(&region, 0), word(4, State::Empty, 0));
    assert_eq!(unsafe { region.read::<u64>(DEQUEUE) }.unwrap(), 0);
    // The consumer at 0 finds Empty(4), passes it, and gets 101.
    assert_eq!(ring.try_pop(), Ok(101));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    assert_eq!(ring.stalled_pop(), None);
    ring.try_push(103).unwrap();
    ring.try_push(104).unwrap();
    assert_eq!(ring.try_pop(), Ok(103));
    assert_eq!(ring.try_pop(), Ok(104));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
    exercise(ring, 5);
}

/// A `Stall` whose holder finished after it was found (or whose slot has
/// moved on to a later claim by the same participant) is not repaired:
/// `repair` returns `false` and changes nothing.
#[test]
fn repair_of_a_finished_holder_changes_nothing() {
    // A producer, slow rather than dead.
    let region = ring_region(0, 4);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    set_word(&region, 0, word(0, State::Claimed, 2));
    // SAFETY (every raw copy in this test): one thread uses the ring, and
    // the MPMC ring lends no reference to its memory, so a copy races with
    // nothing and breaks no borrow; writes play a peer scribbling on it.
    unsafe { region.write(ENQUEUE, &1u64) }.unwrap();
    let stall = ring.stalled_pop().unwrap();
    assert_eq!(stall.holder(), Holder::Producer(participant(2)));
    unsafe { region.write(seq_at(0, 0) + 8, &50u64) }.unwrap();
    set_word(&region, 0, word(0, State::Full, 0));
    let before = words(&region, 4);
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert!(!unsafe { ring.repair(stall) });
    assert_eq!(words(&region, 4), before);
    assert_eq!(ring.try_pop(), Ok(50));
    // A lap later the same producer holds the same slot again: the old
    // stall names another position, and is not repaired.
    for v in 51..54 {
        ring.try_push(v).unwrap();
        assert_eq!(ring.try_pop(), Ok(v));
    }
    set_word(&region, 0, word(4, State::Claimed, 2));
    unsafe { region.write(ENQUEUE, &5u64) }.unwrap();
    let before = words(&region, 4);
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert!(!unsafe { ring.repair(stall) });
    assert_eq!(words(&region, 4), before);
    let again = ring.stalled_pop().unwrap();
    assert_ne!(again, stall);
    assert_eq!(again.word(), word(4, State::Claimed, 2));
    unsafe { region.write(seq_at(0, 0) + 8, &54u64) }.unwrap();
    set_word(&region, 0, word(4, State::Full, 0));
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert!(!unsafe { ring.repair(again) });
    assert_eq!(ring.try_pop(), Ok(54));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));

    // A consumer, slow rather than dead.
    let region = ring_region(0, 2);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    ring.try_push(1).unwrap();
    ring.try_push(2).unwrap();
    set_word(&region, 0, word(0, State::Taking, 6));
    unsafe { region.write(DEQUEUE, &1u64) }.unwrap();
    assert_eq!(ring.try_pop(), Ok(2));
    assert_eq!(ring.try_push(3), Err(PushError::Full(3)));
    let stall = ring.stalled_push().unwrap();
    assert_eq!(stall.holder(), Holder::Consumer(participant(6)));
    set_word(&region, 0, word(2, State::Empty, 0));
    let before = words(&region, 2);
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert!(!unsafe { ring.repair(stall) });
    assert_eq!(words(&region, 2), before);
    ring.try_push(3).unwrap();
    assert_eq!(ring.try_pop(), Ok(3));
    assert_eq!(ring.try_pop(), Err(PopError::Empty));
}

/// Participant ids: 0..=62, 63 being the anonymous claimant; `try_push_as`
/// and `try_pop_as` behave as `try_push` and `try_pop` for any of them,
/// anonymous included; a claim written by the anonymous participant is
/// named as such.
#[test]
fn participants_and_anonymous_ops() {
    assert_eq!(Participant::MAX_ID, 62);
    assert_eq!(Participant::new(63), None);
    assert_eq!(Participant::new(255), None);
    assert_eq!(participant(0).id(), 0);
    assert_eq!(participant(62).id(), 62);
    assert_eq!(Participant::ANONYMOUS.id(), 63);
    assert_ne!(participant(62), Participant::ANONYMOUS);

    let heap = HeapMpmcRing::<u64>::new(4).unwrap();
    let ring = heap.ring();
    let ids = [
        participant(0),
        participant(17),
        participant(62),
        Participant::ANONYMOUS,
    ];
    for (lap, who) in ids.into_iter().enumerate() {
        let other = ids[(lap + 1) % ids.len()];
        for i in 0..4u64 {
            ring.try_push_as(who, 10 * lap as u64 + i).unwrap();
        }
        assert_eq!(ring.try_push_as(who, 99), Err(PushError::Full(99)));
        assert_eq!(ring.try_push(99), Err(PushError::Full(99)));
        assert_eq!(ring.try_pop_as(who), Ok(10 * lap as u64));
        assert_eq!(ring.try_pop_as(other), Ok(10 * lap as u64 + 1));
        assert_eq!(ring.try_pop(), Ok(10 * lap as u64 + 2));
        ring.try_push(5).unwrap();
        assert_eq!(
            ring.try_pop_as(Participant::ANONYMOUS),
            Ok(10 * lap as u64 + 3)
        );
        assert_eq!(ring.try_pop_as(who), Ok(5));
        assert_eq!(ring.try_pop_as(who), Err(PopError::Empty));
        assert_eq!(ring.try_pop(), Err(PopError::Empty));
    }

    let region = ring_region(0, 4);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    set_word(&region, 0, word(0, State::Claimed, 63));
    let stall = ring.stalled_pop().unwrap();
    assert_eq!(stall.holder(), Holder::Producer(Participant::ANONYMOUS));
    // SAFETY: the claims were written by hand (or by an operation
    // that finished): no thread holds them.
    assert_eq!(
        unsafe { ring.release_claims(Holder::Producer(participant(0))) },
        0
    );
    assert_eq!(
        // SAFETY: the claims were written by hand (or by an operation
        // that finished): no thread holds them.
        unsafe { ring.release_claims(Holder::Producer(Participant::ANONYMOUS)) },
        1
    );
    assert_eq!(ring.stalled_pop(), None);
    ring.try_push(1).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
}

/// An element big enough that copying it takes a while, so that another
/// thread can see the slot mid-operation.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Big([u64; 8192]);

/// Claims name their participant: a thread pushes as participant 5 and
/// pops as 9 (values of 64 KiB, so that copies take long), while this one
/// watches the slot's word; every `Claimed` word it sees names 5, every
/// `Taking` word 9, and it sees both (the watch runs until it has, within
/// a generous deadline).
#[test]
fn claims_name_their_participant() {
    let size = MpmcRing::<Big>::bytes_for(1).unwrap();
    let region = RegionOptions::new()
        .size(size)
        .anonymous_with(|r| MpmcRing::<Big>::create(r, 0, 1).map(drop))
        .unwrap();
    let ring = MpmcRing::<Big>::open(&region, 0).unwrap();
    // The slot's word, loaded atomically (the worker thread CASes it
    // meanwhile, so a plain copy would be a data race), through another
    // handle (this one holds the ring's slots as such).
    let watch = second_handle(&region);
    let word = watch.place::<AtomicU64>(SLOTS).unwrap();
    let stop = AtomicU64::new(0);
    let (mut claimed, mut taking, mut reads) = (0u64, 0u64, 0u64);
    let mut bad = None;
    std::thread::scope(|s| {
        let stop = &stop;
        let worker = s.spawn(move || {
            let mut i = 0u64;
            while stop.load(Ordering::Relaxed) == 0 {
                ring.try_push_as(participant(5), Big([i; 8192])).unwrap();
                let v = ring.try_pop_as(participant(9)).unwrap();
                assert!(v.0.iter().all(|&x| x == i), "value {i} torn");
                i += 1;
            }
        });
        // Stop the worker whatever happens here, before asserting.
        let deadline = Instant::now() + LIMIT;
        while (claimed == 0 || taking == 0)
            && bad.is_none()
            && !worker.is_finished()
            && Instant::now() < deadline
        {
            let w = word.load(Ordering::Acquire);
            let (_, state, who) = seq::parts(w);
            match (state, who) {
                (State::Claimed, 5) => claimed += 1,
                (State::Taking, 9) => taking += 1,
                (State::Empty | State::Full, 0) => {}
                _ => bad = Some(w),
            }
            reads += 1;
        }
        stop.store(1, Ordering::Relaxed);
    });
    assert_eq!(bad, None, "a word naming someone else");
    assert!(
        claimed > 0 && taking > 0,
        "saw {claimed} claims, {taking} takes in {reads} reads"
    );
    eprintln!("{reads} reads: {claimed} Claimed(_, 5), {taking} Taking(_, 9)");
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A random write to a ring of `u64` at offset 0: a position or a
/// sequence number, set to something near its current range or anywhere.
fn scribble(rng: &mut Rng, capacity: usize) -> (usize, u64) {
    let r = rng.next();
    let offset = match r % 4 {
        0 => ENQUEUE,
        1 => DEQUEUE,
        _ => seq_at(0, (r >> 8) as usize % capacity),
    };
    let value = match (r >> 40) % 3 {
        0 => (r >> 44) % 64,
        1 => u64::MAX - (r >> 50) % 64,
        _ => rng.next(),
    };
    (offset, value)
}

/// Any result will do: what matters is that the call returned (and did
/// not panic or touch memory outside the ring).
fn any_outcome<T, E>(_: Result<T, E>) {}

/// Random scribbles between operations: every operation returns one of
/// its answers, quickly, and `len` stays within the capacity.
#[test]
fn random_scribbles_give_bounded_answers() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for cap in [1usize, 2, 8] {
        let region = ring_region(0, cap);
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        let started = Instant::now();
        for i in 0..20_000u64 {
            if rng.next() % 4 == 0 {
                let (offset, value) = scribble(&mut rng, cap);
                // SAFETY (every raw copy in this test): one thread uses the ring, and
                // the MPMC ring lends no reference to its memory, so a copy races with
                // nothing and breaks no borrow; writes play a peer scribbling on it.
                unsafe { region.write(offset, &value) }.unwrap();
            }
            if rng.next() % 2 == 0 {
                any_outcome(ring.try_push(i));
            } else {
                any_outcome(ring.try_pop());
            }
            assert!(ring.len() <= cap);
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

/// Another process scribbles on the positions and sequence numbers as
/// fast as it can while this one pushes and pops: every operation
/// returns, within a bound, with one of its answers.
#[test]
fn scribbling_process_gives_bounded_answers() {
    let capacity = 8;
    let region = ring_region(0, capacity);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    let mut cmd = child_command("scribbler", &["1500", &capacity.to_string()]);
    region.pass_to_child(&mut cmd, FD_VAR);
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let (mut ops, mut slowest, mut corrupted) = (0u64, Duration::ZERO, 0u64);
    while Instant::now() < deadline {
        let t = Instant::now();
        // Whether the call found the ring corrupted.
        let r = if ops % 2 == 0 {
            ring.try_push(ops)
                .map(drop)
                .map_err(|e| matches!(e, PushError::Corrupted(_)))
        } else {
            ring.try_pop()
                .map(drop)
                .map_err(|e| matches!(e, PopError::Corrupted(_)))
        };
        slowest = slowest.max(t.elapsed());
        corrupted += u64::from(r == Err(true));
        ops += 1;
    }
    let writes = finish(child, LIMIT);
    eprintln!(
        "{ops} operations ({corrupted} corrupted) against {writes:?} scribbles, slowest {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}

/// Threads of one process on a heap ring: 4 producers, 4 consumers.
#[test]
fn heap_ring_between_threads_delivers_exactly_once() {
    const PER: u64 = 50_000;
    let heap = HeapMpmcRing::<u64>::new(64).unwrap();
    let ring = heap.ring();
    let seen: Vec<AtomicU64> = (0..(4 * PER).div_ceil(64))
        .map(|_| AtomicU64::new(0))
        .collect();
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        for p in 0..4u64 {
            let done = &done;
            s.spawn(move || {
                let mut idle = Idle::new(LIMIT);
                for i in 0..PER {
                    push_blocking(&ring, p << 32 | i, &mut idle);
                }
                done.fetch_add(1, Ordering::AcqRel);
            });
        }
        for _ in 0..4 {
            let (seen, done) = (&seen, &done);
            s.spawn(move || {
                let mut idle = Idle::new(LIMIT);
                let mut last = [None; 4];
                loop {
                    match ring.try_pop() {
                        Ok(v) => {
                            let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                            assert!(last[p].is_none_or(|l| l < i));
                            last[p] = Some(i);
                            let bit = p as u64 * PER + i;
                            let mask = 1 << (bit % 64);
                            let old = seen[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
                            assert_eq!(old & mask, 0, "{v:#x} twice");
                        }
                        Err(PopError::Empty) => {
                            if done.load(Ordering::Acquire) == 4 && ring.is_empty() {
                                return;
                            }
                            idle.wait("heap pop");
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    let total: u32 = seen
        .iter()
        .map(|w| w.load(Ordering::Relaxed).count_ones())
        .sum();
    assert_eq!(u64::from(total), 4 * PER);
}

#[test]
fn views_are_copy_send_and_sync() {
    fn check<T: Copy + Send + Sync>(_: &T) {}
    let heap = HeapMpmcRing::<[u8; 7]>::new(2).unwrap();
    check(&heap.ring());
    let text = format!("{:?}", heap.ring());
    assert!(text.contains("capacity: 2"), "{text}");
}
