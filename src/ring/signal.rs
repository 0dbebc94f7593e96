//! [`Signal`]: how a ring side sleeps when it cannot proceed, and how the
//! other side wakes it without a system call per message.
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
//! heavy fence ([`fence_heavy`]: `membarrier`), and re-checks its
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

use crate::blocks::ShmSafe;
use crate::primitive::{fence_heavy, fence_light, futex_wait, futex_wake_all, AtomicU32, Ordering};
use crate::sync::wait::recheck_slice;
use std::time::Instant;

/// One side's sleep and wake point; lives in shared memory, zero = idle.
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
            futex_wait(&self.epoch, epoch, recheck_slice(deadline));
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
