//! [`Barrier`]: a process-shared, reusable barrier that breaks instead of
//! hanging when a party dies. What counts as a party and what a death
//! does are the contract on [`Barrier`]; this is the protocol.
//!
//! # State
//!
//! ```text
//! state (32 bits, also the futex word)
//! bits     field      meaning
//! 0..=6    arrived    arrivals in the current generation, < parties
//! 7        SLEEPERS   someone may sleep on the word
//! 8        BROKEN     aborted or a party died: every wait fails
//! 9..=31   generation bumped (wrapping) when a generation completes
//!
//! parties  n, set once at initialization (0: not initialized)
//! tokens   MAX_PARTIES slots: 0, or the token of a registered process;
//!          never cleared; found by linear probing from a hash of the
//!          token
//! ```
//!
//! An arrival is one CAS on `state` (after registering, which is one load
//! once the process's entry exists); the last arrival's CAS resets
//! `arrived` and bumps the generation, then wakes everyone if `SLEEPERS`
//! was set. Waiters spin, then sleep on `state` itself with `SLEEPERS`
//! set, so a completion between their check and their sleep changes the
//! word and the futex returns at once. A waiter whose deadline passes
//! takes its arrival back with a CAS that succeeds only in its own
//! generation.
//!
//! # Owner death
//!
//! Only waiters look for dead parties. A waiter checks the liveness of
//! every other registered participant on the schedule of a [`Probe`]
//! (after 1 ms of waiting, then at most every 10 ms). If one is dead, it sets
//! `BROKEN` with a CAS from a state read *after* the process was found
//! dead, and only while that state is still the waiter's own generation.
//! A process that completed a generation and then exited moved the
//! generation on before it died, so it can never break the generation it
//! completed: a dead party breaks only a generation that is waiting for
//! it (or, see [`Barrier`], one it died waiting in).
//!
//! Garbage is [`Corrupted`]: `parties` outside
//! `1..=MAX_PARTIES`, `arrived` not below `parties`, or a table entry
//! that is no valid token (found by the first probe).

use super::error::{BarrierError, BarrierTimeoutError, Corrupted, Fail};
use super::owner::{self, Liveness, Token};
use super::wait::{deadline_after, expired, Probe, SPIN_LIMIT};
use crate::blocks::ShmSafe;
use crate::primitive::{futex_wait, futex_wake_all, spin_loop, AtomicU32, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

const ARRIVED: u32 = 0x7F;
const SLEEPERS: u32 = 1 << 7;
const BROKEN: u32 = 1 << 8;
const GENERATION: u32 = !((1 << 9) - 1);
const GENERATION_ONE: u32 = 1 << 9;

const NOT_INITIALIZED: &str = "barrier is not initialized (0 parties)";
const TOO_MANY_PARTIES: &str = "barrier has more parties than allowed";
const ARRIVALS_ABOVE_PARTIES: &str = "barrier arrivals exceed its parties";
const BAD_TOKEN: &str = "barrier party table holds an invalid token";

/// The number of parties a `parties` word of `n` means, checked.
fn parties_of(n: u32) -> Result<u32, &'static str> {
    match n {
        0 => Err(NOT_INITIALIZED),
        n if n as usize > Barrier::MAX_PARTIES => Err(TOO_MANY_PARTIES),
        n => Ok(n),
    }
}

/// Reads of the state before parking (none under loom, where every read
/// is a scheduling point).
const SPINS: u32 = if cfg!(shmkit_loom) { 0 } else { SPIN_LIMIT };

