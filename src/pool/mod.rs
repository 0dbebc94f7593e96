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
//! for a set bit from the start word on (`trailing_zeros`), CASes that
//! block's state, then clears the bit; a bit whose block is not free is
//! cleared and skipped. A release CASes the state to free, then sets the
//! bit (and wakes waiters on the pool's [`Signal`], a load while nobody
//! sleeps). A participant killed between the two steps only leaves a
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
//!      8          version         creator, once         2 (1 had no holders words)
//!     16          class_count     creator, once         1 ..= 4
//!     24          total_bytes     creator, once         Pool::bytes_for of the configuration
//!     64 + 64c    class c:        creator, once
//!                   +0 block_size                       a multiple of 64, strictly increasing
//!                   +8 block_count                      1 ..= 2^30
//!                  +16 meta                             its state words
//!                  +24 bitmap                           its free bitmap
//!                  +32 data                             its first block
//!                  +40 holders                          its holders words
//!    384          signal          waiters / releasers   the Signal loans wait on
//!    512 + 128c   hint of class c loans                 bitmap word to start at (any value)
//!   1024          class 0: meta   see `state`           block_count u64 state words
//!                          holders publisher, holders   block_count u64 masks (shared blocks)
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
//! Each class's four sections (state words, holders words, bitmap,
//! blocks) start 128-aligned; blocks are 64-aligned
//! (a block is one owner's; a neighbour's owner shares at most the
//! adjacent-line prefetch pair with it, and 128 would double the padding
//! of small blocks). So a pool of classes `(s_c, n_c)` takes, with
//! `r_k(x)` rounding `x` up to a multiple of `k`:
//!
//! ```text
//! Pool::bytes_for = 1024 + sum over c of [ 2 r128(8 n_c) + r128(8 ceil(n_c / 64)) + r128(n_c r64(s_c)) ]
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
//! breaks the protocol (scribbles on a state word, or on the block) can
//! change the bytes under the borrow, as for the rings' chunks: the
//! contents are garbled, this process's memory is not. Treat what a block
//! holds as untrusted input.
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
mod loan;
pub(crate) mod shared;
pub(crate) mod state;
pub(crate) mod wire;

pub use config::{PoolConfig, BLOCK_ALIGN, MAX_BLOCKS, MAX_CLASSES};
pub use error::{Corrupted, LoanError, LoanTimeoutError, ReleaseError};
pub use heap::HeapPool;
pub use loan::{BlockRef, Loan, TypedLoan};

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
use state::State;
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

/// A block's state word ([`state`]).
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct BlockState(AtomicU64);

