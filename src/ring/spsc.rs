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
//! A ring at `offset` in a region (128-aligned) is a [`SpscHeader`]
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
//! with index `i` lives in slot `i & (capacity - 1)`. The constants
//! [`MAGIC_OFFSET`], [`CAPACITY_OFFSET`], [`ELEM_SIZE_OFFSET`],
//! [`ELEM_ALIGN_OFFSET`], [`HEAD_OFFSET`], [`TAIL_OFFSET`] and
//! [`HEADER_SIZE`] name these positions.
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

use super::{Corrupted, PopError, PushError, Slot};
use crate::blocks::{CachePadded, ShmSafe};
use crate::error::Error;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::region::Region;
use bytemuck::Pod;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

/// The magic word of an SPSC ring header: `b"shmkSPSC"` read as a
/// little-endian `u64`.
pub const SPSC_MAGIC: u64 = u64::from_le_bytes(*b"shmkSPSC");
/// Offset of the magic word (`u64`) in the header.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the capacity (`u64`) in the header.
pub const CAPACITY_OFFSET: usize = 8;
/// Offset of the element size (`u32`) in the header.
pub const ELEM_SIZE_OFFSET: usize = 16;
/// Offset of the element alignment (`u32`) in the header.
pub const ELEM_ALIGN_OFFSET: usize = 20;
/// Offset of `head` (`u64`, written by the consumer) in the header.
pub const HEAD_OFFSET: usize = 128;
/// Offset of `tail` (`u64`, written by the producer) in the header.
pub const TAIL_OFFSET: usize = 256;
/// Size of the header; the slots follow it.
pub const HEADER_SIZE: usize = 384;
/// The largest element alignment a ring accepts: the header's.
pub const MAX_ALIGN: usize = 128;

/// What a correct peer never does to `head`, as the producer sees it.
const BAD_HEAD: &str = "SPSC head moved backwards or past tail";
/// What a correct peer never does to `tail`, as the consumer sees it.
const BAD_TAIL: &str = "SPSC tail moved backwards or more than capacity past head";
/// Indices that no correct pair of sides leaves behind.
const BAD_INDICES: &str = "SPSC tail is not within capacity of head";

/// The shared header of an SPSC ring; see the [module documentation](self)
/// for its layout.
///
/// All fields are atomics. Only [`SpscRing`] reads and writes them; the
/// type is public so that callers can size and place rings, and so that
/// tests can find the documented words.
///
/// ```
/// use shmkit::ring::spsc::{SpscHeader, HEADER_SIZE, MAX_ALIGN};
/// assert_eq!(std::mem::size_of::<SpscHeader>(), HEADER_SIZE);
/// assert_eq!(std::mem::align_of::<SpscHeader>(), MAX_ALIGN);
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct SpscHeader {
    magic: AtomicU64,
    capacity: AtomicU64,
    elem_size: AtomicU32,
    elem_align: AtomicU32,
    /// Values popped since creation; written by the consumer only.
    head: CachePadded<AtomicU64>,
    /// Values pushed since creation; written by the producer only.
    tail: CachePadded<AtomicU64>,
}

// SAFETY: repr(C) (and repr(C, align(128)) lines) holding only integer
// atomics: every bit pattern is valid (and checked before use), zero is a
// recognizably uninitialized header, no pointers, no Drop.
unsafe impl ShmSafe for SpscHeader {}

#[cfg(not(shmkit_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(SpscHeader, magic) == MAGIC_OFFSET);
    assert!(offset_of!(SpscHeader, capacity) == CAPACITY_OFFSET);
    assert!(offset_of!(SpscHeader, elem_size) == ELEM_SIZE_OFFSET);
    assert!(offset_of!(SpscHeader, elem_align) == ELEM_ALIGN_OFFSET);
    assert!(offset_of!(SpscHeader, head) == HEAD_OFFSET);
    assert!(offset_of!(SpscHeader, tail) == TAIL_OFFSET);
    assert!(size_of::<SpscHeader>() == HEADER_SIZE);
    assert!(align_of::<SpscHeader>() == MAX_ALIGN);
};

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
    /// [`HEADER_SIZE`]-byte header plus the slots.
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

    /// The shared header, for callers that need its address (for example
    /// to watch or, in tests, to scribble on the documented words).
    pub fn header(&self) -> &'a SpscHeader {
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
        Ok(Producer {
            ring: *self,
            tail,
            head_cache: head,
            _not_sync: PhantomData,
        })
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
        Ok(Consumer {
            ring: *self,
            head,
            tail_cache: tail,
            _not_sync: PhantomData,
        })
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

