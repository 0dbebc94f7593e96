//! Mutex benchmark: shmkit's robust, process-shared `Mutex<u64>` against
//! `std::sync::Mutex`, a process-shared robust `pthread_mutex_t` and
//! `raw_sync`'s process-shared (not robust) pthread mutex.
//!
//! Measured, in one run:
//! 1. **Uncontended lock + unlock**, one pinned thread: ns per pair, one
//!    sample per batch of 1 000 000 pairs, 30 batches after warm-up, the
//!    four locks taking turns batch by batch (so drift hits them alike).
//!    Each critical section increments the protected `u64`, which is
//!    checked after every batch. shmkit's mutex lives in an anonymous region
//!    (`Shm::<Mutex<u64>>::anonymous`); the pthread and `raw_sync` mutexes
//!    in the bytes of another anonymous region, each with its `u64` right
//!    behind it (same cache line, as in shmkit's and std's mutexes).
//! 2. **Hand-off latency between two processes**: the parent and a child
//!    (this binary re-executed, the region inherited with
//!    `Region::pass_to_child`) strictly alternate on a turn counter under
//!    the lock: each side locks, and if the counter's parity says it is its
//!    turn, increments it; then unlocks, and polls again if it was not.
//!    Reported: ns per hand-off (a batch of 10 000 parent turns is 20 000
//!    hand-offs), 50 batches after warm-up; the two processes are pinned to
//!    different CPUs when there are two. The same between two threads on a
//!    `std::sync::Mutex` is a reference row.
//! 3. **Contended throughput**: two processes each do 500 000
//!    lock/increment/unlock as fast as they can on the same mutex; the
//!    parent times from its start signal until both sides are done.
//!    Reported: ns per lock + unlock (time / 1 000 000) and Mops/s, over 11
//!    repetitions after one warm-up; the final count must be 1 000 000 or
//!    the run aborts. The baseline is `std::sync::Mutex` between two
//!    threads, pinned the same way.
//!
//! Each table's ratio column is a row's p50 over its baseline's p50 (named
//! in the column header). Under the tables, the goals are checked
//! against this run's medians: shmkit uncontended within 1.5× of
//! `std::sync::Mutex`, and shmkit's contended throughput not below the
//! robust pthread mutex's.
//!
//! Run: `cargo bench --bench sync` (well under a minute once built). A
//! smoke run with 10× fewer iterations:
//! `SHMKIT_BENCH_QUICK=1 cargo bench --bench sync`. Run without `--bench`
//! (as `cargo test --benches` does), it is quick too. Other arguments are
//! ignored.
//!
//! Every wait on the other side is bounded, and a watchdog ends the run
//! (and, through the parent-death signal, its children) if a blocking lock
//! call never returns, as `raw_sync`'s would if its holder died.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::disallowed_types)] // std's atomics, as users place them
#![warn(clippy::undocumented_unsafe_blocks)]

mod support;

use raw_sync::locks::{LockImpl, LockInit};
use shmkit::sync::Mutex;
use shmkit::{LayoutId, Region, RegionOptions, Shm, ShmSafe};
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{
    verdict, Mode, Placement, Stats, Table, Unit, Wait, CHILD_EXIT_LIMIT, CHILD_IDLE_LIMIT,
    PARENT_WAIT_LIMIT,
};

/// Child role (before `:<lock>`): the other side of the hand-off.
const ROLE_HANDOFF: &str = "handoff";
/// Child role (before `:<lock>`): the other side of the contended count.
const ROLE_CONTEND: &str = "contend";
/// Carries the arena region's descriptor to the child.
const REGION_VAR: &str = "SHMKIT_BENCH_REGION";
/// The whole run (or a child's whole life) ends with an error past this.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The hand-off side that moves when the turn counter is even.
const PARENT_SIDE: u64 = 0;
/// The hand-off side that moves when the turn counter is odd.
const CHILD_SIDE: u64 = 1;

