//! The create/open handshake: the steps between creating an object and
//! its being ready (size, map, header, `init`, publish), validation on
//! open, joining the participants, and recovering a stale name.

use super::header::{Fields, Header, DATA_OFFSET, HEADER_SIZE, VERSION};
use super::participants::{self, Membership};
use super::placement::Placements;
use super::{Kind, Region, RegionOptions};
use crate::error::{Error, Result};
use crate::sys::{self, map::Mapping};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long an empty, unlocked named object must stay so before an opener
/// takes its creator for dead (see [`RegionOptions::open`]).
const STALE_GRACE: Duration = Duration::from_millis(100);

impl RegionOptions {
    /// Sizes, maps, initializes and publishes a named object this process
    /// created and [claimed](claim). On failure the name is removed (it is
    /// ours: we hold the object's exclusive lock) and waiting openers see
    /// the object abandoned or its creator gone.
    pub(super) fn init_named(
        &self,
        name: &str,
        fd: OwnedFd,
        total: u64,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<Region> {
        let map = match sys::fd::set_len(fd.as_fd(), total)
            .and_then(|()| Mapping::new(fd.as_fd(), total as usize))
        {
            Ok(map) => map,
            Err(e) => {
                let _ = sys::fd::shm_unlink(name);
                return Err(e);
            }
        };
        // Until published, dropping the region (an `init` error or panic)
        // removes the name whatever `keep` says: a half-made region must
        // not outlive its creator.
        let kind = Kind::Named {
            name: name.to_owned(),
            unlink: true,
        };
        let mut region = self.publish_new(map, fd, kind, total, init)?;
        if let Kind::Named { unlink, .. } = &mut region.kind {
            *unlink = !self.keep;
        }
        sys::fd::unlock(region.fd.as_fd());
        Ok(region)
    }

    /// Writes the header of a sized, mapped object this process created,
    /// runs `init`, publishes. If `init` fails the header is marked
    /// abandoned so openers stop waiting at once.
    pub(super) fn publish_new(
        &self,
        map: Mapping,
        fd: OwnedFd,
        kind: Kind,
        total: u64,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<Region> {
        let fields = Fields {
            version: VERSION,
            layout: self.layout.to_raw(),
            total_size: total,
            data_offset: DATA_OFFSET as u64,
            creator_pid: sys::fd::pid(),
            creator_uid: sys::fd::euid(),
            kind: self.kind.to_raw(),
        };
        let region = Region {
            _membership: join(&map, total as usize, fd.as_fd())?,
            map,
            fd,
            kind,
            created: true,
            fields,
            placements: Placements::default(),
        };
        region.header().begin_init(&fields);
        if let Err(e) = init(&region) {
            region.header().abandon();
            return Err(e);
        }
        region.header().publish();
        Ok(region)
    }

    /// Validates an object someone else created: owner, size, header,
    /// layout; waits for the creator up to the deadline.
    pub(super) fn validate(&self, fd: OwnedFd, kind: Kind, started: Instant) -> Result<Region> {
        let deadline = self.deadline(started);
        let euid = sys::fd::euid();
        let named = matches!(kind, Kind::Named { .. });
        // A named object's creator holds an exclusive flock from just after
        // creating it until it publishes it (anonymous regions are published
        // before anyone else can see them, and share the creator's open file
        // description, so the probe means nothing for them).
        let creator_alive = |fd: BorrowedFd<'_>| -> Result<bool> {
            if named && sys::fd::try_lock_shared(fd)? {
                sys::fd::unlock(fd);
                return Ok(false);
            }
            Ok(true)
        };
        let mut backoff = Duration::from_micros(50);
        let mut unlocked_since: Option<Instant> = None;
        let info = loop {
            let info = sys::fd::info(fd.as_fd())?;
            match &kind {
                Kind::Named { name, .. } => check_private(name, &info)?,
                // A memfd is mode 0777 by nature, and reachable only by
                // descriptor: its owner is what says who made it.
                Kind::Anonymous if info.uid != euid => {
                    return Err(Error::ForeignOwner {
                        owner: info.uid,
                        expected: euid,
                    })
                }
                Kind::Anonymous => {}
            }
            // A size of zero is a creator between `O_EXCL` and `ftruncate`.
            if info.size != 0 {
                break info;
            }
            // Empty and unlocked: a creator between `O_EXCL` and `flock`
            // (microseconds), or one that died there. Only a long stretch
            // of it counts as death.
            if creator_alive(fd.as_fd())? {
                unlocked_since = None;
            } else if unlocked_since.get_or_insert_with(Instant::now).elapsed() >= STALE_GRACE {
                return Err(Error::CreatorDied { pid: 0 });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::InitTimeout {
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
        };
        if info.size < HEADER_SIZE as u64 {
            return Err(Error::TooSmall {
                size: info.size,
                min: HEADER_SIZE as u64,
            });
        }
        let len = usize::try_from(info.size)
            .ok()
            .filter(|l| *l <= isize::MAX as usize)
            .ok_or(Error::InvalidSize {
                size: info.size,
                reason: "too large to map",
            })?;
        let map = Mapping::new(fd.as_fd(), len)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked above)
        // and page-aligned; `Header` is all atomics, valid for any bytes.
        let header = unsafe { &*(map.ptr() as *const Header) };
        let fields = header.wait_ready(started, deadline, &mut || creator_alive(fd.as_fd()))?;
        if fields.total_size > info.size {
            return Err(Error::Truncated {
                claimed: fields.total_size,
                actual: info.size,
            });
        }
        if fields.total_size < info.size {
            return Err(Error::Corrupted {
                what: "object is larger than its header claims",
            });
        }
        if fields.data_offset != DATA_OFFSET as u64 || fields.total_size < fields.data_offset {
            return Err(Error::Corrupted {
                what: "data offset in header",
            });
        }
        if fields.creator_uid != info.uid {
            return Err(Error::Corrupted {
                what: "creator uid in header differs from the object's owner",
            });
        }
        if !self.any_layout && fields.layout != self.layout.to_raw() {
            return Err(Error::LayoutMismatch {
                found: fields.layout,
                expected: self.layout.to_raw(),
            });
        }
        let data_len = (fields.total_size - fields.data_offset) as usize;
        if let Some(size) = self.size {
            if size != data_len {
                return Err(Error::InvalidSize {
                    size: data_len as u64,
                    reason: "the existing region has another size",
                });
            }
        }
        // The object may have been cut between fstat and mapping.
        let now = sys::fd::info(fd.as_fd())?;
        if now.size < info.size {
            return Err(Error::Truncated {
                claimed: fields.total_size,
                actual: now.size,
            });
        }
        let membership = join(&map, len, fd.as_fd())?;
        if let Kind::Named { name, .. } = &kind {
            confirm_not_removed(name, fd.as_fd(), header, deadline, started)?;
        }
        Ok(Region {
            _membership: membership,
            map,
            fd,
            kind,
            created: false,
            fields,
            placements: Placements::default(),
        })
    }
}

/// An opener's last step, after joining the participants: makes sure no
/// [`remove_if_unused`](objects::remove_if_unused) removed the object
/// meanwhile. A remover holds the object's exclusive `flock` from before
/// it checks for participants until the name is gone, and marks the
/// object abandoned first: so under the shared `flock`, an object still
/// ready was not (and now cannot be) removed under us.
fn confirm_not_removed(
    name: &str,
    fd: BorrowedFd<'_>,
    header: &Header,
    deadline: Option<Instant>,
    started: Instant,
) -> Result<()> {
    let mut backoff = Duration::from_micros(20);
    while !sys::fd::try_lock_shared(fd)? {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::InitTimeout {
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(2));
    }
    let ready = header.is_ready();
    sys::fd::unlock(fd);
    if ready {
        Ok(())
    } else {
        Err(Error::NotFound {
            name: name.to_owned(),
        })
    }
}

/// Joins the participant table of the object `map` maps (`len` bytes, at
/// least [`DATA_OFFSET`]), through `fd`.
fn join(map: &Mapping, len: usize, fd: BorrowedFd<'_>) -> Result<Membership> {
    debug_assert!(len >= DATA_OFFSET);
    // SAFETY: the table lies at HEADER_SIZE, inside the mapping (`len >=
    // DATA_OFFSET`, checked by every caller); every `Region` declares its
    // membership before its mapping, so the membership is dropped (and
    // leaves the table) first.
    unsafe {
        participants::join(
            fd,
            map.ptr(),
            len,
            map.ptr().add(HEADER_SIZE) as *const participants::Table,
        )
    }
}

/// Refuses a named object that is not this user's private object: owned
/// by another uid ([`Error::ForeignOwner`]), or with group or other
/// permission bits set ([`Error::InsecureMode`]), which would let another
/// user write it.
fn check_private(name: &str, info: &sys::fd::FileInfo) -> Result<()> {
    let euid = sys::fd::euid();
    if info.uid != euid {
        return Err(Error::ForeignOwner {
            owner: info.uid,
            expected: euid,
        });
    }
    if info.mode & 0o077 != 0 {
        return Err(Error::InsecureMode {
            name: name.to_owned(),
            mode: info.mode,
        });
    }
    Ok(())
}

/// Whether `name` still names the object `ours` refers to.
pub(super) fn names_object(name: &str, ours: BorrowedFd<'_>) -> bool {
    let Ok(mine) = sys::fd::info(ours) else {
        return false;
    };
    let Ok(fd) = sys::fd::shm_open(name) else {
        return false;
    };
    let Ok(theirs) = sys::fd::info(fd.as_fd()) else {
        return false;
    };
    (mine.dev, mine.ino) == (theirs.dev, theirs.ino)
}

/// Removes `name` only if it still names the object `ours` refers to: a
/// creator must not remove a region someone else has since created under
/// the same name.
pub(super) fn unlink_if_same(name: &str, ours: BorrowedFd<'_>) {
    if names_object(name, ours) {
        let _ = sys::fd::shm_unlink(name);
    }
}

/// A creator's first step after `O_EXCL`: takes the object's exclusive
/// lock (held until publication; openers probe it to tell a slow creator
/// from a dead one), then checks that the name still names the object.
/// `false` means a recoverer took the still-empty object for stale and
/// removed it in the instant before we locked it: the object is not ours.
pub(super) fn claim(name: &str, fd: &OwnedFd) -> Result<bool> {
    sys::fd::lock_exclusive(fd.as_fd())?;
    Ok(names_object(name, fd.as_fd()))
}

/// Removes the stale object under `name` whose creator died before
/// publishing it.
///
/// Holding the object's exclusive lock proves no creator is still working
/// on it and serializes recoverers; under it we re-check that it is not
/// ready, mark it abandoned (waking its waiters) and remove the name, which
/// cannot have changed: replacing the object needs this same lock. If the
/// lock is busy, another process is at it and the caller just retries.
pub(super) fn remove_stale(name: &str) -> Result<()> {
    let fd = match sys::fd::shm_open(name) {
        Ok(fd) => fd,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    if !sys::fd::try_lock_exclusive(fd.as_fd())? {
        return Ok(());
    }
    let info = sys::fd::info(fd.as_fd())?;
    check_private(name, &info)?;
    if info.size >= HEADER_SIZE as u64 {
        let map = Mapping::new(fd.as_fd(), HEADER_SIZE)?;
        // SAFETY: the mapping is HEADER_SIZE bytes of an object at least
        // that long, page-aligned; `Header` is all atomics.
        let header = unsafe { &*(map.ptr() as *const Header) };
        if header.is_ready() {
            return Ok(());
        }
        header.abandon();
    }
    if names_object(name, fd.as_fd()) {
        sys::fd::shm_unlink(name)?;
    }
    Ok(())
}
