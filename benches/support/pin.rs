//! CPU pinning: the allowed CPUs, a guard that pins a thread, and the
//! choice of two CPUs on different cores.

use super::Wait;
use std::fmt::{self, Write as _};
use std::process::Command;

/// The CPU a child pins itself to, if any ([`Placement::pass_to_child`]).
pub const CPU_VAR: &str = "SHMKIT_BENCH_CPU";
/// `1`: the child yields instead of spinning (single-CPU machine).
pub const YIELD_VAR: &str = "SHMKIT_BENCH_YIELD";

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

/// Where the two sides of a measurement run and how they wait.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// The parent's and the child's CPUs, `None` with one CPU.
    pub pair: Option<CpuPair>,
    /// How either side waits for the other.
    pub how: Wait,
}

impl Placement {
    /// Two CPUs on different cores if possible, spinning if there are two.
    pub fn for_machine() -> Placement {
        Placement {
            pair: pick_cpu_pair(),
            how: Wait::for_machine(),
        }
    }

    /// The pinning as the results report it; `pinned`: whether the
    /// parent's pinning took effect.
    pub fn describe(&self, pinned: bool) -> String {
        match self.pair {
            Some(p) if pinned => p.to_string(),
            Some(_) => "not pinned (sched_setaffinity failed)".to_owned(),
            None => "not pinned (one CPU: the sides take turns, yielding)".to_owned(),
        }
    }

    /// Pins the calling thread to the parent's CPU, if there is a pair.
    pub fn pin_parent(&self) -> Option<Pinned> {
        self.pair.map(|p| pin_current(p.parent))
    }

    /// Pins the calling thread, for good, to the child's CPU.
    pub fn pin_child_thread(&self) {
        if let Some(p) = self.pair {
            pin_current(p.child).keep();
        }
    }

    /// Tells a child to be spawned by `cmd` its CPU and how to wait; the
    /// child takes them with [`child_placement`].
    pub fn pass_to_child(&self, cmd: &mut Command) {
        if let Some(p) = self.pair {
            cmd.env(CPU_VAR, p.child.to_string());
        }
        if self.how == Wait::Yield {
            cmd.env(YIELD_VAR, "1");
        }
    }
}

/// In a child: pins this process to the CPU the parent named with
/// [`Placement::pass_to_child`], if any, and returns how to wait.
pub fn child_placement() -> Wait {
    if let Some(cpu) = std::env::var(CPU_VAR).ok().and_then(|v| v.parse().ok()) {
        pin_current(cpu).keep();
    }
    if std::env::var(YIELD_VAR).is_ok_and(|v| v == "1") {
        Wait::Yield
    } else {
        Wait::Spin
    }
}
