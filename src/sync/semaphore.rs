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

use super::error::WaitError;
use super::owner::{self, Liveness, Token};
use super::wait::{deadline_after, expired, recheck_slice, Probe, SPIN_LIMIT};
use crate::blocks::ShmSafe;
use crate::primitive::{futex_wait, futex_wake, spin_loop, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

/// The permit bits of the state.
const PERMITS: u64 = 0x7FFF_FFFF;
/// The state's "someone may be sleeping" bit.
const SLEEPERS: u64 = 0x8000_0000;
/// `limit` value of an unbounded semaphore.
const UNBOUNDED: u32 = 0;

/// Owner entries per semaphore (fewer under loom, where every load of one
/// is a scheduling point).
const ENTRIES: usize = if cfg!(shmkit_loom) { 4 } else { 32 };
/// An entry's owned permits.
const HELD: u64 = (1 << 30) - 1;
/// An entry's op in flight.
const OP: u64 = 3 << 30;
const OP_NONE: u64 = 0;
const OP_ACQUIRE: u64 = 1 << 30;
const OP_RELEASE: u64 = 2 << 30;
const OP_RETURN: u64 = 3 << 30;
const PARITY: u64 = 1 << 32;
const TOKEN_SHIFT: u32 = 33;

const COUNT_ABOVE_BOUND: &str = "semaphore count above its bound";
const BOUND_OUT_OF_RANGE: &str = "semaphore bound out of range";
const BAD_OWNER: &str = "semaphore owner entry holds no valid participant";
const BAD_ENTRY: &str = "semaphore owner entry disagrees with the state";
const HELD_AT_LIMIT: &str = "semaphore owner entry holds too many permits";

#[inline]
fn e_token(e: u64) -> u64 {
    e >> TOKEN_SHIFT
}

#[inline]
fn e_held(e: u64) -> u64 {
    e & HELD
}

#[inline]
fn e_parity(e: u64) -> bool {
    e & PARITY != 0
}

#[inline]
fn entry(token: u64, held: u64, op: u64, parity: bool) -> u64 {
    (token << TOKEN_SHIFT) | if parity { PARITY } else { 0 } | op | held
}

/// The state's parity bit of entry `i`.
#[inline]
fn bit(i: usize) -> u64 {
    1 << (32 + i)
}

#[inline]
fn s_parity(s: u64, i: usize) -> bool {
    s & bit(i) != 0
}

/// Where a participant's entry is looked for first.
#[inline]
fn home(t: Token) -> usize {
    (t.raw().wrapping_mul(0x9E37_79B9) >> 27) as usize % ENTRIES
}

/// Whether this thread may sweep the owners for a `try_` call now: at most
/// once per [`MIN_PROBE`](super::wait::MIN_PROBE) per thread (always under
/// loom).
fn sweep_allowed() -> bool {
    #[cfg(shmkit_loom)]
    return true;
    #[cfg(not(shmkit_loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
        }
        LAST.with(|last| {
            let now = Instant::now();
            let ok = last
                .get()
                .is_none_or(|t| now.saturating_duration_since(t) >= super::wait::MIN_PROBE);
            if ok {
                last.set(Some(now));
            }
            ok
        })
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
/// releasing past the bound is [`WaitError::Overflow`], which catches
/// double releases).
///
/// Place it in shared memory with [`Shm`](crate::Shm) or
/// [`Region::place`](crate::Region::place); a zero-filled `Semaphore` has
/// no permits and no bound. `acquire` is one atomic compare-and-swap when
/// a permit is there; `release` makes a system call only if someone
/// sleeps. Waiters spin briefly, then sleep on a futex.
///
/// Every call checks the shared words: a count above the bound, or a bound
/// no participant writes, is [`WaitError::Corrupted`].
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
/// [`WaitError::Registry`] (after checking for dead ones to make room).
/// Owned and plain permits come from the same count and may be mixed: a
/// [`forget`](SemaphorePermit::forget) turns an owned permit into a plain
/// one.
///
/// ```
/// use shmkit::sync::{Semaphore, WaitError};
/// use shmkit::Shm;
/// use std::time::Duration;
///
/// # let name = format!("/shmkit-doc-semaphore-{}", std::process::id());
/// // Two permits, never more.
/// let slots = Shm::<Semaphore>::create(&name, |s| s.init(2, Some(2)))?;
/// // In each process:
/// slots.acquire().unwrap();
/// slots.acquire().unwrap();
/// assert!(matches!(slots.try_acquire(), Err(WaitError::WouldBlock)));
/// assert!(matches!(
///     slots.acquire_timeout(Duration::from_millis(1)),
///     Err(WaitError::Timeout)
/// ));
/// slots.release().unwrap();
/// slots.release().unwrap();
/// // A third release would exceed the bound.
/// assert!(matches!(slots.release(), Err(WaitError::Overflow)));
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
unsafe impl ShmSafe for Semaphore {}

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
    /// Errors only with [`WaitError::Corrupted`].
    #[inline]
    pub fn acquire(&self) -> Result<(), WaitError> {
        self.acquire_inner(Kind::Plain, None).map(drop)
    }

    /// Takes a plain permit if one is available right now (giving back
    /// the owned permits of dead holders first if there is none);
    /// otherwise [`WaitError::WouldBlock`].
    #[inline]
    pub fn try_acquire(&self) -> Result<(), WaitError> {
        self.try_acquire_inner(Kind::Plain).map(drop)
    }

    /// Takes a plain permit, waiting at most `timeout`; past it,
    /// [`WaitError::Timeout`].
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.acquire_inner(Kind::Plain, deadline_after(timeout))
            .map(drop)
    }

    /// Takes a plain permit, waiting until `deadline` at the latest; past
    /// it, [`WaitError::Timeout`]. A deadline already past still takes a
    /// permit that is there.
    #[inline]
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), WaitError> {
        self.acquire_inner(Kind::Plain, Some(deadline)).map(drop)
    }

    /// Takes an owned permit, waiting as long as it takes: the returned
    /// guard gives it back when dropped, and if this process dies holding
    /// it, the next acquirer does.
    ///
    /// Errors with [`WaitError::Registry`] if the owner table is full (see
    /// [`OWNER_SLOTS`](Self::OWNER_SLOTS)), or [`WaitError::Corrupted`].
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
    pub fn acquire_permit(&self) -> Result<SemaphorePermit<'_>, WaitError> {
        let me = owner::current(&self.state);
        let entry = self.acquire_inner(Kind::Owned(me), None)?;
        Ok(self.permit(entry, me))
    }

    /// Takes an owned permit if one is available right now (giving back the
    /// owned permits of dead holders first if there is none); otherwise
    /// [`WaitError::WouldBlock`].
    #[inline]
    pub fn try_acquire_permit(&self) -> Result<SemaphorePermit<'_>, WaitError> {
        let me = owner::current(&self.state);
        let entry = self.try_acquire_inner(Kind::Owned(me))?;
        Ok(self.permit(entry, me))
    }

    /// Takes an owned permit, waiting at most `timeout`; past it,
    /// [`WaitError::Timeout`].
    #[inline]
    pub fn acquire_permit_timeout(
        &self,
        timeout: Duration,
    ) -> Result<SemaphorePermit<'_>, WaitError> {
        let me = owner::current(&self.state);
        let entry = self.acquire_inner(Kind::Owned(me), deadline_after(timeout))?;
        Ok(self.permit(entry, me))
    }

    /// Takes an owned permit, waiting until `deadline` at the latest; past
    /// it, [`WaitError::Timeout`]. A deadline already past still takes a
    /// permit that is there.
    #[inline]
    pub fn acquire_permit_deadline(
        &self,
        deadline: Instant,
    ) -> Result<SemaphorePermit<'_>, WaitError> {
        let me = owner::current(&self.state);
        let entry = self.acquire_inner(Kind::Owned(me), Some(deadline))?;
        Ok(self.permit(entry, me))
    }

    fn permit(&self, entry: Option<usize>, token: Token) -> SemaphorePermit<'_> {
        SemaphorePermit {
            sem: self,
            // Owned acquires always return their entry.
            entry: entry.unwrap_or(usize::MAX),
            token,
        }
    }

    /// Gives back one plain permit, waking a waiter if one sleeps.
    ///
    /// [`WaitError::Overflow`] (and no change) if that would exceed the
    /// bound.
    #[inline]
    pub fn release(&self) -> Result<(), WaitError> {
        self.release_n(1)
    }

    /// Gives back `n` plain permits at once, waking up to `n` sleeping
    /// waiters.
    ///
    /// [`WaitError::Overflow`] (and no change) if that would exceed the
    /// bound.
    pub fn release_n(&self, n: u32) -> Result<(), WaitError> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let have = (s & PERMITS) as u32;
            if have > max {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if n > max - have {
                return Err(WaitError::Overflow);
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
    pub fn available(&self) -> Result<u32, WaitError> {
        let max = self.max()?;
        let have = (self.state.load(Ordering::Relaxed) & PERMITS) as u32;
        if have > max {
            return Err(self.corrupted(COUNT_ABOVE_BOUND));
        }
        Ok(have)
    }

    /// The bound set at creation, `None` if unbounded.
    pub fn bound(&self) -> Result<Option<u32>, WaitError> {
        match self.limit.load(Ordering::Relaxed) {
            UNBOUNDED => Ok(None),
            _ => self.max().map(Some),
        }
    }

    /// The most permits the semaphore may hold, checked.
    #[inline]
    fn max(&self) -> Result<u32, WaitError> {
        match self.limit.load(Ordering::Relaxed) {
            UNBOUNDED => Ok(Self::MAX_PERMITS),
            limit if limit <= Self::MAX_PERMITS + 1 => Ok(limit - 1),
            _ => Err(self.corrupted(BOUND_OUT_OF_RANGE)),
        }
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
    fn corrupted(&self, what: &'static str) -> WaitError {
        self.wake(i32::MAX as u32);
        WaitError::Corrupted(what)
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

    // ----- taking permits -----

    /// Tries to take a permit of `kind` from the state last seen as `*s`,
    /// OR-ing `keep` into the new state. Afterwards `*s` holds the state
    /// left behind (taken) or seen (no permit: no permit bits).
    #[inline]
    fn take(&self, kind: Kind, s: &mut u64, max: u32, keep: u64) -> Result<Taken, WaitError> {
        match kind {
            Kind::Plain => Ok(if self.try_take(s, max, keep)? {
                Taken::Yes(None)
            } else {
                Taken::No
            }),
            Kind::Owned(me) => self.try_take_owned(me, s, max, keep),
        }
    }

    /// Tries to take a plain permit from the state last seen as `*s`.
    /// `Ok(true)`: taken (`*s` holds the state left behind); `Ok(false)`:
    /// no permit (`*s` holds the state seen).
    #[inline]
    fn try_take(&self, s: &mut u64, max: u32, keep: u64) -> Result<bool, WaitError> {
        loop {
            let have = *s & PERMITS;
            if have > u64::from(max) {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if have == 0 {
                return Ok(false);
            }
            let new = (*s - 1) | keep;
            match self
                .state
                .compare_exchange_weak(*s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    *s = new;
                    return Ok(true);
                }
                Err(seen) => *s = seen,
            }
        }
    }

    /// A0-A2: tries to take an owned permit for `me` from the state last
    /// seen as `*s`.
    fn try_take_owned(
        &self,
        me: Token,
        s: &mut u64,
        max: u32,
        keep: u64,
    ) -> Result<Taken, WaitError> {
        loop {
            let have = *s & PERMITS;
            if have > u64::from(max) {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            if have == 0 {
                return Ok(Taken::No);
            }
            let (i, e) = match self.find_entry(me)? {
                Some(found) => found,
                None => return Ok(Taken::Full),
            };
            if e_held(e) >= HELD {
                return Err(WaitError::Corrupted(HELD_AT_LIMIT));
            }
            let slot = &self.owners[i];
            // A0: say what we are about to do.
            let busy = entry(me.raw().into(), e_held(e), OP_ACQUIRE, e_parity(e));
            if slot
                .compare_exchange(e, busy, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                *s = self.state.load(Ordering::Relaxed);
                continue;
            }
            stop_point!("semaphore.acquire.intent" => Err(WaitError::WouldBlock));
            // A1: take the permit, flipping our parity bit.
            let mut now = self.state.load(Ordering::Relaxed);
            loop {
                let have = now & PERMITS;
                if have > u64::from(max) || have == 0 {
                    // Gone (or garbage): undo A0, then report as
                    // `try_take` would.
                    let _ = slot.compare_exchange(busy, e, Ordering::Relaxed, Ordering::Relaxed);
                    *s = now;
                    if have != 0 {
                        return Err(self.corrupted(COUNT_ABOVE_BOUND));
                    }
                    return Ok(Taken::No);
                }
                let new = ((now - 1) | keep) ^ bit(i);
                match self.state.compare_exchange_weak(
                    now,
                    new,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        *s = new;
                        break;
                    }
                    Err(seen) => now = seen,
                }
            }
            stop_point!("semaphore.acquire.taken" => Err(WaitError::WouldBlock));
            // A2: record it.
            let done = entry(me.raw().into(), e_held(e) + 1, OP_NONE, !e_parity(e));
            if slot
                .compare_exchange(busy, done, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                // Only a peer scribbling changes an entry under its owner.
                return Err(self.corrupted(BAD_ENTRY));
            }
            return Ok(Taken::Yes(Some(i)));
        }
    }

    /// The entry `me` should record an owned permit in: the first, looking
    /// from its home entry on, that is its own and idle, or free (so one
    /// token may have several entries: harmless). If there is none, gives
    /// dead owners' permits back to make room, and if that frees nothing
    /// either, waits for another thread of `me`'s to finish with an entry
    /// of `me`'s, or returns `None`: the table is full.
    #[inline]
    fn find_entry(&self, me: Token) -> Result<Option<(usize, u64)>, WaitError> {
        let mine = u64::from(me.raw());
        let start = home(me);
        let mut swept = false;
        let mut turns = 0u32;
        loop {
            let mut busy_mine = false;
            for k in 0..ENTRIES {
                let i = (start + k) % ENTRIES;
                let e = self.owners[i].load(Ordering::Acquire);
                let t = e_token(e);
                if (t == mine || t == 0 && e_held(e) == 0) && e & OP == OP_NONE {
                    return Ok(Some((i, e)));
                }
                busy_mine |= t == mine;
            }
            if !swept {
                swept = true;
                if self.recover(me)? {
                    continue;
                }
            }
            if !busy_mine || turns > 1 << 20 {
                return Ok(None);
            }
            // Another thread of ours is in the middle of an operation on
            // our entry: a few instructions, unless it was preempted.
            turns += 1;
            spin_loop();
            if turns % 64 == 0 {
                std::thread::yield_now();
            }
        }
    }

    fn try_acquire_inner(&self, kind: Kind) -> Result<Option<usize>, WaitError> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        match self.take(kind, &mut s, max, 0)? {
            Taken::Yes(entry) => return Ok(entry),
            Taken::Full => return Err(table_full()),
            Taken::No => {}
        }
        // None left: the owned permits of dead holders may be due back.
        if self.any_owner() && sweep_allowed() && self.recover(self.me_or(kind))? {
            s = self.state.load(Ordering::Relaxed);
            match self.take(kind, &mut s, max, 0)? {
                Taken::Yes(entry) => return Ok(entry),
                Taken::Full => return Err(table_full()),
                Taken::No => {}
            }
        }
        Err(WaitError::WouldBlock)
    }

    #[inline]
    fn acquire_inner(
        &self,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, WaitError> {
        let max = self.max()?;
        let mut s = self.state.load(Ordering::Relaxed);
        match self.take(kind, &mut s, max, 0)? {
            Taken::Yes(entry) => Ok(entry),
            Taken::Full => Err(table_full()),
            Taken::No => self.acquire_contended(kind, deadline),
        }
    }

    #[cold]
    fn acquire_contended(
        &self,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, WaitError> {
        // SLEEPERS once we have slept: then others may sleep too, so we
        // leave the bit set however we leave.
        let mut keep = 0;
        // Since when we have waited with owned permits out.
        let mut probe: Option<Probe> = None;
        let mut e = self.epoch.load(Ordering::Acquire);
        let mut s = if expired(deadline) {
            self.state.load(Ordering::Relaxed)
        } else {
            // Spin while nothing is there and nobody sleeps yet (if someone
            // does, a permit will not show up within a spin).
            self.spin_while(|s| s & (PERMITS | SLEEPERS) == 0)
        };
        loop {
            let max = self.max()?;
            match self.take(kind, &mut s, max, keep)? {
                Taken::Yes(entry) => {
                    if keep != 0 && s & PERMITS > 0 {
                        // Releases made while the bit was clear (after the
                        // one that woke us) woke nobody: pass the wake-up on.
                        self.wake(1);
                    }
                    return Ok(entry);
                }
                Taken::Full => return Err(table_full()),
                Taken::No => {}
            }
            // No permit: dead owners may hold some.
            let owners = self.any_owner();
            if owners {
                let p = probe.get_or_insert_with(Probe::start);
                let now = expired(deadline) && sweep_allowed();
                if (now || p.due()) && self.recover(self.me_or(kind))? {
                    s = self.state.load(Ordering::Relaxed);
                    continue;
                }
            }
            if expired(deadline) {
                if keep != 0 && s & SLEEPERS == 0 {
                    // A release may have cleared the bit to wake us; others
                    // may still sleep and need the next release to wake them.
                    if let Err(seen) = self.state.compare_exchange(
                        s,
                        s | SLEEPERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        s = seen;
                        continue;
                    }
                }
                return Err(WaitError::Timeout);
            }
            if s & SLEEPERS == 0 {
                if let Err(seen) = self.state.compare_exchange(
                    s,
                    s | SLEEPERS,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    s = seen;
                    continue;
                }
            }
            let slice = match (owners, &probe) {
                (true, Some(p)) => p.slice(deadline),
                _ => recheck_slice(deadline),
            };
            futex_wait(&self.epoch, e, slice);
            keep = SLEEPERS;
            e = self.epoch.load(Ordering::Acquire);
            s = self.spin_while(|s| s & PERMITS == 0);
        }
    }

    /// The token a recoverer adopts dead owners' permits under.
    #[inline]
    fn me_or(&self, kind: Kind) -> Token {
        match kind {
            Kind::Owned(me) => me,
            Kind::Plain => owner::current(&self.state),
        }
    }

    /// Whether any owner entry is in use (a quick look, no system call).
    fn any_owner(&self) -> bool {
        self.owners
            .iter()
            .any(|e| e_token(e.load(Ordering::Relaxed)) != 0)
    }

    // ----- owned permits: release, forget, recovery -----

    /// Waits (briefly) until the entry `i` holding `me`'s owned permits is
    /// idle, and applies `f` to it with a CAS: `f(e)` is the new value, or
    /// `None` to leave it. Returns the value replaced, or `None` if the
    /// entry is not `me`'s with a permit in it (scribbled over), or another
    /// thread of `me`'s stayed busy with it for far too long.
    fn update_mine(&self, i: usize, me: Token, f: impl Fn(u64) -> u64) -> Option<u64> {
        let slot = self.owners.get(i)?;
        let mine = u64::from(me.raw());
        let mut turns = 0u32;
        let mut e = slot.load(Ordering::Relaxed);
        loop {
            if e_token(e) != mine || e_held(e) == 0 {
                return None;
            }
            if e & OP != OP_NONE {
                if turns > 1 << 20 {
                    return None;
                }
                turns += 1;
                spin_loop();
                if turns % 64 == 0 {
                    std::thread::yield_now();
                }
                e = slot.load(Ordering::Relaxed);
                continue;
            }
            match slot.compare_exchange(e, f(e), Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(e),
                Err(now) => e = now,
            }
        }
    }

    /// B0-B2: gives back an owned permit of `me`'s recorded in entry `i`.
    fn release_owned(&self, i: usize, me: Token) {
        // B0.
        let Some(e) = self.update_mine(i, me, |e| (e & !OP) | OP_RELEASE) else {
            return;
        };
        let busy = (e & !OP) | OP_RELEASE;
        stop_point!("semaphore.release.intent");
        // B1. A permit that would take the count past the bound (plain
        // releases made it full meanwhile) is dropped: the count saturates.
        let Ok(max) = self.max() else { return };
        let mut s = self.state.load(Ordering::Relaxed);
        let woke = loop {
            let have = s & PERMITS;
            if have > u64::from(max) {
                self.corrupted(COUNT_ABOVE_BOUND);
                return;
            }
            // Never clear SLEEPERS without adding a permit to wake for.
            let (new, woke) = if have < u64::from(max) {
                ((s & !SLEEPERS) + 1, s & SLEEPERS != 0)
            } else {
                (s, false)
            };
            match self.state.compare_exchange_weak(
                s,
                new ^ bit(i),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break woke,
                Err(seen) => s = seen,
            }
        };
        stop_point!("semaphore.release.returned");
        // B2.
        let held = e_held(e) - 1;
        let done = if held == 0 {
            entry(0, 0, OP_NONE, !e_parity(e))
        } else {
            entry(u64::from(me.raw()), held, OP_NONE, !e_parity(e))
        };
        if self.owners[i]
            .compare_exchange(busy, done, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.corrupted(BAD_ENTRY);
        }
        if woke {
            self.wake(1);
        }
    }

    /// Turns an owned permit of `me`'s recorded in entry `i` into a plain
    /// one: the record goes, the permit stays taken.
    fn forget_owned(&self, i: usize, me: Token) {
        self.update_mine(i, me, |e| {
            if e_held(e) == 1 {
                entry(0, 0, OP_NONE, e_parity(e))
            } else {
                e - 1
            }
        });
    }

    /// Gives back the owned permits of every dead owner, as `me`. Returns
    /// whether it gave back (or finished giving back) any.
    #[cold]
    fn recover(&self, me: Token) -> Result<bool, WaitError> {
        let mut any = false;
        for i in 0..ENTRIES {
            let e = self.owners[i].load(Ordering::Acquire);
            let t = e_token(e);
            if t == 0 || t == u64::from(me.raw()) {
                continue;
            }
            if t > u64::from(Token::MAX_RAW) {
                return Err(self.corrupted(BAD_OWNER));
            }
            match owner::liveness(&self.state, Token::from_raw(t as u32)) {
                Liveness::Alive => {}
                Liveness::Invalid => return Err(self.corrupted(BAD_OWNER)),
                Liveness::Dead => any |= self.recover_entry(i, e, me)?,
            }
        }
        Ok(any)
    }

    /// Gives back the permits a dead owner's entry `i`, seen as `e`, still
    /// holds (the table in the module docs), as `me`.
    fn recover_entry(&self, i: usize, e: u64, me: Token) -> Result<bool, WaitError> {
        let slot = &self.owners[i];
        let s = self.state.load(Ordering::Acquire);
        if slot.load(Ordering::Acquire) != e {
            // Someone else is at it: not a consistent picture.
            return Ok(false);
        }
        let sp = s_parity(s, i);
        let same = sp == e_parity(e);
        let h = e_held(e);
        let owed = match (e & OP, same) {
            (OP_NONE, true) | (OP_ACQUIRE, true) | (OP_RELEASE, true) | (OP_RETURN, true) => h,
            (OP_ACQUIRE, false) => h + 1,
            (OP_RELEASE, false) if h > 0 => h - 1,
            (OP_RETURN, false) => {
                // R2 done: only the entry is left to free.
                let free = entry(0, 0, OP_NONE, sp);
                return Ok(slot
                    .compare_exchange(e, free, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok());
            }
            _ => return Err(self.corrupted(BAD_ENTRY)),
        };
        if owed > HELD {
            return Err(self.corrupted(HELD_AT_LIMIT));
        }
        // R1: adopt them (from the exact value seen: only one recoverer
        // can).
        let adopted = entry(u64::from(me.raw()), owed, OP_RETURN, sp);
        if slot
            .compare_exchange(e, adopted, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Ok(false);
        }
        stop_point!("semaphore.recover.adopted" => Err(WaitError::WouldBlock));
        // R2: give them back, up to the bound.
        let max = u64::from(self.max()?);
        let mut now = self.state.load(Ordering::Relaxed);
        let woke = loop {
            let have = now & PERMITS;
            if have > max {
                return Err(self.corrupted(COUNT_ABOVE_BOUND));
            }
            let added = (have + owed).min(max) - have;
            // Never clear SLEEPERS without adding a permit to wake for.
            let new = if added == 0 {
                now
            } else {
                (now & !SLEEPERS) + added
            };
            match self.state.compare_exchange_weak(
                now,
                new ^ bit(i),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if now & SLEEPERS != 0 && added != 0 => break added as u32,
                Ok(_) => break 0,
                Err(seen) => now = seen,
            }
        };
        stop_point!("semaphore.recover.returned" => Err(WaitError::WouldBlock));
        // R3: free the entry.
        let free = entry(0, 0, OP_NONE, !sp);
        if slot
            .compare_exchange(adopted, free, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(self.corrupted(BAD_ENTRY));
        }
        if woke != 0 {
            self.wake(woke);
        }
        Ok(true)
    }
}

/// The outcome of one attempt to take a permit.
enum Taken {
    /// Taken; the owner entry it is recorded in, for an owned permit.
    Yes(Option<usize>),
    /// No permit there.
    No,
    /// A permit, maybe, but no owner entry to record it in.
    Full,
}

fn table_full() -> WaitError {
    WaitError::Registry(crate::Error::TooManyParticipants { slots: ENTRIES })
}

/// An owned permit of a [`Semaphore`], taken with
/// [`acquire_permit`](Semaphore::acquire_permit) and its `try_`,
/// `_timeout` and `_deadline` forms: recorded in the semaphore as held by
/// this participant, given back when dropped, and given back by the next
/// acquirer if this process dies holding it.
///
/// Dropping it gives the permit back (waking a waiter if one sleeps); if
/// plain releases have meanwhile filled a bounded semaphore to its bound,
/// the permit is dropped instead (the count saturates at the bound). A
/// permit whose recorded entry a peer scribbles over is not given back
/// (its release is skipped rather than done twice).
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    /// The owner entry recording it, and whose it is.
    entry: usize,
    token: Token,
}

impl<'a> SemaphorePermit<'a> {
    /// The semaphore this permit belongs to.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }

    /// Turns this permit into a plain one that stays taken: nothing
    /// releases it when this process drops or dies, and any process may
    /// release it later with [`Semaphore::release`] (as tokio's
    /// `SemaphorePermit::forget`).
    ///
    /// ```
    /// use shmkit::sync::Semaphore;
    ///
    /// let s = Semaphore::new(1, Some(1));
    /// s.acquire_permit().unwrap().forget();
    /// assert_eq!(s.available().unwrap(), 0);
    /// s.release().unwrap();
    /// assert_eq!(s.available().unwrap(), 1);
    /// ```
    pub fn forget(self) {
        let this = std::mem::ManuallyDrop::new(self);
        this.sem.forget_owned(this.entry, this.token);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release_owned(self.entry, self.token);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::model;
    use std::sync::Arc;

    /// Two threads share one permit: never both inside, never more than
    /// the bound, and the one that has to sleep is woken.
    #[test]
    fn one_permit_two_threads_exclude_each_other() {
        fn critical(s: &(Semaphore, AtomicU32)) {
            s.0.acquire().unwrap();
            assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
            s.1.fetch_sub(1, Ordering::Relaxed);
            s.0.release().unwrap();
        }
        loom::model(|| {
            let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || critical(&s))
            };
            critical(&s);
            t.join().unwrap();
            assert_eq!(s.0.available().unwrap(), 1);
        });
    }

    /// The same with owned permits: the owner table never lets two in,
    /// and a release of an owned permit wakes the sleeper.
    #[test]
    fn owned_permits_exclude_each_other() {
        fn critical(s: &(Semaphore, AtomicU32)) {
            let p = s.0.acquire_permit().unwrap();
            assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
            s.1.fetch_sub(1, Ordering::Relaxed);
            drop(p);
        }
        loom::model(|| {
            let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || critical(&s))
            };
            critical(&s);
            t.join().unwrap();
            assert_eq!(s.0.available().unwrap(), 1);
            assert!(!s.0.any_owner());
        });
    }

    /// A release always reaches an acquirer that sleeps for it.
    #[test]
    fn release_wakes_a_sleeping_acquirer() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, None));
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || s.acquire().unwrap())
            };
            s.release().unwrap();
            t.join().unwrap();
            assert_eq!(s.available().unwrap(), 0);
        });
    }

    /// Two sleepers, two single releases: the first release clears the
    /// sleepers bit to wake one, and that one must set it again so the
    /// second release wakes the other.
    #[test]
    fn two_sleepers_two_releases_both_pass() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, Some(2)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.acquire().unwrap())
                })
                .collect();
            s.release().unwrap();
            s.release().unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(s.available().unwrap(), 0);
        });
    }

    /// One `release_n(2)` lets two sleepers through.
    #[test]
    fn release_n_wakes_as_many() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, Some(2)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.acquire().unwrap())
                })
                .collect();
            s.release_n(2).unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(s.available().unwrap(), 0);
        });
    }

    /// A holder of an owned permit that stops for good after `die_after`
    /// (a step name, or "held": holding it), as a killed process would:
    /// it declares itself dead, then lets time pass for the sleepers
    /// (their probe slices end), which is all a dead process does.
    fn dying_holder(s: &Semaphore, die_after: &'static str) {
        match die_after {
            "held" => std::mem::forget(s.acquire_permit().unwrap()),
            "semaphore.release.intent" | "semaphore.release.returned" => {
                let p = s.acquire_permit().unwrap();
                model::stop_after(die_after);
                drop(p);
            }
            _ => {
                model::stop_after(die_after);
                assert!(s.acquire_permit().is_err());
            }
        }
        assert!(die_after == "held" || model::stopped());
        model::die();
        s.wake(u32::MAX);
    }

    /// A binary semaphore of owned permits whose holder dies at each step
    /// of taking or giving back its permit: a waiter gets the permit (it
    /// is never lost), and while it holds it nobody else can take one (it
    /// is never given back twice).
    #[test]
    fn a_dead_holders_permit_comes_back_exactly_once() {
        for die_after in [
            "held",
            "semaphore.acquire.intent",
            "semaphore.acquire.taken",
            "semaphore.release.intent",
            "semaphore.release.returned",
        ] {
            loom::model(move || {
                let s = Arc::new(Semaphore::new(1, Some(1)));
                let dier = {
                    let s = s.clone();
                    loom::thread::spawn(move || dying_holder(&s, die_after))
                };
                let p = s.acquire_permit().expect("the permit comes back");
                assert!(
                    matches!(s.try_acquire(), Err(WaitError::WouldBlock)),
                    "{die_after}: a second permit"
                );
                drop(p);
                dier.join().unwrap();
                // Anything the dead holder left is given back now, once.
                assert!(matches!(
                    s.try_acquire_permit().map(SemaphorePermit::forget),
                    Ok(())
                ));
                assert!(matches!(s.try_acquire(), Err(WaitError::WouldBlock)));
                s.release().unwrap();
                assert_eq!(s.available().unwrap(), 1, "{die_after}");
                assert!(!s.any_owner(), "{die_after}");
            });
        }
    }

    /// Two waiters race to give back a dead holder's permit: one CAS on its
    /// entry wins, so it is returned once and they take turns with it.
    #[test]
    fn two_recoverers_return_a_dead_holders_permit_once() {
        fn critical(s: &(Semaphore, AtomicU32)) {
            s.0.acquire().unwrap();
            assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
            s.1.fetch_sub(1, Ordering::Relaxed);
            s.0.release().unwrap();
        }
        loom::model(|| {
            let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
            // The holder dies before the others start.
            {
                let s = s.clone();
                loom::thread::spawn(move || dying_holder(&s.0, "held"))
                    .join()
                    .unwrap();
            }
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || critical(&s))
            };
            critical(&s);
            t.join().unwrap();
            assert_eq!(s.0.available().unwrap(), 1);
        });
    }

    /// A recoverer that dies half-way through giving back a dead holder's
    /// permit is a dead holder itself: the next recoverer finishes the job,
    /// exactly.
    #[test]
    fn a_recoverer_that_dies_half_way_is_recovered_from() {
        for die_after in ["semaphore.recover.adopted", "semaphore.recover.returned"] {
            loom::model(move || {
                let s = Arc::new(Semaphore::new(1, Some(1)));
                {
                    let s = s.clone();
                    loom::thread::spawn(move || dying_holder(&s, "held"))
                        .join()
                        .unwrap();
                }
                let recoverer = {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        model::stop_after(die_after);
                        let r = s.try_acquire();
                        if model::stopped() {
                            model::die();
                            s.wake(u32::MAX);
                        } else if r.is_ok() {
                            // The other one gave the permit back first.
                            s.release().unwrap();
                        }
                    })
                };
                s.acquire().expect("the permit comes back");
                assert!(matches!(s.try_acquire(), Err(WaitError::WouldBlock)));
                s.release().unwrap();
                recoverer.join().unwrap();
                assert!(matches!(s.try_acquire(), Ok(())));
                assert!(matches!(s.try_acquire(), Err(WaitError::WouldBlock)));
                assert!(!s.any_owner(), "{die_after}");
            });
        }
    }

    /// A forgotten permit is a plain one: its holder's death gives nothing
    /// back.
    #[test]
    fn a_forgotten_permit_is_not_given_back() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(1, Some(1)));
            let dier = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    s.acquire_permit().unwrap().forget();
                    model::die();
                })
            };
            dier.join().unwrap();
            assert!(matches!(s.try_acquire(), Err(WaitError::WouldBlock)));
            assert_eq!(s.available().unwrap(), 0);
            assert!(!s.any_owner());
        });
    }
}
