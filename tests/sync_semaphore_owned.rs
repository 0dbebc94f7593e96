//! Owned semaphore permits across processes: a waiter gets back the
//! permits of a killed holder within milliseconds, `try_` calls find them
//! too, holders killed at random points of taking and giving back permits
//! leave the count exact (never lower, never higher), a binary semaphore
//! of owned permits never admits two live holders however often they are
//! killed, forgotten permits stay taken, the owner table's limit, and
//! corrupted owner entries.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, kill, report, spawn, unique_name, wait_until, without_spawns};
use shmkit::sync::{
    AcquirePermitTimeoutError, ReleaseError, Semaphore, TryAcquirePermitError, TryWaitError,
    WaitTimeoutError,
};
use shmkit::{Region, RegionOptions, Shm, ShmSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// How soon a death must be noticed (the probe interval is 10 ms).
const PROMPT: Duration = Duration::from_secs(1);
/// Documented offsets in a semaphore.
const SEM_STATE: usize = 0;
const SEM_OWNERS: usize = 16;
/// Child ids the binary test hands out.
const IDS: usize = 256;

#[repr(C)]
struct Board {
    /// At offset 0, so its words sit at the documented offsets.
    sem: Semaphore,
    started: AtomicU32,
    stop: AtomicU32,
    /// Who is inside the binary semaphore's critical section (id + 1).
    holder: AtomicU32,
    violations: AtomicU32,
    /// Entries that found a killed holder still marked inside: its permit
    /// came back.
    takeovers: AtomicU32,
    entries: AtomicU64,
    /// Set (by the parent) just before a child is killed.
    killed: [AtomicU32; IDS],
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for Board {}

fn open(name: &str) -> Shm<Board> {
    Shm::<Board>::open(name).expect("child opens the board")
}

/// xorshift64.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    let b = open(&args[0]);
    match role.as_str() {
        "hold" => {
            // Hold `n` owned permits until killed.
            let n: usize = args[1].parse().unwrap();
            let permits: Vec<_> = (0..n).map(|_| b.sem.acquire_permit().unwrap()).collect();
            b.started.store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
            drop(permits);
        }
        "hold-forgotten" => {
            b.sem.acquire_permit().unwrap().forget();
            b.started.store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
        }
        "churn" => {
            // Take and give back owned permits as fast as possible, one or
            // two at a time, until killed.
            let mut n = 0u64;
            loop {
                let p = b.sem.acquire_permit_timeout(LIMIT).unwrap();
                if n % 3 == 0 {
                    let q = b.sem.acquire_permit_timeout(LIMIT).unwrap();
                    drop(p);
                    drop(q);
                } else {
                    drop(p);
                }
                n += 1;
                if n == 1000 {
                    b.started.store(1, Ordering::Release);
                }
            }
        }
        "binary" => {
            // Enter the critical section of a binary semaphore of owned
            // permits until told to stop (or killed), checking that no
            // live process is ever inside at the same time.
            let id: u32 = args[1].parse().unwrap();
            let me = id + 1;
            let mut n = 0u64;
            while b.stop.load(Ordering::Acquire) == 0 {
                let p = match b.sem.acquire_permit_timeout(Duration::from_millis(50)) {
                    Ok(p) => p,
                    Err(AcquirePermitTimeoutError::Timeout) => continue,
                    Err(e) => panic!("acquire: {e}"),
                };
                let prev = b.holder.swap(me, Ordering::AcqRel);
                if prev != 0 {
                    if b.killed[(prev - 1) as usize].load(Ordering::Acquire) == 0 {
                        // The one we found inside was not being killed: two
                        // live holders.
                        b.violations.fetch_add(1, Ordering::AcqRel);
                        report(format!("entered beside live {}", prev - 1));
                    } else {
                        b.takeovers.fetch_add(1, Ordering::AcqRel);
                    }
                }
                if n % 8 == 0 {
                    spin_for(Duration::from_micros(30));
                }
                if b.holder
                    .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    b.violations.fetch_add(1, Ordering::AcqRel);
                    report("someone entered while I was inside");
                }
                drop(p);
                b.entries.fetch_add(1, Ordering::AcqRel);
                n += 1;
                if n == 100 {
                    b.started.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn board(tag: &str, initial: u32, bound: Option<u32>) -> (String, Shm<Board>) {
    let name = unique_name(tag);
    let b = Shm::<Board>::create(&name, |b| b.sem.init(initial, bound)).unwrap();
    (name, b)
}

/// Spawns `role` and waits until it says it has started.
fn spawn_started(b: &Board, role: &str, args: &[&str]) -> std::process::Child {
    b.started.store(0, Ordering::Release);
    let child = spawn(role, args);
    wait_until(LIMIT, "the child to start", || {
        b.started.load(Ordering::Acquire) != 0
    });
    child
}

#[test]
fn a_waiter_gets_back_the_owned_permits_of_a_killed_holder_promptly() {
    let (name, b) = board("own-rescue", 2, Some(2));
    let child = spawn_started(&b, "hold", &[&name, "2"]);
    assert_eq!(b.sem.available().unwrap(), 0);
    assert!(matches!(
        b.sem.acquire_permit_timeout(Duration::from_millis(30)),
        Err(AcquirePermitTimeoutError::Timeout)
    ));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let p = b.sem.acquire_permit_timeout(Duration::from_secs(20));
            (Instant::now(), p.map(|p| p.forget()))
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = Instant::now();
        kill(child);
        let (got, r) = waiter.join().unwrap();
        r.unwrap();
        let delay = got - killed;
        eprintln!("waiter got a dead holder's permit {delay:?} after the kill");
        assert!(delay < PROMPT, "took {delay:?}");
    });
    // Both came back: the waiter took one (and made it plain), one is left.
    assert_eq!(b.sem.available().unwrap(), 1);
    b.sem.release().unwrap();
    assert_eq!(b.sem.available().unwrap(), 2);
    assert!(matches!(b.sem.release(), Err(ReleaseError::Overflow)));
}

#[test]
fn try_calls_give_back_a_killed_holders_permits_too() {
    let (name, b) = board("own-try", 1, Some(1));
    let child = spawn_started(&b, "hold", &[&name, "1"]);
    assert!(matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)));
    kill(child);
    // A plain try_acquire finds the dead owner's permit (looking at most
    // once a millisecond per thread: the try above just looked).
    std::thread::sleep(Duration::from_millis(2));
    b.sem.try_acquire().unwrap();
    assert!(matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)));
    b.sem.release().unwrap();
    // So does an owned one (and a deadline already past).
    let child = spawn_started(&b, "hold", &[&name, "1"]);
    kill(child);
    std::thread::sleep(Duration::from_millis(2));
    let p = b.sem.acquire_permit_deadline(Instant::now()).unwrap();
    assert!(matches!(
        b.sem.try_acquire_permit(),
        Err(TryAcquirePermitError::WouldBlock)
    ));
    drop(p);
    assert_eq!(b.sem.available().unwrap(), 1);
}