/// A reusable rendezvous for a fixed number of parties (threads or
/// processes): each [`wait`](Barrier::wait) blocks until all parties of
/// the current generation have arrived, then all are released and exactly
/// one of them, the last to arrive, is told it is the leader.
///
/// Place it in shared memory with [`Shm`](crate::Shm) and set the number
/// of parties with [`init`](Barrier::init) when creating the region;
/// zeroed memory is an uninitialized barrier, on which every wait fails
/// with [`Corrupted`]. [`abort`](Barrier::abort) breaks it on
/// purpose: every current and later wait fails with [`BarrierError::Broken`].
/// A wait whose deadline passes takes its arrival back and returns
/// [`BarrierTimeoutError::Timeout`]; the barrier stays usable.
///
/// # Parties
///
/// The barrier counts *arrivals*: `n` parties may be `n` threads of one
/// process, `n` processes, or a mix. Death, though, is seen per
/// *process*: on its first `wait` a process is registered in the
/// barrier's table of [`MAX_PARTIES`](Barrier::MAX_PARTIES) entries (all
/// its threads share one entry), and from then on it counts as a party
/// process for the rest of the barrier's life. The set of party processes
/// is thus fixed: a barrier on which more than `MAX_PARTIES` distinct
/// processes have waited refuses newcomers with [`BarrierError::Registry`],
/// and one process cannot take over a dead one's place (use a new
/// barrier).
///
/// # Owner death
///
/// Only waiters look for dead parties, a few milliseconds into a wait and
/// again every few milliseconds. While anyone waits:
/// - a party process that has died without arriving in the current
///   generation breaks the barrier: every waiter wakes with
///   [`BarrierError::Broken`] (well under a second after the death), and so
///   does every later `wait`;
/// - a party process that died *while waiting* (it had arrived) breaks it
///   too, even if the others could still complete this generation: a
///   process may supply several parties, so its arrival does not prove it
///   owes no more, and the next generation could not complete anyway.
///   Breaking at once means nobody hangs on a dead party;
/// - a process that exits after passing its last generation breaks
///   nothing while nobody waits, and can never break the generation it
///   passed; but it still counts as a party, so whoever waits on a *later*
///   generation finds it dead and gets `Broken`.
///
/// ```
/// use shmkit::sync::Barrier;
/// use shmkit::Shm;
///
/// # let name = format!("/shmkit-doc-barrier-{}", std::process::id());
/// let barrier = Shm::<Barrier>::create(&name, |b| b.init(3))?;
/// // Each of three threads (or processes, opening `name`) runs:
/// let leaders: usize = std::thread::scope(|s| {
///     let handles: Vec<_> = (0..3)
///         .map(|_| s.spawn(|| barrier.wait().unwrap().is_leader() as usize))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum()
/// });
/// assert_eq!(leaders, 1);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
pub struct Barrier {
    state: AtomicU32,
    parties: AtomicU32,
    tokens: [AtomicU32; Barrier::MAX_PARTIES],
}

// SAFETY: repr(C); every field is an atomic or an array of atomics; zero
// is "not initialized" and every value is checked before use.
unsafe impl ShmSafe for Barrier {
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::Barrier;
}

