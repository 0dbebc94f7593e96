//! Runs sequences of operations on an MPMC ring of `u64` in an anonymous
//! region, through several views of it (one per participant, used in
//! turn), and checks every result against a model: where each counter is
//! (a claimed position, or one behind it when its claimer stopped before
//! helping the counter on), a `VecDeque` of what each position between
//! the two holds (a value, a producer's claim it has not published yet,
//! or a dead producer's repaired claim that consumers skip) and the
//! positions consumers have claimed but not released. The model predicts
//! exactly what each operation returns and, when asked, both counters and
//! every slot's sequence word (`shmkit::ring::mpmc::seq`). Any mismatch
//! panics.
//!
//! Besides the views' `try_push`/`try_pop` (and `try_push_as`/`try_pop_as`
//! under a few participant ids), stalled participants follow the protocol
//! by hand on the shared words, each under its own id (1..=8; a claim's
//! word names it): a producer at position `p` CASes its slot's word from
//! `Empty(p)` to `Claimed(p, who)`, helps `enqueue` from `p` to `p + 1`
//! (or stops before that: the next operation on that side must help it
//! on), and publishes later (writes the value, stores `Full(p)`); a
//! consumer CASes `Full(p)` to `Taking(p, who)`, reads the value, helps
//! `dequeue` (or not) and releases later (stores `Empty(p + capacity)`).
//! Either passes over a slot that is taken or done by helping the counter,
//! as the table in the ring's module documentation says. They make the
//! ring answer `Empty` with values queued behind a claim, and `Full` a lap
//! later. A stalled participant may also die: `stalled_push`/`stalled_pop`
//! must name exactly the slot and holder the model expects (or `None`),
//! and `repair` of that stall (or `release_claims` of the dead one's id,
//! with the predicted count) hands its slot on: consumers skip a dead
//! producer's position (its value was never sent), a dead consumer's value
//! is lost. Repairs on several laps of one slot before consumers reach it
//! leave that slot any number of laps ahead of `dequeue`, `Empty`,
//! `Claimed` or `Full`: a consumer (a view's, `stalled_pop`, or one by
//! hand) passes such a position like any it skips, helping `dequeue` on by
//! one position per look, and gives up with `Empty` (`stalled_pop`:
//! `None`; by hand: no claim) after `RETRY_LIMIT` looks that found nothing
//! to take or wait for, the look at a lagging `dequeue`'s claim included;
//! the model predicts where that leaves `dequeue`. A stall kept for later
//! must repair exactly when its slot still holds what it saw (its holder
//! then counts as dead: it never resumes), and fail, changing nothing,
//! once its holder moved on or someone repaired it first. The ring may
//! start at any position, as if that many values had passed through it,
//! so that positions wrap (the counters at 2^64, the words' positions at
//! 2^56).
//!
//! A corruption operation overwrites a header word (`enqueue`, `dequeue`,
//! or a creator's word: magic, capacity, element size, element alignment,
//! slot stride) or a slot's sequence word as a misbehaving peer could,
//! with an arbitrary value or one just around the bounds the ring checks:
//! a counter plus a small delta; a word for `p - capacity`, `p`,
//! `p + capacity` or `p + 2 capacity` (`p` either counter or the slot's own
//! position), in any state, naming nobody, a stalled participant,
//! `ANONYMOUS` or anyone (so also `Empty`/`Full` words naming someone), its
//! position also off by a small delta (not in the slot); the word plus a
//! delta, with one bit flipped, or a power of two. From then on the model
//! is no longer compared; every operation must still return (no panic, no
//! hang, no access outside the ring) with its usual answers or
//! `Corrupted`: `try_push` `Ok` or `Full`, `try_pop` `Empty` or a value
//! that some push wrote (or a slot's initial zero), `len` at most the
//! view's capacity, `is_empty` agreeing with it, a stall naming a slot of
//! the view and the holder its word names, `release_claims` at most the
//! capacity. What re-opening the ring returns stays exactly predicted from
//! the header words: it must succeed exactly when they describe a ring of
//! `u64` that fits the region, and otherwise fail with an error that one
//! of the broken words explains. (A capacity overwritten with a smaller
//! power of two fits: the view opened then has that capacity, and joins
//! the others.)
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  capacity: 1 << (b % 7), 1..=64 slots
//!      1    8  salt, u64 LE: the n-th value offered to the ring is n ^ salt
//!      9    1  start position (b % 5): 0, the word below, 2^63 + (word as
//!              i8), 2^64 + (word as i8), or 2^56 + (word as i8), wrapped
//!     10    8  start word, u64 LE
//!     18    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 15; the view used is op byte / 15 % 4; for 0-3,
//! op byte / 60 picks the claimant: 0 the plain call, else the `_as` call
//! as participant 0, 9, 62 or `ANONYMOUS`):
//!
//! ```text
//!  0  push
//!  1  pop
//!  2  push several   (count byte, up to 2 capacity)
//!  3  pop several    (count byte)
//!  4  check          len/is_empty/capacity of every view; before a
//!                    corruption also both counters and every slot's word
//!  5  re-open the ring into the view
//!  6  a stalled producer claims  (byte: id b % 8 + 1; b & 8: it stops
//!                                 before helping `enqueue`)
//!  7  a stalled producer publishes  (byte: which)
//!  8  a stalled consumer claims     (byte as for 6)
//!  9  a stalled consumer releases   (byte: which)
//! 10  stalled_push on the view (byte b % 4: 0, 1 the holder died, repair
//!     the stall; 2 keep the stall for later; 3 both)
//! 11  stalled_pop, likewise
//! 12  repair a kept stall  (byte: which)
//! 13  release_claims  (byte: b & 1 consumer or producer, id from
//!     0, 1..=8, 63 by b / 2 % 10)
//! 14  corrupt  (bytes: target, mode, delta/shift, and what the mode needs)
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::ring::mpmc::{Holder, MpmcRing, Participant, Stall, MAX_CAPACITY, RETRY_LIMIT};
use shmkit::ring::{PopError, PushError};
use shmkit::testing::mpmc::{
    distance, parts, word, State, CAPACITY_OFFSET, DEQUEUE_OFFSET, ELEM_ALIGN_OFFSET,
    ELEM_SIZE_OFFSET, ENQUEUE_OFFSET, HEADER_SIZE, MAGIC_OFFSET, MPMC_MAGIC, SLOT_STRIDE_OFFSET,
};
use shmkit::{Error, Region, RegionOptions};
use shmkit_fuzz::Input;
use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Views of the ring, one per simulated participant.
const VIEWS: usize = 4;
/// Kinds of operation (the op byte modulo this).
const OPS: u8 = 15;
/// Bytes per slot of a `u64` ring: `#[repr(C)] { seq: u64, value: u64 }`.
const STRIDE: usize = 16;
/// Offset of the value in a slot.
const VALUE_OFFSET: usize = 8;
/// Stalls kept for a later repair, at most.
const KEPT_STALLS: usize = 16;
/// The header words a corruption picks from (its target 7 is a slot's
/// sequence word instead).
const WORDS: [usize; 7] = [
    ENQUEUE_OFFSET,
    DEQUEUE_OFFSET,
    MAGIC_OFFSET,
    CAPACITY_OFFSET,
    ELEM_SIZE_OFFSET,
    ELEM_ALIGN_OFFSET,
    SLOT_STRIDE_OFFSET,
];

