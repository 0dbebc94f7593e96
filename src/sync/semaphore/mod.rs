//! [`Semaphore`]: a process-shared counting semaphore, optionally bounded,
//! whose *owned* permits come back when their holder dies.
//!
//! # Layout
//!
//! `#[repr(C)]`, 272 bytes, alignment 8:
//!
//! ```text
//! offset  field   value
//!   0     state   u64:
//!                 bits 0..=30   permits available, 0..=MAX_PERMITS (2^31 - 1)
//!                 bit 31        SLEEPERS: someone may sleep on `epoch`
//!                 bits 32..=63  bit 32 + i: the parity of owner entry i
//!   8     limit   0: unbounded (up to MAX_PERMITS)
//!                 b + 1: bounded by b (so 1..=2^31); above 2^31: corrupted
//!  12     epoch   u32, the futex word: bumped by every wake-up
//!  16     owners  [u64; 32] owner entries, one per participant (region
//!                 handle) holding owned permits:
//!                 bits 0..=29   held: owned permits recorded for the token
//!                 bits 30..=31  op in flight: 0 none, 1 ACQUIRE, 2 RELEASE,
//!                               3 RETURN (a recoverer giving them all back)
//!                 bit 32        parity: equals the state's bit 32 + i
//!                               whenever no op is in flight
//!                 bits 33..=63  token (0: free)
//! ```
//!
//! All-zero is a valid semaphore: no permits, unbounded, no owners. That is
//! what a fresh region holds; [`Semaphore::init`] sets other values in
//! place.
//!
//! # Protocol: plain permits
//!
//! ```text
//! operation                 permits, SLEEPERS before   after               then
//! acquire, fast path        n | s, 0 < n               (n - 1) | s         -
//! acquire, nothing left     0                          SLEEPERS            futex_wait(epoch)
//! acquire after sleeping    n | s, 0 < n               (n - 1) | SLEEPERS  wake(1) if n > 1
//! timeout after sleeping    0                          SLEEPERS            Err(Timeout)
//! release(k)                n | s, n + k <= b          n + k               wake(k) if s
//! release(k)                n | s, n + k > b           unchanged           Err(Overflow)
//! anything                  n > b                      unchanged           Err(Corrupted), wake all
//! wake(k): bump epoch, futex_wake(epoch, k)
//! ```
//!
//! Plain acquire is one compare-and-swap when a permit is there; release is
//! one compare-and-swap, plus a wake-up only if `SLEEPERS` was set. Every
//! CAS on `state` keeps the parity bits as they are. A waiter reads `epoch`
//! before the state it decides to sleep on and sleeps only with `SLEEPERS`
//! set in that state, so a release either came before (the waiter sees its
//! permit) or finds `SLEEPERS` and bumps `epoch` after (the futex returns
//! or is woken). A release clears `SLEEPERS` as it wakes, so every waiter
//! that has slept sets it again on its way out (whether it got a permit,
//! timed out, or goes back to sleep): other sleepers may still be there,
//! and the next release must wake them. At worst that costs one spare wake
//! system call. Releases made between the one that cleared the bit and the
//! woken waiter's return woke nobody, so a woken waiter that takes a permit
//! and sees more left wakes one more sleeper: each woken waiter hands the
//! wake-up on while permits remain. A woken waiter always tries to take a
//! permit before it looks at its deadline, so a wake-up is never swallowed
//! by a waiter that then reports a timeout.
//!
//! # Protocol: owned permits
//!
//! An owned permit moves between the count in `state` and its holder's
//! entry. The two words cannot change in one atomic step, so every move
//! that changes `state` also flips the entry's parity bit in it, and the
//! entry says which move is in flight; whoever looks at a dead holder's
//! entry can tell exactly which steps happened:
//!
//! ```text
//! acquire  A0  CAS entry (me, h, p, -) -> (me, h, p, ACQUIRE)
//!              (or a free entry (0, 0, p, -) -> (me, 0, p, ACQUIRE))
//!          A1  CAS state: permits - 1, flip bit i (to !p)
//!              (no permit any more: A0 is undone, and the acquirer waits)
//!          A2  CAS entry -> (me, h + 1, !p, -)
//! release  B0  CAS entry (me, h, p, -) -> (me, h, p, RELEASE)
//!          B1  CAS state: permits + 1 (none if at the bound), flip bit i,
//!              clear SLEEPERS
//!          B2  CAS entry -> (me, h - 1, !p, -), free (0, 0, !p, -) at 0;
//!              wake(1) if SLEEPERS was set
//! forget   one CAS entry (me, h, p, -) -> (me, h - 1, p, -): the permit
//!          stays taken, now plain
//! ```
//!
//! An entry is only changed by its token's own operations while that token
//! lives (threads sharing a token take turns on it through the op field,
//! or use another free entry), so a dead token's entry and its parity bit
//! in `state` stay as its last step left them. A recoverer, finding the
//! token dead, reads the entry `e`, then `state`, then `e` again (unchanged:
//! the pair is one consistent picture), and decides what the dead holder
//! still holds:
//!
//! | op in `e`  | parities equal? | the holder died                | permits it holds |
//! |------------|-----------------|--------------------------------|------------------|
//! | none       | yes             | between operations             | `h`              |
//! | none       | no              | (never written: Corrupted)     | -                |
//! | ACQUIRE    | yes             | after A0, before A1: took none | `h`              |
//! | ACQUIRE    | no              | after A1, before A2            | `h + 1`          |
//! | RELEASE    | yes             | after B0, before B1            | `h`              |
//! | RELEASE    | no              | after B1, before B2            | `h - 1`          |
//! | RETURN     | yes             | (a recoverer) after R1, before R2 | `h`           |
//! | RETURN     | no              | (a recoverer) after R2, before R3 | 0 (just free the entry) |
//!
//! It then gives them back in three steps of its own, each as exact:
//!
//! ```text
//! recover  R1  CAS entry e -> (me, owed, parity of state, RETURN): adopts
//!              the permits; the CAS from the exact value seen makes sure
//!              two recoverers can never both adopt them
//!          R2  CAS state: permits + owed (at most up to the bound), flip
//!              bit i, clear SLEEPERS
//!          R3  CAS entry -> (0, 0, flipped parity, -): free;
//!              wake(owed) if SLEEPERS was set
//! ```
//!
//! A recoverer that dies is itself a dead holder, in the RETURN rows. No
//! window loses a permit or returns one twice; the only cost of a death at
//! the wrong moment is a sleeper that was not woken, which sleeps out its
//! slice (see below).
//!
//! Who recovers: any acquirer (owned or not) that finds no permit while
//! some entry is in use. A waiter probes the liveness of every entry's
//! token on the schedule of a [`Probe`] (after 1 ms of waiting, then at
//! most every 10 ms); a `try_` call (or a deadline already past) probes at
//! once, at most once a millisecond per thread.
//!
//! Sleepers re-read the shared words every 100 ms (`RECHECK_INTERVAL`),
//! or on the probe schedule while owned permits are out, even with no
//! deadline, so garbage a peer writes while they sleep (or a waiter that
//! died between being woken and restoring `SLEEPERS`) costs at most that
//! long, never an endless sleep.
//!
//! # Dead processes
//!
//! Plain permits are not owned: any process may release a permit it never
//! acquired (that is how semaphores signal between processes), so when a
//! process dies holding plain permits they are **not** given back, as with
//! POSIX `sem_t` and Python's `multiprocessing.Semaphore`. *Owned* permits
//! ([`Semaphore::acquire_permit`]) are recorded in the owner table and
//! given back exactly, whatever instruction their holder died at.

