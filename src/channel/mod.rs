//! Channels: blocking, typed or byte-oriented messaging between processes
//! over the lock-free rings of [`crate::ring`].

mod blocking;
mod bytes;
mod endpoint;
mod error;
mod iter;
mod mpmc;
mod side;
mod typed;

pub use bytes::{byte_channel, ByteReceiver, ByteSender};
pub use error::{
    ByteSendError, ByteSendTimeoutError, ByteTrySendError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
pub use iter::{IntoIter, Iter, Recv, TryIter};
pub use mpmc::{mpmc_channel, MpmcReceiver, MpmcSender};
pub use typed::{channel, Receiver, Sender};
