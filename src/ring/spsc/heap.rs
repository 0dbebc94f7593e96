//! An SPSC ring on the heap.

use super::wire::SpscHeader;
use super::{init_header, validate_header, Consumer, Producer, SpscRing};
use crate::error::Error;
use crate::ring::{Corrupted, Slot};
use bytemuck::Pod;
use core::fmt;

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
    pub(super) header: Box<SpscHeader>,
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
    /// (the capacity must also match the slot array), for tests that
    /// scribble on the header ([`testing`](crate::testing)).
    pub(crate) fn open(&self) -> crate::Result<SpscRing<'_, T>> {
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
