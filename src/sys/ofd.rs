//! Byte-range open-file-description locks (`F_OFD_SETLK`, `F_OFD_GETLK`).
//!
//! An OFD lock belongs to an open file description, not to a process or a
//! thread, and the kernel drops it when the last descriptor referring to
//! that description is closed — in particular when its process dies,
//! however it dies. That makes "is byte N locked?" a liveness test that a
//! reused pid cannot fool.

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd};

fn byte(offset: u64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes a write lock on byte `offset` without blocking; `Ok(false)` if
/// another open file description holds a lock there.
pub(crate) fn try_lock_byte(fd: BorrowedFd<'_>, offset: u64) -> Result<bool> {
    let mut fl = byte(offset, libc::F_WRLCK as libc::c_short);
    loop {
        // SAFETY: a valid descriptor and a pointer to a live, initialized
        // `flock` that the call may write.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(false),
            _ => return Err(Error::io("fcntl(F_OFD_SETLK)", e)),
        }
    }
}

/// Whether another open file description holds a lock on byte `offset`.
pub(crate) fn byte_locked_by_other(fd: BorrowedFd<'_>, offset: u64) -> Result<bool> {
    let mut fl = byte(offset, libc::F_WRLCK as libc::c_short);
    get_lock(fd, &mut fl)
}

/// `F_OFD_GETLK` for the range `fl` describes: whether another open file
/// description holds a lock that conflicts with it.
fn get_lock(fd: BorrowedFd<'_>, fl: &mut libc::flock) -> Result<bool> {
    loop {
        // SAFETY: as in `try_lock_byte`.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut *fl) };
        if r == 0 {
            return Ok(fl.l_type != libc::F_UNLCK as libc::c_short);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io("fcntl(F_OFD_GETLK)", e));
        }
    }
}

/// Whether another open file description holds a lock on any byte of
/// `offset..offset + len`.
pub(crate) fn range_locked_by_other(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<bool> {
    let mut fl = byte(offset, libc::F_WRLCK as libc::c_short);
    fl.l_len = len as libc::off_t;
    get_lock(fd, &mut fl)
}
