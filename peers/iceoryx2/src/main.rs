//! iceoryx2 beside shmkit: publish/subscribe one-way latency by payload
//! size (64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB), measured as
//! `cargo bench --bench pubsub` measures shmkit's (whose support code,
//! loan row, budgets, baseline and table frame this binary builds in:
//! `benches/support`, `benches/pubsub/loan.rs` and `shared.rs`), in the
//! same run, so each size gets a
//! same-run ratio shmkit / iceoryx2; and iceoryx2's one-way throughput at
//! each of those sizes, measured as `shmkit bench` measures its own rows'.
//!
//! Method: ping-pong between this process and a child (this binary
//! re-executed) pinned to another CPU; every round trip timed into an HDR
//! histogram, one-way = round trip / 2; rows measured in turn in several
//! rounds, each with a fresh child; p50/p90/p99/p99.9. Rows, per size:
//! 1. **iceoryx2 loan**: two iceoryx2 0.10 `ipc` publish/subscribe
//!    services of `[u8]` (see `iox.rs`): `loan_slice_uninit(len)`, the
//!    sequence number written into the first and last 8 bytes,
//!    `assume_init`, `send`; the receiver busy-polls `receive()`, as
//!    iceoryx2's own benchmark does, checks the stamps, answers with a
//!    loan of its own, then drops the sample;
//! 2. **shmkit pubsub loan, recv**: exactly `benches/pubsub`'s loan row
//!    (`loan(len)`, the same stamps, `send`; `recv`, which spins a little,
//!    then sleeps);
//! 3. **shmkit pubsub loan, try_recv poll**: the same, the receiver
//!    busy-polling `try_recv` as iceoryx2's does `receive`;
//!
//! and, once, the baseline of `benches/pubsub`: shmkit's typed channel of
//! `[u8; 64]`. Columns as there (ratio to the baseline's p50), plus each
//! shmkit row's p50 over iceoryx2's at the same size.
//!
//! Throughput, after the latency rounds, once for each size whose
//! iceoryx2 row was measured, with a child of its own (see `iox.rs`):
//! iceoryx2 services as the latency row's, but the ping service lossless
//! (safe overflow off, a subscriber buffer of shmkit's stream queue at
//! that size, `((32 << 20) / size).clamp(2, 64)` samples, the publisher
//! waiting while it is full); a few round trips, then `(512 MiB /
//! size).clamp(16, 100_000)` samples (a smoke run: `(8 MiB /
//! size).clamp(16, 2000)`) sent back to back, stamped as above; the child
//! busy-polls `receive()`, checks that each is the next in sequence and
//! whole (anything else fails the figure), and acknowledges the last on
//! the pong service; messages/s = samples / (first send to the
//! acknowledgement). Printed in MB/s too (10^6 bytes of payload a
//! second).
//!
//! `shmkit bench` runs this binary for its iceoryx2 row (`iceoryx2` on
//! the command line, `SHMKIT_SUITE_CSV=<file>` for the figures: latency
//! and messages/s per size).
//!
//! Run: `cargo run --release -p shmkit-peer-iceoryx2` (about a minute);
//! `SHMKIT_BENCH_QUICK=1` for a smoke run. Words on the command line
//! select rows by label (`-- iceoryx2`, `-- "16 MiB"`); the baseline and
//! each selected size's iceoryx2 row come along. iceoryx2 keeps its
//! services under `/dev/shm` (`iox2_*`) and `/tmp/iceoryx2` while they
//! are open; a run that completes removes them.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::disallowed_types)] // std's atomics, as the benches use them
#![warn(clippy::undocumented_unsafe_blocks)]

#[path = "../../../benches/support/mod.rs"]
mod support;

#[path = "../../../benches/pubsub/loan.rs"]
mod loan;

#[path = "../../../benches/pubsub/shared.rs"]
mod shared;

mod iox;

use loan::{Receive, PAYLOAD_SIZES};
use shared::{BASELINE_TAG, MSG, RUN_LIMIT};
use support::{fmt_ratio, LatencyBudget, Mode, Pings, Placement, Selection, Stats};

/// A row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// The baseline: shmkit's typed channel of `[u8; 64]`.
    Typed,
    /// iceoryx2's loans of this many bytes.
    Iceoryx2(usize),
    /// shmkit's pubsub loans, received as `how` says.
    Loan(usize, Receive),
}

impl Row {
    fn all() -> Vec<Row> {
        let mut rows = vec![Row::Typed];
        for size in PAYLOAD_SIZES {
            rows.extend([
                Row::Iceoryx2(size),
                Row::Loan(size, Receive::Blocking),
                Row::Loan(size, Receive::Poll),
            ]);
        }
        rows
    }

    fn size(self) -> usize {
        match self {
            Row::Typed => MSG,
            Row::Iceoryx2(s) | Row::Loan(s, _) => s,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Row::Typed => BASELINE_TAG,
            Row::Iceoryx2(_) => iox::TAG,
            Row::Loan(_, how) => how.tag(),
        }
    }

