//! How thoroughly a bench measures: a full run, a smoke run, or a test run.

use std::fmt;

/// `1` asks for a smoke run with 10× fewer iterations.
pub const QUICK_VAR: &str = "SHMKIT_BENCH_QUICK";

/// How thoroughly to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cargo bench`: the full iteration counts.
    Full,
    /// `SHMKIT_BENCH_QUICK=1`: 10× fewer iterations.
    Quick,
    /// Run without `--bench` (e.g. by `cargo test --benches`): like
    /// [`Mode::Quick`].
    Test,
}

impl Mode {
    /// The mode from the environment and the command line. Arguments other
    /// than `--bench` are ignored.
    pub fn detect() -> Mode {
        let quick = std::env::var(QUICK_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
        let bench = std::env::args().skip(1).any(|a| a == "--bench");
        if quick {
            Mode::Quick
        } else if bench {
            Mode::Full
        } else {
            Mode::Test
        }
    }

    /// Whether iteration counts are cut.
    pub fn is_quick(self) -> bool {
        self != Mode::Full
    }

    /// `n` in a full run, `n / 10` (at least 1) otherwise.
    pub fn scale(self, n: usize) -> usize {
        if self.is_quick() {
            (n / 10).max(1)
        } else {
            n
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Quick => "quick (SHMKIT_BENCH_QUICK: 10x fewer iterations)",
            Mode::Test => "quick (no --bench argument: 10x fewer iterations)",
        })
    }
}
