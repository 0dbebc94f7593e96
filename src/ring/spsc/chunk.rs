//! In-place access to a run of slots: the producer's [`WriteChunk`] and
//! the consumer's [`ReadChunk`].

use super::{Consumer, Producer};
use bytemuck::Pod;
use core::fmt;

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
    pub(super) producer: &'p mut Producer<'a, T>,
    /// Slots reserved from `producer.tail` on; at most the free slots.
    pub(super) len: usize,
    /// Loom cannot see through slices of its cells: under loom the chunk
    /// is a copy, read from the slots when reserved and written back when
    /// committed, so the model still checks every slot access against the
    /// index loads and stores.
    #[cfg(shmkit_loom)]
    pub(super) staging: Vec<T>,
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
    pub(super) consumer: &'c mut Consumer<'a, T>,
    /// Values lent from `consumer.head` on; at most the ready values.
    pub(super) len: usize,
    /// Under loom, a copy read from the slots when lent (see
    /// [`WriteChunk`]).
    #[cfg(shmkit_loom)]
    pub(super) staging: Vec<T>,
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
