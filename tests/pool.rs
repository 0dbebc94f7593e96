//! The block pool: classes, exhaustion, release cycles, the memory
//! figure, validation of what another process wrote, and reclaim of the
//! blocks of a process killed while holding them.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, kill, spawn, unique_name, wait_for_line};
use shmkit::pool::{
    BlockRef, HeapPool, LoanError, LoanTimeoutError, Pool, PoolConfig, ReleaseError,
};
use shmkit::testing::pool as wire;
use shmkit::{Error, Region, RegionOptions};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn r(x: usize, k: usize) -> usize {
    x.div_ceil(k) * k
}

/// The memory formula of the module documentation, written out again.
fn formula(classes: &[(usize, usize)]) -> usize {
    1024 + classes
        .iter()
        .map(|&(s, n)| r(16 * n, 128) + r(8 * n.div_ceil(64), 128) + r(n * r(s, 64), 128))
        .sum::<usize>()
}

fn config(classes: &[(usize, usize)]) -> PoolConfig {
    classes
        .iter()
        .fold(PoolConfig::new(), |c, &(s, n)| c.class(s, n))
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "hold" => {
            // Loans `args[1]` blocks as loans and one more as a `BlockRef`,
            // then waits to be killed.
            let region = Region::open(&args[0]).expect("open");
            let pool = Pool::open(&region, 0).expect("open pool");
            let n: usize = args[1].parse().unwrap();
            let loans: Vec<_> = (0..n).map(|_| pool.try_loan(8).expect("loan")).collect();
            let held = pool.try_loan(8).expect("loan").into_block();
            common::report(format!("loaned {} {}", loans.len(), held.index));
            std::thread::sleep(LIMIT);
            drop(loans);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn the_smallest_class_that_fits_is_chosen() {
    let heap = HeapPool::new(&config(&[(10, 2), (100, 2), (1000, 1)])).unwrap();
    let pool = heap.pool();
    assert_eq!(pool.class_count(), 3);
    assert_eq!(
        (0..3)
            .map(|c| pool.block_size(c).unwrap())
            .collect::<Vec<_>>(),
        [64, 128, 1024]
    );
    for (len, class) in [
        (0, 0),
        (1, 0),
        (64, 0),
        (65, 1),
        (128, 1),
        (129, 2),
        (1024, 2),
    ] {
        let loan = pool.try_loan(len).unwrap();
        assert_eq!((loan.class(), loan.len()), (class, len), "len {len}");
    }
    assert_eq!(
        pool.try_loan(1025).unwrap_err(),
        LoanError::TooLarge {
            len: 1025,
            max: 1024
        }
    );
    assert_eq!(pool.block_size(3), None);
}

#[test]
fn an_exhausted_class_says_so_and_a_timed_loan_times_out() {
    let heap = HeapPool::new(&config(&[(64, 2), (256, 1)])).unwrap();
    let pool = heap.pool();
    let a = pool.try_loan(64).unwrap();
    let b = pool.try_loan(64).unwrap();
    assert_ne!(a.index(), b.index());
    assert_eq!(pool.try_loan(1).unwrap_err(), LoanError::Exhausted);
    // Another class is not lent instead.
    let big = pool.try_loan(200).unwrap();
    assert_eq!(pool.try_loan(200).unwrap_err(), LoanError::Exhausted);
    let t = Instant::now();
    assert_eq!(
        pool.loan_timeout(8, Duration::from_millis(30)).unwrap_err(),
        LoanTimeoutError::Timeout
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    drop((a, big));
    assert_eq!(pool.try_loan(1).unwrap().class(), 0);
}

#[test]
fn a_release_wakes_a_timed_loan() {
    let heap = HeapPool::new(&config(&[(64, 1)])).unwrap();
    let pool = heap.pool();
    let only = pool.try_loan(8).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            drop(only);
        });
        let loan = pool.loan_timeout(8, LIMIT).unwrap();
        assert_eq!(loan.index(), 0);
    });
}

