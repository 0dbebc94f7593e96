//! What this process lends of a pool: one record per pool, shared by
//! every view of it in this process, whichever region handle (so whichever
//! mapping and participant token) the view came through.
//!
//! The state words are the truth between processes, but a peer can
//! rewrite one: `lent(me, g)` to `free(g)`, or to a dead owner's word, and
//! the next claim in this process takes a block a live `Loan` (a
//! `&mut [u8]`) still covers. A view's claim therefore also sets the
//! block's bit here, and a bit already set is refused (`Corrupted`). Two
//! views of one handle share a mapping, so a second loan there would alias
//! the first one's bytes; two handles map the same pages twice, and a
//! second loan would write the first one's bytes behind its back.
//!
//! The same goes for samples of a publish/subscribe service
//! (`crate::pubsub`): a peer that rewrites a holders or a state word, or
//! queues one descriptor twice, can make a shared block look free while a
//! `Sample` (a `&[u8]`) of this process still reads it. So the record also
//! counts, per block, the samples of this process that read it: a claim of
//! a block with readers is refused, and so is a sample of a block lent
//! here. The claim sets its bit and then reads the count, a sample raises
//! the count and then reads the bit (all `SeqCst`), so of a claim and a
//! sample racing for one block at least one sees the other.
//!
//! The record also keeps the layout the first view found: a view that
//! reads another from the header (a peer rewrote it into another valid
//! layout) would name the same bytes by other blocks, so it is refused.

use super::config::Plan;
use super::{BlockRef, Corrupted, Pool};
use crate::error::{Error, Result};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::region::Region;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The blocks of one pool lent as live loans by views of this process (a
/// bit per block), and the classes those views agreed on.
pub(crate) struct Lending {
    /// `(block size, block count)` of each class.
    classes: Vec<(usize, usize)>,
    /// Per class, a bit per block.
    words: Vec<Box<[AtomicU64]>>,
    /// Per class, per block: how many samples of this process read it.
    readers: Vec<Box<[AtomicU32]>>,
}

/// A pool in a region: the file (device, inode) and the pool's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    offset: usize,
}

/// The records of the region pools this process has views of.
static RECORDS: Mutex<Vec<(Key, Weak<Lending>)>> = Mutex::new(Vec::new());

fn classes(plan: &Plan) -> Vec<(usize, usize)> {
    plan.classes
        .iter()
        .map(|c| (c.block_size, c.count))
        .collect()
}

impl Lending {
    /// A record with nothing lent, for a pool of `plan`.
    pub(crate) fn new(plan: &Plan) -> Arc<Self> {
        Arc::new(Self {
            classes: classes(plan),
            words: plan
                .classes
                .iter()
                .map(|c| (0..c.bitmap_words()).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            readers: plan
                .classes
                .iter()
                .map(|c| (0..c.count).map(|_| AtomicU32::new(0)).collect())
                .collect(),
        })
    }

    /// The record of the pool at `offset` in `region`'s file, shared with
    /// every view of it this process has (through any handle); a new one
    /// if there is none. [`Error::Corrupted`] if those views found another
    /// layout than `plan` in the header.
    pub(crate) fn of(region: &Region, offset: usize, plan: &Plan) -> Result<Arc<Self>> {
        let info = crate::sys::fd::info(region.as_fd())?;
        let key = Key {
            dev: info.dev,
            ino: info.ino,
            offset,
        };
        let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
        records.retain(|(_, r)| r.strong_count() > 0);
        if let Some(r) = records
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, r)| r.upgrade())
        {
            if r.classes != classes(plan) {
                return Err(Error::Corrupted {
                    what: "pool header: another layout than this process's views of the pool found",
                });
            }
            return Ok(r);
        }
        let r = Self::new(plan);
        records.push((key, Arc::downgrade(&r)));
        Ok(r)
    }

    /// Sets block `index` of `class`'s bit, if it was clear and no
    /// sample reads the block; whether it did.
    pub(crate) fn mark(&self, class: usize, index: usize) -> bool {
        let bit = 1u64 << (index % 64);
        let word = &self.words[class][index / 64];
        if word.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
            return false;
        }
        if self.readers[class][index].load(Ordering::SeqCst) != 0 {
            word.fetch_and(!bit, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Clears `bits` of word `word` of `class` (bits the caller set).
    pub(crate) fn clear(&self, class: usize, word: usize, bits: u64) {
        self.words[class][word].fetch_and(!bits, Ordering::SeqCst);
    }
}

impl Pool<'_> {
    /// Counts a sample of this process reading block `b` (which the pool
    /// has); [`Corrupted`] if a view of this process lends it.
    pub(crate) fn read_shared(&self, b: BlockRef) -> Result<(), Corrupted> {
        let (class, index) = (b.class as usize, b.index as usize);
        let readers = &self.lending.readers[class][index];
        readers.fetch_add(1, Ordering::SeqCst);
        let bit = 1u64 << (index % 64);
        if self.lending.words[class][index / 64].load(Ordering::SeqCst) & bit != 0 {
            readers.fetch_sub(1, Ordering::SeqCst);
            return Err(Corrupted(
                "a descriptor names a block this process has on loan",
            ));
        }
        Ok(())
    }

    /// The end of a [`read_shared`](Self::read_shared) of `b`: the sample
    /// reads its bytes no more.
    pub(crate) fn end_read(&self, b: BlockRef) {
        self.lending.readers[b.class as usize][b.index as usize].fetch_sub(1, Ordering::SeqCst);
    }
}
