//! A channel's attachment counts scribbled by a misbehaving peer: each
//! channel kind (typed SPSC, MPMC, bytes) with both ends attached, one of
//! them in a child process, and the other end's `count` word overwritten
//! through a second mapping of the region. The surviving end must never
//! take the lie for a clean end: a receiver gets every value whose send
//! returned, then `Corrupted` (never `Disconnected` while the sender
//! lives), and a sender gets `Corrupted`, never `Disconnected`, while the
//! receiver lives. Also a count scribbled huge, one scribbled below the
//! handles attached, and a healthy MPMC channel whose senders attach and
//! detach all the time, which must never look corrupted.
//!
//! Where the words are (`src/channel/blocking.rs`, `src/channel/side.rs`):
//! a channel region's data starts with the channel header; its senders'
//! attachment table (`Side`) is at offset 256 and its receivers' at 512.
//! In each table, `attached` is at +0, `count` at +4, the 32 entries at
//! +8..+136 and `epoch` at +136.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, kill, report, spawn, unique_name, wait_for_line};
use shmkit::channel::{
    ByteReceiver, ByteSendTimeoutError, ByteSender, ByteTrySendError, MpmcReceiver, MpmcSender,
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use shmkit::{Region, RegionOptions};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// How long a check of the other end may take (one probe slice is 10 ms;
/// this leaves room for a loaded machine).
const NOTICE: Duration = Duration::from_secs(5);
/// A short wait that must end in `Corrupted` rather than a timeout.
const WAIT: Duration = Duration::from_millis(200);

/// The senders' attachment table in the channel header.
const SENDERS: usize = 256;
/// The receivers' attachment table.
const RECEIVERS: usize = 512;
/// The count word in a table.
const COUNT: usize = 4;
/// The first entry in a table.
const TOKENS: usize = 8;

/// Values a sending child sends before it reports.
const N: u64 = 10;
const CAPACITY: usize = 64;
const BYTE_CAPACITY: usize = 4096;
const MAX_MESSAGE: usize = 64;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Typed,
    Mpmc,
    Bytes,
}

const KINDS: [Kind; 3] = [Kind::Typed, Kind::Mpmc, Kind::Bytes];

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Typed => "typed",
            Kind::Mpmc => "mpmc",
            Kind::Bytes => "bytes",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "typed" => Kind::Typed,
            "mpmc" => Kind::Mpmc,
            "bytes" => Kind::Bytes,
            other => panic!("unknown kind {other}"),
        }
    }
}

/// A sending end of any kind.
enum Tx {
    Typed(Sender<u64>),
    Mpmc(MpmcSender<u64>),
    Bytes(ByteSender),
}

/// A receiving end of any kind.
enum Rx {
    Typed(Receiver<u64>),
    Mpmc(MpmcReceiver<u64>),
    Bytes(ByteReceiver),
}

/// What a send came to, the value left out.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Ok,
    Full,
    Timeout,
    Disconnected,
    Corrupted,
}

fn sent(r: Result<(), impl Into<Sent>>) -> Sent {
    r.map_or_else(Into::into, |()| Sent::Ok)
}

impl<T> From<TrySendError<T>> for Sent {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => Sent::Full,
            TrySendError::Disconnected(_) => Sent::Disconnected,
            TrySendError::Corrupted(_) => Sent::Corrupted,
            e => panic!("{e}"),
        }
    }
}

impl<T> From<SendTimeoutError<T>> for Sent {
    fn from(e: SendTimeoutError<T>) -> Self {
        match e {
            SendTimeoutError::Timeout(_) => Sent::Timeout,
            SendTimeoutError::Disconnected(_) => Sent::Disconnected,
            SendTimeoutError::Corrupted(_) => Sent::Corrupted,
            e => panic!("{e}"),
        }
    }
}

impl From<ByteTrySendError> for Sent {
    fn from(e: ByteTrySendError) -> Self {
        match e {
            ByteTrySendError::Full => Sent::Full,
            ByteTrySendError::Disconnected => Sent::Disconnected,
            ByteTrySendError::Corrupted(_) => Sent::Corrupted,
            e => panic!("{e}"),
        }
    }
}

