//! [`PoolUsage`]: how a pool's blocks are used, read from outside (the
//! bytes of its header and state words, as `pread` gives them).

use super::state::{self, State};
use super::wire::*;

/// How one size class's blocks are used, as their state words say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassUsage {
    /// Bytes a block of the class holds.
    pub block_size: u64,
    /// Blocks in the class.
    pub blocks: u64,
    /// Blocks nobody owns.
    pub free: u64,
    /// Blocks a participant has on loan (or holds as a `BlockRef`).
    pub lent: u64,
    /// Blocks shared by a service, held by the bits of their holders
    /// words.
    pub shared: u64,
    /// Per holder bit (`0..64`), how many shared blocks it holds: a
    /// service's subscribers or clients, its publisher, history or
    /// server (see each service's documentation for its bits).
    pub held_by: Vec<(u8, u64)>,
    /// State words no correct participant writes.
    pub corrupted: u64,
}

/// How a pool's blocks are used: one entry per size class.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolUsage {
    /// The classes, smallest first.
    pub classes: Vec<ClassUsage>,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
}

/// Reads a pool's usage through `read(offset, len)`, which gives up to
/// `len` bytes of the pool from `offset` (its start is 0). Every number
/// read is checked before it sizes a read; a header that does not add up
/// is `Err` with what is wrong.
pub(crate) fn read(
    mut read: impl FnMut(usize, usize) -> crate::Result<Vec<u8>>,
) -> crate::Result<Result<PoolUsage, &'static str>> {
    let head = read(0, HEADER_SIZE)?;
    if u64_at(&head, MAGIC_OFFSET) != Some(POOL_MAGIC) {
        return Ok(Err("no pool header where the service says"));
    }
    if u64_at(&head, VERSION_OFFSET) != Some(POOL_VERSION) {
        return Ok(Err("a pool of another format version"));
    }
    let total = u64_at(&head, TOTAL_BYTES_OFFSET).unwrap_or(0);
    let count = u64_at(&head, CLASS_COUNT_OFFSET).unwrap_or(0);
    if !(1..=super::MAX_CLASSES as u64).contains(&count) {
        return Ok(Err("a class count out of range"));
    }
    let mut classes = Vec::new();
    for c in 0..count as usize {
        let d = CLASSES_OFFSET + c * CLASS_STRIDE;
        let block_size = u64_at(&head, d + CLASS_BLOCK_SIZE).unwrap_or(0);
        let blocks = u64_at(&head, d + CLASS_BLOCK_COUNT).unwrap_or(0);
        let meta = u64_at(&head, d + CLASS_META_OFFSET).unwrap_or(0);
        let fits = blocks <= super::MAX_BLOCKS as u64
            && meta
                .checked_add(blocks * 16)
                .is_some_and(|end| end <= total);
        if !fits {
            return Ok(Err("a class's block entries lie outside the pool"));
        }
        let entries = read(meta as usize, blocks as usize * 16)?;
        if entries.len() < blocks as usize * 16 {
            return Ok(Err("the file ends inside a class's block entries"));
        }
        let mut usage = ClassUsage {
            block_size,
            blocks,
            free: 0,
            lent: 0,
            shared: 0,
            held_by: Vec::new(),
            corrupted: 0,
        };
        let mut by_bit = [0u64; 64];
        for e in entries.chunks_exact(16) {
            let word = u64_at(e, 0).unwrap_or(0);
            match state::parse(word) {
                Ok(State::Free { .. }) => usage.free += 1,
                Ok(State::Owned { .. }) => usage.lent += 1,
                Ok(State::Shared { .. }) => {
                    usage.shared += 1;
                    let mask = u64_at(e, 8).unwrap_or(0);
                    for (bit, n) in by_bit.iter_mut().enumerate() {
                        *n += (mask >> bit) & 1;
                    }
                }
                Err(_) => usage.corrupted += 1,
            }
        }
        usage.held_by = by_bit
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(b, n)| (b as u8, *n))
            .collect();
        classes.push(usage);
    }
    Ok(Ok(PoolUsage { classes }))
}
