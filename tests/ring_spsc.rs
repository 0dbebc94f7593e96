//! The SPSC ring between real processes: ten million values in order, one
//! at a time and in batches, in-place chunks, wrap-around (of the slot
//! array and of the `u64` counters), every `open` validation error, and a
//! peer scribbling on the shared header.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_command, child_role, finish, report};
use shmkit::ring::spsc::{Consumer, Producer, SpscRing};
use shmkit::ring::{Corrupted, PopError, PushError};
use shmkit::testing::spsc::{
    CAPACITY_OFFSET, ELEM_ALIGN_OFFSET, ELEM_SIZE_OFFSET, HEADER_SIZE, HEAD_OFFSET, MAGIC_OFFSET,
    SPSC_MAGIC, TAIL_OFFSET,
};
use shmkit::{Error, Region, RegionOptions};
use std::process::Child;
use std::time::{Duration, Instant};

/// Bound on every spin loop and child in this file: a bug fails the test
/// instead of hanging it.
const LIMIT: Duration = Duration::from_secs(120);
const FD_VAR: &str = "SHMKIT_TEST_SPSC_FD";
const TEN_MILLION: u64 = 10_000_000;

const BAD_HEAD: &str = "SPSC head moved backwards or past tail";
const BAD_TAIL: &str = "SPSC tail moved backwards or more than capacity past head";
const BAD_INDICES: &str = "SPSC tail is not within capacity of head";

/// An anonymous region holding one empty ring of `capacity` u64 at 0.
fn ring_region(capacity: usize) -> Region {
    RegionOptions::new()
        .size(SpscRing::<u64>::bytes_for(capacity).unwrap())
        .anonymous_with(|r| SpscRing::<u64>::create(r, 0, capacity).map(drop))
        .unwrap()
}

/// Spawns a child with `role` that inherits `region`.
fn spawn_with(region: &Region, role: &str, args: &[&str]) -> Child {
    let mut cmd = child_command(role, args);
    region.pass_to_child(&mut cmd, FD_VAR);
    cmd.spawn().expect("spawn child")
}

/// A failed try: spin, and every few thousand tries yield, check the
/// deadline and (in the parent) that the peer child is still running.
struct Spin<'c> {
    deadline: Instant,
    tries: u64,
    child: Option<&'c mut Child>,
    /// The child had exited when we last looked: one more failed try
    /// (which sees everything it did before exiting) means it is not
    /// coming.
    peer_gone: bool,
}

impl<'c> Spin<'c> {
    fn new(child: Option<&'c mut Child>) -> Self {
        Self {
            deadline: Instant::now() + LIMIT,
            tries: 0,
            child,
            peer_gone: false,
        }
    }

