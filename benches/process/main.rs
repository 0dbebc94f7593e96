//! Process pool benchmark, beside Python's `multiprocessing` in the same
//! run (when `python3` is on the PATH):
//!
//! 1. **map throughput**: `map` of 1,000,000 tiny tasks (`(x * 3) ^ 0x5a`
//!    on a u64) in chunks of 1000 over 2 workers; tasks per second, one
//!    sample per `map` (Python: `Pool(2).map(f, range(n), chunksize=1000)`).
//! 2. **apply round trip**: one tiny task submitted and its result waited
//!    for, back to back, each timed (Python: `pool.apply`).
//! 3. **spawn to first result**: a new 2-worker pool and its first `apply`,
//!    then the pool torn down (Python: `Pool(2)` then `apply`, default
//!    start method); and one `process::spawn(f).join()` (a child for one
//!    call).
//!
//! 4. **a large argument**: one task given 16 MiB and returning its
//!    checksum, as a `Vec<u8>` (copied into the worker's ring in pieces)
//!    and as `SharedBytes` (a block of the pool's shared memory, written
//!    once and read in place), beside one `memcpy` of 16 MiB.
//!
//! The ratio column is each row's p50 over Python's: `× Python` for
//! throughput (higher is better), the fraction of Python's time for round
//! trips (lower is better). Goals (issue 13): throughput at least 10×
//! Python's, round trip at least 20× faster.
//!
//! Run: `cargo bench --bench process` (about 30 s). Quick:
//! `SHMKIT_BENCH_QUICK=1 cargo bench --bench process`; sections:
//! `-- map`, `-- apply`, `-- spawn`, `-- large`.

#![allow(clippy::disallowed_types)] // std's atomics in the shared harness

#[path = "../support/mod.rs"]
mod support;

use shmkit::pool::PoolConfig;
use shmkit::process::{self, ProcessPool, SharedBytes, Shutdown};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;
use support::{Mode, Selection, Stats, Table, Unit};

fn tiny(x: u64) -> u64 {
    x.wrapping_mul(3) ^ 0x5a
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/process/python_pool.py"
);

struct Plan {
    tasks: u64,
    rounds: usize,
    applies: usize,
    spawns: usize,
}

fn main() {
    process::init();
    let clock = support::RunClock::start();
    let mode = Mode::detect();
    let machine = support::Machine::probe();
    let sections = Selection::from_args(&["map", "apply", "spawn", "large"]);
    support::print_banner("shmkit process pool benchmark", mode, &machine);
    let plan = Plan {
        tasks: if mode.is_quick() { 100_000 } else { 1_000_000 },
        rounds: mode.scale(20).max(3),
        applies: mode.scale(20_000).max(200),
        spawns: mode.scale(20).max(3),
    };

    support::progress("python3 multiprocessing (same figures)");
    let python = python(&plan);
    if python.is_none() {
        println!("python3: not found or failed; shmkit's figures only");
    }
    let py = |k: &str| python.as_ref().and_then(|p| p.get(k)).map(|s| s.p50);

    let mut goals = Vec::new();
    if sections.runs("map") {
        support::progress("map of tiny tasks");
        let ours = map_rate(&plan);
        let mut table = Table::new(format!(
            "\nmap throughput: {} tiny tasks, chunks of 1000, 2 workers (tasks/s; ratio: × Python)",
            plan.tasks
        ));
        table.set_ratio_label("× Python");
        if let Some(p) = py("map_per_s") {
            table.set_rate_floor(p);
            table.row(
                "python multiprocessing Pool.map",
                python.as_ref().unwrap()["map_per_s"],
                Unit::Other("tasks/s"),
            );
            let ratio = ours.p50 / p;
            goals.push(goal("map throughput ≥ 10× Python's", ratio, 10.0));
        }
        table.row(
            "shmkit ProcessPool::map_chunked",
            ours,
            Unit::Other("tasks/s"),
        );
        table.print();
    }
    if sections.runs("apply") {
        support::progress("apply round trips");
        let ours = apply_round_trip(&plan);
        let mut table = Table::new(format!(
            "\napply round trip: {} tiny tasks one at a time (ratio: fraction of Python's time)",
            plan.applies
        ));
        table.set_ratio_label("vs Python");
        table.show_p999();
        if let Some(p) = py("apply_ns") {
            table.floor(
                "python multiprocessing Pool.apply",
                python.as_ref().unwrap()["apply_ns"],
                Unit::Us,
            );
            let faster = p / ours.p50;
            goals.push(goal(
                "apply round trip ≥ 20× faster than Python's",
                faster,
                20.0,
            ));
        }
        table.row("shmkit ProcessPool::apply", ours, Unit::Us);
        table.print();
    }
    if sections.runs("spawn") {
        support::progress("spawn to first result");
        let (pool, one) = spawn_to_first(&plan);
        let mut table = Table::new(format!(
            "\nspawn to first result, {} times each (ratio: fraction of Python's time)",
            plan.spawns
        ));
        table.set_ratio_label("vs Python");
        if let Some(p) = python.as_ref().and_then(|p| p.get("spawn_ns")) {
            table.floor("python Pool(2) + first apply", *p, Unit::Ms);
        }
        table.row("shmkit 2-worker pool + first apply", pool, Unit::Ms);
        table.row("shmkit process::spawn(f).join()", one, Unit::Ms);
        table.print();
    }
    if sections.runs("large") {
        support::progress("a 16 MiB argument, copied and shared");
        let (copy, vec, shared) = large_argument(&plan);
        let mut table = Table::new(
            "\na 16 MiB argument to one task, round trip (ratio: × one memcpy of 16 MiB)"
                .to_string(),
        );
        table.set_ratio_label("× memcpy");
        table.floor("memcpy of 16 MiB in this process", copy, Unit::Us);
        table.row(
            "shmkit apply(f, Vec<u8>): copied through the ring",
            vec,
            Unit::Us,
        );
        table.row(
            "shmkit apply(f, SharedBytes): read in place",
            shared,
            Unit::Us,
        );
        table.print();
    }
    for g in goals {
        println!("{g}");
    }
    clock.print_summary();
}

