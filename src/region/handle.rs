//! [`Region`]: a mapped, validated region, and checked access to its
//! bytes.

use super::handshake::unlink_if_same;
use super::header::{Fields, Header};
use super::participants::Membership;
use super::placement::{Placed, Placements};
use super::{LayoutId, RegionOptions, ShmSafe};
use crate::error::{Error, Result};
use crate::sys::{self, map::Mapping};
use bytemuck::Pod;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Where a region's memory comes from.
#[derive(Debug)]
pub(super) enum Kind {
    /// A POSIX shm object; `unlink` says whether dropping removes the name.
    Named { name: String, unlink: bool },
    /// A sealed memfd.
    Anonymous,
}

/// A mapped, validated shared memory region.
///
/// See the [module documentation](crate::region) for what is checked; in short, a
/// name is refused if it leads to a symbolic link or anything else than a
/// regular file, to another user's object, or to an object others may
/// write (see [Untrusted names](crate::region#untrusted-names)). A region
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
    pub(super) _membership: Membership,
    pub(super) map: Mapping,
    pub(super) fd: OwnedFd,
    pub(super) kind: Kind,
    pub(super) created: bool,
    pub(super) fields: Fields,
    /// What this handle handed out references to (see [`Region::place`]).
    pub(super) placements: Placements,
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
        super::name::validate(name)?;
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
    /// the rules of the [module documentation](crate::region); prefer the checked
    /// accessors.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: the mapping is at least `data_offset` bytes long (checked
        // at open: total_size >= data_offset == DATA_OFFSET).
        unsafe { self.map.ptr().add(self.fields.data_offset as usize) }
    }

    pub(super) fn header(&self) -> &Header {
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
    ///   write chunk ([`spsc::WriteChunk`], [`bytes::WriteChunk`]) of a
    ///   ring whose slots they are).
    ///
    /// Shared references to the bytes may be alive. Writes by *other
    /// processes* are the untrusted-peer case above, not a breach of this
    /// contract.
    ///
    /// [`MutexGuard`]: crate::sync::MutexGuard
    /// [`RwLockWriteGuard`]: crate::sync::RwLockWriteGuard
    /// [`spsc::WriteChunk`]: crate::ring::spsc::WriteChunk
    /// [`bytes::WriteChunk`]: crate::ring::bytes::WriteChunk
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
    ///   whose bytes lie inside an `UnsafeCell` (atomics, [`SharedCell`](super::SharedCell),
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
