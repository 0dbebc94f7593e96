//! The byte ring: wrap-around at every alignment, empty and maximum-size
//! records, grants, in-place reads, creation and open validation, peers
//! that scribble on indices and frames, and streams of records between
//! real processes.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, report, spawn, unique_name};
use shmkit::ring::bytes::{
    max_message_for, ByteRing, Consumer, HeapByteRing, Producer, FRAME_HEADER, MIN_CAPACITY,
};
use shmkit::ring::bytes::{PopIntoError, WriteError};
use shmkit::ring::{Corrupted, PopError};
use shmkit::testing::bytes::{corrupt_bytes, corrupt_word, HEADER_SIZE};
use shmkit::{Error, Region, RegionOptions};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

// Documented header layout.
const MAGIC_AT: usize = 0;
const CAPACITY_AT: usize = 8;
const MAX_AT: usize = 16;
const PROD_AT: usize = 128;
const CONS_AT: usize = 256;
const KIND_RECORD: u64 = 0x5245_4344;
const KIND_WRAP: u64 = 0x5752_4150;

// ---------------------------------------------------------------------------
// Deterministic contents

/// splitmix64: the stream every record's size and bytes come from.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Record `i`'s contents for `seed`, written into `buf`: an xorshift64
/// stream seeded from both.
fn fill(seed: u64, i: u64, buf: &mut [u8]) {
    let mut s = mix(seed ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03)) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&next().to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&next().to_le_bytes()[..n]);
}

fn record(seed: u64, i: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(seed, i, &mut v);
    v
}

/// Record `i`'s size in the cross-process stream: mostly small, every
/// alignment, with empty and 64 KiB records mixed in.
fn stream_size(seed: u64, i: u64) -> usize {
    if i % 777 == 5 {
        return 0;
    }
    if i % 1000 == 7 {
        return 65536;
    }
    let r = mix(seed.wrapping_add(i) ^ 0x5151);
    ((r % 65537) >> ((r >> 40) % 17)) as usize
}

/// FNV-1a, a word at a time, over a stream of records (length, then
/// bytes).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x100_0000_01b3);
    }
    fn record(&mut self, r: &[u8]) {
        self.word(r.len() as u64);
        let mut chunks = r.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }
}

fn spin(spins: &mut u32, deadline: Instant, what: &str) {
    *spins += 1;
    if *spins % 64 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
    assert!(Instant::now() < deadline, "timed out: {what}");
}

/// Sends record `i` of `seed`: by copy, or (every third) reserving more
/// than needed and shrinking on commit.
fn send_record(
    tx: &mut Producer<'_>,
    seed: u64,
    i: u64,
    len: usize,
    hash: &mut Fnv,
    deadline: Instant,
) {
    let max = tx.ring().max_message();
    let mut spins = 0;
    if i % 3 == 1 {
        let extra = 17.min(max - len);
        loop {
            match tx.write_chunk(len + extra) {
                Ok(mut g) => {
                    fill(seed, i, &mut g[..len]);
                    hash.record(&g[..len]);
                    g.commit(len);
                    return;
                }
                Err(WriteError::Full) => spin(&mut spins, deadline, "room to reserve"),
                Err(e) => panic!("reserve {i}: {e}"),
            }
        }
    }
    let data = record(seed, i, len);
    hash.record(&data);
    loop {
        match tx.try_push(&data) {
            Ok(()) => return,
            Err(WriteError::Full) => spin(&mut spins, deadline, "room to send"),
            Err(e) => panic!("send {i}: {e}"),
        }
    }
}

/// Receives record `i`, by copy into a `Vec`, into a slice, or in place;
/// checks it against `expect` and adds it to `hash`.
fn recv_record(
    rx: &mut Consumer<'_>,
    i: u64,
    expect: &[u8],
    got: &mut Vec<u8>,
    hash: &mut Fnv,
    deadline: Instant,
) {
    let mut spins = 0;
    loop {
        let r = match i % 3 {
            0 => rx
                .try_pop(got)
                .map(|n| assert_eq!(n, got.len()))
                .map_err(PopIntoError::from),
            1 => {
                got.resize(rx.ring().max_message(), 0);
                rx.try_pop_into(got).map(|n| got.truncate(n))
            }
            _ => rx
                .read_chunk()
                .map(|g| {
                    got.clear();
                    got.extend_from_slice(&g);
                })
                .map_err(PopIntoError::from),
        };
        match r {
            Ok(()) => break,
            Err(PopIntoError::Empty) => spin(&mut spins, deadline, "a record"),
            Err(e) => panic!("recv {i}: {e}"),
        }
    }
    assert_eq!(got.len(), expect.len(), "length of record {i}");
    assert!(got[..] == expect[..], "contents of record {i}");
    hash.record(got);
}