/// Which side of the ring a participant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

/// The participant with id `who` (63 is anonymous).
fn participant(who: u8) -> Participant {
    Participant::new(who).unwrap_or(Participant::ANONYMOUS)
}

/// The ring's shared words, as a participant that works the protocol by
/// hand (or breaks it) sees them.
struct Raw<'a> {
    region: &'a Region,
    cap: u64,
}

impl Raw<'_> {
    /// The `u64` at `offset` in the region's data.
    fn word(&self, offset: usize) -> &AtomicU64 {
        self.region.place(offset).expect("a word of the ring")
    }
    fn counter(&self, role: Role) -> &AtomicU64 {
        match role {
            Role::Producer => self.word(ENQUEUE_OFFSET),
            Role::Consumer => self.word(DEQUEUE_OFFSET),
        }
    }
    /// The sequence word of the slot of position `pos`.
    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.word(HEADER_SIZE + (pos % self.cap) as usize * STRIDE)
    }
    /// The value of the slot of position `pos`.
    fn value(&self, pos: u64) -> &AtomicU64 {
        self.word(HEADER_SIZE + (pos % self.cap) as usize * STRIDE + VALUE_OFFSET)
    }

    /// A participant of `role` claims the next position as `who`, by hand,
    /// as the ring's table says: it claims the slot of its position when
    /// that holds its turn, helps the counter past a position whose slot
    /// is taken or done (and tries the next), and gives up on anything
    /// else (a slot that keeps it waiting, or one it cannot explain).
    /// `help`: whether it moves the counter past its own claim too, or
    /// stops right after the claim. Returns the position claimed.
    fn claim(&self, role: Role, who: u8, help: bool) -> Option<u64> {
        let (turn, claim) = match role {
            Role::Producer => (State::Empty, State::Claimed),
            Role::Consumer => (State::Full, State::Taking),
        };
        let counter = self.counter(role);
        let cap = self.cap as i64;
        let mut pos = counter.load(Ordering::Acquire);
        for _ in 0..RETRY_LIMIT {
            let slot = self.seq(pos);
            let found = slot.load(Ordering::Acquire);
            if found == word(pos, turn, 0) {
                let claimed = word(pos, claim, who);
                let ok = slot
                    .compare_exchange(found, claimed, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if ok && help {
                    let next = pos.wrapping_add(1);
                    let _ =
                        counter.compare_exchange(pos, next, Ordering::AcqRel, Ordering::Relaxed);
                }
                return ok.then_some(pos);
            }
            let (at, state, holder) = parts(found);
            let held = matches!(state, State::Claimed | State::Taking);
            let d = distance(at, pos);
            if !(held || holder == 0) || d % cap != 0 {
                return None;
            }
            use State::{Claimed, Empty, Full, Taking};
            // A consumer passes a slot any number of laps on (repairs on
            // several laps of it before consumers came), unless `Taking`.
            let passed = matches!(
                (role, d / cap, state),
                (Role::Producer, 0, Claimed | Full | Taking)
                    | (Role::Producer, 1, Empty)
                    | (Role::Consumer, 0, Taking)
                    | (Role::Consumer, 1.., Empty | Claimed | Full)
            );
            if !passed {
                return None;
            }
            let next = pos.wrapping_add(1);
            pos = match counter.compare_exchange(pos, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => next,
                Err(now) if (now.wrapping_sub(pos) as i64) > 0 => now,
                Err(_) => return None,
            };
        }
        None
    }
}