mod acquire;
#[cfg(all(test, shmkit_loom))]
mod loom_tests;
mod owners;
mod permit;
mod state;

pub(super) use self::state::state_of;

pub use self::permit::SemaphorePermit;

use self::owners::{e_held, ENTRIES};
use crate::blocks::ShmSafe;
use crate::primitive::{futex_wake, spin_loop, AtomicU32, AtomicU64, Ordering};
use crate::sync::error::{
    AcquirePermitError, AcquirePermitTimeoutError, Corrupted, Fail, ReleaseError,
    TryAcquirePermitError, TryWaitError, WaitTimeoutError,
};
use crate::sync::owner::{self, Token};
use crate::sync::wait::{deadline_after, SPIN_LIMIT};
use std::fmt;
use std::time::{Duration, Instant};

/// The permit bits of the state.
const PERMITS: u64 = 0x7FFF_FFFF;
/// The state's "someone may be sleeping" bit.
const SLEEPERS: u64 = 0x8000_0000;
/// `limit` value of an unbounded semaphore.
const UNBOUNDED: u32 = 0;

const COUNT_ABOVE_BOUND: &str = "semaphore count above its bound";
const BOUND_OUT_OF_RANGE: &str = "semaphore bound out of range";
const BAD_OWNER: &str = "semaphore owner entry holds no valid participant";
const BAD_ENTRY: &str = "semaphore owner entry disagrees with the state";
const HELD_AT_LIMIT: &str = "semaphore owner entry holds too many permits";

