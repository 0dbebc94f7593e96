//! RwLock and Barrier across processes: readers sharing while a writer
//! updates a multi-word invariant, a writer killed holding the lock
//! (taken over by a writer, reported to readers, or left unrecoverable),
//! readers killed holding the lock or at random points of taking it (a
//! waiting writer gets in, never while a live reader holds it), a full
//! table of readers, every timeout form, corrupted state;
//! a barrier passed by four processes for many generations, aborted, broken
//! by a killed party, and fed garbage.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, report, spawn, unique_name, wait_until};
use shmkit::sync::{
    Barrier, BarrierError, BarrierTimeoutError, Corrupted, LockError, LockTimeoutError,
    LockTimeoutResult, RwLock, TryLockError,
};
use shmkit::{Shm, ShmSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(60);
/// How soon a death must be noticed (the probe interval is 10 ms).
const PROMPT: Duration = Duration::from_secs(1);
const WORDS: usize = 8;
const GENERATIONS: usize = 50;

type Words = [u64; WORDS];

#[repr(C)]
struct RwShared {
    lock: RwLock<Words>,
    started: AtomicU32,
    inside: AtomicU32,
    release: AtomicU32,
    writer_done: AtomicU32,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for RwShared {}

#[repr(C)]
struct BarrierShared {
    barrier: Barrier,
    /// Arrivals announced before each generation's wait.
    arrivals: [AtomicU32; GENERATIONS],
    /// Leaders seen in each generation.
    leaders: [AtomicU32; GENERATIONS],
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for BarrierShared {}

fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Spins for `d` (to widen a window without sleeping).
fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn all_equal(w: &Words) -> bool {
    w.iter().all(|&x| x == w[0])
}

/// Reports how a barrier wait ended, with the wall-clock time.
fn describe(r: &Result<shmkit::sync::BarrierWaitResult, BarrierTimeoutError>) -> &'static str {
    match r {
        Ok(w) if w.is_leader() => "leader",
        Ok(_) => "passed",
        Err(BarrierTimeoutError::Broken) => "broken",
        Err(BarrierTimeoutError::Timeout) => "timeout",
        Err(_) => "error",
    }
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    if let Some(role) = role.strip_prefix("rw-") {
        rw_child(role, &args);
    } else {
        barrier_child(&role, &args);
    }
}

fn rw_child(role: &str, args: &[String]) {
    let s = Shm::<RwShared>::open(&args[0]).expect("child opens the rwlock");
    match role {
        "reader" => {
            // Phase 1: hold a read lock until all three readers hold one.
            {
                let g = s.lock.read().expect("read");
                s.inside.fetch_add(1, Ordering::AcqRel);
                wait_until(LIMIT, "three readers inside at once", || {
                    s.inside.load(Ordering::Acquire) >= 3
                });
                assert!(all_equal(&g));
            }
            // Phase 2: read while the writer updates.
            let (mut reads, mut distinct, mut last) = (0u64, 0u64, u64::MAX);
            while s.writer_done.load(Ordering::Acquire) == 0 {
                let g = s.lock.read().expect("read");
                assert!(all_equal(&g), "a reader saw a torn update: {:?}", *g);
                if g[0] != last {
                    distinct += 1;
                    last = g[0];
                }
                spin_for(Duration::from_micros(20));
                drop(g);
                reads += 1;
            }
            report(format!("reads={reads} distinct={distinct}"));
        }
        "writer" => {
            let n: u64 = args[1].parse().unwrap();
            wait_until(LIMIT, "readers to finish sharing", || {
                s.inside.load(Ordering::Acquire) >= 3
            });
            for k in 1..=n {
                let mut g = s.lock.write().expect("write");
                for i in 0..WORDS {
                    g[i] = k;
                    if i == WORDS / 2 {
                        spin_for(Duration::from_micros(5));
                    }
                }
                drop(g);
            }
            s.writer_done.store(1, Ordering::Release);
        }
        "hold-write" => {
            // Half an update, then wait to be killed.
            let mut g = s.lock.write().expect("write");
            for w in g.iter_mut().take(WORDS / 2) {
                *w = 1;
            }
            s.started.store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
            drop(g);
        }
        "hold-write-until-released" => {
            let g = s.lock.write().expect("write");
            s.started.store(1, Ordering::Release);
            wait_until(LIMIT, "the release signal", || {
                s.release.load(Ordering::Acquire) == 1
            });
            drop(g);
        }
        "hold-read-until-released" => {
            let g = s.lock.read().expect("read");
            s.started.store(1, Ordering::Release);
            wait_until(LIMIT, "the release signal", || {
                s.release.load(Ordering::Acquire) == 1
            });
            drop(g);
        }
        "hold-read" => {
            let g = s.lock.read().expect("read");
            s.started.store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
            drop(g);
        }
        "churn-read" => {
            // Take and release read locks as fast as possible (sometimes
            // holding one a little), until killed.
            let mut n = 0u64;
            loop {
                let g = s.lock.read().expect("read");
                assert!(all_equal(&g), "a reader saw a torn update: {:?}", *g);
                if n % 64 == 0 {
                    spin_for(Duration::from_micros(20));
                }
                drop(g);
                n += 1;
                if n == 1000 {
                    s.started.store(1, Ordering::Release);
                }
            }
        }
        "read-until-done" => {
            // A live reader beside the killed ones: it must never see a
            // writer's update half done.
            let mut reads = 0u64;
            while s.writer_done.load(Ordering::Acquire) == 0 {
                let g = s.lock.read().expect("read");
                assert!(all_equal(&g), "a reader saw a torn update: {:?}", *g);
                spin_for(Duration::from_micros(5));
                drop(g);
                reads += 1;
            }
            report(format!("reads={reads}"));
        }
        other => panic!("unknown role rw-{other}"),
    }
}

fn barrier_child(role: &str, args: &[String]) {
    let s = Shm::<BarrierShared>::open(&args[0]).expect("child opens the barrier");
    match role {
        "generations" => {
            let parties = s.barrier.parties().unwrap() as u32;
            for g in 0..GENERATIONS {
                s.arrivals[g].fetch_add(1, Ordering::AcqRel);
                let r = s
                    .barrier
                    .wait_timeout(LIMIT)
                    .unwrap_or_else(|e| panic!("generation {g}: {e}"));
                assert_eq!(
                    s.arrivals[g].load(Ordering::Acquire),
                    parties,
                    "passed generation {g} before every party arrived"
                );
                if r.is_leader() {
                    s.leaders[g].fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        "waits" | "waits-then-sleep" => {
            // args[1] waits, each reported with the time it ended.
            let n: usize = args[1].parse().unwrap();
            for _ in 0..n {
                let r = s.barrier.wait_timeout(Duration::from_secs(30));
                report(format!("{} {}", describe(&r), wall_micros()));
                if r.is_err() {
                    break;
                }
            }
            if role == "waits-then-sleep" {
                std::thread::sleep(LIMIT);
            }
        }
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------- rwlock

fn rw_shared(tag: &str) -> (String, Shm<RwShared>) {
    let name = unique_name(tag);
    let s = Shm::<RwShared>::create(&name, |_| {}).unwrap();
    (name, s)
}

#[test]
fn three_reader_processes_share_the_lock_and_never_see_a_torn_update() {
    let (name, s) = rw_shared("rw-share");
    let readers: Vec<_> = (0..3).map(|_| spawn("rw-reader", &[&name])).collect();
    let writer = spawn("rw-writer", &[&name, "3000"]);
    finish(writer, LIMIT);
    for r in readers {
        let lines = finish(r, LIMIT);
        assert_eq!(lines.len(), 1, "{lines:?}");
        eprintln!("reader: {}", lines[0]);
    }
    let g = s.lock.read().unwrap();
    assert_eq!(*g, [3000; WORDS]);
}

/// Spawns `role`, waits until it holds the lock.
fn spawn_holder(s: &RwShared, name: &str, role: &str) -> std::process::Child {
    s.started.store(0, Ordering::Release);
    let child = spawn(role, &[name]);
    wait_until(LIMIT, "the child to take the lock", || {
        s.started.load(Ordering::Acquire) == 1
    });
    child
}

fn kill(mut child: std::process::Child) -> Instant {
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    killed
}

#[test]
fn a_writer_killed_holding_the_lock_is_taken_over_by_the_next_writer() {
    let (name, s) = rw_shared("rw-killed");
    let child = spawn_holder(&s, &name, "rw-hold-write");
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    assert!(matches!(s.lock.try_read(), Err(TryLockError::WouldBlock)));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let r = s.lock.write_timeout(Duration::from_secs(20));
            (Instant::now(), r)
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = kill(child);
        let (got, r) = waiter.join().unwrap();
        let delay = got - killed;
        eprintln!("writer took over {delay:?} after the kill");
        assert!(delay < PROMPT, "took {delay:?}");
        let Err(LockTimeoutError::OwnerDied(mut g)) = r else {
            panic!("expected OwnerDied, got {:?}", r.map(|_| ()));
        };
        assert!(!g.is_consistent());
        assert_eq!(*g, [1, 1, 1, 1, 0, 0, 0, 0], "the half update is visible");
        *g = [1; WORDS];
        g.mark_consistent();
    });
    assert_eq!(*s.lock.read().unwrap(), [1; WORDS]);
    *s.lock.write().unwrap() = [2; WORDS];
    assert_eq!(*s.lock.try_read().unwrap(), [2; WORDS]);
}

#[test]
fn readers_of_a_killed_writer_get_owner_died_until_a_writer_repairs() {
    let (name, s) = rw_shared("rw-orphan");
    let child = spawn_holder(&s, &name, "rw-hold-write");
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let r = s.lock.read_timeout(Duration::from_secs(20));
            let at = Instant::now();
            let seen = match r {
                Err(LockTimeoutError::OwnerDied(g)) => Some(*g),
                other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
            };
            (at, seen)
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = kill(child);
        let (at, seen) = reader.join().unwrap();
        assert!(at - killed < PROMPT, "took {:?}", at - killed);
        assert_eq!(seen, Some([1, 1, 1, 1, 0, 0, 0, 0]));
    });
    // Every reader is told, and readers share the unrepaired data.
    let a = s.lock.read().unwrap_err().into_owner_died().unwrap();
    let b = s.lock.try_read().unwrap_err().into_owner_died().unwrap();
    assert_eq!(*a, *b);
    drop((a, b));
    // A writer repairs.
    let mut w = s.lock.write().unwrap_err().into_owner_died().unwrap();
    *w = [7; WORDS];
    w.mark_consistent();
    drop(w);
    assert_eq!(*s.lock.read().unwrap(), [7; WORDS]);
    assert!(s.lock.try_write().is_ok());
}

#[test]
fn an_unrepaired_owner_died_guard_makes_the_lock_not_recoverable() {
    let (name, s) = rw_shared("rw-nr");
    let child = spawn_holder(&s, &name, "rw-hold-write");
    kill(child);
    let g = s.lock.write_timeout(Duration::from_secs(20));
    assert!(matches!(g, Err(LockTimeoutError::OwnerDied(_))));
    drop(g);
    let soon = Instant::now() + Duration::from_secs(1);
    let short = Duration::from_secs(1);
    assert!(matches!(s.lock.read(), Err(LockError::NotRecoverable)));
    assert!(matches!(
        s.lock.try_read(),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(
        s.lock.read_timeout(short),
        Err(LockTimeoutError::NotRecoverable)
    ));
    assert!(matches!(
        s.lock.read_deadline(soon),
        Err(LockTimeoutError::NotRecoverable)
    ));
    assert!(matches!(s.lock.write(), Err(LockError::NotRecoverable)));
    assert!(matches!(
        s.lock.try_write(),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(
        s.lock.write_timeout(short),
        Err(LockTimeoutError::NotRecoverable)
    ));
    assert!(matches!(
        s.lock.write_deadline(soon),
        Err(LockTimeoutError::NotRecoverable)
    ));
    // Also for another process.
    let other = Shm::<RwShared>::open(&name).unwrap();
    assert!(matches!(other.lock.read(), Err(LockError::NotRecoverable)));
}

fn assert_times_out<G>(what: &str, wait: Duration, f: impl FnOnce() -> LockTimeoutResult<G>) {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    assert!(
        matches!(r, Err(LockTimeoutError::Timeout)),
        "{what}: expected Timeout, got {:?}",
        r.map(|_| ())
    );
    assert!(took >= wait, "{what}: returned after {took:?} < {wait:?}");
    assert!(took < wait + PROMPT, "{what}: returned after {took:?}");
}

#[test]
fn every_timeout_form_against_a_writer_in_another_process() {
    let (name, s) = rw_shared("rw-timeouts-w");
    let child = spawn_holder(&s, &name, "rw-hold-write-until-released");
    let d = Duration::from_millis(50);
    assert_times_out("read_timeout", d, || s.lock.read_timeout(d));
    assert_times_out("read_deadline", d, || {
        s.lock.read_deadline(Instant::now() + d)
    });
    assert_times_out("write_timeout", d, || s.lock.write_timeout(d));
    assert_times_out("write_deadline", d, || {
        s.lock.write_deadline(Instant::now() + d)
    });
    assert_times_out("read_deadline(now)", Duration::ZERO, || {
        s.lock.read_deadline(Instant::now())
    });
    assert_times_out("write_timeout(0)", Duration::ZERO, || {
        s.lock.write_timeout(Duration::ZERO)
    });
    assert!(matches!(s.lock.try_read(), Err(TryLockError::WouldBlock)));
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    // A waiter with a long deadline gets the lock when it is released.
    std::thread::scope(|scope| {
        let w = scope.spawn(|| s.lock.write_timeout(Duration::from_secs(20)).map(|_| ()));
        std::thread::sleep(Duration::from_millis(30));
        s.release.store(1, Ordering::Release);
        w.join().unwrap().unwrap();
    });
    finish(child, LIMIT);
    // A deadline in the past still takes a free lock.
    let past = Instant::now();
    std::thread::sleep(Duration::from_millis(1));
    assert!(s.lock.read_deadline(past).is_ok());
    assert!(s.lock.write_deadline(past).is_ok());
    assert!(s.lock.write_timeout(Duration::ZERO).is_ok());
}

#[test]
fn every_timeout_form_against_a_reader_in_another_process_and_writer_preference() {
    let (name, s) = rw_shared("rw-timeouts-r");
    let child = spawn_holder(&s, &name, "rw-hold-read-until-released");
    let d = Duration::from_millis(50);
    // Readers share with the child.
    assert!(s.lock.try_read().is_ok());
    assert!(s.lock.read_timeout(d).is_ok());
    assert!(s.lock.read_deadline(Instant::now()).is_ok());
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    assert_times_out("write_timeout", d, || s.lock.write_timeout(d));
    // The timed-out writer withdrew its claim: readers get in at once.
    assert!(s.lock.try_read().is_ok());
    assert_times_out("write_deadline", d, || {
        s.lock.write_deadline(Instant::now() + d)
    });
    assert!(s.lock.try_read().is_ok());
    std::thread::scope(|scope| {
        // While a writer waits for the child's read lock, new readers
        // wait behind it (writer preference)...
        let w = scope.spawn(|| {
            let r = s.lock.write_timeout(Duration::from_millis(1500));
            r.map(|_| ())
        });
        wait_until(LIMIT, "the writer's claim", || {
            matches!(s.lock.try_read(), Err(TryLockError::WouldBlock))
        });
        assert_times_out("read_timeout behind a writer", d, || s.lock.read_timeout(d));
        // ...until its deadline passes and it withdraws.
        assert!(matches!(w.join().unwrap(), Err(LockTimeoutError::Timeout)));
        assert!(s.lock.try_read().is_ok());
        // A writer waiting without a pressing deadline gets the lock as
        // soon as the last reader leaves.
        let w = scope.spawn(|| {
            let mut g = s.lock.write_timeout(Duration::from_secs(20)).unwrap();
            g[0] = 9;
        });
        std::thread::sleep(Duration::from_millis(50));
        s.release.store(1, Ordering::Release);
        w.join().unwrap();
    });
    finish(child, LIMIT);
    assert_eq!(s.lock.read().unwrap()[0], 9);
}

#[test]
fn a_writer_waiting_on_a_killed_reader_gets_the_lock_clean_and_promptly() {
    let (name, s) = rw_shared("rw-dead-reader");
    let child = spawn_holder(&s, &name, "rw-hold-read");
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let r = s.lock.write_timeout(Duration::from_secs(20));
            let at = Instant::now();
            let mut g = r.unwrap_or_else(|e| panic!("expected a clean guard, got {e:?}"));
            assert!(g.is_consistent());
            g[0] = 1;
            at
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = kill(child);
        let at = writer.join().unwrap();
        let delay = at - killed;
        eprintln!("writer got the lock {delay:?} after the reader was killed");
        assert!(delay < PROMPT, "took {delay:?}");
    });
    // Everything works normally afterwards.
    assert_eq!(s.lock.try_read().unwrap()[0], 1);
    assert!(s.lock.try_write().is_ok());
    assert!(format!("{:?}", s.lock).contains("readers: 0"));
}

#[test]
fn a_try_write_after_a_reader_was_killed_gets_the_lock() {
    let (name, s) = rw_shared("rw-dead-reader-try");
    let child = spawn_holder(&s, &name, "rw-hold-read");
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    kill(child);
    // try_write probes the readers it finds: the dead one is cleared.
    assert!(s.lock.try_write().is_ok());
    assert!(s.lock.try_read().is_ok());
}

#[test]
fn a_killed_reader_beside_a_live_one_does_not_let_a_writer_in() {
    let (name, s) = rw_shared("rw-dead-and-live");
    let live = spawn_holder(&s, &name, "rw-hold-read-until-released");
    let dead = spawn_holder(&s, &name, "rw-hold-read");
    kill(dead);
    // Long enough for many probes: the dead reader is cleared, the live
    // one is waited for.
    let d = Duration::from_millis(300);
    assert_times_out("write_timeout", d, || s.lock.write_timeout(d));
    assert!(matches!(s.lock.try_write(), Err(TryLockError::WouldBlock)));
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut g = s.lock.write_timeout(Duration::from_secs(20)).unwrap();
            assert!(g.is_consistent());
            g[0] = 3;
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !writer.is_finished(),
            "the writer got in beside a live reader"
        );
        s.release.store(1, Ordering::Release);
        writer.join().unwrap();
    });
    finish(live, LIMIT);
    assert_eq!(s.lock.read().unwrap()[0], 3);
}