/// A participant stopped mid-operation: it claimed `pos` as `who`, and
/// holds `value` (a producer's, to publish; a consumer's, read).
#[derive(Debug, Clone, Copy)]
struct Hand {
    pos: u64,
    who: u8,
    value: u64,
    /// Whether it moved the counter past `pos` after its claim.
    helped: bool,
}

/// What a position between `dequeue` and `enqueue` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Its producer (this id) claimed it and has not published.
    Claimed(u8),
    /// Its value.
    Full(u64),
    /// Its producer died and the claim was repaired: nothing to deliver.
    Skipped,
}

/// What the slot of a position says about that position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Of {
    /// A position consumers have not passed.
    Queued(At),
    /// Its consumer (this id) is taking the value.
    Taking(u8),
    /// Consumed and released (or never used: before the start).
    Done,
}

/// Where a participant's walk from its counter ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// The slot is its turn: claim it.
    Turn,
    /// It waits for a holder of the previous step: `Full`/`Empty`, and
    /// the stall `stalled_*` names.
    Held(Holder),
    /// It waits, on nobody's claim.
    Wait,
    /// It gave up after `RETRY_LIMIT` looks.
    Limit,
}

/// What the ring should hold; positions wrap, like the ring's.
struct Model {
    cap: u64,
    /// The next position a push claims.
    enq: u64,
    /// Whether `enqueue` is still at the claim before `enq` (its producer
    /// stopped before helping the counter, and nobody has since).
    enq_lag: bool,
    /// The next position a pop claims.
    deq: u64,
    /// Likewise for `dequeue`.
    deq_lag: bool,
    /// Positions `deq..enq`.
    q: VecDeque<At>,
    /// Positions before `deq` whose consumer has not released the slot.
    taking: Vec<(u64, u8)>,
}

impl Model {
    fn new(cap: u64, start: u64) -> Self {
        Self {
            cap,
            enq: start,
            enq_lag: false,
            deq: start,
            deq_lag: false,
            q: VecDeque::new(),
            taking: Vec::new(),
        }
    }

    /// The value of the counter of `role`.
    fn counter(&self, role: Role) -> u64 {
        match role {
            Role::Producer => self.enq.wrapping_sub(self.enq_lag.into()),
            Role::Consumer => self.deq.wrapping_sub(self.deq_lag.into()),
        }
    }

    /// `len()`: the counters' distance, clamped to the capacity.
    fn len(&self) -> usize {
        let d = self
            .counter(Role::Producer)
            .wrapping_sub(self.counter(Role::Consumer)) as i64;
        d.clamp(0, self.cap as i64) as usize
    }

    fn of(&self, pos: u64) -> Of {
        let i = pos.wrapping_sub(self.deq);
        if i < self.q.len() as u64 {
            Of::Queued(self.q[i as usize])
        } else if let Some(&(_, who)) = self.taking.iter().find(|t| t.0 == pos) {
            Of::Taking(who)
        } else {
            Of::Done
        }
    }

