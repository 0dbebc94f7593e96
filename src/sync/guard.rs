//! [`LockGuard`]: exclusive access to a lock's data, written once for every
//! lock word that hands out exclusive holds ([`RawLock`]), as `lock_api`'s
//! `MutexGuard<R, T>` is over its `RawMutex`. [`MutexGuard`](super::MutexGuard)
//! and [`RwLockWriteGuard`](super::RwLockWriteGuard) are this guard over
//! the mutex's and the readers–writer lock's words.

use super::error::{LockError, RawLockError};
use crate::primitive::UnsafeCell;
use bytemuck::Pod;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// How a lock word was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// From an unlocked state or a live holder's unlock.
    Clean,
    /// Taken over from a holder that died (or, for a readers–writer lock,
    /// the data is still unrepaired since one did).
    OwnerDied,
}

/// A lock word that hands out exclusive holds: what a [`LockGuard`] needs
/// to let go of one. Implemented by the words of [`Mutex`](super::Mutex)
/// and of [`RwLock`](super::RwLock)'s write side only (the trait cannot be
/// named outside this crate).
///
/// # Safety
///
/// While a hold taken through the word exists, no other holder, in this
/// process or another correct one, may access the data the word guards:
/// [`LockGuard`] hands out `&mut T` on that promise.
pub unsafe trait RawLock {
    /// The guard's name in `Debug` output.
    const GUARD_NAME: &'static str;

    /// Releases an exclusive hold.
    ///
    /// # Safety
    ///
    /// The caller holds the lock exclusively, acquired through this word.
    unsafe fn unlock(&self);

    /// Releases an exclusive hold as not recoverable: every later lock
    /// fails with `NotRecoverable`.
    ///
    /// # Safety
    ///
    /// As [`unlock`](Self::unlock).
    unsafe fn unlock_not_recoverable(&self);
}

/// Exclusive access to a lock's data while this process holds the lock;
/// unlocks on drop. Used as [`MutexGuard`](super::MutexGuard) and
/// [`RwLockWriteGuard`](super::RwLockWriteGuard).
///
/// A guard handed out with `OwnerDied` is not consistent: repair the data,
/// then call [`mark_consistent`](Self::mark_consistent). Dropped without
/// it, the guard makes the lock permanently unusable (`NotRecoverable`
/// for everyone).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, R: RawLock, T: Pod> {
    raw: &'a R,
    data: &'a UnsafeCell<T>,
    consistent: bool,
}

// SAFETY: a guard moved to another thread hands out `&mut T` there (so
// `T: Send`) and unlocks there (lock words are atomics, unlocked from any
// thread of the holding process).
unsafe impl<R: RawLock + Sync, T: Pod + Send> Send for LockGuard<'_, R, T> {}
// SAFETY: a shared guard hands out only `&T` (so `T: Sync`).
unsafe impl<R: RawLock + Sync, T: Pod + Sync> Sync for LockGuard<'_, R, T> {}

impl<'a, R: RawLock, T: Pod> LockGuard<'a, R, T> {
    /// A guard over `data` for a hold of `raw`.
    ///
    /// # Safety
    ///
    /// This process holds `raw` exclusively (one hold per guard), and
    /// `raw` guards `data`.
    pub(crate) unsafe fn new(raw: &'a R, data: &'a UnsafeCell<T>, consistent: bool) -> Self {
        Self {
            raw,
            data,
            consistent,
        }
    }

    /// Declares the data consistent again after an `OwnerDied`
    /// ([`LockError::OwnerDied`] and its `try_` and timed forms). Without
    /// it, dropping this guard makes the lock permanently unusable
    /// ([`NotRecoverable`](LockError::NotRecoverable) for everyone,
    /// readers of a readers–writer lock included).
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data is marked consistent.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// Gives up the guard without unlocking: the caller now holds the lock
    /// and must unlock it, or rebuild a guard with [`new`](Self::new).
    pub(crate) fn into_parts(self) -> (&'a R, &'a UnsafeCell<T>, bool) {
        let parts = (self.raw, self.data, self.consistent);
        std::mem::forget(self);
        parts
    }
}

impl<R: RawLock, T: Pod> Deref for LockGuard<'_, R, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this process holds the lock for the guard's lifetime, so
        // no correct participant touches the data (`RawLock`'s contract);
        // `T: Pod` makes any bytes a misbehaving peer might write a valid
        // `T`.
        self.data.with(|p| unsafe { &*p })
    }
}

impl<R: RawLock, T: Pod> DerefMut for LockGuard<'_, R, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // handed out through this guard.
        self.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<R: RawLock, T: Pod> Drop for LockGuard<'_, R, T> {
    fn drop(&mut self) {
        if self.consistent {
            // SAFETY: the guard exists only while this process holds the
            // lock (`new`'s contract).
            unsafe { self.raw.unlock() }
        } else {
            // SAFETY: as above.
            unsafe { self.raw.unlock_not_recoverable() }
        }
    }
}

impl<R: RawLock, T: Pod + fmt::Debug> fmt::Debug for LockGuard<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(R::GUARD_NAME)
            .field("data", &**self)
            .field("consistent", &self.consistent)
            .finish()
    }
}

/// What a lock call returns for the raw outcome `r` of an acquire: for a
/// hold (what the raw lock says about it: `hold`), `guard(hold,
/// consistent)` builds its guard, clean or (`OwnerDied`) not; a failure
/// becomes the call's own error type `E`.
#[inline]
pub(crate) fn guarded<H, G, E>(
    r: Result<(Acquired, H), RawLockError>,
    guard: impl FnOnce(H, bool) -> G,
) -> Result<G, E>
where
    E: From<LockError<G>> + From<RawLockError>,
{
    match r {
        Ok((Acquired::Clean, hold)) => Ok(guard(hold, true)),
        Ok((Acquired::OwnerDied, hold)) => Err(LockError::OwnerDied(guard(hold, false)).into()),
        Err(e) => Err(e.into()),
    }
}
