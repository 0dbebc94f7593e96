//! Shared pieces of shmkit's benchmark harnesses (`harness = false`
//! benches): run modes, percentile statistics, the result table, machine
//! facts, CPU pinning, bounded spin-waiting and child processes made by
//! re-executing the bench binary.
//!
//! Not a benchmark itself: each bench includes it with `mod support;` and
//! is run with `cargo bench --bench <name>`. See `benches/region.rs` for
//! the pattern a bench follows:
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

use std::fmt::{self, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Names the role a re-executed bench binary should play.
pub const CHILD_VAR: &str = "SHMKIT_BENCH_CHILD";
/// `1` asks for a smoke run with 10× fewer iterations.
pub const QUICK_VAR: &str = "SHMKIT_BENCH_QUICK";

// ---------------------------------------------------------------------------
// Run mode
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Percentiles of a set of samples (nearest-rank), in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// How many samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Stats {
    /// Statistics over `samples`, which are sorted in place; samples that
    /// are not finite are dropped first.
    ///
    /// # Panics
    ///
    /// If no finite sample is left (a harness bug, not a measurement).
    pub fn from_samples(samples: &mut Vec<f64>) -> Stats {
        samples.retain(|s| s.is_finite());
        assert!(
            !samples.is_empty(),
            "Stats::from_samples: no finite samples to summarize"
        );
        samples.sort_unstable_by(f64::total_cmp);
        Stats {
            n: samples.len(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    /// Every figure multiplied by `factor` (to change units).
    pub fn scaled(self, factor: f64) -> Stats {
        Stats {
            n: self.n,
            p50: self.p50 * factor,
            p90: self.p90 * factor,
            p99: self.p99 * factor,
            min: self.min * factor,
            max: self.max * factor,
        }
    }
}

/// The nearest-rank `pct`th percentile of non-empty, ascending `sorted`.
pub fn percentile(sorted: &[f64], pct: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Times `op(i)` for `i` in `0..warmup + iters`, discarding the first
/// `warmup` timings; returns nanoseconds per call. Stops at the first
/// error.
pub fn time_each<E>(
    warmup: usize,
    iters: usize,
    mut op: impl FnMut(usize) -> Result<(), E>,
) -> Result<Vec<f64>, E> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        op(i)?;
        let ns = t.elapsed().as_nanos() as f64;
        if i >= warmup {
            samples.push(ns);
        }
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------
// Result table
// ---------------------------------------------------------------------------

/// The unit a table row is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (row statistics are given in ns).
    Ns,
    /// Microseconds (row statistics are given in ns).
    Us,
    /// Milliseconds (row statistics are given in ns).
    Ms,
    /// Something other than time (messages/s, bytes...): shown as given,
    /// with no ratio to the floor.
    Other(&'static str),
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::Other(s) => s,
        }
    }

    /// Nanoseconds per unit, `None` if not a time.
    fn ns(self) -> Option<f64> {
        match self {
            Unit::Ns => Some(1.0),
            Unit::Us => Some(1e3),
            Unit::Ms => Some(1e6),
            Unit::Other(_) => None,
        }
    }
}

struct Row {
    name: String,
    stats: Stats,
    unit: Unit,
    ratio: bool,
}

/// A table of figures: name, p50, p90, p99, min, max, unit and the ratio
/// of the row's p50 to the floor's p50 (a time row only, once a floor is
/// set).
pub struct Table {
    title: String,
    floor_ns: Option<f64>,
    ratio_label: String,
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            floor_ns: None,
            ratio_label: "vs floor".to_owned(),
            rows: Vec::new(),
        }
    }

    /// Sets the reference for the ratio column, in nanoseconds.
    pub fn set_floor_ns(&mut self, ns: f64) {
        self.floor_ns = Some(ns);
    }

    /// Names the ratio column (`vs floor` unless set), for tables whose
    /// reference is a baseline rather than a floor.
    pub fn set_ratio_label(&mut self, label: impl Into<String>) {
        self.ratio_label = label.into();
    }

    /// Adds a row and makes its p50 the floor. `stats_ns` in nanoseconds.
    pub fn floor(&mut self, name: impl Into<String>, stats_ns: Stats, unit: Unit) {
        self.set_floor_ns(stats_ns.p50);
        self.row(name, stats_ns, unit);
    }

    /// Adds a row with a ratio to the floor. For time units `stats` are in
    /// nanoseconds and shown in `unit`.
    pub fn row(&mut self, name: impl Into<String>, stats: Stats, unit: Unit) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: true,
        });
    }

    /// Adds a row without a ratio.
    pub fn row_without_ratio(&mut self, name: impl Into<String>, stats: Stats, unit: Unit) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: false,
        });
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        let unit_w = self
            .rows
            .iter()
            .map(|r| r.unit.label().chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let ratio_w = self.ratio_label.chars().count().max(9);
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let header = format!(
            "{:<name_w$}  {:>9} {:>9} {:>9} {:>9} {:>9}  {:<unit_w$} {:>ratio_w$}",
            "figure", "p50", "p90", "p99", "min", "max", "unit", self.ratio_label
        );
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
        for r in &self.rows {
            let s = match r.unit.ns() {
                Some(per) => r.stats.scaled(1.0 / per),
                None => r.stats,
            };
            let ratio = match (r.ratio, r.unit.ns(), self.floor_ns) {
                (true, Some(_), Some(floor)) if floor > 0.0 => fmt_ratio(r.stats.p50 / floor),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<name_w$}  {:>9} {:>9} {:>9} {:>9} {:>9}  {:<unit_w$} {:>ratio_w$}",
                r.name,
                fmt_value(s.p50),
                fmt_value(s.p90),
                fmt_value(s.p99),
                fmt_value(s.min),
                fmt_value(s.max),
                r.unit.label(),
                ratio
            );
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A figure with about three significant digits.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    }
}

