//! The parent's side of a pool: its workers, the jobs waiting for one, the
//! outcomes waiting for their handles, and `pump`, which moves all of them
//! along. Whoever holds the pool's lock pumps: a caller waiting for a
//! result, a `submit`, or the supervisor thread when nobody else does.

use super::wire::{self, Assembler, Doorbell, MsgHeader, Sending, WorkerHeader};
use super::{Config, TaskError, INIT_BIT};
use crate::primitive::Ordering;
use crate::process::child::Child;
use crate::process::shared::{Attached, BlockPool};
use crate::process::ExitStatus;
use crate::region::Region;
use crate::ring::bytes::{ByteRing, Consumer, Producer};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the pool looks at whether its workers are alive.
pub(crate) const LIVENESS_INTERVAL: Duration = Duration::from_millis(10);

/// How long a new worker may take to say it is ready before it is killed
/// (a program whose `main` does not begin with `init` runs `main` instead).
pub(crate) const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// Workers in a row that end before they are ready (or before their
/// first task) before the pool gives up on starting more.
const START_FAILURES: u32 = 3;

/// Work for a worker: `count` items of one function.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) count: u32,
    pub(crate) trampoline: u64,
    pub(crate) function: u64,
    pub(crate) args: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    /// Resubmissions left after a worker dies running it.
    pub(crate) retries: u32,
    /// The shared blocks the job's arguments name (their names end
    /// `args`), held until the job is done with.
    pub(crate) attached: Arc<Attached>,
}

impl Job {
    fn header(&self) -> MsgHeader {
        MsgHeader {
            kind: wire::JOB,
            count: self.count,
            id: self.id,
            trampoline: self.trampoline,
            function: self.function,
            attached: self.attached.descs().count() as u32,
            _reserved: 0,
        }
    }
}

/// A RESULTS body, and the shared blocks it names (held until the body is
/// read or dropped).
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    /// Held, not read: the blocks' counts go with the body.
    pub(crate) _held: Attached,
}

/// What became of a job: its RESULTS body, or why there is none.
pub(crate) type Outcome = Result<Body, TaskError>;

/// One worker process and its rings.
pub(crate) struct Worker {
    header: &'static WorkerHeader,
    tasks: Producer<'static>,
    results: Consumer<'static>,
    pub(crate) child: Child,
    /// Jobs given to this worker, oldest first: the first `sent` have gone
    /// into its ring whole, the next is `sending`.
    pub(crate) inflight: VecDeque<Job>,
    sent: usize,
    sending: Sending,
    /// Whether the STOP message is queued (sent after every job).
    stopping: bool,
    stop_sent: Sending,
    asm: Assembler,
    /// It said it retires after its current jobs.
    retiring: bool,
    /// The job its timeout killed it for.
    timed_out: Option<(u64, Duration)>,
    /// The (job, item) it was last seen running, and since when.
    progress: ((u64, u64), Instant),
    spawned: Instant,
    /// Whether it has sent back any result.
    served: bool,
    /// Last: the region the views above borrow.
    _region: Region,
}

impl Worker {
    /// # Safety
    ///
    /// `region` is a worker region this pool just laid out for this worker
    /// alone: this handle is the only producer of its task ring and the
    /// only consumer of its result ring in this process, and the worker
    /// the only other side of each.
    pub(crate) unsafe fn new(region: Region, child: Child, limit: usize) -> crate::Result<Self> {
        // SAFETY: every view made from `r` goes into `Self` beside
        // `region`, its last field.
        let r: &'static Region = unsafe { &*(&region as *const Region) };
        let header = r.place::<WorkerHeader>(0)?;
        let tasks = ByteRing::open(r, wire::TASKS_OFFSET)?;
        let at = wire::TASKS_OFFSET + ByteRing::bytes_for(tasks.capacity())?;
        let results = ByteRing::open(r, at)?;
        let corrupted = |crate::ring::Corrupted(what)| crate::Error::Corrupted { what };
        // SAFETY: by the caller's promise, the only sides of these rings.
        let (tasks, results) = unsafe {
            (
                tasks.producer().map_err(corrupted)?,
                results.consumer().map_err(corrupted)?,
            )
        };
        Ok(Self {
            header,
            tasks,
            results,
            child,
            inflight: VecDeque::new(),
            sent: 0,
            sending: Sending::default(),
            stopping: false,
            stop_sent: Sending::default(),
            asm: Assembler::new(limit),
            retiring: false,
            timed_out: None,
            progress: ((0, 0), Instant::now()),
            spawned: Instant::now(),
            served: false,
            _region: region,
        })
    }

