//! Percentile statistics over samples or an HDR histogram, and timing
//! operations one by one.

use std::time::Instant;

/// Percentiles of a set of samples (nearest-rank), in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// How many samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile (shown only by tables that ask for it,
    /// [`Table::show_p999`](super::Table::show_p999)).
    pub p999: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Stats {
    /// Statistics over `samples`, which are sorted in place; samples that
    /// are not finite are dropped first.
    ///
    /// # Panics
    ///
    /// If no finite sample is left (a harness bug, not a measurement).
    pub fn from_samples(samples: &mut Vec<f64>) -> Stats {
        samples.retain(|s| s.is_finite());
        assert!(
            !samples.is_empty(),
            "Stats::from_samples: no finite samples to summarize"
        );
        samples.sort_unstable_by(f64::total_cmp);
        Stats {
            n: samples.len(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            p999: percentile(samples, 99.9),
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    /// Statistics of the values recorded in `hist`, each multiplied by
    /// `factor` (to change units). HDR percentiles: exact to the
    /// histogram's significant digits.
    ///
    /// # Panics
    ///
    /// If `hist` is empty (a harness bug, not a measurement).
    pub fn from_histogram(hist: &hdrhistogram::Histogram<u64>, factor: f64) -> Stats {
        assert!(
            !hist.is_empty(),
            "Stats::from_histogram: no samples to summarize"
        );
        let at = |q: f64| hist.value_at_quantile(q) as f64 * factor;
        Stats {
            n: usize::try_from(hist.len()).unwrap_or(usize::MAX),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            min: hist.min() as f64 * factor,
            max: hist.max() as f64 * factor,
        }
    }

    /// Every figure multiplied by `factor` (to change units).
    pub fn scaled(self, factor: f64) -> Stats {
        Stats {
            n: self.n,
            p50: self.p50 * factor,
            p90: self.p90 * factor,
            p99: self.p99 * factor,
            p999: self.p999 * factor,
            min: self.min * factor,
            max: self.max * factor,
        }
    }
}

/// The nearest-rank `pct`th percentile of non-empty, ascending `sorted`.
pub fn percentile(sorted: &[f64], pct: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Times `op(i)` for `i` in `0..warmup + iters`, discarding the first
/// `warmup` timings; returns nanoseconds per call. Stops at the first
/// error.
pub fn time_each<E>(
    warmup: usize,
    iters: usize,
    mut op: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<f64>, E> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        op(i)?;
        let ns = t.elapsed().as_nanos() as f64;
        if i >= warmup {
            samples.push(ns);
        }
    }
    Ok(samples)
}

/// The p50 cost of one `Instant::now()`, ns.
pub fn clock_cost() -> f64 {
    let mut samples: Vec<f64> = (0..20_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            b.duration_since(a).as_nanos() as f64
        })
        .collect();
    Stats::from_samples(&mut samples).p50
}
