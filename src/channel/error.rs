//! The channel layer's errors, one per form of each operation, as
//! crossbeam-channel's are: a blocking call cannot time out, a `try_` call
//! cannot time out either but can find the channel full or empty, a timed
//! call can time out. Every form can find the other end gone, or the
//! channel's shared state corrupted (a peer wrote garbage into it).
//!
//! A send that fails gives the value back (`into_inner`); a batch send
//! gives back the values it did not send, so their count is
//! `values.len() - rest.len()`. The byte channel's sends also refuse a
//! message longer than the channel carries, so they have errors of their
//! own ([`ByteSendError`], [`ByteTrySendError`], [`ByteSendTimeoutError`]),
//! which give nothing back: the message is the caller's borrowed slice.

use super::blocking::Blocked;
use std::fmt;

/// Writes `Name(..)` for a variant holding the unsent value, so that an
/// error's `Debug` needs no `T: Debug` (as crossbeam-channel's).
macro_rules! debug_without_value {
    ($ty:ident { $($value:ident),* ; $($plain:ident),* }) => {
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$value(_) => f.write_str(concat!(stringify!($value), "(..)")),)*
                    $($ty::$plain(w) => f.debug_tuple(stringify!($plain)).field(w).finish(),)*
                }
            }
        }
    };
}

/// Why a blocking [`send`](super::Sender::send) sent nothing; the value
/// comes back.
///
/// ```
/// use shmkit::channel::{channel, SendError};
///
/// let (tx, rx) = channel::<u64>(4)?;
/// drop(rx);
/// assert_eq!(tx.send(7), Err(SendError::Disconnected(7)));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// Every receiver has dropped its handle or died: nobody will ever
    /// receive it.
    #[error("every receiver is gone")]
    Disconnected(T),
    /// The channel's shared state is corrupted: a ring index out of its
    /// bounds, say, or an attachment table whose count contradicts its
    /// entries (a peer wrote garbage into the shared memory).
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`try_send`](super::Sender::try_send) sent nothing now; the
/// value comes back.
///
/// ```
/// use shmkit::channel::{channel, TrySendError};
///
/// let (tx, _rx) = channel::<u64>(1)?;
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The channel is full.
    #[error("the channel is full")]
    Full(T),
    /// As [`SendError::Disconnected`].
    #[error("every receiver is gone")]
    Disconnected(T),
    /// As [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`send_timeout`](super::Sender::send_timeout) or
/// [`send_deadline`](super::Sender::send_deadline) sent nothing; the value
/// comes back.
///
/// ```
/// use shmkit::channel::{channel, SendTimeoutError};
/// use std::time::Duration;
///
/// let (tx, _rx) = channel::<u64>(1)?;
/// tx.send(1).unwrap();
/// let e = tx.send_timeout(2, Duration::from_millis(1)).unwrap_err();
/// assert_eq!(e, SendTimeoutError::Timeout(2));
/// assert_eq!(e.to_string(), "timed out waiting for room in the channel");
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// The deadline passed with the channel still full.
    #[error("timed out waiting for room in the channel")]
    Timeout(T),
    /// As [`SendError::Disconnected`].
    #[error("every receiver is gone")]
    Disconnected(T),
    /// As [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

debug_without_value!(SendError { Disconnected; Corrupted });
debug_without_value!(TrySendError { Full, Disconnected; Corrupted });
debug_without_value!(SendTimeoutError { Timeout, Disconnected; Corrupted });

impl<T> SendError<T> {
    /// The value that was not sent, if it is still here.
    pub fn into_inner(self) -> Option<T> {
        match self {
            SendError::Disconnected(v) => Some(v),
            SendError::Corrupted(_) => None,
        }
    }

