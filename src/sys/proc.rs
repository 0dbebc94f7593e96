//! Child processes: pidfds, signals through them, reaping, the
//! parent-death signal, and what a process knows of its own executable.

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self, AtFlags};
use rustix::process::{
    pidfd_open, pidfd_send_signal, waitid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions,
};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal of this number ended it.
    Signal(i32),
}

/// A pidfd for `pid`, a child of this process not yet reaped (so the number
/// cannot have been reused).
pub(crate) fn open_pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(pidfd_open(pid, PidfdFlags::empty())?)
}

/// Sends signal number `signo` to the process behind `pidfd`. A process
/// that has exited (reaped or not) is not an error.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signo: i32) -> io::Result<()> {
    let sig = Signal::from_named_raw(signo)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    match pidfd_send_signal(pidfd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reaps the child behind `pidfd` if it has ended, without blocking.
pub(crate) fn try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<Ended>> {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    match waitid(WaitId::PidFd(pidfd), opts) {
        Ok(Some(st)) => {
            if let Some(code) = st.exit_status() {
                Ok(Some(Ended::Code(code)))
            } else if let Some(sig) = st.terminating_signal() {
                Ok(Some(Ended::Signal(sig)))
            } else {
                // NOHANG with no child ready: the kernel leaves the
                // siginfo zeroed, which reads as neither.
                Ok(None)
            }
        }
        Ok(None) => Ok(None),
        Err(rustix::io::Errno::INTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits until one of `pidfds` is readable (its process ended) or
/// `deadline` passes; returns the indices that are readable (empty on
/// timeout). `None` waits without bound.
pub(crate) fn wait_readable(
    pidfds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> io::Result<Vec<usize>> {
    loop {
        let mut fds: Vec<PollFd<'_>> = pidfds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
        };
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {
                let ready: Vec<usize> = fds
                    .iter()
                    .enumerate()
                    .filter(|(_, fd)| !fd.revents().is_empty())
                    .map(|(i, _)| i)
                    .collect();
                if !ready.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(ready);
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Asks for SIGKILL when the thread that forked this process exits, then
/// checks that the parent `parent` has not already gone (the signal only
/// covers deaths after the call). For `pre_exec`: two system calls, both
/// async-signal-safe.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    let now = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    if now != parent {
        // No allocation here (this runs between fork and exec).
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// The CPU this thread runs on now (a hint: it may move at once).
pub(crate) fn current_cpu() -> u64 {
    rustix::thread::sched_getcpu() as u64
}

/// Whether this process runs with elevated privileges it did not get from
/// its invoker (set-user-ID, set-group-ID, file capabilities): the
/// auxiliary vector's `AT_SECURE`.
pub(crate) fn is_secure_exec() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel gave this
    // process; it has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The device and inode of this process's executable (`/proc/self/exe`),
/// which a re-executed child compares with its parent's.
pub(crate) fn exe_identity() -> io::Result<(u64, u64)> {
    let st = fs::statat(fs::CWD, "/proc/self/exe", AtFlags::empty())?;
    Ok((st.st_dev, st.st_ino))
}

/// Reads up to `buf.len()` bytes at `offset` (fewer at end of file).
pub(crate) fn read_full_at(fd: impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    super::shmdir::read_at(fd.as_fd(), buf, offset).map_err(io::Error::other)
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_full_at(fd: impl AsFd, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pwrite(fd.as_fd(), &buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A plain memfd for a child's arguments and result (no seals: the child
/// writes its result past the arguments).
pub(crate) fn scratch_memfd() -> io::Result<OwnedFd> {
    Ok(fs::memfd_create("shmkit-process", fs::MemfdFlags::CLOEXEC)?)
}

/// The executable ranges of the object file mapped at `addr` (this
/// process's `/proc/self/maps`): every `r-xp` mapping of the same device
/// and inode. Empty if `addr` is in no file-backed executable mapping.
pub(crate) fn code_ranges_of(addr: usize) -> io::Result<Vec<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let parsed: Vec<(usize, usize, bool, &str, &str)> = maps
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let _offset = f.next()?;
            let dev = f.next()?;
            let ino = f.next()?;
            let (lo, hi) = range.split_once('-')?;
            let lo = usize::from_str_radix(lo, 16).ok()?;
            let hi = usize::from_str_radix(hi, 16).ok()?;
            Some((lo, hi, perms.as_bytes().get(2) == Some(&b'x'), dev, ino))
        })
        .collect();
    let Some(&(_, _, _, dev, ino)) = parsed
        .iter()
        .find(|(lo, hi, x, _, ino)| *x && *ino != "0" && (*lo..*hi).contains(&addr))
    else {
        return Ok(Vec::new());
    };
    Ok(parsed
        .iter()
        .filter(|(_, _, x, d, i)| *x && *d == dev && *i == ino)
        .map(|(lo, hi, ..)| (*lo, *hi))
        .collect())
}
