//! Runs sequences of operations on a heap-backed SPSC ring of `u64` and
//! checks every result against a model, a `VecDeque<u64>` plus the two
//! counters (values pushed, values popped), which predicts exactly what
//! each operation returns, including how a chunk splits at the end of the
//! slot array. Any mismatch panics.
//!
//! A corruption operation overwrites a header word as a misbehaving peer
//! could: `head`, `tail` (with arbitrary values, or values just around the
//! bounds the sides check), the capacity, the magic or the element layout.
//! From then on the model is no longer compared; every operation must
//! still return (no panic, no out-of-bounds access, which ASan would
//! catch, no hang), with an error that makes sense for it and sizes within
//! the capacity. What re-opening the header returns stays exactly
//! predicted: it must fail exactly when a creator's word is wrong.
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  capacity: 1 << (b % 7), 1..=64 slots
//!      1    8  salt, u64 LE: the value with index i is i ^ salt
//!      9    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 12): 0 push, 1 pop, 2 push a slice, 3 pop into a
//! slice, 4 peek, 5 write chunk + commit part, 6 read chunk + release part,
//! 7 sizes (`len`/`is_empty` of both sides and of the view), 8 corrupt,
//! 9 re-attach the producer, 10 re-attach the consumer, 11 re-open the
//! header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::ring::spsc::HeapSpscRing;
use shmkit::ring::{Corrupted, PopError, PushError};
use shmkit::testing::spsc::{
    header_of, reopen, SpscHeader, CAPACITY_OFFSET, ELEM_ALIGN_OFFSET, ELEM_SIZE_OFFSET,
    HEAD_OFFSET, MAGIC_OFFSET, SPSC_MAGIC, TAIL_OFFSET,
};
use shmkit_fuzz::Input;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What the ring should hold.
struct Model {
    cap: usize,
    salt: u64,
    /// Values pushed so far (the producer's `tail`).
    pushed: u64,
    /// Values popped so far (the consumer's `head`).
    popped: u64,
    q: VecDeque<u64>,
}

impl Model {
    fn value(&self, index: u64) -> u64 {
        index ^ self.salt
    }
    fn free(&self) -> usize {
        self.cap - self.q.len()
    }
    fn push(&mut self, n: usize) {
        for _ in 0..n {
            self.q.push_back(self.value(self.pushed));
            self.pushed += 1;
        }
        assert!(self.q.len() <= self.cap);
    }
    fn pop(&mut self, n: usize) -> Vec<u64> {
        self.popped += n as u64;
        self.q.drain(..n).collect()
    }
    /// How a run of `len` slots from `index` on splits at the array's end.
    fn split(&self, index: u64, len: usize) -> (usize, usize) {
        let pos = index as usize % self.cap;
        let first = len.min(self.cap - pos);
        (first, len - first)
    }
}

/// Which creator's words are intact, so re-opening must succeed.
#[derive(Clone, Copy)]
struct Words {
    magic: bool,
    capacity: bool,
    elem_size: bool,
    elem_align: bool,
}

impl Words {
    fn intact(&self) -> bool {
        self.magic && self.capacity && self.elem_size && self.elem_align
    }
}

/// Overwrites the `u64` at `offset` in the header, as a peer would.
fn scribble_u64(header: &SpscHeader, offset: usize, value: u64) {
    assert!(matches!(
        offset,
        MAGIC_OFFSET | CAPACITY_OFFSET | HEAD_OFFSET | TAIL_OFFSET
    ));
    // SAFETY: `SpscHeader` is repr(C) with the documented layout: at these
    // offsets (checked above) it holds an 8-aligned atomic u64, entirely
    // inside the header; atomics may be written through a shared reference.
    let word = unsafe {
        &*(header as *const SpscHeader)
            .cast::<u8>()
            .add(offset)
            .cast::<AtomicU64>()
    };
    word.store(value, Ordering::Relaxed);
}

/// Overwrites the `u32` at `offset` in the header.
fn scribble_u32(header: &SpscHeader, offset: usize, value: u32) {
    assert!(matches!(offset, ELEM_SIZE_OFFSET | ELEM_ALIGN_OFFSET));
    // SAFETY: as in `scribble_u64`, for the two u32 atomics.
    let word = unsafe {
        &*(header as *const SpscHeader)
            .cast::<u8>()
            .add(offset)
            .cast::<AtomicU32>()
    };
    word.store(value, Ordering::Relaxed);
}

