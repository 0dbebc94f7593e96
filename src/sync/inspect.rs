//! [`inspect`]: a mutex's lock word, read from outside.

use crate::error::{Error, Result};
use crate::region::{self, ObjectKind, ObjectState};

/// What a mutex's lock word says, read without locking, mapping or
/// attaching anything (see [`inspect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it.
    Unlocked,
    /// A holder recorded in the word.
    Locked {
        /// The pid the holder's participant slot records (a claim of
        /// the object's memory: shown, never trusted).
        pid: u32,
        /// Whether the holder's handle is still open: the kernel's lock
        /// on the holder's byte of the object's file, and the slot's
        /// generation. A dead holder's lock goes to the next locker
        /// with [`LockError::OwnerDied`](super::LockError::OwnerDied).
        alive: bool,
        /// Whether a waiter may be asleep on it.
        waiters: bool,
    },
    /// A dead holder's data was never marked consistent: every lock
    /// fails with [`LockError::NotRecoverable`](super::LockError::NotRecoverable).
    NotRecoverable,
    /// A word no shmkit lock writes (here is what it holds).
    Corrupted(u32),
}

/// Reads the [`Mutex`](super::Mutex) alone in object `name`
/// ([`Shm<Mutex<T>>`](crate::Shm)) from outside: whether it is held, by
/// which process, and whether that process is still alive. `pread` of
/// its file: nothing is mapped, locked or written. For tools
/// (`shmkit inspect`) and health checks.
///
/// Fails as [`region::inspect`] does for a bad name, a foreign file or
/// another user's object, and with [`Error::LayoutMismatch`] for an
/// object that is not a mutex (or not ready).
///
/// ```
/// use shmkit::sync::{self, LockState, Mutex};
/// use shmkit::Shm;
/// # let name = format!("/shmkit-doc-mutex-inspect-{}", std::process::id());
/// let m = Shm::<Mutex<u64>>::create(&name, |_| {})?;
/// assert_eq!(sync::inspect(&name)?, LockState::Unlocked);
/// let guard = m.lock().map_err(|e| e.to_string())?;
/// let held = sync::inspect(&name)?;
/// assert!(matches!(
///     held,
///     LockState::Locked { pid, alive: true, waiters: false } if pid == std::process::id()
/// ));
/// drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<LockState> {
    let info = region::inspect(name)?;
    if info.kind != ObjectKind::Mutex || info.state != ObjectState::Ready {
        return Err(Error::LayoutMismatch {
            found: info.layout.to_raw(),
            expected: 0,
        });
    }
    let word = region::read_data(name, 0, 4)?;
    if word.len() < 4 {
        return Ok(LockState::Corrupted(0));
    }
    Ok(match word.u32_at(0) {
        0 => LockState::Unlocked,
        u32::MAX => LockState::NotRecoverable,
        w => match region::token_holder(name, w >> 1)? {
            Some((pid, alive)) => LockState::Locked {
                pid,
                alive,
                waiters: w & 1 == 1,
            },
            None => LockState::Corrupted(w),
        },
    })
}