    /// The sequence word of the slot of `at` (a position or a slot index):
    /// what the position that last reached it, the one in
    /// `enq - cap .. enq`, left there.
    fn slot_word(&self, at: u64) -> u64 {
        let lap = self.enq.wrapping_sub(self.cap);
        let pos = lap.wrapping_add(at.wrapping_sub(lap) % self.cap);
        match self.of(pos) {
            Of::Queued(At::Claimed(who)) => word(pos, State::Claimed, who),
            Of::Queued(At::Full(_)) => word(pos, State::Full, 0),
            Of::Taking(who) => word(pos, State::Taking, who),
            Of::Queued(At::Skipped) | Of::Done => word(pos.wrapping_add(self.cap), State::Empty, 0),
        }
    }

    /// How many laps the word in the slot of `pos` is on from `pos`.
    fn laps(&self, pos: u64) -> i64 {
        let d = distance(parts(self.slot_word(pos)).0, pos);
        assert_eq!(d % self.cap as i64, 0, "model: a word not in its slot");
        d / self.cap as i64
    }

    /// A producer's walk from `enqueue` (the counter helped on, if it
    /// lagged): where it ends.
    fn push_walk(&mut self) -> Walk {
        if self.enq_lag {
            let laps = self.laps(self.enq.wrapping_sub(1));
            assert!(laps <= 1, "model: the slot of a lagging enqueue moved on");
            self.enq_lag = false;
        }
        match self.of(self.enq.wrapping_sub(self.cap)) {
            Of::Done | Of::Queued(At::Skipped) => Walk::Turn,
            Of::Queued(At::Claimed(who)) => Walk::Held(Holder::Producer(participant(who))),
            Of::Queued(At::Full(_)) => Walk::Wait,
            Of::Taking(who) => Walk::Held(Holder::Consumer(participant(who))),
        }
    }

    /// A consumer's walk from `dequeue`, helping it past the claim it lags
    /// behind and past skipped positions, one look each, for at most
    /// `RETRY_LIMIT` looks in all (as the ring's `claim` and `stalled`
    /// loop): where it ends. A skipped position's slot may be any number
    /// of laps on; the consumer passes it all the same.
    fn pop_walk(&mut self) -> Walk {
        let mut looks = 0;
        if self.deq_lag {
            looks += 1;
            self.passes(self.deq.wrapping_sub(1));
            self.deq_lag = false;
        }
        loop {
            if looks == RETRY_LIMIT {
                return Walk::Limit;
            }
            looks += 1;
            match self.q.front() {
                None => {
                    // At `enq`: its slot holds the previous lap's position,
                    // which consumers passed.
                    return match self.of(self.enq.wrapping_sub(self.cap)) {
                        Of::Taking(who) => Walk::Held(Holder::Consumer(participant(who))),
                        Of::Done => Walk::Wait,
                        Of::Queued(at) => panic!("model: {at:?} before dequeue"),
                    };
                }
                Some(At::Full(_)) => return Walk::Turn,
                Some(&At::Claimed(who)) => return Walk::Held(Holder::Producer(participant(who))),
                Some(At::Skipped) => {
                    self.passes(self.deq);
                    self.q.pop_front();
                    self.deq = self.deq.wrapping_add(1);
                }
            }
        }
    }

    /// Checks the model: the slot of `pos`, a position consumers claimed
    /// or skip, holds what a consumer at `pos` helps `dequeue` past: its
    /// claim `Taking`, or a word a lap or more on (one more per repair of
    /// a dead producer in that slot since) that is not `Taking`.
    fn passes(&self, pos: u64) {
        let laps = self.laps(pos);
        let (_, state, _) = parts(self.slot_word(pos));
        assert!(
            matches!(
                (laps, state),
                (0, State::Taking) | (1.., State::Empty | State::Claimed | State::Full)
            ),
            "model: consumers stop at {pos}, {laps} laps on {state:?}"
        );
    }

    /// A producer's claim of `enq` (its push walked there): a value, or a
    /// claim by `who` not published yet, helped past or not.
    fn push(&mut self, at: At, helped: bool) {
        self.q.push_back(at);
        self.enq = self.enq.wrapping_add(1);
        self.enq_lag = !helped;
    }

    /// A consumer's claim of `deq` (its pop walked there): the value.
    fn pop(&mut self, helped: bool) -> u64 {
        let Some(At::Full(v)) = self.q.pop_front() else {
            panic!("model: popping no value")
        };
        self.deq = self.deq.wrapping_add(1);
        self.deq_lag = !helped;
        v
    }

    /// A stalled producer of `pos` that had not helped `enqueue` does so
    /// now: that succeeds if the counter still lags at `pos`.
    fn late_help(&mut self, role: Role, pos: u64) {
        let (next, lag) = match role {
            Role::Producer => (self.enq, &mut self.enq_lag),
            Role::Consumer => (self.deq, &mut self.deq_lag),
        };
        if *lag && next.wrapping_sub(1) == pos {
            *lag = false;
        }
    }

