//! [`RwLock<T>`]: a process-shared readers–writer lock that survives a
//! killed writer.
//!
//! # State
//!
//! One 64-bit word holds everything a lock or unlock decides on, so every
//! transition — including taking over from a dead writer — is a single
//! compare-and-swap from the exact state seen. Futexes are 32-bit, so
//! sleepers park on a separate 32-bit `epoch` that every waking release
//! bumps.
//!
//! ```text
//! bits     field     meaning
//! 0..=29   readers   read holds (OwnerDied read guards included);
//!                    2^30 - 1 is never reached by correct use: Corrupted
//! 30       PARKED    someone may sleep on `epoch`
//! 31       ORPHANED  a writer died holding the lock and no writer has
//!                    taken it since: readers get OwnerDied, the next
//!                    writer gets OwnerDied
//! 32..=62  writer    token of the writer (0: none); with readers == 0
//!                    it holds the lock, with readers > 0 it has claimed
//!                    the lock and waits for them to leave
//! 63       -         always 0, except in NOT_RECOVERABLE (all ones)
//! ```
//!
//! | state                         | meaning                               |
//! |-------------------------------|---------------------------------------|
//! | `0`                           | unlocked (zeroed memory)              |
//! | `readers = r, writer = 0`     | `r` readers hold it                   |
//! | `readers = 0, writer = w`     | `w` holds it for writing              |
//! | `readers = r > 0, writer = w` | `w` waits for `r` readers to leave; new readers wait |
//! | `u64::MAX`                    | not recoverable                       |
//!
//! Uncontended `read`: one CAS adding a reader; unlock: one `fetch_sub`.
//! Uncontended `write`: one CAS `0 -> token`; unlock: one swap to 0. An
//! unlock makes a futex call only if `PARKED` was set (for a read unlock,
//! only the last reader's).
//!
//! A waiter reads `epoch` *before* the state it decides to sleep on, and
//! sleeps only with `PARKED` set in that state; every transition that can
//! let a sleeper on clears `PARKED` and then bumps `epoch` and wakes all
//! sleepers. So a release either happened before the waiter read `epoch`
//! (the waiter sees it in the state) or bumps `epoch` after (the futex
//! returns or is woken): no lost wake-up. Wake-ups are for everyone; the
//! losers of the race park again.
//!
//! # Owner death (the protocol; the contract is on [`RwLock`])
//!
//! A waiter (reader or writer) that keeps seeing the same writer token
//! checks whether that token's holder is alive, on the schedule of a
//! [`Probe`] (after 1 ms, then at most every 10 ms). If it is dead, the waiter acts with one
//! CAS from the exact state it saw, so two waiters can never both act on
//! the same death, and a token cannot be confused with a later process's
//! (tokens carry their participant slot's generation):
//!
//! | state seen (`w` dead)     | a writer installs            | a reader installs                        |
//! |---------------------------|------------------------------|------------------------------------------|
//! | `readers = 0, writer = w` | `writer = me` → `OwnerDied`  | `writer = 0, ORPHANED, readers = 1` → `OwnerDied` (read guard) |
//! | `readers = r, writer = w` | `writer = me` (our claim)    | `writer = 0, readers = r + 1`            |
//!
//! The second row is a writer that died while *claiming* (waiting for
//! readers): it had written nothing, so its claim is just dropped or
//! replaced. Once its readers are gone it looks like the first row and is
//! reported as a death, conservatively. A writer that acquires with
//! `ORPHANED` set gets `OwnerDied`; a write guard dropped without
//! `mark_consistent` stores `NOT_RECOVERABLE`.
//!
//! Read holds carry no token (that is what keeps them one atomic
//! operation), so a reader's death cannot be detected: see [`RwLock`].
//!
//! Garbage in the state (a reserved bit, a reader count at its limit, a
//! writer token no process ever had) is [`LockError::Corrupted`], at once
//! or after one probe interval; garbage in `epoch` costs at most a spare
//! wake-up.

use super::error::LockError;
use super::owner::{self, Liveness, Token};
use super::wait::{deadline_after, expired, probe_slice, Probe, SPIN_LIMIT};
use crate::primitive::{
    futex_wait, futex_wake_all, spin_loop, AtomicU32, AtomicU64, Ordering, UnsafeCell,
};
use crate::region::ShmSafe;
use bytemuck::Pod;
use std::convert::Infallible;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