/// The producing side of an [`SpscRing`]: this process's copy of `tail`
/// and its cache of `head`.
///
/// `Send` (it may move to another thread) but not `Sync`: its state is
/// plain local fields, and every operation takes `&mut self`.
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<shmkit::ring::spsc::Producer<'static, u64>>();
/// ```
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
///
/// let mut heap = HeapSpscRing::<u64>::new(8)?;
/// let (mut tx, mut rx) = heap.split()?;
/// std::thread::scope(|s| {
///     s.spawn(move || {
///         let mut want = 0;
///         while want < 100 {
///             match rx.try_pop() {
///                 Ok(v) => { assert_eq!(v, want); want += 1; }
///                 Err(_) => std::thread::yield_now(),
///             }
///         }
///     });
///     let mut next = 0;
///     while next < 100 {
///         match tx.try_push(next) {
///             Ok(()) => next += 1,
///             Err(_) => std::thread::yield_now(),
///         }
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<'a, T: Pod> {
    ring: SpscRing<'a, T>,
    /// The next index to write. Always equal to the shared `tail`: this
    /// side is its only writer, and never reads it back after attaching.
    tail: u64,
    /// The last `head` seen; `head_cache <= head <= tail` and `tail -
    /// head_cache <= capacity`. Refreshed only when it says "no room".
    head_cache: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Pod> fmt::Debug for Producer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.ring.capacity())
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .finish()
    }
}

impl<'a, T: Pod> Producer<'a, T> {
    /// The ring this producer writes to.
    pub fn ring(&self) -> SpscRing<'a, T> {
        self.ring
    }

    /// The number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// How many values are in the ring: a fresh look at `head`. The
    /// consumer may take more at any moment, so this is an upper bound.
    /// Clamped to `0..=capacity` as [`SpscRing::len`] is (a scribbled
    /// `head` is the next push's to report).
    pub fn len(&self) -> usize {
        let head = self.ring.header.head.load(Ordering::Acquire);
        self.ring.clamp_len(self.tail.wrapping_sub(head))
    }

    /// Whether the ring is empty (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pushes one value; [`PushError::Full`] (with the value) if there is
    /// no room.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), PushError<T>> {
        let tail = self.tail;
        if tail.wrapping_sub(self.head_cache) >= self.ring.cap() && self.refresh_head()? == 0 {
            return Err(PushError::Full(value));
        }
        // SAFETY: `tail - head <= capacity - 1` (checked above), so slot
        // `tail` is in the producer's part of the ring.
        unsafe { self.ring.slot(tail).write(value) };
        self.publish(1);
        Ok(())
    }

    /// Pushes as many values from the front of `src` as fit; returns how
    /// many (0 if the ring is full or `src` is empty). One store publishes
    /// them all.
    #[inline]
    pub fn push_slice(&mut self, src: &[T]) -> Result<usize, Corrupted> {
        let n = self.reserve(src.len())?;
        // SAFETY: `reserve` found `n` free slots from `tail` on.
        unsafe { self.ring.copy_in(self.tail, &src[..n]) };
        self.publish(n);
        Ok(n)
    }

    /// Reserves up to `n` slots for writing in place: the chunk covers
    /// `min(n, free)` slots (none if the ring is full), as one or two
    /// slices (two when they wrap past the end of the array). Nothing is
    /// published until [`WriteChunk::commit`].
    ///
    /// The slots hold stale values; write every one you commit.
    ///
    /// ```
    /// use shmkit::ring::spsc::HeapSpscRing;
    ///
    /// let mut heap = HeapSpscRing::<u64>::new(4)?;
    /// let (mut tx, mut rx) = heap.split()?;
    /// let mut chunk = tx.write_chunk(3)?;
    /// let (a, b) = chunk.as_mut_slices();
    /// for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
    ///     *v = 10 * i as u64;
    /// }
    /// chunk.commit(2); // publish the first two
    /// assert_eq!(rx.len(), 2);
    /// assert_eq!(rx.try_pop()?, 0);
    /// assert_eq!(rx.try_pop()?, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, 'a, T>, Corrupted> {
        let len = self.reserve(n)?;
        #[cfg(shmkit_loom)]
        let staging = {
            let mut v = vec![T::zeroed(); len];
            // SAFETY: `reserve` found `len` free slots from `tail` on.
            unsafe { self.ring.copy_out(self.tail, &mut v) };
            v
        };
        Ok(WriteChunk {
            producer: self,
            len,
            #[cfg(shmkit_loom)]
            staging,
        })
    }

    /// `min(want, free slots)`, looking at the shared `head` only if the
    /// cached one does not show `want` free slots.
    #[inline]
    fn reserve(&mut self, want: usize) -> Result<usize, Corrupted> {
        let mut free = self.ring.cap() - self.tail.wrapping_sub(self.head_cache);
        if (want as u64) > free {
            free = self.refresh_head()?;
        }
        Ok(want.min(free as usize))
    }

    /// Loads and checks the shared `head`: a correct consumer only moves it
    /// forward, and never past `tail`.
    #[inline]
    fn load_head(&self) -> Result<u64, Corrupted> {
        let head = self.ring.header.head.load(Ordering::Acquire);
        if head.wrapping_sub(self.head_cache) > self.tail.wrapping_sub(self.head_cache) {
            return Err(Corrupted(BAD_HEAD));
        }
        Ok(head)
    }

    /// Refreshes the cached `head`; returns the number of free slots.
    #[inline]
    fn refresh_head(&mut self) -> Result<u64, Corrupted> {
        let head = self.load_head()?;
        self.head_cache = head;
        Ok(self.ring.cap() - self.tail.wrapping_sub(head))
    }

    /// Publishes the next `n` slots (written, and free per `head_cache`).
    #[inline]
    fn publish(&mut self, n: usize) {
        if n > 0 {
            self.tail = self.tail.wrapping_add(n as u64);
            self.ring.header.tail.store(self.tail, Ordering::Release);
        }
    }
}

