//! Throughput: timed repetitions, sized by a calibration run, and rows
//! measured in turn over several rounds.

use super::progress;
use std::time::Duration;

/// How long a throughput row is measured.
#[derive(Debug, Clone, Copy)]
pub struct StreamBudget {
    /// The calibration run grows until it lasts this long.
    pub pilot_time: Duration,
    /// A repetition is sized to last about this long.
    pub rep_time: Duration,
    /// Measured repetitions per round.
    pub reps: usize,
    /// Discarded repetitions per round.
    pub warmup_reps: usize,
    /// Rounds over every row, each with fresh children.
    pub rounds: u32,
}

/// A calibration run, then timed repetitions: `run(first, count)` moves
/// messages `first..first + count` and returns how long that took. The
/// calibration run starts at `4 * batch` messages and grows 4× until it
/// lasts `pilot_time`; each repetition is then sized (in whole batches) to
/// last `rep_time` at the rate of the one before, so a rate that changes
/// mid-row (other load on the machine) cannot make the row run for
/// minutes. Returns messages/s per measured repetition and how many
/// messages moved in all.
pub fn timed_reps(
    budget: &StreamBudget,
    batch: u64,
    mut run: impl FnMut(u64, u64) -> Result<Duration, String>,
) -> Result<(Vec<f64>, u64), String> {
    let mut next: u64 = 0;
    let mut timed = |count: u64| -> Result<Duration, String> {
        let took = run(next, count)?;
        next += count;
        Ok(took)
    };
    let mut count = 4 * batch;
    let mut rate = loop {
        let took = timed(count)?;
        if took >= budget.pilot_time || count >= 1 << 32 {
            break count as f64 / took.as_secs_f64().max(1e-9);
        }
        count *= 4;
    };
    let mut samples = Vec::with_capacity(budget.reps);
    for i in 0..budget.warmup_reps + budget.reps {
        let count = rep_size(rate, budget.rep_time, batch);
        let took = timed(count)?;
        rate = count as f64 / took.as_secs_f64().max(1e-9);
        if i >= budget.warmup_reps {
            samples.push(rate);
        }
    }
    Ok((samples, next))
}

/// Messages for a repetition of about `time` at `rate` messages/s: whole
/// batches, at least one.
pub fn rep_size(rate: f64, time: Duration, batch: u64) -> u64 {
    let b = batch as f64;
    ((rate * time.as_secs_f64() / b).ceil() * b).clamp(b, (1u64 << 36) as f64) as u64
}

/// One child's (or one group of children's) share of a throughput row.
pub struct StreamRun {
    /// Messages/s per measured repetition.
    pub samples: Vec<f64>,
    /// Messages moved and checked in all (calibration included).
    pub count: u64,
    /// Whether the parent ran pinned.
    pub pinned: bool,
}

/// A throughput row's merged repetitions (messages/s) and messages
/// moved, or why it failed.
pub type Merged = Result<(Vec<f64>, u64), String>;

/// Measures every row of `rows` in turn, `rounds` times over (each time
/// with `measure`, which spawns fresh children), and merges each row's
/// repetitions and counts, so a machine that changes speed during the run
/// moves every row alike. A row that fails once stays failed. Returns
/// each row's samples and count, or its error, and whether the parent ran
/// pinned.
pub fn stream_rounds<R>(
    rows: &[R],
    rounds: u32,
    label: impl Fn(&R) -> String,
    mut measure: impl FnMut(&R) -> Result<StreamRun, String>,
) -> (Vec<Merged>, bool) {
    let mut pinned = false;
    let mut merged: Vec<Merged> = rows.iter().map(|_| Ok((Vec::new(), 0))).collect();
    for round in 1..=rounds {
        for (row, acc) in rows.iter().zip(merged.iter_mut()) {
            let Ok((samples, count)) = acc else {
                continue;
            };
            progress(&format!(
                "throughput, round {round}/{rounds}, {}",
                label(row)
            ));
            match measure(row) {
                Ok(mut run) => {
                    samples.append(&mut run.samples);
                    *count += run.count;
                    pinned |= run.pinned;
                }
                Err(e) => *acc = Err(e),
            }
        }
    }
    (merged, pinned)
}
