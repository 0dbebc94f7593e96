//! The shared-memory directory (`/dev/shm`) as a listing sees it: its
//! entries, and objects opened for inspection without following a link or
//! blocking on a special file.

use crate::error::{Error, Result};
use rustix::fs::{self, FileType, Mode, OFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Where POSIX shm names live on Linux.
pub(crate) const DIR: &str = "/dev/shm";

/// The names (with their leading `/`) of the regular files in [`DIR`].
pub(crate) fn names() -> Result<Vec<String>> {
    let dir = fs::open(
        DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open /dev/shm", e.into()))?;
    let mut out = Vec::new();
    let entries = fs::Dir::read_from(&dir).map_err(|e| Error::io("read /dev/shm", e.into()))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read /dev/shm", e.into()))?;
        // Unknown types are checked on open; anything else is skipped.
        if !matches!(entry.file_type(), FileType::RegularFile | FileType::Unknown) {
            continue;
        }
        if let Ok(name) = entry.file_name().to_str() {
            if name != "." && name != ".." {
                out.push(format!("/{name}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Opens `/dev/shm` + `name` for inspection: never through a symlink
/// (`O_NOFOLLOW`), never blocking (a fifo), only if it is a regular file
/// (checked on the descriptor). `write` asks for a read-write descriptor.
pub(crate) fn open(name: &str, write: bool) -> Result<OwnedFd> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let path = format!("{DIR}{name}");
    let fd = fs::open(path.as_str(), flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::NOENT => Error::NotFound {
            name: name.to_owned(),
        },
        rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => Error::PermissionDenied {
            name: name.to_owned(),
        },
        rustix::io::Errno::LOOP => Error::InvalidName {
            name: name.to_owned(),
            reason: "names a symbolic link",
        },
        e => Error::io("open a /dev/shm object", e.into()),
    })?;
    if !is_regular(fd.as_fd())? {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "does not name a regular file",
        });
    }
    Ok(fd)
}

fn is_regular(fd: BorrowedFd<'_>) -> Result<bool> {
    let st = fs::fstat(fd).map_err(|e| Error::io("fstat", e.into()))?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
}

/// Reads up to `buf.len()` bytes at `offset` (fewer at the end of the
/// file); returns how many.
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("pread", e.into())),
        }
    }
    Ok(done)
}