    /// The slot of a dead participant's claim of `pos` goes to the next
    /// lap: a producer's position is skipped, a consumer's value lost.
    fn repaired(&mut self, role: Role, h: Hand) {
        let pos = h.pos;
        match role {
            Role::Producer => {
                let i = pos.wrapping_sub(self.deq) as usize;
                assert!(
                    matches!(self.q.get(i), Some(At::Claimed(_))),
                    "model: repair {pos}"
                );
                self.q[i] = At::Skipped;
            }
            Role::Consumer => {
                let i = self.taking.iter().position(|t| t.0 == pos);
                self.taking
                    .swap_remove(i.expect("model: repair of no taking"));
            }
        }
    }
}

/// Stalled participants, each side's.
#[derive(Default)]
struct Stalled {
    producers: Vec<Hand>,
    consumers: Vec<Hand>,
}

impl Stalled {
    fn of(&mut self, role: Role) -> &mut Vec<Hand> {
        match role {
            Role::Producer => &mut self.producers,
            Role::Consumer => &mut self.consumers,
        }
    }

    /// The stalled participant whose claim is the word `held` (`Claimed`
    /// or `Taking`), taken out: it died.
    fn died(&mut self, held: u64) -> Option<(Role, Hand)> {
        let (_, state, _) = parts(held);
        let (role, state) = match state {
            State::Taking => (Role::Consumer, State::Taking),
            _ => (Role::Producer, State::Claimed),
        };
        let hands = self.of(role);
        let i = hands
            .iter()
            .position(|h| word(h.pos, state, h.who) == held)?;
        Some((role, hands.swap_remove(i)))
    }
}

/// Checks what `stalled_push`/`stalled_pop` returned against the walk the
/// model made to `pos`.
fn check_stall(m: &Model, got: Option<Stall>, walk: Walk, pos: u64) {
    let want = match walk {
        Walk::Held(h) => Some(h),
        _ => None,
    };
    assert_eq!(got.map(|s| s.holder()), want, "stall at {pos} ({walk:?})");
    if let Some(s) = got {
        assert_eq!(s.slot() as u64, pos % m.cap, "stall's slot");
        assert_eq!(s.word(), m.slot_word(pos), "stall's word");
    }
}

/// Checks a stall after a corruption: a slot of the view, and the holder
/// its word names.
fn sane_stall(view: &MpmcRing<'_, u64>, s: Stall) {
    assert!(s.slot() < view.capacity(), "stall at slot {}", s.slot());
    let (_, state, who) = parts(s.word());
    match (s.holder(), state) {
        (Holder::Producer(p), State::Claimed) | (Holder::Consumer(p), State::Taking) => {
            assert_eq!(p.id(), who, "{s:?}")
        }
        _ => panic!("stall {s:?}: its holder and its word disagree"),
    }
}

