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

mod support;

use hdrhistogram::Histogram;
use shmkit::{LayoutId, Region, RegionOptions, Shm, ShmSafe};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{ChildGuard, CpuPair, Mode, Stats, Table, Unit, Wait};

/// Child role (before `:<link>`): echo 64-byte pings.
const ROLE_ECHO: &str = "echo";
/// Child role (before `:<link>:<size>`): produce a stream.
const ROLE_PRODUCE: &str = "produce";
/// Carries the control region's descriptor to the child.
const CONTROL_VAR: &str = "SHMKIT_BENCH_CONTROL";
/// Carries the child's first link end (a region or a descriptor).
const LINK_A_VAR: &str = "SHMKIT_BENCH_LINK_A";
/// Carries the child's second link end, if any.
const LINK_B_VAR: &str = "SHMKIT_BENCH_LINK_B";
/// The CPU the child pins itself to, if any.
const CPU_VAR: &str = "SHMKIT_BENCH_CPU";
/// `1`: the child yields instead of spinning (single-CPU machine).
const YIELD_VAR: &str = "SHMKIT_BENCH_YIELD";

/// A child gives up if the parent is silent this long.
const CHILD_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// The parent gives up if the child does not answer within this.
const PARENT_WAIT_LIMIT: Duration = Duration::from_secs(10);
/// How long a child may take to exit once its work is done.
const CHILD_EXIT_LIMIT: Duration = Duration::from_secs(10);
/// The whole run (or a child's whole life) ends with an error past this.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Bytes of a latency message.
const MSG: usize = 64;
/// A latency message, or a 64-byte stream message of the typed channel.
type Msg = [u8; MSG];
/// The sequence number that tells an echoing child to stop, and the `go`
/// value that tells a producing child to.
const STOP: u64 = u64::MAX;

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
/// Bytes of the byte channels' rings for latency (one 64-byte record is in
/// flight at a time).
const BYTES_LATENCY_CAPACITY: usize = 64 << 10;

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
        std::process::exit(run_child(&role));
    }
    let started = Instant::now();
    let cpu_times = support::CpuTimes::now();
    let mode = Mode::detect();
    let machine = support::Machine::probe();
    support::watchdog(RUN_LIMIT, "the ring benchmark", 1);

    println!("shmkit ring benchmark");
    println!("mode:     {mode}");
    if cfg!(debug_assertions) {
        println!("build:    unoptimized (debug assertions on): figures and verdicts mean little");
    }
    println!("{machine}");

    let plan = if mode.is_quick() {
        Plan {
            latency_warmup: Duration::from_millis(20),
            latency_budget: Duration::from_millis(250),
            max_round_trips: 200_000,
            latency_rounds: 1,
            pilot_time: Duration::from_millis(5),
            rep_time: Duration::from_millis(20),
            reps: 3,
            warmup_reps: 1,
            stream_rounds: 1,
        }
    } else {
        Plan {
            latency_warmup: Duration::from_millis(200),
            latency_budget: Duration::from_millis(2500),
            max_round_trips: 5_000_000,
            latency_rounds: 5,
            pilot_time: Duration::from_millis(20),
            rep_time: Duration::from_millis(100),
            reps: 2,
            warmup_reps: 1,
            stream_rounds: 5,
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only = |w: &str| args.iter().any(|a| a == w);
    let ctx = Ctx {
        latency: only("latency") || !only("throughput"),
        streams: only("throughput") || !only("latency"),
        filters: args
            .iter()
            .filter(|a| !a.starts_with('-') && *a != "latency" && *a != "throughput")
            .cloned()
            .collect(),
        plan,
        pair: support::pick_cpu_pair(),
        how: Wait::for_machine(),
    };

    match run(&ctx) {
        Ok(results) => results.print(&ctx),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    println!("\ntotal run time: {:.2} s", started.elapsed().as_secs_f64());
    if let Some(steal) = cpu_times
        .zip(support::CpuTimes::now())
        .and_then(|(a, b)| a.steal_percent(b))
    {
        println!("cpu time stolen by the hypervisor during the run: {steal:.1}%");
    }
    let load = support::load_average();
    println!(
        "load average at the end: {}",
        load.as_deref().unwrap_or("?")
    );
    if let Some(one) = load.and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok()) {
        if one > machine.nproc as f64 {
            println!(
                "warning: the machine was busy (load {one:.1} on {} CPUs): spinning sides \
                 lose their CPU to other work, the floors most of all; compare within the run",
                machine.nproc
            );
        }
    }
}

/// Budgets for one run.
struct Plan {
    /// Latency: round trips before measuring, for this long.
    latency_warmup: Duration,
    /// Latency: measured round trips, for about this long...
    latency_budget: Duration,
    /// ...but at most this many.
    max_round_trips: u64,
    /// Latency: rounds over every row, sharing the budget and the count.
    latency_rounds: u32,
    /// Streams: the calibration run grows until it lasts this long.
    pilot_time: Duration,
    /// Streams: a repetition is sized to last about this long.
    rep_time: Duration,
    /// Streams: measured repetitions per round.
    reps: usize,
    /// Streams: discarded repetitions per round.
    warmup_reps: usize,
    /// Streams: rounds over every row, each with a fresh child.
    stream_rounds: u32,
}

/// The run's plan and where its two sides run.
struct Ctx {
    plan: Plan,
    /// Whether to run section A (latency) and section B (streams).
    latency: bool,
    streams: bool,
    /// Words a row's label must contain one of to run (none: every row).
    /// The baselines the ratios need run anyway.
    filters: Vec<String>,
    pair: Option<CpuPair>,
    how: Wait,
}

impl Ctx {
    /// Whether the row labelled `label` is selected.
    fn selects(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }

    fn describe_pinning(&self, pinned: bool) -> String {
        match self.pair {
            Some(p) if pinned => p.to_string(),
            Some(_) => "not pinned (sched_setaffinity failed)".to_owned(),
            None => "not pinned (one CPU: the sides take turns, yielding)".to_owned(),
        }
    }

    /// Spawns the child `role` with the control region, its CPU and wait
    /// mode; `configure` hands it its ends of the link.
    fn spawn(
        &self,
        role: &str,
        control: &Shm<Control>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildGuard, String> {
        support::spawn_child(role, |cmd| {
            control.region().pass_to_child(cmd, CONTROL_VAR);
            if let Some(p) = self.pair {
                cmd.env(CPU_VAR, p.child.to_string());
            }
            if self.how == Wait::Yield {
                cmd.env(YIELD_VAR, "1");
            }
            configure(cmd);
        })
        .map_err(|e| format!("spawning the {role} child: {e}"))
    }

    /// The parent's side of a measurement with a spawned child: closes
    /// `child_ends` (the parent's copies of what the child inherited, so
    /// that the child's are the only ones: a channel end admits one holder,
    /// and a pipe reports end of file only once every write end is
    /// closed), tells the child it may open them, pins this thread, waits
    /// for the child to be ready, runs `body` and reaps the child. Returns
    /// `body`'s result and whether the pinning took effect.
    fn drive<T, K>(
        &self,
        role: &str,
        control: &Shm<Control>,
        mut child: ChildGuard,
        child_ends: K,
        body: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, bool), String> {
        drop(child_ends);
        control.handed_over.store(1, Ordering::Release);
        let pinned = self.pair.map(|p| support::pin_current(p.parent));
        let is_pinned = pinned.as_ref().is_some_and(|p| p.pinned);
        let result = wait_ready(control, &mut child).and_then(|()| body());
        drop(pinned);
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                let status = child
                    .try_status()
                    .map_or_else(|| "still running".to_owned(), |s| s.to_string());
                return Err(format!("{role}: {e} (child: {status})"));
            }
        };
        child.finish(CHILD_EXIT_LIMIT)?;
        Ok((value, is_pinned))
    }
}

// ---------------------------------------------------------------------------
// The links
// ---------------------------------------------------------------------------

/// What carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// One cache line bounced (the latency floor).
    Line,
    /// The hand-rolled SPSC `u64` ring publishing once per `BATCH` items
    /// (the throughput floor for batches).
    Ideal,
    /// The same ring publishing every item (the floor per message).
    IdealEach,
    /// Pipes.
    Pipe,
    /// A Unix stream socket pair.
    Unix,
    /// shmkit's typed channel, per message.
    Typed,
    /// shmkit's typed channel, `send_all`/`recv_slice` in batches.
    TypedBatch,
    /// shmkit's byte channel.
    Bytes,
    /// shmkit's MPMC channel, one sender and one receiver, per message.
    Mpmc,
    /// shmkit's `SpscRing` itself, whole batches written and read in place
    /// (`write_chunk`/`read_chunk`), as the ideal ring moves them.
    RingChunks,
    /// shmkit's `SpscRing` itself, one `try_push`/`pop_into` per item,
    /// spinning when full or empty, as the ideal ring per item does.
    RingEach,
}

impl Link {
    const ALL: [Link; 11] = [
        Link::RingChunks,
        Link::RingEach,
        Link::Line,
        Link::Ideal,
        Link::IdealEach,
        Link::Pipe,
        Link::Unix,
        Link::Typed,
        Link::TypedBatch,
        Link::Bytes,
        Link::Mpmc,
    ];