// ---------------------------------------------------------------------------
// Across processes

const STREAM_CAP: usize = 1 << 20;
const STREAM_MAX: usize = 65536 + 8;

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    let region = Region::open(&args[0]).expect("child open region");
    let ring = ByteRing::open(&region, 0).expect("child open ring");
    let seed: u64 = args[1].parse().unwrap();
    let count: u64 = args[2].parse().unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut hash = Fnv::new();
    match role.as_str() {
        "producer" => {
            // SAFETY: the parent only consumes; this is the one producer.
            let mut tx = unsafe { ring.producer() }.expect("producer");
            assert_eq!(
                tx.try_push(&vec![0; STREAM_MAX + 1]),
                Err(WriteError::TooLarge {
                    len: STREAM_MAX + 1,
                    max: STREAM_MAX
                })
            );
            for i in 0..count {
                let len = stream_size(seed, i);
                send_record(&mut tx, seed, i, len, &mut hash, deadline);
            }
        }
        "consumer" => {
            // SAFETY: the parent only produces; this is the one consumer.
            let mut rx = unsafe { ring.consumer() }.expect("consumer");
            let (mut got, mut expect) = (Vec::new(), Vec::new());
            for i in 0..count {
                expect.resize(stream_size(seed, i), 0);
                fill(seed, i, &mut expect);
                recv_record(&mut rx, i, &expect, &mut got, &mut hash, deadline);
            }
            assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));
        }
        other => panic!("unknown role {other}"),
    }
    report(format!("hash={:016x}", hash.0));
}

fn stream_region(tag: &str) -> (String, Region) {
    let name = unique_name(tag);
    let size = ByteRing::bytes_for(STREAM_CAP).unwrap();
    let region = RegionOptions::new()
        .size(size)
        .create_with(&name, |r| {
            ByteRing::create(r, 0, STREAM_CAP, STREAM_MAX).map(drop)
        })
        .expect("create region");
    (name, region)
}

#[test]
fn child_produces_parent_consumes_20k_records() {
    let (name, region) = stream_region("bytes-p2c");
    let ring = ByteRing::open(&region, 0).unwrap();
    // SAFETY: the child only produces; this is the one consumer.
    let mut rx = unsafe { ring.consumer() }.unwrap();
    let (seed, count) = (0x5eed_0001u64, 20_000u64);
    let child = spawn("producer", &[&name, &seed.to_string(), &count.to_string()]);
    let deadline = Instant::now() + LIMIT;
    let mut hash = Fnv::new();
    let (mut got, mut expect) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for i in 0..count {
        expect.resize(stream_size(seed, i), 0);
        fill(seed, i, &mut expect);
        recv_record(&mut rx, i, &expect, &mut got, &mut hash, deadline);
        bytes += got.len();
    }
    let results = finish(child, LIMIT);
    assert_eq!(results, [format!("hash={:016x}", hash.0)]);
    assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));
    assert!(bytes > 20 * 1024 * 1024, "only {bytes} bytes streamed");
}

#[test]
fn parent_produces_child_consumes_in_place() {
    let (name, region) = stream_region("bytes-c2p");
    let ring = ByteRing::open(&region, 0).unwrap();
    // SAFETY: the child only consumes; this is the one producer.
    let mut tx = unsafe { ring.producer() }.unwrap();
    let (seed, count) = (0x5eed_0002u64, 5_000u64);
    let child = spawn("consumer", &[&name, &seed.to_string(), &count.to_string()]);
    let deadline = Instant::now() + LIMIT;
    let mut hash = Fnv::new();
    for i in 0..count {
        let len = stream_size(seed, i);
        send_record(&mut tx, seed, i, len, &mut hash, deadline);
    }
    let results = finish(child, LIMIT);
    assert_eq!(results, [format!("hash={:016x}", hash.0)]);
}

// ---------------------------------------------------------------------------
// One process

