use super::*;
use crate::ring::{PopError, PushError};

#[test]
fn fills_and_drains_with_wrap_around() {
    let heap = HeapSpscRing::<u64>::new(4).unwrap();
    let ring = heap.ring();
    // SAFETY: the only producer and consumer of a ring that only this
    // test touches.
    let (mut p, mut c) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    for round in 0..10u64 {
        for i in 0..4 {
            p.try_push(round * 4 + i).unwrap();
        }
        assert_eq!(p.try_push(99), Err(PushError::Full(99)));
        assert_eq!(ring.len(), 4);
        assert_eq!(c.peek(), Ok(round * 4));
        for i in 0..4 {
            assert_eq!(c.try_pop(), Ok(round * 4 + i));
        }
        assert_eq!(c.try_pop(), Err(PopError::Empty));
        assert_eq!(c.peek(), Err(PopError::Empty));
    }
    assert_eq!(heap.header.tail.load(Ordering::Relaxed), 40);
    assert_eq!(heap.header.head.load(Ordering::Relaxed), 40);
}

#[test]
fn pop_into_fills_out_only_when_a_value_is_there() {
    let mut heap = HeapSpscRing::<[u8; 64]>::new(2).unwrap();
    let (mut p, mut c) = heap.split().unwrap();
    let mut out = [9u8; 64];
    assert_eq!(c.pop_into(&mut out), Err(PopError::Empty));
    assert_eq!(out, [9u8; 64]);
    for round in 0..3u8 {
        p.try_push([round; 64]).unwrap();
        p.try_push([round + 100; 64]).unwrap();
        c.pop_into(&mut out).unwrap();
        assert_eq!(out, [round; 64]);
        c.pop_into(&mut out).unwrap();
        assert_eq!(out, [round + 100; 64]);
    }
    assert_eq!(c.pop_into(&mut out), Err(PopError::Empty));
}

#[test]
fn slices_and_chunks_split_at_the_end_of_the_array() {
    let mut heap = HeapSpscRing::<u32>::new(8).unwrap();
    let (mut p, mut c) = heap.split().unwrap();
    assert_eq!(p.push_slice(&[0, 1, 2, 3, 4, 5]).unwrap(), 6);
    let mut buf = [0; 5];
    assert_eq!(c.pop_slice(&mut buf).unwrap(), 5);
    assert_eq!(buf, [0, 1, 2, 3, 4]);
    // tail = 6, head = 5: 7 free, the run wraps after 2.
    let mut w = p.write_chunk(10).unwrap();
    assert_eq!(w.len(), 7);
    let (a, b) = w.as_mut_slices();
    assert_eq!((a.len(), b.len()), (2, 5));
    a.copy_from_slice(&[6, 7]);
    b.copy_from_slice(&[8, 9, 10, 11, 12]);
    w.commit(6);
    assert_eq!(p.len(), 7);
    let r = c.read_chunk(100).unwrap();
    let (a, b) = r.as_slices();
    assert_eq!((a, b), (&[5, 6, 7][..], &[8, 9, 10, 11][..]));
    r.release(2);
    assert_eq!(c.try_pop(), Ok(7));
    assert_eq!(c.len(), 4);
    assert_eq!(p.push_slice(&[13, 14, 15, 16, 17]).unwrap(), 4);
    assert_eq!(p.push_slice(&[17]).unwrap(), 0);
    assert_eq!(p.write_chunk(1).unwrap().len(), 0); // full: an empty chunk
    assert_eq!(p.write_chunk(0).unwrap().len(), 0);
    let mut all = [0; 9];
    assert_eq!(c.pop_slice(&mut all).unwrap(), 8);
    assert_eq!(all[..8], [8, 9, 10, 11, 13, 14, 15, 16]);
    assert_eq!(c.read_chunk(1).unwrap().len(), 0); // empty: an empty chunk
    assert_eq!(c.read_chunk(0).unwrap().len(), 0);
}

