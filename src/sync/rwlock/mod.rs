//! [`RwLock<T>`]: a process-shared readers–writer lock that survives a
//! killed writer and killed readers.
//!
//! The public type and its guards live here; the lock word protocol (state
//! layout, read, write and owner death) in `raw.rs`, the reader table in
//! `readers.rs`; what `sync::inspect` reads of it
//! in `state.rs`.

#[cfg(all(test, shmkit_loom))]
mod loom_tests;
mod raw;
mod readers;
mod state;

pub(super) use self::state::state_of;

use self::raw::{writer, RawRwLock, NOT_RECOVERABLE, ORPHANED};
use self::readers::ENTRIES;
use crate::blocks::ShmSafe;
use crate::primitive::{Ordering, UnsafeCell};
use crate::sync::error::{LockError, LockResult, LockTimeoutResult, RawLockError, TryLockResult};
use crate::sync::guard::{guarded, Acquired, LockGuard};
use crate::sync::owner::Token;
use crate::sync::wait::deadline_after;
use bytemuck::Pod;
use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

/// A readers–writer lock around plain data for any number of processes
/// and threads: many readers at once, or one writer. Place it in shared
/// memory with [`Shm`](crate::Shm) or [`Region::place`](crate::Region::place);
/// zeroed memory is an unlocked lock holding zeroed data.
///
/// Uncontended `read` and `write` take one atomic read-modify-write each
/// and no system call (a read also loads the lock word, a write the
/// table of readers); an unlock makes a futex call only if someone sleeps.
/// `T` is [`Pod`]: whatever a crashed or buggy peer left in it is still a
/// valid `T`.
///
/// # Readers
///
/// Read locks are recorded per *participant*: each [`Region`](crate::Region)
/// handle through which some thread holds a read lock has an entry in the
/// lock's table of [`READER_SLOTS`](Self::READER_SLOTS) (32) entries, whose
/// count all that handle's threads share. So at most 32 handles (usually:
/// processes) hold read locks at once; a reader of a 33rd waits until an
/// entry is free, as it would for a writer ([`try_read`](Self::try_read)
/// returns [`TryLockError::WouldBlock`](crate::sync::TryLockError::WouldBlock), the timed forms
/// [`LockTimeoutError::Timeout`](crate::sync::LockTimeoutError::Timeout)), looking again every few milliseconds.
///
/// # Preference
///
/// Writers are preferred: a writer that finds readers *claims* the lock,
/// after which new readers wait; it owns the lock as soon as the last
/// reader leaves. A writer whose deadline passes while it waits for
/// readers withdraws its claim and lets the waiting readers in. So a
/// thread that takes a read lock while it already holds one can deadlock
/// against a waiting writer (as with `std`'s lock).
///
/// # Owner death
///
/// *A writer that dies holding the lock* is detected by whoever waits for
/// the lock, within a few milliseconds:
/// - the next **writer** gets [`LockError::OwnerDied`] with a write guard:
///   it repairs the data and calls
///   [`mark_consistent`](RwLockWriteGuard::mark_consistent). Dropping that
///   guard without it makes the lock [not recoverable](LockError::NotRecoverable)
///   for everyone, readers included.
/// - a **reader** cannot repair anything through a read guard, so it does
///   not take the write side over. It gets `Err(LockError::OwnerDied(guard))`
///   with a *read* guard: shared read access to possibly half-updated
///   data. Every reader gets the same error until a writer has taken the
///   lock, seen `OwnerDied` itself and marked the data consistent. To
///   repair, drop the read guard and call [`write`](Self::write).
///
/// A writer that dies while still waiting for readers (with its claim in
/// place) has written nothing; its claim is dropped and nobody is told —
/// except in the instants between its claim and its first look at the
/// readers, where it is reported as a death (conservatively).
///
/// *A reader that dies holding read locks* is detected by a writer waiting
/// for it, within a few milliseconds: its holds are dropped and the writer
/// gets the lock with a **clean** guard (`Ok`, not `OwnerDied`). A read
/// guard gives only shared access, so a reader cannot have changed the
/// data: whatever the last writer left consistent still is. The same holds
/// for a reader killed at any point of taking or releasing its lock: a
/// writer never enters while a live reader holds the lock, and never waits
/// for a dead one for good (at worst a few milliseconds more, when the
/// reader died just before it would have woken the writer).
///
/// Garbage in the lock's shared state (a reader count at its limit, a
/// writer or reader token no process ever had, reserved bits) is reported
/// as [`LockError::Corrupted`], at once or after one probe interval.
///
/// ```
/// use shmkit::sync::{LockError, RwLock};
/// use shmkit::Shm;
///
/// # let name = format!("/shmkit-doc-rwlock-{}", std::process::id());
/// // Two counters that must always be equal.
/// let pair = Shm::<RwLock<[u64; 2]>>::create(&name, |_| {})?;
/// // In a writer process:
/// let mut w = match pair.write() {
///     Ok(w) => w,
///     Err(LockError::OwnerDied(mut w)) => {
///         // The last writer died mid-update: repair, then say so.
///         let v = w[0].max(w[1]);
///         *w = [v, v];
///         w.mark_consistent();
///         w
///     }
///     Err(e) => panic!("{e}"),
/// };
/// w[0] += 1;
/// w[1] += 1;
/// drop(w);
/// // In any number of reader processes at once:
/// let r = pair.read().unwrap();
/// assert_eq!(r[0], r[1]);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
pub struct RwLock<T: Pod> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through guards, which exist only while
// this process holds the matching lock: `&T` shared between readers needs
// `T: Sync`, a write guard (maybe dropped on another thread) needs
// `T: Send`.
unsafe impl<T: Pod + Send + Sync> Sync for RwLock<T> {}
// SAFETY: as for `Sync`.
unsafe impl<T: Pod + Send> Send for RwLock<T> {}
// SAFETY: repr(C) over atomics (zero = unlocked, no readers; every value
// is handled: garbage is `Corrupted`, a dead participant or a bounded
// wait) and `T: Pod` (any bytes valid, zero valid, no pointers, no Drop).
unsafe impl<T: Pod + Send + Sync> ShmSafe for RwLock<T> {
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::RwLock;
}