/// Where a record of `len` bytes lands when the producer is at `prod`:
/// `(offset of its frame, producer index after it)`.
fn place(prod: u64, len: usize, cap: usize) -> (usize, u64) {
    let fp = 8 + len.div_ceil(8) * 8;
    let pos = prod as usize % cap;
    if cap - pos < fp {
        (0, prod + (cap - pos + fp) as u64)
    } else {
        (pos, prod + fp as u64)
    }
}

/// Moves both indices of a fresh ring to `to` with empty records.
fn advance(tx: &mut Producer<'_>, rx: &mut Consumer<'_>, to: u64) {
    while tx.index() < to {
        tx.try_push(&[]).unwrap();
        assert_eq!(rx.try_pop_into(&mut []), Ok(0));
    }
    assert_eq!((tx.index(), rx.index()), (to, to));
}

#[test]
fn wrap_around_at_every_alignment() {
    for cap in [16, 32, 64, 128, 256] {
        let max = max_message_for(cap);
        for start in (0..cap as u64).step_by(FRAME_HEADER) {
            for len in 0..=max {
                let mut ring = HeapByteRing::new(cap, max).unwrap();
                let (mut tx, mut rx) = ring.split().unwrap();
                advance(&mut tx, &mut rx, start);
                // Two records: the first from `start`, the second wherever
                // it lands (often a wrap).
                let lens = [len, max - len];
                let mut prod = start;
                for (k, &l) in lens.iter().enumerate() {
                    let (_, after) = place(prod, l, cap);
                    match tx.try_push(&record(cap as u64, k as u64, l)) {
                        Ok(()) => prod = after,
                        Err(WriteError::Full) => {
                            assert!(after - start > cap as u64, "Full with room");
                            break;
                        }
                        Err(e) => panic!("{e}"),
                    }
                    assert_eq!(tx.index(), prod, "cap {cap} start {start} len {l}");
                }
                let mut got = Vec::new();
                let mut cons = start;
                for (k, &l) in lens.iter().enumerate() {
                    if cons == prod {
                        break;
                    }
                    rx.try_pop(&mut got).unwrap();
                    assert_eq!(got, record(cap as u64, k as u64, l));
                    cons = place(cons, l, cap).1;
                    assert_eq!(rx.index(), cons);
                }
                assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));
            }
        }
    }
}

/// An empty ring accepts a record of the maximum size wherever its
/// indices stand: the reason for the `capacity/2 - 8` limit.
#[test]
fn empty_ring_always_takes_a_max_record() {
    for cap in [16, 64, 4096] {
        let max = max_message_for(cap);
        let mut got = Vec::new();
        for start in (0..2 * cap as u64).step_by(8) {
            let mut ring = HeapByteRing::new(cap, max).unwrap();
            let (mut tx, mut rx) = ring.split().unwrap();
            advance(&mut tx, &mut rx, start);
            let data = record(1, start, max);
            tx.try_push(&data).unwrap();
            rx.try_pop(&mut got).unwrap();
            assert_eq!(got, data);
        }
    }
}

