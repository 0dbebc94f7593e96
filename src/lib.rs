//! # shmkit
//!
//! Fast, robust communication and synchronization between processes through
//! shared memory.
//!
//! This release provides the foundation: [`Region`]s, named (POSIX shm) or
//! anonymous (sealed memfd), that validate everything they open, and checked
//! placement of typed objects ([`Shm<T>`], [`Region::place`],
//! [`SharedCell`]).
//!
//! ```
//! use shmkit::{Shm, ShmSafe};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(ShmSafe)]
//! #[repr(C)]
//! struct Counter { n: AtomicU64 }
//!
//! # let name = format!("/shmkit-doc-lib-{}", std::process::id());
//! let c = Shm::<Counter>::open_or_create(&name, |c| c.n.store(1, Ordering::Relaxed))?;
//! c.n.fetch_add(1, Ordering::Relaxed);
//! assert_eq!(c.n.load(Ordering::Relaxed), 2);
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! Memory another process can write is treated as untrusted input: every
//! value read from it is checked before use, and a bad one is an
//! [`Error`], never a panic or an access outside the region; data a peer
//! garbles is still a valid value (plain data is `Pod`).
//!
//! Inside one process, safe code cannot break Rust's rules on shared
//! memory: plain data is reached only by copy or through a reference that
//! a protocol (a lock guard, a ring side's chunk) keeps exclusive while it
//! lives, and a region handle keeps each placed byte to one type. What the
//! type system cannot check is `unsafe`, with its contract under
//! `# Safety`: attaching an SPSC or byte ring side
//! ([`ring::spsc::SpscRing::producer`]), raw copies ([`Region::read`],
//! [`Region::write`]), handing on a stalled MPMC slot
//! ([`ring::mpmc::MpmcRing::repair`]). See [`ShmSafe`] for the whole
//! argument.
//!
//! The trust model as a whole (who can reach an object, what a peer that
//! can write it can still do, how liveness is decided and why no name in
//! `/dev/shm` can fool it, what survives `SIGKILL`) is written once, in the
//! *Trust model* section of the README.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod blocks;
pub mod channel;
mod error;
pub(crate) mod primitive;
pub mod region;
pub mod ring;
pub mod sync;
mod sys;
#[doc(hidden)]
pub mod testing;

pub use blocks::{CachePadded, Signal};
pub use error::{Error, Result};
pub use region::{
    LayoutId, Region, RegionOptions, SharedCell, Shm, ShmSafe, DEFAULT_TIMEOUT, MAX_NAME_LEN,
};
