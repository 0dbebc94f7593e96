//! Child processes: this bench binary re-executed to play a role, a guard
//! that reaps it, and the watchdog and parent-death signal that keep an
//! aborted run from leaving anything behind.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Names the role a re-executed bench binary should play.
pub const CHILD_VAR: &str = "SHMKIT_BENCH_CHILD";

/// A child (or helper thread) gives up if the parent is silent this long.
pub const CHILD_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// The parent gives up if the other side does not answer within this.
pub const PARENT_WAIT_LIMIT: Duration = Duration::from_secs(10);
/// How long a child may take to exit once its work is done.
pub const CHILD_EXIT_LIMIT: Duration = Duration::from_secs(10);

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

    /// Ends a measurement with the child: if `result` is an error, that
    /// error with the child's status appended (the child is killed as the
    /// guard drops); else [`ChildGuard::finish`], then the value.
    pub fn settle<T>(mut self, result: Result<T, String>, limit: Duration) -> Result<T, String> {
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                let status = self
                    .try_status()
                    .map_or_else(|| "still running".to_owned(), |s| s.to_string());
                return Err(format!("{e} (child: {status})"));
            }
        };
        self.finish(limit)?;
        Ok(value)
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

/// Waits (bounded by [`PARENT_WAIT_LIMIT`]) until `ready` says that
/// `child` is ready, watching for it to die at start-up rather than
/// spinning blind.
pub fn wait_ready(child: &mut ChildGuard, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + PARENT_WAIT_LIMIT;
    while !ready() {
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

/// In a child: the exit code for how its role ended (0, or 3 after the
/// error on stderr).
pub fn exit_code(role: &str, result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench child ({role}): {e}");
            3
        }
    }
}