#[test]
fn random_streams_match_a_model() {
    let mut rng = 0x1234_5678u64;
    let mut next = |n: u64| {
        rng = mix(rng);
        rng % n
    };
    for cap in [16usize, 32, 64, 256, 1024] {
        for max in [0, max_message_for(cap) / 3, max_message_for(cap)] {
            let mut ring = HeapByteRing::new(cap, max).unwrap();
            let (mut tx, mut rx) = ring.split().unwrap();
            let mut model = VecDeque::new();
            let mut got = Vec::new();
            for i in 0..20_000u64 {
                if next(2) == 0 {
                    let len = next(max as u64 + 2) as usize;
                    let data = record(7, i, len);
                    match tx.try_push(&data) {
                        Ok(()) => model.push_back(data),
                        Err(WriteError::TooLarge { len: l, max: m }) => {
                            assert_eq!((l, m), (len, max));
                            assert!(len > max);
                        }
                        Err(WriteError::Full) => assert!(!model.is_empty()),
                        Err(e) => panic!("{e}"),
                    }
                } else {
                    match rx.try_pop(&mut got) {
                        Ok(_) => assert_eq!(Some(&got), model.pop_front().as_ref()),
                        Err(PopError::Empty) => assert!(model.is_empty()),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }
}

#[test]
fn empty_records() {
    let mut ring = HeapByteRing::new(64, 24).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    tx.try_push(&[]).unwrap();
    tx.write_chunk(0).unwrap().commit_all();
    let mut g = tx.write_chunk(5).unwrap();
    g.fill(9);
    g.commit(0);
    assert_eq!(tx.index(), 24);
    let mut got = vec![1, 2, 3];
    assert_eq!(rx.try_pop(&mut got), Ok(0));
    assert!(got.is_empty());
    assert_eq!(rx.try_pop_into(&mut []), Ok(0));
    assert!(rx.read_chunk().unwrap().is_empty());
    assert_eq!(rx.read_chunk().unwrap_err(), PopError::Empty);
    // A ring of the minimum capacity carries only empty records.
    let mut tiny = HeapByteRing::new(MIN_CAPACITY, 0).unwrap();
    let (mut tx, mut rx) = tiny.split().unwrap();
    for _ in 0..5 {
        tx.try_push(&[]).unwrap();
        tx.try_push(&[]).unwrap();
        assert_eq!(tx.try_push(&[]), Err(WriteError::Full));
        assert_eq!(rx.try_pop_into(&mut []), Ok(0));
        assert_eq!(rx.try_pop_into(&mut []), Ok(0));
    }
    assert_eq!(
        tx.try_push(&[1]),
        Err(WriteError::TooLarge { len: 1, max: 0 })
    );
}

#[test]
fn max_size_records_and_too_large() {
    let (cap, max) = (256, 100);
    let mut ring = HeapByteRing::new(cap, max).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    let big = record(3, 0, max);
    tx.try_push(&big).unwrap();
    assert_eq!(
        tx.try_push(&[0; 101]),
        Err(WriteError::TooLarge { len: 101, max })
    );
    assert_eq!(
        tx.write_chunk(usize::MAX).unwrap_err(),
        WriteError::TooLarge {
            len: usize::MAX,
            max
        }
    );
    // 112 + 112 fit; a third does not (and Full changes nothing).
    tx.try_push(&big).unwrap();
    assert_eq!(tx.try_push(&big), Err(WriteError::Full));
    assert_eq!(tx.write_chunk(max).unwrap_err(), WriteError::Full);
    assert_eq!(tx.index(), 224);
    let mut got = Vec::new();
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, big);
    // 32 bytes left at the end: wrap, and the record goes to offset 0.
    tx.try_push(&big).unwrap();
    assert_eq!(tx.index(), 224 + 32 + 112);
    for _ in 0..2 {
        rx.try_pop(&mut got).unwrap();
        assert_eq!(got, big);
    }
    assert_eq!(rx.index(), tx.index());
}

#[test]
fn max_message_limits() {
    assert_eq!(max_message_for(16), 0);
    assert_eq!(max_message_for(64), 24);
    assert_eq!(max_message_for(1 << 20), (1 << 19) - 8);
    assert_eq!(max_message_for(8), 0);
    assert!(HeapByteRing::new(64, 24).is_ok());
    assert!(matches!(
        HeapByteRing::new(64, 25),
        Err(Error::InvalidSize { size: 25, .. })
    ));
    for cap in [0, 8, 24, 100, 1 << 20 | 1] {
        assert!(
            matches!(HeapByteRing::new(cap, 0), Err(Error::InvalidSize { .. })),
            "capacity {cap}"
        );
        assert!(matches!(
            ByteRing::bytes_for(cap),
            Err(Error::InvalidSize { .. })
        ));
    }
    assert_eq!(ByteRing::bytes_for(16).unwrap(), 16 + 384);
    assert_eq!(HEADER_SIZE, 384);
}

#[test]
fn grant_commit_shrink_and_drop() {
    let mut ring = HeapByteRing::new(128, 40).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    // Dropped: nothing published, the room is reused.
    {
        let mut g = tx.write_chunk(40).unwrap();
        g.fill(0xee);
    }
    assert_eq!(tx.index(), 0);
    assert_eq!(rx.read_chunk().unwrap_err(), PopError::Empty);
    // Shrunk: 40 reserved, 3 published, next record right after.
    let mut g = tx.write_chunk(40).unwrap();
    assert_eq!(g.len(), 40);
    g[..3].copy_from_slice(b"abc");
    g.commit(3);
    assert_eq!(tx.index(), 16);
    let mut g = tx.write_chunk(11).unwrap();
    g.copy_from_slice(b"hello world");
    g.commit_all();
    assert_eq!(tx.index(), 40);
    let mut got = Vec::new();
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, b"abc");
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, b"hello world");
    // A dropped grant that wrapped publishes nothing either.
    advance(&mut tx, &mut rx, 120);
    {
        let _unused = tx.write_chunk(30).unwrap();
    }
    assert_eq!(tx.index(), 120);
    assert_eq!(rx.read_chunk().unwrap_err(), PopError::Empty);
    tx.try_push(b"x").unwrap();
    assert_eq!(tx.index(), 144);
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, b"x");
}

