//! The lock word protocol of [`RwLock`](super::RwLock): a 64-bit state
//! word, a futex word and the reader table ([`readers`](super::readers)).
//!
//! # State
//!
//! A 64-bit `state` word says who writes; a table of reader *entries*, one
//! per participant (region handle) that reads, says who reads. Futexes are
//! 32-bit, so sleepers park on a separate 32-bit `epoch` that every waking
//! transition bumps.
//!
//! ```text
//! offset  field
//!   0     state     u64, below
//!   8     epoch     u32, the futex word
//!  12     -         reserved, then padding: the state word has its cache
//!                   line to itself when the lock is 64-byte aligned
//!  64     readers   [u64; 32] reader entries, below
//! 320     data      T (at the next multiple of its alignment)
//!
//! state
//! bits     field     meaning
//! 0..=28   -         always 0 (anything else: Corrupted)
//! 29       CLAIMING  the writer below has found readers and waits for them
//!                    to leave: it has not entered, so it has written nothing
//! 30       PARKED    someone may sleep on `epoch`
//! 31       ORPHANED  a writer died holding the lock and no writer has
//!                    repaired the data since: readers get OwnerDied, and so
//!                    does the next writer
//! 32..=62  writer    token of the writer (0: none): it holds the lock, or
//!                    claims it (CLAIMING set, or just claimed and still
//!                    looking at the readers)
//! 63       -         always 0, except in NOT_RECOVERABLE (all ones)
//!
//! reader entry
//! bits     field     meaning
//! 0..=31   count     read holds of the participant below (u32::MAX:
//!                    Corrupted); entries of count 0 are free
//! 32..=62  token     the participant holding them
//! 63       -         always 0
//! ```
//!
//! | `writer` | `CLAIMING` | reader entries      | meaning                        |
//! |----------|------------|---------------------|--------------------------------|
//! | 0        | 0          | all 0               | unlocked (zeroed memory)       |
//! | 0        | 0          | some `(t, c > 0)`   | those participants hold `c` read locks each |
//! | `w`      | 0          | all 0 (or readers backing out) | `w` holds the lock for writing (or has just claimed it and is looking at the entries) |
//! | `w`      | 1          | some `(t, c > 0)`   | `w` waits for those readers to leave; new readers wait |
//! | all ones |            |                     | not recoverable                |
//!
//! # Protocol
//!
//! ```text
//! read     R1  CAS the participant's entry: 0 -> (me, 1), (me, c) -> (me, c + 1)
//!          R2  load state: no writer: in (OwnerDied if ORPHANED);
//!              a writer: take R1 back (as an unlock does) and wait
//! unlock   U1  CAS the entry: (me, c) -> (me, c - 1), (me, 1) -> 0
//!          U2  load state: if CLAIMING and PARKED, and every entry is 0,
//!              clear PARKED, bump epoch, wake all
//! write    W1  CAS state: writer 0 -> me (the claim)
//!          W2  load every entry: all 0: in. Else CAS CLAIMING (and PARKED
//!              before sleeping) into state, load them again, sleep; when a
//!              look finds them all 0, CAS CLAIMING out: in
//! unlock   swap state to 0 (NOT_RECOVERABLE if not marked consistent);
//!          bump epoch and wake all if PARKED was set
//! ```
//!
//! A participant's entry is at a hash of its token, or the first free one
//! after it; the read guard keeps its index, so an unlock touches no other
//! entry. All threads of a process that reach the lock through one region
//! handle share its entry.
//!
//! R1-R2 against W1-W2 is a store-then-load pair on each side, made of
//! `SeqCst` operations: either the reader's R2 sees the writer's claim, or
//! the writer's look at the entries sees the reader's R1. So a writer never
//! enters while a reader holds the lock; a reader that sees a claim backs
//! out. U1-U2 against "CAS PARKED in, look at the entries again" is the
//! same pair, so the last reader to leave either is seen leaving or sees
//! the sleeping writer and wakes it. (Loom treats `SeqCst` accesses as
//! acquire/release, so under loom a `SeqCst` fence sits between the two
//! steps of each pair; on x86-64 the read-modify-write already is one.)
//!
//! A waiter reads `epoch` *before* the state it decides to sleep on, and
//! sleeps only with `PARKED` set; every transition that can let a sleeper
//! on clears `PARKED`, then bumps `epoch` and wakes all sleepers. So a
//! release either happened before the waiter read `epoch` (the waiter sees
//! it) or bumps `epoch` after (the futex returns or is woken): no lost
//! wake-up. Wake-ups are for everyone; the losers of the race park again.
//!
//! Uncontended `read`: a thread-local lookup of this handle's token, a
//! load and a CAS of its entry, a load of `state`; unlock: a load and a
//! CAS of the entry and a load of `state`. Uncontended `write`: one CAS on
//! `state` and a load of each of the 32 entries; unlock: one swap. An
//! unlock makes a futex call only if someone sleeps.
//!
//! # Owner death (the protocol; the contract is on [`RwLock`])
//!
//! A waiter checks the liveness of whoever keeps it waiting on the
//! schedule of a [`Probe`] (after 1 ms, then at most every 10 ms), and acts
//! on a death with one CAS from the exact value it saw: two waiters can
//! never both act on one death, and a token is never confused with a later
//! participant's (tokens carry their slot's generation).
//!
//! *A dead writer* `w`, as seen in `state`:
//!
//! | `w` died                            | state left       | a writer installs | a reader installs |
//! |-------------------------------------|------------------|-------------------|-------------------|
//! | after W1, before W2 found no readers or set `CLAIMING` | `writer = w` | `writer = me, ORPHANED` → `OwnerDied` once the readers are gone | `writer = 0, ORPHANED` → `OwnerDied` (read guard) |
//! | waiting for readers                 | `writer = w, CLAIMING` | `writer = me` (our claim; `ORPHANED` kept if set) | `writer = 0` (`ORPHANED` kept if set) |
//! | holding (after W2)                  | `writer = w`     | as the first row  | as the first row  |
//!
//! The first row is conservative: a writer that dies in the instants
//! between its claim and its first look at the readers has written nothing,
//! but is reported as a death. A writer that enters with `ORPHANED` set
//! gets `OwnerDied`; a write guard dropped without `mark_consistent`
//! stores `NOT_RECOVERABLE`.
//!
//! *A dead reader* `t` is found by a claiming writer that has waited for
//! its entry (and by `try_write`, at once, and by a reader that finds the
//! table full): it probes every entry that keeps it waiting and replaces a
//! dead participant's `(t, c)` with 0 by a CAS from that exact value.
//!
//! | `t` died                                   | left behind                 | what happens |
//! |--------------------------------------------|-----------------------------|--------------|
//! | before R1                                  | nothing                     | nothing to do |
//! | after R1 (holding, or about to back out)   | `(t, c)` counts it          | a waiting writer finds `t` dead, clears the entry, enters **clean** |
//! | after U1, before U2's wake                 | its entry already updated   | the sleeping writer's own probe slice ends (1-10 ms) and it looks again |
//!
//! This is exact: the count *is* the record (one word, one CAS), so there
//! is no moment at which a reader is counted but not attributed. Only `t`
//! changes an entry holding `t` while `t` is alive, and a dead token never
//! comes back, so the entry a clearer saw as `(t, c)` still means "`c`
//! holds of a dead participant" when its CAS succeeds; a live reader that
//! then takes the freed entry has another token. The writer gets a *clean*
//! guard: a read guard gives only shared access, so a reader cannot have
//! changed the data, and whatever the last writer left consistent still
//! is. Reporting `OwnerDied` would ask for a repair of something never
//! broken, and a forgotten `mark_consistent` would then make the lock
//! unrecoverable for nothing.
//!
//! *A full table*: all 32 entries hold other participants' read locks. A
//! reader that finds no entry waits as it would for a writer (`try_read`:
//! `WouldBlock`), looking again every 1-10 ms on a `Probe` schedule (a
//! leaving reader does not wake it); each look also probes the entries'
//! holders and clears dead ones, so dead readers never fill the table for
//! good.
//!
//! Garbage in the state (a reserved bit, `CLAIMING` without a writer, a
//! writer token no process ever had) or in an entry (a count at its limit,
//! a count without a token, a token no process ever had) is
//! [`LockError::Corrupted`], at once or after one probe interval; garbage
//! in `epoch` costs at most a spare wake-up. An unlock that finds its entry
//! scribbled over leaves it alone.

