//! Taking permits, plain and owned: the fast path, the wait, and the
//! sweep for dead owners' permits when there are none.

use super::owners::ENTRIES;
use super::{Kind, Semaphore, COUNT_ABOVE_BOUND, PERMITS, SLEEPERS};
use crate::primitive::{futex_wait, Ordering};
use crate::sync::error::Fail;
use crate::sync::owner::{self, Token};
use crate::sync::wait::{expired, recheck_slice, Probe};
use std::time::Instant;

/// Whether this thread may sweep the owners for a `try_` call now: at most
/// once per [`MIN_PROBE`](crate::sync::wait::MIN_PROBE) per thread (always under
/// loom).
pub(super) fn sweep_allowed() -> bool {
    #[cfg(shmkit_loom)]
    return true;
    #[cfg(not(shmkit_loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
        }
        LAST.with(|last| {
            let now = Instant::now();
            let ok = last
                .get()
                .is_none_or(|t| now.saturating_duration_since(t) >= crate::sync::wait::MIN_PROBE);
            if ok {
                last.set(Some(now));
            }
            ok
        })
    }
}

impl Semaphore {
    /// Tries to take a permit of `kind` from the state last seen as `*s`,
    /// OR-ing `keep` into the new state. Afterwards `*s` holds the state
    /// left behind (taken) or seen (no permit: no permit bits).
    #[inline]
    pub(super) fn take(&self, kind: Kind, s: &mut u64, max: u32, keep: u64) -> Result<Taken, Fail> {
        match kind {
            Kind::Plain => Ok(if self.try_take(s, max, keep)? {
                Taken::Yes(None)
            } else {
                Taken::No
            }),
            Kind::Owned(me) => self.try_take_owned(me, s, max, keep),
        }
    }

    /// Tries to take a plain permit from the state last seen as `*s`.
    /// `Ok(true)`: taken (`*s` holds the state left behind); `Ok(false)`:
    /// no permit (`*s` holds the state seen).
    #[inline]
    pub(super) fn try_take(&self, s: &mut u64, max: u32, keep: u64) -> Result<bool, Fail> {
        loop {
            let have = *s & PERMITS;
            if have > u64::from(max) {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if have == 0 {
                return Ok(false);
            }
            let new = (*s - 1) | keep;
            match self
                .state
                .compare_exchange_weak(*s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    *s = new;
                    return Ok(true);
                }
                Err(seen) => *s = seen,
            }
        }
    }

    pub(super) fn try_acquire_inner(&self, kind: Kind) -> Result<Option<usize>, Fail> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        match self.take(kind, &mut s, max, 0)? {
            Taken::Yes(entry) => return Ok(entry),
            Taken::Full => return Err(table_full()),
            Taken::No => {}
        }
        // None left: the owned permits of dead holders may be due back.
        if self.any_owner() && sweep_allowed() && self.recover(self.me_or(kind))? {
            s = self.state.load(Ordering::Relaxed);
            match self.take(kind, &mut s, max, 0)? {
                Taken::Yes(entry) => return Ok(entry),
                Taken::Full => return Err(table_full()),
                Taken::No => {}
            }
        }
        Err(Fail::Busy)
    }

    #[inline]
    pub(super) fn acquire_inner(
        &self,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, Fail> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        match self.take(kind, &mut s, max, 0)? {
            Taken::Yes(entry) => Ok(entry),
            Taken::Full => Err(table_full()),
            Taken::No => self.acquire_contended(kind, deadline),
        }
    }

    #[cold]
    pub(super) fn acquire_contended(
        &self,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, Fail> {
        // SLEEPERS once we have slept: then others may sleep too, so we
        // leave the bit set however we leave.
        let mut keep = 0;
        // Since when we have waited with owned permits out.
        let mut probe: Option<Probe> = None;
        let mut e = self.epoch.load(Ordering::Acquire);
        let mut s = if expired(deadline) {
            self.state.load(Ordering::Relaxed)
        } else {
            // Spin while nothing is there and nobody sleeps yet (if someone
            // does, a permit will not show up within a spin).
            self.spin_while(|s| s & (PERMITS | SLEEPERS) == 0)
        };
        loop {
            let max = self.max()?;
            match self.take(kind, &mut s, max, keep)? {
                Taken::Yes(entry) => {
                    if keep != 0 && s & PERMITS > 0 {
                        // Releases made while the bit was clear (after the
                        // one that woke us) woke nobody: pass the wake-up on.
                        self.wake(1);
                    }
                    return Ok(entry);
                }
                Taken::Full => return Err(table_full()),
                Taken::No => {}
            }
            // No permit: dead owners may hold some.
            let owners = self.any_owner();
            if owners {
                let p = probe.get_or_insert_with(Probe::start);
                let now = expired(deadline) && sweep_allowed();
                if (now || p.due()) && self.recover(self.me_or(kind))? {
                    s = self.state.load(Ordering::Relaxed);
                    continue;
                }
            }
            if expired(deadline) {
                if keep != 0 && s & SLEEPERS == 0 {
                    // A release may have cleared the bit to wake us; others
                    // may still sleep and need the next release to wake them.
                    if let Err(seen) = self.state.compare_exchange(
                        s,
                        s | SLEEPERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        s = seen;
                        continue;
                    }
                }
                return Err(Fail::Busy);
            }
            if s & SLEEPERS == 0 {
                if let Err(seen) = self.state.compare_exchange(
                    s,
                    s | SLEEPERS,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    s = seen;
                    continue;
                }
            }
            let slice = match (owners, &probe) {
                (true, Some(p)) => p.slice(deadline),
                _ => recheck_slice(deadline),
            };
            futex_wait(&self.epoch, e, slice);
            keep = SLEEPERS;
            e = self.epoch.load(Ordering::Acquire);
            s = self.spin_while(|s| s & PERMITS == 0);
        }
    }

    /// The token a recoverer adopts dead owners' permits under.
    #[inline]
    pub(super) fn me_or(&self, kind: Kind) -> Token {
        match kind {
            Kind::Owned(me) => me,
            Kind::Plain => owner::current(&self.state),
        }
    }
}

/// The outcome of one attempt to take a permit.
pub(super) enum Taken {
    /// Taken; the owner entry it is recorded in, for an owned permit.
    Yes(Option<usize>),
    /// No permit there.
    No,
    /// A permit, maybe, but no owner entry to record it in.
    Full,
}

pub(super) fn table_full() -> Fail {
    Fail::Full(crate::Error::TooManyParticipants { slots: ENTRIES })
}
