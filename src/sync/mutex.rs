//! [`Mutex<T>`]: a process-shared mutex that survives a killed holder.

use super::error::{LockError, LockResult, LockTimeoutResult, RawLockError, TryLockResult};
use super::guard::Acquired;
use super::guard::{guarded, LockGuard};
use super::raw_mutex::RawMutex;
use super::wait::deadline_after;
use crate::blocks::ShmSafe;
use crate::primitive::UnsafeCell;
use bytemuck::Pod;
use std::fmt;
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
unsafe impl<T: Pod + Send> ShmSafe for Mutex<T> {
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::Mutex;
}

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
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.guard(self.raw.lock(None))
    }

    /// Takes the lock if it is free (or its holder is dead).
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        self.guard(self.raw.try_lock())
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> LockTimeoutResult<MutexGuard<'_, T>> {
        self.guard(self.raw.lock(deadline_after(timeout)))
    }

    /// Takes the lock, waiting until `deadline` at the latest; a deadline
    /// in the past still takes a free lock.
    pub fn lock_deadline(&self, deadline: Instant) -> LockTimeoutResult<MutexGuard<'_, T>> {
        self.guard(self.raw.lock(Some(deadline)))
    }

    /// Whether some process holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The guard (or error) for a raw outcome of this mutex's word.
    #[inline]
    fn guard<'a, E>(&'a self, r: Result<Acquired, RawLockError>) -> Result<MutexGuard<'a, T>, E>
    where
        E: From<LockError<MutexGuard<'a, T>>> + From<RawLockError>,
    {
        guarded(r.map(|a| (a, ())), |(), consistent| {
            // SAFETY: `r` is the outcome of an acquire of `self.raw`, and
            // `guarded` builds a guard only for a hold it reports.
            unsafe { MutexGuard::new(&self.raw, &self.data, consistent) }
        })
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
/// drop. The [generic exclusive guard](LockGuard) over the mutex's word.
pub type MutexGuard<'a, T> = LockGuard<'a, RawMutex, T>;

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
