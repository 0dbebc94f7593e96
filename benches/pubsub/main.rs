//! Publish/subscribe benchmark: `shmkit::pubsub` between processes, its
//! zero-copy loans beside copying the same payload through shmkit's byte
//! channel and a Unix socket, fan-out to several subscribers, and
//! `shmkit::reqresp` round trips.
//!
//! The method is the ring bench's (`benches/ring/main.rs`), with its
//! support code (`benches/support`): every figure is measured between
//! this process and children (this binary re-executed, handed its ends by
//! inheritance), pinned to different CPUs when there are two, and every
//! ratio is to a baseline measured in the same run.
//!
//! **A. One-way latency by payload size** (64 B, 4 KiB, 64 KiB, 1 MiB,
//! 16 MiB). Ping-pong: the parent sends a message stamped with a sequence
//! number, the child answers, the parent checks the stamp; one-way latency
//! is the round trip / 2. Every round trip is timed on its own (`Instant`)
//! into an HDR histogram; the rows are measured in turn, in several
//! rounds (each a share of the row's budget, after a warm-up, with a fresh
//! child), each row's histograms merged. Rows, per size:
//! 1. **shmkit pubsub loan**: two services (pings to the child, pongs
//!    back), each of one pool class of the payload's size (4 blocks: one
//!    subscriber, queues of 2, one sample held). The sender `loan(len)`s a
//!    block, writes the sequence number into its **first and last 8
//!    bytes** and nothing else, and `send`s it; the receiver `recv`s the
//!    `Sample`, checks its length and both stamps in place, and the child
//!    answers with a loan of its own on the other service before it drops
//!    the ping. Zero-copy means the writer writes its data once, in place,
//!    however it makes it: what the transport adds is the loan, send,
//!    receive and release, which this times, and which do not depend on
//!    how much of the block is written.
//! 2. **shmkit byte channel**: two byte channels; the whole payload is
//!    copied in (`send`) and out (`recv` into a `Vec`) each way (rings of
//!    64 KiB, or twice the payload rounded up to a power of two).
//! 3. **Unix socket**: a `UnixStream` pair, the whole payload `write_all`
//!    and `read_exact` each way.
//!
//! and, once, the **baseline**: shmkit's SPSC typed channel of `[u8; 64]`
//! (`send`/`recv`, two channels), the ring bench's "shmkit channel" row.
//! The ratio column is each row's p50 over the baseline's; under the table,
//! each link's 1 MiB and 16 MiB p50 over its own 64 B p50.
//!
//! Memory: one row's resources at a time; the largest are the 16 MiB rows
//! (the loan row's two services map 2 × 4 × 16 MiB = 128 MiB, the byte
//! channel's two rings 2 × 64 MiB), so a run stays far below 1 GiB of
//! shared memory.
//!
//! **B. Fan-out throughput**: one publisher (the parent), 1, 2 and 3
//! subscriber children (pinned to the CPUs other than the parent's, in
//! turn), 64-byte samples stamped in place, lossless (queues of 64, 256
//! blocks: above the `N (Q + H) + 1` bound, so no loan fails and the
//! publisher waits for room). Every subscriber receives and checks every
//! sample in order. A repetition is timed from its first loan until the
//! last subscriber has checked its last sample; calibration, warm-up and
//! repetitions as in the ring bench's streams, rows in turn over rounds.
//! Reported: samples/s that *every* subscriber received (so deliveries/s
//! is that times the count, a column), ratio to one subscriber.
//!
//! **C. Request/response round trip**, 64 B: `shmkit::reqresp` with the
//! parent as the client and the child as the server, over one anonymous
//! service of one client, queues of 8 (the longest stream and its end fit
//! in the response queue, so the server never waits for room), held
//! limits of 1 and a pool of one 64 B class of 18 blocks (the bound
//! `clients × (2 × queue + held) + held`, so no loan fails). A round trip:
//! the client `loan(64)`s a request, stamps the sequence number into its
//! first and last 8 bytes (as the loan rows do) and `send`s it; the
//! server `recv`s it, checks its length and stamps in place, answers with
//! responses, each a 64-byte loan stamped with the same sequence number
//! and `send`, and `finish`es the stream; the client receives every
//! response (checks it in place, drops it) and then the end of the stream
//! (`Ok(None)`), and the round trip is over. Rows:
//! 1. **1 response**, both sides waiting with `recv` (spin a little, then
//!    sleep on the service's signal);
//! 2. **a stream of 4 responses**, the same;
//! 3. **1 response, polled**: the client busy-polls the pending
//!    response's `try_recv`, the server its `try_recv`.
//!
//! They are measured as section A's rows are, in the same rounds and
//! beside the same baseline, but reported as the **whole round trip, not
//! halved** (a request and its stream are not two like messages); the
//! ratio column is each row's p50 over the baseline's round trip (2 × its
//! one-way p50), whose row table C repeats doubled.
//!
//! Run: `cargo bench --bench pubsub` (about a minute once built). A smoke
//! run: `SHMKIT_BENCH_QUICK=1 cargo bench --bench pubsub` (a few
//! seconds); without `--bench` (`cargo test --benches`) it is quick too.
//! `-- latency` runs section A alone, `-- fanout` section B alone,
//! `-- reqresp` section C alone (name two to run both). Any other word
//! selects the rows whose label contains it (`-- loan`, `-- "16 MiB"`,
//! `-- socket`, `-- poll`); the baseline comes along.
//!
//! Every wait on the other side is bounded or ends when the other side
//! dies, children die with the parent, and a watchdog ends the run if
//! anything still hangs.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::disallowed_types)] // std's atomics, as users place them
#![warn(clippy::undocumented_unsafe_blocks)]

