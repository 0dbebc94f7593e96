//! A pool on the heap.

use super::config::{plan, Plan, BLOCK_ALIGN};
use super::lending::Lending;
use super::{init, BitmapWord, BlockState, Class, Pool, PoolConfig, PoolHeader};
use crate::error::{Error, Result};
use core::fmt;
use core::ptr::NonNull;
use std::alloc::Layout;
use std::sync::Arc;

/// A block pool on the heap, for threads of one process, unit tests and
/// loom models; [`pool`](Self::pool) gives the same [`Pool`] view a region
/// does, and runs the same code. Its participant is this process (under
/// loom: each thread that makes a view), which never dies, so nothing is
/// reclaimed.
///
/// ```
/// use shmkit::pool::{HeapPool, PoolConfig};
///
/// let heap = HeapPool::new(&PoolConfig::new().class(64, 2))?;
/// let pool = heap.pool();
/// let mut a = pool.try_loan_value::<[u64; 4]>()?;
/// *a = [1, 2, 3, 4];
/// let b = pool.try_loan(64)?;
/// assert_ne!(a.block().index, b.block().index);
/// drop(b);
/// assert_eq!(pool.free_blocks(0), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HeapPool {
    header: Box<PoolHeader>,
    plan: Plan,
    states: Vec<Box<[BlockState]>>,
    bitmaps: Vec<Box<[BitmapWord]>>,
    /// Each class's blocks, from `alloc_zeroed` with `layouts[c]`, freed
    /// in `Drop`.
    data: Vec<NonNull<u8>>,
    layouts: Vec<Layout>,
    /// What the views of this pool lend, shared by all of them.
    lending: Arc<Lending>,
}

// SAFETY: owns its allocations; shared access goes through views, which
// follow the pool protocol.
unsafe impl Send for HeapPool {}
// SAFETY: `&HeapPool` only gives views.
unsafe impl Sync for HeapPool {}

impl HeapPool {
    /// An empty pool of `config` (rules as for [`Pool::create`]).
    pub fn new(config: &PoolConfig) -> Result<Self> {
        let plan = plan(config.classes())?;
        let header = Box::new(PoolHeader::zeroed());
        let mut states = Vec::new();
        let mut bitmaps = Vec::new();
        let mut data = Vec::new();
        let mut layouts = Vec::new();
        for p in &plan.classes {
            states.push((0..p.count).map(|_| BlockState::default()).collect());
            bitmaps.push(
                (0..p.bitmap_words())
                    .map(|_| BitmapWord::default())
                    .collect(),
            );
            let layout =
                Layout::from_size_align(p.count * p.block_size, BLOCK_ALIGN).map_err(|_| {
                    Error::InvalidSize {
                        size: p.block_size as u64,
                        reason: "a pool of this configuration is too large",
                    }
                })?;
            // SAFETY: the size is at least one block of 64 bytes.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            data.push(NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)));
            layouts.push(layout);
        }
        let lending = Lending::new(&plan);
        let heap = Self {
            header,
            lending,
            plan,
            states,
            bitmaps,
            data,
            layouts,
        };
        let parts: Vec<_> = heap
            .states
            .iter()
            .zip(&heap.bitmaps)
            .map(|(s, b)| (&s[..], &b[..]))
            .collect();
        init(&heap.header, &heap.plan, &parts);
        Ok(heap)
    }

    /// A view of the pool, loaning as the calling participant (this
    /// process; under loom, the calling thread).
    pub fn pool(&self) -> Pool<'_> {
        let classes = self
            .plan
            .classes
            .iter()
            .enumerate()
            .map(|(c, p)| Class {
                block_size: p.block_size,
                states: &self.states[c],
                bitmap: &self.bitmaps[c],
                data: self.data[c],
                data_offset: p.data,
                hint: &self.header.hints[c],
            })
            .collect();
        Pool::with_classes(&self.header, classes, self.lending.clone())
    }
}

impl Drop for HeapPool {
    fn drop(&mut self) {
        for (ptr, layout) in self.data.iter().zip(&self.layouts) {
            // SAFETY: allocated in `new` with this layout, freed once; no
            // view outlives `self`.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), *layout) };
        }
    }
}

impl fmt::Debug for HeapPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeapPool").field(&self.pool()).finish()
    }
}
