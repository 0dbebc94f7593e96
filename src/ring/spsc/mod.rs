//! [`SpscRing`]: a bounded single-producer single-consumer ring of `T: Pod`
//! values in shared memory.
//!
//! The algorithm is the classic Lamport ring with the index caching of
//! [rtrb](https://github.com/mgeier/rtrb): two counters that only grow,
//! each written by one side, and each side keeping its own counter and a
//! cached copy of the other's in its process-local handle, so that a
//! streaming pair touches the other side's cache line only when the cache
//! says "full" (producer) or "empty" (consumer).
//!
//! # Layout
//!
//! A ring at `offset` in a region (128-aligned) is a 384-byte header
//! followed by the slots:
//!
//! ```text
//! offset  size  field        written by        meaning
//!      0     8  magic        creator, once     SPSC_MAGIC ("shmkSPSC", LE)
//!      8     8  capacity     creator, once     slots, a power of two >= 1
//!     16     4  elem_size    creator, once     size_of::<T>()
//!     20     4  elem_align   creator, once     align_of::<T>()
//!    128     8  head         consumer          values popped since creation
//!    256     8  tail         producer          values pushed since creation
//!    384     -  slots        see below         capacity * size_of::<T>()
//! ```
//!
//! `head` and `tail` each sit alone on a 128-byte line (two 64-byte lines,
//! so the adjacent-line prefetcher does not pair them up either). The value
//! with index `i` lives in slot `i & (capacity - 1)`.
//! The magic word is `b"shmkSPSC"` read as a little-endian `u64`.
//!
//! # Protocol and invariants
//!
//! - `head <= tail <= head + capacity` at all times (wrapping `u64`
//!   arithmetic; the counters do not wrap in practice). `tail == head` is
//!   empty and `tail == head + capacity` is full: counters that only grow
//!   make the two unambiguous, and no slot is wasted.
//! - Slots `[head, tail)` belong to the consumer, `[tail, head + capacity)`
//!   to the producer.
//! - The producer writes a slot, then publishes it by storing `tail`
//!   (Release); the consumer loads `tail` (Acquire) before reading the slot.
//!   The consumer reads a slot, then frees it by storing `head` (Release);
//!   the producer loads `head` (Acquire) before overwriting the slot.
//!   A batch is published by one store, whatever its length.
//! - No fence, no read-modify-write, no system call: each operation is
//!   plain loads and stores, and touches the peer's index only when its
//!   cached copy says it cannot proceed.
//!
//! # A peer that breaks the rules
//!
//! Every time a side loads the other side's index it checks it against
//! what a correct peer can have written: `head` may only move forward and
//! never past the producer's `tail`; `tail` may only move forward and never
//! more than `capacity` past the consumer's `head`. Anything else is
//! [`Corrupted`] (or the `Corrupted` variant of the operation's error), and the handle's state is left as it was. A
//! side never reads its own index back from shared memory after attaching,
//! and the capacity is read once, in [`SpscRing::open`], so a scribbled
//! header can make the victim see garbage values or `Corrupted`, never an
//! out-of-bounds access, a panic or an endless loop.
//!
//! Slot contents are `T: Pod`, so any bytes there are a valid `T`. The
//! in-place chunks ([`WriteChunk`], [`ReadChunk`]) hand out slices of slots
//! that the protocol reserves to the holder; a peer that writes them anyway
//! can only change the values the holder sees, as it could by pushing them.
//!
//! # One producer, one consumer
//!
//! At most one [`Producer`] and one [`Consumer`] may be attached at a time,
//! across all processes and threads. The ring cannot check this itself (a
//! claim word would stay held by a process that crashed, and recovering
//! it needs liveness, the channel layer's job), and inside one process
//! breaking it is undefined behaviour: two consumers could hand out a
//! [`ReadChunk`] whose slots the other frees for the producer to
//! overwrite under the chunk's `&[T]`, and two producers would race on
//! plain slot writes. So [`SpscRing::producer`] and
//! [`SpscRing::consumer`] are `unsafe`, with that rule as their contract;
//! [`HeapSpscRing::split`] proves it with `&mut` and is safe, and the
//! channel layer ([`crate::channel`]) keeps it with its attachment
//! tables. A second side in *another* process is a peer breaking the
//! protocol, which this process survives as described above: values
//! lost, duplicated or garbled, or `Corrupted`; every index is still
//! masked into the slot array and every peer index still checked.
//!
//! ```
//! use shmkit::ring::spsc::SpscRing;
//! use shmkit::RegionOptions;
//!
//! let size = SpscRing::<u64>::bytes_for(1024)?;
//! let region = RegionOptions::new()
//!     .size(size)
//!     .anonymous_with(|r| SpscRing::<u64>::create(r, 0, 1024).map(drop))?;
//! // Usually in another process, after `Region::pass_to_child`:
//! let ring = SpscRing::<u64>::open(&region, 0)?;
//! // SAFETY: this is the only producer and the only consumer of the ring,
//! // and nothing else touches its memory.
//! let (mut tx, mut rx) = unsafe { (ring.producer()?, ring.consumer()?) };
//! tx.try_push(7)?;
//! assert_eq!(tx.push_slice(&[8, 9])?, 2);
//! assert_eq!(rx.try_pop()?, 7);
//! let mut buf = [0; 4];
//! assert_eq!(rx.pop_slice(&mut buf)?, 2);
//! assert_eq!(buf[..2], [8, 9]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Attaching a second consumer without `unsafe` does not compile, so the
//! sequence that would change a chunk under its borrow (take a chunk with
//! one consumer, drain and free its slots with another, push again) cannot
//! be written in safe code:
//!
//! ```compile_fail,E0133
//! use shmkit::ring::spsc::HeapSpscRing;
//!
//! let heap = HeapSpscRing::<u64>::new(4)?;
//! let ring = heap.ring();
//! let (mut tx, mut rx1, mut rx2) = (ring.producer()?, ring.consumer()?, ring.consumer()?);
//! tx.push_slice(&[1, 2, 3, 4])?;
//! let chunk = rx1.read_chunk(4)?;
//! let (seen, _) = chunk.as_slices();
//! rx2.pop_slice(&mut [0; 4])?;
//! tx.push_slice(&[5, 6, 7, 8])?;
//! assert_eq!(seen, [1, 2, 3, 4]); // would see 5, 6, 7, 8
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{Corrupted, Slot};
use crate::error::Error;
use crate::primitive::Ordering;
use crate::region::Region;
use bytemuck::Pod;
use core::fmt;

