//! The SPSC ring's shared header and where each of its words lies: the
//! wire format every process that opens the ring agrees on.

use crate::blocks::{CachePadded, ShmSafe};
use crate::primitive::{AtomicU32, AtomicU64};

/// The magic word of an SPSC ring header: `b"shmkSPSC"` read as a
/// little-endian `u64`.
pub const SPSC_MAGIC: u64 = u64::from_le_bytes(*b"shmkSPSC");
/// Offset of the magic word (`u64`) in the header.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the capacity (`u64`) in the header.
pub const CAPACITY_OFFSET: usize = 8;
/// Offset of the element size (`u32`) in the header.
pub const ELEM_SIZE_OFFSET: usize = 16;
/// Offset of the element alignment (`u32`) in the header.
pub const ELEM_ALIGN_OFFSET: usize = 20;
/// Offset of `head` (`u64`, written by the consumer) in the header.
pub const HEAD_OFFSET: usize = 128;
/// Offset of `tail` (`u64`, written by the producer) in the header.
pub const TAIL_OFFSET: usize = 256;
/// Size of the header; the slots follow it.
pub const HEADER_SIZE: usize = 384;
/// The largest element alignment a ring accepts: the header's.
pub const MAX_ALIGN: usize = 128;

/// The shared header of an SPSC ring; see the
/// [module documentation](super) for its layout.
///
/// All fields are atomics. Only [`SpscRing`](super::SpscRing) reads and
/// writes them; tests find its words through `testing`.
///
/// ```
/// use shmkit::testing::spsc::{SpscHeader, HEADER_SIZE};
/// use shmkit::ring::spsc::MAX_ALIGN;
/// assert_eq!(std::mem::size_of::<SpscHeader>(), HEADER_SIZE);
/// assert_eq!(std::mem::align_of::<SpscHeader>(), MAX_ALIGN);
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct SpscHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) elem_size: AtomicU32,
    pub(crate) elem_align: AtomicU32,
    /// Values popped since creation; written by the consumer only.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Values pushed since creation; written by the producer only.
    pub(crate) tail: CachePadded<AtomicU64>,
}

// SAFETY: repr(C) (and repr(C, align(128)) lines) holding only integer
// atomics: every bit pattern is valid (and checked before use), zero is a
// recognizably uninitialized header, no pointers, no Drop.
unsafe impl ShmSafe for SpscHeader {}

#[cfg(not(shmkit_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(SpscHeader, magic) == MAGIC_OFFSET);
    assert!(offset_of!(SpscHeader, capacity) == CAPACITY_OFFSET);
    assert!(offset_of!(SpscHeader, elem_size) == ELEM_SIZE_OFFSET);
    assert!(offset_of!(SpscHeader, elem_align) == ELEM_ALIGN_OFFSET);
    assert!(offset_of!(SpscHeader, head) == HEAD_OFFSET);
    assert!(offset_of!(SpscHeader, tail) == TAIL_OFFSET);
    assert!(size_of::<SpscHeader>() == HEADER_SIZE);
    assert!(align_of::<SpscHeader>() == MAX_ALIGN);
};