    /// Names the link in a child role.
    fn tag(self) -> &'static str {
        match self {
            Link::Line => "line",
            Link::Ideal => "ideal",
            Link::IdealEach => "ideal-each",
            Link::Pipe => "pipe",
            Link::Unix => "unix",
            Link::Typed => "typed",
            Link::TypedBatch => "typed-batch",
            Link::Bytes => "bytes",
            Link::Mpmc => "mpmc",
            Link::RingChunks => "ring-chunks",
            Link::RingEach => "ring-each",
        }
    }

    /// Items the ideal ring publishes at once over this link.
    fn ideal_batch(self) -> u64 {
        if self == Link::IdealEach {
            1
        } else {
            BATCH as u64
        }
    }

    fn from_tag(tag: &str) -> Option<Link> {
        Link::ALL.into_iter().find(|l| l.tag() == tag)
    }

    /// Names the link in a latency table.
    fn latency_label(self) -> &'static str {
        match self {
            Link::Line => "floor: cache line one-way, 2 procs",
            Link::Pipe => "pipe, 64 B write_all/read_exact",
            Link::Unix => "unix socket pair, 64 B",
            Link::Typed => "shmkit channel<[u8; 64]> send/recv",
            Link::Bytes => "shmkit byte_channel, 64 B records",
            Link::Mpmc => "shmkit mpmc_channel<[u8; 64]> send/recv",
            Link::Ideal
            | Link::IdealEach
            | Link::TypedBatch
            | Link::RingChunks
            | Link::RingEach => "?",
        }
    }

    /// Names the link in a throughput table (`size`: message bytes).
    fn stream_label(self, size: usize) -> String {
        match self {
            Link::Ideal => format!("ideal SPSC (hand-rolled, index per {BATCH})"),
            Link::IdealEach => "ideal SPSC (hand-rolled, index per item)".to_owned(),
            Link::Typed if size == 8 => "shmkit channel<u64> send/recv".to_owned(),
            Link::Typed => format!("shmkit channel<[u8; {size}]> send/recv"),
            Link::TypedBatch => format!("shmkit channel<u64> send_all/recv_slice x{BATCH}"),
            Link::RingChunks => format!("shmkit SpscRing<u64> chunks of {BATCH}, in place"),
            Link::RingEach => "shmkit SpscRing<u64> try_push/pop_into".to_owned(),
            Link::Bytes => "shmkit byte_channel send/recv".to_owned(),
            Link::Mpmc if size == 8 => "shmkit mpmc_channel<u64> send/recv".to_owned(),
            Link::Mpmc => format!("shmkit mpmc_channel<[u8; {size}]> send/recv"),
            Link::Pipe => "pipe write_all/read_exact".to_owned(),
            Link::Unix => "unix socket write_all/read_exact".to_owned(),
            Link::Line => "?".to_owned(),
        }
    }
}

/// Parent ↔ child signals, in their own anonymous region.
#[repr(C)]
struct Control {
    /// Parent → child: 1 once the parent has closed its copies of the
    /// child's link ends. The child opens its ends only then: a channel
    /// end admits one live holder at a time.
    handed_over: AtomicU64,
    /// Child → parent: 1 once it has attached its link ends and pinned
    /// itself.
    ready: AtomicU64,
    /// Parent → child: the stream repetition to produce (from 1), or
    /// [`STOP`].
    go: AtomicU64,
    /// Parent → child: the sequence number of the repetition's first
    /// message.
    first: AtomicU64,
    /// Parent → child: messages in the repetition.
    count: AtomicU64,
    /// Child → parent: messages produced so far, all repetitions.
    produced: AtomicU64,
}
// SAFETY: repr(C); every field is an AtomicU64, which is ShmSafe.
unsafe impl ShmSafe for Control {}

/// Waits (bounded) for the child to say it is ready, watching for it to
/// die at start-up rather than spinning blind.
fn wait_ready(control: &Control, child: &mut ChildGuard) -> Result<(), String> {
    let deadline = Instant::now() + PARENT_WAIT_LIMIT;
    while control.ready.load(Ordering::Acquire) != 1 {
        if let Some(status) = child.try_status() {
            return Err(format!("the child exited at start-up: {status}"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the child was not ready within {PARENT_WAIT_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}

/// Writes `seq` into the first and the last 8 bytes of `msg` (the same 8
/// when `msg` is 8 bytes long), so a torn or truncated copy shows.
#[inline]
fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number stamped into `msg` by [`stamp`], or an error if its
/// two copies disagree.
#[inline]
fn read_stamp(msg: &[u8]) -> Result<u64, String> {
    let n = msg.len();
    let head = u64::from_le_bytes(msg[..8].try_into().unwrap_or_default());
    let tail = u64::from_le_bytes(msg[n - 8..].try_into().unwrap_or_default());
    if head != tail {
        return Err(torn(head, tail));
    }
    Ok(head)
}

#[cold]
#[inline(never)]
fn torn(head: u64, tail: u64) -> String {
    format!("torn message: stamped {head} at the start and {tail} at the end")
}

/// Checks that `msg` is `len` bytes stamped `seq`.
#[inline]
fn check_msg(msg: &[u8], len: usize, seq: u64) -> Result<(), String> {
    if msg.len() != len {
        return Err(wrong_len(msg.len(), len, seq));
    }
    let got = read_stamp(msg)?;
    if got != seq {
        return Err(out_of_sequence(got, seq));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn wrong_len(got: usize, want: usize, seq: u64) -> String {
    format!("message {seq} is {got} bytes long, expected {want}")
}

#[cold]
#[inline(never)]
fn out_of_sequence(got: u64, want: u64) -> String {
    format!("expected message {want}, received {got}: lost, repeated or reordered")
}

/// A message of `len` bytes filled with a pattern.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// A. Latency: ping-pong
// ---------------------------------------------------------------------------

/// The parent's end of a ping-pong link.
trait Pinger {
    /// Sends ping `seq` and waits for its echo, which it checks.
    fn ping(&mut self, seq: u64) -> Result<(), String>;
    /// Tells the echoing child to stop.
    fn stop(&mut self) -> Result<(), String>;
}

/// The child's end of a ping-pong link.
trait Echoer {
    /// Waits for a ping and echoes it; `false` when told to stop.
    fn echo(&mut self) -> Result<bool, String>;
}

/// One round of a latency row: round trips timed one by one.
struct Latency {
    /// Round trip times, ns.
    hist: Histogram<u64>,
    pinned: bool,
}

/// Round trips over `pinger`: warm-up, then each one timed into an HDR
/// histogram (ns per round trip), until the budget or the count runs out.
fn ping_pong<P: Pinger>(pinger: &mut P, plan: &Plan) -> Result<Histogram<u64>, String> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("creating the histogram: {e}"))?;
    let mut seq: u64 = 0;
    let warm_end = Instant::now() + plan.latency_warmup;
    while Instant::now() < warm_end {
        pinger.ping(seq)?;
        seq += 1;
    }
    let end = Instant::now() + plan.latency_budget / plan.latency_rounds;
    for _ in 0..plan.max_round_trips / u64::from(plan.latency_rounds) {
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

/// Measures one round of round trips over `link` with a child echoing.
fn latency(link: Link, ctx: &Ctx) -> Result<Latency, String> {
    let control = Shm::<Control>::anonymous(|_| {})
        .map_err(|e| format!("creating the control region: {e}"))?;
    let role = format!("{ROLE_ECHO}:{}", link.tag());
    let plan = &ctx.plan;
    let (hist, pinned) = match link {
        Link::Line => {
            let line = Shm::<Line>::anonymous(|_| {})
                .map_err(|e| format!("creating the cache-line region: {e}"))?;
            let child = ctx.spawn(&role, &control, |cmd| {
                line.region().pass_to_child(cmd, LINK_A_VAR);
            })?;
            let mut pinger = LinePinger {
                line: &line,
                how: ctx.how,
            };
            ctx.drive(&role, &control, child, (), || ping_pong(&mut pinger, plan))?
        }
        Link::Pipe => {
            let (ping_r, ping_w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let (pong_r, pong_w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let child = ctx.spawn(&role, &control, |cmd| {
                support::pass_fd_to_child(cmd, ping_r.as_fd(), LINK_A_VAR);
                support::pass_fd_to_child(cmd, pong_w.as_fd(), LINK_B_VAR);
            })?;
            let mut pinger = StreamPinger::new(File::from(ping_w), File::from(pong_r));
            ctx.drive(&role, &control, child, (ping_r, pong_w), || {
                ping_pong(&mut pinger, plan)
            })?
        }
        Link::Unix => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let child = ctx.spawn(&role, &control, |cmd| {
                support::pass_fd_to_child(cmd, theirs.as_fd(), LINK_A_VAR);
            })?;
            let reader = mine
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            let mut pinger = StreamPinger::new(mine, reader);
            ctx.drive(&role, &control, child, theirs, || {
                ping_pong(&mut pinger, plan)
            })?
        }
        Link::Typed | Link::Bytes | Link::Mpmc => {
            shmkit_links::latency(link, ctx, &role, &control)?
        }
        Link::Ideal | Link::IdealEach | Link::TypedBatch | Link::RingChunks | Link::RingEach => {
            return Err(format!("no latency measurement over {link:?}"));
        }
    };
    Ok(Latency { hist, pinned })
}

/// Serves pings until told to stop, once the child is ready.
fn serve_echo<E: Echoer>(control: &Control, mut echoer: E) -> Result<(), String> {
    control.ready.store(1, Ordering::Release);
    while echoer.echo()? {}
    Ok(())
}

/// One cache line (two, against adjacent-line prefetch) holding the ball.
#[repr(C, align(128))]
struct Line {
    value: AtomicU64,
}
// SAFETY: repr(C); its only field is an AtomicU64, which is
// ShmSafe; the rest is padding, for which any bytes do.
unsafe impl ShmSafe for Line {}

/// The floor's parent side: ping `seq` is the odd value `2 * seq + 1`,
/// its echo that plus one.
struct LinePinger<'a> {
    line: &'a Line,
    how: Wait,
}

impl Pinger for LinePinger<'_> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        let ball = 2 * seq + 1;
        self.line.value.store(ball, Ordering::Release);
        let answer = ball + 1;
        support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
            (self.line.value.load(Ordering::Acquire) == answer).then_some(())
        })
        .ok_or_else(|| format!("no answer to ping {seq} within {PARENT_WAIT_LIMIT:?}"))
    }

    fn stop(&mut self) -> Result<(), String> {
        self.line.value.store(STOP, Ordering::Release);
        Ok(())
    }
}

/// The floor's child side: answers every odd value with value + 1.
struct LineEchoer {
    line: Shm<Line>,
    how: Wait,
    expect: u64,
}

impl Echoer for LineEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let expect = self.expect;
        let v = support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
            let v = self.line.value.load(Ordering::Acquire);
            (v == expect || v == STOP).then_some(v)
        })
        .ok_or_else(|| format!("parent silent for {CHILD_IDLE_LIMIT:?} (expected {expect})"))?;
        if v == STOP {
            return Ok(false);
        }
        self.line.value.store(v + 1, Ordering::Release);
        self.expect = v + 2;
        Ok(true)
    }
}

