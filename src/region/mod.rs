//! Shared memory regions: named (POSIX shm) or anonymous (sealed memfd),
//! validated on open, with checked placement of typed objects.
//!
//! A region is a 128-byte header followed by the data:
//!
//! ```text
//! offset  field         notes
//!      0  magic         b"shmkit\0R", fixed in every version
//!      8  version       format version, fixed position in every version
//!     12  state         EMPTY -> INITIALIZING -> READY (or ABANDONED)
//!     16  layout        LayoutId of what the data holds
//!     24  total_size    header + data, bytes
//!     32  data_offset   128
//!     40  creator_pid, creator_uid
//!     48  checksum      FNV-1a of the fields above
//!     56  reserved
//!    128  data
//! ```
//!
//! The creator writes the header and initializes the data, then publishes
//! the region; openers wait (bounded) for that, then check magic, version,
//! checksum, layout, size against the object's real size and the owner's
//! uid before handing out anything. Offsets are relative to the start of
//! the data; nothing in a region is a pointer.
//!
//! # A creator that dies
//!
//! The creator of a named region holds an exclusive `flock` on it from
//! just after `O_EXCL` until it publishes. An opener waiting for the
//! region probes that lock every few milliseconds: if nobody holds it and
//! the region is still not ready, the creator died, and the opener gets
//! [`Error::CreatorDied`] instead of waiting out
//! its timeout. [`RegionOptions::open_or_create`] then removes the stale
//! object (under its exclusive lock, after marking it abandoned so other
//! waiters give up too) and creates a fresh one. A lock, unlike a pid,
//! cannot be fooled by pid reuse: the kernel drops it when the holder dies.
//!
//! # Untrusted names
//!
//! `/dev/shm` is writable by every user, so what a name leads to may have
//! been put there by anyone. Before a named object's contents are looked
//! at, opening refuses:
//! - a symbolic link, whatever it points at: names are opened with
//!   `O_NOFOLLOW` (as `shm_open` does), so a link planted by another user
//!   cannot make this process open, map and write a file of the planter's
//!   choosing ([`Error::NotARegularFile`]);
//! - anything else that is not a regular file: a directory, a fifo, a
//!   socket, a device (also [`Error::NotARegularFile`]; a fifo is opened
//!   non-blocking so it cannot stall the open);
//! - an object owned by another user ([`Error::ForeignOwner`]): its owner
//!   could change or shrink it at any time;
//! - an object whose mode has group or other bits set
//!   ([`Error::InsecureMode`]): shmkit creates regions `0600`, and a wider
//!   mode lets other users write the memory.
//!
//! [`RegionOptions::open_or_create`] never replaces or removes such an
//! object, and returns these errors at once: it retries only when the name
//! vanished between its create and its open, or held a stale region, and
//! that a bounded number of times ([`Error::NameUnstable`]). Anonymous
//! regions are reached by descriptor only; a memfd's mode is `0777` by
//! nature and is not checked.
//!
//! Invariants kept by [`Region`]:
//! - the mapping covers exactly the object's size as `fstat` reported it
//!   when opened, and that size was at least what the header claims, so no
//!   access inside [`Region::len`] touches a page past the end of the file;
//! - anonymous regions are sealed against shrinking and growing, so that
//!   stays true whatever a peer does; named regions are regular files of
//!   mode 0600 (or narrower) owned by this user, so only this user's
//!   processes could shrink them;
//! - every typed access is checked for bounds and alignment first.
//!
//! # What this process may do with the bytes
//!
//! Another process may write any byte at any time; that is the untrusted
//! peer the whole crate is built around (values are checked, plain data is
//! `Pod`, and a scribble garbles values but never makes this process read
//! or write out of bounds). Inside this process, Rust's rules apply as to
//! any other memory, and the safe API keeps them:
//! - [`place`](Region::place) and [`Shm`] hand out `&T` only for
//!   [`ShmSafe`] types, whose contents are atomics, [`SharedCell`]s (copied
//!   in and out as relaxed atomic words), or plain data reached only
//!   through a lock guard, whose protocol excludes every other access while
//!   it lives;
//! - each handle records what it placed where, and refuses to place
//!   anything over those bytes but the same type at the same places
//!   ([`Error::PlacementConflict`]): a cell over a locked mutex's data, or
//!   atomics of two sizes over the same word, could break the rules even
//!   though each type alone keeps them. The rings' headers, slots and
//!   buffers are placements too, and a ring's `create` wants bytes this
//!   handle never placed (laying a ring out again resets it under its
//!   users);
//! - the rings lend slices of their slots only to the one side the
//!   protocol reserves them to, and attaching a side is `unsafe` where the
//!   ring cannot prove it is the only one ([`ring`](crate::ring));
//! - raw copies, [`Region::read`], [`Region::write`] and their byte forms,
//!   bypass all of that: they are `unsafe`, with the rule that no thread of
//!   this process accesses the bytes concurrently and that no reference
//!   they would break covers them (a lock guard's `&mut T`, a ring chunk).

