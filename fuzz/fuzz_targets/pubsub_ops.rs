//! Runs sequences of loans, sends, receives, joins, leaves and scribbles
//! on an anonymous publish/subscribe service (`shmkit::pubsub`), and
//! checks every result against a model of what each subscriber has queued
//! and holds. Any mismatch panics.
//!
//! One publisher (replaced now and then: the old one is dropped, a new one
//! attaches through a handle of its own and continues the stream) and up
//! to the service's number of subscribers (each through its own handle,
//! `Publisher::subscriber`), all in this thread. The model numbers every
//! sample sent and knows its pattern (written by the target into the
//! loaned block), its block, and which subscriber entries still hold it
//! (queued or received). While nothing has been scribbled on, it is exact
//! and checks:
//! - a loan of `len` bytes fails with `TooLarge` past the largest block,
//!   with `Exhausted` exactly when every block of its class is taken (by
//!   unsent loans or by samples some subscriber still holds), and never
//!   returns a block an unsent loan or a held sample has;
//! - a send (`try_send`, `send_timeout(0)`, `send`, `send_copy`: the
//!   blocking forms only where the model says they will not wait) returns
//!   the next sequence number and queues the sample for every subscriber
//!   present; lossless, `try_send` and `send_timeout(0)` give the sample
//!   back (`Full` / `Timeout`) exactly when a present subscriber's queue
//!   is full; drop-oldest never does, and takes the oldest descriptor of a
//!   full queue back (releasing that subscriber's hold);
//! - each subscriber receives (`try_recv`) exactly the samples sent while
//!   it was present, in order, each with its sequence number, length,
//!   block and bytes; `Empty` when nothing is queued; `HeldLimit` once it
//!   holds its limit; a joiner takes the lowest free entry, with the next
//!   sequence number as its join sequence, and `ServiceBusy` when every
//!   entry is held; so is a second publisher while one is attached;
//! - `reclaim` frees nothing (nobody died); `free_blocks` of every class,
//!   `subscribers`, `next_seq`, `held` agree with the model; when
//!   everything is dropped at the end, every block is free.
//!
//! A scribble writes a word of the service's control area through a
//! handle of its own, as a misbehaving peer could: a header word (the
//! creator's words, `next_seq`, the publisher word, the present mask, an
//! entry's token or signals, or any other), a queue's header or slot
//! words, or the pool's header, state, holders or bitmap words (never a
//! block's bytes), with an arbitrary value, a small change of the word, a
//! flipped bit, or a plausible one (a live token, a shared or free state
//! of the word's generation, a holders mask with a subscriber's bit set or
//! cleared). A forgery pushes a descriptor into a subscriber's queue
//! through the ring's own protocol (a copy of one it holds or has queued,
//! one for a block an unsent loan has, one from before it joined, or any
//! fields). From then on the model is not compared; every call must still
//! return (only `try_send` and `send_timeout(0)`, never a blocking form)
//! with a typed error or a value, and: no loan returns a block an unsent
//! loan or a held sample of this process has, no received sample names a
//! block an unsent loan has, and the bytes of every unsent loan and held
//! sample stay what they were (scribbles never touch block bytes).
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  policy: drop-oldest if b & 1; subscribers: 1 + (b >> 1) % 4
//!      1    1  queue capacity: 1 << (b % 3); held limit: 1 + (b >> 2) % 3
//!      2    1  class 0: 1 + b % 24 blocks of 64 bytes
//!      3    1  class 1 if b & 1: 1 + (b >> 1) % 6 blocks of 256 bytes
//!      4    8  salt, u64 LE: mixed into every pattern
//!     12    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 13; a member byte picks the (b % n)-th of n
//! subscribers, a sample byte one of its samples; nothing happens without
//! one):
//!
//! ```text
//!  0  loan                u16 LE length (% largest block + 16)
//!  1  send an unsent loan index byte, form byte (% 3: try_send,
//!                         send_timeout(0), send)
//!  2  send_copy           u16 LE length
//!  3  drop an unsent loan index byte
//!  4  join                (publisher.subscriber())
//!  5  leave               member byte (drops its samples, then it)
//!  6  try_recv            member byte
//!  7  drop a sample       member byte, sample byte
//!  8  reclaim             byte: publisher if even, else a member
//!  9  replace publisher   (a second one is refused first)
//! 10  scribble a word     area byte, u16 LE index, kind byte, u64 LE
//! 11  forge a descriptor  member byte, kind byte, u64 LE
//! 12  check everything
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::pool::{BlockRef, LoanError, PoolConfig};
use shmkit::pubsub::{
    Descriptor, Publisher, Sample, SampleMut, SendCopyError, SendError, SendTimeoutError,
    ServiceConfig, SlowSubscriber, Subscriber, TryRecvError, TrySendError,
};
use shmkit::ring::mpmc::MpmcRing;
use shmkit::testing::pool as pool_wire;
use shmkit::testing::pubsub as wire;
use shmkit::{Error, Region, RegionOptions};
use shmkit_fuzz::{fill, intact, Input};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const OPS: u8 = 13;
const MAX_OPS: usize = 1_500;
/// Unsent loans kept at once.
const MAX_PENDING: usize = 6;
const MAX_REPLACEMENTS: usize = 16;
const MAX_JOINS: usize = 48;
/// Sends once the model is no longer exact: a subscriber whose scribbled
/// queue has room and refuses the push costs one 10 ms wait each.
const MAX_LAX_SENDS: usize = 8;

