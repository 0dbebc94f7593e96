//! Region benchmark: the machine's floor for cross-process communication
//! and what shmkit's regions cost to create and open.
//!
//! Measured, in one run:
//! 1. **Floor**: one cache line bounced between two *processes*. The parent
//!    creates an anonymous region holding a 128-byte-aligned `AtomicU64`,
//!    re-executes this binary as a child that inherits the region, and the
//!    two play ping-pong on it (parent writes odd values, child answers
//!    value + 1), each spinning, pinned to different CPUs when there are
//!    two. Reported: one-way latency (round trip / 2) in ns, one sample per
//!    batch of 10 000 round trips, 200 batches after warm-up.
//! 2. **Region costs**, in µs per operation over 2000 iterations each:
//!    named create + drop (which unlinks), named open + drop of an existing
//!    region, anonymous (memfd) create + drop, and `open_or_create` of an
//!    existing name + drop.
//!
//! The ratio column is each row's p50 over the floor's p50: how many
//! one-way cache-line transfers an operation costs.
//!
//! Run: `cargo bench --bench region` (about 1 s once built; well under a
//! minute on a noisy 2-core machine). A smoke run with 10× fewer
//! iterations: `SHMKIT_BENCH_QUICK=1 cargo bench --bench region`. Run
//! without `--bench` (as `cargo test --benches` does), it is quick too.
//! Other arguments are ignored.
#![allow(clippy::disallowed_types)] // std's atomics, as users place them

mod support;

use shmkit::{Region, RegionOptions, Shm, ShmSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use support::{
    Mode, Placement, Stats, Table, Unit, CHILD_EXIT_LIMIT, CHILD_IDLE_LIMIT, PARENT_WAIT_LIMIT,
};

/// Child role: the ping-pong partner.
const ROLE_PINGPONG: &str = "pingpong";
/// Carries the region's descriptor to the child.
const REGION_VAR: &str = "SHMKIT_BENCH_REGION";

/// Written by the parent to stop the child. Odd, like every ping, and
/// never reached by counting.
const STOP: u64 = u64::MAX;

/// One cache line (two, against adjacent-line prefetch) holding the ball.
#[repr(C, align(128))]
struct Line {
    value: AtomicU64,
}
// SAFETY: repr(C); its only field is an AtomicU64, which is
// ShmSafe; the rest is padding, for which any bytes do.
unsafe impl ShmSafe for Line {}

fn main() {
    if let Some(role) = support::child_role() {
        std::process::exit(run_child(&role));
    }
    let clock = support::RunClock::start();
    let mode = Mode::detect();
    let machine = support::Machine::probe();

    println!("shmkit region benchmark");
    println!("mode:     {mode}");
    println!("{machine}");

    let plan = PingPongPlan {
        rounds_per_batch: if machine.allowed.len() >= 2 {
            10_000
        } else {
            100
        },
        batches: mode.scale(200),
        warmup_batches: mode.scale(20),
    };
    let iters = mode.scale(2000);
    let warmup = mode.scale(100);

    let mut table = Table::new(format!(
        "\nfigures (floor: one-way latency, {} batches of {} round trips; \
         region costs: {iters} operations each)",
        plan.batches, plan.rounds_per_batch
    ));

    support::progress("cache-line ping-pong between two processes");
    let floor = match floor(&plan) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: floor measurement failed: {e}");
            std::process::exit(1);
        }
    };
    println!("pinning:  {}", floor.pinning);
    table.floor("floor: cache line one-way, 2 procs", floor.stats, Unit::Ns);

    match region_costs(warmup, iters, &mut table) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: region cost measurement failed: {e}");
            std::process::exit(1);
        }
    }

    table.print();
    clock.print_summary();
}

// ---------------------------------------------------------------------------
// The floor: cache-line ping-pong between two processes
// ---------------------------------------------------------------------------

struct PingPongPlan {
    rounds_per_batch: usize,
    batches: usize,
    warmup_batches: usize,
}

struct Floor {
    /// One-way latency per batch, ns.
    stats: Stats,
    /// How the two processes were placed.
    pinning: String,
}

