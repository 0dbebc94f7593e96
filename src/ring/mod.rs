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
//! [`Corrupted`] (or the `Corrupted` variant of the operation's error),
//! never read or write out of bounds, panic, or loop forever.
//!
//! Every ring has the same names for the same ideas: `try_push` and
//! `try_pop` copy one value (or record) in or out, `write_chunk` and
//! `read_chunk` lend slots in place until `commit` or `release`, `len`
//! is a snapshot clamped to the capacity, and a ring on the heap
//! (`HeapSpscRing`, `HeapMpmcRing`, `HeapByteRing`) runs the same code as
//! one in a region, for threads of one process, tests and models.
//!
//! ```
//! use shmkit::ring::mpmc::MpmcRing;
//! use shmkit::ring::{PopError, PushError};
//! use shmkit::{LayoutId, RegionOptions};
//!
//! // A ring in a region, laid out by its creator; any process that maps
//! // the region opens a view of it.
//! let bytes = MpmcRing::<u32>::bytes_for(4)?;
//! let region = RegionOptions::new()
//!     .size(bytes)
//!     .layout(LayoutId::named("doc-ring", 1))
//!     .anonymous_with(|r| MpmcRing::<u32>::create(r, 0, 4).map(drop))?;
//! let ring = MpmcRing::<u32>::open(&region, 0)?;
//! for v in 0..4 {
//!     ring.try_push(v).unwrap();
//! }
//! assert_eq!(ring.try_push(4), Err(PushError::Full(4)));
//! assert_eq!(ring.try_pop(), Ok(0));
//! assert_eq!(ring.len(), 3);
//! # while ring.try_pop().is_ok() {}
//! assert_eq!(ring.try_pop(), Err(PopError::Empty));
//! # Ok::<(), shmkit::Error>(())
//! ```

pub mod bytes;
mod error;
pub mod mpmc;
mod slot;
pub mod spsc;

pub(crate) use error::Miss;
pub use error::{Corrupted, PopError, PushError};
pub(crate) use slot::Slot;
