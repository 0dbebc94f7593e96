//! A. Latency: ping-pong between the parent and an echoing child.

use crate::control::Control;
use crate::link::Link;
use crate::plan::{Ctx, Plan};
use crate::{bytes, channel, line, peers, ROLE_ECHO};
use hdrhistogram::Histogram;
use shmkit::Shm;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The parent's end of a ping-pong link.
pub(crate) trait Pinger {
    /// Sends ping `seq` and waits for its echo, which it checks.
    fn ping(&mut self, seq: u64) -> Result<(), String>;
    /// Tells the echoing child to stop.
    fn stop(&mut self) -> Result<(), String>;
}

/// The child's end of a ping-pong link.
pub(crate) trait Echoer {
    /// Waits for a ping and echoes it; `false` when told to stop.
    fn echo(&mut self) -> Result<bool, String>;
}

/// The parent's side of a latency row over one link: the round trip
/// times (ns) and whether the parent ran pinned.
pub(crate) type Pings = Result<(Histogram<u64>, bool), String>;

/// One round of a latency row: round trips timed one by one.
pub(crate) struct Latency {
    /// Round trip times, ns.
    pub(crate) hist: Histogram<u64>,
    pub(crate) pinned: bool,
}

/// Round trips over `pinger`: warm-up, then each one timed into an HDR
/// histogram (ns per round trip), until the budget or the count runs out.
pub(crate) fn ping_pong<P: Pinger>(pinger: &mut P, plan: &Plan) -> Result<Histogram<u64>, String> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("creating the histogram: {e}"))?;
    let mut seq: u64 = 0;
    let warm_end = Instant::now() + plan.latency_warmup;
    while Instant::now() < warm_end {
        pinger.ping(seq)?;
        seq += 1;
    }
    let end = Instant::now() + plan.latency_budget / plan.latency_rounds;
    for _ in 0..plan.max_round_trips / u64::from(plan.latency_rounds) {
        let t = Instant::now();
        pinger.ping(seq)?;
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        seq += 1;
        if t >= end {
            break;
        }
    }
    pinger.stop()?;
    Ok(hist)
}

/// Measures one round of round trips over `link` with a child echoing.
pub(crate) fn latency(link: Link, ctx: &Ctx) -> Result<Latency, String> {
    let control = Shm::<Control>::anonymous(|_| {})
        .map_err(|e| format!("creating the control region: {e}"))?;
    let role = format!("{ROLE_ECHO}:{}", link.tag());
    let (hist, pinned) = match link {
        Link::Line => line::latency(ctx, &role, &control)?,
        Link::Pipe | Link::Unix => peers::latency(link, ctx, &role, &control)?,
        Link::Typed | Link::Mpmc => channel::latency(link, ctx, &role, &control)?,
        Link::Bytes => bytes::latency(ctx, &role, &control)?,
        Link::Ideal | Link::IdealEach | Link::TypedBatch | Link::RingChunks | Link::RingEach => {
            return Err(format!("no latency measurement over {link:?}"));
        }
    };
    Ok(Latency { hist, pinned })
}

/// Serves pings until told to stop, once the child is ready.
pub(crate) fn serve_echo<E: Echoer>(control: &Control, mut echoer: E) -> Result<(), String> {
    control.ready.store(1, Ordering::Release);
    while echoer.echo()? {}
    Ok(())
}
