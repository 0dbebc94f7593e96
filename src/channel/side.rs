//! [`Side`]: who is attached to one end of a channel, so the other end can
//! tell "nobody sent yet" from "everybody left or died", and a table a
//! peer scribbled on from either.
//!
//! ```text
//! offset  field      meaning
//!      0  attached   non-zero once any peer ever attached to this side
//!      4  count      entries held, plus attaches and detaches under way
//!                    (and those a killed process left half done): never
//!                    below the entries held, never above COUNT_LIMIT
//!      8  tokens[i]  participant token of the i-th attached handle; 0 =
//!                    free (32 entries, to offset 136)
//!    136  epoch      bumped by every attach to a free entry, between
//!                    raising `count` and taking the entry
//! ```
//!
//! (In a channel header the senders' table starts at offset 256 and the
//! receivers' at 512; see `blocking.rs`.)
//!
//! A handle attaches to a free entry in three steps: it raises `count`
//! (refused past [`COUNT_LIMIT`]), bumps `epoch`, then CASes the entry from
//! 0 to its process's token (giving the count back if another handle took
//! the entry first). It takes over an entry holding a dead process's token
//! with one CAS and leaves `count` alone: the dead handle never detached,
//! so its share of the count passes to the new one. A handle detaches by
//! storing 0 in its entry, then lowering `count`. So the count goes up
//! before an entry is taken and down after it is freed, and a process
//! killed between two steps leaves it too high, never too low.
//!
//! The other side asks [`Side::state`]: `Open` while an entry holds a live
//! token, `Idle` if nobody ever attached, `Closed` once every entry is free
//! or dead, `Corrupted` if the table contradicts itself. Liveness costs a
//! system call per entry, so it is only asked on slow paths; the hot paths
//! load `count` alone ([`Side::all_detached`]) and ask `state` when it
//! reads 0 (or a count past the limit), so a count scribbled to 0 is never
//! taken for a clean end.
//!
//! # The cross-check
//!
//! `state` reads `epoch`, `count`, every entry, then `epoch` again. If the
//! epoch did not move, the count it read is at least the number of held
//! entries it read, in any healthy table. Take an entry seen held: the
//! attach that first took it from free raised the count before. Either
//! that raise is in the count read, and so is the entry's share (were it
//! lowered again, the entry would have been freed before the count load,
//! and read as free); or it is not, and then the first epoch load did not
//! see that attach's bump either (a load that sees the bump sees the raise
//! before it), while the second did (it follows the entry load, which saw
//! the CAS that follows the bump): the epoch moved. (Each step is a
//! release, each load an acquire, which is all this needs; the loom models
//! below check it.) So a look with a steady epoch whose count is below its
//! held entries is `Corrupted`, and so is any count past [`COUNT_LIMIT`],
//! which reservations never pass. A look whose epoch
//! moved (handles attaching during it) is taken again, up to
//! [`CHECK_ROUNDS`] times, and otherwise judged on liveness alone. Detaches
//! do not bump the epoch: one during a look can only leave the count read
//! above the entries read. A count above the held entries (a killed
//! process's half-done step, or a scribble) is left to liveness: `Closed`
//! once no entry is live, as for a dead process's entries.

use crate::blocks::ShmSafe;
use crate::primitive::{AtomicU32, Ordering};
use crate::sync::owner::{self, Liveness, Token};

/// Handles that may attach to one side at once.
pub(crate) const MAX_HANDLES: usize = 32;

/// The most `count` ever is: entries held plus attaches and detaches under
/// way, or left half done by killed processes, which is far less than
/// this. An attach that would raise the count past it is refused, so a
/// larger count is a scribble.
pub(crate) const COUNT_LIMIT: u32 = 1 << 16;

/// Looks [`Side::state`] takes at most for one with a steady epoch.
const CHECK_ROUNDS: usize = 4;