/// xorshift64.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn readers_killed_at_random_points_never_block_a_writer_nor_let_it_in_early() {
    const ROUNDS: u64 = 100;
    let (name, s) = rw_shared("rw-churn");
    let live = spawn("rw-read-until-done", &[&name]);
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let mut slowest = Duration::ZERO;
    for round in 1..=ROUNDS {
        let child = spawn_holder(&s, &name, "rw-churn-read");
        // A kill point up to ~2 ms into the churn: usually inside read()
        // or its unlock, or holding.
        std::thread::sleep(Duration::from_micros(next(&mut seed) % 2000));
        let killed = kill(child);
        let mut g = s
            .lock
            .write_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("round {round}: expected a clean guard, got {e:?}"));
        slowest = slowest.max(killed.elapsed());
        for i in 0..WORDS {
            g[i] = round;
            if i == WORDS / 2 {
                spin_for(Duration::from_micros(20));
            }
        }
        drop(g);
    }
    eprintln!("slowest write after a kill: {slowest:?}");
    assert!(slowest < PROMPT, "took {slowest:?}");
    s.writer_done.store(1, Ordering::Release);
    let lines = finish(live, LIMIT);
    eprintln!("live reader: {lines:?}");
    assert_eq!(*s.lock.read().unwrap(), [ROUNDS; WORDS]);
}

