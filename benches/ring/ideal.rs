//! The ideal SPSC `u64` stream, the throughput floor: a hand-rolled ring
//! in an anonymous region.

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::Control;
use crate::support::{self, Wait, CHILD_IDLE_LIMIT, PARENT_WAIT_LIMIT};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{BATCH, LINK_A_VAR, U64_CAPACITY};
use shmkit::{LayoutId, Region, RegionOptions, Shm, ShmSafe};
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------
// The ideal SPSC u64 stream: a hand-rolled ring in an anonymous region
//
// data offset  what
//   0          head: the consumer's index (items taken), own 128 bytes
//   128        tail: the producer's index (items published), own 128 bytes
//   256        U64_CAPACITY u64 slots; item i lives in slot i % capacity
//
// Both sides move their index a whole batch at a time, so a batch never
// wraps (the capacity is a multiple of the batch) and each index is
// published once per BATCH items.
// ---------------------------------------------------------------------------

pub(crate) const HEAD_AT: usize = 0;
pub(crate) const TAIL_AT: usize = 128;
pub(crate) const SLOTS_AT: usize = 256;
const _: () = assert!(U64_CAPACITY.is_power_of_two() && U64_CAPACITY % BATCH == 0);

/// One index on its own 128 bytes (two cache lines, against
/// adjacent-line prefetch).
#[repr(C, align(128))]
pub(crate) struct Index {
    value: AtomicU64,
}
// SAFETY: repr(C); its only field is an AtomicU64, which is
// ShmSafe; the rest is padding.
unsafe impl ShmSafe for Index {}

/// The ideal ring's region.
pub(crate) struct Ideal {
    region: Region,
}

impl Ideal {
    fn options() -> RegionOptions {
        RegionOptions::new()
            .size(SLOTS_AT + U64_CAPACITY * 8)
            .layout(LayoutId::named("shmkit-bench::ideal-spsc", 1))
    }

    /// A fresh, zeroed ring: both indices 0.
    fn create() -> Result<Ideal, String> {
        let region = Self::options()
            .anonymous()
            .map_err(|e| format!("creating the ideal ring's region: {e}"))?;
        Ok(Ideal { region })
    }

    /// In a child: the ring the parent passed down.
    fn inherited() -> Result<Ideal, String> {
        // SAFETY: the parent passed this descriptor with `pass_to_child`
        // under LINK_A_VAR for exactly this purpose; nothing else in this
        // process owns it, and this is the only call for the variable.
        let region = unsafe { Self::options().from_env(LINK_A_VAR) }
            .map_err(|e| format!("opening the inherited ideal ring: {e}"))?;
        Ok(Ideal { region })
    }

    fn index(&self, at: usize) -> Result<&AtomicU64, String> {
        self.region
            .place::<Index>(at)
            .map(|i| &i.value)
            .map_err(|e| format!("placing an index: {e}"))
    }

    /// The first slot, checked to hold all `U64_CAPACITY` slots, aligned.
    fn slots(&self) -> Result<*mut u64, String> {
        // Borrowing them as a slice would claim they do not change under
        // us; only the check is wanted.
        self.region
            .place_slice::<Index>(SLOTS_AT, U64_CAPACITY * 8 / 128)
            .map_err(|e| format!("placing the slots: {e}"))?;
        // SAFETY: SLOTS_AT + U64_CAPACITY * 8 bytes are in the region
        // (checked just above), so the address is inside its data.
        Ok(unsafe { self.region.as_ptr().add(SLOTS_AT) }.cast())
    }
}

/// The ideal ring's producer (in the child).
pub(crate) struct IdealProducer<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    slots: *mut u64,
    /// Items published (the value last stored in `tail`).
    published: u64,
    /// The consumer's index as last read.
    head_seen: u64,
    /// Items written per publication (a divisor of the capacity).
    batch: u64,
    how: Wait,
}

impl<'a> IdealProducer<'a> {
    fn new(ring: &'a Ideal, batch: u64, how: Wait) -> Result<Self, String> {
        Ok(IdealProducer {
            head: ring.index(HEAD_AT)?,
            tail: ring.index(TAIL_AT)?,
            slots: ring.slots()?,
            published: 0,
            head_seen: 0,
            batch,
            how,
        })
    }
}

