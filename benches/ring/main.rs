//! Ring benchmark: shmkit's channels between two processes against the
//! machine's floors and the kernel's pipes and Unix sockets.
//!
//! Every figure is measured between this process and a child (this binary
//! re-executed, handed its end of the link by inheritance), pinned to
//! different CPUs when there are two, and each shmkit figure sits beside
//! baselines measured in the same run.
//!
//! **A. One-way latency of 64-byte messages.** The parent sends a message
//! stamped with a sequence number, the child echoes it, the parent checks
//! the stamp; one-way latency is the round trip / 2. Every round trip is
//! timed on its own (`Instant`, the vDSO `CLOCK_MONOTONIC`) into an HDR
//! histogram, from which p50/p90/p99/p99.9 come. Round trips rather than
//! one-way timestamps, because they need a single clock: a one-way figure
//! would carry the skew between two CPUs' clocks, which on a VM can match
//! the 50 ns being measured. Each timing includes one clock read (its
//! cost is printed; half of it lands in each one-way figure, alike for
//! every row, which flatters ratios to the floor: goal (a) also shows its
//! ratio with it taken out). The rows are measured in turn, in several
//! rounds (each a share of the row's time budget, after a warm-up, with a
//! fresh child), and each row's histogram merges its rounds: a machine
//! that slows down or speeds up during the run then moves every row alike,
//! not just the ones measured at that moment. Rows:
//! 1. **floor**: one cache line bounced (the parent writes odd values, the
//!    child answers value + 1, both spinning), as in `benches/region.rs`
//!    (which times batches of round trips instead, so its figure lacks
//!    the clock read);
//! 2. **pipe**: two pipes, blocking 64-byte `write_all`/`read_exact`;
//! 3. **Unix socket**: a `UnixStream` pair, the same;
//! 4. **shmkit channel**: two typed channels of `[u8; 64]` (ping and
//!    pong), blocking `send`/`recv` (spin, then futex);
//! 5. **shmkit byte channel**: two byte channels carrying 64-byte records;
//! 6. **shmkit MPMC channel**: two MPMC channels of `[u8; 64]`, one sender
//!    and one receiver on each (what one hop costs over the MPMC ring's
//!    claim-by-CAS and per-slot sequence numbers).
//!
//! The ratio column is a row's p50 over the floor's p50; `samples` counts
//! the timed round trips.
//!
//! **B. Throughput, one direction** (child produces, parent consumes and
//! checks the sequence stamp of every message, so a lost, repeated or torn
//! message aborts the run; at the end the child's count of messages sent
//! must equal the parent's count received). The rows run in turn, in 5
//! rounds, as the latency rows do; in each round a row is one fresh child:
//! a calibration run grows until it lasts 20 ms, then come one warm-up and
//! 2 measured repetitions, each sized to last about 100 ms at the rate of
//! the one before and timed from the parent's start signal to the last
//! message checked. A row's repetitions from all rounds are merged.
//! Reported in messages/s (the median in GB/s in a
//! column) with percentiles over the repetitions; the ratio columns are
//! the row's median over the pipe's and the Unix socket's median for the
//! same size.
//! - **u64**: two **ideal SPSC streams** (the floors: a hand-rolled ring
//!   in an anonymous shmkit region, two indices on their own 128-byte
//!   lines, 16 384 slots, each side caching the other's index and
//!   spinning when full or empty; one publishes its index once per 256
//!   items, the other after every item), shmkit's `SpscRing` itself
//!   (whole chunks of 256 written and read in place, and one
//!   `try_push`/`pop_into` per item, spinning as the ideal rings do),
//!   shmkit's typed channel per message (`send`/`recv`) and in batches of
//!   256 (`send_all`/`recv_slice`), its MPMC channel per message (one
//!   sender, one receiver), pipe and socket writing and reading 8 bytes
//!   per call;
//! - **64 B**: shmkit's typed channel of `[u8; 64]`, its byte channel, its
//!   MPMC channel of `[u8; 64]`, pipe, socket;
//! - **4 KiB, 64 KiB**: the byte channel, pipe, socket.
//!
//! Byte-channel messages are received by copy (`recv` into a `Vec`), as a
//! pipe's are by `read_exact`. Pipes keep the kernel's default 64 KiB
//! buffer; channels hold 16 384 `u64`s, 4 096 `[u8; 64]`s, or 1 MiB of
//! records.
//!
//! Under the tables, the goals are checked against this run's
//! medians: (a) 64 B one-way p50 at most 2× the cache-line floor; (b) SPSC
//! `u64` throughput at least half the ideal stream's; (c) at least 100× a
//! pipe's `u64` messages/s. (a) is checked for both channels, (b) and (c)
//! for both the per-message and the batched `u64` rows, (b) against the
//! ideal ring publishing as often as the row does (per item for
//! `send`/`recv`, per 256 for `send_all`/`recv_slice`): per message, both
//! sides pay for moving the index's cache line between CPUs, which no
//! implementation escapes.
//!
//! Run: `cargo bench --bench ring` (about a minute once built). A smoke
//! run with shorter budgets and fewer repetitions:
//! `SHMKIT_BENCH_QUICK=1 cargo bench --bench ring` (about 5 s). Run
//! without `--bench` (as `cargo test --benches` does), it is quick too.
//! `cargo bench --bench ring -- latency` runs section A alone, `-- throughput`
//! section B alone (goals whose rows were not run say "not measured").
//! Any other word selects the rows whose label contains it, the stream
//! rows' labels starting with their size (`u64: `, `64 B: `, `4 KiB: `),
//! as the progress lines show them; the floor and the pipe rows the
//! ratios need come along. `cargo bench --bench ring -- throughput u64`
//! runs the `u64` streams alone, `-- mpmc` every MPMC row.
//!
//! Every wait on the other side is bounded or ends when the other side
//! dies (end of file, a disconnected channel), children die with the
//! parent, and a watchdog ends the run if anything still hangs.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::disallowed_types)] // std's atomics, as users place them
#![warn(clippy::undocumented_unsafe_blocks)]

