//! Channels: blocking, typed or byte-oriented messaging between processes
//! over the lock-free rings of [`crate::ring`].
//!
//! | made by | ends | carries |
//! |---|---|---|
//! | [`channel`] | one [`Sender`], one [`Receiver`] | `T: Pod` values, in order |
//! | [`mpmc_channel`] | up to 32 [`MpmcSender`]s and 32 [`MpmcReceiver`]s (`try_clone`) | `T: Pod` values, each to one receiver |
//! | [`byte_channel`] | one [`ByteSender`], one [`ByteReceiver`] | byte messages up to a set length, in order |
//!
//! Those functions make both ends of an anonymous channel. Every end also
//! has `create`, `open` and `open_or_create` by name, `from_region` (a
//! region received over a socket) and `from_env` (one a parent passed);
//! the crate documentation shows how the other process gets its end.
//!
//! Every blocking call has a `try_` form that never waits and `_timeout`
//! and `_deadline` forms, each with an error type of its own
//! ([`SendError`], [`TrySendError`], [`SendTimeoutError`], and the same
//! for receiving). A send waits while the channel is full and a receive
//! while it is empty, spinning briefly and then sleeping on a futex.
//! Once every handle of one end has been dropped, or its process killed,
//! the other end's calls return `Disconnected`: receivers only after
//! draining what was sent.
//!
//! ```
//! use shmkit::channel::{ByteReceiver, ByteSender, RecvError};
//!
//! # let name = format!("/shmkit-doc-channel-{}", std::process::id());
//! // Two programs agree on a name; each opens its end, in either order.
//! let rx = ByteReceiver::open_or_create(&name, 1 << 16, 1024)?;
//! let tx = ByteSender::open_or_create(&name, 1 << 16, 1024)?;
//! tx.send(b"job 1")?;
//! tx.send(b"job 2")?;
//! drop(tx);
//! let mut msg = Vec::new();
//! while let Ok(_len) = rx.recv(&mut msg) {
//!     assert!(msg.starts_with(b"job "));
//! }
//! assert_eq!(rx.recv(&mut msg), Err(RecvError::Disconnected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod blocking;
mod bytes;
mod endpoint;
mod error;
mod inspect;
mod iter;
mod mpmc;
mod side;
mod typed;

pub use bytes::{byte_channel, ByteReceiver, ByteSender};
pub use error::{
    ByteSendError, ByteSendTimeoutError, ByteTrySendError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
pub use inspect::{inspect, ChannelInfo};
pub use iter::{IntoIter, Iter, Recv, TryIter};
pub use mpmc::{mpmc_channel, MpmcReceiver, MpmcSender};
pub use typed::{channel, Receiver, Sender};
