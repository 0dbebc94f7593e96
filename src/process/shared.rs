//! [`SharedBytes`]: a large argument or result written once into a block
//! of a pool that a [`ProcessPool`](super::ProcessPool) shares with its
//! workers, and read in place on the other side: no copy, whatever the
//! size.
//!
//! # Holds
//!
//! A block is held through bits of its holders word (see [`crate::pool`]'s
//! shared blocks): bit 62 is the pool's parent, bit `i` worker slot `i`.
//! Each process keeps a count per block it holds ([`BlockPool::holds`]):
//! every `SharedBytes` value, and every message in flight that names the
//! block, is one; the process clears its bit when the count falls to 0
//! (and the last bit frees the block).
//!
//! - **Into a job.** Encoding a `SharedBytes` for a task takes a count for
//!   the job, kept until the job's outcome is in, so the block outlives
//!   the argument value. The job message lists its blocks; the worker
//!   sets its own bit on each (the parent's keeps the block meanwhile)
//!   before it runs the job, and drops that count once it has answered.
//! - **Back as a result.** Encoding one into a result takes a count for the
//!   message; before sending, the worker sets the parent's bit on it
//!   (while its own still holds it), then drops its count. The parent
//!   takes the block over when it reads the message.
//! - **A dead worker.** The parent clears the worker's bit on every block;
//!   a block that also carries the parent's bit but that the parent never
//!   took over was a result on its way: the parent's bit goes too.

use crate::pool::{BlockRef, Loan, LoanError, Pool, PoolConfig};
use crate::primitive::{AtomicU64, Ordering};
use crate::process::payload::{DecodeError, Payload};
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

/// The parent's bit in a block's holders word.
pub(crate) const PARENT_BIT: u64 = 1 << 62;
/// The most workers a pool with shared blocks may have (one bit each).
pub(crate) const MAX_WORKERS: usize = 62;

const LAYOUT: LayoutId = LayoutId::named("shmkit::process::pool::blocks", 1);
/// Where the pool starts in its region (the id word comes first).
const POOL_OFFSET: usize = 128;

/// A block as it travels: the pool's id, the block, the length used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc {
    pub(crate) pool: u64,
    pub(crate) block: BlockRef,
    pub(crate) len: u64,
}

impl Desc {
    pub(crate) const SIZE: usize = 28;

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.pool.encode(out);
        self.block.class.encode(out);
        self.block.index.encode(out);
        self.block.generation.encode(out);
        self.len.encode(out);
    }

    pub(crate) fn read(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            pool: u64::decode(input)?,
            block: BlockRef {
                class: u32::decode(input)?,
                index: u32::decode(input)?,
                generation: u32::decode(input)?,
            },
            len: u64::decode(input)?,
        })
    }
}

/// This process's view of a pool's shared blocks, and what it holds.
pub(crate) struct BlockPool {
    id: u64,
    /// This process's holder bit.
    bit: u64,
    /// Per block this process holds: its generation and the count of
    /// holds (values and messages).
    holds: Mutex<HashMap<(u32, u32), (u32, usize)>>,
    pool: Pool<'static>,
    // Last: what `pool` borrows.
    region: Region,
}

// SAFETY: `Pool` is `Send + Sync`; the rest is a `Mutex` and plain data.
unsafe impl Send for BlockPool {}
// SAFETY: as above.
unsafe impl Sync for BlockPool {}

/// Every block pool this process has, by id.
static REGISTRY: Mutex<Vec<(u64, Weak<BlockPool>)>> = Mutex::new(Vec::new());

thread_local! {
    /// The blocks encoded while a message is being built, with a count
    /// taken for each ([`collect`]).
    static COLLECTING: RefCell<Option<Attached>> = const { RefCell::new(None) };
    /// The pool of the worker this process is, if it has shared blocks.
    static WORKER_POOL: RefCell<Option<Arc<BlockPool>>> = const { RefCell::new(None) };
}

impl BlockPool {
    /// Lays out a new pool of `config` (the parent's side).
    pub(crate) fn create(config: &PoolConfig) -> crate::Result<Arc<Self>> {
        let id = fresh_id();
        let size = POOL_OFFSET + Pool::bytes_for(config)?;
        let region = RegionOptions::new()
            .layout(LAYOUT)
            .kind(ObjectKind::ProcessPool)
            .size(size)
            .anonymous_with(|r| {
                r.place::<AtomicU64>(0)?.store(id, Ordering::Relaxed);
                Pool::create(r, POOL_OFFSET, config).map(drop)
            })?;
        Self::view(region, PARENT_BIT)
    }

