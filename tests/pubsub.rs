//! Publish/subscribe: fan-out to every present subscriber, late joiners,
//! leavers, the held limit, scribbled shared words, and what killed
//! subscribers and publishers leave behind.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, kill, spawn, unique_name, wait_for_line};
use shmkit::pool::{LoanError, LoanTimeoutError, PoolConfig};
use shmkit::pubsub::{
    Descriptor, Publisher, RecvError, RecvTimeoutError, SendCopyError, ServiceConfig,
    SlowSubscriber, Subscriber, TryRecvError, TrySendError,
};
use shmkit::ring::mpmc::MpmcRing;
use shmkit::testing::mpmc;
use shmkit::testing::pool as pool_wire;
use shmkit::testing::pubsub as wire;
use shmkit::{Error, Region, RegionOptions};
use std::os::fd::AsFd;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn config(blocks: usize, queue: usize, held: usize) -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(64, blocks))
        .subscribers(4)
        .queue_capacity(queue)
        .held_limit(held)
}

/// The payload of message `i`: its number and a check word.
fn payload(i: u64) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5).to_le_bytes());
    b
}

/// Another handle on the region: a peer that may scribble.
fn peer(name: &str) -> Region {
    RegionOptions::new().any_layout().open(name).unwrap()
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "hold" => {
            // Subscribes, receives and holds `args[1]` samples, then waits
            // to be killed (what the publisher sends next stays queued).
            let sub = Subscriber::open(&args[0]).expect("subscribe");
            common::report(format!("joined {}", sub.entry()));
            let n: usize = args[1].parse().unwrap();
            let held: Vec<_> = (0..n)
                .map(|_| sub.recv_timeout(WAIT).expect("recv"))
                .collect();
            common::report(format!("held {}", held.len()));
            std::thread::sleep(LIMIT);
        }
        "publish" => {
            // Publishes `args[1]` samples, then waits to be killed.
            let publisher = Publisher::open(&args[0]).expect("attach");
            let n: u64 = args[1].parse().unwrap();
            for i in 0..n {
                publisher.send_copy(&payload(i)).expect("send");
            }
            common::report(format!("sent {n}"));
            std::thread::sleep(LIMIT);
        }
        "cut-short" => {
            // Publishes `args[1]` samples, then one more cut short after
            // pushing it to the entries of the mask `args[2]` only, then
            // waits to be killed: a publisher killed mid-send.
            let publisher = Publisher::open(&args[0]).expect("attach");
            let n: u64 = args[1].parse().unwrap();
            let first = publisher.next_seq();
            for i in first..first + n {
                publisher.send_copy(&payload(i)).expect("send");
            }
            let mut s = publisher.loan(16).expect("loan");
            s.copy_from_slice(&payload(first + n));
            let reach = args[2].parse().unwrap();
            let seq = wire::send_cut_short(s, reach).expect("cut short");
            common::report(format!("cut {seq}"));
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn every_subscriber_gets_every_message_once_in_order() {
    const N: u64 = 10_000;
    let cfg = config(256, 64, 4);
    let publisher = Publisher::anonymous(&cfg).unwrap();
    let subs: Vec<_> = (0..3).map(|_| publisher.subscriber().unwrap()).collect();
    assert_eq!(publisher.subscribers(), 3);
    std::thread::scope(|s| {
        for sub in subs {
            s.spawn(move || {
                for i in 0..N {
                    let got = sub.recv_timeout(WAIT).unwrap();
                    assert_eq!(got.seq(), i);
                    assert_eq!(&got[..], &payload(i)[..], "message {i}");
                }
                assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
            });
        }
        for i in 0..N {
            if i % 2 == 0 {
                assert_eq!(publisher.send_copy(&payload(i)).unwrap(), i);
            } else {
                let mut s = publisher.loan(16).unwrap();
                s.copy_from_slice(&payload(i));
                assert_eq!(s.send().unwrap(), i);
            }
        }
    });
    assert_eq!(publisher.free_blocks(0), Some(256));
    assert_eq!(publisher.subscribers(), 0);
}

#[test]
fn a_late_joiner_gets_only_what_was_sent_after_it_joined() {
    let publisher = Publisher::anonymous(&config(64, 16, 4)).unwrap();
    let early = publisher.subscriber().unwrap();
    for i in 0..5 {
        publisher.send_copy(&payload(i)).unwrap();
    }
    let late = publisher.subscriber().unwrap();
    assert_eq!(late.join_seq(), 5);
    for i in 5..10 {
        publisher.send_copy(&payload(i)).unwrap();
    }
    for i in 0..10 {
        assert_eq!(&early.try_recv().unwrap()[..], &payload(i)[..]);
    }
    for i in 5..10 {
        let got = late.try_recv().unwrap();
        assert_eq!((got.seq(), &got[..]), (i, &payload(i)[..]));
    }
    assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(publisher.free_blocks(0), Some(64));
}

#[test]
fn a_leaver_does_not_block_the_publisher_and_its_blocks_come_back() {
    let cfg = config(64, 4, 2);
    let publisher = Publisher::anonymous(&cfg).unwrap();
    let slow = publisher.subscriber().unwrap();
    let fast = publisher.subscriber().unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (leave_tx, leave_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // Holds two samples, then leaves when told (after a pause).
            let held = (
                slow.recv_timeout(WAIT).unwrap(),
                slow.recv_timeout(WAIT).unwrap(),
            );
            held_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            drop(slow);
        });
        for i in 0..4 {
            publisher.send_copy(&payload(i)).unwrap();
            fast.try_recv().unwrap();
        }
        held_rx.recv().unwrap();
        // `slow` holds two samples and has four queued: its queue is full.
        for i in 4..6 {
            publisher.send_copy(&payload(i)).unwrap();
            fast.try_recv().unwrap();
        }
        let mut s = publisher.loan(16).unwrap();
        s.copy_from_slice(&payload(6));
        let s = match s.try_send() {
            Err(TrySendError::Full(s)) => s,
            other => panic!("{other:?}"),
        };
        let s = s.send_timeout(Duration::from_millis(20)).unwrap_err();
        let s = s.into_sample().expect("a timed out sample comes back");
        assert_eq!(publisher.free_blocks(0), Some(64 - 7), "6 sent, 1 on loan");
        // A blocking send waits for `slow`, which leaves while it waits.
        leave_tx.send(()).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(s.send().unwrap(), 6);
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "lossless: the send waited"
        );
    });
    assert_eq!(&fast.try_recv().unwrap()[..], &payload(6)[..]);
    for i in 7..100 {
        publisher.send_copy(&payload(i)).unwrap();
        assert_eq!(fast.try_recv().unwrap().seq(), i);
    }
    assert_eq!(publisher.free_blocks(0), Some(64));
    drop(fast);
    assert_eq!(publisher.free_blocks(0), Some(64));
}

