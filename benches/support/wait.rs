//! Bounded waiting for the other side: spinning or yielding.

use super::allowed_cpus;
use std::time::{Duration, Instant};

/// How a waiter passes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Busy-spin with `std::hint::spin_loop` (the peer runs on another CPU).
    Spin,
    /// `sched_yield` between polls (only one CPU: spinning would burn the
    /// peer's time slice).
    Yield,
}

impl Wait {
    /// [`Wait::Spin`] when at least two CPUs are allowed, else
    /// [`Wait::Yield`].
    pub fn for_machine() -> Wait {
        if allowed_cpus().len() >= 2 {
            Wait::Spin
        } else {
            Wait::Yield
        }
    }
}

/// Polls until `poll` returns `Some`, or until about `limit` has passed
/// without it (then `None`).
///
/// The clock is not read on the fast path: only after a few thousand
/// fruitless polls does the limit start counting, so a waiter that is
/// answered quickly pays nothing for the bound.
#[inline(always)]
pub fn wait_for<T>(limit: Duration, how: Wait, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let mask: u32 = match how {
        Wait::Spin => 0xfff,
        Wait::Yield => 0x3f,
    };
    let mut polls: u32 = 0;
    let mut deadline: Option<Instant> = None;
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        match how {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
        }
        polls = polls.wrapping_add(1);
        if polls & mask == 0 {
            let now = Instant::now();
            match deadline {
                None => deadline = Some(now + limit),
                Some(d) if now >= d => return poll(),
                Some(_) => {}
            }
        }
    }
}
