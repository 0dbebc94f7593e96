//! Channels: blocking, typed or byte-oriented messaging between processes
//! over the lock-free rings of [`crate::ring`].

mod blocking;
mod error;
mod side;

pub use error::{RecvError, SendError};
