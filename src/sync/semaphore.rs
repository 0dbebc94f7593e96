//! [`Semaphore`]: a process-shared counting semaphore, optionally bounded.
//!
//! # Layout
//!
//! `#[repr(C)]`, 8 bytes, alignment 4:
//!
//! ```text
//! offset  field   value
//! 0       count   bits 0..=30  permits available, 0..=MAX_PERMITS (2^31 - 1)
//!                 bit 31       SLEEPERS: someone may be sleeping on this word
//!                              (the futex word)
//! 4       limit   0            unbounded (up to MAX_PERMITS)
//!                 b + 1        bounded by b (so 1..=2^31)
//!                 above 2^31   corrupted
//! ```
//!
//! All-zero is a valid semaphore: no permits, unbounded. That is what a
//! fresh region holds; [`Semaphore::init`] sets other values in place.
//!
//! # Protocol
//!
//! ```text
//! operation                 count before       count after         then
//! acquire, fast path        n | s, 0 < n       (n - 1) | s         -
//! acquire, nothing left     0                  SLEEPERS            futex_wait(SLEEPERS)
//! acquire after sleeping    n | s, 0 < n       (n - 1) | SLEEPERS  futex_wake(1) if n > 1
//! timeout after sleeping    0                  SLEEPERS            Err(Timeout)
//! release(k)                n | s, n + k <= b  n + k               futex_wake(k) if s
//! release(k)                n | s, n + k > b   unchanged           Err(Overflow)
//! anything                  n > b              unchanged           Err(Corrupted), wake all
//! ```
//!
//! Acquire is one compare-and-swap when a permit is there; release is one
//! compare-and-swap, plus a futex wake only if `SLEEPERS` was set. A
//! release clears `SLEEPERS` as it wakes, so every waiter that has slept
//! sets it again on its way out (whether it got a permit, timed out, or
//! goes back to sleep): other sleepers may still be there, and the next
//! release must wake them. At worst that costs one spare wake system call.
//! Releases made between the one that cleared the bit and the woken
//! waiter's return woke nobody, so a woken waiter that takes a permit and
//! sees more left wakes one more sleeper: each woken waiter hands the
//! wake-up on while permits remain.
//! A woken waiter always tries to take a permit before it looks at its
//! deadline, so a wake-up is never swallowed by a waiter that then reports
//! a timeout.
//!
//! Sleepers re-read the shared words every 100 ms (`RECHECK_INTERVAL`)
//! even with no deadline, so garbage a peer writes while they sleep (or a
//! waiter that died between being woken and restoring `SLEEPERS`) costs at
//! most that long, never an endless sleep.
//!
//! # Dead processes
//!
//! Permits are not owned: any process may release a permit it never
//! acquired (that is how semaphores signal between processes), so nothing
//! records *who* holds one. When a process dies holding permits, they are
//! **not** given back — exactly as with POSIX `sem_t` and Python's
//! `multiprocessing.Semaphore`. A pool that must survive crashed holders
//! should record ownership instead: a [`Mutex`](super::Mutex)-protected
//! counter or table of slots (the mutex reports a dead holder as
//! [`LockError::OwnerDied`](super::LockError::OwnerDied), and the
//! survivor can reclaim what the dead process held), or one robust mutex
//! per slot of a pool.

use super::error::WaitError;
use super::wait::{expired, recheck_slice, spin_while};
use crate::primitive::{futex_wait, futex_wake, futex_wake_all, AtomicU32, Ordering};
use crate::region::ShmSafe;
use std::time::{Duration, Instant};

/// The permit bits of the count word.
const PERMITS: u32 = 0x7FFF_FFFF;
/// The count word's "someone may be sleeping" bit.
const SLEEPERS: u32 = 0x8000_0000;
/// `limit` value of an unbounded semaphore.
const UNBOUNDED: u32 = 0;

const COUNT_ABOVE_BOUND: &str = "semaphore count above its bound";
const BOUND_OUT_OF_RANGE: &str = "semaphore bound out of range";

