//! The channel layer's errors.

use crate::ring::RingError;
use std::fmt;

/// Why a value was not sent; the value comes back to the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// A `try_` send found the ring full.
    Full(T),
    /// The deadline passed with the ring still full.
    Timeout(T),
    /// Every receiver has dropped its handle or died: nobody will ever
    /// receive it.
    Disconnected(T),
    /// A message longer than the channel carries; nothing was sent.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The most the channel carries.
        max: usize,
    },
    /// The channel's shared state is corrupted: a ring index out of its
    /// bounds, say, or an attachment table whose count contradicts its
    /// entries (a peer wrote garbage into the shared memory).
    Corrupted(&'static str),
}

impl<T> SendError<T> {
    /// The value that was not sent, if it is still here.
    pub fn into_inner(self) -> Option<T> {
        match self {
            SendError::Full(v) | SendError::Timeout(v) | SendError::Disconnected(v) => Some(v),
            SendError::TooLarge { .. } | SendError::Corrupted(_) => None,
        }
    }

    pub(crate) fn from_ring(e: RingError, v: T) -> Self {
        match e {
            RingError::Full => SendError::Full(v),
            RingError::Corrupted(w) => SendError::Corrupted(w),
            RingError::Empty => SendError::Corrupted("empty reported on send"),
            RingError::TooLarge { len, max } => SendError::TooLarge { len, max },
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::TooLarge { len, max } => f
                .debug_struct("TooLarge")
                .field("len", len)
                .field("max", max)
                .finish(),
            SendError::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("the channel is full"),
            SendError::Timeout(_) => f.write_str("timed out waiting for room in the channel"),
            SendError::Disconnected(_) => f.write_str("every receiver is gone"),
            SendError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the channel's maximum of {max}"
                )
            }
            SendError::Corrupted(w) => write!(f, "channel state is corrupted: {w}"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why nothing was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// A `try_` receive found the channel empty.
    #[error("the channel is empty")]
    Empty,
    /// The deadline passed with the channel still empty.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The channel is empty and every sender has dropped its handle or
    /// died: nothing more will ever arrive.
    #[error("every sender is gone and the channel is drained")]
    Disconnected,
    /// The channel's shared state is corrupted, as for
    /// [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl RecvError {
    pub(crate) fn from_ring(e: RingError) -> Self {
        match e {
            RingError::Empty => RecvError::Empty,
            RingError::Corrupted(w) => RecvError::Corrupted(w),
            RingError::Full => RecvError::Corrupted("full reported on receive"),
            RingError::TooLarge { .. } => RecvError::Corrupted("record larger than allowed"),
        }
    }
}