fn main() {
    if let Some(role) = support::child_role() {
        std::process::exit(run_child(&role));
    }
    let clock = support::RunClock::start();
    let mode = Mode::detect();
    let machine = support::Machine::probe();
    support::watchdog(RUN_LIMIT, "the sync benchmark", 1);

    support::print_banner("shmkit sync benchmark", mode, &machine);

    let two_cpus = machine.allowed.len() >= 2;
    let plan = Plan {
        pairs: mode.scale(1_000_000),
        batches: mode.scale(30).max(5),
        warmup_batches: mode.scale(3).max(1),
        moves: if two_cpus { mode.scale(10_000) } else { 100 },
        handoff_batches: mode.scale(50).max(5),
        handoff_warmup: mode.scale(5).max(1),
        iters: mode.scale(500_000),
        reps: if mode.is_quick() { 3 } else { 11 },
        warmup_reps: 1,
    };
    let placement = Placement::for_machine();

    match run(&plan, &placement) {
        Ok(results) => results.print(&plan),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    clock.print_summary();
}

/// Iteration counts for one run.
struct Plan {
    /// Uncontended: lock + unlock pairs per batch.
    pairs: usize,
    /// Uncontended: measured batches per lock.
    batches: usize,
    /// Uncontended: discarded batches per lock.
    warmup_batches: usize,
    /// Hand-off: parent turns per batch (each batch is `2 * moves`
    /// hand-offs).
    moves: usize,
    /// Hand-off: measured batches.
    handoff_batches: usize,
    /// Hand-off: discarded batches.
    handoff_warmup: usize,
    /// Contended: lock/increment/unlock per side per repetition.
    iters: usize,
    /// Contended: measured repetitions.
    reps: usize,
    /// Contended: discarded repetitions.
    warmup_reps: usize,
}

impl Plan {
    /// Turns each hand-off side takes in a whole measurement.
    fn total_moves(&self) -> usize {
        (self.handoff_warmup + self.handoff_batches) * self.moves
    }
}

// ---------------------------------------------------------------------------
// The locks
// ---------------------------------------------------------------------------

/// The four locks measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Std,
    Shmkit,
    Pthread,
    RawSync,
}

impl Kind {
    /// All four, baseline first.
    const ALL: [Kind; 4] = [Kind::Std, Kind::Shmkit, Kind::Pthread, Kind::RawSync];
    /// The three that work across processes.
    const SHARED: [Kind; 3] = [Kind::Shmkit, Kind::Pthread, Kind::RawSync];

    /// Names the lock in a child role.
    fn tag(self) -> &'static str {
        match self {
            Kind::Std => "std",
            Kind::Shmkit => "shmkit",
            Kind::Pthread => "pthread",
            Kind::RawSync => "raw_sync",
        }
    }

    fn from_tag(tag: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// Names the lock in a table.
    fn label(self) -> &'static str {
        match self {
            Kind::Std => "std::sync::Mutex",
            Kind::Shmkit => "shmkit Mutex",
            Kind::Pthread => "pthread robust pshared",
            Kind::RawSync => "raw_sync Mutex (pshared)",
        }
    }
}

/// A mutex protecting a `u64`, as every workload here uses it.
trait BenchLock {
    /// Runs `f` on the protected value while holding the lock.
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> Result<R, String>;
}

/// The error of a failed lock call (kept off the hot path).
#[cold]
#[inline(never)]
fn lock_failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl BenchLock for std::sync::Mutex<u64> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> Result<R, String> {
        match self.lock() {
            Ok(mut guard) => Ok(f(&mut guard)),
            Err(e) => Err(lock_failed("std::sync::Mutex::lock", e)),
        }
    }
}

impl BenchLock for Mutex<u64> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> Result<R, String> {
        match self.lock() {
            Ok(mut guard) => Ok(f(&mut guard)),
            Err(e) => Err(lock_failed("shmkit Mutex::lock", e)),
        }
    }
}

/// Where a pthread or `raw_sync` mutex's `u64` sits after the mutex: right
/// behind the `pthread_mutex_t` (40 bytes on x86-64 glibc), so both share
/// a cache line, as in shmkit's and std's mutexes.
const DATA_AFTER_MUTEX: usize = size_of::<libc::pthread_mutex_t>().next_multiple_of(8);
/// Bytes a pthread or `raw_sync` mutex with its `u64` takes.
const MUTEX_AND_DATA: usize = DATA_AFTER_MUTEX + size_of::<u64>();

/// The address of `MUTEX_AND_DATA` bytes at `offset` in `region`'s data,
/// checked for bounds and for the alignment of a `pthread_mutex_t`.
fn mutex_bytes(region: &Region, offset: usize) -> Result<*mut u8, String> {
    if offset
        .checked_add(MUTEX_AND_DATA)
        .is_none_or(|end| end > region.len())
    {
        return Err(format!(
            "{MUTEX_AND_DATA} mutex bytes at {offset} do not fit a {}-byte region",
            region.len()
        ));
    }
    // SAFETY: offset + MUTEX_AND_DATA <= len (checked), so the address is
    // inside the region's data.
    let p = unsafe { region.as_ptr().add(offset) };
    let align = align_of::<libc::pthread_mutex_t>().max(align_of::<u64>());
    if (p as usize) % align != 0 {
        return Err(format!("mutex bytes at {offset} are not {align}-aligned"));
    }
    Ok(p)
}

/// `Ok` if a pthread call returned 0.
fn pthread_ok(call: &str, rc: libc::c_int) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(lock_failed(call, std::io::Error::from_raw_os_error(rc)))
    }
}