const READERS: u64 = (1 << 30) - 1;
/// A reader count no correct use reaches.
const MAX_READERS: u64 = READERS;
const PARKED: u64 = 1 << 30;
const ORPHANED: u64 = 1 << 31;
const WRITER_SHIFT: u32 = 32;
const WRITER: u64 = 0x7FFF_FFFF << WRITER_SHIFT;
const RESERVED: u64 = 1 << 63;
const NOT_RECOVERABLE: u64 = u64::MAX;

/// Reads of the state before parking (none under loom, where every read
/// is a scheduling point).
const SPINS: u32 = if cfg!(shmkit_loom) { 0 } else { SPIN_LIMIT };

#[inline]
fn readers(s: u64) -> u64 {
    s & READERS
}

#[inline]
fn writer(s: u64) -> u32 {
    ((s & WRITER) >> WRITER_SHIFT) as u32
}

#[inline]
fn with_writer(t: Token) -> u64 {
    (t.raw() as u64) << WRITER_SHIFT
}

/// How a hold was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acquired {
    Clean,
    /// A writer died holding the lock (or the data is still unrepaired
    /// since one did).
    OwnerDied,
}

impl Acquired {
    fn from_orphaned(s: u64) -> Self {
        if s & ORPHANED != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }
}

/// A raw-layer failure: any `LockError` but `OwnerDied`.
type Fail = LockError<Infallible>;

fn corrupted_token() -> Fail {
    LockError::Corrupted("rwlock writer token is not a valid participant")
}

/// The checks every path applies to a state before acting on it.
#[inline]
fn check(s: u64) -> Result<(), Fail> {
    if s == NOT_RECOVERABLE {
        return Err(LockError::NotRecoverable);
    }
    if s & RESERVED != 0 {
        return Err(LockError::Corrupted(
            "rwlock state has its reserved bit set",
        ));
    }
    if writer(s) > Token::MAX_RAW {
        return Err(corrupted_token());
    }
    if readers(s) >= MAX_READERS {
        return Err(LockError::Corrupted("rwlock reader count at its limit"));
    }
    Ok(())
}

/// What a reader can do in state `s` (already `check`ed).
enum ReadStep {
    /// Enter by a CAS to this state.
    Enter(u64, Acquired),
    /// A writer holds or claims the lock.
    Blocked(u32),
}

fn read_step(s: u64) -> Result<ReadStep, Fail> {
    check(s)?;
    let w = writer(s);
    if w != 0 {
        return Ok(ReadStep::Blocked(w));
    }
    Ok(ReadStep::Enter(s + 1, Acquired::from_orphaned(s)))
}

/// The state a reader installs over a dead writer seen in `s`: the claim
/// of a dead claimant is dropped; a dead holder becomes `ORPHANED`. Either
/// way the reader enters. `PARKED` is cleared (the caller wakes). `s` has
/// passed [`check`], so the count cannot overflow.
fn reader_over_dead_writer(s: u64) -> u64 {
    let orphan = if readers(s) == 0 { ORPHANED } else { 0 };
    ((s & !(WRITER | PARKED)) | orphan) + 1
}

/// The lock word and futex of an [`RwLock`], without data.
#[repr(C)]
#[derive(Debug, Default)]
struct RawRwLock {
    state: AtomicU64,
    epoch: AtomicU32,
    _reserved: AtomicU32,
}