#[test]
fn holders_killed_at_random_points_leave_the_count_exact() {
    const ROUNDS: u32 = 150;
    // Unbounded, so that a permit given back twice shows as a third one
    // (a bound would hide it by saturating).
    let (name, b) = board("own-exact", 2, None);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..ROUNDS {
        let child = spawn_started(&b, "churn", &[&name]);
        std::thread::sleep(Duration::from_micros(next(&mut seed) % 1500));
        kill(child);
        // Both permits come back, whatever the child was doing...
        let p = b
            .sem
            .acquire_permit_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("round {round}: first permit: {e}"));
        let q = b
            .sem
            .acquire_permit_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("round {round}: second permit: {e}"));
        // ...and no third one appears.
        assert!(
            matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)),
            "round {round}: a permit was given back twice"
        );
        drop((p, q));
        assert_eq!(b.sem.available().unwrap(), 2, "round {round}");
    }
}

#[test]
fn a_binary_semaphore_of_owned_permits_never_admits_two_live_holders_under_kills() {
    const KILLS: usize = 60;
    const CHILDREN: usize = 3;
    let (name, b) = board("own-binary", 1, Some(1));
    let mut next_id = 0usize;
    let mut spawn_child = |b: &Board| {
        let id = next_id;
        next_id += 1;
        assert!(id < IDS);
        let before = b.started.load(Ordering::Acquire);
        let child = spawn("binary", &[&name, &id.to_string()]);
        wait_until(LIMIT, "a child to enter", || {
            b.started.load(Ordering::Acquire) > before
        });
        (id, child)
    };
    let mut children: Vec<_> = (0..CHILDREN).map(|_| spawn_child(&b)).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let mut slowest = Duration::ZERO;
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_micros(next(&mut seed) % 3000));
        let (id, child) = children.remove((next(&mut seed) % CHILDREN as u64) as usize);
        b.killed[id].store(1, Ordering::Release);
        let killed = Instant::now();
        kill(child);
        // The others keep entering: the dead one's permit, if it held it,
        // came back.
        let entries = b.entries.load(Ordering::Acquire);
        wait_until(Duration::from_secs(10), "progress after a kill", || {
            b.entries.load(Ordering::Acquire) >= entries + 10
        });
        slowest = slowest.max(killed.elapsed());
        children.push(spawn_child(&b));
    }
    b.stop.store(1, Ordering::Release);
    for (_, child) in children {
        let lines = finish(child, LIMIT);
        assert!(lines.is_empty(), "{lines:?}");
    }
    let takeovers = b.takeovers.load(Ordering::Acquire);
    eprintln!(
        "{} entries, {takeovers} of {KILLS} kills inside the critical section, \
         slowest progress after a kill: {slowest:?}",
        b.entries.load(Ordering::Acquire)
    );
    assert_eq!(b.violations.load(Ordering::Acquire), 0);
    // The holder is inside most of the time: many kills land there.
    assert!(takeovers > 0, "no kill landed inside the critical section");
    // The last holder may have been killed inside: its permit comes back.
    let p = b
        .sem
        .acquire_permit_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(matches!(
        b.sem.try_acquire_permit(),
        Err(TryAcquirePermitError::WouldBlock)
    ));
    drop(p);
    assert_eq!(b.sem.available().unwrap(), 1);
}

