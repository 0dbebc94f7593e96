//! How fast a waiter gets a lock whose holder was SIGKILLed: from the
//! `kill()` to the waiter's `OwnerDied` guard, over hundreds of kills,
//! beside the same hand-over done cleanly (the holder unlocks) in the
//! same run.
//!
//! Each round: a fresh child process opens the region, takes the mutex
//! and says so; a waiter thread in the parent blocks in `lock()`; after a
//! random 1–20 ms (so the waiter has parked, and the hold has a length a
//! real critical section might have) the parent either kills the child
//! or tells it to unlock, and times the hand-over. Rounds of the two kinds
//! alternate, so both see the same machine.
//!
//! ```text
//! cargo bench --bench recovery            # 300 kills, 300 clean hand-overs
//! SHMKIT_BENCH_QUICK=1 cargo bench --bench recovery
//! ```
//!
//! Figures are milliseconds; the ratio column is to the clean hand-over.
#![allow(clippy::disallowed_types)]

mod support;

use shmkit::sync::{LockError, LockTimeoutError, Mutex};
use shmkit::{Shm, ShmSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use support::{Mode, Stats, Table, Unit};

const NAME_VAR: &str = "SHMKIT_BENCH_REGION";
/// `state` values.
const IDLE: u32 = 0;
const LOCKED: u32 = 1;
const UNLOCK: u32 = 2;

#[repr(C)]
struct Shared {
    lock: Mutex<u64>,
    state: AtomicU32,
    /// When the child unlocked ([`now_ns`]), for the clean hand-over.
    unlocked_at: AtomicU64,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for Shared {}

fn main() {
    if let Some(role) = support::child_role() {
        std::process::exit(run_child(&role));
    }
    let mode = Mode::detect();
    support::watchdog(Duration::from_secs(600), "the recovery bench", 3);
    println!("shmkit recovery bench ({mode})");
    println!("{}", support::Machine::probe());
    match run(mode) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn run_child(role: &str) -> i32 {
    support::die_with_parent();
    let Ok(name) = std::env::var(NAME_VAR) else {
        eprintln!("child: {NAME_VAR} not set");
        return 2;
    };
    let s = match Shm::<Shared>::open(&name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: open {name}: {e}");
            return 2;
        }
    };
    if role != "hold" {
        eprintln!("child: unknown role {role}");
        return 2;
    }
    let guard = match s.lock.lock() {
        Ok(g) => g,
        Err(LockError::OwnerDied(mut g)) => {
            g.mark_consistent();
            g
        }
        Err(e) => {
            eprintln!("child: lock: {e}");
            return 2;
        }
    };
    s.state.store(LOCKED, Ordering::Release);
    // Hold until told to let go (or killed).
    while s.state.load(Ordering::Acquire) != UNLOCK {
        std::thread::sleep(Duration::from_micros(100));
    }
    s.unlocked_at.store(now_ns(), Ordering::Release);
    drop(guard);
    0
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process.
fn now_ns() -> u64 {
    // SAFETY: an all-zero timespec is valid; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small xorshift generator: delays need no quality, only spread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One round: returns the hand-over time in nanoseconds, from the kill
/// (or the child's unlock) to the waiter's guard.
fn round(s: &Shared, name: &str, kill: bool, hold: Duration) -> Result<f64, String> {
    s.state.store(IDLE, Ordering::Release);
    let child = support::spawn_child("hold", |cmd| {
        cmd.env(NAME_VAR, name);
    })
    .map_err(|e| format!("spawn: {e}"))?;
    support::wait_for(
        Duration::from_secs(10),
        support::Wait::for_machine(),
        || (s.state.load(Ordering::Acquire) == LOCKED).then_some(()),
    )
    .ok_or("the child never took the lock")?;
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let r = s.lock.lock_timeout(Duration::from_secs(30));
            let got = now_ns();
            let died = match r {
                Ok(g) => {
                    drop(g);
                    false
                }
                Err(LockTimeoutError::OwnerDied(mut g)) => {
                    g.mark_consistent();
                    true
                }
                Err(e) => return Err(format!("waiter: {e}")),
            };
            Ok((got, died))
        });
        std::thread::sleep(hold);
        let killed_at = now_ns();
        if kill {
            drop(child); // SIGKILL, then reap
        } else {
            s.state.store(UNLOCK, Ordering::Release);
        }
        let (got, died) = waiter.join().map_err(|_| "waiter panicked")??;
        let start = if kill {
            killed_at
        } else {
            s.unlocked_at.load(Ordering::Acquire)
        };
        if died != kill {
            return Err(format!(
                "expected {} but the waiter saw {}",
                if kill { "OwnerDied" } else { "a clean lock" },
                if died { "OwnerDied" } else { "a clean lock" }
            ));
        }
        Ok(got.saturating_sub(start) as f64)
    })
}

fn run(mode: Mode) -> Result<(), String> {
    let rounds = mode.scale(300);
    let name = support::unique_names(1).remove(0);
    let s = Shm::<Shared>::create(&name, |_| {}).map_err(|e| format!("create: {e}"))?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let (mut killed, mut clean) = (Vec::new(), Vec::new());
    support::progress(&format!("{rounds} kills and {rounds} clean hand-overs"));
    for _ in 0..rounds {
        for kill in [true, false] {
            let hold = Duration::from_micros(1000 + rng.next() % 19_000);
            let ns = round(&s, &name, kill, hold)?;
            if kill {
                killed.push(ns);
            } else {
                clean.push(ns);
            }
        }
    }
    let mut table = Table::new("lock hand-over to a parked waiter, after a 1-20 ms hold");
    table.set_ratio_label("vs clean");
    table.floor(
        "holder unlocks (clean hand-over)",
        Stats::from_samples(&mut clean),
        Unit::Ms,
    );
    let k = Stats::from_samples(&mut killed);
    table.row("holder SIGKILLed -> OwnerDied guard", k, Unit::Ms);
    table.print();
    println!(
        "kill -> guard over {} kills: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal: p50 <= 2 ms, p99 <= 15 ms)",
        k.n,
        k.p50 / 1e6,
        k.p99 / 1e6,
        k.max / 1e6
    );
    Ok(())
}