// ---------------------------------------------------------------------------
// Machine facts
// ---------------------------------------------------------------------------

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs this process may use (`std::thread::available_parallelism`,
    /// which honours affinity and cgroup quotas, like `nproc`).
    pub nproc: usize,
    /// The CPUs in this process's affinity mask.
    pub allowed: Vec<usize>,
    /// `/proc/sys/kernel/osrelease` (`uname -r`).
    pub kernel: String,
    /// The first "model name" of `/proc/cpuinfo`, if any.
    pub cpu_model: Option<String>,
    /// The 1, 5 and 15 minute load averages of `/proc/loadavg` when
    /// probed: other work competing for the CPUs.
    pub load: Option<String>,
}

impl Machine {
    /// Reads the facts; missing ones read as `?`.
    pub fn probe() -> Machine {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        Machine {
            nproc,
            allowed: allowed_cpus(),
            kernel,
            cpu_model,
            load: load_average(),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nproc:    {}", self.nproc)?;
        writeln!(f, "cpus:     {}", fmt_cpu_list(&self.allowed))?;
        writeln!(f, "kernel:   {}", self.kernel)?;
        writeln!(f, "cpu:      {}", self.cpu_model.as_deref().unwrap_or("?"))?;
        write!(f, "load:     {}", self.load.as_deref().unwrap_or("?"))
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// System-wide CPU time counters from `/proc/stat`, to tell how much of a
/// run a hypervisor stole.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    /// All ticks (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Ticks stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTimes {
    /// The current counters, `None` if unreadable.
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        Some(CpuTimes {
            total: ticks.iter().sum(),
            steal: *ticks.get(7)?,
        })
    }

    /// Percent of CPU time stolen between `self` and `later`.
    pub fn steal_percent(self, later: CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let steal = later.steal.checked_sub(self.steal)?;
        (total > 0).then(|| 100.0 * steal as f64 / total as f64)
    }
}

// ---------------------------------------------------------------------------
// CPU pinning
// ---------------------------------------------------------------------------

/// The CPUs in the calling thread's affinity mask (empty if unreadable).
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Restores the thread's previous affinity when dropped.
#[must_use = "the pinning is undone when this guard is dropped"]
pub struct Pinned {
    previous: Option<rustix::thread::CpuSet>,
    /// Whether the pinning took effect.
    pub pinned: bool,
}

impl Pinned {
    /// Keeps the pinning for the rest of the thread's life.
    pub fn keep(mut self) {
        self.previous = None;
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(set) = self.previous.take() {
            let _ = rustix::thread::sched_setaffinity(None, &set);
        }
    }
}

/// Pins the calling thread to `cpu`; errors are ignored (the guard says
/// whether it worked). Dropping the guard restores the previous mask.
pub fn pin_current(cpu: usize) -> Pinned {
    let previous = rustix::thread::sched_getaffinity(None).ok();
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Pinned {
            previous: None,
            pinned: false,
        };
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let pinned = rustix::thread::sched_setaffinity(None, &set).is_ok();
    Pinned {
        previous: if pinned { previous } else { None },
        pinned,
    }
}

/// Two CPUs to run two communicating processes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuPair {
    /// For the parent.
    pub parent: usize,
    /// For the child.
    pub child: usize,
    /// Whether they are SMT siblings (same core), which is only chosen
    /// when no CPU of another core is allowed.
    pub siblings: bool,
}

impl fmt::Display for CpuPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parent on cpu {}, child on cpu {} ({})",
            self.parent,
            self.child,
            if self.siblings {
                "SMT siblings, same core"
            } else {
                "different cores"
            }
        )
    }
}

/// Two allowed CPUs on different cores if possible; `None` with fewer than
/// two allowed CPUs.
pub fn pick_cpu_pair() -> Option<CpuPair> {
    let allowed = allowed_cpus();
    let first = *allowed.first()?;
    let siblings = smt_siblings(first);
    let other_core = allowed
        .iter()
        .copied()
        .find(|&c| c != first && !siblings.contains(&c));
    match other_core {
        Some(child) => Some(CpuPair {
            parent: first,
            child,
            siblings: false,
        }),
        None => allowed.get(1).map(|&child| CpuPair {
            parent: first,
            child,
            siblings: true,
        }),
    }
}

