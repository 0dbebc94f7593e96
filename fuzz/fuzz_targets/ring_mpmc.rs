//! Runs sequences of operations on an MPMC ring of `u64` in an anonymous
//! region, through several views of it (one per participant, used in
//! turn), and checks every result against a model: the two positions, a
//! `VecDeque` of what each position between them holds (a value, or a
//! claim its producer has not published yet) and the positions consumers
//! have claimed but not released. The model predicts exactly what each
//! operation returns and, when asked, every slot's sequence number. Any
//! mismatch panics.
//!
//! Besides the views' `try_push` and `try_pop`, stalled participants
//! follow the protocol by hand on the shared words: a producer that claims
//! a position (the CAS on `enqueue`) and publishes it only later, and a
//! consumer that claims one and releases its slot only later. They make
//! the ring answer `Empty` with values queued behind the claim, and `Full`
//! a lap later, as the module documentation describes. The ring may also
//! start at any position, as if that many values had passed through it,
//! so that positions and sequence numbers wrap.
//!
//! A corruption operation overwrites a header word (`enqueue`, `dequeue`,
//! or a creator's word: magic, capacity, element size, element alignment,
//! slot stride) or a slot's sequence number as a misbehaving peer could,
//! with an arbitrary value or one just around the bounds the ring checks
//! (a position plus a small delta, `2p`, `2p + 1`, `2(p ± capacity)`, a
//! power of two). From then on the model is no longer compared; every
//! operation must still return (no panic, no hang, no access outside the
//! ring) with its usual answers or `Corrupted`: `try_push` `Ok` or `Full`,
//! `try_pop` `Empty` or a value that some push wrote (or a slot's initial
//! zero), `len` at most the view's capacity, `is_empty` agreeing with it.
//! What re-opening the ring returns stays exactly predicted from the
//! header words: it must succeed exactly when they describe a ring of
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
//!      9    1  start position (b % 4): 0, the word below, 2^63 + (word as
//!              i8), or 2^64 + (word as i8), wrapped
//!     10    8  start word, u64 LE
//!     18    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 11; the view used is op byte / 11 % 4): 0 push,
//! 1 pop, 2 push several, 3 pop several, 4 check (`len`/`is_empty`/
//! `capacity` of every view; before a corruption also both positions and
//! every sequence number), 5 re-open the ring into the view, 6 a stalled
//! producer claims a position, 7 one publishes it, 8 a stalled consumer
//! claims a position, 9 one releases it, 10 corrupt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::atomic::{AtomicU64, Ordering};
use shmkit::ring::mpmc::{
    MpmcRing, CAPACITY_OFFSET, DEQUEUE_OFFSET, ELEM_ALIGN_OFFSET, ELEM_SIZE_OFFSET, ENQUEUE_OFFSET,
    HEADER_SIZE, MAGIC_OFFSET, MAX_CAPACITY, MPMC_MAGIC, SLOT_STRIDE_OFFSET,
};
use shmkit::ring::RingError;
use shmkit::{Error, Region};
use shmkit_fuzz::Input;
use std::collections::VecDeque;
use std::sync::OnceLock;

/// Views of the ring, one per simulated participant.
const VIEWS: usize = 4;
/// Bytes per slot of a `u64` ring: `#[repr(C)] { seq: u64, value: u64 }`.
const STRIDE: usize = 16;
/// Offset of the value in a slot.
const VALUE_OFFSET: usize = 8;
/// The header words a corruption picks from (its target 7 is a slot's
/// sequence number instead).
const WORDS: [usize; 7] = [
    ENQUEUE_OFFSET,
    DEQUEUE_OFFSET,
    MAGIC_OFFSET,
    CAPACITY_OFFSET,
    ELEM_SIZE_OFFSET,
    ELEM_ALIGN_OFFSET,
    SLOT_STRIDE_OFFSET,
];

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
    fn enqueue(&self) -> &AtomicU64 {
        self.word(ENQUEUE_OFFSET)
    }
    fn dequeue(&self) -> &AtomicU64 {
        self.word(DEQUEUE_OFFSET)
    }
    /// The sequence number of the slot of position `pos`.
    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.word(HEADER_SIZE + (pos % self.cap) as usize * STRIDE)
    }
    /// The value of the slot of position `pos`.
    fn value(&self, pos: u64) -> &AtomicU64 {
        self.word(HEADER_SIZE + (pos % self.cap) as usize * STRIDE + VALUE_OFFSET)
    }
}

/// What the ring should hold; positions wrap, like the ring's.
struct Model {
    cap: u64,
    /// The next position a push claims.
    enq: u64,
    /// The next position a pop claims.
    deq: u64,
    /// Positions `deq..enq`: a published value, or `None` while the
    /// producer that claimed it has not published.
    q: VecDeque<Option<u64>>,
    /// Positions before `deq` whose consumer has not released the slot.
    popping: Vec<u64>,
}

