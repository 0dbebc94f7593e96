//! Lock-free rings in shared memory: [`spsc`] (one producer, one consumer,
//! `T: Pod` values), [`mpmc`] (many of each, Vyukov's bounded queue) and
//! [`bytes`] (variable-length framed records). A side that must wait for
//! the other parks on a [`Signal`](crate::Signal) (the channels do).
//!
//! Rings are raw data structures: `try_` operations that never block, on
//! memory laid out by the creator and validated by every opener. Blocking
//! sends and receives, and noticing that the peer is gone, are the
//! channel layer's job.
//!
//! Every index a ring reads from shared memory is checked before use: a
//! peer that scribbles on a ring makes the victim's operation return
//! [`Corrupted`] (or the `Corrupted` variant of the operation's error), never read or write out of bounds, panic, or
//! loop forever.

pub mod bytes;
mod error;
pub mod mpmc;
mod slot;
pub mod spsc;

pub(crate) use error::Miss;
pub use error::{Corrupted, PopError, PushError};
pub(crate) use slot::Slot;