/// A process-shared, robust `pthread_mutex_t` with its `u64` behind it,
/// in a region's bytes.
struct PthreadLock<'a> {
    mutex: *mut libc::pthread_mutex_t,
    data: *mut u64,
    _region: PhantomData<&'a Region>,
}

impl<'a> PthreadLock<'a> {
    /// Initializes the mutex at `offset` in `region` (once, before any
    /// process uses it): `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`.
    fn init(region: &'a Region, offset: usize) -> Result<Self, String> {
        let lock = Self::attach(region, offset)?;
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable memory for a pthread_mutexattr_t,
        // which pthread_mutexattr_init initializes.
        pthread_ok("pthread_mutexattr_init", unsafe {
            libc::pthread_mutexattr_init(attr.as_mut_ptr())
        })?;
        let set = (|| {
            // SAFETY: `attr` was initialized just above.
            pthread_ok("pthread_mutexattr_setpshared", unsafe {
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: as above.
            pthread_ok("pthread_mutexattr_setrobust", unsafe {
                libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)
            })?;
            // SAFETY: `lock.mutex` points to aligned, writable shared
            // memory for a pthread_mutex_t (checked by `attach`) that no
            // process uses yet; `attr` is initialized.
            pthread_ok("pthread_mutex_init", unsafe {
                libc::pthread_mutex_init(lock.mutex, attr.as_ptr())
            })
        })();
        // SAFETY: `attr` is initialized and no longer needed (a mutex
        // does not refer to the attributes it was made with).
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        set.map(|()| lock)
    }

    /// The mutex at `offset` in `region`, initialized by [`Self::init`]
    /// (in this process or the one that created the region).
    fn attach(region: &'a Region, offset: usize) -> Result<Self, String> {
        let p = mutex_bytes(region, offset)?;
        Ok(Self {
            mutex: p.cast(),
            // SAFETY: DATA_AFTER_MUTEX + 8 <= MUTEX_AND_DATA bytes are in
            // bounds (checked by `mutex_bytes`).
            data: unsafe { p.add(DATA_AFTER_MUTEX) }.cast(),
            _region: PhantomData,
        })
    }
}

impl BenchLock for PthreadLock<'_> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> Result<R, String> {
        // SAFETY: `mutex` points to a mutex initialized by `init` in a
        // mapping that outlives `self` (the `'a` borrow of the region).
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex) };
        if rc != 0 {
            // EOWNERDEAD included: nobody dies holding a lock in this
            // bench, so that is a failure too.
            return Err(lock_failed(
                "pthread_mutex_lock",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        // SAFETY: this thread holds the mutex that every participant takes
        // before touching `data`, so the reference is exclusive while it
        // lives; `data` is in bounds and 8-aligned (checked by `attach`).
        let r = f(unsafe { &mut *self.data });
        // SAFETY: this thread locked `mutex` just above.
        let rc = unsafe { libc::pthread_mutex_unlock(self.mutex) };
        if rc != 0 {
            return Err(lock_failed(
                "pthread_mutex_unlock",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(r)
    }
}

/// `raw_sync`'s mutex (a process-shared, not robust, `pthread_mutex_t`
/// behind a `Box<dyn LockImpl>`) with its `u64` behind it, in a region's
/// bytes.
struct RawSyncLock<'a> {
    lock: Box<dyn LockImpl>,
    _region: PhantomData<&'a Region>,
}

impl<'a> RawSyncLock<'a> {
    /// Initializes the mutex at `offset` in `region` (once, before any
    /// process uses it).
    fn init(region: &'a Region, offset: usize) -> Result<Self, String> {
        let p = Self::checked(region, offset)?;
        // SAFETY: `p` is aligned, writable shared memory with room for the
        // mutex (checked) that no process uses yet; its data pointer is the
        // `u64` behind it, in bounds.
        let (lock, _) = unsafe { raw_sync::locks::Mutex::new(p, p.add(DATA_AFTER_MUTEX)) }
            .map_err(|e| lock_failed("raw_sync Mutex::new", e))?;
        Ok(Self {
            lock,
            _region: PhantomData,
        })
    }

    /// The mutex at `offset` in `region`, initialized by [`Self::init`].
    fn attach(region: &'a Region, offset: usize) -> Result<Self, String> {
        let p = Self::checked(region, offset)?;
        // SAFETY: `p` holds a mutex initialized by `init` (in the process
        // that created the region), with room checked; the data pointer is
        // the `u64` behind it, in bounds.
        let (lock, _) =
            unsafe { raw_sync::locks::Mutex::from_existing(p, p.add(DATA_AFTER_MUTEX)) }
                .map_err(|e| lock_failed("raw_sync Mutex::from_existing", e))?;
        Ok(Self {
            lock,
            _region: PhantomData,
        })
    }

    fn checked(region: &Region, offset: usize) -> Result<*mut u8, String> {
        let p = mutex_bytes(region, offset)?;
        let needed = raw_sync::locks::Mutex::size_of(Some(p));
        if needed > DATA_AFTER_MUTEX {
            return Err(format!(
                "raw_sync's mutex needs {needed} bytes, more than the {DATA_AFTER_MUTEX} reserved"
            ));
        }
        Ok(p)
    }
}

impl BenchLock for RawSyncLock<'_> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> Result<R, String> {
        let guard = self
            .lock
            .lock()
            .map_err(|e| lock_failed("raw_sync lock", e))?;
        let data = *guard as *mut u64;
        // SAFETY: the guard holds the mutex that every participant takes
        // before touching the data; `data` is the 8-aligned `u64` given at
        // `init`/`attach`, in a mapping that outlives `self`.
        let r = f(unsafe { &mut *data });
        drop(guard);
        Ok(r)
    }
}

// ---------------------------------------------------------------------------
// The arena: one anonymous region holding the control block and the three
// process-shared locks, each in its own 128-byte slot (two cache lines,
// against adjacent-line prefetch)
// ---------------------------------------------------------------------------

const SLOT: usize = 128;
const CONTROL_AT: usize = 0;
const SHMKIT_AT: usize = SLOT;
const PTHREAD_AT: usize = 2 * SLOT;
const RAW_SYNC_AT: usize = 3 * SLOT;
const ARENA_SIZE: usize = 4 * SLOT;

const _: () = assert!(MUTEX_AND_DATA <= SLOT && size_of::<Mutex<u64>>() <= SLOT);

/// Parent ↔ child signals.
#[repr(C)]
struct Control {
    /// Parent → child: hand-off turns to take, or increments per
    /// repetition (written before the child is spawned).
    count: AtomicU64,
    /// Parent → child: contended repetitions, warm-up included.
    reps: AtomicU64,
    /// Child → parent: 1 once it is attached, pinned and registered.
    ready: AtomicU64,
    /// Parent → child: the repetition to start (from 1).
    go: AtomicU64,
    /// Child → parent: the last repetition it finished.
    done: AtomicU64,
}
// SAFETY: repr(C); every field is an AtomicU64, which is ShmSafe.
unsafe impl ShmSafe for Control {}

struct Arena {
    region: Region,
}

impl Arena {
    fn options() -> RegionOptions {
        RegionOptions::new()
            .size(ARENA_SIZE)
            .layout(LayoutId::named("shmkit-bench::sync-arena", 1))
    }

    /// A fresh arena: zeroed control block and shmkit mutex (zero is an
    /// unlocked `Mutex<u64>` holding 0), initialized pthread and `raw_sync`
    /// mutexes.
    fn create() -> Result<Arena, String> {
        let region = Self::options()
            .anonymous()
            .map_err(|e| format!("creating the arena region: {e}"))?;
        PthreadLock::init(&region, PTHREAD_AT)?;
        RawSyncLock::init(&region, RAW_SYNC_AT)?;
        Ok(Arena { region })
    }

    /// In a child: the arena the parent passed down.
    fn inherited() -> Result<Arena, String> {
        // SAFETY: the parent passed this descriptor with `pass_to_child`
        // under REGION_VAR for exactly this purpose; nothing else in this
        // process owns it, and this is the only call for the variable.
        let region = unsafe { Self::options().from_env(REGION_VAR) }
            .map_err(|e| format!("opening the inherited arena: {e}"))?;
        Ok(Arena { region })
    }

    fn control(&self) -> Result<&Control, String> {
        self.region
            .place::<Control>(CONTROL_AT)
            .map_err(|e| format!("placing the control block: {e}"))
    }

    fn shmkit(&self) -> Result<&Mutex<u64>, String> {
        self.region
            .place::<Mutex<u64>>(SHMKIT_AT)
            .map_err(|e| format!("placing the shmkit mutex: {e}"))
    }

    fn pthread(&self) -> Result<PthreadLock<'_>, String> {
        PthreadLock::attach(&self.region, PTHREAD_AT)
    }

    fn raw_sync(&self) -> Result<RawSyncLock<'_>, String> {
        RawSyncLock::attach(&self.region, RAW_SYNC_AT)
    }
}

