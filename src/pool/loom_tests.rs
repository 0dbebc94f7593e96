//! Loom models of the pool's state-word protocol, on a heap pool of one
//! class of one or two blocks. Each loom thread is its own participant
//! (it makes its own view); a model declares one dead.
//!
//! - Two threads loan and release: a per-block holder count (a model
//!   variable) proves no block is ever held by two at once.
//! - A "dead" owner's release races a reclaim: the block is freed exactly
//!   once, whichever wins, and a loan then finds it.
//! - A shared block's holders release their bits while a reclaimer sweeps
//!   a departed holder's bit: freed exactly once (fails if a release is a
//!   load and a store instead of one `fetch_and`).
//! - Fan-out: three holders of a shared block release their own bits at
//!   once; exactly one frees it, and it is loanable again.
//! - Two threads loan and release twice each (one variant beside a dead
//!   owner's block and a reclaim): never two owners, each loan of a block
//!   under a newer generation than the last, a stale name never releases,
//!   and at the end every block is free and loanable (none lost).
//! - A live holder releases a shared block while one reclaimer sweeps a
//!   dead holder's bit and another the empty masks: freed exactly once,
//!   never while the live holder's bit is set.
use super::*;
use crate::primitive::AtomicU32;
use crate::sync::model;
use std::sync::Arc;

fn config(blocks: usize) -> PoolConfig {
    PoolConfig::new().class(64, blocks)
}