    /// Jobs that have not come back yet.
    pub(crate) fn load(&self) -> usize {
        self.inflight.len()
    }

    /// Whether a message to or from it is half through its ring.
    fn mid_message(&self) -> bool {
        self.sending.sent != 0 || self.asm.in_message()
    }

    /// Whether it may be given another job now.
    fn takes_more(&self, prefetch: usize) -> bool {
        !self.retiring && !self.stopping && self.inflight.len() < prefetch
    }

    /// Pushes what fits of the jobs not yet in the ring (and then STOP);
    /// wakes the worker if anything went in.
    fn flush(&mut self) -> Result<(), &'static str> {
        let mut pushed = false;
        while self.sent < self.inflight.len() {
            let job = &self.inflight[self.sent];
            let before = self.sending.sent;
            let done = wire::send(&mut self.tasks, &job.header(), &job.args, &mut self.sending)?;
            pushed |= self.sending.sent != before;
            if !done {
                break;
            }
            self.sent += 1;
            self.sending = Sending::default();
        }
        if self.stopping && self.sent == self.inflight.len() {
            let stop = MsgHeader {
                kind: wire::STOP,
                ..MsgHeader::default()
            };
            let before = self.stop_sent.sent;
            wire::send(&mut self.tasks, &stop, &[], &mut self.stop_sent)?;
            pushed |= self.stop_sent.sent != before;
        }
        if pushed {
            self.header.tasks_ready.notify();
        }
        Ok(())
    }

    /// The (job, item) the worker says it runs.
    fn running(&self) -> (u64, u64) {
        (
            self.header.job.load(Ordering::Relaxed),
            self.header.item.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.child.as_fd()
    }
}

/// Everything behind the pool's lock.
pub(crate) struct State {
    pub(crate) workers: Vec<Option<Worker>>,
    pub(crate) pending: VecDeque<Job>,
    /// Jobs whose handles still want them: `None` until the outcome is in.
    pub(crate) outcomes: HashMap<u64, Option<Outcome>>,
    pub(crate) next_id: u64,
    /// No more submissions (`close`, `shutdown`).
    pub(crate) closed: bool,
    /// Workers are gone for good; every job fails with this.
    pub(crate) broken: Option<TaskError>,
    pub(crate) last_liveness: Instant,
    pub(crate) stopped: bool,
    /// The supervisor sleeps its idle tick (a submission wakes it).
    pub(crate) supervisor_idle: bool,
    /// Workers in a row that ended before serving anything.
    start_failures: u32,
    /// The pool's shared blocks, if it has them.
    pub(crate) blocks: Option<Arc<BlockPool>>,
}

/// What the pool needs to replace a worker: the doorbell region and the
/// settings.
pub(crate) struct Spawner<'a> {
    pub(crate) config: &'a Config,
    pub(crate) doorbell: &'a Region,
}