/// Returned by a successful [`Barrier::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// `true` for exactly one party per generation: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// The largest number of parties, and of distinct processes that may
    /// ever wait on one barrier.
    pub const MAX_PARTIES: usize = 64;

    /// A barrier for `parties` parties (for use outside shared memory;
    /// in a region use [`init`](Self::init)).
    ///
    /// # Panics
    ///
    /// If `parties` is 0 or more than [`MAX_PARTIES`](Self::MAX_PARTIES).
    pub fn new(parties: usize) -> Self {
        let b = Self {
            state: AtomicU32::new(0),
            parties: AtomicU32::new(0),
            tokens: core::array::from_fn(|_| AtomicU32::new(0)),
        };
        b.init(parties);
        b
    }

    /// Sets the number of parties of a freshly zeroed barrier, typically
    /// in the initializer of [`Shm::create`](crate::Shm::create). Call it
    /// once, before anyone waits.
    ///
    /// # Panics
    ///
    /// If `parties` is 0 or more than [`MAX_PARTIES`](Self::MAX_PARTIES).
    pub fn init(&self, parties: usize) {
        assert!(
            (1..=Self::MAX_PARTIES).contains(&parties),
            "a barrier has 1..={} parties, not {parties}",
            Self::MAX_PARTIES
        );
        self.parties.store(parties as u32, Ordering::Release);
    }

    /// The number of parties, or [`Corrupted`] if the barrier is not
    /// initialized or holds garbage.
    pub fn parties(&self) -> Result<usize, Corrupted> {
        self.checked_parties().map(|n| n as usize)
    }

    fn checked_parties(&self) -> Result<u32, Corrupted> {
        parties_of(self.parties.load(Ordering::Acquire)).map_err(Corrupted)
    }

    /// Whether the barrier is broken (aborted, or a party died).
    pub fn is_broken(&self) -> bool {
        self.state.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Breaks the barrier for good: every current and future waiter gets
    /// [`BarrierError::Broken`].
    pub fn abort(&self) {
        self.state.fetch_or(BROKEN, Ordering::Release);
        futex_wake_all(&self.state);
    }

    /// Waits until all parties have arrived.
    pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.wait_inner(None).map_err(Into::into)
    }

    /// Waits at most `timeout`; on [`BarrierTimeoutError::Timeout`] this
    /// arrival is withdrawn and the barrier stays usable.
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        self.wait_inner(deadline_after(timeout)).map_err(Into::into)
    }

    /// Waits until `deadline` at the latest; on
    /// [`BarrierTimeoutError::Timeout`] this arrival is withdrawn and the
    /// barrier stays usable.
    pub fn wait_deadline(
        &self,
        deadline: Instant,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        self.wait_inner(Some(deadline)).map_err(Into::into)
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult, Fail> {
        let n = self.checked_parties()?;
        let mut s = self.state.load(Ordering::Relaxed);
        if s & BROKEN != 0 {
            return Err(Fail::Broken);
        }
        let me = owner::current(&self.state);
        self.register(me)?;
        let generation = loop {
            if s & BROKEN != 0 {
                return Err(Fail::Broken);
            }
            let arrived = s & ARRIVED;
            if arrived >= n {
                return Err(Fail::Corrupted(ARRIVALS_ABOVE_PARTIES));
            }
            if arrived + 1 == n {
                // The last arrival: next generation, nobody arrived, nobody
                // sleeping on it yet.
                let next = (s & GENERATION).wrapping_add(GENERATION_ONE);
                match self
                    .state
                    .compare_exchange(s, next, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => {
                        if s & SLEEPERS != 0 {
                            futex_wake_all(&self.state);
                        }
                        return Ok(BarrierWaitResult(true));
                    }
                    Err(now) => s = now,
                }
            } else {
                match self
                    .state
                    .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break s & GENERATION,
                    Err(now) => s = now,
                }
            }
        };
        self.wait_for(generation, n, me, deadline)
    }

    /// Waits for `generation` (which we have arrived in) to complete.
    #[cfg_attr(shmkit_loom, allow(clippy::reversed_empty_ranges))] // no spins under loom
    fn wait_for(
        &self,
        generation: u32,
        n: u32,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<BarrierWaitResult, Fail> {
        let mut probe = Probe::start();
        loop {
            for _ in 0..SPINS {
                if self.state.load(Ordering::Relaxed) & (GENERATION | BROKEN) != generation {
                    break;
                }
                spin_loop();
            }
            let s = self.state.load(Ordering::Acquire);
            if s & GENERATION != generation {
                return Ok(BarrierWaitResult(false));
            }
            if s & BROKEN != 0 {
                return Err(Fail::Broken);
            }
            let arrived = s & ARRIVED;
            if arrived == 0 || arrived >= n {
                return Err(Fail::Corrupted(ARRIVALS_ABOVE_PARTIES));
            }
            if !cfg!(shmkit_loom) && probe.due() && self.a_party_is_dead(me)? {
                return self.break_generation(generation);
            }
            if expired(deadline) {
                return self.withdraw(generation);
            }
            if s & SLEEPERS == 0
                && self
                    .state
                    .compare_exchange(s, s | SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            futex_wait(&self.state, s | SLEEPERS, probe.slice(deadline));
        }
    }

    /// Finds this process's entry in the token table, adding it on first
    /// use. Entries are never removed, so linear probing from the token's
    /// hash finds it before any empty slot.
    fn register(&self, me: Token) -> Result<(), Fail> {
        let start = (me.raw().wrapping_mul(0x9E37_79B9) >> 26) as usize;
        for k in 0..Self::MAX_PARTIES {
            let slot = &self.tokens[(start + k) % Self::MAX_PARTIES];
            match slot.load(Ordering::Relaxed) {
                t if t == me.raw() => return Ok(()),
                0 => match slot.compare_exchange(0, me.raw(), Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => return Ok(()),
                    Err(t) if t == me.raw() => return Ok(()),
                    Err(_) => {}
                },
                _ => {}
            }
        }
        Err(Fail::Full(crate::Error::TooManyParticipants {
            slots: Self::MAX_PARTIES,
        }))
    }

    /// Whether some registered process other than this one is dead.
    #[cold]
    fn a_party_is_dead(&self, me: Token) -> Result<bool, Fail> {
        for slot in &self.tokens {
            let t = slot.load(Ordering::Acquire);
            if t == 0 || t == me.raw() {
                continue;
            }
            match owner::liveness(&self.state, Token::from_raw(t)) {
                Liveness::Alive => {}
                Liveness::Dead => return Ok(true),
                Liveness::Invalid => return Err(Fail::Corrupted(BAD_TOKEN)),
            }
        }
        Ok(false)
    }

    /// Breaks `generation` after finding a dead party: a CAS from a state
    /// read now, so only if the generation has not completed meanwhile.
    #[cold]
    fn break_generation(&self, generation: u32) -> Result<BarrierWaitResult, Fail> {
        self.leave(
            generation,
            |s| Ok((s | BROKEN) & !SLEEPERS),
            || {
                futex_wake_all(&self.state);
                Fail::Broken
            },
        )
    }

    /// Takes our arrival back after the deadline passed, unless the
    /// generation completed (or broke) first.
    #[cold]
    fn withdraw(&self, generation: u32) -> Result<BarrierWaitResult, Fail> {
        self.leave(
            generation,
            |s| match s & ARRIVED {
                0 => Err(Fail::Corrupted(ARRIVALS_ABOVE_PARTIES)),
                _ => Ok(s - 1),
            },
            || Fail::Busy,
        )
    }

    /// Ends a wait for `generation` early: moves the state `s` to `next(s)`
    /// with a CAS and returns `left()`, unless the generation completed
    /// (we passed) or broke first.
    fn leave(
        &self,
        generation: u32,
        next: impl Fn(u32) -> Result<u32, Fail>,
        left: impl FnOnce() -> Fail,
    ) -> Result<BarrierWaitResult, Fail> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & GENERATION != generation {
                return Ok(BarrierWaitResult(false));
            }
            if s & BROKEN != 0 {
                return Err(Fail::Broken);
            }
            match self
                .state
                .compare_exchange(s, next(s)?, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Err(left()),
                Err(now) => s = now,
            }
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Barrier")
            .field("parties", &self.parties.load(Ordering::Relaxed))
            .field("arrived", &(s & ARRIVED))
            .field("broken", &(s & BROKEN != 0))
            .finish_non_exhaustive()
    }
}