/// The parent's side of a pipe pair or socket: blocking 64-byte writes
/// and reads.
struct StreamPinger<W, R> {
    tx: W,
    rx: R,
    msg: Msg,
    echo: Msg,
}

impl<W: Write, R: Read> StreamPinger<W, R> {
    fn new(tx: W, rx: R) -> Self {
        let mut msg = [0; MSG];
        msg.copy_from_slice(&patterned(MSG));
        StreamPinger {
            tx,
            rx,
            msg,
            echo: [0; MSG],
        }
    }
}

impl<W: Write, R: Read> Pinger for StreamPinger<W, R> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing ping {seq}: {e}"))?;
        self.rx
            .read_exact(&mut self.echo)
            .map_err(|e| format!("reading echo {seq}: {e}"))?;
        check_msg(&self.echo, MSG, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing the stop message: {e}"))
    }
}

/// The child's side of a pipe pair or socket.
struct StreamEchoer<W, R> {
    tx: W,
    rx: R,
    msg: Msg,
}

impl<W: Write, R: Read> Echoer for StreamEchoer<W, R> {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        self.rx
            .read_exact(&mut self.msg)
            .map_err(|e| format!("reading a ping: {e}"))?;
        if read_stamp(&self.msg)? == STOP {
            return Ok(false);
        }
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing an echo: {e}"))?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// B. Throughput: streams
// ---------------------------------------------------------------------------

/// The child's end of a stream.
trait Producer {
    /// Sends messages `first..first + count`.
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String>;
}

/// The parent's end of a stream.
trait Consumer {
    /// Receives and checks messages `first..first + count`.
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String>;
}

/// One throughput figure.
struct Throughput {
    /// Messages per second, one sample per repetition.
    stats: Stats,
    /// Messages received and checked in all (calibration included).
    count: u64,
}

/// The parent's side of a stream: a calibration run, then timed
/// repetitions; returns messages/s per measured repetition and how many
/// messages were received in all.
fn stream<C: Consumer>(
    consumer: &mut C,
    control: &Control,
    plan: &Plan,
) -> Result<(Vec<f64>, u64), String> {
    let mut rep: u64 = 0;
    let mut next: u64 = 0;
    let mut run = |count: u64| -> Result<Duration, String> {
        rep += 1;
        control.first.store(next, Ordering::Relaxed);
        control.count.store(count, Ordering::Relaxed);
        let t = Instant::now();
        control.go.store(rep, Ordering::Release);
        consumer.consume(next, count)?;
        let took = t.elapsed();
        next += count;
        Ok(took)
    };

    // Calibrate: grow a run until it lasts pilot_time. Each repetition
    // is then sized to last rep_time at the rate of the one before, so a
    // rate that changes mid-row (other load on the machine) cannot make
    // the row run for minutes.
    let mut count = (4 * BATCH) as u64;
    let mut rate = loop {
        let took = run(count)?;
        if took >= plan.pilot_time || count >= 1 << 32 {
            break count as f64 / took.as_secs_f64().max(1e-9);
        }
        count *= 4;
    };
    let mut samples = Vec::with_capacity(plan.reps);
    for i in 0..plan.warmup_reps + plan.reps {
        let count = rep_size(rate, plan.rep_time);
        let took = run(count)?;
        rate = count as f64 / took.as_secs_f64().max(1e-9);
        if i >= plan.warmup_reps {
            samples.push(rate);
        }
    }
    control.go.store(STOP, Ordering::Release);
    Ok((samples, next))
}

/// Messages for a repetition of about `time` at `rate` messages/s: whole
/// batches, at least one.
fn rep_size(rate: f64, time: Duration) -> u64 {
    let batch = BATCH as f64;
    ((rate * time.as_secs_f64() / batch).ceil() * batch).clamp(batch, (1u64 << 36) as f64) as u64
}

/// One child's stream.
struct StreamRun {
    /// Messages/s per measured repetition.
    samples: Vec<f64>,
    /// Messages received and checked in all (calibration included).
    count: u64,
    /// Whether the parent ran pinned.
    pinned: bool,
}

/// Measures a stream of `size`-byte messages over `link`, produced by a
/// child.
fn throughput(link: Link, size: usize, ctx: &Ctx) -> Result<StreamRun, String> {
    let control = Shm::<Control>::anonymous(|_| {})
        .map_err(|e| format!("creating the control region: {e}"))?;
    let role = format!("{ROLE_PRODUCE}:{}:{size}", link.tag());
    let plan = &ctx.plan;
    let ((samples, total), pinned) = match link {
        Link::Ideal | Link::IdealEach => {
            if size != 8 {
                return Err(format!("the ideal ring carries u64s, not {size} bytes"));
            }
            let ring = Ideal::create()?;
            let child = ctx.spawn(&role, &control, |cmd| {
                ring.region.pass_to_child(cmd, LINK_A_VAR);
            })?;
            let mut consumer = IdealConsumer::new(&ring, link.ideal_batch(), ctx.how)?;
            ctx.drive(&role, &control, child, (), || {
                stream(&mut consumer, &control, plan)
            })?
        }
        Link::Pipe => {
            let (r, w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let child = ctx.spawn(&role, &control, |cmd| {
                support::pass_fd_to_child(cmd, w.as_fd(), LINK_A_VAR);
            })?;
            let mut consumer = StreamConsumer::new(File::from(r), size);
            ctx.drive(&role, &control, child, w, || {
                stream(&mut consumer, &control, plan)
            })?
        }
        Link::Unix => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let child = ctx.spawn(&role, &control, |cmd| {
                support::pass_fd_to_child(cmd, theirs.as_fd(), LINK_A_VAR);
            })?;
            let mut consumer = StreamConsumer::new(mine, size);
            ctx.drive(&role, &control, child, theirs, || {
                stream(&mut consumer, &control, plan)
            })?
        }
        Link::Typed
        | Link::TypedBatch
        | Link::Bytes
        | Link::Mpmc
        | Link::RingChunks
        | Link::RingEach => shmkit_links::throughput(link, size, ctx, &role, &control)?,
        Link::Line => return Err("no stream over a single cache line".to_owned()),
    };
    let produced = control.produced.load(Ordering::Acquire);
    if produced != total {
        return Err(format!(
            "{role}: the child sent {produced} messages, the parent received {total}"
        ));
    }
    Ok(StreamRun {
        samples,
        count: total,
        pinned,
    })
}

/// The child's side of a stream: waits for each repetition's start
/// signal, produces it, counts it; returns at [`STOP`].
fn serve_stream<P: Producer>(control: &Control, mut producer: P, how: Wait) -> Result<(), String> {
    control.ready.store(1, Ordering::Release);
    let mut rep: u64 = 0;
    loop {
        let want = rep + 1;
        let go = support::wait_for(CHILD_IDLE_LIMIT, how, || {
            let g = control.go.load(Ordering::Acquire);
            (g == want || g == STOP).then_some(g)
        })
        .ok_or_else(|| {
            format!("no start signal for repetition {want} within {CHILD_IDLE_LIMIT:?}")
        })?;
        if go == STOP {
            return Ok(());
        }
        rep = go;
        let first = control.first.load(Ordering::Relaxed);
        let count = control.count.load(Ordering::Relaxed);
        producer.produce(first, count)?;
        control.produced.fetch_add(count, Ordering::Release);
    }
}

/// A pipe's or socket's writing end: one `write_all` per message.
struct StreamProducer<W> {
    tx: W,
    msg: Vec<u8>,
}

impl<W: Write> Producer for StreamProducer<W> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            stamp(&mut self.msg, seq);
            self.tx
                .write_all(&self.msg)
                .map_err(|e| format!("writing message {seq}: {e}"))?;
        }
        Ok(())
    }
}

/// A pipe's or socket's reading end: one `read_exact` per message.
struct StreamConsumer<R> {
    rx: R,
    msg: Vec<u8>,
}

impl<R: Read> StreamConsumer<R> {
    fn new(rx: R, size: usize) -> Self {
        StreamConsumer {
            rx,
            msg: vec![0; size],
        }
    }
}

