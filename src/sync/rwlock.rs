//! [`RwLock<T>`]: a process-shared readers–writer lock that survives a
//! killed writer and killed readers.
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

use super::error::LockError;
use super::owner::{self, Liveness, Token};
use super::wait::{deadline_after, expired, probe_slice, Probe, SPIN_LIMIT};
use crate::blocks::ShmSafe;
use crate::primitive::{
    futex_wait, futex_wake_all, spin_loop, AtomicU32, AtomicU64, Ordering, UnsafeCell,
};
use bytemuck::Pod;
use std::convert::Infallible;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// Bits of the state no correct participant sets (bit 63 and bits 0..=28).
const RESERVED: u64 = (1 << 63) | ((1 << 29) - 1);
const CLAIMING: u64 = 1 << 29;
const PARKED: u64 = 1 << 30;
const ORPHANED: u64 = 1 << 31;
const WRITER_SHIFT: u32 = 32;
const WRITER: u64 = 0x7FFF_FFFF << WRITER_SHIFT;
const NOT_RECOVERABLE: u64 = u64::MAX;

/// Reader entries per lock (fewer under loom, where every load of one is a
/// scheduling point).
const ENTRIES: usize = if cfg!(shmkit_loom) { 4 } else { 32 };
/// An entry's count of read holds.
const COUNT: u64 = 0xFFFF_FFFF;
/// A per-participant count no correct use reaches.
const MAX_COUNT: u64 = COUNT - 1;

/// Reads of the state before parking (none under loom, where every read
/// is a scheduling point).
const SPINS: u32 = if cfg!(shmkit_loom) { 0 } else { SPIN_LIMIT };

#[inline]
fn writer(s: u64) -> u32 {
    ((s & WRITER) >> WRITER_SHIFT) as u32
}

#[inline]
fn with_writer(t: Token) -> u64 {
    (t.raw() as u64) << WRITER_SHIFT
}

#[inline]
fn entry_token(e: u64) -> u64 {
    e >> 32
}

#[inline]
fn entry_count(e: u64) -> u64 {
    e & COUNT
}

#[inline]
fn entry(t: Token, count: u64) -> u64 {
    ((t.raw() as u64) << 32) | count
}

/// Where a participant's entry is looked for first.
#[inline]
fn home(t: Token) -> usize {
    (t.raw().wrapping_mul(0x9E37_79B9) >> 27) as usize % ENTRIES
}