mod chunk;
mod consumer;
mod heap;
#[cfg(all(test, shmkit_loom))]
mod loom_tests;
mod producer;
#[cfg(all(test, not(shmkit_loom)))]
mod tests;
pub(crate) mod wire;

pub use chunk::{ReadChunk, WriteChunk};
pub use consumer::Consumer;
pub use heap::HeapSpscRing;
pub use producer::Producer;
pub use wire::MAX_ALIGN;
use wire::{SpscHeader, HEADER_SIZE, SPSC_MAGIC};

/// What a correct peer never does to `head`, as the producer sees it.
const BAD_HEAD: &str = "SPSC head moved backwards or past tail";
/// What a correct peer never does to `tail`, as the consumer sees it.
const BAD_TAIL: &str = "SPSC tail moved backwards or more than capacity past head";
/// Indices that no correct pair of sides leaves behind.
const BAD_INDICES: &str = "SPSC tail is not within capacity of head";

/// `size << 32 | align` of `T`, as [`Error::LayoutMismatch`] reports it.
fn elem_layout<T>() -> u64 {
    ((core::mem::size_of::<T>() as u64) << 32) | core::mem::align_of::<T>() as u64
}

/// Checks what the creator is asked for: a power-of-two capacity and an
/// element type the header can describe and align.
fn check_params<T: Pod>(capacity: usize) -> crate::Result<()> {
    if !capacity.is_power_of_two() {
        return Err(Error::InvalidSize {
            size: capacity as u64,
            reason: "SPSC ring capacity must be a power of two (and at least 1)",
        });
    }
    if core::mem::align_of::<T>() > MAX_ALIGN {
        return Err(Error::InvalidSize {
            size: core::mem::align_of::<T>() as u64,
            reason: "SPSC ring elements must be aligned to at most 128 bytes",
        });
    }
    if u32::try_from(core::mem::size_of::<T>()).is_err() {
        return Err(Error::InvalidSize {
            size: core::mem::size_of::<T>() as u64,
            reason: "SPSC ring elements must be smaller than 4 GiB",
        });
    }
    Ok(())
}

/// Writes a fresh header; the magic goes last, with Release.
fn init_header<T: Pod>(header: &SpscHeader, capacity: usize) {
    header.head.store(0, Ordering::Relaxed);
    header.tail.store(0, Ordering::Relaxed);
    header.capacity.store(capacity as u64, Ordering::Relaxed);
    header
        .elem_size
        .store(core::mem::size_of::<T>() as u32, Ordering::Relaxed);
    header
        .elem_align
        .store(core::mem::align_of::<T>() as u32, Ordering::Relaxed);
    header.magic.store(SPSC_MAGIC, Ordering::Release);
}

