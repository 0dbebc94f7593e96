//! [`Event`]: a process-shared event flag, manual- or auto-reset.
//!
//! # Layout
//!
//! `#[repr(C)]`, 8 bytes, alignment 4:
//!
//! ```text
//! offset  field   value
//! 0       state   bit 0        SET
//!                 bit 1        SLEEPERS: someone may be sleeping on this word
//!                              (never together with SET)
//!                 bits 2..=31  generation: manual-reset only (zero in
//!                              auto-reset), bumped by every set that finds
//!                              the event clear
//!                 (the futex word)
//! 4       mode    0            manual reset
//!                 1            auto reset
//!                 other        corrupted
//! ```
//!
//! All-zero is a valid event: manual-reset, clear, nobody waiting. State
//! words with both `SET` and `SLEEPERS`, or (auto-reset) with generation
//! bits, are never written by a participant and read as
//! [`Corrupted`], as is any other mode.
//!
//! # Protocol
//!
//! ```text
//! mode    operation  state before    state after        then
//! manual  set        g or g|SLEEPERS (g+1)|SET          wake all if SLEEPERS
//!         set        g|SET           g|SET              -
//!         clear      g|SET           g                  -
//!         wait       g|SET           g|SET              return
//!         wait       g               g|SLEEPERS         sleep until SET or the
//!                                                       generation moves
//! auto    set        0 or SLEEPERS   SET                wake one if SLEEPERS
//!         set        SET             SET                - (sets do not add up)
//!         clear      SET             0                  -
//!         wait       SET             0                  return
//!                                    (SLEEPERS if this waiter slept)
//!         wait       0               SLEEPERS           sleep until SET
//! ```
//!
//! A manual-reset waiter returns once it sees the event set *or* the
//! generation it started with gone, so a `set` immediately followed by
//! `clear` still releases everyone who was waiting (Python's
//! `threading.Event` behaves the same; Win32's `PulseEvent` does not).
//!
//! An auto-reset `set` clears `SLEEPERS` as it wakes one sleeper, so the
//! woken one puts the bit back on its way out (it may not be the last
//! sleeper), as in [`Semaphore`](super::Semaphore). It tries to consume
//! the event before it looks at its deadline, so a wake-up is never lost
//! to a waiter that then reports a timeout.
//!
//! Sleepers re-read the shared words at least every 100 ms, so garbage
//! written by a peer while they sleep is reported within that time.
//!
//! # Dead processes
//!
//! An event has no owner: a process that dies leaves it set or clear, and
//! the others carry on. A process that was meant to `set` it and died
//! never will; wait with a timeout if that can happen.

use super::error::{Corrupted, Fail, TryWaitError, WaitTimeoutError};
use super::wait::{deadline_after, expired, recheck_slice, spin_while};
use crate::blocks::ShmSafe;
use crate::primitive::{fence, futex_wait, futex_wake, futex_wake_all, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SET: u32 = 1;
const SLEEPERS: u32 = 2;
/// The generation's unit and mask.
const GEN_ONE: u32 = 4;
const GEN: u32 = !(SET | SLEEPERS);

const MANUAL: u32 = 0;
const AUTO: u32 = 1;

const STATE_OUT_OF_RANGE: &str = "event state out of range";
const MODE_OUT_OF_RANGE: &str = "event mode out of range";
const MODE_CHANGED: &str = "event mode changed while waiting";

/// Whether a participant of an event in `mode` could have written
/// `state`: never `SET` with `SLEEPERS`, nor (auto reset) a generation.
#[inline]
const fn state_ok(mode: u32, state: u32) -> bool {
    let both = state & (SET | SLEEPERS) == SET | SLEEPERS;
    let generation_in_auto = mode == AUTO && state & GEN != 0;
    !both && !generation_in_auto
}

/// How an [`Event`] goes back to clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventMode {
    /// Stays set until [`Event::clear`]; a `set` releases every waiter.
    /// What a zero-filled event holds.
    #[default]
    ManualReset,
    /// A successful wait clears it: each `set` releases one waiter. Sets
    /// while it is already set do not add up (use a
    /// [`Semaphore`](super::Semaphore) to count).
    AutoReset,
}

impl EventMode {
    const fn raw(self) -> u32 {
        match self {
            EventMode::ManualReset => MANUAL,
            EventMode::AutoReset => AUTO,
        }
    }
}

