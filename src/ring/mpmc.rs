//! [`MpmcRing`]: a bounded queue of `T: Pod` values for any number of
//! producers and consumers, threads or processes, through shared memory.
//!
//! The algorithm is Dmitry Vyukov's "Bounded MPMC queue" (1024cores.net,
//! <https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>);
//! crossbeam's `ArrayQueue` is the Rust rendering to compare with. Each
//! slot carries a sequence number that says whose turn it is; a producer
//! claims a position with one CAS on `enqueue`, writes the value, then
//! hands the slot to the consumer of that position by storing its sequence
//! number; consumers do the mirror image on `dequeue`. There is no lock and
//! no system call.
//!
//! # Layout
//!
//! At a 128-byte-aligned `offset` in the region's data:
//!
//! ```text
//! offset  field        written by              meaning
//!      0  magic        creator, once           MPMC_MAGIC (b"shmkMPMC", LE)
//!      8  capacity     creator, once           slots; a power of two, 1 ..= MAX_CAPACITY
//!     16  elem_size    creator, once           size_of::<T>()
//!     24  elem_align   creator, once           align_of::<T>(), at most 128
//!     32  slot_stride  creator, once           size_of of one slot (below)
//!    128  enqueue      producers (CAS)         next position a push claims
//!    256  dequeue      consumers (CAS)         next position a pop claims
//!    384  slots        see below               capacity slots, slot_stride apart
//! ```
//!
//! The constants [`MAGIC_OFFSET`], [`CAPACITY_OFFSET`], [`ELEM_SIZE_OFFSET`],
//! [`ELEM_ALIGN_OFFSET`], [`SLOT_STRIDE_OFFSET`], [`ENQUEUE_OFFSET`],
//! [`DEQUEUE_OFFSET`] and [`HEADER_SIZE`] name these positions, and
//! [`MPMC_MAGIC`] the magic word.
//!
//! Positions are `u64` counters that only grow (all arithmetic on them and
//! on sequence numbers wraps); position `p` lives in slot `p % capacity`. A slot is a
//! `#[repr(C)]` pair `{ seq: u64, value: T }` (`value` at offset 8, or at
//! `align_of::<T>()` if that is larger). Its sequence number counts half
//! steps, so that the states of consecutive laps never coincide, even with
//! one slot:
//!
//! ```text
//! seq of slot p % capacity   state
//! 2p                         empty: awaits the producer of position p
//! 2p + 1                     full: holds position p's value, awaits its consumer
//! 2(p + capacity)            consumed: awaits the producer of the next lap
//! ```
//!
//! Vyukov's original stores `p` and `p + 1`, which makes "full at p" and
//! "empty for p + 1" the same number when the capacity is 1; doubling is the
//! only change, and lets a one-slot ring work.
//!
//! # Untrusted memory
//!
//! Positions and sequence numbers live where any peer can write, so every
//! value is checked before it is believed, against what a correct peer can
//! leave there. A producer at position `p` (loaded with `Acquire`, which
//! makes every earlier lap's hand-over visible) legitimately finds
//! `seq - 2p` to be:
//!
//! ```text
//! seq - 2p                      meaning                                 result
//! 0                             its turn                                claim p (CAS)
//! -2cap + 1                     a lap earlier: full, not yet consumed   Full
//! -2cap                         a lap earlier: claimed, not published   Full
//! > 0, with seq - 2e <= 2cap-2  p was stale: others claimed it; e is    retry at e
//!   for e = enqueue reloaded,   the reloaded position, e > p
//!   e > p
//! anything else                 no correct participant writes it        Corrupted
//! ```
//!
//! and a consumer at `p` finds `seq - (2p + 1)` to be 0 (claim), `-1`
//! (producer not done: `Empty`), `-2cap` (previous lap's consumer not done:
//! `Empty`), positive within the same window over a reloaded `dequeue`
//! (stale: retry), anything else `Corrupted`. A position that moves
//! backwards, or a slot that claims to be ahead of a position nobody moved,
//! is `Corrupted` too. Every retry is caused by a position that moved, so a
//! corrupted value that can never become valid ends in `Corrupted` within
//! one or two steps; a peer that keeps moving the positions (or
//! overwhelming contention) can only keep an operation retrying for
//! [`RETRY_LIMIT`] steps, after which it gives up with `Full` or `Empty`,
//! as a `try_` operation may. Slot indices are `p % capacity` with the
//! capacity the view checked when it was opened, so no value a peer writes
//! can make an access leave the ring. A peer that writes a plausible but
//! wrong value can still lose, duplicate or tear `T` values (any bytes are
//! a valid `T: Pod`); it cannot make this process access memory outside
//! the ring, panic, or hang.
//!
//! # A participant that stops mid-operation
//!
//! A push is two steps, claiming position `p` (the CAS on `enqueue`) and
//! publishing it (the store of `2p + 1`); a pop likewise claims, then
//! releases the slot. A producer killed, or merely descheduled, between its
//! two steps leaves slot `p` claimed but unpublished: consumers that reach
//! position `p` get `Empty`, even if later positions already hold values,
//! and producers a lap later get `Full` at that slot. A consumer stopped
//! between its steps blocks producers the same way, a lap later. This is a
//! known property of Vyukov's queue (and of crossbeam's `ArrayQueue`): it
//! is not lock-free in the strict sense, one stalled participant can stop
//! the others' progress. A slow participant unblocks the ring when it
//! resumes; a dead one wedges it for good.
//!
//! The ring does not try to repair that. It does not record who claimed a
//! position, and it cannot tell a dead claimant from a slow one; publishing
//! or releasing a slot on a claimant's behalf would race with a claimant
//! that is only slow, and could deliver a torn value or lose or duplicate
//! one. What it guarantees is that nobody hangs: operations are `try_`,
//! and a wedged ring answers `Empty` and `Full` (while [`MpmcRing::len`]
//! shows items that cannot be popped). Recovering is for a layer that
//! knows which participants are alive: when all who could hold a claim are
//! known dead, it can drain what is reachable and create a new ring.
//!
//! # Memory ordering
//!
//! The value is written after an `Acquire` load that saw the slot handed
//! to this producer and before the `Release` store that hands it on, and
//! read symmetrically, so the slot's value never has two correct users at
//! once. Positions are loaded with `Acquire` and claimed with `AcqRel`:
//! not needed for the values, but it makes a position's load carry every
//! earlier hand-over of its slot, which is what lets a sequence number
//! behind the legitimate window count as corruption rather than as a stale
//! read. With Vyukov's (and crossbeam's) relaxed positions, the
//! one-producer, two-consumer loom model below does find a consumer that
//! reads such a stale sequence number and would report a healthy ring
//! corrupted. On x86 the stronger orderings cost nothing: the loads are
//! plain loads and the CAS is a locked instruction either way. The loom
//! models also check delivery exactly once and per-producer order.

