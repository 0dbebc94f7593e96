//! The header at the start of every region, and the init-once handshake
//! that publishes it.
//!
//! ```text
//! offset  field         written by        notes
//!      0  magic         creator           b"shmkit\0R", fixed in every version
//!      8  version       creator           fixed position in every version
//!     12  state         creator           EMPTY -> INITIALIZING -> READY (futex word),
//!                       or a recoverer    EMPTY/INITIALIZING -> ABANDONED
//!     16  layout        creator           LayoutId of what the data holds
//!     24  total_size    creator           header + data, bytes
//!     32  data_offset   creator           always DATA_OFFSET in version 2
//!     40  creator_pid   creator
//!     44  creator_uid   creator
//!     48  checksum      creator           FNV-1a of the other fields
//!     56  kind          creator           what the region holds (ObjectKind), for listings
//!     60  reserved      nobody            zero
//! ```
//!
//! Invariants: every field is an atomic, so a peer scribbling on the header
//! is a wrong value, never a data race. The creator writes every field
//! (Relaxed), then stores `READY` into `state` with Release and wakes all
//! futex waiters; an opener loads `state` with Acquire and reads the fields
//! only after seeing `READY`. A file whose pages are still zero is a region
//! being created; a non-zero magic other than [`MAGIC`] is a foreign file and
//! is rejected at once.
//!
//! A creator that dies before `READY` leaves a stale object. Openers detect
//! it through a probe the caller supplies (for named regions: the creator
//! holds an exclusive `flock` from creation to publication), and a process
//! that replaces the object first marks it `ABANDONED`, so that every
//! opener still waiting on it gives up at once.

use crate::error::{Error, Result};
use crate::primitive::{futex_wait, futex_wake_all, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `b"shmkit\0R"` read as a little-endian integer.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmkit\0R");
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 2;
/// Bytes in the header; the data starts here (a multiple of the cache line
/// and of every alignment a placed type may ask for up to 128).
pub(crate) const HEADER_SIZE: usize = 128;
/// Where the data starts: after the header and the participant table
/// (version 2; version 1 had no table and started the data at 128).
pub(crate) const DATA_OFFSET: usize = HEADER_SIZE + super::participants::TABLE_SIZE;

/// `state` before the creator touched the header (zero-filled pages).
const EMPTY: u32 = 0;
/// `state` while the creator writes the header and the data.
const INITIALIZING: u32 = 1;
/// `state` once everything is written; never changes again.
const READY: u32 = 2;
/// `state` of an object whose creator died before publishing it; set by
/// the process that removes it, never changes again.
const ABANDONED: u32 = 3;

/// How often a waiting opener runs its liveness probe.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// The fields a creator writes and an opener reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub version: u32,
    pub layout: u64,
    pub total_size: u64,
    pub data_offset: u64,
    pub creator_pid: u32,
    pub creator_uid: u32,
    pub kind: u32,
}

impl Fields {
    /// FNV-1a over every field and the magic.
    pub(crate) fn checksum(&self) -> u64 {
        let mut h = super::layout::Fnv::new();
        h.write_u64(MAGIC);
        h.write_u64(u64::from(self.version));
        h.write_u64(self.layout);
        h.write_u64(self.total_size);
        h.write_u64(self.data_offset);
        h.write_u64(u64::from(self.creator_pid));
        h.write_u64(u64::from(self.creator_uid));
        h.write_u64(u64::from(self.kind));
        h.finish()
    }
}

/// The region header; see the module doc for its layout.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    layout: AtomicU64,
    total_size: AtomicU64,
    data_offset: AtomicU64,
    creator_pid: AtomicU32,
    creator_uid: AtomicU32,
    checksum: AtomicU64,
    kind: AtomicU32,
    reserved_32: AtomicU32,
    reserved: [AtomicU64; 8],
}

#[cfg(not(shmkit_loom))]
const _: () = {
    assert!(core::mem::size_of::<Header>() == HEADER_SIZE);
    assert!(core::mem::align_of::<Header>() <= 8);
};

