//! [`Holds`]: which blocks of a pool one receiving handle holds now, in
//! this process's memory.
//!
//! A receiver (a publish/subscribe subscriber, a request/response server
//! or client) holds a block through one bit of its holders word, and may
//! make one reader of it. A second envelope naming the same block (a copy
//! or a forgery a peer pushed) would make a second reader on the one
//! hold, whose release frees the block under the first: so the receiver
//! records what its live readers hold, out of any peer's reach, and
//! refuses such an envelope.

use super::{BlockRef, Pool};
use core::cell::Cell;

/// Per class, one bit per block: set while a live reader of this handle
/// holds it. Not `Sync` (a receiving handle is used by one thread at a
/// time).
#[derive(Debug)]
pub(crate) struct Holds {
    classes: Vec<Box<[Cell<u64>]>>,
}

impl Holds {
    /// An empty record sized for `pool`.
    pub(crate) fn new(pool: &Pool<'_>) -> Self {
        let classes = (0..pool.class_count())
            .map(|c| {
                let words = pool.block_count(c).unwrap_or(0).div_ceil(64);
                (0..words).map(|_| Cell::new(0)).collect()
            })
            .collect();
        Self { classes }
    }

    /// The word for block `b`, and its bit; `None` for a block the pool
    /// does not have.
    fn word(&self, b: BlockRef) -> Option<(&Cell<u64>, u64)> {
        let i = b.index as usize;
        let w = self.classes.get(b.class as usize)?.get(i / 64)?;
        Some((w, 1 << (i % 64)))
    }

    /// Whether a live reader holds block `b` (any generation).
    pub(crate) fn contains(&self, b: BlockRef) -> bool {
        self.word(b).is_some_and(|(w, bit)| w.get() & bit != 0)
    }

    /// Records block `b` as held.
    pub(crate) fn insert(&self, b: BlockRef) {
        if let Some((w, bit)) = self.word(b) {
            w.set(w.get() | bit);
        }
    }

    /// Records block `b` as no longer held.
    pub(crate) fn remove(&self, b: BlockRef) {
        if let Some((w, bit)) = self.word(b) {
            w.set(w.get() & !bit);
        }
    }
}
