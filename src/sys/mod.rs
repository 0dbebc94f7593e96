//! The operating-system boundary: the only place that makes system calls.
//!
//! Each function here wraps one call (or a tight group of them) and turns
//! its failure into [`crate::Error`] naming the operation, so the layers
//! above never see `errno`.

pub(crate) mod fd;
pub(crate) mod fdpass;
#[cfg(not(shmkit_loom))]
pub(crate) mod futex;
pub(crate) mod map;
#[cfg(not(shmkit_loom))]
pub(crate) mod membarrier;
#[cfg(not(shmkit_loom))]
pub(crate) mod ofd;
pub(crate) mod proc;
pub(crate) mod shmdir;
