//! Loans: which class serves a length, the bitmap walk, the scan that
//! takes a free block or a dead owner's, and the bounded wait.

use super::*;

impl<'a> Pool<'a> {
    /// The smallest class whose blocks hold `len` bytes.
    pub(super) fn class_for(&self, len: usize) -> Result<usize, (usize, usize)> {
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
    ///   the [module documentation](super));
    /// - [`LoanError::Corrupted`]: a state word this call read holds an
    ///   impossible value.
    #[inline]
    pub fn try_loan(&self, len: usize) -> Result<Loan<'_>, LoanError> {
        let class = self
            .class_for(len)
            .map_err(|(len, max)| LoanError::TooLarge { len, max })?;
        match self.take(class, true)? {
            Some((index, gen)) => Ok(self.loan(class, index, gen, len)?),
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

    pub(super) fn loan_deadline_inner(
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
                return Ok(loan?);
            }
            spin_loop();
        }
        let mut probe = Probe::start();
        loop {
            // Between sleeps: the full attempt, dead owners included.
            if let Some(loan) = got(self.take(class, true)?) {
                return Ok(loan?);
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
                            return Ok(loan?);
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

    /// A loan for a service, whose shared blocks this pool's own scan
    /// does not take back from dead holders: as [`try_loan`](Self::try_loan)
    /// (`wait` false; `Timeout` then means exhausted) or as
    /// [`loan_deadline`](Self::loan_deadline), but with the class
    /// exhausted it first runs `reclaim` (the service's: dead holders'
    /// holds cleared, their blocks freed), at most once per
    /// `PROBE_INTERVAL` (`next` keeps when it is due), and waits for a
    /// release no longer than until the next one is due. A service's
    /// descriptors name a length in 32 bits: a longer loan is `TooLarge`.
    pub(crate) fn loan_reclaiming(
        &self,
        len: usize,
        deadline: Option<Instant>,
        wait: bool,
        next: &core::cell::Cell<Instant>,
        reclaim: impl Fn() -> Result<usize, Corrupted>,
    ) -> Result<Loan<'_>, LoanTimeoutError> {
        use crate::sync::wait::{expired, PROBE_INTERVAL};
        if len > u32::MAX as usize {
            return Err(LoanTimeoutError::TooLarge {
                len,
                max: u32::MAX as usize,
            });
        }
        loop {
            match self.try_loan(len) {
                Ok(loan) => return Ok(loan),
                Err(LoanError::Exhausted) => {}
                Err(LoanError::TooLarge { len, max }) => {
                    return Err(LoanTimeoutError::TooLarge { len, max })
                }
                Err(LoanError::Corrupted(w)) => return Err(LoanTimeoutError::Corrupted(w)),
            }
            let now = Instant::now();
            if now >= next.get() {
                next.set(now + PROBE_INTERVAL);
                if reclaim().map_err(|Corrupted(w)| LoanTimeoutError::Corrupted(w))? > 0 {
                    continue;
                }
            }
            if !wait || expired(deadline) {
                return Err(LoanTimeoutError::Timeout);
            }
            let slice = deadline.map_or(next.get(), |d| d.min(next.get()));
            match self.loan_deadline_inner(len, Some(slice)) {
                Err(LoanTimeoutError::Timeout) => {}
                other => return other,
            }
        }
    }

    /// [`loan_reclaiming`](Self::loan_reclaiming) without waiting, its
    /// errors as a `try_` loan reports them.
    pub(crate) fn try_loan_reclaiming(
        &self,
        len: usize,
        next: &core::cell::Cell<Instant>,
        reclaim: impl Fn() -> Result<usize, Corrupted>,
    ) -> Result<Loan<'_>, LoanError> {
        self.loan_reclaiming(len, None, false, next, reclaim)
            .map_err(|e| match e {
                LoanTimeoutError::TooLarge { len, max } => LoanError::TooLarge { len, max },
                LoanTimeoutError::Corrupted(w) => LoanError::Corrupted(w),
                LoanTimeoutError::Timeout => LoanError::Exhausted,
            })
    }

    pub(super) fn loan(
        &self,
        class: usize,
        index: u32,
        gen: u32,
        len: usize,
    ) -> Result<Loan<'_>, Corrupted> {
        // The claim made the state word say `lent(me, gen)`; the record
        // says whether a view of this process already lends the block.
        let c = &self.classes[class];
        if let Err(e) = self.mark_lent(class, index as usize) {
            // A peer freed it under the live loan: give the word back as
            // the claim found it (free), so the corruption stays visible
            // to every later loan instead of leaking the block to us.
            let _ = c.states[index as usize].0.compare_exchange(
                state::lent(self.me, gen),
                state::free(gen.wrapping_sub(1)),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return Err(e);
        }
        // SAFETY: `index < states.len()` (`take` checked it), so the block
        // lies inside the class's blocks (checked at open).
        let ptr = unsafe { c.data.add(index as usize * c.block_size) };
        debug_assert!(len <= c.block_size);
        Ok(Loan::new(
            self,
            BlockRef {
                class: class as u32,
                index,
                generation: gen,
            },
            ptr,
            len,
        ))
    }

    /// Claims a block of `class`: from the bitmap's hints, else by a scan
    /// of the state words that takes a free block or (if `dead`) one whose
    /// owner died. Returns the block's index and its new generation.
    pub(super) fn take(&self, class: usize, dead: bool) -> Result<Option<(u32, u32)>, Corrupted> {
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
                if index >= c.states.len() {
                    // A bit past the last block: drop it.
                    bits = word.fetch_and(!bit, Ordering::Relaxed) & !bit;
                    continue;
                }
                // The bit stays set: a hint may be stale, and this one is
                // cleared by whoever next finds the block taken (a block
                // loaned again and again by one side and freed by the
                // other then writes no bitmap word).
                if let Some(gen) = self.claim(c, index, None)? {
                    if w != start {
                        c.hint.store(w as u64, Ordering::Relaxed);
                    }
                    return Ok(Some((index as u32, gen)));
                }
                // A stale hint: drop it. A release that freed the block
                // meanwhile may have seen the bit still set and left it:
                // the claim after the clear reads the state word again
                // (both `SeqCst`, the other half of `mark_free`'s), and
                // takes the block instead of losing it to the scan.
                bits = word.fetch_and(!bit, Ordering::SeqCst) & !bit;
                if let Some(gen) = self.claim(c, index, None)? {
                    return Ok(Some((index as u32, gen)));
                }
            }
        }
        self.scan(class, dead)
    }

    /// Claims block `index` of `c` if its state is free, or owned by a
    /// participant `dead` says is dead: one CAS to `lent(me, gen + 1)`.
    pub(super) fn claim(
        &self,
        c: &Class<'_>,
        index: usize,
        dead: Option<&mut Deaths>,
    ) -> Result<Option<u32>, Corrupted> {
        let s = &c.states[index].0;
        // `SeqCst`: after a stale bitmap bit's clear, this load is the
        // half of the hand-shake with `mark_free` that sees a release.
        let word = s.load(Ordering::SeqCst);
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
    pub(super) fn scan(&self, class: usize, dead: bool) -> Result<Option<(u32, u32)>, Corrupted> {
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
}

/// Liveness answers of one scan, one system call per token at most.
#[derive(Default)]
pub(super) struct Deaths(Vec<(Token, bool)>);

impl Deaths {
    pub(super) fn is_dead(&mut self, at: &AtomicU64, t: Token) -> Result<bool, Corrupted> {
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

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use crate::pool::{HeapPool, PoolConfig};

    fn bitmap(pool: &Pool<'_>) -> u64 {
        pool.classes[0].bitmap[0].0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_loan_leaves_its_bit_and_a_stale_bit_is_cleared_then_set_by_the_release() {
        let heap = HeapPool::new(&PoolConfig::new().class(64, 3)).unwrap();
        let pool = heap.pool();
        assert_eq!(bitmap(&pool), 0b111);
        // Loaned and freed again and again: the bitmap word is not written.
        for _ in 0..3 {
            let loan = pool.try_loan(8).unwrap();
            assert_eq!(loan.block().index, 0);
            assert_eq!(bitmap(&pool), 0b111, "the loan left its bit");
        }
        // While block 0 is lent, the next loan finds its bit stale: it
        // clears it and takes block 1 (whose bit stays).
        let a = pool.try_loan(8).unwrap();
        let b = pool.try_loan(8).unwrap();
        assert_eq!((a.block().index, b.block().index), (0, 1));
        assert_eq!(bitmap(&pool), 0b110);
        // The release of block 0 finds its bit clear and sets it.
        drop(a);
        assert_eq!(bitmap(&pool), 0b111);
        assert_eq!(pool.free_blocks(0), Some(2));
        let c = pool.try_loan(8).unwrap();
        assert_eq!(c.block().index, 0);
        drop((b, c));
        assert_eq!(pool.free_blocks(0), Some(3));
    }
}