#[test]
fn drop_oldest_never_waits_and_a_slow_subscriber_sees_the_newest() {
    let cfg = config(32, 4, 2).policy(SlowSubscriber::DropOldest);
    let publisher = Publisher::anonymous(&cfg).unwrap();
    let slow = publisher.subscriber().unwrap();
    let fast = publisher.subscriber().unwrap();
    assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Empty);
    publisher.send_copy(&payload(0)).unwrap();
    let held = slow.try_recv().unwrap();
    assert_eq!(fast.try_recv().unwrap().seq(), 0);
    for i in 1..20 {
        let mut s = publisher.loan(16).unwrap();
        s.copy_from_slice(&payload(i));
        assert_eq!(s.try_send().unwrap(), i, "never full");
        let got = fast.try_recv().unwrap();
        assert_eq!((got.seq(), &got[..]), (i, &payload(i)[..]));
    }
    // `slow` kept its held sample and gets the four newest.
    assert_eq!(&held[..], &payload(0)[..]);
    drop(held);
    for i in 16..20 {
        assert_eq!(slow.try_recv().unwrap().seq(), i);
    }
    assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        publisher.free_blocks(0),
        Some(32),
        "dropped samples' blocks came back"
    );
}

#[test]
fn the_held_limit_is_a_typed_error() {
    let publisher = Publisher::anonymous(&config(16, 8, 2)).unwrap();
    let sub = publisher.subscriber().unwrap();
    for i in 0..4 {
        publisher.send_copy(&payload(i)).unwrap();
    }
    let a = sub.recv().unwrap();
    let b = sub.recv().unwrap();
    assert_eq!(sub.held(), 2);
    assert_eq!(sub.recv().unwrap_err(), RecvError::HeldLimit);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::HeldLimit);
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(1)).unwrap_err(),
        RecvTimeoutError::HeldLimit
    );
    drop(a);
    assert_eq!(sub.recv().unwrap().seq(), 2);
    drop(b);
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(5))
            .unwrap()
            .value::<[u8; 16]>(),
        Some(payload(3))
    );
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
}