/// A `Corrupted` error (of any operation's error type: they all display
/// as "ring state is corrupted: ..."), the only error an operation may add
/// to its usual one once the header is scribbled on.
fn is_corrupted<T, E: std::fmt::Display>(r: &Result<T, E>) -> bool {
    matches!(r, Err(e) if e.to_string().starts_with("ring state is corrupted: "))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cap = 1usize << (input.u8() % 7);
    let salt = input.u64();
    let heap = HeapSpscRing::<u64>::new(cap).unwrap();
    let ring = heap.ring();
    let header = header_of(&ring);
    // SAFETY (both): the only producer and the only consumer; a handle is
    // dropped before its successor is made, and chunks never outlive the
    // operation that took them, so scribbled indices cannot make one side
    // reach slots under the other's chunk.
    let mut txo = Some(unsafe { ring.producer() }.unwrap());
    let mut rxo = Some(unsafe { ring.consumer() }.unwrap());
    let mut m = Model {
        cap,
        salt,
        pushed: 0,
        popped: 0,
        q: VecDeque::new(),
    };
    let mut words = Words {
        magic: true,
        capacity: true,
        elem_size: true,
        elem_align: true,
    };
    // Once set, results are only checked for sanity.
    let mut corrupted = false;
    let mut buf = vec![0u64; 2 * cap + 1];
    const SENTINEL: u64 = 0x5e57_1e15_5e57_1e15;

    for _ in 0..10_000 {
        if input.done() {
            break;
        }
        // Handles that failed to re-attach (only after a corruption) are
        // retried before each operation.
        if txo.is_none() {
            // SAFETY: no other producer exists (txo is None).
            txo = unsafe { ring.producer() }.ok();
        }
        if rxo.is_none() {
            // SAFETY: no other consumer exists (rxo is None).
            rxo = unsafe { ring.consumer() }.ok();
        }
        match input.u8() % 12 {
            0 => {
                let Some(tx) = txo.as_mut() else { continue };
                let v = m.value(m.pushed);
                let got = tx.try_push(v);
                if corrupted {
                    assert!(matches!(got, Ok(()) | Err(PushError::Full(_))) || is_corrupted(&got));
                } else if m.free() > 0 {
                    assert_eq!(got, Ok(()));
                    m.push(1);
                } else {
                    assert_eq!(got, Err(PushError::Full(v)));
                }
            }
            1 => {
                let Some(rx) = rxo.as_mut() else { continue };
                let got = rx.try_pop();
                if corrupted {
                    assert!(matches!(got, Ok(_) | Err(PopError::Empty)) || is_corrupted(&got));
                } else {
                    let want = m.q.front().copied().ok_or(PopError::Empty);
                    assert_eq!(got, want);
                    if want.is_ok() {
                        m.pop(1);
                    }
                }
            }
            2 => {
                let Some(tx) = txo.as_mut() else { continue };
                let len = input.size(2 * cap);
                let src: Vec<u64> = (0..len as u64).map(|i| m.value(m.pushed + i)).collect();
                let got = tx.push_slice(&src);
                if corrupted {
                    assert!(matches!(got, Ok(n) if n <= len.min(cap)) || is_corrupted(&got));
                } else {
                    let want = len.min(m.free());
                    assert_eq!(got, Ok(want));
                    m.push(want);
                }
            }
            3 => {
                let Some(rx) = rxo.as_mut() else { continue };
                let len = input.size(2 * cap);
                buf.fill(SENTINEL);
                let got = rx.pop_slice(&mut buf[..len]);
                if corrupted {
                    assert!(matches!(got, Ok(n) if n <= len.min(cap)) || is_corrupted(&got));
                } else {
                    let want = len.min(m.q.len());
                    assert_eq!(got, Ok(want));
                    assert_eq!(buf[..want], m.pop(want));
                }
                // Never written past what it reports.
                let n = got.unwrap_or(0);
                assert!(buf[n..].iter().all(|&v| v == SENTINEL));
            }
            4 => {
                let Some(rx) = rxo.as_mut() else { continue };
                let got = rx.peek();
                if corrupted {
                    assert!(matches!(got, Ok(_) | Err(PopError::Empty)) || is_corrupted(&got));
                } else {
                    assert_eq!(got, m.q.front().copied().ok_or(PopError::Empty));
                }
            }
            5 => {
                let Some(tx) = txo.as_mut() else { continue };
                let n = input.size(2 * cap);
                let commit = input.u8();
                let got = tx.write_chunk(n);
                // Up to `n`: an empty chunk when the ring is full.
                let want: Result<usize, Corrupted> = Ok(n.min(m.free()));
                match got {
                    Ok(mut chunk) => {
                        let len = chunk.len();
                        let (a, b) = chunk.as_mut_slices();
                        assert_eq!(a.len() + b.len(), len);
                        assert!(len <= n.min(cap) && a.len() <= cap);
                        if !corrupted {
                            assert_eq!(Ok(len), want);
                            assert_eq!((a.len(), b.len()), m.split(m.pushed, len));
                        }
                        for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                            *v = m.value(m.pushed + i as u64);
                        }
                        let k = match commit {
                            255 => len,
                            c => c as usize % (len + 1),
                        };
                        match commit % 3 {
                            0 => chunk.commit(k),
                            1 => chunk.commit_all(),
                            _ => drop(chunk),
                        }
                        if !corrupted {
                            m.push(match commit % 3 {
                                0 => k,
                                1 => len,
                                _ => 0,
                            });
                        }
                    }
                    Err(e) => assert!(corrupted, "{e:?}"),
                }
            }
            6 => {
                let Some(rx) = rxo.as_mut() else { continue };
                let n = input.size(2 * cap);
                let release = input.u8();
                let got = rx.read_chunk(n);
                // Up to `n`: an empty chunk when the ring is empty.
                let want: Result<usize, Corrupted> = Ok(n.min(m.q.len()));
                match got {
                    Ok(chunk) => {
                        let len = chunk.len();
                        let (a, b) = chunk.as_slices();
                        assert_eq!(a.len() + b.len(), len);
                        assert!(len <= n.min(cap) && a.len() <= cap);
                        if !corrupted {
                            assert_eq!(Ok(len), want);
                            assert_eq!((a.len(), b.len()), m.split(m.popped, len));
                            let seen: Vec<u64> = a.iter().chain(b).copied().collect();
                            assert!(seen.iter().eq(m.q.iter().take(len)));
                        }
                        let k = match release {
                            255 => len,
                            r => r as usize % (len + 1),
                        };
                        match release % 3 {
                            0 => chunk.release(k),
                            1 => chunk.release_all(),
                            _ => drop(chunk),
                        }
                        if !corrupted {
                            m.pop(match release % 3 {
                                0 => k,
                                1 => len,
                                _ => 0,
                            });
                        }
                    }
                    Err(e) => assert!(corrupted, "{e:?}"),
                }
            }
            7 => {
                let Some(tx) = txo.as_mut() else { continue };
                let Some(rx) = rxo.as_mut() else { continue };
                let sizes = [tx.len(), rx.len(), ring.len()];
                let empty = [tx.is_empty(), rx.is_empty(), ring.is_empty()];
                // Snapshots stay in bounds whatever the indices hold.
                assert!(sizes.iter().all(|&n| n <= cap), "{sizes:?}");
                assert_eq!(empty, sizes.map(|n| n == 0));
                if !corrupted {
                    let n = m.q.len();
                    assert_eq!(sizes, [n, n, n]);
                }
                assert_eq!(tx.capacity(), cap);
                assert_eq!(rx.capacity(), cap);
            }
            8 => {
                let which = input.u8() % 6;
                let mode = input.u8();
                let raw = input.u64();
                let delta = (mode >> 2) as i8 as i64 as u64;
                let value = match mode % 4 {
                    0 => raw,
                    1 => m.pushed.wrapping_add(delta),
                    2 => m.popped.wrapping_add(delta),
                    _ => m.popped.wrapping_add(cap as u64).wrapping_add(delta),
                };
                match which {
                    0 => scribble_u64(header, HEAD_OFFSET, value),
                    1 => scribble_u64(header, TAIL_OFFSET, value),
                    2 => {
                        scribble_u64(header, CAPACITY_OFFSET, value);
                        words.capacity = value == cap as u64;
                    }
                    3 => {
                        scribble_u64(header, MAGIC_OFFSET, value);
                        words.magic = value == SPSC_MAGIC;
                    }
                    4 => {
                        scribble_u32(header, ELEM_SIZE_OFFSET, value as u32);
                        words.elem_size = value as u32 == 8;
                    }
                    _ => {
                        scribble_u32(header, ELEM_ALIGN_OFFSET, value as u32);
                        words.elem_align = value as u32 == 8;
                    }
                }
                // Values the scribbled word already held change nothing,
                // but the model stops here anyway: simpler and stricter.
                corrupted = true;
            }
            9 => {
                // The old handle goes before its successor is made.
                txo.take();
                // SAFETY: the previous producer was dropped above.
                match unsafe { ring.producer() } {
                    Ok(p) => txo = Some(p),
                    Err(e) => assert!(corrupted, "{e:?}"),
                }
            }
            10 => {
                rxo.take();
                // SAFETY: the previous consumer was dropped above.
                match unsafe { ring.consumer() } {
                    Ok(c) => rxo = Some(c),
                    Err(e) => assert!(corrupted, "{e:?}"),
                }
            }
            _ => {
                let got = reopen(&heap);
                assert_eq!(got.is_ok(), words.intact(), "{:?}", got.err());
            }
        }
    }
});
