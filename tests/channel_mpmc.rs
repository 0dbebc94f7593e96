//! MPMC channels between processes and threads: 4 sender and 4 receiver
//! processes over a named channel (every value exactly once, every receiver
//! ends `Disconnected`), killed senders and receivers, the 32-handle limit
//! across processes, SPSC and MPMC layouts kept apart, every timeout form,
//! and clones and shared handles on threads.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{
    child_command, child_role, finish, kill, report, spawn, unique_name, wait_for_line, wait_until,
};
use shmkit::channel::{
    mpmc_channel, MpmcReceiver, MpmcSender, Receiver, RecvTimeoutError, SendError,
    SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use shmkit::{Error, LayoutId, RegionOptions, ShmSafe};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// How long a disconnect may take to be noticed (the probe interval is
/// 10 ms; this leaves room for a loaded machine).
const NOTICE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------
// Cross-process: 4 senders, 4 receivers.

const SENDERS: u64 = 4;
const RECEIVERS: usize = 4;
const PER_SENDER: u64 = 100_000;
const TOTAL: u64 = SENDERS * PER_SENDER;
const WORDS: usize = TOTAL.div_ceil(64) as usize;
/// The control block, then the bitmap of values received.
const BITMAP: usize = 128;
const FD_VAR: &str = "SHMKIT_TEST_CONTROL";

#[repr(C)]
struct Control {
    ready: AtomicU64,
    start: AtomicU64,
}
// SAFETY: repr(C); every field is an integer atomic.
unsafe impl ShmSafe for Control {}

fn control_options() -> RegionOptions {
    RegionOptions::new()
        .size(BITMAP + WORDS * 8)
        .layout(LayoutId::named("shmkit-test-mpmc-channel-control", 1))
}

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "sender" | "receiver" => {
            // SAFETY: the parent passed this descriptor for us alone.
            let region = unsafe { control_options().from_env(FD_VAR) }.expect("from_env");
            let control = region.place::<Control>(0).unwrap();
            let bitmap = region.place_slice::<AtomicU64>(BITMAP, WORDS).unwrap();
            if role == "sender" {
                let tx = MpmcSender::<u64>::open(&args[0]).expect("open sender");
                let id: u64 = args[1].parse().unwrap();
                gate(control);
                for i in 0..PER_SENDER {
                    tx.send(id << 32 | i).expect("send");
                }
            } else {
                let rx = MpmcReceiver::<u64>::open(&args[0]).expect("open receiver");
                gate(control);
                receive_all(&rx, bitmap);
            }
        }
        "send-then-hang" => {
            let tx = MpmcSender::<u64>::open(&args[0]).expect("open sender");
            let id: u64 = args[1].parse().unwrap();
            for i in 0..10 {
                tx.send(id << 32 | i).expect("send");
            }
            report("sent");
            std::thread::sleep(LIMIT);
        }
        "recv-then-hang" => {
            let rx = MpmcReceiver::<u64>::open(&args[0]).expect("open receiver");
            report("attached");
            std::thread::sleep(LIMIT);
            drop(rx);
        }
        "hold-senders" => {
            let n: usize = args[1].parse().unwrap();
            let first = MpmcSender::<u64>::open(&args[0]).expect("open sender");
            let clones: Vec<_> = (1..n)
                .map(|_| first.try_clone().expect("try_clone"))
                .collect();
            report("holding");
            std::thread::sleep(LIMIT);
            drop(clones);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Says this child is ready, then waits for the parent's start.
fn gate(control: &Control) {
    control.ready.fetch_add(1, Ordering::AcqRel);
    wait_until(LIMIT, "start", || {
        control.start.load(Ordering::Acquire) != 0
    });
}

/// Receives until `Disconnected`: marks each value in the shared bitmap
/// (failing on one seen before), checks each sender's values come in send
/// order, and reports `count sum0 sum1 sum2 sum3` (sums of sequence
/// numbers per sender).
fn receive_all(rx: &MpmcReceiver<u64>, bitmap: &[AtomicU64]) {
    let mut last = [None::<u64>; SENDERS as usize];
    let mut sums = [0u64; SENDERS as usize];
    let mut count = 0u64;
    loop {
        match rx.recv_timeout(LIMIT) {
            Ok(v) => {
                let (p, i) = (v >> 32, v & 0xffff_ffff);
                assert!(p < SENDERS && i < PER_SENDER, "bad value {v:#x}");
                if let Some(prev) = last[p as usize] {
                    assert!(prev < i, "sender {p}: {i} after {prev}");
                }
                last[p as usize] = Some(i);
                let bit = p * PER_SENDER + i;
                let mask = 1u64 << (bit % 64);
                let old = bitmap[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
                assert_eq!(old & mask, 0, "value {v:#x} delivered twice");
                sums[p as usize] += i;
                count += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    // It stays that way, for every form.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Disconnected)
    );
    report(format!("{count} {}", sums.map(|s| s.to_string()).join(" ")));
}

#[test]
fn four_sender_and_four_receiver_processes_deliver_every_value_exactly_once() {
    let name = unique_name("mpmc-4x4");
    let control_region = control_options().anonymous().unwrap();
    let control = control_region.place::<Control>(0).unwrap();
    let bitmap = control_region
        .place_slice::<AtomicU64>(BITMAP, WORDS)
        .unwrap();
    // The parent creates the channel as a sender and leaves once every
    // child is attached: the senders' side is then the four children.
    let creator = MpmcSender::<u64>::create(&name, 64).unwrap();
    let spawn_child = |role: &str, args: &[&str]| -> Child {
        let mut cmd = child_command(role, args);
        control_region.pass_to_child(&mut cmd, FD_VAR);
        cmd.spawn().expect("spawn child")
    };
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| spawn_child("receiver", &[&name]))
        .collect();
    let senders: Vec<_> = (0..SENDERS)
        .map(|id| spawn_child("sender", &[&name, &id.to_string()]))
        .collect();
    wait_until(LIMIT, "children attached", || {
        control.ready.load(Ordering::Acquire) == SENDERS + RECEIVERS as u64
    });
    drop(creator);
    let started = Instant::now();
    control.start.store(1, Ordering::Release);
    for s in senders {
        finish(s, LIMIT);
    }
    let mut count = 0;
    let mut sums = [0u64; SENDERS as usize];
    let mut per_receiver = Vec::new();
    for r in receivers {
        let lines = finish(r, LIMIT);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let fields: Vec<u64> = lines[0].split(' ').map(|f| f.parse().unwrap()).collect();
        per_receiver.push(fields[0]);
        count += fields[0];
        for (s, f) in sums.iter_mut().zip(&fields[1..]) {
            *s += f;
        }
    }
    eprintln!(
        "4 senders x 4 receivers: {TOTAL} values in {:?}, per receiver {per_receiver:?}",
        started.elapsed()
    );
    assert_eq!(count, TOTAL);
    assert_eq!(sums, [PER_SENDER * (PER_SENDER - 1) / 2; SENDERS as usize]);
    for (w, word) in bitmap.iter().enumerate() {
        let bits = (TOTAL - 64 * w as u64).min(64);
        let all = if bits == 64 {
            u64::MAX
        } else {
            (1 << bits) - 1
        };
        assert_eq!(word.load(Ordering::Relaxed), all, "word {w}");
    }
}

#[test]
fn killed_sender_processes_are_seen_as_disconnected_after_draining() {
    let name = unique_name("mpmc-killed-senders");
    let rx = MpmcReceiver::<u64>::create(&name, 64).unwrap();
    let rx2 = rx.try_clone().unwrap();
    assert_eq!((rx.capacity(), rx2.capacity()), (64, 64));
    let mut children: Vec<_> = (0..4u64)
        .map(|id| spawn("send-then-hang", &[&name, &id.to_string()]))
        .collect();
    // Every sender has sent its ten values; none is taken yet.
    for c in &mut children {
        assert_eq!(wait_for_line(c), "sent");
    }
    for c in children {
        kill(c);
    }
    let t = Instant::now();
    // One receiver blocks, the other only polls: both must learn that the
    // senders are dead.
    let drain = |rx: MpmcReceiver<u64>, poll: bool| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let r = if poll {
                    rx.try_recv()
                } else {
                    rx.recv_timeout(LIMIT).map_err(|e| match e {
                        RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                        e => panic!("recv: {e}"),
                    })
                };
                match r {
                    Ok(v) => got.push(v),
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) if t.elapsed() < LIMIT => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            got
        })
    };
    let (a, b) = (drain(rx, false), drain(rx2, true));
    let mut got = a.join().unwrap();
    got.extend(b.join().unwrap());
    assert!(t.elapsed() < NOTICE, "{:?}", t.elapsed());
    got.sort_unstable();
    let want: Vec<u64> = (0..4u64)
        .flat_map(|id| (0..10).map(move |i| id << 32 | i))
        .collect();
    assert_eq!(got, want, "everything sent before the kill, once");
}

#[test]
fn killed_receiver_processes_unblock_a_sender_waiting_for_room() {
    let name = unique_name("mpmc-killed-receivers");
    let tx = MpmcSender::<u64>::create(&name, 4).unwrap();
    let mut children: Vec<_> = (0..2).map(|_| spawn("recv-then-hang", &[&name])).collect();
    for c in &mut children {
        assert_eq!(wait_for_line(c), "attached");
    }
    // Fill the ring so the next send has to wait.
    while tx.try_send(1).is_ok() {}
    let waiter = std::thread::spawn({
        let tx = tx.try_clone().unwrap();
        move || {
            let r = tx.send_timeout(9, LIMIT);
            (tx, r, Instant::now())
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    let killed = Instant::now();
    for c in children {
        kill(c);
    }
    let (clone, r, returned) = waiter.join().unwrap();
    assert!(matches!(r, Err(SendTimeoutError::Disconnected(9))), "{r:?}");
    // It waited for the kill (the thread may start late under load, so
    // its own clock would not show that).
    assert!(returned >= killed, "returned before the kill");
    assert!(killed.elapsed() < NOTICE, "{:?}", killed.elapsed());
    // The handle that saw it remembers, so its `try_send` knows too; the
    // other handle finds out with its own blocking call.
    assert!(matches!(
        clone.try_send(3),
        Err(TrySendError::Disconnected(3))
    ));
    assert!(matches!(
        tx.send_timeout(4, LIMIT),
        Err(SendTimeoutError::Disconnected(4))
    ));
    assert!(matches!(tx.try_send(5), Err(TrySendError::Disconnected(5))));
}

#[test]
fn dropping_every_receiver_disconnects_the_senders() {
    let (tx, rx) = mpmc_channel::<u32>(8).unwrap();
    let tx2 = tx.try_clone().unwrap();
    let rx2 = rx.try_clone().unwrap();
    drop(rx);
    // One receiver is left: still connected.
    tx.send(1).unwrap();
    tx2.try_send(2).unwrap();
    assert_eq!(rx2.recv(), Ok(1));
    assert_eq!(rx2.try_recv(), Ok(2));
    drop(rx2);
    assert!(matches!(tx.send(3), Err(SendError::Disconnected(3))));
    assert!(matches!(tx.try_send(4), Err(TrySendError::Disconnected(4))));
    assert!(matches!(
        tx2.send_timeout(5, LIMIT),
        Err(SendTimeoutError::Disconnected(5))
    ));
    // A clone made now is just as disconnected.
    let tx3 = tx.try_clone().unwrap();
    assert!(matches!(
        tx3.try_send(6),
        Err(TrySendError::Disconnected(6))
    ));
}

#[test]
fn dropping_every_sender_disconnects_the_receivers_after_draining() {
    let (tx, rx) = mpmc_channel::<u32>(8).unwrap();
    let tx2 = tx.try_clone().unwrap();
    let rx2 = rx.try_clone().unwrap();
    tx.send(1).unwrap();
    drop(tx);
    // One sender is left: an empty channel is only empty.
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx2.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    tx2.send(2).unwrap();
    tx2.send(3).unwrap();
    drop(tx2);
    assert_eq!(rx2.recv(), Ok(2));
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.recv_timeout(NOTICE), Err(RecvTimeoutError::Disconnected));
    assert_eq!(rx2.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn the_33rd_handle_of_an_end_is_refused_across_processes() {
    let name = unique_name("mpmc-busy");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    // A child holds 16 senders.
    let mut child = spawn("hold-senders", &[&name, "16"]);
    assert_eq!(wait_for_line(&mut child), "holding");
    // This process attaches 16 more: 32 in all.
    let first = MpmcSender::<u64>::open(&name).unwrap();
    let mut mine: Vec<_> = (1..16).map(|_| first.try_clone().unwrap()).collect();
    assert!(matches!(
        first.try_clone(),
        Err(Error::ChannelBusy { end: "sender" })
    ));
    assert!(matches!(
        MpmcSender::<u64>::open(&name),
        Err(Error::ChannelBusy { end: "sender" })
    ));
    // Dropping one frees its entry.
    mine.pop();
    let again = first.try_clone().unwrap();
    assert!(first.try_clone().is_err());
    // The child's 16 entries are free once it is dead.
    kill(child);
    let more: Vec<_> = (0..16).map(|_| first.try_clone().unwrap()).collect();
    assert!(matches!(
        first.try_clone(),
        Err(Error::ChannelBusy { end: "sender" })
    ));
    again.send(7).unwrap();
    assert_eq!(rx.recv(), Ok(7));
    drop((mine, more, again));

    // The receivers' side likewise.
    let rxs: Vec<_> = (1..32).map(|_| rx.try_clone().unwrap()).collect();
    assert!(matches!(
        rx.try_clone(),
        Err(Error::ChannelBusy { end: "receiver" })
    ));
    assert!(matches!(
        MpmcReceiver::<u64>::open(&name),
        Err(Error::ChannelBusy { end: "receiver" })
    ));
    drop(rxs);
    MpmcReceiver::<u64>::open(&name).unwrap();
}

#[test]
fn spsc_and_mpmc_channels_do_not_open_as_each_other() {
    // An SPSC channel's name, opened as MPMC.
    let spsc = unique_name("spsc-as-mpmc");
    let _rx = Receiver::<u64>::create(&spsc, 8).unwrap();
    assert!(matches!(
        MpmcSender::<u64>::open(&spsc),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        MpmcReceiver::<u64>::open(&spsc),
        Err(Error::LayoutMismatch { .. })
    ));
    // An MPMC channel's name, opened as SPSC, or with another `T`.
    let mpmc = unique_name("mpmc-as-spsc");
    let _tx = MpmcSender::<u64>::create(&mpmc, 8).unwrap();
    assert!(matches!(
        Sender::<u64>::open(&mpmc),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        Receiver::<u64>::open(&mpmc),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        MpmcReceiver::<u32>::open(&mpmc),
        Err(Error::LayoutMismatch { .. })
    ));
    MpmcReceiver::<u64>::open(&mpmc).unwrap();
    // A region handed over by other means is checked too.
    let region = RegionOptions::new()
        .layout(LayoutId::of::<u64>())
        .size(4096)
        .anonymous()
        .unwrap();
    assert!(matches!(
        MpmcSender::<u64>::from_region(region),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn every_timeout_form() {
    let (tx, rx) = mpmc_channel::<u64>(2).unwrap();
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
    match tx.send_timeout(3, Duration::from_millis(50)) {
        Err(e @ SendTimeoutError::Timeout(_)) => assert_eq!(e.into_inner(), Some(3)),
        other => panic!("expected Timeout(3), got {other:?}"),
    }
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
    assert_eq!(rx.recv_timeout(LIMIT), Ok(2));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(3));
}

#[test]
fn a_receiver_waits_for_senders_that_have_not_come_yet() {
    let name = unique_name("mpmc-idle");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    // Nobody attached yet: a timeout, not a disconnect.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let sender = std::thread::spawn({
        let name = name.clone();
        move || {
            let tx = MpmcSender::<u64>::open(&name).unwrap();
            tx.send(5).unwrap();
        }
    });
    assert_eq!(rx.recv_timeout(LIMIT), Ok(5));
    sender.join().unwrap();
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn clones_and_shared_handles_on_threads_deliver_every_value_exactly_once() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    let (tx, rx) = mpmc_channel::<u64>(16).unwrap();
    // Threads 0 and 1 of each end get a clone of their own, 2 and 3 share
    // one handle (the original) through an `Arc`.
    let (tx, rx) = (Arc::new(tx), Arc::new(rx));
    let receivers: Vec<_> = (0..THREADS)
        .map(|r| {
            let own = (r < 2).then(|| rx.try_clone().unwrap());
            let shared = Arc::clone(&rx);
            std::thread::spawn(move || {
                let rx = own.as_ref().unwrap_or(&shared);
                let mut got = Vec::new();
                let mut last = [None::<u64>; THREADS as usize];
                loop {
                    match rx.recv_timeout(LIMIT) {
                        Ok(v) => {
                            let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                            assert!(last[p].is_none_or(|prev| prev < i), "order");
                            last[p] = Some(i);
                            got.push(v);
                        }
                        Err(RecvTimeoutError::Disconnected) => return got,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();
    let senders: Vec<_> = (0..THREADS)
        .map(|p| {
            let own = (p < 2).then(|| tx.try_clone().unwrap());
            let shared = Arc::clone(&tx);
            std::thread::spawn(move || {
                let tx = own.as_ref().unwrap_or(&shared);
                for i in 0..PER_THREAD {
                    tx.send(p << 32 | i).unwrap();
                }
            })
        })
        .collect();
    // The last sender handle leaves with the last sending thread.
    drop((tx, rx));
    for t in senders {
        t.join().unwrap();
    }
    let got: Vec<Vec<u64>> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
    let mut all: Vec<u64> = got.concat();
    all.sort_unstable();
    let want: Vec<u64> = (0..THREADS)
        .flat_map(|p| (0..PER_THREAD).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all.len(), want.len());
    assert!(all == want, "every value exactly once");
}

#[test]
fn iterating_an_mpmc_receiver_yields_every_value_then_ends() {
    let (tx, rx) = mpmc_channel::<u64>(16).unwrap();
    let tx2 = tx.try_clone().unwrap();
    let senders = [tx, tx2].map(|tx| {
        std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        })
    });
    let mut got: Vec<u64> = rx.iter().collect();
    for s in senders {
        s.join().unwrap();
    }
    got.sort_unstable();
    let mut want: Vec<u64> = (0..1000).chain(0..1000).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(rx.try_iter().next(), None);
}
