//! The thread every child that must die with this process is started from.
//!
//! Linux's parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread*
//! that forked the child exits, not the process: a child forked from a
//! short-lived thread (a test, a scoped worker) would be killed when that
//! thread returns. So such children are forked from one thread that lives
//! as long as the process, and the signal then means what it says. The same
//! thread reaps the children whose handles were dropped while they ran.

use crate::sys::proc as sys;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Spawned = io::Result<(std::process::Child, OwnedFd)>;

enum Job {
    Spawn(Box<Command>, mpsc::Sender<Spawned>),
    Reap(OwnedFd),
}

/// How often the thread looks at the dropped children it waits to reap.
const REAP_INTERVAL: Duration = Duration::from_millis(50);

fn queue() -> io::Result<mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    if let Some(q) = QUEUE.get() {
        return Ok(q.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shmkit-spawner".into())
        .spawn(move || serve(rx))?;
    let q = QUEUE.get_or_init(|| Mutex::new(tx));
    Ok(q.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

fn serve(jobs: mpsc::Receiver<Job>) {
    let mut dropped: Vec<OwnedFd> = Vec::new();
    loop {
        let job = if dropped.is_empty() {
            jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            jobs.recv_timeout(REAP_INTERVAL)
        };
        match job {
            Ok(Job::Spawn(mut cmd, reply)) => {
                let _ = reply.send(start(&mut cmd));
            }
            Ok(Job::Reap(fd)) => dropped.push(fd),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        dropped.retain(|fd| matches!(sys::try_reap(fd.as_fd()), Ok(None)));
    }
}

/// Spawns `cmd` here and opens its pidfd (race-free: the child is not
/// reaped until this process says so, so its pid is still its own).
fn start(cmd: &mut Command) -> Spawned {
    let child = cmd.spawn()?;
    match sys::open_pidfd(child.id()) {
        Ok(fd) => Ok((child, fd)),
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Spawns `cmd`, from the spawner thread with the parent-death signal set
/// when `die_with_parent`, from this thread otherwise.
pub(crate) fn spawn(mut cmd: Command, die_with_parent: bool) -> Spawned {
    if !die_with_parent {
        return start(&mut cmd);
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and makes
    // two system calls (prctl, getppid), both async-signal-safe; it
    // allocates nothing and takes no lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            sys::die_with_parent(parent)
        });
    }
    let (tx, rx) = mpsc::channel();
    queue()?
        .send(Job::Spawn(Box::new(cmd), tx))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// Hands the pidfd of a child whose handle was dropped while it ran to the
/// spawner thread, which reaps it once it ends.
pub(crate) fn reap_later(fd: OwnedFd) {
    if let Ok(q) = queue() {
        let _ = q.send(Job::Reap(fd));
    }
}
