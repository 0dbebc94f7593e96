//! Runs sequences of operations on a heap-backed byte ring and checks them
//! against a model: a `VecDeque<Vec<u8>>` of the records in flight plus
//! the byte accounting of the frame format (footprint `8 + round_up(len,
//! 8)`, a wrap frame when a record does not fit before the end), which
//! predicts exactly when the ring is `Full` and where both indices stand.
//! Any mismatch panics.
//!
//! A corruption operation overwrites a header word (an index or a
//! creator's word) or bytes of the buffer (arbitrary, or a crafted frame
//! header) as a misbehaving peer could. From then on the model is no
//! longer compared; every operation must still return (no panic, no
//! out-of-bounds access, which ASan would catch, no hang), and any record
//! handed out must be at most the maximum message size.
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  capacity: 16 << (b % 7), 16..=1024 bytes
//!      1    1  bit 0: maximum = capacity/2 - 8, else the selector below
//!      2    2  maximum message size selector, u16 LE
//!      4    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 10): 0 send, 1 receive into a `Vec`, 2 receive
//! into a slice of chosen size, 3 reserve + commit, 4 reserve + commit a
//! shorter length, 5 reserve + drop, 6 read in place + release, 7 corrupt,
//! 8 re-create the producer handle, 9 re-create the consumer handle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::ring::bytes::{max_message_for, Consumer, HeapByteRing, Producer, MIN_CAPACITY};
use shmkit::ring::bytes::{PopIntoError, WriteError};
use shmkit::testing::bytes::{corrupt_bytes, corrupt_word};
use shmkit_fuzz::Input;
use std::collections::VecDeque;

const KIND_RECORD: u64 = 0x5245_4344;
const KIND_WRAP: u64 = 0x5752_4150;
/// Header word offsets a corruption picks from.
const WORDS: [usize; 5] = [0, 8, 16, 128, 256];

/// What the ring should hold and where its indices stand.
struct Model {
    cap: usize,
    max: usize,
    prod: u64,
    cons: u64,
    /// Records in flight, each with the bytes it advances the consumer
    /// (wrap padding before it included).
    q: VecDeque<(Vec<u8>, u64)>,
}

impl Model {
    /// What reserving `len` bytes must return: on success, the wrap
    /// padding it needs first.
    fn send(&self, len: usize) -> Result<usize, WriteError> {
        if len > self.max {
            return Err(WriteError::TooLarge { len, max: self.max });
        }
        let fp = footprint(len);
        let pos = (self.prod % self.cap as u64) as usize;
        let skip = if self.cap - pos < fp {
            self.cap - pos
        } else {
            0
        };
        if self.prod - self.cons + (skip + fp) as u64 > self.cap as u64 {
            return Err(WriteError::Full);
        }
        Ok(skip)
    }
    /// A record committed after a reservation that needed `skip`.
    fn push(&mut self, data: Vec<u8>, skip: usize) {
        let need = (skip + footprint(data.len())) as u64;
        self.prod += need;
        self.q.push_back((data, need));
    }
    fn pop(&mut self) -> Vec<u8> {
        let (data, need) = self.q.pop_front().expect("model empty");
        self.cons += need;
        data
    }
}

fn footprint(len: usize) -> usize {
    8 + len.div_ceil(8) * 8
}

/// Record contents derived from a serial number.
fn content(serial: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (serial.wrapping_mul(131) as usize ^ j.wrapping_mul(7) ^ (j >> 8)) as u8)
        .collect()
}

