//! The MPMC ring: order, wrap-around and the full/empty edges in one
//! process; header validation on open; scribbled positions and sequence
//! numbers (once, and continuously from another process) giving
//! `Corrupted` or another bounded answer; a claimed but unpublished slot
//! reading as `Empty`; and 4 producer and 4 consumer processes moving a
//! million values through one ring, each delivered exactly once.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_command, child_role, finish, report, wait_until};
use shmkit::ring::mpmc::{HeapMpmc, MpmcRing, MAX_CAPACITY};
use shmkit::ring::RingError;
use shmkit::{Error, LayoutId, Region, RegionOptions, ShmSafe};
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

/// Offset of slot `i`'s sequence number in a ring of `u64` at `ring`.
fn seq_at(ring: usize, i: usize) -> usize {
    ring + SLOTS + 16 * i
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
            Err(RingError::Full) => idle.wait("push: ring stays full"),
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
                region.write(offset, &value).unwrap();
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
            Err(RingError::Empty) => {
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
    assert_eq!(ring.try_pop(), Err(RingError::Empty));
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
                Err(RingError::Empty) => idle.wait("values from the child"),
                Err(e) => panic!("{e}"),
            }
        }
    }
    finish(child, LIMIT);
    assert!(ring.is_empty());
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
                Err(RingError::Full) => {
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
                Err(RingError::Empty) => {
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
    assert_eq!(ring.try_pop(), Err(RingError::Empty));
    assert!(ring.is_empty());
}

#[test]
fn order_and_wrap_around_at_every_small_capacity() {
    for cap in [1, 2, 4, 8, 64] {
        exercise(HeapMpmc::new(cap).unwrap().ring(), 200);
        let region = ring_region(256, cap);
        exercise(MpmcRing::open(&region, 256).unwrap(), 200);
    }
}

#[test]
fn full_and_empty_edges() {
    for cap in [1usize, 2, 4, 1024] {
        let heap = HeapMpmc::<u64>::new(cap).unwrap();
        let ring = heap.ring();
        assert_eq!(ring.capacity(), cap);
        for lap in 0..3u64 {
            assert_eq!(ring.try_pop(), Err(RingError::Empty));
            for i in 0..cap as u64 {
                ring.try_push(lap << 32 | i).unwrap();
            }
            assert_eq!(ring.len(), cap);
            assert_eq!(ring.try_push(u64::MAX), Err(RingError::Full));
            assert_eq!(ring.len(), cap);
            for i in 0..cap as u64 {
                assert_eq!(ring.try_pop(), Ok(lap << 32 | i));
            }
            assert_eq!(ring.try_pop(), Err(RingError::Empty));
            assert!(ring.is_empty());
        }
    }
}

#[test]
fn capacity_one_alternates() {
    let heap = HeapMpmc::<u64>::new(1).unwrap();
    let ring = heap.ring();
    for i in 0..10_000 {
        ring.try_push(i).unwrap();
        assert_eq!(ring.try_push(i), Err(RingError::Full));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.try_pop(), Ok(i));
        assert_eq!(ring.try_pop(), Err(RingError::Empty));
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
        invalid_size(HeapMpmc::<u64>::new(cap));
    }
    assert_eq!(invalid_size(MpmcRing::<TooAligned>::bytes_for(4)), 256);
    invalid_size(HeapMpmc::<TooAligned>::new(4));
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
    // Not where the ring is.
    corrupted(MpmcRing::<u64>::open(&region, 0));
    corrupted(MpmcRing::<u64>::open(&region, 256));

    // Scribbled header fields.
    let scribbled = |offset: usize, value: u64| {
        let region = ring_region(128, 8);
        region.write(128 + offset, &value).unwrap();
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

/// A ring of `u64` of capacity 4 at offset 0 holding `0` and `1` (at
/// positions 0 and 1).
fn two_values() -> Region {
    let region = ring_region(0, 4);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    ring.try_push(0).unwrap();
    ring.try_push(1).unwrap();
    region
}

fn is_corrupted<T: std::fmt::Debug>(r: Result<T, RingError>) {
    assert!(matches!(r, Err(RingError::Corrupted(_))), "{r:?}");
}

#[test]
fn scribbled_positions_give_corrupted() {
    // The enqueue position far ahead: the slot there is a lap behind.
    let region = two_values();
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    region.write(ENQUEUE, &1000u64).unwrap();
    is_corrupted(ring.try_push(9));
    // ... and moved backwards: the slot claims a turn nobody gave it.
    region.write(ENQUEUE, &0u64).unwrap();
    is_corrupted(ring.try_push(9));
    // Restored, the ring works again (nothing was written meanwhile).
    region.write(ENQUEUE, &2u64).unwrap();
    ring.try_push(2).unwrap();
    assert_eq!(ring.try_pop(), Ok(0));

    // The dequeue position far ahead, then backwards over a consumed slot.
    region.write(DEQUEUE, &1001u64).unwrap();
    is_corrupted(ring.try_pop());
    region.write(DEQUEUE, &0u64).unwrap();
    is_corrupted(ring.try_pop());
    region.write(DEQUEUE, &u64::MAX).unwrap();
    is_corrupted(ring.try_pop());
    region.write(DEQUEUE, &1u64).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_pop(), Ok(2));

    // `len` stays within the capacity whatever the positions say.
    region.write(ENQUEUE, &1_000_000u64).unwrap();
    assert_eq!(ring.len(), 4);
    region.write(DEQUEUE, &10u64).unwrap();
    region.write(ENQUEUE, &5u64).unwrap();
    assert_eq!(ring.len(), 0);
}

#[test]
fn scribbled_sequence_numbers_give_corrupted() {
    // Capacity 4, so a lap is 8 half steps. The next push is position 2
    // (slot 2, turn 4): only 4, 4 - 8 and 4 - 7 are plausible there, and
    // values ahead only if the enqueue position moved, which it did not.
    for value in [3u64, 1, 4 + 64, u64::MAX, 1 << 63] {
        let region = two_values();
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        region.write(seq_at(0, 2), &value).unwrap();
        is_corrupted(ring.try_push(9));
    }
    // The next pop is position 0 (slot 0, turn 1): 1, 1 - 1 and 1 - 8.
    for value in [0u64, 3, 100, u64::MAX] {
        let region = two_values();
        let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
        region.write(seq_at(0, 0), &value).unwrap();
        let r = ring.try_pop();
        // 0 is "awaiting the producer of position 0": not corrupt, empty.
        if value == 0 {
            assert_eq!(r, Err(RingError::Empty));
        } else {
            is_corrupted(r);
        }
    }
}

/// A producer that claims a position and stops before publishing it (as
/// if killed) makes consumers see `Empty` at that position, and producers
/// `Full` a lap later; nobody hangs, and the ring resumes when the slot is
/// published.
#[test]
fn claimed_but_unpublished_slot_reads_as_empty() {
    let region = ring_region(0, 4);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    ring.try_push(10).unwrap();
    // A producer claims position 1 and stalls.
    region.write(ENQUEUE, &2u64).unwrap();
    ring.try_push(12).unwrap();
    ring.try_push(13).unwrap();
    assert_eq!(ring.try_pop(), Ok(10));
    let t = Instant::now();
    for _ in 0..1000 {
        assert_eq!(ring.try_pop(), Err(RingError::Empty));
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(ring.len(), 3, "values claimed and published count");
    ring.try_push(14).unwrap();
    assert_eq!(ring.try_push(15), Err(RingError::Full));
    // The stalled producer resumes: writes its value, publishes 2*1+1.
    region.write(seq_at(0, 1) + 8, &11u64).unwrap();
    region.write(seq_at(0, 1), &3u64).unwrap();
    for v in 11..=14 {
        assert_eq!(ring.try_pop(), Ok(v));
    }
    assert_eq!(ring.try_pop(), Err(RingError::Empty));
    ring.try_push(15).unwrap();
    assert_eq!(ring.try_pop(), Ok(15));
}

/// A consumer that claims a position and stops before releasing the slot
/// makes producers see `Full` when they come round to it.
#[test]
fn claimed_but_unreleased_slot_reads_as_full() {
    let region = ring_region(0, 2);
    let ring = MpmcRing::<u64>::open(&region, 0).unwrap();
    ring.try_push(0).unwrap();
    ring.try_push(1).unwrap();
    // A consumer claims position 0 and stalls.
    region.write(DEQUEUE, &1u64).unwrap();
    assert_eq!(ring.try_pop(), Ok(1));
    assert_eq!(ring.try_push(2), Err(RingError::Full));
    assert_eq!(ring.try_pop(), Err(RingError::Empty));
    // It resumes: releases slot 0 for position 2.
    region.write(seq_at(0, 0), &4u64).unwrap();
    ring.try_push(2).unwrap();
    assert_eq!(ring.try_pop(), Ok(2));
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

fn any_outcome<T>(r: Result<T, RingError>) {
    match r {
        Ok(_) | Err(RingError::Full | RingError::Empty | RingError::Corrupted(_)) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
}

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
                region.write(offset, &value).unwrap();
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
        let r = if ops % 2 == 0 {
            ring.try_push(ops).map(drop)
        } else {
            ring.try_pop().map(drop)
        };
        slowest = slowest.max(t.elapsed());
        corrupted += u64::from(matches!(r, Err(RingError::Corrupted(_))));
        any_outcome(r);
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
    let heap = HeapMpmc::<u64>::new(64).unwrap();
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
                        Err(RingError::Empty) => {
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
    let heap = HeapMpmc::<[u8; 7]>::new(2).unwrap();
    check(&heap.ring());
    let text = format!("{:?}", heap.ring());
    assert!(text.contains("capacity: 2"), "{text}");
}