/// Evaluates `$body` with `$lock` bound to a reference to the arena's
/// process-shared lock of kind `$kind` (the body is compiled once per lock
/// type, so the hot loops call no function pointer of ours). Used in
/// functions returning `Result<_, String>`.
macro_rules! with_shared_lock {
    ($arena:expr, $kind:expr, |$lock:ident| $body:expr) => {
        match $kind {
            Kind::Shmkit => {
                let $lock = $arena.shmkit()?;
                $body
            }
            Kind::Pthread => {
                let $lock = &$arena.pthread()?;
                $body
            }
            Kind::RawSync => {
                let $lock = &$arena.raw_sync()?;
                $body
            }
            Kind::Std => Err("std::sync::Mutex does not work across processes".to_owned()),
        }
    };
}

// ---------------------------------------------------------------------------
// Workloads, shared by parents, children and threads
// ---------------------------------------------------------------------------

/// `n` lock/increment/unlock; returns the value after the last increment.
#[inline(never)]
fn increment<L: BenchLock>(lock: &L, n: usize) -> Result<u64, String> {
    let lock = std::hint::black_box(lock);
    let mut last = 0;
    for _ in 0..n {
        last = lock.with(|v| {
            *v += 1;
            *v
        })?;
    }
    Ok(last)
}