fn id(b: BlockRef) -> (u32, u32) {
    (b.class, b.index)
}

/// A subscriber and the samples it holds, which borrow it: the subscriber
/// is boxed and freed only after every one of them (see `Drop`).
struct Member {
    /// Received and not dropped, each with the bytes it had when received.
    samples: Vec<(Sample<'static>, Vec<u8>)>,
    sub: NonNull<Subscriber>,
    entry: usize,
    /// Sequence numbers queued for it, oldest first (exact model only).
    queue: VecDeque<u64>,
}

impl Member {
    fn new(sub: Subscriber) -> Self {
        let entry = sub.entry();
        Member {
            samples: Vec::new(),
            sub: NonNull::from(Box::leak(Box::new(sub))),
            entry,
            queue: VecDeque::new(),
        }
    }

    /// The subscriber, for as long as this member lives.
    fn sub(&self) -> &'static Subscriber {
        // SAFETY: the box is freed only in `Drop`, after every sample (the
        // only borrows kept past one operation, all in `self.samples`).
        unsafe { self.sub.as_ref() }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.samples.clear();
        // SAFETY: from `Box::leak` in `new`; no sample borrows it now.
        drop(unsafe { Box::from_raw(self.sub.as_ptr()) });
    }
}

/// The publisher and its unsent loans, which borrow it: boxed, freed only
/// after every one of them.
struct Pub {
    /// Unsent loans, each with its pattern's seed.
    pending: Vec<(SampleMut<'static>, u64)>,
    publisher: NonNull<Publisher>,
}

impl Pub {
    fn new(p: Publisher) -> Self {
        Pub {
            pending: Vec::new(),
            publisher: NonNull::from(Box::leak(Box::new(p))),
        }
    }

    fn get(&self) -> &'static Publisher {
        // SAFETY: as for `Member::sub`: the loans are all in `pending`.
        unsafe { self.publisher.as_ref() }
    }
}

impl Drop for Pub {
    fn drop(&mut self) {
        self.pending.clear();
        // SAFETY: from `Box::leak` in `new`; no loan borrows it now.
        drop(unsafe { Box::from_raw(self.publisher.as_ptr()) });
    }
}

/// A sample sent, while some subscriber still holds it.
struct Sent {
    seed: u64,
    len: usize,
    class: usize,
    /// Unknown for `send_copy`.
    block: Option<BlockRef>,
    /// Entries holding it (queued or received).
    holders: u64,
}

struct Model {
    exact: bool,
    next_seq: u64,
    sizes: Vec<usize>,
    counts: Vec<usize>,
    sent: BTreeMap<u64, Sent>,
    next_seed: u64,
    salt: u64,
}

