//! Publish/subscribe history: what a late joiner receives, how many
//! blocks the history keeps, and how a dead holder of the history lock
//! or a scribbled slot is repaired.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, kill, spawn, unique_name, wait_for_line};
use shmkit::pool::PoolConfig;
use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber, TryRecvError};
use shmkit::sync::Mutex;
use shmkit::testing::pubsub as wire;
use shmkit::{Error, Region, RegionOptions};
use std::os::fd::AsFd;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
const BLOCKS: usize = 24;

fn config(history: usize) -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(64, BLOCKS))
        .subscribers(4)
        .queue_capacity(4)
        .held_limit(4)
        .history(history)
}

/// Another handle on the region: a peer that may scribble.
fn peer(name: &str) -> Region {
    RegionOptions::new().any_layout().open(name).unwrap()
}

/// Receives every sample queued now: (seq, payload as u64).
fn drain(sub: &Subscriber) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    loop {
        match sub.try_recv() {
            Ok(s) => got.push((s.seq(), s.value::<u64>().expect("8 bytes"))),
            Err(TryRecvError::Empty) => return got,
            Err(e) => panic!("receive: {e}"),
        }
    }
}

fn send_range(p: &Publisher, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(p.send_copy(&(i * 10).to_le_bytes()).unwrap(), i);
    }
}

fn seqs(from: u64, to: u64) -> Vec<(u64, u64)> {
    (from..to).map(|i| (i, i * 10)).collect()
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "join" => {
            // Joins late and reports the sequence numbers it receives.
            let sub = Subscriber::open(&args[0]).expect("subscribe");
            let n: usize = args[1].parse().unwrap();
            for _ in 0..n {
                let s = sub.recv_timeout(WAIT).expect("recv");
                assert_eq!(s.value::<u64>(), Some(s.seq() * 10), "contents");
                common::report(s.seq());
            }
        }
        "lock" => {
            // Takes the history lock as a peer would, then waits to die.
            let region = peer(&args[0]);
            let lock = region
                .place::<Mutex<u32>>(wire::HISTORY_LOCK_OFFSET)
                .expect("place");
            let guard = lock.lock().expect("lock");
            common::report("locked");
            std::thread::sleep(LIMIT);
            drop(guard);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_late_joiner_gets_the_newest_samples_then_the_stream() {
    let name = unique_name("hist-late");
    let p = Publisher::create(&name, &config(3).queue_capacity(8)).unwrap();
    let early = Subscriber::open(&name).unwrap();
    send_range(&p, 0..5);
    let late = Subscriber::open(&name).unwrap();
    assert_eq!(late.join_seq(), 5);
    send_range(&p, 5..7);
    assert_eq!(drain(&late), seqs(2, 7), "three kept, then the stream");
    // Present from the start: each sample once, the history adds none.
    let got: Vec<_> = (0..7)
        .map(|_| {
            let s = early.recv_timeout(WAIT).unwrap();
            (s.seq(), s.value::<u64>().unwrap())
        })
        .collect();
    assert_eq!(got, seqs(0, 7));
    assert!(matches!(early.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn fewer_samples_than_the_history_are_all_delivered_and_no_history_none() {
    let name = unique_name("hist-few");
    let p = Publisher::create(&name, &config(4)).unwrap();
    send_range(&p, 0..2);
    assert_eq!(drain(&Subscriber::open(&name).unwrap()), seqs(0, 2));
    let name = unique_name("hist-none");
    let p = Publisher::create(&name, &config(0)).unwrap();
    send_range(&p, 0..2);
    assert!(drain(&Subscriber::open(&name).unwrap()).is_empty());
    assert_eq!(p.free_blocks(0), Some(BLOCKS), "nothing kept");
}

/// A handle of its own on `region` (an anonymous service outlives any
/// one handle).
fn twin(region: &Region) -> Region {
    let fd = region.as_fd().try_clone_to_owned().unwrap();
    RegionOptions::new()
        .layout(region.layout())
        .from_fd(fd)
        .unwrap()
}

#[test]
fn the_history_keeps_n_blocks_and_outlives_its_publisher() {
    let p = Publisher::anonymous(&config(2)).unwrap();
    send_range(&p, 0..10);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 2), "the newest two kept");
    let region = twin(p.region());
    drop(p);
    let sub = Subscriber::from_region(twin(&region)).unwrap();
    assert!(sub.publisher_gone());
    let kept = (
        sub.recv_timeout(WAIT).unwrap(),
        sub.recv_timeout(WAIT).unwrap(),
    );
    assert_eq!((kept.0.seq(), kept.1.seq()), (8, 9));
    assert_eq!(kept.1.value::<u64>(), Some(90));
    // A new publisher continues the numbering and pushes the old ones
    // out; the samples still held stay readable until dropped.
    let p = Publisher::from_region(region).unwrap();
    send_range(&p, 10..12);
    assert_eq!(kept.0.value::<u64>(), Some(80));
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 4), "two held, two kept");
    drop(kept);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 2), "queued, and kept");
    assert_eq!(drain(&sub), seqs(10, 12));
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 2));
}