impl Header {
    /// A header as zero-filled pages hold it: what loom models start from.
    #[cfg(test)]
    pub(crate) fn zeroed() -> Self {
        Self {
            magic: AtomicU64::new(0),
            version: AtomicU32::new(0),
            state: AtomicU32::new(EMPTY),
            layout: AtomicU64::new(0),
            total_size: AtomicU64::new(0),
            data_offset: AtomicU64::new(0),
            creator_pid: AtomicU32::new(0),
            creator_uid: AtomicU32::new(0),
            checksum: AtomicU64::new(0),
            kind: AtomicU32::new(0),
            reserved_32: AtomicU32::new(0),
            reserved: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Creator, step 1: writes every field but leaves the region not ready.
    /// Only the process that created the object may call this, once.
    pub(crate) fn begin_init(&self, f: &Fields) {
        self.state.store(INITIALIZING, Ordering::Relaxed);
        self.version.store(f.version, Ordering::Relaxed);
        self.layout.store(f.layout, Ordering::Relaxed);
        self.total_size.store(f.total_size, Ordering::Relaxed);
        self.data_offset.store(f.data_offset, Ordering::Relaxed);
        self.creator_pid.store(f.creator_pid, Ordering::Relaxed);
        self.creator_uid.store(f.creator_uid, Ordering::Relaxed);
        self.kind.store(f.kind, Ordering::Relaxed);
        self.checksum.store(f.checksum(), Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Relaxed);
    }

    /// Creator, step 2, after the data is initialized: publishes the region
    /// (Release) and wakes every opener waiting for it.
    pub(crate) fn publish(&self) {
        self.state.store(READY, Ordering::Release);
        futex_wake_all(&self.state);
    }

    /// Whether the region has been published.
    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Recoverer: marks an object whose creator died as abandoned and wakes
    /// every opener waiting on it. The caller has established (under an
    /// exclusive lock) that the creator is gone and the region not ready.
    pub(crate) fn abandon(&self) {
        self.state.store(ABANDONED, Ordering::Release);
        futex_wake_all(&self.state);
    }

    fn died(&self) -> Error {
        Error::CreatorDied {
            pid: self.creator_pid.load(Ordering::Relaxed),
        }
    }

    /// Opener: waits until the region is ready or `deadline` passes, then
    /// reads and checks the header (magic, version, checksum).
    ///
    /// While it waits it calls `creator_alive` every few milliseconds;
    /// `Ok(false)` means the creator is gone, and unless the region became
    /// ready meanwhile the wait ends with [`Error::CreatorDied`].
    ///
    /// Returns [`Error::NotShmkit`] at once for a foreign magic,
    /// [`Error::InitTimeout`] (saying how long it waited since `started`) if the creator has not published by `deadline`.
    pub(crate) fn wait_ready(
        &self,
        started: Instant,
        deadline: Option<Instant>,
        creator_alive: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<Fields> {
        loop {
            let magic = self.magic.load(Ordering::Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(Error::NotShmkit { found: magic });
            }
            let state = self.state.load(Ordering::Acquire);
            match state {
                READY => return self.read_ready(),
                ABANDONED => return Err(self.died()),
                EMPTY | INITIALIZING => {
                    if !creator_alive()? {
                        // It may have published just before letting go.
                        if self.is_ready() {
                            continue;
                        }
                        return Err(self.died());
                    }
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(Error::InitTimeout {
                            waited: started.elapsed(),
                        });
                    }
                    let slice = now + PROBE_INTERVAL;
                    futex_wait(
                        &self.state,
                        state,
                        Some(deadline.map_or(slice, |d| d.min(slice))),
                    );
                }
                _ if magic == MAGIC => {
                    return Err(Error::Corrupted {
                        what: "header state word",
                    })
                }
                _ => return Err(Error::NotShmkit { found: magic }),
            }
        }
    }

    /// Reads the fields of a header whose state was seen `READY` (Acquire).
    fn read_ready(&self) -> Result<Fields> {
        let magic = self.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(Error::NotShmkit { found: magic });
        }
        let version = self.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: VERSION,
            });
        }
        let f = Fields {
            version,
            layout: self.layout.load(Ordering::Relaxed),
            total_size: self.total_size.load(Ordering::Relaxed),
            data_offset: self.data_offset.load(Ordering::Relaxed),
            creator_pid: self.creator_pid.load(Ordering::Relaxed),
            creator_uid: self.creator_uid.load(Ordering::Relaxed),
            kind: self.kind.load(Ordering::Relaxed),
        };
        if self.checksum.load(Ordering::Relaxed) != f.checksum() {
            return Err(Error::Corrupted {
                what: "header checksum",
            });
        }
        Ok(f)
    }
}

/// What the bytes of a header say, read by copy: listings never map an
/// object they do not trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not a shmkit object (a non-zero foreign magic).
    Foreign,
    /// Nothing written yet: a creator before its header, or one that died
    /// there.
    Empty,
    /// A creator that has not published (or died before publishing).
    Initializing,
    /// Marked abandoned: its creator died, or it was removed.
    Abandoned,
    /// A shmkit object of another format version.
    OtherVersion(u32),
    /// A shmkit header holding values no creator writes.
    Corrupted(&'static str),
    /// Published; its fields passed the checksum.
    Ready(Fields),
}

