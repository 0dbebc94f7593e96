//! Typed channels between processes: ordered delivery, blocking both ways,
//! disconnect on drop and on SIGKILL (after draining), busy ends, every
//! timeout form.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, spawn, unique_name};
use shmkit::channel::{
    byte_channel, channel, ByteReceiver, ByteSendError, ByteSendTimeoutError, ByteSender,
    ByteTrySendError, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender,
    TryRecvError, TrySendError,
};
use shmkit::Error;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "send-n" => {
            let tx = Sender::<u64>::open(&args[0]).expect("open sender");
            let n: u64 = args[1].parse().unwrap();
            for i in 0..n {
                tx.send(i).expect("send");
            }
        }
        "send-all" => {
            let tx = Sender::<u64>::open(&args[0]).expect("open sender");
            let n: u64 = args[1].parse().unwrap();
            let batch: Vec<u64> = (0..n).collect();
            for chunk in batch.chunks(1000) {
                tx.send_all(chunk).expect("send_all");
            }
        }
        "send-then-hang" => {
            let tx = Sender::<u64>::open(&args[0]).expect("open sender");
            for i in 0..10 {
                tx.send(i).expect("send");
            }
            std::thread::sleep(LIMIT);
        }
        "recv-then-hang" => {
            let rx = Receiver::<u64>::open(&args[0]).expect("open receiver");
            assert_eq!(rx.recv().expect("recv"), 7);
            std::thread::sleep(LIMIT);
        }
        "echo" => {
            let rx = Receiver::<u64>::open(&args[0]).expect("open receiver");
            let tx = Sender::<u64>::open(&args[1]).expect("open sender");
            while let Ok(v) = rx.recv() {
                tx.send(v + 1).expect("echo");
            }
        }
        "send-records" => {
            let tx = ByteSender::open(&args[0]).expect("open byte sender");
            let n: u64 = args[1].parse().unwrap();
            let mut buf = Vec::new();
            for i in 0..n {
                record(i, &mut buf);
                tx.send(&buf).expect("send record");
            }
        }
        "send-records-then-hang" => {
            let tx = ByteSender::open(&args[0]).expect("open byte sender");
            let mut buf = Vec::new();
            for i in 0..5 {
                record(i, &mut buf);
                tx.send(&buf).expect("send record");
            }
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_million_values_arrive_in_order_then_disconnected() {
    for role in ["send-n", "send-all"] {
        let name = unique_name("order");
        let rx = Receiver::<u64>::create(&name, 1024).unwrap();
        let child = spawn(role, &[&name, "1000000"]);
        let mut expect = 0u64;
        let mut buf = [0u64; 256];
        loop {
            match rx.recv_slice(&mut buf) {
                Ok(n) => {
                    for &v in &buf[..n] {
                        assert_eq!(v, expect, "{role}");
                        expect += 1;
                    }
                }
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("{role}: {e}"),
            }
        }
        assert_eq!(expect, 1_000_000, "{role}");
        finish(child, LIMIT);
    }
}

#[test]
fn iterating_a_receiver_yields_every_value_then_ends() {
    // Blocking iteration across processes, by reference and by value.
    for owned in [false, true] {
        let name = unique_name("iter");
        let rx = Receiver::<u64>::create(&name, 64).unwrap();
        let child = spawn("send-n", &[&name, "10000"]);
        let got: Vec<u64> = if owned {
            rx.into_iter().collect()
        } else {
            (&rx).into_iter().collect()
        };
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        finish(child, LIMIT);
    }
    // `try_iter` takes what is there and stops, with the sender still
    // attached.
    let (tx, rx) = shmkit::channel::channel::<u64>(8).unwrap();
    tx.send_all(&[1, 2, 3]).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rx.try_iter().next(), None);
    tx.send(4).unwrap();
    drop(tx);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [4]);
}

#[test]
fn a_killed_sender_is_seen_as_disconnected_after_draining() {
    let name = unique_name("killed-sender");
    let rx = Receiver::<u64>::create(&name, 64).unwrap();
    let mut child = spawn("send-then-hang", &[&name]);
    for i in 0..10 {
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), i);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