#[test]
#[should_panic(expected = "exceeds")]
fn commit_len_beyond_grant_panics() {
    let mut ring = HeapByteRing::new(128, 40).unwrap();
    let (mut tx, _rx) = ring.split().unwrap();
    tx.write_chunk(4).unwrap().commit(5);
}

#[test]
fn read_in_place_and_release() {
    let mut ring = HeapByteRing::new(128, 40).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    for r in [&b"one"[..], b"two!", b""] {
        tx.try_push(r).unwrap();
    }
    let g = rx.read_chunk().unwrap();
    assert_eq!(&*g, b"one");
    assert_eq!(g.len(), 3);
    g.release();
    assert_eq!(rx.index(), 16);
    {
        let g = rx.read_chunk().unwrap();
        assert_eq!(&*g, b"two!");
    } // dropping releases too
    assert_eq!(rx.index(), 32);
    assert_eq!(&*rx.read_chunk().unwrap(), b"");
    assert_eq!(rx.read_chunk().unwrap_err(), PopError::Empty);
    // Space freed by reads is reused: fill the ring several times over.
    for i in 0..100u64 {
        let data = record(9, i, (i % 41) as usize);
        tx.try_push(&data).unwrap();
        assert_eq!(&*rx.read_chunk().unwrap(), &data[..]);
    }
}

#[test]
fn recv_into_too_small_leaves_the_record() {
    let mut ring = HeapByteRing::new(128, 40).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    tx.try_push(b"0123456789").unwrap();
    let mut small = [0u8; 9];
    assert_eq!(
        rx.try_pop_into(&mut small),
        Err(PopIntoError::TooLarge { len: 10, max: 9 })
    );
    assert_eq!(rx.index(), 0);
    let mut exact = [0u8; 10];
    assert_eq!(rx.try_pop_into(&mut exact), Ok(10));
    assert_eq!(&exact, b"0123456789");
}

#[test]
fn handles_resume_from_shared_indices() {
    let region = region_ring(256, 64);
    let ring = ByteRing::open(&region, 0).unwrap();
    {
        // SAFETY: one producer at a time in this test.
        let mut tx = unsafe { ring.producer() }.unwrap();
        tx.try_push(b"first").unwrap();
    }
    // SAFETY: the previous producer is gone.
    let mut tx = unsafe { ring.producer() }.unwrap();
    assert_eq!(tx.index(), 16);
    tx.try_push(b"second").unwrap();
    let mut got = Vec::new();
    {
        // SAFETY: the one consumer.
        let mut rx = unsafe { ByteRing::open(&region, 0).unwrap().consumer() }.unwrap();
        rx.try_pop(&mut got).unwrap();
        assert_eq!(got, b"first");
    }
    // SAFETY: the previous consumer is gone.
    let mut rx = unsafe { ring.consumer() }.unwrap();
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, b"second");
}

// ---------------------------------------------------------------------------
// Creation and open validation

fn region_ring(cap: usize, max: usize) -> Region {
    RegionOptions::new()
        .size(ByteRing::bytes_for(cap).unwrap())
        .anonymous_with(|r| ByteRing::create(r, 0, cap, max).map(drop))
        .unwrap()
}

fn corrupted(r: shmkit::Result<ByteRing<'_>>, what: &str) {
    match r {
        Err(Error::Corrupted { what: w }) => assert!(w.contains(what), "{w:?} is not {what:?}"),
        other => panic!("expected Corrupted({what}), got {other:?}"),
    }
}

