//! Loom models of the [`RwLock`](super::RwLock) protocol.

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
