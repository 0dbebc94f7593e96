//! Participants: who has a region open, as the region itself records it,
//! and the test of whether one of them is still alive.
//!
//! Every [`Region`](super::Region) handle joins its region's participant
//! table when it is created or opened. Joining means winning a *slot*: the
//! handle reopens the region's own file (`/proc/self/fd/N`, a new open
//! file description private to this handle), takes an OFD write lock on
//! byte [`LOCK_BASE`]` + slot` of it without blocking, then bumps the
//! slot's generation in the table. The handle's [`Token`] is
//! `(slot, generation)` packed in 31 bits; lock words and attachment
//! tables inside the region hold tokens, never pids.
//!
//! A token is alive while its slot's byte is locked by some other open
//! file description *and* the slot's generation still equals the token's.
//! The kernel drops the lock when the last descriptor of that description
//! is closed: when the handle is dropped or its process dies, however it
//! dies. A handle that later reuses the slot bumps the generation, so
//! neither a recycled pid nor a recycled slot makes a dead owner look
//! alive.
//!
//! The lock lives on the region's inode, which exists as long as anyone
//! maps it: removing or replacing the region's *name* in `/dev/shm`
//! changes nothing, and there is no other file whose loss or squatting
//! could matter. See the crate's trust model ([`crate::region`]) for what a
//! peer that can write the region can still do.
//!
//! ```text
//! offset (from the table)  field
//!       0                  next: where the next joiner starts looking
//!       4                  reserved
//!       8                  gens[SLOTS]: current generation of each slot,
//!                          1..=GEN_MASK, 0 = never used
//!   8 + 4 SLOTS            pids[SLOTS]: pid of each slot's latest holder,
//!                          for diagnostics only
//! ```
//!
//! Invariants:
//! - a token is never 0 (0 means "unlocked" in lock words) and never above
//!   [`Token::MAX_RAW`] (`u32::MAX` lock words mean "not recoverable");
//! - only a slot's lock holder writes its generation and pid, and it does
//!   so once, right after winning the slot;
//! - the table is zero when the region is created (fresh pages), which is
//!   "no slot ever used".
//!
//! Known limits:
//! - a joiner stopped (`SIGSTOP`) between locking a slot and bumping its
//!   generation makes that slot's previous, dead holder look alive until
//!   it resumes: waiters stay bounded by their own deadlines;
//! - after `fork()` without `exec`, the child shares its parent's open
//!   file descriptions, so both count as one participant until the last of
//!   them exits: processes must not hold shmkit locks across a fork, and
//!   should exec.
//!
//! Memory that is not inside any region mapped by this process (a
//! [`Mutex`](crate::sync::Mutex) on the heap) has one participant, this
//! process, which is always alive.

// Under loom only the stand-ins below are used.
#![cfg_attr(shmkit_loom, allow(dead_code, unused_imports))]

use crate::primitive::{AtomicU32, Ordering};

/// Bits of a token that hold the slot's generation.
pub(crate) const GEN_BITS: u32 = 21;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Slots in a region's table: indices `0..SLOTS`, so at most this many
/// handles may have one region open at a time, across all processes. (The
/// all-ones index is kept out so that no token is all ones.)
pub const MAX_PARTICIPANTS: usize = 1023;
const SLOTS: usize = MAX_PARTICIPANTS;

/// Lock bytes live far past the object's end, clear of any other use.
pub(crate) const LOCK_BASE: u64 = 1 << 40;

/// A participant's identity: `slot << 21 | generation`, 31 bits, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(u32);

impl Token {
    /// The largest raw value a real token can have.
    pub(crate) const MAX_RAW: u32 = ((SLOTS as u32 - 1) << GEN_BITS) | GEN_MASK;

    /// The token of memory outside every region: this process.
    pub(crate) const PRIVATE: Token = Token((1 << GEN_BITS) | 1);

    /// The token as stored in shared memory.
    #[inline]
    pub(crate) const fn raw(self) -> u32 {
        self.0
    }

    /// A token read back from shared memory; may be garbage, which
    /// liveness checks report as [`Liveness::Invalid`].
    #[inline]
    pub(crate) const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// Whether `raw` could be a token at all (cheap; no liveness check):
    /// non-zero, in range, with a non-zero generation.
    #[inline]
    pub(crate) const fn is_well_formed(raw: u32) -> bool {
        raw != 0 && raw <= Self::MAX_RAW && raw & GEN_MASK != 0
    }

    pub(crate) const fn new(slot: usize, gen: u32) -> Self {
        Self(((slot as u32) << GEN_BITS) | gen)
    }

