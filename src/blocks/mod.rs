//! Building blocks every layer may use, importing nothing above
//! [`primitive`](crate::primitive): the [`ShmSafe`] marker for what may
//! live in shared memory, and [`CachePadded`].

mod cache_padded;
mod shm_safe;

pub use cache_padded::CachePadded;
pub use shm_safe::ShmSafe;
