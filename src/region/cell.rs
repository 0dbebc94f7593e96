//! What may live in shared memory: the [`ShmSafe`] marker and
//! [`SharedCell`], a cell for plain data that peers read and write.

use crate::primitive::UnsafeCell;
use bytemuck::Pod;
use std::fmt;

/// Types that may be placed in shared memory and used through `&Self` from
/// several processes at once.
///
/// Implemented for the integer atomics (`core`'s and shmkit's), for
/// [`SharedCell<T>`], and for arrays of `ShmSafe` types. Implement it for
/// your own `#[repr(C)]` structs whose fields are all `ShmSafe`.
///
/// # Safety
///
/// Implementing it promises that:
/// 1. every bit pattern of `size_of::<Self>()` bytes is a valid `Self`
///    (a peer may write anything), and the all-zero pattern is its initial
///    value (new regions are zero-filled);
/// 2. `Self` holds no pointer or reference, and nothing whose meaning
///    depends on the address space (a file descriptor, a `Box`);
/// 3. all mutation goes through interior mutability that tolerates
///    concurrent access from another process: atomics, or [`SharedCell`];
///    no `&T` to plain data is ever handed out;
/// 4. `Self` needs no `Drop` (regions never run destructors), and its
///    layout is fixed (`#[repr(C)]` or `#[repr(transparent)]`).
///
/// `AtomicBool` is not `ShmSafe` (a peer may write a byte that is not a
/// `bool`), nor are raw pointers or references.
///
/// ```
/// use shmkit::{ShmSafe, SharedCell};
/// use std::sync::atomic::AtomicU64;
///
/// #[repr(C)]
/// struct Stats {
///     hits: AtomicU64,
///     last: SharedCell<[u8; 16]>,
/// }
/// // SAFETY: repr(C), every field is ShmSafe.
/// unsafe impl ShmSafe for Stats {}
/// ```
pub unsafe trait ShmSafe: Sync + Sized {}

// SAFETY: an array of `ShmSafe` values meets every point field by field.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// A cell holding plain data (`T: Pod`) in shared memory, read and written
/// by copy, never by reference.
///
/// Reads and writes are volatile copies: a reader never holds a `&T` that a
/// peer could change under it. A read that races with a write from another
/// process may see a torn value, which is still a valid `T` (every bit
/// pattern of a `Pod` type is); guard multi-word values with a lock or a
/// sequence counter when tearing matters.
///
/// ```
/// use shmkit::SharedCell;
/// let c = SharedCell::new([1u32, 2, 3]);
/// c.set([4, 5, 6]);
/// assert_eq!(c.get(), [4, 5, 6]);
/// ```
#[repr(transparent)]
pub struct SharedCell<T: Pod> {
    value: UnsafeCell<T>,
}

// SAFETY: all access to the contents is a volatile copy of a `Pod` value;
// no reference to them escapes, and torn values are valid `T`s.
unsafe impl<T: Pod + Send> Sync for SharedCell<T> {}

// SAFETY: `repr(transparent)` over `T: Pod` (any bit pattern valid, zero is
// valid, no pointers, no `Drop`); access is only by copy.
unsafe impl<T: Pod + Send> ShmSafe for SharedCell<T> {}

impl<T: Pod> SharedCell<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
        }
    }

    /// Copies the value out.
    #[inline]
    pub fn get(&self) -> T {
        // SAFETY: the pointer comes from a live `UnsafeCell<T>` so it is
        // valid and aligned; `T: Pod` makes any bytes found there a valid
        // `T`; the read is volatile so it is never merged or elided.
        self.value.with(|p| unsafe { p.read_volatile() })
    }

    /// Copies `value` in.
    #[inline]
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; no reference to the contents exists to be
        // invalidated by the write.
        self.value.with_mut(|p| unsafe { p.write_volatile(value) })
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for SharedCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedCell").field(&self.get()).finish()
    }
}

impl<T: Pod> Default for SharedCell<T> {
    fn default() -> Self {
        Self::new(T::zeroed())
    }
}
