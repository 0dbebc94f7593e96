//! Process-shared synchronization that survives a killed holder.
//!
//! | type | like Python's | when a participant dies |
//! |---|---|---|
//! | [`Mutex<T>`] | `Lock` | next locker gets [`LockError::OwnerDied`] |
//! | [`RwLock<T>`] | — | a dead *writer* is recovered like a mutex holder; a dead reader's holds are dropped (the next writer's guard is clean) |
//! | [`Condvar`] | `Condition` | its mutex reports the death on relock |
//! | [`Semaphore`] | `Semaphore`, `BoundedSemaphore` | owned permits ([`SemaphorePermit`]) are given back by the next acquirer; plain ones are not owned, so not recovered |
//! | [`Event`] | `Event` | nothing to recover: no owner |
//! | [`Barrier`] | `Barrier` | every waiter gets [`BarrierError::Broken`] |
//!
//! Every type here is `#[repr(C)]`, valid when zero-filled, and lives in a
//! [`Region`](crate::Region) (usually through [`Shm`](crate::Shm)), usable
//! from any number of processes and threads; open it by name like any
//! other [`Shm`](crate::Shm). Uncontended operations are one atomic
//! read-modify-write and no system call; contended ones spin briefly, then
//! sleep on a shared futex. Every blocking call has `try_`, `_timeout` and
//! `_deadline` forms; a deadline in the past returns at once.
//!
//! Shared state that no correct participant could have written (a peer
//! scribbling on it) is reported as `Corrupted`, never undefined behaviour
//! or an endless wait.
//!
//! Objects of several kinds share a region as fields of one
//! `#[derive(ShmSafe)]` struct:
//!
//! ```
//! use shmkit::sync::{Condvar, Event, Mutex};
//! use shmkit::{Shm, ShmSafe};
//!
//! #[derive(ShmSafe)]
//! #[repr(C)]
//! struct Work {
//!     pending: Mutex<u32>,
//!     changed: Condvar,
//!     shutdown: Event, // zero-filled: manual reset, not set
//! }
//!
//! // Named (`Shm::open_or_create`) for unrelated processes; anonymous here.
//! let work = Shm::<Work>::anonymous(|_| {})?;
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         for _ in 0..3 {
//!             *work.pending.lock().unwrap() += 1;
//!             work.changed.notify_one();
//!         }
//!         work.shutdown.set().unwrap();
//!     });
//!     let mut done = 0;
//!     while done < 3 {
//!         let guard = work.pending.lock().unwrap();
//!         let mut guard = work.changed.wait_while(guard, |n| *n == 0).unwrap();
//!         done += std::mem::take(&mut *guard);
//!     }
//!     work.shutdown.wait().unwrap();
//! });
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! # Owner death
//!
//! A process that takes a lock writes its participant *token* into the
//! lock word: the slot and generation its region handle holds in the
//! region's own participant table, never a pid. A waiter that keeps
//! seeing the same holder for a millisecond checks whether that handle is
//! alive — through an OFD lock on the region's own file that the kernel
//! drops when the handle closes or its process dies, so neither a reused
//! pid nor anything done to names in `/dev/shm` can fool it — and, if not,
//! takes the lock over and gets
//! [`LockError::OwnerDied`] with the guard: the data may be half-updated.
//! The caller repairs it and calls `mark_consistent()`; dropping that guard
//! without doing so marks the lock [not recoverable](LockError::NotRecoverable)
//! for everyone, as `pthread` robust mutexes do.

// First, so that `stop_point!` is defined for the modules below.
#[macro_use]
#[cfg_attr(not(shmkit_loom), allow(unused_macros))]
mod stop {
    /// Returns (`$ret`) from the enclosing function if the calling loom
    /// thread was told to stop at step `$step` (`model::stop_after`), so a
    /// model can stop a participant mid-protocol as a kill would; nothing
    /// outside loom.
    macro_rules! stop_point {
        ($step:literal) => {
            #[cfg(shmkit_loom)]
            if $crate::sync::model::stops_at($step) {
                return;
            }
        };
        ($step:literal => $ret:expr) => {
            #[cfg(shmkit_loom)]
            if $crate::sync::model::stops_at($step) {
                return $ret;
            }
        };
    }
}

mod barrier;
mod condvar;
pub(crate) mod error;
mod event;
pub(crate) mod guard;
mod inspect;
#[cfg(shmkit_loom)]
pub(crate) mod model;
mod mutex;
pub(crate) mod owner;
pub(crate) mod raw_mutex;
mod rwlock;
mod semaphore;
pub(crate) mod wait;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use error::{
    AcquirePermitError, AcquirePermitTimeoutError, BarrierError, BarrierTimeoutError, Corrupted,
    LockError, LockResult, LockTimeoutError, LockTimeoutResult, ReleaseError,
    TryAcquirePermitError, TryLockError, TryLockResult, TryWaitError, WaitTimeoutError,
};
pub use event::{Event, EventMode};
pub use guard::LockGuard;
pub use inspect::{
    inspect, BarrierState, EventState, Holder, Holds, LockState, RwLockState, SemaphoreState,
    SyncState,
};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
