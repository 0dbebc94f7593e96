//! One element slot of a ring.

use crate::blocks::ShmSafe;
use crate::primitive::UnsafeCell;
use bytemuck::Pod;

/// One element slot of a ring: plain data behind an `UnsafeCell`, written
/// by the side that owns it under the ring's protocol and read by copy.
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct Slot<T: Pod> {
    value: UnsafeCell<T>,
}

// SAFETY: access to the contents follows the ring protocol (one side owns
// a slot at a time); `T: Pod` makes any bytes a misbehaving peer writes a
// valid `T`.
unsafe impl<T: Pod + Send> Sync for Slot<T> {}
// SAFETY: repr(transparent) over `T: Pod`: any bytes valid, zero valid, no
// pointers, no Drop.
unsafe impl<T: Pod + Send> ShmSafe for Slot<T> {}

impl<T: Pod> Slot<T> {
    /// A slot holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
        }
    }

    /// Copies the value out.
    ///
    /// # Safety
    ///
    /// The caller owns the slot for reading under its ring's protocol (no
    /// correct participant writes it concurrently).
    #[inline]
    pub(crate) unsafe fn read(&self) -> T {
        // SAFETY: valid, aligned pointer from a live cell; `T: Pod`; the
        // caller guarantees no concurrent correct writer. A plain (not
        // volatile) copy lets the compiler move wide words: a volatile read
        // of `[u8; 64]` becomes 64 byte loads.
        self.value.with(|p| unsafe { p.read() })
    }

    /// Copies the value into `out`, without a temporary: returning a large
    /// `T` through nested results made the compiler copy it piecewise
    /// through the stack several times.
    ///
    /// # Safety
    ///
    /// As for [`read`](Self::read).
    #[inline]
    pub(crate) unsafe fn read_into(&self, out: &mut T) {
        // SAFETY: as in `read`; `out` is a valid, exclusive, aligned `T`
        // that cannot overlap the slot (it is not in shared memory we hand
        // out references to).
        self.value
            .with(|p| unsafe { core::ptr::copy_nonoverlapping(p, out as *mut T, 1) })
    }

    /// Copies `value` in.
    ///
    /// # Safety
    ///
    /// The caller owns the slot for writing under its ring's protocol.
    #[inline]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: as in `read`; the caller owns the slot exclusively.
        self.value.with_mut(|p| unsafe { p.write(value) })
    }
}