impl<T: Pod> RwLock<T> {
    /// How many participants (region handles) can hold read locks at once.
    ///
    /// ```
    /// use shmkit::sync::RwLock;
    ///
    /// assert_eq!(RwLock::<u64>::READER_SLOTS, 32);
    /// ```
    pub const READER_SLOTS: usize = ENTRIES;

    /// An unlocked lock holding `value` (for use outside shared memory, or
    /// to build one before copying it in).
    pub fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes a shared read lock, waiting as long as a writer holds or
    /// claims the lock (a dead writer is detected within a few
    /// milliseconds), or while the table of readers is full.
    ///
    /// `Err(OwnerDied(guard))` means a writer died mid-update and no writer
    /// has repaired the data since: the guard reads it as it is.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw.read(None))
    }

    /// Takes a read lock if no writer holds or claims it (or the writer is
    /// dead) and the table of readers has room.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw.try_read())
    }

    /// Takes a read lock, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> LockTimeoutResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw.read(deadline_after(timeout)))
    }

    /// Takes a read lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn read_deadline(&self, deadline: Instant) -> LockTimeoutResult<RwLockReadGuard<'_, T>> {
        self.read_guard(self.raw.read(Some(deadline)))
    }

    /// Takes the exclusive write lock, waiting as long as it takes (a dead
    /// writer or reader is detected within a few milliseconds).
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw.write(None))
    }

    /// Takes the write lock if nobody holds it (or its holders are dead:
    /// this probes their liveness, a system call each).
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw.try_write())
    }

    /// Takes the write lock, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> LockTimeoutResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw.write(deadline_after(timeout)))
    }

    /// Takes the write lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn write_deadline(&self, deadline: Instant) -> LockTimeoutResult<RwLockWriteGuard<'_, T>> {
        self.write_guard(self.raw.write(Some(deadline)))
    }

    /// The read guard (or error) for a raw outcome of a read.
    #[inline]
    fn read_guard<'a, E>(
        &'a self,
        r: Result<(Acquired, usize, Token), RawLockError>,
    ) -> Result<RwLockReadGuard<'a, T>, E>
    where
        E: From<LockError<RwLockReadGuard<'a, T>>> + From<RawLockError>,
    {
        let r = r.map(|(acquired, entry, token)| (acquired, (entry, token)));
        guarded(r, |(entry, token), _| RwLockReadGuard {
            lock: self,
            entry,
            token,
        })
    }

    /// The write guard (or error) for a raw outcome of a write.
    #[inline]
    fn write_guard<'a, E>(
        &'a self,
        r: Result<Acquired, RawLockError>,
    ) -> Result<RwLockWriteGuard<'a, T>, E>
    where
        E: From<LockError<RwLockWriteGuard<'a, T>>> + From<RawLockError>,
    {
        guarded(r.map(|a| (a, ())), |(), consistent| {
            // SAFETY: `r` is the outcome of a write acquire of `self.raw`,
            // and `guarded` builds a guard only for a hold it reports.
            unsafe { RwLockWriteGuard::new(&self.raw, &self.data, consistent) }
        })
    }
}

impl<T: Pod + Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.raw.state.load(Ordering::Relaxed);
        let mut d = f.debug_struct("RwLock");
        if s == NOT_RECOVERABLE {
            d.field("not_recoverable", &true);
        } else {
            d.field("readers", &self.raw.readers())
                .field("writer", &(writer(s) != 0))
                .field("orphaned", &(s & ORPHANED != 0));
        }
        d.finish_non_exhaustive()
    }
}

/// Shared read access to an [`RwLock`]'s data while this process holds a
/// read lock; unlocks on drop.
///
/// A read guard handed out with [`LockError::OwnerDied`] reads data a dead
/// writer may have left half-updated; it cannot repair it (take the write
/// lock for that).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    /// The reader entry counting this hold, and whose it is.
    entry: usize,
    token: Token,
}

impl<T: Pod> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this process holds a read lock for the guard's lifetime,
        // so no correct participant writes the data; `T: Pod` makes any
        // bytes a misbehaving peer might write a valid `T`.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this process holds a read
        // lock (one per guard), taken as `token` and counted in `entry`.
        unsafe { self.lock.raw.read_unlock(self.entry, self.token) }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard")
            .field("data", &**self)
            .finish()
    }
}

/// Exclusive access to an [`RwLock`]'s data while this process holds the
/// write lock; unlocks on drop. The [generic exclusive guard](LockGuard)
/// over the readers–writer lock's word: dropped without
/// [`mark_consistent`](LockGuard::mark_consistent) after an `OwnerDied`,
/// it makes the lock not recoverable for readers and writers alike.
pub type RwLockWriteGuard<'a, T> = LockGuard<'a, RawRwLock, T>;
