//! Futex wait and wake on a word that may be shared between processes.
//!
//! Waits use `FUTEX_WAIT_BITSET`, whose timeout is an absolute
//! `CLOCK_MONOTONIC` instant: a wait interrupted by a signal and restarted
//! does not stretch its deadline. The flags never include
//! `FUTEX_PRIVATE_FLAG`: the kernel then keys the wait by the page's
//! backing object and offset, which is what makes it work across processes.
#![allow(clippy::disallowed_types)]

use core::num::NonZeroU32;
use core::sync::atomic::AtomicU32;
use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::{clock_gettime, ClockId, Timespec};
use std::time::Instant;

const ALL_BITS: NonZeroU32 = match NonZeroU32::new(u32::MAX) {
    Some(v) => v,
    None => unreachable!(),
};

/// Converts an `Instant` to an absolute `CLOCK_MONOTONIC` timespec (the
/// clock `Instant` reads on Linux).
fn monotonic_deadline(deadline: Instant) -> Timespec {
    let now_instant = Instant::now();
    let now = clock_gettime(ClockId::Monotonic);
    let left = deadline.saturating_duration_since(now_instant);
    let mut secs = now.tv_sec.saturating_add(left.as_secs() as i64);
    let mut nsecs = now.tv_nsec + i64::from(left.subsec_nanos());
    if nsecs >= 1_000_000_000 {
        nsecs -= 1_000_000_000;
        secs = secs.saturating_add(1);
    }
    Timespec {
        tv_sec: secs,
        tv_nsec: nsecs,
    }
}

/// Sleeps while `word == expected`; see [`crate::primitive::futex_wait`].
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let ts = match deadline {
        Some(d) => {
            if Instant::now() >= d {
                return false;
            }
            Some(monotonic_deadline(d))
        }
        None => None,
    };
    match futex::wait_bitset(word, futex::Flags::empty(), expected, ts.as_ref(), ALL_BITS) {
        Err(Errno::TIMEDOUT) => false,
        // Woken, value already changed (EAGAIN), interrupted (EINTR): all
        // are "look again" for the caller.
        _ => true,
    }
}

/// Wakes up to `count` waiters on `word`.
pub(crate) fn wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}