impl Model {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        (self.next_seed ^ self.salt).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    }

    fn class_for(&self, len: usize) -> Option<usize> {
        self.sizes.iter().position(|&s| s >= len)
    }

    /// Drops entry `entry`'s hold on sample `seq`.
    fn release(&mut self, seq: u64, entry: usize) {
        if let Some(s) = self.sent.get_mut(&seq) {
            s.holders &= !(1 << entry);
            if s.holders == 0 {
                self.sent.remove(&seq);
            }
        }
    }
}

/// The service's control words, as the scribbling handle sees them.
struct Words<'r> {
    header: &'r [AtomicU64],
    queues: Vec<&'r [AtomicU64]>,
    pool_header: &'r [AtomicU64],
    states: Vec<&'r [AtomicU64]>,
    holders: Vec<&'r [AtomicU64]>,
    bitmap: Vec<&'r [AtomicU64]>,
}

impl<'r> Words<'r> {
    fn new(region: &'r Region, config: &ServiceConfig, capacity: usize) -> Self {
        let words = |at: usize, n: usize| -> &'r [AtomicU64] {
            region.place_slice(at, n).expect("service words")
        };
        let pool = wire::pool_offset(config);
        let pool_header = words(pool, pool_wire::HEADER_SIZE / 8);
        let field = |c: usize, f: usize| {
            pool + pool_header[(pool_wire::CLASSES_OFFSET + c * pool_wire::CLASS_STRIDE + f) / 8]
                .load(Ordering::SeqCst) as usize
        };
        let counts: Vec<usize> = config.pool().classes().iter().map(|&(_, n)| n).collect();
        Words {
            header: words(0, wire::HEADER_SIZE / 8),
            queues: (0..config.subscriber_count())
                .map(|i| words(wire::queue_offset(config, i), (384 + 40 * capacity) / 8))
                .collect(),
            pool_header,
            states: (0..counts.len())
                // Block entries: state word, holders word, 16 bytes each.
                .map(|c| words(field(c, pool_wire::CLASS_META_OFFSET), 2 * counts[c]))
                .collect(),
            holders: (0..counts.len())
                .map(|c| words(field(c, pool_wire::CLASS_HOLDERS_OFFSET), 2 * counts[c] - 1))
                .collect(),
            bitmap: (0..counts.len())
                .map(|c| {
                    words(
                        field(c, pool_wire::CLASS_BITMAP_OFFSET),
                        counts[c].div_ceil(64),
                    )
                })
                .collect(),
        }
    }
}

/// Checks that no unsent loan and no held sample names `b`, except the
/// loan at `skip` in `p.pending` (the one being checked).
fn unshared(b: BlockRef, p: &Pub, members: &[Member], skip: Option<usize>, what: &str) {
    for (k, (s, _)) in p.pending.iter().enumerate() {
        assert!(
            Some(k) == skip || id(s.block()) != id(b),
            "{what} names {b:?}, which an unsent loan has"
        );
    }
    if what == "a loan" {
        for m in members {
            for (s, _) in &m.samples {
                assert!(
                    id(s.block()) != id(b),
                    "a loan names {b:?}, which entry {}'s sample {} holds",
                    m.entry,
                    s.seq()
                );
            }
        }
    }
}