    fn wait(&mut self, what: &str) {
        self.tries += 1;
        if !self.peer_gone && self.tries % 4096 != 0 {
            std::hint::spin_loop();
            return;
        }
        std::thread::yield_now();
        assert!(
            Instant::now() < self.deadline,
            "deadline passed waiting for {what}"
        );
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(
                    !self.peer_gone,
                    "the peer child exited ({status}) while we wait for {what}"
                );
                self.peer_gone = true;
            }
        }
    }

    /// Retries `op` while it finds the ring full (or empty); panics on
    /// other errors.
    fn retry<R, E: std::fmt::Display>(
        &mut self,
        what: &str,
        blocked: impl Fn(&E) -> bool,
        mut op: impl FnMut() -> Result<R, E>,
    ) -> R {
        loop {
            match op() {
                Ok(r) => return r,
                Err(e) if blocked(&e) => self.wait(what),
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }
}

/// A small deterministic generator of batch sizes.
struct Sizes(u64);

impl Sizes {
    /// A size in `1..=max`.
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % max as u64) as usize + 1
    }
}

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    // SAFETY: the parent passed this descriptor for this child alone.
    let region = unsafe { RegionOptions::new().from_env(FD_VAR) }.expect("from_env");
    if role == "scribble" {
        let offset: usize = args[0].parse().unwrap();
        let value: u64 = args[1].parse().unwrap();
        // SAFETY: this child uses nothing else of the region.
        unsafe { region.write::<u64>(offset, &value) }.expect("scribble");
        return;
    }
    let ring = SpscRing::<u64>::open(&region, 0).expect("open the ring");
    let n: u64 = args[0].parse().unwrap();
    let mut spin = Spin::new(None);
    match role.as_str() {
        "produce-single" => {
            // SAFETY: this process's only producer; the parent consumes.
            let mut tx = unsafe { ring.producer() }.expect("attach producer");
            for v in 0..n {
                spin.retry(
                    "room",
                    |e| matches!(e, PushError::Full(_)),
                    || tx.try_push(v),
                );
            }
            report(format!("pushed={n}"));
        }
        "consume-slices" => {
            // SAFETY: this process's only consumer; the parent produces.
            let mut rx = unsafe { ring.consumer() }.expect("attach consumer");
            let mut sizes = Sizes(0x9e37_79b9_7f4a_7c15);
            let mut buf = vec![0u64; 300];
            let mut want = 0;
            while want < n {
                let len = sizes.next(buf.len());
                match rx.pop_slice(&mut buf[..len]).expect("pop_slice") {
                    0 => spin.wait("values"),
                    k => {
                        for &v in &buf[..k] {
                            assert_eq!(v, want, "out of order");
                            want += 1;
                        }
                    }
                }
            }
            assert_eq!(rx.try_pop(), Err(PopError::Empty));
            report(format!("received={want}"));
        }
        "produce-chunks" => {
            // SAFETY: this process's only producer; the parent consumes.
            let mut tx = unsafe { ring.producer() }.expect("attach producer");
            let mut sizes = Sizes(0x2545_f491_4f6c_dd1d);
            let mut next = 0;
            let mut wrapped = 0u64;
            while next < n {
                let asked = sizes.next(100);
                let mut chunk = tx.write_chunk(asked).expect("write_chunk");
                if chunk.is_empty() {
                    drop(chunk);
                    spin.wait("room");
                    continue;
                }
                assert!(chunk.len() <= asked);
                let (a, b) = chunk.as_mut_slices();
                wrapped += !b.is_empty() as u64;
                for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                    *v = next + i as u64;
                }
                // Sometimes publish only part (possibly none) of it.
                let len = a.len() + b.len();
                let k = match sizes.next(4) {
                    1 => sizes.next(len + 1) - 1,
                    _ => len,
                }
                .min((n - next) as usize);
                chunk.commit(k);
                next += k as u64;
            }
            assert!(wrapped > 0, "no chunk ever wrapped");
            report(format!("pushed={next}"));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn ten_million_values_one_at_a_time_from_a_child_arrive_in_order() {
    let region = ring_region(1024);
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    // SAFETY: the only consumer; the child produces.
    let mut rx = unsafe { ring.consumer() }.unwrap();
    let mut child = spawn_with(&region, "produce-single", &[&TEN_MILLION.to_string()]);
    let started = Instant::now();
    {
        let mut spin = Spin::new(Some(&mut child));
        for want in 0..TEN_MILLION {
            let v = spin.retry("a value", |e| *e == PopError::Empty, || rx.try_pop());
            assert_eq!(v, want, "out of order");
        }
    }
    let took = started.elapsed();
    assert_eq!(finish(child, LIMIT), ["pushed=10000000"]);
    assert_eq!(rx.try_pop(), Err(PopError::Empty));
    // SAFETY (both): the child has exited, and the words are the header's
    // atomics, which no reference to plain data covers.
    assert_eq!(
        unsafe { region.read::<u64>(TAIL_OFFSET) }.unwrap(),
        TEN_MILLION
    );
    assert_eq!(
        unsafe { region.read::<u64>(HEAD_OFFSET) }.unwrap(),
        TEN_MILLION
    );
    eprintln!("10M single values in {took:?}");
}

#[test]
fn ten_million_values_in_slices_to_a_child_arrive_in_order() {
    let region = ring_region(4096);
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    // SAFETY: the only producer; the child consumes.
    let mut tx = unsafe { ring.producer() }.unwrap();
    let mut child = spawn_with(&region, "consume-slices", &[&TEN_MILLION.to_string()]);
    let started = Instant::now();
    {
        let mut spin = Spin::new(Some(&mut child));
        let mut batch = [0u64; 256];
        let mut next = 0;
        while next < TEN_MILLION {
            let len = (TEN_MILLION - next).min(256) as usize;
            for (i, v) in batch[..len].iter_mut().enumerate() {
                *v = next + i as u64;
            }
            let mut sent = 0;
            while sent < len {
                match tx.push_slice(&batch[sent..len]).unwrap() {
                    0 => spin.wait("room"),
                    k => sent += k,
                }
            }
            next += len as u64;
        }
    }
    let took = started.elapsed();
    assert_eq!(finish(child, LIMIT), ["received=10000000"]);
    assert_eq!(ring.len(), 0);
    eprintln!("10M values in slices in {took:?}");
}

#[test]
fn in_place_chunks_from_a_child_arrive_in_order() {
    const N: u64 = 2_000_000;
    let region = ring_region(64);
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    // SAFETY: the only consumer; the child produces once `tx` is gone.
    let mut rx = unsafe { ring.consumer() }.unwrap();
    // Start the positions off a multiple of the capacity. When the two
    // processes take turns filling and draining the whole ring (as on a
    // loaded machine), every turn then spans the ring's end, so chunks
    // wrap; from position 0 every turn would end exactly there, and no
    // chunk would ever wrap.
    {
        // SAFETY: the only producer, dropped before the child attaches its own.
        let mut tx = unsafe { ring.producer() }.unwrap();
        for v in 0..7 {
            tx.try_push(v).unwrap();
            assert_eq!(rx.try_pop(), Ok(v));
        }
    }
    let mut child = spawn_with(&region, "produce-chunks", &[&N.to_string()]);
    {
        let mut spin = Spin::new(Some(&mut child));
        let mut sizes = Sizes(0x1234_5678_9abc_def1);
        let (mut want, mut wrapped) = (0, 0u64);
        while want < N {
            let chunk = rx.read_chunk(sizes.next(100)).expect("read_chunk");
            if chunk.is_empty() {
                drop(chunk);
                spin.wait("values");
                continue;
            }
            let (a, b) = chunk.as_slices();
            assert_eq!(a.len() + b.len(), chunk.len());
            wrapped += !b.is_empty() as u64;
            for (i, &v) in a.iter().chain(b).enumerate() {
                assert_eq!(v, want + i as u64, "out of order");
            }
            // Sometimes free only part of it: the rest is read again.
            let k = match sizes.next(4) {
                1 => sizes.next(chunk.len() + 1) - 1,
                _ => chunk.len(),
            };
            chunk.release(k);
            want += k as u64;
        }
        assert!(wrapped > 0, "no chunk ever wrapped");
    }
    assert_eq!(finish(child, LIMIT), [format!("pushed={N}")]);
    assert_eq!(rx.try_pop(), Err(PopError::Empty));
}

/// Pushes and pops through a 4-slot ring in a region many times over:
/// the counters in shared memory keep growing past the capacity, runs
/// split at the end of the slot array, and FIFO order holds.
#[test]
fn wrap_around_of_the_slot_array() {
    let region = ring_region(4);
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    // SAFETY: the only producer and consumer of this test's ring.
    let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    let mut next = 0;
    for round in 0..1000u64 {
        let n = 1 + round % 4;
        for _ in 0..n {
            tx.try_push(next).unwrap();
            next += 1;
        }
        // SAFETY (every raw copy in this test): one thread uses the ring, no
        // chunk is alive during a write, and the words copied are the header's
        // atomics, which no reference to plain data covers; writes play a peer
        // scribbling on the ring.
        assert_eq!(unsafe { region.read::<u64>(TAIL_OFFSET) }.unwrap(), next);
        for i in 0..n {
            assert_eq!(rx.try_pop(), Ok(next - n + i));
        }
        assert_eq!(unsafe { region.read::<u64>(HEAD_OFFSET) }.unwrap(), next);
    }
    // head = tail = 2500 (slot 0); move to slot 3, then a chunk of 3 wraps.
    assert_eq!(tx.push_slice(&[1, 2, 3]).unwrap(), 3);
    let mut buf = [0; 3];
    assert_eq!(rx.pop_slice(&mut buf).unwrap(), 3);
    let mut w = tx.write_chunk(3).unwrap();
    let (a, b) = w.as_mut_slices();
    assert_eq!((a.len(), b.len()), (1, 2));
    a[0] = 10;
    b.copy_from_slice(&[11, 12]);
    w.commit_all();
    let r = rx.read_chunk(4).unwrap();
    assert_eq!(r.as_slices(), (&[10][..], &[11, 12][..]));
    r.release_all();
    assert_eq!(ring.len(), 0);
    // Capacity 1: every push is a full lap.
    let one = ring_region(1);
    let ring = SpscRing::<u64>::open(&one, 0).unwrap();
    // SAFETY: the only producer and consumer of this test's ring.
    let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    for v in 0..100 {
        tx.try_push(v).unwrap();
        assert_eq!(tx.try_push(v), Err(PushError::Full(v)));
        assert_eq!(rx.try_pop(), Ok(v));
        assert_eq!(rx.try_pop(), Err(PopError::Empty));
    }
}

/// Counters are compared with wrapping arithmetic, so a ring whose
/// counters pass `u64::MAX` keeps working.
#[test]
fn wrap_around_of_the_u64_counters() {
    let region = ring_region(8);
    let start = u64::MAX - 5;
    // SAFETY (every raw copy in this test): one thread uses the ring, no
    // chunk is alive during a write, and the words copied are the header's
    // atomics, which no reference to plain data covers; writes play a peer
    // scribbling on the ring.
    unsafe { region.write::<u64>(HEAD_OFFSET, &start) }.unwrap();
    unsafe { region.write::<u64>(TAIL_OFFSET, &start) }.unwrap();
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    // SAFETY: the only producer and consumer of this test's ring.
    let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    let mut next = 0;
    let mut want = 0;
    for _ in 0..10 {
        for _ in 0..5 {
            tx.try_push(next).unwrap();
            next += 1;
        }
        assert_eq!(tx.len(), 5);
        assert_eq!(rx.len(), 5);
        assert_eq!(ring.len(), 5);
        let mut buf = [0; 5];
        assert_eq!(rx.pop_slice(&mut buf).unwrap(), 5);
        for v in buf {
            assert_eq!(v, want);
            want += 1;
        }
    }
    assert_eq!(
        unsafe { region.read::<u64>(TAIL_OFFSET) }.unwrap(),
        start.wrapping_add(50)
    );
    assert_eq!(unsafe { region.read::<u64>(HEAD_OFFSET) }.unwrap(), 44);
}

fn layout(size: u64, align: u64) -> u64 {
    (size << 32) | align
}

#[test]
fn bytes_for_and_create_reject_bad_parameters() {
    assert_eq!(SpscRing::<u64>::bytes_for(1).unwrap(), HEADER_SIZE + 8);
    assert_eq!(SpscRing::<u64>::bytes_for(1024).unwrap(), 384 + 8192);
    assert_eq!(SpscRing::<[u8; 3]>::bytes_for(4).unwrap(), 384 + 12);
    for bad in [0, 3, 6, 1000] {
        let err = SpscRing::<u64>::bytes_for(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { size, reason }
                if size == bad as u64
                && reason == "SPSC ring capacity must be a power of two (and at least 1)"),
            "{err:?}"
        );
    }
    let err = SpscRing::<u64>::bytes_for(1 << 62).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSize {
                reason: "SPSC ring too large",
                ..
            }
        ),
        "{err:?}"
    );
    #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(256))]
    struct Wide([u8; 256]);
    let err = SpscRing::<Wide>::bytes_for(4).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { size: 256, reason }
            if reason == "SPSC ring elements must be aligned to at most 128 bytes"),
        "{err:?}"
    );

    let region = Region::anonymous(4096).unwrap();
    let err = SpscRing::<u64>::create(&region, 0, 12).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { size: 12, .. }),
        "{err:?}"
    );
    let err = SpscRing::<u64>::create(&region, 64, 8).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Misaligned {
                offset: 64,
                align: 128
            }
        ),
        "{err:?}"
    );
    // 4096 bytes hold the header and 464 u64 slots: 512 do not fit.
    let err = SpscRing::<u64>::create(&region, 0, 512).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 384,
                size: 4096,
                len: 4096
            }
        ),
        "{err:?}"
    );
    let err = SpscRing::<u64>::create(&region, 4096, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 4096,
                size: 384,
                len: 4096
            }
        ),
        "{err:?}"
    );
    // Two rings side by side.
    let a = SpscRing::<u64>::create(&region, 0, 256).unwrap();
    let b = SpscRing::<u32>::create(&region, 2432, 4).unwrap();
    // SAFETY: each handle is its ring's only one of its side, and lives
    // for one statement.
    unsafe {
        a.producer().unwrap().try_push(1).unwrap();
        b.producer().unwrap().try_push(2).unwrap();
        assert_eq!(a.consumer().unwrap().try_pop(), Ok(1));
    }
    assert_eq!(SpscRing::<u32>::open(&region, 2432).unwrap().len(), 1);
}

