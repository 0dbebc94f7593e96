//! Finding and sweeping shmkit objects: what a crashed program left in
//! `/dev/shm`.
//!
//! [`list`] reports every shmkit object of this user, read by copy (an
//! object is never mapped, so a truncated or scribbled one cannot hurt the
//! caller); [`remove_if_unused`] and [`sweep`] remove the ones no live
//! process has open.
//!
//! "In use" is the same fact lock owners rest on
//! ([`participants`](super::participants)): every open region handle holds
//! an OFD lock on a byte of the object's own file, which the kernel drops
//! when the handle closes or its process dies. A creator still
//! initializing holds the object's exclusive `flock`.
//!
//! Removal can race with a process opening the object. The remover holds
//! the object's exclusive `flock` while it checks that nobody has it open,
//! marks it abandoned and removes the name; an opener, once it has joined
//! the object's participants, takes the shared `flock` and checks that the
//! object was not marked meanwhile. So either the remover sees the opener
//! and leaves the object alone, or the opener sees the mark and reports
//! the object gone ([`Error::NotFound`], which
//! [`RegionOptions::open_or_create`](super::RegionOptions::open_or_create)
//! answers by creating a fresh one).
//!
//! Objects of another format version are listed but never removed: their
//! handles may not record themselves the way this version's do, so that
//! nobody uses them cannot be shown.

use super::header::{self, Header, Seen, DATA_OFFSET, HEADER_SIZE};
use super::participants;
use super::{names_object, LayoutId};
use crate::error::{Error, Result};
use crate::sys::{self, map::Mapping, shmdir};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};

/// What a region holds, as its creator recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A region of bytes (or a type the crate does not know).
    Region,
    /// One value ([`Shm<T>`](super::Shm), [`RegionOptions::for_type`](super::RegionOptions::for_type)).
    Value,
    /// An SPSC channel ([`channel`](crate::channel::channel)).
    SpscChannel,
    /// An MPMC channel ([`mpmc_channel`](crate::channel::mpmc_channel)).
    MpmcChannel,
    /// A byte channel ([`byte_channel`](crate::channel::byte_channel)).
    ByteChannel,
    /// A publish/subscribe service ([`crate::pubsub`]).
    PubSub,
    /// A request/response service ([`crate::reqresp`]).
    ReqResp,
    /// A [`Mutex`](crate::sync::Mutex) alone in its region
    /// ([`Shm<Mutex<T>>`](super::Shm)).
    Mutex,
    /// An [`RwLock`](crate::sync::RwLock) alone in its region.
    RwLock,
    /// A [`Semaphore`](crate::sync::Semaphore) alone in its region.
    Semaphore,
    /// A [`Barrier`](crate::sync::Barrier) alone in its region.
    Barrier,
    /// An [`Event`](crate::sync::Event) alone in its region.
    Event,
    /// A worker's rings or the doorbell of a process pool
    /// ([`ProcessPool`](crate::process::ProcessPool)).
    ProcessPool,
    /// A code this version does not know (a newer writer's).
    Other(u32),
}

impl ObjectKind {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            ObjectKind::Region => 0,
            ObjectKind::Value => 1,
            ObjectKind::SpscChannel => 2,
            ObjectKind::MpmcChannel => 3,
            ObjectKind::ByteChannel => 4,
            ObjectKind::PubSub => 5,
            ObjectKind::ReqResp => 6,
            ObjectKind::ProcessPool => 7,
            ObjectKind::Mutex => 8,
            ObjectKind::RwLock => 9,
            ObjectKind::Semaphore => 10,
            ObjectKind::Barrier => 11,
            ObjectKind::Event => 12,
            ObjectKind::Other(n) => n,
        }
    }

    pub(crate) fn from_raw(raw: u32) -> Self {
        match raw {
            0 => ObjectKind::Region,
            1 => ObjectKind::Value,
            2 => ObjectKind::SpscChannel,
            3 => ObjectKind::MpmcChannel,
            4 => ObjectKind::ByteChannel,
            5 => ObjectKind::PubSub,
            6 => ObjectKind::ReqResp,
            7 => ObjectKind::ProcessPool,
            8 => ObjectKind::Mutex,
            9 => ObjectKind::RwLock,
            10 => ObjectKind::Semaphore,
            11 => ObjectKind::Barrier,
            12 => ObjectKind::Event,
            n => ObjectKind::Other(n),
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKind::Region => f.write_str("region"),
            ObjectKind::Value => f.write_str("value"),
            ObjectKind::SpscChannel => f.write_str("spsc channel"),
            ObjectKind::MpmcChannel => f.write_str("mpmc channel"),
            ObjectKind::ByteChannel => f.write_str("byte channel"),
            ObjectKind::PubSub => f.write_str("publish/subscribe service"),
            ObjectKind::ReqResp => f.write_str("request/response service"),
            ObjectKind::ProcessPool => f.write_str("process pool"),
            ObjectKind::Mutex => f.write_str("mutex"),
            ObjectKind::RwLock => f.write_str("rwlock"),
            ObjectKind::Semaphore => f.write_str("semaphore"),
            ObjectKind::Barrier => f.write_str("barrier"),
            ObjectKind::Event => f.write_str("event"),
            ObjectKind::Other(n) => write!(f, "kind {n}"),
        }
    }
}

