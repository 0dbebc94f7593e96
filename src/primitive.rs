//! The concurrency shim: the only module that names atomics, `UnsafeCell`
//! and futex wait/wake.
//!
//! Everything else in the crate uses the types defined here. Normally they
//! are thin `#[repr(transparent)]` wrappers over `core`'s atomics and the
//! real Linux futex (shared, never `FUTEX_PRIVATE`, so it works across
//! processes). Under `--cfg shmkit_loom` they wrap [`loom`]'s types instead,
//! and the futex is modelled by a global table of condition variables keyed
//! by address: a waiter checks the word and sleeps under the table's lock,
//! exactly as the kernel checks the word under its hash-bucket lock, so a
//! lost wake-up shows up as a deadlock that loom reports.
//!
//! A clippy `disallowed-types` rule (see `clippy.toml`) rejects the raw
//! `core`/`std` atomics and `UnsafeCell` everywhere but here.
//!
//! Under loom, a futex wait with a deadline blocks like one without: loom has
//! no clock, and a model whose progress depends on a timeout firing is a
//! model of a lost wake-up.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

pub use core::sync::atomic::Ordering;

#[cfg(not(shmkit_loom))]
use core::sync::atomic as imp;
#[cfg(shmkit_loom)]
use loom::sync::atomic as imp;

