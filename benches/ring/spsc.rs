//! shmkit's `SpscRing` itself, without a channel around it: whole batches
//! written and read in place, or one `try_push`/`pop_into` per item, both
//! spinning as the ideal ring does.

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::out_of_sequence;
use crate::support::Control;
use crate::support::{self, Wait, CHILD_IDLE_LIMIT, PARENT_WAIT_LIMIT};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{BATCH, LINK_A_VAR, U64_CAPACITY};
use shmkit::ring::spsc::{self, SpscRing};
use shmkit::ring::{PopError, PushError};
use shmkit::{LayoutId, RegionOptions, Shm};

/// A `u64` stream over a bare ring, produced by the child.
pub(crate) fn throughput(
    link: Link,
    size: usize,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Streamed {
    let plan = &ctx.plan;
    match (link, size) {
        (Link::RingChunks | Link::RingEach, 8) => {
            let region = ring_options()
                .anonymous_with(|r| SpscRing::<u64>::create(r, 0, U64_CAPACITY).map(|_| ()))
                .map_err(|e| format!("creating the ring's region: {e}"))?;
            let child = ctx.spawn(role, control, |cmd| {
                region.pass_to_child(cmd, LINK_A_VAR);
            })?;
            let ring =
                SpscRing::<u64>::open(&region, 0).map_err(|e| format!("opening the ring: {e}"))?;
            // SAFETY: the only consumer of this ring; the child produces.
            let rx = unsafe { ring.consumer() }.map_err(|e| format!("the ring's consumer: {e}"))?;
            if link == Link::RingEach {
                let mut consumer = ItemConsumer {
                    rx,
                    how: ctx.placement.how,
                };
                ctx.drive(role, control, child, (), || {
                    stream(&mut consumer, control, plan)
                })
            } else {
                let mut consumer = ChunkConsumer {
                    rx,
                    how: ctx.placement.how,
                };
                ctx.drive(role, control, child, (), || {
                    stream(&mut consumer, control, plan)
                })
            }
        }
        _ => Err(format!(
            "no shmkit stream of {size}-byte messages over {link:?}"
        )),
    }
}

/// The child's producer over a bare ring.
pub(crate) fn produce(link: Link, size: usize, control: &Control, how: Wait) -> Result<(), String> {
    match (link, size) {
        (Link::RingChunks | Link::RingEach, 8) => {
            // SAFETY: the parent passed this region with `pass_to_child`
            // under LINK_A_VAR for exactly this purpose; nothing else in
            // this process owns it, and this is the only call for the
            // variable.
            let region = unsafe { ring_options().from_env(LINK_A_VAR) }
                .map_err(|e| format!("opening the inherited ring: {e}"))?;
            let ring =
                SpscRing::<u64>::open(&region, 0).map_err(|e| format!("opening the ring: {e}"))?;
            // SAFETY: the only producer of this ring; the parent consumes.
            let tx = unsafe { ring.producer() }.map_err(|e| format!("the ring's producer: {e}"))?;
            if link == Link::RingEach {
                serve_stream(control, ItemProducer { tx, how }, how)
            } else {
                serve_stream(control, ChunkProducer { tx, how }, how)
            }
        }
        _ => Err(format!(
            "no shmkit stream of {size}-byte messages over {link:?}"
        )),
    }
}

/// The region of the bare `SpscRing` row: the ring at offset 0.
pub(crate) fn ring_options() -> RegionOptions {
    RegionOptions::new()
        .size(SpscRing::<u64>::bytes_for(U64_CAPACITY).unwrap_or(0))
        .layout(LayoutId::named("shmkit-bench::spsc-ring", 1))
}

/// Writes whole batches in place, waiting (spinning) for room for one.
pub(crate) struct ChunkProducer<'a> {
    tx: spsc::Producer<'a, u64>,
    how: Wait,
}

impl Producer for ChunkProducer<'_> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        if count % BATCH as u64 != 0 {
            return Err(format!("{count} items are not whole batches of {BATCH}"));
        }
        for batch in 0..count / BATCH as u64 {
            let seq = first + batch * BATCH as u64;
            let tx = &mut self.tx;
            support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
                let mut chunk = match tx.write_chunk(BATCH) {
                    Ok(c) if c.len() == BATCH => c,
                    Ok(_) => return None,
                    Err(e) => return Some(Err(format!("write_chunk: {e}"))),
                };
                // Two plain loops: a chained iterator does not vectorize.
                let (a, b) = chunk.as_mut_slices();
                let split = seq + a.len() as u64;
                for (i, v) in a.iter_mut().enumerate() {
                    *v = seq + i as u64;
                }
                for (i, v) in b.iter_mut().enumerate() {
                    *v = split + i as u64;
                }
                chunk.commit_all();
                Some(Ok(()))
            })
            .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))??;
        }
        Ok(())
    }
}

/// Pushes one item at a time, waiting (spinning) for room.
pub(crate) struct ItemProducer<'a> {
    tx: spsc::Producer<'a, u64>,
    how: Wait,
}

impl Producer for ItemProducer<'_> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            let tx = &mut self.tx;
            support::wait_for(CHILD_IDLE_LIMIT, self.how, || match tx.try_push(seq) {
                Ok(()) => Some(Ok(())),
                Err(PushError::Full(_)) => None,
                Err(e) => Some(Err(format!("try_push: {e}"))),
            })
            .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))??;
        }
        Ok(())
    }
}

/// Pops one item at a time, waiting (spinning) for one.
pub(crate) struct ItemConsumer<'a> {
    rx: spsc::Consumer<'a, u64>,
    how: Wait,
}

impl Consumer for ItemConsumer<'_> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let mut v = 0;
        for seq in first..first + count {
            let rx = &mut self.rx;
            support::wait_for(PARENT_WAIT_LIMIT, self.how, || match rx.pop_into(&mut v) {
                Ok(()) => Some(Ok(())),
                Err(PopError::Empty) => None,
                Err(e) => Some(Err(format!("pop_into: {e}"))),
            })
            .ok_or_else(|| format!("no item {seq} within {PARENT_WAIT_LIMIT:?}"))??;
            if v != seq {
                return Err(out_of_sequence(v, seq));
            }
        }
        Ok(())
    }
}

/// Reads whole batches in place, waiting (spinning) for one.
pub(crate) struct ChunkConsumer<'a> {
    rx: spsc::Consumer<'a, u64>,
    how: Wait,
}

impl Consumer for ChunkConsumer<'_> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        if count % BATCH as u64 != 0 {
            return Err(format!("{count} items are not whole batches of {BATCH}"));
        }
        for batch in 0..count / BATCH as u64 {
            let seq = first + batch * BATCH as u64;
            let rx = &mut self.rx;
            support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
                let chunk = match rx.read_chunk(BATCH) {
                    Ok(c) if c.len() == BATCH => c,
                    Ok(_) => return None,
                    Err(e) => return Some(Err(format!("read_chunk: {e}"))),
                };
                let (a, b) = chunk.as_slices();
                let split = seq + a.len() as u64;
                let mut wrong = 0;
                for (i, v) in a.iter().enumerate() {
                    wrong |= v ^ (seq + i as u64);
                }
                for (i, v) in b.iter().enumerate() {
                    wrong |= v ^ (split + i as u64);
                }
                chunk.release_all();
                Some(if wrong == 0 {
                    Ok(())
                } else {
                    Err(format!("a chunk from item {seq} holds wrong values"))
                })
            })
            .ok_or_else(|| format!("no batch at item {seq} within {PARENT_WAIT_LIMIT:?}"))??;
        }
        Ok(())
    }
}
