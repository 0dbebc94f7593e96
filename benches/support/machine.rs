//! What the figures were measured on: CPUs, kernel, load, stolen time.

use super::{allowed_cpus, fmt_cpu_list, watchdog, Mode};
use std::fmt;
use std::time::{Duration, Instant};

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

/// Prints a run's opening lines: its title, the mode, a warning if the
/// build is unoptimized, and the machine.
pub fn print_banner(title: &str, mode: Mode, machine: &Machine) {
    println!("{title}");
    println!("mode:     {mode}");
    if cfg!(debug_assertions) {
        println!("build:    unoptimized (debug assertions on): figures and verdicts mean little");
    }
    println!("{machine}");
}

/// A run's wall clock and the system's CPU time counters at its start,
/// for its closing lines.
pub struct RunClock {
    started: Instant,
    cpu_times: Option<CpuTimes>,
}

impl RunClock {
    /// Starts the clock (at the very start of `main`).
    pub fn start() -> RunClock {
        RunClock {
            started: Instant::now(),
            cpu_times: CpuTimes::now(),
        }
    }

    /// Prints the total run time, the share of CPU time a hypervisor stole
    /// meanwhile (if known) and the load average now; returns the load
    /// average.
    pub fn print_summary(&self) -> Option<String> {
        println!(
            "\ntotal run time: {:.2} s",
            self.started.elapsed().as_secs_f64()
        );
        if let Some(steal) = self
            .cpu_times
            .zip(CpuTimes::now())
            .and_then(|(a, b)| a.steal_percent(b))
        {
            println!("cpu time stolen by the hypervisor during the run: {steal:.1}%");
        }
        let load = load_average();
        println!(
            "load average at the end: {}",
            load.as_deref().unwrap_or("?")
        );
        load
    }
}

/// A parent's run: its clock, mode and machine.
pub struct Run {
    /// Started first.
    pub clock: RunClock,
    /// Full or quick.
    pub mode: Mode,
    /// What it runs on.
    pub machine: Machine,
}

/// Starts a bench's parent (after `main` has checked for a child role)
/// in `mode` ([`Mode::detect`] for a bench): the clock, the machine, a
/// watchdog that ends the run past `limit`, and the opening lines under
/// `title`.
pub fn start_run(title: &str, limit: Duration, mode: Mode) -> Run {
    let clock = RunClock::start();
    let machine = Machine::probe();
    watchdog(limit, &format!("the {title}"), 1);
    print_banner(title, mode, &machine);
    Run {
        clock,
        mode,
        machine,
    }
}

impl Run {
    /// The closing lines: run time, stolen time, load, and a warning if
    /// the machine was busier than it has CPUs.
    pub fn finish(&self) {
        let load = self.clock.print_summary();
        if let Some(one) = load.and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok()) {
            if one > self.machine.nproc as f64 {
                println!(
                    "warning: the machine was busy (load {one:.1} on {} CPUs): spinning sides \
                     lose their CPU to other work, the floors most of all; compare within the run",
                    self.machine.nproc
                );
            }
        }
    }
}

/// The lines under the banner of a run with children: where the sides
/// ran, and what a clock read costs.
pub fn print_setup(pinning: &str, clock_ns: f64) {
    println!("pinning:  {pinning}");
    println!(
        "clock:    {clock_ns:.1} ns per Instant::now() (inside every timed round trip: \
         half of it in each one-way figure)"
    );
}