#[test]
fn create_validation() {
    let region = Region::anonymous(4096).unwrap();
    assert!(matches!(
        ByteRing::create(&region, 0, 100, 0),
        Err(Error::InvalidSize { size: 100, .. })
    ));
    assert!(matches!(
        ByteRing::create(&region, 0, 1024, 505),
        Err(Error::InvalidSize { size: 505, .. })
    ));
    assert!(matches!(
        ByteRing::create(&region, 64, 1024, 0),
        Err(Error::Misaligned { offset: 64, .. })
    ));
    assert!(matches!(
        ByteRing::create(&region, 3840, 1024, 0),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        ByteRing::create(&region, 0, 4096, 0),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        ByteRing::create(&region, 8192, 16, 0),
        Err(Error::OutOfBounds { .. })
    ));
    // Two rings side by side.
    let a = ByteRing::create(&region, 0, 1024, 500).unwrap();
    let b = ByteRing::create(&region, 1408, 2048, 1000).unwrap();
    assert_eq!((a.capacity(), a.max_message()), (1024, 500));
    assert_eq!((b.capacity(), b.max_message()), (2048, 1000));
    let b = ByteRing::open(&region, 1408).unwrap();
    assert_eq!((b.capacity(), b.max_message()), (2048, 1000));
}

#[test]
fn open_validation() {
    // Zero-filled memory is not a ring.
    let zeroed = Region::anonymous(4096).unwrap();
    corrupted(ByteRing::open(&zeroed, 0), "magic");
    assert!(matches!(
        ByteRing::open(&zeroed, 128 + 1),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        ByteRing::open(&zeroed, 4096),
        Err(Error::OutOfBounds { .. })
    ));

    let region = region_ring(1024, 200);
    let ok = ByteRing::open(&region, 0).unwrap();
    assert_eq!((ok.capacity(), ok.max_message()), (1024, 200));
    let scribble = |at: usize, v: u64, what: &str| {
        // SAFETY (all three copies): one thread, no handle of the ring, and
        // the header words are atomics, which no reference to plain data
        // covers.
        let old: u64 = unsafe { region.read(at) }.unwrap();
        unsafe { region.write(at, &v) }.unwrap();
        corrupted(ByteRing::open(&region, 0), what);
        unsafe { region.write(at, &old) }.unwrap();
        ByteRing::open(&region, 0).unwrap();
    };
    scribble(MAGIC_AT, 0, "magic");
    scribble(MAGIC_AT, u64::from_le_bytes(*b"shmkBR\0\x02"), "magic");
    scribble(CAPACITY_AT, 0, "capacity");
    scribble(CAPACITY_AT, 1000, "capacity");
    scribble(CAPACITY_AT, 8, "capacity");
    scribble(CAPACITY_AT, 2048, "exceeds the region");
    scribble(CAPACITY_AT, 1 << 63, "exceeds the region");
    scribble(MAX_AT, 1024 / 2 - 7, "maximum message");
    scribble(MAX_AT, u64::MAX, "maximum message");
    // A region cut short of the claimed buffer.
    let short = Region::anonymous(1024).unwrap();
    ByteRing::create(&short, 0, 512, 0).unwrap();
    // SAFETY: as above.
    unsafe { short.write(CAPACITY_AT, &1024u64) }.unwrap();
    corrupted(ByteRing::open(&short, 0), "exceeds the region");
}

// ---------------------------------------------------------------------------
// Peers that scribble

/// A scribble and the `Corrupted` message it must cause.
type Case<'x> = (&'x str, &'x dyn Fn(&Scene));

/// Every ring error's `Corrupted` variant (and [`Corrupted`] itself)
/// displays as `ring state is corrupted: {what}`.
fn expect_corrupted<T: std::fmt::Debug, E: std::fmt::Display + std::fmt::Debug>(
    r: Result<T, E>,
    what: &str,
) {
    match r {
        Err(e) => {
            let msg = e.to_string();
            let w = msg
                .strip_prefix("ring state is corrupted: ")
                .unwrap_or_else(|| panic!("expected Corrupted({what}), got {e:?}"));
            assert!(w.contains(what), "{w:?} is not {what:?}");
        }
        other => panic!("expected Corrupted({what}), got {other:?}"),
    }
}

/// A region holding a ring of 256 bytes (max 64) at offset 0, with
/// helpers to make handles and to scribble on it as a peer could.
struct Scene {
    region: Region,
}