/// The most permits a semaphore whose `limit` word holds `limit` may
/// hold; `None` for a word no participant writes.
#[inline]
const fn max_of(limit: u32) -> Option<u32> {
    match limit {
        UNBOUNDED => Some(Semaphore::MAX_PERMITS),
        l if l <= Semaphore::MAX_PERMITS + 1 => Some(l - 1),
        _ => None,
    }
}

/// What an acquirer takes: a plain permit, or one owned by `Token`.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Owned(Token),
}

/// A counting semaphore for any number of processes and threads, with an
/// optional upper bound on the permits it holds (a *bounded* semaphore:
/// releasing past the bound is [`ReleaseError::Overflow`], which catches
/// double releases).
///
/// Place it in shared memory with [`Shm`](crate::Shm) or
/// [`Region::place`](crate::Region::place); a zero-filled `Semaphore` has
/// no permits and no bound. `acquire` is one atomic compare-and-swap when
/// a permit is there; `release` makes a system call only if someone
/// sleeps. Waiters spin briefly, then sleep on a futex.
///
/// Every call checks the shared words: a count above the bound, or a bound
/// no participant writes, is [`Corrupted`].
///
/// # Plain and owned permits
///
/// [`acquire`](Self::acquire) takes a *plain* permit: nothing records who
/// holds it, and any process may [`release`](Self::release) a permit it
/// never acquired (that is how semaphores signal between processes). The
/// plain permits of a process that dies holding them are **not** given
/// back, as with POSIX semaphores and Python's `multiprocessing.Semaphore`.
///
/// [`acquire_permit`](Self::acquire_permit) takes an *owned* permit: a
/// [`SemaphorePermit`] guard that releases it when dropped, recorded in the
/// semaphore's table of owners as held by this participant (this
/// [`Region`](crate::Region) handle; all its threads share one entry). When
/// its holder dies, whoever next waits for a permit, or finds none, gives
/// it back: within a few milliseconds for a waiter. This is exact whatever
/// instant the holder was killed at, in the middle of taking or releasing
/// a permit included: a dead holder's permits are never lost and never
/// returned twice, so a binary semaphore of owned permits stays a mutual
/// exclusion across crashes.
///
/// At most [`OWNER_SLOTS`](Self::OWNER_SLOTS) (32) participants hold owned
/// permits at once; an owned acquire by a 33rd fails with
/// [`AcquirePermitError::Registry`] (after checking for dead ones to make room).
/// Owned and plain permits come from the same count and may be mixed: a
/// [`forget`](SemaphorePermit::forget) turns an owned permit into a plain
/// one.
///
/// ```
/// use shmkit::sync::{ReleaseError, Semaphore, TryWaitError, WaitTimeoutError};
/// use shmkit::Shm;
/// use std::time::Duration;
///
/// # let name = format!("/shmkit-doc-semaphore-{}", std::process::id());
/// // Two permits, never more.
/// let slots = Shm::<Semaphore>::create(&name, |s| s.init(2, Some(2)))?;
/// // In each process:
/// slots.acquire().unwrap();
/// slots.acquire().unwrap();
/// assert!(matches!(slots.try_acquire(), Err(TryWaitError::WouldBlock)));
/// assert!(matches!(
///     slots.acquire_timeout(Duration::from_millis(1)),
///     Err(WaitTimeoutError::Timeout)
/// ));
/// slots.release().unwrap();
/// slots.release().unwrap();
/// // A third release would exceed the bound.
/// assert!(matches!(slots.release(), Err(ReleaseError::Overflow)));
/// assert_eq!(slots.available().unwrap(), 2);
///
/// // An owned permit goes back when dropped, or when its holder dies.
/// let permit = slots.acquire_permit().unwrap();
/// assert_eq!(slots.available().unwrap(), 1);
/// drop(permit);
/// assert_eq!(slots.available().unwrap(), 2);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
pub struct Semaphore {
    /// Permits (bits 0..=30), `SLEEPERS` (bit 31), the entries' parities.
    state: AtomicU64,
    /// `UNBOUNDED`, or the bound plus one.
    limit: AtomicU32,
    /// The futex word.
    epoch: AtomicU32,
    /// Who holds owned permits.
    owners: [AtomicU64; ENTRIES],
}