#[test]
fn a_reader_finding_every_entry_taken_waits_and_dead_entries_are_reclaimed() {
    let name = unique_name("rw-full");
    let first = Shm::<RwShared>::create(&name, |_| {}).unwrap();
    let slots = RwLock::<Words>::READER_SLOTS;
    assert_eq!(slots, 32);
    // One region handle per reader: each is its own participant.
    let handles: Vec<_> = (0..slots)
        .map(|_| Shm::<RwShared>::open(&name).unwrap())
        .collect();
    let guards: Vec<_> = handles.iter().map(|h| h.lock.read().unwrap()).collect();
    // A 33rd participant finds no entry: it waits as for a writer.
    assert!(matches!(
        first.lock.try_read(),
        Err(TryLockError::WouldBlock)
    ));
    let d = Duration::from_millis(50);
    assert_times_out("read_timeout", d, || first.lock.read_timeout(d));
    // Other threads of a holding handle share its entry.
    assert!(handles[0].lock.try_read().is_ok());
    // An entry freed by a live reader is found within a poll.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| first.lock.read_timeout(Duration::from_secs(20)).map(|_| ()));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!waiter.is_finished());
        let mut guards = guards;
        guards.pop();
        waiter.join().unwrap().unwrap();
        // Handles whose holds are never released and which are then
        // closed are dead participants: their entries are reclaimed.
        for g in guards {
            std::mem::forget(g);
        }
    });
    drop(handles);
    let others: Vec<_> = (0..slots - 1)
        .map(|_| Shm::<RwShared>::open(&name).unwrap())
        .collect();
    let _held: Vec<_> = others.iter().map(|h| h.lock.read().unwrap()).collect();
    assert!(first.lock.try_read().is_ok());
    drop(_held);
    let mut w = first.lock.write_timeout(Duration::from_secs(5)).unwrap();
    w[0] = 5;
}