/// Checks a re-open against the header words: `Ok` with their capacity
/// exactly when they describe a `u64` ring that fits the region, else an
/// error that a broken word explains.
fn check_open(raw: &Raw<'_>, got: &Result<MpmcRing<'_, u64>, Error>) {
    let read = |offset| raw.word(offset).load(Ordering::Relaxed);
    let magic_ok = read(MAGIC_OFFSET) == MPMC_MAGIC;
    let (size, align) = (read(ELEM_SIZE_OFFSET), read(ELEM_ALIGN_OFFSET));
    let layout_ok = (size, align) == (8, 8);
    let stride_ok = read(SLOT_STRIDE_OFFSET) == STRIDE as u64;
    let cap = read(CAPACITY_OFFSET);
    let cap_ok = cap.is_power_of_two() && cap <= MAX_CAPACITY as u64;
    let fits = cap_ok && HEADER_SIZE as u64 + cap * STRIDE as u64 <= raw.region.len() as u64;
    match got {
        Ok(view) => {
            assert!(
                magic_ok && layout_ok && stride_ok && fits,
                "opened a bad header"
            );
            assert_eq!(view.capacity() as u64, cap);
        }
        Err(Error::Corrupted { .. }) => assert!(!magic_ok || !stride_ok || !cap_ok, "{got:?}"),
        Err(Error::LayoutMismatch { found, expected }) => {
            assert!(!layout_ok, "{got:?}");
            assert_eq!((*found, *expected), (size << 32 | align, 8 << 32 | 8));
        }
        Err(Error::OutOfBounds { .. }) => assert!(cap_ok && !fits, "{got:?}"),
        Err(e) => panic!("re-open: unexpected {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cap = 1usize << (input.u8() % 7);
    let salt = input.u64();
    let start_mode = input.u8();
    let start_word = input.u64();
    let start = match start_mode % 5 {
        0 => 0,
        1 => start_word,
        2 => (1u64 << 63).wrapping_add(start_word as i8 as u64),
        3 => start_word as i8 as u64,
        _ => (1u64 << 56).wrapping_add(start_word as i8 as u64),
    };

    let bytes = MpmcRing::<u64>::bytes_for(cap).unwrap();
    assert_eq!(bytes, HEADER_SIZE + cap * STRIDE);
    // One memfd per capacity for the whole run (creating one costs more
    // than most inputs), mapped afresh for each input and zeroed: as good
    // as new. Two handles: one for the ring's views, one for the raw words
    // (a handle refuses to place plain atomics over a ring it placed, as
    // it would anything that overlaps another type).
    static REGIONS: [OnceLock<Region>; 7] = [const { OnceLock::new() }; 7];
    let pool =
        REGIONS[cap.trailing_zeros() as usize].get_or_init(|| Region::anonymous(bytes).unwrap());
    let handle = || {
        RegionOptions::new()
            .from_fd(pool.as_fd().try_clone_to_owned().unwrap())
            .unwrap()
    };
    let (ring_handle, raw_handle) = (handle(), handle());
    let region = &ring_handle;
    // SAFETY: libFuzzer runs one input at a time on one thread, so the
    // last input's views are gone, and this input placed nothing yet.
    unsafe { region.write_bytes(0, &vec![0; bytes]) }.unwrap();
    let ring = MpmcRing::<u64>::create(region, 0, cap).unwrap();
    let raw = Raw {
        region: &raw_handle,
        cap: cap as u64,
    };
    let c = cap as u64;
    assert_eq!(
        raw.word(SLOT_STRIDE_OFFSET).load(Ordering::Relaxed),
        STRIDE as u64
    );
    if start != 0 {
        // The state `start` pushes and pops leave: every slot awaits the
        // producer of its position in the lap from `start` on.
        raw.counter(Role::Producer).store(start, Ordering::Relaxed);
        raw.counter(Role::Consumer).store(start, Ordering::Relaxed);
        for slot in 0..c {
            let pos = start.wrapping_add(slot.wrapping_sub(start) % c);
            raw.seq(slot)
                .store(word(pos, State::Empty, 0), Ordering::Relaxed);
        }
    }
    let mut views = [ring; VIEWS];
    for view in &mut views[1..] {
        let got = MpmcRing::open(region, 0);
        check_open(&raw, &got);
        *view = got.unwrap();
    }
    let mut m = Model::new(c, start);
    let mut stalled = Stalled::default();
    let mut kept: Vec<Stall> = Vec::new();
    // Values offered so far; the n-th is n ^ salt.
    let mut serial = 0u64;
    // Once set, results are only checked for sanity.
    let mut corrupted = false;

    // What a pop may return after a corruption: a value some push wrote
    // (there is no other writer), or a slot's initial zero.
    let written = |v: u64, serial: u64| v == 0 || v ^ salt < serial;

    for _ in 0..10_000 {
        if input.done() {
            break;
        }
        let op = input.u8();
        let k = (op / OPS) as usize % VIEWS;
        let view = views[k];
        // The claimant of the views' pushes and pops.
        let who = match op / OPS / VIEWS as u8 {
            0 => None,
            1 => Participant::new(0),
            2 => Participant::new(9),
            3 => Participant::new(Participant::MAX_ID),
            _ => Some(Participant::ANONYMOUS),
        };
        match op % OPS {
            0 | 2 => {
                let n = if op % OPS == 2 {
                    input.size(2 * cap)
                } else {
                    1
                };
                for _ in 0..n {
                    let v = serial ^ salt;
                    serial += 1;
                    let got = match who {
                        None => view.try_push(v),
                        Some(p) => view.try_push_as(p, v),
                    };
                    if corrupted {
                        assert!(
                            matches!(
                                got,
                                Ok(()) | Err(PushError::Full(_) | PushError::Corrupted(_))
                            ),
                            "{got:?}"
                        );
                    } else if m.push_walk() == Walk::Turn {
                        assert_eq!(got, Ok(()));
                        m.push(At::Full(v), true);
                    } else {
                        assert_eq!(got, Err(PushError::Full(v)));
                    }
                }
            }
            1 | 3 => {
                let n = if op % OPS == 1 {
                    1
                } else {
                    input.size(2 * cap)
                };
                for _ in 0..n {
                    let got = match who {
                        None => view.try_pop(),
                        Some(p) => view.try_pop_as(p),
                    };
                    if corrupted {
                        match got {
                            Ok(v) => assert!(written(v, serial), "popped {v:#x}, never pushed"),
                            Err(PopError::Empty | PopError::Corrupted(_)) => {}
                            Err(e) => panic!("pop: {e:?}"),
                        }
                    } else {
                        match m.pop_walk() {
                            Walk::Turn => assert_eq!(got, Ok(m.pop(true))),
                            _ => assert_eq!(got, Err(PopError::Empty)),
                        }
                    }
                }
            }
            4 => {
                for v in &views {
                    let (len, empty, vc) = (v.len(), v.is_empty(), v.capacity());
                    assert_eq!(empty, len == 0);
                    assert!(len <= vc, "len {len} above the capacity {vc}");
                    if !corrupted {
                        assert_eq!((len, vc), (m.len(), cap));
                    }
                }
                if !corrupted {
                    for role in [Role::Producer, Role::Consumer] {
                        let got = raw.counter(role).load(Ordering::Relaxed);
                        assert_eq!(got, m.counter(role), "{role:?} counter");
                    }
                    for slot in 0..c {
                        let got = raw.seq(slot).load(Ordering::Relaxed);
                        let want = m.slot_word(slot);
                        assert_eq!(
                            parts(got),
                            parts(want),
                            "sequence word of slot {slot} ({got:#x}, not {want:#x})"
                        );
                    }
                }
            }
            5 => {
                let got = MpmcRing::open(region, 0);
                check_open(&raw, &got);
                if let Ok(v) = got {
                    views[k] = v;
                }
            }
            6 | 8 => {
                let role = if op % OPS == 6 {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let b = input.u8();
                let (id, help) = (b % 8 + 1, b & 8 == 0);
                let got = raw.claim(role, id, help);
                let value = match (role, got) {
                    (Role::Producer, Some(_)) => {
                        serial += 1;
                        (serial - 1) ^ salt
                    }
                    (Role::Consumer, Some(pos)) => raw.value(pos).load(Ordering::Relaxed),
                    (_, None) => 0,
                };
                if !corrupted {
                    let start = m.counter(role);
                    let walk = match role {
                        Role::Producer => m.push_walk(),
                        Role::Consumer => m.pop_walk(),
                    };
                    let want = (walk == Walk::Turn).then_some(match role {
                        Role::Producer => m.enq,
                        Role::Consumer => m.deq,
                    });
                    assert_eq!(got, want, "{role:?} from {start} claims ({walk:?})");
                    match (role, got) {
                        (Role::Producer, Some(_)) => m.push(At::Claimed(id), help),
                        (Role::Consumer, Some(pos)) => {
                            assert_eq!(value, m.pop(help), "value claimed");
                            m.taking.push((pos, id));
                        }
                        (_, None) => {}
                    }
                } else if let (Role::Consumer, Some(_)) = (role, got) {
                    assert!(written(value, serial), "claimed {value:#x}, never pushed");
                }
                if let Some(pos) = got {
                    stalled.of(role).push(Hand {
                        pos,
                        who: id,
                        value,
                        helped: help,
                    });
                }
            }
            7 | 9 => {
                let role = if op % OPS == 7 {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let which = input.u8() as usize;
                let hands = stalled.of(role);
                if !hands.is_empty() {
                    let h = hands.swap_remove(which % hands.len());
                    // It resumes where it stopped: helps its counter past
                    // its claim first if it had not, then hands the slot on.
                    if !h.helped {
                        let next = h.pos.wrapping_add(1);
                        let _ = raw.counter(role).compare_exchange(
                            h.pos,
                            next,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    let done = match role {
                        Role::Producer => {
                            raw.value(h.pos).store(h.value, Ordering::Relaxed);
                            word(h.pos, State::Full, 0)
                        }
                        Role::Consumer => word(h.pos.wrapping_add(c), State::Empty, 0),
                    };
                    raw.seq(h.pos).store(done, Ordering::Release);
                    if !corrupted {
                        if !h.helped {
                            m.late_help(role, h.pos);
                        }
                        match role {
                            Role::Producer => {
                                let i = h.pos.wrapping_sub(m.deq) as usize;
                                assert_eq!(m.q.get(i), Some(&At::Claimed(h.who)), "publishing");
                                m.q[i] = At::Full(h.value);
                            }
                            Role::Consumer => {
                                let i = m.taking.iter().position(|t| *t == (h.pos, h.who));
                                m.taking.swap_remove(i.expect("releasing"));
                            }
                        }
                    }
                }
            }
            10 | 11 => {
                let role = if op % OPS == 10 {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let then = input.u8() % 4;
                let got = match role {
                    Role::Producer => view.stalled_push(),
                    Role::Consumer => view.stalled_pop(),
                };
                if corrupted {
                    if let Some(s) = got {
                        sane_stall(&view, s);
                    }
                } else {
                    let walk = match role {
                        Role::Producer => m.push_walk(),
                        Role::Consumer => m.pop_walk(),
                    };
                    let pos = match role {
                        Role::Producer => m.enq,
                        Role::Consumer => m.deq,
                    };
                    check_stall(&m, got, walk, pos);
                }
                if let Some(s) = got {
                    if then != 2 {
                        // Its holder died: hand its slot on.
                        let dead = stalled.died(s.word());
                        // SAFETY: one thread; the claim is a hand-made
                        // participant's, counted dead from now on and never
                        // completed.
                        let repaired = unsafe { view.repair(s) };
                        if !corrupted {
                            assert!(repaired, "repair of {s:?}");
                            let (role, h) = dead.expect("the holder of a stall is a stalled one");
                            m.repaired(role, h);
                        }
                    }
                    if then >= 2 {
                        if kept.len() == KEPT_STALLS {
                            kept.remove(0);
                        }
                        kept.push(s);
                    }
                }
            }
            12 => {
                let which = input.u8() as usize;
                if !kept.is_empty() {
                    let s = kept[which % kept.len()];
                    // If the slot still holds the claim, its holder counts
                    // as dead from now on.
                    let want = !corrupted && m.slot_word(s.slot() as u64) == s.word();
                    let dead = if want { stalled.died(s.word()) } else { None };
                    // SAFETY: as above.
                    let repaired = unsafe { view.repair(s) };
                    if !corrupted {
                        assert_eq!(repaired, want, "repair of a kept {s:?}");
                        if let Some((role, h)) = dead {
                            m.repaired(role, h);
                        } else {
                            assert!(!want, "the holder of a kept stall is a stalled one");
                        }
                    }
                }
            }
            13 => {
                let b = input.u8();
                let role = if b & 1 == 0 {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let id = [0, 1, 2, 3, 4, 5, 6, 7, 8, 63][(b / 2 % 10) as usize];
                let holder = match role {
                    Role::Producer => Holder::Producer(participant(id)),
                    Role::Consumer => Holder::Consumer(participant(id)),
                };
                // SAFETY: one thread; claims under `holder` are hand-made
                // participants', all counted dead below and never completed.
                let got = unsafe { view.release_claims(holder) };
                assert!(got <= view.capacity(), "released {got} claims");
                // Every claim of that participant's is dead now.
                let hands = stalled.of(role);
                let dead: Vec<Hand> = hands.iter().filter(|h| h.who == id).copied().collect();
                hands.retain(|h| h.who != id);
                if !corrupted {
                    assert_eq!(got, dead.len(), "release_claims({holder:?})");
                    for h in dead {
                        m.repaired(role, h);
                    }
                }
            }
            _ => {
                let target = input.u8();
                let mode = input.u8();
                // A small signed delta, -16..=15, or a shift.
                let arg = input.u8();
                let delta = (arg as i8 >> 3) as i64 as u64;
                let e = raw.counter(Role::Producer).load(Ordering::Relaxed);
                let d = raw.counter(Role::Consumer).load(Ordering::Relaxed);
                let (at, own) = match target % 8 {
                    7 => {
                        let pos = match input.u8() {
                            b if b % 5 == 0 => e,
                            b if b % 5 == 1 => d,
                            b if b % 5 == 2 => e.wrapping_sub(1),
                            b if b % 5 == 3 => d.wrapping_sub(1),
                            b => (b / 5) as u64,
                        };
                        let at = raw.seq(pos);
                        (at, parts(at.load(Ordering::Relaxed)).0)
                    }
                    t => (raw.word(WORDS[t as usize]), e),
                };
                let value = match mode % 8 {
                    0 => input.u64(),
                    1 => e.wrapping_add(delta),
                    2 => d.wrapping_add(delta),
                    3 | 4 => {
                        // A word for a position a lap from -1 to 2 on from
                        // a counter or the slot's own, in any state, naming
                        // nobody, a stalled participant, ANONYMOUS or
                        // anyone; with mode 4 off by `delta`.
                        let x = input.u8();
                        let y = input.u8();
                        let base = [e, d, own][(x % 3) as usize];
                        let laps = (x / 3 % 4) as i64 - 1;
                        let state = [State::Empty, State::Claimed, State::Full, State::Taking]
                            [(x / 12 % 4) as usize];
                        let who = match y % 4 {
                            0 => 0,
                            1 => y / 4 % 8 + 1,
                            2 => 63,
                            _ => y / 4,
                        };
                        let mut pos = base.wrapping_add((laps * c as i64) as u64);
                        if mode % 8 == 4 {
                            pos = pos.wrapping_add(delta);
                        }
                        word(pos, state, who)
                    }
                    5 => at.load(Ordering::Relaxed).wrapping_add(delta),
                    6 => at.load(Ordering::Relaxed) ^ 1 << (arg % 64),
                    _ => 1u64 << (arg % 64),
                };
                at.store(value, Ordering::Relaxed);
                // Values the word already held change nothing, but the
                // model stops here anyway: simpler and stricter.
                corrupted = true;
            }
        }
    }
});