use super::{RingError, Slot};
use crate::error::{Error, Result};
#[cfg(not(shmkit_loom))]
use crate::primitive::spin_loop;
use crate::primitive::{AtomicU64, Ordering};
use crate::region::{Region, ShmSafe};
use bytemuck::Pod;
use core::fmt;
use core::mem::{align_of, size_of};

/// The largest capacity a ring may have (2^32 slots).
pub const MAX_CAPACITY: usize = 1 << 32;

/// How many times one operation retries after losing a race (or finding a
/// stale position) before it gives up with `Full` or `Empty`.
pub const RETRY_LIMIT: u32 = 1 << 10;

/// The magic word of an MPMC ring header, `b"shmkMPMC"` read as a
/// little-endian `u64`: the ring's kind and format; a new format gets a
/// new one.
pub const MPMC_MAGIC: u64 = u64::from_le_bytes(*b"shmkMPMC");
/// Offset of the magic word (`u64`) in the header.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the capacity (`u64`) in the header.
pub const CAPACITY_OFFSET: usize = 8;
/// Offset of the element size (`u64`) in the header.
pub const ELEM_SIZE_OFFSET: usize = 16;
/// Offset of the element alignment (`u64`) in the header.
pub const ELEM_ALIGN_OFFSET: usize = 24;
/// Offset of the slot stride (`u64`) in the header.
pub const SLOT_STRIDE_OFFSET: usize = 32;
/// Offset of `enqueue` (`u64`, the next position a push claims) in the
/// header.
pub const ENQUEUE_OFFSET: usize = 128;
/// Offset of `dequeue` (`u64`, the next position a pop claims) in the
/// header.
pub const DEQUEUE_OFFSET: usize = 256;
/// Bytes from the ring's offset to its first slot: the size of the header.
pub const HEADER_SIZE: usize = 384;

