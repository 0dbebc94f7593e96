//! Shared memory regions: named (POSIX shm) or anonymous (sealed memfd),
//! validated on open, with checked placement of typed objects.
//!
//! [`Shm<T>`] is a region holding one [`ShmSafe`] value, and what most
//! programs use. A bare [`Region`] holds bytes: [`Region::place`] and
//! [`Region::place_slice`] put typed objects at checked offsets of it, and
//! the rings and channels lay themselves out in one. [`list`],
//! [`inspect`], [`remove_if_unused`] and [`sweep`] deal with what crashed
//! programs leave in `/dev/shm`.
//!
//! ```
//! use shmkit::region::{self, ObjectKind};
//! use shmkit::sync::Mutex;
//! use shmkit::{Region, SharedCell};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! # let name = format!("/shmkit-doc-region-{}", std::process::id());
//! let region = Region::create(&name, 4096)?;
//! let hits = region.place::<AtomicU64>(0)?;
//! let config = region.place::<SharedCell<[u32; 4]>>(64)?;
//! let table = region.place_slice::<Mutex<u64>>(128, 16)?;
//! hits.fetch_add(1, Ordering::Relaxed);
//! config.set([1, 2, 3, 4]);
//! *table[3].lock().unwrap() = 7;
//!
//! // Another process opens the name and places the same types there.
//! let peer = Region::open(&name)?;
//! assert_eq!(peer.place::<AtomicU64>(0)?.load(Ordering::Relaxed), 1);
//! assert_eq!(*peer.place_slice::<Mutex<u64>>(128, 16)?[3].lock().unwrap(), 7);
//!
//! let info = region::inspect(&name)?;
//! assert_eq!(info.kind, ObjectKind::Region);
//! assert_eq!(info.attached.len(), 2); // two handles have it open
//! drop((region, peer)); // the creator's drop removes the name
//! assert!(Region::open(&name).is_err());
//! # Ok::<(), shmkit::Error>(())
//! ```
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
mod handle;
mod handshake;
pub(crate) mod header;
mod layout;
mod name;
mod objects;
mod options;
mod outside;
pub(crate) mod participants;
mod placement;
mod typed;

pub use crate::blocks::ShmSafe;
pub use cell::SharedCell;
use handle::Kind;
pub use handle::Region;
pub(crate) use handle::Spot;
use handshake::names_object;
pub use layout::LayoutId;
pub use name::MAX_NAME_LEN;
pub use objects::{inspect, list, remove_if_unused, sweep, ObjectInfo, ObjectKind, ObjectState};
pub use options::{RegionOptions, DEFAULT_TIMEOUT};
pub(crate) use outside::Outside;
pub use participants::MAX_PARTICIPANTS;
pub(crate) use placement::Placed;
pub use typed::Shm;

// Named by the module documentation only.
#[cfg(doc)]
use crate::error::Error;
use header::DATA_OFFSET;
