//! Loom models of the MPMC ring at capacity 2 (so the positions wrap).
//! Two shapes without failures: two producers and one consumer, one
//! producer and two consumers. Each checks that every value pushed
//! arrives exactly once and that each consumer sees each producer's values
//! in push order; loom checks the slot accesses for data races. Two with
//! a participant that stops for good after its claim (as if killed): a
//! producer, whose claim the others must repair, and a consumer, whose
//! value is then lost and nothing else is.
//!
//! Participants give up after a few `Full`/`Empty` answers in a row
//! (two spinning threads could otherwise starve the third forever in
//! loom's schedules); a producer that gives up pushes nothing more, and
//! after every thread has joined, the main thread drains what is left,
//! which must be exactly what was pushed and not yet popped.
use super::*;
use crate::primitive::{spin_loop, AtomicU32};
use std::sync::Arc;

/// `Full`/`Empty` answers in a row before a participant gives up.
const PATIENCE: u32 = 1;

/// Pushes `producer << 8 | i` for `i` in `0..count` as participant
/// `producer`, repairing stalls of `stopped` if there is one; returns how
/// many it pushed.
fn push_some(ring: MpmcRing<'_, u64>, producer: u64, count: u64, stopped: Option<&Stopped>) -> u64 {
    let me = Participant::new(producer as u8).unwrap();
    let repaired = || stopped.is_some_and(|s| s.repair(ring, ring.stalled_push()));
    for i in 0..count {
        let mut refused = 0;
        loop {
            match ring.try_push_as(me, producer << 8 | i) {
                Ok(()) => break,
                Err(PushError::Full(_)) if repaired() => {}
                Err(PushError::Full(_)) if refused < PATIENCE => {
                    refused += 1;
                    spin_loop();
                }
                Err(PushError::Full(_)) => return i,
                Err(e) => panic!("push: {e}"),
            }
        }
    }
    count
}

/// Pops (as an anonymous participant) until `PATIENCE + 1` `Empty`
/// answers in a row, repairing stalls of `stopped` if there is one.
fn pop_some(ring: MpmcRing<'_, u64>, stopped: Option<&Stopped>) -> Vec<u64> {
    let repaired = || stopped.is_some_and(|s| s.repair(ring, ring.stalled_pop()));
    let mut got = Vec::new();
    let mut refused = 0;
    loop {
        match ring.try_pop() {
            Ok(v) => {
                got.push(v);
                refused = 0;
            }
            Err(PopError::Empty) if repaired() => {}
            Err(PopError::Empty) if refused < PATIENCE => {
                refused += 1;
                spin_loop();
            }
            Err(PopError::Empty) => return got,
            Err(e) => panic!("pop: {e}"),
        }
    }
}

/// Each producer's values in increasing order within `got`.
fn check_fifo(got: &[u64]) {
    let mut last = std::collections::HashMap::new();
    for v in got {
        if let Some(prev) = last.insert(v >> 8, v & 0xff) {
            assert!(prev < v & 0xff, "out of order: {got:?}");
        }
    }
}

/// Drains the ring once everyone has joined; checks that each
/// consumer's values followed by the drained ones are in order per
/// producer, and that the values delivered are exactly those pushed.
fn check(ring: MpmcRing<'_, u64>, consumed: Vec<Vec<u64>>, pushed: &[(u64, u64)]) {
    let rest = pop_some(ring, None);
    assert!(ring.is_empty());
    let mut all = rest.clone();
    for got in consumed {
        check_fifo(&[got.as_slice(), &rest].concat());
        all.extend(got);
    }
    all.sort_unstable();
    let mut expected: Vec<u64> = pushed
        .iter()
        .flat_map(|&(p, n)| (0..n).map(move |i| p << 8 | i))
        .collect();
    expected.sort_unstable();
    assert_eq!(all, expected, "each pushed value exactly once");
}

#[test]
fn two_producers_one_consumer() {
    loom::model(|| {
        let heap = Arc::new(HeapMpmcRing::<u64>::new(2).unwrap());
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let heap = heap.clone();
                loom::thread::spawn(move || (p, push_some(heap.ring(), p, 2, None)))
            })
            .collect();
        let got = pop_some(heap.ring(), None);
        let pushed: Vec<_> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        check(heap.ring(), vec![got], &pushed);
    });
}

#[test]
fn one_producer_two_consumers() {
    loom::model(|| {
        let heap = Arc::new(HeapMpmcRing::<u64>::new(2).unwrap());
        let consumer = {
            let heap = heap.clone();
            loom::thread::spawn(move || pop_some(heap.ring(), None))
        };
        let producer = {
            let heap = heap.clone();
            loom::thread::spawn(move || push_some(heap.ring(), 0, 3, None))
        };
        let mine = pop_some(heap.ring(), None);
        let pushed = producer.join().unwrap();
        let theirs = consumer.join().unwrap();
        check(heap.ring(), vec![mine, theirs], &[(0, pushed)]);
    });
}