    /// A blocking call's failure (it has no deadline, so it cannot time
    /// out).
    pub(crate) fn from_blocked(b: Blocked, v: T) -> Self {
        match b {
            Blocked::Disconnected => SendError::Disconnected(v),
            Blocked::Corrupted(w) => SendError::Corrupted(w),
            // A call without a deadline cannot time out; were it to, a bug
            // and not a peer's doing, it reports rather than panics.
            Blocked::Timeout => {
                debug_assert!(false, "a call without a deadline timed out");
                Self::Corrupted("a call without a deadline timed out")
            }
        }
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent, if it is still here.
    pub fn into_inner(self) -> Option<T> {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => Some(v),
            TrySendError::Corrupted(_) => None,
        }
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent, if it is still here.
    pub fn into_inner(self) -> Option<T> {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => Some(v),
            SendTimeoutError::Corrupted(_) => None,
        }
    }

    pub(crate) fn from_blocked(b: Blocked, v: T) -> Self {
        match b {
            Blocked::Timeout => SendTimeoutError::Timeout(v),
            Blocked::Disconnected => SendTimeoutError::Disconnected(v),
            Blocked::Corrupted(w) => SendTimeoutError::Corrupted(w),
        }
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => TrySendError::Disconnected(v),
            SendError::Corrupted(w) => TrySendError::Corrupted(w),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => SendTimeoutError::Disconnected(v),
            SendError::Corrupted(w) => SendTimeoutError::Corrupted(w),
        }
    }
}

/// Why a blocking receive received nothing: the channel is drained and
/// every sender is gone, or its state is corrupted.
///
/// ```
/// use shmkit::channel::{channel, RecvError};
///
/// let (tx, rx) = channel::<u64>(4)?;
/// tx.send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.recv(), Ok(1)); // what was sent is still delivered
/// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The channel is empty and every sender has dropped its handle or
    /// died: nothing more will ever arrive.
    #[error("every sender is gone and the channel is drained")]
    Disconnected,
    /// The channel's shared state is corrupted, as for
    /// [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a `try_` receive received nothing now.
///
/// ```
/// use shmkit::channel::{channel, TryRecvError};
///
/// let (_tx, rx) = channel::<u64>(4)?;
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// The channel is empty (and a sender is still there).
    #[error("the channel is empty")]
    Empty,
    /// As [`RecvError::Disconnected`].
    #[error("every sender is gone and the channel is drained")]
    Disconnected,
    /// As [`RecvError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a timed receive (`recv_timeout`, `recv_deadline` and their slice
/// and in-place forms) received nothing.
///
/// ```
/// use shmkit::channel::{channel, RecvTimeoutError};
/// use std::time::Duration;
///
/// let (_tx, rx) = channel::<u64>(4)?;
/// assert_eq!(
///     rx.recv_timeout(Duration::from_millis(1)),
///     Err(RecvTimeoutError::Timeout)
/// );
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// The deadline passed with the channel still empty.
    #[error("timed out waiting for a message")]
    Timeout,
    /// As [`RecvError::Disconnected`].
    #[error("every sender is gone and the channel is drained")]
    Disconnected,
    /// As [`RecvError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl RecvError {
    pub(crate) fn from_blocked(b: Blocked) -> Self {
        match b {
            Blocked::Disconnected => RecvError::Disconnected,
            Blocked::Corrupted(w) => RecvError::Corrupted(w),
            // A call without a deadline cannot time out; were it to, a bug
            // and not a peer's doing, it reports rather than panics.
            Blocked::Timeout => {
                debug_assert!(false, "a call without a deadline timed out");
                Self::Corrupted("a call without a deadline timed out")
            }
        }
    }
}

impl RecvTimeoutError {
    pub(crate) fn from_blocked(b: Blocked) -> Self {
        match b {
            Blocked::Timeout => RecvTimeoutError::Timeout,
            Blocked::Disconnected => RecvTimeoutError::Disconnected,
            Blocked::Corrupted(w) => RecvTimeoutError::Corrupted(w),
        }
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Corrupted(w) => TryRecvError::Corrupted(w),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Corrupted(w) => RecvTimeoutError::Corrupted(w),
        }
    }
}