mod cell;
pub(crate) mod header;
mod layout;
mod name;
mod objects;
pub(crate) mod participants;
mod placement;
mod typed;

pub use crate::blocks::ShmSafe;
pub use cell::SharedCell;
pub use layout::LayoutId;
pub use name::MAX_NAME_LEN;
pub use objects::{inspect, list, remove_if_unused, sweep, ObjectInfo, ObjectKind, ObjectState};
pub use participants::MAX_PARTICIPANTS;
pub use typed::Shm;

use crate::error::{Error, Result};
use crate::sys::{self, fd::Created, map::Mapping};
use bytemuck::Pod;
use header::{Fields, Header, DATA_OFFSET, HEADER_SIZE, VERSION};
use participants::Membership;
pub(crate) use placement::Placed;
use placement::Placements;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long an opener waits for a creator to publish, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an empty, unlocked named object must stay so before an opener
/// takes its creator for dead (see [`RegionOptions::open`]).
const STALE_GRACE: Duration = Duration::from_millis(100);

/// How many times [`RegionOptions::open_or_create`] tries to create or open
/// a name that other processes keep creating and removing under it before
/// it gives up with [`Error::NameUnstable`] (with its back-off, about 0.1 s
/// of trying).
const OPEN_OR_CREATE_ATTEMPTS: u32 = 100;

/// Where a region's memory comes from.
#[derive(Debug)]
enum Kind {
    /// A POSIX shm object; `unlink` says whether dropping removes the name.
    Named { name: String, unlink: bool },
    /// A sealed memfd.
    Anonymous,
}

/// A mapped, validated shared memory region.
///
/// See the [module documentation](self) for what is checked; in short, a
/// name is refused if it leads to a symbolic link or anything else than a
/// regular file, to another user's object, or to an object others may
/// write (see [Untrusted names](self#untrusted-names)). A region
/// created by name removes its name when dropped unless
/// [`RegionOptions::keep`] or [`Region::keep`] says otherwise; openers never
/// remove it.
///
/// ```
/// use shmkit::Region;
/// # let name = format!("/shmkit-doc-region-{}", std::process::id());
/// let a = Region::create(&name, 4096)?;
/// // SAFETY: nothing else in this process uses these bytes.
/// unsafe { a.write::<u64>(8, &42)? };
/// let b = Region::open(&name)?;          // in another process, usually
/// // SAFETY: as above.
/// assert_eq!(unsafe { b.read::<u64>(8)? }, 42);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Region {
    /// Held for its lock on the participant slot. Declared first: it
    /// leaves the participant table before the mapping goes away.
    _membership: Membership,
    map: Mapping,
    fd: OwnedFd,
    kind: Kind,
    created: bool,
    fields: Fields,
    /// What this handle handed out references to (see [`Region::place`]).
    placements: Placements,
}