/// An event flag that processes set, clear and wait for. Its mode, chosen
/// at creation, says whether a successful wait clears it
/// ([`EventMode::AutoReset`]) or not ([`EventMode::ManualReset`]).
///
/// Place it in shared memory with [`Shm`](crate::Shm) or
/// [`Region::place`](crate::Region::place); a zero-filled `Event` is a
/// clear manual-reset event. `set` makes a system call only when someone
/// sleeps; waits spin briefly, then sleep on a futex.
///
/// A manual-reset wait returns once the event has been set since the wait
/// began, even if it was cleared again before the waiter ran (as Python's
/// `threading.Event`).
///
/// Every call checks the shared words: a state or mode no participant
/// writes is [`Corrupted`]. An event has no owner: a process
/// that dies leaves it as it was, and one that was meant to `set` it never
/// will — wait with a timeout where that can happen.
///
/// ```
/// use shmkit::sync::{Event, EventMode, TryWaitError};
/// use shmkit::Shm;
///
/// let ready = Shm::<Event>::anonymous(|e| e.init(EventMode::ManualReset))?;
/// std::thread::scope(|s| {
///     for _ in 0..3 {
///         s.spawn(|| ready.wait().unwrap());
///     }
///     ready.set().unwrap();
/// });
/// assert!(ready.is_set().unwrap());
///
/// let turn = Shm::<Event>::anonymous(|e| e.init(EventMode::AutoReset))?;
/// turn.set().unwrap();
/// turn.try_wait().unwrap();
/// assert!(matches!(turn.try_wait(), Err(TryWaitError::WouldBlock)));
/// # Ok::<(), shmkit::Error>(())
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct Event {
    /// `SET`, `SLEEPERS` and the generation; the futex word.
    state: AtomicU32,
    /// `MANUAL` or `AUTO`.
    mode: AtomicU32,
}

// SAFETY: repr(C), two `u32` atomics, zero valid (clear, manual-reset);
// values outside the protocol are reported as `Corrupted`, and the
// `SLEEPERS` bit only decides whether a wake system call is made.
unsafe impl ShmSafe for Event {
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::Event;
}

impl Event {
    /// A clear event in `mode`, for use outside shared memory; in a
    /// region, use [`init`](Self::init).
    #[cfg(not(shmkit_loom))]
    pub const fn new(mode: EventMode) -> Self {
        Self {
            state: AtomicU32::new(0),
            mode: AtomicU32::new(mode.raw()),
        }
    }

    /// A clear event in `mode`.
    #[cfg(shmkit_loom)]
    pub fn new(mode: EventMode) -> Self {
        Self {
            state: AtomicU32::new(0),
            mode: AtomicU32::new(mode.raw()),
        }
    }

    /// Sets up a clear event in `mode`, in place: call it once, from the
    /// creator's initializer, before other processes use the event.
    ///
    /// ```
    /// use shmkit::sync::{Event, EventMode};
    /// use shmkit::Shm;
    ///
    /// let e = Shm::<Event>::anonymous(|e| e.init(EventMode::AutoReset))?;
    /// assert_eq!(e.mode().unwrap(), EventMode::AutoReset);
    /// assert!(!e.is_set().unwrap());
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    pub fn init(&self, mode: EventMode) {
        self.mode.store(mode.raw(), Ordering::Relaxed);
        // Nobody should be waiting yet; if somebody is, let them look again.
        if self.state.swap(0, Ordering::Release) & SLEEPERS != 0 {
            futex_wake_all(&self.state);
        }
    }

    /// The mode chosen at creation.
    pub fn mode(&self) -> Result<EventMode, Corrupted> {
        Ok(match self.mode_raw()? {
            MANUAL => EventMode::ManualReset,
            _ => EventMode::AutoReset,
        })
    }

