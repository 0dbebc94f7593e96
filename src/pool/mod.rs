//! A pool of fixed-size blocks of shared memory in one to four size
//! classes, loaned and released by any participant, thread or process,
//! and given back when the participant that held them dies.
//!
//! ```
//! use shmkit::pool::{Pool, PoolConfig};
//! use shmkit::{LayoutId, RegionOptions};
//!
//! let config = PoolConfig::new().class(64, 8).class(1024, 2);
//! let region = RegionOptions::new()
//!     .size(Pool::bytes_for(&config)?)
//!     .layout(LayoutId::named("frames", 1))
//!     .anonymous_with(|r| Pool::create(r, 0, &config).map(drop))?;
//! // Every participant (here the creator again) opens a view:
//! let pool = Pool::open(&region, 0)?;
//! let mut loan = pool.try_loan(300)?; // the smallest class that fits: 1024
//! assert_eq!((loan.class(), loan.len()), (1, 300));
//! loan.copy_from_slice(&[7; 300]); // the bytes were stale: write them all
//! let block = loan.into_block(); // plain data: pass it on, the block stays held
//! assert_eq!(pool.free_blocks(1), Some(1));
//! pool.release_block(block)?;
//! assert_eq!(pool.free_blocks(1), Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Blocks and who owns them
//!
//! A block is named by its [`BlockRef`]: class, index in the class, and
//! the generation of the loan that took it. Each block has a state word
//! (see *State words* below): `free(g)`, or owned by one participant token
//! (the [`Region`] handle's, as lock words hold), lent out as a [`Loan`]
//! or held as a `BlockRef`. **The state word is the truth:** a loan is one
//! CAS from `free(g)` to `lent(me, g + 1)`, a release one CAS from
//! `lent(me, g)` (or `held(me, g)`) back to `free(g)`. Only that CAS
//! decides who owns a block, so no interleaving hands one block to two
//! owners, and the generation makes a stale `BlockRef` (a block released
//! and loaned again since) fail its CAS instead of releasing someone
//! else's loan (the ABA problem; a generation wraps after 2^32 loans of
//! one block).
//!
//! **The free set is a hint**: one bitmap per class (bit set: the block
//! is probably free) and a rotating start word per class. A loan looks
//! for a set bit from the start word on (`trailing_zeros`) and CASes that
//! block's state, leaving the bit set; a bit whose block is not free is
//! cleared and skipped (and the state word read once more after the
//! clear, see below). A release CASes the state to free, then sets the
//! bit unless it is set already (and wakes waiters on the pool's
//! [`Signal`], a load while nobody sleeps). So a block that one side
//! loans again and again and the other frees writes no bitmap word: the
//! line stays cached on both sides instead of moving twice a message. The
//! two `SeqCst` halves (a release: free, then read the bit; a loan: clear
//! a stale bit, then read the state) make sure a block freed while its
//! bit was cleared is seen by one of them: the bit is set again, or the
//! loan claims the block. A participant killed between the two steps only leaves a
//! stale bit or loses one, never a block with two owners. When the bitmap
//! shows nothing, the loan scans the class's state words: it claims a
//! free block (one whose bit was lost), or takes over a block whose owner
//! is dead (a CAS from `lent(dead, g)` to `lent(me, g + 1)`); liveness is
//! the participant table's ([`crate::sync`] decides a dead lock holder the
//! same way), asked once per token per scan. [`Pool::reclaim`] sweeps every
//! class and frees what dead participants held. There is no daemon and no
//! thread.
//!
//! Why not a linked free list (a Treiber stack, with an ABA tag)? Its
//! membership is a chain of links in shared memory, changed in a step
//! separate from the block's own state: a process killed between popping
//! a block off the stack and recording itself as the owner (or between
//! marking it free and pushing it) leaves a block that is on no list and
//! owned by nobody, or on the list and marked owned, and a sweeper cannot
//! tell such a block from a leaked or a live one without stopping
//! everyone. With the state word as the truth, whatever a crash loses is
//! a hint, and the scan finds the block again.
//!
//! # Layout
//!
//! At a 128-byte-aligned `offset` in the region's data (offsets in the
//! header are from the pool's start, `wire` has their names):
//!
//! ```text
//! offset          field           written by            meaning
//!      0          magic           creator, once         b"shmkPOL1" (LE), stored last
//!      8          version         creator, once         3 (2 kept holders words apart, 1 had none)
//!     16          class_count     creator, once         1 ..= 4
//!     24          total_bytes     creator, once         Pool::bytes_for of the configuration
//!     64 + 64c    class c:        creator, once
//!                   +0 block_size                       a multiple of 64, strictly increasing
//!                   +8 block_count                      1 ..= 2^30
//!                  +16 meta                             its block entries
//!                  +24 bitmap                           its free bitmap
//!                  +32 data                             its first block
//!                  +40 holders                          meta + 8: its first holders word
//!    384          signal          waiters / releasers   the Signal loans wait on
//!    512 + 128c   hint of class c loans                 bitmap word to start at (any value)
//!   1024          class 0: meta   see `state`           block_count entries of 16 bytes:
//!                                                       the state word, then the holders
//!                                                       mask (shared blocks: its senders
//!                                                       and receivers)
//!                          bitmap loans / releases      ceil(block_count / 64) u64 words
//!                          data   the block's owner     block_count blocks, block_size apart
//!                 class 1 ...
//! ```
//!
//! # State words
//!
//! ```text
//! bits   63 ..= 32     31         30 ..= 0
//!        generation    detached   owner token (0: free)
//!
//! word          value            meaning
//! free(g)       g << 32          nobody owns the block; g: its last loan's generation
//! lent(t, g)    g << 32 | t      participant t holds it as a Loan (a &mut [u8] is out)
//! held(t, g)    lent | 1 << 31   participant t holds it as a BlockRef (no reference out)
//! shared(g)     g << 32 | 1 << 31 a publish/subscribe service holds it: the block's
//!                                holders word names who (crate::pubsub); no loan,
//!                                scan or reclaim takes it over
//! (other)                        Corrupted: an owner that is no participant token
//! ```
//!
//! # Memory
//!
//! Each class's three sections (block entries, bitmap, blocks) start
//! 128-aligned; blocks are 64-aligned
//! (a block is one owner's; a neighbour's owner shares at most the
//! adjacent-line prefetch pair with it, and 128 would double the padding
//! of small blocks). So a pool of classes `(s_c, n_c)` takes, with
//! `r_k(x)` rounding `x` up to a multiple of `k`:
//!
//! ```text
//! Pool::bytes_for = 1024 + sum over c of [ r128(16 n_c) + r128(8 ceil(n_c / 64)) + r128(n_c r64(s_c)) ]
//! ```
//!
//! # Untrusted memory
//!
//! [`Pool::open`] copies the header out and checks every word: the magic,
//! the version, the class count, each class's size and count (as a
//! configuration is checked), that each class's sections lie exactly
//! where the layout above puts them (so inside the pool, aligned and not
//! overlapping) and that the pool fits the region: a bad value is
//! [`Error::Corrupted`], never a panic. The view never reads those words
//! again. At run time a peer can still write state words, bitmap words
//! and hints: a hint is reduced modulo the view's own bitmap length, a bit
//! past the last block is cleared and ignored, a state word with an owner
//! that is no participant token (or a detached bit without an owner) is
//! `Corrupted` (the *State words* table). Each call looks at each bit and each state word a bounded
//! number of times, so garbage cannot make it loop.
//!
//! # Lending shared memory
//!
//! A [`Loan`] derefs to `&mut [u8]` of shared memory, and a [`TypedLoan`]
//! to `&mut T`. The bytes are stale (whatever the block's last owner left:
//! any bytes are valid `u8`, and `T: Pod`). Inside this process two loans
//! never cover the same block: each came from a successful CAS of the
//! block's state word away from `free`, and the state only returns to
//! `free` through the loan's own drop (a `BlockRef`'s release needs the
//! detached state, which a live loan's block is not in; a reclaim needs
//! its owner dead, and a live view's own token never is). A peer that
//! rewrites a state word (to `free`, or to a dead owner's word) could make
//! a later claim succeed under a live loan, so every view of the pool in
//! this process, whichever region handle it came through, also records
//! its loans in one process-local bitmap per pool (keyed by the region's
//! file and the pool's offset): a claim of a block set there is
//! [`Corrupted`], and so is opening a view that finds another layout in
//! the header than the process's other views of the pool found. A peer
//! that scribbles on the block itself can change the bytes under the
//! borrow, as for the rings' chunks: the contents are garbled, this
//! process's memory is not. Treat what a block holds as untrusted input.
//!
//! # Under loom
//!
//! [`HeapPool`] runs the same code with the memory on the heap; each loom
//! thread is its own participant, and a model declares one dead. The
//! models check that no block has two owners at once and that a reclaim
//! racing the owner's own release frees the block exactly once.

