//! [`Condvar`]: a process-shared condition variable for [`Mutex`](super::Mutex).
//!
//! The futex word is a sequence number that every notify bumps. A waiter
//! reads it while holding the mutex, unlocks, and sleeps only while it is
//! unchanged, so a notify that lands between the unlock and the sleep is
//! never lost. `waiters` counts sleepers so that a notify with nobody
//! waiting makes no system call.

use super::error::{LockError, LockResult};
use super::guard::{guarded, RawLock};
use super::mutex::MutexGuard;
use super::wait::{deadline_after, expired};
use crate::blocks::ShmSafe;
use crate::primitive::{futex_wait, futex_wake, futex_wake_all, AtomicU32, Ordering};
use bytemuck::Pod;
use std::time::{Duration, Instant};

/// A condition variable usable with a [`Mutex`](super::Mutex) from any number of
/// processes. Spurious wake-ups happen: wait in a loop, or use
/// [`wait_while`](Condvar::wait_while).
///
/// ```
/// use shmkit::sync::{Condvar, Mutex};
/// use shmkit::{ShmSafe, Shm};
///
/// #[repr(C)]
/// struct Job { ready: Mutex<u32>, changed: Condvar }
/// // SAFETY: repr(C); both fields are ShmSafe.
/// unsafe impl ShmSafe for Job {}
///
/// let job = Shm::<Job>::anonymous(|_| {})?;
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         *job.ready.lock().unwrap() = 1;
///         job.changed.notify_all();
///     });
///     let guard = job.changed
///         .wait_while(job.ready.lock().unwrap(), |ready| *ready == 0)
///         .unwrap();
///     assert_eq!(*guard, 1);
/// });
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Condvar {
    seq: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: repr(C), two counters; any values are handled (a wrong `waiters`
// costs a spare or a missing-but-bounded wake, never memory safety).
unsafe impl ShmSafe for Condvar {}

/// Whether a timed wait returned because its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the deadline passed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// What a wait returns: the relocked guard, as a blocking `lock` would.
type WaitResult<'a, T> = LockResult<MutexGuard<'a, T>>;
/// What a timed wait returns: the relocked guard, and whether time ran out.
type TimedResult<'a, T> =
    Result<(MutexGuard<'a, T>, WaitTimeoutResult), LockError<MutexGuard<'a, T>>>;

impl Condvar {
    /// A condition variable with nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unlocks `guard`'s mutex, sleeps until notified, locks it again.
    pub fn wait<'a, T: Pod>(&self, guard: MutexGuard<'a, T>) -> WaitResult<'a, T> {
        self.wait_until_inner(guard, None).map(|(g, _)| g)
    }

    /// Waits while `condition` holds on the data.
    pub fn wait_while<'a, T: Pod>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitResult<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait`](Self::wait) for at most `timeout`.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> TimedResult<'a, T> {
        self.wait_until_inner(guard, deadline_after(timeout))
    }

    /// [`wait`](Self::wait) until `deadline` at the latest.
    pub fn wait_deadline<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Instant,
    ) -> TimedResult<'a, T> {
        self.wait_until_inner(guard, Some(deadline))
    }

    /// [`wait_while`](Self::wait_while) for at most `timeout`; the flag
    /// says whether the condition still held when time ran out.
    pub fn wait_timeout_while<'a, T: Pod>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> TimedResult<'a, T> {
        let deadline = deadline_after(timeout);
        while condition(&mut guard) {
            if expired(deadline) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_until_inner(guard, deadline)?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    fn wait_until_inner<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> TimedResult<'a, T> {
        let seq = self.seq.load(Ordering::Relaxed);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let (raw, data, consistent) = guard.into_parts();
        // Unlock as the guard would, keeping the consistency flag.
        if consistent {
            // SAFETY: the guard we took apart held the lock.
            unsafe { raw.unlock() }
        } else {
            // SAFETY: as above.
            unsafe { raw.unlock_not_recoverable() }
        }
        let woken = futex_wait(&self.seq, seq, deadline);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        let timed_out = !woken && expired(deadline);
        // Relock with no deadline: the holder is alive (or is detected
        // dead within milliseconds). A clean relock keeps the flag.
        let relocked: WaitResult<'a, T> = guarded(raw.lock(None).map(|a| (a, ())), |(), clean| {
            // SAFETY: `guarded` builds a guard only for a hold of `raw`
            // just acquired; `data` is what `raw` guards.
            unsafe { MutexGuard::new(raw, data, clean && consistent) }
        });
        relocked.map(|g| (g, WaitTimeoutResult(timed_out)))
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        if self.waiters.load(Ordering::Relaxed) != 0 {
            futex_wake(&self.seq, 1);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        if self.waiters.load(Ordering::Relaxed) != 0 {
            futex_wake_all(&self.seq);
        }
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Mutex;
    use std::sync::Arc;

    /// A notify after the state change always reaches a waiter that checks
    /// the state under the mutex.
    #[test]
    fn notify_is_never_lost() {
        loom::model(|| {
            let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
            let p2 = pair.clone();
            let t = loom::thread::spawn(move || {
                *p2.0.lock().unwrap() = 1;
                p2.1.notify_one();
            });
            let g = pair
                .1
                .wait_while(pair.0.lock().unwrap(), |v| *v == 0)
                .unwrap();
            assert_eq!(*g, 1);
            drop(g);
            t.join().unwrap();
        });
    }
}