/// What one side of a channel looks like from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SideState {
    /// Nobody ever attached.
    Idle,
    /// At least one attached handle whose process is alive.
    Open,
    /// Everybody who attached has detached or died.
    Closed,
    /// The table contradicts itself: a peer wrote garbage into it.
    Corrupted(&'static str),
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
    epoch: AtomicU32,
}

// SAFETY: repr(C), atomics only; garbage tokens read as dead or invalid,
// which at worst reports the side closed, and garbage counts as corrupted.
unsafe impl ShmSafe for Side {}

#[cfg(not(shmkit_loom))]
const _: () = {
    assert!(core::mem::offset_of!(Side, attached) == 0);
    assert!(core::mem::offset_of!(Side, count) == 4);
    assert!(core::mem::offset_of!(Side, tokens) == 8);
    assert!(core::mem::offset_of!(Side, epoch) == 136);
};

/// One look at a table: what [`Side::state`] judges.
struct Look {
    count: u32,
    tokens: [u32; MAX_HANDLES],
    /// Whether no attach to a free entry began during the look.
    steady: bool,
}

impl Side {
    /// Attaches this process, at most `limit` handles at a time; returns the
    /// entry to detach later, or `None` if `limit` live handles are attached
    /// (or the count is at [`COUNT_LIMIT`]).
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
        for (i, entry) in self.tokens.iter().enumerate() {
            let t = entry.load(Ordering::Acquire);
            if held_by_live(entry, t) {
                continue;
            }
            if t == 0 {
                // A free entry: raise the count, announce the attach, then
                // take the entry (the order the cross-check relies on).
                if !self.reserve() {
                    continue;
                }
                self.epoch.fetch_add(1, Ordering::AcqRel);
                if entry
                    .compare_exchange(0, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    self.count.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
            } else if entry
                .compare_exchange(t, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // A dead process's entry, taken by someone else first.
                continue;
            }
            // An entry taken over from a dead process keeps its share of
            // the count (the dead handle never detached): ours now.
            self.attached.store(1, Ordering::Release);
            return Ok(Some(Entry {
                index: i,
                inherited: t != 0,
            }));
        }
        Ok(None)
    }

