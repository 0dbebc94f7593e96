//! [`MpmcRing`]: a bounded queue of `T: Pod` values for any number of
//! producers and consumers, threads or processes, through shared memory,
//! in which a slot held by a participant that died can be given back.
//!
//! # Algorithm
//!
//! Dmitry Vyukov's "Bounded MPMC queue" (1024cores.net,
//! <https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>;
//! crossbeam's `ArrayQueue` is the Rust rendering to compare with), with
//! one change: a position is claimed on its slot, not on the counter.
//! Each slot carries a sequence word (below) that says which
//! position it serves, in which state, and who holds it. A producer at
//! position `p` CASes the slot's word from `Empty(p)` to `Claimed(p, who)`,
//! writes the value, stores `Full(p)`, then moves `enqueue` from `p` to
//! `p + 1` (a CAS that anyone who finds the slot claimed or full also
//! tries: the counter is a hint that lags by at most one). A consumer
//! CASes `Full(p)` to `Taking(p, who)`, reads the value, stores
//! `Empty(p + capacity)`, handing the slot to the next lap's producer, and
//! moves `dequeue` on. There is no lock and no system call.
//!
//! Vyukov's queue claims with one CAS on the counter, after which nothing
//! in shared memory says who holds the position: a participant killed
//! between its claim and its hand-over wedges the ring for good, since
//! nobody can tell it from a slow one. Here the claim names its holder, so
//! the layer that knows which participants are alive can give such a slot
//! back ([`MpmcRing::stalled_push`], [`MpmcRing::stalled_pop`],
//! [`MpmcRing::repair`], [`MpmcRing::release_claims`]). The price is a
//! CAS on the slot's line, which the other side shares, where Vyukov's
//! queue only stores there: one-way latency is the same, a stream pays
//! for the shared line on every value (NOTES.md has the figures). For the
//! fastest stream between one producer and one consumer, use
//! [`spsc`](super::spsc).
//!
//! ```
//! use shmkit::ring::mpmc::HeapMpmcRing;
//!
//! let heap = HeapMpmcRing::<u64>::new(64)?;
//! let ring = heap.ring(); // a view: `Copy`, `Send` and `Sync`
//! std::thread::scope(|s| {
//!     for t in 0..2 {
//!         s.spawn(move || {
//!             for i in 0..16 {
//!                 ring.try_push(t * 100 + i).unwrap();
//!             }
//!         });
//!     }
//! });
//! let mut got: Vec<u64> = std::iter::from_fn(|| ring.try_pop().ok()).collect();
//! got.sort();
//! assert_eq!(got.len(), 32);
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! # Layout
//!
//! At a 128-byte-aligned `offset` in the region's data:
//!
//! ```text
//! offset  field        written by              meaning
//!      0  magic        creator, once           MPMC_MAGIC (b"shmkMPC2", LE)
//!      8  capacity     creator, once           slots; a power of two, 1 ..= MAX_CAPACITY
//!     16  elem_size    creator, once           size_of::<T>()
//!     24  elem_align   creator, once           align_of::<T>(), at most 128
//!     32  slot_stride  creator, once           size_of of one slot (below)
//!    128  enqueue      producers (CAS)         at most one past the last claimed position
//!    256  dequeue      consumers (CAS)         likewise for consumers
//!    384  slots        see below               capacity slots, slot_stride apart
//! ```
//!
//! The magic word is `b"shmkMPC2"` read as a little-endian `u64`: the
//! ring's kind and format (a new format gets a new one).
//!
//! Positions are `u64` counters that only grow (all arithmetic on them
//! wraps); position `p` lives in slot `p % capacity`. A slot is a
//! `#[repr(C)]` pair `{ seq: u64, value: T }` (`value` at offset 8, or at
//! `align_of::<T>()` if that is larger). Its sequence word:
//!
//! ```text
//! bits   63 ..= 8                      7 ..= 6   5 ..= 0
//!        position (its low 56 bits)    state     participant
//!
//! state        word for position p            meaning
//! Empty    0   word(p, Empty, 0)              awaits the producer of p
//! Claimed  1   word(p, Claimed, who)          producer `who` is writing p's value
//! Full     2   word(p, Full, 0)               holds p's value, awaits its consumer
//! Taking   3   word(p, Taking, who)           consumer `who` is reading p's value
//! ```
//!
//! A consumer that is done stores `word(p + capacity, Empty, 0)`: the slot
//! awaits the producer of the next lap; so does a repair of a slot whose
//! claimant died. Positions are compared modulo 2^56: a ring would have
//! to move 2^55 values while one participant stands still for two
//! positions to be confused.
//!
//! # Untrusted memory
//!
//! Positions and sequence words live where any peer can write, so every
//! value is checked before it is believed, against what a correct ring can
//! hold. Every position before a counter's value has been claimed on its
//! slot, and the counter is loaded with `Acquire` after the claim was
//! seen, so a participant at position `p` (its counter's value, or an
//! older copy of it) legitimately finds in slot `p % capacity`, with `c`
//! the capacity:
//!
//! ```text
//! word                                 producer at p           consumer at p
//! Empty(p)                             claim it (CAS)          Empty
//! Claimed(p, _)                        help the counter on     Empty (stalled?)
//! Full(p)                              help                    claim it (CAS)
//! Taking(p, _)                         help                    help
//! Empty(p + c)                         help (p is done)        help
//! Claimed(p + c, _), Full(p + c)       p is stale: reload      help
//! Empty/Claimed/Full(p + kc), k >= 2   p is stale: reload      help (*)
//! Taking(p + kc, _), k >= 1            p is stale: reload      p is stale: reload
//! Claimed(p - c, _)                    Full (stalled?)         Corrupted
//! Full(p - c)                          Full                    Corrupted
//! Taking(p - c, _)                     Full (stalled?)         Empty
//! anything else                        Corrupted               Corrupted
//! ```
//!
//! (*) A repair hands a dead producer's slot to the next lap before any
//! consumer has passed it, so after repairs on several laps of one slot a
//! consumer can legitimately find it any number of laps ahead.
//!
//! A reload must find the counter moved forward; if it did not (the slot
//! claims to be ahead of a position nobody moved), or it moved backwards,
//! the ring is `Corrupted`. So is a word for a position that is not in
//! this slot, or an `Empty`/`Full` word naming a participant. Every retry
//! is caused by a counter that moved, so a corrupted value that can never
//! become valid ends in `Corrupted` within a few steps, with one
//! exception the (*) row makes: a `dequeue` scribbled behind its slots
//! reads as positions to skip, and each pop moves it forward by up to
//! [`RETRY_LIMIT`] positions (answering `Empty`) until it catches up, as
//! for a long run of repaired claims. A peer that keeps
//! moving the counters (or overwhelming contention) can only keep an
//! operation retrying for [`RETRY_LIMIT`] steps, after which it gives up
//! with `Full` or `Empty`, as a `try_` operation may. Slot indices are
//! `p % capacity` with the capacity the view checked when it was opened,
//! so no value a peer writes can make an access leave the ring. A peer
//! that writes a plausible but wrong value can still lose, duplicate or
//! tear `T` values (any bytes are a valid `T: Pod`); it cannot make this
//! process access memory outside the ring, panic, or hang.
//!
//! # A participant that stops mid-operation
//!
//! A producer stopped between its claim and its `Full` store leaves slot
//! `p` `Claimed`: consumers that reach `p` get `Empty`, even if later
//! positions hold values, and producers a lap later get `Full` there. A
//! consumer stopped while `Taking` blocks producers a lap later the same
//! way. A slow participant unblocks the ring when it resumes. For a dead
//! one, [`stalled_push`](MpmcRing::stalled_push) and
//! [`stalled_pop`](MpmcRing::stalled_pop) name the slot (and its holder)
//! that keeps an operation from proceeding, and [`repair`](MpmcRing::repair)
//! hands that slot to the next lap with one CAS, which fails if the holder
//! moved on meanwhile. A dead producer's value was never sent (its push
//! did not return); a dead consumer's value is lost with it, as a job a
//! killed worker took. [`release_claims`](MpmcRing::release_claims) does
//! the same for every slot one participant holds, for a participant that
//! takes over a dead one's id. The ring cannot tell dead from slow itself:
//! repairing a live holder's slot would let its late store hand on a slot
//! that is no longer its own, and let the next lap's participant copy the
//! value while the holder still does. Liveness is the caller's to know, so
//! `repair` and `release_claims` are `unsafe`: their contract is that no
//! thread of this process still holds the claim (the channel layer keeps
//! it with its attachment tables). A live holder in *another* process is
//! a peer breaking the protocol, which costs torn or lost values.
//!
//! # Why pushing and popping are safe
//!
//! No reference to a slot's value is ever handed out: [`MpmcRing::try_push`]
//! copies the value in and [`MpmcRing::try_pop`] copies it out, each
//! between the CAS that claimed the slot and the `Release` store that
//! hands it on. A claim is one successful CAS on the slot's word from the
//! one state that allows it, so two threads of this process never hold
//! the same slot at once, and never copy the same value concurrently,
//! however many views, threads and participant ids they use; only a slot
//! handed on early (by `repair` or `release_claims`, hence `unsafe`) could
//! break that, or the ring laid out again under its users, which a region
//! handle refuses ([`MpmcRing::create`] wants bytes it never placed). So any number of views may push and pop from any threads
//! without `unsafe`, unlike the SPSC and byte rings, whose in-place chunks
//! lend references and whose sides keep unshared indices.
//!
//! # Memory ordering
//!
//! The value is written after the `AcqRel` CAS that claimed the slot from
//! the consumer of the previous lap's `Release` store, and before the
//! `Release` store that hands it on; it is read symmetrically; so the
//! slot's value never has two correct users at once. Counters are loaded
//! with `Acquire` and moved with `AcqRel`: a counter's value then carries
//! every claim that came before it, which is what lets a word behind the
//! counter count as corruption rather than as a stale read. On x86 the
//! orderings cost nothing: the loads are plain loads and every CAS is a
//! locked instruction either way. The loom models check delivery exactly
//! once, per-producer order, and repair of a claim whose holder stopped,
//! against participants that keep going.