    /// Sets the event: releases every waiter (manual reset) or one
    /// (auto reset). Makes a system call only if someone sleeps.
    ///
    /// Everything this process wrote before `set` is visible to a waiter
    /// that returns because of it.
    pub fn set(&self) -> Result<(), Corrupted> {
        let mode = self.mode_raw()?;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            self.check(mode, state)?;
            let new = if state & SET != 0 {
                // Already set: rewrite it anyway, so that this set, too,
                // publishes what came before it.
                state
            } else if mode == MANUAL {
                (state & GEN).wrapping_add(GEN_ONE) | SET
            } else {
                SET
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if state & SLEEPERS != 0 {
                        if mode == MANUAL {
                            futex_wake_all(&self.state);
                        } else {
                            futex_wake(&self.state, 1);
                        }
                    }
                    return Ok(());
                }
                Err(seen) => state = seen,
            }
        }
    }

    /// Clears the event (whatever its mode); waiters from now on wait.
    pub fn clear(&self) -> Result<(), Corrupted> {
        let mode = self.mode_raw()?;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            self.check(mode, state)?;
            if state & SET == 0 {
                return Ok(());
            }
            match self.state.compare_exchange_weak(
                state,
                state & !SET,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => state = seen,
            }
        }
    }

    /// Whether the event is set right now (a snapshot).
    pub fn is_set(&self) -> Result<bool, Corrupted> {
        let mode = self.mode_raw()?;
        let state = self.check(mode, self.state.load(Ordering::Acquire))?;
        Ok(state & SET != 0)
    }

    /// Waits until the event is set, as long as it takes; an auto-reset
    /// event is cleared by the wait that returns.
    ///
    /// Fails only if the shared state is [`Corrupted`].
    #[inline]
    pub fn wait(&self) -> Result<(), Corrupted> {
        self.wait_inner(None).map_err(Into::into)
    }

    /// Returns at once: `Ok` if the event is set (clearing it if
    /// auto-reset), [`TryWaitError::WouldBlock`] if not.
    #[inline]
    pub fn try_wait(&self) -> Result<(), TryWaitError> {
        let mode = self.mode_raw()?;
        let mut state = self.state.load(Ordering::Acquire);
        if self.try_pass(mode, &mut state, 0)? {
            Ok(())
        } else {
            Err(TryWaitError::WouldBlock)
        }
    }

    /// [`wait`](Self::wait) for at most `timeout`; past it,
    /// [`WaitTimeoutError::Timeout`].
    #[inline]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitTimeoutError> {
        self.wait_inner(deadline_after(timeout)).map_err(Into::into)
    }

    /// [`wait`](Self::wait) until `deadline` at the latest; past it,
    /// [`WaitTimeoutError::Timeout`]. A deadline already past still passes
    /// a set event.
    #[inline]
    pub fn wait_deadline(&self, deadline: Instant) -> Result<(), WaitTimeoutError> {
        self.wait_inner(Some(deadline)).map_err(Into::into)
    }

    /// The mode word, checked.
    #[inline]
    fn mode_raw(&self) -> Result<u32, Corrupted> {
        match self.mode.load(Ordering::Relaxed) {
            mode @ (MANUAL | AUTO) => Ok(mode),
            _ => Err(self.corrupted(MODE_OUT_OF_RANGE)),
        }
    }

    /// `state` if a participant of an event in `mode` could have written it.
    #[inline]
    fn check(&self, mode: u32, state: u32) -> Result<u32, Corrupted> {
        if state_ok(mode, state) {
            Ok(state)
        } else {
            Err(self.corrupted(STATE_OUT_OF_RANGE))
        }
    }

    /// One attempt to pass, from the state word last seen as `*state`:
    /// a manual-reset event passes if set; an auto-reset one if this call
    /// clears it (to `keep`). `Ok(false)`: not set (`*state` holds the
    /// word seen).
    #[inline]
    fn try_pass(&self, mode: u32, state: &mut u32, keep: u32) -> Result<bool, Corrupted> {
        loop {
            self.check(mode, *state)?;
            if *state & SET == 0 {
                return Ok(false);
            }
            if mode == MANUAL {
                return Ok(true);
            }
            match self
                .state
                .compare_exchange_weak(SET, keep, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(true),
                Err(seen) => *state = seen,
            }
        }
    }

    #[inline]
    fn wait_inner(&self, deadline: Option<Instant>) -> Result<(), Fail> {
        let mode = self.mode_raw()?;
        let mut state = self.state.load(Ordering::Acquire);
        if self.try_pass(mode, &mut state, 0)? {
            return Ok(());
        }
        self.wait_contended(mode, state, deadline)
    }

    #[cold]
    fn wait_contended(&self, mode: u32, first: u32, deadline: Option<Instant>) -> Result<(), Fail> {
        // Manual reset: a generation other than this one means a set
        // happened since we started, even if a clear followed it.
        let generation = first & GEN;
        let moved = |s: u32| mode == MANUAL && s & GEN != generation;
        // Auto reset: SLEEPERS once we have slept (others may sleep too,
        // so we leave the bit set however we leave).
        let mut keep = 0;
        let mut state = if expired(deadline) {
            self.state.load(Ordering::Relaxed)
        } else {
            spin_while(&self.state, |s| s & (SET | SLEEPERS) == 0 && !moved(s))
        };
        loop {
            if self.mode_raw()? != mode {
                return Err(self.corrupted(MODE_CHANGED));
            }
            if self.try_pass(mode, &mut state, keep)? {
                if mode == MANUAL {
                    // `state` came from a relaxed load; pair with the set.
                    fence(Ordering::Acquire);
                }
                return Ok(());
            }
            if moved(state) {
                fence(Ordering::Acquire);
                return Ok(());
            }
            // Not set: `state` is `g` or `g | SLEEPERS`.
            if expired(deadline) {
                if keep != 0 && state & SLEEPERS == 0 {
                    // A set may have cleared the bit to wake us; others may
                    // still sleep and need the next set to wake them.
                    if let Err(seen) = self.state.compare_exchange(
                        state,
                        state | SLEEPERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        state = seen;
                        continue;
                    }
                }
                return Err(Fail::Busy);
            }
            if state & SLEEPERS == 0 {
                if let Err(seen) = self.state.compare_exchange(
                    state,
                    state | SLEEPERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = seen;
                    continue;
                }
                state |= SLEEPERS;
            }
            futex_wait(&self.state, state, recheck_slice(deadline));
            if mode == AUTO {
                keep = SLEEPERS;
            }
            state = spin_while(&self.state, |s| s & SET == 0 && !moved(s));
        }
    }

    /// Reports corrupted state, first waking every sleeper so that they
    /// see it too instead of sleeping out their recheck interval.
    #[cold]
    fn corrupted<E: From<Corrupted>>(&self, what: &'static str) -> E {
        futex_wake_all(&self.state);
        Corrupted(what).into()
    }
}