/// Takes `moves` turns on the turn counter under `lock`: polls (lock,
/// look, unlock) until the counter's parity is `side`, then increments it
/// under the same lock. Each poll is bounded by `limit`.
#[inline(never)]
fn take_turns<L: BenchLock>(
    lock: &L,
    side: u64,
    moves: usize,
    how: Wait,
    limit: Duration,
) -> Result<(), String> {
    for _ in 0..moves {
        let moved = support::wait_for(limit, how, || {
            match lock.with(|turn| {
                let mine = *turn % 2 == side;
                if mine {
                    *turn += 1;
                }
                mine
            }) {
                Ok(true) => Some(Ok(())),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            }
        });
        moved.ok_or_else(|| format!("the other side did not take its turn within {limit:?}"))??;
    }
    Ok(())
}

/// The parent's (or main thread's) side of the hand-off: ns per hand-off,
/// one sample per batch of `plan.moves` turns (`2 * moves` hand-offs).
fn handoff_parent<L: BenchLock>(lock: &L, plan: &Plan, how: Wait) -> Result<Vec<f64>, String> {
    let mut samples = support::time_each(plan.handoff_warmup, plan.handoff_batches, |_| {
        take_turns(lock, PARENT_SIDE, plan.moves, how, PARENT_WAIT_LIMIT)
    })?;
    for s in &mut samples {
        *s /= 2.0 * plan.moves as f64;
    }
    Ok(samples)
}

/// Checks the turn counter once both sides are done.
fn check_turns<L: BenchLock>(lock: &L, plan: &Plan) -> Result<(), String> {
    let expected = 2 * plan.total_moves() as u64;
    let turns = lock.with(|t| *t)?;
    if turns != expected {
        return Err(format!(
            "hand-off: the turn counter is {turns}, expected {expected}: the lock let updates through"
        ));
    }
    Ok(())
}

