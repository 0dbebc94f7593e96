//! [`ProcessPool`]: worker processes that run functions of this program,
//! fed through shared-memory rings, replaced when they die.

mod state;
pub(crate) mod task;
pub(crate) mod wire;
pub(crate) mod worker;

pub use task::{Imap, Shutdown, TaskError, TaskHandle, WaitTimeoutError};

use super::entry;
use super::payload::Payload;
use super::SpawnError;
use crate::pool::PoolConfig;
use crate::primitive::Ordering;
use crate::process::shared::{self, BlockPool, BytesLoan, LoanBytesError};
use crate::region::{ObjectKind, Region, RegionOptions};
use crate::ring::bytes::{max_message_for, ByteRing};
use crate::sync::wait::{expired, spin_for, spin_within, yield_for};
use state::{Job, Spawner, State, Worker, LIVENESS_INTERVAL};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wire::{Doorbell, WorkerHeader, DOORBELL_LAYOUT, TASKS_OFFSET, WORKER_LAYOUT};

/// Marks a worker's initializer job (never a task id).
pub(crate) const INIT_BIT: u64 = 1 << 63;

/// Jobs a worker holds at once: the one it runs and the next, so it never
/// waits for the parent between two.
pub(crate) const PREFETCH: usize = 2;

/// The largest message a worker may send back (what the parent's
/// assembler accepts).
const MAX_MESSAGE: usize = 1 << 30;

/// How often the supervisor thread moves things along while jobs are out
/// and no caller waits, and while the pool is idle (to replace a worker
/// killed between tasks).
const BUSY_TICK: Duration = Duration::from_millis(2);
const IDLE_TICK: Duration = Duration::from_millis(50);

/// The pool's settings, fixed at [`PoolBuilder::build`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    /// `Err(())`: its function is not in this executable's code.
    pub(crate) initializer: Option<Result<Job, ()>>,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) ring_bytes: usize,
    pub(crate) shared_blocks: Option<PoolConfig>,
}

/// How to make a [`ProcessPool`]: [`ProcessPool::builder`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    config: Config,
}

impl PoolBuilder {
    /// How many worker processes (default: the CPUs this process may run
    /// on, as `std::thread::available_parallelism` says).
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n.max(1);
        self
    }

    /// Runs `f(arg)` once in each worker when it starts (each replacement
    /// too), before any task (Python's `initializer`). If it panics, or
    /// its worker dies running it, the pool is broken: every task fails
    /// with [`TaskError::InitializerFailed`] (rather than starting workers
    /// that fail the same way without end).
    pub fn initializer<A: Payload>(mut self, f: fn(A), arg: A) -> Self {
        let mut args = Vec::new();
        arg.encode(&mut args);
        let run: worker::ChunkTrampoline = worker::run_chunk::<A, ()>;
        self.config.initializer = Some(
            match (entry::offset_of(run as usize), entry::offset_of(f as usize)) {
                (Some(trampoline), Some(function)) => Ok(Job {
                    id: INIT_BIT,
                    count: 1,
                    trampoline,
                    function,
                    args,
                    timeout: None,
                    retries: 0,
                    attached: Default::default(),
                }),
                _ => Err(()),
            },
        );
        self
    }

    /// Replaces each worker after it has run `n` tasks (Python's
    /// `maxtasksperchild`; a chunk of `map` is one task). 0, the default,
    /// keeps workers for the pool's life.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.config.max_tasks_per_child = n;
        self
    }

    /// Gives every task at most `timeout` per item: a worker still on one
    /// item after that is killed and replaced, that task fails with
    /// [`TaskError::TimedOut`], and the others go on (as Python's
    /// `pebble`). [`ProcessPool::submit_timeout`] sets it per task.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.config.task_timeout = Some(timeout);
        self
    }

    /// Resubmits a task whose worker died while running it, up to `n`
    /// times, before it fails with [`TaskError::WorkerDied`] (default 0).
    /// Timed-out tasks are not retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.config.retries = n;
        self
    }

    /// Bytes of each worker's task ring and of its result ring (a power of
    /// two, at least 4 KiB; default 256 KiB). Messages larger than half a
    /// ring cross it in pieces.
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.config.ring_bytes = bytes.max(4096).next_power_of_two();
        self
    }

    /// Gives the pool shared memory for large arguments and results: a
    /// block pool of `config` that the parent and every worker map.
    /// [`ProcessPool::loan_bytes`] and, in a worker,
    /// [`process::loan_bytes`](crate::process::loan_bytes) lend its
    /// blocks; a [`SharedBytes`](crate::process::SharedBytes) made of one
    /// crosses as the block's name and is read in place. At most 62
    /// workers then (a holder bit each).
    pub fn shared_blocks(mut self, config: PoolConfig) -> Self {
        self.config.shared_blocks = Some(config);
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<ProcessPool, SpawnError> {
        ProcessPool::start(self.config)
    }
}