// SAFETY: repr(C), atomics only, zero valid (no permits, unbounded, no
// owners); every other value is either valid or reported as `Corrupted`
// (or, in an owner entry, at worst a permit count that is wrong), and
// `SLEEPERS` and `epoch` only decide whether a wake system call is made.
unsafe impl ShmSafe for Semaphore {
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::Semaphore;
}

impl Default for Semaphore {
    fn default() -> Self {
        Self::new(0, None)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        let owned: u64 = self
            .owners
            .iter()
            .map(|e| e_held(e.load(Ordering::Relaxed)))
            .sum();
        f.debug_struct("Semaphore")
            .field("available", &(s & PERMITS))
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .field("owned", &owned)
            .finish_non_exhaustive()
    }
}

/// The raw `(state, limit)` words of a new semaphore.
const fn encode(initial: u32, bound: Option<u32>) -> (u64, u32) {
    let (max, limit) = match bound {
        Some(b) => {
            assert!(
                b <= Semaphore::MAX_PERMITS,
                "semaphore bound above Semaphore::MAX_PERMITS"
            );
            (b, b + 1)
        }
        None => (Semaphore::MAX_PERMITS, UNBOUNDED),
    };
    assert!(
        initial <= max,
        "initial semaphore permits above its bound (or MAX_PERMITS)"
    );
    (initial as u64, limit)
}

impl Semaphore {
    /// The most permits a semaphore can hold, bounded or not.
    pub const MAX_PERMITS: u32 = PERMITS as u32;

    /// How many participants (region handles) can hold owned permits
    /// ([`acquire_permit`](Self::acquire_permit)) at once.
    ///
    /// ```
    /// assert_eq!(shmkit::sync::Semaphore::OWNER_SLOTS, 32);
    /// ```
    pub const OWNER_SLOTS: usize = ENTRIES;

    /// A semaphore holding `initial` permits, bounded by `bound` (`None`:
    /// only by [`MAX_PERMITS`](Self::MAX_PERMITS)). For use outside shared
    /// memory; in a region, use [`init`](Self::init).
    ///
    /// # Panics
    ///
    /// If `bound` is above `MAX_PERMITS`, or `initial` above the bound.
    #[cfg(not(shmkit_loom))]
    pub const fn new(initial: u32, bound: Option<u32>) -> Self {
        let (state, limit) = encode(initial, bound);
        Self {
            state: AtomicU64::new(state),
            limit: AtomicU32::new(limit),
            epoch: AtomicU32::new(0),
            owners: [const { AtomicU64::new(0) }; ENTRIES],
        }
    }