mod heap;
pub(crate) mod seq;
mod stall;
pub(crate) mod wire;

use super::{Miss, PopError, PushError, Slot};
use crate::blocks::{CachePadded, ShmSafe};
use crate::error::{Error, Result};
#[cfg(not(shmkit_loom))]
use crate::primitive::spin_loop;
use crate::primitive::{AtomicU64, Ordering};
use crate::region::Region;
use bytemuck::Pod;
use core::fmt;
use core::mem::{align_of, size_of};
pub use heap::HeapMpmcRing;
pub use seq::Participant;
use seq::{State, Word};
pub use stall::{Holder, Stall};
use wire::*;

/// The largest capacity a ring may have (2^32 slots).
pub const MAX_CAPACITY: usize = 1 << 32;

/// How many times one operation retries after losing a race (or finding a
/// stale position) before it gives up with `Full` or `Empty`.
pub const RETRY_LIMIT: u32 = 1 << 10;

/// The alignment of the header, and the most an element may need.
const LINE: usize = 128;

/// Backoff after a lost CAS spins at most `2^SPIN_SHIFT` times.
#[cfg(not(shmkit_loom))]
const SPIN_SHIFT: u32 = 6;

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
    enqueue: CachePadded<AtomicU64>,
    /// Next position a pop claims (give or take one, as `enqueue`); only
    /// grows. It can pass `enqueue` by one when consumers skip a
    /// repaired claim before any producer has moved `enqueue` past it.
    dequeue: CachePadded<AtomicU64>,
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
            enqueue: CachePadded::new(AtomicU64::new(0)),
            dequeue: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