/// A goal's line: the figure, and whether it meets `min`.
fn goal(what: &str, figure: f64, min: f64) -> String {
    let verdict = if figure >= min { "PASS" } else { "MISS" };
    format!("goal: {what}: {figure:.1}× ({verdict})")
}

fn pool() -> ProcessPool {
    ProcessPool::builder()
        .workers(2)
        .build()
        .expect("start a 2-worker pool")
}

fn map_rate(plan: &Plan) -> Stats {
    let pool = pool();
    pool.map_chunked(tiny, 0..10_000, 1000)
        .expect("warm-up map");
    let mut samples = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let t = Instant::now();
        let out = pool.map_chunked(tiny, 0..plan.tasks, 1000).expect("map");
        let rate = plan.tasks as f64 / t.elapsed().as_secs_f64();
        assert_eq!(out.last().copied(), Some(tiny(plan.tasks - 1)));
        samples.push(rate);
    }
    pool.shutdown(Shutdown::Wait);
    Stats::from_samples(&mut samples)
}

fn apply_round_trip(plan: &Plan) -> Stats {
    let pool = pool();
    for i in 0..100 {
        pool.apply(tiny, i).expect("warm-up apply");
    }
    let mut samples = Vec::with_capacity(plan.applies);
    for i in 0..plan.applies as u64 {
        let t = Instant::now();
        let r = pool.apply(tiny, i).expect("apply");
        samples.push(t.elapsed().as_nanos() as f64);
        assert_eq!(r, tiny(i));
    }
    pool.shutdown(Shutdown::Wait);
    Stats::from_samples(&mut samples)
}

fn spawn_to_first(plan: &Plan) -> (Stats, Stats) {
    let mut pools = Vec::new();
    let mut ones = Vec::new();
    for i in 0..plan.spawns as u64 {
        let t = Instant::now();
        let pool = pool();
        assert_eq!(pool.apply(tiny, i).expect("first apply"), tiny(i));
        pools.push(t.elapsed().as_nanos() as f64);
        pool.shutdown(Shutdown::Kill);
        let t = Instant::now();
        let r = process::spawn(tiny, i)
            .expect("spawn")
            .join()
            .expect("join");
        ones.push(t.elapsed().as_nanos() as f64);
        assert_eq!(r, tiny(i));
    }
    (
        Stats::from_samples(&mut pools),
        Stats::from_samples(&mut ones),
    )
}

fn byte_sum(v: Vec<u8>) -> u64 {
    v.iter().step_by(4096).map(|b| u64::from(*b)).sum()
}

fn shared_sum(v: SharedBytes) -> u64 {
    v.iter().step_by(4096).map(|b| u64::from(*b)).sum()
}

fn large_argument(plan: &Plan) -> (Stats, Stats, Stats) {
    const LEN: usize = 16 << 20;
    let rounds = plan.spawns.max(10);
    let pool = ProcessPool::builder()
        .workers(2)
        .shared_blocks(PoolConfig::new().class(LEN, 4))
        .build()
        .expect("a pool with shared blocks");
    let data = vec![1u8; LEN];
    let expected = byte_sum(data.clone());
    let mut sink = vec![0u8; LEN];
    let (mut copies, mut vecs, mut shareds) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        sink.copy_from_slice(&data);
        std::hint::black_box(&sink);
        copies.push(t.elapsed().as_nanos() as f64);

        let t = Instant::now();
        assert_eq!(pool.apply(byte_sum, data.clone()).expect("apply"), expected);
        vecs.push(t.elapsed().as_nanos() as f64);

        let t = Instant::now();
        let mut loan = pool.loan_bytes(LEN).expect("a block");
        loan.fill(1);
        assert_eq!(
            pool.apply(shared_sum, loan.share()).expect("apply"),
            expected
        );
        shareds.push(t.elapsed().as_nanos() as f64);
    }
    pool.shutdown(Shutdown::Wait);
    (
        Stats::from_samples(&mut copies),
        Stats::from_samples(&mut vecs),
        Stats::from_samples(&mut shareds),
    )
}

/// Runs the Python twin; its figures by name (`None` without python3).
fn python(plan: &Plan) -> Option<HashMap<String, Stats>> {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args([
            plan.tasks.to_string(),
            plan.rounds.min(5).to_string(),
            plan.applies.to_string(),
            plan.spawns.min(10).to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let mut samples: HashMap<String, Vec<f64>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<f64>().ok())) {
            samples.entry(k.to_owned()).or_default().push(v);
        }
    }
    Some(
        samples
            .into_iter()
            .map(|(k, mut v)| (k, Stats::from_samples(&mut v)))
            .collect(),
    )
}