    /// Opens the pool whose region a worker inherited; `bit` is its own.
    pub(crate) fn open(fd: OwnedFd, bit: u64) -> crate::Result<Arc<Self>> {
        let region = RegionOptions::new().layout(LAYOUT).from_fd(fd)?;
        Self::view(region, bit)
    }

    fn view(region: Region, bit: u64) -> crate::Result<Arc<Self>> {
        // SAFETY: `pool` goes into `Self` beside `region`, its last field.
        let r: &'static Region = unsafe { &*(&region as *const Region) };
        let id = r.place::<AtomicU64>(0)?.load(Ordering::Relaxed);
        let pool = Pool::open(r, POOL_OFFSET)?;
        let bp = Arc::new(Self {
            id,
            bit,
            holds: Mutex::new(HashMap::new()),
            pool,
            region,
        });
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((id, Arc::downgrade(&bp)));
        Ok(bp)
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn free_blocks(&self, class: usize) -> Option<usize> {
        self.pool.free_blocks(class)
    }

    fn find(id: u64) -> Option<Arc<Self>> {
        let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.iter()
            .filter(|(i, _)| *i == id)
            .find_map(|(_, w)| w.upgrade())
    }

    /// Makes `bp` the pool of this worker process.
    pub(crate) fn serve_as_worker(bp: Arc<Self>) {
        WORKER_POOL.with(|w| *w.borrow_mut() = Some(bp));
    }

    fn key(b: BlockRef) -> (u32, u32) {
        (b.class, b.index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, u32), (u32, usize)>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more count on a block this process holds; `false` if it holds
    /// no such block (under that generation).
    fn hold_more(&self, b: BlockRef) -> bool {
        match self.lock().get_mut(&Self::key(b)) {
            Some((g, n)) if *g == b.generation => {
                *n += 1;
                true
            }
            _ => false,
        }
    }

    /// Starts holding `b` through this process's bit, which the caller
    /// has just checked or set (count 1), or counts one more.
    fn hold(&self, b: BlockRef) {
        let mut holds = self.lock();
        let e = holds.entry(Self::key(b)).or_insert((b.generation, 0));
        if e.0 == b.generation {
            e.1 += 1;
        }
    }

    /// Drops one count on `b`; the last clears this process's bit.
    pub(crate) fn release(&self, b: BlockRef) {
        let last = {
            let mut holds = self.lock();
            match holds.get_mut(&Self::key(b)) {
                Some((g, n)) if *g == b.generation => {
                    *n -= 1;
                    if *n == 0 {
                        holds.remove(&Self::key(b));
                        true
                    } else {
                        false
                    }
                }
                _ => false,
            }
        };
        if last {
            self.pool.release_shared(b, self.bit);
        }
    }

    /// The parent takes over a block a worker sent back (it set the
    /// parent's bit before sending): one count for the message.
    pub(crate) fn adopt(&self, d: &Desc) -> bool {
        let ok = d.pool == self.id
            && self.fits(d)
            && self.pool.shared_with(d.block, PARENT_BIT).unwrap_or(false);
        if ok {
            self.hold(d.block);
        }
        ok
    }

    /// A worker starts holding a block its job names (the parent's bit
    /// keeps it while the job is out): sets its own bit, one count.
    pub(crate) fn take(&self, d: &Desc) -> bool {
        if d.pool != self.id || !self.fits(d) {
            return false;
        }
        if !self.pool.shared_with(d.block, PARENT_BIT).unwrap_or(false) {
            return false;
        }
        if !self.hold_more(d.block) {
            let Some(h) = self.pool.holders(d.block) else {
                return false;
            };
            h.fetch_or(self.bit, Ordering::AcqRel);
            self.hold(d.block);
        }
        true
    }

    /// A worker hands a block it holds to the parent: sets the parent's
    /// bit (its own still holds the block).
    pub(crate) fn give_parent(&self, d: &Desc) {
        if self.lock().contains_key(&Self::key(d.block)) {
            if let Some(h) = self.pool.holders(d.block) {
                h.fetch_or(PARENT_BIT, Ordering::AcqRel);
            }
        }
    }

    /// After worker bit `worker` is gone for good: clears it on every
    /// block, with the parent's bit on blocks the parent never took over
    /// (results the worker did not finish sending).
    pub(crate) fn sweep_worker(&self, worker: u64) {
        let holds = self.lock();
        for (b, mask) in self.pool.shared_blocks().flatten() {
            if mask & worker == 0 {
                continue;
            }
            let mine = holds
                .get(&Self::key(b))
                .is_some_and(|(g, _)| *g == b.generation);
            let bits = if mask & PARENT_BIT != 0 && !mine {
                worker | PARENT_BIT
            } else {
                worker
            };
            self.pool.release_shared(b, bits);
        }
    }

    fn fits(&self, d: &Desc) -> bool {
        self.pool
            .block_ptr(d.block)
            .is_some_and(|(_, size)| d.len as usize <= size)
    }

    /// Loans a block of at least `len` bytes.
    pub(crate) fn loan(self: &Arc<Self>, len: usize) -> Result<BytesLoan, LoanError> {
        // SAFETY: the loan borrows the pool inside `self`, and `BytesLoan`
        // keeps an `Arc` of it beside the loan (dropped after it).
        let pool: &'static Pool<'static> = unsafe { &*(&self.pool as *const Pool<'static>) };
        let loan = pool.try_loan(len)?;
        Ok(BytesLoan {
            loan,
            pool: self.clone(),
        })
    }
}

/// A fresh pool id: the pid, the clock and a count of this process's
/// pools, mixed (unique within the process, unlikely to meet another's).
fn fresh_id() -> u64 {
    #[allow(clippy::disallowed_types)] // process-local, never shared
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let x = t ^ (u64::from(std::process::id()) << 40) ^ n.rotate_left(20);
    // splitmix64's finalizer.
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Counts on blocks, each dropped with this (a job's, a message's).
#[derive(Default)]
pub(crate) struct Attached {
    blocks: Vec<(Arc<BlockPool>, Desc)>,
}

impl Attached {
    pub(crate) fn descs(&self) -> impl Iterator<Item = &Desc> {
        self.blocks.iter().map(|(_, d)| d)
    }

    pub(crate) fn push(&mut self, bp: Arc<BlockPool>, d: Desc) {
        self.blocks.push((bp, d));
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        for (bp, d) in self.blocks.drain(..) {
            bp.release(d.block);
        }
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.descs()).finish()
    }
}

/// Runs `f` (which encodes a message), collecting the blocks its
/// `SharedBytes` encode, each with a count of its own.
pub(crate) fn collect<T>(f: impl FnOnce() -> T) -> (T, Attached) {
    let outer = COLLECTING.with(|c| c.borrow_mut().replace(Attached::default()));
    let t = f();
    let got = COLLECTING.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (t, got.unwrap_or_default())
}

/// A block of a process pool's shared memory, lent to be written: derefs
/// to `&mut [u8]` of `len` bytes; [`share`](Self::share) makes it a
/// [`SharedBytes`] to pass to a task (or return from one). Dropping it
/// gives the block back.
pub struct BytesLoan {
    loan: Loan<'static>,
    // After `loan`: what it borrows.
    pool: Arc<BlockPool>,
}

impl BytesLoan {
    /// Ends the writing: the bytes, to pass on without a copy.
    pub fn share(self) -> SharedBytes {
        let len = self.loan.len();
        let block = self.loan.block();
        let bp = self.pool.clone();
        if let Some(h) = bp.pool.holders(block) {
            h.store(bp.bit, Ordering::Relaxed);
        }
        // A loan of this view shares (a peer's scribble on its state word
        // aside, which only the pool's next scan would notice).
        let shared = self.loan.share();
        debug_assert!(shared.is_some());
        bp.hold(block);
        let (ptr, _) = bp.pool.block_ptr(block).expect("a block the pool has");
        SharedBytes {
            pool: bp,
            block,
            ptr: ptr.as_ptr(),
            len,
        }
    }
}

impl Deref for BytesLoan {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.loan
    }
}

impl DerefMut for BytesLoan {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.loan
    }
}

impl fmt::Debug for BytesLoan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesLoan")
            .field("block", &self.loan.block())
            .field("len", &self.loan.len())
            .finish()
    }
}

