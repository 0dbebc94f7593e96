//! The lock word shared by [`Mutex`](super::Mutex) and
//! [`Condvar`](super::Condvar): a futex word holding the owner's token.
//!
//! ```text
//! word                        meaning
//! 0                           unlocked
//! token << 1 | 0              locked by `token`, nobody sleeping
//! token << 1 | 1              locked by `token`, someone may be sleeping
//! u32::MAX                    not recoverable: a dead holder's data was
//!                             never marked consistent
//! ```
//!
//! Lock: one CAS `0 -> me << 1`. Unlock: one swap to 0, plus a futex wake
//! only if the waiters bit was set. A contended locker spins, sets the
//! waiters bit, then sleeps in slices that a [`Probe`] schedules (1 ms,
//! growing to 10 ms while the same owner keeps the lock); each time a
//! slice passes with the same owner in the word, it checks that owner's
//! liveness and, if it is dead, takes the lock over with a CAS from the
//! exact word it saw (so two waiters can never both take it over) and
//! reports `OwnerDied`. A waiter whose owners keep changing never probes.

use super::error::RawLockError;
use super::guard::{Acquired, RawLock};
use super::owner::{self, Liveness, Token};
use super::wait::{expired, spin_while, Probe};
use crate::primitive::{futex_wait, futex_wake, futex_wake_all, AtomicU32, Ordering};
use std::time::Instant;

const UNLOCKED: u32 = 0;
const WAITERS: u32 = 1;
const NOT_RECOVERABLE: u32 = u32::MAX;

/// A robust, process-shared mutex without data: the lock word of a
/// [`Mutex`](super::Mutex) (unnameable outside this crate).
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawMutex {
    word: AtomicU32,
}

impl RawMutex {
    /// An unlocked mutex (also what zeroed memory holds).
    #[cfg(not(shmkit_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            word: AtomicU32::new(UNLOCKED),
        }
    }

    /// An unlocked mutex (also what zeroed memory holds).
    #[cfg(shmkit_loom)]
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(UNLOCKED),
        }
    }

    /// The token this handle writes into the word.
    #[inline]
    fn me(&self) -> Token {
        owner::current(&self.word)
    }

    /// Takes the lock without waiting.
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Acquired, RawLockError> {
        let me = self.me();
        match self.word.compare_exchange(
            UNLOCKED,
            me.raw() << 1,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(Acquired::Clean),
            Err(NOT_RECOVERABLE) => Err(RawLockError::NotRecoverable),
            Err(word) => match owner::liveness(&self.word, Token::from_raw(word >> 1)) {
                Liveness::Alive => Err(RawLockError::Busy),
                Liveness::Dead => self.take_over(word, me).map_err(|_| RawLockError::Busy),
                Liveness::Invalid => Err(RawLockError::Corrupted("lock word holds no owner")),
            },
        }
    }

    /// Takes the lock, waiting until `deadline` (`None`: no limit).
    #[inline]
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Acquired, RawLockError> {
        let me = self.me();
        if self
            .word
            .compare_exchange(
                UNLOCKED,
                me.raw() << 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        self.lock_contended(me, deadline)
    }

    #[cold]
    fn lock_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
        // A locker that has slept cannot know whether others sleep too, so
        // it takes the lock with the waiters bit set (one spare wake at
        // worst).
        let mut waiters_bit = 0;
        // The owner we have been waiting on, and when to probe it.
        let mut watched: Option<(u32, Probe)> = None;
        let mut word = spin_while(&self.word, |w| w != UNLOCKED && w & WAITERS == 0);
        loop {
            if word == UNLOCKED {
                match self.word.compare_exchange(
                    UNLOCKED,
                    (me.raw() << 1) | waiters_bit,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Acquired::Clean),
                    Err(w) => {
                        word = w;
                        continue;
                    }
                }
            }
            if word == NOT_RECOVERABLE {
                return Err(RawLockError::NotRecoverable);
            }
            let holder = word >> 1;
            if !Token::is_well_formed(holder) {
                return Err(RawLockError::Corrupted("lock word holds no owner"));
            }
            // A new holder starts a new watch (whose first probe is not due
            // yet, except under loom, where every chance is taken).
            let probe = match &mut watched {
                Some((h, probe)) if *h == holder => probe,
                other => &mut other.insert((holder, Probe::start())).1,
            };
            if probe.due() {
                match owner::liveness(&self.word, Token::from_raw(holder)) {
                    Liveness::Alive => {}
                    Liveness::Dead => match self.take_over(word, me) {
                        Ok(acquired) => return Ok(acquired),
                        Err(w) => {
                            word = w;
                            continue;
                        }
                    },
                    Liveness::Invalid => {
                        return Err(RawLockError::Corrupted("lock word holds no owner"))
                    }
                }
            }
            if word & WAITERS == 0 {
                if let Err(w) = self.word.compare_exchange(
                    word,
                    word | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    word = w;
                    continue;
                }
                word |= WAITERS;
            }
            if expired(deadline) {
                return Err(RawLockError::Busy);
            }
            // (`watched` was set just above.)
            let slice = watched.map_or(deadline, |(_, p)| p.slice(deadline));
            futex_wait(&self.word, word, slice);
            waiters_bit = WAITERS;
            word = spin_while(&self.word, |w| w != UNLOCKED);
        }
    }

    /// Replaces the dead holder's exact word `seen` with ours; fails with
    /// the current word if anything changed meanwhile.
    fn take_over(&self, seen: u32, me: Token) -> Result<Acquired, u32> {
        self.word
            .compare_exchange(
                seen,
                (me.raw() << 1) | (seen & WAITERS),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .map(|_| Acquired::OwnerDied)
    }

    /// Whether the lock word currently shows a holder (racy; diagnostics).
    pub(crate) fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != UNLOCKED
    }
}