/// The consuming side of an [`SpscRing`]: this process's copy of `head`
/// and its cache of `tail`.
///
/// `Send` but not `Sync`, like [`Producer`].
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<shmkit::ring::spsc::Consumer<'static, u64>>();
/// ```
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
/// use shmkit::ring::PopError;
///
/// let mut heap = HeapSpscRing::<[u8; 4]>::new(4)?;
/// let (mut tx, mut rx) = heap.split()?;
/// assert_eq!(rx.try_pop(), Err(PopError::Empty));
/// tx.try_push(*b"ping")?;
/// assert_eq!(rx.peek()?, *b"ping");
/// assert_eq!(rx.try_pop()?, *b"ping");
/// assert!(rx.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer<'a, T: Pod> {
    ring: SpscRing<'a, T>,
    /// The next index to read. Always equal to the shared `head`: this
    /// side is its only writer, and never reads it back after attaching.
    head: u64,
    /// The last `tail` seen; `head <= tail_cache <= tail <= head +
    /// capacity`. Refreshed only when it says "empty".
    tail_cache: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Pod> fmt::Debug for Consumer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.ring.capacity())
            .field("head", &self.head)
            .field("tail_cache", &self.tail_cache)
            .finish()
    }
}

impl<'a, T: Pod> Consumer<'a, T> {
    /// The ring this consumer reads from.
    pub fn ring(&self) -> SpscRing<'a, T> {
        self.ring
    }

    /// The number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// How many values are ready: a fresh look at `tail`. The producer may
    /// add more at any moment, so this is a lower bound. Clamped to
    /// `0..=capacity` as [`SpscRing::len`] is (a scribbled `tail` is the
    /// next pop's to report).
    pub fn len(&self) -> usize {
        let tail = self.ring.header.tail.load(Ordering::Acquire);
        self.ring.clamp_len(tail.wrapping_sub(self.head))
    }

    /// Whether no value is ready (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pops one value; [`PopError::Empty`] if there is none.
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, PopError> {
        let mut value = T::zeroed();
        self.pop_into(&mut value)?;
        Ok(value)
    }

    /// Pops one value into `out`; [`PopError::Empty`] (and `out`
    /// untouched) if there is none. The same as [`try_pop`](Self::try_pop)
    /// without moving a large `T` through the result, which for a large
    /// `T` inside other results can cost more than the ring itself.
    ///
    /// ```
    /// use shmkit::ring::spsc::HeapSpscRing;
    ///
    /// let mut heap = HeapSpscRing::<[u8; 64]>::new(4)?;
    /// let (mut tx, mut rx) = heap.split()?;
    /// tx.try_push([1; 64])?;
    /// let mut msg = [0; 64];
    /// rx.pop_into(&mut msg)?;
    /// assert_eq!(msg, [1; 64]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn pop_into(&mut self, out: &mut T) -> Result<(), PopError> {
        let head = self.head;
        if head == self.tail_cache && self.refresh_tail()? == 0 {
            return Err(PopError::Empty);
        }
        // SAFETY: `head < tail` (checked above), so slot `head` holds a
        // published value and belongs to the consumer.
        unsafe { self.ring.slot(head).read_into(out) };
        self.release(1);
        Ok(())
    }

    /// Copies the next value without popping it; [`PopError::Empty`] if
    /// there is none.
    #[inline]
    pub fn peek(&mut self) -> Result<T, PopError> {
        let head = self.head;
        if head == self.tail_cache && self.refresh_tail()? == 0 {
            return Err(PopError::Empty);
        }
        // SAFETY: as in `try_pop`.
        Ok(unsafe { self.ring.slot(head).read() })
    }

    /// Pops as many values as are ready into the front of `dst`; returns
    /// how many (0 if the ring is empty or `dst` is). One store frees all
    /// their slots.
    #[inline]
    pub fn pop_slice(&mut self, dst: &mut [T]) -> Result<usize, Corrupted> {
        let n = self.available(dst.len())?;
        // SAFETY: `available` found `n` published values from `head` on.
        unsafe { self.ring.copy_out(self.head, &mut dst[..n]) };
        self.release(n);
        Ok(n)
    }

    /// Gives in-place access to up to `n` ready values: the chunk covers
    /// `min(n, ready)` slots (none if the ring is empty), as one or two
    /// slices. Their slots are freed only by [`ReadChunk::release`].
    ///
    /// ```
    /// use shmkit::ring::spsc::HeapSpscRing;
    ///
    /// let mut heap = HeapSpscRing::<u64>::new(4)?;
    /// let (mut tx, mut rx) = heap.split()?;
    /// tx.push_slice(&[1, 2, 3])?;
    /// let chunk = rx.read_chunk(8)?;
    /// let (a, b) = chunk.as_slices();
    /// assert_eq!(a.iter().chain(b).sum::<u64>(), 6);
    /// chunk.release(1);
    /// assert_eq!(rx.try_pop()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, 'a, T>, Corrupted> {
        let len = self.available(n)?;
        #[cfg(shmkit_loom)]
        let staging = {
            let mut v = vec![T::zeroed(); len];
            // SAFETY: `available` found `len` published values from `head`.
            unsafe { self.ring.copy_out(self.head, &mut v) };
            v
        };
        Ok(ReadChunk {
            consumer: self,
            len,
            #[cfg(shmkit_loom)]
            staging,
        })
    }

    /// `min(want, ready values)`, looking at the shared `tail` only if the
    /// cached one does not show `want` ready values.
    #[inline]
    fn available(&mut self, want: usize) -> Result<usize, Corrupted> {
        let mut ready = self.tail_cache.wrapping_sub(self.head);
        if (want as u64) > ready {
            ready = self.refresh_tail()?;
        }
        Ok(want.min(ready as usize))
    }

    /// Loads and checks the shared `tail`: a correct producer only moves it
    /// forward, and never more than `capacity` past `head`.
    #[inline]
    fn load_tail(&self) -> Result<u64, Corrupted> {
        let tail = self.ring.header.tail.load(Ordering::Acquire);
        let limit = self.head.wrapping_add(self.ring.cap());
        if tail.wrapping_sub(self.tail_cache) > limit.wrapping_sub(self.tail_cache) {
            return Err(Corrupted(BAD_TAIL));
        }
        Ok(tail)
    }

    /// Refreshes the cached `tail`; returns the number of ready values.
    #[inline]
    fn refresh_tail(&mut self) -> Result<u64, Corrupted> {
        let tail = self.load_tail()?;
        self.tail_cache = tail;
        Ok(tail.wrapping_sub(self.head))
    }

    /// Frees the next `n` slots (read, and published per `tail_cache`).
    #[inline]
    fn release(&mut self, n: usize) {
        if n > 0 {
            self.head = self.head.wrapping_add(n as u64);
            self.ring.header.head.store(self.head, Ordering::Release);
        }
    }
}

