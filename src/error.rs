//! The crate's error type: one enum whose variants a caller can match.

use std::time::Duration;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shmkit.
///
/// Variants about opening a region say exactly which check failed, so a
/// caller can tell a stale segment from a foreign file from a peer that is
/// still starting up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The region name is not a valid POSIX shared-memory name.
    #[error("invalid region name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No region exists under this name.
    #[error("no shared memory region named {name:?}")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// A region already exists under this name.
    #[error("a shared memory region named {name:?} already exists")]
    AlreadyExists {
        /// The name asked for.
        name: String,
    },
    /// The system refused access to the name.
    #[error("permission denied for shared memory region {name:?}")]
    PermissionDenied {
        /// The name asked for.
        name: String,
    },
    /// What the name leads to in `/dev/shm` is not a regular file, so not a
    /// shared memory object: a symbolic link (whatever it points at, even
    /// nothing), a directory, a fifo, a socket or a device.
    ///
    /// Names are opened without following symbolic links, as `shm_open`
    /// does: `/dev/shm` is writable by every user, and a link planted there
    /// would otherwise make this process open, and write, a file of the
    /// planter's choosing. Nothing is read from or written to what was found,
    /// and [`RegionOptions::open_or_create`](crate::RegionOptions::open_or_create)
    /// does not replace it: remove it yourself if it is yours.
    #[error("{name:?} in /dev/shm is a {found}, not a shared memory object")]
    NotARegularFile {
        /// The name asked for.
        name: String,
        /// What was found: `"symbolic link"`, `"directory"`, `"fifo"`,
        /// `"socket"`, `"character device"`, `"block device"` or
        /// `"file of unknown type"`.
        found: &'static str,
    },
    /// The named object's permissions let other users at it (group or
    /// other bits set): whoever else can write it could change the memory
    /// under this process, or replace what it reads. shmkit creates regions
    /// with mode `0600`; a wider mode was set by someone else afterwards.
    #[error("shared memory region {name:?} has mode {mode:04o}: other users could read or write it (regions are created 0600)")]
    InsecureMode {
        /// The name asked for.
        name: String,
        /// The object's permission bits.
        mode: u32,
    },
    /// [`RegionOptions::open_or_create`](crate::RegionOptions::open_or_create)
    /// gave up: the name kept changing under it (other processes created,
    /// removed or replaced the object between its attempts to create and
    /// to open it).
    #[error("gave up on shared memory name {name:?} after {attempts} attempts: other processes kept creating and removing it")]
    NameUnstable {
        /// The name asked for.
        name: String,
        /// How many times creating and opening were tried.
        attempts: u32,
    },
    /// The object is owned by another user: opening it could hand this
    /// process memory an untrusted user controls.
    #[error("region is owned by uid {owner}, not by this process's uid {expected}")]
    ForeignOwner {
        /// The uid that owns the object.
        owner: u32,
        /// This process's effective uid.
        expected: u32,
    },
    /// The object is shorter than a region header: not a region, or cut.
    #[error("object is {size} bytes, shorter than the {min}-byte region header")]
    TooSmall {
        /// The object's size.
        size: u64,
        /// The header's size.
        min: u64,
    },
    /// The object does not start with shmkit's magic number.
    #[error("not a shmkit region (magic {found:#018x})")]
    NotShmkit {
        /// The first eight bytes, read as a little-endian integer.
        found: u64,
    },
    /// The region was written by another format version of shmkit.
    #[error("region format version {found}, this build reads version {expected}")]
    VersionMismatch {
        /// The region's version.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The region holds another type than the one asked for.
    #[error("region layout {found:#018x} differs from the expected {expected:#018x}")]
    LayoutMismatch {
        /// The region's layout id.
        found: u64,
        /// The layout id asked for.
        expected: u64,
    },
    /// The object is shorter than its header claims.
    #[error("region claims {claimed} bytes but the object holds {actual}")]
    Truncated {
        /// The size in the header.
        claimed: u64,
        /// The object's real size.
        actual: u64,
    },
    /// The region did not become ready within the timeout: its creator is
    /// still initializing it, or died doing so.
    #[error("region was not initialized within {waited:?}")]
    InitTimeout {
        /// How long the opener waited.
        waited: Duration,
    },
    /// The region's creator died before publishing it: the object is a
    /// stale leftover. [`RegionOptions::open_or_create`](crate::RegionOptions::open_or_create)
    /// replaces such an object; [`Region::unlink`](crate::Region::unlink)
    /// removes it.
    #[error("the region's creator (pid {pid}) died before initializing it")]
    CreatorDied {
        /// The creator's pid as its header records it (0 if it died before
        /// writing the header).
        pid: u32,
    },
    /// A file descriptor offered as an anonymous region lacks the seals that
    /// keep its size fixed, so a peer could shrink it under the mapping.
    #[error("anonymous region descriptor is not sealed against resizing")]
    NotSealed,
    /// Shared state holds a value no correct participant writes.
    #[error("shared memory is corrupted: {what}")]
    Corrupted {
        /// What was found wrong.
        what: &'static str,
    },
    /// Every participant slot of a table is held by a live handle: the
    /// region's table ([`MAX_PARTICIPANTS`](crate::region::MAX_PARTICIPANTS)
    /// open handles at once) or a barrier's table of parties.
    #[error("all {slots} participant slots are in use by live processes")]
    TooManyParticipants {
        /// The table's capacity.
        slots: usize,
    },
    /// The channel end asked for has no room for another handle: an SPSC
    /// channel has one sender and one receiver at a time, an MPMC channel
    /// at most 32 live handles per end.
    #[error("the channel's {end} end has no room for another live handle")]
    ChannelBusy {
        /// `"sender"` or `"receiver"`.
        end: &'static str,
    },
    /// A publish/subscribe service has no room for this attach: it has
    /// one publisher at a time (a second is refused while the first is
    /// attached and alive, or while a peer is cleaning up after a dead
    /// one: retry), and every subscriber entry is held by a live handle.
    #[error("the publish/subscribe service has no room for another {role}")]
    ServiceBusy {
        /// `"publisher"` or `"subscriber"`.
        role: &'static str,
    },
    /// A size that cannot be used.
    #[error("invalid size {size}: {reason}")]
    InvalidSize {
        /// The size given.
        size: u64,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// An access reaches outside the region's data.
    #[error("access of {size} bytes at offset {offset} is outside the {len}-byte region")]
    OutOfBounds {
        /// Offset of the access, from the start of the data.
        offset: usize,
        /// Bytes accessed.
        size: usize,
        /// Bytes of data in the region.
        len: usize,
    },
    /// An access at an offset that is not aligned for its type.
    #[error("offset {offset} is not aligned to {align}")]
    Misaligned {
        /// Offset of the access, from the start of the data.
        offset: usize,
        /// The alignment the type needs.
        align: usize,
    },
    /// Bytes asked for as one object overlap an object this region handle
    /// already placed there as another type, or at an offset that does not
    /// line up with it; or a ring is laid out over bytes already in use
    /// (see [`Region::place`](crate::Region::place)).
    #[error(
        "bytes {offset}..+{size} of the region overlap a {placed} placed at {placed_offset}..+{placed_size}"
    )]
    PlacementConflict {
        /// Offset of the bytes asked for, from the start of the data.
        offset: usize,
        /// How many bytes were asked for.
        size: usize,
        /// The type the earlier placement holds (`core::any::type_name`).
        placed: &'static str,
        /// Where the earlier placement starts.
        placed_offset: usize,
        /// How many bytes it covers.
        placed_size: usize,
    },
    /// A system call failed for a reason with no variant of its own.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, source: std::io::Error) -> Self {
        Self::Io { op, source }
    }
}
