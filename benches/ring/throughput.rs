//! B. Throughput: a stream from a producing child to the parent.

use crate::link::Link;
use crate::plan::{Ctx, Plan};
use crate::support::{self, Control, Stats, Wait, CHILD_IDLE_LIMIT};
use crate::{bytes, channel, ideal, peers, spsc, BATCH, ROLE_PRODUCE, STOP};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
/// repetitions; returns messages/s per measured repetition and how many
/// messages were received in all.
pub(crate) fn stream<C: Consumer>(
    consumer: &mut C,
    control: &Control,
    plan: &Plan,
) -> Result<(Vec<f64>, u64), String> {
    let mut rep: u64 = 0;
    let mut next: u64 = 0;
    let mut run = |count: u64| -> Result<Duration, String> {
        rep += 1;
        control.first.store(next, Ordering::Relaxed);
        control.count.store(count, Ordering::Relaxed);
        let t = Instant::now();
        control.go.store(rep, Ordering::Release);
        consumer.consume(next, count)?;
        let took = t.elapsed();
        next += count;
        Ok(took)
    };

    // Calibrate: grow a run until it lasts pilot_time. Each repetition
    // is then sized to last rep_time at the rate of the one before, so a
    // rate that changes mid-row (other load on the machine) cannot make
    // the row run for minutes.
    let mut count = (4 * BATCH) as u64;
    let mut rate = loop {
        let took = run(count)?;
        if took >= plan.pilot_time || count >= 1 << 32 {
            break count as f64 / took.as_secs_f64().max(1e-9);
        }
        count *= 4;
    };
    let mut samples = Vec::with_capacity(plan.reps);
    for i in 0..plan.warmup_reps + plan.reps {
        let count = rep_size(rate, plan.rep_time);
        let took = run(count)?;
        rate = count as f64 / took.as_secs_f64().max(1e-9);
        if i >= plan.warmup_reps {
            samples.push(rate);
        }
    }
    control.go.store(STOP, Ordering::Release);
    Ok((samples, next))
}

/// Messages for a repetition of about `time` at `rate` messages/s: whole
/// batches, at least one.
pub(crate) fn rep_size(rate: f64, time: Duration) -> u64 {
    let batch = BATCH as f64;
    ((rate * time.as_secs_f64() / batch).ceil() * batch).clamp(batch, (1u64 << 36) as f64) as u64
}

/// One child's stream.
pub(crate) struct StreamRun {
    /// Messages/s per measured repetition.
    pub(crate) samples: Vec<f64>,
    /// Messages received and checked in all (calibration included).
    pub(crate) count: u64,
    /// Whether the parent ran pinned.
    pub(crate) pinned: bool,
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