/// What the pool's handles share.
struct Shared {
    state: Mutex<State>,
    /// The supervisor thread parks here.
    idle: Condvar,
    config: Config,
    doorbell: &'static Doorbell,
    // Last: what `doorbell` borrows.
    doorbell_region: Region,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawner(&self) -> Spawner<'_> {
        Spawner {
            config: &self.config,
            doorbell: &self.doorbell_region,
        }
    }

    /// Pumps until `check` finds what it waits for, or `deadline` passes:
    /// spinning on the doorbell a little after each look, then sleeping
    /// on it in slices of [`LIVENESS_INTERVAL`] (a worker's death rings no
    /// bell).
    fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let cpu = crate::sys::proc::current_cpu();
        self.doorbell.waiter_cpu.store(cpu, Ordering::Relaxed);
        loop {
            let seen = state::rung(self.doorbell);
            let (mid_message, together) = {
                let mut st = self.lock();
                st.pump(&self.spawner());
                if let Some(t) = check(&mut st) {
                    return Some(t);
                }
                (st.mid_message(), st.worker_on(cpu))
            };
            if expired(deadline) {
                return None;
            }
            let rang = || (state::rung(self.doorbell) != seen).then_some(());
            // A worker on this CPU cannot answer while we spin: yield to it.
            let first = if together {
                yield_for(rang)
            } else {
                spin_for(rang)
            };
            let spun = first.or_else(|| {
                mid_message
                    .then(|| spin_within(worker::MID_MESSAGE_SPIN, rang))
                    .flatten()
            });
            if spun.is_none() {
                let slice = Instant::now() + LIVENESS_INTERVAL;
                let until = deadline.map_or(slice, |d| d.min(slice));
                self.doorbell.signal.wait_deadline(Some(until), rang);
            }
        }
    }

    /// Queues a job (or fails it at once: a closed or broken pool, a
    /// function a worker cannot find); returns its id.
    fn enqueue(&self, job: Result<Job, TaskError>) -> u64 {
        let mut st = self.lock();
        let id = st.fresh_id();
        st.outcomes.insert(id, None);
        let mut job = match job {
            Ok(job) => job,
            Err(e) => {
                st.finish(id, Err(e));
                return id;
            }
        };
        job.id = id;
        if let Some(e) = st.broken.clone() {
            st.finish(id, Err(e));
        } else if st.closed {
            st.finish(id, Err(TaskError::PoolClosed));
        } else {
            st.pending.push_back(job);
            st.pump(&self.spawner());
            // Wake the supervisor only from its idle sleep: while jobs are
            // out it ticks anyway, and a wake per task would cost a system
            // call and a thread competing for the CPUs.
            if st.supervisor_idle {
                st.supervisor_idle = false;
                self.idle.notify_one();
            }
        }
        id
    }

    /// Takes job `id`'s outcome if it is in.
    fn take(st: &mut State, id: u64) -> Option<state::Outcome> {
        match st.outcomes.get(&id) {
            Some(Some(_)) => st.outcomes.remove(&id).flatten(),
            Some(None) => None,
            // Nobody wants it (cannot happen for a live handle).
            None => Some(Err(TaskError::PoolClosed)),
        }
    }

    /// Forgets job `id`: its outcome is dropped when it comes.
    fn abandon(&self, id: u64) {
        self.lock().outcomes.remove(&id);
    }
}