/// Writes `state` over the lock word of the rwlock at offset 0.
///
/// # Safety
///
/// No guard of the lock is alive and no other thread of this process uses
/// it: the write plays a peer scribbling on the word.
unsafe fn scribble(s: &Shm<RwLock<Words>>, state: u64) {
    // SAFETY: the word is an atomic (no reference to plain data covers
    // it), and the caller guarantees no concurrent access.
    unsafe { s.region().write::<u64>(0, &state) }.unwrap();
}

/// Documented offset of the first reader entry.
const RW_READERS: usize = 64;

/// Writes `entry` over reader entry `i`.
///
/// # Safety
///
/// As for [`scribble`]: no guard alive, no other thread using the lock.
unsafe fn scribble_entry(s: &Shm<RwLock<Words>>, i: usize, entry: u64) {
    // SAFETY: entries are atomics; the caller guarantees no concurrent
    // access.
    unsafe { s.region().write::<u64>(RW_READERS + 8 * i, &entry) }.unwrap();
}

/// Whether `r` is an error of the `Corrupted` kind (every lock error type
/// has one, and prints it so).
fn corrupted<G, E: std::fmt::Debug>(r: Result<G, E>) -> bool {
    matches!(&r, Err(e) if format!("{e:?}").starts_with("Corrupted("))
}