impl State {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: (0..workers).map(|_| None).collect(),
            pending: VecDeque::new(),
            outcomes: HashMap::new(),
            next_id: 1,
            closed: false,
            broken: None,
            last_liveness: Instant::now(),
            stopped: false,
            supervisor_idle: false,
            start_failures: 0,
            blocks: None,
        }
    }

    /// A fresh job id (never 0, never with [`INIT_BIT`]).
    pub(crate) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether a message larger than a ring is half way to or from a
    /// worker (its other side is at work on it now).
    pub(crate) fn mid_message(&self) -> bool {
        self.workers.iter().flatten().any(Worker::mid_message)
    }

    /// Whether a worker with a job out last waited on CPU `cpu`.
    pub(crate) fn worker_on(&self, cpu: u64) -> bool {
        self.workers
            .iter()
            .flatten()
            .any(|w| w.load() > 0 && w.header.cpu.load(Ordering::Relaxed) == cpu)
    }

    /// Whether any job is queued or out with a worker.
    pub(crate) fn busy(&self) -> bool {
        !self.pending.is_empty() || self.workers.iter().flatten().any(|w| w.load() > 0)
    }

    /// Records a job's outcome, if its handle still wants it.
    pub(crate) fn finish(&mut self, id: u64, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(&id) {
            *slot = Some(outcome);
        }
    }

    /// Moves everything along: results in, worker deaths handled, jobs
    /// out. Never blocks (a worker replaced is spawned here, though).
    pub(crate) fn pump(&mut self, spawner: &Spawner<'_>) {
        let now = Instant::now();
        for i in 0..self.workers.len() {
            self.collect(i);
        }
        if now.saturating_duration_since(self.last_liveness) >= LIVENESS_INTERVAL {
            self.last_liveness = now;
            self.check_workers(spawner);
        }
        self.check_timeouts(now);
        self.dispatch(super::PREFETCH);
    }

    /// Reads every whole message worker `i` has sent.
    fn collect(&mut self, i: usize) {
        let mut fault = None;
        let Some(before) = self.workers[i].as_ref().map(|w| w.results.index()) else {
            return;
        };
        loop {
            let Some(w) = self.workers[i].as_mut() else {
                return;
            };
            let whole = match w.asm.poll(&mut w.results) {
                Ok(true) => true,
                Ok(false) => false,
                Err(e) => {
                    fault = Some(e);
                    false
                }
            };
            if !whole {
                break;
            }
            let Some((h, rest)) = MsgHeader::split(w.asm.message()) else {
                fault = Some("message shorter than its header");
                break;
            };
            let Some((body, descs)) = h.attachments(rest) else {
                fault = Some("block names that do not fit the message");
                break;
            };
            match h.kind {
                wire::RESULTS => {
                    match w.inflight.front() {
                        Some(job) if job.id == h.id && w.sent > 0 && h.count == job.count => {}
                        _ => {
                            fault = Some("results for a job that is not the oldest out");
                            break;
                        }
                    }
                    let mut attached = Attached::default();
                    for d in &descs {
                        match &self.blocks {
                            Some(bp) if bp.adopt(d) => attached.push(bp.clone(), *d),
                            // Not a block sent back: the item naming it
                            // will not decode.
                            _ => {}
                        }
                    }
                    let body = Body {
                        bytes: body.to_vec(),
                        _held: attached,
                    };
                    w.served = true;
                    w.inflight.pop_front();
                    w.sent -= 1;
                    w.progress = ((0, 0), Instant::now());
                    if h.id & INIT_BIT != 0 {
                        self.init_done(&body.bytes);
                    } else {
                        self.finish(h.id, Ok(body));
                    }
                }
                wire::RETIRING => {
                    w.retiring = true;
                    // It takes nothing more: what it has not done goes back
                    // to the front of the queue, in order.
                    let rest: Vec<Job> = w.inflight.drain(..).collect();
                    w.sent = 0;
                    w.sending = Sending::default();
                    for job in rest.into_iter().rev() {
                        self.pending.push_front(job);
                    }
                }
                _ => {
                    fault = Some("unknown message kind");
                    break;
                }
            }
        }
        // Room freed (part of a message counts: the worker may wait to
        // send the rest of one larger than the ring).
        if let Some(w) = self.workers[i].as_ref() {
            if w.results.index() != before {
                w.header.results_room.notify();
            }
        }
        if let Some(_why) = fault {
            // A worker that breaks the protocol is replaced like a dead one.
            if let Some(w) = self.workers[i].as_mut() {
                let _ = w.child.kill();
            }
        }
    }

    /// A worker's initializer reported back: a panic breaks the
    /// pool (every worker would fail the same way).
    fn init_done(&mut self, body: &[u8]) {
        let message = match body {
            [wire::PLAIN] => return,
            [wire::TAGGED, wire::PANIC, rest @ ..] => {
                <String as crate::process::Payload>::decode(&mut &rest[..]).unwrap_or_default()
            }
            _ => "the initializer's argument did not decode".into(),
        };
        self.break_pool(TaskError::InitializerFailed { message });
    }

    /// Fails every job with `why` and kills every worker.
    pub(crate) fn break_pool(&mut self, why: TaskError) {
        self.broken = Some(why.clone());
        self.fail_all(why);
    }

    /// Fails every job queued or out with a worker, and kills the workers.
    pub(crate) fn fail_all(&mut self, why: TaskError) {
        let mut ids: Vec<u64> = self.pending.drain(..).map(|j| j.id).collect();
        for w in self.workers.iter_mut().flatten() {
            ids.extend(w.inflight.drain(..).map(|j| j.id));
            w.sent = 0;
            let _ = w.child.kill();
        }
        for id in ids {
            self.finish(id, Err(why.clone()));
        }
    }

    /// Replaces workers that have ended; what they left is saved or failed.
    /// Kills one that has not said it is ready within [`STARTUP_LIMIT`].
    fn check_workers(&mut self, spawner: &Spawner<'_>) {
        for w in self.workers.iter_mut().flatten() {
            if w.header.ready.load(Ordering::Acquire) == 0 && w.spawned.elapsed() > STARTUP_LIMIT {
                let _ = w.child.kill();
            }
        }
        let fds: Vec<BorrowedFd<'_>> = self.workers.iter().flatten().map(|w| w.pidfd()).collect();
        let ended: Vec<bool> = match crate::sys::proc::wait_readable(&fds, Some(Instant::now())) {
            Ok(ready) => {
                let mut flags = vec![false; fds.len()];
                for r in ready {
                    flags[r] = true;
                }
                flags
            }
            Err(_) => return,
        };
        drop(fds);
        let mut k = 0;
        for i in 0..self.workers.len() {
            let dead = match self.workers[i] {
                Some(_) => {
                    k += 1;
                    ended[k - 1]
                }
                None => false,
            };
            if dead {
                // What it published before it ended counts.
                self.collect(i);
                if let Some(mut w) = self.workers[i].take() {
                    let status = w.child.wait().unwrap_or(ExitStatus::Signal(0));
                    self.bury(i, w, status);
                }
            }
            if self.workers[i].is_none() && !self.stopped && self.broken.is_none() {
                self.respawn(i, spawner);
            }
        }
    }

    /// Settles the jobs of a worker that ended with `status`: the one it
    /// was running fails (or is retried), the ones it had not started go
    /// back to the front of the queue.
    fn bury(&mut self, i: usize, mut w: Worker, status: ExitStatus) {
        if let Some(bp) = &self.blocks {
            bp.sweep_worker(1 << i);
        }
        let unready = w.header.ready.load(Ordering::Acquire) == 0;
        let failed_start = !w.served && !w.retiring && (unready || status.code().is_some());
        if failed_start && self.start_failures + 1 >= START_FAILURES && !self.stopped {
            self.pending
                .extend(w.inflight.drain(..).filter(|j| j.id & INIT_BIT == 0));
            let message = if unready {
                format!(
                    "workers end before they are ready ({status}): is shmkit::process::init() the first call in main (process_test_support!() in a test file)?"
                )
            } else {
                format!("workers end before their first task ({status})")
            };
            self.break_pool(TaskError::Spawn { message });
            return;
        }
        self.start_failures = if failed_start {
            self.start_failures + 1
        } else {
            0
        };
        let (running, _) = w.running();
        let mut rest: Vec<Job> = w.inflight.drain(..).collect();
        if let Some(first) = rest.first() {
            let started = running == first.id || w.timed_out.is_some_and(|(id, _)| id == first.id);
            if started {
                let job = rest.remove(0);
                let why = match w.timed_out {
                    Some((id, after)) if id == job.id => Some(TaskError::TimedOut { after }),
                    _ => None,
                };
                if job.id & INIT_BIT != 0 {
                    self.break_pool(TaskError::InitializerFailed {
                        message: format!("the worker running it ended ({status})"),
                    });
                    return;
                }
                match why {
                    Some(e) => self.finish(job.id, Err(e)),
                    None if job.retries > 0 => {
                        let mut job = job;
                        job.retries -= 1;
                        rest.insert(0, job);
                    }
                    None => self.finish(job.id, Err(TaskError::WorkerDied { status })),
                }
            }
        }
        for job in rest.into_iter().rev() {
            if job.id & INIT_BIT == 0 {
                self.pending.push_front(job);
            }
        }
    }

    /// Starts a worker in slot `i`.
    pub(crate) fn respawn(&mut self, i: usize, spawner: &Spawner<'_>) {
        match super::spawn_worker(spawner.config, spawner.doorbell, self.blocks.as_deref(), i) {
            Ok(mut w) => {
                if let Some(Ok(init)) = &spawner.config.initializer {
                    let id = INIT_BIT | self.fresh_id();
                    let mut job = init.clone();
                    job.id = id;
                    w.inflight.push_back(job);
                }
                self.workers[i] = Some(w);
            }
            Err(e) => self.break_pool(TaskError::Spawn {
                message: e.to_string(),
            }),
        }
    }

    /// Kills a worker whose current item ran past its job's timeout.
    fn check_timeouts(&mut self, now: Instant) {
        for w in self.workers.iter_mut().flatten() {
            let Some(job) = w.inflight.front() else {
                continue;
            };
            let Some(limit) = job.timeout else {
                continue;
            };
            let seen = w.running();
            if seen.0 != job.id {
                w.progress = (seen, now);
                continue;
            }
            if seen != w.progress.0 {
                w.progress = (seen, now);
            } else if w.timed_out.is_none() && now.saturating_duration_since(w.progress.1) >= limit
            {
                w.timed_out = Some((job.id, limit));
                let _ = w.child.kill();
                // Found at the next liveness look.
                self.last_liveness = now - LIVENESS_INTERVAL;
            }
        }
    }

    /// Gives queued jobs to the least loaded workers that take more, and
    /// pushes what fits into their rings.
    fn dispatch(&mut self, prefetch: usize) {
        while !self.pending.is_empty() {
            let best = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
                .filter(|(_, w)| w.takes_more(prefetch))
                .min_by_key(|(_, w)| w.load())
                .map(|(i, _)| i);
            let Some(i) = best else {
                break;
            };
            let job = self.pending.pop_front().expect("checked non-empty");
            if let Some(w) = self.workers[i].as_mut() {
                w.inflight.push_back(job);
            }
        }
        for w in self.workers.iter_mut().flatten() {
            if w.flush().is_err() {
                let _ = w.child.kill();
            }
        }
    }

    /// Asks every worker to exit once its jobs are done.
    pub(crate) fn stop_workers(&mut self) {
        for w in self.workers.iter_mut().flatten() {
            w.stopping = true;
            if w.flush().is_err() {
                let _ = w.child.kill();
            }
        }
    }
}

/// The doorbell's view, for waiters.
pub(crate) fn rung(doorbell: &Doorbell) -> u64 {
    doorbell.rung.load(Ordering::Acquire)
}