use super::readers::{entry, entry_count, entry_token, home, ENTRIES, MAX_COUNT};
use crate::primitive::{futex_wait, futex_wake_all, spin_loop, AtomicU32, AtomicU64, Ordering};
use crate::sync::error::RawLockError;
use crate::sync::guard::{Acquired, RawLock};
use crate::sync::owner::{self, Liveness, Token};
use crate::sync::wait::{expired, probe_slice, Probe, SPIN_LIMIT};
use std::time::Instant;

/// Bits of the state no correct participant sets (bit 63 and bits 0..=28).
pub(super) const RESERVED: u64 = (1 << 63) | ((1 << 29) - 1);
pub(super) const CLAIMING: u64 = 1 << 29;
pub(super) const PARKED: u64 = 1 << 30;
pub(super) const ORPHANED: u64 = 1 << 31;
pub(super) const WRITER_SHIFT: u32 = 32;
pub(super) const WRITER: u64 = 0x7FFF_FFFF << WRITER_SHIFT;
pub(super) const NOT_RECOVERABLE: u64 = u64::MAX;

/// Reads of the state before parking (none under loom, where every read
/// is a scheduling point).
pub(super) const SPINS: u32 = if cfg!(shmkit_loom) { 0 } else { SPIN_LIMIT };

#[inline]
pub(super) fn writer(s: u64) -> u32 {
    ((s & WRITER) >> WRITER_SHIFT) as u32
}