impl RawRwLock {
    #[cfg(not(shmkit_loom))]
    const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        }
    }

    #[cfg(shmkit_loom)]
    fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        }
    }

    /// The token this handle writes into the state word.
    #[inline]
    fn me(&self) -> Token {
        owner::current(&self.state)
    }

    /// Spins while `keep_spinning(state)`, at most [`SPINS`] reads.
    #[inline]
    #[cfg_attr(shmkit_loom, allow(clippy::reversed_empty_ranges))] // no spins under loom
    fn spin(&self, mut keep_spinning: impl FnMut(u64) -> bool) {
        for _ in 0..SPINS {
            if !keep_spinning(self.state.load(Ordering::Relaxed)) {
                return;
            }
            spin_loop();
        }
    }

    /// Lets every sleeper re-examine the state. Called after a transition
    /// that cleared `PARKED`.
    #[cold]
    fn wake_all(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
        futex_wake_all(&self.epoch);
    }

    /// Sleeps on `epoch` (read as `e` before `s` was) until the next probe
    /// of the writer `watched` watches is due (one probe interval if none)
    /// or `deadline`, after making sure `s` carries `PARKED`. Returns
    /// without sleeping if the state moved on.
    fn park(&self, e: u32, s: u64, watched: &Option<(u32, Probe)>, deadline: Option<Instant>) {
        if s & PARKED == 0
            && self
                .state
                .compare_exchange(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let until = watched.map_or(probe_slice(deadline), |(_, p)| p.slice(deadline));
        futex_wait(&self.epoch, e, until);
    }

    /// Whether the writer `w`, as `watched` has watched it, should be
    /// probed now; updates the watch. Rate-limits liveness checks as
    /// [`Probe`] says, per waiter and per writer.
    fn probe_due(watched: &mut Option<(u32, Probe)>, w: u32) -> bool {
        match watched {
            Some((h, probe)) if *h == w => probe.due(),
            _ => {
                *watched = Some((w, Probe::start()));
                false
            }
        }
    }

    // ----- read side -----

    #[inline]
    fn try_read_fast(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & (WRITER | ORPHANED | RESERVED) == 0
            && readers(s) < MAX_READERS
            && self
                .state
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    fn try_read(&self) -> Result<Acquired, Fail> {
        if self.try_read_fast() {
            return Ok(Acquired::Clean);
        }
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (new, acquired) = match read_step(s)? {
                ReadStep::Enter(new, acquired) => (new, acquired),
                ReadStep::Blocked(w) => match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => return Err(LockError::WouldBlock),
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead => {
                        let new = reader_over_dead_writer(s);
                        (new, Acquired::from_orphaned(new))
                    }
                },
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    if s & PARKED != 0 && new & PARKED == 0 {
                        self.wake_all();
                    }
                    return Ok(acquired);
                }
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    fn read(&self, deadline: Option<Instant>) -> Result<Acquired, Fail> {
        if self.try_read_fast() {
            return Ok(Acquired::Clean);
        }
        self.read_contended(deadline)
    }

    #[cold]
    fn read_contended(&self, deadline: Option<Instant>) -> Result<Acquired, Fail> {
        let mut watched = None;
        loop {
            self.spin(|s| s & WRITER != 0 && s & PARKED == 0);
            let e = self.epoch.load(Ordering::Acquire);
            let s = self.state.load(Ordering::Relaxed);
            let w = match read_step(s)? {
                ReadStep::Enter(new, acquired) => {
                    if self
                        .state
                        .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(acquired);
                    }
                    continue;
                }
                ReadStep::Blocked(w) => w,
            };
            if Self::probe_due(&mut watched, w) {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => {}
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead => {
                        let new = reader_over_dead_writer(s);
                        if self
                            .state
                            .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            if s & PARKED != 0 {
                                self.wake_all();
                            }
                            return Ok(Acquired::from_orphaned(new));
                        }
                        continue;
                    }
                }
            }
            if expired(deadline) {
                return Err(LockError::Timeout);
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// Releases a read hold.
    ///
    /// # Safety
    ///
    /// The caller holds a read lock acquired through this `RawRwLock`.
    #[inline]
    unsafe fn read_unlock(&self) {
        let prev = self.state.fetch_sub(1, Ordering::Release);
        if readers(prev) == 1 && prev & PARKED != 0 {
            self.last_reader_wake();
        }
    }

    /// The last reader left while someone sleeps (a writer waiting for
    /// the readers, or waiters behind it): clear `PARKED`, wake everyone.
    #[cold]
    fn last_reader_wake(&self) {
        // Clearing saves later releases a futex call; it is not needed for
        // correctness (the wake below is). Never turn NOT_RECOVERABLE
        // (which has every bit set) into something else.
        let mut s = self.state.load(Ordering::Relaxed);
        while s & PARKED != 0 && s != NOT_RECOVERABLE {
            match self
                .state
                .compare_exchange(s, s & !PARKED, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.wake_all();
    }

    // ----- write side -----

    #[inline]
    fn try_write_fast(&self, me: Token) -> bool {
        self.state
            .compare_exchange(0, with_writer(me), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn try_write(&self) -> Result<Acquired, Fail> {
        let me = self.me();
        if self.try_write_fast(me) {
            return Ok(Acquired::Clean);
        }
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            check(s)?;
            let w = writer(s);
            let (new, acquired) = if w == 0 {
                if readers(s) != 0 {
                    return Err(LockError::WouldBlock);
                }
                ((s & PARKED) | with_writer(me), Acquired::from_orphaned(s))
            } else {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => return Err(LockError::WouldBlock),
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead if readers(s) == 0 => {
                        ((s & PARKED) | with_writer(me), Acquired::OwnerDied)
                    }
                    Liveness::Dead => {
                        // A dead claimant: drop its claim for the readers
                        // it blocks; we still cannot enter.
                        if self
                            .state
                            .compare_exchange(
                                s,
                                s & !(WRITER | PARKED),
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                        {
                            if s & PARKED != 0 {
                                self.wake_all();
                            }
                            return Err(LockError::WouldBlock);
                        }
                        s = self.state.load(Ordering::Relaxed);
                        continue;
                    }
                }
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(acquired),
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    fn write(&self, deadline: Option<Instant>) -> Result<Acquired, Fail> {
        let me = self.me();
        if self.try_write_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.write_contended(me, deadline)
    }

    #[cold]
    fn write_contended(&self, me: Token, deadline: Option<Instant>) -> Result<Acquired, Fail> {
        let mine = with_writer(me);
        // Whether our token in the word is our own claim (rather than
        // another thread of this process holding the lock).
        let mut claimed = false;
        let mut watched = None;
        loop {
            self.spin(|s| {
                let free = s & WRITER == 0 || (claimed && s & WRITER == mine && readers(s) == 0);
                !free && s & PARKED == 0
            });
            let e = self.epoch.load(Ordering::Acquire);
            let s = self.state.load(Ordering::Acquire);
            check(s)?;
            let w = writer(s);
            if w == 0 {
                claimed = false;
                let (new, done) = if readers(s) == 0 {
                    ((s & PARKED) | mine, true)
                } else {
                    (s | mine, false)
                };
                match self
                    .state
                    .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) if done => return Ok(Acquired::from_orphaned(s)),
                    Ok(_) => claimed = true,
                    Err(_) => {}
                }
                continue;
            }
            if claimed && w == me.raw() {
                if readers(s) == 0 {
                    return Ok(Acquired::from_orphaned(s));
                }
                // Our claim waits for the readers; readers are anonymous,
                // so there is nobody to probe.
            } else {
                claimed = false;
                if Self::probe_due(&mut watched, w) {
                    match owner::liveness(&self.state, Token::from_raw(w)) {
                        Liveness::Alive => {}
                        Liveness::Invalid => return Err(corrupted_token()),
                        Liveness::Dead => {
                            // A dead claimant is replaced by our claim; a
                            // dead holder is taken over.
                            let (new, done) = if readers(s) == 0 {
                                ((s & PARKED) | mine, true)
                            } else {
                                ((s & !WRITER) | mine, false)
                            };
                            match self.state.compare_exchange(
                                s,
                                new,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            ) {
                                Ok(_) if done => return Ok(Acquired::OwnerDied),
                                Ok(_) => claimed = true,
                                Err(_) => {}
                            }
                            continue;
                        }
                    }
                }
            }
            if expired(deadline) {
                return if claimed {
                    self.withdraw_claim(me)
                } else {
                    Err(LockError::Timeout)
                };
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// Withdraws our claim after the deadline passed, letting the readers
    /// it blocked in — unless the last reader has just left, in which case
    /// the lock is ours.
    fn withdraw_claim(&self, me: Token) -> Result<Acquired, Fail> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if writer(s) != me.raw() {
                return Err(LockError::Timeout);
            }
            if readers(s) == 0 {
                return Ok(Acquired::from_orphaned(s));
            }
            match self.state.compare_exchange(
                s,
                s & !(WRITER | PARKED),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if s & PARKED != 0 {
                        self.wake_all();
                    }
                    return Err(LockError::Timeout);
                }
                Err(now) => s = now,
            }
        }
    }

    /// Releases the write lock.
    ///
    /// # Safety
    ///
    /// The caller holds the write lock acquired through this `RawRwLock`.
    #[inline]
    unsafe fn write_unlock(&self) {
        if self.state.swap(0, Ordering::Release) & PARKED != 0 {
            self.wake_all();
        }
    }

    /// Releases the write lock as not recoverable: every later lock fails.
    ///
    /// # Safety
    ///
    /// The caller holds the write lock.
    unsafe fn write_unlock_not_recoverable(&self) {
        self.state.swap(NOT_RECOVERABLE, Ordering::Release);
        self.wake_all();
    }
}

/// A readers–writer lock around plain data for any number of processes
/// and threads: many readers at once, or one writer. Place it in shared
/// memory with [`Shm`](crate::Shm) or [`Region::place`](crate::Region::place);
/// zeroed memory is an unlocked lock holding zeroed data.
///
/// Uncontended `read`/`write` and their unlocks are one atomic operation
/// each and no system call; an unlock makes a futex call only if someone
/// sleeps. `T` is [`Pod`]: whatever a crashed or buggy peer left in it is
/// still a valid `T`.
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
/// unless the readers all left before anyone noticed, in which case it is
/// reported as a death (conservatively).
///
/// *A reader that dies holding a read lock is not recovered.* Read locks
/// are anonymous (that is what keeps them one atomic operation), so nobody
/// can tell that the reader count includes a dead process. Readers carry
/// on unaffected, but no writer can get the lock again:
/// [`write`](Self::write) waits forever, and while it waits its claim
/// blocks new readers too. Where reader processes may be killed, use
/// [`write_timeout`](Self::write_timeout) or [`write_until`](Self::write_until):
/// they return [`LockError::Timeout`] at the deadline and withdraw their
/// claim, so readers are held up at most until then.
///
/// Garbage in the lock's shared state (a reader count at its limit, a
/// writer token no process ever had, reserved bits) is reported as
/// [`LockError::Corrupted`], at once or after one probe interval.
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
// SAFETY: repr(C) over atomics (zero = unlocked; every value is handled:
// garbage is `Corrupted`, a dead writer or a bounded wait) and `T: Pod`
// (any bytes valid, zero valid, no pointers, no Drop).
unsafe impl<T: Pod + Send + Sync> ShmSafe for RwLock<T> {}

/// What a `read` call returns.
type ReadResult<'a, T> = Result<RwLockReadGuard<'a, T>, LockError<RwLockReadGuard<'a, T>>>;
/// What a `write` call returns.
type WriteResult<'a, T> = Result<RwLockWriteGuard<'a, T>, LockError<RwLockWriteGuard<'a, T>>>;

impl<T: Pod> RwLock<T> {
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
    /// milliseconds).
    ///
    /// `Err(OwnerDied(guard))` means a writer died mid-update and no writer
    /// has repaired the data since: the guard reads it as it is.
    pub fn read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(None))
    }

    /// Takes a read lock if no writer holds or claims it (or the writer is
    /// dead).
    pub fn try_read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw.try_read())
    }

    /// Takes a read lock, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(deadline_after(timeout)))
    }

    /// Takes a read lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn read_until(&self, deadline: Instant) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(Some(deadline)))
    }

    /// Takes the exclusive write lock, waiting as long as it takes (a dead
    /// writer is detected within a few milliseconds; a dead *reader* is
    /// never, so prefer [`write_timeout`](Self::write_timeout) where
    /// reader processes may be killed).
    pub fn write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(None))
    }

    /// Takes the write lock if nobody holds it (or its writer is dead).
    pub fn try_write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw.try_write())
    }

    /// Takes the write lock, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(deadline_after(timeout)))
    }

    /// Takes the write lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn write_until(&self, deadline: Instant) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(Some(deadline)))
    }

    fn read_guard(&self, r: Result<Acquired, Fail>) -> ReadResult<'_, T> {
        match r {
            Ok(Acquired::Clean) => Ok(RwLockReadGuard { lock: self }),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(RwLockReadGuard { lock: self })),
            Err(e) => Err(e.map(|never| match never {})),
        }
    }

    fn write_guard(&self, r: Result<Acquired, Fail>) -> WriteResult<'_, T> {
        match r {
            Ok(Acquired::Clean) => Ok(RwLockWriteGuard {
                lock: self,
                consistent: true,
            }),
            Ok(Acquired::OwnerDied) => Err(LockError::OwnerDied(RwLockWriteGuard {
                lock: self,
                consistent: false,
            })),
            Err(e) => Err(e.map(|never| match never {})),
        }
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
            d.field("readers", &readers(s))
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
        // lock (one per guard).
        unsafe { self.lock.raw.read_unlock() }
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
/// write lock; unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    consistent: bool,
}