#[path = "../support/mod.rs"]
mod support;

mod fanout;
mod loan;
mod report;
mod reqresp;
mod shared;

use loan::{Receive, PAYLOAD_SIZES};
use reqresp::{REQUEST_ROWS, REQUEST_SIZE};
use shared::{BASELINE_TAG, MSG, RUN_LIMIT};
use std::time::Duration;
use support::{KernelLink, LatencyBudget, Mode, Pings, Placement, Selection, StreamBudget};

/// Child role: subscribe to a fan-out service.
const ROLE_SUBSCRIBE: &str = "subscribe";

/// A latency row of section A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// The baseline: shmkit's typed channel of `[u8; 64]`.
    Typed,
    /// shmkit pubsub loans of this many bytes.
    Loan(usize),
    /// shmkit's byte channel, the whole payload copied.
    Bytes(usize),
    /// A Unix socket pair, the whole payload written and read.
    Unix(usize),
    /// Section C: a shmkit reqresp request answered by this many
    /// responses, both sides waiting as said.
    Request(usize, Receive),
}

impl Row {
    /// Every row: the baseline, then each size's loan, byte channel and
    /// socket rows (section A), then section C's.
    fn all() -> Vec<Row> {
        let mut rows = vec![Row::Typed];
        for size in PAYLOAD_SIZES {
            rows.extend([Row::Loan(size), Row::Bytes(size), Row::Unix(size)]);
        }
        rows.extend(REQUEST_ROWS.map(|(n, how)| Row::Request(n, how)));
        rows
    }

    /// The section the row belongs to (the baseline is measured for A and
    /// for C).
    fn section(self) -> Section {
        match self {
            Row::Typed => Section::Baseline,
            Row::Request(..) => Section::RequestResponse,
            _ => Section::Latency,
        }
    }

    fn size(self) -> usize {
        match self {
            Row::Typed => MSG,
            Row::Loan(s) | Row::Bytes(s) | Row::Unix(s) => s,
            Row::Request(..) => REQUEST_SIZE,
        }
    }

    /// Names the link in a child role.
    fn tag(self) -> &'static str {
        match self {
            Row::Typed => BASELINE_TAG,
            Row::Loan(_) => Receive::Blocking.tag(),
            Row::Bytes(_) => "bytes",
            Row::Unix(_) => "unix",
            Row::Request(_, how) => reqresp::request_tag(how),
        }
    }

    /// The child's role.
    fn role(self) -> String {
        let role = shared::echo_role(self.tag(), self.size());
        match self {
            Row::Request(responses, _) => format!("{role}:{responses}"),
            _ => role,
        }
    }

    fn label(self) -> String {
        let size = support::fmt_size(self.size());
        match self {
            Row::Typed => shared::BASELINE_LABEL.to_owned(),
            Row::Loan(_) => format!("{size}: shmkit pubsub loan, stamp, send/recv"),
            Row::Bytes(_) => format!("{size}: shmkit byte_channel, payload copied"),
            Row::Unix(_) => format!("{size}: unix socket, payload copied"),
            Row::Request(responses, how) => {
                let s = if responses == 1 { "" } else { "s" };
                let wait = match how {
                    Receive::Blocking => "send/recv",
                    Receive::Poll => "send/try_recv poll",
                };
                format!("{size}, {responses} response{s}: shmkit reqresp, {wait}, round trip")
            }
        }
    }
}

