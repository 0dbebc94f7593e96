//! A shared, read-write mapping of a whole file descriptor.

use crate::error::{Error, Result};
use memmap2::{MmapOptions, MmapRaw};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A `MAP_SHARED` read-write mapping of `len` bytes from offset 0.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: MmapRaw,
}

impl Mapping {
    /// Maps `len` bytes of `fd`. The caller must have checked that the
    /// object is at least `len` bytes long, or touching the tail raises
    /// `SIGBUS`.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self> {
        let raw = MmapOptions::new()
            .len(len)
            .map_raw(fd.as_raw_fd())
            .map_err(|e| Error::io("mmap", e))?;
        Ok(Self { raw })
    }

    /// The first byte of the mapping; page-aligned.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }
}
