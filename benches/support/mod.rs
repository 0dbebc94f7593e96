//! Shared pieces of shmkit's benchmark harnesses (`harness = false`
//! benches), one module a thing:
//!
//! - [`mode`]: run modes (full, quick, test);
//! - [`stats`]: percentile statistics and timing one call at a time;
//! - [`report`]: the result table, figure formatting, goal verdicts and
//!   progress notes;
//! - [`machine`]: machine facts, the run's opening and closing lines;
//! - [`pin`]: CPU pinning, the choice of a CPU pair and how a parent tells
//!   a child where to run;
//! - [`wait`]: bounded spin-waiting;
//! - [`child`]: child processes made by re-executing the bench binary,
//!   their start-up handshake, the watchdog;
//! - [`control`]: the control region a parent shares with a child, and
//!   driving the child through it (hand-over, readiness, reaping);
//! - [`pingpong`]: ping-pong latency: the two ends' traits, the timed
//!   loop, rows measured in turn over rounds;
//! - [`message`]: sequence stamps and their checks;
//! - [`stream`]: throughput: calibrated, timed repetitions, rows measured
//!   in turn over rounds;
//! - [`links`]: ping-pong over shmkit's typed and byte channels and the
//!   kernel's pipes and Unix sockets, messages of any size;
//! - [`fd`]: descriptors children inherit;
//! - [`names`]: unique region names.
//!
//! Everything is re-exported here, so benches name it `support::…`.
//!
//! Not a benchmark itself: each bench includes it with `mod support;`
//! (a bench in a directory with `#[path = "../support/mod.rs"] mod
//! support;`) and is run with `cargo bench --bench <name>`. See
//! `benches/region.rs` for the pattern a bench follows:
//!
//! ```text
//! fn main() {
//!     if let Some(role) = support::child_role() {
//!         std::process::exit(run_child(&role)); // we are a spawned child
//!     }
//!     let mode = support::Mode::detect();
//!     ...
//! }
//! ```
//!
//! Environment variables understood by every bench:
//! - `SHMKIT_BENCH_QUICK=1`: a smoke run, iteration counts cut by 10×
//!   ([`Mode::scale`]).
//! - `SHMKIT_BENCH_CHILD=<role>`: set by [`spawn_child`]; makes the binary
//!   run a child role instead of the benchmark.
//!
//! Run without `--bench` (which `cargo bench` always passes), as
//! `cargo test --benches` does, a bench also runs in quick mode, so test
//! runs stay short.
// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

pub mod child;
pub mod control;
pub mod fd;
pub mod links;
pub mod machine;
pub mod message;
pub mod mode;
pub mod names;
pub mod pin;
pub mod pingpong;
pub mod report;
pub mod stats;
pub mod stream;
pub mod wait;

// Re-exported so that a bench names everything `support::…` (a bench that
// uses nothing of a module would otherwise be warned of its import).
#[allow(unused_imports)]
pub use self::{
    child::*, control::*, fd::*, links::*, machine::*, message::*, mode::*, names::*, pin::*,
    pingpong::*, report::*, stats::*, stream::*, wait::*,
};
