use super::*;
use crate::primitive::spin_loop;
use crate::ring::Miss;
use std::sync::Arc;

fn record(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

/// Runs `op` until it does not fail for want of room or data.
fn retry<E: Into<Miss>>(mut op: impl FnMut() -> Result<(), E>) {
    loop {
        match op().map_err(Into::into) {
            Ok(()) => return,
            Err(Miss::WouldBlock) => spin_loop(),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Three records of different lengths through a 64-byte ring with a
/// 24-byte maximum: 20 (footprint 32) at 0, 9 (footprint 24) at 32,
/// then 17 (footprint 32) does not fit in the 8 bytes left, so the
/// producer writes a wrap frame at 56 and waits for the consumer to
/// free offset 0..32. `in_place` picks reserve/commit and
/// read/release over send/recv for the later records.
fn three_records(in_place: bool) {
    loom::model(move || {
        let ring = Arc::new(HeapByteRing::new(64, 24).unwrap());
        let lens = [20usize, 9, 17];
        let producer = {
            let ring = ring.clone();
            loom::thread::spawn(move || {
                let view = ring.ring();
                // SAFETY: the only producer.
                let mut tx = unsafe { view.producer() }.unwrap();
                let d: Vec<Vec<u8>> = (0..3).map(|i| record(i, lens[i])).collect();
                retry(|| tx.try_push(&d[0]));
                if in_place {
                    // Reserve more than needed, shrink on commit.
                    retry(|| {
                        tx.write_chunk(lens[1] + 3).map(|mut g| {
                            g[..lens[1]].copy_from_slice(&d[1]);
                            g.commit(lens[1]);
                        })
                    });
                    // A dropped chunk publishes nothing; once one was
                    // reserved, the same reservation succeeds again.
                    retry(|| tx.write_chunk(lens[2]).map(|_unused| ()));
                    let mut g = tx.write_chunk(lens[2]).unwrap();
                    g.copy_from_slice(&d[2]);
                    g.commit_all();
                } else {
                    retry(|| tx.try_push(&d[1]));
                    retry(|| tx.try_push(&d[2]));
                }
                tx.index()
            })
        };
        let view = ring.ring();
        // SAFETY: the only consumer.
        let mut rx = unsafe { view.consumer() }.unwrap();
        let mut got = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            if in_place {
                retry(|| {
                    rx.read_chunk().map(|g| {
                        got.clear();
                        got.extend_from_slice(&g);
                        g.release();
                    })
                });
            } else {
                retry(|| rx.try_pop(&mut got).map(drop));
            }
            assert_eq!(got, record(i, len), "record {i}");
        }
        assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));
        let produced = producer.join().unwrap();
        // 32 + 24, then 8 of wrap padding, then 32.
        assert_eq!(produced, 96);
        assert_eq!(rx.index(), 96);
    });
}

#[test]
fn three_records_wrap_send_recv() {
    three_records(false);
}

#[test]
fn three_records_wrap_reserve_read() {
    three_records(true);
}
