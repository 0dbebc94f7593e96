//! [`Side`]: who is attached to one end of a channel, so the other end can
//! tell "nobody sent yet" from "everybody left or died".
//!
//! ```text
//! field      meaning
//! attached   non-zero once any peer ever attached to this side
//! count      entries holding a token: handles attached and not yet
//!            detached (a dead process's handles stay counted until
//!            another handle takes their entry over; only `state` sees
//!            through them)
//! tokens[i]  participant token of the i-th attached handle; 0 = free
//! ```
//!
//! A handle attaches by CAS-ing a free (or dead) entry to its process's
//! token and detaches by storing 0 there. The other side asks
//! [`Side::state`]: `Open` while an entry holds a live token, `Idle` if
//! nobody ever attached, `Closed` once every entry is free or dead. Liveness
//! costs a system call per entry, so it is only asked on slow paths.

use crate::primitive::{AtomicU32, Ordering};
use crate::region::ShmSafe;
use crate::sync::owner::{self, Liveness, Token};

/// Handles that may attach to one side at once.
pub(crate) const MAX_HANDLES: usize = 32;

/// What one side of a channel looks like from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SideState {
    /// Nobody ever attached.
    Idle,
    /// At least one attached handle whose process is alive.
    Open,
    /// Everybody who attached has detached or died.
    Closed,
}

/// An entry [`Side::attach_entry`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its index in the table.
    pub(crate) index: usize,
    /// Whether it was taken over from a dead process rather than free.
    pub(crate) inherited: bool,
}

/// One side's attachment table; lives in shared memory, zero = idle.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Side {
    attached: AtomicU32,
    count: AtomicU32,
    tokens: [AtomicU32; MAX_HANDLES],
}

// SAFETY: repr(C), atomics only; garbage tokens read as dead or invalid,
// which at worst reports the side closed.
unsafe impl ShmSafe for Side {}

impl Side {
    /// Attaches this process, at most `limit` handles at a time; returns the
    /// entry to detach later, or `None` if `limit` live handles are attached.
    pub(crate) fn attach(&self, limit: usize) -> crate::Result<Option<usize>> {
        Ok(self.attach_entry(limit)?.map(|e| e.index))
    }

    /// [`attach`](Self::attach), also saying whether the entry was taken
    /// over from a dead process (which may have left claims under it).
    pub(crate) fn attach_entry(&self, limit: usize) -> crate::Result<Option<Entry>> {
        let me = owner::current(self);
        let limit = limit.min(MAX_HANDLES);
        let live = self.tokens.iter().filter(|e| self::live(e)).count();
        if live >= limit {
            return Ok(None);
        }
        for i in 0..MAX_HANDLES {
            let t = self.tokens[i].load(Ordering::Acquire);
            let free = !held_by_live(&self.tokens[i], t);
            if free
                && self.tokens[i]
                    .compare_exchange(t, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // An entry taken over from a dead process is still counted
                // (it never detached): this handle inherits that count.
                if t == 0 {
                    self.count.fetch_add(1, Ordering::AcqRel);
                }
                self.attached.store(1, Ordering::Release);
                return Ok(Some(Entry {
                    index: i,
                    inherited: t != 0,
                }));
            }
        }
        Ok(None)
    }

    /// Whether entry `i` is held by no live process: free, or holding a
    /// dead process's token (a system call). `false` for an `i` past the
    /// table, whose holder nobody can know.
    pub(crate) fn holder_gone(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|e| !live(e))
    }

    /// Detaches the handle holding entry `i`.
    pub(crate) fn detach(&self, i: usize) {
        if let Some(e) = self.tokens.get(i) {
            e.store(0, Ordering::Release);
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether everyone who attached has detached cleanly (one load, no
    /// system call; a dead process's handles are only seen by [`state`]).
    ///
    /// [`state`]: Side::state
    #[inline]
    pub(crate) fn all_detached(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0 && self.attached.load(Ordering::Acquire) != 0
    }

    /// The side's state, checking the liveness of every attached process.
    pub(crate) fn state(&self) -> SideState {
        if self.attached.load(Ordering::Acquire) == 0 {
            return SideState::Idle;
        }
        let open = self.tokens.iter().any(live);
        if open {
            SideState::Open
        } else {
            SideState::Closed
        }
    }
}

/// Whether `entry` is held by a live process.
fn live(entry: &AtomicU32) -> bool {
    held_by_live(entry, entry.load(Ordering::Acquire))
}

/// Whether `entry`, holding token `t`, belongs to a live handle (0 is a
/// free entry; a system call otherwise).
fn held_by_live(entry: &AtomicU32, t: u32) -> bool {
    t != 0 && owner::liveness(entry, Token::from_raw(t)) == Liveness::Alive
}