/// A pool of worker processes that run functions of this program: what
/// Python's `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`
/// offer, without their failure modes. A worker killed mid-task fails that
/// task alone ([`TaskError::WorkerDied`], with its signal) and is replaced;
/// every other task, queued or future, completes. A task that hangs is
/// ended by its timeout without stopping the pool.
///
/// Tasks travel to the workers through shared-memory rings, in chunks for
/// [`map`](Self::map), with no system call per task while the workers are
/// busy; idle workers sleep on a futex. The functions are `fn(A) -> R` of
/// this program with [`Payload`] arguments and results, and `main` must
/// call [`init`](crate::process::init) first (see
/// [`process`](crate::process)). One pool serves any number of threads
/// (`Send + Sync`): each caller's wait moves the whole pool along.
///
/// ```
/// use shmkit::process::{self, ProcessPool, TaskError};
///
/// fn collatz_steps(mut n: u64) -> u32 {
///     let mut steps = 0;
///     while n != 1 {
///         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
///         steps += 1;
///     }
///     steps
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     process::init();
///     let pool = ProcessPool::new()?;
///     let steps = pool.map(collatz_steps, 1..100_001)?;
///     assert_eq!(steps[26], 111); // 27 takes 111 steps
///
///     let task = pool.submit(collatz_steps, 97);
///     assert_eq!(task.wait()?, 118);
///
///     for result in pool.imap_unordered(collatz_steps, 1..1000) {
///         let _steps: u32 = result?;
///     }
///     Ok(())
/// }
/// ```
pub struct ProcessPool {
    shared: Arc<Shared>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

impl ProcessPool {
    /// A pool with one worker per available CPU and the other defaults.
    pub fn new() -> Result<Self, SpawnError> {
        Self::builder().build()
    }

    /// A pool to configure.
    pub fn builder() -> PoolBuilder {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        PoolBuilder {
            config: Config {
                workers,
                initializer: None,
                max_tasks_per_child: 0,
                task_timeout: None,
                retries: 0,
                ring_bytes: 256 << 10,
                shared_blocks: None,
            },
        }
    }

    fn start(config: Config) -> Result<Self, SpawnError> {
        if entry::skipped_init() {
            return Err(SpawnError::NotInitialized);
        }
        if let Some(Err(_)) = &config.initializer {
            return Err(SpawnError::ForeignFunction);
        }
        let doorbell_region = RegionOptions::new()
            .layout(DOORBELL_LAYOUT)
            .kind(ObjectKind::ProcessPool)
            .size(size_of::<Doorbell>())
            .anonymous_with(|r| r.place::<Doorbell>(0).map(drop))
            .map_err(region_error)?;
        // SAFETY: `doorbell` goes into `Shared` beside `doorbell_region`,
        // its last field.
        let bell: &'static Region = unsafe { &*(&doorbell_region as *const Region) };
        let doorbell = bell.place::<Doorbell>(0).map_err(region_error)?;
        let mut st = State::new(config.workers);
        if let Some(blocks) = &config.shared_blocks {
            if config.workers > crate::process::shared::MAX_WORKERS {
                return Err(SpawnError::Config {
                    why: "a pool with shared blocks has at most 62 workers",
                });
            }
            st.blocks = Some(BlockPool::create(blocks).map_err(region_error)?);
        }
        {
            let spawner = Spawner {
                config: &config,
                doorbell: &doorbell_region,
            };
            for i in 0..config.workers {
                st.respawn(i, &spawner);
                if let Some(TaskError::Spawn { message }) = &st.broken {
                    return Err(SpawnError::Io {
                        op: "spawn a pool worker",
                        source: std::io::Error::other(message.clone()),
                    });
                }
            }
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            idle: Condvar::new(),
            config,
            doorbell,
            doorbell_region,
        });
        let s = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("shmkit-pool".into())
            .spawn(move || supervise(&s))
            .map_err(SpawnError::io("spawn the pool's thread"))?;
        Ok(Self {
            shared,
            supervisor: Some(supervisor),
        })
    }

    /// How many workers the pool keeps.
    pub fn workers(&self) -> usize {
        self.shared.config.workers
    }

    /// The process ids of the workers now (they change as workers are
    /// replaced).
    pub fn pids(&self) -> Vec<u32> {
        let st = self.shared.lock();
        st.workers.iter().flatten().map(|w| w.child.pid()).collect()
    }

    /// Runs `f(arg)` in a worker; the handle waits for the result (Python's
    /// `apply_async`, `submit`).
    pub fn submit<A: Payload, R: Payload>(&self, f: fn(A) -> R, arg: A) -> TaskHandle<R> {
        self.submit_with(f, arg, self.shared.config.task_timeout)
    }