/// Checks a header someone else wrote against `T`; returns its capacity.
fn validate_header<T: Pod>(header: &SpscHeader) -> crate::Result<usize> {
    match header.magic.load(Ordering::Acquire) {
        SPSC_MAGIC => {}
        0 => {
            return Err(Error::Corrupted {
                what: "no SPSC ring here: the header is not initialized",
            })
        }
        _ => {
            return Err(Error::Corrupted {
                what: "not an SPSC ring header (bad magic)",
            })
        }
    }
    let found = (u64::from(header.elem_size.load(Ordering::Relaxed)) << 32)
        | u64::from(header.elem_align.load(Ordering::Relaxed));
    let expected = elem_layout::<T>();
    if found != expected {
        return Err(Error::LayoutMismatch { found, expected });
    }
    let capacity = usize::try_from(header.capacity.load(Ordering::Relaxed))
        .ok()
        .filter(|c| c.is_power_of_two())
        .ok_or(Error::Corrupted {
            what: "SPSC ring capacity is not a power of two",
        })?;
    Ok(capacity)
}

/// A view of an SPSC ring: the shared header and the slots. Cheap to copy;
/// attach the sides with [`producer`](Self::producer) and
/// [`consumer`](Self::consumer) (`unsafe`: at most one of each may live,
/// see the [module documentation](self#one-producer-one-consumer)).
///
/// See the [module documentation](self) for the protocol. A ring lives in
/// a [`Region`] ([`create`](Self::create), [`open`](Self::open)) or, for
/// tests and models, on the heap ([`HeapSpscRing`], whose
/// [`split`](HeapSpscRing::split) attaches both sides safely).
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
/// use shmkit::ring::PushError;
///
/// let mut heap = HeapSpscRing::<u32>::new(2)?;
/// let ring = heap.ring();
/// assert_eq!(ring.capacity(), 2);
/// let (mut tx, mut rx) = heap.split()?;
/// tx.try_push(1)?;
/// tx.try_push(2)?;
/// assert_eq!(tx.try_push(3), Err(PushError::Full(3)));
/// assert_eq!(tx.ring().len(), 2);
/// assert_eq!(rx.try_pop()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SpscRing<'a, T: Pod> {
    header: &'a SpscHeader,
    /// `capacity` slots, a power of two; the capacity is `slots.len()`,
    /// never re-read from the header.
    slots: &'a [Slot<T>],
}

impl<T: Pod> Clone for SpscRing<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for SpscRing<'_, T> {}