impl From<ByteSendTimeoutError> for Sent {
    fn from(e: ByteSendTimeoutError) -> Self {
        match e {
            ByteSendTimeoutError::Timeout => Sent::Timeout,
            ByteSendTimeoutError::Disconnected => Sent::Disconnected,
            ByteSendTimeoutError::Corrupted(_) => Sent::Corrupted,
            e => panic!("{e}"),
        }
    }
}

impl Tx {
    fn create(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Typed => Tx::Typed(Sender::create(name, CAPACITY).unwrap()),
            Kind::Mpmc => Tx::Mpmc(MpmcSender::create(name, CAPACITY).unwrap()),
            Kind::Bytes => Tx::Bytes(ByteSender::create(name, BYTE_CAPACITY, MAX_MESSAGE).unwrap()),
        }
    }

    fn open(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Typed => Tx::Typed(Sender::open(name).expect("open sender")),
            Kind::Mpmc => Tx::Mpmc(MpmcSender::open(name).expect("open sender")),
            Kind::Bytes => Tx::Bytes(ByteSender::open(name).expect("open sender")),
        }
    }

    fn send_timeout(&self, v: u64, timeout: Duration) -> Sent {
        match self {
            Tx::Typed(t) => sent(t.send_timeout(v, timeout)),
            Tx::Mpmc(t) => sent(t.send_timeout(v, timeout)),
            Tx::Bytes(t) => sent(t.send_timeout(&v.to_le_bytes(), timeout)),
        }
    }

    fn try_send(&self, v: u64) -> Sent {
        match self {
            Tx::Typed(t) => sent(t.try_send(v)),
            Tx::Mpmc(t) => sent(t.try_send(v)),
            Tx::Bytes(t) => sent(t.try_send(&v.to_le_bytes())),
        }
    }
}

impl Rx {
    fn create(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Typed => Rx::Typed(Receiver::create(name, CAPACITY).unwrap()),
            Kind::Mpmc => Rx::Mpmc(MpmcReceiver::create(name, CAPACITY).unwrap()),
            Kind::Bytes => {
                Rx::Bytes(ByteReceiver::create(name, BYTE_CAPACITY, MAX_MESSAGE).unwrap())
            }
        }
    }

    fn open(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Typed => Rx::Typed(Receiver::open(name).expect("open receiver")),
            Kind::Mpmc => Rx::Mpmc(MpmcReceiver::open(name).expect("open receiver")),
            Kind::Bytes => Rx::Bytes(ByteReceiver::open(name).expect("open receiver")),
        }
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<u64, RecvTimeoutError> {
        match self {
            Rx::Typed(r) => r.recv_timeout(timeout),
            Rx::Mpmc(r) => r.recv_timeout(timeout),
            Rx::Bytes(r) => {
                let mut buf = Vec::new();
                r.recv_timeout(&mut buf, timeout)?;
                Ok(u64::from_le_bytes(buf.try_into().expect("8-byte record")))
            }
        }
    }

    fn try_recv(&self) -> Result<u64, TryRecvError> {
        match self {
            Rx::Typed(r) => r.try_recv(),
            Rx::Mpmc(r) => r.try_recv(),
            Rx::Bytes(r) => {
                let mut buf = Vec::new();
                r.try_recv(&mut buf)?;
                Ok(u64::from_le_bytes(buf.try_into().expect("8-byte record")))
            }
        }
    }
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    let kind = Kind::parse(&args[0]);
    match role.as_str() {
        "send-then-wait" => {
            let tx = Tx::open(kind, &args[1]);
            for i in 0..N {
                assert_eq!(tx.send_timeout(i, LIMIT), Sent::Ok, "send {i}");
            }
            report("sent");
            std::thread::sleep(LIMIT);
        }
        "recv-then-wait" => {
            let rx = Rx::open(kind, &args[1]);
            report("attached");
            std::thread::sleep(LIMIT);
            drop(rx);
        }
        other => panic!("unknown role {other}"),
    }
}

/// The word at `offset` in the data of the channel region `name`, through
/// a mapping of its own (any layout), as a peer would write it.
fn word(name: &str, offset: usize) -> (Region, usize) {
    let region = RegionOptions::new().any_layout().open(name).unwrap();
    region.place::<AtomicU32>(offset).unwrap();
    (region, offset)
}

fn store(at: &(Region, usize), v: u32) {
    at.0.place::<AtomicU32>(at.1)
        .unwrap()
        .store(v, Ordering::SeqCst);
}