#[test]
fn a_publisher_attaching_while_a_peer_cleans_up_waits_for_it() {
    let name = unique_name("pubsub-reclaiming");
    let cfg = config(8, 4, 2);
    let sub = Subscriber::create(&name, &cfg).unwrap();
    let region = peer(&name);
    let entry = wire::ENTRIES_OFFSET + wire::ENTRY_STRIDE * sub.entry();
    // SAFETY: words of the region only atomics reference; plays a peer.
    let live = unsafe { region.read::<u32>(entry) }.unwrap();
    // A live peer holds the word to clean up after a dead publisher.
    let cleaning = live | wire::RECLAIMING;
    // SAFETY: as above.
    unsafe { region.write::<u32>(wire::PUBLISHER_OFFSET, &cleaning) }.unwrap();
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: as above: the cleaner is done.
            unsafe { region.write::<u32>(wire::PUBLISHER_OFFSET, &0) }.unwrap();
        });
        let publisher = Publisher::open(&name).expect("waits for the cleaner");
        assert!(t.elapsed() >= Duration::from_millis(100));
        publisher.send_copy(b"after").unwrap();
    });
    assert_eq!(&sub.try_recv().unwrap()[..], b"after");
    // A cleaner that died too is taken over at once: an earlier
    // generation of the subscriber's slot (the low 21 bits).
    let gen = live & 0x1f_ffff;
    let dead = (live & !0x1f_ffff) | if gen == 1 { 2 } else { 1 } | wire::RECLAIMING;
    // SAFETY: as above.
    unsafe { region.write::<u32>(wire::PUBLISHER_OFFSET, &dead) }.unwrap();
    Publisher::open(&name).expect("takes a dead cleaner's word over");
}

