//! Ping-pong latency between a parent and an echoing child: the two ends'
//! traits, the timed loop, and rows measured in turn over several rounds.

use super::{progress, Control, Stats};
use hdrhistogram::Histogram;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The parent's end of a ping-pong link.
pub trait Pinger {
    /// Sends ping `seq` and waits for its echo, which it checks.
    fn ping(&mut self, seq: u64) -> Result<(), String>;
    /// Tells the echoing child to stop.
    fn stop(&mut self) -> Result<(), String>;
}

/// The child's end of a ping-pong link.
pub trait Echoer {
    /// Waits for a ping and echoes it; `false` when told to stop.
    fn echo(&mut self) -> Result<bool, String>;
}

/// How long a latency row is measured.
#[derive(Debug, Clone, Copy)]
pub struct LatencyBudget {
    /// Round trips before measuring, for this long (each round).
    pub warmup: Duration,
    /// Measured round trips, for about this long (over all rounds)...
    pub budget: Duration,
    /// ...but at most this many (over all rounds).
    pub max_round_trips: u64,
    /// Rounds over every row, sharing the budget and the count, each with
    /// a fresh child.
    pub rounds: u32,
}

/// The parent's side of a latency row over one link: the round trip
/// times (ns) and whether the parent ran pinned.
pub type Pings = Result<(Histogram<u64>, bool), String>;

/// An empty histogram of round trip times in ns (up to a minute, three
/// significant digits).
pub fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("creating the histogram: {e}"))
}

/// Round trips over `pinger`: warm-up, then each one timed into an HDR
/// histogram (ns per round trip), until this round's share of the budget
/// or of the count runs out; then the child is told to stop.
pub fn ping_pong<P: Pinger>(
    pinger: &mut P,
    budget: &LatencyBudget,
) -> Result<Histogram<u64>, String> {
    let mut hist = new_histogram()?;
    let mut seq: u64 = 0;
    let warm_end = Instant::now() + budget.warmup;
    while Instant::now() < warm_end {
        pinger.ping(seq)?;
        seq += 1;
    }
    let end = Instant::now() + budget.budget / budget.rounds;
    for _ in 0..budget.max_round_trips / u64::from(budget.rounds) {
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

/// In a child: serves pings until told to stop, once ready.
pub fn serve_echo<E: Echoer>(control: &Control, mut echoer: E) -> Result<(), String> {
    control.ready.store(1, Ordering::Release);
    while echoer.echo()? {}
    Ok(())
}

/// Measures every row of `rows` in turn, `rounds` times over (each time
/// with `measure`, which spawns a fresh child), and merges each row's
/// histograms: a machine that slows down or speeds up during the run then
/// moves every row alike. A row that fails once stays failed; a failure of
/// a row for which `required` holds ends the whole run (no other row
/// means anything without it). Returns each row's one-way statistics
/// (round trip / 2, ns) or its error, and whether the parent ran pinned.
pub fn latency_rounds<R>(
    rows: &[R],
    rounds: u32,
    label: impl Fn(&R) -> String,
    required: impl Fn(&R) -> bool,
    mut measure: impl FnMut(&R) -> Pings,
) -> Result<(Vec<Result<Stats, String>>, bool), String> {
    let mut pinned = false;
    let mut merged: Vec<Result<Histogram<u64>, String>> = rows
        .iter()
        .map(|_| Err("no round ran".to_owned()))
        .collect();
    for round in 1..=rounds {
        for (row, acc) in rows.iter().zip(merged.iter_mut()) {
            if acc.is_err() && round > 1 {
                continue; // a row that failed once stays failed
            }
            progress(&format!(
                "one-way latency, round {round}/{rounds}: {}",
                label(row)
            ));
            let r = measure(row);
            if required(row) {
                r.as_ref()
                    .map_err(|e| format!("{} (needed by the other rows): {e}", label(row)))?;
            }
            *acc = match (r, std::mem::replace(acc, Err(String::new()))) {
                (Ok((hist, p)), Ok(mut h)) => {
                    pinned |= p;
                    h.add(&hist)
                        .map_err(|e| format!("merging histograms: {e}"))?;
                    Ok(h)
                }
                (Ok((hist, p)), Err(_)) => {
                    pinned |= p;
                    Ok(hist)
                }
                (Err(e), _) => Err(e),
            };
        }
    }
    let stats = merged
        .into_iter()
        .map(|h| h.map(|h| Stats::from_histogram(&h, 0.5)))
        .collect();
    Ok((stats, pinned))
}
