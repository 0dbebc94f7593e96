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
        let block = loan.into_block();
        assert!(pool.share(block));
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