fn load(at: &(Region, usize)) -> u32 {
    at.0.place::<AtomicU32>(at.1)
        .unwrap()
        .load(Ordering::SeqCst)
}

/// Receives the `N` values a "send-then-wait" child sent, in order.
fn receive_acknowledged(kind: Kind, rx: &Rx) {
    for i in 0..N {
        assert_eq!(rx.recv_timeout(LIMIT), Ok(i), "{kind:?}: value {i}");
    }
}

/// Every receive form, with the sender alive: `Corrupted`, soon.
fn assert_receives_corrupted(kind: Kind, rx: &Rx) {
    for _ in 0..3 {
        let t = Instant::now();
        let got = rx.recv_timeout(WAIT);
        assert!(
            matches!(got, Err(RecvTimeoutError::Corrupted(_))),
            "{kind:?}: recv_timeout gave {got:?}"
        );
        assert!(t.elapsed() < NOTICE, "{kind:?}: {:?}", t.elapsed());
        let got = rx.try_recv();
        assert!(
            matches!(got, Err(TryRecvError::Corrupted(_))),
            "{kind:?}: try_recv gave {got:?}"
        );
    }
}

/// A receiver (here) and a sender (a child) that sent `N` values, their
/// sends all returned.
fn receiver_and_sending_child(kind: Kind, tag: &str) -> (String, Rx, Child) {
    let name = unique_name(tag);
    let rx = Rx::create(kind, &name);
    let mut child = spawn("send-then-wait", &[kind.arg(), &name]);
    assert_eq!(wait_for_line(&mut child), "sent");
    (name, rx, child)
}

#[test]
fn senders_count_scribbled_to_zero_is_corrupted_not_disconnected() {
    for kind in KINDS {
        let (name, rx, child) = receiver_and_sending_child(kind, "senders-zero");
        let count = word(&name, SENDERS + COUNT);
        assert_eq!(load(&count), 1, "{kind:?}: one sender attached");
        store(&count, 0);
        receive_acknowledged(kind, &rx);
        assert_receives_corrupted(kind, &rx);
        kill(child);
    }
}

#[test]
fn receivers_count_scribbled_to_zero_is_corrupted_not_disconnected() {
    for kind in KINDS {
        let name = unique_name("receivers-zero");
        let tx = Tx::create(kind, &name);
        let mut child = spawn("recv-then-wait", &[kind.arg(), &name]);
        assert_eq!(wait_for_line(&mut child), "attached");
        let count = word(&name, RECEIVERS + COUNT);
        assert_eq!(load(&count), 1, "{kind:?}: one receiver attached");
        store(&count, 0);
        for v in 0..3 {
            let t = Instant::now();
            let got = tx.send_timeout(v, WAIT);
            assert_eq!(got, Sent::Corrupted, "{kind:?}: send_timeout");
            assert!(t.elapsed() < NOTICE, "{kind:?}: {:?}", t.elapsed());
            assert_eq!(tx.try_send(v), Sent::Corrupted, "{kind:?}: try_send");
        }
        kill(child);
    }
}

/// A count that no healthy channel reaches is `Corrupted` at once, with
/// the sender alive and after it left: the receiver neither waits forever
/// nor reports a clean end.
#[test]
fn senders_count_scribbled_huge_is_corrupted_without_a_hang() {
    for kind in KINDS {
        let (name, rx, child) = receiver_and_sending_child(kind, "senders-huge");
        let count = word(&name, SENDERS + COUNT);
        store(&count, u32::MAX);
        receive_acknowledged(kind, &rx);
        assert_receives_corrupted(kind, &rx);
        kill(child);
        assert_receives_corrupted(kind, &rx);
    }
    // The same after a clean leave, in one process: the leave takes the
    // scribbled count down by one, which is still far past the table.
    for kind in KINDS {
        let name = unique_name("senders-huge-left");
        let rx = Rx::create(kind, &name);
        let tx = Tx::open(kind, &name);
        assert_eq!(tx.send_timeout(7, LIMIT), Sent::Ok);
        let count = word(&name, SENDERS + COUNT);
        store(&count, u32::MAX);
        drop(tx);
        assert_eq!(rx.recv_timeout(LIMIT), Ok(7), "{kind:?}");
        assert_receives_corrupted(kind, &rx);
    }
}

