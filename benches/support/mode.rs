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

    /// The mode of a program run as a plain binary (`cargo run`, which
    /// passes no `--bench`): full unless [`QUICK_VAR`] asks for a smoke
    /// run.
    pub fn for_binary() -> Mode {
        if Mode::detect() == Mode::Quick {
            Mode::Quick
        } else {
            Mode::Full
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

/// What the command line selects: a bench with two sections runs both
/// unless one is named; every other word (not an option) is a filter on
/// the rows' labels.
pub struct Selection {
    /// Whether to run the first section.
    pub first: bool,
    /// Whether to run the second section.
    pub second: bool,
    /// Words a row's label must contain one of to run (none: every row).
    pub filters: Vec<String>,
}

impl Selection {
    /// The selection of this process's arguments, for sections named
    /// `first` and `second`.
    pub fn from_args(first: &str, second: &str) -> Selection {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let only = |w: &str| args.iter().any(|a| a == w);
        Selection {
            first: only(first) || !only(second),
            second: only(second) || !only(first),
            filters: args
                .iter()
                .filter(|a| !a.starts_with('-') && *a != first && *a != second)
                .cloned()
                .collect(),
        }
    }

    /// Whether the row labelled `label` is selected.
    pub fn selects(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }
}

impl Selection {
    /// The selection of a bench with a single section: every word of the
    /// command line (not an option) is a filter.
    pub fn rows_from_args() -> Selection {
        Selection::from_args("", "")
    }
}
