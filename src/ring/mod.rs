//! Lock-free rings in shared memory: [`spsc`] (one producer, one consumer,
//! `T: Pod` values), [`mpmc`] (many of each, Vyukov's bounded queue) and
//! [`bytes`] (variable-length framed records). A side that must wait for
//! the other parks on a [`Signal`](crate::Signal) (the channels do).
//!
//! Rings are raw data structures: `try_` operations that never block, on
//! memory laid out by the creator and validated by every opener. Blocking
//! sends and receives, and noticing that the peer is gone, are the
//! channel layer's job.
//!
//! Every index a ring reads from shared memory is checked before use: a
//! peer that scribbles on a ring makes the victim's operation return
//! [`RingError::Corrupted`], never read or write out of bounds, panic, or
//! loop forever.

pub mod bytes;
pub mod mpmc;
pub mod spsc;

use crate::blocks::ShmSafe;
use crate::primitive::UnsafeCell;
use bytemuck::Pod;

/// One element slot of a ring: plain data behind an `UnsafeCell`, written
/// by the side that owns it under the ring's protocol and read by copy.
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct Slot<T: Pod> {
    value: UnsafeCell<T>,
}

// SAFETY: access to the contents follows the ring protocol (one side owns
// a slot at a time); `T: Pod` makes any bytes a misbehaving peer writes a
// valid `T`.
unsafe impl<T: Pod + Send> Sync for Slot<T> {}
// SAFETY: repr(transparent) over `T: Pod`: any bytes valid, zero valid, no
// pointers, no Drop.
unsafe impl<T: Pod + Send> ShmSafe for Slot<T> {}

#[allow(dead_code)] // used by the rings as they land
impl<T: Pod> Slot<T> {
    /// A slot holding `value`.
    pub fn new(value: T) -> Self {
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

    /// A raw pointer to the value, for in-place chunk access.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.value.with_mut(|p| p)
    }
}

/// Why a ring operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// No room for what was pushed.
    #[error("the ring is full")]
    Full,
    /// Nothing to pop.
    #[error("the ring is empty")]
    Empty,
    /// A record larger than the ring's maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The most the ring accepts.
        max: usize,
    },
    /// Shared state that no correct participant writes.
    #[error("ring state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Creation-time parameters that do not fit a ring (zero or non-power-of-
/// two capacity, element type too large or too aligned, region too small)
/// are reported as [`crate::Error::InvalidSize`] or the region errors.
pub type Result<T, E = RingError> = std::result::Result<T, E>;