/// Where the buffer starts in the region.
const BUF: usize = HEADER_SIZE;

impl Scene {
    fn new() -> Self {
        Scene {
            region: region_ring(256, 64),
        }
    }
    fn ring(&self) -> ByteRing<'_> {
        ByteRing::open(&self.region, 0).unwrap()
    }
    fn handles(&self) -> (Producer<'_>, Consumer<'_>) {
        let ring = self.ring();
        // SAFETY: each test holds one pair at a time.
        unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) }
    }
    /// Writes a frame header at `at` in the buffer. Tests call it (and
    /// `set`) from the one thread that uses the handles, with no grant or
    /// read guard alive.
    fn frame(&self, at: usize, kind: u64, len: u64) {
        // SAFETY: one thread, and no reference into the buffer is alive
        // (see above); the write plays a peer scribbling on the ring.
        unsafe { self.region.write(BUF + at, &(kind << 32 | len)) }.unwrap();
    }
    /// Writes the word at `at` in the region (a header word).
    fn set(&self, at: usize, v: u64) {
        // SAFETY: as in `frame`; header words are atomics.
        unsafe { self.region.write(at, &v) }.unwrap();
    }
}

#[test]
fn scribbled_frames_are_corrupted() {
    let cases: &[Case] = &[
        ("maximum message size", &|s| s.frame(0, KIND_RECORD, 65)),
        ("maximum message size", &|s| {
            s.frame(0, KIND_RECORD, u32::MAX as u64)
        }),
        ("unknown frame kind", &|s| s.frame(0, 0, 0)),
        ("unknown frame kind", &|s| s.frame(0, 0xdead_beef, 8)),
        ("past the producer index", &|s| s.frame(0, KIND_RECORD, 60)),
        ("wrap frame at the start", &|s| s.frame(0, KIND_WRAP, 0)),
    ];
    for (what, scribble) in cases {
        let s = Scene::new();
        let (mut tx, mut rx) = s.handles();
        tx.try_push(&[1; 16]).unwrap();
        tx.try_push(&[2; 16]).unwrap();
        scribble(&s);
        // Every way of reading reports it, and keeps reporting it.
        expect_corrupted(rx.try_pop(&mut Vec::new()), what);
        expect_corrupted(rx.try_pop_into(&mut [0; 64]), what);
        expect_corrupted(rx.read_chunk().map(|g| g.len()), what);
        assert_eq!(rx.index(), 0);
    }
}

#[test]
fn scribbled_frames_near_the_end_are_corrupted() {
    // Records end at 224; the next one (footprint 48) wraps: a wrap frame
    // at 224 and the record at 0.
    let setup = |s: &Scene| {
        let (mut tx, mut rx) = s.handles();
        for i in 0..7 {
            tx.try_push(&[i; 20]).unwrap();
            rx.try_pop(&mut Vec::new()).unwrap();
        }
        assert_eq!(tx.index(), 224);
        tx.try_push(&[9; 40]).unwrap();
        assert_eq!(tx.index(), 256 + 48);
    };
    let cases: &[Case] = &[
        // The wrap frame turned into a record crossing the end.
        ("crosses the end", &|s| s.frame(224, KIND_RECORD, 40)),
        ("with a length", &|s| s.frame(224, KIND_WRAP, 8)),
        ("two wrap frames", &|s| s.frame(0, KIND_WRAP, 0)),
        ("unknown frame kind", &|s| s.frame(0, 7, 0)),
        ("past the producer index", &|s| s.frame(0, KIND_RECORD, 48)),
        // Producer index moved to just after the wrap frame.
        ("not followed by a record", &|s| s.set(PROD_AT, 256)),
    ];
    for (what, scribble) in cases {
        let s = Scene::new();
        setup(&s);
        scribble(&s);
        let (_, mut rx) = s.handles();
        expect_corrupted(rx.try_pop(&mut Vec::new()), what);
    }
    // Untouched, it reads fine.
    let s = Scene::new();
    setup(&s);
    let (_, mut rx) = s.handles();
    let mut got = Vec::new();
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, [9; 40]);
}