/// The state of the event at the start of `object`'s data, as
/// [`sync::inspect`](super::inspect()) reports it.
pub(super) fn state_of(object: &crate::region::Outside) -> crate::Result<super::EventState> {
    use core::mem::{offset_of, size_of};
    let words = object.data(0, size_of::<Event>())?;
    let state = words.u32_at(offset_of!(Event, state));
    let mode = words.u32_at(offset_of!(Event, mode));
    let corrupted = if words.len() < size_of::<Event>() {
        Some("the file ends inside the event")
    } else if mode != MANUAL && mode != AUTO {
        Some(MODE_OUT_OF_RANGE)
    } else if !state_ok(mode, state) {
        Some(STATE_OUT_OF_RANGE)
    } else {
        None
    };
    Ok(super::EventState {
        mode: if mode == AUTO {
            EventMode::AutoReset
        } else {
            EventMode::ManualReset
        },
        set: state & SET != 0,
        sleepers: state & SLEEPERS != 0,
        corrupted,
    })
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use std::sync::Arc;

    /// A manual-reset set wakes every waiter, whatever the interleaving.
    #[test]
    fn manual_set_releases_two_waiters() {
        loom::model(|| {
            let e = Arc::new(Event::new(EventMode::ManualReset));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let e = e.clone();
                    loom::thread::spawn(move || e.wait().unwrap())
                })
                .collect();
            e.set().unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert!(e.is_set().unwrap());
        });
    }

    /// Data written before a set is seen by a waiter that passes.
    #[test]
    fn manual_set_publishes_prior_writes() {
        loom::model(|| {
            let e = Arc::new((Event::new(EventMode::ManualReset), AtomicU32::new(0)));
            let t = {
                let e = e.clone();
                loom::thread::spawn(move || {
                    e.0.wait().unwrap();
                    assert_eq!(e.1.load(Ordering::Relaxed), 7);
                })
            };
            e.1.store(7, Ordering::Relaxed);
            e.0.set().unwrap();
            t.join().unwrap();
        });
    }

    /// Auto reset: each set lets exactly one of two sleeping waiters
    /// through, and the second set reaches the other one.
    #[test]
    fn auto_set_releases_one_waiter_per_set() {
        loom::model(|| {
            let e = Arc::new((Event::new(EventMode::AutoReset), AtomicU32::new(0)));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let e = e.clone();
                    loom::thread::spawn(move || {
                        e.0.wait().unwrap();
                        e.1.fetch_add(1, Ordering::AcqRel);
                    })
                })
                .collect();
            e.0.set().unwrap();
            while e.1.load(Ordering::Acquire) == 0 {
                loom::thread::yield_now();
            }
            assert_eq!(e.1.load(Ordering::Acquire), 1, "one set, two passed");
            assert!(!e.0.is_set().unwrap());
            e.0.set().unwrap();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(e.1.load(Ordering::Acquire), 2);
            assert!(!e.0.is_set().unwrap(), "a set was not consumed");
        });
    }

    /// Auto reset: of two `try_wait`s racing for one set, exactly one
    /// passes.
    #[test]
    fn auto_try_wait_passes_once_per_set() {
        loom::model(|| {
            let e = Arc::new(Event::new(EventMode::AutoReset));
            e.set().unwrap();
            let t = {
                let e = e.clone();
                loom::thread::spawn(move || e.try_wait().is_ok())
            };
            let mine = e.try_wait().is_ok();
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "mine {mine}, theirs {theirs}");
            assert!(!e.is_set().unwrap());
        });
    }
}
