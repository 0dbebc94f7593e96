//! B. Throughput: a stream from a producing child to the parent.

use crate::link::Link;
use crate::plan::{Ctx, Plan};
use crate::support::{self, Control, Stats, StreamRun, Wait, CHILD_IDLE_LIMIT};
use crate::{bytes, channel, ideal, peers, spsc, BATCH, ROLE_PRODUCE, STOP};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The child's end of a stream.
pub(crate) trait Producer {
    /// Sends messages `first..first + count`.
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String>;
}

/// The parent's end of a stream.
pub(crate) trait Consumer {
    /// Receives and checks messages `first..first + count`.
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String>;
}

/// One throughput figure.
pub(crate) struct Throughput {
    /// Messages per second, one sample per repetition.
    pub(crate) stats: Stats,
    /// Messages received and checked in all (calibration included).
    pub(crate) count: u64,
}

/// The parent's side of a stream over one link: messages/s per measured
/// repetition, messages received in all, and whether the parent ran
/// pinned.
pub(crate) type Streamed = Result<((Vec<f64>, u64), bool), String>;

/// The parent's side of a stream: a calibration run, then timed
/// repetitions ([`support::timed_reps`]), each started by a signal to the
/// producing child; returns messages/s per measured repetition and how
/// many messages were received in all.
pub(crate) fn stream<C: Consumer>(
    consumer: &mut C,
    control: &Control,
    plan: &Plan,
) -> Result<(Vec<f64>, u64), String> {
    let mut rep: u64 = 0;
    let result = support::timed_reps(&plan.streams, BATCH as u64, |first, count| {
        rep += 1;
        control.first.store(first, Ordering::Relaxed);
        control.count.store(count, Ordering::Relaxed);
        let t = Instant::now();
        control.go.store(rep, Ordering::Release);
        consumer.consume(first, count)?;
        Ok(t.elapsed())
    })?;
    control.go.store(STOP, Ordering::Release);
    Ok(result)
}

/// Measures a stream of `size`-byte messages over `link`, produced by a
/// child.
pub(crate) fn throughput(link: Link, size: usize, ctx: &Ctx) -> Result<StreamRun, String> {
    let control = support::new_control()?;
    let role = format!("{ROLE_PRODUCE}:{}:{size}", link.tag());
    let ((samples, total), pinned) = match link {
        Link::Ideal | Link::IdealEach => ideal::throughput(link, size, ctx, &role, &control)?,
        Link::Pipe | Link::Unix => peers::throughput(link, size, ctx, &role, &control)?,
        Link::Typed | Link::TypedBatch | Link::Mpmc => {
            channel::throughput(link, size, ctx, &role, &control)?
        }
        Link::Bytes => bytes::throughput(size, ctx, &role, &control)?,
        Link::RingChunks | Link::RingEach => spsc::throughput(link, size, ctx, &role, &control)?,
        Link::Line => return Err("no stream over a single cache line".to_owned()),
    };
    let produced = control.produced.load(Ordering::Acquire);
    if produced != total {
        return Err(format!(
            "{role}: the child sent {produced} messages, the parent received {total}"
        ));
    }
    Ok(StreamRun {
        samples,
        count: total,
        pinned,
    })
}

/// The child's side of a stream: waits for each repetition's start
/// signal, produces it, counts it; returns at [`STOP`].
pub(crate) fn serve_stream<P: Producer>(
    control: &Control,
    mut producer: P,
    how: Wait,
) -> Result<(), String> {
    control.ready.store(1, Ordering::Release);
    let mut rep: u64 = 0;
    loop {
        let want = rep + 1;
        let go = support::wait_for(CHILD_IDLE_LIMIT, how, || {
            let g = control.go.load(Ordering::Acquire);
            (g == want || g == STOP).then_some(g)
        })
        .ok_or_else(|| {
            format!("no start signal for repetition {want} within {CHILD_IDLE_LIMIT:?}")
        })?;
        if go == STOP {
            return Ok(());
        }
        rep = go;
        let first = control.first.load(Ordering::Relaxed);
        let count = control.count.load(Ordering::Relaxed);
        producer.produce(first, count)?;
        control.produced.fetch_add(count, Ordering::Release);
    }
}
