//! The history: the newest samples of a service, kept for late joiners
//! (see the [module documentation](super#history)).
//!
//! Sample `s` lives in slot `s % N` while it is among the newest `N`; its
//! block's holders word has [`HISTORY_BIT`] set for as long. The history
//! lock orders everything that touches those bits and slots: a send holds
//! it from numbering its sample to the end of its distribution (so a
//! joiner never meets a send half done), a joiner while it cleans its
//! entry, joins and takes its holds on the history's samples. A holder
//! that died leaves the lock to the next one with `OwnerDied`, who
//! [repairs](Service::repair_history) the slots and bits first.

use super::service::Service;
use super::wire::HISTORY_BIT;
use super::Descriptor;
use crate::pool::Corrupted;
use crate::primitive::Ordering;
use crate::sync::error::RawLockError;
use crate::sync::guard::{Acquired, RawLock};

/// This process's hold on a service's history lock; unlocks on drop.
pub(crate) struct HistoryGuard<'a> {
    svc: &'a Service,
}

impl Drop for HistoryGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only for a hold `lock_history` took
        // through this word, and is dropped once.
        unsafe { self.svc.header.history_lock.unlock() };
    }
}

impl Service {
    /// Takes the history lock, if the service keeps a history (`None`
    /// otherwise), waiting as long as a live holder keeps it (a send's
    /// distribution or a join: bounded work). After a holder that died,
    /// repairs the history before returning.
    pub(crate) fn lock_history(&self) -> Result<Option<HistoryGuard<'_>>, Corrupted> {
        if self.history.is_empty() {
            return Ok(None);
        }
        let acquired = match self.header.history_lock.lock(None) {
            Ok(a) => a,
            Err(RawLockError::Corrupted(w)) => return Err(Corrupted(w)),
            Err(RawLockError::NotRecoverable | RawLockError::Busy) => {
                return Err(Corrupted("the history lock word"))
            }
        };
        let guard = HistoryGuard { svc: self };
        if acquired == Acquired::OwnerDied {
            self.repair_history(&guard)?;
        }
        Ok(Some(guard))
    }

    /// Whether the history holds the sample `d` names: its block is
    /// shared under `d`'s generation with [`HISTORY_BIT`] set (stable
    /// while the caller holds the lock: only its holders change the bit).
    fn history_holds(&self, d: &Descriptor) -> Result<bool, Corrupted> {
        self.pool.shared_with(d.block(), HISTORY_BIT)
    }

    /// Files the sample `d`, whose block the caller (the publisher,
    /// holding `lock`) shared with [`HISTORY_BIT`] set, in its slot,
    /// pushing out (and releasing) the one that was there. A slot a peer
    /// scribbled over is overwritten, and the history repaired: the
    /// slots are a record of the history's holds, checked wherever read,
    /// so nothing else depends on them.
    pub(crate) fn file_in_history(
        &self,
        lock: &HistoryGuard<'_>,
        d: &Descriptor,
    ) -> Result<(), Corrupted> {
        let slot = &self.history[(d.seq % self.history.len() as u64) as usize];
        let old = slot.read();
        if let Ok(Some(old)) = old {
            if self.history_holds(&old)? {
                self.pool.release_shared(old.block(), HISTORY_BIT);
            }
        }
        slot.write(d);
        if old.is_err() {
            self.repair_history(lock)?;
        }
        Ok(())
    }

    /// For a joiner holding `_lock` and entry `entry`, which it has
    /// cleaned since taking the lock (so no block carries the entry's
    /// bit, and no send is under way): sets the entry's bit on every
    /// sample the history holds that is numbered below `join_seq`, and
    /// returns their descriptors, oldest first. Each such bit is one hold,
    /// released by the sample made of it (or by the entry's cleaning).
    pub(crate) fn take_history(
        &self,
        _lock: &HistoryGuard<'_>,
        entry: usize,
        join_seq: u64,
    ) -> Result<Vec<Descriptor>, Corrupted> {
        let bit = 1u64 << entry;
        let n = self.history.len() as u64;
        let mut taken = Vec::with_capacity(self.history.len());
        for slot in self.history {
            // An empty slot, or one a peer scribbled over: nothing to take.
            let Ok(Some(d)) = slot.read() else {
                continue;
            };
            // Only the newest `n` below `join_seq` belong (a slot not yet
            // refilled since a dead publisher skipped its number holds an
            // older one).
            let newest = d.seq < join_seq && join_seq - d.seq <= n;
            if !newest || !self.history_holds(&d)? {
                continue;
            }
            let Some(h) = self.pool.holders(d.block()) else {
                continue;
            };
            // One hold per block: a bit already set is a second slot
            // naming the block (a peer's scribble), not taken twice.
            if h.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
                taken.push(d);
            }
        }
        taken.sort_unstable_by_key(|d| d.seq);
        Ok(taken)
    }

    /// Makes the slots and the history's bits agree again, for the taker
    /// of a lock whose holder died (mid-send, or mid-join): empties slots
    /// that name no sample the history holds, and releases the history's
    /// bit on shared blocks no slot names (a sample numbered and shared,
    /// never filed).
    fn repair_history(&self, _lock: &HistoryGuard<'_>) -> Result<(), Corrupted> {
        let mut named = Vec::with_capacity(self.history.len());
        for slot in self.history {
            match slot.read() {
                Ok(Some(d)) if self.history_holds(&d)? => named.push(d.block()),
                Ok(None) => {}
                // Not a sample the history holds (or garbage): empty.
                _ => slot.clear(),
            }
        }
        for shared in self.pool.shared_blocks() {
            let (b, mask) = shared?;
            if mask & HISTORY_BIT != 0 && !named.contains(&b) {
                self.pool.release_shared(b, HISTORY_BIT);
            }
        }
        Ok(())
    }
}
