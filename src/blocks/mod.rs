//! Building blocks every layer may use, importing nothing above
//! [`primitive`](crate::primitive): the [`ShmSafe`] marker for what may
//! live in shared memory, [`CachePadded`], and [`Signal`], the futex
//! park/unpark point.

mod cache_padded;
mod shm_safe;
mod signal;

pub use cache_padded::CachePadded;
pub use shm_safe::ShmSafe;
/// The derive of [`ShmSafe`](trait@ShmSafe): see the trait.
pub use shmkit_derive::ShmSafe;
pub use signal::Signal;