/// A participant that claims a position and then stops for good, as a
/// killed process would; `dead` says so once it has (the liveness a
/// channel learns from the kernel).
struct Stopped {
    who: Participant,
    dead: AtomicU32,
    /// The position it claimed, plus one (0: it claimed nothing).
    claimed: AtomicU64,
}

impl Stopped {
    fn new(id: u8) -> Self {
        Self {
            who: Participant::new(id).unwrap(),
            dead: AtomicU32::new(0),
            claimed: AtomicU64::new(0),
        }
    }

    /// Claims one position as `role` (no value written, no hand-over),
    /// then dies.
    fn claim_and_die(&self, ring: MpmcRing<'_, u64>, role: Role) {
        if let Ok((_, pos)) = ring.claim(role, self.who) {
            self.claimed.store(pos + 1, Ordering::Relaxed);
        }
        self.dead.store(1, Ordering::Release);
    }

    /// Repairs `stall` if this participant holds it and is known dead
    /// (a live holder's slot, this one's before it died or another
    /// participant's mid-operation, is waited for).
    fn repair(&self, ring: MpmcRing<'_, u64>, stall: Option<Stall>) -> bool {
        let Some(stall) = stall else { return false };
        let mine =
            matches!(stall.holder(), Holder::Producer(p) | Holder::Consumer(p) if p == self.who);
        // SAFETY: the holder is this participant, which stored `dead` after
        // its last access to the ring (loaded here with `Acquire`): it
        // never completes the claim.
        mine && self.dead.load(Ordering::Acquire) == 1 && unsafe { ring.repair(stall) }
    }
}

/// Once everyone has joined: gives back what `stopped` still holds (a
/// sweep under its id, as a participant taking the id over would), drains
/// the ring, and checks that `got` followed by the rest is `0..pushed`
/// without `lost`, in order.
fn check_after_stop(
    ring: MpmcRing<'_, u64>,
    got: Vec<u64>,
    pushed: u64,
    stopped: &Stopped,
    lost: Option<u64>,
) {
    // SAFETY: every thread has joined; the stopped participant's claims
    // are never completed.
    unsafe {
        ring.release_claims(Holder::Producer(stopped.who));
        ring.release_claims(Holder::Consumer(stopped.who));
    }
    let rest = pop_some(ring, Some(stopped));
    assert!(ring.is_empty(), "drained");
    assert_eq!(ring.stalled_pop(), None);
    assert_eq!(ring.stalled_push(), None);
    let all = [got, rest].concat();
    let expected: Vec<u64> = (0..pushed).filter(|&v| Some(v) != lost).collect();
    assert_eq!(all, expected, "lost {lost:?}");
}

/// Runs `f` on the ring beside the main thread, with `stopped` at hand.
fn beside<R: Send + 'static>(
    heap: &Arc<HeapMpmcRing<u64>>,
    stopped: &Arc<Stopped>,
    f: impl FnOnce(MpmcRing<'_, u64>, &Stopped) -> R + Send + 'static,
) -> loom::thread::JoinHandle<R> {
    let (heap, stopped) = (heap.clone(), stopped.clone());
    loom::thread::spawn(move || f(heap.ring(), &stopped))
}

#[test]
fn a_producer_stopped_after_its_claim_is_repaired() {
    loom::model(|| {
        let heap = Arc::new(HeapMpmcRing::<u64>::new(2).unwrap());
        let stopped = Arc::new(Stopped::new(5));
        let dier = beside(&heap, &stopped, |r, s| s.claim_and_die(r, Role::Producer));
        let producer = beside(&heap, &stopped, |r, s| push_some(r, 0, 2, Some(s)));
        let got = pop_some(heap.ring(), Some(&stopped));
        dier.join().unwrap();
        let pushed = producer.join().unwrap();
        // A stopped producer wrote nothing, so nothing is lost: its
        // position is skipped.
        check_after_stop(heap.ring(), got, pushed, &stopped, None);
    });
}

#[test]
fn a_consumer_stopped_while_taking_is_repaired() {
    loom::model(|| {
        let heap = Arc::new(HeapMpmcRing::<u64>::new(1).unwrap());
        let stopped = Arc::new(Stopped::new(5));
        let dier = beside(&heap, &stopped, |r, s| s.claim_and_die(r, Role::Consumer));
        let consumer = beside(&heap, &stopped, |r, s| pop_some(r, Some(s)));
        let pushed = push_some(heap.ring(), 0, 2, Some(&stopped));
        dier.join().unwrap();
        let got = consumer.join().unwrap();
        // The one producer pushes value i at position i, so the value the
        // stopped consumer took is its position's.
        let lost = stopped.claimed.load(Ordering::Relaxed).checked_sub(1);
        check_after_stop(heap.ring(), got, pushed, &stopped, lost);
    });
}
