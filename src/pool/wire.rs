//! Where each word of a pool's header lies: the wire format every process
//! that opens the pool agrees on. Offsets are from the pool's start.

/// The magic word of a pool header, `b"shmkPOL1"` read as a little-endian
/// `u64`: the object's kind and format; a new format gets a new one.
pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"shmkPOL1");
/// The format version the header's `version` word holds.
pub const POOL_VERSION: u64 = 3;
/// Offset of the magic word (`u64`).
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the format version (`u64`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of the number of size classes (`u64`, 1 ..= 4).
pub const CLASS_COUNT_OFFSET: usize = 16;
/// Offset of the pool's total size in bytes (`u64`, what `bytes_for` says).
pub const TOTAL_BYTES_OFFSET: usize = 24;
/// Offset of the first class descriptor; class `c`'s is at
/// `CLASSES_OFFSET + c * CLASS_STRIDE`.
pub const CLASSES_OFFSET: usize = 64;
/// Bytes between two class descriptors.
pub const CLASS_STRIDE: usize = 64;
/// In a class descriptor: the block size (`u64`, a multiple of 64).
pub const CLASS_BLOCK_SIZE: usize = 0;
/// In a class descriptor: the number of blocks (`u64`).
pub const CLASS_BLOCK_COUNT: usize = 8;
/// In a class descriptor: where the class's block entries start (`u64`,
/// from the pool's start): 16 bytes a block, its state word then its
/// holders word; block `i`'s state word at `meta + 16 i`.
pub const CLASS_META_OFFSET: usize = 16;
/// In a class descriptor: where the class's free bitmap starts (`u64`).
pub const CLASS_BITMAP_OFFSET: usize = 24;
/// In a class descriptor: where the class's first block starts (`u64`).
pub const CLASS_DATA_OFFSET: usize = 32;
/// In a class descriptor: where the class's first holders word lies
/// (`u64`, `meta + 8`): block `i`'s at `holders + 16 i`, the mask of who
/// still holds a shared block.
pub const CLASS_HOLDERS_OFFSET: usize = 40;
/// Offset of the pool's [`Signal`](crate::Signal) (releases wake waiters).
pub const SIGNAL_OFFSET: usize = 384;
/// Offset of class 0's rotating start hint (`u64`); class `c`'s is at
/// `HINTS_OFFSET + c * 128`.
pub const HINTS_OFFSET: usize = 512;
/// Bytes from the pool's start to its first class's state words.
pub const HEADER_SIZE: usize = 1024;