// SAFETY: a hold is the word holding our token, put there by a CAS from
// unlocked or from the exact word of a dead holder: one holder at a time.
unsafe impl RawLock for RawMutex {
    const GUARD_NAME: &'static str = "MutexGuard";

    #[inline]
    unsafe fn unlock(&self) {
        if self.word.swap(UNLOCKED, Ordering::Release) & WAITERS != 0 {
            futex_wake(&self.word, 1);
        }
    }

    unsafe fn unlock_not_recoverable(&self) {
        self.word.store(NOT_RECOVERABLE, Ordering::Release);
        futex_wake_all(&self.word);
    }
}

/// The state of the mutex whose lock word starts object `object`'s data,
/// as [`sync::inspect`](super::inspect()) reports it.
pub(super) fn state_of(object: &crate::region::Outside) -> crate::Result<super::LockState> {
    use super::LockState;
    let word = object.data(0, 4)?;
    if word.len() < 4 {
        return Ok(LockState::Corrupted(0));
    }
    Ok(match word.u32_at(0) {
        UNLOCKED => LockState::Unlocked,
        NOT_RECOVERABLE => LockState::NotRecoverable,
        w => match super::inspect::holder(object, w >> 1)? {
            Some(h) => LockState::Locked {
                pid: h.pid,
                alive: h.alive,
                waiters: w & WAITERS != 0,
            },
            None => LockState::Corrupted(w),
        },
    })
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::model;
    use std::sync::Arc;

    /// A holder dies holding the lock; two waiters then race for it.
    /// Exactly one takes it over (`OwnerDied`: one CAS from the exact word
    /// seen, so the two cannot both act on the death), the other waits for
    /// that one and gets the lock cleanly; nobody waits forever (a lost
    /// wake-up would be a deadlock).
    #[test]
    fn exactly_one_waiter_takes_over_from_a_dead_holder() {
        loom::model(|| {
            let m = Arc::new(RawMutex::new());
            let holder = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    assert_eq!(m.lock(None).unwrap(), Acquired::Clean);
                    model::die();
                })
            };
            holder.join().unwrap();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    loom::thread::spawn(move || {
                        let got = m.lock(None).unwrap();
                        // SAFETY: this thread holds the lock just taken.
                        unsafe { m.unlock() };
                        got
                    })
                })
                .collect();
            let got: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            let died = got.iter().filter(|g| **g == Acquired::OwnerDied).count();
            assert_eq!(died, 1, "{got:?}");
            assert!(!m.is_locked());
        });
    }
}
