//! The shared-memory directory as a listing sees it: its entries, and
//! objects read by copy (a listing never maps what it does not trust).
//! Objects are opened with [`super::fd::shm_open`], which never follows a
//! link nor blocks on a special file.

use super::fd::SHM_DIR as DIR;
use crate::error::{Error, Result};
use rustix::fs::{self, FileType, Mode, OFlags};
use std::os::fd::BorrowedFd;

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