/// Bytes in a block of a process pool's shared memory, read in place: a
/// [`Payload`] that crosses to a worker (or back) as a 28-byte name of its
/// block, whatever its length. Made by [`BytesLoan::share`] (from
/// [`ProcessPool::loan_bytes`](super::ProcessPool::loan_bytes) in the
/// parent, [`loan_bytes`](super::loan_bytes) in a worker); derefs to
/// `&[u8]`. The block stays while any value or message names it, and comes
/// back when the last is gone, or when the worker holding it dies.
///
/// ```
/// use shmkit::pool::PoolConfig;
/// use shmkit::process::{self, ProcessPool, SharedBytes};
///
/// fn checksum(frame: SharedBytes) -> u64 {
///     frame.iter().map(|b| *b as u64).sum() // read in place
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     process::init();
///     let pool = ProcessPool::builder()
///         .shared_blocks(PoolConfig::new().class(1 << 20, 4))
///         .build()?;
///     let mut frame = pool.loan_bytes(1 << 20)?;
///     frame.fill(1);
///     assert_eq!(pool.apply(checksum, frame.share())?, 1 << 20);
///     Ok(())
/// }
/// ```
pub struct SharedBytes {
    pool: Arc<BlockPool>,
    block: BlockRef,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are read only, through a hold that keeps the block
// from being freed or lent while the value lives; the counts are behind a
// mutex.
unsafe impl Send for SharedBytes {}
// SAFETY: as above: `&SharedBytes` only reads.
unsafe impl Sync for SharedBytes {}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the first of `len` (checked against the block
        // size) bytes of the block, inside the pool's mapping, which the
        // `Arc` keeps. This process holds the block through its bit (a
        // count of this value), so it stays shared: no process lends it,
        // and no `&mut` to it exists. A peer breaking the protocol can
        // change the bytes (any bytes are valid `u8`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Clone for SharedBytes {
    fn clone(&self) -> Self {
        let held = self.pool.hold_more(self.block);
        debug_assert!(held);
        Self {
            pool: self.pool.clone(),
            block: self.block,
            ptr: self.ptr,
            len: self.len,
        }
    }
}

impl Drop for SharedBytes {
    fn drop(&mut self) {
        self.pool.release(self.block);
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBytes")
            .field("block", &self.block)
            .field("len", &self.len)
            .finish()
    }
}

impl Payload for SharedBytes {
    const MIN_ENCODED: usize = Desc::SIZE;