/// The alignment of the header, and the most an element may need.
const LINE: usize = 128;

/// Backoff after a lost CAS spins at most `2^SPIN_SHIFT` times.
#[cfg(not(shmkit_loom))]
const SPIN_SHIFT: u32 = 6;

/// A position counter alone on its 128-byte line (two 64-byte lines, as
/// adjacent-line prefetchers pair them).
#[repr(C, align(128))]
#[derive(Debug)]
struct Line(AtomicU64);

/// The ring's header; see the [module documentation](self) for the layout.
#[repr(C, align(128))]
#[derive(Debug)]
struct MpmcHeader {
    magic: AtomicU64,
    capacity: AtomicU64,
    elem_size: AtomicU64,
    elem_align: AtomicU64,
    slot_stride: AtomicU64,
    /// Next position a push claims; only grows.
    enqueue: Line,
    /// Next position a pop claims; only grows, never past `enqueue`.
    dequeue: Line,
}

// SAFETY: repr(C), only u64 atomics (and padding nobody reads): any bytes
// are a valid header, zero is the (invalid, refused by `open`) initial
// value, no pointers, no Drop.
unsafe impl ShmSafe for MpmcHeader {}

impl MpmcHeader {
    /// An all-zero header, for the heap-backed ring.
    fn zeroed() -> Self {
        Self {
            magic: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            elem_size: AtomicU64::new(0),
            elem_align: AtomicU64::new(0),
            slot_stride: AtomicU64::new(0),
            enqueue: Line(AtomicU64::new(0)),
            dequeue: Line(AtomicU64::new(0)),
        }
    }
}

/// One slot: whose turn it is, and the value.
#[repr(C)]
#[derive(Debug)]
struct MpmcSlot<T: Pod> {
    /// `2p`: empty, awaits the producer of `p`; `2p + 1`: full.
    seq: AtomicU64,
    value: Slot<T>,
}

// SAFETY: repr(C) of a u64 atomic and a `Slot<T>` (itself ShmSafe for
// `T: Pod + Send`): any bytes valid, zero valid, no pointers, no Drop; the
// value is only accessed by copy under the sequence protocol.
unsafe impl<T: Pod + Send> ShmSafe for MpmcSlot<T> {}

#[cfg(not(shmkit_loom))]
const _: () = {
    assert!(size_of::<MpmcHeader>() == HEADER_SIZE);
    assert!(align_of::<MpmcHeader>() == LINE);
    assert!(core::mem::offset_of!(MpmcHeader, magic) == MAGIC_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, capacity) == CAPACITY_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, elem_size) == ELEM_SIZE_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, elem_align) == ELEM_ALIGN_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, slot_stride) == SLOT_STRIDE_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, enqueue) == ENQUEUE_OFFSET);
    assert!(core::mem::offset_of!(MpmcHeader, dequeue) == DEQUEUE_OFFSET);
    assert!(core::mem::offset_of!(MpmcSlot<u64>, seq) == 0);
    assert!(core::mem::offset_of!(MpmcSlot<u64>, value) == 8);
    assert!(size_of::<MpmcSlot<u64>>() == 16);
    assert!(size_of::<MpmcSlot<u8>>() == 16);
    assert!(size_of::<MpmcSlot<[u64; 3]>>() == 32);
};

