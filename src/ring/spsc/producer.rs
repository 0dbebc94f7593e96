//! The producing side of an SPSC ring and its in-place write chunk.

use super::{SpscRing, WriteChunk, BAD_HEAD};
use crate::primitive::Ordering;
use crate::ring::{Corrupted, Miss, PushError};
use bytemuck::Pod;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

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
    pub(super) ring: SpscRing<'a, T>,
    /// The next index to write. Always equal to the shared `tail`: this
    /// side is its only writer, and never reads it back after attaching.
    pub(super) tail: u64,
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
    /// The producer of `ring` whose `tail` is `tail`, having seen `head`
    /// (checked by the caller: `tail - head <= capacity`).
    pub(super) fn new(ring: SpscRing<'a, T>, tail: u64, head: u64) -> Self {
        Self {
            ring,
            tail,
            head_cache: head,
            _not_sync: PhantomData,
        }
    }

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
        self.push_ref(&value)
            .map_err(|miss| PushError::from_miss(miss, value))
    }

    /// [`try_push`](Self::try_push) from a reference: the value is copied
    /// once, into its slot, and the result is small whatever `T` is (the
    /// channels push through this).
    #[inline]
    pub(crate) fn push_ref(&mut self, value: &T) -> Result<(), Miss> {
        let tail = self.tail;
        if tail.wrapping_sub(self.head_cache) >= self.ring.cap() && self.refresh_head()? == 0 {
            return Err(Miss::WouldBlock);
        }
        // SAFETY: `tail - head <= capacity - 1` (checked above), so slot
        // `tail` is in the producer's part of the ring.
        unsafe { self.ring.slot(tail).write(*value) };
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
    pub(super) fn publish(&mut self, n: usize) {
        if n > 0 {
            self.tail = self.tail.wrapping_add(n as u64);
            self.ring.header.tail.store(self.tail, Ordering::Release);
        }
    }
}
