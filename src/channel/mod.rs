//! Channels: blocking, typed or byte-oriented messaging between processes
//! over the lock-free rings of [`crate::ring`].

mod blocking;
mod bytes;
mod error;
mod side;
mod typed;

pub use bytes::{byte_channel, ByteReceiver, ByteSender};
pub use error::{RecvError, SendError};
pub use typed::{channel, Receiver, Sender};