/// Reads a header from its first [`HEADER_SIZE`] bytes (fewer: what is
/// there, the rest taken as zero).
pub(crate) fn inspect(bytes: &[u8]) -> Seen {
    let u32_at = |at: usize| {
        u32::from_le_bytes(std::array::from_fn(|i| {
            bytes.get(at + i).copied().unwrap_or(0)
        }))
    };
    let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
    let magic = u64_at(0);
    if magic == 0 {
        return Seen::Empty;
    }
    if magic != MAGIC {
        return Seen::Foreign;
    }
    let version = u32_at(8);
    if version != VERSION {
        return Seen::OtherVersion(version);
    }
    match u32_at(12) {
        EMPTY | INITIALIZING => return Seen::Initializing,
        ABANDONED => return Seen::Abandoned,
        READY => {}
        _ => return Seen::Corrupted("header state word"),
    }
    let f = Fields {
        version,
        layout: u64_at(16),
        total_size: u64_at(24),
        data_offset: u64_at(32),
        creator_pid: u32_at(40),
        creator_uid: u32_at(44),
        kind: u32_at(56),
    };
    if u64_at(48) != f.checksum() {
        return Seen::Corrupted("header checksum");
    }
    Seen::Ready(f)
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields() -> Fields {
        Fields {
            version: VERSION,
            layout: 7,
            total_size: 4096,
            data_offset: HEADER_SIZE as u64,
            creator_pid: 1,
            creator_uid: 2,
            kind: 3,
        }
    }

    #[test]
    fn published_header_reads_back() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        h.publish();
        assert_eq!(
            h.wait_ready(Instant::now(), None, &mut || Ok(true))
                .unwrap(),
            fields()
        );
    }

    #[test]
    fn unpublished_header_times_out() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        let t = Instant::now();
        let err = h
            .wait_ready(t, Some(t + Duration::from_millis(20)), &mut || Ok(true))
            .unwrap_err();
        assert!(matches!(err, Error::InitTimeout { .. }), "{err:?}");
    }

    #[test]
    fn foreign_magic_is_rejected_at_once() {
        let h = Header::zeroed();
        h.magic.store(0x1234, Ordering::Relaxed);
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(true))
            .unwrap_err();
        assert!(matches!(err, Error::NotShmkit { found: 0x1234 }), "{err:?}");
    }

    #[test]
    fn scribbled_field_fails_checksum() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        h.publish();
        h.total_size.store(1 << 40, Ordering::Relaxed);
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(true))
            .unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    }

    #[test]
    fn a_dead_creator_ends_the_wait() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(false))
            .unwrap_err();
        assert!(matches!(err, Error::CreatorDied { pid: 1 }), "{err:?}");
        // Unless it published first.
        h.publish();
        h.wait_ready(Instant::now(), None, &mut || Ok(false))
            .unwrap();
    }

    #[test]
    fn an_abandoned_header_ends_the_wait() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        h.abandon();
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(true))
            .unwrap_err();
        assert!(matches!(err, Error::CreatorDied { pid: 1 }), "{err:?}");
    }

    #[test]
    fn garbage_state_is_corruption() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        h.state.store(99, Ordering::Relaxed);
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(true))
            .unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    }

    #[test]
    fn other_version_is_reported_before_checksum() {
        let h = Header::zeroed();
        h.begin_init(&fields());
        h.publish();
        h.version.store(VERSION + 1, Ordering::Relaxed);
        let err = h
            .wait_ready(Instant::now(), None, &mut || Ok(true))
            .unwrap_err();
        assert!(
            matches!(err, Error::VersionMismatch { found, expected: VERSION } if found == VERSION + 1),
            "{err:?}"
        );
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// The init-once handshake: an opener that sees READY sees every field
    /// the creator wrote, and an opener that went to sleep before READY is
    /// woken (a lost wake-up would deadlock the model).
    #[test]
    fn init_handshake() {
        loom::model(|| {
            let h = Arc::new(Header::zeroed());
            let f = Fields {
                version: VERSION,
                layout: 0xfeed,
                total_size: 4096,
                data_offset: HEADER_SIZE as u64,
                creator_pid: 10,
                creator_uid: 20,
                kind: 1,
            };
            let opener = {
                let h = h.clone();
                loom::thread::spawn(move || {
                    h.wait_ready(Instant::now(), None, &mut || Ok(true))
                        .unwrap()
                })
            };
            h.begin_init(&f);
            h.publish();
            assert_eq!(opener.join().unwrap(), f);
        });
    }
}