impl Model {
    /// Whether a push finds the slot of `enq` free: its previous lap
    /// popped and released.
    fn can_push(&self) -> bool {
        self.q.len() < self.cap as usize && !self.popping.contains(&self.enq.wrapping_sub(self.cap))
    }
    fn push(&mut self, value: Option<u64>) {
        self.q.push_back(value);
        self.enq = self.enq.wrapping_add(1);
    }
    /// What a pop finds at `deq`: a published value, or nothing.
    fn front(&self) -> Option<u64> {
        self.q.front().copied().flatten()
    }
    fn pop(&mut self) -> u64 {
        self.deq = self.deq.wrapping_add(1);
        self.q.pop_front().flatten().expect("a published value")
    }
    /// The sequence number of `slot`, from the position that last reached
    /// it: the one in `enq - cap .. enq`.
    fn seq(&self, slot: u64) -> u64 {
        let lap = self.enq.wrapping_sub(self.cap);
        let pos = lap.wrapping_add(slot.wrapping_sub(lap) % self.cap);
        let i = pos.wrapping_sub(self.deq);
        if i < self.q.len() as u64 {
            let published = self.q[i as usize].is_some();
            pos.wrapping_mul(2).wrapping_add(published.into())
        } else if self.popping.contains(&pos) {
            pos.wrapping_mul(2).wrapping_add(1)
        } else {
            pos.wrapping_add(self.cap).wrapping_mul(2)
        }
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
    let start = match start_mode % 4 {
        0 => 0,
        1 => start_word,
        2 => (1u64 << 63).wrapping_add(start_word as i8 as u64),
        _ => start_word as i8 as u64,
    };

    let bytes = MpmcRing::<u64>::bytes_for(cap).unwrap();
    assert_eq!(bytes, HEADER_SIZE + cap * STRIDE);
    // One region per capacity for the whole run (creating a memfd region
    // costs more than most inputs), zeroed each time: as good as new.
    static REGIONS: [OnceLock<Region>; 7] = [const { OnceLock::new() }; 7];
    let region =
        REGIONS[cap.trailing_zeros() as usize].get_or_init(|| Region::anonymous(bytes).unwrap());
    region.write_bytes(0, &vec![0; bytes]).unwrap();
    let ring = MpmcRing::<u64>::create(region, 0, cap).unwrap();
    let raw = Raw {
        region,
        cap: cap as u64,
    };
    assert_eq!(
        raw.word(SLOT_STRIDE_OFFSET).load(Ordering::Relaxed),
        STRIDE as u64
    );
    if start != 0 {
        // The state `start` pushes and pops leave: every slot awaits the
        // producer of its position in the lap from `start` on.
        raw.enqueue().store(start, Ordering::Relaxed);
        raw.dequeue().store(start, Ordering::Relaxed);
        for slot in 0..cap as u64 {
            let pos = start.wrapping_add(slot.wrapping_sub(start) % cap as u64);
            raw.seq(slot).store(pos.wrapping_mul(2), Ordering::Relaxed);
        }
    }
    let mut views = [ring; VIEWS];
    for view in &mut views[1..] {
        let got = MpmcRing::open(region, 0);
        check_open(&raw, &got);
        *view = got.unwrap();
    }
    let mut m = Model {
        cap: cap as u64,
        enq: start,
        deq: start,
        q: VecDeque::new(),
        popping: Vec::new(),
    };
    // Participants stalled mid-operation: (position, value) claimed by a
    // producer, positions claimed by a consumer.
    let mut producers: Vec<(u64, u64)> = Vec::new();
    let mut consumers: Vec<u64> = Vec::new();
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
        let k = (op / 11) as usize % VIEWS;
        let view = views[k];
        match op % 11 {
            0 | 2 => {
                let n = if op % 11 == 0 { 1 } else { input.size(2 * cap) };
                for _ in 0..n {
                    let v = serial ^ salt;
                    serial += 1;
                    let got = view.try_push(v);
                    if corrupted {
                        assert!(
                            matches!(got, Ok(()) | Err(RingError::Full | RingError::Corrupted(_))),
                            "{got:?}"
                        );
                    } else if m.can_push() {
                        assert_eq!(got, Ok(()));
                        m.push(Some(v));
                    } else {
                        assert_eq!(got, Err(RingError::Full));
                    }
                }
            }
            1 | 3 => {
                let n = if op % 11 == 1 { 1 } else { input.size(2 * cap) };
                for _ in 0..n {
                    let got = view.try_pop();
                    if corrupted {
                        match got {
                            Ok(v) => assert!(written(v, serial), "popped {v:#x}, never pushed"),
                            Err(RingError::Empty | RingError::Corrupted(_)) => {}
                            Err(e) => panic!("pop: {e:?}"),
                        }
                    } else {
                        let want = m.front().ok_or(RingError::Empty);
                        assert_eq!(got, want);
                        if want.is_ok() {
                            m.pop();
                        }
                    }
                }
            }
            4 => {
                for v in &views {
                    let (len, empty, c) = (v.len(), v.is_empty(), v.capacity());
                    assert_eq!(empty, len == 0);
                    assert!(len <= c, "len {len} above the capacity {c}");
                    if !corrupted {
                        assert_eq!((len, c), (m.q.len(), cap));
                    }
                }
                if !corrupted {
                    assert_eq!(raw.enqueue().load(Ordering::Relaxed), m.enq, "enqueue");
                    assert_eq!(raw.dequeue().load(Ordering::Relaxed), m.deq, "dequeue");
                    for slot in 0..cap as u64 {
                        let seq = raw.seq(slot).load(Ordering::Relaxed);
                        assert_eq!(seq, m.seq(slot), "sequence number of slot {slot}");
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
            6 => {
                // A producer claims the next position, as `try_push` does,
                // and stops before publishing it.
                let e = raw.enqueue().load(Ordering::Acquire);
                let free = raw.seq(e).load(Ordering::Acquire) == e.wrapping_mul(2);
                let claimed = free
                    && raw
                        .enqueue()
                        .compare_exchange(e, e.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                if claimed {
                    producers.push((e, serial ^ salt));
                    serial += 1;
                }
                if !corrupted {
                    assert_eq!(e, m.enq);
                    assert_eq!(claimed, m.can_push());
                    if claimed {
                        m.push(None);
                    }
                }
            }
            7 => {
                let which = input.u8() as usize;
                if !producers.is_empty() {
                    let (pos, v) = producers.swap_remove(which % producers.len());
                    raw.value(pos).store(v, Ordering::Relaxed);
                    raw.seq(pos)
                        .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::Release);
                    if !corrupted {
                        let i = pos.wrapping_sub(m.deq) as usize;
                        assert_eq!(m.q.get(i), Some(&None), "publishing {pos}");
                        m.q[i] = Some(v);
                    }
                }
            }
            8 => {
                // A consumer claims the next position and copies its value,
                // as `try_pop` does, and stops before releasing the slot.
                let d = raw.dequeue().load(Ordering::Acquire);
                let full = raw.seq(d).load(Ordering::Acquire) == d.wrapping_mul(2).wrapping_add(1);
                let claimed = full
                    && raw
                        .dequeue()
                        .compare_exchange(d, d.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                if claimed {
                    let v = raw.value(d).load(Ordering::Relaxed);
                    consumers.push(d);
                    if corrupted {
                        assert!(written(v, serial), "claimed {v:#x}, never pushed");
                    } else {
                        assert_eq!(Some(v), m.front());
                    }
                }
                if !corrupted {
                    assert_eq!(d, m.deq);
                    assert_eq!(claimed, m.front().is_some());
                    if claimed {
                        m.pop();
                        m.popping.push(d);
                    }
                }
            }
            9 => {
                let which = input.u8() as usize;
                if !consumers.is_empty() {
                    let pos = consumers.swap_remove(which % consumers.len());
                    raw.seq(pos).store(
                        pos.wrapping_add(cap as u64).wrapping_mul(2),
                        Ordering::Release,
                    );
                    if !corrupted {
                        let i = m.popping.iter().position(|&p| p == pos).expect("claimed");
                        m.popping.swap_remove(i);
                    }
                }
            }
            _ => {
                let target = input.u8();
                let mode = input.u8();
                // A small signed delta, -16..=15, or a shift.
                let arg = input.u8();
                let delta = (arg as i8 >> 3) as i64 as u64;
                let e = raw.enqueue().load(Ordering::Relaxed);
                let d = raw.dequeue().load(Ordering::Relaxed);
                let word = match target % 8 {
                    7 => {
                        let slot = match input.u8() {
                            b if b % 5 == 0 => e,
                            b if b % 5 == 1 => d,
                            b if b % 5 == 2 => e.wrapping_sub(1),
                            b if b % 5 == 3 => d.wrapping_sub(1),
                            b => (b / 5) as u64,
                        };
                        raw.seq(slot)
                    }
                    t => raw.word(WORDS[t as usize]),
                };
                let c = cap as u64;
                let value = match mode % 11 {
                    0 => input.u64(),
                    1 => e,
                    2 => d,
                    3 => e.wrapping_mul(2),
                    4 => d.wrapping_mul(2).wrapping_add(1),
                    5 => e.wrapping_add(c).wrapping_mul(2),
                    6 => d.wrapping_add(c).wrapping_mul(2).wrapping_add(1),
                    7 => e.wrapping_sub(c).wrapping_mul(2),
                    8 => d.wrapping_sub(c).wrapping_mul(2).wrapping_add(1),
                    9 => word.load(Ordering::Relaxed),
                    _ => 1u64 << (arg % 64),
                };
                let value = if mode % 11 == 10 {
                    value
                } else {
                    value.wrapping_add(delta)
                };
                word.store(value, Ordering::Relaxed);
                // Values the word already held change nothing, but the
                // model stops here anyway: simpler and stricter.
                corrupted = true;
            }
        }
    }
});