/// Loans one block if it can, checks it is alone in it, releases it.
fn loan_once(pool: &Pool<'_>, holders: &[AtomicU32]) -> bool {
    match pool.try_loan(8) {
        Ok(loan) => {
            let h = &holders[loan.index()];
            assert_eq!(h.fetch_add(1, Ordering::AcqRel), 0, "two owners at once");
            h.fetch_sub(1, Ordering::AcqRel);
            true
        }
        Err(LoanError::Exhausted) => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn loom_pool_no_block_has_two_owners() {
    for blocks in [1, 2] {
        loom::model(move || {
            let heap = Arc::new(HeapPool::new(&config(blocks)).unwrap());
            let holders: Arc<Vec<AtomicU32>> =
                Arc::new((0..blocks).map(|_| AtomicU32::new(0)).collect());
            let t = {
                let (heap, holders) = (heap.clone(), holders.clone());
                loom::thread::spawn(move || {
                    let pool = heap.pool();
                    loan_once(&pool, &holders);
                })
            };
            let pool = heap.pool();
            loan_once(&pool, &holders);
            t.join().unwrap();
            assert_eq!(pool.free_blocks(0), Some(blocks));
        });
    }
}

#[test]
fn loom_pool_reclaim_racing_release_frees_once() {
    loom::model(|| {
        let heap = Arc::new(HeapPool::new(&config(1)).unwrap());
        // The owner loans the block as a `BlockRef`, hands it out, is then
        // declared dead (as a kill would be noticed late) and still
        // releases it, racing the other thread's reclaim.
        let (tx, rx) = loom::sync::mpsc::channel();
        let owner = {
            let heap = heap.clone();
            loom::thread::spawn(move || {
                let pool = heap.pool();
                let block = pool.try_loan(8).unwrap().into_block();
                model::die();
                tx.send(()).unwrap();
                pool.release_block(block).is_ok()
            })
        };
        rx.recv().unwrap();
        let pool = heap.pool();
        let reclaimed = pool.reclaim().unwrap();
        let released = owner.join().unwrap();
        assert_eq!(reclaimed + released as usize, 1, "freed exactly once");
        assert_eq!(pool.free_blocks(0), Some(1));
        // The bitmap (or the scan) finds it.
        assert!(pool.try_loan(8).is_ok());
    });
}

/// A shared block's last holders release it while a reclaimer sweeps the
/// bit of a departed one and the empty masks: freed exactly once.
#[test]
fn loom_pool_shared_block_is_freed_once_by_its_last_holder() {
    use super::shared::PUBLISHER_BIT;
    loom::model(|| {
        let heap = Arc::new(HeapPool::new(&config(1)).unwrap());
        let pool = heap.pool();
        let loan = pool.try_loan(8).unwrap();
        pool.holders(loan.block())
            .unwrap()
            .store(PUBLISHER_BIT | 0b11, Ordering::Relaxed);
        let block = loan.share().unwrap();
        let subscriber = {
            let heap = heap.clone();
            loom::thread::spawn(move || usize::from(heap.pool().release_shared(block, 0b01)))
        };
        let publisher = {
            let heap = heap.clone();
            loom::thread::spawn(move || {
                usize::from(heap.pool().release_shared(block, PUBLISHER_BIT))
            })
        };
        // Subscriber 1 is gone: a reclaimer clears its bit everywhere (and
        // frees what nobody holds), racing the others' releases.
        let swept = pool.sweep_shared(0b10).unwrap() + pool.sweep_shared(0).unwrap();
        let freed = swept + subscriber.join().unwrap() + publisher.join().unwrap();
        assert_eq!(freed, 1, "freed exactly once");
        assert_eq!(pool.free_blocks(0), Some(1));
        assert!(pool.try_loan(8).is_ok());
    });
}

/// Loans a block, sets its holders word to `mask` and shares it.
fn shared_block(pool: &Pool<'_>, mask: u64) -> BlockRef {
    let loan = pool.try_loan(8).unwrap();
    pool.holders(loan.block())
        .unwrap()
        .store(mask, Ordering::Relaxed);
    loan.share().unwrap()
}

/// Three holders release their own bits of one shared block at once:
/// exactly one of them frees it, and it is free and loanable afterwards.
///
/// Catches a `release_shared` that clears its bit with a load and a store
/// instead of one `fetch_and`: two clears race, one is lost, the mask
/// never empties and nobody frees the block. (Two holders that both think
/// they emptied the mask are not caught here, nor need be: the free is a
/// CAS from `shared(g)`, which only one of them wins.) The generation
/// check catches a free of a shared block that does not keep its
/// generation.
#[test]
fn loom_pool_fan_out_release_frees_once() {
    use super::shared::PUBLISHER_BIT;
    loom::model(|| {
        let heap = Arc::new(HeapPool::new(&config(2)).unwrap());
        let pool = heap.pool();
        let block = shared_block(&pool, PUBLISHER_BIT | 0b11);
        let holders: Vec<_> = [PUBLISHER_BIT, 0b01, 0b10]
            .into_iter()
            .map(|bit| {
                let heap = heap.clone();
                loom::thread::spawn(move || usize::from(heap.pool().release_shared(block, bit)))
            })
            .collect();
        let freed: usize = holders.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(freed, 1, "exactly one holder frees the block");
        assert_eq!(pool.holders(block).unwrap().load(Ordering::Relaxed), 0);
        assert_eq!(pool.free_blocks(0), Some(2));
        // Both blocks loan; the shared one under its next generation.
        let loans = [pool.try_loan(8).unwrap(), pool.try_loan(8).unwrap()];
        let again = loans
            .iter()
            .find(|l| l.index() == block.index as usize)
            .expect("the freed block is loanable");
        assert_eq!(again.generation(), block.generation + 1);
    });
}

/// Per-block model variables: how many hold the block now, and the
/// generation of its latest loan.
struct Books {
    holders: Vec<AtomicU32>,
    generations: Vec<AtomicU32>,
}

impl Books {
    fn new(blocks: usize) -> Self {
        let zeros = || (0..blocks).map(|_| AtomicU32::new(0)).collect();
        Self {
            holders: zeros(),
            generations: zeros(),
        }
    }

    /// `b` was just loaned: nobody else holds it, and its generation is
    /// newer than the last loan's of the block.
    fn enter(&self, b: BlockRef) {
        let i = b.index as usize;
        assert_eq!(
            self.holders[i].fetch_add(1, Ordering::AcqRel),
            0,
            "two owners at once"
        );
        let last = self.generations[i].swap(b.generation, Ordering::AcqRel);
        assert!(
            b.generation > last,
            "block {i} loaned under generation {} after {last}",
            b.generation
        );
    }

    /// `b` is about to be released (or its owner dies).
    fn leave(&self, b: BlockRef) {
        self.holders[b.index as usize].fetch_sub(1, Ordering::AcqRel);
    }
}

/// Loans a block if it can (`None`: exhausted), checks it against
/// `books` and releases it: dropping the loan, or, with `stale`, holding
/// it as a `BlockRef`, checking that a release of the earlier name `stale`
/// fails, and releasing the held block. Returns the loan's name.
fn checked_cycle(pool: &Pool<'_>, books: &Books, stale: Option<BlockRef>) -> Option<BlockRef> {
    let loan = match pool.try_loan(8) {
        Ok(loan) => loan,
        Err(LoanError::Exhausted) => return None,
        Err(e) => panic!("{e}"),
    };
    let b = loan.block();
    books.enter(b);
    match stale {
        None => {
            books.leave(b);
            drop(loan);
        }
        Some(old) => {
            let held = loan.into_block();
            assert!(
                pool.release_block(old).is_err(),
                "a stale name released a block"
            );
            books.leave(b);
            pool.release_block(held).unwrap();
        }
    }
    Some(b)
}

/// Two cycles: a loan dropped, then a loan held as a `BlockRef`, which
/// the first loan's (now stale) name must not release; with
/// `reclaim_before` `Some(k)`, a reclaim before cycle `k`. Returns how
/// many blocks the reclaim freed.
fn two_cycles(pool: &Pool<'_>, books: &Books, reclaim_before: Option<usize>) -> usize {
    let reclaim = |k| match reclaim_before {
        Some(at) if at == k => pool.reclaim().unwrap(),
        _ => 0,
    };
    let mut reclaimed = reclaim(0);
    let first = checked_cycle(pool, books, None);
    reclaimed += reclaim(1);
    checked_cycle(pool, books, first);
    reclaimed
}

/// Two threads each loan and release a block twice, on a pool of one and
/// of two blocks; in a second variant one block starts lent to a dead
/// owner (a loan's scan may take it over) and one thread runs a reclaim
/// where it races the other's takeover: before its first cycle with one
/// block (the other thread's first loan scans for it), between its
/// cycles with two (the other thread scans while this one holds the
/// free block). Never two owners at once; every loan of a block
/// has a newer generation than the one before it (so a claim that read
/// `free(g)` before a loan and release of the block cannot succeed on the
/// block's later `free`: the word is `free(g + 1)` then, not the same
/// value again); a stale `BlockRef` never releases the block's next loan;
/// at the end every block is free and a loan of each succeeds, so no
/// interleaving of a loan's bitmap clear with a release's bitmap set loses
/// a block, and none is freed twice.
///
/// Catches a claim, takeover or reclaim that is a load and a store
/// instead of one CAS (two owners, or a live loan freed under its owner:
/// a generation then repeats), a takeover of a live owner's block,
/// a free that does not keep the generation or a claim that does not bump
/// it (a generation repeats, and a stale name frees the next loan), and a
/// loan that gives up when the bitmap shows nothing while a block is free
/// (a release's bit cleared as stale by a racing loan loses the block).
#[test]
fn loom_pool_no_aba_loss_on_the_free_set() {
    for (blocks, reclaim_before) in [(1, None), (2, None), (1, Some(0)), (2, Some(1))] {
        let dead_owner = reclaim_before.is_some();
        loom::model(move || {
            let heap = Arc::new(HeapPool::new(&config(blocks)).unwrap());
            let books = Arc::new(Books::new(blocks));
            if dead_owner {
                // Loans a block and dies with the loan live, as a killed
                // process would.
                let (heap, books) = (heap.clone(), books.clone());
                loom::thread::spawn(move || {
                    let pool = heap.pool();
                    let loan = pool.try_loan(8).unwrap();
                    books.enter(loan.block());
                    books.leave(loan.block());
                    core::mem::forget(loan);
                    model::die();
                })
                .join()
                .unwrap();
            }
            let t = {
                let (heap, books) = (heap.clone(), books.clone());
                loom::thread::spawn(move || two_cycles(&heap.pool(), &books, None))
            };
            let pool = heap.pool();
            let reclaimed = two_cycles(&pool, &books, reclaim_before) + t.join().unwrap();
            assert!(reclaimed <= usize::from(dead_owner));
            assert_eq!(pool.free_blocks(0), Some(blocks), "a block was lost");
            let loans: Vec<_> = (0..blocks)
                .map(|_| pool.try_loan(8).expect("every block loans"))
                .collect();
            for loan in &loans {
                books.enter(loan.block());
            }
        });
    }
}

/// A shared block held by a live holder and a dead one: the live holder
/// releases its bit while one reclaimer sweeps the dead holder's bit and
/// another the empty masks. Freed exactly once, and never while the live
/// holder's bit is still set.
///
/// Catches a release or a sweep that clears bits with a load and a store
/// (a clear is lost, nobody frees the block), a sweep of the empty masks
/// that frees a shared block without checking its mask is empty (freed
/// under the live holder, which finds it no longer shared), and a sweep
/// that clears the dead holder's bit but decides whether it was the last
/// from the mask it read before instead of what its own `fetch_and`
/// returned (the live holder's release in between goes unseen, and
/// nobody frees the block).
#[test]
fn loom_pool_sweeps_racing_a_live_release_free_once() {
    const LIVE: u64 = 0b01;
    const DEAD: u64 = 0b10;
    loom::model(|| {
        let heap = Arc::new(HeapPool::new(&config(1)).unwrap());
        let pool = heap.pool();
        let block = shared_block(&pool, LIVE | DEAD);
        let live = {
            let heap = heap.clone();
            loom::thread::spawn(move || {
                let pool = heap.pool();
                // Its bit is set: nobody may have freed the block (nor
                // loaned it again).
                assert!(
                    pool.is_shared(block).unwrap(),
                    "freed while a live holder's bit is set"
                );
                usize::from(pool.release_shared(block, LIVE))
            })
        };
        let reclaimer = {
            let heap = heap.clone();
            loom::thread::spawn(move || heap.pool().sweep_shared(DEAD).unwrap())
        };
        let swept = pool.sweep_shared(0).unwrap();
        let freed = swept + reclaimer.join().unwrap() + live.join().unwrap();
        assert_eq!(freed, 1, "freed exactly once");
        assert_eq!(pool.holders(block).unwrap().load(Ordering::Relaxed), 0);
        assert_eq!(pool.free_blocks(0), Some(1));
        assert_eq!(pool.try_loan(8).unwrap().generation(), block.generation + 1);
    });
}