mod config;
mod error;
mod heap;
pub(crate) mod holds;
mod lending;
mod loan;
mod release;
pub(crate) mod shared;
pub(crate) mod state;
mod take;
pub(crate) mod usage;
pub(crate) mod wire;

pub use config::{PoolConfig, BLOCK_ALIGN, MAX_BLOCKS, MAX_CLASSES};
pub use error::{Corrupted, LoanError, LoanTimeoutError, ReleaseError};
pub use heap::HeapPool;
pub use loan::{BlockRef, Loan, TypedLoan};
pub use usage::{ClassUsage, PoolUsage};

use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::error::{Error, Result};
use crate::primitive::{spin_loop, AtomicU64, Ordering};
use crate::region::{Placed, Region};
use crate::sync::owner::{self, Liveness, Token};
use crate::sync::wait::{Probe, SPIN_LIMIT};
use bytemuck::Pod;
use config::{plan, ClassPlan, Plan};
use core::fmt;
use core::ptr::NonNull;
use lending::Lending;
use state::State;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::*;

/// A class descriptor in the header.
#[repr(C)]
#[derive(Debug)]
struct ClassWords {
    block_size: AtomicU64,
    block_count: AtomicU64,
    meta: AtomicU64,
    bitmap: AtomicU64,
    data: AtomicU64,
    holders: AtomicU64,
    _reserved: [AtomicU64; 2],
}