/// A counting semaphore for any number of processes and threads, with an
/// optional upper bound on the permits it holds (a *bounded* semaphore:
/// releasing past the bound is [`WaitError::Overflow`], which catches
/// double releases).
///
/// Place it in shared memory with [`Shm`](crate::Shm) or
/// [`Region::place`](crate::Region::place); a zero-filled `Semaphore` has
/// no permits and no bound. `acquire` is one atomic compare-and-swap when
/// a permit is there; `release` makes a system call only if someone
/// sleeps. Waiters spin briefly, then sleep on a futex.
///
/// Every call checks the shared words: a count above the bound, or a bound
/// no participant writes, is [`WaitError::Corrupted`].
///
/// # Dead processes
///
/// Permits have no owner: any process may release a permit it never
/// acquired, so nothing records who holds one, and the permits of a
/// process that dies holding them are **not** given back (as with POSIX
/// semaphores and Python's `multiprocessing.Semaphore`). When crashed
/// holders must not leak capacity, record ownership instead: a
/// [`Mutex`](super::Mutex)-protected counter or table of slots, whose
/// next locker learns of a dead holder through
/// [`LockError::OwnerDied`](super::LockError::OwnerDied) and can reclaim
/// what it held, or one `Mutex` per slot of a pool.
///
/// ```
/// use shmkit::sync::{Semaphore, WaitError};
/// use shmkit::Shm;
/// use std::time::Duration;
///
/// # let name = format!("/shmkit-doc-semaphore-{}", std::process::id());
/// // Two permits, never more.
/// let slots = Shm::<Semaphore>::create(&name, |s| s.init(2, Some(2)))?;
/// // In each process:
/// slots.acquire().unwrap();
/// slots.acquire().unwrap();
/// assert!(matches!(slots.try_acquire(), Err(WaitError::WouldBlock)));
/// assert!(matches!(
///     slots.acquire_timeout(Duration::from_millis(1)),
///     Err(WaitError::Timeout)
/// ));
/// slots.release().unwrap();
/// slots.release().unwrap();
/// // A third release would exceed the bound.
/// assert!(matches!(slots.release(), Err(WaitError::Overflow)));
/// assert_eq!(slots.available().unwrap(), 2);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Semaphore {
    /// Permits (bits 0..=30) and `SLEEPERS` (bit 31); the futex word.
    count: AtomicU32,
    /// `UNBOUNDED`, or the bound plus one.
    limit: AtomicU32,
}

// SAFETY: repr(C), two `u32` atomics, zero valid (no permits, unbounded);
// every other value is either valid or reported as `Corrupted`, and the
// `SLEEPERS` bit only decides whether a wake system call is made.
unsafe impl ShmSafe for Semaphore {}

/// The raw `(count, limit)` words of a new semaphore.
const fn encode(initial: u32, bound: Option<u32>) -> (u32, u32) {
    let (max, limit) = match bound {
        Some(b) => {
            assert!(
                b <= Semaphore::MAX_PERMITS,
                "semaphore bound above Semaphore::MAX_PERMITS"
            );
            (b, b + 1)
        }
        None => (Semaphore::MAX_PERMITS, UNBOUNDED),
    };
    assert!(
        initial <= max,
        "initial semaphore permits above its bound (or MAX_PERMITS)"
    );
    (initial, limit)
}

impl Semaphore {
    /// The most permits a semaphore can hold, bounded or not.
    pub const MAX_PERMITS: u32 = PERMITS;

    /// A semaphore holding `initial` permits, bounded by `bound` (`None`:
    /// only by [`MAX_PERMITS`](Self::MAX_PERMITS)). For use outside shared
    /// memory; in a region, use [`init`](Self::init).
    ///
    /// # Panics
    ///
    /// If `bound` is above `MAX_PERMITS`, or `initial` above the bound.
    #[cfg(not(shmkit_loom))]
    pub const fn new(initial: u32, bound: Option<u32>) -> Self {
        let (count, limit) = encode(initial, bound);
        Self {
            count: AtomicU32::new(count),
            limit: AtomicU32::new(limit),
        }
    }

    /// A semaphore holding `initial` permits, bounded by `bound`.
    #[cfg(shmkit_loom)]
    pub fn new(initial: u32, bound: Option<u32>) -> Self {
        let (count, limit) = encode(initial, bound);
        Self {
            count: AtomicU32::new(count),
            limit: AtomicU32::new(limit),
        }
    }