// SAFETY: a transparent u64 atomic.
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
#[allow(clippy::type_complexity)]
fn init(
    header: &PoolHeader,
    plan: &Plan,
    classes: &[(&[BlockState], &[HolderWord], &[BitmapWord])],
) {
    header.version.store(POOL_VERSION, Ordering::Relaxed);
    header
        .class_count
        .store(plan.classes.len() as u64, Ordering::Relaxed);
    header
        .total_bytes
        .store(plan.total as u64, Ordering::Relaxed);
    for (c, (p, (states, holders, bitmap))) in plan.classes.iter().zip(classes).enumerate() {
        let w = &header.classes[c];
        w.block_size.store(p.block_size as u64, Ordering::Relaxed);
        w.block_count.store(p.count as u64, Ordering::Relaxed);
        w.meta.store(p.meta as u64, Ordering::Relaxed);
        w.bitmap.store(p.bitmap as u64, Ordering::Relaxed);
        w.data.store(p.data as u64, Ordering::Relaxed);
        w.holders.store(p.holders as u64, Ordering::Relaxed);
        for h in holders.iter() {
            h.0.store(0, Ordering::Relaxed);
        }
        header.hints[c].store(0, Ordering::Relaxed);
        for s in states.iter() {
            s.0.store(state::free(0), Ordering::Relaxed);
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
    states: &'a [BlockState],
    /// `states.len()` words.
    holders: &'a [HolderWord],
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
        let header = region.spot::<PoolHeader>(offset, 1)?;
        let mut spots = Vec::with_capacity(plan.classes.len());
        let mut placed = vec![header.placed()];
        for p in &plan.classes {
            let (states, holders, bitmap, data) = Self::spots(region, offset, p)?;
            placed.extend([states.placed(), holders.placed(), bitmap.placed(), data]);
            spots.push((states, holders, bitmap));
        }
        region.claim(&placed, true)?;
        // SAFETY: every spot was claimed just above.
        let header = unsafe { &header.get()[0] };
        // SAFETY: as above.
        let parts: Vec<_> = spots
            .into_iter()
            .map(|(s, h, b)| unsafe { (s.get(), h.get(), b.get()) })
            .collect();
        init(header, &plan, &parts);
        Ok(Self::from_parts(region, offset, header, &plan, parts))
    }

    /// A view of the pool a creator laid out at `offset` in `region`,
    /// after checking its header (see the [module documentation](self)):
    /// [`Error::Corrupted`] if there is no pool there (zeroed memory
    /// included) or any header word is wrong; the region's errors if the
    /// pool does not fit where it claims to be.
    pub fn open(region: &'a Region, offset: usize) -> Result<Self> {
        // A failed check gives the header's placement back, so that a
        // failed probe leaves the bytes free for `create`.
        let (header, (plan, parts)) = region.place_checked::<PoolHeader, _>(offset, |header| {
            let plan = validate(header)?;
            if offset
                .checked_add(plan.total)
                .is_none_or(|end| end > region.len())
            {
                return Err(Error::Corrupted {
                    what: "pool extends past the region",
                });
            }
            let mut spots = Vec::with_capacity(plan.classes.len());
            let mut placed = Vec::new();
            for p in &plan.classes {
                let (states, holders, bitmap, data) = Self::spots(region, offset, p)?;
                placed.extend([states.placed(), holders.placed(), bitmap.placed(), data]);
                spots.push((states, holders, bitmap));
            }
            region.claim(&placed, false)?;
            // SAFETY: every spot was claimed just above.
            let parts: Vec<_> = spots
                .into_iter()
                .map(|(s, h, b)| unsafe { (s.get(), h.get(), b.get()) })
                .collect();
            Ok((plan, parts))
        })?;
        Ok(Self::from_parts(region, offset, header, &plan, parts))
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
        crate::region::Spot<'a, HolderWord>,
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
        let holders = region.spot::<HolderWord>(at(p.holders)?, p.count)?;
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
        Ok((
            states,
            holders,
            bitmap,
            Placed::bytes::<PoolBlocks>(data, len),
        ))
    }

    fn from_parts(
        region: &'a Region,
        offset: usize,
        header: &'a PoolHeader,
        plan: &Plan,
        parts: Vec<(&'a [BlockState], &'a [HolderWord], &'a [BitmapWord])>,
    ) -> Self {
        let classes = plan
            .classes
            .iter()
            .zip(parts)
            .enumerate()
            .map(|(c, (p, (states, holders, bitmap)))| {
                let data_offset = offset + p.data;
                // SAFETY: `spots` checked that the class's blocks lie
                // inside the region's data.
                let data = unsafe { region.as_ptr().add(data_offset) };
                Class {
                    block_size: p.block_size,
                    states,
                    holders,
                    bitmap,
                    data: NonNull::new(data).expect("region data is not null"),
                    data_offset,
                    hint: &header.hints[c],
                }
            })
            .collect();
        Self {
            header,
            classes,
            me: owner::current(header),
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

    /// The smallest class whose blocks hold `len` bytes.
    fn class_for(&self, len: usize) -> Result<usize, (usize, usize)> {
        self.classes
            .iter()
            .position(|c| c.block_size >= len)
            .ok_or((len, self.classes.last().map_or(0, |c| c.block_size)))
    }

    /// Loans a block of the smallest class that holds `len` bytes; the
    /// loan derefs to its first `len` bytes (stale: whatever the block's
    /// last owner left) and releases the block when dropped. Fails with:
    /// - [`LoanError::TooLarge`]: no class holds `len` bytes;
    /// - [`LoanError::Exhausted`]: every block of the class is owned by a
    ///   live participant (a dead one's blocks are taken over here, see
    ///   the [module documentation](self));
    /// - [`LoanError::Corrupted`]: a state word this call read holds an
    ///   impossible value.
    #[inline]
    pub fn try_loan(&self, len: usize) -> Result<Loan<'_>, LoanError> {
        let class = self
            .class_for(len)
            .map_err(|(len, max)| LoanError::TooLarge { len, max })?;
        match self.take(class, true)? {
            Some((index, gen)) => Ok(self.loan(class, index, gen, len)),
            None => Err(LoanError::Exhausted),
        }
    }

    /// Loans a block for one `T` (of the smallest class that holds it),
    /// as [`try_loan`](Self::try_loan) does; the loan derefs to `&mut T`
    /// (stale bytes: any are a valid `T: Pod`). `T` may need an alignment
    /// of at most [`BLOCK_ALIGN`] (checked when this compiles).
    pub fn try_loan_value<T: Pod>(&self) -> Result<TypedLoan<'_, T>, LoanError> {
        const {
            assert!(
                core::mem::align_of::<T>() <= BLOCK_ALIGN,
                "a pool block is 64-byte aligned"
            )
        };
        self.try_loan(core::mem::size_of::<T>()).map(TypedLoan::new)
    }

    /// [`loan_deadline`](Self::loan_deadline) with a deadline `timeout`
    /// from now.
    pub fn loan_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<Loan<'_>, LoanTimeoutError> {
        self.loan_deadline_inner(len, crate::sync::wait::deadline_after(timeout))
    }

    /// Loans as [`try_loan`](Self::try_loan) does, waiting until
    /// `deadline` while the class is exhausted: it spins a little, then
    /// sleeps on the pool's [`Signal`] (a release wakes it), and between
    /// sleeps scans the class again for blocks whose owner died, every 1
    /// to 10 ms (a tenth of the time waited so far). Fails with
    /// [`LoanTimeoutError::Timeout`] once `deadline` passes, or as
    /// `try_loan` does.
    pub fn loan_deadline(
        &self,
        len: usize,
        deadline: Instant,
    ) -> Result<Loan<'_>, LoanTimeoutError> {
        self.loan_deadline_inner(len, Some(deadline))
    }

    fn loan_deadline_inner(
        &self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Loan<'_>, LoanTimeoutError> {
        let class = self
            .class_for(len)
            .map_err(|(len, max)| LoanTimeoutError::TooLarge { len, max })?;
        let got = |got: Option<(u32, u32)>| got.map(|(i, g)| self.loan(class, i, g, len));
        for _ in 0..SPIN_LIMIT {
            if let Some(loan) = got(self.take(class, false)?) {
                return Ok(loan);
            }
            spin_loop();
        }
        let mut probe = Probe::start();
        loop {
            // Between sleeps: the full attempt, dead owners included.
            if let Some(loan) = got(self.take(class, true)?) {
                return Ok(loan);
            }
            if crate::sync::wait::expired(deadline) {
                return Err(LoanTimeoutError::Timeout);
            }
            while !probe.due() {
                let woke = self.header.signal.wait_deadline(probe.slice(deadline), || {
                    match self.take(class, false) {
                        Ok(None) => None,
                        other => Some(other),
                    }
                });
                match woke {
                    Some(Ok(found)) => {
                        if let Some(loan) = got(found) {
                            return Ok(loan);
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None if crate::sync::wait::expired(deadline) => {
                        return Err(LoanTimeoutError::Timeout)
                    }
                    None => {}
                }
            }
        }
    }

    fn loan(&self, class: usize, index: u32, gen: u32, len: usize) -> Loan<'_> {
        let c = &self.classes[class];
        // SAFETY: `index < states.len()` (`take` checked it), so the block
        // lies inside the class's blocks (checked at open).
        let ptr = unsafe { c.data.add(index as usize * c.block_size) };
        debug_assert!(len <= c.block_size);
        Loan::new(
            self,
            BlockRef {
                class: class as u32,
                index,
                generation: gen,
            },
            ptr,
            len,
        )
    }

    /// Claims a block of `class`: from the bitmap's hints, else by a scan
    /// of the state words that takes a free block or (if `dead`) one whose
    /// owner died. Returns the block's index and its new generation.
    fn take(&self, class: usize, dead: bool) -> Result<Option<(u32, u32)>, Corrupted> {
        let c = &self.classes[class];
        let words = c.bitmap.len();
        let start = (c.hint.load(Ordering::Relaxed) % words as u64) as usize;
        // Every step clears one bit; peers setting bits as fast as we clear
        // them cannot keep us here longer than this.
        let mut budget = 2 * c.states.len() + 64;
        for k in 0..words {
            let w = (start + k) % words;
            let word = &c.bitmap[w].0;
            let mut bits = word.load(Ordering::Relaxed);
            while bits != 0 && budget > 0 {
                budget -= 1;
                let bit = 1u64 << bits.trailing_zeros();
                let index = w * 64 + bits.trailing_zeros() as usize;
                if index < c.states.len() {
                    if let Some(gen) = self.claim(c, index, None)? {
                        word.fetch_and(!bit, Ordering::Relaxed);
                        if w != start {
                            c.hint.store(w as u64, Ordering::Relaxed);
                        }
                        return Ok(Some((index as u32, gen)));
                    }
                }
                // A stale hint (or a bit past the last block): drop it.
                bits = word.fetch_and(!bit, Ordering::Relaxed) & !bit;
            }
        }
        self.scan(class, dead)
    }

    /// Claims block `index` of `c` if its state is free, or owned by a
    /// participant `dead` says is dead: one CAS to `lent(me, gen + 1)`.
    fn claim(
        &self,
        c: &Class<'_>,
        index: usize,
        dead: Option<&mut Deaths>,
    ) -> Result<Option<u32>, Corrupted> {
        let s = &c.states[index].0;
        let word = s.load(Ordering::Acquire);
        let gen = match state::parse(word)? {
            State::Free { gen } => gen,
            State::Owned { owner, gen, .. } => match dead {
                Some(deaths) if owner != self.me => {
                    if !deaths.is_dead(s, owner)? {
                        return Ok(None);
                    }
                    gen
                }
                _ => return Ok(None),
            },
            // The service's, until its holders let go.
            State::Shared { .. } => return Ok(None),
        };
        let next = gen.wrapping_add(1);
        Ok(s.compare_exchange(
            word,
            state::lent(self.me, next),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .ok()
        .map(|_| next))
    }

    /// The slow path of [`take`](Self::take): every state word of `class`.
    #[cold]
    fn scan(&self, class: usize, dead: bool) -> Result<Option<(u32, u32)>, Corrupted> {
        let c = &self.classes[class];
        let mut deaths = Deaths::default();
        for index in 0..c.states.len() {
            let found = self.claim(c, index, dead.then_some(&mut deaths))?;
            if let Some(gen) = found {
                // Its bit, if a release left one, is stale now.
                c.bitmap[index / 64]
                    .0
                    .fetch_and(!(1 << (index % 64)), Ordering::Relaxed);
                return Ok(Some((index as u32, gen)));
            }
        }
        Ok(None)
    }

    /// Frees every block of every class that a dead participant owned
    /// (lent or held); returns how many. Blocks of live participants,
    /// this view's own among them, are left alone. Fails with
    /// [`Corrupted`] at the first impossible state word (blocks freed
    /// before it stay freed).
    pub fn reclaim(&self) -> Result<usize, Corrupted> {
        let mut freed = 0;
        let mut deaths = Deaths::default();
        for c in &self.classes {
            for (index, s) in c.states.iter().enumerate() {
                let word = s.0.load(Ordering::Acquire);
                if let State::Owned { owner, gen, .. } = state::parse(word)? {
                    if owner != self.me
                        && deaths.is_dead(&s.0, owner)?
                        && s.0
                            .compare_exchange(
                                word,
                                state::free(gen),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        freed += 1;
                        Self::mark_free(c, index);
                    }
                }
            }
        }
        if freed > 0 {
            self.header.signal.notify();
        }
        Ok(freed)
    }

    fn mark_free(c: &Class<'_>, index: usize) {
        c.bitmap[index / 64]
            .0
            .fetch_or(1 << (index % 64), Ordering::Release);
    }

    /// Releases block `b` from `from` (its owner's word) to free; whether
    /// the CAS succeeded.
    fn free(&self, b: BlockRef, from: u64) -> bool {
        let c = &self.classes[b.class as usize];
        let index = b.index as usize;
        let ok = c.states[index]
            .0
            .compare_exchange(
                from,
                state::free(b.generation),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            Self::mark_free(c, index);
            self.header.signal.notify();
        }
        ok
    }

    /// The drop of a live loan of `b`.
    fn release_lent(&self, b: BlockRef) {
        // A failure means the block is no longer ours: a peer scribbled on
        // the word, or (only if liveness was wrong) took it over. Nothing
        // a drop could report.
        let _ = self.free(b, state::lent(self.me, b.generation));
    }

    /// Marks the lent block `b` held (its loan is going away without
    /// releasing it); whether it still was this view's.
    fn detach(&self, b: BlockRef) -> bool {
        self.classes[b.class as usize].states[b.index as usize]
            .0
            .compare_exchange(
                state::lent(self.me, b.generation),
                state::held(self.me, b.generation),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Releases a block that this participant holds as `block` (from
    /// [`Loan::into_block`]): one CAS from `held(me, generation)` to free.
    /// Fails with [`ReleaseError::NoSuchBlock`] for a class or index the
    /// pool does not have, [`ReleaseError::NotHeld`] if the block is not
    /// held so (released already, loaned again, reclaimed, another
    /// participant's, or lent out as a live [`Loan`]: a forged
    /// `BlockRef` cannot free a block under its loan), and
    /// [`ReleaseError::Corrupted`] if its state word is impossible.
    pub fn release_block(&self, block: BlockRef) -> Result<(), ReleaseError> {
        let no_such = ReleaseError::NoSuchBlock {
            class: block.class,
            index: block.index,
        };
        let c = self.classes.get(block.class as usize).ok_or(no_such)?;
        let s = c.states.get(block.index as usize).ok_or(no_such)?;
        if self.free(block, state::held(self.me, block.generation)) {
            return Ok(());
        }
        state::parse(s.0.load(Ordering::Relaxed))?;
        Err(ReleaseError::NotHeld)
    }

    /// The offset, from the region data's start, of block `index` of
    /// `class` (for a [`HeapPool`], as if the pool were at offset 0), if
    /// the pool has that block.
    pub fn block_offset(&self, class: usize, index: usize) -> Option<usize> {
        let c = self.classes.get(class)?;
        (index < c.states.len()).then(|| c.data_offset + index * c.block_size)
    }
}

/// Liveness answers of one scan, one system call per token at most.
#[derive(Default)]
struct Deaths(Vec<(Token, bool)>);

impl Deaths {
    fn is_dead(&mut self, at: &AtomicU64, t: Token) -> Result<bool, Corrupted> {
        if let Some(&(_, dead)) = self.0.iter().find(|(k, _)| *k == t) {
            return Ok(dead);
        }
        let dead = match owner::liveness(at, t) {
            Liveness::Alive => false,
            Liveness::Dead => true,
            Liveness::Invalid => {
                return Err(Corrupted(
                    "pool block state: the owner is no participant token",
                ))
            }
        };
        self.0.push((t, dead));
        Ok(dead)
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests;