/// Orders the store-then-load pairs described in the module docs. The
/// `SeqCst` accesses on both sides already do that in the memory model
/// (and on x86-64); loom treats them as acquire/release, so its models
/// need the fence to see what the real build relies on.
#[inline(always)]
fn pair_fence() {
    #[cfg(shmkit_loom)]
    crate::primitive::fence(Ordering::SeqCst);
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

fn corrupted_reader() -> Fail {
    LockError::Corrupted("rwlock reader entry holds no valid participant")
}

/// The checks every path applies to a state before acting on it.
#[inline]
fn check(s: u64) -> Result<(), Fail> {
    if s == NOT_RECOVERABLE {
        return Err(LockError::NotRecoverable);
    }
    if s & RESERVED != 0 {
        return Err(LockError::Corrupted("rwlock state has a reserved bit set"));
    }
    let w = writer(s);
    if w > Token::MAX_RAW {
        return Err(corrupted_token());
    }
    if w == 0 && s & CLAIMING != 0 {
        return Err(LockError::Corrupted("rwlock claim without a writer"));
    }
    Ok(())
}

/// What the state becomes when a waiter finds its writer dead. A dead
/// writer that was waiting for readers (`CLAIMING`) had written nothing:
/// its claim just goes. Any other may have written: `ORPHANED`. `PARKED`
/// is cleared (the caller wakes).
fn without_dead_writer(s: u64) -> u64 {
    if s & CLAIMING != 0 {
        s & ORPHANED
    } else {
        ORPHANED
    }
}

/// A reader's attempt to count itself in.
enum Enter {
    /// Counted in entry `idx`, no writer: holding.
    In(usize, Acquired),
    /// A writer holds or claims the lock; the count was taken back.
    Blocked,
    /// Every entry holds another participant's reads.
    Full,
}

/// The lock word, futex and reader entries of an [`RwLock`], without data.
#[repr(C)]
#[derive(Debug)]
struct RawRwLock {
    state: AtomicU64,
    epoch: AtomicU32,
    _reserved: [AtomicU32; 13],
    readers: [AtomicU64; ENTRIES],
}

impl RawRwLock {
    #[cfg(not(shmkit_loom))]
    const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: [const { AtomicU32::new(0) }; 13],
            readers: [const { AtomicU64::new(0) }; ENTRIES],
        }
    }

    #[cfg(shmkit_loom)]
    fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            _reserved: std::array::from_fn(|_| AtomicU32::new(0)),
            readers: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The token this handle writes into the state word and its entry.
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
        self.epoch.fetch_add(1, Ordering::SeqCst);
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
    fn probe_due(watched: &mut Option<(u32, Probe)>, w: u32) -> bool {
        match watched {
            Some((h, probe)) if *h == w => probe.due(),
            _ => {
                *watched = Some((w, Probe::start()));
                cfg!(shmkit_loom)
            }
        }
    }

    /// Whether some entry holds read locks (`SeqCst`: the load side of the
    /// pairs in the module docs). Every entry is loaded, with no branch
    /// between the loads (about 10 ns for the 32 entries, uncontended).
    #[inline]
    fn readers_in(&self) -> bool {
        self.readers
            .iter()
            .fold(0, |any, e| any | e.load(Ordering::SeqCst))
            & COUNT
            != 0
    }

    /// Spins a little while some entry holds read locks; returns whether
    /// they all left.
    #[cfg_attr(shmkit_loom, allow(clippy::reversed_empty_ranges))] // no spins under loom
    fn spin_readers(&self) -> bool {
        for _ in 0..SPINS {
            spin_loop();
            if !self.readers_in() {
                return true;
            }
        }
        false
    }

    /// Probes the holder of every entry that holds read locks, except
    /// `me`'s, and frees the entries of dead ones (a CAS from the exact
    /// value seen). Returns whether it freed any.
    #[cold]
    fn clear_dead_readers(&self, me: Token) -> Result<bool, Fail> {
        let mut cleared = false;
        for slot in &self.readers {
            let e = slot.load(Ordering::Acquire);
            if entry_count(e) == 0 || entry_token(e) == me.raw() as u64 {
                continue;
            }
            let t = entry_token(e);
            if t == 0 || t > Token::MAX_RAW as u64 {
                return Err(corrupted_reader());
            }
            match owner::liveness(&self.state, Token::from_raw(t as u32)) {
                Liveness::Alive => {}
                Liveness::Invalid => return Err(corrupted_reader()),
                Liveness::Dead => {
                    cleared |= slot
                        .compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok();
                }
            }
        }
        Ok(cleared)
    }

    /// Removes the dead writer seen in `s` (a CAS from `s`), waking the
    /// sleepers if `s` had `PARKED`. Fails if the state moved on.
    fn drop_dead_writer(&self, s: u64) -> bool {
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

    /// The entry `me` should count itself in: its own, else a free one
    /// (looking from its home entry on); `None` if every entry holds other
    /// participants' reads.
    fn find_entry(&self, me: Token) -> Option<(usize, u64)> {
        let start = home(me);
        let mut free = None;
        for k in 0..ENTRIES {
            let i = (start + k) % ENTRIES;
            let e = self.readers[i].load(Ordering::Relaxed);
            if entry_token(e) == me.raw() as u64 {
                return Some((i, e));
            }
            if free.is_none() && entry_count(e) == 0 {
                free = Some((i, e));
            }
        }
        free
    }

    /// The entry value that counts one more read hold of `me` than `e`
    /// (an entry of `me`'s, or a free one).
    #[inline]
    fn counted(e: u64, me: Token) -> Result<u64, Fail> {
        if entry_token(e) != me.raw() as u64 {
            return Ok(entry(me, 1));
        }
        if entry_count(e) >= MAX_COUNT {
            return Err(LockError::Corrupted("rwlock reader count at its limit"));
        }
        Ok(e + 1)
    }

    /// R1 and R2: counts `me` in, then looks at the state.
    fn enter(&self, me: Token) -> Result<Enter, Fail> {
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
        stop_point!("rwlock.read.counted" => Err(LockError::WouldBlock));
        pair_fence();
        let s = self.state.load(Ordering::SeqCst);
        self.entered(idx, me, s)
    }

    /// R2's verdict on `s`, after R1 counted `me` in entry `idx`.
    #[inline]
    fn entered(&self, idx: usize, me: Token, s: u64) -> Result<Enter, Fail> {
        if let Err(e) = check(s) {
            self.leave(idx, me);
            return Err(e);
        }
        if writer(s) == 0 {
            return Ok(Enter::In(idx, Acquired::from_orphaned(s)));
        }
        self.leave(idx, me);
        Ok(Enter::Blocked)
    }

    /// The uncontended read: R1 on the home entry, R2 finding no writer.
    #[inline]
    fn read_fast(&self, me: Token) -> Result<Option<(Acquired, usize)>, Fail> {
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
        stop_point!("rwlock.read.counted" => Err(LockError::WouldBlock));
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

    fn try_read(&self) -> Result<(Acquired, usize, Token), Fail> {
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
                    Enter::Full => return Err(LockError::WouldBlock),
                }
            }
            match owner::liveness(&self.state, Token::from_raw(w)) {
                Liveness::Alive => return Err(LockError::WouldBlock),
                Liveness::Invalid => return Err(corrupted_token()),
                Liveness::Dead => {
                    self.drop_dead_writer(s);
                }
            }
        }
    }

    #[inline]
    fn read(&self, deadline: Option<Instant>) -> Result<(Acquired, usize, Token), Fail> {
        let me = self.me();
        if let Some((acquired, i)) = self.read_fast(me)? {
            return Ok((acquired, i, me));
        }
        self.read_contended(me, deadline)
    }

    #[cold]
    fn read_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
    ) -> Result<(Acquired, usize, Token), Fail> {
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
                            return Err(LockError::Timeout);
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
                return Err(LockError::Timeout);
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// U1 and U2: takes one read hold of `me` out of entry `idx`, and wakes
    /// a writer waiting for the readers if none is left.
    #[inline]
    fn leave(&self, idx: usize, me: Token) {
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
    unsafe fn read_unlock(&self, idx: usize, me: Token) {
        self.leave(idx, me);
    }

    /// A reader left while a writer sleeps waiting for the readers: if none
    /// is left, clear `PARKED` and wake everyone.
    #[cold]
    fn last_reader_wake(&self) {
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

    fn try_write(&self) -> Result<Acquired, Fail> {
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
                        return Err(LockError::WouldBlock);
                    }
                }
                (s & (PARKED | ORPHANED)) | mine
            } else {
                match owner::liveness(&self.state, Token::from_raw(w)) {
                    Liveness::Alive => return Err(LockError::WouldBlock),
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
            return match self.withdraw_claim(me) {
                Ok(acquired) => Ok(acquired),
                Err(LockError::Timeout) => Err(LockError::WouldBlock),
                Err(e) => Err(e),
            };
        }
        Ok(Acquired::from_orphaned(claimed))
    }

    #[inline]
    fn write(&self, deadline: Option<Instant>) -> Result<Acquired, Fail> {
        let me = self.me();
        if self
            .state
            .compare_exchange(0, with_writer(me), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            stop_point!("rwlock.write.claimed" => Err(LockError::WouldBlock));
            pair_fence();
            if !self.readers_in() {
                return Ok(Acquired::Clean);
            }
            return self.write_contended(me, deadline, true);
        }
        self.write_contended(me, deadline, false)
    }

    #[cold]
    fn write_contended(
        &self,
        me: Token,
        deadline: Option<Instant>,
        // Whether our token in the word is our own claim (rather than
        // another thread of this process holding the lock).
        mut claimed: bool,
    ) -> Result<Acquired, Fail> {
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
                    return Ok(Acquired::from_orphaned(s));
                }
                // Readers: say we wait for them (we have written nothing).
                if s & CLAIMING == 0 {
                    if self
                        .state
                        .compare_exchange(s, s | CLAIMING, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        stop_point!("rwlock.write.claiming" => Err(LockError::WouldBlock));
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
                return Err(LockError::Timeout);
            }
            self.park(e, s, &watched, deadline);
        }
    }

    /// Withdraws our claim after the deadline passed, letting the readers
    /// it blocked in — unless the last reader has just left, in which case
    /// the lock is ours.
    fn withdraw_claim(&self, me: Token) -> Result<Acquired, Fail> {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            check(s)?;
            if writer(s) != me.raw() {
                return Err(LockError::Timeout);
            }
            pair_fence();
            let (new, acquired) = if !self.readers_in() {
                (s & !CLAIMING, Some(Acquired::from_orphaned(s)))
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
                    return Err(LockError::Timeout);
                }
                Err(now) => s = now,
            }
        }
    }

    /// Takes our claim out of the state whatever the readers do (before
    /// reporting an error found while claiming).
    fn abandon_claim(&self, me: Token) {
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

    /// Releases the write lock.
    ///
    /// # Safety
    ///
    /// The caller holds the write lock acquired through this `RawRwLock`.
    #[inline]
    unsafe fn write_unlock(&self) {
        if self.state.swap(0, Ordering::SeqCst) & PARKED != 0 {
            self.wake_all();
        }
    }

    /// Releases the write lock as not recoverable: every later lock fails.
    ///
    /// # Safety
    ///
    /// The caller holds the write lock.
    unsafe fn write_unlock_not_recoverable(&self) {
        self.state.swap(NOT_RECOVERABLE, Ordering::SeqCst);
        self.wake_all();
    }

    /// Read holds recorded in the entries (racy; diagnostics).
    fn readers(&self) -> u64 {
        self.readers
            .iter()
            .map(|e| entry_count(e.load(Ordering::Relaxed)))
            .sum()
    }
}

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
/// returns [`LockError::WouldBlock`], the timed forms
/// [`LockError::Timeout`]), looking again every few milliseconds.
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
unsafe impl<T: Pod + Send + Sync> ShmSafe for RwLock<T> {}