impl<R: Read> Consumer for StreamConsumer<R> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let len = self.msg.len();
        for seq in first..first + count {
            self.rx
                .read_exact(&mut self.msg)
                .map_err(|e| format!("reading message {seq}: {e}"))?;
            check_msg(&self.msg, len, seq)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The ideal SPSC u64 stream: a hand-rolled ring in an anonymous region
//
// data offset  what
//   0          head: the consumer's index (items taken), own 128 bytes
//   128        tail: the producer's index (items published), own 128 bytes
//   256        U64_CAPACITY u64 slots; item i lives in slot i % capacity
//
// Both sides move their index a whole batch at a time, so a batch never
// wraps (the capacity is a multiple of the batch) and each index is
// published once per BATCH items.
// ---------------------------------------------------------------------------

const HEAD_AT: usize = 0;
const TAIL_AT: usize = 128;
const SLOTS_AT: usize = 256;
const _: () = assert!(U64_CAPACITY.is_power_of_two() && U64_CAPACITY % BATCH == 0);

/// One index on its own 128 bytes (two cache lines, against
/// adjacent-line prefetch).
#[repr(C, align(128))]
struct Index {
    value: AtomicU64,
}
// SAFETY: repr(C); its only field is an AtomicU64, which is
// ShmSafe; the rest is padding.
unsafe impl ShmSafe for Index {}

/// The ideal ring's region.
struct Ideal {
    region: Region,
}

impl Ideal {
    fn options() -> RegionOptions {
        RegionOptions::new()
            .size(SLOTS_AT + U64_CAPACITY * 8)
            .layout(LayoutId::named("shmkit-bench::ideal-spsc", 1))
    }

    /// A fresh, zeroed ring: both indices 0.
    fn create() -> Result<Ideal, String> {
        let region = Self::options()
            .anonymous()
            .map_err(|e| format!("creating the ideal ring's region: {e}"))?;
        Ok(Ideal { region })
    }

    /// In a child: the ring the parent passed down.
    fn inherited() -> Result<Ideal, String> {
        // SAFETY: the parent passed this descriptor with `pass_to_child`
        // under LINK_A_VAR for exactly this purpose; nothing else in this
        // process owns it, and this is the only call for the variable.
        let region = unsafe { Self::options().from_env(LINK_A_VAR) }
            .map_err(|e| format!("opening the inherited ideal ring: {e}"))?;
        Ok(Ideal { region })
    }

    fn index(&self, at: usize) -> Result<&AtomicU64, String> {
        self.region
            .place::<Index>(at)
            .map(|i| &i.value)
            .map_err(|e| format!("placing an index: {e}"))
    }

    /// The first slot, checked to hold all `U64_CAPACITY` slots, aligned.
    fn slots(&self) -> Result<*mut u64, String> {
        // Borrowing them as a slice would claim they do not change under
        // us; only the check is wanted.
        self.region
            .place_slice::<Index>(SLOTS_AT, U64_CAPACITY * 8 / 128)
            .map_err(|e| format!("placing the slots: {e}"))?;
        // SAFETY: SLOTS_AT + U64_CAPACITY * 8 bytes are in the region
        // (checked just above), so the address is inside its data.
        Ok(unsafe { self.region.as_ptr().add(SLOTS_AT) }.cast())
    }
}

/// The ideal ring's producer (in the child).
struct IdealProducer<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    slots: *mut u64,
    /// Items published (the value last stored in `tail`).
    published: u64,
    /// The consumer's index as last read.
    head_seen: u64,
    /// Items written per publication (a divisor of the capacity).
    batch: u64,
    how: Wait,
}

impl<'a> IdealProducer<'a> {
    fn new(ring: &'a Ideal, batch: u64, how: Wait) -> Result<Self, String> {
        Ok(IdealProducer {
            head: ring.index(HEAD_AT)?,
            tail: ring.index(TAIL_AT)?,
            slots: ring.slots()?,
            published: 0,
            head_seen: 0,
            batch,
            how,
        })
    }
}

impl Producer for IdealProducer<'_> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        let batch = self.batch;
        if count % batch != 0 {
            return Err(format!("{count} items are not whole batches of {batch}"));
        }
        let cap = U64_CAPACITY as u64;
        let mut seq = first;
        for _ in 0..count / batch {
            if self.published.wrapping_sub(self.head_seen) + batch > cap {
                let published = self.published;
                self.head_seen = support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
                    let h = self.head.load(Ordering::Acquire);
                    (published.wrapping_sub(h) + batch <= cap).then_some(h)
                })
                .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))?;
            }
            let at = (self.published % cap) as usize;
            for i in 0..batch as usize {
                // SAFETY: `at` is a multiple of the batch below the capacity, a
                // multiple of the batch, so `at + i` is a slot of the region
                // (checked by `slots`), u64-aligned. The consumer has taken
                // these slots' previous items (its index, loaded with
                // Acquire, is at most capacity - batch behind ours) and
                // reads them only after our Release store below.
                unsafe { self.slots.add(at + i).write(seq + i as u64) };
            }
            seq += batch;
            self.published += batch;
            self.tail.store(self.published, Ordering::Release);
        }
        Ok(())
    }
}

/// The ideal ring's consumer (in the parent).
struct IdealConsumer<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    slots: *mut u64,
    /// Items taken (the value last stored in `head`).
    taken: u64,
    /// The producer's index as last read.
    tail_seen: u64,
    /// Items read per publication (a divisor of the capacity).
    batch: u64,
    how: Wait,
}

impl<'a> IdealConsumer<'a> {
    fn new(ring: &'a Ideal, batch: u64, how: Wait) -> Result<Self, String> {
        Ok(IdealConsumer {
            head: ring.index(HEAD_AT)?,
            tail: ring.index(TAIL_AT)?,
            slots: ring.slots()?,
            taken: 0,
            tail_seen: 0,
            batch,
            how,
        })
    }
}

impl Consumer for IdealConsumer<'_> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let batch = self.batch;
        if count % batch != 0 {
            return Err(format!("{count} items are not whole batches of {batch}"));
        }
        let cap = U64_CAPACITY as u64;
        let mut expected = first;
        for _ in 0..count / batch {
            if self.tail_seen.wrapping_sub(self.taken) < batch {
                let taken = self.taken;
                self.tail_seen = support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
                    let t = self.tail.load(Ordering::Acquire);
                    (t.wrapping_sub(taken) >= batch).then_some(t)
                })
                .ok_or_else(|| {
                    format!("no batch at item {expected} within {PARENT_WAIT_LIMIT:?}")
                })?;
            }
            let at = (self.taken % cap) as usize;
            let mut wrong = 0;
            for i in 0..batch as usize {
                // SAFETY: `at + i` is a slot of the region, u64-aligned (as
                // in the producer); the producer published it (its index,
                // loaded with Acquire, is at least a batch ahead of ours) and
                // does not write it again before our Release store below.
                let v = unsafe { self.slots.add(at + i).read() };
                wrong |= v ^ (expected + i as u64);
            }
            if wrong != 0 {
                return Err(format!(
                    "ideal ring: a batch from item {expected} holds wrong values"
                ));
            }
            expected += batch;
            self.taken += batch;
            self.head.store(self.taken, Ordering::Release);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The shmkit links
// ---------------------------------------------------------------------------

mod shmkit_links {
    use super::*;
    use bytemuck::Pod;
    use shmkit::channel::{
        byte_channel, channel, mpmc_channel, ByteReceiver, ByteSender, MpmcReceiver, MpmcSender,
        Receiver, Sender,
    };
    use shmkit::ring::spsc::{self, SpscRing};
    use shmkit::ring::RingError;

    /// A typed channel's sending end, SPSC or MPMC, as the rows use it.
    trait TypedTx<T>: Sized {
        /// Sends `value`, waiting while the channel is full.
        fn send(&self, value: T) -> Result<(), String>;
        /// The channel's region, to pass to a child.
        fn link_region(&self) -> &Region;
        /// Opens the end the parent passed under `var`.
        ///
        /// # Safety
        ///
        /// As for the channels' `from_env`: the descriptor under `var` was
        /// passed for this purpose and nothing else in this process owns
        /// it.
        unsafe fn open_env(var: &str) -> shmkit::Result<Self>;
    }

    /// A typed channel's receiving end, SPSC or MPMC.
    trait TypedRx<T>: Sized {
        /// Receives a value, waiting while the channel is empty.
        fn recv(&self) -> Result<T, String>;
        /// The channel's region, to pass to a child.
        fn link_region(&self) -> &Region;
        /// Opens the end the parent passed under `var`.
        ///
        /// # Safety
        ///
        /// As for [`TypedTx::open_env`].
        unsafe fn open_env(var: &str) -> shmkit::Result<Self>;
    }

    /// Implements the row traits for a channel's two ends.
    macro_rules! typed_ends {
        ($tx:ident, $rx:ident) => {
            impl<T: Pod + Send> TypedTx<T> for $tx<T> {
                #[inline]
                fn send(&self, value: T) -> Result<(), String> {
                    $tx::send(self, value).map_err(|e| e.to_string())
                }
                fn link_region(&self) -> &Region {
                    self.region()
                }
                unsafe fn open_env(var: &str) -> shmkit::Result<Self> {
                    // SAFETY: the caller upholds `from_env`'s contract.
                    unsafe { $tx::from_env(var) }
                }
            }

            impl<T: Pod + Send> TypedRx<T> for $rx<T> {
                #[inline]
                fn recv(&self) -> Result<T, String> {
                    $rx::recv(self).map_err(|e| e.to_string())
                }
                fn link_region(&self) -> &Region {
                    self.region()
                }
                unsafe fn open_env(var: &str) -> shmkit::Result<Self> {
                    // SAFETY: the caller upholds `from_env`'s contract.
                    unsafe { $rx::from_env(var) }
                }
            }
        };
    }
    typed_ends!(Sender, Receiver);
    typed_ends!(MpmcSender, MpmcReceiver);

    /// Makes a channel pair of some capacity: `channel` or `mpmc_channel`.
    type PairFn<S, R> = fn(usize) -> shmkit::Result<(S, R)>;

    /// Latency over two typed channels made by `pair`: ping to the child,
    /// pong back.
    fn typed_latency<S: TypedTx<Msg>, R: TypedRx<Msg>>(
        pair: PairFn<S, R>,
        ctx: &Ctx,
        role: &str,
        control: &Shm<Control>,
    ) -> Result<(Histogram<u64>, bool), String> {
        let (ping_tx, ping_rx) =
            pair(MSG_CAPACITY).map_err(|e| format!("creating the ping channel: {e}"))?;
        let (pong_tx, pong_rx) =
            pair(MSG_CAPACITY).map_err(|e| format!("creating the pong channel: {e}"))?;
        let child = ctx.spawn(role, control, |cmd| {
            ping_rx.link_region().pass_to_child(cmd, LINK_A_VAR);
            pong_tx.link_region().pass_to_child(cmd, LINK_B_VAR);
        })?;
        let mut pinger = TypedPinger {
            tx: ping_tx,
            rx: pong_rx,
            msg: patterned_msg(),
        };
        ctx.drive(role, control, child, (ping_rx, pong_tx), || {
            ping_pong(&mut pinger, &ctx.plan)
        })
    }