    /// [`submit`](Self::submit) with this task's own timeout (see
    /// [`PoolBuilder::task_timeout`]).
    pub fn submit_timeout<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
        timeout: Duration,
    ) -> TaskHandle<R> {
        self.submit_with(f, arg, Some(timeout))
    }

    fn submit_with<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
        timeout: Option<Duration>,
    ) -> TaskHandle<R> {
        let (args, attached) = shared::collect(|| {
            let mut args = Vec::new();
            arg.encode(&mut args);
            args
        });
        let id = self
            .shared
            .enqueue(self.job::<A, R>(f, 1, args, attached, timeout));
        TaskHandle::new(self.shared.clone(), id)
    }

    /// Free blocks of class `class` of the pool's shared memory (`None`
    /// without [`PoolBuilder::shared_blocks`], or for a class it does not
    /// have).
    pub fn free_blocks(&self, class: usize) -> Option<usize> {
        self.shared.lock().blocks.as_ref()?.free_blocks(class)
    }

    /// Lends a block of at least `len` bytes of the pool's shared memory
    /// ([`PoolBuilder::shared_blocks`]), to write a large argument in
    /// place and pass it as [`SharedBytes`](crate::process::SharedBytes).
    pub fn loan_bytes(&self, len: usize) -> Result<BytesLoan, LoanBytesError> {
        let blocks = self.shared.lock().blocks.clone();
        match blocks {
            Some(bp) => Ok(bp.loan(len)?),
            None => Err(LoanBytesError::NoSharedBlocks),
        }
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's
    /// `apply`).
    pub fn apply<A: Payload, R: Payload>(&self, f: fn(A) -> R, arg: A) -> Result<R, TaskError> {
        self.submit(f, arg).wait()
    }

    /// A job of `count` items encoded in `args`, which name the shared
    /// blocks in `attached` (their names are appended).
    fn job<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        count: u32,
        mut args: Vec<u8>,
        attached: shared::Attached,
        timeout: Option<Duration>,
    ) -> Result<Job, TaskError> {
        let ours = self.shared.lock().blocks.as_ref().map(|bp| bp.id());
        if attached.descs().any(|d| Some(d.pool) != ours) {
            return Err(TaskError::Decode(crate::process::DecodeError {
                what: "SharedBytes",
                why: "a block of another pool than this one",
            }));
        }
        for d in attached.descs() {
            d.write(&mut args);
        }
        let run: worker::ChunkTrampoline = worker::run_chunk::<A, R>;
        match (entry::offset_of(run as usize), entry::offset_of(f as usize)) {
            (Some(trampoline), Some(function)) => Ok(Job {
                id: 0,
                count,
                trampoline,
                function,
                args,
                timeout,
                retries: self.shared.config.retries,
                attached: Arc::new(attached),
            }),
            _ => Err(TaskError::ForeignFunction),
        }
    }

    /// `f` over every item, results in order (Python's `map`): the first
    /// failure, in order, is the error. Items go in chunks of about a
    /// quarter of the items per worker, as Python's `map` cuts them.
    pub fn map<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
    ) -> Result<Vec<R>, TaskError> {
        let items = items.into_iter();
        let n = items.size_hint().0;
        let per = self.workers() * 4;
        let chunksize = n.div_ceil(per).max(1);
        self.map_chunked(f, items, chunksize)
    }

    /// [`map`](Self::map) with chunks of `chunksize` items.
    pub fn map_chunked<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Result<Vec<R>, TaskError> {
        self.imap_chunked(f, items, chunksize).collect()
    }

    /// `f` over every item, each result as it comes, in order (Python's
    /// `imap`): one item a task. Items are taken from `items` as results
    /// are consumed, a few tasks per worker ahead.
    pub fn imap<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
    ) -> Imap<'_, A, R, I::IntoIter> {
        self.imap_chunked(f, items, 1)
    }

    /// [`imap`](Self::imap) with tasks of `chunksize` items.
    pub fn imap_chunked<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Imap<'_, A, R, I::IntoIter> {
        Imap::new(self, f, items.into_iter(), chunksize, true)
    }

    /// `f` over every item, each result as soon as its task is done,
    /// whatever the order (Python's `imap_unordered`).
    pub fn imap_unordered<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
    ) -> Imap<'_, A, R, I::IntoIter> {
        self.imap_unordered_chunked(f, items, 1)
    }

    /// [`imap_unordered`](Self::imap_unordered) with tasks of `chunksize`
    /// items (results of one task stay together, in order).
    pub fn imap_unordered_chunked<A: Payload, R: Payload, I: IntoIterator<Item = A>>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Imap<'_, A, R, I::IntoIter> {
        Imap::new(self, f, items.into_iter(), chunksize, false)
    }

    /// Takes no more tasks (Python's `close`): later submissions fail with
    /// [`TaskError::PoolClosed`]; what is queued still runs.
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Stops the pool: see [`Shutdown`] for what happens to the tasks
    /// queued and running. Returns once every worker has exited.
    pub fn shutdown(mut self, how: Shutdown) {
        self.stop(how);
    }

    fn stop(&mut self, how: Shutdown) {
        let shared = &self.shared;
        {
            let mut st = shared.lock();
            st.closed = true;
            match how {
                Shutdown::Wait => {}
                Shutdown::CancelPending => {
                    let ids: Vec<u64> = st.pending.drain(..).map(|j| j.id).collect();
                    for id in ids {
                        st.finish(id, Err(TaskError::Cancelled));
                    }
                }
                Shutdown::Kill => st.fail_all(TaskError::PoolClosed),
            }
        }
        if how != Shutdown::Kill {
            shared.wait_until(None, |st| (!st.busy() || st.broken.is_some()).then_some(()));
        }
        let workers: Vec<Worker> = {
            let mut st = shared.lock();
            st.stopped = true;
            st.stop_workers();
            st.workers.iter_mut().filter_map(Option::take).collect()
        };
        shared.idle.notify_all();
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for mut w in workers {
            if how == Shutdown::Kill
                || !matches!(w.child.wait_deadline(Some(deadline)), Ok(Some(_)))
            {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

impl Drop for ProcessPool {
    /// Kills the workers and fails what has not run
    /// ([`Shutdown::Kill`]), unless [`shutdown`](Self::shutdown) ran.
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            self.stop(Shutdown::Kill);
        }
    }
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

/// The supervisor thread: pumps while jobs are out (so they progress with
/// nobody waiting) and now and then while idle (to replace dead workers).
fn supervise(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stopped {
            return;
        }
        st.pump(&shared.spawner());
        let busy = st.busy();
        st.supervisor_idle = !busy;
        let tick = if busy { BUSY_TICK } else { IDLE_TICK };
        st = shared
            .idle
            .wait_timeout(st, tick)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn region_error(e: crate::Error) -> SpawnError {
    SpawnError::Io {
        op: "lay out a pool region",
        source: std::io::Error::other(e),
    }
}

/// Lays out a worker region and starts a worker on it, for slot `slot`.
pub(crate) fn spawn_worker(
    config: &Config,
    doorbell: &Region,
    blocks: Option<&BlockPool>,
    slot: usize,
) -> Result<Worker, SpawnError> {
    let cap = config.ring_bytes;
    let ring = ByteRing::bytes_for(cap).map_err(region_error)?;
    let exe = crate::sys::proc::exe_identity().map_err(SpawnError::io("stat /proc/self/exe"))?;
    let region = RegionOptions::new()
        .layout(WORKER_LAYOUT)
        .kind(ObjectKind::ProcessPool)
        .size(TASKS_OFFSET + 2 * ring)
        .anonymous_with(|r| {
            let h = r.place::<WorkerHeader>(0)?;
            h.exe_dev.store(exe.0, Ordering::Relaxed);
            h.exe_ino.store(exe.1, Ordering::Relaxed);
            h.max_tasks
                .store(config.max_tasks_per_child, Ordering::Relaxed);
            h.slot.store(slot as u64, Ordering::Relaxed);
            ByteRing::create(r, TASKS_OFFSET, cap, max_message_for(cap))?;
            ByteRing::create(r, TASKS_OFFSET + ring, cap, max_message_for(cap))?;
            Ok(())
        })
        .map_err(region_error)?;
    let builder = super::Builder::new();
    let mut fds = vec![region.as_fd().as_raw_fd(), doorbell.as_fd().as_raw_fd()];
    if let Some(bp) = blocks {
        fds.push(bp.region().as_fd().as_raw_fd());
    }
    let cmd = builder.worker_command("pool", &fds)?;
    let child = builder.stdin(std::process::Stdio::null()).start(cmd)?;
    // SAFETY: the region was laid out just above for this worker alone;
    // this pool makes one `Worker` of it, and the worker process the other
    // side of each ring.
    unsafe { Worker::new(region, child, MAX_MESSAGE) }.map_err(region_error)
}