    /// A semaphore holding `initial` permits, bounded by `bound`.
    #[cfg(shmkit_loom)]
    pub fn new(initial: u32, bound: Option<u32>) -> Self {
        let (state, limit) = encode(initial, bound);
        Self {
            state: AtomicU64::new(state),
            limit: AtomicU32::new(limit),
            epoch: AtomicU32::new(0),
            owners: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Sets up a semaphore in place, as [`new`](Self::new) would build it:
    /// call it once, from the creator's initializer, before other
    /// processes use the semaphore.
    ///
    /// ```
    /// use shmkit::sync::Semaphore;
    /// use shmkit::Shm;
    ///
    /// let s = Shm::<Semaphore>::anonymous(|s| s.init(3, None))?;
    /// assert_eq!(s.available().unwrap(), 3);
    /// assert_eq!(s.bound().unwrap(), None);
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn init(&self, initial: u32, bound: Option<u32>) {
        let (state, limit) = encode(initial, bound);
        self.limit.store(limit, Ordering::Relaxed);
        for e in &self.owners {
            e.store(0, Ordering::Relaxed);
        }
        // Nobody should be waiting yet; if somebody is, let them look again.
        if self.state.swap(state, Ordering::Release) & SLEEPERS != 0 {
            self.wake(i32::MAX as u32);
        }
    }

    /// Takes a plain permit, waiting as long as it takes.
    ///
    /// Fails only if the shared state is [`Corrupted`].
    #[inline]
    pub fn acquire(&self) -> Result<(), Corrupted> {
        self.acquire_inner(Kind::Plain, None)
            .map(drop)
            .map_err(Into::into)
    }

    /// Takes a plain permit if one is available right now (giving back
    /// the owned permits of dead holders first if there is none);
    /// otherwise [`TryWaitError::WouldBlock`].
    #[inline]
    pub fn try_acquire(&self) -> Result<(), TryWaitError> {
        self.try_acquire_inner(Kind::Plain)
            .map(drop)
            .map_err(Into::into)
    }

    /// Takes a plain permit, waiting at most `timeout`; past it,
    /// [`WaitTimeoutError::Timeout`].
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), WaitTimeoutError> {
        self.acquire_inner(Kind::Plain, deadline_after(timeout))
            .map(drop)
            .map_err(Into::into)
    }

    /// Takes a plain permit, waiting until `deadline` at the latest; past
    /// it, [`WaitTimeoutError::Timeout`]. A deadline already past still
    /// takes a permit that is there.
    #[inline]
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), WaitTimeoutError> {
        self.acquire_inner(Kind::Plain, Some(deadline))
            .map(drop)
            .map_err(Into::into)
    }