/// Slots reserved by [`Producer::write_chunk`], written in place and then
/// published with [`commit`](Self::commit). Dropping it publishes nothing.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
///
/// let mut heap = HeapSpscRing::<u32>::new(4)?;
/// let (mut tx, mut rx) = heap.split()?;
/// tx.push_slice(&[0, 0, 0])?;
/// rx.pop_slice(&mut [0; 3])?;
/// // Three slots from index 3 on: slot 3, then slots 0 and 1.
/// let mut chunk = tx.write_chunk(3)?;
/// let (end, start) = chunk.as_mut_slices();
/// assert_eq!((end.len(), start.len()), (1, 2));
/// end[0] = 7;
/// start.copy_from_slice(&[8, 9]);
/// chunk.commit_all();
/// assert_eq!(rx.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "nothing is published until the chunk is committed"]
pub struct WriteChunk<'p, 'a, T: Pod> {
    producer: &'p mut Producer<'a, T>,
    /// Slots reserved from `producer.tail` on; at most the free slots.
    len: usize,
    /// Loom cannot see through slices of its cells: under loom the chunk
    /// is a copy, read from the slots when reserved and written back when
    /// committed, so the model still checks every slot access against the
    /// index loads and stores.
    #[cfg(shmkit_loom)]
    staging: Vec<T>,
}

impl<T: Pod> fmt::Debug for WriteChunk<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunk")
            .field("start", &self.producer.tail)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> WriteChunk<'_, '_, T> {
    /// The number of reserved slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reserved slots, in order: the run up to the end of the slot
    /// array, then the run that wrapped to its start (often empty).
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let (pos, first) = self.producer.ring.split(self.producer.tail, self.len);
        #[cfg(not(shmkit_loom))]
        {
            let base = self.producer.ring.base();
            // SAFETY: `[pos, pos + first)` and `[0, len - first)` lie in the
            // slot array and are disjoint (`len <= capacity`); they are free
            // slots that only this producer may touch, and `&mut self`
            // (which borrows the producer mutably) keeps them exclusive for
            // the slices' lifetime. Any bytes are a valid `T: Pod`.
            unsafe {
                (
                    core::slice::from_raw_parts_mut(base.add(pos), first),
                    core::slice::from_raw_parts_mut(base, self.len - first),
                )
            }
        }
        #[cfg(shmkit_loom)]
        {
            let _ = pos;
            self.staging.split_at_mut(first)
        }
    }

    /// Publishes the first `k` slots of the chunk with one store of `tail`.
    ///
    /// # Panics
    ///
    /// If `k` is larger than the chunk.
    pub fn commit(self, k: usize) {
        assert!(
            k <= self.len,
            "commit of {k} values from a chunk of {}",
            self.len
        );
        #[cfg(shmkit_loom)]
        // SAFETY: the chunk's slots are free and reserved to this producer.
        unsafe {
            self.producer
                .ring
                .copy_in(self.producer.tail, &self.staging[..k])
        };
        self.producer.publish(k);
    }

    /// Publishes the whole chunk.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }
}