/// How to create or open a [`Region`]: data size, layout, timeout, and
/// whether the name outlives the creator.
///
/// Opening a name checks what it leads to before anything else (see
/// [Untrusted names](self#untrusted-names)): a symbolic link, a directory,
/// a fifo, a socket or a device is [`Error::NotARegularFile`], another
/// user's object [`Error::ForeignOwner`], and an object with group or
/// other permission bits set [`Error::InsecureMode`]. These errors come at
/// once, whatever the timeout, and the object is left as found.
///
/// ```
/// use shmkit::{LayoutId, RegionOptions};
/// use std::time::Duration;
/// # let name = format!("/shmkit-doc-options-{}", std::process::id());
/// let opts = RegionOptions::new()
///     .size(1 << 20)
///     .layout(LayoutId::named("my-format", 1))
///     .timeout(Duration::from_millis(500));
/// let region = opts.open_or_create(&name)?;
/// assert!(region.created());
/// assert_eq!(region.len(), 1 << 20);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegionOptions {
    size: Option<usize>,
    layout: LayoutId,
    /// Open whatever layout the region holds.
    any_layout: bool,
    timeout: Option<Duration>,
    keep: bool,
    /// What the creator records the region as holding, for listings.
    kind: ObjectKind,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RegionOptions {
    /// Defaults: size unset (required to create), layout
    /// [`LayoutId::BYTES`], timeout [`DEFAULT_TIMEOUT`], name removed when
    /// the creator drops the region.
    pub fn new() -> Self {
        Self {
            size: None,
            layout: LayoutId::BYTES,
            any_layout: false,
            timeout: Some(DEFAULT_TIMEOUT),
            keep: false,
            kind: ObjectKind::Region,
        }
    }

    /// Records what the region holds in its header (shown by
    /// [`list`](objects::list)); the crate's own types set it.
    pub(crate) fn kind(mut self, kind: ObjectKind) -> Self {
        self.kind = kind;
        self
    }

    /// Options for a region holding one `T` at offset 0: size and layout
    /// of `T`.
    pub fn for_type<T: ShmSafe>() -> Self {
        Self::new()
            .size(core::mem::size_of::<T>())
            .layout(LayoutId::of::<T>())
            .kind(ObjectKind::Value)
    }

    /// Bytes of data (the header comes on top). Required to create; when
    /// opening, a region of another size is refused with
    /// [`Error::InvalidSize`].
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = Some(bytes);
        self
    }

    /// The layout the data holds; opening a region of another layout fails
    /// with [`Error::LayoutMismatch`].
    pub fn layout(mut self, layout: LayoutId) -> Self {
        self.layout = layout;
        self
    }

    /// Opens a region whatever layout it holds (creating still writes
    /// [`layout`](Self::layout)), for tools that inspect regions of any
    /// kind; [`Region::layout`] then says what was found. Everything else
    /// is still checked. What the data holds is the caller's to validate:
    /// the layout check was what vouched for it.
    ///
    /// ```
    /// use shmkit::{LayoutId, RegionOptions};
    /// # let name = format!("/shmkit-doc-any-layout-{}", std::process::id());
    /// let jobs = LayoutId::named("jobs", 1);
    /// let _owner = RegionOptions::new().size(64).layout(jobs).create(&name)?;
    /// assert!(RegionOptions::new().open(&name).is_err());
    /// let seen = RegionOptions::new().any_layout().open(&name)?;
    /// assert_eq!(seen.layout(), jobs);
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    pub fn any_layout(mut self) -> Self {
        self.any_layout = true;
        self
    }

    /// How long to wait for a creator to publish the region (`None`: no
    /// limit). A zero timeout checks once.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Keep the name after the creator drops the region (default: remove).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Creates a named region; fails with [`Error::AlreadyExists`] if the
    /// name is taken.
    pub fn create(&self, name: &str) -> Result<Region> {
        self.create_with(name, |_| Ok(()))
    }

    /// Creates a named region and runs `init` on it before any opener can
    /// see it. If `init` fails, the name is removed and its error returned.
    pub fn create_with(
        &self,
        name: &str,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<Region> {
        name::validate(name)?;
        let total = self.total_size()?;
        match sys::fd::shm_create_excl(name)? {
            Created::New(fd) if claim(name, &fd)? => self.init_named(name, fd, total, init),
            // Taken, or (claim failed) declared stale and replaced while
            // this process was descheduled between create and lock.
            _ => Err(Error::AlreadyExists {
                name: name.to_owned(),
            }),
        }
    }

    /// Opens a named region, waiting up to the timeout for its creator to
    /// publish it, and validates it.
    ///
    /// The name is opened without following a symbolic link, and refused
    /// at once unless it is a regular file owned by this user with no
    /// group or other permission bits ([`Error::NotARegularFile`],
    /// [`Error::ForeignOwner`], [`Error::InsecureMode`]).
    pub fn open(&self, name: &str) -> Result<Region> {
        name::validate(name)?;
        let started = Instant::now();
        let fd = sys::fd::shm_open(name)?;
        self.validate(
            fd,
            Kind::Named {
                name: name.to_owned(),
                unlink: false,
            },
            started,
        )
    }

    /// Opens the named region, or creates it if absent. Race-free: among
    /// any number of processes calling this at once, exactly one creates
    /// and initializes the region (its [`Region::created`] is `true`); the
    /// others wait for it to be published, up to the timeout.
    ///
    /// A stale object whose creator died before publishing it
    /// ([`Error::CreatorDied`]) is removed and replaced. Anything that
    /// [`open`](Self::open) refuses without waiting (a symbolic link, a
    /// directory, a fifo, a socket, another user's object, an object
    /// others may write) is returned at once and left alone, whatever the
    /// timeout. If the name keeps vanishing under it (other processes
    /// creating and removing it), this gives up after a bounded number of
    /// attempts with [`Error::NameUnstable`]; a stale object that cannot be
    /// removed (another process keeps a lock on it) ends the same way with
    /// [`Error::CreatorDied`].
    pub fn open_or_create(&self, name: &str) -> Result<Region> {
        self.open_or_create_with(name, |_| Ok(()))
    }

    /// [`open_or_create`](Self::open_or_create), running `init` if this call
    /// is the one that creates the region.
    pub fn open_or_create_with(
        &self,
        name: &str,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<Region> {
        name::validate(name)?;
        let total = self.total_size()?;
        let started = Instant::now();
        let deadline = self.deadline(started);
        let mut attempts = 0;
        let mut backoff = Duration::from_micros(10);
        loop {
            // Only two outcomes are worth another attempt, both left by
            // other processes working on the same name: it vanished between
            // our create and our open, or it held a stale region that was
            // (or is being) removed. Anything else is final: a name that
            // will not open (a link, a directory, another user's object...)
            // will not open on the next attempt either.
            let stale = match sys::fd::shm_create_excl(name)? {
                Created::New(fd) => {
                    if claim(name, &fd)? {
                        return self.init_named(name, fd, total, init);
                    }
                    // Declared stale and removed before we locked it.
                    None
                }
                Created::Exists => match self.open(name) {
                    // Removed between our create and open.
                    Err(Error::NotFound { .. }) => None,
                    Err(e @ Error::CreatorDied { .. }) => {
                        remove_stale(name)?;
                        Some(e)
                    }
                    other => return other,
                },
            };
            attempts += 1;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::InitTimeout {
                    waited: started.elapsed(),
                });
            }
            if attempts >= OPEN_OR_CREATE_ATTEMPTS {
                // A stale object that stays (someone keeps a lock on it, so
                // it cannot be removed) is reported as what it is.
                return Err(stale.unwrap_or_else(|| Error::NameUnstable {
                    name: name.to_owned(),
                    attempts,
                }));
            }
            if attempts < 4 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(1));
            }
        }
    }

    /// Creates an anonymous region: a memfd sealed against shrinking and
    /// growing, with no name. Share it with [`Region::pass_to_child`] or
    /// [`Region::send_over`].
    pub fn anonymous(&self) -> Result<Region> {
        self.anonymous_with(|_| Ok(()))
    }

    /// [`anonymous`](Self::anonymous), running `init` before the region is
    /// published.
    pub fn anonymous_with(&self, init: impl FnOnce(&Region) -> Result<()>) -> Result<Region> {
        let total = self.total_size()?;
        let fd = sys::fd::memfd("shmkit")?;
        sys::fd::set_len(fd.as_fd(), total)?;
        sys::fd::seal(fd.as_fd())?;
        let map = Mapping::new(fd.as_fd(), total as usize)?;
        self.publish_new(map, fd, Kind::Anonymous, total, init)
    }

    /// Opens an anonymous region from a descriptor received from a peer.
    /// The descriptor must carry the shrink and grow seals
    /// ([`Error::NotSealed`] otherwise), and is validated like a named
    /// region.
    pub fn from_fd(&self, fd: OwnedFd) -> Result<Region> {
        let seals = sys::fd::seals(fd.as_fd());
        if !seals.contains(sys::fd::REQUIRED_SEALS) {
            return Err(Error::NotSealed);
        }
        self.validate(fd, Kind::Anonymous, Instant::now())
    }

    /// Receives an anonymous region sent with [`Region::send_over`] on the
    /// connected Unix socket `socket`, and validates it.
    pub fn receive(&self, socket: impl AsFd) -> Result<Region> {
        let fd = sys::fdpass::recv_fd(socket)?;
        self.from_fd(fd)
    }

    /// Opens the anonymous region whose descriptor a parent passed with
    /// [`Region::pass_to_child`] under the environment variable `var`.
    /// The variable is removed.
    ///
    /// # Safety
    ///
    /// The descriptor named by `var` must have been inherited for this
    /// purpose and be owned by nothing else in this process: this call takes
    /// ownership of it and closes it when the region is dropped. Call it at
    /// most once per variable.
    pub unsafe fn from_env(&self, var: &str) -> Result<Region> {
        let raw: RawFd = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|fd: &RawFd| *fd >= 0)
            .ok_or_else(|| {
                Error::io(
                    "from_env",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("environment variable {var} does not name a descriptor"),
                    ),
                )
            })?;
        // SAFETY: the number is non-negative; the caller guarantees it is
        // an inherited descriptor that nothing else owns. `fcntl(F_GETFD)`
        // below rejects a number that is not open before we own it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        rustix::io::fcntl_getfd(fd).map_err(|e| Error::io("fcntl(F_GETFD)", e.into()))?;
        std::env::remove_var(var);
        // SAFETY: open (checked above) and, by the caller's promise, owned
        // by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Restore close-on-exec so it does not leak into our own children.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
            .map_err(|e| Error::io("fcntl(F_SETFD)", e.into()))?;
        self.from_fd(fd)
    }

    fn total_size(&self) -> Result<u64> {
        let data = self.size.ok_or(Error::InvalidSize {
            size: 0,
            reason: "a size is required to create a region",
        })?;
        data.checked_add(DATA_OFFSET)
            .filter(|t| *t <= isize::MAX as usize)
            .map(|t| t as u64)
            .ok_or(Error::InvalidSize {
                size: data as u64,
                reason: "too large to map",
            })
    }

    fn deadline(&self, started: Instant) -> Option<Instant> {
        self.timeout.and_then(|t| started.checked_add(t))
    }

    /// Sizes, maps, initializes and publishes a named object this process
    /// created and [claimed](claim). On failure the name is removed (it is
    /// ours: we hold the object's exclusive lock) and waiting openers see
    /// the object abandoned or its creator gone.
    fn init_named(
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
    fn publish_new(
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
    fn validate(&self, fd: OwnedFd, kind: Kind, started: Instant) -> Result<Region> {
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

impl Region {
    /// Creates a named region of `size` data bytes with default options.
    pub fn create(name: &str, size: usize) -> Result<Region> {
        RegionOptions::new().size(size).create(name)
    }

    /// Opens a named region of plain bytes with default options.
    pub fn open(name: &str) -> Result<Region> {
        RegionOptions::new().open(name)
    }

    /// Opens the named region, or creates it with `size` data bytes.
    pub fn open_or_create(name: &str, size: usize) -> Result<Region> {
        RegionOptions::new().size(size).open_or_create(name)
    }

    /// Creates an anonymous (memfd) region of `size` data bytes.
    pub fn anonymous(size: usize) -> Result<Region> {
        RegionOptions::new().size(size).anonymous()
    }

    /// Removes a name. The memory stays until every process has unmapped
    /// it; new opens fail with [`Error::NotFound`].
    pub fn unlink(name: &str) -> Result<()> {
        name::validate(name)?;
        sys::fd::shm_unlink(name)
    }

    /// The region's name, `None` for anonymous regions.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Named { name, .. } => Some(name),
            Kind::Anonymous => None,
        }
    }

    /// Whether this handle created (and initialized) the region.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Keep the name after this handle is dropped (creators only; openers
    /// never remove it).
    pub fn keep(&mut self) {
        if let Kind::Named { unlink, .. } = &mut self.kind {
            *unlink = false;
        }
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        (self.fields.total_size - self.fields.data_offset) as usize
    }

    /// Whether the region holds no data bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layout stored in the header.
    pub fn layout(&self) -> LayoutId {
        LayoutId::from_raw(self.fields.layout)
    }

    /// The pid of the process that created the region.
    pub fn creator_pid(&self) -> u32 {
        self.fields.creator_pid
    }

    /// The uid of the process that created the region.
    pub fn creator_uid(&self) -> u32 {
        self.fields.creator_uid
    }

    /// The first data byte. Writing through it is `unsafe` and subject to
    /// the rules of the [module documentation](self); prefer the checked
    /// accessors.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: the mapping is at least `data_offset` bytes long (checked
        // at open: total_size >= data_offset == DATA_OFFSET).
        unsafe { self.map.ptr().add(self.fields.data_offset as usize) }
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a HEADER_SIZE-byte header (every
        // constructor checked the length), page-aligned; `Header` is all
        // atomics, valid for any bytes a peer may write.
        unsafe { &*(self.map.ptr() as *const Header) }
    }

    /// Checks that `size` bytes at `offset` lie in the data and that the
    /// address is aligned to `align`; returns the address.
    fn check(&self, offset: usize, size: usize, align: usize) -> Result<*mut u8> {
        let len = self.len();
        if offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(Error::OutOfBounds { offset, size, len });
        }
        // SAFETY: offset + size <= len, so the address is inside the data.
        let p = unsafe { self.as_ptr().add(offset) };
        if (p as usize) % align != 0 {
            return Err(Error::Misaligned { offset, align });
        }
        Ok(p)
    }

    /// A reference to the `T` at `offset` in the data.
    ///
    /// `T: ShmSafe` means any bytes there are a valid `T` and all access
    /// through `&T` is atomic, by copy, or under a lock's protocol, so the
    /// reference is sound even while peers write the same memory.
    ///
    /// Fails with [`Error::OutOfBounds`] or [`Error::Misaligned`] if the
    /// `T` does not fit at `offset`, and with [`Error::PlacementConflict`]
    /// if this handle already placed something else over any of its bytes:
    /// another type, or a `T` at an offset not a whole number of `T`s away
    /// (a ring's header and slots count as placed). Bytes used as two
    /// different things at once could break Rust's rules inside this
    /// process (a cell written under a locked mutex's `&mut`, atomics of
    /// two sizes racing), so each byte of a handle is one type's for as
    /// long as the handle lives; placing the same `T` at the same offset
    /// again is what sharing `&T` is, and always allowed. Another handle
    /// of the same object keeps its own record, and is to this one a peer.
    ///
    /// ```
    /// use shmkit::sync::Mutex;
    /// use shmkit::{Error, Region, SharedCell};
    ///
    /// let region = Region::anonymous(64)?;
    /// let lock = region.place::<Mutex<u64>>(0)?;
    /// assert!(std::ptr::eq(lock, region.place::<Mutex<u64>>(0)?));
    /// // The mutex's data is at 8: a cell there could write under a guard.
    /// assert!(matches!(
    ///     region.place::<SharedCell<u64>>(8),
    ///     Err(Error::PlacementConflict { offset: 8, placed_offset: 0, .. })
    /// ));
    /// region.place::<SharedCell<u64>>(16)?.set(7); // past the mutex: fine
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    pub fn place<T: ShmSafe>(&self, offset: usize) -> Result<&T> {
        let spot = self.spot::<T>(offset, 1)?;
        self.claim(&[spot.placed()], false)?;
        // SAFETY: just claimed in this region.
        Ok(unsafe { &spot.get()[0] })
    }

    /// A slice of `count` values of `T` starting at `offset`; fails as
    /// [`place`](Self::place) does.
    pub fn place_slice<T: ShmSafe>(&self, offset: usize, count: usize) -> Result<&[T]> {
        let spot = self.spot::<T>(offset, count)?;
        self.claim(&[spot.placed()], false)?;
        // SAFETY: just claimed in this region.
        Ok(unsafe { spot.get() })
    }

    /// Checks that `count` values of `T` fit at `offset` (bounds and
    /// alignment); records nothing yet (see [`claim`](Self::claim)).
    pub(crate) fn spot<T: ShmSafe>(&self, offset: usize, count: usize) -> Result<Spot<'_, T>> {
        let size = core::mem::size_of::<T>()
            .checked_mul(count)
            .ok_or(Error::OutOfBounds {
                offset,
                size: usize::MAX,
                len: self.len(),
            })?;
        let p = self.check(offset, size, core::mem::align_of::<T>())?;
        Ok(Spot {
            ptr: p as *const T,
            count,
            placed: Placed::of::<T>(offset, count),
            _region: core::marker::PhantomData,
        })
    }

    /// Records `parts` (spots of this region) as placed, all or none: they
    /// must agree with every earlier placement they overlap or, if
    /// `fresh`, overlap none at all (for laying out a new object, which
    /// would reset one in use); otherwise [`Error::PlacementConflict`].
    pub(crate) fn claim(&self, parts: &[Placed], fresh: bool) -> Result<()> {
        self.placements.add(parts, fresh)
    }

    /// Places the `T` at `offset` (as [`place`](Self::place) does) and
    /// runs `check` on it; if `check` fails, gives the claim back, so that
    /// a failed probe (an opener that finds no object there) leaves the
    /// bytes free for a later `create`.
    pub(crate) fn place_checked<T: ShmSafe, R>(
        &self,
        offset: usize,
        check: impl FnOnce(&T) -> Result<R>,
    ) -> Result<(&T, R)> {
        let spot = self.spot::<T>(offset, 1)?;
        let placed = spot.placed();
        self.claim(&[placed], false)?;
        // SAFETY: just claimed in this region.
        let value = unsafe { &spot.get()[0] };
        match check(value) {
            Ok(r) => Ok((value, r)),
            Err(e) => {
                // SAFETY: claimed above and not given back; `check` got a
                // reference for its call only (it cannot keep it: its
                // lifetime is the call's), and `value` is not used again.
                unsafe { self.placements.release(&[placed]) };
                Err(e)
            }
        }
    }

    /// Copies the `T` at `offset` out of the region.
    ///
    /// Fails with [`Error::OutOfBounds`] or [`Error::Misaligned`] as
    /// [`place`](Self::place) does. Another process may write the bytes
    /// at any time: the copy is then some mix of old and new bytes, which
    /// is still a valid `T: Pod`.
    ///
    /// # Safety
    ///
    /// This is a plain (not atomic) read of the bytes, so for as long as
    /// it runs, in this process:
    /// - no other thread writes them (atomically or not: a plain read
    ///   racing with any write is a data race), and
    /// - no `&mut` to them is alive (a [`MutexGuard`] or
    ///   [`RwLockWriteGuard`] of a lock whose data they are, a
    ///   [`WriteChunk`] or [`Grant`] of a ring whose slots they are).
    ///
    /// Shared references to the bytes may be alive. Writes by *other
    /// processes* are the untrusted-peer case above, not a breach of this
    /// contract.
    ///
    /// [`MutexGuard`]: crate::sync::MutexGuard
    /// [`RwLockWriteGuard`]: crate::sync::RwLockWriteGuard
    /// [`WriteChunk`]: crate::ring::spsc::WriteChunk
    /// [`Grant`]: crate::ring::bytes::Grant
    pub unsafe fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        let p = self.check(
            offset,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
        )?;
        // SAFETY: in bounds and aligned (checked); any bytes are a valid
        // `T: Pod`; the caller guarantees no write of this process races
        // with the read and no `&mut` covers the bytes; a volatile read
        // creates no reference to memory a peer may change.
        Ok(unsafe { (p as *const T).read_volatile() })
    }

    /// Copies `value` into the region at `offset`.
    ///
    /// Fails with [`Error::OutOfBounds`] or [`Error::Misaligned`] as
    /// [`place`](Self::place) does.
    ///
    /// # Safety
    ///
    /// This is a plain (not atomic) write of the bytes, so for as long as
    /// it runs, in this process:
    /// - no other thread accesses them (a plain write racing with any
    ///   access, an atomic load included, is a data race), and
    /// - no reference to them is alive except shared references to types
    ///   whose bytes lie inside an `UnsafeCell` (atomics, [`SharedCell`],
    ///   the lock and ring types). Not, in particular, the `&T`/`&mut T`
    ///   of a lock guard ([`MutexGuard`], [`RwLockReadGuard`],
    ///   [`RwLockWriteGuard`]), a ring's in-place chunk, grant or read
    ///   guard, or any other `&[u8]`/`&T` of plain data.
    ///
    /// Writing the words of a lock or a ring that is in use also plays a
    /// misbehaving peer for it: it can break that object's protocol
    /// (wrongly unlock a mutex, make a ring side hand out slots the other
    /// holds), so it is only allowed where the object's own contract
    /// allows it (see [`SpscRing::producer`]). Writes by *other processes*
    /// are the untrusted-peer case, not a breach of this contract.
    ///
    /// Without `unsafe`, writing the bytes behind a locked mutex's guard
    /// does not compile:
    ///
    /// ```compile_fail,E0133
    /// use shmkit::sync::Mutex;
    /// use shmkit::Shm;
    ///
    /// let total = Shm::<Mutex<u64>>::anonymous(|_| {})?;
    /// let mut guard = total.lock().unwrap();
    /// // The data follows the 4-byte lock word, at offset 8: this would
    /// // change the `u64` under the guard's `&mut`.
    /// total.region().write::<u64>(8, &7)?;
    /// *guard += 1;
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    ///
    /// [`MutexGuard`]: crate::sync::MutexGuard
    /// [`RwLockReadGuard`]: crate::sync::RwLockReadGuard
    /// [`RwLockWriteGuard`]: crate::sync::RwLockWriteGuard
    /// [`SpscRing::producer`]: crate::ring::spsc::SpscRing::producer
    pub unsafe fn write<T: Pod>(&self, offset: usize, value: &T) -> Result<()> {
        let p = self.check(
            offset,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
        )?;
        // SAFETY: in bounds and aligned (checked); the mapping is writable;
        // the caller guarantees that no access of another thread races with
        // the write and that no reference this write could invalidate
        // covers the bytes.
        unsafe { (p as *mut T).write_volatile(*value) };
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` out of the region.
    ///
    /// Fails with [`Error::OutOfBounds`] if they are not all in the data.
    ///
    /// # Safety
    ///
    /// As for [`read`](Self::read), for these bytes.
    pub unsafe fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let p = self.check(offset, buf.len(), 1)?;
        // SAFETY: source in bounds (checked), and read under the caller's
        // guarantee (no racing write, no `&mut` to it in this process); the
        // destination is a `&mut [u8]`, so no other reference (in
        // particular none to the region's bytes) overlaps it.
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `bytes` into the region at `offset`.
    ///
    /// Fails with [`Error::OutOfBounds`] if they do not all fit in the data.
    ///
    /// # Safety
    ///
    /// As for [`write`](Self::write), for these bytes. `bytes` may be a
    /// slice of this very region (a byte ring's read guard, say) only if
    /// it does not overlap the destination: that would be writing under a
    /// live `&[u8]`.
    pub unsafe fn write_bytes(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        let p = self.check(offset, bytes.len(), 1)?;
        // SAFETY: destination in bounds and writable (checked), and written
        // under the caller's guarantee; the source is a valid slice;
        // `copy` (memmove) is correct even if the ranges overlap.
        unsafe { core::ptr::copy(bytes.as_ptr(), p, bytes.len()) };
        Ok(())
    }

    /// Sends this anonymous region's descriptor over a connected Unix
    /// socket; the peer opens it with [`RegionOptions::receive`].
    /// Named regions are sent the same way (the peer could also open the
    /// name).
    pub fn send_over(&self, socket: impl AsFd) -> Result<()> {
        sys::fdpass::send_fd(socket.as_fd(), self.fd.as_fd())
    }

    /// Makes `cmd`'s child inherit this region's descriptor and names it
    /// in the child's environment variable `var`; the child opens it with
    /// [`RegionOptions::from_env`]. The region must stay alive until the
    /// child is spawned.
    pub fn pass_to_child(&self, cmd: &mut Command, var: &str) {
        let raw = self.fd.as_raw_fd();
        cmd.env(var, raw.to_string());
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls fcntl(F_SETFD), which is async-signal-safe; it borrows
        // a descriptor number that the parent keeps open while `self` lives.
        unsafe {
            cmd.pre_exec(move || {
                // SAFETY: `raw` is open in the forked child (inherited from
                // the parent, which holds it open), borrowed only here.
                let fd = BorrowedFd::borrow_raw(raw);
                sys::fd::clear_cloexec(fd)
            });
        }
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Kind::Named { name, unlink: true } = &self.kind {
            if self.created {
                unlink_if_same(name, self.fd.as_fd());
            }
        }
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
fn names_object(name: &str, ours: BorrowedFd<'_>) -> bool {
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
fn unlink_if_same(name: &str, ours: BorrowedFd<'_>) {
    if names_object(name, ours) {
        let _ = sys::fd::shm_unlink(name);
    }
}

/// A creator's first step after `O_EXCL`: takes the object's exclusive
/// lock (held until publication; openers probe it to tell a slow creator
/// from a dead one), then checks that the name still names the object.
/// `false` means a recoverer took the still-empty object for stale and
/// removed it in the instant before we locked it: the object is not ours.
fn claim(name: &str, fd: &OwnedFd) -> Result<bool> {
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
fn remove_stale(name: &str) -> Result<()> {
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

/// `count` values of `T` at a checked offset of a region, not yet claimed:
/// see [`Region::spot`] and [`Region::claim`].
pub(crate) struct Spot<'a, T> {
    ptr: *const T,
    count: usize,
    placed: Placed,
    _region: core::marker::PhantomData<&'a Region>,
}

impl<'a, T: ShmSafe> Spot<'a, T> {
    /// What [`Region::claim`] records for it.
    pub(crate) fn placed(&self) -> Placed {
        self.placed
    }

    /// The values.
    ///
    /// # Safety
    ///
    /// The spot's placement was claimed in the region it came from.
    pub(crate) unsafe fn get(self) -> &'a [T] {
        // SAFETY: in bounds and aligned (checked by `spot`); valid for any
        // bytes and used only through `&T` (`T: ShmSafe`); the mapping
        // lives as long as the region, borrowed for `'a`; and the claim
        // (the caller's promise) makes these bytes this type's alone in
        // this handle.
        unsafe { core::slice::from_raw_parts(self.ptr, self.count) }
    }
}
