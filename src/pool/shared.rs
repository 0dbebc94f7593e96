//! Blocks shared by a publish/subscribe service ([`crate::pubsub`]): the
//! `shared(g)` state and the per-block holders word.
//!
//! A publisher loans a block, fills it, stores the holders mask (bit 63:
//! its own hold while it distributes; bit `i`: subscriber `i`), gives the
//! loan up as a `BlockRef` and [`share`](Pool::share)s it: `held(me, g)` ->
//! `shared(g)`. From then on no participant owns the block; whoever clears
//! the last bit of the mask frees it ([`Pool::release_shared`]), and a
//! block left `shared(g)` with an empty mask (its last holder died between
//! the two steps) is freed by [`Pool::sweep_shared`].
//!
//! The holders word carries no generation, so a bit may only be cleared by
//! a party that *holds* it on the block's current generation: it checks
//! the state says `shared(g)` and its bit is set, and nobody else clears
//! that bit meanwhile (the bit itself keeps the block from being freed and
//! lent again). The service keeps that rule (`crate::pubsub`'s module
//! documentation).

use super::state::{self, State};
use super::{BlockRef, Corrupted, Pool};
use crate::primitive::{AtomicU64, Ordering};
use core::ptr::NonNull;

/// The publisher's hold on a block while it distributes it.
pub(crate) const PUBLISHER_BIT: u64 = 1 << 63;