#[test]
fn corrupted_rwlock_states_are_typed_errors_never_hangs() {
    let s = Shm::<RwLock<Words>>::anonymous(|_| {}).unwrap();
    let forever = Duration::from_secs(20);
    for (what, garbage) in [
        ("reserved bit", 1u64 << 63),
        ("low reserved bits", (1 << 29) - 1),
        ("claim without a writer", 1 << 29),
        ("writer token out of range", 0x7FFF_FFFEu64 << 32),
        (
            "writer token out of range, with readers",
            (0x7FFF_FFFEu64 << 32) | 3,
        ),
    ] {
        // SAFETY (every scribble below): one thread, no guard alive.
        unsafe { scribble(&s, garbage) };
        let t = Instant::now();
        assert!(corrupted(s.try_read()), "{what}: try_read");
        assert!(corrupted(s.read_timeout(forever)), "{what}: read");
        assert!(corrupted(s.try_write()), "{what}: try_write");
        assert!(corrupted(s.write_timeout(forever)), "{what}: write");
        assert!(t.elapsed() < PROMPT, "{what}: took {:?}", t.elapsed());
    }
    // A writer token in range that no process was ever given (generation
    // 0): found out by the first liveness probe, a few ms in.
    unsafe { scribble(&s, (5u64 << 21) << 32) };
    assert!(corrupted(s.try_read()), "gen 0: try_read");
    let t = Instant::now();
    assert!(corrupted(s.read_timeout(forever)), "gen 0: read");
    assert!(corrupted(s.write_timeout(forever)), "gen 0: write");
    assert!(t.elapsed() < PROMPT, "gen 0: took {:?}", t.elapsed());
    // Reader entries no participant writes: found by the writer probing
    // the entries that keep it waiting; readers are unaffected.
    unsafe { scribble(&s, 0) };
    for (what, garbage) in [
        ("a count without a token", 3u64),
        ("a token out of range", (0x7FFF_FFFEu64 << 32) | 1),
        ("a token with generation 0", ((7u64 << 21) << 32) | 1),
        ("a token with bit 63 set", (1u64 << 63) | 1),
    ] {
        unsafe { scribble_entry(&s, 5, garbage) };
        let t = Instant::now();
        assert!(corrupted(s.try_write()), "{what}: try_write");
        assert!(corrupted(s.write_timeout(forever)), "{what}: write");
        assert!(t.elapsed() < PROMPT, "{what}: took {:?}", t.elapsed());
        assert!(s.try_read().is_ok(), "{what}: try_read");
        unsafe { scribble_entry(&s, 5, 0) };
    }
    // All ones is the not-recoverable mark.
    unsafe { scribble(&s, u64::MAX) };
    assert!(matches!(s.read(), Err(LockError::NotRecoverable)));
    // Zeroing the word makes the lock usable again; garbage in the futex
    // epoch is harmless.
    unsafe { scribble(&s, 0) };
    // SAFETY: as for `scribble`, on the futex epoch word.
    unsafe { s.region().write::<u32>(8, &u32::MAX) }.unwrap();
    assert_eq!(
        std::mem::size_of::<RwLock<Words>>(),
        RW_READERS + 8 * 32 + 8 * WORDS
    );
    *s.write().unwrap() = [4; WORDS];
    assert_eq!(*s.read().unwrap(), [4; WORDS]);
}

