//! [`Child`]: a started process, watched through a pidfd.

use crate::sys::proc::{self as sys, Ended};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

/// How a process ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code (`exit(code)`, or returning from `main`).
    Code(i32),
    /// This signal ended it (9 for `SIGKILL`, 15 for `SIGTERM`, 6 for an
    /// abort).
    Signal(i32),
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }

    /// The exit code, if it exited (Python's positive `exitcode`).
    pub fn code(self) -> Option<i32> {
        match self {
            Self::Code(c) => Some(c),
            Self::Signal(_) => None,
        }
    }

    /// The signal that ended it, if one did (Python's `-exitcode`).
    pub fn signal(self) -> Option<i32> {
        match self {
            Self::Signal(s) => Some(s),
            Self::Code(_) => None,
        }
    }
}

impl From<Ended> for ExitStatus {
    fn from(e: Ended) -> Self {
        match e {
            Ended::Code(c) => Self::Code(c),
            Ended::Signal(s) => Self::Signal(s),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => match signal_name(*s) {
                Some(n) => write!(f, "signal {s} ({n})"),
                None => write!(f, "signal {s}"),
            },
        }
    }
}

fn signal_name(s: i32) -> Option<&'static str> {
    Some(match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// A child process: its pid, a pidfd that names it for as long as this
/// handle lives (so a reused pid can never be mistaken for it), and, once
/// it has ended, how.
///
/// Dropping a handle leaves the process running (as `std` does); it is
/// reaped in the background when it ends, so it never lingers as a zombie.
/// A child started without
/// [`survive_parent`](super::Builder::survive_parent) is killed when this
/// process dies, however it dies.
pub struct Child {
    pid: u32,
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    stdio: std::process::Child,
}

impl Child {
    pub(crate) fn new(stdio: std::process::Child, pidfd: OwnedFd) -> Self {
        Self {
            pid: stdio.id(),
            pidfd: Some(pidfd),
            status: None,
            stdio,
        }
    }

    /// The child's process id. It stays this child's while the handle has
    /// not seen it end; after that the number may belong to another
    /// process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child is still running (reaps it if it has ended).
    pub fn is_alive(&mut self) -> io::Result<bool> {
        Ok(self.try_wait()?.is_none())
    }

    /// How it ended, if this handle has seen it end (Python's `exitcode`).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reaps the child if it has ended; `None` while it runs. Never
    /// blocks.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let Some(fd) = &self.pidfd else {
            return Ok(self.status);
        };
        if let Some(ended) = sys::try_reap(fd.as_fd())? {
            self.status = Some(ended.into());
        }
        Ok(self.status)
    }

    /// Waits for the child to end and returns how it did.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.wait_deadline(None)? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout` for the child to end (Python's
    /// `join(timeout)`); `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` for the child to end; `None` if it still
    /// runs. `None` as the deadline waits without bound.
    pub fn wait_deadline(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            sys::wait_readable(&[self.pidfd()], deadline)?;
        }
    }

    /// Sends `SIGTERM` (Python's `terminate`): a polite request to stop,
    /// which the child may handle. Nothing happens to a child that has
    /// already ended.
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL` (Python's `kill`): the child stops at once. Nothing
    /// happens to a child that has already ended.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// Sends signal number `signo` through the pidfd, so it reaches this
    /// child and no process that reused its pid.
    pub fn signal(&self, signo: i32) -> io::Result<()> {
        match (&self.pidfd, self.status) {
            (Some(fd), None) => sys::send_signal(fd.as_fd(), signo),
            _ => Ok(()),
        }
    }

    /// The child's standard input, if it was piped
    /// ([`Builder::stdin`](super::Builder::stdin)); taken once.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdio.stdin.take()
    }

    /// The child's standard output, if it was piped; taken once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdio.stdout.take()
    }

    /// The child's standard error, if it was piped; taken once.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stdio.stderr.take()
    }

    /// The pidfd (readable once the child has ended).
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd
            .as_ref()
            .expect("a child keeps its pidfd while it lives")
            .as_fd()
    }
}

impl AsFd for Child {
    /// The pidfd: readable (`poll`) once the child has ended, for waiting on
    /// children beside other descriptors.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd()
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Some(fd) = self.pidfd.take() {
                super::spawner::reap_later(fd);
            }
        }
    }
}

/// Waits until one of `children` has ended, or `timeout` passes; returns
/// the index of one that ended (the first in order, if several have), or
/// `None` on timeout. `None` as the timeout waits without bound. An empty
/// slice returns `None` at once.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::process::Command;
/// let mut sleep = Command::new("sleep");
/// sleep.arg("5");
/// let mut a = shmkit::process::spawn_command(sleep)?;
/// let mut b = shmkit::process::spawn_command(Command::new("true"))?;
/// let first = shmkit::process::wait_any(&mut [&mut a, &mut b], None)?;
/// assert_eq!(first, Some(1));
/// # Ok(()) }
/// ```
pub fn wait_any(
    children: &mut [&mut Child],
    timeout: Option<Duration>,
) -> io::Result<Option<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    if children.is_empty() {
        return Ok(None);
    }
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if c.try_wait()?.is_some() {
                return Ok(Some(i));
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        let fds: Vec<BorrowedFd<'_>> = children.iter().map(|c| c.pidfd()).collect();
        sys::wait_readable(&fds, deadline)?;
    }
}

/// Waits until every one of `children` has ended, or `timeout` passes;
/// returns whether all had. `None` waits without bound.
pub fn wait_all(children: &mut [&mut Child], timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    for c in children.iter_mut() {
        if c.wait_deadline(deadline)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}
