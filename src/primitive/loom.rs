//! The model back end: loom's atomics and `UnsafeCell`, every fence a
//! SeqCst fence, and a futex model loom can explore.
#![allow(clippy::disallowed_types)]

use super::{atomic_ints, Ordering};
use ::loom::sync::atomic as raw;
use std::time::Instant;

pub use ::loom::sync::atomic::fence;

atomic_ints!();

/// The light half of the asymmetric barrier pair: modelled as a SeqCst
/// fence (the real one is a compiler fence only when the heavy half is a
/// `membarrier`, which orders as a fence on every CPU would).
#[inline]
pub fn fence_light() {
    raw::fence(Ordering::SeqCst);
}

/// The heavy half of the asymmetric barrier pair: a SeqCst fence.
#[inline]
pub fn fence_heavy() {
    raw::fence(Ordering::SeqCst);
}

/// A prefetch hint: a no-op (it is no memory access).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    let _ = p;
}

/// A hint that the caller is spinning: lets loom run another thread.
#[inline]
pub fn spin_loop() {
    ::loom::thread::yield_now();
}

/// Interior mutability for data guarded by a protocol; loom tracks every
/// read and write through `with` and `with_mut`.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T>(::loom::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        Self(::loom::cell::UnsafeCell::new(v))
    }
    /// Runs `f` with a read pointer to the contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }
    /// Runs `f` with a write pointer to the contents.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
}

/// Sleeps while `word` holds `expected`, until woken. The deadline is
/// ignored (loom has no clock), so this returns `true`.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let _ = deadline;
    futex::wait(word, expected);
    true
}

/// Wakes at most `count` threads sleeping on `word`; returns how many were
/// woken.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, count)
}

mod futex {
    //! The futex model: one loom mutex guards every word's check-and-sleep,
    //! one condvar per address carries the wake-ups.
    use super::{AtomicU32, Ordering};
    use ::loom::sync::{Condvar, Mutex};
    use std::collections::HashMap;
    use std::sync::Arc;

    struct Table {
        lock: Mutex<HashMap<usize, (Arc<Condvar>, usize)>>,
    }

    ::loom::lazy_static! {
        static ref TABLE: Table = Table { lock: Mutex::new(HashMap::new()) };
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        let key = word as *const AtomicU32 as usize;
        let mut map = TABLE.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        let cv = {
            let e = map
                .entry(key)
                .or_insert_with(|| (Arc::new(Condvar::new()), 0));
            e.1 += 1;
            e.0.clone()
        };
        map = cv.wait(map).unwrap();
        if let Some(e) = map.get_mut(&key) {
            e.1 -= 1;
        }
    }

    pub(super) fn wake(word: &AtomicU32, count: u32) -> usize {
        let key = word as *const AtomicU32 as usize;
        let map = TABLE.lock.lock().unwrap();
        match map.get(&key) {
            Some((cv, waiters)) if *waiters > 0 => {
                let n = (*waiters).min(count as usize);
                if n == *waiters {
                    cv.notify_all();
                } else {
                    for _ in 0..n {
                        cv.notify_one();
                    }
                }
                n
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// Store-then-wake reaches a waiter whatever the interleaving.
    #[test]
    fn futex_wake_after_store_is_never_lost() {
        loom::model(|| {
            let flag = Arc::new(AtomicU32::new(0));
            let waiter = {
                let flag = flag.clone();
                loom::thread::spawn(move || {
                    while flag.load(Ordering::Acquire) == 0 {
                        futex_wait(&flag, 0, None);
                    }
                })
            };
            flag.store(1, Ordering::Release);
            futex_wake(&flag, 1);
            waiter.join().unwrap();
        });
    }

    /// The model is not vacuous: a waiter that checks one word but sleeps
    /// on another can miss the wake-up in some interleaving, and loom
    /// reports the resulting deadlock.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn futex_model_catches_a_lost_wake_up() {
        loom::model(|| {
            let flag = Arc::new(AtomicU32::new(0));
            let word = Arc::new(AtomicU32::new(0));
            let waiter = {
                let (flag, word) = (flag.clone(), word.clone());
                loom::thread::spawn(move || {
                    while flag.load(Ordering::Acquire) == 0 {
                        futex_wait(&word, 0, None);
                    }
                })
            };
            flag.store(1, Ordering::Release);
            futex_wake(&word, 1);
            waiter.join().unwrap();
        });
    }
}