/// Checks a contended count: both sides' increments, none lost.
fn check_count(what: &str, count: u64, plan: &Plan) -> Result<(), String> {
    let expected = 2 * plan.iters as u64;
    if count != expected {
        return Err(format!(
            "{what}: final count {count}, expected {expected} ({} increments lost): \
             the lock did not exclude",
            expected.saturating_sub(count)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. Uncontended
// ---------------------------------------------------------------------------

/// One lock's uncontended batches: runs a batch, returns the count after it.
type Batch<'a> = Box<dyn FnMut() -> Result<u64, String> + 'a>;

fn uncontended(plan: &Plan, placement: &Placement) -> Result<(Vec<(Kind, Stats)>, bool), String> {
    let std_mutex = std::sync::Mutex::new(0u64);
    let shmkit = Shm::<Mutex<u64>>::anonymous(|_| {})
        .map_err(|e| format!("creating the shmkit mutex region: {e}"))?;
    let arena = Arena::create()?;
    let pthread = arena.pthread()?;
    let raw_sync = arena.raw_sync()?;

    let pairs = plan.pairs;
    let mut runs: Vec<(Kind, Batch<'_>)> = vec![
        (Kind::Std, Box::new(|| increment(&std_mutex, pairs))),
        (Kind::Shmkit, Box::new(|| increment(&*shmkit, pairs))),
        (Kind::Pthread, Box::new(|| increment(&pthread, pairs))),
        (Kind::RawSync, Box::new(|| increment(&raw_sync, pairs))),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.batches); runs.len()];

    let pinned = placement.pin_parent();
    let is_pinned = pinned.as_ref().is_some_and(|p| p.pinned);
    for batch in 0..plan.warmup_batches + plan.batches {
        for ((kind, run), samples) in runs.iter_mut().zip(&mut samples) {
            let t = Instant::now();
            let count = run()?;
            let ns = t.elapsed().as_nanos() as f64;
            let expected = ((batch + 1) * pairs) as u64;
            if count != expected {
                return Err(format!(
                    "uncontended {}: count {count}, expected {expected}",
                    kind.label()
                ));
            }
            if batch >= plan.warmup_batches {
                samples.push(ns / pairs as f64);
            }
        }
    }
    drop(pinned);
    let stats = runs
        .iter()
        .zip(&mut samples)
        .map(|((kind, _), s)| (*kind, Stats::from_samples(s)))
        .collect();
    Ok((stats, is_pinned))
}

// ---------------------------------------------------------------------------
// 2 and 3. Across two processes
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Handoff,
    Contend,
}

impl Scenario {
    fn role(self) -> &'static str {
        match self {
            Scenario::Handoff => ROLE_HANDOFF,
            Scenario::Contend => ROLE_CONTEND,
        }
    }
}

/// Runs `scenario` on the process-shared lock `kind` between this process
/// and a child; returns the samples (ns per hand-off or per lock + unlock).
fn across_processes(
    scenario: Scenario,
    kind: Kind,
    plan: &Plan,
    placement: &Placement,
) -> Result<Vec<f64>, String> {
    let arena = Arena::create()?;
    let ctl = arena.control()?;
    match scenario {
        Scenario::Handoff => ctl
            .count
            .store(plan.total_moves() as u64, Ordering::Release),
        Scenario::Contend => {
            ctl.count.store(plan.iters as u64, Ordering::Release);
            ctl.reps
                .store((plan.warmup_reps + plan.reps) as u64, Ordering::Release);
        }
    }
    let role = format!("{}:{}", scenario.role(), kind.tag());
    let mut child = support::spawn_child(&role, |cmd| {
        arena.region.pass_to_child(cmd, REGION_VAR);
        placement.pass_to_child(cmd);
    })
    .map_err(|e| format!("spawning the {role} child: {e}"))?;

    let pinned = placement.pin_parent();
    let result = support::wait_ready(&mut child, || ctl.ready.load(Ordering::Acquire) == 1)
        .and_then(|()| {
            with_shared_lock!(arena, kind, |lock| match scenario {
                Scenario::Handoff => handoff_parent(lock, plan, placement.how),
                Scenario::Contend => contend_parent(lock, ctl, plan, placement.how),
            })
        });
    drop(pinned);
    let samples = child.settle(result.map_err(|e| format!("{role}: {e}")), CHILD_EXIT_LIMIT)?;
    if scenario == Scenario::Handoff {
        with_shared_lock!(arena, kind, |lock| check_turns(lock, plan))?;
    }
    Ok(samples)
}

/// The parent's side of the contended count: per repetition, zero the
/// count, signal the start, do `plan.iters` increments, wait for the
/// child's; ns per lock + unlock over both sides.
fn contend_parent<L: BenchLock>(
    lock: &L,
    ctl: &Control,
    plan: &Plan,
    how: Wait,
) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(plan.reps);
    for rep in 1..=(plan.warmup_reps + plan.reps) as u64 {
        lock.with(|v| *v = 0)?;
        let t = Instant::now();
        ctl.go.store(rep, Ordering::Release);
        increment(lock, plan.iters)?;
        support::wait_for(PARENT_WAIT_LIMIT, how, || {
            (ctl.done.load(Ordering::Acquire) == rep).then_some(())
        })
        .ok_or_else(|| {
            format!("the child did not finish repetition {rep} within {PARENT_WAIT_LIMIT:?}")
        })?;
        let ns = t.elapsed().as_nanos() as f64;
        check_count("contended, 2 processes", lock.with(|v| *v)?, plan)?;
        if rep > plan.warmup_reps as u64 {
            samples.push(ns / (2 * plan.iters) as f64);
        }
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------
// The std::sync::Mutex references: the same workloads between two threads
// ---------------------------------------------------------------------------

fn handoff_threads(plan: &Plan, placement: &Placement) -> Result<Vec<f64>, String> {
    let lock = std::sync::Mutex::new(0u64);
    let samples = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            placement.pin_child_thread();
            take_turns(
                &lock,
                CHILD_SIDE,
                plan.total_moves(),
                placement.how,
                CHILD_IDLE_LIMIT,
            )
        });
        let pinned = placement.pin_parent();
        let result = handoff_parent(&lock, plan, placement.how);
        drop(pinned);
        let helper = helper
            .join()
            .map_err(|_| "the hand-off helper thread panicked".to_owned())?;
        let samples = result?;
        helper.map_err(|e| format!("hand-off helper thread: {e}"))?;
        Ok::<_, String>(samples)
    })?;
    check_turns(&lock, plan)?;
    Ok(samples)
}

