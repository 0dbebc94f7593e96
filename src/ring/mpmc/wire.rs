//! Where each word of the MPMC ring's header lies: the wire format every
//! process that opens the ring agrees on.

/// The magic word of an MPMC ring header, `b"shmkMPC2"` read as a
/// little-endian `u64`: the ring's kind and format; a new format gets a
/// new one.
pub const MPMC_MAGIC: u64 = u64::from_le_bytes(*b"shmkMPC2");
/// Offset of the magic word (`u64`) in the header.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the capacity (`u64`) in the header.
pub const CAPACITY_OFFSET: usize = 8;
/// Offset of the element size (`u64`) in the header.
pub const ELEM_SIZE_OFFSET: usize = 16;
/// Offset of the element alignment (`u64`) in the header.
pub const ELEM_ALIGN_OFFSET: usize = 24;
/// Offset of the slot stride (`u64`) in the header.
pub const SLOT_STRIDE_OFFSET: usize = 32;
/// Offset of `enqueue` (`u64`, the next position a push claims) in the
/// header.
pub const ENQUEUE_OFFSET: usize = 128;
/// Offset of `dequeue` (`u64`, the next position a pop claims) in the
/// header.
pub const DEQUEUE_OFFSET: usize = 256;
/// Bytes from the ring's offset to its first slot: the size of the header.
pub const HEADER_SIZE: usize = 384;