    fn label(self) -> String {
        let size = support::fmt_size(self.size());
        match self {
            Row::Typed => shared::BASELINE_LABEL.to_owned(),
            Row::Iceoryx2(_) => format!("{size}: iceoryx2 loan, stamp, send/receive poll"),
            Row::Loan(_, Receive::Blocking) => {
                format!("{size}: shmkit pubsub loan, stamp, send/recv")
            }
            Row::Loan(_, Receive::Poll) => {
                format!("{size}: shmkit pubsub loan, stamp, send/try_recv poll")
            }
        }
    }
}

fn main() {
    // Errors only (iceoryx2 warns at every node that it found no config
    // file and uses its defaults); IOX2_LOG_LEVEL says otherwise.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    if let Some(role) = support::child_role() {
        std::process::exit(run_child(&role));
    }
    // A plain binary: full unless SHMKIT_BENCH_QUICK asks for a smoke run.
    let run = support::start_run(
        "shmkit vs iceoryx2 publish/subscribe",
        RUN_LIMIT,
        Mode::for_binary(),
    );
    let budget = shared::latency_budget(run.mode.is_quick());
    let selection = Selection::rows_from_args();
    let placement = Placement::for_machine();
    // A selected row brings its size's iceoryx2 row along (the ratios').
    let chosen: Vec<Row> = Row::all()
        .into_iter()
        .filter(|r| selection.selects(&r.label()))
        .collect();
    let rows: Vec<Row> = Row::all()
        .into_iter()
        .filter(|r| {
            *r == Row::Typed
                || chosen.contains(r)
                || matches!(r, Row::Iceoryx2(s) if chosen.iter().any(|c| c.size() == *s))
        })
        .collect();
    let clock_ns = support::clock_cost();
    let measured = support::latency_rounds(
        &rows,
        budget.rounds,
        |r| r.label(),
        |r| *r == Row::Typed,
        |r| latency(*r, &placement, &budget),
    );
    match measured {
        Ok((stats, pinned)) => {
            let results: Vec<(Row, Result<Stats, String>)> = rows.into_iter().zip(stats).collect();
            let (streams, stream_pinned) = throughputs(&results, &placement, run.mode.is_quick());
            support::print_setup(&placement.describe(pinned || stream_pinned), clock_ns);
            print(&results, &streams, &budget);
            if let Some(path) = std::env::var_os(SUITE_CSV_VAR) {
                if let Err(e) = write_suite_csv(&results, &streams, path.as_ref()) {
                    eprintln!("error: writing {}: {e}", path.to_string_lossy());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    run.finish();
}

/// Where `shmkit bench` asks for iceoryx2's figures, in its own terms.
const SUITE_CSV_VAR: &str = "SHMKIT_SUITE_CSV";

/// `iceoryx2,SIZE,P50,P99,P999,SAMPLES,PER_SECOND` for each iceoryx2 row
/// measured (latency in ns; PER_SECOND: messages/s of the size's
/// throughput stream, 0 if that failed), for `shmkit bench` to put beside
/// its own rows.
fn write_suite_csv(
    results: &[(Row, Result<Stats, String>)],
    streams: &[Stream],
    path: &std::path::Path,
) -> std::io::Result<()> {
    let mut text = String::new();
    for (row, r) in results {
        if let (Row::Iceoryx2(size), Ok(s)) = (row, r) {
            let per_second = streams
                .iter()
                .find(|t| t.size == *size)
                .and_then(|t| t.per_second.as_ref().ok())
                .copied()
                .unwrap_or(0.0);
            text.push_str(&format!(
                "iceoryx2,{size},{:.1},{:.1},{:.1},{},{per_second:.1}\n",
                s.p50, s.p99, s.p999, s.n
            ));
        }
    }
    std::fs::write(path, text)
}

/// iceoryx2's throughput at one size.
struct Stream {
    size: usize,
    /// Samples streamed.
    samples: usize,
    /// Messages per second, or why not.
    per_second: Result<f64, String>,
}

/// iceoryx2's throughput, once at each size whose iceoryx2 latency row
/// was measured, each with a child of its own; and whether the parent ran
/// pinned.
fn throughputs(
    results: &[(Row, Result<Stats, String>)],
    placement: &Placement,
    quick: bool,
) -> (Vec<Stream>, bool) {
    let mut pinned = false;
    let mut streams = Vec::new();
    for (row, r) in results {
        let (Row::Iceoryx2(size), Ok(_)) = (row, r) else {
            continue;
        };
        let size = *size;
        let samples = iox::stream_len(size, quick);
        support::progress(&format!(
            "throughput, once: {} iceoryx2 stream of {samples}",
            support::fmt_size(size)
        ));
        let role = shared::echo_role(iox::STREAM_TAG, size);
        let per_second = support::new_control()
            .and_then(|control| iox::iceoryx2_throughput(size, samples, placement, &role, &control))
            .map(|(rate, p)| {
                pinned |= p;
                rate
            });
        streams.push(Stream {
            size,
            samples,
            per_second,
        });
    }
    (streams, pinned)
}

/// Measures one round of `row` with a child echoing.
fn latency(row: Row, placement: &Placement, budget: &LatencyBudget) -> Pings {
    let control = support::new_control()?;
    let role = shared::echo_role(row.tag(), row.size());
    match row {
        Row::Typed => shared::baseline_latency(placement, budget, &role, &control),
        Row::Iceoryx2(size) => iox::iceoryx2_latency(size, placement, budget, &role, &control),
        Row::Loan(size, how) => loan::loan_latency(size, how, placement, budget, &role, &control),
    }
}

fn run_child(role: &str) -> i32 {
    shared::child_limits(role);
    support::exit_code(role, echo_child(role))
}

/// An echoing child: `echo:<link>:<size>[:<name>]` (iceoryx2's stream
/// child echoes the warm-up, then takes the stream).
fn echo_child(role: &str) -> Result<(), String> {
    let (link, size, name) = shared::parse_echo_role(role)?;
    let (control, _) = support::child_setup()?;
    match (link, Receive::from_tag(link), name) {
        (_, Some(how), None) => loan::loan_echo(size, how, &control),
        (iox::TAG, _, Some(base)) => iox::iceoryx2_echo(size, base, &control),
        (iox::STREAM_TAG, _, Some(base)) => iox::iceoryx2_sink(size, base, &control),
        (BASELINE_TAG, _, None) => shared::baseline_echo(&control),
        _ => Err(format!("unknown link in role {role:?}")),
    }
}

/// The table, as `benches/pubsub` prints its section A, with each shmkit
/// row's p50 over iceoryx2's at the same size, a summary per size, and
/// iceoryx2's throughput.
fn print(results: &[(Row, Result<Stats, String>)], streams: &[Stream], budget: &LatencyBudget) {
    let p50 = |row: Row| {
        results
            .iter()
            .find(|(r, _)| *r == row)
            .and_then(|(_, s)| s.as_ref().ok())
            .map(|s| s.p50)
    };
    let largest = PAYLOAD_SIZES.iter().copied().max().unwrap_or(0);
    println!(
        "\nboth write the sequence number into the first and last 8 bytes of the loaned \
         payload, nothing else; shmkit's {} row maps {:.0} MiB (two services)",
        support::fmt_size(largest),
        loan::loan_row_bytes(largest).unwrap_or(0) as f64 / f64::from(1 << 20)
    );
    let mut t = shared::latency_table("one-way latency by payload size", budget, p50(Row::Typed));
    t.add_column("vs iceoryx2");
    t.add_column("samples");
    let mut failed = Vec::new();
    for (row, r) in results {
        let vs = match (row, r) {
            (Row::Loan(size, _), Ok(s)) => {
                p50(Row::Iceoryx2(*size)).map_or_else(|| "-".to_owned(), |i| fmt_ratio(s.p50 / i))
            }
            _ => "-".to_owned(),
        };
        support::latency_row(&mut t, &mut failed, &row.label(), r, vec![vs]);
    }
    t.print();
    println!("\nshmkit / iceoryx2, p50 at each size (same run; below 1: shmkit faster):");
    for size in PAYLOAD_SIZES {
        let ratio = |how| match (p50(Row::Loan(size, how)), p50(Row::Iceoryx2(size))) {
            (Some(s), Some(i)) if i > 0.0 => fmt_ratio(s / i),
            _ => "not measured".to_owned(),
        };
        println!(
            "  {:>7}: recv {:>8}   try_recv poll {:>8}",
            support::fmt_size(size),
            ratio(Receive::Blocking),
            ratio(Receive::Poll)
        );
    }
    print_throughput(streams, &mut failed);
    support::print_failed(&failed);
}

/// iceoryx2's throughput by size; failures go to `failed`.
fn print_throughput(streams: &[Stream], failed: &mut Vec<String>) {
    if streams.is_empty() {
        return;
    }
    println!(
        "\niceoryx2 one-way throughput, once per size (samples loaned, stamped and sent back \
         to back, the publisher waiting while the subscriber's buffer is full; the receiver \
         polls and checks each, and acknowledges the last; first send to acknowledgement; \
         MB/s: 10^6 payload bytes a second, of which only the stamps are written):"
    );
    println!(
        "  {:>7}  {:>7}  {:>6}  {:>12}  {:>9}",
        "size", "samples", "buffer", "messages/s", "MB/s"
    );
    for t in streams {
        let size = support::fmt_size(t.size);
        match &t.per_second {
            Ok(rate) => println!(
                "  {size:>7}  {:>7}  {:>6}  {:>12.0}  {:>9}",
                t.samples,
                iox::stream_queue(t.size),
                rate,
                support::fmt_significant(rate * t.size as f64 / 1e6)
            ),
            Err(e) => failed.push(format!("{size}: iceoryx2 throughput: {e}")),
        }
    }
}