    /// A stream over a typed channel made by `pair`, received by the
    /// consumer `consumer` makes of the receiving end.
    fn typed_throughput<T, S: TypedTx<T>, R: TypedRx<T>, C: Consumer>(
        pair: PairFn<S, R>,
        capacity: usize,
        ctx: &Ctx,
        role: &str,
        control: &Shm<Control>,
        consumer: impl FnOnce(R) -> C,
    ) -> Result<((Vec<f64>, u64), bool), String> {
        let (tx, rx) = pair(capacity).map_err(|e| format!("creating the channel: {e}"))?;
        let child = ctx.spawn(role, control, |cmd| {
            tx.link_region().pass_to_child(cmd, LINK_A_VAR);
        })?;
        let mut consumer = consumer(rx);
        ctx.drive(role, control, child, tx, || {
            stream(&mut consumer, control, &ctx.plan)
        })
    }

    /// The child's echo over two typed channels.
    fn typed_echo<R: TypedRx<Msg>, S: TypedTx<Msg>>(control: &Control) -> Result<(), String> {
        // SAFETY: the parent passed this channel's region with
        // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
        // else in this process owns it, and this is the only call for the
        // variable.
        let rx = unsafe { R::open_env(LINK_A_VAR) }
            .map_err(|e| format!("opening the ping channel: {e}"))?;
        // SAFETY: as above, for LINK_B_VAR.
        let tx = unsafe { S::open_env(LINK_B_VAR) }
            .map_err(|e| format!("opening the pong channel: {e}"))?;
        serve_echo(control, TypedEchoer { rx, tx })
    }

    /// The child's producer over a typed channel, made by `producer` of
    /// the sending end.
    fn typed_produce<T, S: TypedTx<T>, P: Producer>(
        control: &Control,
        how: Wait,
        producer: impl FnOnce(S) -> P,
    ) -> Result<(), String> {
        // SAFETY: the parent passed this channel's region with
        // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
        // else in this process owns it, and this is the only call for the
        // variable.
        let tx =
            unsafe { S::open_env(LINK_A_VAR) }.map_err(|e| format!("opening the channel: {e}"))?;
        serve_stream(control, producer(tx), how)
    }

    /// Latency over shmkit's typed or byte channel: a ping channel to the
    /// child and a pong channel back.
    pub(super) fn latency(
        link: Link,
        ctx: &Ctx,
        role: &str,
        control: &Shm<Control>,
    ) -> Result<(Histogram<u64>, bool), String> {
        let plan = &ctx.plan;
        match link {
            Link::Typed => typed_latency(channel::<Msg>, ctx, role, control),
            Link::Mpmc => typed_latency(mpmc_channel::<Msg>, ctx, role, control),
            Link::Bytes => {
                let (ping_tx, ping_rx) = byte_channel(BYTES_LATENCY_CAPACITY, MSG)
                    .map_err(|e| format!("creating the ping channel: {e}"))?;
                let (pong_tx, pong_rx) = byte_channel(BYTES_LATENCY_CAPACITY, MSG)
                    .map_err(|e| format!("creating the pong channel: {e}"))?;
                let child = ctx.spawn(role, control, |cmd| {
                    ping_rx.region().pass_to_child(cmd, LINK_A_VAR);
                    pong_tx.region().pass_to_child(cmd, LINK_B_VAR);
                })?;
                let mut pinger = BytesPinger {
                    tx: ping_tx,
                    rx: pong_rx,
                    msg: patterned(MSG),
                    echo: Vec::with_capacity(MSG),
                };
                ctx.drive(role, control, child, (ping_rx, pong_tx), || {
                    ping_pong(&mut pinger, plan)
                })
            }
            _ => Err(format!("no shmkit latency measurement over {link:?}")),
        }
    }

    /// A stream over shmkit's typed or byte channel, produced by the child.
    pub(super) fn throughput(
        link: Link,
        size: usize,
        ctx: &Ctx,
        role: &str,
        control: &Shm<Control>,
    ) -> Result<((Vec<f64>, u64), bool), String> {
        let plan = &ctx.plan;
        match (link, size) {
            (Link::RingChunks | Link::RingEach, 8) => {
                let region = ring_options()
                    .anonymous_with(|r| SpscRing::<u64>::create(r, 0, U64_CAPACITY).map(|_| ()))
                    .map_err(|e| format!("creating the ring's region: {e}"))?;
                let child = ctx.spawn(role, control, |cmd| {
                    region.pass_to_child(cmd, LINK_A_VAR);
                })?;
                let ring = SpscRing::<u64>::open(&region, 0)
                    .map_err(|e| format!("opening the ring: {e}"))?;
                // SAFETY: the only consumer of this ring; the child produces.
                let rx =
                    unsafe { ring.consumer() }.map_err(|e| format!("the ring's consumer: {e}"))?;
                if link == Link::RingEach {
                    let mut consumer = ItemConsumer { rx, how: ctx.how };
                    ctx.drive(role, control, child, (), || {
                        stream(&mut consumer, control, plan)
                    })
                } else {
                    let mut consumer = ChunkConsumer { rx, how: ctx.how };
                    ctx.drive(role, control, child, (), || {
                        stream(&mut consumer, control, plan)
                    })
                }
            }
            (Link::Typed, 8) => {
                typed_throughput(channel::<u64>, U64_CAPACITY, ctx, role, control, |rx| {
                    U64Consumer { rx }
                })
            }
            (Link::TypedBatch, 8) => {
                typed_throughput(channel::<u64>, U64_CAPACITY, ctx, role, control, |rx| {
                    U64BatchConsumer {
                        rx,
                        buf: vec![0; BATCH],
                    }
                })
            }
            (Link::Mpmc, 8) => typed_throughput(
                mpmc_channel::<u64>,
                U64_CAPACITY,
                ctx,
                role,
                control,
                |rx| U64Consumer { rx },
            ),
            (Link::Typed, MSG) => {
                typed_throughput(channel::<Msg>, MSG_CAPACITY, ctx, role, control, |rx| {
                    MsgConsumer { rx }
                })
            }
            (Link::Mpmc, MSG) => typed_throughput(
                mpmc_channel::<Msg>,
                MSG_CAPACITY,
                ctx,
                role,
                control,
                |rx| MsgConsumer { rx },
            ),
            (Link::Bytes, _) => {
                let (tx, rx) = byte_channel(BYTES_CAPACITY, size)
                    .map_err(|e| format!("creating the byte channel: {e}"))?;
                let child = ctx.spawn(role, control, |cmd| {
                    tx.region().pass_to_child(cmd, LINK_A_VAR);
                })?;
                let mut consumer = BytesConsumer {
                    rx,
                    msg: Vec::with_capacity(size),
                    size,
                };
                ctx.drive(role, control, child, tx, || {
                    stream(&mut consumer, control, plan)
                })
            }
            _ => Err(format!(
                "no shmkit stream of {size}-byte messages over {link:?}"
            )),
        }
    }

    /// The child's echo over two shmkit channels.
    pub(super) fn echo(link: Link, control: &Control) -> Result<(), String> {
        match link {
            Link::Typed => typed_echo::<Receiver<Msg>, Sender<Msg>>(control),
            Link::Mpmc => typed_echo::<MpmcReceiver<Msg>, MpmcSender<Msg>>(control),
            Link::Bytes => {
                // SAFETY: the parent passed this channel's region with
                // `pass_to_child` under LINK_A_VAR for exactly this
                // purpose; nothing else in this process owns it, and this
                // is the only call for the variable.
                let rx = unsafe { ByteReceiver::from_env(LINK_A_VAR) }
                    .map_err(|e| format!("opening the ping channel: {e}"))?;
                // SAFETY: as above, for LINK_B_VAR.
                let tx = unsafe { ByteSender::from_env(LINK_B_VAR) }
                    .map_err(|e| format!("opening the pong channel: {e}"))?;
                serve_echo(
                    control,
                    BytesEchoer {
                        rx,
                        tx,
                        msg: Vec::with_capacity(MSG),
                    },
                )
            }
            _ => Err(format!("no shmkit echo over {link:?}")),
        }
    }

    /// The child's producer over a shmkit channel.
    pub(super) fn produce(
        link: Link,
        size: usize,
        control: &Control,
        how: Wait,
    ) -> Result<(), String> {
        match (link, size) {
            (Link::RingChunks | Link::RingEach, 8) => {
                // SAFETY: the parent passed this region with `pass_to_child`
                // under LINK_A_VAR for exactly this purpose; nothing else in
                // this process owns it, and this is the only call for the
                // variable.
                let region = unsafe { ring_options().from_env(LINK_A_VAR) }
                    .map_err(|e| format!("opening the inherited ring: {e}"))?;
                let ring = SpscRing::<u64>::open(&region, 0)
                    .map_err(|e| format!("opening the ring: {e}"))?;
                // SAFETY: the only producer of this ring; the parent consumes.
                let tx =
                    unsafe { ring.producer() }.map_err(|e| format!("the ring's producer: {e}"))?;
                if link == Link::RingEach {
                    serve_stream(control, ItemProducer { tx, how }, how)
                } else {
                    serve_stream(control, ChunkProducer { tx, how }, how)
                }
            }
            (Link::Typed, 8) => typed_produce(control, how, |tx: Sender<u64>| U64Producer { tx }),
            (Link::TypedBatch, 8) => {
                typed_produce(control, how, |tx: Sender<u64>| U64BatchProducer {
                    tx,
                    buf: vec![0; BATCH],
                })
            }
            (Link::Mpmc, 8) => {
                typed_produce(control, how, |tx: MpmcSender<u64>| U64Producer { tx })
            }
            (Link::Typed, MSG) => typed_produce(control, how, |tx: Sender<Msg>| MsgProducer {
                tx,
                msg: patterned_msg(),
            }),
            (Link::Mpmc, MSG) => typed_produce(control, how, |tx: MpmcSender<Msg>| MsgProducer {
                tx,
                msg: patterned_msg(),
            }),
            (Link::Bytes, _) => {
                // SAFETY: the parent passed this channel's region with
                // `pass_to_child` under LINK_A_VAR for exactly this
                // purpose; nothing else in this process owns it, and this
                // is the only call for the variable.
                let tx = unsafe { ByteSender::from_env(LINK_A_VAR) }
                    .map_err(|e| format!("opening the byte channel: {e}"))?;
                let msg = patterned(size);
                serve_stream(control, BytesProducer { tx, msg }, how)
            }
            _ => Err(format!(
                "no shmkit stream of {size}-byte messages over {link:?}"
            )),
        }
    }

