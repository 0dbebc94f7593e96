//! The consuming side of an SPSC ring and its in-place read chunk.

use super::{ReadChunk, SpscRing, BAD_TAIL};
use crate::primitive::Ordering;
use crate::ring::{Corrupted, PopError};
use bytemuck::Pod;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

/// The consuming side of an [`SpscRing`]: this process's copy of `head`
/// and its cache of `tail`.
///
/// `Send` but not `Sync`, like [`Producer`](super::Producer).
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
    pub(super) ring: SpscRing<'a, T>,
    /// The next index to read. Always equal to the shared `head`: this
    /// side is its only writer, and never reads it back after attaching.
    pub(super) head: u64,
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
    /// The consumer of `ring` whose `head` is `head`, having seen `tail`
    /// (checked by the caller: `tail - head <= capacity`).
    pub(super) fn new(ring: SpscRing<'a, T>, head: u64, tail: u64) -> Self {
        Self {
            ring,
            head,
            tail_cache: tail,
            _not_sync: PhantomData,
        }
    }

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
    pub(super) fn release(&mut self, n: usize) {
        if n > 0 {
            self.head = self.head.wrapping_add(n as u64);
            self.ring.header.head.store(self.head, Ordering::Release);
        }
    }
}
