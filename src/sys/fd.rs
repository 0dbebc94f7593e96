//! Shared-memory file descriptors: POSIX shm objects, memfds, and what is
//! asked of them (size, owner, mode, seals, locks).

use crate::error::{Error, Result};
use rustix::fs::{self, FlockOperation, MemfdFlags, Mode, SealFlags};
use rustix::io::Errno;
use rustix::shm;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The seals every anonymous region carries: its size can never change.
pub(crate) const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// What `fstat` says about a descriptor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    pub size: u64,
    pub uid: u32,
    pub dev: u64,
    pub ino: u64,
}

/// The outcome of an exclusive create.
pub(crate) enum Created {
    New(OwnedFd),
    Exists,
}

/// `shm_open(name, O_CREAT|O_EXCL|O_RDWR, 0600)` then `fchmod(0600)` so the
/// umask can neither widen nor narrow the mode.
pub(crate) fn shm_create_excl(name: &str) -> Result<Created> {
    let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
    match shm::open(name, flags, Mode::RUSR | Mode::WUSR) {
        Ok(fd) => {
            if let Err(e) = fs::fchmod(&fd, Mode::RUSR | Mode::WUSR) {
                let _ = shm::unlink(name);
                return Err(Error::io("fchmod", e.into()));
            }
            Ok(Created::New(fd))
        }
        Err(Errno::EXIST) => Ok(Created::Exists),
        Err(e) => Err(name_error(name, "shm_open", e)),
    }
}

/// `shm_open(name, O_RDWR)`.
pub(crate) fn shm_open(name: &str) -> Result<OwnedFd> {
    shm::open(name, shm::OFlags::RDWR, Mode::empty()).map_err(|e| name_error(name, "shm_open", e))
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &str) -> Result<()> {
    shm::unlink(name).map_err(|e| name_error(name, "shm_unlink", e))
}

fn name_error(name: &str, op: &'static str, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::NotFound {
            name: name.to_owned(),
        },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: name.to_owned(),
        },
        Errno::NAMETOOLONG | Errno::INVAL => Error::InvalidName {
            name: name.to_owned(),
            reason: "rejected by the system",
        },
        e => Error::io(op, e.into()),
    }
}

/// A new sealable memfd.
pub(crate) fn memfd(debug_name: &str) -> Result<OwnedFd> {
    fs::memfd_create(debug_name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| Error::io("memfd_create", e.into()))
}

/// Adds [`REQUIRED_SEALS`] to a memfd.
pub(crate) fn seal(fd: BorrowedFd<'_>) -> Result<()> {
    fs::fcntl_add_seals(fd, REQUIRED_SEALS).map_err(|e| Error::io("fcntl(F_ADD_SEALS)", e.into()))
}

/// The seals on `fd`; empty for objects that cannot be sealed.
pub(crate) fn seals(fd: BorrowedFd<'_>) -> SealFlags {
    fs::fcntl_get_seals(fd).unwrap_or(SealFlags::empty())
}

/// `ftruncate(fd, len)`.
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> Result<()> {
    fs::ftruncate(fd, len).map_err(|e| Error::io("ftruncate", e.into()))
}

/// `fstat(fd)`.
pub(crate) fn info(fd: BorrowedFd<'_>) -> Result<FileInfo> {
    let st = fs::fstat(fd).map_err(|e| Error::io("fstat", e.into()))?;
    Ok(FileInfo {
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// This process's effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's pid.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Takes an exclusive `flock`, waiting for shared holders to let go.
pub(crate) fn lock_exclusive(fd: BorrowedFd<'_>) -> Result<()> {
    loop {
        match fs::flock(fd, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::io("flock", e.into())),
        }
    }
}

/// Takes an exclusive `flock` without blocking; `Ok(false)` if another
/// open file description holds a lock.
pub(crate) fn try_lock_exclusive(fd: BorrowedFd<'_>) -> Result<bool> {
    try_lock(fd, FlockOperation::NonBlockingLockExclusive)
}

/// Takes a shared `flock` without blocking; `Ok(false)` if another open
/// file description holds an exclusive lock.
pub(crate) fn try_lock_shared(fd: BorrowedFd<'_>) -> Result<bool> {
    try_lock(fd, FlockOperation::NonBlockingLockShared)
}

/// Releases this open file description's `flock`.
pub(crate) fn unlock(fd: BorrowedFd<'_>) {
    let _ = fs::flock(fd, FlockOperation::Unlock);
}

fn try_lock(fd: BorrowedFd<'_>, op: FlockOperation) -> Result<bool> {
    loop {
        match fs::flock(fd, op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::io("flock", e.into())),
        }
    }
}

/// Clears `FD_CLOEXEC` on `fd`. Async-signal-safe: used between `fork` and
/// `exec`.
pub(crate) fn clear_cloexec(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(Into::into)
}

/// A duplicate of `fd` with `FD_CLOEXEC` set.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0)
        .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e.into()))
}