#[inline]
pub(super) fn with_writer(t: Token) -> u64 {
    (t.raw() as u64) << WRITER_SHIFT
}

/// Orders the store-then-load pairs described in the module docs. The
/// `SeqCst` accesses on both sides already do that in the memory model
/// (and on x86-64); loom treats them as acquire/release, so its models
/// need the fence to see what the real build relies on.
#[inline(always)]
pub(super) fn pair_fence() {
    #[cfg(shmkit_loom)]
    crate::primitive::fence(Ordering::SeqCst);
}

/// How a hold of state `s` was acquired: `OwnerDied` while a dead
/// writer's data is unrepaired (`ORPHANED`).
pub(super) fn from_orphaned(s: u64) -> Acquired {
    if s & ORPHANED != 0 {
        Acquired::OwnerDied
    } else {
        Acquired::Clean
    }
}

pub(super) fn corrupted_token() -> RawLockError {
    RawLockError::Corrupted("rwlock writer token is not a valid participant")
}

/// The checks every path applies to a state before acting on it.
#[inline]
pub(super) fn check(s: u64) -> Result<(), RawLockError> {
    if s == NOT_RECOVERABLE {
        return Err(RawLockError::NotRecoverable);
    }
    if s & RESERVED != 0 {
        return Err(RawLockError::Corrupted(
            "rwlock state has a reserved bit set",
        ));
    }
    let w = writer(s);
    if w > Token::MAX_RAW {
        return Err(corrupted_token());
    }
    if w == 0 && s & CLAIMING != 0 {
        return Err(RawLockError::Corrupted("rwlock claim without a writer"));
    }
    Ok(())
}

/// What the state becomes when a waiter finds its writer dead. A dead
/// writer that was waiting for readers (`CLAIMING`) had written nothing:
/// its claim just goes. Any other may have written: `ORPHANED`. `PARKED`
/// is cleared (the caller wakes).
pub(super) fn without_dead_writer(s: u64) -> u64 {
    if s & CLAIMING != 0 {
        s & ORPHANED
    } else {
        ORPHANED
    }
}

