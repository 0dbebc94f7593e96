//! Slots a participant holds: finding the one an operation waits on, and
//! handing it on when its holder is known to be dead.

use super::seq::{self, Participant, State, Word};
use super::{help, reload, Find, MpmcRing, Role, RETRY_LIMIT};
use crate::primitive::Ordering;
use bytemuck::Pod;

impl<T: Pod + Send> MpmcRing<'_, T> {
    /// The slot that keeps [`try_push`](Self::try_push) from proceeding
    /// because a participant holds it: the previous lap's slot, still
    /// `Claimed` by its producer or `Taking` by its consumer. `None` if a
    /// push would not wait, waits only for consumers to come, or the ring
    /// is corrupted (the operation reports that itself). Moves `enqueue`
    /// past positions already claimed, as a push would.
    ///
    /// A holder that is alive will hand the slot on by itself; one known
    /// to be dead can be [`repair`](Self::repair)ed.
    pub fn stalled_push(&self) -> Option<Stall> {
        self.stalled(Role::Producer)
    }

    /// The slot that keeps [`try_pop`](Self::try_pop) from proceeding
    /// because a participant holds it: `Claimed` by the producer of the
    /// next position, which has not published it (values may wait behind
    /// it), or still `Taking` by the previous lap's consumer (which keeps
    /// producers from filling it). `None` if a pop would not wait, waits
    /// only for producers to come, or the ring is corrupted. Moves
    /// `dequeue` past positions already claimed, as a pop would.
    pub fn stalled_pop(&self) -> Option<Stall> {
        self.stalled(Role::Consumer)
    }

    fn stalled(&self, role: Role) -> Option<Stall> {
        let counter = self.counter(role);
        let mut pos = counter.load(Ordering::Acquire);
        for _ in 0..RETRY_LIMIT {
            let slot = (pos & (self.slots.len() as u64 - 1)) as usize;
            let word = self.slots[slot].seq.load(Ordering::Acquire);
            match self.classify(role, pos, word) {
                Find::Turn | Find::Bad => return None,
                Find::Passed => pos = help(counter, pos).ok()?,
                Find::Ahead => pos = reload(counter, pos).ok()?,
                Find::Wait => {
                    return matches!(Word::of(word).state, State::Claimed | State::Taking)
                        .then_some(Stall { slot, word });
                }
            }
        }
        None
    }

    /// Hands a stalled slot on as if its holder had finished: a `Claimed`
    /// slot (the value was never published, and its push never returned)
    /// or a `Taking` one (the value goes with its consumer) becomes `Empty`
    /// for the next lap. One CAS: returns `false`, changing nothing, if
    /// the slot no longer holds what `stall` saw (its holder moved on, or
    /// someone repaired it first).
    ///
    /// Only for a holder known to be dead (or known never to touch the
    /// ring again): a live one would still write its slot after this, and
    /// values could be lost, duplicated or torn.
    ///
    /// # Safety
    ///
    /// No thread of this process holds the claim `stall` names (is between
    /// that claim and its hand-over), nor ever will: its holder is a
    /// participant of a dead process, or one of this process known to have
    /// stopped for good. Otherwise, once the slot is handed on, the next
    /// lap's participant copies the value while the holder still does: a
    /// data race. (A live holder in another process instead garbles or
    /// loses values, as any peer that breaks the protocol.)
    pub unsafe fn repair(&self, stall: Stall) -> bool {
        let cap = self.slots.len() as u64;
        let w = Word::of(stall.word);
        let held = matches!(w.state, State::Claimed | State::Taking);
        match self.slots.get(stall.slot) {
            Some(slot) if held && (w.position & (cap - 1)) as usize == stall.slot => {
                let next = seq::word(w.position.wrapping_add(cap), State::Empty, 0);
                slot.seq
                    .compare_exchange(stall.word, next, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            }
            _ => false,
        }
    }

    /// [`repair`](Self::repair)s every slot `holder` holds; returns how
    /// many. For a participant that takes over the id of a dead one,
    /// before its first operation: claims under that id are then the dead
    /// one's. Reads every slot once.
    ///
    /// # Safety
    ///
    /// As for [`repair`](Self::repair), for every claim under `holder`: no
    /// thread of this process holds, or will again make, a claim under
    /// that id and role while this runs (this process's own participant
    /// taking over the id has not operated yet).
    pub unsafe fn release_claims(&self, holder: Holder) -> usize {
        // SAFETY: forwarded to the caller.
        unsafe { self.release_claims_taking(holder, |_| {}) }
    }

    /// [`release_claims`](Self::release_claims), passing `taken` the
    /// value of each slot a consumer's claim held (its value went with
    /// that consumer, who died with it: whatever the value stands for is
    /// the caller's to settle now). A producer's claimed slot holds no
    /// value and passes none.
    ///
    /// # Safety
    ///
    /// As for [`release_claims`](Self::release_claims).
    pub(crate) unsafe fn release_claims_taking(
        &self,
        holder: Holder,
        mut taken: impl FnMut(T),
    ) -> usize {
        let (state, who) = match holder {
            Holder::Producer(p) => (State::Claimed, p.id()),
            Holder::Consumer(p) => (State::Taking, p.id()),
        };
        (0..self.slots.len())
            .filter(|&slot| {
                let word = self.slots[slot].seq.load(Ordering::Acquire);
                let w = Word::of(word);
                if w.state != state || w.who != who {
                    return false;
                }
                // SAFETY: a `Taking` slot's value was written before its
                // producer published it (`Acquire` above), and no correct
                // participant writes it until the slot is handed on below.
                let value =
                    (state == State::Taking).then(|| unsafe { self.slots[slot].value.read() });
                // SAFETY: the slot's claim is `holder`'s, which the caller
                // guarantees no thread of this process holds.
                let handed = unsafe { self.repair(Stall { slot, word }) };
                if let (true, Some(v)) = (handed, value) {
                    taken(v);
                }
                handed
            })
            .count()
    }

    /// The position the next push claims, for the ring's only producer
    /// between two of its pushes (each moved `enqueue` past its position
    /// before it returned, and nobody else claims): `enqueue` as it is.
    pub(crate) fn next_push(&self) -> u64 {
        self.header.enqueue.load(Ordering::Acquire)
    }

    /// Whether position `p`'s value was never published: its slot is
    /// still at an earlier lap, awaits `p`'s producer (`Empty(p)`), or
    /// that producer is writing it (`Claimed(p, _)`). For a caller that
    /// speaks for the ring's only producer, which is gone: no push runs
    /// meanwhile, so the answer holds until the caller hands the claim
    /// on or pushes itself (consumers only move a slot from an earlier
    /// lap to `Empty(p)`). A word no correct ring holds counts as
    /// published: the caller then leaves the value alone.
    pub(crate) fn unpublished(&self, p: u64) -> bool {
        let w = Word::of(self.slot(p).seq.load(Ordering::Acquire));
        if !w.well_formed() {
            return false;
        }
        match seq::distance(w.position, p) {
            0 => matches!(w.state, State::Empty | State::Claimed),
            d => d < 0 && d >= -(self.slots.len() as i64),
        }
    }

    /// Whether a value the ring holds now, published and not yet taken
    /// (or being taken), satisfies `pred`. A value a consumer takes while
    /// this reads may be missed; one no producer published (a claim it
    /// never filled) is never seen.
    ///
    /// # Safety
    ///
    /// No correct participant pushes while this runs (the caller has the
    /// only producer's right, and does not use it meanwhile): a published
    /// slot's value is then written by nobody until a later push.
    pub(crate) unsafe fn any_published(&self, mut pred: impl FnMut(&T) -> bool) -> bool {
        self.slots.iter().any(|slot| {
            let w = Word::of(slot.seq.load(Ordering::Acquire));
            // SAFETY: a `Full` or `Taking` slot's value was written before
            // its `Release` publication (`Acquire` above); with no push
            // under way nobody writes it (a protocol-breaking peer can only
            // tear the copy, still a `T`).
            matches!(w.state, State::Full | State::Taking) && pred(&unsafe { slot.value.read() })
        })
    }
}