/// `a - b` as a signed distance between two wrapping counters.
#[inline]
fn dist(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// Spins a little longer each time after a lost race (not under loom,
/// where a spin is a yield and only multiplies the schedules to explore).
#[inline]
fn backoff(step: &mut u32) {
    #[cfg(not(shmkit_loom))]
    for _ in 0..1u32 << (*step).min(SPIN_SHIFT) {
        spin_loop();
    }
    *step += 1;
}

/// Checks that `T` fits a slot.
fn check_element<T>() -> Result<()> {
    if align_of::<T>() > LINE {
        return Err(Error::InvalidSize {
            size: align_of::<T>() as u64,
            reason: "ring elements may need an alignment of at most 128",
        });
    }
    Ok(())
}

/// Checks a capacity given to `create`/`bytes_for`.
fn check_capacity(capacity: usize) -> Result<()> {
    if !capacity.is_power_of_two() {
        return Err(Error::InvalidSize {
            size: capacity as u64,
            reason: "an MPMC ring's capacity must be a power of two (and not 0)",
        });
    }
    if capacity > MAX_CAPACITY {
        return Err(Error::InvalidSize {
            size: capacity as u64,
            reason: "an MPMC ring's capacity may be at most 2^32",
        });
    }
    Ok(())
}

/// Where the slots start, for a ring at `offset`.
fn slots_offset(region: &Region, offset: usize) -> Result<usize> {
    offset.checked_add(HEADER_SIZE).ok_or(Error::OutOfBounds {
        offset,
        size: HEADER_SIZE,
        len: region.len(),
    })
}

/// A view of a bounded MPMC ring of `T` values: in a [`Region`], or on the
/// heap ([`HeapMpmc`]). Any number of threads and processes push and pop
/// through their own views of the same ring at once; the view is `Copy`,
/// `Send` and `Sync`.
///
/// ```
/// use shmkit::ring::mpmc::MpmcRing;
/// use shmkit::ring::RingError;
/// use shmkit::{LayoutId, RegionOptions};
///
/// let bytes = MpmcRing::<u64>::bytes_for(8)?;
/// let region = RegionOptions::new()
///     .size(bytes)
///     .layout(LayoutId::named("jobs", 1))
///     .anonymous_with(|r| MpmcRing::<u64>::create(r, 0, 8).map(drop))?;
/// // Every participant (here the creator again) opens a view:
/// let ring = MpmcRing::<u64>::open(&region, 0)?;
/// std::thread::scope(|s| {
///     for t in 0..2u64 {
///         s.spawn(move || {
///             for i in 0..100 {
///                 while ring.try_push(t << 32 | i) == Err(RingError::Full) {
///                     std::thread::yield_now();
///                 }
///             }
///         });
///     }
///     let mut got = 0;
///     while got < 200 {
///         match ring.try_pop() {
///             Ok(_) => got += 1,
///             Err(RingError::Empty) => std::thread::yield_now(),
///             Err(e) => panic!("{e}"),
///         }
///     }
/// });
/// assert!(ring.is_empty());
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct MpmcRing<'a, T: Pod> {
    header: &'a MpmcHeader,
    /// Exactly `capacity` slots, checked once: every index is `pos & mask`
    /// with `mask = slots.len() - 1`.
    slots: &'a [MpmcSlot<T>],
}

impl<T: Pod> Clone for MpmcRing<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for MpmcRing<'_, T> {}

impl<'a, T: Pod + Send> MpmcRing<'a, T> {
    /// How many region data bytes a ring of `capacity` `T`s needs at a
    /// 128-byte-aligned offset: the 384-byte header and the slots.
    ///
    /// Fails with [`Error::InvalidSize`] if `capacity` is not a power of two
    /// in `1..=MAX_CAPACITY`, or `T` needs an alignment above 128.
    pub fn bytes_for(capacity: usize) -> Result<usize> {
        check_element::<T>()?;
        check_capacity(capacity)?;
        capacity
            .checked_mul(size_of::<MpmcSlot<T>>())
            .and_then(|s| s.checked_add(HEADER_SIZE))
            .filter(|b| *b <= isize::MAX as usize)
            .ok_or(Error::InvalidSize {
                size: capacity as u64,
                reason: "an MPMC ring of this capacity is too large",
            })
    }

