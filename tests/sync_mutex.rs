//! Mutex and Condvar across processes: counting under contention, a holder
//! killed at random points, waiters rescued from a dead holder, every
//! timeout form, corrupted lock words.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, spawn, unique_name, wait_until};
use shmkit::sync::{Condvar, LockError, LockTimeoutError, Mutex, TryLockError};
use shmkit::{Region, RegionOptions, Shm, ShmSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A pair whose halves are equal whenever the lock is free: a holder
/// killed between the two writes leaves them unequal.
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Pair {
    a: u64,
    b: u64,
}

#[repr(C)]
struct Shared {
    counter: Mutex<u64>,
    pair: Mutex<Pair>,
    turn: Mutex<u32>,
    changed: Condvar,
    ready: AtomicU32,
    started: AtomicU32,
    progress: AtomicU64,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for Shared {}

fn open(name: &str) -> Shm<Shared> {
    Shm::<Shared>::open(name).expect("child opens the shared struct")
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    let s = open(&args[0]);
    match role.as_str() {
        "increment" => {
            let n: u64 = args[1].parse().unwrap();
            s.started.fetch_add(1, Ordering::AcqRel);
            wait_until(LIMIT, "the start signal", || {
                s.ready.load(Ordering::Acquire) == 1
            });
            for _ in 0..n {
                *s.counter.lock().expect("lock") += 1;
            }
        }
        "churn-pair" => {
            // Hold the pair lock almost all the time, updating it in two
            // steps, until killed.
            loop {
                let mut g = match s.pair.lock() {
                    Ok(g) => g,
                    Err(LockError::OwnerDied(mut g)) => {
                        let a = g.a;
                        g.b = a;
                        g.mark_consistent();
                        g
                    }
                    Err(e) => panic!("child lock: {e}"),
                };
                g.a += 1;
                s.started.store(1, Ordering::Release);
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                g.b += 1;
                s.progress.fetch_add(1, Ordering::Relaxed);
                drop(g);
            }
        }
        "hold-forever" => {
            let g = s.pair.lock().expect("lock");
            s.started.store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
            drop(g);
        }
        "ping-pong" => {
            // Wait for odd turns, answer with the next even one.
            let rounds: u32 = args[1].parse().unwrap();
            let mut g = s.turn.lock().unwrap();
            for i in 0..rounds {
                let want = 2 * i + 1;
                g = s.changed.wait_while(g, |t| *t != want).unwrap();
                *g = want + 1;
                s.changed.notify_all();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn four_processes_increment_exactly_400_000_times() {
    let name = unique_name("count");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| spawn("increment", &[&name, "100000"]))
        .collect();
    wait_until(LIMIT, "children to start", || {
        s.started.load(Ordering::Acquire) == 4
    });
    s.ready.store(1, Ordering::Release);
    for c in children {
        finish(c, LIMIT);
    }
    assert_eq!(*s.counter.lock().unwrap(), 400_000);
}

/// Locks the pair, repairing it if its holder died; returns whether it
/// had to.
fn lock_and_check(s: &Shared) -> bool {
    match s.pair.lock_timeout(Duration::from_secs(10)) {
        Ok(g) => {
            assert_eq!(g.a, g.b, "a clean lock must find the invariant whole");
            false
        }
        Err(LockTimeoutError::OwnerDied(mut g)) => {
            assert!(g.a == g.b || g.a == g.b + 1, "{:?}", *g);
            let a = g.a;
            g.b = a;
            g.mark_consistent();
            true
        }
        Err(e) => panic!("parent lock: {e}"),
    }
}

#[test]
fn a_holder_killed_at_random_points_200_times_is_always_recovered() {
    let name = unique_name("soak");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let mut died = 0;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..200 {
        s.started.store(0, Ordering::Release);
        let mut child = spawn("churn-pair", &[&name]);
        wait_until(LIMIT, "the child to take the lock", || {
            s.started.load(Ordering::Acquire) == 1
        });
        // xorshift: a kill point between 0 and ~2 ms in.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 2000));
        child.kill().unwrap();
        child.wait().unwrap();
        if lock_and_check(&s) {
            died += 1;
        }
        // The lock works normally afterwards.
        let g = s
            .pair
            .try_lock()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(g.a, g.b);
    }
    // The child holds the lock ~all the time: most kills land inside it.
    assert!(died > 100, "only {died} of 200 kills were inside the lock");
}

#[test]
fn a_waiter_gets_the_lock_soon_after_its_holder_is_killed() {
    let name = unique_name("rescue");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let mut child = spawn("hold-forever", &[&name]);
    wait_until(LIMIT, "the child to take the lock", || {
        s.started.load(Ordering::Acquire) == 1
    });
    assert!(matches!(s.pair.try_lock(), Err(TryLockError::WouldBlock)));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let r = s.pair.lock_timeout(Duration::from_secs(20));
            (
                Instant::now(),
                r.map(|_| ()).map_err(|e| e.into_owner_died().is_some()),
            )
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = Instant::now();
        child.kill().unwrap();
        child.wait().unwrap();
        let (got, r) = waiter.join().unwrap();
        assert_eq!(r, Err(true), "the waiter must get OwnerDied");
        let delay = got - killed;
        eprintln!("waiter rescued {delay:?} after the kill");
        assert!(delay < Duration::from_secs(2), "took {delay:?}");
    });
}

#[test]
fn dropping_an_owner_died_guard_unrepaired_makes_the_lock_not_recoverable() {
    let name = unique_name("unrecoverable");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let mut child = spawn("hold-forever", &[&name]);
    wait_until(LIMIT, "the child to take the lock", || {
        s.started.load(Ordering::Acquire) == 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let g = s
        .pair
        .lock()
        .unwrap_err()
        .into_owner_died()
        .expect("OwnerDied");
    assert!(!g.is_consistent());
    drop(g);
    assert!(matches!(s.pair.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(
        s.pair.try_lock(),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(
        s.pair.lock_timeout(Duration::from_millis(10)),
        Err(LockTimeoutError::NotRecoverable)
    ));
}

#[test]
fn every_timeout_form() {
    let m = Shm::<Mutex<u32>>::anonymous(|_| {}).unwrap();
    // Free: every form takes it, even with a deadline in the past.
    drop(m.try_lock().unwrap());
    drop(m.lock_timeout(Duration::ZERO).unwrap());
    drop(
        m.lock_deadline(Instant::now() - Duration::from_secs(1))
            .unwrap(),
    );
    let held = m.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
            let t = Instant::now();
            assert!(matches!(
                m.lock_deadline(Instant::now() - Duration::from_secs(1)),
                Err(LockTimeoutError::Timeout)
            ));
            assert!(t.elapsed() < Duration::from_secs(1));
            let t = Instant::now();
            assert!(matches!(
                m.lock_timeout(Duration::from_millis(60)),
                Err(LockTimeoutError::Timeout)
            ));
            assert!(t.elapsed() >= Duration::from_millis(60));
        });
    });
    drop(held);
    drop(m.lock_timeout(Duration::from_millis(60)).unwrap());
}

#[test]
fn condvar_timeouts() {
    #[repr(C)]
    struct Pair2 {
        m: Mutex<u32>,
        c: Condvar,
    }
    // SAFETY: repr(C); both fields are ShmSafe.
    unsafe impl ShmSafe for Pair2 {}
    let p = Shm::<Pair2>::anonymous(|_| {}).unwrap();
    let t = Instant::now();
    let (g, r) =
        p.c.wait_timeout(p.m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= Duration::from_millis(50));
    let (g, r) =
        p.c.wait_deadline(g, Instant::now() - Duration::from_secs(1))
            .unwrap();
    assert!(r.timed_out());
    let t = Instant::now();
    let (g, r) =
        p.c.wait_timeout_while(g, Duration::from_millis(50), |v| *v == 0)
            .unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= Duration::from_millis(50));
    drop(g);
    // Not timed out when notified.
    std::thread::scope(|s| {
        let g = p.m.lock().unwrap();
        s.spawn(|| {
            *p.m.lock().unwrap() = 7;
            p.c.notify_one();
        });
        let (g, r) =
            p.c.wait_timeout_while(g, Duration::from_secs(20), |v| *v != 7)
                .unwrap();
        assert!(!r.timed_out());
        assert_eq!(*g, 7);
    });
}

#[test]
fn condvar_ping_pong_between_processes() {
    let name = unique_name("condvar");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let rounds = 2000u32;
    let child = spawn("ping-pong", &[&name, &rounds.to_string()]);
    let mut g = s.turn.lock().unwrap();
    for i in 0..rounds {
        *g = 2 * i + 1;
        s.changed.notify_all();
        let want = 2 * i + 2;
        g = s
            .changed
            .wait_timeout_while(g, LIMIT, |t| *t != want)
            .map(|(g, r)| {
                assert!(!r.timed_out(), "round {i} timed out");
                g
            })
            .unwrap();
    }
    drop(g);
    finish(child, LIMIT);
    assert_eq!(*s.turn.lock().unwrap(), 2 * rounds);
}

#[test]
fn corrupted_lock_words_give_typed_errors() {
    let r = RegionOptions::for_type::<Mutex<u64>>().anonymous().unwrap();
    let m = r.place::<Mutex<u64>>(0).unwrap();
    // SAFETY (every write below): one thread, and no guard is alive while
    // the lock word (an atomic, not the data) is written; the writes play
    // a peer scribbling on it.
    // A token no participant was ever given.
    unsafe { r.write::<u32>(0, &0xFFFF_FFFE) }.unwrap();
    assert!(matches!(m.try_lock(), Err(TryLockError::Corrupted(_))));
    let t = Instant::now();
    assert!(matches!(
        m.lock_timeout(Duration::from_secs(20)),
        Err(LockTimeoutError::Corrupted(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
    // The not-recoverable marker.
    unsafe { r.write::<u32>(0, &u32::MAX) }.unwrap();
    assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
    // A well-formed token of a slot nobody holds: a dead owner.
    unsafe { r.write::<u32>(0, &((300u32 << 21 | 1) << 1)) }.unwrap();
    let mut g = m.lock().unwrap_err().into_owner_died().expect("OwnerDied");
    g.mark_consistent();
    drop(g);
    drop(m.lock().unwrap());
    drop(r);
    let _ = Region::anonymous(8).unwrap();
}