#[test]
fn scribbled_descriptors_masks_and_states_are_corrupted() {
    let name = unique_name("pubsub-scribble");
    let cfg = config(16, 8, 4);
    let publisher = Publisher::create(&name, &cfg).unwrap();
    let sub = Subscriber::open(&name).unwrap();
    let region = peer(&name);
    let pool = wire::pool_offset(&cfg);
    // A descriptor naming no block, and one longer than its block.
    let queue =
        MpmcRing::<Descriptor>::open(&region, wire::queue_offset(&cfg, sub.entry())).unwrap();
    let d = |class, index, len| Descriptor {
        class,
        index,
        generation: 1,
        len,
        seq: 1 << 40,
        reserved: 0,
    };
    for bad in [d(1, 0, 8), d(0, 16, 8), d(0, 0, 8)] {
        queue.try_push(bad).unwrap();
        assert!(
            matches!(sub.try_recv(), Err(TryRecvError::Corrupted(_))),
            "{bad:?}"
        );
    }
    // A block's holders mask without this subscriber's bit.
    let mut s = publisher.loan(8).unwrap();
    let b = s.block();
    s.fill(1);
    s.send().unwrap();
    let holders = pool + 1024 + 16 * b.index as usize + 8;
    // SAFETY: a word of the region only atomics reference; plays a peer.
    unsafe { region.write::<u64>(holders, &0) }.unwrap();
    assert!(matches!(sub.try_recv(), Err(TryRecvError::Corrupted(_))));
    // A state word whose generation is not the descriptor's.
    let mut s = publisher.loan(8).unwrap();
    let b = s.block();
    s.fill(2);
    s.send().unwrap();
    let state = pool + 1024 + 16 * b.index as usize;
    let word = (u64::from(b.generation) + 5) << 32 | 1 << 31;
    // SAFETY: as above.
    unsafe { region.write::<u64>(state, &word) }.unwrap();
    assert!(matches!(sub.recv(), Err(RecvError::Corrupted(_))));
    // A length past the block.
    queue.try_push(d(0, 0, 65)).unwrap();
    assert!(matches!(sub.try_recv(), Err(TryRecvError::Corrupted(_))));
    // A present mask naming entries the service does not have.
    // SAFETY: as above.
    unsafe { region.write::<u64>(wire::PRESENT_OFFSET, &u64::MAX) }.unwrap();
    assert!(matches!(
        publisher.send_copy(b"x"),
        Err(SendCopyError::Corrupted(_))
    ));
    // Put right, the service works again.
    // SAFETY: as above.
    unsafe { region.write::<u64>(wire::PRESENT_OFFSET, &(1 << sub.entry())) }.unwrap();
    publisher.send_copy(b"ok").unwrap();
    assert_eq!(&sub.recv_timeout(WAIT).unwrap()[..], b"ok");
}

#[test]
fn descriptors_from_before_a_join_are_skipped() {
    let name = unique_name("pubsub-stale");
    let cfg = config(16, 8, 4);
    let publisher = Publisher::create(&name, &cfg).unwrap();
    publisher.send_copy(b"before").unwrap();
    let sub = Subscriber::open(&name).unwrap();
    assert_eq!(sub.join_seq(), 1);
    // What an earlier holder of the entry could have left queued (a
    // descriptor sent as it left, naming a block since freed).
    let region = peer(&name);
    let queue =
        MpmcRing::<Descriptor>::open(&region, wire::queue_offset(&cfg, sub.entry())).unwrap();
    queue
        .try_push(Descriptor {
            class: 0,
            index: 0,
            generation: 1,
            len: 6,
            seq: 0,
            reserved: 0,
        })
        .unwrap();
    publisher.send_copy(b"after").unwrap();
    let got = sub.recv_timeout(WAIT).unwrap();
    assert_eq!((got.seq(), &got[..]), (1, &b"after"[..]));
    drop(got);
    assert_eq!(publisher.free_blocks(0), Some(16));
}