/// Why a blocking [`ByteSender::send`](super::ByteSender::send) sent
/// nothing.
///
/// ```
/// use shmkit::channel::{byte_channel, ByteSendError};
///
/// let (tx, rx) = byte_channel(1024, 16)?;
/// assert_eq!(tx.send(&[0; 17]), Err(ByteSendError::TooLarge { len: 17, max: 16 }));
/// drop(rx);
/// assert_eq!(tx.send(b"hi"), Err(ByteSendError::Disconnected));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteSendError {
    /// A message longer than the channel carries
    /// ([`max_message`](super::ByteSender::max_message)); nothing was
    /// sent, and nothing was waited for.
    #[error("message of {len} bytes exceeds the channel's maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The most the channel carries.
        max: usize,
    },
    /// As [`SendError::Disconnected`].
    #[error("every receiver is gone")]
    Disconnected,
    /// As [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`ByteSender::try_send`](super::ByteSender::try_send) sent
/// nothing now.
///
/// ```
/// use shmkit::channel::{byte_channel, ByteTrySendError};
///
/// let (tx, rx) = byte_channel(64, 16)?;
/// assert_eq!(tx.try_send(&[0; 17]), Err(ByteTrySendError::TooLarge { len: 17, max: 16 }));
/// while tx.try_send(&[1; 16]).is_ok() {}
/// assert_eq!(tx.try_send(&[1; 16]), Err(ByteTrySendError::Full));
/// drop(rx);
/// assert_eq!(tx.try_send(b"hi"), Err(ByteTrySendError::Disconnected));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteTrySendError {
    /// As [`ByteSendError::TooLarge`].
    #[error("message of {len} bytes exceeds the channel's maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The most the channel carries.
        max: usize,
    },
    /// The channel has no room for the message now.
    #[error("the channel is full")]
    Full,
    /// As [`SendError::Disconnected`].
    #[error("every receiver is gone")]
    Disconnected,
    /// As [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`ByteSender::send_timeout`](super::ByteSender::send_timeout) or
/// [`send_deadline`](super::ByteSender::send_deadline) sent nothing.
///
/// ```
/// use shmkit::channel::{byte_channel, ByteSendTimeoutError};
/// use std::time::Duration;
///
/// let (tx, _rx) = byte_channel(64, 16)?;
/// let short = Duration::from_millis(1);
/// while tx.try_send(&[1; 16]).is_ok() {}
/// assert_eq!(tx.send_timeout(&[1; 16], short), Err(ByteSendTimeoutError::Timeout));
/// assert_eq!(
///     tx.send_timeout(&[0; 17], short),
///     Err(ByteSendTimeoutError::TooLarge { len: 17, max: 16 })
/// );
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ByteSendTimeoutError {
    /// As [`ByteSendError::TooLarge`].
    #[error("message of {len} bytes exceeds the channel's maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The most the channel carries.
        max: usize,
    },
    /// The deadline passed with no room for the message.
    #[error("timed out waiting for room in the channel")]
    Timeout,
    /// As [`SendError::Disconnected`].
    #[error("every receiver is gone")]
    Disconnected,
    /// As [`SendError::Corrupted`].
    #[error("channel state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl From<SendError<()>> for ByteSendError {
    fn from(e: SendError<()>) -> Self {
        match e {
            SendError::Disconnected(()) => ByteSendError::Disconnected,
            SendError::Corrupted(w) => ByteSendError::Corrupted(w),
        }
    }
}

impl From<TrySendError<()>> for ByteTrySendError {
    fn from(e: TrySendError<()>) -> Self {
        match e {
            TrySendError::Full(()) => ByteTrySendError::Full,
            TrySendError::Disconnected(()) => ByteTrySendError::Disconnected,
            TrySendError::Corrupted(w) => ByteTrySendError::Corrupted(w),
        }
    }
}

impl From<SendTimeoutError<()>> for ByteSendTimeoutError {
    fn from(e: SendTimeoutError<()>) -> Self {
        match e {
            SendTimeoutError::Timeout(()) => ByteSendTimeoutError::Timeout,
            SendTimeoutError::Disconnected(()) => ByteSendTimeoutError::Disconnected,
            SendTimeoutError::Corrupted(w) => ByteSendTimeoutError::Corrupted(w),
        }
    }
}