fn floor(plan: &PingPongPlan) -> Result<Floor, String> {
    let line = Shm::<Line>::anonymous(|_| {})
        .map_err(|e| format!("creating the anonymous region: {e}"))?;
    let placement = Placement::for_machine();
    let (pair, how) = (placement.pair, placement.how);

    let mut child = support::spawn_child(ROLE_PINGPONG, |cmd| {
        line.region().pass_to_child(cmd, REGION_VAR);
        placement.pass_to_child(cmd);
    })
    .map_err(|e| format!("spawning the ping-pong child: {e}"))?;

    let pinned = placement.pin_parent();
    let pinning = match (pair, &pinned) {
        (Some(p), Some(g)) if g.pinned => p.to_string(),
        (Some(_), _) => "not pinned (sched_setaffinity failed)".to_owned(),
        (None, _) => "not pinned (one CPU: processes take turns, yielding)".to_owned(),
    };

    // Handshake: the first ping waits out the child's start-up, watching
    // for it to die early (a bad region, say) rather than spinning blind.
    line.value.store(1, Ordering::Release);
    support::wait_ready(&mut child, || line.value.load(Ordering::Acquire) == 2)?;

    let mut next: u64 = 3;
    let mut batch = |rounds: usize| -> Result<f64, String> {
        let t = Instant::now();
        for _ in 0..rounds {
            line.value.store(next, Ordering::Release);
            let answer = next + 1;
            support::wait_for(PARENT_WAIT_LIMIT, how, || {
                (line.value.load(Ordering::Acquire) == answer).then_some(())
            })
            .ok_or_else(|| format!("no answer to ping {next} within {PARENT_WAIT_LIMIT:?}"))?;
            next += 2;
        }
        Ok(t.elapsed().as_nanos() as f64 / (2.0 * rounds as f64))
    };

    let result = (|| {
        for _ in 0..plan.warmup_batches {
            batch(plan.rounds_per_batch)?;
        }
        let mut samples = Vec::with_capacity(plan.batches);
        for _ in 0..plan.batches {
            samples.push(batch(plan.rounds_per_batch)?);
        }
        Ok::<_, String>(samples)
    })();
    line.value.store(STOP, Ordering::Release);
    drop(pinned);

    let mut samples = child.settle(result, CHILD_EXIT_LIMIT)?;
    Ok(Floor {
        stats: Stats::from_samples(&mut samples),
        pinning,
    })
}

/// Child side: answer every ping with ping + 1 until told to stop.
fn pingpong_child() -> Result<(), String> {
    // SAFETY: the parent passed this descriptor with `pass_to_child` under
    // REGION_VAR for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    let region = unsafe { RegionOptions::for_type::<Line>().from_env(REGION_VAR) }
        .map_err(|e| format!("opening the inherited region: {e}"))?;
    let line = Shm::<Line>::from_region(region).map_err(|e| format!("region type: {e}"))?;
    let how = support::child_placement();

    let mut expect: u64 = 1;
    loop {
        let v = support::wait_for(CHILD_IDLE_LIMIT, how, || {
            let v = line.value.load(Ordering::Acquire);
            (v == expect || v == STOP).then_some(v)
        })
        .ok_or_else(|| format!("parent silent for {CHILD_IDLE_LIMIT:?} (expected {expect})"))?;
        if v == STOP {
            return Ok(());
        }
        line.value.store(v + 1, Ordering::Release);
        expect = v + 2;
    }
}

fn run_child(role: &str) -> i32 {
    support::die_with_parent();
    let result = match role {
        ROLE_PINGPONG => pingpong_child(),
        other => {
            eprintln!("bench child: unknown role {other:?}");
            return 2;
        }
    };
    support::exit_code(role, result)
}

// ---------------------------------------------------------------------------
// Region costs
// ---------------------------------------------------------------------------

/// Data bytes of every region measured here.
const DATA: usize = 4096;

fn region_costs(warmup: usize, iters: usize, table: &mut Table) -> Result<(), String> {
    let n = warmup + iters;

    support::progress("named create + drop");
    let names = support::unique_names(n);
    let mut samples = support::time_each(warmup, iters, |i| {
        let r = Region::create(&names[i], DATA).map_err(|e| format!("create {}: {e}", names[i]))?;
        drop(r);
        Ok::<_, String>(())
    })?;
    table.row(
        "named create + drop (unlink)",
        Stats::from_samples(&mut samples),
        Unit::Us,
    );

    support::progress("named open + drop");
    let name = support::unique_names(1).remove(0);
    let owner = Region::create(&name, DATA).map_err(|e| format!("create {name}: {e}"))?;
    let mut samples = support::time_each(warmup, iters, |_| {
        let r = Region::open(&name).map_err(|e| format!("open {name}: {e}"))?;
        drop(r);
        Ok::<_, String>(())
    })?;
    table.row(
        "named open existing + drop",
        Stats::from_samples(&mut samples),
        Unit::Us,
    );

    support::progress("anonymous create + drop");
    let mut samples = support::time_each(warmup, iters, |_| {
        let r = Region::anonymous(DATA).map_err(|e| format!("anonymous: {e}"))?;
        drop(r);
        Ok::<_, String>(())
    })?;
    table.row(
        "anonymous create + drop",
        Stats::from_samples(&mut samples),
        Unit::Us,
    );

    support::progress("open_or_create on an existing name");
    let mut samples = support::time_each(warmup, iters, |_| {
        let r = Region::open_or_create(&name, DATA)
            .map_err(|e| format!("open_or_create {name}: {e}"))?;
        if r.created() {
            return Err(format!(
                "open_or_create {name} created a region that existed"
            ));
        }
        drop(r);
        Ok(())
    })?;
    table.row(
        "open_or_create existing + drop",
        Stats::from_samples(&mut samples),
        Unit::Us,
    );
    drop(owner);
    Ok(())
}