#[test]
fn a_forgotten_permit_of_a_killed_holder_stays_taken() {
    let (name, b) = board("own-forget", 1, Some(1));
    let child = spawn_started(&b, "hold-forgotten", &[&name]);
    kill(child);
    assert!(matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)));
    assert!(matches!(
        b.sem.acquire_timeout(Duration::from_millis(30)),
        Err(WaitTimeoutError::Timeout)
    ));
    // It is a plain permit now: anyone may give it back.
    b.sem.release().unwrap();
    assert_eq!(b.sem.available().unwrap(), 1);
}

#[test]
fn the_owner_table_holds_32_participants_and_reclaims_dead_ones() {
    let name = unique_name("own-full");
    let first = Shm::<Board>::create(&name, |b| b.sem.init(40, None)).unwrap();
    let slots = Semaphore::OWNER_SLOTS;
    assert_eq!(slots, 32);
    // One region handle per holder: each is its own participant.
    let handles: Vec<_> = (0..slots)
        .map(|_| Shm::<Board>::open(&name).unwrap())
        .collect();
    let permits: Vec<_> = handles
        .iter()
        .map(|h| h.sem.acquire_permit().unwrap())
        .collect();
    // A 33rd participant has no entry to record an owned permit in...
    let r = first.sem.try_acquire_permit();
    assert!(
        matches!(r, Err(TryAcquirePermitError::Registry(_))),
        "{r:?}"
    );
    let r = first.sem.acquire_permit_timeout(Duration::from_secs(5));
    assert!(
        matches!(r, Err(AcquirePermitTimeoutError::Registry(_))),
        "{r:?}"
    );
    // ...but plain permits work, and holders may take more.
    first.sem.try_acquire().unwrap();
    first.sem.release().unwrap();
    drop(handles[0].sem.try_acquire_permit().unwrap());
    // Holders that die (here: permits never released, handles closed)
    // free their entries, and their permits come back.
    for p in permits {
        std::mem::forget(p);
    }
    without_spawns(|| drop(handles));
    assert_eq!(first.sem.available().unwrap(), 40 - 32);
    let p = first.sem.try_acquire_permit().unwrap();
    assert_eq!(first.sem.available().unwrap(), 39);
    drop(p);
    assert_eq!(first.sem.available().unwrap(), 40);
}