    /// Sets up a semaphore in place, as [`new`](Self::new) would build it:
    /// call it once, from the creator's initializer, before other
    /// processes use the semaphore.
    ///
    /// ```
    /// use shmkit::sync::Semaphore;
    /// use shmkit::Shm;
    ///
    /// let s = Shm::<Semaphore>::anonymous(|s| s.init(3, None))?;
    /// assert_eq!(s.available().unwrap(), 3);
    /// assert_eq!(s.bound().unwrap(), None);
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn init(&self, initial: u32, bound: Option<u32>) {
        let (count, limit) = encode(initial, bound);
        self.limit.store(limit, Ordering::Relaxed);
        // Nobody should be waiting yet; if somebody is, let them look again.
        if self.count.swap(count, Ordering::Release) & SLEEPERS != 0 {
            futex_wake_all(&self.count);
        }
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// Errors only with [`WaitError::Corrupted`].
    #[inline]
    pub fn acquire(&self) -> Result<(), WaitError> {
        self.acquire_inner(None)
    }

    /// Takes a permit if one is available right now; otherwise
    /// [`WaitError::WouldBlock`].
    #[inline]
    pub fn try_acquire(&self) -> Result<(), WaitError> {
        let max = self.max()?;
        let mut count = self.count.load(Ordering::Relaxed);
        if self.try_take(&mut count, max, 0)? {
            Ok(())
        } else {
            Err(WaitError::WouldBlock)
        }
    }

    /// Takes a permit, waiting at most `timeout`; past it,
    /// [`WaitError::Timeout`].
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.acquire_inner(super::wait::deadline_after(timeout))
    }

    /// Takes a permit, waiting until `deadline` at the latest; past it,
    /// [`WaitError::Timeout`]. A deadline already past still takes a
    /// permit that is there.
    #[inline]
    pub fn acquire_until(&self, deadline: Instant) -> Result<(), WaitError> {
        self.acquire_inner(Some(deadline))
    }

    /// Gives back one permit, waking a waiter if one sleeps.
    ///
    /// [`WaitError::Overflow`] (and no change) if that would exceed the
    /// bound.
    #[inline]
    pub fn release(&self) -> Result<(), WaitError> {
        self.release_n(1)
    }

    /// Gives back `n` permits at once, waking up to `n` sleeping waiters.
    ///
    /// [`WaitError::Overflow`] (and no change) if that would exceed the
    /// bound.
    pub fn release_n(&self, n: u32) -> Result<(), WaitError> {
        let max = self.max()?;
        let mut count = self.count.load(Ordering::Relaxed);
        loop {
            let have = count & PERMITS;
            if have > max {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if n > max - have {
                return Err(WaitError::Overflow);
            }
            if n == 0 {
                // Must not clear SLEEPERS without waking anyone.
                return Ok(());
            }
            match self.count.compare_exchange_weak(
                count,
                have + n,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if count & SLEEPERS != 0 {
                        futex_wake(&self.count, n);
                    }
                    return Ok(());
                }
                Err(seen) => count = seen,
            }
        }
    }

    /// The permits available right now (a snapshot that may be stale by
    /// the time it is read).
    pub fn available(&self) -> Result<u32, WaitError> {
        let max = self.max()?;
        let have = self.count.load(Ordering::Relaxed) & PERMITS;
        if have > max {
            return Err(self.corrupted(COUNT_ABOVE_BOUND));
        }
        Ok(have)
    }

    /// The bound set at creation, `None` if unbounded.
    pub fn bound(&self) -> Result<Option<u32>, WaitError> {
        match self.limit.load(Ordering::Relaxed) {
            UNBOUNDED => Ok(None),
            _ => self.max().map(Some),
        }
    }

    /// The most permits the semaphore may hold, checked.
    #[inline]
    fn max(&self) -> Result<u32, WaitError> {
        match self.limit.load(Ordering::Relaxed) {
            UNBOUNDED => Ok(Self::MAX_PERMITS),
            limit if limit <= Self::MAX_PERMITS + 1 => Ok(limit - 1),
            _ => Err(self.corrupted(BOUND_OUT_OF_RANGE)),
        }
    }