/// The pool's header; see the [module documentation](self).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct PoolHeader {
    magic: AtomicU64,
    version: AtomicU64,
    class_count: AtomicU64,
    total_bytes: AtomicU64,
    _reserved: [AtomicU64; 4],
    classes: [ClassWords; MAX_CLASSES],
    _reserved2: [AtomicU64; 8],
    signal: CachePadded<Signal>,
    hints: [CachePadded<AtomicU64>; MAX_CLASSES],
}

// SAFETY: repr(C) of u64 atomics, a Signal and padding nobody reads: any
// bytes are a valid header (zero: no pool, refused by `open`), no
// pointers, no Drop.
unsafe impl ShmSafe for PoolHeader {}

#[cfg(not(shmkit_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PoolHeader>() == HEADER_SIZE);
    assert!(align_of::<PoolHeader>() == config::SECTION_ALIGN);
    assert!(offset_of!(PoolHeader, magic) == MAGIC_OFFSET);
    assert!(offset_of!(PoolHeader, version) == VERSION_OFFSET);
    assert!(offset_of!(PoolHeader, class_count) == CLASS_COUNT_OFFSET);
    assert!(offset_of!(PoolHeader, total_bytes) == TOTAL_BYTES_OFFSET);
    assert!(offset_of!(PoolHeader, classes) == CLASSES_OFFSET);
    assert!(size_of::<ClassWords>() == CLASS_STRIDE);
    assert!(offset_of!(ClassWords, block_size) == CLASS_BLOCK_SIZE);
    assert!(offset_of!(ClassWords, block_count) == CLASS_BLOCK_COUNT);
    assert!(offset_of!(ClassWords, meta) == CLASS_META_OFFSET);
    assert!(offset_of!(ClassWords, bitmap) == CLASS_BITMAP_OFFSET);
    assert!(offset_of!(ClassWords, data) == CLASS_DATA_OFFSET);
    assert!(offset_of!(ClassWords, holders) == CLASS_HOLDERS_OFFSET);
    assert!(offset_of!(PoolHeader, signal) == SIGNAL_OFFSET);
    assert!(offset_of!(PoolHeader, hints) == HINTS_OFFSET);
};

fn zero() -> AtomicU64 {
    AtomicU64::new(0)
}

