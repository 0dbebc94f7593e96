//! [`CachePadded`]: a value alone on its cache lines.

use super::ShmSafe;
use core::fmt;
use core::ops::{Deref, DerefMut};

/// A value alone on a 128-byte line pair, so that writes to it never
/// contend with its neighbours (false sharing).
///
/// 128 bytes rather than 64 because adjacent-line prefetchers fetch
/// 64-byte lines in pairs. `#[repr(C)]`, so its layout in shared memory is
/// fixed: the value at offset 0, then padding up to a multiple of 128.
///
/// ```
/// use shmkit::{CachePadded, ShmSafe};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Counters {
///     produced: CachePadded<AtomicU64>, // written by one process
///     consumed: CachePadded<AtomicU64>, // written by another
/// }
///
/// assert_eq!(std::mem::size_of::<Counters>(), 256);
/// let c = Counters {
///     produced: CachePadded::new(AtomicU64::new(0)),
///     consumed: CachePadded::new(AtomicU64::new(0)),
/// };
/// c.produced.fetch_add(1, Ordering::Relaxed); // derefs to the value
/// assert_eq!(c.produced.load(Ordering::Relaxed), 1);
/// ```
#[repr(C, align(128))]
#[derive(Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CachePadded<T> {
    value: T,
}

// SAFETY: repr(C) around a ShmSafe value; the padding carries nothing
// (any bytes there are fine, and nothing reads them).
unsafe impl<T: ShmSafe> ShmSafe for CachePadded<T> {}

impl<T> CachePadded<T> {
    /// Pads `value`.
    pub const fn new(value: T) -> Self {
        Self { value }
    }

    /// The value, unpadded.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for CachePadded<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for CachePadded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CachePadded").field(&self.value).finish()
    }
}

impl<T> From<T> for CachePadded<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}