// --------------------------------------------------------------- barrier

fn barrier_shared(tag: &str, parties: usize) -> (String, Shm<BarrierShared>) {
    let name = unique_name(tag);
    let s = Shm::<BarrierShared>::create(&name, |s| s.barrier.init(parties)).unwrap();
    (name, s)
}

#[test]
fn four_processes_pass_fifty_generations_with_one_leader_each() {
    let (name, s) = barrier_shared("b-gens", 4);
    let children: Vec<_> = (0..4).map(|_| spawn("generations", &[&name])).collect();
    for c in children {
        finish(c, LIMIT);
    }
    for g in 0..GENERATIONS {
        assert_eq!(s.leaders[g].load(Ordering::Acquire), 1, "generation {g}");
        assert_eq!(s.arrivals[g].load(Ordering::Acquire), 4, "generation {g}");
    }
    assert!(!s.barrier.is_broken());
}

#[test]
fn threads_of_one_process_count_as_parties() {
    let b = Shm::<Barrier>::anonymous(|b| b.init(4)).unwrap();
    let leaders = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    if b.wait_timeout(LIMIT).unwrap().is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(leaders.load(Ordering::Relaxed), 20);
}

/// Arrivals in the current generation, read from the barrier's state
/// word (the barrier is the first field).
fn arrived(s: &Shm<BarrierShared>) -> u32 {
    // SAFETY: the word is an atomic that no reference to plain data
    // covers, and no thread of this process waits on the barrier while
    // this is called (the waiters are child processes).
    unsafe { s.region().read::<u32>(B_STATE) }.unwrap() & 0x7F
}