/// The CPUs sharing `cpu`'s core (including itself), from sysfs; just
/// `cpu` if unknown.
pub fn smt_siblings(cpu: usize) -> Vec<usize> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| parse_cpu_list(&s))
        .unwrap_or_else(|| vec![cpu])
}

/// Parses the kernel's CPU list format (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Formats CPU numbers compactly (`0-3,8`).
pub fn fmt_cpu_list(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "?".to_owned();
    }
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// How a waiter passes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Busy-spin with `std::hint::spin_loop` (the peer runs on another CPU).
    Spin,
    /// `sched_yield` between polls (only one CPU: spinning would burn the
    /// peer's time slice).
    Yield,
}

impl Wait {
    /// [`Wait::Spin`] when at least two CPUs are allowed, else
    /// [`Wait::Yield`].
    pub fn for_machine() -> Wait {
        if allowed_cpus().len() >= 2 {
            Wait::Spin
        } else {
            Wait::Yield
        }
    }
}

/// Polls until `poll` returns `Some`, or until about `limit` has passed
/// without it (then `None`).
///
/// The clock is not read on the fast path: only after a few thousand
/// fruitless polls does the limit start counting, so a waiter that is
/// answered quickly pays nothing for the bound.
#[inline(always)]
pub fn wait_for<T>(limit: Duration, how: Wait, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let mask: u32 = match how {
        Wait::Spin => 0xfff,
        Wait::Yield => 0x3f,
    };
    let mut polls: u32 = 0;
    let mut deadline: Option<Instant> = None;
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        match how {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
        }
        polls = polls.wrapping_add(1);
        if polls & mask == 0 {
            let now = Instant::now();
            match deadline {
                None => deadline = Some(now + limit),
                Some(d) if now >= d => return poll(),
                Some(_) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// The role this process was started with by [`spawn_child`], if any.
/// A bench's `main` checks this first.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_VAR).ok().filter(|r| !r.is_empty())
}

/// Re-executes this bench binary as a child playing `role`; `configure`
/// adds what the child needs (environment, a region via
/// `Region::pass_to_child`). The child's stdin is null, its stdout and
/// stderr are inherited. The returned guard kills the child if dropped
/// before [`ChildGuard::finish`].
pub fn spawn_child(
    role: &str,
    configure: impl FnOnce(&mut Command),
) -> std::io::Result<ChildGuard> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    configure(&mut cmd);
    let child = cmd.spawn()?;
    Ok(ChildGuard {
        child: Some(child),
        role: role.to_owned(),
    })
}

/// Ends the whole process with `code` (after a message on stderr) if it
/// is still running `limit` from now: the last resort against a wait that
/// cannot be bounded otherwise, such as a blocking lock call on a lock
/// whose holder died without the lock noticing. Runs on a detached thread;
/// children die with it through [`die_with_parent`].
pub fn watchdog(limit: Duration, what: &str, code: i32) {
    let what = what.to_owned();
    let spawned = std::thread::Builder::new()
        .name("bench-watchdog".to_owned())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!("error: {what} still running after {limit:?}; giving up (exit {code})");
            std::process::exit(code);
        });
    if let Err(e) = spawned {
        eprintln!("warning: could not start the watchdog thread: {e}");
    }
}

/// In a child: ask the kernel to kill this process if the parent (the
/// thread that spawned it) dies, so an aborted bench leaves nothing
/// spinning. Best effort.
pub fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
}

/// A spawned child, killed and reaped on drop unless finished.
pub struct ChildGuard {
    child: Option<Child>,
    role: String,
}

impl ChildGuard {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the child has exited (and how), without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for the child to exit; kills it past that.
    /// Errors unless it exited successfully.
    pub fn finish(mut self, limit: Duration) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("child '{}' failed: {status}", self.role));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "child '{}' did not exit within {limit:?}; killed",
                        self.role
                    ));
                }
                Err(e) => return Err(format!("waiting for child '{}': {e}", self.role)),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------

/// Region names no other bench run uses: `/shmkit-bench-<pid>-<i>`, `i`
/// counting up across the whole run.
pub fn unique_names(count: usize) -> Vec<String> {
    // A process-local counter (a mutex, not an atomic: clippy.toml keeps
    // raw atomics out of everything but the crate's primitive module).
    static NEXT: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
    let start = {
        let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = *next;
        *next += count;
        start
    };
    let pid = std::process::id();
    (start..start + count)
        .map(|i| format!("/shmkit-bench-{pid}-{i}"))
        .collect()
}

/// Prints a progress note to stderr (kept off stdout, which holds the
/// results).
pub fn progress(what: &str) {
    eprintln!("  measuring {what}...");
}