/// A slot that keeps an operation waiting because a participant holds
/// it: what [`MpmcRing::stalled_push`] and [`MpmcRing::stalled_pop`] find,
/// and what [`MpmcRing::repair`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    slot: usize,
    word: u64,
}

impl Stall {
    /// Who holds the slot.
    pub fn holder(&self) -> Holder {
        let w = Word::of(self.word);
        let who = Participant::from_bits(w.who);
        match w.state {
            State::Taking => Holder::Consumer(who),
            _ => Holder::Producer(who),
        }
    }

    /// The slot's index.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The slot's sequence word when it was found (its layout is in the
    /// [module documentation](super)).
    pub fn word(&self) -> u64 {
        self.word
    }
}

/// Who holds a slot: a producer that claimed it and has not published
/// it, or a consumer that is taking its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A producer, between its claim and its `Full` store.
    Producer(Participant),
    /// A consumer, between its claim and its release.
    Consumer(Participant),
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use crate::ring::mpmc::HeapMpmcRing;

    #[test]
    fn a_position_is_unpublished_until_its_push_and_stays_published() {
        let heap = HeapMpmcRing::<u64>::new(2).unwrap();
        let ring = heap.ring();
        assert_eq!(ring.next_push(), 0);
        assert!(ring.unpublished(0));
        ring.try_push(10).unwrap();
        assert!(!ring.unpublished(0), "full");
        assert_eq!(ring.next_push(), 1);
        ring.try_push(11).unwrap();
        // Position 2 shares slot 0, still at the earlier lap.
        assert!(ring.unpublished(2));
        assert_eq!(ring.try_pop().unwrap(), 10);
        assert!(!ring.unpublished(0), "taken");
        assert!(ring.unpublished(2), "awaits its producer");
        ring.try_push(12).unwrap();
        assert!(!ring.unpublished(2));
        // A position two laps ahead is not one a correct producer is at.
        assert!(!ring.unpublished(6));
    }
}