/// Parses a child's `waits` report lines.
fn outcomes(lines: &[String]) -> Vec<(&str, u64)> {
    lines
        .iter()
        .map(|l| {
            let (what, at) = l.split_once(' ').unwrap();
            (what, at.parse().unwrap())
        })
        .collect()
}

#[test]
fn abort_breaks_the_barrier_for_current_and_future_waiters() {
    let (name, s) = barrier_shared("b-abort", 4);
    let children: Vec<_> = (0..2).map(|_| spawn("waits", &[&name, "1"])).collect();
    wait_until(LIMIT, "children to arrive", || arrived(&s) == 2);
    std::thread::sleep(Duration::from_millis(30));
    s.barrier.abort();
    for c in children {
        let lines = finish(c, LIMIT);
        assert_eq!(outcomes(&lines)[0].0, "broken", "{lines:?}");
    }
    assert!(s.barrier.is_broken());
    assert!(matches!(s.barrier.wait(), Err(BarrierError::Broken)));
    assert!(matches!(
        s.barrier.wait_timeout(Duration::from_secs(5)),
        Err(BarrierTimeoutError::Broken)
    ));
}

#[test]
fn a_party_killed_between_generations_breaks_the_next_one_quickly() {
    // Parties: the victim, a waiter process, and this process.
    let (name, s) = barrier_shared("b-killed", 3);
    let victim = spawn("waits-then-sleep", &[&name, "1"]);
    let waiter = spawn("waits", &[&name, "2"]);
    assert!(s.barrier.wait_timeout(LIMIT).is_ok(), "generation 0");
    std::thread::scope(|scope| {
        let me = scope.spawn(|| {
            let r = s.barrier.wait_timeout(Duration::from_secs(30));
            (Instant::now(), r)
        });
        std::thread::sleep(Duration::from_millis(100));
        let wall = wall_micros();
        let killed = kill(victim);
        let (at, r) = me.join().unwrap();
        assert!(matches!(r, Err(BarrierTimeoutError::Broken)), "{r:?}");
        assert!(at - killed < PROMPT, "took {:?}", at - killed);
        let lines = finish(waiter, LIMIT);
        let o = outcomes(&lines);
        assert_eq!(o.len(), 2, "{lines:?}");
        assert_ne!(o[0].0, "broken", "generation 0 passed: {lines:?}");
        assert_eq!(o[1].0, "broken", "{lines:?}");
        let delay = Duration::from_micros(o[1].1.saturating_sub(wall));
        eprintln!("waiter process saw Broken {delay:?} after the kill");
        assert!(delay < PROMPT, "took {delay:?}");
    });
    assert!(matches!(s.barrier.wait(), Err(BarrierError::Broken)));
}

#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_others() {
    let (name, s) = barrier_shared("b-killed-waiting", 3);
    let victim = spawn("waits", &[&name, "1"]);
    let waiter = spawn("waits", &[&name, "1"]);
    wait_until(LIMIT, "both to arrive", || arrived(&s) == 2);
    std::thread::sleep(Duration::from_millis(30));
    let wall = wall_micros();
    kill(victim);
    let lines = finish(waiter, LIMIT);
    let o = outcomes(&lines);
    assert_eq!(o[0].0, "broken", "{lines:?}");
    let delay = Duration::from_micros(o[0].1.saturating_sub(wall));
    assert!(delay < PROMPT, "took {delay:?}");
    assert!(s.barrier.is_broken());
}