    pub(crate) const fn slot(self) -> usize {
        (self.0 >> GEN_BITS) as usize
    }

    pub(crate) const fn gen(self) -> u32 {
        self.0 & GEN_MASK
    }
}

/// What a liveness check found out about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Its handle is open in a live process (or could not be proven gone).
    Alive,
    /// Its handle is gone: dropped, or its process died.
    Dead,
    /// No handle ever had this token: the word holding it is garbage.
    Invalid,
}

/// A region's participant table; lives in shared memory right after the
/// header.
#[repr(C)]
pub(crate) struct Table {
    next: AtomicU32,
    _reserved: AtomicU32,
    gens: [AtomicU32; SLOTS],
    pids: [AtomicU32; SLOTS],
}

/// Bytes the table takes in a region, rounded up to a cache line pair.
pub(crate) const TABLE_SIZE: usize = (core::mem::size_of::<Table>() + 127) & !127;

#[cfg(not(shmkit_loom))]
const _: () = assert!(TABLE_SIZE == 8192);

impl Table {
    /// The slot's current generation, as a peer may have written it.
    fn gen(&self, slot: usize) -> u32 {
        self.gens[slot].load(Ordering::Acquire)
    }

    /// Records that this handle won `slot` (whose lock byte it holds):
    /// bumps the generation and records the pid.
    fn claim(&self, slot: usize, pid: u32) -> Token {
        let old = self.gens[slot].load(Ordering::Relaxed);
        let gen = if old == 0 || old >= GEN_MASK {
            1
        } else {
            old + 1
        };
        self.gens[slot].store(gen, Ordering::Release);
        self.pids[slot].store(pid, Ordering::Relaxed);
        Token::new(slot, gen)
    }
}

#[cfg(not(shmkit_loom))]
pub(crate) use real::{attached, current, holder, is_in_use, join, liveness, Membership};

#[cfg(not(shmkit_loom))]
mod real {
    use super::*;
    use crate::error::{Error, Result};
    use crate::sys;
    use std::cell::Cell;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::sync::RwLock;

    /// One region handle's place in its region's table.
    #[derive(Debug)]
    struct Entry {
        start: usize,
        len: usize,
        token: Token,
        /// The handle's private open file description (raw: the
        /// [`Membership`] owning it unregisters before closing it).
        fd: i32,
        table: usize,
    }

    /// Every region handle this process has open, by address range.
    static MAPS: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

    /// Bumped whenever [`MAPS`] changes, so per-thread caches of a lookup
    /// never outlive the mapping they describe. Process-local: never in
    /// shared memory, not part of any loom model.
    #[allow(clippy::disallowed_types)]
    static EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

    #[derive(Clone, Copy)]
    struct Cached {
        start: usize,
        len: usize,
        epoch: u64,
        token: Token,
    }

    thread_local! {
        /// The last region this thread looked up a token in.
        static LAST: Cell<Cached> = const {
            Cell::new(Cached { start: 0, len: 0, epoch: 0, token: Token::PRIVATE })
        };
    }

    #[allow(clippy::disallowed_types)]
    fn epoch() -> u64 {
        EPOCH.load(std::sync::atomic::Ordering::Acquire)
    }

    #[allow(clippy::disallowed_types)]
    fn bump_epoch() {
        EPOCH.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A region handle's membership in its table: holds the slot's lock
    /// (through a private open file description) and the entry that maps
    /// the handle's addresses to its token. Dropping it leaves the slot.
    #[derive(Debug)]
    pub(crate) struct Membership {
        start: usize,
        /// Holds the slot's lock for as long as it is open.
        _fd: OwnedFd,
    }

    impl Drop for Membership {
        fn drop(&mut self) {
            let mut maps = MAPS.write().unwrap_or_else(|e| e.into_inner());
            maps.retain(|e| e.start != self.start);
            bump_epoch();
            // `_fd` closes after this, releasing the slot's lock: nobody can
            // find it through `MAPS` any more.
        }
    }

    /// A new open file description of the object `fd` refers to, private
    /// to the caller (descriptors inherited or received share theirs).
    fn reopen(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let own = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("reopen the region through /proc/self/fd", e.into()))?;
        let (a, b) = (sys::fd::info(fd)?, sys::fd::info(own.as_fd())?);
        if (a.dev, a.ino) != (b.dev, b.ino) {
            return Err(Error::io(
                "reopen the region through /proc/self/fd",
                std::io::Error::other("reopened a different object"),
            ));
        }
        Ok(own)
    }

