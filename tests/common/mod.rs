//! Support for cross-process tests: unique names and child processes.
//!
//! A child is this same test binary re-executed to run only its file's
//! `child_entry` test (marked `#[ignore]` so it never runs on its own), with
//! the role and arguments in the environment. A child reports back through
//! shared memory and its exit status; lines it prints that start with
//! `RESULT ` are collected for the parent.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "SHMKIT_TEST_ROLE";
const ARGS_VAR: &str = "SHMKIT_TEST_ARGS";
const SEP: char = '\u{1f}';

/// A region name no other test or process uses.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/shmkit-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The role and arguments this process was started with as a child.
pub fn child_role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let args = std::env::var(ARGS_VAR).unwrap_or_default();
    let args = if args.is_empty() {
        Vec::new()
    } else {
        args.split(SEP).map(str::to_owned).collect()
    };
    Some((role, args))
}

/// A command that re-runs this test binary as a child with `role`.
pub fn child_command(role: &str, args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "child_entry",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE_VAR, role)
    .env(ARGS_VAR, args.join(&SEP.to_string()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Spawns a child with `role`.
pub fn spawn(role: &str, args: &[&str]) -> Child {
    let _spawning = SPAWNS.read().unwrap_or_else(|e| e.into_inner());
    child_command(role, args).spawn().expect("spawn child")
}

/// Spawns a child from a command [`child_command`] made (and the caller
/// then adjusted: a piped stdin, a region passed to the child), as
/// [`spawn`] does.
pub fn spawn_command(cmd: &mut Command) -> Child {
    let _spawning = SPAWNS.read().unwrap_or_else(|e| e.into_inner());
    cmd.spawn().expect("spawn child")
}

/// Held (shared) by [`spawn`] and [`spawn_command`] while they fork and
/// exec a child.
static SPAWNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Runs `f` while no [`spawn`] of this test binary is between its fork
/// and its child's exec. Until that exec the child holds copies of every
/// descriptor, a dropped region handle's own among them, so the handle's
/// participant still reads as alive: a test that drops handles and then
/// counts what their deaths gave back runs the drop in here (tests of a
/// binary run in parallel threads, and others spawn children).
#[allow(dead_code)] // not every test binary drops handles mid-test
pub fn without_spawns<R>(f: impl FnOnce() -> R) -> R {
    let _quiet = SPAWNS.write().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Waits for a child, failing the test if it does not exit in `limit` or
/// exits unsuccessfully; returns its `RESULT` lines.
pub fn finish(child: Child, limit: Duration) -> Vec<String> {
    let out = wait_limited(child, limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed with {:?}; stdout:\n{stdout}",
        out.status
    );
    results(&stdout)
}

/// Waits for a child for at most `limit`, killing it past that.
pub fn wait_limited(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("wait_with_output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "child did not finish within {limit:?}; stdout:\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn results(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(str::to_owned)
        .collect()
}

/// Prints a line the parent collects with [`finish`].
pub fn report(line: impl std::fmt::Display) {
    println!("RESULT {line}");
}

/// Spins until `cond` holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits for a child's first `RESULT` line (its stdout is piped).
pub fn wait_for_line(child: &mut Child) -> String {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read child") > 0,
            "child exited early"
        );
        if let Some(r) = line.trim_end().strip_prefix("RESULT ") {
            return r.to_owned();
        }
    }
}

/// The uid (and gid) of `nobody`, which tests that need another user's
/// process switch to.
pub const NOBODY: u32 = 65534;

/// Whether this process runs as root (and so can start a child that
/// becomes [`NOBODY`]).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Makes this process (every thread of it) [`NOBODY`]: no supplementary
/// groups, gid and uid 65534. For a child started by a root parent; panics
/// if the switch fails.
pub fn become_nobody() {
    // SAFETY: plain libc calls with valid arguments (a null list of length
    // 0 for setgroups); glibc applies setgid/setuid to every thread.
    let rc = unsafe {
        let mut rc = libc::setgroups(0, std::ptr::null());
        if rc == 0 {
            rc = libc::setgid(NOBODY);
        }
        if rc == 0 {
            rc = libc::setuid(NOBODY);
        }
        rc
    };
    assert_eq!(
        rc,
        0,
        "dropping privileges: {}",
        std::io::Error::last_os_error()
    );
    assert_eq!(rustix::process::geteuid().as_raw(), NOBODY);
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}