    /// A 64-byte message filled with the pattern.
    fn patterned_msg() -> Msg {
        let mut msg = [0; MSG];
        msg.copy_from_slice(&patterned(MSG));
        msg
    }

    struct TypedPinger<S, R> {
        tx: S,
        rx: R,
        msg: Msg,
    }

    impl<S: TypedTx<Msg>, R: TypedRx<Msg>> Pinger for TypedPinger<S, R> {
        #[inline]
        fn ping(&mut self, seq: u64) -> Result<(), String> {
            stamp(&mut self.msg, seq);
            self.tx
                .send(self.msg)
                .map_err(|e| format!("sending ping {seq}: {e}"))?;
            let echo = self
                .rx
                .recv()
                .map_err(|e| format!("receiving echo {seq}: {e}"))?;
            check_msg(&echo, MSG, seq)
        }

        fn stop(&mut self) -> Result<(), String> {
            stamp(&mut self.msg, STOP);
            self.tx
                .send(self.msg)
                .map_err(|e| format!("sending the stop message: {e}"))
        }
    }

    struct TypedEchoer<R, S> {
        rx: R,
        tx: S,
    }

    impl<R: TypedRx<Msg>, S: TypedTx<Msg>> Echoer for TypedEchoer<R, S> {
        #[inline]
        fn echo(&mut self) -> Result<bool, String> {
            let msg = self
                .rx
                .recv()
                .map_err(|e| format!("receiving a ping: {e}"))?;
            if read_stamp(&msg)? == STOP {
                return Ok(false);
            }
            self.tx
                .send(msg)
                .map_err(|e| format!("sending an echo: {e}"))?;
            Ok(true)
        }
    }

    struct BytesPinger {
        tx: ByteSender,
        rx: ByteReceiver,
        msg: Vec<u8>,
        echo: Vec<u8>,
    }

    impl Pinger for BytesPinger {
        #[inline]
        fn ping(&mut self, seq: u64) -> Result<(), String> {
            stamp(&mut self.msg, seq);
            self.tx
                .send(&self.msg)
                .map_err(|e| format!("sending ping {seq}: {e}"))?;
            let n = self
                .rx
                .recv(&mut self.echo)
                .map_err(|e| format!("receiving echo {seq}: {e}"))?;
            check_msg(received(&self.echo, n)?, MSG, seq)
        }

        fn stop(&mut self) -> Result<(), String> {
            stamp(&mut self.msg, STOP);
            self.tx
                .send(&self.msg)
                .map_err(|e| format!("sending the stop message: {e}"))
        }
    }

    struct BytesEchoer {
        rx: ByteReceiver,
        tx: ByteSender,
        msg: Vec<u8>,
    }

    impl Echoer for BytesEchoer {
        #[inline]
        fn echo(&mut self) -> Result<bool, String> {
            let n = self
                .rx
                .recv(&mut self.msg)
                .map_err(|e| format!("receiving a ping: {e}"))?;
            let msg = received(&self.msg, n)?;
            if read_stamp(msg)? == STOP {
                return Ok(false);
            }
            self.tx
                .send(msg)
                .map_err(|e| format!("sending an echo: {e}"))?;
            Ok(true)
        }
    }

    /// The `n` bytes a byte channel's `recv` reported into `buf`.
    #[inline]
    fn received(buf: &[u8], n: usize) -> Result<&[u8], String> {
        buf.get(..n)
            .filter(|m| m.len() >= 8)
            .ok_or_else(|| format!("recv reported {n} bytes, the buffer holds {}", buf.len()))
    }

    struct U64Producer<S> {
        tx: S,
    }