fn contend_threads(plan: &Plan, placement: &Placement) -> Result<Vec<f64>, String> {
    let lock = std::sync::Mutex::new(0u64);
    let pinned = placement.pin_parent();
    let mut samples = Vec::with_capacity(plan.reps);
    for rep in 0..plan.warmup_reps + plan.reps {
        lock.with(|v| *v = 0)?;
        let start = std::sync::Barrier::new(2);
        let ns = std::thread::scope(|s| {
            let helper = s.spawn(|| {
                placement.pin_child_thread();
                start.wait();
                increment(&lock, plan.iters)
            });
            start.wait();
            let t = Instant::now();
            let mine = increment(&lock, plan.iters);
            let theirs = helper
                .join()
                .map_err(|_| "the contending helper thread panicked".to_owned())?;
            let ns = t.elapsed().as_nanos() as f64;
            mine?;
            theirs?;
            Ok::<_, String>(ns)
        })?;
        check_count("contended, 2 threads", lock.with(|v| *v)?, plan)?;
        if rep >= plan.warmup_reps {
            samples.push(ns / (2 * plan.iters) as f64);
        }
    }
    drop(pinned);
    Ok(samples)
}

// ---------------------------------------------------------------------------
// The run and its report
// ---------------------------------------------------------------------------

struct Results {
    pinning: String,
    uncontended: Vec<(Kind, Stats)>,
    /// Process-shared locks between two processes, then std between two
    /// threads.
    handoff: Vec<(Kind, Stats)>,
    /// std between two threads, then the process-shared locks: ns per
    /// lock + unlock.
    contended: Vec<(Kind, Stats)>,
    /// The same runs in Mops/s (percentiles of the reciprocal samples).
    throughput: Vec<(Kind, Stats)>,
}

fn run(plan: &Plan, placement: &Placement) -> Result<Results, String> {
    support::progress("uncontended lock + unlock, four locks in turn");
    let (uncontended, pinned) = uncontended(plan, placement)?;

    let mut handoff = Vec::new();
    for kind in Kind::SHARED {
        support::progress(&format!("hand-off between 2 processes: {}", kind.label()));
        let mut s = across_processes(Scenario::Handoff, kind, plan, placement)?;
        handoff.push((kind, Stats::from_samples(&mut s)));
    }
    support::progress("hand-off between 2 threads: std::sync::Mutex");
    handoff.push((
        Kind::Std,
        Stats::from_samples(&mut handoff_threads(plan, placement)?),
    ));

    let mut contended = Vec::new();
    let mut throughput = Vec::new();
    for kind in Kind::ALL {
        let mut samples = if kind == Kind::Std {
            support::progress("contended count between 2 threads: std::sync::Mutex");
            contend_threads(plan, placement)?
        } else {
            support::progress(&format!(
                "contended count between 2 processes: {}",
                kind.label()
            ));
            across_processes(Scenario::Contend, kind, plan, placement)?
        };
        let mut mops: Vec<f64> = samples.iter().map(|ns| 1e3 / ns).collect();
        contended.push((kind, Stats::from_samples(&mut samples)));
        throughput.push((kind, Stats::from_samples(&mut mops)));
    }

    Ok(Results {
        pinning: placement.describe(pinned),
        uncontended,
        handoff,
        contended,
        throughput,
    })
}

/// The median of `kind` in `rows`.
fn p50(rows: &[(Kind, Stats)], kind: Kind) -> f64 {
    rows.iter()
        .find(|(k, _)| *k == kind)
        .map_or(f64::NAN, |(_, s)| s.p50)
}

