//! Reading an object from outside, for the `inspect` functions of each
//! kind: its header, its participant table and its data are copied out
//! with `pread` from one descriptor; nothing is mapped, attached, locked
//! or written, so a tool looking at an object cannot disturb it, and a
//! truncated or scribbled object cannot hurt the tool. What is read is a
//! claim of the object's writers: callers decode it without trusting it.

use super::header::{DATA_OFFSET, HEADER_SIZE};
use super::objects::{check_owner, describe};
use super::participants;
use super::{ObjectInfo, ObjectKind, ObjectState};
use crate::error::{Error, Result};
use crate::sys::{self, shmdir};
use std::os::fd::{AsFd, OwnedFd};

/// An object open for reading from outside.
pub(crate) struct Outside {
    fd: OwnedFd,
    /// What the header says (its kind is one of those asked for, and it
    /// is ready).
    pub(crate) info: ObjectInfo,
    /// A copy of the participant table (shorter if the file is).
    table: Vec<u8>,
}

impl Outside {
    /// Opens object `name` if it is a ready object of one of `kinds`.
    ///
    /// Fails as [`inspect`](super::inspect) does for a bad name, a foreign
    /// file or another user's object, and with [`Error::LayoutMismatch`]
    /// for an object of another kind, or one that is not ready.
    pub(crate) fn open(name: &str, kinds: &[ObjectKind]) -> Result<Self> {
        super::name::validate(name)?;
        let fd = sys::fd::shm_open(name)?;
        check_owner(fd.as_fd())?;
        let info = describe(name, fd.as_fd())?.ok_or(Error::NotShmkit { found: 0 })?;
        if info.state != ObjectState::Ready || !kinds.contains(&info.kind) {
            return Err(Error::LayoutMismatch {
                found: info.layout.to_raw(),
                expected: 0,
            });
        }
        let mut table = vec![0u8; participants::TABLE_SIZE];
        let n = shmdir::read_at(fd.as_fd(), &mut table, HEADER_SIZE as u64)?;
        table.truncate(n);
        Ok(Outside { fd, info, table })
    }

    /// Up to `len` bytes of the object's data from `offset` (fewer if the
    /// file is shorter).
    pub(crate) fn data(&self, offset: usize, len: usize) -> Result<Words> {
        let mut buf = vec![0u8; len];
        let start = (DATA_OFFSET as u64).saturating_add(offset as u64);
        let n = shmdir::read_at(self.fd.as_fd(), &mut buf, start)?;
        buf.truncate(n);
        Ok(Words(buf))
    }

    /// The holder of participant token `raw` (as a lock word records it):
    /// the pid its slot records, and whether its handle is still open.
    /// `None` if `raw` cannot be a token.
    pub(crate) fn holder(&self, raw: u32) -> Result<Option<(u32, bool)>> {
        participants::holder(self.fd.as_fd(), &self.table, raw)
    }
}

/// Bytes read from an object, and the words in them (native-endian, 0
/// past the end: a short file reads as zeros, which callers check).
pub(crate) struct Words(pub(crate) Vec<u8>);

impl Words {
    pub(crate) fn u32_at(&self, at: usize) -> u32 {
        self.0
            .get(at..at.saturating_add(4))
            .map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
    }

    pub(crate) fn u64_at(&self, at: usize) -> u64 {
        self.0
            .get(at..at.saturating_add(8))
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
