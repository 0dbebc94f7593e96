//! [`RegionOptions`]: how to create or open a region, and the entry points
//! that do it.

use super::handshake::{claim, remove_stale};
use super::{name, Kind, ObjectKind, Region, ShmSafe};
use super::{LayoutId, DATA_OFFSET};
use crate::error::{Error, Result};
use crate::sys::{self, fd::Created, map::Mapping};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long an opener waits for a creator to publish, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times [`RegionOptions::open_or_create`] tries to create or open
/// a name that other processes keep creating and removing under it before
/// it gives up with [`Error::NameUnstable`] (with its back-off, about 0.1 s
/// of trying).
const OPEN_OR_CREATE_ATTEMPTS: u32 = 100;

/// How to create or open a [`Region`]: data size, layout, timeout, and
/// whether the name outlives the creator.
///
/// Opening a name checks what it leads to before anything else (see
/// [Untrusted names](crate::region#untrusted-names)): a symbolic link, a directory,
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
    pub(super) size: Option<usize>,
    pub(super) layout: LayoutId,
    /// Open whatever layout the region holds.
    pub(super) any_layout: bool,
    pub(super) timeout: Option<Duration>,
    pub(super) keep: bool,
    /// What the creator records the region as holding, for listings.
    pub(super) kind: ObjectKind,
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
            .kind(T::OBJECT_KIND)
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

    pub(super) fn total_size(&self) -> Result<u64> {
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

    pub(super) fn deadline(&self, started: Instant) -> Option<Instant> {
        self.timeout.and_then(|t| started.checked_add(t))
    }
}