/// Sends 7 to a "recv-then-hang" child through a 4-slot channel, then
/// fills the channel: the child takes 7 and nothing more, so after four
/// more values (sent whenever it has taken 7) the channel is full for
/// good.
fn fill_behind_one_recv(tx: &Sender<u64>) {
    assert_eq!(tx.capacity(), 4);
    tx.send(7).unwrap();
    for _ in 0..4 {
        tx.send_timeout(1, LIMIT).unwrap();
    }
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
}

/// Polls `op` until it stops reporting that it would block, for at most
/// 10 s (a death is due within milliseconds); returns what it reported.
fn poll_until<T>(mut op: impl FnMut() -> Option<T>) -> T {
    let limit = Duration::from_secs(10);
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = op() {
            return v;
        }
        assert!(Instant::now() < end, "still would block after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn try_recv_alone_notices_a_killed_sender() {
    let name = unique_name("try-killed-sender");
    let rx = Receiver::<u64>::create(&name, 64).unwrap();
    let mut child = spawn("send-then-hang", &[&name]);
    for i in 0..10 {
        assert_eq!(
            poll_until(|| match rx.try_recv() {
                Err(TryRecvError::Empty) => None,
                other => Some(other),
            }),
            Ok(i)
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // No blocking call ever runs: the polling loop itself must learn that
    // nobody will send again.
    let got = poll_until(|| match rx.try_recv() {
        Err(TryRecvError::Empty) => None,
        other => Some(other),
    });
    assert_eq!(got, Err(TryRecvError::Disconnected));
}

#[test]
fn try_send_alone_notices_a_killed_receiver() {
    let name = unique_name("try-killed-receiver");
    let tx = Sender::<u64>::create(&name, 4).unwrap();
    let mut child = spawn("recv-then-hang", &[&name]);
    fill_behind_one_recv(&tx);
    child.kill().unwrap();
    child.wait().unwrap();
    let got = poll_until(|| match tx.try_send(9) {
        Err(TrySendError::Full(_)) => None,
        other => Some(other),
    });
    assert!(
        matches!(got, Err(TrySendError::Disconnected(9))),
        "expected Disconnected(9), got {got:?}"
    );
}

#[test]
fn a_sender_that_replaces_a_killed_one_is_seen_leaving_at_once() {
    let name = unique_name("replaced-sender");
    let rx = Receiver::<u64>::create(&name, 64).unwrap();
    let mut child = spawn("send-then-hang", &[&name]);
    for i in 0..10 {
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), i);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The new sender takes over the dead one's entry; once it leaves
    // cleanly, nobody is attached, which even `try_recv` (no liveness
    // probe) must see at once.
    let tx = Sender::<u64>::open(&name).unwrap();
    tx.send(42).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(42));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn a_killed_receiver_unblocks_a_sender_waiting_for_room() {
    let name = unique_name("killed-receiver");
    let tx = Sender::<u64>::create(&name, 4).unwrap();
    let mut child = spawn("recv-then-hang", &[&name]);
    fill_behind_one_recv(&tx);
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    match tx.send_timeout(9, LIMIT) {
        Err(SendTimeoutError::Disconnected(9)) => {}
        other => panic!("expected Disconnected(9), got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn dropping_an_end_disconnects_the_other() {
    let (tx, rx) = channel::<u32>(8).unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));

    let (tx, rx) = channel::<u32>(8).unwrap();
    drop(rx);
    assert!(matches!(tx.send(1), Err(SendError::Disconnected(1))));
    assert!(matches!(tx.try_send(2), Err(TrySendError::Disconnected(2))));
}

#[test]
fn one_sender_and_one_receiver_at_a_time() {
    let name = unique_name("busy");
    let rx = Receiver::<u64>::create(&name, 8).unwrap();
    let tx = Sender::<u64>::open(&name).unwrap();
    // The opener learns the capacity from the region.
    assert_eq!((tx.capacity(), rx.capacity()), (8, 8));
    assert!(matches!(
        Sender::<u64>::open(&name),
        Err(Error::ChannelBusy { end: "sender" })
    ));
    assert!(matches!(
        Receiver::<u64>::open(&name),
        Err(Error::ChannelBusy { end: "receiver" })
    ));
    drop(tx);
    // A new sender may attach after the first left.
    let tx = Sender::<u64>::open(&name).unwrap();
    tx.send(5).unwrap();
    assert_eq!(rx.recv(), Ok(5));
    // Wrong element type.
    assert!(matches!(
        Sender::<u32>::open(&name),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn every_timeout_form() {
    let (tx, rx) = channel::<u64>(2).unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        rx.recv_deadline(Instant::now() - Duration::from_secs(1)),
        Err(RecvTimeoutError::Timeout)
    );
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    let t = Instant::now();
    assert!(matches!(
        tx.send_timeout(3, Duration::from_millis(50)),
        Err(SendTimeoutError::Timeout(3))
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        tx.send_deadline(3, Instant::now() - Duration::from_secs(1)),
        Err(SendTimeoutError::Timeout(3))
    ));
    // A past deadline still takes what is there.
    assert_eq!(
        rx.recv_deadline(Instant::now() - Duration::from_secs(1)),
        Ok(1)
    );
    tx.send_deadline(3, Instant::now() - Duration::from_secs(1))
        .unwrap();
}

#[test]
fn every_batch_form() {
    let (tx, rx) = channel::<u64>(4).unwrap();
    let mut buf = [0u64; 8];
    assert_eq!(rx.try_recv_slice(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(rx.try_recv_slice(&mut []), Ok(0));
    let t = Instant::now();
    assert_eq!(
        rx.recv_slice_timeout(&mut buf, Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        rx.recv_slice_deadline(&mut buf, Instant::now() - Duration::from_secs(1)),
        Err(RecvTimeoutError::Timeout)
    );
    // As much as fits now, then nothing.
    assert_eq!(tx.try_send_all(&[]), Ok(0));
    assert_eq!(tx.try_send_all(&[1, 2, 3]), Ok(3));
    assert_eq!(tx.try_send_all(&[4, 5, 6]), Ok(1));
    assert_eq!(tx.try_send_all(&[5]), Err(TrySendError::Full(&[5][..])));
    // A timed batch that finds no room sends none and says so.
    let t = Instant::now();
    assert_eq!(
        tx.send_all_timeout(&[5, 6], Duration::from_millis(50)),
        Err(SendTimeoutError::Timeout(&[5, 6][..]))
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(rx.try_recv_slice(&mut buf[..3]), Ok(3));
    assert_eq!(buf[..3], [1, 2, 3]);
    // Room for three of five: those go, the deadline stops the rest.
    assert_eq!(
        tx.send_all_deadline(&[5, 6, 7, 8, 9], Instant::now() - Duration::from_secs(1)),
        Err(SendTimeoutError::Timeout(&[8, 9][..]))
    );
    assert_eq!(
        rx.recv_slice_timeout(&mut buf, Duration::from_millis(50)),
        Ok(4)
    );
    assert_eq!(buf[..4], [4, 5, 6, 7]);
    tx.send_all_timeout(&[10, 11], Duration::from_millis(50))
        .unwrap();
    assert_eq!(rx.recv_slice(&mut buf), Ok(2));
    drop(rx);
    assert_eq!(
        tx.try_send_all(&[1]),
        Err(TrySendError::Disconnected(&[1][..]))
    );
    assert_eq!(
        tx.send_all_timeout(&[1], Duration::from_millis(50)),
        Err(SendTimeoutError::Disconnected(&[1][..]))
    );
}

#[test]
fn a_receiver_waits_for_a_sender_that_has_not_come_yet() {
    let name = unique_name("idle");
    let rx = Receiver::<u64>::create(&name, 8).unwrap();
    // Nobody attached yet: a timeout, not a disconnect.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    let child = spawn("send-n", &[&name, "3"]);
    assert_eq!(rx.recv_timeout(LIMIT), Ok(0));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(2));
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
    finish(child, LIMIT);
}

#[test]
fn round_trips_through_two_channels() {
    let (a, b) = (unique_name("ping"), unique_name("pong"));
    let ping = Sender::<u64>::create(&a, 16).unwrap();
    let pong = Receiver::<u64>::create(&b, 16).unwrap();
    let child = spawn("echo", &[&a, &b]);
    for i in 0..20_000u64 {
        ping.send(i * 2).unwrap();
        assert_eq!(pong.recv_timeout(LIMIT), Ok(i * 2 + 1));
    }
    drop(ping);
    assert_eq!(
        pong.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    );
    finish(child, LIMIT);
}

/// Record `i`: a pseudo-random length in 0..=65536 and bytes from a
/// xorshift stream seeded by `i`, so the receiver can recompute it.
fn record(i: u64, buf: &mut Vec<u8>) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = (next() % 65_537) as usize;
    buf.clear();
    buf.extend((0..len).map(|_| next() as u8));
}

#[test]
fn byte_records_of_random_sizes_arrive_intact_between_processes() {
    let name = unique_name("bytes");
    let rx = ByteReceiver::create(&name, 1 << 20, 1 << 17).unwrap();
    let child = spawn("send-records", &[&name, "1000"]);
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let mut i = 0u64;
    loop {
        match rx.recv_timeout(&mut got, LIMIT) {
            Ok(n) => {
                record(i, &mut want);
                assert_eq!(n, want.len(), "record {i}");
                assert!(got == want, "record {i} differs");
                i += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("record {i}: {e}"),
        }
    }
    assert_eq!(i, 1000);
    finish(child, LIMIT);
}

#[test]
fn a_killed_byte_sender_is_seen_as_disconnected_after_draining() {
    let name = unique_name("bytes-killed");
    let rx = ByteReceiver::create(&name, 1 << 20, 1 << 17).unwrap();
    let mut child = spawn("send-records-then-hang", &[&name]);
    let mut want = Vec::new();
    for i in 0..5 {
        record(i, &mut want);
        // Read in place, without copying out.
        let same = rx.recv_with(|bytes| bytes == want.as_slice()).unwrap();
        assert!(same, "record {i}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut buf = Vec::new();
    // Polling alone learns it too.
    let got = poll_until(|| match rx.try_recv(&mut buf) {
        Err(TryRecvError::Empty) => None,
        other => Some(other),
    });
    assert_eq!(got, Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(&mut buf, LIMIT),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn byte_channel_limits_and_timeouts() {
    let (tx, rx) = byte_channel(256, 64).unwrap();
    assert_eq!(tx.max_message(), 64);
    assert_eq!((tx.capacity(), rx.capacity()), (256, 256));
    assert!(matches!(
        tx.send(&[0; 65]),
        Err(ByteSendError::TooLarge { len: 65, max: 64 })
    ));
    assert!(matches!(
        tx.try_send(&[0; 65]),
        Err(ByteTrySendError::TooLarge { len: 65, max: 64 })
    ));
    let mut buf = vec![1, 2, 3];
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    // The in-place forms: `f` runs only on a record.
    let ran = std::cell::Cell::new(false);
    let mark = |_: &[u8]| ran.set(true);
    assert_eq!(rx.try_recv_with(mark), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_with_timeout(mark, Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        rx.recv_with_deadline(mark, Instant::now() - Duration::from_secs(1)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(!ran.get());
    tx.send(b"abc").unwrap();
    assert_eq!(
        rx.recv_with_deadline(|m| m.to_vec(), Instant::now() - Duration::from_secs(1)),
        Ok(b"abc".to_vec())
    );
    tx.send(b"").unwrap();
    assert_eq!(rx.recv(&mut buf), Ok(0));
    assert!(buf.is_empty());
    while tx.try_send(&[7; 64]).is_ok() {}
    assert!(matches!(
        tx.send_timeout(&[7; 64], Duration::from_millis(20)),
        Err(ByteSendTimeoutError::Timeout)
    ));
    drop(tx);
    let mut n = 0;
    while rx.recv(&mut buf).is_ok() {
        assert_eq!(buf, [7; 64]);
        n += 1;
    }
    assert!(n >= 2);
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
}
