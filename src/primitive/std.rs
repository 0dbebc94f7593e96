//! The real back end: `core`'s atomics and `UnsafeCell`, the Linux futex,
//! `membarrier` for the asymmetric fence pair, and word-wise atomic copies.
#![allow(clippy::disallowed_types)]

use super::{atomic_ints, Ordering};
use core::sync::atomic as raw;
use std::time::Instant;

pub use core::sync::atomic::fence;

atomic_ints!(const);

/// The cheap half of an asymmetric barrier pair, for a hot path (a ring's
/// producer after publishing): a compiler fence when this process is
/// registered for `membarrier` global-expedited barriers, a full fence
/// otherwise. Paired with [`fence_heavy`] on the slow path, the two order a
/// store before a load on each side as two SeqCst fences would (the
/// Dekker pattern: "I published, does anyone sleep?" against "I sleep, has
/// anything been published?").
#[inline]
pub fn fence_light() {
    if asymmetric::registered() {
        raw::compiler_fence(Ordering::SeqCst);
    } else {
        raw::fence(Ordering::SeqCst);
    }
}

/// The expensive half of the asymmetric barrier pair, for a slow path (a
/// consumer about to sleep): a full fence, then
/// `membarrier(GLOBAL_EXPEDITED)` if this process is registered, which
/// forces a full barrier on every CPU running a registered process (if it
/// is not, [`fence_light`] is a full fence too).
///
/// If the barrier fails although the process registered, nothing this
/// side can do orders the peer's accesses (its light fence is a compiler
/// fence); the caller bounds every sleep, so a missed wake-up costs one
/// sleep slice at most.
#[inline]
pub fn fence_heavy() {
    raw::fence(Ordering::SeqCst);
    if asymmetric::registered() {
        let _ = crate::sys::membarrier::global_expedited();
    }
}

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
/// such instruction.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it reads nothing the program can
    // observe and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A hint that the caller is spinning.
#[inline]
pub fn spin_loop() {
    core::hint::spin_loop();
}

/// Interior mutability for data guarded by a protocol; access goes through
/// closures so loom can track every read and write.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    #[inline]
    pub const fn new(v: T) -> Self {
        Self(core::cell::UnsafeCell::new(v))
    }
    /// Runs `f` with a read pointer to the contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    /// Runs `f` with a write pointer to the contents.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// The width of the relaxed atomic words [`atomic_load`] and
/// [`atomic_store`] copy a `T` in: its alignment, at most 8. A `T`'s size
/// is a multiple of its alignment, so the words tile it exactly, and a
/// `T`-aligned address is aligned for them.
pub const fn atomic_width<T>() -> usize {
    let align = core::mem::align_of::<T>();
    if align >= 8 {
        8
    } else {
        align
    }
}

/// Runs `$words!(Atomic, int)` for the word width of `$t`
/// ([`atomic_width`]).
macro_rules! by_width {
    ($t:ty, $words:ident) => {
        match atomic_width::<$t>() {
            8 => $words!(AtomicU64, u64),
            4 => $words!(AtomicU32, u32),
            2 => $words!(AtomicU16, u16),
            _ => $words!(AtomicU8, u8),
        }
    };
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
#[inline]
pub unsafe fn atomic_load<T>(src: *const T, dst: *mut T) {
    macro_rules! words {
        ($atomic:ident, $int:ty) => {
            for i in 0..core::mem::size_of::<T>() / core::mem::size_of::<$int>() {
                // SAFETY: word `i` lies inside the source `T` (the words tile
                // it) and is aligned (the `T` is, to at least the width);
                // the caller guarantees every concurrent access to it is an
                // atomic of this width, as `from_ptr` requires.
                let word = unsafe { raw::$atomic::from_ptr(src.cast::<$int>().add(i).cast_mut()) };
                let v = word.load(Ordering::Relaxed);
                // SAFETY: the same word of the destination, which the caller
                // guarantees is valid for writes and aligned.
                unsafe { dst.cast::<$int>().add(i).write(v) };
            }
        };
    }
    by_width!(T, words);
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
                let word = unsafe { raw::$atomic::from_ptr(at.add(i)) };
                word.store(v, Ordering::Relaxed);
            }
        };
    }
    by_width!(T, words);
}

/// Sleeps while `word` holds `expected`, until woken, until `deadline`
/// (if any) passes, or spuriously.
///
/// Returns `false` only if the deadline passed. Callers must re-check
/// their condition in a loop: a return says nothing about the word.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    crate::sys::futex::wait(&word.0, expected, deadline)
}

/// Wakes at most `count` processes or threads sleeping on `word`; returns
/// how many were woken.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    crate::sys::futex::wake(&word.0, count)
}