#[test]
fn loan_and_release_cycles_return_every_block() {
    let heap = HeapPool::new(&config(&[(64, 130), (4096, 3)])).unwrap();
    let pool = heap.pool();
    for round in 0..3 {
        let mut loans: Vec<_> = (0..130).map(|_| pool.try_loan(64).unwrap()).collect();
        assert_eq!(pool.free_blocks(0), Some(0));
        assert_eq!(pool.try_loan(64).unwrap_err(), LoanError::Exhausted);
        let mut seen: Vec<_> = loans.iter().map(|l| l.index()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 130, "round {round}: a block lent twice");
        for l in &mut loans {
            let i = l.index() as u8;
            l.fill(i);
        }
        assert!(loans
            .iter()
            .all(|l| l.iter().all(|b| *b == l.index() as u8)));
        loans.truncate(65);
        assert_eq!(pool.free_blocks(0), Some(65));
        drop(loans);
        assert_eq!(pool.free_blocks(0), Some(130));
    }
    // Blocks given up as names come back through `release_block`, once.
    let blocks: Vec<BlockRef> = (0..3)
        .map(|_| pool.try_loan(4096).unwrap().into_block())
        .collect();
    assert_eq!(pool.free_blocks(1), Some(0));
    for b in &blocks {
        pool.release_block(*b).unwrap();
    }
    assert_eq!(pool.free_blocks(1), Some(3));
    assert_eq!(pool.release_block(blocks[0]), Err(ReleaseError::NotHeld));
    // A stale name (the block lent again since: a newer generation) frees
    // nothing, and neither does a name forged for a live loan.
    let again = pool.try_loan(4096).unwrap();
    let stale = blocks
        .iter()
        .find(|b| b.index as usize == again.index())
        .unwrap();
    assert_eq!(again.generation(), stale.generation + 1);
    assert_eq!(pool.release_block(*stale), Err(ReleaseError::NotHeld));
    assert_eq!(
        pool.release_block(again.block()),
        Err(ReleaseError::NotHeld)
    );
    assert_eq!(pool.free_blocks(1), Some(2));
    assert_eq!(
        pool.release_block(BlockRef {
            class: 7,
            index: 0,
            generation: 0
        }),
        Err(ReleaseError::NoSuchBlock { class: 7, index: 0 })
    );
    drop(again);
    assert_eq!(pool.free_blocks(1), Some(3));
}

#[test]
fn typed_loans_are_aligned_and_sized() {
    let heap = HeapPool::new(&config(&[(8, 1), (512, 1)])).unwrap();
    let pool = heap.pool();
    let mut v = pool.try_loan_value::<[u64; 32]>().unwrap();
    *v = [7; 32];
    assert_eq!(v.block().class, 1);
    assert_eq!(v.into_loan().len(), 256);
    let w = pool.try_loan_value::<u64>().unwrap();
    assert_eq!(w.block().class, 0);
    assert_eq!(&*w as *const u64 as usize % 64, 0);
}