/// A reader's attempt to count itself in.
pub(super) enum Enter {
    /// Counted in entry `idx`, no writer: holding.
    In(usize, Acquired),
    /// A writer holds or claims the lock; the count was taken back.
    Blocked,
    /// Every entry holds another participant's reads.
    Full,
}

/// The lock word, futex and reader entries of an [`RwLock`](super::RwLock),
/// without data (unnameable outside this crate).
#[repr(C)]
#[derive(Debug)]
pub struct RawRwLock {
    pub(super) state: AtomicU64,
    pub(super) epoch: AtomicU32,
    pub(super) _reserved: [AtomicU32; 13],
    pub(super) readers: [AtomicU64; ENTRIES],
}

impl RawRwLock {
    #[cfg(not(shmkit_loom))]
    pub(super) const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: [const { AtomicU32::new(0) }; 13],
            readers: [const { AtomicU64::new(0) }; ENTRIES],
        }
    }

    #[cfg(shmkit_loom)]
    pub(super) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: std::array::from_fn(|_| AtomicU32::new(0)),
            readers: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The token this handle writes into the state word and its entry.
    #[inline]
    pub(super) fn me(&self) -> Token {
        owner::current(&self.state)
    }

    /// Spins while `keep_spinning(state)`, at most [`SPINS`] reads.
    #[inline]
    #[cfg_attr(shmkit_loom, allow(clippy::reversed_empty_ranges))] // no spins under loom
    pub(super) fn spin(&self, mut keep_spinning: impl FnMut(u64) -> bool) {
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
    pub(super) fn wake_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        futex_wake_all(&self.epoch);
    }

    /// Sleeps on `epoch` (read as `e` before `s` was) until the next probe
    /// of the writer `watched` watches is due (one probe interval if none)
    /// or `deadline`, after making sure `s` carries `PARKED`. Returns
    /// without sleeping if the state moved on.
    pub(super) fn park(
        &self,
        e: u32,
        s: u64,
        watched: &Option<(u32, Probe)>,
        deadline: Option<Instant>,
    ) {
        if s & PARKED == 0
            && self
                .state
                .compare_exchange(s, s | PARKED, Ordering::SeqCst, Ordering::Relaxed)
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
    pub(super) fn probe_due(watched: &mut Option<(u32, Probe)>, w: u32) -> bool {
        match watched {
            Some((h, probe)) if *h == w => probe.due(),
            _ => {
                *watched = Some((w, Probe::start()));
                cfg!(shmkit_loom)
            }
        }
    }

    /// Removes the dead writer seen in `s` (a CAS from `s`), waking the
    /// sleepers if `s` had `PARKED`. Fails if the state moved on.
    pub(super) fn drop_dead_writer(&self, s: u64) -> bool {
        let ok = self
            .state
            .compare_exchange(
                s,
                without_dead_writer(s),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok && s & PARKED != 0 {
            self.wake_all();
        }
        ok
    }

    // ----- read side -----

    /// R1 and R2: counts `me` in, then looks at the state.
    pub(super) fn enter(&self, me: Token) -> Result<Enter, RawLockError> {
        let idx = loop {
            let Some((i, e)) = self.find_entry(me) else {
                return Ok(Enter::Full);
            };
            let new = Self::counted(e, me)?;
            if self.readers[i]
                .compare_exchange(e, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                break i;
            }
        };
        stop_point!("rwlock.read.counted" => Err(RawLockError::Corrupted(crate::sync::model::STOPPED)));
        pair_fence();
        let s = self.state.load(Ordering::SeqCst);
        self.entered(idx, me, s)
    }

    /// R2's verdict on `s`, after R1 counted `me` in entry `idx`.
    #[inline]
    pub(super) fn entered(&self, idx: usize, me: Token, s: u64) -> Result<Enter, RawLockError> {
        if let Err(e) = check(s) {
            self.leave(idx, me);
            return Err(e);
        }
        if writer(s) == 0 {
            return Ok(Enter::In(idx, from_orphaned(s)));
        }
        self.leave(idx, me);
        Ok(Enter::Blocked)
    }

    /// The uncontended read: R1 on the home entry, R2 finding no writer.
    #[inline]
    pub(super) fn read_fast(&self, me: Token) -> Result<Option<(Acquired, usize)>, RawLockError> {
        let i = home(me);
        let slot = &self.readers[i];
        let e = slot.load(Ordering::Relaxed);
        let new = if e == 0 {
            entry(me, 1)
        } else if entry_token(e) == me.raw() as u64 && entry_count(e) < MAX_COUNT {
            e + 1
        } else {
            return Ok(None);
        };
        if slot
            .compare_exchange(e, new, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        stop_point!("rwlock.read.counted" => Err(RawLockError::Corrupted(crate::sync::model::STOPPED)));
        pair_fence();
        let s = self.state.load(Ordering::SeqCst);
        if s & !PARKED == 0 {
            return Ok(Some((Acquired::Clean, i)));
        }
        match self.entered(i, me, s)? {
            Enter::In(i, acquired) => Ok(Some((acquired, i))),
            _ => Ok(None),
        }
    }

    pub(super) fn try_read(&self) -> Result<(Acquired, usize, Token), RawLockError> {
        let me = self.me();
        if let Some((acquired, i)) = self.read_fast(me)? {
            return Ok((acquired, i, me));
        }
        loop {
            let s = self.state.load(Ordering::SeqCst);
            check(s)?;
            let w = writer(s);
            if w == 0 {
                match self.enter(me)? {
                    Enter::In(i, acquired) => return Ok((acquired, i, me)),
                    // A writer came: the loop looks at it.
                    Enter::Blocked => continue,
                    Enter::Full if self.clear_dead_readers(me)? => continue,
                    Enter::Full => return Err(RawLockError::Busy),
                }
            }
            match owner::liveness(&self.state, Token::from_raw(w)) {
                Liveness::Alive => return Err(RawLockError::Busy),
                Liveness::Invalid => return Err(corrupted_token()),
                Liveness::Dead => {
                    self.drop_dead_writer(s);
                }
            }
        }
    }

    #[inline]
    pub(super) fn read(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(Acquired, usize, Token), RawLockError> {
        let me = self.me();
        if let Some((acquired, i)) = self.read_fast(me)? {
            return Ok((acquired, i, me));
        }
        self.read_contended(me, deadline)
    }

    #[cold]
    pub(super) fn read_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<(Acquired, usize, Token), RawLockError> {
        // The writer we wait for, and since when.
        let mut watched = None;
        // Since when we have found the table full.
        let mut full: Option<Probe> = None;
        loop {
            self.spin(|s| s & WRITER != 0 && s & PARKED == 0);
            let e = self.epoch.load(Ordering::SeqCst);
            let s = self.state.load(Ordering::SeqCst);
            check(s)?;
            let w = writer(s);
            if w == 0 {
                match self.enter(me)? {
                    Enter::In(i, acquired) => return Ok((acquired, i, me)),
                    Enter::Blocked => continue,
                    Enter::Full => {
                        let probe = full.get_or_insert_with(Probe::start);
                        if probe.due() && self.clear_dead_readers(me)? {
                            continue;
                        }
                        if expired(deadline) {
                            return Err(RawLockError::Busy);
                        }
                        futex_wait(&self.epoch, e, probe.slice(deadline));
                        continue;
                    }
                }
            }
            if Self::probe_due(&mut watched, w) {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => {}
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead => {
                        self.drop_dead_writer(s);
                        continue;
                    }
                }
            }
            if expired(deadline) {
                return Err(RawLockError::Busy);
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// U1 and U2: takes one read hold of `me` out of entry `idx`, and wakes
    /// a writer waiting for the readers if none is left.
    #[inline]
    pub(super) fn leave(&self, idx: usize, me: Token) {
        let Some(slot) = self.readers.get(idx) else {
            return;
        };
        let mut e = slot.load(Ordering::Relaxed);
        loop {
            if entry_token(e) != me.raw() as u64 || entry_count(e) == 0 {
                // Scribbled over: not ours to repair.
                return;
            }
            let new = if entry_count(e) == 1 { 0 } else { e - 1 };
            match slot.compare_exchange(e, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => e = now,
            }
        }
        stop_point!("rwlock.read.left");
        pair_fence();
        let s = self.state.load(Ordering::SeqCst);
        if s & (CLAIMING | PARKED) == CLAIMING | PARKED && s != NOT_RECOVERABLE {
            self.last_reader_wake();
        }
    }

    /// Releases a read hold.
    ///
    /// # Safety
    ///
    /// The caller holds a read lock acquired through this `RawRwLock` by
    /// `me`, counted in entry `idx`.
    #[inline]
    pub(super) unsafe fn read_unlock(&self, idx: usize, me: Token) {
        self.leave(idx, me);
    }

    /// A reader left while a writer sleeps waiting for the readers: if none
    /// is left, clear `PARKED` and wake everyone.
    #[cold]
    pub(super) fn last_reader_wake(&self) {
        if self.readers_in() {
            // That reader wakes the writer when it leaves (or, if it is
            // dead, the writer's probe finds it).
            return;
        }
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

    pub(super) fn try_write(&self) -> Result<Acquired, RawLockError> {
        let me = self.me();
        let mine = with_writer(me);
        let mut s = self.state.load(Ordering::SeqCst);
        let claimed = loop {
            check(s)?;
            let w = writer(s);
            let new = if w == 0 {
                // Readers in, live: no need to claim (and hold up new
                // readers) at all.
                if self.readers_in() {
                    self.clear_dead_readers(me)?;
                    if self.readers_in() {
                        return Err(RawLockError::Busy);
                    }
                }
                (s & (PARKED | ORPHANED)) | mine
            } else {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => return Err(RawLockError::Busy),
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead => (s & PARKED) | without_dead_writer(s) | mine,
                }
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break new,
                Err(now) => s = now,
            }
        };
        pair_fence();
        if self.readers_in() {
            // A reader counted itself in meanwhile (it will back out), or
            // the dead writer's: look once more, then give the claim up.
            if let Err(e) = self.clear_dead_readers(me) {
                self.abandon_claim(me);
                return Err(e);
            }
            return self.withdraw_claim(me);
        }
        Ok(from_orphaned(claimed))
    }

    #[inline]
    pub(super) fn write(&self, deadline: Option<Instant>) -> Result<Acquired, RawLockError> {
        let me = self.me();
        if self
            .state
            .compare_exchange(0, with_writer(me), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            stop_point!("rwlock.write.claimed" => Err(RawLockError::Corrupted(crate::sync::model::STOPPED)));
            pair_fence();
            if !self.readers_in() {
                return Ok(Acquired::Clean);
            }
            return self.write_contended(me, deadline, true);
        }
        self.write_contended(me, deadline, false)
    }

    #[cold]
    pub(super) fn write_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
        // Whether our token in the word is our own claim (rather than
        // another thread of this process holding the lock).
        mut claimed: bool,
    ) -> Result<Acquired, RawLockError> {
        let mine = with_writer(me);
        // The other writer we wait for, and since when.
        let mut watched = None;
        // Since when our claim has waited for readers.
        let mut readers_watch: Option<Probe> = None;
        loop {
            self.spin(|s| {
                let free = s & WRITER == 0 || (claimed && s & WRITER == mine);
                !free && s & PARKED == 0
            });
            let e = self.epoch.load(Ordering::SeqCst);
            let s = self.state.load(Ordering::SeqCst);
            check(s)?;
            let w = writer(s);
            if w == 0 {
                let new = (s & (PARKED | ORPHANED)) | mine;
                claimed = self
                    .state
                    .compare_exchange(s, new, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok();
                readers_watch = None;
                continue;
            }
            if claimed && w == me.raw() {
                pair_fence();
                if !self.readers_in() {
                    if s & CLAIMING != 0
                        && self
                            .state
                            .compare_exchange(s, s & !CLAIMING, Ordering::SeqCst, Ordering::Relaxed)
                            .is_err()
                    {
                        continue;
                    }
                    return Ok(from_orphaned(s));
                }
                // Readers: say we wait for them (we have written nothing).
                if s & CLAIMING == 0 {
                    if self
                        .state
                        .compare_exchange(s, s | CLAIMING, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        stop_point!("rwlock.write.claiming" => Err(RawLockError::Corrupted(crate::sync::model::STOPPED)));
                    }
                    continue;
                }
                if readers_watch.is_none() && self.spin_readers() {
                    continue;
                }
                let probe = readers_watch.get_or_insert_with(Probe::start);
                if probe.due() {
                    match self.clear_dead_readers(me) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => {
                            self.abandon_claim(me);
                            return Err(e);
                        }
                    }
                }
                if expired(deadline) {
                    return self.withdraw_claim(me);
                }
                if s & PARKED == 0 {
                    if self
                        .state
                        .compare_exchange(s, s | PARKED, Ordering::SeqCst, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    pair_fence();
                    if !self.readers_in() {
                        continue;
                    }
                }
                futex_wait(&self.epoch, e, probe.slice(deadline));
                continue;
            }
            claimed = false;
            if Self::probe_due(&mut watched, w) {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => {}
                    Liveness::Invalid => return Err(corrupted_token()),
                    Liveness::Dead => {
                        // A dead claimant is replaced by our claim, a dead
                        // holder taken over (ORPHANED); either way we then
                        // wait for the readers like any claim.
                        let new = (s & PARKED) | without_dead_writer(s) | mine;
                        claimed = self
                            .state
                            .compare_exchange(s, new, Ordering::SeqCst, Ordering::Relaxed)
                            .is_ok();
                        readers_watch = None;
                        continue;
                    }
                }
            }
            if expired(deadline) {
                return Err(RawLockError::Busy);
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// Withdraws our claim after the deadline passed, letting the readers
    /// it blocked in — unless the last reader has just left, in which case
    /// the lock is ours.
    pub(super) fn withdraw_claim(&self, me: Token) -> Result<Acquired, RawLockError> {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            check(s)?;
            if writer(s) != me.raw() {
                return Err(RawLockError::Busy);
            }
            pair_fence();
            let (new, acquired) = if !self.readers_in() {
                (s & !CLAIMING, Some(from_orphaned(s)))
            } else {
                (s & !(WRITER | CLAIMING | PARKED), None)
            };
            match self
                .state
                .compare_exchange(s, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    if let Some(acquired) = acquired {
                        return Ok(acquired);
                    }
                    if s & PARKED != 0 {
                        self.wake_all();
                    }
                    return Err(RawLockError::Busy);
                }
                Err(now) => s = now,
            }
        }
    }

    /// Takes our claim out of the state whatever the readers do (before
    /// reporting an error found while claiming).
    pub(super) fn abandon_claim(&self, me: Token) {
        let mut s = self.state.load(Ordering::SeqCst);
        while s != NOT_RECOVERABLE && writer(s) == me.raw() {
            match self.state.compare_exchange(
                s,
                s & !(WRITER | CLAIMING | PARKED),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    if s & PARKED != 0 {
                        self.wake_all();
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }
}

// SAFETY: a write hold is our token in `state` with no reader counted in
// (the store-then-load pairs in the module docs): one writer, no reader.
unsafe impl RawLock for RawRwLock {
    const GUARD_NAME: &'static str = "RwLockWriteGuard";

    /// Releases the write lock.
    #[inline]
    unsafe fn unlock(&self) {
        if self.state.swap(0, Ordering::SeqCst) & PARKED != 0 {
            self.wake_all();
        }
    }

    /// Releases the write lock as not recoverable: every later lock fails.
    unsafe fn unlock_not_recoverable(&self) {
        self.state.swap(NOT_RECOVERABLE, Ordering::SeqCst);
        self.wake_all();
    }
}