/// What a `read` call returns.
type ReadResult<'a, T> = Result<RwLockReadGuard<'a, T>, LockError<RwLockReadGuard<'a, T>>>;
/// What a `write` call returns.
type WriteResult<'a, T> = Result<RwLockWriteGuard<'a, T>, LockError<RwLockWriteGuard<'a, T>>>;

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
    pub fn read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(None))
    }

    /// Takes a read lock if no writer holds or claims it (or the writer is
    /// dead) and the table of readers has room.
    pub fn try_read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw.try_read())
    }

    /// Takes a read lock, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(deadline_after(timeout)))
    }

    /// Takes a read lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn read_deadline(&self, deadline: Instant) -> ReadResult<'_, T> {
        self.read_guard(self.raw.read(Some(deadline)))
    }

    /// Takes the exclusive write lock, waiting as long as it takes (a dead
    /// writer or reader is detected within a few milliseconds).
    pub fn write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(None))
    }

    /// Takes the write lock if nobody holds it (or its holders are dead:
    /// this probes their liveness, a system call each).
    pub fn try_write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw.try_write())
    }

    /// Takes the write lock, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(deadline_after(timeout)))
    }

    /// Takes the write lock, waiting until `deadline` at the latest; a
    /// deadline in the past still takes a free lock.
    pub fn write_deadline(&self, deadline: Instant) -> WriteResult<'_, T> {
        self.write_guard(self.raw.write(Some(deadline)))
    }

    fn read_guard(&self, r: Result<(Acquired, usize, Token), Fail>) -> ReadResult<'_, T> {
        let guard = |entry, token| RwLockReadGuard {
            lock: self,
            entry,
            token,
        };
        match r {
            Ok((Acquired::Clean, entry, token)) => Ok(guard(entry, token)),
            Ok((Acquired::OwnerDied, entry, token)) => {
                Err(LockError::OwnerDied(guard(entry, token)))
            }
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
    use crate::sync::model;
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

    /// A reader thread that stops for good after `die_after` (a step name,
    /// or "held": holding its read lock), as a killed process would: it
    /// declares itself dead, then lets time pass for the sleepers (their
    /// probe slices end), which is all a dead process does.
    fn dying_reader(lock: Arc<RwLock<[u32; 2]>>, die_after: &'static str) {
        if die_after == "held" {
            let g = lock.read().unwrap();
            assert_eq!(g[0], g[1]);
            std::mem::forget(g);
        } else if die_after == "rwlock.read.left" {
            let g = lock.read().unwrap();
            model::stop_after(die_after);
            drop(g);
        } else {
            model::stop_after(die_after);
            let r = lock.read();
            if !model::stopped() {
                // It got in without passing the step: it holds the lock.
                std::mem::forget(r.unwrap());
            }
        }
        model::die();
        lock.raw.wake_all();
    }

    /// A writer gets the lock, with a clean guard, from a reader that died
    /// at each point of its protocol: holding the lock, between counting
    /// itself in and looking at the state, and between taking its count
    /// back and waking the writer.
    #[test]
    fn a_writer_gets_the_lock_from_a_reader_that_died() {
        for die_after in ["held", "rwlock.read.counted", "rwlock.read.left"] {
            loom::model(move || {
                let lock = Arc::new(RwLock::new([0u32; 2]));
                let dier = {
                    let lock = lock.clone();
                    loom::thread::spawn(move || dying_reader(lock, die_after))
                };
                {
                    let mut w = lock.write().expect("a clean write guard");
                    w[0] += 1;
                    w[1] += 1;
                }
                dier.join().unwrap();
                // Whatever the dead reader left is cleared for the next
                // writer too, and readers are unaffected.
                assert_eq!(*lock.try_write().expect("clean"), [1, 1]);
                assert_eq!(*lock.try_read().unwrap(), [1, 1]);
            });
        }
    }

    /// While a dead reader's hold is cleared, a live reader's is not: the
    /// writer waits for it (loom's cell tracking fails the model if the
    /// writer's update overlaps the live reader's read).
    #[test]
    fn a_writer_waits_for_a_live_reader_beside_a_dead_one() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new([0u32; 2]));
            let dier = {
                let lock = lock.clone();
                loom::thread::spawn(move || dying_reader(lock, "held"))
            };
            let reader = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    let g = lock.read().unwrap();
                    assert_eq!(g[0], g[1]);
                    g[0]
                })
            };
            {
                let mut w = lock.write().expect("a clean write guard");
                w[0] += 1;
                w[1] += 1;
            }
            assert!(reader.join().unwrap() <= 1);
            dier.join().unwrap();
        });
    }

    /// A writer that died waiting for readers (`CLAIMING`) had written
    /// nothing: its claim goes, readers and the next writer get clean
    /// guards.
    #[test]
    fn a_writer_that_died_waiting_for_readers_is_not_a_death() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(0u32));
            let r = lock.read().unwrap();
            let dier = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    model::stop_after("rwlock.write.claiming");
                    assert!(lock.write().is_err());
                    assert!(model::stopped());
                    model::die();
                    lock.raw.wake_all();
                })
            };
            dier.join().unwrap();
            drop(r);
            assert_eq!(*lock.read().expect("a clean read guard"), 0);
            *lock.write().expect("a clean write guard") += 1;
        });
    }

    /// A writer that died in the instants after its claim, before it
    /// looked at the readers, may have entered: a death, conservatively.
    #[test]
    fn a_writer_that_died_right_after_claiming_is_a_death() {
        loom::model(|| {
            let lock = Arc::new(RwLock::new(0u32));
            let dier = {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    model::stop_after("rwlock.write.claimed");
                    assert!(lock.write().is_err());
                    model::die();
                    lock.raw.wake_all();
                })
            };
            dier.join().unwrap();
            assert!(matches!(lock.read(), Err(LockError::OwnerDied(_))));
            let mut w = lock.write().unwrap_err().into_owner_died().unwrap();
            w.mark_consistent();
            drop(w);
            assert!(lock.read().is_ok());
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
