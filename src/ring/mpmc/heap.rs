//! An MPMC ring on the heap.

use super::{check_capacity, check_element, init, MpmcHeader, MpmcRing, MpmcSlot};
use crate::error::Result;
use crate::primitive::AtomicU64;
use crate::ring::Slot;
use bytemuck::Pod;
use core::fmt;

/// An MPMC ring on the heap, for threads of one process, unit tests and
/// loom models; [`ring`](Self::ring) gives the same [`MpmcRing`] view a
/// region does.
///
/// ```
/// use shmkit::ring::mpmc::HeapMpmcRing;
/// use shmkit::ring::PushError;
///
/// let heap = HeapMpmcRing::<[u8; 4]>::new(2)?;
/// let ring = heap.ring();
/// ring.try_push(*b"ping")?;
/// ring.try_push(*b"pong")?;
/// assert_eq!(ring.try_push(*b"full"), Err(PushError::Full(*b"full")));
/// assert_eq!(ring.try_pop()?, *b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HeapMpmcRing<T: Pod> {
    header: Box<MpmcHeader>,
    slots: Box<[MpmcSlot<T>]>,
}

impl<T: Pod + Send> HeapMpmcRing<T> {
    /// An empty ring of `capacity` slots (a power of two in
    /// `1..=MAX_CAPACITY`, else [`Error::InvalidSize`](crate::Error::InvalidSize)).
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

impl<T: Pod + Send> fmt::Debug for HeapMpmcRing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeapMpmcRing").field(&self.ring()).finish()
    }
}
