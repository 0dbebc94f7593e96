//! Shared pieces of shmkit's benchmark harnesses (`harness = false`
//! benches): run modes, percentile statistics, the result table, machine
//! facts, CPU pinning, bounded spin-waiting, child processes made by
//! re-executing the bench binary and descriptors they inherit.
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
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
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
    /// 99.9th percentile (shown only by tables that ask for it,
    /// [`Table::show_p999`]).
    pub p999: f64,
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
            p999: percentile(samples, 99.9),
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    /// Statistics of the values recorded in `hist`, each multiplied by
    /// `factor` (to change units). HDR percentiles: exact to the
    /// histogram's significant digits.
    ///
    /// # Panics
    ///
    /// If `hist` is empty (a harness bug, not a measurement).
    pub fn from_histogram(hist: &hdrhistogram::Histogram<u64>, factor: f64) -> Stats {
        assert!(
            !hist.is_empty(),
            "Stats::from_histogram: no samples to summarize"
        );
        let at = |q: f64| hist.value_at_quantile(q) as f64 * factor;
        Stats {
            n: usize::try_from(hist.len()).unwrap_or(usize::MAX),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            min: hist.min() as f64 * factor,
            max: hist.max() as f64 * factor,
        }
    }

    /// Every figure multiplied by `factor` (to change units).
    pub fn scaled(self, factor: f64) -> Stats {
        Stats {
            n: self.n,
            p50: self.p50 * factor,
            p90: self.p90 * factor,
            p99: self.p99 * factor,
            p999: self.p999 * factor,
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
    /// with no ratio to the floor unless the table has a rate floor
    /// ([`Table::set_rate_floor`]).
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
    /// Texts of the extra columns ([`Table::add_column`]), in order.
    cells: Vec<String>,
}

/// A table of figures: name, p50, p90, p99, (p99.9,) min, max, unit, the
/// ratio of the row's p50 to the floor's p50 (a time row once a floor is
/// set; another row once a rate floor is set) and any extra columns.
pub struct Table {
    title: String,
    floor_ns: Option<f64>,
    rate_floor: Option<f64>,
    ratio_label: String,
    show_p999: bool,
    extra: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            floor_ns: None,
            rate_floor: None,
            ratio_label: "vs floor".to_owned(),
            show_p999: false,
            extra: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Adds a p99.9 column (after p99).
    pub fn show_p999(&mut self) {
        self.show_p999 = true;
    }

    /// Sets the reference for the ratio column of rows that are not times
    /// ([`Unit::Other`]: rates, sizes), in the rows' unit. Such rows show
    /// no ratio unless this is set.
    pub fn set_rate_floor(&mut self, value: f64) {
        self.rate_floor = Some(value);
    }

    /// Adds a column after the ratio, filled by
    /// [`Table::row_with_cells`] (`-` where a row gives no text).
    pub fn add_column(&mut self, label: impl Into<String>) {
        self.extra.push(label.into());
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
        self.row_with_cells(name, stats, unit, Vec::new());
    }

    /// Adds a row without a ratio.
    pub fn row_without_ratio(&mut self, name: impl Into<String>, stats: Stats, unit: Unit) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: false,
            cells: Vec::new(),
        });
    }

    /// Adds a row with a ratio to the floor and the texts of the extra
    /// columns ([`Table::add_column`]), in order.
    pub fn row_with_cells(
        &mut self,
        name: impl Into<String>,
        stats: Stats,
        unit: Unit,
        cells: Vec<String>,
    ) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: true,
            cells,
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
        let extra_w: Vec<usize> = self
            .extra
            .iter()
            .enumerate()
            .map(|(i, label)| {
                self.rows
                    .iter()
                    .filter_map(|r| r.cells.get(i))
                    .map(|c| c.chars().count())
                    .chain([label.chars().count(), 9])
                    .max()
                    .unwrap_or(9)
            })
            .collect();
        let mut columns = vec!["p50", "p90", "p99"];
        if self.show_p999 {
            columns.push("p99.9");
        }
        columns.extend(["min", "max"]);
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let mut header = format!("{:<name_w$} ", "figure");
        for c in &columns {
            let _ = write!(header, " {c:>9}");
        }
        let _ = write!(
            header,
            "  {:<unit_w$} {:>ratio_w$}",
            "unit", self.ratio_label
        );
        for (label, w) in self.extra.iter().zip(&extra_w) {
            let _ = write!(header, " {label:>w$}");
        }
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
        for r in &self.rows {
            let s = match r.unit.ns() {
                Some(per) => r.stats.scaled(1.0 / per),
                None => r.stats,
            };
            let ratio = match (r.ratio, r.unit.ns(), self.floor_ns, self.rate_floor) {
                (true, Some(_), Some(floor), _) if floor > 0.0 => fmt_ratio(r.stats.p50 / floor),
                (true, None, _, Some(floor)) if floor > 0.0 => fmt_ratio(r.stats.p50 / floor),
                _ => "-".to_owned(),
            };
            let mut values = vec![s.p50, s.p90, s.p99];
            if self.show_p999 {
                values.push(s.p999);
            }
            values.extend([s.min, s.max]);
            let mut line = format!("{:<name_w$} ", r.name);
            for v in values {
                let _ = write!(line, " {:>9}", fmt_value(v));
            }
            let _ = write!(line, "  {:<unit_w$} {:>ratio_w$}", r.unit.label(), ratio);
            for (i, w) in extra_w.iter().enumerate() {
                let cell = r.cells.get(i).map_or("-", String::as_str);
                let _ = write!(line, " {cell:>w$}");
            }
            let _ = writeln!(out, "{line}");
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

/// A ratio as the tables show it (`2.5x`, `312x`).
pub fn fmt_ratio(r: f64) -> String {
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
// Descriptors for children
// ---------------------------------------------------------------------------

/// A pipe, both ends close-on-exec: `(read end, write end)`.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: `fds` is writable room for the two descriptors pipe2 returns.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing
    // else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes `cmd`'s child inherit `fd` (its close-on-exec flag is cleared in
/// the child, between fork and exec) and names it in the child's
/// environment variable `var`; the child takes it with [`fd_from_env`].
/// `fd` must stay open until the child is spawned; the parent usually
/// closes its copy right after, so that the child's end is the only one.
pub fn pass_fd_to_child(cmd: &mut Command, fd: BorrowedFd<'_>, var: &str) {
    let raw = fd.as_raw_fd();
    cmd.env(var, raw.to_string());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls fcntl(F_SETFD), which is async-signal-safe, on a descriptor
    // number the parent keeps open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // SAFETY: fcntl on a descriptor number has no memory-safety
            // preconditions; an error is reported, not undefined.
            if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// In a child: takes ownership of the descriptor a parent passed with
/// [`pass_fd_to_child`] under `var`.
///
/// # Safety
///
/// The descriptor named by `var` must have been inherited for this purpose
/// and be owned by nothing else in this process; call this at most once
/// per variable.
pub unsafe fn fd_from_env(var: &str) -> Result<OwnedFd, String> {
    let raw: RawFd = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|fd: &RawFd| *fd >= 0)
        .ok_or_else(|| format!("environment variable {var} does not name a descriptor"))?;
    // SAFETY: fcntl(F_GETFD) on a number only asks whether it is open.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return Err(format!(
            "descriptor {raw} named by {var}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: open (checked just above); the caller guarantees that it was
    // inherited for us and that nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
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