/// One slot: whose turn it is, and the value.
#[repr(C)]
#[derive(Debug)]
struct MpmcSlot<T: Pod> {
    /// Which position the slot serves, in which state, held by whom
    /// ([`seq`]).
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
/// heap ([`HeapMpmcRing`]). Any number of threads and processes push and pop
/// through their own views of the same ring at once; the view is `Copy`,
/// `Send` and `Sync`.
///
/// ```
/// use shmkit::ring::mpmc::MpmcRing;
/// use shmkit::ring::{PopError, PushError};
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
///                 while let Err(PushError::Full(_)) = ring.try_push(t << 32 | i) {
///                     std::thread::yield_now();
///                 }
///             }
///         });
///     }
///     let mut got = 0;
///     while got < 200 {
///         match ring.try_pop() {
///             Ok(_) => got += 1,
///             Err(PopError::Empty) => std::thread::yield_now(),
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
    /// [`anonymous_with`](crate::RegionOptions::anonymous_with), on memory
    /// nobody uses yet. This region handle refuses, with
    /// [`Error::PlacementConflict`], bytes it has placed anything over
    /// already, a ring made there before included: creating over a live
    /// ring would reset it under its users, and two participants of this
    /// process could then claim the same slot. (Through another handle or
    /// from another process, it is a peer resetting the ring: users may
    /// lose or duplicate values.)
    pub fn create(region: &'a Region, offset: usize, capacity: usize) -> Result<Self> {
        Self::bytes_for(capacity)?;
        let header = region.spot::<MpmcHeader>(offset, 1)?;
        let slots = region.spot::<MpmcSlot<T>>(slots_offset(region, offset)?, capacity)?;
        region.claim(&[header.placed(), slots.placed()], true)?;
        // SAFETY: both claimed just above.
        let (header, slots) = unsafe { (&header.get()[0], slots.get()) };
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
        // A failed check gives the header's placement back, so that a
        // failed probe leaves the bytes free for `create`.
        let (header, slots) = region.place_checked::<MpmcHeader, _>(offset, |header| {
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
            region.place_slice::<MpmcSlot<T>>(slots_offset(region, offset)?, capacity)
        })?;
        Ok(Self { header, slots })
    }