impl Results {
    fn print(&self, plan: &Plan) {
        println!("pinning:  {}", self.pinning);

        let mut t = Table::new(format!(
            "\n1. uncontended lock + unlock, one thread (ns per pair; {} batches of {} pairs)",
            plan.batches, plan.pairs
        ));
        t.set_ratio_label("vs std");
        t.set_floor_ns(p50(&self.uncontended, Kind::Std));
        for (kind, stats) in &self.uncontended {
            let name = match kind {
                Kind::Std => "std::sync::Mutex<u64>".to_owned(),
                Kind::Shmkit => "shmkit Mutex<u64>, anonymous region".to_owned(),
                _ => format!("{}, in a region", kind.label()),
            };
            t.row(name, *stats, Unit::Ns);
        }
        t.print();

        let mut t = Table::new(format!(
            "\n2. hand-off latency, strict alternation (ns per hand-off; {} batches of {} hand-offs)",
            plan.handoff_batches,
            2 * plan.moves
        ));
        t.set_ratio_label("vs pthread");
        t.set_floor_ns(p50(&self.handoff, Kind::Pthread));
        for (kind, stats) in &self.handoff {
            let name = match kind {
                Kind::Std => format!("{}, 2 threads (reference)", kind.label()),
                _ => format!("{}, 2 processes", kind.label()),
            };
            t.row(name, *stats, Unit::Ns);
        }
        t.print();

        let mut t = Table::new(format!(
            "\n3. contended, 2 sides x {} lock/increment/unlock (ns per lock+unlock = time / {}; \
             {} repetitions)",
            plan.iters,
            2 * plan.iters,
            plan.reps
        ));
        t.set_ratio_label("vs std");
        t.set_floor_ns(p50(&self.contended, Kind::Std));
        let name = |kind: Kind| match kind {
            Kind::Std => format!("{}, 2 threads", kind.label()),
            _ => format!("{}, 2 processes", kind.label()),
        };
        for (kind, stats) in &self.contended {
            t.row(
                format!("{}: per lock+unlock", name(*kind)),
                *stats,
                Unit::Ns,
            );
        }
        for (kind, mops) in &self.throughput {
            t.row_without_ratio(
                format!("{}: throughput", name(*kind)),
                *mops,
                Unit::Other("Mops/s"),
            );
        }
        t.print();

        self.print_goals();
    }

    fn print_goals(&self) {
        println!("\ngoals (from this run's medians):");
        let ratio = p50(&self.uncontended, Kind::Shmkit) / p50(&self.uncontended, Kind::Std);
        println!(
            "  shmkit uncontended lock+unlock within 1.5x of std::sync::Mutex: {:.2}x -> {}",
            ratio,
            verdict(ratio <= 1.5, || format!(
                "{:.0}% over the 1.5x budget",
                (ratio / 1.5 - 1.0) * 100.0
            ))
        );
        let shmkit = p50(&self.throughput, Kind::Shmkit);
        let pthread = p50(&self.throughput, Kind::Pthread);
        println!(
            "  shmkit contended throughput (2 processes) not below pthread robust: \
             {:.1} vs {:.1} Mops/s ({:.2}x) -> {}",
            shmkit,
            pthread,
            shmkit / pthread,
            verdict(shmkit >= pthread, || format!(
                "{:.0}% below",
                (1.0 - shmkit / pthread) * 100.0
            ))
        );
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

fn run_child(role: &str) -> i32 {
    support::die_with_parent();
    support::watchdog(RUN_LIMIT, &format!("bench child ({role})"), 4);
    let parsed = role
        .split_once(':')
        .and_then(|(r, k)| Kind::from_tag(k).map(|k| (r, k)));
    let result = match parsed {
        Some((ROLE_HANDOFF, kind)) => handoff_child(kind),
        Some((ROLE_CONTEND, kind)) => contend_child(kind),
        _ => {
            eprintln!("bench child: unknown role {role:?}");
            return 2;
        }
    };
    support::exit_code(role, result)
}

/// The inherited arena, this process pinned, and how to wait.
fn child_setup() -> Result<(Arena, Wait), String> {
    let arena = Arena::inherited()?;
    let how = support::child_placement();
    Ok((arena, how))
}

/// Says ready after one lock + unlock, which registers this process as a
/// shmkit participant (a one-time cost kept out of the timings).
fn announce_ready<L: BenchLock>(lock: &L, ctl: &Control) -> Result<(), String> {
    lock.with(|_| ())?;
    ctl.ready.store(1, Ordering::Release);
    Ok(())
}

fn handoff_child(kind: Kind) -> Result<(), String> {
    let (arena, how) = child_setup()?;
    let ctl = arena.control()?;
    let moves = ctl.count.load(Ordering::Acquire) as usize;
    with_shared_lock!(arena, kind, |lock| {
        announce_ready(lock, ctl)?;
        take_turns(lock, CHILD_SIDE, moves, how, CHILD_IDLE_LIMIT)
    })
}

fn contend_child(kind: Kind) -> Result<(), String> {
    let (arena, how) = child_setup()?;
    let ctl = arena.control()?;
    let iters = ctl.count.load(Ordering::Acquire) as usize;
    let reps = ctl.reps.load(Ordering::Acquire);
    with_shared_lock!(arena, kind, |lock| {
        announce_ready(lock, ctl)?;
        for rep in 1..=reps {
            support::wait_for(CHILD_IDLE_LIMIT, how, || {
                (ctl.go.load(Ordering::Acquire) == rep).then_some(())
            })
            .ok_or_else(|| {
                format!("no start signal for repetition {rep} within {CHILD_IDLE_LIMIT:?}")
            })?;
            increment(lock, iters)?;
            ctl.done.store(rep, Ordering::Release);
        }
        Ok(())
    })
}