#[path = "../support/mod.rs"]
mod support;

mod bytes;
mod channel;
mod child;
mod ideal;
mod latency;
mod line;
mod link;
mod peers;
mod plan;
mod report;
mod run;
use run::run as run_rows;
mod spsc;
mod throughput;

use link::Link;
use plan::{Ctx, Plan};
use std::time::Duration;
use support::{LatencyBudget, Mode, Placement, Selection, StreamBudget};
// Shared with the other benches; the modules name them `crate::…`.
use support::{LINK_A_VAR, STOP};

/// Child role (before `:<link>`): echo 64-byte pings.
const ROLE_ECHO: &str = "echo";
/// Child role (before `:<link>:<size>`): produce a stream.
const ROLE_PRODUCE: &str = "produce";
/// The whole run (or a child's whole life) ends with an error past this.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Bytes of a latency message.
const MSG: usize = 64;
/// A latency message, or a 64-byte stream message of the typed channel.
type Msg = [u8; MSG];

/// Items per batch: the ideal ring publishes its indices once per batch,
/// the batched channel row sends and receives slices this long, and every
/// stream repetition is a multiple of it.
const BATCH: usize = 256;
/// Slots of the ideal ring and of the `u64` channel.
const U64_CAPACITY: usize = 16_384;
/// Slots of the `[u8; 64]` channels.
const MSG_CAPACITY: usize = 4_096;
/// Bytes of the byte channels' rings for streams.
const BYTES_CAPACITY: usize = 1 << 20;

/// Message sizes of the streams, in bytes (8: a `u64`).
const SIZES: [usize; 4] = [8, 64, 4096, 65536];

/// The latency rows, floor first.
const LATENCY_LINKS: [Link; 6] = [
    Link::Line,
    Link::Pipe,
    Link::Unix,
    Link::Typed,
    Link::Bytes,
    Link::Mpmc,
];

/// The throughput rows: link and message size.
const STREAMS: [(Link, usize); 20] = [
    (Link::Ideal, 8),
    (Link::IdealEach, 8),
    (Link::RingChunks, 8),
    (Link::RingEach, 8),
    (Link::Typed, 8),
    (Link::TypedBatch, 8),
    (Link::Mpmc, 8),
    (Link::Pipe, 8),
    (Link::Unix, 8),
    (Link::Typed, 64),
    (Link::Bytes, 64),
    (Link::Mpmc, 64),
    (Link::Pipe, 64),
    (Link::Unix, 64),
    (Link::Bytes, 4096),
    (Link::Pipe, 4096),
    (Link::Unix, 4096),
    (Link::Bytes, 65536),
    (Link::Pipe, 65536),
    (Link::Unix, 65536),
];

fn main() {
    if let Some(role) = support::child_role() {
        std::process::exit(child::run_child(&role));
    }
    let run = support::start_run("shmkit ring benchmark", RUN_LIMIT, Mode::detect());

    let plan = if run.mode.is_quick() {
        Plan {
            latency: LatencyBudget {
                warmup: Duration::from_millis(20),
                budget: Duration::from_millis(250),
                max_round_trips: 200_000,
                rounds: 1,
            },
            streams: StreamBudget {
                pilot_time: Duration::from_millis(5),
                rep_time: Duration::from_millis(20),
                reps: 3,
                warmup_reps: 1,
                rounds: 1,
            },
        }
    } else {
        Plan {
            latency: LatencyBudget {
                warmup: Duration::from_millis(200),
                budget: Duration::from_millis(2500),
                max_round_trips: 5_000_000,
                rounds: 5,
            },
            streams: StreamBudget {
                pilot_time: Duration::from_millis(20),
                rep_time: Duration::from_millis(100),
                reps: 2,
                warmup_reps: 1,
                rounds: 5,
            },
        }
    };
    let selection = Selection::from_args(&["latency", "throughput"]);
    let ctx = Ctx {
        latency: selection.runs("latency"),
        streams: selection.runs("throughput"),
        selection,
        plan,
        placement: Placement::for_machine(),
    };

    match run_rows(&ctx) {
        Ok(results) => results.print(&ctx),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    run.finish();
}