impl<T: Pod> RwLockWriteGuard<'_, T> {
    /// Declares the data consistent again after an
    /// [`OwnerDied`](LockError::OwnerDied). Without it, dropping this guard
    /// makes the lock permanently unusable
    /// ([`NotRecoverable`](LockError::NotRecoverable) for readers and
    /// writers alike).
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data is marked consistent.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }
}

impl<T: Pod> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this process holds the write lock for the guard's
        // lifetime, so no correct participant touches the data; `T: Pod`
        // makes any bytes a misbehaving peer might write a valid `T`.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: Pod> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // handed out through this guard.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if self.consistent {
            // SAFETY: the guard exists only while this process holds the
            // write lock.
            unsafe { self.lock.raw.write_unlock() }
        } else {
            // SAFETY: as above.
            unsafe { self.lock.raw.write_unlock_not_recoverable() }
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard")
            .field("data", &**self)
            .field("consistent", &self.consistent)
            .finish()
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// A writer's two-word update is never seen half done, and loom's
    /// cell tracking finds any access not ordered by the lock.
    #[test]
    fn writer_excludes_readers() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new([0u32; 2]));
            let writer = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    let mut w = lock.write().unwrap();
                    w[0] += 1;
                    w[1] += 1;
                })
            };
            {
                let r = lock.read().unwrap();
                assert_eq!(r[0], r[1]);
            }
            writer.join().unwrap();
            assert_eq!(*lock.read().unwrap(), [1, 1]);
        });
    }

    /// Two readers hold the lock at once: the second read must not wait
    /// for the first (joining while holding would otherwise deadlock).
    #[test]
    fn readers_share() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(7u32));
            let r1 = lock.read().unwrap();
            let other = {
                let lock = lock.clone();
                loom::thread::spawn(move || *lock.read().unwrap())
            };
            assert_eq!(other.join().unwrap(), 7);
            assert_eq!(*r1, 7);
            drop(r1);
            assert!(lock.try_write().is_ok());
        });
    }

    /// A writer that claims the lock behind a reader and sleeps is woken
    /// by the last reader's unlock; a reader arriving meanwhile gets in
    /// before or after the writer, never lost.
    #[test]
    fn last_reader_wakes_the_claiming_writer() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(0u32));
            let r = lock.read().unwrap();
            let writer = {
                let lock = lock.clone();
                loom::thread::spawn(move || *lock.write().unwrap() += 1)
            };
            let reader = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    let v = *lock.read().unwrap();
                    assert!(v <= 1);
                })
            };
            drop(r);
            writer.join().unwrap();
            reader.join().unwrap();
            assert_eq!(*lock.read().unwrap(), 1);
        });
    }

    /// Readers blocked by a writer are woken by its unlock.
    #[test]
    fn write_unlock_wakes_sleeping_readers() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(0u32));
            let mut w = lock.write().unwrap();
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    loom::thread::spawn(move || *lock.read().unwrap())
                })
                .collect();
            *w = 5;
            drop(w);
            for r in readers {
                assert_eq!(r.join().unwrap(), 5);
            }
        });
    }

    /// Two writers exclude each other and neither update is lost.
    #[test]
    fn writers_exclude_each_other() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(0u32));
            let other = {
                let lock = lock.clone();
                loom::thread::spawn(move || *lock.write().unwrap() += 1)
            };
            *lock.write().unwrap() += 1;
            other.join().unwrap();
            assert_eq!(*lock.read().unwrap(), 2);
        });
    }
}