#[test]
fn a_joiner_that_leaves_without_receiving_gives_its_holds_back() {
    let name = unique_name("hist-leave");
    let p = Publisher::create(&name, &config(3)).unwrap();
    send_range(&p, 0..3);
    for _ in 0..3 {
        let sub = Subscriber::open(&name).unwrap();
        let first = sub.try_recv().unwrap();
        assert_eq!(first.seq(), 0);
    }
    // Three more push the history's samples out: with no other hold on
    // them, their blocks come back.
    send_range(&p, 3..6);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 3));
    let sub = Subscriber::open(&name).unwrap();
    assert_eq!(drain(&sub), seqs(3, 6));
}

#[test]
fn a_late_joiner_in_another_process_gets_the_history() {
    let name = unique_name("hist-child");
    let p = Publisher::create(&name, &config(3)).unwrap();
    send_range(&p, 0..4);
    let child = spawn("join", &[&name, "5"]);
    common::wait_until(WAIT, "the child to join", || p.subscribers() == 1);
    send_range(&p, 4..6);
    let got: Vec<u64> = finish(child, LIMIT)
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
}

#[test]
fn open_or_create_with_another_history_is_a_mismatch() {
    let name = unique_name("hist-mismatch");
    let _p = Publisher::create(&name, &config(2)).unwrap();
    assert!(matches!(
        Subscriber::open_or_create(&name, &config(3)),
        Err(Error::InvalidSize { .. })
    ));
}

#[test]
fn a_dead_holder_of_the_history_lock_is_taken_over_and_repaired() {
    let name = unique_name("hist-dead-lock");
    let p = Publisher::create(&name, &config(2)).unwrap();
    send_range(&p, 0..2);
    // As if a send had died between sharing a block and filing it: slot
    // 1 (seq 1) emptied, its block still carrying the history's bit.
    let region = peer(&name);
    let filled = region
        .place::<std::sync::atomic::AtomicU64>(wire::history_slot_offset(1) + 24)
        .unwrap();
    filled.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut child = spawn("lock", &[&name]);
    assert_eq!(wait_for_line(&mut child), "locked");
    kill(child);
    // The next locker (this send) takes the lock over and repairs: the
    // orphaned block is released; seq 2 then pushes seq 0 out of slot 0.
    send_range(&p, 2..3);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 1));
    assert_eq!(drain(&Subscriber::open(&name).unwrap()), vec![(2, 20)]);
}

#[test]
fn a_scribbled_slot_is_healed_by_the_next_send() {
    let name = unique_name("hist-scribble");
    let p = Publisher::create(&name, &config(2)).unwrap();
    send_range(&p, 0..2);
    let region = peer(&name);
    let words = |i: usize, w: usize| {
        region
            .place::<std::sync::atomic::AtomicU64>(wire::history_slot_offset(i) + 8 * w)
            .unwrap()
    };
    // Slot 0: a filled word no peer writes. Slot 1: a block out of range.
    words(0, 3).store(7, std::sync::atomic::Ordering::SeqCst);
    words(1, 0).store(u64::MAX, std::sync::atomic::Ordering::SeqCst);
    // A joiner takes nothing it cannot check.
    assert!(drain(&Subscriber::open(&name).unwrap()).is_empty());
    // Seq 2 goes to slot 0: it heals the history, and releases both
    // blocks whose slots no longer name them.
    send_range(&p, 2..3);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 1));
    assert_eq!(drain(&Subscriber::open(&name).unwrap()), vec![(2, 20)]);
    send_range(&p, 3..4);
    assert_eq!(p.free_blocks(0), Some(BLOCKS - 2));
}
