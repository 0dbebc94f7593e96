//! The owner table: who holds owned permits, and how a recoverer gives
//! back a dead owner's (the protocol is in the [module docs](super)).

use super::acquire::Taken;
use super::{Semaphore, BAD_ENTRY, BAD_OWNER, COUNT_ABOVE_BOUND, HELD_AT_LIMIT, PERMITS, SLEEPERS};
use crate::primitive::{spin_loop, Ordering};
use crate::sync::error::{Corrupted, Fail};
use crate::sync::owner::{self, Liveness, Token};

/// Owner entries per semaphore (fewer under loom, where every load of one
/// is a scheduling point).
pub(super) const ENTRIES: usize = if cfg!(shmkit_loom) { 4 } else { 32 };
/// An entry's owned permits.
pub(super) const HELD: u64 = (1 << 30) - 1;
/// An entry's op in flight.
pub(super) const OP: u64 = 3 << 30;
pub(super) const OP_NONE: u64 = 0;
pub(super) const OP_ACQUIRE: u64 = 1 << 30;
pub(super) const OP_RELEASE: u64 = 2 << 30;
pub(super) const OP_RETURN: u64 = 3 << 30;
pub(super) const PARITY: u64 = 1 << 32;
pub(super) const TOKEN_SHIFT: u32 = 33;

#[inline]
pub(super) fn e_token(e: u64) -> u64 {
    e >> TOKEN_SHIFT
}

#[inline]
pub(super) fn e_held(e: u64) -> u64 {
    e & HELD
}

#[inline]
pub(super) fn e_parity(e: u64) -> bool {
    e & PARITY != 0
}

#[inline]
pub(super) fn entry(token: u64, held: u64, op: u64, parity: bool) -> u64 {
    (token << TOKEN_SHIFT) | if parity { PARITY } else { 0 } | op | held
}

/// The state's parity bit of entry `i`.
#[inline]
pub(super) fn bit(i: usize) -> u64 {
    1 << (32 + i)
}

#[inline]
pub(super) fn s_parity(s: u64, i: usize) -> bool {
    s & bit(i) != 0
}

/// The permits the holder of entry `i`, seen as `e`, holds while the
/// state is `s` (the table in the module docs): `None` for a pair no
/// participant writes.
pub(super) fn holds(e: u64, s: u64, i: usize) -> Option<u64> {
    let h = e_held(e);
    match (e & OP, s_parity(s, i) == e_parity(e)) {
        (_, true) => Some(h),
        (OP_ACQUIRE, false) => Some(h + 1),
        (OP_RELEASE, false) => h.checked_sub(1),
        (OP_RETURN, false) => Some(0),
        _ => None,
    }
}

/// Where a participant's entry is looked for first.
#[inline]
pub(super) fn home(t: Token) -> usize {
    (t.raw().wrapping_mul(0x9E37_79B9) >> 27) as usize % ENTRIES
}

impl Semaphore {
    /// A0-A2: tries to take an owned permit for `me` from the state last
    /// seen as `*s`.
    pub(super) fn try_take_owned(
        &self,
        me: Token,
        s: &mut u64,
        max: u32,
        keep: u64,
    ) -> Result<Taken, Fail> {
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
                return Err(Fail::Corrupted(HELD_AT_LIMIT));
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
            stop_point!("semaphore.acquire.intent" => Err(Fail::Corrupted(crate::sync::model::STOPPED)));
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
            stop_point!("semaphore.acquire.taken" => Err(Fail::Corrupted(crate::sync::model::STOPPED)));
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
    pub(super) fn find_entry(&self, me: Token) -> Result<Option<(usize, u64)>, Fail> {
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

    /// Whether any owner entry is in use (a quick look, no system call).
    pub(super) fn any_owner(&self) -> bool {
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
    pub(super) fn update_mine(&self, i: usize, me: Token, f: impl Fn(u64) -> u64) -> Option<u64> {
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
    pub(super) fn release_owned(&self, i: usize, me: Token) {
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
                self.corrupted::<Corrupted>(COUNT_ABOVE_BOUND);
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
            self.corrupted::<Corrupted>(BAD_ENTRY);
        }
        if woke {
            self.wake(1);
        }
    }

    /// Turns an owned permit of `me`'s recorded in entry `i` into a plain
    /// one: the record goes, the permit stays taken.
    pub(super) fn forget_owned(&self, i: usize, me: Token) {
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
    pub(super) fn recover(&self, me: Token) -> Result<bool, Fail> {
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
    pub(super) fn recover_entry(&self, i: usize, e: u64, me: Token) -> Result<bool, Fail> {
        let slot = &self.owners[i];
        let s = self.state.load(Ordering::Acquire);
        if slot.load(Ordering::Acquire) != e {
            // Someone else is at it: not a consistent picture.
            return Ok(false);
        }
        let sp = s_parity(s, i);
        if e & OP == OP_RETURN && sp != e_parity(e) {
            // R2 done: only the entry is left to free.
            let free = entry(0, 0, OP_NONE, sp);
            return Ok(slot
                .compare_exchange(e, free, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok());
        }
        let Some(owed) = holds(e, s, i) else {
            return Err(self.corrupted(BAD_ENTRY));
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
        stop_point!("semaphore.recover.adopted" => Err(Fail::Corrupted(crate::sync::model::STOPPED)));
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
        stop_point!("semaphore.recover.returned" => Err(Fail::Corrupted(crate::sync::model::STOPPED)));
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
