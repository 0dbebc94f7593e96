//! Shared-memory file descriptors: POSIX shm objects, memfds, and what is
//! asked of them (size, owner, mode, seals, locks).

use crate::error::{Error, Result};
use rustix::fs::{self, AtFlags, FileType, FlockOperation, MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;
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
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
}

/// The outcome of an exclusive create.
pub(crate) enum Created {
    New(OwnedFd),
    Exists,
}

/// Where Linux keeps POSIX shared-memory names (as glibc's `shm_open`).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The path of a validated name (`/` then no other `/` nor NUL).
fn shm_path(name: &str) -> String {
    debug_assert!(name.starts_with('/') && !name[1..].contains('/'));
    format!("{SHM_DIR}{name}")
}

/// Creates `name` as a new object: `open("/dev/shm/<name>",
/// O_CREAT|O_EXCL|O_NOFOLLOW|O_RDWR|O_CLOEXEC, 0600)`, then `fchmod(0600)`
/// so the umask can neither widen nor narrow the mode. `O_EXCL` never
/// follows a symbolic link (a link under the name, even a dangling one, is
/// [`Created::Exists`]); `O_NOFOLLOW` says so again.
pub(crate) fn shm_create_excl(name: &str) -> Result<Created> {
    let path = shm_path(name);
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
    match fs::open(path.as_str(), flags, Mode::RUSR | Mode::WUSR) {
        Ok(fd) => {
            if let Err(e) = fs::fchmod(&fd, Mode::RUSR | Mode::WUSR) {
                let _ = fs::unlink(path.as_str());
                return Err(Error::io("fchmod", e.into()));
            }
            Ok(Created::New(fd))
        }
        Err(Errno::EXIST) => Ok(Created::Exists),
        Err(e) => Err(open_error(name, &path, "shm_open", e)),
    }
}

/// Opens the existing object `name` read-write, refusing anything but a
/// regular file with [`Error::NotARegularFile`].
///
/// `O_NOFOLLOW`: a symbolic link under the name is refused (`ELOOP`), never
/// followed to a file elsewhere (glibc's `shm_open` does the same).
/// `O_NONBLOCK`: a fifo under the name cannot block the open (cleared again
/// once the descriptor is known to be a regular file). `O_NOCTTY`: a
/// terminal cannot become the controlling one. The type is then checked on
/// the descriptor itself, so what is checked is what was opened.
pub(crate) fn shm_open(name: &str) -> Result<OwnedFd> {
    let path = shm_path(name);
    let flags =
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = fs::open(path.as_str(), flags, Mode::empty())
        .map_err(|e| open_error(name, &path, "shm_open", e))?;
    let st = fs::fstat(&fd).map_err(|e| Error::io("fstat", e.into()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(not_regular(name, kind));
    }
    let status = fs::fcntl_getfl(&fd).map_err(|e| Error::io("fcntl(F_GETFL)", e.into()))?;
    fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)
        .map_err(|e| Error::io("fcntl(F_SETFL)", e.into()))?;
    Ok(fd)
}

/// `unlink("/dev/shm/<name>")` (`shm_unlink`): removes the name, never
/// what a symbolic link under it points at.
pub(crate) fn shm_unlink(name: &str) -> Result<()> {
    let path = shm_path(name);
    fs::unlink(path.as_str()).map_err(|e| open_error(name, &path, "shm_unlink", e))
}

/// What a file type is called in [`Error::NotARegularFile`].
fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

fn not_regular(name: &str, kind: FileType) -> Error {
    Error::NotARegularFile {
        name: name.to_owned(),
        found: kind_name(kind),
    }
}

/// The error for a failed open (or unlink) of `path`. The errors that an
/// object other than a regular file gives (`ELOOP` for a symbolic link
/// under `O_NOFOLLOW`, `EISDIR` for a directory, `ENXIO` for a socket or a
/// device without a driver) become [`Error::NotARegularFile`], naming what
/// `lstat` finds there.
fn open_error(name: &str, path: &str, op: &'static str, e: Errno) -> Error {
    if matches!(e, Errno::LOOP | Errno::ISDIR | Errno::NXIO | Errno::NODEV) {
        let found = fs::statat(fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode))
            .ok()
            .filter(|k| *k != FileType::RegularFile);
        let fallback = match e {
            Errno::LOOP => Some(FileType::Symlink),
            Errno::ISDIR => Some(FileType::Directory),
            _ => None,
        };
        if let Some(kind) = found.or(fallback) {
            return not_regular(name, kind);
        }
    }
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
        mode: st.st_mode & 0o7777,
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