    /// Raises the count for an attach to a free entry, unless it is at
    /// [`COUNT_LIMIT`] (or past it: a scribble); whether it did.
    fn reserve(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        while c < COUNT_LIMIT {
            match self
                .count
                .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Whether entry `i` is held by no live process: free, or holding a
    /// dead process's token (a system call). `false` for an `i` past the
    /// table, whose holder nobody can know.
    pub(crate) fn holder_gone(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|e| !live(e))
    }

    /// Detaches the handle holding entry `i`: frees the entry, then lowers
    /// the count.
    pub(crate) fn detach(&self, i: usize) {
        if let Some(e) = self.tokens.get(i) {
            e.store(0, Ordering::Release);
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A hint, one load on the hot path: whether everyone who attached may
    /// have detached cleanly (the count reads 0 and somebody attached), or
    /// the count is one no healthy table has. Never acted on alone: the
    /// caller confirms with [`state`] (cold), which cross-checks the
    /// entries. A dead process's handles are only seen by `state`.
    ///
    /// [`state`]: Side::state
    #[inline]
    pub(crate) fn all_detached(&self) -> bool {
        let c = self.count.load(Ordering::Acquire);
        // `c == 0 || c > COUNT_LIMIT` in one comparison.
        c.wrapping_sub(1) >= COUNT_LIMIT && (c != 0 || self.attached.load(Ordering::Acquire) != 0)
    }

    /// The side's state, checking the table against itself and the
    /// liveness of every attached process (see the module documentation).
    pub(crate) fn state(&self) -> SideState {
        let look = self.look();
        if look.count > COUNT_LIMIT {
            return SideState::Corrupted("attachment count past its limit");
        }
        let held = look.tokens.iter().filter(|&&t| t != 0).count();
        if look.steady && (look.count as usize) < held {
            return SideState::Corrupted("attachment count below the entries held");
        }
        if self.attached.load(Ordering::Acquire) == 0 {
            return SideState::Idle;
        }
        if self.tokens.iter().any(live) {
            SideState::Open
        } else {
            SideState::Closed
        }
    }

    /// The count and every entry, taken again while attaches to free
    /// entries begin during the look (at most [`CHECK_ROUNDS`] times).
    fn look(&self) -> Look {
        let mut round = 0;
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            let count = self.count.load(Ordering::Acquire);
            let tokens = core::array::from_fn(|i| self.tokens[i].load(Ordering::Acquire));
            let steady = self.epoch.load(Ordering::Acquire) == epoch;
            round += 1;
            if steady || round == CHECK_ROUNDS {
                return Look {
                    count,
                    tokens,
                    steady,
                };
            }
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

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    /// A token no process has: 31 bits at most make a token.
    const GARBAGE: u32 = 0x8000_0001;

    fn attached(side: &Side) -> usize {
        side.attach(MAX_HANDLES).unwrap().unwrap()
    }

    #[test]
    fn healthy_tables() {
        let side = Side::default();
        assert_eq!(side.state(), SideState::Idle);
        assert!(!side.all_detached());
        let a = attached(&side);
        let b = attached(&side);
        assert_eq!((a, b), (0, 1));
        assert_eq!(side.count.load(Ordering::Relaxed), 2);
        assert_eq!(side.state(), SideState::Open);
        side.detach(a);
        assert!(!side.all_detached());
        assert_eq!(side.state(), SideState::Open);
        side.detach(b);
        assert!(side.all_detached());
        assert_eq!(side.state(), SideState::Closed);
        // A count left high by a process killed mid-step: liveness decides.
        side.count.store(3, Ordering::Relaxed);
        assert!(!side.all_detached());
        assert_eq!(side.state(), SideState::Closed);
    }

    #[test]
    fn a_dead_entry_keeps_its_share_and_passes_it_on() {
        let side = Side::default();
        let a = attached(&side);
        // Entry `a` as a killed process would leave it.
        side.tokens[a].store(GARBAGE, Ordering::Relaxed);
        assert_eq!(side.state(), SideState::Closed);
        let e = side.attach_entry(MAX_HANDLES).unwrap().unwrap();
        assert_eq!((e.index, e.inherited), (a, true));
        assert_eq!(side.count.load(Ordering::Relaxed), 1);
        assert_eq!(side.state(), SideState::Open);
        side.detach(e.index);
        assert!(side.all_detached());
        assert_eq!(side.state(), SideState::Closed);
    }

    #[test]
    fn scribbled_counts_are_corrupted() {
        let side = Side::default();
        let a = attached(&side);
        for bad in [0, COUNT_LIMIT + 1, u32::MAX] {
            side.count.store(bad, Ordering::Relaxed);
            assert!(side.all_detached(), "{bad}: the hint asks for a check");
            assert!(
                matches!(side.state(), SideState::Corrupted(_)),
                "{bad}: {:?}",
                side.state()
            );
        }
        // Below the entries held, not 0: the hint does not fire, `state`
        // still says so.
        side.count.store(1, Ordering::Relaxed);
        let _b = attached(&side);
        side.count.store(1, Ordering::Relaxed);
        assert!(!side.all_detached());
        assert!(matches!(side.state(), SideState::Corrupted(_)));
        // A garbage entry counts as held.
        side.detach(a);
        side.count.store(1, Ordering::Relaxed);
        assert_eq!(side.state(), SideState::Open);
        side.tokens[7].store(GARBAGE, Ordering::Relaxed);
        assert!(matches!(side.state(), SideState::Corrupted(_)));
        // Put right: open again.
        side.count.store(2, Ordering::Relaxed);
        assert_eq!(side.state(), SideState::Open);
        // At the limit, attaches to free entries are refused (past it,
        // the table is corrupted anyway); a dead entry is still taken over.
        side.count.store(COUNT_LIMIT, Ordering::Relaxed);
        let e = side.attach_entry(MAX_HANDLES).unwrap().unwrap();
        assert_eq!((e.index, e.inherited), (7, true));
        assert_eq!(side.attach(MAX_HANDLES).unwrap(), None);
        assert_eq!(side.count.load(Ordering::Relaxed), COUNT_LIMIT);
        // Nobody attached yet but the count scribbled: corrupted, not idle.
        let idle = Side::default();
        idle.count.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(idle.state(), SideState::Corrupted(_)));
    }

    /// Threads attach and detach as fast as they can (entries taken and
    /// freed, the count through 0 again and again) while another checks
    /// the table: never `Corrupted`.
    #[test]
    fn attaches_and_detaches_racing_the_check_are_never_corrupted() {
        const ROUNDS: usize = 100_000;
        let side = Side::default();
        let done = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let e = attached(&side);
                        side.detach(e);
                    }
                    done.fetch_add(1, Ordering::Release);
                });
            }
            let mut looks = 0u64;
            while done.load(Ordering::Acquire) < 2 || looks == 0 {
                let s = side.state();
                assert!(
                    !matches!(s, SideState::Corrupted(_)),
                    "{s:?} after {looks} looks"
                );
                looks += 1;
            }
        });
        assert_eq!(side.count.load(Ordering::Relaxed), 0);
        assert_eq!(side.state(), SideState::Closed);
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    //! The cross-check against attaches and detaches on another thread
    //! (under loom every token is alive, so `state` says `Open` for any
    //! held entry): a healthy table is never `Corrupted`, a side with a
    //! handle attached throughout is never `Closed`, and a count scribbled
    //! to 0 under a held entry is never taken for a clean end, whatever the
    //! interleaving. The second attach on the churning thread takes the
    //! same entry with the same token as its first: an ABA that reading
    //! the count and entries again could not tell from a steady table.
    //! Loom fails the first two models if the look ignores the epoch, or if
    //! an attach bumps it before raising the count.
    use super::*;
    use loom::sync::Arc;

    /// Attaches and detaches twice (the same entry both times, if nobody
    /// else takes it between).
    fn churn(side: &Side) {
        for _ in 0..2 {
            let e = side.attach(MAX_HANDLES).unwrap().unwrap();
            side.detach(e);
        }
    }

    fn spawn_churn(side: &Arc<Side>) -> loom::thread::JoinHandle<()> {
        let side = side.clone();
        loom::thread::spawn(move || churn(&side))
    }

    #[test]
    fn loom_a_check_racing_attaches_and_detaches_is_never_corrupted() {
        loom::model(|| {
            let side = Arc::new(Side::default());
            let t = spawn_churn(&side);
            let s = side.state();
            assert!(!matches!(s, SideState::Corrupted(_)), "{s:?}");
            t.join().unwrap();
            assert_eq!(side.state(), SideState::Closed);
        });
    }

    #[test]
    fn loom_a_side_with_a_handle_attached_is_open_whatever_else_attaches() {
        loom::model(|| {
            let side = Arc::new(Side::default());
            let mine = side.attach(MAX_HANDLES).unwrap().unwrap();
            let t = spawn_churn(&side);
            assert_eq!(side.state(), SideState::Open);
            t.join().unwrap();
            assert_eq!(side.state(), SideState::Open);
            side.detach(mine);
            assert_eq!(side.state(), SideState::Closed);
        });
    }

    #[test]
    fn loom_a_count_scribbled_to_zero_is_never_a_clean_end() {
        loom::model(|| {
            let side = Arc::new(Side::default());
            side.attach(MAX_HANDLES).unwrap().unwrap();
            side.count.store(0, Ordering::Relaxed);
            let t = spawn_churn(&side);
            let s = side.state();
            assert!(
                matches!(s, SideState::Open | SideState::Corrupted(_)),
                "{s:?}"
            );
            t.join().unwrap();
            assert!(matches!(side.state(), SideState::Corrupted(_)));
        });
    }
}