impl Producer for IdealProducer<'_> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        let batch = self.batch;
        if count % batch != 0 {
            return Err(format!("{count} items are not whole batches of {batch}"));
        }
        let cap = U64_CAPACITY as u64;
        let mut seq = first;
        for _ in 0..count / batch {
            if self.published.wrapping_sub(self.head_seen) + batch > cap {
                let published = self.published;
                self.head_seen = support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
                    let h = self.head.load(Ordering::Acquire);
                    (published.wrapping_sub(h) + batch <= cap).then_some(h)
                })
                .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))?;
            }
            let at = (self.published % cap) as usize;
            for i in 0..batch as usize {
                // SAFETY: `at` is a multiple of the batch below the capacity, a
                // multiple of the batch, so `at + i` is a slot of the region
                // (checked by `slots`), u64-aligned. The consumer has taken
                // these slots' previous items (its index, loaded with
                // Acquire, is at most capacity - batch behind ours) and
                // reads them only after our Release store below.
                unsafe { self.slots.add(at + i).write(seq + i as u64) };
            }
            seq += batch;
            self.published += batch;
            self.tail.store(self.published, Ordering::Release);
        }
        Ok(())
    }
}

/// The ideal ring's consumer (in the parent).
pub(crate) struct IdealConsumer<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    slots: *mut u64,
    /// Items taken (the value last stored in `head`).
    taken: u64,
    /// The producer's index as last read.
    tail_seen: u64,
    /// Items read per publication (a divisor of the capacity).
    batch: u64,
    how: Wait,
}

impl<'a> IdealConsumer<'a> {
    fn new(ring: &'a Ideal, batch: u64, how: Wait) -> Result<Self, String> {
        Ok(IdealConsumer {
            head: ring.index(HEAD_AT)?,
            tail: ring.index(TAIL_AT)?,
            slots: ring.slots()?,
            taken: 0,
            tail_seen: 0,
            batch,
            how,
        })
    }
}

impl Consumer for IdealConsumer<'_> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let batch = self.batch;
        if count % batch != 0 {
            return Err(format!("{count} items are not whole batches of {batch}"));
        }
        let cap = U64_CAPACITY as u64;
        let mut expected = first;
        for _ in 0..count / batch {
            if self.tail_seen.wrapping_sub(self.taken) < batch {
                let taken = self.taken;
                self.tail_seen = support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
                    let t = self.tail.load(Ordering::Acquire);
                    (t.wrapping_sub(taken) >= batch).then_some(t)
                })
                .ok_or_else(|| {
                    format!("no batch at item {expected} within {PARENT_WAIT_LIMIT:?}")
                })?;
            }
            let at = (self.taken % cap) as usize;
            let mut wrong = 0;
            for i in 0..batch as usize {
                // SAFETY: `at + i` is a slot of the region, u64-aligned (as
                // in the producer); the producer published it (its index,
                // loaded with Acquire, is at least a batch ahead of ours) and
                // does not write it again before our Release store below.
                let v = unsafe { self.slots.add(at + i).read() };
                wrong |= v ^ (expected + i as u64);
            }
            if wrong != 0 {
                return Err(format!(
                    "ideal ring: a batch from item {expected} holds wrong values"
                ));
            }
            expected += batch;
            self.taken += batch;
            self.head.store(self.taken, Ordering::Release);
        }
        Ok(())
    }
}

/// A stream over the ideal ring: the parent's side.
pub(crate) fn throughput(
    link: Link,
    size: usize,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Streamed {
    let plan = &ctx.plan;
    if size != 8 {
        return Err(format!("the ideal ring carries u64s, not {size} bytes"));
    }
    let ring = Ideal::create()?;
    let child = ctx.spawn(role, control, |cmd| {
        ring.region.pass_to_child(cmd, LINK_A_VAR);
    })?;
    let mut consumer = IdealConsumer::new(&ring, link.ideal_batch(), ctx.placement.how)?;
    ctx.drive(role, control, child, (), || {
        stream(&mut consumer, control, plan)
    })
}

/// The child's producer over the ideal ring.
pub(crate) fn produce(link: Link, control: &Control, how: Wait) -> Result<(), String> {
    let ring = Ideal::inherited()?;
    serve_stream(
        control,
        IdealProducer::new(&ring, link.ideal_batch(), how)?,
        how,
    )
}
