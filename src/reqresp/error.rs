//! The service's errors, one per form of each operation (as the
//! channels'): a failed request gives its message back; waiting for a
//! response ends with an error, not a hang, when the server goes.

use super::client::RequestMut;
use super::server::{ActiveRequest, ResponseMut};
use std::fmt;

/// Why a blocking [`send`](super::RequestMut::send) sent nothing; the
/// request comes back where it can be sent again.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<'c> {
    /// No live server is attached (none yet, or it left or died while the
    /// request waited for room).
    #[error("no server is attached")]
    NoServer(RequestMut<'c>),
    /// The service's shared state is corrupted: a state word, a holders
    /// mask or a queue holds a value no correct participant writes.
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`try_send`](super::RequestMut::try_send) sent nothing now.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<'c> {
    /// This client's request queue is full.
    #[error("the request queue is full")]
    Full(RequestMut<'c>),
    /// As [`SendError::NoServer`].
    #[error("no server is attached")]
    NoServer(RequestMut<'c>),
    /// As [`SendError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a [`send_timeout`](super::RequestMut::send_timeout) or
/// [`send_deadline`](super::RequestMut::send_deadline) sent nothing.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<'c> {
    /// The deadline passed with the request queue still full.
    #[error("timed out waiting for room in the request queue")]
    Timeout(RequestMut<'c>),
    /// As [`SendError::NoServer`].
    #[error("no server is attached")]
    NoServer(RequestMut<'c>),
    /// As [`SendError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`Client::send_copy`](super::Client::send_copy) or
/// [`ActiveRequest::respond_copy`](super::ActiveRequest::respond_copy)
/// could not loan a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// No block class of the pool holds `len` bytes.
    #[error("a message of {len} bytes exceeds the largest block of {max}")]
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest class's block size.
        max: usize,
    },
    /// Every block of the class is in use.
    #[error("every block of the class is in use")]
    Exhausted,
    /// No live server is attached (a client's send), or the client that
    /// sent the request is gone (a server's response).
    #[error("the other side is gone")]
    Gone,
    /// As [`SendError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why waiting for a response ([`PendingResponse::recv`](super::PendingResponse::recv))
/// ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server the request went to left or died before it ended the
    /// response stream (what it sent before that was received).
    #[error("the server left before it finished responding")]
    ServerGone,
    /// This client holds as many responses as the held limit allows:
    /// drop one first.
    #[error("the client holds its limit of responses")]
    HeldLimit,
    /// An envelope or the block it names is not what a correct server
    /// writes; the envelope is consumed.
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`PendingResponse::try_recv`](super::PendingResponse::try_recv)
/// gave nothing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryResponseError {
    /// No response is queued yet.
    #[error("no response is queued")]
    Empty,
    /// As [`ResponseError::ServerGone`].
    #[error("the server left before it finished responding")]
    ServerGone,
    /// As [`ResponseError::HeldLimit`].
    #[error("the client holds its limit of responses")]
    HeldLimit,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`PendingResponse::recv_timeout`](super::PendingResponse::recv_timeout)
/// or [`recv_deadline`](super::PendingResponse::recv_deadline) gave
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseTimeoutError {
    /// The deadline passed with no response queued.
    #[error("timed out waiting for a response")]
    Timeout,
    /// As [`ResponseError::ServerGone`].
    #[error("the server left before it finished responding")]
    ServerGone,
    /// As [`ResponseError::HeldLimit`].
    #[error("the client holds its limit of responses")]
    HeldLimit,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why the server's blocking [`recv`](super::Server::recv) received
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The server holds as many requests as the held limit allows.
    #[error("the server holds its limit of requests")]
    HeldLimit,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`Server::try_recv`](super::Server::try_recv) received nothing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No request is queued.
    #[error("no request is queued")]
    Empty,
    /// As [`RecvError::HeldLimit`].
    #[error("the server holds its limit of requests")]
    HeldLimit,
    /// As [`RecvError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`Server::recv_timeout`](super::Server::recv_timeout) or
/// [`recv_deadline`](super::Server::recv_deadline) received nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// The deadline passed with no request queued.
    #[error("timed out waiting for a request")]
    Timeout,
    /// As [`RecvError::HeldLimit`].
    #[error("the server holds its limit of requests")]
    HeldLimit,
    /// As [`RecvError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why a response ([`ResponseMut::send`](super::ResponseMut::send),
/// [`ActiveRequest::finish`](super::ActiveRequest::finish)) was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespondError {
    /// The client that sent the request left or died; nothing more can
    /// reach it.
    #[error("the client is gone")]
    ClientGone,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`ResponseMut::try_send`](super::ResponseMut::try_send) sent
/// nothing now.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TryRespondError<'r, 's> {
    /// The client's response queue is full; the response comes back.
    #[error("the client's response queue is full")]
    Full(ResponseMut<'r, 's>),
    /// As [`RespondError::ClientGone`].
    #[error("the client is gone")]
    ClientGone,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`ActiveRequest::try_finish`](super::ActiveRequest::try_finish)
/// did not end the stream now.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TryFinishError<'s> {
    /// The client's response queue is full; the request comes back, its
    /// stream still open.
    #[error("the client's response queue is full")]
    Full(ActiveRequest<'s>),
    /// As [`RespondError::ClientGone`].
    #[error("the client is gone")]
    ClientGone,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`ActiveRequest::finish_timeout`](super::ActiveRequest::finish_timeout)
/// did not end the stream.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum FinishTimeoutError<'s> {
    /// The deadline passed with the client's response queue still full;
    /// the request comes back, its stream still open.
    #[error("timed out waiting for room in the client's response queue")]
    Timeout(ActiveRequest<'s>),
    /// As [`RespondError::ClientGone`].
    #[error("the client is gone")]
    ClientGone,
    /// As [`ResponseError::Corrupted`].
    #[error("request/response state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// `Debug` without the message inside (it borrows a handle).
macro_rules! debug_without_message {
    ($ty:ident < $($l:lifetime),+ >, $($variant:ident ( $shape:tt )),+) => {
        impl fmt::Debug for $ty<$($l),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(debug_without_message!(@pat $ty $variant $shape w) =>
                        debug_without_message!(@body f $variant $shape w),)+
                }
            }
        }
    };
    (@pat $ty:ident $variant:ident msg $w:ident) => { $ty::$variant(_) };
    (@pat $ty:ident $variant:ident word $w:ident) => { $ty::$variant($w) };
    (@pat $ty:ident $variant:ident unit $w:ident) => { $ty::$variant };
    (@body $f:ident $variant:ident msg $w:ident) => { $f.write_str(concat!(stringify!($variant), "(..)")) };
    (@body $f:ident $variant:ident word $w:ident) => { $f.debug_tuple(stringify!($variant)).field($w).finish() };
    (@body $f:ident $variant:ident unit $w:ident) => { $f.write_str(stringify!($variant)) };
}

debug_without_message!(SendError<'_>, NoServer(msg), Corrupted(word));
debug_without_message!(TrySendError<'_>, Full(msg), NoServer(msg), Corrupted(word));
debug_without_message!(
    SendTimeoutError<'_>,
    Timeout(msg),
    NoServer(msg),
    Corrupted(word)
);
debug_without_message!(
    TryRespondError<'_, '_>,
    Full(msg),
    ClientGone(unit),
    Corrupted(word)
);
debug_without_message!(
    TryFinishError<'_>,
    Full(msg),
    ClientGone(unit),
    Corrupted(word)
);
debug_without_message!(
    FinishTimeoutError<'_>,
    Timeout(msg),
    ClientGone(unit),
    Corrupted(word)
);