    /// Pushes `value`, claiming its slot as [`Participant::ANONYMOUS`], or
    /// pushes nothing and fails with:
    /// - [`PushError::Full`] (with the value): no free slot at the next
    ///   position (or, after
    ///   [`RETRY_LIMIT`] lost races in a row, too much contention: retry as
    ///   for a full ring);
    /// - [`PushError::Corrupted`]: the positions or sequence words hold
    ///   values no correct participant writes.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        self.try_push_as(Participant::ANONYMOUS, value)
    }

    /// [`try_push`](Self::try_push), claiming the slot as `who`: should
    /// this process stop between the claim and the hand-over, the slot
    /// names `who` as its holder (see [`stalled_pop`](Self::stalled_pop)).
    #[inline]
    pub fn try_push_as(&self, who: Participant, value: T) -> Result<(), PushError<T>> {
        self.push_ref_as(who, &value)
            .map_err(|miss| PushError::from_miss(miss, value))
    }

    /// [`try_push_as`](Self::try_push_as) from a reference: the value is
    /// copied once, into its slot, and the result is small whatever `T` is
    /// (the channel pushes through this).
    #[inline]
    pub(crate) fn push_ref_as(&self, who: Participant, value: &T) -> Result<(), Miss> {
        let (slot, pos) = self.claim(Role::Producer, who)?;
        // SAFETY: the CAS in `claim` made this producer the holder of
        // position `pos`, from the `Release` store (or repair) that handed
        // the slot over, so the previous lap's consumer has finished
        // reading; no correct participant touches the value until the
        // store below hands it on. (A peer that breaks the protocol can
        // only race on this `T: Pod` inside our own slot: a torn value,
        // still a valid `T`.)
        unsafe { slot.value.write(*value) };
        slot.seq
            .store(seq::word(pos, State::Full, 0), Ordering::Release);
        self.pass(Role::Producer, pos);
        Ok(())
    }

    /// Pops the oldest value, claiming its slot as
    /// [`Participant::ANONYMOUS`], or pops nothing and fails with:
    /// - [`PopError::Empty`]: no published value at the next position
    ///   (also when its producer has claimed it but not finished, see the
    ///   [module documentation](self); or, after [`RETRY_LIMIT`] lost
    ///   races in a row, too much contention: retry as for an empty ring);
    /// - [`PopError::Corrupted`]: the positions or sequence words hold
    ///   values no correct participant writes.
    #[inline]
    pub fn try_pop(&self) -> Result<T, PopError> {
        self.try_pop_as(Participant::ANONYMOUS)
    }

    /// [`try_pop`](Self::try_pop), claiming the slot as `who`: should this
    /// process stop between the claim and the release, the slot names
    /// `who` as its holder (see [`stalled_push`](Self::stalled_push)).
    #[inline]
    pub fn try_pop_as(&self, who: Participant) -> Result<T, PopError> {
        let mut value = T::zeroed();
        self.pop_into_as(who, &mut value)?;
        Ok(value)
    }

    /// [`try_pop_as`](Self::try_pop_as) into `out` (left as it was on
    /// failure): the value is copied once, out of its slot, and the result
    /// is small whatever `T` is (the channel pops through this).
    #[inline]
    pub(crate) fn pop_into_as(&self, who: Participant, out: &mut T) -> Result<(), Miss> {
        self.pop_settle_as(who, out, |_| {})
    }

    /// [`pop_into_as`](Self::pop_into_as), calling `settle` with the value
    /// before the slot is handed on: meanwhile the slot is still `Taking`
    /// under `who`, so if the process dies inside `settle`, whoever
    /// [`release_claims_taking`](Self::release_claims_taking) after it
    /// is handed the value to settle again (`settle` must bear being
    /// done twice).
    #[inline]
    pub(crate) fn pop_settle_as(
        &self,
        who: Participant,
        out: &mut T,
        settle: impl FnOnce(&T),
    ) -> Result<(), Miss> {
        let (slot, pos) = self.claim(Role::Consumer, who)?;
        // SAFETY: the CAS in `claim` made this consumer the holder of
        // position `pos`, from the producer's `Release` store of `Full`, so
        // the value is written; no correct participant writes it until the
        // store below hands the slot on (a protocol-breaking peer can only
        // make the copy torn, still a `T`).
        unsafe { slot.value.read_into(out) };
        settle(out);
        let next = pos.wrapping_add(self.slots.len() as u64);
        slot.seq
            .store(seq::word(next, State::Empty, 0), Ordering::Release);
        self.pass(Role::Consumer, pos);
        Ok(())
    }

    /// Claims the next position for `role` on its slot (the CAS from the
    /// turn's word to the claim's); returns the slot and the position.
    /// The caller hands the slot on, then [`pass`](Self::pass)es it.
    #[inline]
    fn claim(&self, role: Role, who: Participant) -> Result<(&MpmcSlot<T>, u64), Miss> {
        let counter = self.counter(role);
        let mut pos = counter.load(Ordering::Acquire);
        let mut step = 0;
        for _ in 0..RETRY_LIMIT {
            // A CAS straight away, not a load first: the line is usually
            // the other side's (it just handed the slot over, or polls
            // it), and a load then a CAS would fetch it twice, once to
            // share and once to own, each a wait on the other core.
            let slot = self.slot(pos);
            let claimed = seq::word(pos, role.claim(), who.id());
            match slot.seq.compare_exchange(
                role.turn(pos),
                claimed,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok((slot, pos)),
                Err(found) => {
                    if role.lost_race(pos, found) {
                        // Give the winner's line some room.
                        backoff(&mut step);
                    }
                    pos = self.step(role, counter, pos, found)?;
                }
            }
        }
        Err(Miss::WouldBlock)
    }

    /// Moves `role`'s counter past `pos`, whose slot this participant
    /// claimed and has handed on. Done after the hand-over, so that
    /// nothing but the value's copy sits between claim and hand-over.
    /// Whoever finds the slot claimed or handed on helps the same way, so
    /// a failure means someone already did.
    #[inline]
    fn pass(&self, role: Role, pos: u64) {
        let _ = self.counter(role).compare_exchange(
            pos,
            pos.wrapping_add(1),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// The slow path of [`claim`](Self::claim): the slot of `pos` holds
    /// `found`, which is not the turn; returns the position to try next,
    /// or why to give up.
    #[cold]
    fn step(&self, role: Role, counter: &AtomicU64, pos: u64, found: u64) -> Result<u64, Miss> {
        match self.classify(role, pos, found) {
            Find::Turn => Ok(pos),
            Find::Passed => help(counter, pos),
            Find::Ahead => reload(counter, pos),
            Find::Wait => Err(Miss::WouldBlock),
            Find::Bad => Err(Miss::Corrupted(match role {
                Role::Producer => "MPMC slot sequence word impossible at the enqueue position",
                Role::Consumer => "MPMC slot sequence word impossible at the dequeue position",
            })),
        }
    }

    /// What `found`, in the slot of `pos`, means to a participant of `role`
    /// at `pos`: the table in the [module documentation](self).
    fn classify(&self, role: Role, pos: u64, found: u64) -> Find {
        let cap = self.slots.len() as i64;
        let w = Word::of(found);
        let d = seq::distance(w.position, pos);
        if !w.well_formed() || d & (cap - 1) != 0 {
            return Find::Bad;
        }
        use State::{Claimed, Empty, Full, Taking};
        match (role, d / cap, w.state) {
            // Repairs hand a dead producer's slot to the next lap before
            // any consumer passes it, so a correct ring can show consumers
            // a slot any number of laps ahead (all of its skipped
            // positions then lie behind).
            (Role::Consumer, 1.., Empty | Claimed | Full) | (Role::Producer, 1, Empty) => {
                Find::Passed
            }
            (_, 1.., _) => Find::Ahead,
            (Role::Producer, 0, Empty) | (Role::Consumer, 0, Full) => Find::Turn,
            (Role::Producer, 0, _) | (Role::Consumer, 0, Taking) => Find::Passed,
            (Role::Consumer, 0, Empty | Claimed) => Find::Wait,
            (Role::Producer, -1, Claimed | Full | Taking) | (Role::Consumer, -1, Taking) => {
                Find::Wait
            }
            _ => Find::Bad,
        }
    }

    #[inline]
    fn counter(&self, role: Role) -> &AtomicU64 {
        match role {
            Role::Producer => &self.header.enqueue,
            Role::Consumer => &self.header.dequeue,
        }
    }

    #[inline]
    fn slot(&self, pos: u64) -> &MpmcSlot<T> {
        &self.slots[(pos & (self.slots.len() as u64 - 1)) as usize]
    }

    /// The number of values in the ring, as a snapshot that may be stale by
    /// the time it returns; values claimed by a push or a pop that has not
    /// finished count as present. Clamped to `0..=capacity` whatever the
    /// positions hold.
    pub fn len(&self) -> usize {
        let head = self.header.dequeue.load(Ordering::Acquire);
        let tail = self.header.enqueue.load(Ordering::Acquire);
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

/// Which side of the ring an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

impl Role {
    /// The word that makes the slot of `pos` this role's to claim.
    #[inline]
    fn turn(self, pos: u64) -> u64 {
        match self {
            Role::Producer => seq::word(pos, State::Empty, 0),
            Role::Consumer => seq::word(pos, State::Full, 0),
        }
    }

    /// The state this role's claim puts the slot in.
    #[inline]
    fn claim(self) -> State {
        match self {
            Role::Producer => State::Claimed,
            Role::Consumer => State::Taking,
        }
    }

    /// Whether `found`, in the slot of `pos`, says another participant of
    /// this role took `pos` first (not that the slot awaits the other
    /// side: a consumer polling an empty ring must not back off).
    #[inline]
    fn lost_race(self, pos: u64, found: u64) -> bool {
        let w = Word::of(found);
        seq::distance(w.position, pos) == 0
            && match self {
                Role::Producer => w.state != State::Empty,
                Role::Consumer => w.state == State::Taking,
            }
    }
}

/// What a participant finds in the slot of its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Find {
    /// Its turn: claim the slot.
    Turn,
    /// The position is taken (or done): help the counter past it.
    Passed,
    /// The slot is ahead of the position, which must be stale: reload.
    Ahead,
    /// The slot still serves an earlier step: `Full`/`Empty` for now.
    Wait,
    /// No correct ring holds this.
    Bad,
}

/// Moves `counter` past `pos`, whose slot someone claimed; returns where
/// it is now, which must be past `pos`.
#[inline]
fn help(counter: &AtomicU64, pos: u64) -> Result<u64, Miss> {
    match counter.compare_exchange(
        pos,
        pos.wrapping_add(1),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(pos.wrapping_add(1)),
        Err(now) if dist(now, pos) > 0 => Ok(now),
        Err(_) => Err(Miss::Corrupted("MPMC position moved backwards")),
    }
}

/// Reloads `counter` for a participant at `pos` whose slot is ahead: the
/// counter must have moved past `pos`.
#[inline]
fn reload(counter: &AtomicU64, pos: u64) -> Result<u64, Miss> {
    let now = counter.load(Ordering::Acquire);
    if dist(now, pos) <= 0 {
        return Err(Miss::Corrupted(
            "MPMC slot sequence word ahead of its position",
        ));
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
    header.enqueue.store(0, Ordering::Relaxed);
    header.dequeue.store(0, Ordering::Relaxed);
    for (i, slot) in slots.iter().enumerate() {
        slot.seq
            .store(seq::word(i as u64, State::Empty, 0), Ordering::Relaxed);
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

#[cfg(all(test, shmkit_loom))]
mod loom_tests;