    /// Joins the table at `table` of the region mapped at `start..start +
    /// len` whose descriptor is `fd`.
    ///
    /// # Safety
    /// `table` points at a [`Table`] inside that mapping, and the mapping
    /// stays mapped until the returned [`Membership`] is dropped.
    pub(crate) unsafe fn join(
        fd: BorrowedFd<'_>,
        start: *const u8,
        len: usize,
        table: *const Table,
    ) -> Result<Membership> {
        // SAFETY: the caller guarantees `table` is a live `Table` (all
        // atomics: valid for any bytes a peer writes).
        let t = unsafe { &*table };
        let own = reopen(fd)?;
        let first = t.next.fetch_add(1, Ordering::Relaxed) as usize;
        for k in 0..SLOTS {
            let slot = (first + k) % SLOTS;
            if sys::ofd::try_lock_byte(own.as_fd(), LOCK_BASE + slot as u64)? {
                let token = t.claim(slot, sys::fd::pid());
                let mut maps = MAPS.write().unwrap_or_else(|e| e.into_inner());
                maps.push(Entry {
                    start: start as usize,
                    len,
                    token,
                    fd: own.as_raw_fd(),
                    table: table as usize,
                });
                bump_epoch();
                drop(maps);
                return Ok(Membership {
                    start: start as usize,
                    _fd: own,
                });
            }
        }
        Err(Error::TooManyParticipants { slots: SLOTS })
    }

    /// The token of the region handle through which this process reaches
    /// `at` (any address inside a mapped region), or [`Token::PRIVATE`]
    /// for memory outside every region.
    #[inline]
    pub(crate) fn current(at: *const u8) -> Token {
        let a = at as usize;
        let c = LAST.with(Cell::get);
        if a.wrapping_sub(c.start) < c.len && c.epoch == epoch() {
            return c.token;
        }
        current_slow(a)
    }

    #[cold]
    fn current_slow(a: usize) -> Token {
        let e = epoch();
        let maps = MAPS.read().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = find(&maps, a) else {
            return Token::PRIVATE;
        };
        let token = entry.token;
        LAST.with(|c| {
            c.set(Cached {
                start: entry.start,
                len: entry.len,
                epoch: e,
                token,
            })
        });
        token
    }

    fn find(maps: &[Entry], a: usize) -> Option<&Entry> {
        maps.iter().find(|e| a.wrapping_sub(e.start) < e.len)
    }

    /// Whether the handle holding token `t` in the region containing `at`
    /// is alive (a system call, unless `t` is this handle's own token).
    ///
    /// I/O failures count as alive: a waiter then keeps waiting (bounded
    /// by its own deadline) rather than breaking a live owner's lock.
    pub(crate) fn liveness(at: *const u8, t: Token) -> Liveness {
        if !Token::is_well_formed(t.raw()) {
            return Liveness::Invalid;
        }
        let maps = MAPS.read().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = find(&maps, at as usize) else {
            // Private memory: only this process can have locked it.
            return Liveness::Alive;
        };
        if t == entry.token {
            return Liveness::Alive;
        }
        if t.slot() == entry.token.slot() {
            // Our own slot: a predecessor of ours, gone.
            return Liveness::Dead;
        }
        // SAFETY: `entry.fd` stays open while the entry is in `MAPS` (its
        // `Membership` removes it before closing), and we hold the lock.
        let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
        match sys::ofd::byte_locked_by_other(fd, LOCK_BASE + t.slot() as u64) {
            Ok(false) => Liveness::Dead,
            Ok(true) => {
                // SAFETY: the entry's table lives in a mapping that stays
                // mapped while the entry is registered (`join`'s contract).
                let table = unsafe { &*(entry.table as *const Table) };
                if table.gen(t.slot()) == t.gen() {
                    Liveness::Alive
                } else {
                    Liveness::Dead
                }
            }
            Err(_) => Liveness::Alive,
        }
    }

    /// Whether any open file description other than `fd`'s holds a slot
    /// lock of the object: some handle, in some live process, has it open.
    pub(crate) fn is_in_use(fd: BorrowedFd<'_>) -> Result<bool> {
        sys::ofd::range_locked_by_other(fd, LOCK_BASE, SLOTS as u64)
    }