#[test]
fn open_checks_the_header_and_says_which_check_failed() {
    let region = ring_region(8);
    let bytes = region.len();
    assert_eq!(bytes, 384 + 64);
    // SAFETY (every raw copy in this test): one thread uses the ring, no
    // chunk is alive during a write, and the words copied are the header's
    // atomics, which no reference to plain data covers; writes play a peer
    // scribbling on the ring.
    assert_eq!(
        unsafe { region.read::<u64>(MAGIC_OFFSET) }.unwrap(),
        SPSC_MAGIC
    );
    assert_eq!(unsafe { region.read::<u64>(CAPACITY_OFFSET) }.unwrap(), 8);
    assert_eq!(unsafe { region.read::<u32>(ELEM_SIZE_OFFSET) }.unwrap(), 8);
    assert_eq!(unsafe { region.read::<u32>(ELEM_ALIGN_OFFSET) }.unwrap(), 8);
    assert_eq!(SpscRing::<u64>::open(&region, 0).unwrap().capacity(), 8);

    // Another element size.
    let err = SpscRing::<u32>::open(&region, 0).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { found, expected }
            if found == layout(8, 8) && expected == layout(4, 4)),
        "{err:?}"
    );
    // Same size, another alignment.
    let err = SpscRing::<[u32; 2]>::open(&region, 0).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { found, expected }
            if found == layout(8, 8) && expected == layout(8, 4)),
        "{err:?}"
    );
    // Another size, same alignment.
    let err = SpscRing::<[u64; 2]>::open(&region, 0).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { found, expected }
            if found == layout(8, 8) && expected == layout(16, 8)),
        "{err:?}"
    );

    // Capacities that are not powers of two.
    for bad in [0u64, 3, 6, u64::MAX] {
        unsafe { region.write::<u64>(CAPACITY_OFFSET, &bad) }.unwrap();
        let err = SpscRing::<u64>::open(&region, 0).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corrupted {
                    what: "SPSC ring capacity is not a power of two"
                }
            ),
            "capacity {bad}: {err:?}"
        );
    }
    // A capacity the region cannot hold.
    unsafe { region.write::<u64>(CAPACITY_OFFSET, &16) }.unwrap();
    let err = SpscRing::<u64>::open(&region, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 384,
                size: 128,
                len: 448
            }
        ),
        "{err:?}"
    );
    unsafe { region.write::<u64>(CAPACITY_OFFSET, &(1 << 62)) }.unwrap();
    let err = SpscRing::<u64>::open(&region, 0).unwrap_err();
    assert!(
        matches!(err, Error::OutOfBounds { offset: 384, .. }),
        "{err:?}"
    );
    unsafe { region.write::<u64>(CAPACITY_OFFSET, &8) }.unwrap();
    SpscRing::<u64>::open(&region, 0).unwrap();

    // A wrong magic, and a header that was never written.
    unsafe { region.write::<u64>(MAGIC_OFFSET, &(SPSC_MAGIC ^ 1)) }.unwrap();
    let err = SpscRing::<u64>::open(&region, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                what: "not an SPSC ring header (bad magic)"
            }
        ),
        "{err:?}"
    );
    let zeroed = Region::anonymous(bytes).unwrap();
    let err = SpscRing::<u64>::open(&zeroed, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                what: "no SPSC ring here: the header is not initialized"
            }
        ),
        "{err:?}"
    );

    // A region too small for even the header, and a misaligned offset.
    let tiny = Region::anonymous(HEADER_SIZE - 8).unwrap();
    let err = SpscRing::<u64>::open(&tiny, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 0,
                size: 384,
                len: 376
            }
        ),
        "{err:?}"
    );
    let err = SpscRing::<u64>::open(&zeroed, 8).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Misaligned {
                offset: 8,
                align: 128
            }
        ),
        "{err:?}"
    );
}