impl PoolHeader {
    /// An all-zero header, for the heap pool.
    fn zeroed() -> Self {
        Self {
            magic: zero(),
            version: zero(),
            class_count: zero(),
            total_bytes: zero(),
            _reserved: core::array::from_fn(|_| zero()),
            classes: core::array::from_fn(|_| ClassWords {
                block_size: zero(),
                block_count: zero(),
                meta: zero(),
                bitmap: zero(),
                data: zero(),
                holders: zero(),
                _reserved: core::array::from_fn(|_| zero()),
            }),
            _reserved2: core::array::from_fn(|_| zero()),
            signal: CachePadded::new(Signal::new()),
            hints: core::array::from_fn(|_| CachePadded::new(zero())),
        }
    }
}

/// A block's entry: its state word ([`state`]), then its holders word,
/// in one 16-byte pair (so a loan, a share, a receiver's check and a
/// release touch one cache line of the block's control words).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BlockState(AtomicU64, pub(crate) HolderWord);

// SAFETY: repr(C) of two u64 atomics, no padding.
unsafe impl ShmSafe for BlockState {}

/// A block's holders word: bit `i` set while subscriber `i` of a
/// publish/subscribe service holds the block's sample, bit 63 while its
/// publisher distributes it (see [`crate::pubsub`]); meaningful only
/// while the block is `shared`.
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct HolderWord(pub(crate) AtomicU64);

// SAFETY: a transparent u64 atomic.
unsafe impl ShmSafe for HolderWord {}

/// A word of a class's free bitmap: bit `j` of word `w` is block `64 w + j`.
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct BitmapWord(AtomicU64);

// SAFETY: a transparent u64 atomic.
unsafe impl ShmSafe for BitmapWord {}

/// What the blocks' bytes are, as a region handle records them: lent out
/// as `&mut [u8]`, so nothing else may be placed over them.
struct PoolBlocks;

/// Writes a fresh pool's header, states and bitmaps; the magic last.
fn init(header: &PoolHeader, plan: &Plan, classes: &[(&[BlockState], &[BitmapWord])]) {
    header.version.store(POOL_VERSION, Ordering::Relaxed);
    header
        .class_count
        .store(plan.classes.len() as u64, Ordering::Relaxed);
    header
        .total_bytes
        .store(plan.total as u64, Ordering::Relaxed);
    for (c, (p, (states, bitmap))) in plan.classes.iter().zip(classes).enumerate() {
        let w = &header.classes[c];
        w.block_size.store(p.block_size as u64, Ordering::Relaxed);
        w.block_count.store(p.count as u64, Ordering::Relaxed);
        w.meta.store(p.meta as u64, Ordering::Relaxed);
        w.bitmap.store(p.bitmap as u64, Ordering::Relaxed);
        w.data.store(p.data as u64, Ordering::Relaxed);
        w.holders.store(p.holders as u64, Ordering::Relaxed);
        header.hints[c].store(0, Ordering::Relaxed);
        for s in states.iter() {
            s.0.store(state::free(0), Ordering::Relaxed);
            s.1 .0.store(0, Ordering::Relaxed);
        }
        for (i, b) in bitmap.iter().enumerate() {
            let bits = (p.count - 64 * i).min(64);
            let word = if bits == 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            };
            b.0.store(word, Ordering::Relaxed);
        }
    }
    header.magic.store(POOL_MAGIC, Ordering::Release);
}

