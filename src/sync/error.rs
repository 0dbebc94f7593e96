//! The sync layer's errors: [`LockError`] for calls that hand out a guard,
//! [`WaitError`] for the rest.

use std::fmt;

/// Why a lock call returned without a clean guard.
///
/// `OwnerDied` is the only variant that carries a guard: the lock *was*
/// acquired, but its previous holder died holding it, so the data may be
/// half-updated. Inspect and repair it, then call `mark_consistent()` on
/// the guard; dropping the guard without doing so makes the lock
/// permanently unusable ([`LockError::NotRecoverable`] for everyone).
pub enum LockError<G> {
    /// Acquired, but the previous holder died while holding the lock.
    OwnerDied(G),
    /// A holder that died was not followed by `mark_consistent()`: the lock
    /// can never be taken again.
    NotRecoverable,
    /// A `try_` call found the lock held.
    WouldBlock,
    /// The deadline passed before the lock could be taken.
    Timeout,
    /// The lock's shared state holds a value no correct participant writes.
    Corrupted(&'static str),
}

impl<G> LockError<G> {
    /// The guard of an `OwnerDied` error, `None` otherwise.
    pub fn into_owner_died(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Applies `f` to the guard of an `OwnerDied` error.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::NotRecoverable => LockError::NotRecoverable,
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::Timeout => LockError::Timeout,
            LockError::Corrupted(w) => LockError::Corrupted(w),
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::Timeout => f.write_str("Timeout"),
            LockError::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => {
                f.write_str("the lock's previous holder died; its data may be inconsistent")
            }
            LockError::NotRecoverable => f.write_str("the lock is not recoverable"),
            LockError::WouldBlock => f.write_str("the lock is held"),
            LockError::Timeout => f.write_str("timed out waiting for the lock"),
            LockError::Corrupted(w) => write!(f, "lock state is corrupted: {w}"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

/// Why a wait (semaphore, event, barrier) ended without success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// A `try_` call would have had to wait.
    #[error("the operation would block")]
    WouldBlock,
    /// The deadline passed first.
    #[error("timed out")]
    Timeout,
    /// The barrier was aborted, or one of its parties died: nobody will
    /// ever pass it.
    #[error("the barrier is broken")]
    Broken,
    /// A release would push a bounded semaphore past its bound.
    #[error("released more permits than the bound allows")]
    Overflow,
    /// Shared state holds a value no correct participant writes.
    #[error("shared state is corrupted: {0}")]
    Corrupted(&'static str),
    /// A barrier's table of parties is full: more processes than it can
    /// track have waited on it.
    #[error("cannot register as a participant: {0}")]
    Registry(#[source] crate::Error),
}
