//! Two threads, a capacity-2 ring, five values: the indices pass the
//! capacity twice, so every slot is reused while the other side may
//! still be looking at it. Loom checks each slot access (an
//! `UnsafeCell`) against the index stores and loads that should order
//! it, and the assertions check FIFO order with nothing lost or
//! duplicated.
use super::*;
use crate::ring::{Miss, PopError};
use std::sync::Arc;

const N: u64 = 5;

/// Retries `op` while it would block, yielding (loom explores the
/// other thread meanwhile); panics on corruption.
fn retry<R, E: Into<Miss>>(mut op: impl FnMut() -> Result<R, E>) -> R {
    loop {
        match op().map_err(Into::into) {
            Ok(r) => return r,
            Err(Miss::WouldBlock) => loom::thread::yield_now(),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn model(
    produce: impl Fn(&mut Producer<'_, u64>) + Send + Sync + 'static,
    consume: impl Fn(&mut Consumer<'_, u64>) -> Vec<u64> + Send + Sync + 'static,
) {
    let produce = Arc::new(produce);
    let consume = Arc::new(consume);
    loom::model(move || {
        let heap = Arc::new(HeapSpscRing::<u64>::new(2).unwrap());
        let producer = {
            let (heap, produce) = (heap.clone(), produce.clone());
            loom::thread::spawn(move || {
                let ring = heap.ring();
                // SAFETY: the model's only producer.
                produce(&mut unsafe { ring.producer() }.unwrap());
            })
        };
        let ring = heap.ring();
        // SAFETY: the model's only consumer.
        let mut c = unsafe { ring.consumer() }.unwrap();
        let got = consume(&mut c);
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        producer.join().unwrap();
        assert_eq!(c.try_pop(), Err(PopError::Empty));
        assert_eq!(ring.len(), 0);
    });
}

#[test]
fn single_push_pop_fifo_across_wrap_around() {
    model(
        |p| {
            for v in 0..N {
                retry(|| p.try_push(v));
            }
        },
        |c| {
            (0..N)
                .map(|i| {
                    if i == 2 {
                        // Once the ring has wrapped: peek, then a
                        // snapshot of what is ready.
                        let peeked = retry(|| c.peek());
                        let len = c.len();
                        assert!((1..=2).contains(&len), "len {len}");
                        assert_eq!(c.try_pop(), Ok(peeked));
                        return peeked;
                    }
                    retry(|| c.try_pop())
                })
                .collect()
        },
    );
}

#[test]
fn slices_fifo_across_wrap_around() {
    model(
        |p| {
            let src: Vec<u64> = (0..N).collect();
            let mut sent = 0;
            while sent < src.len() {
                match p.push_slice(&src[sent..]).unwrap() {
                    0 => loom::thread::yield_now(),
                    n => sent += n,
                }
            }
        },
        |c| {
            let mut got = vec![0; N as usize];
            let mut n = 0;
            while n < got.len() {
                // Ask for 3 so a request larger than the ring is tried.
                let end = (n + 3).min(got.len());
                match c.pop_slice(&mut got[n..end]).unwrap() {
                    0 => loom::thread::yield_now(),
                    k => n += k,
                }
            }
            got
        },
    );
}

#[test]
fn chunks_fifo_across_wrap_around() {
    model(
        |p| {
            let mut next = 0;
            while next < N {
                let mut chunk = p.write_chunk(2).unwrap();
                if chunk.is_empty() {
                    drop(chunk);
                    loom::thread::yield_now();
                    continue;
                }
                let (a, b) = chunk.as_mut_slices();
                for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                    *v = next + i as u64;
                }
                // Commit one at a time on the first chunk, to exercise a
                // partial commit; everything after that.
                let k = if next == 0 { 1 } else { chunk.len() };
                let k = k.min((N - next) as usize);
                chunk.commit(k);
                next += k as u64;
            }
        },
        |c| {
            let mut got = Vec::new();
            while got.len() < N as usize {
                let chunk = c.read_chunk(2).unwrap();
                if chunk.is_empty() {
                    drop(chunk);
                    loom::thread::yield_now();
                    continue;
                }
                let (a, b) = chunk.as_slices();
                let first = a.first().or(b.first()).copied().unwrap();
                got.push(first);
                // Release only the first value: the rest is read again
                // next time, from the same slots.
                chunk.release(1);
            }
            got
        },
    );
}

/// An observer's snapshot never shows a tail behind the head, however
/// it interleaves with both sides (capacity 1, so it also sees the
/// tail run more than a capacity ahead of the head it loaded first,
/// which it reports as full).
#[test]
fn a_third_party_snapshot_is_never_reported_corrupted() {
    loom::model(|| {
        let heap = Arc::new(HeapSpscRing::<u64>::new(1).unwrap());
        let threads: Vec<_> = [0, 1]
            .into_iter()
            .map(|side| {
                let heap = heap.clone();
                loom::thread::spawn(move || {
                    let ring = heap.ring();
                    if side == 0 {
                        // SAFETY: the model's only producer.
                        let mut p = unsafe { ring.producer() }.unwrap();
                        for v in 0..2 {
                            retry(|| p.try_push(v));
                        }
                    } else {
                        // SAFETY: the model's only consumer.
                        let mut c = unsafe { ring.consumer() }.unwrap();
                        for v in 0..2 {
                            assert_eq!(retry(|| c.try_pop()), v);
                        }
                    }
                })
            })
            .collect();
        // Loom's exploration only tracks the last access to each
        // atomic, and misses the observer's loads racing with a side
        // that loaded the same word before storing it; yielding between
        // snapshots lets the sides run in between instead.
        for _ in 0..2 {
            let len = heap.ring().len();
            assert!(len <= 1, "len {len}");
            loom::thread::yield_now();
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}