#[test]
fn split_attaches_both_sides_and_resumes_where_they_stopped() {
    let mut heap = HeapSpscRing::<u64>::new(4).unwrap();
    {
        let (mut p, mut c) = heap.split().unwrap();
        assert_eq!(p.push_slice(&[1, 2, 3]), Ok(3));
        assert_eq!(c.try_pop(), Ok(1));
    }
    // New handles start from the shared indices: 2 and 3 are there.
    let (mut p, mut c) = heap.split().unwrap();
    assert_eq!((p.len(), c.len()), (2, 2));
    std::thread::scope(|s| {
        s.spawn(move || {
            for v in 4..1000 {
                while p.try_push(v) == Err(PushError::Full(v)) {
                    std::thread::yield_now();
                }
            }
        });
        for want in 2..1000 {
            loop {
                match c.try_pop() {
                    Ok(v) => break assert_eq!(v, want),
                    Err(PopError::Empty) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    assert_eq!(heap.header.tail.load(Ordering::Relaxed), 999);
    assert_eq!(heap.header.head.load(Ordering::Relaxed), 999);
    heap.header.head.store(999 + 5, Ordering::Relaxed);
    assert_eq!(heap.split().unwrap_err(), Corrupted(BAD_INDICES));
}

#[test]
fn capacity_one_works() {
    let mut heap = HeapSpscRing::<u8>::new(1).unwrap();
    let (mut p, mut c) = heap.split().unwrap();
    for i in 0..5 {
        p.try_push(i).unwrap();
        assert_eq!(p.try_push(i), Err(PushError::Full(i)));
        assert_eq!(c.try_pop(), Ok(i));
    }
}

#[test]
fn scribbled_indices_are_reported_not_followed() {
    let heap = HeapSpscRing::<u64>::new(4).unwrap();
    let ring = heap.ring();
    // SAFETY: the only producer and consumer of a ring that only this
    // test touches.
    let (mut p, mut c) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
    p.push_slice(&[1, 2, 3, 4]).unwrap();
    assert_eq!(c.try_pop(), Ok(1)); // sees tail = 4
    assert_eq!(p.try_push(5), Ok(())); // sees head = 1
    heap.header.head.store(6, Ordering::Relaxed); // past tail
    assert_eq!(p.try_push(6), Err(PushError::Corrupted(BAD_HEAD)));
    heap.header.head.store(0, Ordering::Relaxed); // backwards
    assert_eq!(p.try_push(6), Err(PushError::Corrupted(BAD_HEAD)));
    heap.header.tail.store(10, Ordering::Relaxed); // > head + capacity
    assert_eq!(c.len(), 4); // clamped; the pop that meets it reports it
                            // The cached tail still covers 2, 3, 4; the refresh after them fails.
    assert_eq!(c.try_pop(), Ok(2));
    assert_eq!(c.try_pop(), Ok(3));
    assert_eq!(c.try_pop(), Ok(4));
    assert_eq!(c.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
    heap.header.tail.store(3, Ordering::Relaxed); // backwards
    assert_eq!(c.try_pop(), Err(PopError::Corrupted(BAD_TAIL)));
    heap.header.tail.store(5, Ordering::Relaxed); // restored
    assert_eq!(c.try_pop(), Ok(5));
    heap.header.head.store(100, Ordering::Relaxed);
    // SAFETY: both calls fail (the indices are invalid), so no second
    // producer or consumer is made.
    let (p2, c2) = unsafe { (ring.producer(), ring.consumer()) };
    assert_eq!(p2.unwrap_err(), Corrupted(BAD_INDICES));
    assert_eq!(c2.unwrap_err(), Corrupted(BAD_INDICES));
    assert_eq!(ring.len(), 0); // tail behind head reads as empty
    assert!(HeapSpscRing::<u64>::new(4).unwrap().open().is_ok());
    heap.header.capacity.store(8, Ordering::Relaxed);
    assert!(matches!(heap.open(), Err(Error::Corrupted { .. })));
}