/// Attaches both sides to a full 8-slot ring in `region`.
fn full_pair(region: &Region) -> (Producer<'_, u64>, Consumer<'_, u64>) {
    let ring = SpscRing::<u64>::open(region, 0).unwrap();
    // SAFETY: the only producer and consumer of the caller's ring.
    let (mut tx, rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    assert_eq!(tx.push_slice(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap(), 8);
    (tx, rx)
}

#[test]
fn a_scribbled_head_is_reported_to_the_producer() {
    for (bad, why) in [
        (9, "past tail"),
        (u64::MAX, "far past tail"),
        (1u64 << 63, "half the counter space away"),
    ] {
        let region = ring_region(8);
        let (mut tx, mut rx) = full_pair(&region);
        assert_eq!(rx.try_pop(), Ok(0));
        // SAFETY (every raw copy in this test): one thread uses the ring, no
        // chunk is alive during a write, and the words copied are the header's
        // atomics, which no reference to plain data covers; writes play a peer
        // scribbling on the ring.
        unsafe { region.write::<u64>(HEAD_OFFSET, &bad) }.unwrap();
        assert_eq!(tx.try_push(8), Err(PushError::Corrupted(BAD_HEAD)), "{why}");
        assert_eq!(tx.push_slice(&[8]), Err(Corrupted(BAD_HEAD)));
        assert!(matches!(tx.write_chunk(1), Err(Corrupted(BAD_HEAD))));
        // A snapshot stays in bounds; the operations above report it.
        assert!(tx.len() <= 8, "{why}");
        let ring = SpscRing::<u64>::open(&region, 0).unwrap();
        // SAFETY: the call fails (the indices are invalid): no second
        // producer is made.
        let second = unsafe { ring.producer() };
        assert_eq!(second.unwrap_err(), Corrupted(BAD_INDICES));
        // Put back, the producer carries on.
        unsafe { region.write::<u64>(HEAD_OFFSET, &1) }.unwrap();
        assert_eq!(tx.try_push(8), Ok(()));
    }
    // Backwards: the producer saw head 4, then head reads 2.
    let region = ring_region(8);
    let (mut tx, mut rx) = full_pair(&region);
    let mut buf = [0; 4];
    rx.pop_slice(&mut buf).unwrap();
    assert_eq!(tx.push_slice(&[8, 9, 10, 11]).unwrap(), 4);
    unsafe { region.write::<u64>(HEAD_OFFSET, &2) }.unwrap();
    assert_eq!(tx.try_push(12), Err(PushError::Corrupted(BAD_HEAD)));
}

#[test]
fn a_scribbled_tail_is_reported_to_the_consumer() {
    for (bad, why) in [
        (9, "more than capacity past head"),
        (u64::MAX, "behind head (-1)"),
        (1u64 << 40, "far ahead"),
    ] {
        let region = ring_region(8);
        let (_tx, mut rx) = full_pair(&region);
        // SAFETY (every raw copy in this test): one thread uses the ring, no
        // chunk is alive during a write, and the words copied are the header's
        // atomics, which no reference to plain data covers; writes play a peer
        // scribbling on the ring.
        unsafe { region.write::<u64>(TAIL_OFFSET, &bad) }.unwrap();
        assert_eq!(rx.try_pop(), Err(PopError::Corrupted(BAD_TAIL)), "{why}");
        assert_eq!(rx.peek(), Err(PopError::Corrupted(BAD_TAIL)));
        assert_eq!(rx.pop_slice(&mut [0; 2]), Err(Corrupted(BAD_TAIL)));
        assert!(matches!(rx.read_chunk(1), Err(Corrupted(BAD_TAIL))));
        // A snapshot stays in bounds; the operations above report it.
        assert!(rx.len() <= 8, "{why}");
        let ring = SpscRing::<u64>::open(&region, 0).unwrap();
        // SAFETY: the call fails (the indices are invalid): no second
        // consumer is made.
        let second = unsafe { ring.consumer() };
        assert_eq!(second.unwrap_err(), Corrupted(BAD_INDICES));
        unsafe { region.write::<u64>(TAIL_OFFSET, &8) }.unwrap();
        assert_eq!(rx.try_pop(), Ok(0));
    }
    // Backwards: the consumer saw tail 8, then tail reads 5.
    let region = ring_region(8);
    let (_tx, mut rx) = full_pair(&region);
    assert_eq!(rx.try_pop(), Ok(0));
    unsafe { region.write::<u64>(TAIL_OFFSET, &5) }.unwrap();
    let mut buf = [0; 7];
    // The seven values already seen are still delivered from the cache...
    assert_eq!(rx.pop_slice(&mut buf), Ok(7));
    assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7]);
    // ...and the next look at the tail catches it.
    assert_eq!(rx.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
    // The snapshot of a third party sees a tail behind the head.
    let ring = SpscRing::<u64>::open(&region, 0).unwrap();
    assert_eq!(ring.len(), 0);
}

/// A capacity scribbled after open changes nothing for open views (they
/// never re-read it), but a new opener refuses the ring.
#[test]
fn a_scribbled_capacity_only_affects_new_openers() {
    let region = ring_region(8);
    let (mut tx, mut rx) = full_pair(&region);
    // SAFETY (every raw copy in this test): one thread uses the ring, no
    // chunk is alive during a write, and the words copied are the header's
    // atomics, which no reference to plain data covers; writes play a peer
    // scribbling on the ring.
    unsafe { region.write::<u64>(CAPACITY_OFFSET, &(1 << 20)) }.unwrap();
    for v in 0..100 {
        assert_eq!(rx.try_pop(), Ok(v));
        tx.try_push(v + 8).unwrap();
    }
    assert!(matches!(
        SpscRing::<u64>::open(&region, 0),
        Err(Error::OutOfBounds { .. })
    ));
}

/// Another process scribbles on the header while this one holds both
/// sides: each victim gets `Corrupted` on its next look at the peer's
/// index.
#[test]
fn a_peer_process_scribbling_on_the_header_is_caught() {
    let region = ring_region(8);
    let (mut tx, mut rx) = full_pair(&region);
    finish(
        spawn_with(&region, "scribble", &[&HEAD_OFFSET.to_string(), "1000"]),
        LIMIT,
    );
    assert_eq!(tx.try_push(8), Err(PushError::Corrupted(BAD_HEAD)));
    finish(
        spawn_with(&region, "scribble", &[&TAIL_OFFSET.to_string(), "100"]),
        LIMIT,
    );
    assert_eq!(rx.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
}