    /// Tries to take a permit from the count word last seen as `*count`,
    /// OR-ing `keep` into the new word. `Ok(true)`: taken; `Ok(false)`: no
    /// permit (`*count` holds the word seen, with no permit bits).
    #[inline]
    fn try_take(&self, count: &mut u32, max: u32, keep: u32) -> Result<bool, WaitError> {
        loop {
            let have = *count & PERMITS;
            if have > max {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if have == 0 {
                return Ok(false);
            }
            match self.count.compare_exchange_weak(
                *count,
                (*count - 1) | keep,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(true),
                Err(seen) => *count = seen,
            }
        }
    }

    #[inline]
    fn acquire_inner(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        let max = self.max()?;
        let mut count = self.count.load(Ordering::Relaxed);
        if self.try_take(&mut count, max, 0)? {
            return Ok(());
        }
        self.acquire_contended(deadline)
    }

    #[cold]
    fn acquire_contended(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        // SLEEPERS once we have slept: then others may sleep too, so we
        // leave the bit set however we leave.
        let mut keep = 0;
        let mut count = if expired(deadline) {
            self.count.load(Ordering::Relaxed)
        } else {
            // Spin while nothing is there and nobody sleeps yet (if someone
            // does, a permit will not show up within a spin).
            spin_while(&self.count, |c| c == 0)
        };
        loop {
            let max = self.max()?;
            if self.try_take(&mut count, max, keep)? {
                if keep != 0 && count & PERMITS > 1 {
                    // Releases made while the bit was clear (after the one
                    // that woke us) woke nobody: pass the wake-up on.
                    futex_wake(&self.count, 1);
                }
                return Ok(());
            }
            // No permit: `count` is 0 or SLEEPERS.
            if expired(deadline) {
                if keep != 0 && count & SLEEPERS == 0 {
                    // A release may have cleared the bit to wake us; others
                    // may still sleep and need the next release to wake them.
                    if let Err(seen) = self.count.compare_exchange(
                        count,
                        count | SLEEPERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        count = seen;
                        continue;
                    }
                }
                return Err(WaitError::Timeout);
            }
            if count & SLEEPERS == 0 {
                if let Err(seen) = self.count.compare_exchange(
                    count,
                    count | SLEEPERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    count = seen;
                    continue;
                }
                count |= SLEEPERS;
            }
            futex_wait(&self.count, count, recheck_slice(deadline));
            keep = SLEEPERS;
            count = spin_while(&self.count, |c| c & PERMITS == 0);
        }
    }

    /// Reports corrupted state, first waking every sleeper so that they
    /// see it too instead of sleeping out their recheck interval.
    #[cold]
    fn corrupted(&self, what: &'static str) -> WaitError {
        futex_wake_all(&self.count);
        WaitError::Corrupted(what)
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// Two threads share one permit: never both inside, never more than
    /// the bound, and the one that has to sleep is woken.
    #[test]
    fn one_permit_two_threads_exclude_each_other() {
        fn critical(s: &(Semaphore, AtomicU32)) {
            s.0.acquire().unwrap();
            assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
            s.1.fetch_sub(1, Ordering::Relaxed);
            s.0.release().unwrap();
        }
        loom::model(|| {
            let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || critical(&s))
            };
            critical(&s);
            t.join().unwrap();
            assert_eq!(s.0.available().unwrap(), 1);
        });
    }

    /// A release always reaches an acquirer that sleeps for it.
    #[test]
    fn release_wakes_a_sleeping_acquirer() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, None));
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || s.acquire().unwrap())
            };
            s.release().unwrap();
            t.join().unwrap();
            assert_eq!(s.available().unwrap(), 0);
        });
    }

    /// Two sleepers, two single releases: the first release clears the
    /// sleepers bit to wake one, and that one must set it again so the
    /// second release wakes the other.
    #[test]
    fn two_sleepers_two_releases_both_pass() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, Some(2)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.acquire().unwrap())
                })
                .collect();
            s.release().unwrap();
            s.release().unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(s.available().unwrap(), 0);
        });
    }

    /// One `release_n(2)` lets two sleepers through.
    #[test]
    fn release_n_wakes_as_many() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, Some(2)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.acquire().unwrap())
                })
                .collect();
            s.release_n(2).unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(s.available().unwrap(), 0);
        });
    }
}
