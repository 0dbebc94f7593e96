//! [`Mutex<T>`]: a process-shared mutex that survives a killed holder.

use super::error::LockError;
use super::raw_mutex::{Acquired, RawLockError, RawMutex};
use super::wait::deadline_after;
use crate::blocks::ShmSafe;
use crate::primitive::UnsafeCell;
use bytemuck::Pod;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A mutual-exclusion lock around plain data, for any number of processes
/// and threads. Place it in shared memory with [`Shm`](crate::Shm) or
/// [`Region::place`](crate::Region::place).
///
/// Uncontended `lock` and unlock are one atomic operation each and no
/// system call. If the holder dies, the next locker gets
/// [`LockError::OwnerDied`] carrying the guard (see the
/// [module documentation](super)).
///
/// `T` is [`Pod`]: whatever a crashed or buggy peer left in it is still a
/// valid `T`.
///
/// ```
/// use shmkit::sync::{LockError, Mutex};
/// use shmkit::Shm;
///
/// # let name = format!("/shmkit-doc-mutex-{}", std::process::id());
/// let total = Shm::<Mutex<u64>>::create(&name, |_| {})?;
/// // In each process:
/// let mut guard = match total.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDied(mut guard)) => {
///         // The last holder died mid-update: repair, then say so.
///         *guard = 0;
///         guard.mark_consistent();
///         guard
///     }
///     Err(e) => panic!("{e}"),
/// };
/// *guard += 1;
/// drop(guard);
/// assert_eq!(*total.lock().unwrap(), 1);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
pub struct Mutex<T: Pod> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, which exists only
// while this process holds the lock; `T: Send` because a guard may be
// dropped on another thread than the one that locked.
unsafe impl<T: Pod + Send> Sync for Mutex<T> {}
// SAFETY: as for `Sync`.
unsafe impl<T: Pod + Send> Send for Mutex<T> {}
// SAFETY: repr(C) over a `u32` lock word (zero = unlocked, every value
// handled: garbage is `Corrupted` or a dead owner) and `T: Pod` (any bytes
// valid, zero valid, no pointers, no Drop).
unsafe impl<T: Pod + Send> ShmSafe for Mutex<T> {}

impl<T: Pod> Mutex<T> {
    /// An unlocked mutex holding `value` (for use outside shared memory,
    /// or to build one before copying it in).
    pub fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting as long as it takes (a dead holder is
    /// detected within a few milliseconds).
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.guard(self.raw.lock(None))
    }

    /// Takes the lock if it is free (or its holder is dead).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.guard(self.raw.try_lock())
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.guard(self.raw.lock(deadline_after(timeout)))
    }

    /// Takes the lock, waiting until `deadline` at the latest; a deadline
    /// in the past still takes a free lock.
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.guard(self.raw.lock(Some(deadline)))
    }

    /// Whether some process holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }

    pub(crate) fn guard(
        &self,
        r: Result<Acquired, RawLockError>,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        match r {
            Ok(Acquired::Clean) => Ok(MutexGuard {
                mutex: self,
                consistent: true,
            }),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(MutexGuard {
                mutex: self,
                consistent: false,
            })),
            Err(e) => Err(lock_error(e)),
        }
    }
}

pub(crate) fn lock_error<G>(e: RawLockError) -> LockError<G> {
    match e {
        RawLockError::NotRecoverable => LockError::NotRecoverable,
        RawLockError::WouldBlock => LockError::WouldBlock,
        RawLockError::Timeout => LockError::Timeout,
        RawLockError::Corrupted(w) => LockError::Corrupted(w),
    }
}

impl<T: Pod + Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Access to a [`Mutex`]'s data while this process holds it; unlocks on
/// drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    consistent: bool,
}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// Declares the data consistent again after an
    /// [`OwnerDied`](LockError::OwnerDied). Without it, dropping this guard
    /// makes the lock permanently unusable.
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data is marked consistent.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// Gives up the guard without unlocking (the caller unlocks).
    pub(crate) fn into_parts(self) -> (&'a Mutex<T>, bool) {
        let parts = (self.mutex, self.consistent);
        std::mem::forget(self);
        parts
    }

    pub(crate) fn from_parts(mutex: &'a Mutex<T>, consistent: bool) -> Self {
        Self { mutex, consistent }
    }
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this process holds the lock for the guard's lifetime, so
        // no correct participant touches the data; `T: Pod` makes any bytes
        // a misbehaving peer might write a valid `T`.
        self.mutex.data.with(|p| unsafe { &*p })
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // handed out through this guard.
        self.mutex.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if self.consistent {
            // SAFETY: the guard exists only while this process holds the lock.
            unsafe { self.mutex.raw.unlock() }
        } else {
            // SAFETY: as above.
            unsafe { self.mutex.raw.unlock_not_recoverable() }
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("data", &**self)
            .field("consistent", &self.consistent)
            .finish()
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// Three increments from three threads: none lost (mutual exclusion,
    /// checked by loom's cell tracking too), and nobody sleeps forever (a
    /// lost wake-up would be a deadlock).
    #[test]
    fn mutex_excludes_and_never_loses_a_wake_up() {
        loom::model(|| {
            let m = Arc::new(Mutex::new(0u64));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || *m.lock().unwrap() += 1)
                })
                .collect();
            *m.lock().unwrap() += 1;
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*m.lock().unwrap(), 3);
        });
    }

    /// `try_lock` never succeeds while another thread holds the lock.
    #[test]
    fn try_lock_respects_the_holder() {
        loom::model(|| {
            let m = Arc::new(Mutex::new(0u64));
            let m2 = m.clone();
            let t = loom::thread::spawn(move || {
                if let Ok(mut g) = m2.try_lock() {
                    *g += 1;
                }
            });
            {
                let mut g = m.lock().unwrap();
                *g += 10;
            }
            t.join().unwrap();
            let v = *m.lock().unwrap();
            assert!(v == 10 || v == 11);
        });
    }
}
