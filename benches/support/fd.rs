//! Descriptors for children: pipes, and passing a descriptor to a child
//! through inheritance and an environment variable.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

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