    /// Lays out an empty ring of `capacity` at `offset` in `region`'s data
    /// (128-byte aligned; [`bytes_for`](Self::bytes_for) bytes) and returns
    /// a view of it.
    ///
    /// Meant for an init closure of
    /// [`RegionOptions::create_with`](crate::RegionOptions::create_with) or
    /// [`anonymous_with`](crate::RegionOptions::anonymous_with): the memory
    /// must not be in use by anyone yet (creating over a live ring resets
    /// it under its users, who may then lose or duplicate values).
    pub fn create(region: &'a Region, offset: usize, capacity: usize) -> Result<Self> {
        Self::bytes_for(capacity)?;
        let header = region.place::<MpmcHeader>(offset)?;
        let slots = region.place_slice::<MpmcSlot<T>>(slots_offset(region, offset)?, capacity)?;
        init(header, slots);
        Ok(Self { header, slots })
    }

    /// A view of the ring a creator laid out at `offset` in `region`,
    /// after checking its header.
    ///
    /// Fails with [`Error::Corrupted`] if there is no ring there (zeroed
    /// memory included) or its header is inconsistent, with
    /// [`Error::LayoutMismatch`] if it holds elements of another size or
    /// alignment than `T` (`found` and `expected` are then
    /// `size << 32 | align`), and with the region's placement errors
    /// ([`Error::Misaligned`], [`Error::OutOfBounds`]) if the ring does not
    /// fit the region where it claims to be.
    ///
    /// The capacity is read once here; the view never reads it again, so
    /// a peer that overwrites the header later cannot make this view reach
    /// outside its slots.
    pub fn open(region: &'a Region, offset: usize) -> Result<Self> {
        check_element::<T>()?;
        let header = region.place::<MpmcHeader>(offset)?;
        if header.magic.load(Ordering::Acquire) != MPMC_MAGIC {
            return Err(Error::Corrupted {
                what: "no MPMC ring at this offset (magic)",
            });
        }
        let size = header.elem_size.load(Ordering::Relaxed);
        let align = header.elem_align.load(Ordering::Relaxed);
        if (size, align) != (size_of::<T>() as u64, align_of::<T>() as u64) {
            return Err(Error::LayoutMismatch {
                found: size << 32 | align,
                expected: (size_of::<T>() as u64) << 32 | align_of::<T>() as u64,
            });
        }
        if header.slot_stride.load(Ordering::Relaxed) != size_of::<MpmcSlot<T>>() as u64 {
            return Err(Error::Corrupted {
                what: "MPMC ring slot stride",
            });
        }
        let capacity = usize::try_from(header.capacity.load(Ordering::Relaxed))
            .ok()
            .filter(|c| check_capacity(*c).is_ok())
            .ok_or(Error::Corrupted {
                what: "MPMC ring capacity",
            })?;
        let slots = region.place_slice::<MpmcSlot<T>>(slots_offset(region, offset)?, capacity)?;
        Ok(Self { header, slots })
    }

