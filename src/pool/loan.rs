//! [`Loan`], [`TypedLoan`] and [`BlockRef`]: a block lent out, and a
//! block's name.

use super::Pool;
use bytemuck::{Pod, Zeroable};
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// A block's identity: its class, its index in the class, and the
/// generation of the loan that took it (plain data: it may be copied,
/// stored in shared memory, or sent to another process).
///
/// A `BlockRef` is only a name. It grants nothing: releasing one
/// ([`Pool::release_block`]) checks the block's state word, which must say
/// that this participant holds the block under this generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(C)]
pub struct BlockRef {
    /// The size class, `0..Pool::class_count()`.
    pub class: u32,
    /// The block's index in its class, `0..Pool::block_count(class)`.
    pub index: u32,
    /// The generation of the loan that took the block (it grows by one
    /// with every loan of the block, wrapping).
    pub generation: u32,
}

impl BlockRef {
    /// The block's name and a message length as two words, as the
    /// services keep them in shared memory: `class | index << 32`,
    /// `generation | len << 32`.
    pub(crate) fn to_words(self, len: u32) -> [u64; 2] {
        [
            u64::from(self.class) | u64::from(self.index) << 32,
            u64::from(self.generation) | u64::from(len) << 32,
        ]
    }

    /// The name and length [`to_words`](Self::to_words) stored (any
    /// words give some name: the caller checks it against the pool).
    pub(crate) fn from_words([a, b]: [u64; 2]) -> (Self, u32) {
        let block = Self {
            class: a as u32,
            index: (a >> 32) as u32,
            generation: b as u32,
        };
        (block, (b >> 32) as u32)
    }
}

/// A block lent out of a [`Pool`]: derefs to the first `len` bytes of the
/// block (`&mut [u8]` of shared memory, stale until written: see the
/// [module documentation](super#lending-shared-memory)), and releases the
/// block when dropped. [`into_block`](Self::into_block) keeps the block
/// instead, to hand on.
pub struct Loan<'p> {
    pool: &'p Pool<'p>,
    block: BlockRef,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a loan is an exclusive borrow of its block's bytes (as a
// `&mut [u8]`) plus a shared borrow of a `Sync` pool view.
unsafe impl Send for Loan<'_> {}
// SAFETY: as above; `&Loan` only reads.
unsafe impl Sync for Loan<'_> {}

impl<'p> Loan<'p> {
    pub(super) fn new(pool: &'p Pool<'p>, block: BlockRef, ptr: NonNull<u8>, len: usize) -> Self {
        Self {
            pool,
            block,
            ptr,
            len,
        }
    }

    /// The block's size class.
    pub fn class(&self) -> usize {
        self.block.class as usize
    }

    /// The block's index in its class.
    pub fn index(&self) -> usize {
        self.block.index as usize
    }

    /// The generation of this loan of the block.
    pub fn generation(&self) -> u32 {
        self.block.generation
    }

    /// The block's name.
    pub fn block(&self) -> BlockRef {
        self.block
    }

    /// The offset of the block's first byte from the region data's start
    /// (what a peer needs to find it; for a [`HeapPool`](super::HeapPool)
    /// as if the pool were at offset 0).
    pub fn offset(&self) -> usize {
        self.pool
            .block_offset(self.class(), self.index())
            .unwrap_or_default()
    }

    /// Gives the loan up without releasing the block: the block stays this
    /// participant's, held under the returned name until
    /// [`Pool::release_block`] (or a reclaim, once this participant is
    /// dead). If the block is no longer this participant's (a peer took it
    /// by scribbling on its state word), the name is returned all the same
    /// and releasing it fails.
    pub fn into_block(self) -> BlockRef {
        let block = self.block;
        let _ = self.pool.detach(block);
        core::mem::forget(self);
        block
    }

    /// Gives the loan up to a service that shares the block (its holders
    /// word stored already): `lent(me, g)` -> `shared(g)` in one CAS. The
    /// block, or `None` if its state word no longer said this loan's (a
    /// peer rewrote it; the block is not this view's any more either way).
    pub(crate) fn share(self) -> Option<BlockRef> {
        let block = self.block;
        let shared = self.pool.share_lent(block);
        core::mem::forget(self);
        shared.then_some(block)
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is `len <= block_size` bytes of this loan's block,
        // inside the pool's blocks, valid while the pool view (and so the
        // mapping or heap pool) is borrowed. Inside this process nothing
        // else reaches these bytes while the loan lives: the loan came
        // from a CAS of the block's state word away from free, and only
        // this loan's drop (or `into_block`, which consumes it) gives the
        // block up; a `BlockRef` release needs the held state, and a
        // reclaim a dead owner, neither of which a live loan's block is
        // in. A peer breaking the protocol can change the bytes under the
        // borrow (any bytes are valid `u8`).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Loan<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive
        // within the loan too.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        self.pool.release_lent(self.block);
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan")
            .field("block", &self.block)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A block lent out of a [`Pool`] for one `T`
/// ([`Pool::try_loan_value`]): derefs to `&mut T` (stale until written:
/// any bytes are a valid `T: Pod`); releases the block when dropped.
pub struct TypedLoan<'p, T: Pod> {
    loan: Loan<'p>,
    _t: PhantomData<T>,
}

impl<'p, T: Pod> TypedLoan<'p, T> {
    pub(super) fn new(loan: Loan<'p>) -> Self {
        debug_assert_eq!(loan.len, core::mem::size_of::<T>());
        debug_assert_eq!(loan.ptr.as_ptr() as usize % core::mem::align_of::<T>(), 0);
        Self {
            loan,
            _t: PhantomData,
        }
    }

    /// The untyped loan (the same block, `size_of::<T>()` bytes).
    pub fn into_loan(self) -> Loan<'p> {
        self.loan
    }

    /// As [`Loan::into_block`].
    pub fn into_block(self) -> BlockRef {
        self.loan.into_block()
    }

    /// As [`Loan::block`].
    pub fn block(&self) -> BlockRef {
        self.loan.block()
    }

    /// As [`Loan::offset`].
    pub fn offset(&self) -> usize {
        self.loan.offset()
    }
}

impl<T: Pod> Deref for TypedLoan<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the loan's bytes are exactly `size_of::<T>()`, aligned
        // for `T` (blocks are 64-aligned and `try_loan_value` admits no
        // `T` that needs more), borrowed as the loan's are; any bytes are
        // a valid `T: Pod`.
        unsafe { &*(self.loan.ptr.as_ptr() as *const T) }
    }
}

impl<T: Pod> DerefMut for TypedLoan<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, exclusively (`&mut self`).
        unsafe { &mut *(self.loan.ptr.as_ptr() as *mut T) }
    }
}

impl<T: Pod> fmt::Debug for TypedLoan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedLoan").field(&self.loan).finish()
    }
}