/// Ready values lent by [`Consumer::read_chunk`], read in place and then
/// freed with [`release`](Self::release). Dropping it frees nothing.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
///
/// let mut heap = HeapSpscRing::<u32>::new(4)?;
/// let (mut tx, mut rx) = heap.split()?;
/// tx.push_slice(&[1, 2, 3])?;
/// let chunk = rx.read_chunk(2)?;
/// assert_eq!(chunk.as_slices(), (&[1, 2][..], &[][..]));
/// drop(chunk); // frees nothing
/// assert_eq!(rx.len(), 3);
/// let chunk = rx.read_chunk(3)?;
/// chunk.release_all();
/// assert!(rx.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "no slot is freed until the chunk is released"]
pub struct ReadChunk<'c, 'a, T: Pod> {
    consumer: &'c mut Consumer<'a, T>,
    /// Values lent from `consumer.head` on; at most the ready values.
    len: usize,
    /// Under loom, a copy read from the slots when lent (see
    /// [`WriteChunk`]).
    #[cfg(shmkit_loom)]
    staging: Vec<T>,
}

impl<T: Pod> fmt::Debug for ReadChunk<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("start", &self.consumer.head)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> ReadChunk<'_, '_, T> {
    /// The number of values lent.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is lent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values, in order: the run up to the end of the slot array, then
    /// the run that wrapped to its start (often empty).
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let (pos, first) = self.consumer.ring.split(self.consumer.head, self.len);
        #[cfg(not(shmkit_loom))]
        {
            let base = self.consumer.ring.base();
            // SAFETY: in bounds and disjoint as in `WriteChunk::as_mut_slices`;
            // published slots that the producer does not write until `head`
            // passes them, which needs `release` and so the end of this
            // borrow. Any bytes are a valid `T: Pod`.
            unsafe {
                (
                    core::slice::from_raw_parts(base.add(pos), first),
                    core::slice::from_raw_parts(base, self.len - first),
                )
            }
        }
        #[cfg(shmkit_loom)]
        {
            let _ = pos;
            self.staging.split_at(first)
        }
    }

    /// Frees the first `k` values of the chunk with one store of `head`.
    ///
    /// # Panics
    ///
    /// If `k` is larger than the chunk.
    pub fn release(self, k: usize) {
        assert!(
            k <= self.len,
            "release of {k} values from a chunk of {}",
            self.len
        );
        self.consumer.release(k);
    }

    /// Frees the whole chunk.
    pub fn release_all(self) {
        let n = self.len;
        self.release(n);
    }
}

/// An SPSC ring on the heap, for unit tests, loom models, fuzzing and
/// threads of one process (loom cannot see atomics inside mapped memory).
/// Its view is the same [`SpscRing`]; [`split`](Self::split) attaches
/// both sides without `unsafe`.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
///
/// let heap = HeapSpscRing::<u64>::new(16)?;
/// assert_eq!(heap.ring().capacity(), 16);
/// assert!(HeapSpscRing::<u64>::new(12).is_err());
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct HeapSpscRing<T: Pod> {
    header: Box<SpscHeader>,
    slots: Box<[Slot<T>]>,
}

impl<T: Pod> fmt::Debug for HeapSpscRing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeapSpscRing").field(&self.ring()).finish()
    }
}

impl<T: Pod> HeapSpscRing<T> {
    /// An empty ring of `capacity` slots; [`Error::InvalidSize`] as for
    /// [`SpscRing::bytes_for`].
    pub fn new(capacity: usize) -> crate::Result<Self> {
        SpscRing::<T>::bytes_for(capacity)?;
        let header = Box::<SpscHeader>::default();
        init_header::<T>(&header, capacity);
        let slots = (0..capacity).map(|_| Slot::new(T::zeroed())).collect();
        Ok(Self { header, slots })
    }

