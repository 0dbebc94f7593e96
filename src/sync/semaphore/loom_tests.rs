//! Loom models of the [`Semaphore`](super::Semaphore) protocols.

use super::*;
use crate::sync::model;
use std::sync::Arc;

/// A plain permit's critical section: nobody else is inside.
fn critical(s: &(Semaphore, AtomicU32)) {
    s.0.acquire().unwrap();
    assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
    s.1.fetch_sub(1, Ordering::Relaxed);
    s.0.release().unwrap();
}

/// Two threads take turns with the one permit of a binary semaphore
/// (after `setup`): never both inside, and the one that has to sleep is
/// woken; the permit is back at the end.
fn take_turns(setup: fn(&Arc<(Semaphore, AtomicU32)>)) {
    loom::model(move || {
        let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
        setup(&s);
        let t = {
            let s = s.clone();
            loom::thread::spawn(move || critical(&s))
        };
        critical(&s);
        t.join().unwrap();
        assert_eq!(s.0.available().unwrap(), 1);
    });
}

/// Two threads share one permit: never both inside, never more than
/// the bound, and the one that has to sleep is woken.
#[test]
fn one_permit_two_threads_exclude_each_other() {
    take_turns(|_| {});
}

/// The same with owned permits: the owner table never lets two in,
/// and a release of an owned permit wakes the sleeper.
#[test]
fn owned_permits_exclude_each_other() {
    fn critical(s: &(Semaphore, AtomicU32)) {
        let p = s.0.acquire_permit().unwrap();
        assert_eq!(s.1.fetch_add(1, Ordering::Relaxed), 0, "two holders");
        s.1.fetch_sub(1, Ordering::Relaxed);
        drop(p);
    }
    loom::model(|| {
        let s = Arc::new((Semaphore::new(1, Some(1)), AtomicU32::new(0)));
        let t = {
            let s = s.clone();
            loom::thread::spawn(move || critical(&s))
        };
        critical(&s);
        t.join().unwrap();
        assert_eq!(s.0.available().unwrap(), 1);
        assert!(!s.0.any_owner());
    });
}

/// A release always reaches an acquirer that sleeps for it.
#[test]
fn release_wakes_a_sleeping_acquirer() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0, None));
        let t = {
            let s = s.clone();
            loom::thread::spawn(move || s.acquire().unwrap())
        };
        s.release().unwrap();
        t.join().unwrap();
        assert_eq!(s.available().unwrap(), 0);
    });
}

/// Two acquirers of a semaphore with no permits, and `release` making
/// two: both must pass (a lost wake-up is a deadlock loom reports).
fn two_sleepers_pass(release: fn(&Semaphore)) {
    loom::model(move || {
        let s = Arc::new(Semaphore::new(0, Some(2)));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || s.acquire().unwrap())
            })
            .collect();
        release(&s);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.available().unwrap(), 0);
    });
}

/// Two sleepers, two single releases: the first release clears the
/// sleepers bit to wake one, and that one must set it again so the
/// second release wakes the other.
#[test]
fn two_sleepers_two_releases_both_pass() {
    two_sleepers_pass(|s| {
        s.release().unwrap();
        s.release().unwrap();
    });
}

/// One `release_n(2)` lets two sleepers through.
#[test]
fn release_n_wakes_as_many() {
    two_sleepers_pass(|s| s.release_n(2).unwrap());
}

/// A holder of an owned permit that stops for good after `die_after`
/// (a step name, or "held": holding it), as a killed process would:
/// it declares itself dead, then lets time pass for the sleepers
/// (their probe slices end), which is all a dead process does.
fn dying_holder(s: &Semaphore, die_after: &'static str) {
    match die_after {
        "held" => std::mem::forget(s.acquire_permit().unwrap()),
        "semaphore.release.intent" | "semaphore.release.returned" => {
            let p = s.acquire_permit().unwrap();
            model::stop_after(die_after);
            drop(p);
        }
        _ => {
            model::stop_after(die_after);
            assert!(s.acquire_permit().is_err());
        }
    }
    assert!(die_after == "held" || model::stopped());
    model::die();
    s.wake(u32::MAX);
}

/// A binary semaphore of owned permits whose holder dies at each step
/// of taking or giving back its permit: a waiter gets the permit (it
/// is never lost), and while it holds it nobody else can take one (it
/// is never given back twice).
#[test]
fn a_dead_holders_permit_comes_back_exactly_once() {
    for die_after in [
        "held",
        "semaphore.acquire.intent",
        "semaphore.acquire.taken",
        "semaphore.release.intent",
        "semaphore.release.returned",
    ] {
        loom::model(move || {
            let s = Arc::new(Semaphore::new(1, Some(1)));
            let dier = {
                let s = s.clone();
                loom::thread::spawn(move || dying_holder(&s, die_after))
            };
            let p = s.acquire_permit().expect("the permit comes back");
            assert!(
                matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)),
                "{die_after}: a second permit"
            );
            drop(p);
            dier.join().unwrap();
            // Anything the dead holder left is given back now, once.
            assert!(matches!(
                s.try_acquire_permit().map(SemaphorePermit::forget),
                Ok(())
            ));
            assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
            s.release().unwrap();
            assert_eq!(s.available().unwrap(), 1, "{die_after}");
            assert!(!s.any_owner(), "{die_after}");
        });
    }
}

/// Two waiters race to give back a dead holder's permit: one CAS on its
/// entry wins, so it is returned once and they take turns with it.
#[test]
fn two_recoverers_return_a_dead_holders_permit_once() {
    // The holder dies before the others start.
    take_turns(|s| {
        let s = s.clone();
        loom::thread::spawn(move || dying_holder(&s.0, "held"))
            .join()
            .unwrap();
    });
}

/// A recoverer that dies half-way through giving back a dead holder's
/// permit is a dead holder itself: the next recoverer finishes the job,
/// exactly.
#[test]
fn a_recoverer_that_dies_half_way_is_recovered_from() {
    for die_after in ["semaphore.recover.adopted", "semaphore.recover.returned"] {
        loom::model(move || {
            let s = Arc::new(Semaphore::new(1, Some(1)));
            {
                let s = s.clone();
                loom::thread::spawn(move || dying_holder(&s, "held"))
                    .join()
                    .unwrap();
            }
            let recoverer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    model::stop_after(die_after);
                    let r = s.try_acquire();
                    if model::stopped() {
                        model::die();
                        s.wake(u32::MAX);
                    } else if r.is_ok() {
                        // The other one gave the permit back first.
                        s.release().unwrap();
                    }
                })
            };
            s.acquire().expect("the permit comes back");
            assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
            s.release().unwrap();
            recoverer.join().unwrap();
            assert!(matches!(s.try_acquire(), Ok(())));
            assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
            assert!(!s.any_owner(), "{die_after}");
        });
    }
}

/// A forgotten permit is a plain one: its holder's death gives nothing
/// back.
#[test]
fn a_forgotten_permit_is_not_given_back() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(1, Some(1)));
        let dier = {
            let s = s.clone();
            loom::thread::spawn(move || {
                s.acquire_permit().unwrap().forget();
                model::die();
            })
        };
        dier.join().unwrap();
        assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
        assert_eq!(s.available().unwrap(), 0);
        assert!(!s.any_owner());
    });
}