/// Which table a latency row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// The baseline: measured for either, shown in both.
    Baseline,
    /// A. One-way latency by payload size.
    Latency,
    /// C. Request/response round trip.
    RequestResponse,
}

/// Budgets for one run.
struct Plan {
    latency: LatencyBudget,
    fanout: StreamBudget,
}

/// The run's plan, its selection and where its sides run.
struct Ctx {
    plan: Plan,
    /// Whether to run section A (latency), section B (fan-out) and
    /// section C (request/response).
    latency: bool,
    fanout: bool,
    reqresp: bool,
    /// The rows selected on the command line (the baseline runs anyway).
    selection: Selection,
    placement: Placement,
}

impl Ctx {
    fn selects(&self, label: &str) -> bool {
        self.selection.selects(label)
    }
}

fn main() {
    if let Some(role) = support::child_role() {
        std::process::exit(run_child(&role));
    }
    let run = support::start_run("shmkit pubsub benchmark", RUN_LIMIT, Mode::detect());
    let quick = run.mode.is_quick();
    let plan = Plan {
        latency: shared::latency_budget(quick),
        fanout: StreamBudget {
            pilot_time: Duration::from_millis(if quick { 5 } else { 20 }),
            rep_time: Duration::from_millis(if quick { 20 } else { 100 }),
            reps: 2,
            warmup_reps: 1,
            rounds: if quick { 1 } else { 5 },
        },
    };
    let selection = Selection::from_args(&["latency", "fanout", "reqresp"]);
    let ctx = Ctx {
        latency: selection.runs("latency"),
        fanout: selection.runs("fanout"),
        reqresp: selection.runs("reqresp"),
        selection,
        plan,
        placement: Placement::for_machine(),
    };

    match report::run(&ctx) {
        Ok(results) => results.print(&ctx),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    run.finish();
}

/// Measures one round of round trips over `row` with a child echoing.
fn latency(row: Row, ctx: &Ctx) -> Pings {
    let control = support::new_control()?;
    let role = row.role();
    let (placement, budget) = (&ctx.placement, &ctx.plan.latency);
    match row {
        Row::Typed => shared::baseline_latency(placement, budget, &role, &control),
        Row::Loan(size) => {
            loan::loan_latency(size, Receive::Blocking, placement, budget, &role, &control)
        }
        Row::Bytes(size) => {
            support::bytes_latency(support::patterned(size), placement, budget, &role, &control)
        }
        Row::Unix(size) => support::kernel_latency(
            KernelLink::Unix,
            support::patterned(size),
            placement,
            budget,
            &role,
            &control,
        ),
        Row::Request(responses, how) => {
            reqresp::request_latency(responses, how, ctx, &role, &control)
        }
    }
}

fn run_child(role: &str) -> i32 {
    shared::child_limits(role);
    let result = if role == ROLE_SUBSCRIBE {
        fanout::subscribe_child()
    } else {
        echo_child(role)
    };
    support::exit_code(role, result)
}

/// An echoing child: `echo:<link>:<size>`, or a request/response server:
/// `echo:<link>:<size>:<responses per request>`.
fn echo_child(role: &str) -> Result<(), String> {
    let (link, size, rest) = shared::parse_echo_role(role)?;
    let responses = rest
        .map(str::parse::<usize>)
        .transpose()
        .map_err(|e| format!("the response count in role {role:?}: {e}"))?;
    let (control, _) = support::child_setup()?;
    match (link, responses) {
        (_, Some(n)) => match reqresp::request_how(link) {
            Some(how) => reqresp::request_serve(n, how, &control),
            None => Err(format!("unknown link in role {role:?}")),
        },
        (BASELINE_TAG, None) => shared::baseline_echo(&control),
        ("bytes", None) => support::bytes_echo(&control),
        ("unix", None) => support::kernel_echo(KernelLink::Unix, vec![0; size], &control),
        (_, None) => match Receive::from_tag(link) {
            Some(how) => loan::loan_echo(size, how, &control),
            None => Err(format!("unknown link in role {role:?}")),
        },
    }
}
