//! [`PoolConfig`] and the layout a configuration takes.

use super::wire::HEADER_SIZE;
use crate::error::{Error, Result};

/// The most size classes a pool may have.
pub const MAX_CLASSES: usize = 4;
/// The most blocks one class may have (2^30).
pub const MAX_BLOCKS: usize = 1 << 30;
/// Every block's size is rounded up to a multiple of this, and every block
/// starts at an address that is a multiple of it: one cache line.
pub const BLOCK_ALIGN: usize = 64;
/// Every section (state words, bitmap, blocks) of a class starts at a
/// multiple of this from the pool's start: a line pair, as the rings'.
pub(crate) const SECTION_ALIGN: usize = 128;

/// The size classes of a pool: up to four `(block size, block count)`
/// pairs, block sizes strictly increasing.
///
/// ```
/// use shmkit::pool::{Pool, PoolConfig};
///
/// let config = PoolConfig::new().class(100, 16).class(4096, 4);
/// // Sizes are rounded up to multiples of 64: 128 and 4096 bytes. Per class:
/// // block entries (16 bytes each), bitmap, blocks, each 128-aligned.
/// assert_eq!(
///     Pool::bytes_for(&config)?,
///     1024 + (256 + 128 + 16 * 128) + (128 + 128 + 4 * 4096)
/// );
/// assert!(Pool::bytes_for(&PoolConfig::new()).is_err()); // no class
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolConfig {
    classes: Vec<(usize, usize)>,
}

impl PoolConfig {
    /// A configuration without classes (add one to four).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a class of `count` blocks of at least `block_size` bytes.
    /// Checked when the configuration is used
    /// ([`Pool::bytes_for`](super::Pool::bytes_for),
    /// [`Pool::create`](super::Pool::create)): `block_size` at least 1,
    /// rounded up to a multiple of [`BLOCK_ALIGN`], larger than the
    /// previous class's after rounding; `count` in `1..=MAX_BLOCKS`; at
    /// most [`MAX_CLASSES`] classes.
    pub fn class(mut self, block_size: usize, count: usize) -> Self {
        self.classes.push((block_size, count));
        self
    }

    /// The classes as given, `(block size, count)`.
    pub fn classes(&self) -> &[(usize, usize)] {
        &self.classes
    }
}

/// Where one class's parts lie, from the pool's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassPlan {
    /// Rounded up to a multiple of `BLOCK_ALIGN`.
    pub(crate) block_size: usize,
    pub(crate) count: usize,
    /// The blocks' entries: a state word and a holders word each, 16
    /// bytes a block (one cache line serves a block's loan, sharing and
    /// release).
    pub(crate) meta: usize,
    /// `meta + 8`: the first holders word (for publish/subscribe and
    /// request/response), block `i`'s at `holders + 16 i`.
    pub(crate) holders: usize,
    pub(crate) bitmap: usize,
    pub(crate) data: usize,
}

impl ClassPlan {
    /// `u64` words of the class's bitmap.
    pub(crate) fn bitmap_words(&self) -> usize {
        self.count.div_ceil(64)
    }
}

/// A whole pool's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) classes: Vec<ClassPlan>,
    pub(crate) total: usize,
}

fn invalid(size: usize, reason: &'static str) -> Error {
    Error::InvalidSize {
        size: size as u64,
        reason,
    }
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|n| n & !(to - 1))
}

/// Lays out `classes` (block sizes as given, rounded here): the formula
/// of the [module documentation](super).
pub(crate) fn plan(classes: &[(usize, usize)]) -> Result<Plan> {
    if classes.is_empty() || classes.len() > MAX_CLASSES {
        return Err(invalid(
            classes.len(),
            "a pool has one to four size classes",
        ));
    }
    let too_large = || invalid(usize::MAX, "a pool of this configuration is too large");
    let mut at = HEADER_SIZE;
    let mut out = Vec::with_capacity(classes.len());
    let mut prev = 0;
    for &(size, count) in classes {
        if size == 0 {
            return Err(invalid(size, "a pool's block size must be at least 1"));
        }
        if count == 0 || count > MAX_BLOCKS {
            return Err(invalid(count, "a pool class has 1 ..= 2^30 blocks"));
        }
        let block_size = round_up(size, BLOCK_ALIGN).ok_or_else(too_large)?;
        if block_size <= prev {
            return Err(invalid(
                size,
                "a pool's block sizes must strictly increase (after rounding up to 64)",
            ));
        }
        prev = block_size;
        let meta = at;
        let entries = count
            .checked_mul(16)
            .and_then(|e| round_up(e, SECTION_ALIGN))
            .ok_or_else(too_large)?;
        let holders = meta + 8;
        let bitmap = meta.checked_add(entries).ok_or_else(too_large)?;
        let data = bitmap
            .checked_add(round_up(8 * count.div_ceil(64), SECTION_ALIGN).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        let blocks = count
            .checked_mul(block_size)
            .and_then(|b| round_up(b, SECTION_ALIGN))
            .ok_or_else(too_large)?;
        at = data.checked_add(blocks).ok_or_else(too_large)?;
        out.push(ClassPlan {
            block_size,
            count,
            meta,
            holders,
            bitmap,
            data,
        });
    }
    if at > isize::MAX as usize {
        return Err(too_large());
    }
    Ok(Plan {
        classes: out,
        total: at,
    })
}