macro_rules! atomic_int {
    ($(#[$doc:meta])* $name:ident, $int:ty) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Debug, Default)]
        pub struct $name(imp::$name);

        #[allow(dead_code)]
        impl $name {
            /// A new atomic holding `v`.
            #[cfg(not(shmkit_loom))]
            #[inline]
            pub const fn new(v: $int) -> Self {
                Self(imp::$name::new(v))
            }
            /// A new atomic holding `v`.
            #[cfg(shmkit_loom)]
            pub fn new(v: $int) -> Self {
                Self(imp::$name::new(v))
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn load(&self, o: Ordering) -> $int {
                self.0.load(o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn store(&self, v: $int, o: Ordering) {
                self.0.store(v, o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn swap(&self, v: $int, o: Ordering) -> $int {
                self.0.swap(v, o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn fetch_add(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_add(v, o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn fetch_sub(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_sub(v, o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn fetch_or(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_or(v, o)
            }
            /// See `core::sync::atomic`.
            #[inline]
            pub fn fetch_and(&self, v: $int, o: Ordering) -> $int {
                self.0.fetch_and(v, o)
            }
        }

        // SAFETY: a `#[repr(transparent)]` wrapper over an integer atomic:
        // every bit pattern is a valid value, it holds no pointer, the
        // all-zero pattern is the value 0, and all access is atomic.
        unsafe impl crate::blocks::ShmSafe for $name {}
    };
}

atomic_int!(
    /// A 32-bit atomic that may live in shared memory; also the futex word.
    AtomicU32,
    u32
);
atomic_int!(
    /// A 64-bit atomic that may live in shared memory.
    AtomicU64,
    u64
);
atomic_int!(
    /// A pointer-sized atomic that may live in shared memory.
    AtomicUsize,
    usize
);

// SAFETY (all impls below): integer atomics of `core` have the size and
// alignment of their integer, every bit pattern is a valid value, the
// all-zero pattern is 0, they hold no pointer and are only accessed
// atomically. `AtomicBool` and `AtomicPtr` are deliberately left out: a
// peer can write a byte that is not a valid `bool`, and a pointer means
// nothing in another address space.
macro_rules! shm_safe_core_atomics {
    ($($t:ident)*) => {$(
        // SAFETY: see the comment above the macro.
        unsafe impl crate::blocks::ShmSafe for core::sync::atomic::$t {}
    )*};
}
shm_safe_core_atomics!(AtomicU8 AtomicU16 AtomicU32 AtomicU64 AtomicUsize AtomicI8 AtomicI16 AtomicI32 AtomicI64 AtomicIsize);

/// A fence; see `core::sync::atomic::fence`.
#[inline]
#[allow(dead_code)]
pub fn fence(o: Ordering) {
    imp::fence(o)
}

/// A compiler-only fence; see `core::sync::atomic::compiler_fence`.
#[inline]
#[allow(dead_code)]
pub fn compiler_fence(o: Ordering) {
    core::sync::atomic::compiler_fence(o)
}

/// The cheap half of an asymmetric barrier pair, for a hot path (a ring's
/// producer after publishing): a compiler fence when this process is
/// registered for `membarrier` global-expedited barriers, a full fence
/// otherwise. Paired with [`fence_heavy`] on the slow path, the two order a
/// store before a load on each side as two SeqCst fences would (the
/// Dekker pattern: "I published, does anyone sleep?" against "I sleep, has
/// anything been published?").
#[inline]
#[allow(dead_code)]
pub fn fence_light() {
    #[cfg(not(shmkit_loom))]
    {
        if asymmetric::registered() {
            core::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            core::sync::atomic::fence(Ordering::SeqCst);
        }
    }
    #[cfg(shmkit_loom)]
    imp::fence(Ordering::SeqCst);
}

/// The expensive half of the asymmetric barrier pair, for a slow path (a
/// consumer about to sleep): `membarrier(GLOBAL_EXPEDITED)`, which forces a
/// full barrier on every CPU running a registered process, or a full fence
/// if that is unavailable (in which case [`fence_light`] is a full fence
/// too).
#[inline]
#[allow(dead_code)]
pub fn fence_heavy() {
    #[cfg(not(shmkit_loom))]
    {
        core::sync::atomic::fence(Ordering::SeqCst);
        if asymmetric::registered() && !crate::sys::membarrier::global_expedited() {
            // Registered but the barrier failed: nothing else can order the
            // peer's plain accesses. The caller bounds every sleep, so a
            // missed wake-up costs one sleep slice at most.
            core::sync::atomic::fence(Ordering::SeqCst);
        }
    }
    #[cfg(shmkit_loom)]
    imp::fence(Ordering::SeqCst);
}

#[cfg(not(shmkit_loom))]
mod asymmetric {
    //! Whether this process uses `membarrier` for asymmetric fences, decided
    //! once: 0 = not yet, 1 = yes, 2 = no.
    use core::sync::atomic::{AtomicU8, Ordering};

    static STATE: AtomicU8 = AtomicU8::new(0);

    #[inline]
    pub(super) fn registered() -> bool {
        match STATE.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => register(),
        }
    }

    #[cold]
    fn register() -> bool {
        let ok = crate::sys::membarrier::register_global_expedited();
        STATE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
        ok
    }
}

/// A hint to start bringing the cache line holding `p` into this CPU's
/// cache, for a reader about to need it. Not a memory access in Rust's
/// model (it cannot race, fault or be observed), so `p` may point anywhere,
/// even at memory another process is writing; a no-op where there is no
/// such instruction, and under loom.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(shmkit_loom)))]
    // SAFETY: `prefetcht0` is a hint: it reads nothing the program can
    // observe and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(shmkit_loom))))]
    let _ = p;
}

/// A hint that the caller is spinning.
#[inline]
#[allow(dead_code)]
pub fn spin_loop() {
    #[cfg(not(shmkit_loom))]
    core::hint::spin_loop();
    #[cfg(shmkit_loom)]
    loom::thread::yield_now();
}

/// Interior mutability for data guarded by a protocol; access goes through
/// closures so loom can track every read and write.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T>(imp_cell::UnsafeCell<T>);

#[cfg(not(shmkit_loom))]
use core::cell as imp_cell;
#[cfg(shmkit_loom)]
use loom::cell as imp_cell;

#[allow(dead_code)]
impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    #[cfg(not(shmkit_loom))]
    #[inline]
    pub const fn new(v: T) -> Self {
        Self(imp_cell::UnsafeCell::new(v))
    }
    /// A cell holding `v`.
    #[cfg(shmkit_loom)]
    pub fn new(v: T) -> Self {
        Self(imp_cell::UnsafeCell::new(v))
    }
    /// Runs `f` with a read pointer to the contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(shmkit_loom))]
        return f(self.0.get());
        #[cfg(shmkit_loom)]
        return self.0.with(f);
    }
    /// Runs `f` with a write pointer to the contents.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(shmkit_loom))]
        return f(self.0.get());
        #[cfg(shmkit_loom)]
        return self.0.with_mut(f);
    }
}

/// The width of the relaxed atomic words [`atomic_load`] and
/// [`atomic_store`] copy a `T` in: its alignment, at most 8. A `T`'s size
/// is a multiple of its alignment, so the words tile it exactly, and a
/// `T`-aligned address is aligned for them.
#[cfg(not(shmkit_loom))]
pub const fn atomic_width<T>() -> usize {
    let align = core::mem::align_of::<T>();
    if align >= 8 {
        8
    } else {
        align
    }
}

/// Copies the `T` at `src` into `dst` as relaxed atomic loads of
/// [`atomic_width::<T>()`](atomic_width) bytes each, in order.
///
/// Every access to the source made this way, and by [`atomic_store`],
/// uses words of the same size at the same places, so copies that run at
/// the same time from several threads are not data races (a plain copy
/// would be). They can tear: `dst` may get some words of one store and
/// some of another.
///
/// # Safety
///
/// `src` is valid for reads of a `T`, aligned, and for as long as the copy
/// runs every other access to those bytes in this process is an atomic
/// access of the same width (or a read); `dst` is valid for writes of a
/// `T` and aligned. `T` has no padding bytes and any bytes are a valid
/// `T` (as for a `Pod` type).
#[cfg(not(shmkit_loom))]
#[inline]
pub unsafe fn atomic_load<T>(src: *const T, dst: *mut T) {
    macro_rules! words {
        ($atomic:ident, $int:ty) => {
            for i in 0..core::mem::size_of::<T>() / core::mem::size_of::<$int>() {
                // SAFETY: word `i` lies inside the source `T` (the words tile
                // it) and is aligned (the `T` is, to at least the width);
                // the caller guarantees every concurrent access to it is an
                // atomic of this width, as `from_ptr` requires.
                let word = unsafe {
                    core::sync::atomic::$atomic::from_ptr(src.cast::<$int>().add(i).cast_mut())
                };
                let v = word.load(Ordering::Relaxed);
                // SAFETY: the same word of the destination, which the caller
                // guarantees is valid for writes and aligned.
                unsafe { dst.cast::<$int>().add(i).write(v) };
            }
        };
    }
    match atomic_width::<T>() {
        8 => words!(AtomicU64, u64),
        4 => words!(AtomicU32, u32),
        2 => words!(AtomicU16, u16),
        _ => words!(AtomicU8, u8),
    }
}

/// Copies `*src` into the `T` at `dst` as relaxed atomic stores of
/// [`atomic_width::<T>()`](atomic_width) bytes each, in order; the
/// counterpart of [`atomic_load`].
///
/// # Safety
///
/// `dst` is valid for writes of a `T`, aligned, and for as long as the
/// copy runs every other access to those bytes in this process is an
/// atomic access of the same width; no reference to them other than to
/// the `UnsafeCell` holding them is alive. `T` has no padding bytes (as
/// for a `Pod` type), so every word of `*src` is initialized.
#[cfg(not(shmkit_loom))]
#[inline]
pub unsafe fn atomic_store<T>(dst: *mut T, src: &T) {
    let src: *const T = src;
    macro_rules! words {
        ($atomic:ident, $int:ty) => {
            for i in 0..core::mem::size_of::<T>() / core::mem::size_of::<$int>() {
                // SAFETY: word `i` of `*src`, a valid, aligned `T` that
                // nothing writes meanwhile (it is borrowed shared).
                let v = unsafe { src.cast::<$int>().add(i).read() };
                let at = dst.cast::<$int>();
                // SAFETY: as in `atomic_load`, for the destination's word.
                let word = unsafe { core::sync::atomic::$atomic::from_ptr(at.add(i)) };
                word.store(v, Ordering::Relaxed);
            }
        };
    }
    match atomic_width::<T>() {
        8 => words!(AtomicU64, u64),
        4 => words!(AtomicU32, u32),
        2 => words!(AtomicU16, u16),
        _ => words!(AtomicU8, u8),
    }
}

/// Sleeps while `word` holds `expected`, until woken, until `deadline`
/// (if any) passes, or spuriously.
///
/// Returns `false` only if the deadline passed. Callers must re-check
/// their condition in a loop: a return says nothing about the word.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    #[cfg(not(shmkit_loom))]
    return crate::sys::futex::wait(&word.0, expected, deadline);
    #[cfg(shmkit_loom)]
    {
        let _ = deadline;
        loom_futex::wait(word, expected);
        true
    }
}

/// Wakes at most `count` processes or threads sleeping on `word`; returns
/// how many were woken.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    #[cfg(not(shmkit_loom))]
    return crate::sys::futex::wake(&word.0, count);
    #[cfg(shmkit_loom)]
    return loom_futex::wake(word, count);
}

/// Wakes every process or thread sleeping on `word`.
#[inline]
#[allow(dead_code)]
pub fn futex_wake_all(word: &AtomicU32) -> usize {
    futex_wake(word, i32::MAX as u32)
}

#[cfg(shmkit_loom)]
mod loom_futex {
    //! The futex model: one loom mutex guards every word's check-and-sleep,
    //! one condvar per address carries the wake-ups.
    use super::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::collections::HashMap;
    use std::sync::Arc;

    struct Table {
        lock: Mutex<HashMap<usize, (Arc<Condvar>, usize)>>,
    }

    loom::lazy_static! {
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

#[cfg(all(test, shmkit_loom))]
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