/// Reads a pool header (a copy of each word, read once) and checks it
/// against the layout its classes imply.
fn validate(header: &PoolHeader) -> Result<Plan> {
    let bad = |what| Err(Error::Corrupted { what });
    if header.magic.load(Ordering::Acquire) != POOL_MAGIC {
        return bad("no pool at this offset (magic)");
    }
    if header.version.load(Ordering::Relaxed) != POOL_VERSION {
        return bad("pool format version");
    }
    let count = header.class_count.load(Ordering::Relaxed);
    if count == 0 || count > MAX_CLASSES as u64 {
        return bad("pool class count");
    }
    let mut given = Vec::with_capacity(count as usize);
    let mut offsets = Vec::with_capacity(count as usize);
    for w in &header.classes[..count as usize] {
        let size = usize::try_from(w.block_size.load(Ordering::Relaxed));
        let n = usize::try_from(w.block_count.load(Ordering::Relaxed));
        let (Ok(size), Ok(n)) = (size, n) else {
            return bad("pool class block size or count");
        };
        if size % BLOCK_ALIGN != 0 {
            return bad("pool class block size");
        }
        given.push((size, n));
        offsets.push((
            w.meta.load(Ordering::Relaxed),
            w.bitmap.load(Ordering::Relaxed),
            w.data.load(Ordering::Relaxed),
            w.holders.load(Ordering::Relaxed),
        ));
    }
    let Ok(plan) = plan(&given) else {
        return bad("pool class block size or count");
    };
    for (p, (meta, bitmap, data, holders)) in plan.classes.iter().zip(offsets) {
        let want = (p.meta, p.bitmap, p.data, p.holders);
        if (meta, bitmap, data, holders)
            != (want.0 as u64, want.1 as u64, want.2 as u64, want.3 as u64)
        {
            return bad("pool class section offsets");
        }
    }
    if header.total_bytes.load(Ordering::Relaxed) != plan.total as u64 {
        return bad("pool total size");
    }
    Ok(plan)
}

/// One class as a view sees it: every length checked once, at open.
#[derive(Clone, Copy)]
struct Class<'a> {
    block_size: usize,
    /// Each block's state and holders words.
    states: &'a [BlockState],
    /// `states.len().div_ceil(64)` words.
    bitmap: &'a [BitmapWord],
    /// `states.len()` blocks of `block_size` bytes, `BLOCK_ALIGN`-aligned.
    data: NonNull<u8>,
    /// Offset of the first block from the region data's start.
    data_offset: usize,
    hint: &'a AtomicU64,
}

/// A view of a block pool: in a [`Region`], or on the heap
/// ([`HeapPool`]). Each process (each region handle) opens its own; one
/// view serves any number of threads (`Send + Sync`), which all loan as
/// the handle's participant. See the [module documentation](self).
pub struct Pool<'a> {
    header: &'a PoolHeader,
    classes: Vec<Class<'a>>,
    /// The token this view's loans write into state words.
    me: Token,
    /// Per class, the blocks this view lends as a live `Loan` (bit set),
    /// in this process's memory; each is also set in `lending`.
    lent: Vec<Box<[AtomicU64]>>,
    /// The blocks every view of this pool in this process lends (the
    /// views' `lent` together; see `lending`): a claim of a block already
    /// there means a peer rewrote its state word while the loan lives,
    /// and is refused, so no two loans of this process ever cover one
    /// block.
    lending: Arc<Lending>,
}

// SAFETY: the view holds shared references to atomics and pointers to
// block memory that only loans access, each under the state word's CAS
// (one owner per block); nothing in it is tied to a thread.
unsafe impl Send for Pool<'_> {}
// SAFETY: as above: every method takes `&self` and goes through atomics.
unsafe impl Sync for Pool<'_> {}

impl fmt::Debug for Pool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for (c, class) in self.classes.iter().enumerate() {
            l.entry(&(class.block_size, class.states.len(), self.free_blocks(c)));
        }
        l.finish()
    }
}

impl<'a> Pool<'a> {
    /// How many region data bytes a pool of `config` needs at a
    /// 128-byte-aligned offset: the formula of the [module
    /// documentation](self).
    ///
    /// Fails with [`Error::InvalidSize`] if the configuration breaks a
    /// rule of [`PoolConfig::class`] or is too large.
    pub fn bytes_for(config: &PoolConfig) -> Result<usize> {
        Ok(plan(config.classes())?.total)
    }