#[test]
fn one_publisher_at_a_time_and_the_stream_continues() {
    let name = unique_name("pubsub-one-publisher");
    let cfg = config(16, 8, 4);
    // The creator's handle removes the name when dropped: the subscriber's.
    let sub = Subscriber::open_or_create(&name, &cfg).unwrap();
    let first = Publisher::open_or_create(&name, &cfg).unwrap();
    let listed = shmkit::region::list().unwrap();
    let me = listed.iter().find(|o| o.name == name).unwrap();
    assert_eq!(me.kind, shmkit::region::ObjectKind::PubSub);
    assert!(matches!(
        Publisher::open(&name),
        Err(Error::ServiceBusy { role: "publisher" })
    ));
    assert!(matches!(
        Subscriber::open_or_create(&name, &config(16, 16, 4)),
        Err(Error::InvalidSize { .. })
    ));
    first.send_copy(b"a").unwrap();
    drop(first);
    let second = Publisher::open(&name).unwrap();
    assert_eq!(second.send_copy(b"b").unwrap(), 1);
    assert_eq!(sub.recv().unwrap().seq(), 0);
    assert_eq!(&sub.recv().unwrap()[..], b"b");
    // Every entry held by a live subscriber: the next is refused.
    let more: Vec<_> = (0..3).map(|_| Subscriber::open(&name).unwrap()).collect();
    assert!(matches!(
        Subscriber::open(&name),
        Err(Error::ServiceBusy { role: "subscriber" })
    ));
    drop(more);
    Subscriber::open(&name).unwrap();
    // Another kind of region is not a service.
    let other = Region::anonymous(1 << 16).unwrap();
    assert!(matches!(
        Subscriber::from_region(other),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn a_killed_subscribers_samples_and_queue_come_back() {
    for how in ["reclaim", "publish", "join"] {
        let name = unique_name("pubsub-killed-sub");
        let cfg = config(32, 8, 4);
        let publisher = Publisher::create(&name, &cfg).unwrap();
        let mut child = spawn("hold", &[&name, "3"]);
        assert!(wait_for_line(&mut child).starts_with("joined"));
        for i in 0..3 {
            publisher.send_copy(&payload(i)).unwrap();
        }
        assert_eq!(wait_for_line(&mut child), "held 3");
        for i in 3..8 {
            publisher.send_copy(&payload(i)).unwrap();
        }
        assert_eq!(publisher.free_blocks(0), Some(32 - 8), "3 held, 5 queued");
        assert_eq!(publisher.reclaim().unwrap(), 0, "the subscriber is alive");
        kill(child);
        match how {
            "reclaim" => assert_eq!(publisher.reclaim().unwrap(), 8),
            "publish" => {
                // A send checks present subscribers' liveness every 10 ms.
                std::thread::sleep(Duration::from_millis(20));
                publisher.send_copy(b"after").unwrap();
            }
            _ => {
                // A new subscriber takes the dead one's entry over, and
                // receives only what is sent after it joined.
                let sub = Subscriber::open(&name).unwrap();
                assert_eq!(sub.entry(), 0);
                assert_eq!(publisher.free_blocks(0), Some(32));
                publisher.send_copy(b"after").unwrap();
                assert_eq!(&sub.try_recv().unwrap()[..], b"after");
                assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
                drop(sub);
            }
        }
        assert_eq!(publisher.free_blocks(0), Some(32), "by {how}");
        assert_eq!(publisher.subscribers(), 0);
    }
}

#[test]
fn an_exhausted_loan_takes_back_what_a_killed_subscriber_held() {
    let name = unique_name("pubsub-exhausted-kill");
    // Four blocks: three held by the child, one queued for it.
    let cfg = config(4, 4, 3);
    let publisher = Publisher::create(&name, &cfg).unwrap();
    let mut child = spawn("hold", &[&name, "3"]);
    assert!(wait_for_line(&mut child).starts_with("joined"));
    for i in 0..3 {
        publisher.send_copy(&payload(i)).unwrap();
    }
    assert_eq!(wait_for_line(&mut child), "held 3");
    publisher.send_copy(&payload(3)).unwrap();
    assert_eq!(publisher.loan(16).unwrap_err(), LoanError::Exhausted);
    // A bounded wait ends with its deadline while the holder lives.
    let t = std::time::Instant::now();
    assert!(matches!(
        publisher.loan_timeout(16, Duration::from_millis(30)),
        Err(LoanTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    kill(child);
    // No explicit reclaim: the next loan that finds the class exhausted
    // cleans the dead subscriber's entry (at most 10 ms after the last try).
    let loan = publisher.loan_timeout(16, WAIT).unwrap();
    drop(loan);
    assert_eq!(publisher.free_blocks(0), Some(4));
    assert_eq!(publisher.subscribers(), 0);
}

#[test]
fn a_killed_publishers_samples_stay_readable_and_a_new_one_continues() {
    let name = unique_name("pubsub-killed-pub");
    let cfg = config(32, 8, 4);
    let sub = Subscriber::create(&name, &cfg).unwrap();
    let mut child = spawn("publish", &[&name, "5"]);
    assert_eq!(wait_for_line(&mut child), "sent 5");
    let held: Vec<_> = (0..3).map(|_| sub.recv_timeout(WAIT).unwrap()).collect();
    assert!(matches!(
        Publisher::open(&name),
        Err(Error::ServiceBusy { role: "publisher" })
    ));
    kill(child);
    assert!(sub.publisher_gone());
    // As if it had died mid-send: its bit 63 still set on a held block.
    let region = peer(&name);
    let b = held[0].block();
    let holders = wire::pool_offset(&cfg) + 1024 + 16 * b.index as usize + 8;
    let mask = 1u64 << 63 | 1 << sub.entry();
    // SAFETY: a word of the region only atomics reference; plays a peer.
    unsafe { region.write::<u64>(holders, &mask) }.unwrap();
    for (i, s) in held.iter().enumerate() {
        assert_eq!(&s[..], &payload(i as u64)[..], "held sample {i}");
    }
    let publisher = Publisher::open(&name).unwrap();
    assert_eq!(publisher.send_copy(&payload(5)).unwrap(), 5);
    for i in 3..6 {
        let got = sub.recv_timeout(WAIT).unwrap();
        assert_eq!((got.seq(), &got[..]), (i, &payload(i)[..]));
    }
    drop(held);
    assert_eq!(publisher.free_blocks(0), Some(32));
}

/// Receives the next sample from `sub` and checks it is sample `seq`.
fn expect_sample(sub: &Subscriber, seq: u64) {
    let got = sub.recv_timeout(WAIT).unwrap();
    assert_eq!((got.seq(), &got[..]), (seq, &payload(seq)[..]));
}

#[test]
fn a_publisher_killed_between_sharing_and_pushing_owes_its_sample_and_loses_nothing() {
    let name = unique_name("pubsub-cut-short");
    let cfg = config(16, 4, 4);
    let subs: Vec<_> = (0..3)
        .map(|_| Subscriber::open_or_create(&name, &cfg).unwrap())
        .collect();
    let total = |p: &Publisher| p.free_blocks(0).unwrap();
    // Killed having pushed sample 2 to the first subscriber only.
    let mut child = spawn(
        "cut-short",
        &[&name, "2", &(1 << subs[0].entry()).to_string()],
    );
    assert_eq!(wait_for_line(&mut child), "cut 2");
    kill(child);
    for s in &subs {
        expect_sample(s, 0);
        expect_sample(s, 1);
    }
    expect_sample(&subs[0], 2);
    // The second finds its queue empty: its idle receive cleans up after
    // the dead publisher and receives what it was owed.
    expect_sample(&subs[1], 2);
    assert_eq!(subs[1].try_recv().unwrap_err(), TryRecvError::Empty);
    // A new publisher continues; the third receives the owed sample
    // before the newer one, and nobody receives one twice.
    let publisher = Publisher::open(&name).unwrap();
    assert_eq!(publisher.send_copy(&payload(3)).unwrap(), 3);
    expect_sample(&subs[2], 2);
    for s in &subs {
        expect_sample(s, 3);
        assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Empty);
    }
    assert_eq!(total(&publisher), 16, "every block back");
    drop(publisher);

    // Killed having pushed to nobody; the next publisher's attach is
    // what settles it, and the subscribers' gaps deliver it in order.
    let mut child = spawn("cut-short", &[&name, "1", "0"]);
    assert_eq!(wait_for_line(&mut child), "cut 5");
    kill(child);
    let publisher = Publisher::open(&name).unwrap();
    assert_eq!(publisher.send_copy(&payload(6)).unwrap(), 6);
    for s in &subs {
        for seq in 4..7 {
            expect_sample(s, seq);
        }
        assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Empty);
    }
    assert_eq!(publisher.reclaim().unwrap(), 0);
    assert_eq!(total(&publisher), 16, "every block back");
}

#[test]
fn a_drop_oldest_publisher_killed_mid_pop_leaves_no_hold_behind() {
    let cfg = config(16, 2, 2).policy(SlowSubscriber::DropOldest);
    let publisher = Publisher::anonymous(&cfg).unwrap();
    let sub = publisher.subscriber().unwrap();
    let region = twin(&publisher);
    publisher.send_copy(b"a").unwrap();
    assert_eq!(publisher.free_blocks(0), Some(15));
    // Position 0's slot as the publisher leaves it when killed while
    // taking the oldest descriptor back: the subscriber's hold on the
    // block went with the pop, and is the next publisher's to release.
    let slot = wire::queue_offset(&cfg, sub.entry()) + 384;
    let taking = mpmc::word(0, mpmc::State::Taking, 0);
    // SAFETY: a queue's sequence word only atomics reference; plays a
    // publisher that died.
    unsafe { region.write::<u64>(slot, &taking) }.unwrap();
    drop(publisher);
    let next = Publisher::from_region(region).unwrap();
    assert_eq!(next.free_blocks(0), Some(16));
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    next.send_copy(b"b").unwrap();
    assert_eq!(&sub.try_recv().unwrap()[..], b"b");
}

/// Another handle of this process on `publisher`'s region: a peer that
/// scribbles.
fn twin(publisher: &Publisher) -> Region {
    let fd = publisher.region().as_fd().try_clone_to_owned().unwrap();
    RegionOptions::new().any_layout().from_fd(fd).unwrap()
}

/// Where the pool of a service of `cfg` keeps class 0's `field` section
/// (`CLASS_META_OFFSET`, `CLASS_HOLDERS_OFFSET`, `CLASS_BITMAP_OFFSET`).
fn section(region: &Region, cfg: &ServiceConfig, field: usize) -> usize {
    let pool = wire::pool_offset(cfg);
    // SAFETY: a pool header word only atomics reference; nothing writes it.
    let rel: u64 = unsafe { region.read(pool + pool_wire::CLASSES_OFFSET + field) }.unwrap();
    pool + rel as usize
}

#[test]
fn a_block_a_sample_of_this_process_reads_is_not_lent_whatever_a_peer_writes() {
    // Three ways a peer makes a held sample's block look free: its state
    // word rewritten to free, its holders mask cleared (a reclaim then
    // frees it), its descriptor queued twice (the second sample's drop
    // then frees it).
    for how in ["state", "holders", "twice"] {
        let cfg = config(1, 2, 2);
        let publisher = Publisher::anonymous(&cfg).unwrap();
        let sub = publisher.subscriber().unwrap();
        let region = twin(&publisher);
        publisher.send_copy(b"held").unwrap();
        let held = sub.try_recv().unwrap();
        let b = held.block();
        let at = |field| section(&region, &cfg, field) + 16 * b.index as usize;
        match how {
            "state" => {
                let free = u64::from(b.generation) << 32;
                // SAFETY: pool words only atomics reference; plays a peer.
                unsafe {
                    region
                        .write::<u64>(at(pool_wire::CLASS_META_OFFSET), &free)
                        .unwrap();
                    region
                        .write::<u64>(section(&region, &cfg, pool_wire::CLASS_BITMAP_OFFSET), &1)
                        .unwrap();
                }
            }
            "holders" => {
                // SAFETY: as above.
                unsafe { region.write::<u64>(at(pool_wire::CLASS_HOLDERS_OFFSET), &0) }.unwrap();
                assert_eq!(publisher.reclaim(), Ok(1));
            }
            _ => {
                let queue =
                    MpmcRing::<Descriptor>::open(&region, wire::queue_offset(&cfg, sub.entry()))
                        .unwrap();
                queue
                    .try_push(Descriptor {
                        class: b.class,
                        index: b.index,
                        generation: b.generation,
                        len: 4,
                        seq: held.seq(),
                        reserved: 0,
                    })
                    .unwrap();
                // The copy is refused: it is not a second sample of the
                // one hold (whose drop would free the block under `held`).
                assert!(matches!(sub.try_recv(), Err(TryRecvError::Corrupted(_))));
                assert_eq!(&held[..], b"held");
                continue;
            }
        }
        assert_eq!(
            publisher.free_blocks(0),
            Some(1),
            "{how}: the block looks free"
        );
        // The pool's only block: a loan of it would write under `held`.
        let got = publisher.loan(8);
        assert!(
            matches!(got, Err(LoanError::Corrupted(_))),
            "{how}: {got:?}"
        );
        drop(got);
        assert_eq!(&held[..], b"held", "{how}");
    }
}

#[test]
fn a_descriptor_of_a_block_this_process_has_on_loan_is_corrupted() {
    let cfg = config(2, 2, 2);
    let publisher = Publisher::anonymous(&cfg).unwrap();
    let sub = publisher.subscriber().unwrap();
    let region = twin(&publisher);
    let mut s = publisher.loan(8).unwrap();
    s.fill(1);
    let b = s.block();
    // A peer dresses the lent block up as a sample for `sub`: shared
    // under its generation, `sub`'s bit set, a descriptor queued.
    let at = |field| section(&region, &cfg, field) + 16 * b.index as usize;
    let shared = u64::from(b.generation) << 32 | 1 << 31;
    // SAFETY: pool words only atomics reference; plays a peer.
    unsafe {
        region
            .write::<u64>(at(pool_wire::CLASS_META_OFFSET), &shared)
            .unwrap();
        region
            .write::<u64>(at(pool_wire::CLASS_HOLDERS_OFFSET), &(1 << sub.entry()))
            .unwrap();
    }
    let queue =
        MpmcRing::<Descriptor>::open(&region, wire::queue_offset(&cfg, sub.entry())).unwrap();
    queue
        .try_push(Descriptor {
            class: b.class,
            index: b.index,
            generation: b.generation,
            len: 8,
            seq: sub.join_seq(),
            reserved: 0,
        })
        .unwrap();
    let got = sub.try_recv();
    assert!(matches!(got, Err(TryRecvError::Corrupted(_))), "{got:?}");
    drop(got);
    assert!(s.iter().all(|&x| x == 1));
}

#[test]
fn try_send_returns_when_a_present_subscribers_queue_refuses_the_push() {
    for timed in [false, true] {
        let cfg = config(16, 1, 2);
        let publisher = Publisher::anonymous(&cfg).unwrap();
        let sub = publisher.subscriber().unwrap();
        let region = twin(&publisher);
        publisher.send_copy(b"a").unwrap();
        drop(sub.try_recv().unwrap());
        // Position 0's slot as its consumer leaves it while taking it (a
        // subscriber stopped mid-pop, or a peer's scribble): the queue has
        // room, but the push of position 1 waits for that slot.
        let slot = wire::queue_offset(&cfg, sub.entry()) + 384;
        let taking = mpmc::word(0, mpmc::State::Taking, 1);
        // SAFETY: a queue's sequence word only atomics reference; plays a
        // peer.
        unsafe { region.write::<u64>(slot, &taking) }.unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Not scoped: a send that never returns must not hang the test.
        std::thread::spawn(move || {
            let s = publisher.loan(1).unwrap();
            let got = if timed {
                s.send_timeout(Duration::ZERO).map_err(|e| format!("{e:?}"))
            } else {
                s.try_send().map_err(|e| format!("{e:?}"))
            };
            let _ = tx.send(got);
        });
        let got = rx.recv_timeout(WAIT).expect("the send never returned");
        // Sent (to nobody: the subscriber's queue took no descriptor).
        assert_eq!(got, Ok(1), "timed: {timed}");
        drop(sub);
    }
}
