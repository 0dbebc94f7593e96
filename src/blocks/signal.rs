//! [`Signal`]: how a side that cannot proceed (a ring's producer or
//! consumer, a channel end) sleeps, and how the other side wakes it without
//! a system call per message.
//!
//! ```text
//! word      written by                    meaning
//! epoch     notifier (only when sleepers) futex word; bumped to wake
//! sleepers  waiter (set) / notifier (clear) non-zero: someone may sleep
//! ```
//!
//! The notifier (a producer that just published, say) runs
//! [`Signal::notify`]: a light fence and one load of `sleepers`, which is a
//! cache hit while nobody sleeps — no system call, no locked instruction.
//! The waiter, before sleeping, reads `epoch`, sets `sleepers`, runs a
//! heavy fence (`fence_heavy`: `membarrier`), and re-checks its
//! condition. The light/heavy pair orders "publish, then look for
//! sleepers" against "announce sleep, then look for data": either the
//! waiter sees the data, or the notifier sees the sleeper and bumps
//! `epoch` and wakes it; and a bump between the waiter's read of `epoch`
//! and its `futex_wait` makes the wait return at once. So no wake-up is
//! lost (the loom model below checks it).
//!
//! Sleepers wake every `RECHECK_INTERVAL` (100 ms) at the latest and
//! look again, so a peer that dies between the two halves of the protocol,
//! or scribbles on these words, delays a waiter by at most that.

use super::ShmSafe;
use crate::primitive::{fence_heavy, fence_light, futex_wait, futex_wake_all, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a sleeper sleeps at most before it looks again.
const RECHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A sleep and wake point for one waiting side; lives in shared memory,
/// zero = idle.
///
/// The side that publishes something calls [`notify`](Self::notify)
/// afterwards: while nobody sleeps that is a light fence and one load, no
/// system call and no locked instruction. The side that waits for it calls
/// [`wait_deadline`](Self::wait_deadline) with its full check, after
/// spinning a while on its own: the check is made again after the sleep is
/// announced (behind a heavy `membarrier` fence), so a notify that races
/// with falling asleep is never lost. Sleepers wake every 100 ms at the
/// latest and check again, so a peer that dies halfway or scribbles on the
/// words delays a waiter by at most that.
///
/// ```
/// use shmkit::Signal;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let shared = Arc::new((Signal::new(), AtomicU64::new(0)));
/// let peer = shared.clone();
/// let producer = std::thread::spawn(move || {
///     peer.1.store(7, Ordering::Release);
///     peer.0.notify();
/// });
/// let got = shared.0.wait_deadline(None, || {
///     let v = shared.1.load(Ordering::Acquire);
///     (v != 0).then_some(v)
/// });
/// assert_eq!(got, Some(7));
/// producer.join().unwrap();
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Signal {
    epoch: AtomicU32,
    sleepers: AtomicU32,
}

// SAFETY: repr(C), two u32 atomics; any values only cost a spare wake or a
// bounded (RECHECK_INTERVAL) delay.
unsafe impl ShmSafe for Signal {}

impl Signal {
    /// An idle signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every sleeper, if any; call after publishing what they wait
    /// for. Costs a light fence and one load while nobody sleeps.
    #[inline]
    pub fn notify(&self) {
        fence_light();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        self.sleepers.store(0, Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::Release);
        futex_wake_all(&self.epoch);
    }

    /// Sleeps until `ready` returns `Some`, or `deadline` passes (then
    /// `None`). `ready` is called again after announcing the sleep, so it
    /// must be the full, fresh check (it may be called many times).
    ///
    /// The caller spins before calling this: this is the slow path.
    pub fn wait_deadline<R>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Option<R>,
    ) -> Option<R> {
        loop {
            if let Some(r) = ready() {
                return Some(r);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let epoch = self.epoch.load(Ordering::Acquire);
            self.sleepers.store(1, Ordering::Relaxed);
            fence_heavy();
            if let Some(r) = ready() {
                return Some(r);
            }
            let slice = Instant::now() + RECHECK_INTERVAL;
            futex_wait(
                &self.epoch,
                epoch,
                Some(deadline.map_or(slice, |d| d.min(slice))),
            );
        }
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::primitive::AtomicU64;
    use std::sync::Arc;

    /// Park/unpark: a consumer that waits for a published value always
    /// wakes, whatever the interleaving of publish+notify against
    /// announce+recheck+sleep.
    #[test]
    fn notify_after_publish_is_never_lost() {
        loom::model(|| {
            let shared = Arc::new((Signal::new(), AtomicU64::new(0)));
            let s2 = shared.clone();
            let producer = loom::thread::spawn(move || {
                s2.1.store(1, Ordering::Release);
                s2.0.notify();
            });
            let got = shared.0.wait_deadline(None, || {
                let v = shared.1.load(Ordering::Acquire);
                (v != 0).then_some(v)
            });
            assert_eq!(got, Some(1));
            producer.join().unwrap();
        });
    }

    /// Two publishes, one waiter that needs both: the second notify is not
    /// swallowed by the first wake.
    #[test]
    fn repeated_notifies_reach_a_waiter_that_sleeps_again() {
        loom::model(|| {
            let shared = Arc::new((Signal::new(), AtomicU64::new(0)));
            let s2 = shared.clone();
            let producer = loom::thread::spawn(move || {
                for _ in 0..2 {
                    s2.1.fetch_add(1, Ordering::Release);
                    s2.0.notify();
                }
            });
            let got = shared.0.wait_deadline(None, || {
                let v = shared.1.load(Ordering::Acquire);
                (v == 2).then_some(v)
            });
            assert_eq!(got, Some(2));
            producer.join().unwrap();
        });
    }
}
