//! Semaphore and Event across processes: a semaphore limiting concurrency
//! among 4 processes, the bounded overflow, every timeout form, manual-
//! and auto-reset events waking waiters in other processes, plain permits
//! lost with a killed holder, and corrupted state written by a peer
//! (including while a waiter sleeps). Owned permits are in
//! `sync_semaphore_owned.rs`.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, report, spawn, unique_name, wait_until};
use shmkit::sync::{
    Corrupted, Event, EventMode, ReleaseError, Semaphore, TryWaitError, WaitTimeoutError,
};
use shmkit::{Region, RegionOptions, Shm, ShmSafe};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Documented offsets of the shared words.
const SEM_STATE: usize = 0;
const SEM_LIMIT: usize = 8;
const SEM_PERMITS: u64 = 0x7FFF_FFFF;
const SEM_SLEEPERS: u64 = 1 << 31;
const EVENT_STATE: usize = 0;
const EVENT_MODE: usize = 4;
const EVENT_SLEEPERS: u32 = 2;

#[repr(C)]
struct SemBoard {
    /// At offset 0, so its words sit at the documented offsets.
    sem: Semaphore,
    inside: AtomicU32,
    max_inside: AtomicU32,
    entries: AtomicU32,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for SemBoard {}

#[repr(C)]
struct EventBoard {
    /// At offset 0, so its words sit at the documented offsets.
    event: Event,
    ready: AtomicU32,
    passed: AtomicU32,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for EventBoard {}

/// The 32-bit word at `offset`, to read or scribble on as a peer would:
/// through another handle of the region's object, since `region` holds
/// the board there and refuses an `AtomicU32` over its words.
fn word(region: &Region, offset: usize) -> Word {
    let peer = peer(region);
    peer.place::<AtomicU32>(offset).expect("word in bounds");
    Word(peer, offset)
}

/// A word of a region, seen through a handle of its own.
struct Word(Region, usize);

impl Word {
    fn load(&self, order: Ordering) -> u32 {
        self.0.place::<AtomicU32>(self.1).unwrap().load(order)
    }
    fn store(&self, value: u32, order: Ordering) {
        self.0
            .place::<AtomicU32>(self.1)
            .unwrap()
            .store(value, order)
    }
}

/// A handle of its own on the object `region` maps, for words read or
/// scribbled on as a peer would.
fn peer(region: &Region) -> Region {
    let opts = RegionOptions::new().any_layout();
    match region.name() {
        Some(name) => opts.open(name),
        None => opts.from_fd(region.as_fd().try_clone_to_owned().unwrap()),
    }
    .expect("another handle")
}

/// The 64-bit word at `offset`, seen through a handle of its own (as
/// [`word`]).
fn word64(region: &Region, offset: usize) -> Word64 {
    let peer = peer(region);
    peer.place::<AtomicU64>(offset).expect("word in bounds");
    Word64(peer, offset)
}

/// A 64-bit word of a region, seen through a handle of its own.
struct Word64(Region, usize);

impl Word64 {
    fn load(&self, order: Ordering) -> u64 {
        self.0.place::<AtomicU64>(self.1).unwrap().load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0
            .place::<AtomicU64>(self.1)
            .unwrap()
            .store(value, order)
    }
}

/// Whether `r` is an error of the `Corrupted` kind (every sync error type
/// has one, and prints it so).
fn corrupted<T: std::fmt::Debug, E: std::fmt::Debug>(r: Result<T, E>) -> bool {
    matches!(&r, Err(e) if format!("{e:?}").starts_with("Corrupted("))
}

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "sem-hold" => {
            let b = Shm::<SemBoard>::open(&args[0]).expect("open");
            let rounds: u32 = args[1].parse().unwrap();
            let permits = b.sem.bound().unwrap().unwrap();
            let enter = || {
                let now = b.inside.fetch_add(1, Ordering::AcqRel) + 1;
                assert!(now <= permits, "{now} holders of {permits} permits");
                b.max_inside.fetch_max(now, Ordering::AcqRel);
                b.entries.fetch_add(1, Ordering::AcqRel);
            };
            let leave = || {
                b.inside.fetch_sub(1, Ordering::AcqRel);
            };
            // Gated round: hold the permit until all permits have been
            // held at once, so the maximum is reached whatever the timing.
            b.sem.acquire().unwrap();
            enter();
            wait_until(LIMIT, "all permits held at once", || {
                b.max_inside.load(Ordering::Acquire) >= permits
            });
            leave();
            b.sem.release().unwrap();
            // Free-running rounds, some holding long enough that the
            // others go to sleep on the futex.
            for i in 0..rounds {
                b.sem.acquire_timeout(LIMIT).unwrap();
                enter();
                if i % 16 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                } else {
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                }
                leave();
                b.sem.release().unwrap();
            }
        }
        "sem-overflow" => {
            let b = Shm::<SemBoard>::open(&args[0]).expect("open");
            b.sem.release().unwrap();
            let err = b.sem.release().unwrap_err();
            report(format!("{err:?} {}", b.sem.available().unwrap()));
        }
        "sem-release-when-asleep" => {
            let b = Shm::<SemBoard>::open(&args[0]).expect("open");
            let state = word64(b.region(), SEM_STATE);
            wait_until(LIMIT, "the parent to sleep", || {
                state.load(Ordering::Acquire) & SEM_SLEEPERS != 0
            });
            b.sem.release().unwrap();
        }
        "sem-hold-forever" => {
            let b = Shm::<SemBoard>::open(&args[0]).expect("open");
            b.sem.acquire().unwrap();
            b.entries.fetch_add(1, Ordering::AcqRel);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "sem-sleep-until-corrupt" => {
            let b = Shm::<SemBoard>::open(&args[0]).expect("open");
            let r = b.sem.acquire();
            assert!(matches!(r, Err(Corrupted(_))), "{r:?}");
            report("corrupted");
        }
        "event-wait" => {
            let b = Shm::<EventBoard>::open(&args[0]).expect("open");
            b.ready.fetch_add(1, Ordering::AcqRel);
            b.event.wait_timeout(LIMIT).unwrap();
            b.passed.fetch_add(1, Ordering::AcqRel);
            report("passed");
        }
        "event-sleep-until-corrupt" => {
            let b = Shm::<EventBoard>::open(&args[0]).expect("open");
            let r = b.event.wait();
            assert!(matches!(r, Err(Corrupted(_))), "{r:?}");
            report("corrupted");
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn layouts_are_as_documented() {
    assert_eq!(
        std::mem::size_of::<Semaphore>(),
        16 + 8 * Semaphore::OWNER_SLOTS
    );
    assert_eq!(std::mem::align_of::<Semaphore>(), 8);
    assert_eq!(std::mem::size_of::<Event>(), 8);
    assert_eq!(std::mem::align_of::<Event>(), 4);
}

#[test]
fn zeroed_memory_is_an_empty_unbounded_semaphore_and_a_clear_manual_event() {
    let s = Shm::<Semaphore>::anonymous(|_| {}).unwrap();
    assert_eq!(s.available().unwrap(), 0);
    assert_eq!(s.bound().unwrap(), None);
    assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
    s.release_n(5).unwrap();
    assert_eq!(s.available().unwrap(), 5);

    let e = Shm::<Event>::anonymous(|_| {}).unwrap();
    assert_eq!(e.mode().unwrap(), EventMode::ManualReset);
    assert!(!e.is_set().unwrap());
    assert!(matches!(e.try_wait(), Err(TryWaitError::WouldBlock)));

    let d = Semaphore::default();
    assert_eq!((d.available().unwrap(), d.bound().unwrap()), (0, None));
    assert_eq!(Event::default().mode().unwrap(), EventMode::ManualReset);
}

#[test]
fn semaphore_limits_concurrency_across_4_processes() {
    const PERMITS: u32 = 2;
    const ROUNDS: u32 = 400;
    let name = unique_name("sem-limit");
    let b = Shm::<SemBoard>::create(&name, |b| b.sem.init(PERMITS, Some(PERMITS))).unwrap();
    let rounds = ROUNDS.to_string();
    let children: Vec<_> = (0..4)
        .map(|_| spawn("sem-hold", &[&name, &rounds]))
        .collect();
    for c in children {
        finish(c, LIMIT);
    }
    assert_eq!(b.max_inside.load(Ordering::Acquire), PERMITS);
    assert_eq!(b.entries.load(Ordering::Acquire), 4 * (ROUNDS + 1));
    assert_eq!(b.inside.load(Ordering::Acquire), 0);
    assert_eq!(b.sem.available().unwrap(), PERMITS);
    // Nobody sleeps any more; at most a stale sleepers bit is left.
    assert_eq!(
        word64(b.region(), SEM_STATE).load(Ordering::Acquire) & !SEM_SLEEPERS,
        u64::from(PERMITS)
    );
}

#[test]
fn bounded_release_past_the_bound_is_overflow_and_changes_nothing() {
    let name = unique_name("sem-overflow");
    let b = Shm::<SemBoard>::create(&name, |b| b.sem.init(1, Some(2))).unwrap();
    assert_eq!(b.sem.bound().unwrap(), Some(2));
    let lines = finish(spawn("sem-overflow", &[&name]), LIMIT);
    assert_eq!(lines, ["Overflow 2"]);
    assert_eq!(b.sem.available().unwrap(), 2);
    assert!(matches!(b.sem.release_n(1), Err(ReleaseError::Overflow)));
    b.sem.try_acquire().unwrap();
    b.sem.try_acquire().unwrap();
    assert!(matches!(b.sem.try_acquire(), Err(TryWaitError::WouldBlock)));
    // A batch past the bound is refused whole.
    assert!(matches!(b.sem.release_n(3), Err(ReleaseError::Overflow)));
    assert_eq!(b.sem.available().unwrap(), 0);
    b.sem.release_n(2).unwrap();
    assert_eq!(b.sem.available().unwrap(), 2);
    b.sem.release_n(0).unwrap();

    // Unbounded semaphores stop at MAX_PERMITS.
    let full = Semaphore::new(Semaphore::MAX_PERMITS, None);
    assert!(matches!(full.release(), Err(ReleaseError::Overflow)));
    assert_eq!(full.available().unwrap(), Semaphore::MAX_PERMITS);
    // A bound of zero is legal: nothing can ever be released.
    let none = Semaphore::new(0, Some(0));
    assert!(matches!(none.release(), Err(ReleaseError::Overflow)));
    assert_eq!(none.bound().unwrap(), Some(0));
}

#[test]
#[should_panic(expected = "initial semaphore permits above its bound")]
fn initial_permits_above_the_bound_panic() {
    let _ = Semaphore::new(3, Some(2));
}

#[test]
#[should_panic(expected = "semaphore bound above Semaphore::MAX_PERMITS")]
fn a_bound_above_max_permits_panics() {
    let _ = Semaphore::new(0, Some(Semaphore::MAX_PERMITS + 1));
}

fn past() -> Instant {
    Instant::now()
        .checked_sub(Duration::from_secs(1))
        .unwrap_or_else(Instant::now)
}

#[test]
fn semaphore_timeout_forms() {
    const WAIT: Duration = Duration::from_millis(80);
    let s = Shm::<Semaphore>::anonymous(|s| s.init(0, Some(1))).unwrap();

    let t = Instant::now();
    assert!(matches!(s.try_acquire(), Err(TryWaitError::WouldBlock)));
    assert!(t.elapsed() < Duration::from_secs(1));

    let t = Instant::now();
    assert!(matches!(
        s.acquire_timeout(WAIT),
        Err(WaitTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= WAIT, "{:?}", t.elapsed());

    let deadline = Instant::now() + WAIT;
    assert!(matches!(
        s.acquire_deadline(deadline),
        Err(WaitTimeoutError::Timeout)
    ));
    assert!(Instant::now() >= deadline);

    let t = Instant::now();
    assert!(matches!(
        s.acquire_deadline(past()),
        Err(WaitTimeoutError::Timeout)
    ));
    assert!(matches!(
        s.acquire_timeout(Duration::ZERO),
        Err(WaitTimeoutError::Timeout)
    ));
    assert!(t.elapsed() < Duration::from_secs(1));

    // A waiter that timed out leaves no permit behind and none taken.
    assert_eq!(s.available().unwrap(), 0);

    // Past deadlines still take a permit that is there (one try).
    s.release().unwrap();
    s.acquire_deadline(past()).unwrap();
    s.release().unwrap();
    s.acquire_timeout(Duration::ZERO).unwrap();
    assert_eq!(s.available().unwrap(), 0);
}

#[test]
fn a_release_in_another_process_wakes_a_sleeping_acquirer() {
    let name = unique_name("sem-wake");
    let b = Shm::<SemBoard>::create(&name, |b| b.sem.init(0, Some(1))).unwrap();
    let child = spawn("sem-release-when-asleep", &[&name]);
    let t = Instant::now();
    b.sem.acquire_timeout(LIMIT).unwrap();
    assert!(t.elapsed() < LIMIT);
    finish(child, LIMIT);
    assert_eq!(b.sem.available().unwrap(), 0);
}

#[test]
fn plain_permits_of_a_killed_holder_are_not_recovered() {
    let name = unique_name("sem-killed");
    let b = Shm::<SemBoard>::create(&name, |b| b.sem.init(2, Some(2))).unwrap();
    let mut child = spawn("sem-hold-forever", &[&name]);
    wait_until(LIMIT, "the child to hold a permit", || {
        b.entries.load(Ordering::Acquire) == 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // As with POSIX semaphores: the dead process's permit is gone.
    assert_eq!(b.sem.available().unwrap(), 1);
    b.sem.try_acquire().unwrap();
    assert!(matches!(
        b.sem.acquire_timeout(Duration::from_millis(20)),
        Err(WaitTimeoutError::Timeout)
    ));
    // Whoever knows better can give it back.
    b.sem.release_n(2).unwrap();
    assert_eq!(b.sem.available().unwrap(), 2);
}

#[test]
fn manual_reset_event_wakes_waiters_in_3_processes() {
    let name = unique_name("event-manual");
    let b = Shm::<EventBoard>::create(&name, |b| b.event.init(EventMode::ManualReset)).unwrap();
    let children: Vec<_> = (0..3).map(|_| spawn("event-wait", &[&name])).collect();
    wait_until(LIMIT, "3 waiters", || b.ready.load(Ordering::Acquire) == 3);
    let state = word(b.region(), EVENT_STATE);
    wait_until(LIMIT, "a waiter to sleep", || {
        state.load(Ordering::Acquire) & EVENT_SLEEPERS != 0
    });
    assert_eq!(b.passed.load(Ordering::Acquire), 0);
    b.event.set().unwrap();
    for c in children {
        assert_eq!(finish(c, LIMIT), ["passed"]);
    }
    assert_eq!(b.passed.load(Ordering::Acquire), 3);
    // Manual reset: still set, and passes everyone until cleared.
    assert!(b.event.is_set().unwrap());
    b.event.try_wait().unwrap();
    b.event.wait().unwrap();
    b.event.clear().unwrap();
    assert!(!b.event.is_set().unwrap());
    assert!(matches!(b.event.try_wait(), Err(TryWaitError::WouldBlock)));
}

#[test]
fn manual_reset_set_then_clear_still_releases_a_sleeping_waiter() {
    let name = unique_name("event-pulse");
    let b = Shm::<EventBoard>::create(&name, |b| b.event.init(EventMode::ManualReset)).unwrap();
    let child = spawn("event-wait", &[&name]);
    let state = word(b.region(), EVENT_STATE);
    wait_until(LIMIT, "the waiter to sleep", || {
        state.load(Ordering::Acquire) & EVENT_SLEEPERS != 0
    });
    b.event.set().unwrap();
    b.event.clear().unwrap();
    assert_eq!(finish(child, LIMIT), ["passed"]);
    assert!(!b.event.is_set().unwrap());
}

#[test]
fn auto_reset_event_lets_one_waiter_through_per_set() {
    let name = unique_name("event-auto");
    let b = Shm::<EventBoard>::create(&name, |b| b.event.init(EventMode::AutoReset)).unwrap();
    let children: Vec<_> = (0..3).map(|_| spawn("event-wait", &[&name])).collect();
    wait_until(LIMIT, "3 waiters", || b.ready.load(Ordering::Acquire) == 3);
    let state = word(b.region(), EVENT_STATE);
    wait_until(LIMIT, "a waiter to sleep", || {
        state.load(Ordering::Acquire) & EVENT_SLEEPERS != 0
    });
    assert_eq!(b.passed.load(Ordering::Acquire), 0);
    for round in 1..=3 {
        b.event.set().unwrap();
        wait_until(LIMIT, "a waiter to pass", || {
            b.passed.load(Ordering::Acquire) >= round
        });
        // Give a wrongly released second waiter time to show up.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.passed.load(Ordering::Acquire), round);
        assert!(!b.event.is_set().unwrap(), "round {round}: not consumed");
    }
    for c in children {
        assert_eq!(finish(c, LIMIT), ["passed"]);
    }
    assert_eq!(b.passed.load(Ordering::Acquire), 3);
    assert!(!b.event.is_set().unwrap());
}

#[test]
fn auto_reset_consumes_and_sets_do_not_add_up() {
    let e = Shm::<Event>::anonymous(|e| e.init(EventMode::AutoReset)).unwrap();
    assert_eq!(e.mode().unwrap(), EventMode::AutoReset);
    e.set().unwrap();
    assert!(e.is_set().unwrap());
    e.try_wait().unwrap();
    assert!(!e.is_set().unwrap());
    assert!(matches!(e.try_wait(), Err(TryWaitError::WouldBlock)));
    e.set().unwrap();
    e.set().unwrap();
    e.wait().unwrap();
    assert!(matches!(e.try_wait(), Err(TryWaitError::WouldBlock)));
    e.set().unwrap();
    e.clear().unwrap();
    assert!(matches!(e.try_wait(), Err(TryWaitError::WouldBlock)));
}

#[test]
fn event_timeout_forms() {
    const WAIT: Duration = Duration::from_millis(80);
    for mode in [EventMode::ManualReset, EventMode::AutoReset] {
        let e = Shm::<Event>::anonymous(|e| e.init(mode)).unwrap();

        let t = Instant::now();
        assert!(matches!(e.try_wait(), Err(TryWaitError::WouldBlock)));
        assert!(t.elapsed() < Duration::from_secs(1));

        let t = Instant::now();
        assert!(matches!(
            e.wait_timeout(WAIT),
            Err(WaitTimeoutError::Timeout)
        ));
        assert!(t.elapsed() >= WAIT, "{mode:?}: {:?}", t.elapsed());

        let deadline = Instant::now() + WAIT;
        assert!(matches!(
            e.wait_deadline(deadline),
            Err(WaitTimeoutError::Timeout)
        ));
        assert!(Instant::now() >= deadline);

        let t = Instant::now();
        assert!(matches!(
            e.wait_deadline(past()),
            Err(WaitTimeoutError::Timeout)
        ));
        assert!(matches!(
            e.wait_timeout(Duration::ZERO),
            Err(WaitTimeoutError::Timeout)
        ));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(!e.is_set().unwrap());

        // Past deadlines still pass a set event.
        e.set().unwrap();
        e.wait_deadline(past()).unwrap();
        e.set().unwrap();
        e.wait_timeout(Duration::ZERO).unwrap();
        assert_eq!(
            e.is_set().unwrap(),
            mode == EventMode::ManualReset,
            "{mode:?}"
        );
    }
}

#[test]
fn corrupted_semaphore_words_are_errors() {
    let s = Shm::<Semaphore>::anonymous(|s| s.init(1, Some(2))).unwrap();
    let count = word64(s.region(), SEM_STATE);
    let limit = word(s.region(), SEM_LIMIT);
    assert_eq!(count.load(Ordering::Relaxed), 1);
    assert_eq!(limit.load(Ordering::Relaxed), 3);

    // Count above the bound, with and without the sleepers bit (and with
    // owner parity bits, which do not make a count valid).
    for garbage in [3, SEM_PERMITS, SEM_SLEEPERS | 5, (1 << 40) | 4] {
        count.store(garbage, Ordering::Relaxed);
        assert!(corrupted(s.try_acquire()), "{garbage:#x}");
        assert!(corrupted(s.acquire()), "{garbage:#x}");
        assert!(corrupted(s.acquire_timeout(LIMIT)), "{garbage:#x}");
        assert!(corrupted(s.acquire_deadline(past())), "{garbage:#x}");
        assert!(corrupted(s.release()), "{garbage:#x}");
        assert!(corrupted(s.release_n(0)), "{garbage:#x}");
        assert!(corrupted(s.available()), "{garbage:#x}");
        assert_eq!(count.load(Ordering::Relaxed), garbage, "changed");
    }
    count.store(2, Ordering::Relaxed);
    s.try_acquire().unwrap();

    // A bound no participant writes.
    for garbage in [0x8000_0001, u32::MAX] {
        limit.store(garbage, Ordering::Relaxed);
        assert!(corrupted(s.try_acquire()), "{garbage:#x}");
        assert!(corrupted(s.acquire()), "{garbage:#x}");
        assert!(corrupted(s.release()), "{garbage:#x}");
        assert!(corrupted(s.available()), "{garbage:#x}");
        assert!(corrupted(s.bound()), "{garbage:#x}");
    }
    // The largest valid limit word: bounded by MAX_PERMITS.
    limit.store(0x8000_0000, Ordering::Relaxed);
    assert_eq!(s.bound().unwrap(), Some(Semaphore::MAX_PERMITS));
    s.release().unwrap();
    assert_eq!(s.available().unwrap(), 2);
}

#[test]
fn corrupted_event_words_are_errors() {
    for mode in [EventMode::ManualReset, EventMode::AutoReset] {
        let e = Shm::<Event>::anonymous(|e| e.init(mode)).unwrap();
        let state = word(e.region(), EVENT_STATE);
        let mode_word = word(e.region(), EVENT_MODE);

        // Set together with sleepers: never written by a participant.
        state.store(3, Ordering::Relaxed);
        assert!(corrupted(e.set()), "{mode:?}");
        assert!(corrupted(e.clear()), "{mode:?}");
        assert!(corrupted(e.is_set()), "{mode:?}");
        assert!(corrupted(e.try_wait()), "{mode:?}");
        assert!(corrupted(e.wait()), "{mode:?}");
        assert!(corrupted(e.wait_timeout(LIMIT)), "{mode:?}");
        assert!(corrupted(e.wait_deadline(past())), "{mode:?}");
        assert_eq!(state.load(Ordering::Relaxed), 3);

        // A generation: fine in manual reset, garbage in auto reset.
        state.store(4 * 7, Ordering::Relaxed);
        match mode {
            EventMode::ManualReset => {
                assert!(!e.is_set().unwrap());
                e.set().unwrap();
                e.wait().unwrap();
            }
            EventMode::AutoReset => {
                assert!(corrupted(e.is_set()));
                assert!(corrupted(e.set()));
                assert!(corrupted(e.wait()));
            }
        }

        // A mode no participant writes.
        state.store(0, Ordering::Relaxed);
        for garbage in [2, u32::MAX] {
            mode_word.store(garbage, Ordering::Relaxed);
            assert!(corrupted(e.mode()), "{garbage:#x}");
            assert!(corrupted(e.set()), "{garbage:#x}");
            assert!(corrupted(e.clear()), "{garbage:#x}");
            assert!(corrupted(e.is_set()), "{garbage:#x}");
            assert!(corrupted(e.try_wait()), "{garbage:#x}");
            assert!(corrupted(e.wait()), "{garbage:#x}");
        }
    }
}

#[test]
fn a_sleeping_acquirer_notices_corruption_written_by_a_peer() {
    // Garbage in the count, then in the bound; neither write wakes the
    // futex, so the sleeper finds it by re-checking on its own.
    for (offset, garbage) in [(SEM_STATE, 9), (SEM_LIMIT, u32::MAX)] {
        let name = unique_name("sem-corrupt");
        let b = Shm::<SemBoard>::create(&name, |b| b.sem.init(0, Some(1))).unwrap();
        let child = spawn("sem-sleep-until-corrupt", &[&name]);
        let state = word64(b.region(), SEM_STATE);
        wait_until(LIMIT, "the child to sleep", || {
            state.load(Ordering::Acquire) & SEM_SLEEPERS != 0
        });
        // (The low half of the state, on this little-endian target.)
        word(b.region(), offset).store(garbage, Ordering::Release);
        assert_eq!(finish(child, LIMIT), ["corrupted"], "offset {offset}");
    }
}

#[test]
fn a_sleeping_event_waiter_notices_corruption_written_by_a_peer() {
    for (offset, garbage) in [(EVENT_MODE, 9), (EVENT_STATE, 4 * 5 + 3)] {
        let name = unique_name("event-corrupt");
        let b = Shm::<EventBoard>::create(&name, |b| b.event.init(EventMode::ManualReset)).unwrap();
        let child = spawn("event-sleep-until-corrupt", &[&name]);
        let state = word(b.region(), EVENT_STATE);
        wait_until(LIMIT, "the child to sleep", || {
            state.load(Ordering::Acquire) & EVENT_SLEEPERS != 0
        });
        word(b.region(), offset).store(garbage, Ordering::Release);
        assert_eq!(finish(child, LIMIT), ["corrupted"], "offset {offset}");
    }
}