impl<T: Pod> fmt::Debug for SpscRing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpscRing")
            .field("capacity", &self.capacity())
            .field("head", &self.header.head.load(Ordering::Relaxed))
            .field("tail", &self.header.tail.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a, T: Pod> SpscRing<'a, T> {
    /// Region data bytes a ring of `capacity` values of `T` needs: the
    /// 384-byte header plus the slots.
    ///
    /// Fails with [`Error::InvalidSize`] if `capacity` is not a power of
    /// two, `T` is aligned to more than [`MAX_ALIGN`], or the size
    /// overflows.
    pub fn bytes_for(capacity: usize) -> crate::Result<usize> {
        check_params::<T>(capacity)?;
        core::mem::size_of::<T>()
            .checked_mul(capacity)
            .and_then(|b| b.checked_add(HEADER_SIZE))
            .filter(|b| *b <= isize::MAX as usize)
            .ok_or(Error::InvalidSize {
                size: capacity as u64,
                reason: "SPSC ring too large",
            })
    }

    /// Creates an empty ring of `capacity` slots at `offset` in `region`.
    ///
    /// Call it on memory nobody else uses yet, typically inside the
    /// `init` closure of [`RegionOptions::create_with`] or
    /// [`RegionOptions::anonymous_with`]. Fails with [`Error::InvalidSize`]
    /// for the reasons of [`bytes_for`](Self::bytes_for), with
    /// [`Error::Misaligned`] or [`Error::OutOfBounds`] if `offset` is not
    /// 128-aligned or the ring does not fit, and with
    /// [`Error::PlacementConflict`] if this region handle has placed
    /// anything over those bytes already (a ring made there before
    /// included: laying it out again would reset it under its users).
    ///
    /// [`RegionOptions::create_with`]: crate::RegionOptions::create_with
    /// [`RegionOptions::anonymous_with`]: crate::RegionOptions::anonymous_with
    pub fn create(region: &'a Region, offset: usize, capacity: usize) -> crate::Result<Self>
    where
        T: Send,
    {
        check_params::<T>(capacity)?;
        let header = region.spot::<SpscHeader>(offset, 1)?;
        let slots = region.spot::<Slot<T>>(slots_offset(region, offset)?, capacity)?;
        region.claim(&[header.placed(), slots.placed()], true)?;
        // SAFETY: both claimed just above.
        let (header, slots) = unsafe { (&header.get()[0], slots.get()) };
        init_header::<T>(header, capacity);
        Ok(Self { header, slots })
    }

    /// Opens the ring at `offset` in `region`, checking its header.
    ///
    /// Fails with [`Error::Corrupted`] if there is no initialized ring
    /// header there or its capacity is not a power of two, with
    /// [`Error::LayoutMismatch`] if it holds elements of another size or
    /// alignment than `T` (`found` and `expected` are `size << 32 |
    /// align`), and with [`Error::Misaligned`] or [`Error::OutOfBounds`] if
    /// `offset` is misaligned or the slots the header claims do not fit in
    /// the region.
    pub fn open(region: &'a Region, offset: usize) -> crate::Result<Self>
    where
        T: Send,
    {
        check_params::<T>(1)?;
        // A failed check gives the header's placement back, so that a
        // failed probe leaves the bytes free for `create`.
        let (header, slots) = region.place_checked::<SpscHeader, _>(offset, |header| {
            let capacity = validate_header::<T>(header)?;
            region.place_slice::<Slot<T>>(slots_offset(region, offset)?, capacity)
        })?;
        Ok(Self { header, slots })
    }

    /// The number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many values the ring holds, as a snapshot taken from outside
    /// either side (it may be stale by the time it returns).
    ///
    /// Loads `head`, then `tail`, so a correct pair never shows a tail
    /// behind the head. Clamped to `0..=capacity` whatever the indices
    /// hold: a tail more than `capacity` ahead can be a race with both
    /// sides moving between the two loads, and a scribbled pair is for the
    /// sides to report ([`Corrupted`]) when they meet it.
    pub fn len(&self) -> usize {
        let head = self.header.head.load(Ordering::Acquire);
        let tail = self.header.tail.load(Ordering::Acquire);
        self.clamp_len(tail.wrapping_sub(head))
    }

    /// Whether the ring is empty, as a snapshot (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `tail - head` as a length: `0..=capacity`, a negative distance as 0.
    #[inline]
    fn clamp_len(&self, used: u64) -> usize {
        if used > u64::MAX / 2 {
            0
        } else {
            used.min(self.cap()) as usize
        }
    }

    /// The shared header (for [`testing`](crate::testing)).
    pub(crate) fn header(&self) -> &'a SpscHeader {
        self.header
    }

    /// Attaches the producing side: reads `tail` (its own index from now
    /// on) and `head`, and checks that they make sense together. A
    /// producer that was dropped leaves nothing behind, so another may
    /// attach after it and resume where it stopped.
    ///
    /// Fails with [`Corrupted`] if the indices are invalid.
    ///
    /// # Safety
    ///
    /// While the returned handle lives:
    /// - no other [`Producer`] of this ring exists, in this process or any
    ///   other (see the [module documentation](self#one-producer-one-consumer));
    /// - nothing else in this process writes the ring's memory, its
    ///   indices included, from another thread (that would race with the
    ///   sides' accesses), or in a way that makes one side reach slots
    ///   covered by the other side's live [`ReadChunk`] or [`WriteChunk`]
    ///   (a scribbled index does that to a side's later operations). So no
    ///   [`create`](Self::create) over the ring, and no raw writes to it
    ///   ([`Region::write`], [`Region::as_ptr`]) except, from the thread
    ///   using the sides and with no chunk of one side alive while the
    ///   other side operates, the scribbles tests use to play a
    ///   misbehaving peer.
    ///
    /// A second producer or a scribbler in *another* process is a peer
    /// breaking the protocol, which this process survives (values
    /// garbled, or [`Corrupted`]); in this process it would be undefined
    /// behaviour.
    pub unsafe fn producer(&self) -> Result<Producer<'a, T>, Corrupted> {
        // Tail first: with no other producer it is fixed, and the head
        // loaded after it is at most tail and at least tail - capacity.
        let tail = self.header.tail.load(Ordering::Acquire);
        let head = self.header.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.cap() {
            return Err(Corrupted(BAD_INDICES));
        }
        Ok(Producer::new(*self, tail, head))
    }

    /// Attaches the consuming side: reads `head` (its own index from now
    /// on) and `tail`, and checks that they make sense together.
    ///
    /// Fails with [`Corrupted`] if the indices are invalid.
    ///
    /// # Safety
    ///
    /// As for [`producer`](Self::producer), with the roles swapped: while
    /// the returned handle lives, no other [`Consumer`] of this ring
    /// exists, in this process or any other, and nothing else in this
    /// process writes the ring's memory as that section rules out. (Two
    /// consumers would let one free the slots of the other's
    /// [`ReadChunk`] for the producer to overwrite under its `&[T]`.)
    pub unsafe fn consumer(&self) -> Result<Consumer<'a, T>, Corrupted> {
        let head = self.header.head.load(Ordering::Acquire);
        let tail = self.header.tail.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.cap() {
            return Err(Corrupted(BAD_INDICES));
        }
        Ok(Consumer::new(*self, head, tail))
    }

    #[inline]
    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The slot holding index `index`.
    #[inline]
    fn slot(&self, index: u64) -> &Slot<T> {
        let pos = index as usize & (self.slots.len() - 1);
        // SAFETY: `slots.len()` is a power of two (checked by every
        // constructor), so the mask keeps `pos` below it.
        unsafe { self.slots.get_unchecked(pos) }
    }

    /// Where a run of `len <= capacity` slots from `index` on starts, and
    /// how many of them come before the end of the array (the rest wrap to
    /// slot 0).
    #[inline]
    fn split(&self, index: u64, len: usize) -> (usize, usize) {
        let pos = index as usize & (self.slots.len() - 1);
        (pos, len.min(self.slots.len() - pos))
    }

    /// The slots as a `*mut T` array. `Slot<T>` is `repr(transparent)`
    /// over `UnsafeCell<T>` (itself transparent outside loom), so the
    /// slots are contiguous `T`s; the pointer comes from the whole slice,
    /// so it may reach every slot, and writing through it is allowed
    /// because every byte is inside an `UnsafeCell`.
    #[cfg(not(shmkit_loom))]
    #[inline]
    fn base(&self) -> *mut T {
        self.slots.as_ptr().cast::<T>().cast_mut()
    }

    /// Copies `src` into the slots from index `start` on.
    ///
    /// # Safety
    ///
    /// The caller is the producer and owns slots `[start, start +
    /// src.len())` (so `src.len() <= capacity`).
    #[inline]
    unsafe fn copy_in(&self, start: u64, src: &[T]) {
        #[cfg(not(shmkit_loom))]
        {
            let (pos, first) = self.split(start, src.len());
            let base = self.base();
            // SAFETY: `pos + first <= capacity` and `src.len() - first <=
            // pos` (as `src.len() <= capacity`), so both runs are inside
            // the slot array; the caller owns them; `src` is local memory,
            // distinct from the slots.
            unsafe {
                core::ptr::copy_nonoverlapping(src.as_ptr(), base.add(pos), first);
                core::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
            }
        }
        #[cfg(shmkit_loom)]
        for (i, v) in src.iter().enumerate() {
            // SAFETY: the caller owns the slot.
            unsafe { self.slot(start.wrapping_add(i as u64)).write(*v) };
        }
    }

    /// Copies the slots from index `start` on into `dst`.
    ///
    /// # Safety
    ///
    /// The caller is the consumer and owns slots `[start, start +
    /// dst.len())` (so `dst.len() <= capacity`).
    #[inline]
    unsafe fn copy_out(&self, start: u64, dst: &mut [T]) {
        #[cfg(not(shmkit_loom))]
        {
            let (pos, first) = self.split(start, dst.len());
            let base = self.base();
            // SAFETY: as in `copy_in`, with the roles of source and
            // destination swapped.
            unsafe {
                core::ptr::copy_nonoverlapping(base.add(pos), dst.as_mut_ptr(), first);
                core::ptr::copy_nonoverlapping(
                    base,
                    dst.as_mut_ptr().add(first),
                    dst.len() - first,
                );
            }
        }
        #[cfg(shmkit_loom)]
        for (i, v) in dst.iter_mut().enumerate() {
            // SAFETY: the caller owns the slot.
            *v = unsafe { self.slot(start.wrapping_add(i as u64)).read() };
        }
    }
}

/// Where the slots of a ring at `offset` start.
fn slots_offset(region: &Region, offset: usize) -> crate::Result<usize> {
    offset.checked_add(HEADER_SIZE).ok_or(Error::OutOfBounds {
        offset,
        size: HEADER_SIZE,
        len: region.len(),
    })
}