#[test]
fn a_party_that_exits_after_its_last_generation_breaks_nothing_until_someone_waits() {
    let (name, s) = barrier_shared("b-exit", 2);
    let child = spawn("waits", &[&name, "3"]);
    for _ in 0..3 {
        assert!(s.barrier.wait_timeout(LIMIT).is_ok());
    }
    let lines = finish(child, LIMIT);
    assert!(
        outcomes(&lines).iter().all(|o| o.0 != "broken"),
        "{lines:?}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(!s.barrier.is_broken(), "nobody waited, nothing to break");
    // Waiting again for a party that is gone: broken, not a hang.
    let t = Instant::now();
    assert!(matches!(
        s.barrier.wait_timeout(Duration::from_secs(30)),
        Err(BarrierTimeoutError::Broken)
    ));
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
}

#[test]
fn barrier_timeouts_withdraw_the_arrival() {
    let (name, s) = barrier_shared("b-timeouts", 2);
    let d = Duration::from_millis(50);
    let timed = |f: &dyn Fn() -> Result<shmkit::sync::BarrierWaitResult, BarrierTimeoutError>,
                 wait: Duration| {
        let t = Instant::now();
        let r = f();
        let took = t.elapsed();
        assert!(matches!(r, Err(BarrierTimeoutError::Timeout)), "{r:?}");
        assert!(took >= wait && took < wait + PROMPT, "took {took:?}");
    };
    timed(&|| s.barrier.wait_timeout(d), d);
    timed(&|| s.barrier.wait_deadline(Instant::now() + d), d);
    timed(&|| s.barrier.wait_deadline(Instant::now()), Duration::ZERO);
    timed(&|| s.barrier.wait_timeout(Duration::ZERO), Duration::ZERO);
    // Four withdrawn arrivals later, a generation still takes exactly two.
    let child = spawn("waits", &[&name, "2"]);
    let mine: Vec<_> = (0..2)
        .map(|_| s.barrier.wait_timeout(LIMIT).unwrap().is_leader())
        .collect();
    let lines = finish(child, LIMIT);
    let theirs: Vec<_> = outcomes(&lines).iter().map(|o| o.0 == "leader").collect();
    assert_eq!(theirs.len(), 2, "{lines:?}");
    for g in 0..2 {
        assert!(mine[g] ^ theirs[g], "generation {g}: one leader");
    }
    // A single-party barrier never waits: past deadlines pass.
    let one = Shm::<Barrier>::anonymous(|b| b.init(1)).unwrap();
    assert!(one.wait_deadline(Instant::now()).unwrap().is_leader());
}

/// Offsets inside a `Barrier`.
const B_STATE: usize = 0;
const B_PARTIES: usize = 4;
const B_TOKENS: usize = 8;

#[test]
fn corrupted_barriers_are_typed_errors_never_hangs() {
    let forever = Duration::from_secs(20);
    // Zeroed memory: not initialized.
    let zeroed = Shm::<Barrier>::anonymous(|_| {}).unwrap();
    assert!(matches!(zeroed.parties(), Err(Corrupted(_))));
    assert!(matches!(zeroed.wait(), Err(BarrierError::Corrupted(_))));

    let b = Shm::<Barrier>::anonymous(|b| b.init(4)).unwrap();
    let r = b.region();
    // SAFETY (every raw copy below): one thread, and the words written
    // are atomics of the barrier, which no reference to plain data covers;
    // the writes play a peer scribbling on them.
    for parties in [65u32, 1000, u32::MAX] {
        unsafe { r.write::<u32>(B_PARTIES, &parties) }.unwrap();
        assert!(matches!(
            b.wait_timeout(forever),
            Err(BarrierTimeoutError::Corrupted(_))
        ));
    }
    unsafe { r.write::<u32>(B_PARTIES, &4) }.unwrap();
    // Arrivals not below the parties, in any generation.
    for state in [4u32, 5, 0x7F, (123 << 9) | 4] {
        unsafe { r.write::<u32>(B_STATE, &state) }.unwrap();
        assert!(matches!(
            b.wait_timeout(forever),
            Err(BarrierTimeoutError::Corrupted(_))
        ));
    }
    // A table entry that is no token: found by the first probe.
    unsafe { r.write::<u32>(B_STATE, &0) }.unwrap();
    let mut garbage_slot = None;
    for i in 0..Barrier::MAX_PARTIES {
        if unsafe { r.read::<u32>(B_TOKENS + 4 * i) }.unwrap() == 0 {
            garbage_slot = Some(i);
            unsafe { r.write::<u32>(B_TOKENS + 4 * i, &0x7FFF_FFFF) }.unwrap();
            break;
        }
    }
    assert!(garbage_slot.is_some());
    let t = Instant::now();
    assert!(matches!(
        b.wait_timeout(forever),
        Err(BarrierTimeoutError::Corrupted(_))
    ));
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
    // A table full of strangers refuses newcomers.
    let full = Shm::<Barrier>::anonymous(|b| b.init(2)).unwrap();
    for i in 0..Barrier::MAX_PARTIES {
        unsafe { full.region().write::<u32>(B_TOKENS + 4 * i, &0x7FFF_FFFF) }.unwrap();
    }
    assert!(matches!(full.wait(), Err(BarrierError::Registry(_))));
}

#[test]
#[should_panic(expected = "parties")]
fn a_barrier_of_zero_parties_is_refused_at_init() {
    let _ = Barrier::new(0);
}

#[test]
#[should_panic(expected = "parties")]
fn a_barrier_of_too_many_parties_is_refused_at_init() {
    let _ = Barrier::new(Barrier::MAX_PARTIES + 1);
}