    /// Writes the block's name; inside a task's argument or result, also
    /// takes a count for the message (see the module docs).
    fn encode(&self, out: &mut Vec<u8>) {
        let d = Desc {
            pool: self.pool.id,
            block: self.block,
            len: self.len as u64,
        };
        d.write(out);
        COLLECTING.with(|c| {
            if let Some(v) = c.borrow_mut().as_mut() {
                if self.pool.hold_more(self.block) {
                    v.push(self.pool.clone(), d);
                }
            }
        });
    }

    /// Finds the block among those this process holds for the message
    /// being read; anything else is a [`DecodeError`].
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let d = Desc::read(input)?;
        let err = |why| DecodeError {
            what: "SharedBytes",
            why,
        };
        let pool =
            BlockPool::find(d.pool).ok_or(err("a block of a pool this process does not have"))?;
        let (ptr, size) = pool.pool.block_ptr(d.block).ok_or(err("no such block"))?;
        if d.len as usize > size {
            return Err(err("longer than its block"));
        }
        if !pool.hold_more(d.block) {
            return Err(err("a block no message in hand names"));
        }
        Ok(Self {
            pool,
            block: d.block,
            ptr: ptr.as_ptr(),
            len: d.len as usize,
        })
    }
}

/// Why no block was lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoanBytesError {
    /// The pool has no shared blocks
    /// ([`PoolBuilder::shared_blocks`](super::PoolBuilder::shared_blocks)),
    /// or (for [`loan_bytes`]) this process is not a worker of one that
    /// has.
    #[error("no shared blocks here: give the pool some with PoolBuilder::shared_blocks")]
    NoSharedBlocks,
    /// The pool's own reason: too large for every class, or every block
    /// in use.
    #[error(transparent)]
    Loan(#[from] LoanError),
}

/// Loans a block of at least `len` bytes of the shared memory of the pool
/// this worker serves, to return a large result as [`SharedBytes`].
/// [`LoanBytesError::NoSharedBlocks`] outside a pool worker, or in one of
/// a pool without [`shared_blocks`](super::PoolBuilder::shared_blocks).
pub fn loan_bytes(len: usize) -> Result<BytesLoan, LoanBytesError> {
    WORKER_POOL.with(|w| match w.borrow().as_ref() {
        Some(bp) => Ok(bp.loan(len)?),
        None => Err(LoanBytesError::NoSharedBlocks),
    })
}
