//! The reader table of an [`RwLock`](super::RwLock): one entry per
//! participant that holds read locks (the layout is in [`raw`](super::raw)).

use super::raw::{RawRwLock, SPINS};
use crate::primitive::{spin_loop, Ordering};
use crate::sync::error::RawLockError;
use crate::sync::owner::{self, Liveness, Token};

/// Reader entries per lock (fewer under loom, where every load of one is a
/// scheduling point).
pub(super) const ENTRIES: usize = if cfg!(shmkit_loom) { 4 } else { 32 };
/// An entry's count of read holds.
pub(super) const COUNT: u64 = 0xFFFF_FFFF;
/// A per-participant count no correct use reaches.
pub(super) const MAX_COUNT: u64 = COUNT - 1;

#[inline]
pub(super) fn entry_token(e: u64) -> u64 {
    e >> 32
}

#[inline]
pub(super) fn entry_count(e: u64) -> u64 {
    e & COUNT
}

#[inline]
pub(super) fn entry(t: Token, count: u64) -> u64 {
    ((t.raw() as u64) << 32) | count
}

/// Where a participant's entry is looked for first.
#[inline]
pub(super) fn home(t: Token) -> usize {
    (t.raw().wrapping_mul(0x9E37_79B9) >> 27) as usize % ENTRIES
}

pub(super) fn corrupted_reader() -> RawLockError {
    RawLockError::Corrupted("rwlock reader entry holds no valid participant")
}

impl RawRwLock {
    /// Whether some entry holds read locks (`SeqCst`: the load side of the
    /// pairs in the module docs). Every entry is loaded, with no branch
    /// between the loads, so the loads issue back to back and the cost is
    /// the same whatever the entries hold.
    #[inline]
    pub(super) fn readers_in(&self) -> bool {
        self.readers
            .iter()
            .fold(0, |any, e| any | e.load(Ordering::SeqCst))
            & COUNT
            != 0
    }

    /// Spins a little while some entry holds read locks; returns whether
    /// they all left.
    #[cfg_attr(shmkit_loom, allow(clippy::reversed_empty_ranges))] // no spins under loom
    pub(super) fn spin_readers(&self) -> bool {
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
    pub(super) fn clear_dead_readers(&self, me: Token) -> Result<bool, RawLockError> {
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

    /// The entry `me` should count itself in: its own, else a free one
    /// (looking from its home entry on); `None` if every entry holds other
    /// participants' reads.
    pub(super) fn find_entry(&self, me: Token) -> Option<(usize, u64)> {
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
    pub(super) fn counted(e: u64, me: Token) -> Result<u64, RawLockError> {
        if entry_token(e) != me.raw() as u64 {
            return Ok(entry(me, 1));
        }
        if entry_count(e) >= MAX_COUNT {
            return Err(RawLockError::Corrupted("rwlock reader count at its limit"));
        }
        Ok(e + 1)
    }

    /// Read holds recorded in the entries (racy; diagnostics).
    pub(super) fn readers(&self) -> u64 {
        self.readers
            .iter()
            .map(|e| entry_count(e.load(Ordering::Relaxed)))
            .sum()
    }
}