    impl<S: TypedTx<u64>> Producer for U64Producer<S> {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                self.tx
                    .send(seq)
                    .map_err(|e| format!("sending {seq}: {e}"))?;
            }
            Ok(())
        }
    }

    struct U64Consumer<R> {
        rx: R,
    }

    impl<R: TypedRx<u64>> Consumer for U64Consumer<R> {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                let v = self
                    .rx
                    .recv()
                    .map_err(|e| format!("receiving {seq}: {e}"))?;
                if v != seq {
                    return Err(out_of_sequence(v, seq));
                }
            }
            Ok(())
        }
    }

    struct U64BatchProducer {
        tx: Sender<u64>,
        buf: Vec<u64>,
    }

    impl Producer for U64BatchProducer {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            let end = first + count;
            let mut seq = first;
            while seq < end {
                let k = (end - seq).min(self.buf.len() as u64) as usize;
                for (i, v) in self.buf[..k].iter_mut().enumerate() {
                    *v = seq + i as u64;
                }
                self.tx
                    .send_all(&self.buf[..k])
                    .map_err(|e| format!("sending {seq}..{}: {e}", seq + k as u64))?;
                seq += k as u64;
            }
            Ok(())
        }
    }

    /// The region of the bare `SpscRing` row: the ring at offset 0.
    fn ring_options() -> RegionOptions {
        RegionOptions::new()
            .size(SpscRing::<u64>::bytes_for(U64_CAPACITY).unwrap_or(0))
            .layout(LayoutId::named("shmkit-bench::spsc-ring", 1))
    }

    /// Writes whole batches in place, waiting (spinning) for room for one.
    struct ChunkProducer<'a> {
        tx: spsc::Producer<'a, u64>,
        how: Wait,
    }

    impl Producer for ChunkProducer<'_> {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            if count % BATCH as u64 != 0 {
                return Err(format!("{count} items are not whole batches of {BATCH}"));
            }
            for batch in 0..count / BATCH as u64 {
                let seq = first + batch * BATCH as u64;
                let tx = &mut self.tx;
                support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
                    let mut chunk = match tx.write_chunk(BATCH) {
                        Ok(c) if c.len() == BATCH => c,
                        Ok(_) | Err(RingError::Full) => return None,
                        Err(e) => return Some(Err(format!("write_chunk: {e}"))),
                    };
                    // Two plain loops: a chained iterator does not vectorize.
                    let (a, b) = chunk.as_mut_slices();
                    let split = seq + a.len() as u64;
                    for (i, v) in a.iter_mut().enumerate() {
                        *v = seq + i as u64;
                    }
                    for (i, v) in b.iter_mut().enumerate() {
                        *v = split + i as u64;
                    }
                    chunk.commit_all();
                    Some(Ok(()))
                })
                .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))??;
            }
            Ok(())
        }
    }

    /// Pushes one item at a time, waiting (spinning) for room.
    struct ItemProducer<'a> {
        tx: spsc::Producer<'a, u64>,
        how: Wait,
    }

    impl Producer for ItemProducer<'_> {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                let tx = &mut self.tx;
                support::wait_for(CHILD_IDLE_LIMIT, self.how, || match tx.try_push(seq) {
                    Ok(()) => Some(Ok(())),
                    Err(RingError::Full) => None,
                    Err(e) => Some(Err(format!("try_push: {e}"))),
                })
                .ok_or_else(|| format!("the ring stayed full for {CHILD_IDLE_LIMIT:?}"))??;
            }
            Ok(())
        }
    }

    /// Pops one item at a time, waiting (spinning) for one.
    struct ItemConsumer<'a> {
        rx: spsc::Consumer<'a, u64>,
        how: Wait,
    }

    impl Consumer for ItemConsumer<'_> {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            let mut v = 0;
            for seq in first..first + count {
                let rx = &mut self.rx;
                support::wait_for(PARENT_WAIT_LIMIT, self.how, || match rx.pop_into(&mut v) {
                    Ok(()) => Some(Ok(())),
                    Err(RingError::Empty) => None,
                    Err(e) => Some(Err(format!("pop_into: {e}"))),
                })
                .ok_or_else(|| format!("no item {seq} within {PARENT_WAIT_LIMIT:?}"))??;
                if v != seq {
                    return Err(out_of_sequence(v, seq));
                }
            }
            Ok(())
        }
    }

    /// Reads whole batches in place, waiting (spinning) for one.
    struct ChunkConsumer<'a> {
        rx: spsc::Consumer<'a, u64>,
        how: Wait,
    }

    impl Consumer for ChunkConsumer<'_> {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            if count % BATCH as u64 != 0 {
                return Err(format!("{count} items are not whole batches of {BATCH}"));
            }
            for batch in 0..count / BATCH as u64 {
                let seq = first + batch * BATCH as u64;
                let rx = &mut self.rx;
                support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
                    let chunk = match rx.read_chunk(BATCH) {
                        Ok(c) if c.len() == BATCH => c,
                        Ok(_) | Err(RingError::Empty) => return None,
                        Err(e) => return Some(Err(format!("read_chunk: {e}"))),
                    };
                    let (a, b) = chunk.as_slices();
                    let split = seq + a.len() as u64;
                    let mut wrong = 0;
                    for (i, v) in a.iter().enumerate() {
                        wrong |= v ^ (seq + i as u64);
                    }
                    for (i, v) in b.iter().enumerate() {
                        wrong |= v ^ (split + i as u64);
                    }
                    chunk.release_all();
                    Some(if wrong == 0 {
                        Ok(())
                    } else {
                        Err(format!("a chunk from item {seq} holds wrong values"))
                    })
                })
                .ok_or_else(|| format!("no batch at item {seq} within {PARENT_WAIT_LIMIT:?}"))??;
            }
            Ok(())
        }
    }

    struct U64BatchConsumer {
        rx: Receiver<u64>,
        buf: Vec<u64>,
    }

    impl Consumer for U64BatchConsumer {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            let end = first + count;
            let mut seq = first;
            while seq < end {
                let want = (end - seq).min(self.buf.len() as u64) as usize;
                let n = self
                    .rx
                    .recv_slice(&mut self.buf[..want])
                    .map_err(|e| format!("receiving from {seq}: {e}"))?;
                let got = self.buf.get(..n).ok_or_else(|| {
                    format!("recv_slice reported {n} values into room for {want}")
                })?;
                let mut wrong = 0;
                for (i, v) in got.iter().enumerate() {
                    wrong |= v ^ (seq + i as u64);
                }
                if wrong != 0 {
                    return Err(format!(
                        "a slice received from {seq} holds values out of sequence"
                    ));
                }
                seq += n as u64;
            }
            Ok(())
        }
    }

    struct MsgProducer<S> {
        tx: S,
        msg: Msg,
    }

    impl<S: TypedTx<Msg>> Producer for MsgProducer<S> {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                stamp(&mut self.msg, seq);
                self.tx
                    .send(self.msg)
                    .map_err(|e| format!("sending message {seq}: {e}"))?;
            }
            Ok(())
        }
    }

    struct MsgConsumer<R> {
        rx: R,
    }

    impl<R: TypedRx<Msg>> Consumer for MsgConsumer<R> {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                let msg = self
                    .rx
                    .recv()
                    .map_err(|e| format!("receiving message {seq}: {e}"))?;
                check_msg(&msg, MSG, seq)?;
            }
            Ok(())
        }
    }

    struct BytesProducer {
        tx: ByteSender,
        msg: Vec<u8>,
    }

    impl Producer for BytesProducer {
        fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                stamp(&mut self.msg, seq);
                self.tx
                    .send(&self.msg)
                    .map_err(|e| format!("sending message {seq}: {e}"))?;
            }
            Ok(())
        }
    }

    struct BytesConsumer {
        rx: ByteReceiver,
        msg: Vec<u8>,
        size: usize,
    }

    impl Consumer for BytesConsumer {
        fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
            for seq in first..first + count {
                let n = self
                    .rx
                    .recv(&mut self.msg)
                    .map_err(|e| format!("receiving message {seq}: {e}"))?;
                check_msg(received(&self.msg, n)?, self.size, seq)?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// The run and its report
// ---------------------------------------------------------------------------

/// Per stream: link, size, messages/s or why it failed.
type StreamRow = (Link, usize, Result<Throughput, String>);

struct Results {
    pinning: String,
    /// Cost of one `Instant::now()`, ns (p50 of back-to-back pairs).
    clock_ns: f64,
    latency: Vec<(Link, Result<Stats, String>)>,
    streams: Vec<StreamRow>,
}

fn run(ctx: &Ctx) -> Result<Results, String> {
    let clock_ns = clock_cost();
    let mut pinned = false;
    let links: Vec<Link> = LATENCY_LINKS
        .into_iter()
        .filter(|l| ctx.latency && (*l == Link::Line || ctx.selects(l.latency_label())))
        .collect();
    let mut merged: Vec<Result<Histogram<u64>, String>> = links
        .iter()
        .map(|_| Err("no round ran".to_owned()))
        .collect();
    for round in 1..=ctx.plan.latency_rounds {
        for (link, acc) in links.iter().zip(merged.iter_mut()) {
            if acc.is_err() && round > 1 {
                continue; // a row that failed once stays failed
            }
            support::progress(&format!(
                "one-way latency, round {round}/{}: {}",
                ctx.plan.latency_rounds,
                link.latency_label()
            ));
            let r = latency(*link, ctx);
            if *link == Link::Line {
                // Without the floor, no row means anything.
                r.as_ref().map_err(|e| format!("the floor: {e}"))?;
            }
            *acc = match (r, std::mem::replace(acc, Err(String::new()))) {
                (Ok(l), Ok(mut h)) => {
                    pinned |= l.pinned;
                    h.add(&l.hist)
                        .map_err(|e| format!("merging histograms: {e}"))?;
                    Ok(h)
                }
                (Ok(l), Err(_)) => {
                    pinned |= l.pinned;
                    Ok(l.hist)
                }
                (Err(e), _) => Err(e),
            };
        }
    }
    let lat = links
        .into_iter()
        .zip(merged)
        .map(|(link, h)| (link, h.map(|h| Stats::from_histogram(&h, 0.5))))
        .collect();
    let (streams, streams_pinned) = stream_rounds(ctx);
    pinned |= streams_pinned;
    Ok(Results {
        pinning: ctx.describe_pinning(pinned),
        clock_ns,
        latency: lat,
        streams,
    })
}

/// Section B: every stream row in each of `stream_rounds` rounds, each
/// round a fresh child with its own calibration and repetitions; a row's
/// samples and counts merge over its rounds, so a machine that changes
/// speed during the run moves every row alike. A row that fails once stays
/// failed.
/// Also returns whether the parent ran pinned.
fn stream_rounds(ctx: &Ctx) -> (Vec<StreamRow>, bool) {
    let mut pinned = false;
    let chosen = |(l, size): &(Link, usize)| {
        ctx.selects(&format!("{}: {}", size_label(*size), l.stream_label(*size)))
    };
    // A selected row's size brings its pipe baseline along.
    let sizes: Vec<usize> = STREAMS.iter().filter(|r| chosen(r)).map(|r| r.1).collect();
    let rows: Vec<(Link, usize)> = STREAMS
        .into_iter()
        .filter(|r| ctx.streams && (chosen(r) || (r.0 == Link::Pipe && sizes.contains(&r.1))))
        .collect();
    let mut merged: Vec<Result<(Vec<f64>, u64), String>> =
        rows.iter().map(|_| Ok((Vec::new(), 0))).collect();
    let rounds = ctx.plan.stream_rounds;
    for round in 1..=rounds {
        for (&(link, size), acc) in rows.iter().zip(merged.iter_mut()) {
            let Ok((samples, count)) = acc else {
                continue;
            };
            support::progress(&format!(
                "throughput, round {round}/{rounds}, {}: {}",
                size_label(size),
                link.stream_label(size)
            ));
            match throughput(link, size, ctx) {
                Ok(mut run) => {
                    samples.append(&mut run.samples);
                    *count += run.count;
                    pinned |= run.pinned;
                }
                Err(e) => *acc = Err(e),
            }
        }
    }
    let rows = rows
        .into_iter()
        .zip(merged)
        .map(|((link, size), acc)| {
            let tp = acc.map(|(mut samples, count)| Throughput {
                stats: Stats::from_samples(&mut samples),
                count,
            });
            (link, size, tp)
        })
        .collect();
    (rows, pinned)
}

/// The p50 cost of one `Instant::now()`, ns.
fn clock_cost() -> f64 {
    let mut samples: Vec<f64> = (0..20_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            b.duration_since(a).as_nanos() as f64
        })
        .collect();
    Stats::from_samples(&mut samples).p50
}

/// `v` with three significant digits (`0.00321`, `1.13`, `412`).
fn fmt_significant(v: f64) -> String {
    if !v.is_finite() || v == 0.0 || v.abs() >= 100.0 {
        return support::fmt_value(v);
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// `u64` or `64 B`, `4 KiB`...
fn size_label(size: usize) -> String {
    match size {
        8 => "u64".to_owned(),
        s if s >= 1024 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

impl Results {
    fn latency_p50(&self, link: Link) -> Option<f64> {
        self.latency
            .iter()
            .find(|(l, _)| *l == link)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|s| s.p50)
    }

    /// Median messages/s of `link` at `size`.
    fn rate(&self, link: Link, size: usize) -> Option<f64> {
        self.streams
            .iter()
            .find(|(l, s, _)| *l == link && *s == size)
            .and_then(|(_, _, r)| r.as_ref().ok())
            .map(|t| t.stats.p50)
    }

    fn print(&self, ctx: &Ctx) {
        println!("pinning:  {}", self.pinning);
        println!(
            "clock:    {:.1} ns per Instant::now() (inside every timed round trip: \
             half of it in each one-way figure)",
            self.clock_ns
        );
        let mut failed = Vec::new();

        if !self.latency.is_empty() {
            let mut t = Table::new(format!(
                "\nA. one-way latency, 64-byte messages (ns; round trip / 2, every round trip \
                 timed, HDR histogram; up to {} round trips or {:.1} s per row, in {})",
                ctx.plan.max_round_trips,
                ctx.plan.latency_budget.as_secs_f64(),
                rounds(ctx.plan.latency_rounds)
            ));
            t.show_p999();
            t.add_column("samples");
            for (link, r) in &self.latency {
                match r {
                    Ok(s) if *link == Link::Line => {
                        t.set_floor_ns(s.p50);
                        t.row_with_cells(link.latency_label(), *s, Unit::Ns, vec![s.n.to_string()]);
                    }
                    Ok(s) => {
                        t.row_with_cells(link.latency_label(), *s, Unit::Ns, vec![s.n.to_string()]);
                    }
                    Err(e) => failed.push(format!("{}: {e}", link.latency_label())),
                }
            }
            t.print();
        }

        for size in SIZES {
            if !self.streams.iter().any(|(_, s, _)| *s == size) {
                continue;
            }
            let (unit, per) = if size >= 4096 {
                ("kmsg/s", 1e3)
            } else {
                ("Mmsg/s", 1e6)
            };
            let pipe = self.rate(Link::Pipe, size);
            let unix = self.rate(Link::Unix, size);
            let count = self
                .streams
                .iter()
                .filter(|(_, s, _)| *s == size)
                .filter_map(|(_, _, r)| r.as_ref().ok())
                .map(|t| t.count)
                .max()
                .unwrap_or(0);
            let mut t = Table::new(format!(
                "\nB. throughput, {}{} messages, child -> parent ({unit} per repetition; \
                 {} repetitions of ~{:.0} ms in each of {}; up to {count} messages checked \
                 per row)",
                size_label(size),
                if size == 8 { " (8-byte)" } else { "" },
                ctx.plan.reps,
                ctx.plan.rep_time.as_secs_f64() * 1e3,
                rounds(ctx.plan.stream_rounds),
            ));
            t.set_ratio_label("vs pipe");
            if let Some(p) = pipe {
                t.set_rate_floor(p / per);
            }
            t.add_column("vs socket");
            t.add_column("GB/s p50");
            for (link, s, r) in self.streams.iter().filter(|(_, s, _)| *s == size) {
                match r {
                    Ok(tp) => {
                        let vs_unix =
                            unix.map_or("-".to_owned(), |u| support::fmt_ratio(tp.stats.p50 / u));
                        let gbs = fmt_significant(tp.stats.p50 * *s as f64 / 1e9);
                        t.row_with_cells(
                            link.stream_label(*s),
                            tp.stats.scaled(1.0 / per),
                            Unit::Other(unit),
                            vec![vs_unix, gbs],
                        );
                    }
                    Err(e) => {
                        failed.push(format!("{} {}: {e}", size_label(*s), link.stream_label(*s)))
                    }
                }
            }
            t.print();
        }

        self.print_goals();
        if !failed.is_empty() {
            println!("\nnot measured:");
            for f in failed {
                println!("  {f}");
            }
        }
    }

    fn print_goals(&self) {
        println!("\ngoals (from this run's medians):");
        let floor = self.latency_p50(Link::Line);
        // Half a clock read sits in every one-way figure; taking it out of
        // both sides raises the ratio, so it is shown too.
        let half_clock = self.clock_ns / 2.0;
        for (link, what) in [
            (Link::Typed, "channel<[u8; 64]>"),
            (Link::Bytes, "byte_channel"),
        ] {
            let line = match (self.latency_p50(link), floor) {
                (Some(v), Some(f)) => {
                    let r = v / f;
                    let bare = (v - half_clock) / (f - half_clock);
                    format!(
                        "{v:.0} ns vs floor {f:.0} ns ({r:.2}x; {bare:.2}x without the clock \
                         read) -> {}",
                        verdict(r <= 2.0, || format!(
                            "{:.0}% over the 2x budget",
                            (r / 2.0 - 1.0) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!(
                "  (a) 64 B one-way p50 at most 2x the cache-line floor, shmkit {what}: {line}"
            );
        }
        let pipe = self.rate(Link::Pipe, 8);
        // Each shmkit row against the ideal ring publishing as often.
        for (link, what, ideal) in [
            (
                Link::RingChunks,
                "SpscRing chunks vs ideal per batch",
                Link::Ideal,
            ),
            (Link::Typed, "send/recv vs ideal per item", Link::IdealEach),
            (
                Link::TypedBatch,
                "send_all/recv_slice vs ideal per batch",
                Link::Ideal,
            ),
        ] {
            let mine = self.rate(link, 8);
            let line = match (mine, self.rate(ideal, 8)) {
                (Some(v), Some(i)) => {
                    let r = v / i;
                    format!(
                        "{:.1} vs {:.1} Mmsg/s ({r:.2}x) -> {}",
                        v / 1e6,
                        i / 1e6,
                        verdict(r >= 0.5, || format!(
                            "{:.0}% short of half",
                            (1.0 - r / 0.5) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!("  (b) SPSC u64 throughput at least half the ideal stream, {what}: {line}");
        }
        for (link, what) in [
            (Link::Typed, "send/recv"),
            (Link::TypedBatch, "send_all/recv_slice"),
        ] {
            let line = match (self.rate(link, 8), pipe) {
                (Some(v), Some(p)) => {
                    let r = v / p;
                    format!(
                        "{:.1} vs {:.2} Mmsg/s ({r:.0}x) -> {}",
                        v / 1e6,
                        p / 1e6,
                        verdict(r >= 100.0, || format!(
                            "{:.0}% short of 100x",
                            (1.0 - r / 100.0) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!("  (c) u64 msg/s at least 100x a pipe's, {what}: {line}");
        }
    }
}

/// "1 round", "5 rounds".
fn rounds(n: u32) -> String {
    if n == 1 {
        "1 round".to_owned()
    } else {
        format!("{n} rounds")
    }
}

fn verdict(pass: bool, by: impl FnOnce() -> String) -> String {
    if pass {
        "PASS".to_owned()
    } else {
        format!("MISS ({})", by())
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

fn run_child(role: &str) -> i32 {
    support::die_with_parent();
    support::watchdog(RUN_LIMIT, &format!("bench child ({role})"), 4);
    let mut parts = role.split(':');
    let result = match (
        parts.next(),
        parts.next().and_then(Link::from_tag),
        parts.next().map(str::parse::<usize>),
    ) {
        (Some(ROLE_ECHO), Some(link), None) => echo_child(link),
        (Some(ROLE_PRODUCE), Some(link), Some(Ok(size))) if size >= 8 => produce_child(link, size),
        _ => {
            eprintln!("bench child: unknown role {role:?}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench child ({role}): {e}");
            3
        }
    }
}

/// The inherited control region, this process pinned, and how to wait.
fn child_setup() -> Result<(Shm<Control>, Wait), String> {
    // SAFETY: the parent passed this descriptor with `pass_to_child` under
    // CONTROL_VAR for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    let region = unsafe { RegionOptions::for_type::<Control>().from_env(CONTROL_VAR) }
        .map_err(|e| format!("opening the inherited control region: {e}"))?;
    let control =
        Shm::<Control>::from_region(region).map_err(|e| format!("control region type: {e}"))?;
    let deadline = Instant::now() + CHILD_IDLE_LIMIT;
    while control.handed_over.load(Ordering::Acquire) != 1 {
        if Instant::now() >= deadline {
            return Err(format!(
                "the parent did not hand the link over within {CHILD_IDLE_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    if let Some(cpu) = std::env::var(CPU_VAR).ok().and_then(|v| v.parse().ok()) {
        support::pin_current(cpu).keep();
    }
    let how = if std::env::var(YIELD_VAR).is_ok_and(|v| v == "1") {
        Wait::Yield
    } else {
        Wait::Spin
    };
    Ok((control, how))
}

/// The descriptor the parent passed under `var`, as a `T`.
fn inherited_fd<T: From<std::os::fd::OwnedFd>>(var: &str) -> Result<T, String> {
    // SAFETY: the parent passed this descriptor with `pass_fd_to_child`
    // under `var` for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    unsafe { support::fd_from_env(var) }.map(T::from)
}

fn echo_child(link: Link) -> Result<(), String> {
    let (control, how) = child_setup()?;
    match link {
        Link::Line => {
            // SAFETY: the parent passed this descriptor with
            // `pass_to_child` under LINK_A_VAR for exactly this purpose;
            // nothing else in this process owns it, and this is the only
            // call for the variable.
            let region = unsafe { RegionOptions::for_type::<Line>().from_env(LINK_A_VAR) }
                .map_err(|e| format!("opening the inherited cache line: {e}"))?;
            let line =
                Shm::<Line>::from_region(region).map_err(|e| format!("cache line type: {e}"))?;
            serve_echo(
                &control,
                LineEchoer {
                    line,
                    how,
                    expect: 1,
                },
            )
        }
        Link::Pipe => {
            let rx: File = inherited_fd(LINK_A_VAR)?;
            let tx: File = inherited_fd(LINK_B_VAR)?;
            serve_echo(
                &control,
                StreamEchoer {
                    tx,
                    rx,
                    msg: [0; MSG],
                },
            )
        }
        Link::Unix => {
            let tx: UnixStream = inherited_fd(LINK_A_VAR)?;
            let rx = tx
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            serve_echo(
                &control,
                StreamEchoer {
                    tx,
                    rx,
                    msg: [0; MSG],
                },
            )
        }
        Link::Typed | Link::Bytes | Link::Mpmc => shmkit_links::echo(link, &control),
        Link::Ideal | Link::IdealEach | Link::TypedBatch | Link::RingChunks | Link::RingEach => {
            Err(format!("no echo over {link:?}"))
        }
    }
}

fn produce_child(link: Link, size: usize) -> Result<(), String> {
    let (control, how) = child_setup()?;
    match link {
        Link::Ideal | Link::IdealEach => {
            let ring = Ideal::inherited()?;
            serve_stream(
                &control,
                IdealProducer::new(&ring, link.ideal_batch(), how)?,
                how,
            )
        }
        Link::Pipe => {
            let tx: File = inherited_fd(LINK_A_VAR)?;
            let msg = patterned(size);
            serve_stream(&control, StreamProducer { tx, msg }, how)
        }
        Link::Unix => {
            let tx: UnixStream = inherited_fd(LINK_A_VAR)?;
            let msg = patterned(size);
            serve_stream(&control, StreamProducer { tx, msg }, how)
        }
        Link::Typed
        | Link::TypedBatch
        | Link::Bytes
        | Link::Mpmc
        | Link::RingChunks
        | Link::RingEach => shmkit_links::produce(link, size, &control, how),
        Link::Line => Err("no stream over a single cache line".to_owned()),
    }
}
