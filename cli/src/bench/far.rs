//! Starting a row's far end in a child process and finishing it.

use super::measure::End;
use super::measure::{measure, Figures, Job, Plan};
use shmkit::process::{Builder, JoinHandle, JoinTimeoutError};
use shmkit::Region;
use std::time::Duration;

/// The variable that tells a far end which CPU to run on.
pub const CPU_VAR: &str = "SHMKIT_BENCH_CPU";
/// Variables naming the regions of a row's two directions.
pub const PING_VAR: &str = "SHMKIT_BENCH_PING";
/// See [`PING_VAR`].
pub const PONG_VAR: &str = "SHMKIT_BENCH_PONG";
/// A row's other setting (a path, a name), if it has one.
pub const NAME_VAR: &str = "SHMKIT_BENCH_NAME";
/// How long either side waits for the other before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A far end's program: a function of this binary run in a child.
pub type FarFn = fn(Job) -> Result<(), String>;

/// Where things run: this process's CPU and the far end's.
#[derive(Debug, Clone, Copy)]
pub struct Cpus(pub Option<(usize, usize)>);

impl Cpus {
    /// A builder for a far end that pins itself to the far CPU.
    pub fn builder(self) -> Builder {
        let b = Builder::new();
        match self.0 {
            Some((_, far)) => b.env(CPU_VAR, far.to_string()),
            None => b,
        }
    }

    /// The far CPU, for a thread.
    pub fn far(self) -> Option<usize> {
        self.0.map(|(_, far)| far)
    }
}

/// In a far end: pins it as the parent asked.
pub fn pin_far_end() {
    let cpu = std::env::var(CPU_VAR).ok().and_then(|v| v.parse().ok());
    super::measure::pin(cpu);
}

/// Spawns `f` with `plan`'s job from `builder`.
pub fn spawn(
    builder: Builder,
    f: FarFn,
    plan: &Plan,
) -> Result<JoinHandle<Result<(), String>>, String> {
    builder
        .spawn(f, plan.job())
        .map_err(|e| format!("starting the far end: {e}"))
}

/// Spawns `f` with `plan`'s job, passing the regions of the row's two
/// directions under [`PING_VAR`] and [`PONG_VAR`].
pub fn spawn_pair(
    cpus: Cpus,
    ping: &Region,
    pong: &Region,
    f: FarFn,
    plan: &Plan,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let builder = cpus
        .builder()
        .pass_region(PING_VAR, ping)
        .and_then(|b| b.pass_region(PONG_VAR, pong))
        .map_err(text)?;
    spawn(builder, f, plan)
}

/// An error as the rows report it.
pub fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Measures `end` against the child `far`, then lets the child finish
/// (killing it if the measurement failed) and reports what it said.
pub fn finish<E: End>(
    mut end: E,
    far: JoinHandle<Result<(), String>>,
    plan: &Plan,
    progress: &mut dyn FnMut(f64),
) -> Result<Figures, String> {
    let figures = measure(&mut end, plan, progress);
    drop(end);
    if figures.is_err() {
        let _ = far.kill();
    }
    let joined = match far.join_timeout(PATIENCE) {
        Ok(said) => said,
        Err(JoinTimeoutError::Timeout(far)) => {
            let _ = far.kill();
            Err("the far end did not finish".to_owned())
        }
        Err(e) => Err(format!("the far end: {e}")),
    };
    let figures = figures?;
    joined?;
    Ok(figures)
}

/// Spins until `ready` holds, yielding now and then, for at most
/// [`PATIENCE`].
#[inline]
pub fn spin_until(mut ready: impl FnMut() -> bool) -> Result<(), String> {
    if ready() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut n = 0u32;
    loop {
        for _ in 0..64 {
            std::hint::spin_loop();
            if ready() {
                return Ok(());
            }
        }
        n = n.wrapping_add(1);
        if n % 16 == 0 {
            if std::time::Instant::now() > deadline {
                return Err("the other side stopped answering".into());
            }
            std::thread::yield_now();
        }
    }
}
