//! The ring layer's errors, one per kind of operation: a push can only
//! find the ring full or corrupted, a pop empty or corrupted, a snapshot
//! or a batch copy (which moves what fits, possibly nothing) only
//! corrupted. The byte ring's record operations add a length check:
//! [`bytes::WriteError`](super::bytes::WriteError) and
//! [`bytes::PopIntoError`](super::bytes::PopIntoError).

use std::fmt;

/// The ring's shared state holds a value no correct participant writes (a
/// peer scribbled on it): the only way a batch copy, an attach or a
/// snapshot can fail.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
///
/// let mut heap = HeapSpscRing::<u64>::new(4)?;
/// let (mut tx, mut rx) = heap.split()?;
/// assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5])?, 4); // what fits
/// let mut buf = [0; 8];
/// assert_eq!(rx.pop_slice(&mut buf)?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring state is corrupted: {0}")]
pub struct Corrupted(pub &'static str);

/// Why [`try_push`](super::spsc::Producer::try_push) pushed nothing; the
/// value comes back.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
/// use shmkit::ring::PushError;
///
/// let mut heap = HeapSpscRing::<u32>::new(2)?;
/// let (mut tx, _rx) = heap.split()?;
/// tx.try_push(1)?;
/// tx.try_push(2)?;
/// assert_eq!(tx.try_push(3), Err(PushError::Full(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError<T> {
    /// No free slot; the value was not pushed.
    #[error("the ring is full")]
    Full(T),
    /// As [`Corrupted`]; the value was not pushed.
    #[error("ring state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl<T> PushError<T> {
    /// The value that was not pushed, if it is still here.
    pub fn into_inner(self) -> Option<T> {
        match self {
            PushError::Full(v) => Some(v),
            PushError::Corrupted(_) => None,
        }
    }

    /// The error for a push of `value` that missed.
    #[inline]
    pub(crate) fn from_miss(miss: Miss, value: T) -> Self {
        match miss {
            Miss::WouldBlock => PushError::Full(value),
            Miss::Corrupted(w) => PushError::Corrupted(w),
        }
    }
}

impl<T> From<Corrupted> for PushError<T> {
    fn from(Corrupted(w): Corrupted) -> Self {
        PushError::Corrupted(w)
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
            PushError::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
        }
    }
}

/// Why a pop (or a peek, or an in-place read of one record) returned
/// nothing.
///
/// ```
/// use shmkit::ring::spsc::HeapSpscRing;
/// use shmkit::ring::PopError;
///
/// let mut heap = HeapSpscRing::<u32>::new(2)?;
/// let (_tx, mut rx) = heap.split()?;
/// assert_eq!(rx.try_pop(), Err(PopError::Empty));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// Nothing to pop.
    #[error("the ring is empty")]
    Empty,
    /// As [`Corrupted`].
    #[error("ring state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl From<Corrupted> for PopError {
    fn from(Corrupted(w): Corrupted) -> Self {
        PopError::Corrupted(w)
    }
}

impl From<Miss> for PopError {
    #[inline]
    fn from(miss: Miss) -> Self {
        match miss {
            Miss::WouldBlock => PopError::Empty,
            Miss::Corrupted(w) => PopError::Corrupted(w),
        }
    }
}

/// Why one attempt of a ring operation did not complete, as the layers
/// above see it: it would have to wait (full, empty), or the ring is
/// corrupted. Every ring error converts into it, which is what lets one
/// blocking loop serve every ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    WouldBlock,
    Corrupted(&'static str),
}

impl From<Corrupted> for Miss {
    #[inline]
    fn from(Corrupted(w): Corrupted) -> Self {
        Miss::Corrupted(w)
    }
}

impl<T> From<PushError<T>> for Miss {
    #[inline]
    fn from(e: PushError<T>) -> Self {
        match e {
            PushError::Full(_) => Miss::WouldBlock,
            PushError::Corrupted(w) => Miss::Corrupted(w),
        }
    }
}

impl From<PopError> for Miss {
    #[inline]
    fn from(e: PopError) -> Self {
        match e {
            PopError::Empty => Miss::WouldBlock,
            PopError::Corrupted(w) => Miss::Corrupted(w),
        }
    }
}

/// Why a byte ring's [`try_push`](super::bytes::Producer::try_push) or
/// [`write_chunk`](super::bytes::Producer::write_chunk) wrote nothing.
///
/// ```
/// use shmkit::ring::bytes::{HeapByteRing, WriteError};
///
/// let mut ring = HeapByteRing::new(64, 16)?;
/// let (mut tx, _rx) = ring.split()?;
/// assert_eq!(tx.try_push(&[0; 17]), Err(WriteError::TooLarge { len: 17, max: 16 }));
/// while tx.try_push(&[1; 16]).is_ok() {}
/// assert_eq!(tx.try_push(&[1; 16]), Err(WriteError::Full));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// No room for the record now.
    #[error("the ring is full")]
    Full,
    /// A record longer than the ring's maximum message size: it will never
    /// fit.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The most the ring accepts.
        max: usize,
    },
    /// As [`Corrupted`].
    #[error("ring state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl From<Corrupted> for WriteError {
    fn from(Corrupted(w): Corrupted) -> Self {
        WriteError::Corrupted(w)
    }
}

impl From<WriteError> for Miss {
    #[inline]
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Full => Miss::WouldBlock,
            // The channel refuses a record over the maximum before it
            // reaches the ring.
            WriteError::TooLarge { .. } => {
                Miss::Corrupted("record longer than the ring's maximum reached the ring")
            }
            WriteError::Corrupted(w) => Miss::Corrupted(w),
        }
    }
}

/// Why a byte ring's [`try_pop_into`](super::bytes::Consumer::try_pop_into)
/// copied nothing.
///
/// ```
/// use shmkit::ring::bytes::{HeapByteRing, PopIntoError};
///
/// let mut ring = HeapByteRing::new(64, 16)?;
/// let (mut tx, mut rx) = ring.split()?;
/// let mut small = [0; 4];
/// assert_eq!(rx.try_pop_into(&mut small), Err(PopIntoError::Empty));
/// tx.try_push(b"hello")?;
/// assert_eq!(
///     rx.try_pop_into(&mut small),
///     Err(PopIntoError::TooLarge { len: 5, max: 4 }) // still in the ring
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopIntoError {
    /// Nothing to pop.
    #[error("the ring is empty")]
    Empty,
    /// The next record is longer than the buffer; it stays in the ring.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The buffer's length.
        max: usize,
    },
    /// As [`Corrupted`].
    #[error("ring state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl From<Corrupted> for PopIntoError {
    fn from(Corrupted(w): Corrupted) -> Self {
        PopIntoError::Corrupted(w)
    }
}

impl From<PopError> for PopIntoError {
    fn from(e: PopError) -> Self {
        match e {
            PopError::Empty => PopIntoError::Empty,
            PopError::Corrupted(w) => PopIntoError::Corrupted(w),
        }
    }
}