    /// The pids recorded by the slots of `table` (a copy of the table's
    /// bytes, perhaps short) whose lock some open file description other
    /// than `fd`'s holds: one per live handle.
    pub(crate) fn attached(fd: BorrowedFd<'_>, table: &[u8]) -> Result<Vec<u32>> {
        let word = |at: usize| {
            table
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let gens = core::mem::offset_of!(Table, gens);
        let pids = core::mem::offset_of!(Table, pids);
        let mut out = Vec::new();
        for slot in 0..SLOTS {
            if word(gens + 4 * slot) != 0
                && sys::ofd::byte_locked_by_other(fd, LOCK_BASE + slot as u64)?
            {
                out.push(word(pids + 4 * slot));
            }
        }
        Ok(out)
    }

    /// The holder of token `raw` as `table` (a copy of the table's bytes)
    /// records it: its pid, and whether its handle is still open (an
    /// open file description other than `fd`'s holds its slot's lock,
    /// and the slot's generation is still the token's). `None` if `raw`
    /// cannot be a token.
    pub(crate) fn holder(
        fd: BorrowedFd<'_>,
        table: &[u8],
        raw: u32,
    ) -> Result<Option<(u32, bool)>> {
        if !Token::is_well_formed(raw) {
            return Ok(None);
        }
        let t = Token::from_raw(raw);
        let word = |at: usize| {
            table
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let gen = word(core::mem::offset_of!(Table, gens) + 4 * t.slot());
        let pid = word(core::mem::offset_of!(Table, pids) + 4 * t.slot());
        let open = sys::ofd::byte_locked_by_other(fd, LOCK_BASE + t.slot() as u64)?;
        Ok(Some((pid, open && gen == t.gen())))
    }
}

#[cfg(shmkit_loom)]
pub(crate) use model::{
    attached, current, declare_dead, holder, is_in_use, join, liveness, Membership,
};

/// Loom cannot see atomics in a mapping, so regions are never used under
/// it; these stand-ins keep the crate compiling, and the lock protocols'
/// models get one participant per loom thread.
#[cfg(shmkit_loom)]
mod model {
    use super::*;
    use crate::error::Result;
    use std::os::fd::BorrowedFd;

    #[derive(Debug)]
    pub(crate) struct Membership;

    /// # Safety
    /// None needed: the stand-in touches nothing.
    pub(crate) unsafe fn join(
        _fd: BorrowedFd<'_>,
        _start: *const u8,
        _len: usize,
        _table: *const Table,
    ) -> Result<Membership> {
        Ok(Membership)
    }

    pub(crate) fn is_in_use(_fd: BorrowedFd<'_>) -> Result<bool> {
        Ok(true)
    }

    pub(crate) fn attached(_fd: BorrowedFd<'_>, _table: &[u8]) -> Result<Vec<u32>> {
        Ok(Vec::new())
    }

    pub(crate) fn holder(
        _fd: BorrowedFd<'_>,
        _table: &[u8],
        _raw: u32,
    ) -> Result<Option<(u32, bool)>> {
        Ok(None)
    }

    loom::lazy_static! {
        /// Hands out loom-thread tokens, afresh in every execution (so a
        /// token, and whatever a protocol derives from it, is the same each
        /// time loom replays a schedule). Not a model variable: plain std.
        static ref NEXT: std::sync::Mutex<u32> = std::sync::Mutex::new(1);
        /// The (up to two) tokens a model has declared dead (0: none);
        /// model variables, so that whoever learns of a death also sees
        /// everything the dead participant did before it.
        static ref DEAD: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
    }

    loom::thread_local! {
        static ME: Token = {
            let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
            let n = *next;
            *next += 1;
            // Slot n, generation 1: always well formed.
            Token::new((n % (SLOTS as u32 - 1)) as usize, 1)
        };
    }

    /// Each loom thread is its own participant.
    pub(crate) fn current(_at: *const u8) -> Token {
        ME.with(|t| *t)
    }

    /// Every participant is alive, except the one a model declared dead
    /// with [`declare_dead`]: models check the lock protocols (and their
    /// recovery from a participant that stopped), cross-process tests check
    /// that deaths are detected.
    pub(crate) fn liveness(_at: *const u8, t: Token) -> Liveness {
        if !Token::is_well_formed(t.raw()) {
            return Liveness::Invalid;
        }
        if DEAD.iter().any(|d| d.load(Ordering::Acquire) == t.raw()) {
            Liveness::Dead
        } else {
            Liveness::Alive
        }
    }

    /// Declares the calling loom thread dead, as the kernel does for a
    /// killed process: the thread must do nothing more to shared state
    /// (it stops, as a killed process would, after its last step).
    pub(crate) fn declare_dead() {
        let me = current(core::ptr::null()).raw();
        if DEAD[0]
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            DEAD[1].store(me, Ordering::Release);
        }
    }
}