    /// Takes an owned permit, waiting as long as it takes: the returned
    /// guard gives it back when dropped, and if this process dies holding
    /// it, the next acquirer does.
    ///
    /// Errors with [`AcquirePermitError::Registry`] if the owner table is
    /// full (see [`OWNER_SLOTS`](Self::OWNER_SLOTS)), or
    /// [`AcquirePermitError::Corrupted`].
    ///
    /// ```
    /// use shmkit::sync::Semaphore;
    /// use shmkit::Shm;
    ///
    /// // A binary semaphore: one holder at a time, even across crashes.
    /// let turn = Shm::<Semaphore>::anonymous(|s| s.init(1, Some(1)))?;
    /// {
    ///     let _mine = turn.acquire_permit().unwrap();
    ///     assert!(turn.try_acquire_permit().is_err());
    /// }
    /// assert!(turn.try_acquire_permit().is_ok());
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    #[inline]
    pub fn acquire_permit(&self) -> Result<SemaphorePermit<'_>, AcquirePermitError> {
        self.owned(|kind| self.acquire_inner(kind, None))
    }

    /// Takes an owned permit if one is available right now (giving back the
    /// owned permits of dead holders first if there is none); otherwise
    /// [`TryAcquirePermitError::WouldBlock`].
    #[inline]
    pub fn try_acquire_permit(&self) -> Result<SemaphorePermit<'_>, TryAcquirePermitError> {
        self.owned(|kind| self.try_acquire_inner(kind))
    }

    /// Takes an owned permit, waiting at most `timeout`; past it,
    /// [`AcquirePermitTimeoutError::Timeout`].
    #[inline]
    pub fn acquire_permit_timeout(
        &self,
        timeout: Duration,
    ) -> Result<SemaphorePermit<'_>, AcquirePermitTimeoutError> {
        self.owned(|kind| self.acquire_inner(kind, deadline_after(timeout)))
    }

    /// Takes an owned permit, waiting until `deadline` at the latest; past
    /// it, [`AcquirePermitTimeoutError::Timeout`]. A deadline already
    /// past still takes a permit that is there.
    #[inline]
    pub fn acquire_permit_deadline(
        &self,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'_>, AcquirePermitTimeoutError> {
        self.owned(|kind| self.acquire_inner(kind, Some(deadline)))
    }

    /// An owned permit for this handle's token, taken by `take`.
    #[inline]
    fn owned<E: From<Fail>>(
        &self,
        take: impl FnOnce(Kind) -> Result<Option<usize>, Fail>,
    ) -> Result<SemaphorePermit<'_>, E> {
        let me = owner::current(&self.state);
        let entry = take(Kind::Owned(me))?;
        Ok(SemaphorePermit {
            sem: self,
            // Owned acquires always return their entry.
            entry: entry.unwrap_or(usize::MAX),
            token: me,
        })
    }

    /// Gives back one plain permit, waking a waiter if one sleeps.
    ///
    /// [`ReleaseError::Overflow`] (and no change) if that would exceed
    /// the bound.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.release_n(1)
    }

    /// Gives back `n` plain permits at once, waking up to `n` sleeping
    /// waiters.
    ///
    /// [`ReleaseError::Overflow`] (and no change) if that would exceed
    /// the bound.
    pub fn release_n(&self, n: u32) -> Result<(), ReleaseError> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let have = (s & PERMITS) as u32;
            if have > max {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if n > max - have {
                return Err(ReleaseError::Overflow);
            }
            if n == 0 {
                // Must not clear SLEEPERS without waking anyone.
                return Ok(());
            }
            let new = (s & !(PERMITS | SLEEPERS)) | u64::from(have + n);
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if s & SLEEPERS != 0 {
                        self.wake(n);
                    }
                    return Ok(());
                }
                Err(seen) => s = seen,
            }
        }
    }

    /// The permits available right now (a snapshot that may be stale by
    /// the time it is read; owned permits of dead holders not yet given
    /// back are not counted).
    pub fn available(&self) -> Result<u32, Corrupted> {
        let max = self.max()?;
        let have = (self.state.load(Ordering::Relaxed) & PERMITS) as u32;
        if have > max {
            return Err(self.corrupted(COUNT_ABOVE_BOUND));
        }
        Ok(have)
    }

    /// The bound set at creation, `None` if unbounded.
    pub fn bound(&self) -> Result<Option<u32>, Corrupted> {
        match self.limit.load(Ordering::Relaxed) {
            UNBOUNDED => Ok(None),
            _ => self.max().map(Some),
        }
    }

    /// The most permits the semaphore may hold, checked.
    #[inline]
    fn max(&self) -> Result<u32, Corrupted> {
        max_of(self.limit.load(Ordering::Relaxed)).ok_or_else(|| self.corrupted(BOUND_OUT_OF_RANGE))
    }

    /// Bumps `epoch` and wakes up to `n` sleepers.
    #[cold]
    fn wake(&self, n: u32) {
        self.epoch.fetch_add(1, Ordering::Release);
        futex_wake(&self.epoch, n);
    }

    /// Reports corrupted state, first waking every sleeper so that they
    /// see it too instead of sleeping out their recheck interval.
    #[cold]
    fn corrupted<E: From<Corrupted>>(&self, what: &'static str) -> E {
        self.wake(i32::MAX as u32);
        Corrupted(what).into()
    }

    /// Spins on `state` while `keep_spinning(value)` holds, at most
    /// [`SPIN_LIMIT`] times; returns the last value read.
    #[inline]
    fn spin_while(&self, mut keep_spinning: impl FnMut(u64) -> bool) -> u64 {
        let mut spins = 0;
        loop {
            let v = self.state.load(Ordering::Relaxed);
            if !keep_spinning(v) || spins >= SPIN_LIMIT {
                return v;
            }
            spin_loop();
            spins += 1;
        }
    }
}
