//! The service's errors, one per form of each operation (as the
//! channels'): a blocking send can only find the service corrupted, a
//! `try_` send can find a queue full, a timed one can time out; a failed
//! send gives the sample back. Every receive can find the held limit
//! reached or a descriptor corrupted.

use super::publisher::SampleMut;
use std::fmt;

/// Why a blocking [`send`](super::SampleMut::send) sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The service's shared state is corrupted: a state word, a holders
    /// mask, the present mask or a queue holds a value no correct
    /// participant writes.
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`try_send`](super::SampleMut::try_send) sent nothing now; the
/// sample comes back, to send again.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<'p> {
    /// A present subscriber's queue is full (lossless policy).
    #[error("a subscriber's queue is full")]
    Full(SampleMut<'p>),
    /// As [`SendError::Corrupted`].
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`send_timeout`](super::SampleMut::send_timeout) or
/// [`send_deadline`](super::SampleMut::send_deadline) sent nothing; the
/// sample comes back, to send again.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<'p> {
    /// The deadline passed with a present subscriber's queue still full.
    #[error("timed out waiting for room in a subscriber's queue")]
    Timeout(SampleMut<'p>),
    /// As [`SendError::Corrupted`].
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`send_copy`](super::Publisher::send_copy) sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendCopyError {
    /// No block class of the pool holds `len` bytes.
    #[error("a sample of {len} bytes exceeds the largest block of {max}")]
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest class's block size.
        max: usize,
    },
    /// Every block of the class is held (by subscribers, or loans).
    #[error("every block of the class is in use")]
    Exhausted,
    /// As [`SendError::Corrupted`].
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a blocking [`recv`](super::Subscriber::recv) received nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// This subscriber holds as many samples as the service's held limit
    /// allows: drop one first.
    #[error("the subscriber holds its limit of samples")]
    HeldLimit,
    /// A descriptor or the block it names is not what a correct publisher
    /// writes (block out of range, generation or holders mask not
    /// matching, length past the block); the descriptor is consumed.
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`try_recv`](super::Subscriber::try_recv) received nothing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is queued for this subscriber.
    #[error("no sample is queued")]
    Empty,
    /// As [`RecvError::HeldLimit`].
    #[error("the subscriber holds its limit of samples")]
    HeldLimit,
    /// As [`RecvError::Corrupted`].
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`recv_timeout`](super::Subscriber::recv_timeout) or
/// [`recv_deadline`](super::Subscriber::recv_deadline) received nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// The deadline passed with nothing queued.
    #[error("timed out waiting for a sample")]
    Timeout,
    /// As [`RecvError::HeldLimit`].
    #[error("the subscriber holds its limit of samples")]
    HeldLimit,
    /// As [`RecvError::Corrupted`].
    #[error("publish/subscribe state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl fmt::Debug for TrySendError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
        }
    }
}

impl fmt::Debug for SendTimeoutError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
        }
    }
}

impl<'p> TrySendError<'p> {
    /// The sample, if it came back.
    pub fn into_sample(self) -> Option<SampleMut<'p>> {
        match self {
            TrySendError::Full(s) => Some(s),
            TrySendError::Corrupted(_) => None,
        }
    }
}

impl<'p> SendTimeoutError<'p> {
    /// The sample, if it came back.
    pub fn into_sample(self) -> Option<SampleMut<'p>> {
        match self {
            SendTimeoutError::Timeout(s) => Some(s),
            SendTimeoutError::Corrupted(_) => None,
        }
    }
}