    /// Lays out a pool of `config` at `offset` in `region`'s data
    /// (128-byte aligned; [`bytes_for`](Self::bytes_for) bytes), every
    /// block free, and returns a view of it.
    ///
    /// Meant for an init closure of
    /// [`RegionOptions::create_with`](crate::RegionOptions::create_with)
    /// or [`anonymous_with`](crate::RegionOptions::anonymous_with). This
    /// region handle refuses, with [`Error::PlacementConflict`], bytes it
    /// has placed anything over already (a pool made there before
    /// included: laying it out again would free blocks under their loans).
    /// Fails with the region's errors ([`Error::OutOfBounds`],
    /// [`Error::Misaligned`]) if the pool does not fit there.
    pub fn create(region: &'a Region, offset: usize, config: &PoolConfig) -> Result<Self> {
        let plan = plan(config.classes())?;
        if offset
            .checked_add(plan.total)
            .is_none_or(|end| end > region.len())
        {
            return Err(Error::OutOfBounds {
                offset,
                size: plan.total,
                len: region.len(),
            });
        }
        let lending = Lending::of(region, offset, &plan)?;
        let header = region.spot::<PoolHeader>(offset, 1)?;
        let mut spots = Vec::with_capacity(plan.classes.len());
        let mut placed = vec![header.placed()];
        for p in &plan.classes {
            let (states, bitmap, data) = Self::spots(region, offset, p)?;
            placed.extend([states.placed(), bitmap.placed(), data]);
            spots.push((states, bitmap));
        }
        region.claim(&placed, true)?;
        // SAFETY: every spot was claimed just above.
        let header = unsafe { &header.get()[0] };
        // SAFETY: as above.
        let parts: Vec<_> = spots
            .into_iter()
            .map(|(s, b)| unsafe { (s.get(), b.get()) })
            .collect();
        init(header, &plan, &parts);
        Ok(Self::from_parts(
            region, offset, header, &plan, parts, lending,
        ))
    }

    /// A view of the pool a creator laid out at `offset` in `region`,
    /// after checking its header (see the [module documentation](self)):
    /// [`Error::Corrupted`] if there is no pool there (zeroed memory
    /// included) or any header word is wrong; the region's errors if the
    /// pool does not fit where it claims to be.
    pub fn open(region: &'a Region, offset: usize) -> Result<Self> {
        // A failed check gives the header's placement back, so that a
        // failed probe leaves the bytes free for `create`.
        let (header, (plan, parts, lending)) =
            region.place_checked::<PoolHeader, _>(offset, |header| {
                let plan = validate(header)?;
                if offset
                    .checked_add(plan.total)
                    .is_none_or(|end| end > region.len())
                {
                    return Err(Error::Corrupted {
                        what: "pool extends past the region",
                    });
                }
                let lending = Lending::of(region, offset, &plan)?;
                let mut spots = Vec::with_capacity(plan.classes.len());
                let mut placed = Vec::new();
                for p in &plan.classes {
                    let (states, bitmap, data) = Self::spots(region, offset, p)?;
                    placed.extend([states.placed(), bitmap.placed(), data]);
                    spots.push((states, bitmap));
                }
                region.claim(&placed, false)?;
                // SAFETY: every spot was claimed just above.
                let parts: Vec<_> = spots
                    .into_iter()
                    .map(|(s, b)| unsafe { (s.get(), b.get()) })
                    .collect();
                Ok((plan, parts, lending))
            })?;
        Ok(Self::from_parts(
            region, offset, header, &plan, parts, lending,
        ))
    }

    /// The state words, bitmap and (as a placement) blocks of class `p` of
    /// a pool at `offset`, bounds and alignment checked.
    #[allow(clippy::type_complexity)]
    fn spots(
        region: &'a Region,
        offset: usize,
        p: &ClassPlan,
    ) -> Result<(
        crate::region::Spot<'a, BlockState>,
        crate::region::Spot<'a, BitmapWord>,
        Placed,
    )> {
        let at = |rel: usize| {
            offset.checked_add(rel).ok_or(Error::OutOfBounds {
                offset,
                size: rel,
                len: region.len(),
            })
        };
        let states = region.spot::<BlockState>(at(p.meta)?, p.count)?;
        let bitmap = region.spot::<BitmapWord>(at(p.bitmap)?, p.bitmap_words())?;
        let data = at(p.data)?;
        let len = p.count * p.block_size;
        if data.checked_add(len).is_none_or(|end| end > region.len()) {
            return Err(Error::OutOfBounds {
                offset: data,
                size: len,
                len: region.len(),
            });
        }
        Ok((states, bitmap, Placed::bytes::<PoolBlocks>(data, len)))
    }