/// The state of the barrier at the start of `object`'s data, as
/// [`sync::inspect`](super::inspect()) reports it.
pub(super) fn state_of(object: &crate::region::Outside) -> crate::Result<super::BarrierState> {
    use core::mem::{offset_of, size_of};
    let words = object.data(0, size_of::<Barrier>())?;
    let mut out = super::BarrierState::default();
    if words.len() < size_of::<Barrier>() {
        out.corrupted = Some("the file ends inside the barrier");
        return Ok(out);
    }
    let state = words.u32_at(offset_of!(Barrier, state));
    out.parties = words.u32_at(offset_of!(Barrier, parties));
    out.arrived = state & ARRIVED;
    out.generation = (state & GENERATION) / GENERATION_ONE;
    out.broken = state & BROKEN != 0;
    out.sleepers = state & SLEEPERS != 0;
    match parties_of(out.parties) {
        Err(what) => out.corrupted = Some(what),
        Ok(n) if out.arrived >= n => out.corrupted = Some(ARRIVALS_ABOVE_PARTIES),
        Ok(_) => {}
    }
    let tokens = offset_of!(Barrier, tokens);
    for i in 0..Barrier::MAX_PARTIES {
        match words.u32_at(tokens + 4 * i) {
            0 => {}
            t => match super::inspect::holder(object, t)? {
                Some(h) => out.processes.push(h),
                None => out.corrupted = out.corrupted.or(Some(BAD_TOKEN)),
            },
        }
    }
    Ok(out)
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::primitive::UnsafeCell;
    use std::sync::Arc;

    struct Shared {
        barrier: Barrier,
        leaders: [AtomicU32; 2],
        cells: [UnsafeCell<u32>; 2],
    }

    // SAFETY: thread `i` alone writes `cells[i]`, before the first barrier;
    // the other reads it only after it, the order the model checks (loom
    // reports any access the barrier does not order).
    unsafe impl Sync for Shared {}

    /// Two threads, two generations: one leader per generation, and what
    /// each wrote before the barrier is visible (ordered) after it.
    #[test]
    fn two_threads_two_generations() {
        loom::model(|| {
            let shared = Arc::new(Shared {
                barrier: Barrier::new(2),
                leaders: [AtomicU32::new(0), AtomicU32::new(0)],
                cells: [UnsafeCell::new(0), UnsafeCell::new(0)],
            });
            let party = |me: usize, s: Arc<Shared>| {
                // SAFETY: only thread `me` writes cell `me`, before the
                // first barrier; reads of the other cell come after it.
                s.cells[me].with_mut(|p| unsafe { *p = me as u32 + 10 });
                for generation in 0..2 {
                    if s.barrier.wait().unwrap().is_leader() {
                        s.leaders[generation].fetch_add(1, Ordering::Relaxed);
                    }
                    if generation == 0 {
                        // SAFETY: the other thread wrote its cell before
                        // the barrier and never writes it again.
                        let v = s.cells[1 - me].with(|p| unsafe { *p });
                        assert_eq!(v, (1 - me) as u32 + 10);
                    }
                }
            };
            let t = {
                let s = shared.clone();
                loom::thread::spawn(move || party(1, s))
            };
            party(0, shared.clone());
            t.join().unwrap();
            for l in &shared.leaders {
                assert_eq!(l.load(Ordering::Relaxed), 1);
            }
        });
    }

    /// Three threads, one generation: exactly one leader, nobody lost.
    #[test]
    fn three_threads_one_leader() {
        loom::model(|| {
            let b = Arc::new((Barrier::new(3), AtomicU32::new(0)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    loom::thread::spawn(move || {
                        if b.0.wait().unwrap().is_leader() {
                            b.1.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            if b.0.wait().unwrap().is_leader() {
                b.1.fetch_add(1, Ordering::Relaxed);
            }
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(b.1.load(Ordering::Relaxed), 1);
        });
    }

    /// `abort` reaches a waiter, whether it already sleeps or not, and
    /// later waits fail at once.
    #[test]
    fn abort_wakes_a_waiter() {
        loom::model(|| {
            let b = Arc::new(Barrier::new(2));
            let t = {
                let b = b.clone();
                loom::thread::spawn(move || b.wait())
            };
            b.abort();
            assert!(matches!(t.join().unwrap(), Err(BarrierError::Broken)));
            assert!(matches!(b.wait(), Err(BarrierError::Broken)));
        });
    }
}
