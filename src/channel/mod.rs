//! Channels: blocking, typed or byte-oriented messaging between processes
//! over the lock-free rings of [`crate::ring`].

// Wired to the rings as they land; remove once every item is used.
#![allow(dead_code)]

mod blocking;
mod error;
mod side;

pub use error::{RecvError, SendError};