/// The bytes of every unsent loan and held sample are as they were.
fn check_bytes(p: &Pub, members: &[Member]) {
    for (s, seed) in &p.pending {
        assert!(intact(s, *seed), "an unsent loan's bytes changed: {s:?}");
    }
    for m in members {
        for (s, bytes) in &m.samples {
            assert!(&s[..] == &bytes[..], "a held sample's bytes changed: {s:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let b0 = input.u8();
    let b1 = input.u8();
    let b2 = input.u8();
    let b3 = input.u8();
    let salt = input.u64();
    let policy = if b0 & 1 != 0 {
        SlowSubscriber::DropOldest
    } else {
        SlowSubscriber::Lossless
    };
    let entries = 1 + (b0 as usize >> 1) % 4;
    let capacity = 1usize << (b1 % 3);
    let held_limit = 1 + (b1 as usize >> 2) % 3;
    let mut pool = PoolConfig::new().class(64, 1 + b2 as usize % 24);
    if b3 & 1 != 0 {
        pool = pool.class(256, 1 + (b3 as usize >> 1) % 6);
    }
    let config = ServiceConfig::new(pool)
        .subscribers(entries)
        .queue_capacity(capacity)
        .held_limit(held_limit)
        .policy(policy);
    let counts: Vec<usize> = config.pool().classes().iter().map(|&(_, n)| n).collect();
    let sizes: Vec<usize> = config
        .pool()
        .classes()
        .iter()
        .map(|&(s, _)| s.next_multiple_of(64))
        .collect();
    let max = *sizes.last().unwrap();
    let first = Publisher::anonymous(&config).expect("a service");
    let service = first.region().as_fd().try_clone_to_owned().expect("dup");
    let fd = || service.try_clone().expect("dup");
    let handle = || {
        RegionOptions::new()
            .any_layout()
            .from_fd(fd())
            .expect("a handle")
    };
    let scribbler = handle();
    let pusher = handle();
    let words = Words::new(&scribbler, &config, capacity);
    let rings: Vec<MpmcRing<'_, Descriptor>> = (0..entries)
        .map(|i| MpmcRing::open(&pusher, wire::queue_offset(&config, i)).expect("a queue"))
        .collect();
    let mut m = Model {
        exact: true,
        next_seq: 0,
        sizes,
        counts: counts.clone(),
        sent: BTreeMap::new(),
        next_seed: 0,
        salt,
    };
    let busy = |m: &Model, p: &Option<Pub>, c: usize| {
        p.iter()
            .flat_map(|p| &p.pending)
            .filter(|(s, _)| s.block().class as usize == c)
            .count()
            + m.sent.values().filter(|s| s.class == c).count()
    };
    // The publisher and the members: each frees its handle after the
    // samples borrowing it (`Drop`).
    let mut p = Some(Pub::new(first));
    let mut members: Vec<Member> = Vec::new();
    let mut replacements = 0;
    let mut joins = 0;
    let mut lax_sends = 0;

    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = input.u8() % OPS;
        let lossless = policy == SlowSubscriber::Lossless;
        // A lossless send would wait for one of these.
        let full = lossless && members.iter().any(|x| x.queue.len() >= capacity);
        match op {
            0 | 2 => {
                let len = input.u16() as usize % (max + 16);
                let Some(pb) = p.as_mut() else { continue };
                let class = m.class_for(len);
                if op == 2 {
                    // `send_copy` blocks on a full queue: only where the
                    // model says it will not.
                    if !m.exact || full {
                        continue;
                    }
                    let seed = m.seed();
                    let mut bytes = vec![0; len];
                    fill(&mut bytes, seed);
                    let got = pb.get().send_copy(&bytes);
                    match (got, class) {
                        (Err(SendCopyError::TooLarge { len: l, max: x }), None) => {
                            assert_eq!((l, x), (len, max))
                        }
                        (Err(SendCopyError::Exhausted), Some(c)) => {
                            assert_eq!(busy(&m, &p, c), m.counts[c], "exhausted with a block free")
                        }
                        (Ok(seq), Some(c)) => {
                            assert!(
                                busy(&m, &p, c) < m.counts[c],
                                "a loan with every block taken"
                            );
                            sent(
                                &mut m,
                                &mut members,
                                policy,
                                capacity,
                                seq,
                                seed,
                                len,
                                c,
                                None,
                            );
                        }
                        (got, class) => panic!("send_copy of {len} (class {class:?}): {got:?}"),
                    }
                    continue;
                }
                if pb.pending.len() >= MAX_PENDING {
                    continue;
                }
                let got = pb.get().loan(len);
                match (got, class) {
                    (Err(LoanError::TooLarge { len: l, max: x }), None) => {
                        assert_eq!((l, x), (len, max));
                    }
                    (Ok(mut s), Some(c)) => {
                        let b = s.block();
                        assert_eq!((b.class as usize, s.len()), (c, len));
                        unshared(b, pb, &members, None, "a loan");
                        if m.exact {
                            assert!(
                                busy(&m, &p, c) < m.counts[c],
                                "a loan with every block taken"
                            );
                        }
                        let seed = m.seed();
                        fill(&mut s, seed);
                        p.as_mut().unwrap().pending.push((s, seed));
                    }
                    (Err(LoanError::Exhausted), Some(c)) => {
                        if m.exact {
                            assert_eq!(busy(&m, &p, c), m.counts[c], "exhausted with a block free");
                        }
                    }
                    (Err(LoanError::Corrupted(w)), Some(_)) => assert!(!m.exact, "{w}"),
                    (got, class) => panic!("loan of {len} (class {class:?}): {:?}", got.err()),
                }
            }
            1 | 3 => {
                let k = input.u8() as usize;
                let mut form = input.u8() % 3;
                let Some(pb) = p.as_mut() else { continue };
                if pb.pending.is_empty() || (op == 1 && !m.exact && lax_sends >= MAX_LAX_SENDS) {
                    continue;
                }
                if op == 1 && !m.exact {
                    lax_sends += 1;
                }
                let (s, seed) = pb.pending.swap_remove(k % pb.pending.len());
                assert!(intact(&s, seed), "an unsent loan's bytes changed");
                if op == 3 {
                    drop(s);
                    continue;
                }
                if form == 2 && (!m.exact || full) {
                    // `send` would wait.
                    form = 0;
                }
                let (block, len) = (s.block(), s.len());
                let got: Result<u64, Option<SampleMut<'static>>> = match form {
                    0 => s.try_send().map_err(|e| match e {
                        TrySendError::Full(s) => Some(s),
                        TrySendError::Corrupted(_) => None,
                        e => panic!("try_send: {e:?}"),
                    }),
                    1 => s.send_timeout(Duration::ZERO).map_err(|e| match e {
                        SendTimeoutError::Timeout(s) => Some(s),
                        SendTimeoutError::Corrupted(_) => None,
                        e => panic!("send_timeout: {e:?}"),
                    }),
                    _ => s.send().map_err(|e| match e {
                        SendError::Corrupted(_) => None,
                        e => panic!("send: {e:?}"),
                    }),
                };
                match got {
                    Ok(seq) => {
                        if m.exact {
                            assert!(!full, "sent past a full queue");
                            let c = block.class as usize;
                            sent(
                                &mut m,
                                &mut members,
                                policy,
                                capacity,
                                seq,
                                seed,
                                len,
                                c,
                                Some(block),
                            );
                        } else {
                            m.next_seq = seq.wrapping_add(1);
                        }
                    }
                    Err(Some(s)) => {
                        assert!(!m.exact || full, "a send refused with room in every queue");
                        assert!(lossless || !m.exact, "drop-oldest refused a send");
                        assert_eq!(s.block(), block, "the sample that came back");
                        assert!(intact(&s, seed), "a returned sample's bytes changed");
                        pb.pending.push((s, seed));
                    }
                    Err(None) => assert!(!m.exact, "a send found corruption"),
                }
            }
            4 => {
                if joins >= MAX_JOINS {
                    continue;
                }
                joins += 1;
                let Some(pb) = p.as_ref() else { continue };
                match pb.get().subscriber() {
                    Ok(sub) => {
                        if m.exact {
                            let free = (0..entries)
                                .find(|e| members.iter().all(|x| x.entry != *e))
                                .expect("joined with every entry held");
                            assert_eq!(sub.entry(), free, "a joiner's entry");
                            assert_eq!(sub.join_seq(), m.next_seq, "a joiner's sequence");
                        }
                        assert!(sub.entry() < entries && sub.held() == 0);
                        // (A scribbled header gives a joiner another limit.)
                        assert!(!m.exact || sub.held_limit() == held_limit);
                        members.push(Member::new(sub));
                    }
                    Err(Error::ServiceBusy { role }) => {
                        assert_eq!(role, "subscriber");
                        assert!(
                            !m.exact || members.len() == entries,
                            "refused with a free entry"
                        );
                    }
                    Err(e) => assert!(!m.exact, "join: {e}"),
                }
            }
            5 => {
                let k = input.u8() as usize;
                if members.is_empty() {
                    continue;
                }
                let x = members.swap_remove(k % members.len());
                check_member(&x, &m);
                if m.exact {
                    for seq in x
                        .queue
                        .iter()
                        .copied()
                        .chain(x.samples.iter().map(|(s, _)| s.seq()))
                    {
                        m.release(seq, x.entry);
                    }
                }
                drop(x);
            }
            6 => {
                let k = input.u8() as usize;
                if members.is_empty() {
                    continue;
                }
                let k = k % members.len();
                let pending: Vec<BlockRef> = p
                    .iter()
                    .flat_map(|p| &p.pending)
                    .map(|(s, _)| s.block())
                    .collect();
                let x = &mut members[k];
                let sub = x.sub();
                assert_eq!(sub.held(), x.samples.len(), "held count");
                let got = sub.try_recv();
                if x.samples.len() >= sub.held_limit() {
                    assert!(matches!(got, Err(TryRecvError::HeldLimit)), "{got:?}");
                    continue;
                }
                match got {
                    Ok(s) => {
                        let b = s.block();
                        assert!(
                            pending.iter().all(|&q| id(q) != id(b)),
                            "a sample names {b:?}, which an unsent loan has"
                        );
                        assert!(s.len() <= m.sizes[b.class as usize]);
                        if m.exact {
                            let seq = x.queue.pop_front().expect("received from an empty queue");
                            let want = &m.sent[&seq];
                            assert_eq!((s.seq(), s.len()), (seq, want.len), "the sample received");
                            assert!(want.block.is_none_or(|w| w == b), "the sample's block");
                            assert_eq!(b.class as usize, want.class);
                            assert!(intact(&s, want.seed), "sample {seq}'s bytes");
                        }
                        let bytes = s.to_vec();
                        x.samples.push((s, bytes));
                    }
                    Err(TryRecvError::Empty) => {
                        assert!(
                            !m.exact || x.queue.is_empty(),
                            "empty with {:?} queued",
                            x.queue
                        )
                    }
                    Err(TryRecvError::Corrupted(w)) => assert!(!m.exact, "{w}"),
                    Err(e) => panic!("try_recv: {e:?}"),
                }
                assert_eq!(sub.held(), x.samples.len(), "held count");
            }
            7 => {
                let k = input.u8() as usize;
                let j = input.u8() as usize;
                if members.is_empty() {
                    continue;
                }
                let n = members.len();
                let x = &mut members[k % n];
                if x.samples.is_empty() {
                    continue;
                }
                let (s, bytes) = x.samples.swap_remove(j % x.samples.len());
                assert!(s[..] == bytes[..], "a held sample's bytes changed");
                let seq = s.seq();
                drop(s);
                if m.exact {
                    m.release(seq, x.entry);
                }
                assert_eq!(x.sub().held(), x.samples.len());
            }
            8 => {
                let k = input.u8() as usize;
                let got = if k % 2 == 0 || members.is_empty() {
                    match p.as_ref() {
                        Some(pb) => pb.get().reclaim(),
                        None => continue,
                    }
                } else {
                    members[k / 2 % members.len()].sub().reclaim()
                };
                if m.exact {
                    assert_eq!(got, Ok(0), "reclaim with nobody dead");
                }
            }
            9 => {
                if replacements >= MAX_REPLACEMENTS {
                    continue;
                }
                replacements += 1;
                if p.is_some() {
                    // A second one is refused while the first is attached.
                    match Publisher::from_region(handle()) {
                        Err(Error::ServiceBusy { role }) => assert_eq!(role, "publisher"),
                        Err(e) => assert!(!m.exact, "a second publisher: {e}"),
                        Ok(second) => {
                            assert!(!m.exact, "two publishers attached");
                            drop(second);
                        }
                    }
                }
                // The old one leaves (its unsent loans first), a new one
                // continues the stream.
                drop(p.take());
                match Publisher::from_region(handle()) {
                    Ok(np) => {
                        if m.exact {
                            assert_eq!(np.next_seq(), m.next_seq, "the stream continues");
                        } else {
                            m.next_seq = np.next_seq();
                        }
                        p = Some(Pub::new(np));
                    }
                    Err(e) => assert!(!m.exact, "a new publisher: {e}"),
                }
            }
            10 => {
                let area = input.u8() % 6;
                let at = input.u16() as usize;
                let kind = input.u8();
                let raw = input.u64();
                let tokens: Vec<u64> = (0..entries)
                    .map(|e| {
                        words.header[(wire::ENTRIES_OFFSET + e * wire::ENTRY_STRIDE) / 8]
                            .load(Ordering::SeqCst)
                            & 0xffff_ffff
                    })
                    .chain([
                        words.header[wire::PUBLISHER_OFFSET / 8].load(Ordering::SeqCst)
                            & 0xffff_ffff,
                    ])
                    .filter(|&t| t != 0)
                    .collect();
                let nclasses = counts.len();
                let (word, plausible) = match area {
                    0 => {
                        let interesting: Vec<usize> = (0..8)
                            .chain([
                                wire::NEXT_SEQ_OFFSET / 8,
                                wire::PUBLISHER_OFFSET / 8,
                                wire::PRESENT_OFFSET / 8,
                            ])
                            .chain((0..4).map(|k| wire::SENDING_OFFSET / 8 + k))
                            .chain((0..entries + 1).flat_map(|e| {
                                // Token, signals, then the owed slots.
                                let w = (wire::ENTRIES_OFFSET + e * wire::ENTRY_STRIDE) / 8;
                                (w..w + 3 + 4 * wire::OWED_SLOTS).collect::<Vec<_>>()
                            }))
                            .collect();
                        let w = if kind & 0x80 != 0 {
                            at % words.header.len()
                        } else {
                            interesting[at % interesting.len()]
                        };
                        let word = &words.header[w];
                        let old = word.load(Ordering::SeqCst);
                        let plausible = match w * 8 {
                            wire::PRESENT_OFFSET => old ^ 1 << (raw % 64 % (entries as u64 + 1)),
                            wire::NEXT_SEQ_OFFSET => {
                                m.next_seq.wrapping_add(raw % 5).wrapping_sub(2)
                            }
                            _ if tokens.is_empty() => 0,
                            _ => (old & !0xffff_ffff) | tokens[raw as usize % tokens.len()],
                        };
                        (word, plausible)
                    }
                    1 => {
                        let q = &words.queues[at % entries];
                        let word = &q[(at >> 2) % q.len()];
                        let old = word.load(Ordering::SeqCst);
                        (word, old.wrapping_add(u64::from(capacity as u32)))
                    }
                    2 => (&words.pool_header[at % words.pool_header.len()], raw % 4096),
                    _ => {
                        let c = at % nclasses;
                        let i = (at >> 2) % counts[c];
                        let (list, plausible): (&[AtomicU64], Box<dyn Fn(u64) -> u64>) = match area
                        {
                            3 => (
                                words.states[c],
                                Box::new(move |old: u64| {
                                    let g = old & !0xffff_ffff;
                                    if raw & 1 == 0 {
                                        g | pool_wire::DETACHED
                                    } else {
                                        g
                                    }
                                }),
                            ),
                            4 => (
                                words.holders[c],
                                Box::new(move |old: u64| old ^ 1 << (raw % entries as u64)),
                            ),
                            _ => {
                                let i = i / 64;
                                let word = &words.bitmap[c][i];
                                let old = word.load(Ordering::SeqCst);
                                (
                                    std::slice::from_ref(word),
                                    Box::new(move |_| old | 1 << (raw % 64)),
                                )
                            }
                        };
                        let word = &list[i % list.len()];
                        (word, plausible(word.load(Ordering::SeqCst)))
                    }
                };
                let old = word.load(Ordering::SeqCst);
                let value = match kind % 6 {
                    0 => raw,
                    1 => old.wrapping_add(raw % 5).wrapping_sub(2),
                    2 => old ^ 1 << (raw % 64),
                    3 => 0,
                    4 => plausible,
                    _ => u64::MAX,
                };
                word.store(value, Ordering::SeqCst);
                if value != old {
                    m.exact = false;
                }
            }
            11 => {
                let k = input.u8() as usize;
                let kind = input.u8() % 5;
                let raw = input.u64();
                if members.is_empty() {
                    continue;
                }
                let x = &members[k % members.len()];
                let mut d = Descriptor {
                    class: (raw % 3) as u32,
                    index: (raw >> 8) as u32 % 32,
                    generation: (raw >> 16) as u32 % 8,
                    len: (raw >> 24) as u32 % 300,
                    seq: m.next_seq.wrapping_add(raw >> 40 & 3),
                    reserved: 0,
                };
                let copy = |b: BlockRef, len: usize, seq: u64| Descriptor {
                    class: b.class,
                    index: b.index,
                    generation: b.generation,
                    len: len as u32,
                    seq,
                    reserved: 0,
                };
                match kind {
                    0 if !x.samples.is_empty() => {
                        let (s, _) = &x.samples[raw as usize % x.samples.len()];
                        d = copy(s.block(), s.len(), s.seq());
                    }
                    1 => {
                        if let Some((&seq, s)) =
                            m.sent.iter().nth(raw as usize % m.sent.len().max(1))
                        {
                            if let Some(b) = s.block {
                                d = copy(b, s.len, seq);
                            }
                        }
                    }
                    2 => {
                        if let Some(pb) = p.as_ref().filter(|pb| !pb.pending.is_empty()) {
                            let (s, _) = &pb.pending[raw as usize % pb.pending.len()];
                            d = copy(s.block(), s.len(), m.next_seq);
                        }
                    }
                    3 => d.seq = x.sub().join_seq().wrapping_sub(1 + raw % 3),
                    _ => {}
                }
                if rings[x.entry].try_push(d).is_ok() {
                    m.exact = false;
                }
            }
            _ => {
                if let Some(pb) = p.as_ref() {
                    let publisher = pb.get();
                    if m.exact {
                        for c in 0..counts.len() {
                            assert_eq!(
                                publisher.free_blocks(c),
                                Some(counts[c] - busy(&m, &p, c)),
                                "free blocks of class {c}"
                            );
                        }
                        assert_eq!(publisher.subscribers(), members.len());
                        assert_eq!(publisher.next_seq(), m.next_seq);
                    }
                    assert!(publisher.free_blocks(counts.len()).is_none());
                }
                for x in &members {
                    check_member(x, &m);
                }
            }
        }
        if let Some(pb) = p.as_ref() {
            check_bytes(pb, &members);
        }
        if m.exact {
            let mut seen: Vec<usize> = members.iter().map(|x| x.entry).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), members.len(), "two subscribers on one entry");
        }
    }

    // Everything dropped: every block comes back.
    for x in &members {
        check_member(x, &m);
    }
    drop(members);
    if let (Some(pb), true) = (p.as_mut(), m.exact) {
        pb.pending.clear();
        for (c, &n) in counts.iter().enumerate() {
            assert_eq!(
                pb.get().free_blocks(c),
                Some(n),
                "class {c} after everything was dropped"
            );
        }
    }
    drop(p);
});