    fn from_parts(
        region: &'a Region,
        offset: usize,
        header: &'a PoolHeader,
        plan: &Plan,
        parts: Vec<(&'a [BlockState], &'a [BitmapWord])>,
        lending: Arc<Lending>,
    ) -> Self {
        let classes = plan
            .classes
            .iter()
            .zip(parts)
            .enumerate()
            .map(|(c, (p, (states, bitmap)))| {
                let data_offset = offset + p.data;
                // SAFETY: `spots` checked that the class's blocks lie
                // inside the region's data.
                let data = unsafe { region.as_ptr().add(data_offset) };
                Class {
                    block_size: p.block_size,
                    states,
                    bitmap,
                    data: NonNull::new(data).expect("region data is not null"),
                    data_offset,
                    hint: &header.hints[c],
                }
            })
            .collect();
        Self::with_classes(header, classes, lending)
    }

    /// The view of `classes`, with an empty record of its loans, sharing
    /// `lending` with the other views of the pool in this process.
    fn with_classes(
        header: &'a PoolHeader,
        classes: Vec<Class<'a>>,
        lending: Arc<Lending>,
    ) -> Self {
        let lent = classes
            .iter()
            .map(|c| (0..c.states.len().div_ceil(64)).map(|_| zero()).collect())
            .collect();
        Self {
            header,
            classes,
            me: owner::current(header),
            lent,
            lending,
        }
    }

    /// Records block `index` of `class` as lent by this view; fails if a
    /// view of this process already lends it (a peer rewrote its state
    /// word under the live loan).
    fn mark_lent(&self, class: usize, index: usize) -> Result<(), Corrupted> {
        if !self.lending.mark(class, index) {
            return Err(Corrupted(
                "a pool block's state word says free while this process lends it",
            ));
        }
        self.lent[class][index / 64].fetch_or(1u64 << (index % 64), Ordering::Relaxed);
        Ok(())
    }

    /// Forgets this view's loan of `b` (before its state word lets go of
    /// it, so that the next claim of the block finds the record clear).
    fn unmark_lent(&self, b: BlockRef) {
        let (class, index) = (b.class as usize, b.index as usize);
        if let Some(w) = self.lent.get(class).and_then(|words| words.get(index / 64)) {
            let bit = 1u64 << (index % 64);
            if w.fetch_and(!bit, Ordering::Relaxed) & bit != 0 {
                self.lending.clear(class, index / 64, bit);
            }
        }
    }

    /// How many size classes the pool has.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The block size of `class` (a multiple of [`BLOCK_ALIGN`]), if the
    /// pool has that class.
    pub fn block_size(&self, class: usize) -> Option<usize> {
        self.classes.get(class).map(|c| c.block_size)
    }

    /// How many blocks `class` has, if the pool has that class.
    pub fn block_count(&self, class: usize) -> Option<usize> {
        self.classes.get(class).map(|c| c.states.len())
    }

    /// How many blocks of `class` are free now (a snapshot: their state
    /// words say free; a corrupted word counts as not free), if the pool
    /// has that class.
    pub fn free_blocks(&self, class: usize) -> Option<usize> {
        let c = self.classes.get(class)?;
        Some(
            c.states
                .iter()
                .filter(|s| {
                    matches!(
                        state::parse(s.0.load(Ordering::Relaxed)),
                        Ok(State::Free { .. })
                    )
                })
                .count(),
        )
    }

    /// The offset, from the region data's start, of block `index` of
    /// `class` (for a [`HeapPool`], as if the pool were at offset 0), if
    /// the pool has that block.
    pub fn block_offset(&self, class: usize, index: usize) -> Option<usize> {
        let c = self.classes.get(class)?;
        (index < c.states.len()).then(|| c.data_offset + index * c.block_size)
    }
}

impl Drop for Pool<'_> {
    fn drop(&mut self) {
        // A loan given up with `mem::forget` leaves its bit: clear it, so
        // that once its owner is dead another view may take the block
        // over (the forgotten `&mut [u8]` is never used again).
        for (class, words) in self.lent.iter().enumerate() {
            for (w, bits) in words.iter().enumerate() {
                let bits = bits.load(Ordering::Relaxed);
                if bits != 0 {
                    self.lending.clear(class, w, bits);
                }
            }
        }
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests;
