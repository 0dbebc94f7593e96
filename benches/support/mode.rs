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

/// What the command line selects: a bench with several sections runs
/// those named (every one if none is); every other word (not an option) is
/// a filter on the rows' labels.
pub struct Selection {
    /// The sections named on the command line (none: every section runs).
    pub sections: Vec<String>,
    /// Words a row's label must contain one of to run (none: every row).
    pub filters: Vec<String>,
}

impl Selection {
    /// The selection of this process's arguments, for a bench whose
    /// sections are named `sections`.
    pub fn from_args(sections: &[&str]) -> Selection {
        let (named, filters) = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .partition(|a| sections.contains(&a.as_str()));
        Selection {
            sections: named,
            filters,
        }
    }

    /// Whether the section named `section` runs.
    pub fn runs(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }

    /// Whether the row labelled `label` is selected.
    pub fn selects(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }

    /// The selection of a bench with a single section: every word of the
    /// command line (not an option) is a filter.
    pub fn rows_from_args() -> Selection {
        Selection::from_args(&[])
    }
}
