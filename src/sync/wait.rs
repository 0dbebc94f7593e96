//! Spinning and deadlines shared by every waiting primitive.
//!
//! A futex sleep and wake-up costs about a hundred times a cache-line
//! hand-off, so every blocking call first spins a little (re-reading a
//! shared word) before it parks on a futex.

use crate::primitive::{spin_loop, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Reads of the shared word before parking (one under loom, where each
/// spin is a scheduling point that multiplies the states to explore).
#[cfg(not(shmkit_loom))]
pub(crate) const SPIN_LIMIT: u32 = 100;
/// Reads of the shared word before parking.
#[cfg(shmkit_loom)]
pub(crate) const SPIN_LIMIT: u32 = 1;

/// How long a parked waiter sleeps before it re-checks whether the
/// process it waits for is still alive (channels; locks use [`Probe`]).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// The shortest interval between two liveness probes of one lock holder.
pub(crate) const MIN_PROBE: Duration = Duration::from_millis(1);
/// The longest interval between two liveness probes of one lock holder.
pub(crate) const MAX_PROBE: Duration = Duration::from_millis(10);

/// When a waiter checks whether the holder it waits for is still alive.
///
/// A holder that lets go wakes its waiters itself, so probing only matters
/// for one that keeps the lock: the interval is a tenth of how long this
/// waiter has watched the same holder, clamped to [`MIN_PROBE`]..=
/// [`MAX_PROBE`]. A holder killed early in a short hold is found within
/// about a millisecond; a long wait costs at most one probe per 10 ms; and
/// a waiter whose holders keep changing never probes at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    since: Instant,
    last: Instant,
}

impl Probe {
    /// Starts watching a holder now.
    pub(crate) fn start() -> Self {
        let now = Instant::now();
        Self {
            since: now,
            last: now,
        }
    }

    fn interval(&self, now: Instant) -> Duration {
        (now.saturating_duration_since(self.since) / 10).clamp(MIN_PROBE, MAX_PROBE)
    }

    /// Whether a probe is due now; if so, counts it as done. Always under
    /// loom: its clock is not the model's, so every chance is taken.
    pub(crate) fn due(&mut self) -> bool {
        if cfg!(shmkit_loom) {
            return true;
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.last) >= self.interval(now) {
            self.last = now;
            true
        } else {
            false
        }
    }

    /// How long to sleep before the next probe: until it is due, or until
    /// `deadline` if that comes first.
    pub(crate) fn slice(&self, deadline: Option<Instant>) -> Option<Instant> {
        let now = Instant::now();
        let next = self.last + self.interval(now);
        Some(deadline.map_or(next, |d| d.min(next)))
    }
}

/// Spins on `word` while `keep_spinning(value)` holds, at most
/// [`SPIN_LIMIT`] times; returns the last value read.
#[inline]
pub(crate) fn spin_while(word: &AtomicU32, mut keep_spinning: impl FnMut(u32) -> bool) -> u32 {
    let mut spins = 0;
    loop {
        let v = word.load(Ordering::Relaxed);
        if !keep_spinning(v) || spins >= SPIN_LIMIT {
            return v;
        }
        spin_loop();
        spins += 1;
    }
}

/// Retries `attempt` after a spin pause, [`SPIN_LIMIT`] times, then on
/// for [`SPIN_BUDGET`] more; the first value it returns, or `None` if it
/// never did (time to sleep). For waits on a message or room for one,
/// where the other side is usually a hop away: sleeping costs the waker
/// a futex call and the sleeper tens of microseconds.
#[inline]
pub(crate) fn spin_for<R>(mut attempt: impl FnMut() -> Option<R>) -> Option<R> {
    for _ in 0..SPIN_LIMIT {
        spin_loop();
        if let Some(r) = attempt() {
            return Some(r);
        }
    }
    spin_on(attempt)
}

/// How long [`spin_for`] spins on, after its counted attempts, before it
/// gives up (not at all under loom, whose clock is not the model's).
pub(crate) const SPIN_BUDGET: Duration = if cfg!(shmkit_loom) {
    Duration::ZERO
} else {
    Duration::from_micros(20)
};

/// The clocked tail of [`spin_for`]: retries until [`SPIN_BUDGET`] has
/// passed, reading the clock once per 32 attempts.
#[cold]
fn spin_on<R>(attempt: impl FnMut() -> Option<R>) -> Option<R> {
    spin_within(SPIN_BUDGET, attempt)
}

/// Retries `attempt` for `budget` (nothing under loom), reading the clock
/// once per 32 attempts and yielding the CPU between rounds: for a wait
/// whose other side is known to be at work (the rest of a message on its
/// way), where a sleep would cost a wake-up per piece.
pub(crate) fn spin_within<R>(
    budget: Duration,
    mut attempt: impl FnMut() -> Option<R>,
) -> Option<R> {
    if SPIN_BUDGET.is_zero() {
        return None;
    }
    let end = Instant::now() + budget;
    loop {
        for _ in 0..32 {
            spin_loop();
            if let Some(r) = attempt() {
                return Some(r);
            }
        }
        if Instant::now() >= end {
            return None;
        }
        // Another thread on this CPU (a second receiver, the sender
        // itself) may be what we wait for: let it run.
        std::thread::yield_now();
    }
}

/// Retries `attempt`, yielding the CPU after each try, for
/// [`SPIN_BUDGET`]: for a wait on a party that shares this CPU, which a
/// busy spin would only keep off it. `None` if it never gave a value
/// (time to sleep).
pub(crate) fn yield_for<R>(mut attempt: impl FnMut() -> Option<R>) -> Option<R> {
    if SPIN_BUDGET.is_zero() {
        return attempt();
    }
    let end = Instant::now() + SPIN_BUDGET;
    loop {
        if let Some(r) = attempt() {
            return Some(r);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::yield_now();
    }
}

/// A monotonic clock read cheaply: `CLOCK_MONOTONIC_COARSE`, the time of
/// the last timer tick (1-4 ms steps), served from the vDSO without reading
/// the hardware clock (a few ns, against ~30 ns for `Instant::now` on a
/// VM). For periodic chores on a hot path ("at most once per 10 ms"),
/// never for deadlines a caller gave.
#[inline]
pub(crate) fn coarse_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `now + timeout`, or `None` (wait forever) if that overflows `Instant`.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Whether `deadline` has passed.
#[inline]
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// How long a sleeper of a primitive without owners (semaphore, event)
/// waits before it looks at the shared state again, even with no deadline:
/// garbage written by a peer, or a lost wake-up caused by a peer dying
/// mid-protocol, delays it by at most this much.
pub(crate) const RECHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The earlier of `deadline` and `interval` from now.
fn slice(deadline: Option<Instant>, interval: Duration) -> Option<Instant> {
    let slice = Instant::now() + interval;
    Some(deadline.map_or(slice, |d| d.min(slice)))
}

/// The earlier of `deadline` and one [`PROBE_INTERVAL`] from now: how long
/// to sleep before looking at a peer's liveness again.
pub(crate) fn probe_slice(deadline: Option<Instant>) -> Option<Instant> {
    slice(deadline, PROBE_INTERVAL)
}

/// The earlier of `deadline` and one [`RECHECK_INTERVAL`] from now.
pub(crate) fn recheck_slice(deadline: Option<Instant>) -> Option<Instant> {
    slice(deadline, RECHECK_INTERVAL)
}

/// Tries `attempt` until it gives a value: at once, then (if `wait`)
/// spinning a little, then sleeping on `signal` in probe slices until
/// `deadline` (`None`: no limit), running `between` before each sleep.
/// `Ok(None)`: nothing by then (at once, for `!wait`). An error from
/// either stops it.
pub(crate) fn wait_for<R, E>(
    signal: &crate::Signal,
    deadline: Option<Instant>,
    wait: bool,
    mut attempt: impl FnMut() -> Result<Option<R>, E>,
    mut between: impl FnMut() -> Result<(), E>,
) -> Result<Option<R>, E> {
    if let Some(r) = attempt()? {
        return Ok(Some(r));
    }
    if !wait {
        return Ok(None);
    }
    if let Some(r) = spin_for(|| attempt().transpose()).transpose()? {
        return Ok(Some(r));
    }
    loop {
        if expired(deadline) {
            return Ok(None);
        }
        between()?;
        let woke = signal.wait_deadline(probe_slice(deadline), || attempt().transpose());
        if let Some(r) = woke.transpose()? {
            return Ok(Some(r));
        }
    }
}