/// Where an object is in its life, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectState {
    /// Published and well formed.
    Ready,
    /// Created but not published: its creator is still at work, or died.
    Initializing,
    /// Its creator died before publishing it, or it was removed.
    Abandoned,
    /// A shmkit object of another format version.
    OtherVersion(u32),
    /// Its header holds values no creator writes.
    Corrupted(&'static str),
}

/// One shmkit object in `/dev/shm`, as [`list`] found it.
///
/// Everything but `name`, `size` and `in_use` comes from the object's own
/// header, which any process of this user can write: treat it as a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// Its name, with the leading `/`.
    pub name: String,
    /// What it holds.
    pub kind: ObjectKind,
    /// Its state.
    pub state: ObjectState,
    /// The file's size in bytes (header and participant table included).
    pub size: u64,
    /// Its layout id (zero unless ready).
    pub layout: LayoutId,
    /// The pid its creator recorded (zero unless ready).
    pub creator_pid: u32,
    /// Whether some live process has it open (or is still creating it).
    pub in_use: bool,
    /// The pids that the live handles recorded when they opened it, one
    /// per handle (a process with two handles appears twice).
    pub attached: Vec<u32>,
}

/// Every shmkit object of this user in `/dev/shm`, by name.
///
/// Files of other users and files that are not shmkit objects are left
/// out; nothing is changed.
///
/// ```
/// use shmkit::region::{self, ObjectKind};
/// use shmkit::Region;
/// # let name = format!("/shmkit-doc-list-{}", std::process::id());
/// let r = Region::create(&name, 4096)?;
/// let me = region::list()?.into_iter().find(|o| o.name == name).unwrap();
/// assert_eq!(me.kind, ObjectKind::Region);
/// assert!(me.in_use);
/// assert_eq!(me.attached, vec![std::process::id()]);
/// # Ok::<(), shmkit::Error>(())
/// ```
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for name in shmdir::names()? {
        // Objects that vanish or are not ours or not shmkit's are skipped.
        if let Ok(Some(info)) = inspect_named(&name) {
            out.push(info);
        }
    }
    Ok(out)
}

/// [`list`]'s entry for `name`.
///
/// Fails with [`Error::NotShmkit`] for a file that is not a shmkit object,
/// [`Error::ForeignOwner`] for another user's, [`Error::InvalidName`] for a
/// symlink or anything but a regular file.
pub fn inspect(name: &str) -> Result<ObjectInfo> {
    super::name::validate(name)?;
    inspect_named(name)?.ok_or(Error::NotShmkit { found: 0 })
}

fn inspect_named(name: &str) -> Result<Option<ObjectInfo>> {
    let fd = sys::fd::shm_open(name)?;
    check_owner(fd.as_fd())?;
    describe(name, fd.as_fd())
}

/// What object `name`, open as `fd` (its owner checked), is; `None` for a
/// file that is not a shmkit object.
pub(super) fn describe(name: &str, fd: BorrowedFd<'_>) -> Result<Option<ObjectInfo>> {
    let info = sys::fd::info(fd)?;
    let mut head = [0u8; HEADER_SIZE];
    let got = shmdir::read_at(fd, &mut head, 0)?;
    let seen = header::inspect(&head[..got]);
    let (state, layout, pid, kind) = match seen {
        Seen::Foreign => return Ok(None),
        Seen::Empty if blank(&head[..got]) => (ObjectState::Initializing, 0, 0, ObjectKind::Region),
        Seen::Empty => return Ok(None),
        Seen::Initializing => (ObjectState::Initializing, 0, 0, ObjectKind::Region),
        Seen::Abandoned => (ObjectState::Abandoned, 0, 0, ObjectKind::Region),
        Seen::OtherVersion(v) => (ObjectState::OtherVersion(v), 0, 0, ObjectKind::Region),
        Seen::Corrupted(what) => (ObjectState::Corrupted(what), 0, 0, ObjectKind::Region),
        Seen::Ready(f) => (
            ObjectState::Ready,
            f.layout,
            f.creator_pid,
            ObjectKind::from_raw(f.kind),
        ),
    };
    let ours = !matches!(state, ObjectState::OtherVersion(_));
    let attached = if ours && info.size >= DATA_OFFSET as u64 {
        let mut table = vec![0u8; participants::TABLE_SIZE];
        let n = shmdir::read_at(fd, &mut table, HEADER_SIZE as u64)?;
        participants::attached(fd, &table[..n])?
    } else {
        Vec::new()
    };
    let in_use = if ours {
        participants::is_in_use(fd)? || creating(fd)?
    } else {
        true
    };
    Ok(Some(ObjectInfo {
        name: name.to_owned(),
        kind,
        state,
        size: info.size,
        layout: LayoutId::from_raw(layout),
        creator_pid: pid,
        in_use,
        attached,
    }))
}

