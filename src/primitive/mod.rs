//! The concurrency shim: the only module that names atomics, `UnsafeCell`
//! and futex wait/wake.
//!
//! Everything else in the crate uses the types defined here, through the
//! same `crate::primitive::X` paths in both builds. One `cfg` picks the
//! back end, as tokio's `src/loom/` does:
//!
//! - `std` (normally): thin `#[repr(transparent)]` wrappers over `core`'s
//!   atomics, the real Linux futex (shared, never `FUTEX_PRIVATE`, so it
//!   works across processes), `membarrier` for the asymmetric fences, and
//!   the word-wise copies [`SharedCell`](crate::SharedCell) makes;
//! - `loom` (under `--cfg shmkit_loom`): the same names over loom's
//!   types. The futex is modelled by a global table of condition variables
//!   keyed by address: a waiter checks the word and sleeps under the
//!   table's lock, exactly as the kernel checks the word under its
//!   hash-bucket lock, so a lost wake-up shows up as a deadlock that loom
//!   reports. A futex wait with a deadline blocks like one without: loom
//!   has no clock, and a model whose progress depends on a timeout firing
//!   is a model of a lost wake-up.
//!
//! The two expose the same names with the same signatures, but for
//! `SharedCell`'s word-wise copies (`atomic_width`, `atomic_load`,
//! `atomic_store`), which only `std` has: loom cannot model an atomic
//! made from a pointer, and under loom `SharedCell` copies through its
//! loom cell, which loom checks.
//!
//! What does not depend on the back end lives here: `Ordering`, the
//! wrappers' shared methods (the `atomic_ints` macro each back end
//! invokes over its own atomics), [`futex_wake_all`], and `ShmSafe` for
//! `core`'s integer atomics.
//!
//! A clippy `disallowed-types` rule (see `clippy.toml`) rejects the raw
//! `core`/`std` atomics and `UnsafeCell` everywhere but here (and in the
//! futex system call wrapper).
#![allow(clippy::disallowed_types)]

#[cfg(not(shmkit_loom))]
mod std;
#[cfg(not(shmkit_loom))]
pub use self::std::*;

#[cfg(shmkit_loom)]
mod loom;
#[cfg(shmkit_loom)]
pub use self::loom::*;

pub use core::sync::atomic::Ordering;

/// Defines the integer atomic wrappers over the invoking back end's
/// atomics (its module alias `raw`), `#[repr(transparent)]` so their
/// layout is the integer's. `new` is a `const fn` when `const` is given
/// (the back end's `new` is one).
macro_rules! atomic_ints {
    ($($const:ident)?) => {
        atomic_ints!(@one ($($const)?)
            /// A 32-bit atomic that may live in shared memory; also the
            /// futex word.
            AtomicU32, u32);
        atomic_ints!(@one ($($const)?)
            /// A 64-bit atomic that may live in shared memory.
            AtomicU64, u64);
    };
    (@one ($($const:ident)?) $(#[$doc:meta])* $name:ident, $int:ty) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Debug, Default)]
        pub struct $name(raw::$name);

        impl $name {
            /// A new atomic holding `v`.
            #[inline]
            pub $($const)? fn new(v: $int) -> Self {
                Self(raw::$name::new(v))
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
            $crate::primitive::atomic_ints!(@rmw $int, swap fetch_add fetch_sub fetch_or fetch_and);
            $crate::primitive::atomic_ints!(@cas $int, compare_exchange compare_exchange_weak);
        }

        // SAFETY: a `#[repr(transparent)]` wrapper over an integer atomic:
        // every bit pattern is a valid value, it holds no pointer, the
        // all-zero pattern is the value 0, and all access is atomic.
        unsafe impl $crate::blocks::ShmSafe for $name {}
    };
    (@rmw $int:ty, $($op:ident)*) => {$(
        /// See `core::sync::atomic`.
        #[inline]
        // Both widths offer the same set; not each uses each in each build.
        #[allow(dead_code)]
        pub fn $op(&self, v: $int, o: Ordering) -> $int {
            self.0.$op(v, o)
        }
    )*};
    (@cas $int:ty, $($op:ident)*) => {$(
        /// See `core::sync::atomic`.
        #[inline]
        pub fn $op(
            &self,
            current: $int,
            new: $int,
            success: Ordering,
            failure: Ordering,
        ) -> Result<$int, $int> {
            self.0.$op(current, new, success, failure)
        }
    )*};
}
use atomic_ints;

/// Wakes every process or thread sleeping on `word`; returns how many were
/// woken.
#[inline]
pub fn futex_wake_all(word: &AtomicU32) -> usize {
    futex_wake(word, i32::MAX as u32)
}

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