/// Two senders and a count scribbled to 1: when one leaves cleanly, the
/// count reaches 0 while the other is still attached.
#[test]
fn a_count_below_the_attached_senders_is_corrupted_when_one_leaves() {
    let name = unique_name("mpmc-below");
    let rx = Rx::create(Kind::Mpmc, &name);
    let mut child = spawn("send-then-wait", &[Kind::Mpmc.arg(), &name]);
    assert_eq!(wait_for_line(&mut child), "sent");
    let here = Tx::open(Kind::Mpmc, &name);
    assert_eq!(here.send_timeout(100, LIMIT), Sent::Ok);
    let count = word(&name, SENDERS + COUNT);
    assert_eq!(load(&count), 2);
    store(&count, 1);
    drop(here);
    assert_eq!(load(&count), 0);
    receive_acknowledged(Kind::Mpmc, &rx);
    assert_eq!(rx.recv_timeout(LIMIT), Ok(100));
    assert_receives_corrupted(Kind::Mpmc, &rx);
    kill(child);
}

/// The reverse, in one process for every kind: the receiver's count
/// scribbled to 0 while it is attached; the sender's calls say so.
#[test]
fn every_kind_in_one_process_reports_the_scribbled_count() {
    for kind in KINDS {
        let name = unique_name("one-process");
        let rx = Rx::create(kind, &name);
        let tx = Tx::open(kind, &name);
        for v in 0..N {
            assert_eq!(tx.try_send(v), Sent::Ok, "{kind:?}");
        }
        store(&word(&name, SENDERS + COUNT), 0);
        store(&word(&name, RECEIVERS + COUNT), 0);
        for v in 0..N {
            assert_eq!(rx.try_recv(), Ok(v), "{kind:?}");
        }
        assert_receives_corrupted(kind, &rx);
        assert_eq!(tx.send_timeout(1, WAIT), Sent::Corrupted, "{kind:?}");
        assert_eq!(tx.try_send(1), Sent::Corrupted, "{kind:?}");
        // Put right, the channel works again.
        store(&word(&name, SENDERS + COUNT), 1);
        store(&word(&name, RECEIVERS + COUNT), 1);
        assert_eq!(tx.try_send(5), Sent::Ok, "{kind:?}");
        assert_eq!(rx.recv_timeout(LIMIT), Ok(5), "{kind:?}");
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        drop(tx);
        assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
    }
}

/// An entry whose token belongs to no process (a scribbled word, never a
/// token) while the count says nobody is attached: the table contradicts
/// itself, which no healthy channel does.
#[test]
fn an_entry_held_while_the_count_is_zero_is_corrupted() {
    let name = unique_name("entry-held");
    let rx = Rx::create(Kind::Typed, &name);
    drop(Tx::open(Kind::Typed, &name));
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
    let entry = word(&name, SENDERS + TOKENS + 4 * 5);
    store(&entry, 0x8000_0001);
    let got = rx.recv_timeout(WAIT);
    assert!(
        matches!(got, Err(RecvTimeoutError::Corrupted(_))),
        "{got:?}"
    );
    store(&entry, 0);
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
}

/// Senders on two threads attach and detach all the time (each sends one
/// value per handle) while a receiver takes every value: the count passes
/// through 0 with entries being taken and freed around the receiver's
/// checks, which must never call the channel corrupted.
#[test]
fn senders_attaching_and_leaving_all_the_time_never_look_corrupted() {
    const THREADS: u64 = 2;
    const PER_THREAD: u64 = 2000;
    let name = unique_name("churn");
    let rx = MpmcReceiver::<u64>::create(&name, 64).unwrap();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let name = name.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Two attaches and two detaches per value, one entry
                    // handed from a handle to its clone.
                    let opened = MpmcSender::<u64>::open(&name).unwrap();
                    let clone = opened.try_clone().unwrap();
                    drop(opened);
                    clone.send(t << 32 | i).unwrap();
                }
            })
        })
        .collect();
    let mut seen = vec![0u64; THREADS as usize];
    let mut got = 0;
    let deadline = Instant::now() + LIMIT;
    while got < THREADS * PER_THREAD {
        assert!(Instant::now() < deadline, "received only {got}");
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(v) => {
                let (t, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                assert_eq!(i, seen[t], "thread {t}: values in order");
                seen[t] += 1;
                got += 1;
            }
            // Between two handles every sender may be gone for a moment.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            Err(e) => panic!("healthy channel reported {e:?} after {got} values"),
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
}
