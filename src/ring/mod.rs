//! Lock-free rings in shared memory: [`spsc`] (one producer, one consumer,
//! `T: Pod` values), [`mpmc`] (many of each, Vyukov's bounded queue) and
//! [`bytes`] (variable-length framed records), plus [`Signal`], the
//! sleep/wake point that lets a blocked side park without costing the
//! other side a system call per message.
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
mod signal;
mod slot;
pub mod spsc;

pub(crate) use error::Miss;
pub use error::{Corrupted, PopError, PushError};
pub use signal::Signal;
pub(crate) use slot::Slot;