    /// The view. It takes the capacity from the slot array, not the header.
    pub fn ring(&self) -> SpscRing<'_, T> {
        SpscRing {
            header: &self.header,
            slots: &self.slots,
        }
    }

    /// The view, after checking the header as [`SpscRing::open`] does
    /// (the capacity must also match the slot array): for tests that
    /// scribble on the header.
    pub fn open(&self) -> crate::Result<SpscRing<'_, T>> {
        if validate_header::<T>(&self.header)? != self.slots.len() {
            return Err(Error::Corrupted {
                what: "SPSC ring capacity differs from its slot array",
            });
        }
        Ok(self.ring())
    }

    /// The producer and the consumer. Safe: `&mut self` stays borrowed
    /// while they live, so no other handle of this ring exists or can be
    /// made (a view from [`ring`](Self::ring) needs `&self`), and the ring
    /// is on the heap, out of reach of any other process. Once both are
    /// dropped, `split` again resumes where they stopped.
    ///
    /// Fails with [`Corrupted`] if the indices are invalid
    /// (they are private to this type, so only its own tests scribble on
    /// them).
    ///
    /// ```
    /// use shmkit::ring::spsc::HeapSpscRing;
    ///
    /// let mut heap = HeapSpscRing::<u64>::new(4)?;
    /// let (mut tx, mut rx) = heap.split()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(move || {
    ///         for i in 0..100 {
    ///             while tx.try_push(i).is_err() {
    ///                 std::thread::yield_now();
    ///             }
    ///         }
    ///     });
    ///     for want in 0..100 {
    ///         loop {
    ///             match rx.try_pop() {
    ///                 Ok(v) => break assert_eq!(v, want),
    ///                 Err(_) => std::thread::yield_now(),
    ///             }
    ///         }
    ///     }
    /// });
    /// let (_tx, mut rx) = heap.split()?; // resumes: empty, at index 100
    /// assert!(rx.try_pop().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(&mut self) -> Result<(Producer<'_, T>, Consumer<'_, T>), Corrupted> {
        let ring = self.ring();
        // SAFETY: `&mut self` is borrowed for as long as both handles
        // live, so no other view, and hence no other handle, of this ring
        // exists meanwhile; the header and slots are this value's own heap
        // allocations, which nothing else can write.
        unsafe { Ok((ring.producer()?, ring.consumer()?)) }
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fills_and_drains_with_wrap_around() {
        let heap = HeapSpscRing::<u64>::new(4).unwrap();
        let ring = heap.ring();
        // SAFETY: the only producer and consumer of a ring that only this
        // test touches.
        let (mut p, mut c) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        for round in 0..10u64 {
            for i in 0..4 {
                p.try_push(round * 4 + i).unwrap();
            }
            assert_eq!(p.try_push(99), Err(PushError::Full(99)));
            assert_eq!(ring.len(), 4);
            assert_eq!(c.peek(), Ok(round * 4));
            for i in 0..4 {
                assert_eq!(c.try_pop(), Ok(round * 4 + i));
            }
            assert_eq!(c.try_pop(), Err(PopError::Empty));
            assert_eq!(c.peek(), Err(PopError::Empty));
        }
        assert_eq!(heap.header.tail.load(Ordering::Relaxed), 40);
        assert_eq!(heap.header.head.load(Ordering::Relaxed), 40);
    }

    #[test]
    fn pop_into_fills_out_only_when_a_value_is_there() {
        let mut heap = HeapSpscRing::<[u8; 64]>::new(2).unwrap();
        let (mut p, mut c) = heap.split().unwrap();
        let mut out = [9u8; 64];
        assert_eq!(c.pop_into(&mut out), Err(PopError::Empty));
        assert_eq!(out, [9u8; 64]);
        for round in 0..3u8 {
            p.try_push([round; 64]).unwrap();
            p.try_push([round + 100; 64]).unwrap();
            c.pop_into(&mut out).unwrap();
            assert_eq!(out, [round; 64]);
            c.pop_into(&mut out).unwrap();
            assert_eq!(out, [round + 100; 64]);
        }
        assert_eq!(c.pop_into(&mut out), Err(PopError::Empty));
    }

    #[test]
    fn slices_and_chunks_split_at_the_end_of_the_array() {
        let mut heap = HeapSpscRing::<u32>::new(8).unwrap();
        let (mut p, mut c) = heap.split().unwrap();
        assert_eq!(p.push_slice(&[0, 1, 2, 3, 4, 5]).unwrap(), 6);
        let mut buf = [0; 5];
        assert_eq!(c.pop_slice(&mut buf).unwrap(), 5);
        assert_eq!(buf, [0, 1, 2, 3, 4]);
        // tail = 6, head = 5: 7 free, the run wraps after 2.
        let mut w = p.write_chunk(10).unwrap();
        assert_eq!(w.len(), 7);
        let (a, b) = w.as_mut_slices();
        assert_eq!((a.len(), b.len()), (2, 5));
        a.copy_from_slice(&[6, 7]);
        b.copy_from_slice(&[8, 9, 10, 11, 12]);
        w.commit(6);
        assert_eq!(p.len(), 7);
        let r = c.read_chunk(100).unwrap();
        let (a, b) = r.as_slices();
        assert_eq!((a, b), (&[5, 6, 7][..], &[8, 9, 10, 11][..]));
        r.release(2);
        assert_eq!(c.try_pop(), Ok(7));
        assert_eq!(c.len(), 4);
        assert_eq!(p.push_slice(&[13, 14, 15, 16, 17]).unwrap(), 4);
        assert_eq!(p.push_slice(&[17]).unwrap(), 0);
        assert_eq!(p.write_chunk(1).unwrap().len(), 0); // full: an empty chunk
        assert_eq!(p.write_chunk(0).unwrap().len(), 0);
        let mut all = [0; 9];
        assert_eq!(c.pop_slice(&mut all).unwrap(), 8);
        assert_eq!(all[..8], [8, 9, 10, 11, 13, 14, 15, 16]);
        assert_eq!(c.read_chunk(1).unwrap().len(), 0); // empty: an empty chunk
        assert_eq!(c.read_chunk(0).unwrap().len(), 0);
    }

    #[test]
    fn split_attaches_both_sides_and_resumes_where_they_stopped() {
        let mut heap = HeapSpscRing::<u64>::new(4).unwrap();
        {
            let (mut p, mut c) = heap.split().unwrap();
            assert_eq!(p.push_slice(&[1, 2, 3]), Ok(3));
            assert_eq!(c.try_pop(), Ok(1));
        }
        // New handles start from the shared indices: 2 and 3 are there.
        let (mut p, mut c) = heap.split().unwrap();
        assert_eq!((p.len(), c.len()), (2, 2));
        std::thread::scope(|s| {
            s.spawn(move || {
                for v in 4..1000 {
                    while p.try_push(v) == Err(PushError::Full(v)) {
                        std::thread::yield_now();
                    }
                }
            });
            for want in 2..1000 {
                loop {
                    match c.try_pop() {
                        Ok(v) => break assert_eq!(v, want),
                        Err(PopError::Empty) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        assert_eq!(heap.header.tail.load(Ordering::Relaxed), 999);
        assert_eq!(heap.header.head.load(Ordering::Relaxed), 999);
        heap.header.head.store(999 + 5, Ordering::Relaxed);
        assert_eq!(heap.split().unwrap_err(), Corrupted(BAD_INDICES));
    }

    #[test]
    fn capacity_one_works() {
        let mut heap = HeapSpscRing::<u8>::new(1).unwrap();
        let (mut p, mut c) = heap.split().unwrap();
        for i in 0..5 {
            p.try_push(i).unwrap();
            assert_eq!(p.try_push(i), Err(PushError::Full(i)));
            assert_eq!(c.try_pop(), Ok(i));
        }
    }

    #[test]
    fn scribbled_indices_are_reported_not_followed() {
        let heap = HeapSpscRing::<u64>::new(4).unwrap();
        let ring = heap.ring();
        // SAFETY: the only producer and consumer of a ring that only this
        // test touches.
        let (mut p, mut c) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        p.push_slice(&[1, 2, 3, 4]).unwrap();
        assert_eq!(c.try_pop(), Ok(1)); // sees tail = 4
        assert_eq!(p.try_push(5), Ok(())); // sees head = 1
        heap.header.head.store(6, Ordering::Relaxed); // past tail
        assert_eq!(p.try_push(6), Err(PushError::Corrupted(BAD_HEAD)));
        heap.header.head.store(0, Ordering::Relaxed); // backwards
        assert_eq!(p.try_push(6), Err(PushError::Corrupted(BAD_HEAD)));
        heap.header.tail.store(10, Ordering::Relaxed); // > head + capacity
        assert_eq!(c.len(), 4); // clamped; the pop that meets it reports it
                                // The cached tail still covers 2, 3, 4; the refresh after them fails.
        assert_eq!(c.try_pop(), Ok(2));
        assert_eq!(c.try_pop(), Ok(3));
        assert_eq!(c.try_pop(), Ok(4));
        assert_eq!(c.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
        heap.header.tail.store(3, Ordering::Relaxed); // backwards
        assert_eq!(c.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
        heap.header.tail.store(5, Ordering::Relaxed); // restored
        assert_eq!(c.try_pop(), Ok(5));
        heap.header.head.store(100, Ordering::Relaxed);
        // SAFETY: both calls fail (the indices are invalid), so no second
        // producer or consumer is made.
        let (p2, c2) = unsafe { (ring.producer(), ring.consumer()) };
        assert_eq!(p2.unwrap_err(), Corrupted(BAD_INDICES));
        assert_eq!(c2.unwrap_err(), Corrupted(BAD_INDICES));
        assert_eq!(ring.len(), 0); // tail behind head reads as empty
        assert!(HeapSpscRing::<u64>::new(4).unwrap().open().is_ok());
        heap.header.capacity.store(8, Ordering::Relaxed);
        assert!(matches!(heap.open(), Err(Error::Corrupted { .. })));
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    //! Two threads, a capacity-2 ring, five values: the indices pass the
    //! capacity twice, so every slot is reused while the other side may
    //! still be looking at it. Loom checks each slot access (an
    //! `UnsafeCell`) against the index stores and loads that should order
    //! it, and the assertions check FIFO order with nothing lost or
    //! duplicated.
    use super::*;
    use crate::ring::Miss;
    use std::sync::Arc;

    const N: u64 = 5;

    /// Retries `op` while it would block, yielding (loom explores the
    /// other thread meanwhile); panics on corruption.
    fn retry<R, E: Into<Miss>>(mut op: impl FnMut() -> Result<R, E>) -> R {
        loop {
            match op().map_err(Into::into) {
                Ok(r) => return r,
                Err(Miss::WouldBlock) => loom::thread::yield_now(),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }

    fn model(
        produce: impl Fn(&mut Producer<'_, u64>) + Send + Sync + 'static,
        consume: impl Fn(&mut Consumer<'_, u64>) -> Vec<u64> + Send + Sync + 'static,
    ) {
        let produce = Arc::new(produce);
        let consume = Arc::new(consume);
        loom::model(move || {
            let heap = Arc::new(HeapSpscRing::<u64>::new(2).unwrap());
            let producer = {
                let (heap, produce) = (heap.clone(), produce.clone());
                loom::thread::spawn(move || {
                    let ring = heap.ring();
                    // SAFETY: the model's only producer.
                    produce(&mut unsafe { ring.producer() }.unwrap());
                })
            };
            let ring = heap.ring();
            // SAFETY: the model's only consumer.
            let mut c = unsafe { ring.consumer() }.unwrap();
            let got = consume(&mut c);
            assert_eq!(got, (0..N).collect::<Vec<_>>());
            producer.join().unwrap();
            assert_eq!(c.try_pop(), Err(PopError::Empty));
            assert_eq!(ring.len(), 0);
        });
    }

    #[test]
    fn single_push_pop_fifo_across_wrap_around() {
        model(
            |p| {
                for v in 0..N {
                    retry(|| p.try_push(v));
                }
            },
            |c| {
                (0..N)
                    .map(|i| {
                        if i == 2 {
                            // Once the ring has wrapped: peek, then a
                            // snapshot of what is ready.
                            let peeked = retry(|| c.peek());
                            let len = c.len();
                            assert!((1..=2).contains(&len), "len {len}");
                            assert_eq!(c.try_pop(), Ok(peeked));
                            return peeked;
                        }
                        retry(|| c.try_pop())
                    })
                    .collect()
            },
        );
    }

    #[test]
    fn slices_fifo_across_wrap_around() {
        model(
            |p| {
                let src: Vec<u64> = (0..N).collect();
                let mut sent = 0;
                while sent < src.len() {
                    match p.push_slice(&src[sent..]).unwrap() {
                        0 => loom::thread::yield_now(),
                        n => sent += n,
                    }
                }
            },
            |c| {
                let mut got = vec![0; N as usize];
                let mut n = 0;
                while n < got.len() {
                    // Ask for 3 so a request larger than the ring is tried.
                    let end = (n + 3).min(got.len());
                    match c.pop_slice(&mut got[n..end]).unwrap() {
                        0 => loom::thread::yield_now(),
                        k => n += k,
                    }
                }
                got
            },
        );
    }

    #[test]
    fn chunks_fifo_across_wrap_around() {
        model(
            |p| {
                let mut next = 0;
                while next < N {
                    let mut chunk = p.write_chunk(2).unwrap();
                    if chunk.is_empty() {
                        drop(chunk);
                        loom::thread::yield_now();
                        continue;
                    }
                    let (a, b) = chunk.as_mut_slices();
                    for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                        *v = next + i as u64;
                    }
                    // Commit one at a time on the first chunk, to exercise a
                    // partial commit; everything after that.
                    let k = if next == 0 { 1 } else { chunk.len() };
                    let k = k.min((N - next) as usize);
                    chunk.commit(k);
                    next += k as u64;
                }
            },
            |c| {
                let mut got = Vec::new();
                while got.len() < N as usize {
                    let chunk = c.read_chunk(2).unwrap();
                    if chunk.is_empty() {
                        drop(chunk);
                        loom::thread::yield_now();
                        continue;
                    }
                    let (a, b) = chunk.as_slices();
                    let first = a.first().or(b.first()).copied().unwrap();
                    got.push(first);
                    // Release only the first value: the rest is read again
                    // next time, from the same slots.
                    chunk.release(1);
                }
                got
            },
        );
    }

    /// An observer's snapshot never shows a tail behind the head, however
    /// it interleaves with both sides (capacity 1, so it also sees the
    /// tail run more than a capacity ahead of the head it loaded first,
    /// which it reports as full).
    #[test]
    fn a_third_party_snapshot_is_never_reported_corrupted() {
        loom::model(|| {
            let heap = Arc::new(HeapSpscRing::<u64>::new(1).unwrap());
            let threads: Vec<_> = [0, 1]
                .into_iter()
                .map(|side| {
                    let heap = heap.clone();
                    loom::thread::spawn(move || {
                        let ring = heap.ring();
                        if side == 0 {
                            // SAFETY: the model's only producer.
                            let mut p = unsafe { ring.producer() }.unwrap();
                            for v in 0..2 {
                                retry(|| p.try_push(v));
                            }
                        } else {
                            // SAFETY: the model's only consumer.
                            let mut c = unsafe { ring.consumer() }.unwrap();
                            for v in 0..2 {
                                assert_eq!(retry(|| c.try_pop()), v);
                            }
                        }
                    })
                })
                .collect();
            // Loom's exploration only tracks the last access to each
            // atomic, and misses the observer's loads racing with a side
            // that loaded the same word before storing it; yielding between
            // snapshots lets the sides run in between instead.
            for _ in 0..2 {
                let len = heap.ring().len();
                assert!(len <= 1, "len {len}");
                loom::thread::yield_now();
            }
            for t in threads {
                t.join().unwrap();
            }
        });
    }
}