    /// Pushes `value`, or pushes nothing and fails with:
    /// - [`RingError::Full`]: no free slot at the next position (or, after
    ///   [`RETRY_LIMIT`] lost races in a row, too much contention: retry as
    ///   for a full ring);
    /// - [`RingError::Corrupted`]: the positions or sequence numbers hold
    ///   values no correct participant writes.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), RingError> {
        let cap = self.slots.len() as u64;
        let lap = 2 * cap as i64;
        let enqueue = &self.header.enqueue.0;
        let mut pos = enqueue.load(Ordering::Acquire);
        let mut step = 0;
        for _ in 0..RETRY_LIMIT {
            let slot = &self.slots[(pos & (cap - 1)) as usize];
            let turn = turn_of_push(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let d = dist(seq, turn);
            if d == 0 {
                match enqueue.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this producer the only one
                        // that claimed position `pos`, and `seq == 2 pos`
                        // (Acquire) says its previous consumer has finished
                        // reading; no correct participant touches the value
                        // until the store below hands it on. (A peer that
                        // breaks the protocol can only race on this `T:
                        // Pod` inside our own slot: a torn value, still a
                        // valid `T`.)
                        unsafe { slot.value.write(value) };
                        slot.seq.store(turn.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => {
                        pos = moved(pos, now, "MPMC enqueue position moved backwards")?;
                        backoff(&mut step);
                    }
                }
            } else if d == -lap || d == 1 - lap {
                return Err(RingError::Full);
            } else if d < 0 {
                return Err(RingError::Corrupted(
                    "MPMC slot sequence behind the enqueue position",
                ));
            } else {
                pos = self.reload(enqueue, pos, seq, turn_of_push)?;
            }
        }
        Err(RingError::Full)
    }

    /// Pops the oldest value, or pops nothing and fails with:
    /// - [`RingError::Empty`]: no published value at the next position
    ///   (also when its producer has claimed it but not finished, see the
    ///   [module documentation](self); or, after [`RETRY_LIMIT`] lost
    ///   races in a row, too much contention: retry as for an empty ring);
    /// - [`RingError::Corrupted`]: the positions or sequence numbers hold
    ///   values no correct participant writes.
    #[inline]
    pub fn try_pop(&self) -> Result<T, RingError> {
        let cap = self.slots.len() as u64;
        let lap = 2 * cap as i64;
        let dequeue = &self.header.dequeue.0;
        let mut pos = dequeue.load(Ordering::Acquire);
        let mut step = 0;
        for _ in 0..RETRY_LIMIT {
            let slot = &self.slots[(pos & (cap - 1)) as usize];
            let turn = turn_of_pop(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let d = dist(seq, turn);
            if d == 0 {
                match dequeue.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this consumer the only one
                        // that claimed position `pos`, and `seq == 2 pos + 1`
                        // (Acquire) says its producer has finished writing;
                        // no correct participant writes the value until the
                        // store below hands the slot on (a protocol-breaking
                        // peer can only make the copy torn, still a `T`).
                        let value = unsafe { slot.value.read() };
                        slot.seq
                            .store(pos.wrapping_add(cap).wrapping_mul(2), Ordering::Release);
                        return Ok(value);
                    }
                    Err(now) => {
                        pos = moved(pos, now, "MPMC dequeue position moved backwards")?;
                        backoff(&mut step);
                    }
                }
            } else if d == -1 || d == -lap {
                return Err(RingError::Empty);
            } else if d < 0 {
                return Err(RingError::Corrupted(
                    "MPMC slot sequence behind the dequeue position",
                ));
            } else {
                pos = self.reload(dequeue, pos, seq, turn_of_pop)?;
            }
        }
        Err(RingError::Empty)
    }

    /// The slow path of both operations: `seq` is ahead of the turn of
    /// `pos`, so `pos` should be stale. Reloads the position and checks
    /// that it moved forward and that `seq` is within the window a correct
    /// ring allows beyond it (at most one lap less a step).
    #[cold]
    fn reload(
        &self,
        counter: &AtomicU64,
        pos: u64,
        seq: u64,
        turn: fn(u64) -> u64,
    ) -> Result<u64, RingError> {
        let lap = 2 * self.slots.len() as i64;
        let now = counter.load(Ordering::Acquire);
        if dist(now, pos) <= 0 || dist(seq, turn(now)) > lap - 2 {
            return Err(RingError::Corrupted(
                "MPMC slot sequence ahead of its position",
            ));
        }
        Ok(now)
    }

    /// The number of values in the ring, as a snapshot that may be stale by
    /// the time it returns; values claimed by a push or a pop that has not
    /// finished count as present. Clamped to `0..=capacity` whatever the
    /// positions hold.
    pub fn len(&self) -> usize {
        let head = self.header.dequeue.0.load(Ordering::Acquire);
        let tail = self.header.enqueue.0.load(Ordering::Acquire);
        dist(tail, head).clamp(0, self.slots.len() as i64) as usize
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many values the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// The sequence number that makes slot `pos % capacity` a producer's.
#[inline]
fn turn_of_push(pos: u64) -> u64 {
    pos.wrapping_mul(2)
}

/// The sequence number that makes slot `pos % capacity` a consumer's.
#[inline]
fn turn_of_pop(pos: u64) -> u64 {
    pos.wrapping_mul(2).wrapping_add(1)
}

/// The position a failed CAS found, which must not be behind `pos`.
#[inline]
fn moved(pos: u64, now: u64, what: &'static str) -> Result<u64, RingError> {
    if dist(now, pos) < 0 {
        return Err(RingError::Corrupted(what));
    }
    Ok(now)
}

/// Writes an empty ring's header and sequence numbers; the magic last.
fn init<T: Pod>(header: &MpmcHeader, slots: &[MpmcSlot<T>]) {
    header.capacity.store(slots.len() as u64, Ordering::Relaxed);
    header
        .elem_size
        .store(size_of::<T>() as u64, Ordering::Relaxed);
    header
        .elem_align
        .store(align_of::<T>() as u64, Ordering::Relaxed);
    header
        .slot_stride
        .store(size_of::<MpmcSlot<T>>() as u64, Ordering::Relaxed);
    header.enqueue.0.store(0, Ordering::Relaxed);
    header.dequeue.0.store(0, Ordering::Relaxed);
    for (i, slot) in slots.iter().enumerate() {
        slot.seq.store(turn_of_push(i as u64), Ordering::Relaxed);
    }
    header.magic.store(MPMC_MAGIC, Ordering::Release);
}

impl<T: Pod + Send> fmt::Debug for MpmcRing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcRing")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

/// An MPMC ring on the heap, for threads of one process, unit tests and
/// loom models; [`ring`](Self::ring) gives the same [`MpmcRing`] view a
/// region does.
///
/// ```
/// use shmkit::ring::mpmc::HeapMpmc;
/// use shmkit::ring::RingError;
///
/// let heap = HeapMpmc::<[u8; 4]>::new(2)?;
/// let ring = heap.ring();
/// ring.try_push(*b"ping")?;
/// ring.try_push(*b"pong")?;
/// assert_eq!(ring.try_push(*b"full"), Err(RingError::Full));
/// assert_eq!(ring.try_pop()?, *b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HeapMpmc<T: Pod> {
    header: Box<MpmcHeader>,
    slots: Box<[MpmcSlot<T>]>,
}