/// A member's samples kept their bytes; its counts are the model's.
fn check_member(x: &Member, m: &Model) {
    let sub = x.sub();
    assert_eq!(sub.held(), x.samples.len(), "held count");
    assert_eq!(sub.entry(), x.entry);
    for (s, bytes) in &x.samples {
        assert!(s[..] == bytes[..], "a held sample's bytes changed: {s:?}");
        if m.exact {
            assert!(
                intact(s, m.sent[&s.seq()].seed),
                "sample {}'s bytes",
                s.seq()
            );
        }
    }
}

/// Records sample `seq` as sent to every member (drop-oldest first takes
/// the oldest descriptor of a full queue back).
#[allow(clippy::too_many_arguments)]
fn sent(
    m: &mut Model,
    members: &mut [Member],
    policy: SlowSubscriber,
    capacity: usize,
    seq: u64,
    seed: u64,
    len: usize,
    class: usize,
    block: Option<BlockRef>,
) {
    assert_eq!(seq, m.next_seq, "the sequence number");
    m.next_seq += 1;
    let mut holders = 0;
    for x in members.iter_mut() {
        if x.queue.len() >= capacity {
            assert_eq!(policy, SlowSubscriber::DropOldest);
            let old = x.queue.pop_front().unwrap();
            m.release(old, x.entry);
        }
        x.queue.push_back(seq);
        holders |= 1 << x.entry;
    }
    if holders != 0 {
        m.sent.insert(
            seq,
            Sent {
                seed,
                len,
                class,
                block,
                holders,
            },
        );
    }
}
