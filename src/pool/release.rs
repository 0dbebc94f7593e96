//! Releases: a loan's drop, a held block's release, and the reclaim of
//! what dead participants held.

use super::take::Deaths;
use super::*;

impl<'a> Pool<'a> {
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
                                Ordering::SeqCst,
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

    /// Sets block `index`'s bitmap bit after its state word was made free
    /// (by a `SeqCst` write), unless it is set already: a block freed by one
    /// side and loaned again by the other leaves the bitmap word alone, so
    /// its line is not written on every message. A loan that clears the
    /// bit as stale reads the state word afterwards (`SeqCst`, in
    /// `claim`), so of the two at least one sees the other: the free
    /// block keeps its bit or is claimed by that loan.
    pub(super) fn mark_free(c: &Class<'_>, index: usize) {
        let word = &c.bitmap[index / 64].0;
        let bit = 1 << (index % 64);
        if word.load(Ordering::SeqCst) & bit == 0 {
            word.fetch_or(bit, Ordering::Release);
        }
    }

    /// Releases block `b` from `from` (its owner's word) to free; whether
    /// the CAS succeeded.
    pub(super) fn free(&self, b: BlockRef, from: u64) -> bool {
        let c = &self.classes[b.class as usize];
        let index = b.index as usize;
        let ok = c.states[index]
            .0
            .compare_exchange(
                from,
                state::free(b.generation),
                Ordering::SeqCst,
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
    pub(super) fn release_lent(&self, b: BlockRef) {
        self.unmark_lent(b);
        // A failure means the block is no longer ours: a peer scribbled on
        // the word, or (only if liveness was wrong) took it over. Nothing
        // a drop could report.
        let _ = self.free(b, state::lent(self.me, b.generation));
    }

    /// Marks the lent block `b` held (its loan is going away without
    /// releasing it); whether it still was this view's.
    pub(super) fn detach(&self, b: BlockRef) -> bool {
        // A held block has no live reference: it may be lent again (to
        // whoever a later release frees it for) without aliasing a loan.
        self.unmark_lent(b);
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
}