/// Whether a header's bytes are all zero: a creator that has not written
/// it yet (or died first), not a foreign file.
fn blank(head: &[u8]) -> bool {
    head.iter().all(|&b| b == 0)
}

pub(super) fn check_owner(fd: BorrowedFd<'_>) -> Result<()> {
    let info = sys::fd::info(fd)?;
    let euid = sys::fd::euid();
    if info.uid != euid {
        return Err(Error::ForeignOwner {
            owner: info.uid,
            expected: euid,
        });
    }
    Ok(())
}

/// Whether someone holds the object's exclusive `flock`: a creator that
/// has not published yet (or a remover at work).
fn creating(fd: BorrowedFd<'_>) -> Result<bool> {
    if sys::fd::try_lock_shared(fd)? {
        sys::fd::unlock(fd);
        Ok(false)
    } else {
        Ok(true)
    }
}

/// Removes the object `name` if no live process has it open; returns
/// whether it did.
///
/// Never removes an object that a live handle has open or that a creator
/// is still initializing, a file that is not a shmkit object of this
/// format version (other versions cannot show that nobody uses them), or
/// another user's file. Safe against a process opening the object at the
/// same moment: the remover holds the object's exclusive `flock` while it
/// checks, marks the object abandoned and removes the name, and an opener
/// that joined meanwhile sees the mark under the shared `flock` and
/// reports [`Error::NotFound`].
///
/// ```
/// use shmkit::region;
/// use shmkit::Region;
/// # let name = format!("/shmkit-doc-remove-{}", std::process::id());
/// let mut r = Region::create(&name, 64)?;
/// r.keep();
/// assert!(!region::remove_if_unused(&name)?); // we still have it open
/// drop(r);
/// assert!(region::remove_if_unused(&name)?);
/// assert!(Region::open(&name).is_err());
/// # Ok::<(), shmkit::Error>(())
/// ```
pub fn remove_if_unused(name: &str) -> Result<bool> {
    super::name::validate(name)?;
    let fd = sys::fd::shm_open(name)?;
    check_owner(fd.as_fd())?;
    // Held until the name is gone: creators hold it while initializing,
    // openers take it shared after joining.
    if !sys::fd::try_lock_exclusive(fd.as_fd())? {
        return Ok(false);
    }
    let info = sys::fd::info(fd.as_fd())?;
    let mut head = [0u8; HEADER_SIZE];
    let got = shmdir::read_at(fd.as_fd(), &mut head, 0)?;
    let removable = match header::inspect(&head[..got]) {
        Seen::Foreign | Seen::OtherVersion(_) => false,
        Seen::Empty => blank(&head[..got]),
        _ => true,
    };
    if !removable || participants::is_in_use(fd.as_fd())? {
        return Ok(false);
    }
    if info.size >= HEADER_SIZE as u64 {
        let map = Mapping::new(fd.as_fd(), HEADER_SIZE)?;
        // SAFETY: the mapping is HEADER_SIZE bytes of an object at least
        // that long (nobody can shrink it: we are its only user and hold
        // its lock), page-aligned; `Header` is all atomics.
        let header = unsafe { &*(map.ptr() as *const Header) };
        header.abandon();
    }
    if !names_object(name, fd.as_fd()) {
        return Ok(false);
    }
    sys::fd::shm_unlink(name)?;
    Ok(true)
}

/// Removes every shmkit object of this user that no live process has open
/// ([`remove_if_unused`] on each listed one); returns the names removed.
pub fn sweep() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for o in list()? {
        if !o.in_use && remove_if_unused(&o.name).unwrap_or(false) {
            removed.push(o.name);
        }
    }
    Ok(removed)
}
