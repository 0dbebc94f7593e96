//! A region handle keeps each placed byte to one type: what it refuses
//! (another type over a lock or a ring, a ring laid out twice), what it
//! allows (the same type again, a failed probe's bytes), and that another
//! handle of the same object keeps its own record.
#![allow(clippy::disallowed_types)]

use shmkit::ring::bytes::ByteRing;
use shmkit::ring::mpmc::MpmcRing;
use shmkit::ring::spsc::SpscRing;
use shmkit::sync::Mutex;
use shmkit::{Error, Region, RegionOptions, SharedCell};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

fn conflict<T: std::fmt::Debug>(r: Result<T, Error>, at: usize) {
    match r {
        Err(Error::PlacementConflict { placed_offset, .. }) => assert_eq!(placed_offset, at),
        other => panic!("expected a conflict with the placement at {at}, got {other:?}"),
    }
}

#[test]
fn nothing_else_is_placed_over_a_lock() {
    let region = Region::anonymous(4096).unwrap();
    let lock = region.place::<Mutex<u64>>(0).unwrap();
    let mut guard = lock.lock().unwrap();
    // Its data (at 8) and its lock word (at 0), as anything else.
    conflict(region.place::<SharedCell<u64>>(8), 0);
    conflict(region.place::<AtomicU64>(8), 0);
    conflict(region.place::<AtomicU32>(0), 0);
    conflict(region.place_slice::<Mutex<u64>>(8, 1), 0);
    conflict(SpscRing::<u64>::create(&region, 0, 4), 0);
    *guard += 1;
    drop(guard);
    // The same lock again, and a run of locks that starts with it.
    assert!(std::ptr::eq(lock, region.place::<Mutex<u64>>(0).unwrap()));
    let locks = region.place_slice::<Mutex<u64>>(0, 2).unwrap();
    assert_eq!(*locks[0].lock().unwrap(), 1);
    // Past the locks, anything.
    region.place::<SharedCell<u64>>(32).unwrap().set(5);
}

#[test]
fn a_ring_is_laid_out_once_and_opened_any_number_of_times() {
    let size = 4096;
    let region = Region::anonymous(size).unwrap();
    // A probe that finds no ring gives its bytes back.
    assert!(matches!(
        SpscRing::<u64>::open(&region, 0),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::open(&region, 0),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(
        ByteRing::open(&region, 0),
        Err(Error::Corrupted { .. })
    ));
    let spsc = SpscRing::<u64>::create(&region, 0, 8).unwrap();
    conflict(SpscRing::<u64>::create(&region, 0, 8), 0);
    assert_eq!(SpscRing::<u64>::open(&region, 0).unwrap().capacity(), 8);
    // Another element type, another ring kind, half over it: refused.
    conflict(MpmcRing::<u64>::create(&region, 128, 8), 0);
    conflict(ByteRing::create(&region, 384, 256, 64), 384);
    // Its slots (8 u64 from 384) as plain atomics: refused here...
    conflict(region.place::<AtomicU64>(384), 384);
    // ...but another handle of the object is a peer with its own record.
    let peer = RegionOptions::new()
        .from_fd(region.as_fd().try_clone_to_owned().unwrap())
        .unwrap();
    let tail = peer.place::<AtomicU64>(256).unwrap();
    assert_eq!(spsc.len(), 0);
    tail.store(1, Ordering::Release);
    assert_eq!(spsc.len(), 1);
    // Side by side is fine.
    let bytes = ByteRing::create(&region, 512, 1024, 64).unwrap();
    assert_eq!(ByteRing::open(&region, 512).unwrap().capacity(), 1024);
    conflict(region.place::<AtomicU64>(512 + 384), 512 + 384);
    MpmcRing::<u64>::create(&region, 2048, 4).unwrap();
    assert_eq!(bytes.capacity(), 1024);
}