#[test]
fn scribbled_indices_are_corrupted() {
    // When a handle is made.
    let cases: &[(u64, u64, &str)] = &[
        (8, 16, "ahead of the producer"),
        (264, 0, "more than the capacity"),
        (u64::MAX - 7, 0, "ahead of the producer"),
        (1 << 40, 0, "more than the capacity"),
        (4, 0, "multiple of 8"),
        (0, 12, "multiple of 8"),
    ];
    for &(prod, cons, what) in cases {
        let s = Scene::new();
        s.set(PROD_AT, prod);
        s.set(CONS_AT, cons);
        let ring = s.ring();
        // SAFETY: no other handles exist.
        unsafe {
            expect_corrupted(ring.producer(), what);
            expect_corrupted(ring.consumer(), what);
        }
    }
    // Indices that wrap around 2^64 are fine.
    let s = Scene::new();
    s.set(PROD_AT, u64::MAX - 63);
    s.set(CONS_AT, u64::MAX - 63);
    let (mut tx, mut rx) = s.handles();
    let mut got = Vec::new();
    for i in 0..40 {
        tx.try_push(&[i; 30]).unwrap();
        rx.try_pop(&mut got).unwrap();
        assert_eq!(got, [i; 30]);
    }
    assert!(tx.index() < 4096);

    // While running: the consumer sees a bad producer index when it looks.
    let s = Scene::new();
    let (mut tx, mut rx) = s.handles();
    tx.try_push(b"abc").unwrap();
    rx.try_pop(&mut got).unwrap();
    for (prod, what) in [
        (0, "ahead of the producer"),
        (16 + 264, "more than the capacity"),
        (20, "multiple of 8"),
    ] {
        s.set(PROD_AT, prod);
        expect_corrupted(rx.try_pop(&mut got), what);
    }
    s.set(PROD_AT, 16);
    assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));

    // The producer sees a bad consumer index when its cached one says
    // full. Records of 64 bytes take 72.
    let s = Scene::new();
    let (mut tx, mut rx) = s.handles();
    for _ in 0..3 {
        tx.try_push(&[0; 64]).unwrap();
    }
    for _ in 0..2 {
        rx.try_pop(&mut got).unwrap();
    }
    tx.try_push(&[1; 64]).unwrap(); // wraps at 216; sees cons = 144
    tx.try_push(&[2; 8]).unwrap();
    assert_eq!(tx.index(), 344);
    for (cons, what) in [
        (136, "moved backwards"),
        (352, "ahead of the producer"),
        (150, "multiple of 8"),
        (80, "more than the capacity"),
    ] {
        s.set(CONS_AT, cons);
        expect_corrupted(tx.try_push(&[0; 64]), what);
        expect_corrupted(tx.write_chunk(64).map(|g| g.len()), what);
    }
    s.set(CONS_AT, 144);
    assert_eq!(tx.try_push(&[3; 64]), Err(WriteError::Full));
    // Garbage in the creator's words after open changes nothing for views
    // that validated them already.
    s.set(CAPACITY_AT, 1 << 40);
    s.set(MAX_AT, 1 << 39);
    s.set(MAGIC_AT, 0);
    rx.try_pop(&mut got).unwrap();
    assert_eq!(got, [0; 64]);
    tx.try_push(&[3; 64]).unwrap();
    assert_eq!(
        tx.try_push(&[0; 65]),
        Err(WriteError::TooLarge { len: 65, max: 64 })
    );
    for want in [&[1u8; 64][..], &[2; 8], &[3; 64]] {
        rx.try_pop(&mut got).unwrap();
        assert_eq!(got, want);
    }
    assert_eq!(rx.index(), 416);
}

/// The heap ring's scribbling hooks reach the same checks.
#[test]
fn heap_ring_corruption_hooks() {
    let mut ring = HeapByteRing::new(64, 24).unwrap();
    {
        let (mut tx, mut rx) = ring.split().unwrap();
        tx.try_push(&[1; 8]).unwrap();
        rx.try_pop(&mut Vec::new()).unwrap();
        tx.try_push(&[2; 8]).unwrap();
    }
    // SAFETY: no grant or guard is alive, no other thread.
    unsafe { corrupt_bytes(&ring, 16, &(KIND_RECORD << 32 | 25).to_ne_bytes()) };
    let (_, mut rx) = ring.split().unwrap();
    expect_corrupted(rx.try_pop(&mut Vec::new()), "maximum message size");
    corrupt_word(&ring, 256, 40);
    assert!(matches!(ring.split(), Err(Corrupted(_))));
}