fn owners(region: &Region) -> impl Iterator<Item = (usize, &AtomicU64)> + '_ {
    (0..Semaphore::OWNER_SLOTS).map(move |i| {
        (
            i,
            region
                .place::<AtomicU64>(SEM_OWNERS + 8 * i)
                .expect("in bounds"),
        )
    })
}

/// Whether `r` is an error of the `Corrupted` kind (every sync error type
/// has one, and prints it so).
fn corrupted<T: std::fmt::Debug, E: std::fmt::Debug>(r: Result<T, E>) -> bool {
    matches!(&r, Err(e) if format!("{e:?}").starts_with("Corrupted("))
}

#[test]
fn corrupted_owner_entries_are_errors_never_hangs_or_extra_permits() {
    let name = unique_name("own-corrupt");
    let b = Shm::<Board>::create(&name, |b| b.sem.init(1, Some(1))).unwrap();
    // Scribbles go through a handle of their own, as a peer's would: `b`'s
    // handle holds the semaphore there and refuses atomics over it.
    let peer = RegionOptions::new().any_layout().open(&name).unwrap();
    let state = peer.place::<AtomicU64>(SEM_STATE).unwrap();
    let forever = Duration::from_secs(20);

    // A token no participant ever had, with permits recorded.
    for garbage in [(0x7FFF_FFFFu64 << 33) | 1, ((9u64 << 21) << 33) | 1] {
        b.sem.try_acquire().unwrap();
        let (_, e) = owners(&peer).nth(3).unwrap();
        e.store(garbage, Ordering::Release);
        let t = Instant::now();
        assert!(corrupted(b.sem.try_acquire()), "{garbage:#x}");
        assert!(corrupted(b.sem.acquire_timeout(forever)), "{garbage:#x}");
        assert!(
            corrupted(b.sem.acquire_permit_timeout(forever)),
            "{garbage:#x}"
        );
        assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
        e.store(0, Ordering::Release);
        b.sem.release().unwrap();
    }

    // A dead holder's entry whose parity disagrees with the state while no
    // operation is in flight: never written by a participant.
    let other = Shm::<Board>::open(&name).unwrap();
    std::mem::forget(other.sem.acquire_permit().unwrap());
    drop(other);
    let (i, _) = owners(&peer)
        .find(|(_, e)| e.load(Ordering::Acquire) != 0)
        .unwrap();
    state.fetch_xor(1 << (32 + i), Ordering::AcqRel);
    assert!(corrupted(b.sem.try_acquire()));
    assert!(corrupted(b.sem.acquire_timeout(forever)));
    // Put right, the dead holder's permit comes back, once.
    state.fetch_xor(1 << (32 + i), Ordering::AcqRel);
    b.sem.try_acquire().unwrap();
    assert!(matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)));
    b.sem.release().unwrap();

    // Garbage in a free entry is left alone; a permit's own entry
    // scribbled over is not released twice.
    let (_, e) = owners(&peer).nth(7).unwrap();
    e.store(12345, Ordering::Release);
    let p = b.sem.acquire_permit().unwrap();
    for (_, e) in owners(&peer) {
        if e.load(Ordering::Acquire) >> 33 != 0 {
            e.store(0, Ordering::Release);
        }
    }
    drop(p);
    assert_eq!(b.sem.available().unwrap(), 0);
    b.sem.release().unwrap();
}