#[test]
fn no_block_is_lent_twice_under_contention() {
    let heap = HeapPool::new(&config(&[(64, 3)])).unwrap();
    let pool = heap.pool();
    let holders: Vec<AtomicU32> = (0..3).map(|_| AtomicU32::new(0)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20_000 {
                    match pool.try_loan(8) {
                        Ok(loan) => {
                            let h = &holders[loan.index()];
                            assert_eq!(h.fetch_add(1, Ordering::AcqRel), 0, "two owners");
                            h.fetch_sub(1, Ordering::AcqRel);
                        }
                        Err(LoanError::Exhausted) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(pool.free_blocks(0), Some(3));
}

#[test]
fn bytes_for_is_the_formula_and_what_create_lays_out() {
    for classes in [
        &[(1, 1)][..],
        &[(64, 64), (65, 65)],
        &[(100, 1000), (4096, 3), (5000, 1), (1 << 20, 2)],
    ] {
        let cfg = config(classes);
        let bytes = Pool::bytes_for(&cfg).unwrap();
        assert_eq!(bytes, formula(classes), "{classes:?}");
        // Exactly that many bytes at a 128-aligned offset: it fits, and
        // the last block ends at the pool's end (less section padding).
        let region = Region::anonymous(128 + bytes).unwrap();
        let pool = Pool::create(&region, 128, &cfg).unwrap();
        let last = classes.len() - 1;
        let n = pool.block_count(last).unwrap();
        let end = pool.block_offset(last, n - 1).unwrap() + pool.block_size(last).unwrap();
        assert!(end <= 128 + bytes && end + 128 > 128 + bytes, "{classes:?}");
        // SAFETY: a plain read of header words; nothing writes them now.
        let total: u64 = unsafe { region.read(128 + wire::TOTAL_BYTES_OFFSET) }.unwrap();
        assert_eq!(total as usize, bytes);
        // One byte less does not fit.
        let short = Region::anonymous(128 + bytes - 1).unwrap();
        assert!(matches!(
            Pool::create(&short, 128, &cfg),
            Err(Error::OutOfBounds { .. })
        ));
    }
}

#[test]
fn bad_configurations_are_invalid_sizes() {
    for cfg in [
        PoolConfig::new(),
        config(&[(0, 1)]),
        config(&[(64, 0)]),
        config(&[(64, 1), (64, 1)]),
        config(&[(10, 1), (20, 1)]), // both 64 after rounding
        config(&[(128, 1), (64, 1)]),
        config(&[(64, 1), (128, 1), (192, 1), (256, 1), (320, 1)]),
        config(&[(64, (1 << 30) + 1)]),
        config(&[(usize::MAX, 1)]),
    ] {
        assert!(
            matches!(Pool::bytes_for(&cfg), Err(Error::InvalidSize { .. })),
            "{cfg:?}"
        );
    }
    let region = Region::anonymous(4096).unwrap();
    assert!(matches!(
        Pool::create(&region, 64, &config(&[(64, 1)])),
        Err(Error::Misaligned { .. })
    ));
}

/// Creates a pool, overwrites the `u64` header word at `at` with `value`,
/// and opens it again.
fn open_after_scribble(at: usize, value: u64) -> Result<(), Error> {
    let cfg = config(&[(64, 70), (256, 2)]);
    let region = Region::anonymous(Pool::bytes_for(&cfg).unwrap()).unwrap();
    Pool::create(&region, 0, &cfg).unwrap();
    // SAFETY: no thread touches the pool now; the view is gone and its
    // references were to atomics.
    unsafe { region.write::<u64>(at, &value) }.unwrap();
    Pool::open(&region, 0).map(drop)
}

#[test]
fn open_checks_every_header_word() {
    assert!(
        open_after_scribble(wire::HINTS_OFFSET, 12345).is_ok(),
        "hints are hints"
    );
    let class = |c: usize, field: usize| wire::CLASSES_OFFSET + c * wire::CLASS_STRIDE + field;
    for (what, at, value) in [
        ("magic", wire::MAGIC_OFFSET, 0),
        ("version", wire::VERSION_OFFSET, wire::POOL_VERSION - 1),
        ("class count 0", wire::CLASS_COUNT_OFFSET, 0),
        ("class count 1", wire::CLASS_COUNT_OFFSET, 1),
        ("class count 3", wire::CLASS_COUNT_OFFSET, 3),
        ("class count 5", wire::CLASS_COUNT_OFFSET, 5),
        ("total", wire::TOTAL_BYTES_OFFSET, 1 << 40),
        ("size 0", class(0, wire::CLASS_BLOCK_SIZE), 0),
        ("size unaligned", class(0, wire::CLASS_BLOCK_SIZE), 65),
        ("size not increasing", class(1, wire::CLASS_BLOCK_SIZE), 64),
        ("size huge", class(1, wire::CLASS_BLOCK_SIZE), 1 << 62),
        ("count 0", class(0, wire::CLASS_BLOCK_COUNT), 0),
        ("count larger", class(0, wire::CLASS_BLOCK_COUNT), 71),
        ("count huge", class(1, wire::CLASS_BLOCK_COUNT), u64::MAX),
        ("meta", class(0, wire::CLASS_META_OFFSET), 0),
        ("bitmap", class(0, wire::CLASS_BITMAP_OFFSET), 1024),
        ("holders", class(0, wire::CLASS_HOLDERS_OFFSET), 1024),
        ("holders missing", class(1, wire::CLASS_HOLDERS_OFFSET), 0),
        ("data overlapping", class(1, wire::CLASS_DATA_OFFSET), 1024),
        ("data outside", class(1, wire::CLASS_DATA_OFFSET), 1 << 40),
    ] {
        match open_after_scribble(at, value) {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // Zeroed memory is no pool.
    let region = Region::anonymous(4096).unwrap();
    assert!(matches!(
        Pool::open(&region, 0),
        Err(Error::Corrupted { .. })
    ));
    // A pool that claims more bytes than the region has.
    let cfg = config(&[(64, 4)]);
    let bytes = Pool::bytes_for(&cfg).unwrap();
    let region = Region::anonymous(bytes + 128).unwrap();
    Pool::create(&region, 128, &cfg).unwrap();
    let other = Region::anonymous(bytes + 64).unwrap();
    assert!(Pool::open(&other, 0).is_err());
}

#[test]
fn a_scribbled_state_word_is_corrupted() {
    let cfg = config(&[(64, 2)]);
    for bad in [
        wire::MAX_TOKEN as u64 + 1,
        u32::MAX as u64,
        wire::DETACHED | (wire::MAX_TOKEN as u64 + 1), // held by no token
        5 << 32 | 1 << 21,                             // a token with generation 0
    ] {
        let region = Region::anonymous(Pool::bytes_for(&cfg).unwrap()).unwrap();
        let pool = Pool::create(&region, 0, &cfg).unwrap();
        // Block 1's state word, which the loan reaches through the bitmap
        // after block 0 is lent.
        let _first = pool.try_loan(8).unwrap();
        // SAFETY: an atomic word of the pool (only atomics reference it),
        // no other thread runs; this plays a peer.
        unsafe { region.write::<u64>(wire::HEADER_SIZE + 16, &bad) }.unwrap();
        assert!(
            matches!(pool.try_loan(8), Err(LoanError::Corrupted(_))),
            "{bad:#x}"
        );
        assert!(pool.reclaim().is_err(), "{bad:#x}");
        assert_eq!(pool.free_blocks(0), Some(0));
    }
}

#[test]
fn a_block_a_peer_frees_under_a_live_loan_is_not_lent_again() {
    let cfg = config(&[(64, 1)]);
    let region = Region::anonymous(Pool::bytes_for(&cfg).unwrap()).unwrap();
    let pool = Pool::create(&region, 0, &cfg).unwrap();
    let mut first = pool.try_loan(8).unwrap();
    first.copy_from_slice(b"mine....");
    let g = u64::from(first.generation());
    // SAFETY (both reads): header words only atomics reference.
    let meta = unsafe { region.read::<u64>(wire::CLASSES_OFFSET + wire::CLASS_META_OFFSET) }
        .unwrap() as usize;
    let bits = unsafe { region.read::<u64>(wire::CLASSES_OFFSET + wire::CLASS_BITMAP_OFFSET) }
        .unwrap() as usize;
    for bitmap in [0u64, 1] {
        // SAFETY: atomic words of the pool (only atomics reference them),
        // no other thread runs; this plays a peer that marks the lent
        // block free, with its hint bit or without.
        unsafe {
            region.write::<u64>(meta, &(g << 32)).unwrap();
            region.write::<u64>(bits, &bitmap).unwrap();
        }
        assert!(
            matches!(pool.try_loan(8), Err(LoanError::Corrupted(_))),
            "bitmap {bitmap}"
        );
        let timed = pool.loan_timeout(8, std::time::Duration::from_millis(20));
        assert!(
            matches!(timed, Err(LoanTimeoutError::Corrupted(_))),
            "bitmap {bitmap}: {timed:?}"
        );
    }
    assert_eq!(&first[..], b"mine....");
}

/// A second handle on `region`'s memfd: another participant of this
/// process, with a mapping of its own.
fn twin(region: &Region) -> Region {
    let fd = region.as_fd().try_clone_to_owned().unwrap();
    RegionOptions::new().any_layout().from_fd(fd).unwrap()
}

#[test]
fn no_view_of_this_process_lends_a_block_another_lends() {
    let cfg = config(&[(64, 1)]);
    let region = RegionOptions::new()
        .size(Pool::bytes_for(&cfg).unwrap())
        .anonymous_with(|r| Pool::create(r, 0, &cfg).map(drop))
        .unwrap();
    let other = twin(&region);
    let pool = Pool::open(&region, 0).unwrap();
    let mut first = pool.try_loan(8).unwrap();
    first.copy_from_slice(b"mine....");
    let g = u64::from(first.generation());
    // A peer marks the lent block free (hint bit included), or lent to a
    // participant that is dead (slot 1000 of the table is nobody's).
    let dead = (1000u64 << 21) | 1;
    for word in [g << 32, g << 32 | dead] {
        // SAFETY: atomic words of the pool (only atomics reference them),
        // no other thread runs; this plays a peer.
        unsafe {
            region.write::<u64>(wire::HEADER_SIZE, &word).unwrap();
            region.write::<u64>(wire::HEADER_SIZE + 128, &1).unwrap();
        }
        // A second view of the same handle (the same mapping: a second
        // loan would alias the first one's bytes), and a view of another
        // handle of this process.
        let again = Pool::open(&region, 0).unwrap();
        let got = again.try_loan(8);
        assert!(
            matches!(got, Err(LoanError::Corrupted(_))),
            "{word:#x}: {got:?}"
        );
        drop(got);
        // SAFETY: as above.
        unsafe { region.write::<u64>(wire::HEADER_SIZE, &word).unwrap() };
        let elsewhere = Pool::open(&other, 0).unwrap();
        let got = elsewhere.try_loan(8);
        assert!(
            matches!(got, Err(LoanError::Corrupted(_))),
            "{word:#x}: {got:?}"
        );
    }
    assert_eq!(&first[..], b"mine....");
    drop(first);
    // Once the loan is gone, the block is lent again.
    // SAFETY: as above: the word put right.
    unsafe { region.write::<u64>(wire::HEADER_SIZE, &(g << 32)).unwrap() };
    drop(Pool::open(&other, 0).unwrap().try_loan(8).unwrap());
}

#[test]
fn a_forgotten_loan_of_a_dropped_handle_is_taken_over() {
    let cfg = config(&[(64, 1)]);
    let region = RegionOptions::new()
        .size(Pool::bytes_for(&cfg).unwrap())
        .anonymous_with(|r| Pool::create(r, 0, &cfg).map(drop))
        .unwrap();
    let pool = Pool::open(&region, 0).unwrap();
    let other = twin(&region);
    let view = Pool::open(&other, 0).unwrap();
    std::mem::forget(view.try_loan(8).unwrap());
    assert_eq!(pool.try_loan(8).unwrap_err(), LoanError::Exhausted);
    drop(view);
    drop(other);
    // Its participant is dead: the loan takes the block over.
    let loan = pool.try_loan(8).unwrap();
    assert_eq!(loan.generation(), 2);
}

#[test]
fn a_view_of_another_layout_is_refused_while_this_process_has_one() {
    // One class of two 64-byte blocks is laid out exactly as one of one
    // 128-byte block: a peer can rewrite the header from one to the other.
    let cfg = config(&[(64, 2)]);
    let bytes = Pool::bytes_for(&cfg).unwrap();
    assert_eq!(bytes, Pool::bytes_for(&config(&[(128, 1)])).unwrap());
    let region = RegionOptions::new()
        .size(bytes)
        .anonymous_with(|r| Pool::create(r, 0, &cfg).map(drop))
        .unwrap();
    let pool = Pool::open(&region, 0).unwrap();
    let _first = pool.try_loan(8).unwrap();
    let mut second = pool.try_loan(64).unwrap();
    assert_eq!(second.index(), 1);
    second.fill(7);
    drop(_first);
    let class = wire::CLASSES_OFFSET;
    // SAFETY: header words only atomics reference; plays a peer.
    unsafe {
        region
            .write::<u64>(class + wire::CLASS_BLOCK_SIZE, &128)
            .unwrap();
        region
            .write::<u64>(class + wire::CLASS_BLOCK_COUNT, &1)
            .unwrap();
    }
    for r in [&region, &twin(&region)] {
        match Pool::open(r, 0) {
            Err(Error::Corrupted { .. }) => {}
            Ok(other) => {
                // Its block 0 would be the bytes of both blocks.
                let got = other.try_loan(128);
                panic!("a view of another layout: {got:?}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(second.iter().all(|&b| b == 7));
}

#[test]
fn a_lost_hint_is_found_by_the_scan() {
    let cfg = config(&[(64, 3)]);
    let region = Region::anonymous(Pool::bytes_for(&cfg).unwrap()).unwrap();
    let pool = Pool::create(&region, 0, &cfg).unwrap();
    let bitmap = wire::HEADER_SIZE + 128;
    // SAFETY: as above: a peer clearing every hint, and setting bits past
    // the last block.
    unsafe { region.write::<u64>(bitmap, &(u64::MAX << 3)) }.unwrap();
    let loans: Vec<_> = (0..3).map(|_| pool.try_loan(8).unwrap()).collect();
    assert_eq!(pool.try_loan(8).unwrap_err(), LoanError::Exhausted);
    drop(loans);
    assert_eq!(pool.free_blocks(0), Some(3));
}

/// Creates a named region holding a pool of one class, and a child that
/// loans `lent` blocks and one more as a `BlockRef`.
fn pool_with_holder(tag: &str, blocks: usize, lent: usize) -> (Region, std::process::Child) {
    let name = unique_name(tag);
    let cfg = config(&[(64, blocks)]);
    let region = Region::create(&name, Pool::bytes_for(&cfg).unwrap()).unwrap();
    Pool::create(&region, 0, &cfg).unwrap();
    let mut child = spawn("hold", &[&name, &lent.to_string()]);
    let line = wait_for_line(&mut child);
    assert!(line.starts_with(&format!("loaned {lent} ")), "{line}");
    (region, child)
}

#[test]
fn a_killed_holders_blocks_are_reclaimed() {
    let (region, child) = pool_with_holder("pool-reclaim", 5, 2);
    let pool = Pool::open(&region, 0).unwrap();
    let mine = pool.try_loan(8).unwrap();
    assert_eq!(pool.free_blocks(0), Some(1));
    assert_eq!(pool.reclaim().unwrap(), 0, "the holder is alive");
    kill(child);
    assert_eq!(pool.reclaim().unwrap(), 3, "two loans and one held block");
    assert_eq!(pool.reclaim().unwrap(), 0);
    assert_eq!(pool.free_blocks(0), Some(4));
    let all: Vec<_> = (0..4).map(|_| pool.try_loan(8).unwrap()).collect();
    assert_eq!(pool.try_loan(8).unwrap_err(), LoanError::Exhausted);
    drop((all, mine));
    assert_eq!(pool.free_blocks(0), Some(5));
}

#[test]
fn a_loan_takes_over_a_killed_holders_block() {
    let (region, child) = pool_with_holder("pool-takeover", 2, 1);
    let pool = Pool::open(&region, 0).unwrap();
    assert_eq!(pool.try_loan(8).unwrap_err(), LoanError::Exhausted);
    kill(child);
    // No reclaim: the exhausted loan's scan takes the dead owner's blocks.
    let a = pool.try_loan(8).unwrap();
    let b = pool.try_loan(8).unwrap();
    assert_ne!(a.index(), b.index());
    assert_eq!(a.generation(), 2, "a takeover is a new loan");
}

#[test]
fn a_timed_loan_ends_soon_after_the_holder_is_killed() {
    let (region, child) = pool_with_holder("pool-wait", 2, 1);
    let pool = Pool::open(&region, 0).unwrap();
    let killed = std::thread::scope(|s| {
        let killer = s.spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let at = Instant::now();
            kill(child);
            at
        });
        let loan = pool.loan_timeout(8, Duration::from_secs(10)).unwrap();
        let got = Instant::now();
        let killed = killer.join().unwrap();
        drop(loan);
        got.saturating_duration_since(killed)
    });
    assert!(
        killed < Duration::from_secs(2),
        "took {killed:?} after the kill"
    );
}
