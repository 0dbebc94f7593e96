//! `#[derive(ShmSafe)]` from a user's crate: derived structs (named, tuple,
//! generic, nested) placed in regions and used through them, and the
//! derived type's layout id checked by a second handle.
#![allow(clippy::disallowed_types)] // std's atomics, as users place them

use shmkit::sync::Mutex;
use shmkit::{CachePadded, Error, LayoutId, Region, RegionOptions, SharedCell, Shm, ShmSafe};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[derive(ShmSafe)]
#[repr(C)]
struct Stats {
    requests: CachePadded<AtomicU64>,
    last_client: SharedCell<[u8; 16]>,
    total: Mutex<u64>,
}

#[derive(ShmSafe)]
#[repr(transparent)]
struct Flag(AtomicU32);

#[derive(ShmSafe)]
#[repr(C)]
struct Table<T, const N: usize> {
    rows: [T; N],
    flag: Flag,
}

#[test]
fn a_derived_struct_lives_in_a_region() {
    let stats = Shm::<Stats>::anonymous(|s| {
        s.last_client.set(*b"nobody yet\0\0\0\0\0\0");
    })
    .unwrap();
    stats.requests.fetch_add(2, Ordering::Relaxed);
    *stats.total.lock().unwrap() += 40;
    assert_eq!(stats.requests.load(Ordering::Relaxed), 2);
    assert_eq!(&stats.last_client.get()[..10], b"nobody yet");
    assert_eq!(*stats.total.lock().unwrap(), 40);

    // A second view of the same object (another handle, as a peer would
    // open it) sees the same values.
    let fd = stats.region().as_fd().try_clone_to_owned().unwrap();
    let opened = RegionOptions::new()
        .layout(LayoutId::of::<Stats>())
        .from_fd(fd)
        .unwrap();
    let peer = Shm::<Stats>::from_region(opened).unwrap();
    assert_eq!(peer.requests.load(Ordering::Relaxed), 2);
    assert_eq!(*peer.total.lock().unwrap(), 40);
}

#[test]
fn generic_and_tuple_structs_are_placed_by_offset() {
    let region = Region::anonymous(4096).unwrap();
    let table = region.place::<Table<AtomicU64, 4>>(0).unwrap();
    assert_eq!(std::mem::size_of::<Table<AtomicU64, 4>>(), 40);
    for (i, row) in table.rows.iter().enumerate() {
        row.store(i as u64 * 10, Ordering::Relaxed);
    }
    table.flag.0.store(1, Ordering::Release);
    // The same type at the same offset is the same object.
    let again = region.place::<Table<AtomicU64, 4>>(0).unwrap();
    assert_eq!(again.rows[3].load(Ordering::Relaxed), 30);
    assert_eq!(again.flag.0.load(Ordering::Acquire), 1);
    // Another type over it is refused.
    assert!(matches!(
        region.place::<Flag>(0),
        Err(Error::PlacementConflict { .. })
    ));
    // New bytes are zero, which is every derived struct's initial value.
    let fresh = region.place::<Table<Flag, 2>>(1024).unwrap();
    assert!(fresh.rows.iter().all(|f| f.0.load(Ordering::Relaxed) == 0));
}