/// Outcome of a ring call, reduced to what the model predicts.
fn same(got: &Result<(), WriteError>, want: &Result<usize, WriteError>) -> bool {
    match (got, want) {
        (Ok(()), Ok(_)) => true,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// After a corruption: anything but a panic is fine, and nothing handed
/// out may exceed the maximum.
fn tolerated(r: &Result<usize, PopIntoError>, max: usize) {
    if let Ok(len) = r {
        assert!(*len <= max, "record of {len} bytes above the maximum {max}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let cap = MIN_CAPACITY << (inp.u8() % 7);
    let all = max_message_for(cap);
    let pick_max = inp.u8() & 1 == 0;
    let sel = inp.u16() as usize;
    let max = if pick_max { all } else { sel % (all + 1) };
    let ring = HeapByteRing::new(cap, max).expect("valid parameters");
    let view = ring.ring();
    // SAFETY (both): this is the only producer and the only consumer; a
    // handle is dropped before it is re-created.
    let mut tx: Option<Producer<'_>> = Some(unsafe { view.producer() }.unwrap());
    let mut rx: Option<Consumer<'_>> = Some(unsafe { view.consumer() }.unwrap());
    let mut model = Model {
        cap,
        max,
        prod: 0,
        cons: 0,
        q: VecDeque::new(),
    };
    let mut corrupted = false;
    let mut serial = 0u64;
    let mut got = Vec::new();
    // A length that is sometimes too large.
    let len_of = |inp: &mut Input<'_>| inp.u16() as usize % (max + 9);

    while !inp.done() {
        let op = inp.u8() % 10;
        serial += 1;
        // Handles that failed to re-create (only after a corruption) are
        // retried before each operation that needs them.
        if tx.is_none() {
            // SAFETY: no other producer exists (tx is None).
            tx = unsafe { view.producer() }.ok();
        }
        if rx.is_none() {
            // SAFETY: no other consumer exists (rx is None).
            rx = unsafe { view.consumer() }.ok();
        }
        match op {
            // Send by copy.
            0 => {
                let Some(tx) = tx.as_mut() else { continue };
                let d = content(serial, len_of(&mut inp));
                let r = tx.try_push(&d);
                if !corrupted {
                    let want = model.send(d.len());
                    assert!(same(&r, &want), "send {}: {r:?} vs {want:?}", d.len());
                    if let Ok(skip) = want {
                        model.push(d, skip);
                    }
                }
            }
            // Reserve, fill, commit (all, shorter, or drop).
            3..=5 => {
                let Some(tx) = tx.as_mut() else { continue };
                let len = len_of(&mut inp);
                let keep = inp.u16() as usize % (len + 1);
                let d = content(serial, len);
                let r = tx.write_chunk(len).map(|mut g| {
                    assert_eq!(g.len(), len);
                    g.copy_from_slice(&d);
                    match op {
                        3 => g.commit_all(),
                        4 => g.commit(keep),
                        _ => {} // dropped: publishes nothing
                    }
                });
                if !corrupted {
                    let want = model.send(len);
                    assert!(same(&r, &want), "reserve {len}: {r:?} vs {want:?}");
                    if let Ok(skip) = want {
                        match op {
                            3 => model.push(d, skip),
                            4 => model.push(d[..keep].to_vec(), skip),
                            _ => {}
                        }
                    }
                }
            }
            // Receive into a Vec, into a slice, or in place.
            1 | 2 | 6 => {
                let Some(rx) = rx.as_mut() else { continue };
                let room = inp.u16() as usize % (max + 9);
                let r = match op {
                    1 => rx.try_pop(&mut got).map_err(PopIntoError::from),
                    2 => {
                        got.resize(room, 0);
                        rx.try_pop_into(&mut got).inspect(|&n| got.truncate(n))
                    }
                    _ => rx
                        .read_chunk()
                        .map(|g| {
                            got.clear();
                            got.extend_from_slice(&g);
                            g.len()
                        })
                        .map_err(PopIntoError::from),
                };
                if corrupted {
                    tolerated(&r, max);
                    continue;
                }
                match (r, model.q.front()) {
                    (Ok(n), Some(_)) => {
                        let want = model.pop();
                        assert_eq!(n, want.len());
                        assert_eq!(got, want);
                    }
                    (Err(PopIntoError::Empty), None) => {}
                    (Err(PopIntoError::TooLarge { len, max: m }), Some((front, _)))
                        if op == 2 && len == front.len() && m == room && len > room => {}
                    (r, front) => panic!("recv: {r:?} with {} in flight", front.is_some()),
                }
            }
            // Scribble like a misbehaving peer.
            7 => {
                corrupted = true;
                let how = inp.u8();
                match how % 4 {
                    0 => corrupt_word(&ring, WORDS[(how as usize >> 2) % 5], inp.u64()),
                    1 => {
                        // An index near where the model has them.
                        let delta = (inp.u8() as i8 as i64 * 8) as u64;
                        let (at, base) = if how & 4 == 0 {
                            (128, model.prod)
                        } else {
                            (256, model.cons)
                        };
                        corrupt_word(&ring, at, base.wrapping_add(delta));
                    }
                    2 => {
                        // A plausible frame header at a frame boundary.
                        let at = (inp.u16() as usize % cap) & !7;
                        let kind = match inp.u8() % 3 {
                            0 => KIND_RECORD,
                            1 => KIND_WRAP,
                            _ => inp.u16() as u64,
                        };
                        let word = kind << 32 | inp.u16() as u64;
                        // SAFETY: no grant or guard is alive between
                        // operations; single thread.
                        unsafe { corrupt_bytes(&ring, at, &word.to_ne_bytes()) };
                    }
                    _ => {
                        let at = inp.u16() as usize % cap;
                        let bytes = inp.u64().to_ne_bytes();
                        // SAFETY: as above.
                        unsafe { corrupt_bytes(&ring, at, &bytes) };
                    }
                }
            }
            // Re-create a handle from the shared indices.
            8 => {
                // The old handle goes before its successor is made.
                tx.take();
                // SAFETY: the previous producer was dropped above.
                let r = unsafe { view.producer() };
                assert!(corrupted || r.is_ok(), "producer: {r:?}");
                tx = r.ok();
            }
            _ => {
                rx.take();
                // SAFETY: the previous consumer was dropped above.
                let r = unsafe { view.consumer() };
                assert!(corrupted || r.is_ok(), "consumer: {r:?}");
                rx = r.ok();
            }
        }
        if !corrupted {
            let tx = tx.as_ref().expect("producer");
            let rx = rx.as_ref().expect("consumer");
            assert_eq!(tx.index(), model.prod, "producer index");
            assert_eq!(rx.index(), model.cons, "consumer index");
        }
    }
});