impl Pool<'_> {
    /// The holders word of block `b`, if the pool has it.
    pub(crate) fn holders(&self, b: BlockRef) -> Option<&AtomicU64> {
        let c = self.classes.get(b.class as usize)?;
        c.states.get(b.index as usize).map(|s| &s.1 .0)
    }

    /// The first byte and the block size of block `b`, if the pool has it.
    pub(crate) fn block_ptr(&self, b: BlockRef) -> Option<(NonNull<u8>, usize)> {
        let c = self.classes.get(b.class as usize)?;
        if b.index as usize >= c.states.len() {
            return None;
        }
        // SAFETY: `index < states.len()`, so the block lies inside the
        // class's blocks (checked at open).
        let ptr = unsafe { c.data.add(b.index as usize * c.block_size) };
        Some((ptr, c.block_size))
    }

    /// Whether block `b` (which the pool has) is `shared(b.generation)`;
    /// an impossible state word is [`Corrupted`].
    pub(crate) fn is_shared(&self, b: BlockRef) -> Result<bool, Corrupted> {
        let c = &self.classes[b.class as usize];
        let word = c.states[b.index as usize].0.load(Ordering::Acquire);
        Ok(state::parse(word)? == State::Shared { gen: b.generation })
    }

    /// Whether block `b` is one the pool has, `shared(b.generation)`, with
    /// every bit of `bits` set in its holders word; an impossible state
    /// word is [`Corrupted`].
    pub(crate) fn shared_with(&self, b: BlockRef, bits: u64) -> Result<bool, Corrupted> {
        let Some(h) = self.holders(b) else {
            return Ok(false);
        };
        Ok(self.is_shared(b)? && h.load(Ordering::Acquire) & bits == bits)
    }

    /// Turns block `b`, lent to this view as a live loan that is going
    /// away (its holders word stored), into a shared block: the record of
    /// the loan cleared, then one CAS `lent(me, g)` -> `shared(g)`.
    /// Whether it was lent so.
    pub(super) fn share_lent(&self, b: BlockRef) -> bool {
        self.unmark_lent(b);
        // A loan's block is one the pool has (as in `detach`).
        self.classes[b.class as usize].states[b.index as usize]
            .0
            .compare_exchange(
                state::lent(self.me, b.generation),
                state::shared(b.generation),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Clears `bits` of shared block `b`'s holders word; frees the block
    /// (`shared(g)` -> `free(g)`) if that emptied the mask. Returns
    /// whether it freed it.
    ///
    /// The caller holds every bit in `bits` on this generation of the
    /// block (see the module documentation); a bit already clear is
    /// skipped, so a release is idempotent.
    pub(crate) fn release_shared(&self, b: BlockRef, bits: u64) -> bool {
        let Some(h) = self.holders(b) else {
            return false;
        };
        let prev = h.fetch_and(!bits, Ordering::AcqRel);
        prev & bits != 0 && prev & !bits == 0 && self.free_shared(b)
    }

    /// `shared(g)` -> `free(g)` for block `b`; whether the CAS succeeded.
    fn free_shared(&self, b: BlockRef) -> bool {
        self.free(b, state::shared(b.generation))
    }

    /// For every block of every class that is `shared(g)`: clears `bits`
    /// in its holders word (only those set, as holders do), and frees it
    /// if its mask is (or so becomes) empty. Returns how many it freed.
    /// With `bits == 0` it only frees the shared blocks nobody holds
    /// (their last holder died between clearing its bit and the free).
    ///
    /// The caller holds the bits it clears on every block (it speaks for
    /// their dead or departed holder, and nobody else clears them
    /// meanwhile). Fails with [`Corrupted`] at the first impossible state
    /// word (what it freed before stays freed).
    pub(crate) fn sweep_shared(&self, bits: u64) -> Result<usize, Corrupted> {
        let mut freed = 0;
        for shared in self.shared_blocks() {
            let (b, mask) = shared?;
            let done = if mask & bits != 0 {
                self.release_shared(b, mask & bits)
            } else {
                mask == 0 && self.free_shared(b)
            };
            freed += usize::from(done);
        }
        Ok(freed)
    }

    /// Every block of every class that is `shared(g)` as the scan passes
    /// it, with its holders mask then; [`Corrupted`] for an impossible
    /// state word (the scan goes on past it).
    pub(crate) fn shared_blocks(
        &self,
    ) -> impl Iterator<Item = Result<(BlockRef, u64), Corrupted>> + '_ {
        self.classes.iter().enumerate().flat_map(|(class, c)| {
            c.states.iter().enumerate().filter_map(move |(index, s)| {
                match state::parse(s.0.load(Ordering::Acquire)) {
                    Ok(State::Shared { gen }) => Some(Ok((
                        BlockRef {
                            class: class as u32,
                            index: index as u32,
                            generation: gen,
                        },
                        s.1 .0.load(Ordering::Acquire),
                    ))),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            })
        })
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use crate::pool::{HeapPool, PoolConfig};

    /// Loans a block, sets its holders to `mask` and shares it.
    fn shared(pool: &Pool<'_>, mask: u64) -> BlockRef {
        let loan = pool.try_loan(8).unwrap();
        pool.holders(loan.block())
            .unwrap()
            .store(mask, Ordering::Relaxed);
        let b = loan.share().unwrap();
        assert!(pool.is_shared(b).unwrap());
        b
    }

    #[test]
    fn the_last_holder_frees_and_releases_are_idempotent() {
        let heap = HeapPool::new(&PoolConfig::new().class(64, 2)).unwrap();
        let pool = heap.pool();
        let b = shared(&pool, PUBLISHER_BIT | 0b101);
        assert_eq!(pool.free_blocks(0), Some(1));
        // Neither the pool's loans nor its reclaim take a shared block.
        let other = pool.try_loan(8).unwrap();
        assert!(pool.try_loan(8).is_err());
        assert_eq!(pool.reclaim().unwrap(), 0);
        assert!(pool.release_block(b).is_err(), "not held by anyone");
        assert!(!pool.release_shared(b, 1));
        assert!(!pool.release_shared(b, 1), "twice: nothing more");
        assert!(!pool.release_shared(b, PUBLISHER_BIT));
        assert!(pool.release_shared(b, 0b100), "the last bit frees");
        assert!(!pool.release_shared(b, 0b100));
        assert!(!pool.is_shared(b).unwrap());
        drop(other);
        assert_eq!(pool.free_blocks(0), Some(2));
    }

    #[test]
    fn sweeps_clear_a_departed_holders_bit_and_free_empty_masks() {
        let heap = HeapPool::new(&PoolConfig::new().class(64, 3)).unwrap();
        let pool = heap.pool();
        let a = shared(&pool, 0b11);
        let _b = shared(&pool, 0b10);
        let c = shared(&pool, 0);
        assert_eq!(pool.sweep_shared(0).unwrap(), 1, "the empty mask");
        assert!(!pool.is_shared(c).unwrap());
        assert_eq!(pool.sweep_shared(0b10).unwrap(), 1, "b held by 1 alone");
        assert_eq!(pool.free_blocks(0), Some(2));
        assert!(pool.release_shared(a, 0b01));
        assert_eq!(pool.free_blocks(0), Some(3));
    }

    #[test]
    fn a_loan_whose_word_a_peer_rewrote_is_not_shared() {
        let heap = HeapPool::new(&PoolConfig::new().class(64, 2)).unwrap();
        let pool = heap.pool();
        let loan = pool.try_loan(8).unwrap();
        let b = loan.block();
        // A peer frees the block under the live loan.
        pool.classes[0].states[b.index as usize]
            .0
            .store(state::free(b.generation), Ordering::Relaxed);
        assert_eq!(loan.share(), None);
        assert!(!pool.is_shared(b).unwrap());
        // The record of the loan went with it: the block loans again.
        let again = pool.try_loan(8).unwrap();
        let other = pool.try_loan(8).unwrap();
        assert!(again.block().index == b.index || other.block().index == b.index);
    }
}