impl<T: Pod + Send> HeapMpmc<T> {
    /// An empty ring of `capacity` slots (a power of two in
    /// `1..=MAX_CAPACITY`, else [`Error::InvalidSize`]).
    pub fn new(capacity: usize) -> Result<Self> {
        check_element::<T>()?;
        check_capacity(capacity)?;
        let header = Box::new(MpmcHeader::zeroed());
        let slots: Box<[MpmcSlot<T>]> = (0..capacity)
            .map(|_| MpmcSlot {
                seq: AtomicU64::new(0),
                value: Slot::new(T::zeroed()),
            })
            .collect();
        init(&header, &slots);
        Ok(Self { header, slots })
    }

    /// A view of the ring.
    pub fn ring(&self) -> MpmcRing<'_, T> {
        MpmcRing {
            header: &self.header,
            slots: &self.slots,
        }
    }
}

impl<T: Pod + Send> fmt::Debug for HeapMpmc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeapMpmc").field(&self.ring()).finish()
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    //! Two shapes at capacity 2 (so the positions wrap): two producers and
    //! one consumer, one producer and two consumers. Each checks that every
    //! value pushed arrives exactly once and that each consumer sees each
    //! producer's values in push order; loom checks the slot accesses for
    //! data races.
    //!
    //! Participants give up after a few `Full`/`Empty` answers in a row
    //! (two spinning threads could otherwise starve the third forever in
    //! loom's schedules); a producer that gives up pushes nothing more, and
    //! after every thread has joined, the main thread drains what is left,
    //! which must be exactly what was pushed and not yet popped.
    use super::*;
    use crate::primitive::spin_loop;
    use std::sync::Arc;

    /// `Full`/`Empty` answers in a row before a participant gives up.
    const PATIENCE: u32 = 1;

    /// Pushes `producer << 8 | i` for `i` in `0..count`; returns how many.
    fn push_some(ring: MpmcRing<'_, u64>, producer: u64, count: u64) -> u64 {
        for i in 0..count {
            let mut refused = 0;
            loop {
                match ring.try_push(producer << 8 | i) {
                    Ok(()) => break,
                    Err(RingError::Full) if refused < PATIENCE => {
                        refused += 1;
                        spin_loop();
                    }
                    Err(RingError::Full) => return i,
                    Err(e) => panic!("push: {e}"),
                }
            }
        }
        count
    }

    /// Pops until `PATIENCE + 1` `Empty` answers in a row.
    fn pop_some(ring: MpmcRing<'_, u64>) -> Vec<u64> {
        let mut got = Vec::new();
        let mut refused = 0;
        loop {
            match ring.try_pop() {
                Ok(v) => {
                    got.push(v);
                    refused = 0;
                }
                Err(RingError::Empty) if refused < PATIENCE => {
                    refused += 1;
                    spin_loop();
                }
                Err(RingError::Empty) => return got,
                Err(e) => panic!("pop: {e}"),
            }
        }
    }

    /// Each producer's values in increasing order within `got`.
    fn check_fifo(got: &[u64]) {
        let mut last = std::collections::HashMap::new();
        for v in got {
            if let Some(prev) = last.insert(v >> 8, v & 0xff) {
                assert!(prev < v & 0xff, "out of order: {got:?}");
            }
        }
    }

    /// Drains the ring once everyone has joined; checks that each
    /// consumer's values followed by the drained ones are in order per
    /// producer, and that the values delivered are exactly those pushed.
    fn check(ring: MpmcRing<'_, u64>, consumed: Vec<Vec<u64>>, pushed: &[(u64, u64)]) {
        let rest = pop_some(ring);
        assert!(ring.is_empty());
        let mut all = rest.clone();
        for got in consumed {
            check_fifo(&[got.as_slice(), &rest].concat());
            all.extend(got);
        }
        all.sort_unstable();
        let mut expected: Vec<u64> = pushed
            .iter()
            .flat_map(|&(p, n)| (0..n).map(move |i| p << 8 | i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected, "each pushed value exactly once");
    }

    #[test]
    fn two_producers_one_consumer() {
        loom::model(|| {
            let heap = Arc::new(HeapMpmc::<u64>::new(2).unwrap());
            let producers: Vec<_> = (0..2u64)
                .map(|p| {
                    let heap = heap.clone();
                    loom::thread::spawn(move || (p, push_some(heap.ring(), p, 2)))
                })
                .collect();
            let got = pop_some(heap.ring());
            let pushed: Vec<_> = producers.into_iter().map(|p| p.join().unwrap()).collect();
            check(heap.ring(), vec![got], &pushed);
        });
    }

    #[test]
    fn one_producer_two_consumers() {
        loom::model(|| {
            let heap = Arc::new(HeapMpmc::<u64>::new(2).unwrap());
            let consumer = {
                let heap = heap.clone();
                loom::thread::spawn(move || pop_some(heap.ring()))
            };
            let producer = {
                let heap = heap.clone();
                loom::thread::spawn(move || push_some(heap.ring(), 0, 3))
            };
            let mine = pop_some(heap.ring());
            let pushed = producer.join().unwrap();
            let theirs = consumer.join().unwrap();
            check(heap.ring(), vec![mine, theirs], &[(0, pushed)]);
        });
    }
}
