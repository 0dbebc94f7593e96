//! The shmkit demo: processes working together through shared memory.
//!
//! 1. Two processes, one region: the parent creates a named region holding
//!    an `Exchange`, starts a second process (this same program,
//!    re-executed) that opens the region by name, then the two trade
//!    64-byte messages through it by spinning on atomics: no system call
//!    per message.
//! 2. A crash under a lock: three worker processes update a shared ledger
//!    under a robust `Mutex`; the parent asks the next worker to take the
//!    lock to stay inside it halfway through an update, and kills that
//!    worker with SIGKILL once it says it is there; the next locker gets
//!    `OwnerDied`, repairs the ledger and the others carry on.
//! 3. A work queue: the parent hands jobs to three worker processes over
//!    an MPMC channel and collects the answers over another; every job is
//!    answered exactly once, and when the parent drops its sender the
//!    workers see `Disconnected` and exit.
//! 4. Large frames, zero-copy: the parent publishes 4 MiB frames through a
//!    publish/subscribe service to three subscriber processes, each of
//!    which reads every frame in place, in the pool block the parent wrote
//!    it in; each reports the one-way latency of its frames, set beside the
//!    time one copy of a frame takes on this machine.
//! 5. A process pool: a million tiny tasks through `map` in chunks, single
//!    round trips through `apply`, then a worker killed with SIGKILL in the
//!    middle of an `imap`: only the task it was running fails, the worker
//!    is replaced, and every other task completes.
//!
//! It prints what happened and how long each step took.
//!
//! ```text
//! cargo run --release --example demo [-- ROUND_TRIPS]
//! ```
#![allow(clippy::disallowed_types)]

use shmkit::channel::{MpmcReceiver, MpmcSender, RecvTimeoutError};
use shmkit::pool::PoolConfig;
use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber};
use shmkit::sync::{LockError, Mutex};
use shmkit::{CachePadded, RegionOptions, SharedCell, Shm, ShmSafe};
use std::io::Read;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "SHMKIT_DEMO_CHILD";
/// How long either side waits for the other before giving up.
const PATIENCE: Duration = Duration::from_secs(10);
/// `ping` value that tells the child to stop.
const STOP: u64 = u64::MAX;

/// What the two processes share. `ping` and `pong` sit on their own cache
/// lines so each side writes a line the other only reads.
#[derive(ShmSafe)]
#[repr(C)]
struct Exchange {
    /// Sequence number of the parent's latest message.
    ping: CachePadded<AtomicU64>,
    /// Sequence number of the child's latest reply.
    pong: CachePadded<AtomicU64>,
    /// The parent's message: sequence number in the first 8 bytes.
    request: SharedCell<[u8; 64]>,
    /// The child's reply: the request with every byte incremented.
    reply: SharedCell<[u8; 64]>,
    /// Nanoseconds the child took to open the region.
    child_open_ns: AtomicU64,
    /// The child's pid, written once it is ready.
    child_pid: AtomicU64,
}

fn main() -> ExitCode {
    // A pool worker (act 5) is this program run again: it becomes the
    // worker here.
    shmkit::process::init();
    let result = match std::env::var(ROLE_VAR) {
        Ok(role) => match role.split_once(':') {
            Some(("worker", name)) => worker(name),
            Some(("pingpong", name)) => child(name),
            Some(("queue", names)) => queue_worker(names),
            Some(("frames", name)) => frame_subscriber(name),
            _ => Err(format!("unknown role {role}").into()),
        },
        Err(_) => parent()
            .and_then(|()| crash_demo())
            .and_then(|()| queue_demo())
            .and_then(|()| frames_demo())
            .and_then(|()| pool_demo()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

type DemoResult = Result<(), Box<dyn std::error::Error>>;

/// A progress bar on stderr for a step longer than a second (shown only
/// when stderr is a terminal, so logs stay clean).
struct Progress {
    label: &'static str,
    total: u64,
    shown: u64,
    on: bool,
}

impl Progress {
    fn new(label: &'static str, total: u64) -> Self {
        use std::io::IsTerminal;
        let p = Self {
            label,
            total: total.max(1),
            shown: u64::MAX,
            on: std::io::stderr().is_terminal(),
        };
        p.draw(0);
        p
    }

    /// Records `done` steps; redraws when the bar moves.
    fn set(&mut self, done: u64) {
        let tick = done * 40 / self.total;
        if tick != self.shown {
            self.shown = tick;
            self.draw(done);
        }
    }

    fn draw(&self, done: u64) {
        if self.on {
            let ticks = (done * 40 / self.total) as usize;
            eprint!(
                "\r  {} [{}{}] {:3}%",
                self.label,
                "#".repeat(ticks),
                ".".repeat(40 - ticks),
                done * 100 / self.total
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.on {
            // Clear the line for what is printed next.
            eprint!("\r{}\r", " ".repeat(self.label.len() + 52));
        }
    }
}

fn spin_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut spins = 0u32;
    while !cond() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 && Instant::now() > deadline {
            return Err(format!("timed out after {PATIENCE:?} waiting for {what}"));
        }
    }
    Ok(())
}

fn parent() -> DemoResult {
    let round_trips: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let name = format!("/shmkit-demo-{}", std::process::id());

    println!("shmkit demo: two processes, one shared region\n");
    let t = Instant::now();
    let ex = Shm::<Exchange>::create(&name, |_| {})?;
    let create_time = t.elapsed();
    println!(
        "[parent {}] created region {name} ({} bytes of data) in {create_time:.2?}",
        std::process::id(),
        ex.region().len()
    );

    let t = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE_VAR, format!("pingpong:{name}"))
        .spawn()?;
    let ready = spin_until("the child to open the region", || {
        ex.child_pid.load(Ordering::Acquire) != 0
    });
    if let Err(e) = ready {
        let _ = child.kill();
        return Err(e.into());
    }
    println!(
        "[parent] child {} opened it by name in {:.2?} ({:.2?} after spawn)",
        ex.child_pid.load(Ordering::Relaxed),
        Duration::from_nanos(ex.child_open_ns.load(Ordering::Relaxed)),
        t.elapsed()
    );

    // Round trips: write a request, bump `ping`, wait for `pong`, check the
    // reply.
    let mut samples = Vec::with_capacity(round_trips);
    let started = Instant::now();
    let mut outcome = Ok(());
    let mut progress = Progress::new("round trips", round_trips as u64);
    for seq in 1..=round_trips as u64 {
        if seq % 1024 == 0 {
            progress.set(seq);
        }
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..].fill(seq as u8);
        let t = Instant::now();
        ex.request.set(msg);
        ex.ping.store(seq, Ordering::Release);
        if let Err(e) = spin_until("a reply", || ex.pong.load(Ordering::Acquire) == seq) {
            outcome = Err(e);
            break;
        }
        let reply = ex.reply.get();
        samples.push(t.elapsed().as_nanos() as u64);
        let expected: Vec<u8> = msg.iter().map(|b| b.wrapping_add(1)).collect();
        if reply[..] != expected[..] {
            outcome = Err(format!("reply {seq} is wrong"));
            break;
        }
    }
    let total = started.elapsed();
    drop(progress);
    ex.ping.store(STOP, Ordering::Release);
    let status = child.wait()?;
    outcome?;
    if !status.success() {
        return Err(format!("child exited with {status}").into());
    }

    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "[parent] {round_trips} round trips of 64-byte messages, every reply checked, in {total:.2?}"
    );
    println!(
        "[parent] round trip: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    println!(
        "[parent] one way ≈ {} ns (p50 / 2); {:.2} M round trips/s",
        pct(0.50) / 2,
        round_trips as f64 / total.as_secs_f64() / 1e6
    );
    println!("[parent] child exited cleanly; dropping the region removes {name}");
    Ok(())
}

fn child(name: &str) -> DemoResult {
    let t = Instant::now();
    let ex = Shm::<Exchange>::from_region(
        RegionOptions::for_type::<Exchange>()
            .timeout(PATIENCE)
            .open(name)?,
    )?;
    ex.child_open_ns
        .store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    ex.child_pid
        .store(u64::from(std::process::id()), Ordering::Release);

    let mut last = 0u64;
    loop {
        spin_until("a request", || ex.ping.load(Ordering::Acquire) != last)?;
        let seq = ex.ping.load(Ordering::Acquire);
        if seq == STOP {
            println!(
                "[child {}] answered {last} requests, exiting",
                std::process::id()
            );
            return Ok(());
        }
        let mut msg = ex.request.get();
        if msg[..8] != seq.to_le_bytes() {
            return Err(format!("request {seq} carries the wrong sequence number").into());
        }
        for b in &mut msg {
            *b = b.wrapping_add(1);
        }
        ex.reply.set(msg);
        ex.pong.store(seq, Ordering::Release);
        last = seq;
    }
}

/// The ledger the workers update: `entries` counts updates, `check` must
/// equal it whenever the lock is free. A worker killed between the two
/// writes leaves them unequal.
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Ledger {
    entries: u64,
    check: u64,
    repairs: u64,
}

#[derive(ShmSafe)]
#[repr(C)]
struct Office {
    ledger: Mutex<Ledger>,
    /// Set by the parent when the workers should stop.
    stop: AtomicU64,
    /// Workers that have started.
    started: AtomicU64,
    /// Where the parent's kill aims: 0 (nowhere yet), [`WANTED`] (the next
    /// worker inside the lock is to stay there), or the pid of the worker
    /// that took that role, written from inside the lock, halfway through
    /// its update, which it never finishes.
    victim: AtomicU64,
}

const WORKERS: usize = 3;
/// [`Office::victim`]: the next worker to hold the lock is to stay there.
const WANTED: u64 = u64::MAX;

/// Repairs a ledger whose last holder died between its two writes, and
/// says what was repaired.
fn repair(l: &mut Ledger) -> String {
    let what = format!(
        "entries {} but check {}: an update left half done; set check to {}",
        l.entries, l.check, l.entries
    );
    l.check = l.entries;
    l.repairs += 1;
    what
}

fn crash_demo() -> DemoResult {
    println!("\n--- a worker killed while holding a lock ---\n");
    let name = format!("/shmkit-demo-office-{}", std::process::id());
    let office = Shm::<Office>::create(&name, |_| {})?;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(
            Command::new(std::env::current_exe()?)
                .env(ROLE_VAR, format!("worker:{name}"))
                .spawn()?,
        );
    }
    let t = Instant::now();
    spin_until("the workers to start", || {
        office.started.load(Ordering::Acquire) == WORKERS as u64
    })?;
    std::thread::sleep(Duration::from_millis(100));
    // Ask the next worker to take the lock to stay inside it, and wait for
    // it to say it is there: a kill then lands inside the lock for sure.
    office.victim.store(WANTED, Ordering::Release);
    let mut victim_pid = 0;
    let aimed = spin_until("a worker to be inside the lock", || {
        victim_pid = office.victim.load(Ordering::Acquire);
        victim_pid != WANTED
    })
    .and_then(|()| {
        workers
            .iter()
            .position(|w| u64::from(w.id()) == victim_pid)
            .ok_or_else(|| format!("no worker has pid {victim_pid}"))
    });
    let index = match aimed {
        Ok(i) => i,
        Err(e) => {
            office.stop.store(1, Ordering::Release);
            for mut w in workers {
                let _ = w.kill();
                let _ = w.wait();
            }
            return Err(e.into());
        }
    };
    let mut victim = workers.remove(index);
    let killed = victim.kill();
    let reaped = victim.wait();
    let outcome: DemoResult = killed
        .map_err(Into::into)
        .and(reaped.map(drop).map_err(Into::into));
    if outcome.is_err() {
        office.stop.store(1, Ordering::Release);
        return outcome;
    }
    let killed_at = t.elapsed();
    println!(
        "[parent] {WORKERS} workers sharing the ledger for {killed_at:.0?}; killed worker {} (SIGKILL) while it held the lock, halfway through an update",
        victim.id()
    );
    std::thread::sleep(Duration::from_millis(100));
    office.stop.store(1, Ordering::Release);
    for mut w in workers {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("worker exited with {status}").into());
        }
    }
    let ledger = match office.ledger.lock() {
        Ok(g) => *g,
        Err(LockError::OwnerDied(mut g)) => {
            // The victim died holding it and no survivor locked it since.
            let what = repair(&mut g);
            g.mark_consistent();
            println!("[parent] got OwnerDied: the last holder died mid-update; {what}");
            *g
        }
        Err(e) => return Err(e.to_string().into()),
    };
    if ledger.entries != ledger.check {
        return Err("ledger left inconsistent".into());
    }
    if ledger.repairs != 1 {
        return Err(format!("{} repairs after one kill inside the lock", ledger.repairs).into());
    }
    println!(
        "[parent] survivors finished: {} updates in all, ledger consistent, {} repair(s) after the kill",
        ledger.entries, ledger.repairs
    );
    Ok(())
}

fn worker(name: &str) -> DemoResult {
    let office = Shm::<Office>::from_region(
        RegionOptions::for_type::<Office>()
            .timeout(PATIENCE)
            .open(name)?,
    )?;
    office.started.fetch_add(1, Ordering::AcqRel);
    // Stop when told, or on our own if the parent is gone that long.
    let give_up = Instant::now() + PATIENCE;
    while office.stop.load(Ordering::Acquire) == 0 && Instant::now() < give_up {
        let mut g = match office.ledger.lock() {
            Ok(g) => g,
            Err(LockError::OwnerDied(mut g)) => {
                let t = Instant::now();
                let what = repair(&mut g);
                g.mark_consistent();
                println!(
                    "[worker {}] got OwnerDied: the last holder died mid-update ({what}); repaired in {:.1?}",
                    std::process::id(),
                    t.elapsed()
                );
                g
            }
            Err(e) => return Err(e.to_string().into()),
        };
        g.entries += 1;
        let me = u64::from(std::process::id());
        if office
            .victim
            .compare_exchange(WANTED, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // The parent wants a worker killed inside the lock, and this is
            // it: stay here, update half done, until the kill comes.
            while Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err("was to be killed inside the lock, but no kill came".into());
        }
        // Some work between the two halves of the update.
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {
            std::hint::spin_loop();
        }
        g.check = g.entries;
        drop(g);
    }
    Ok(())
}

/// Worker processes of the work queue.
const QUEUE_WORKERS: usize = 3;
/// Jobs the parent hands out.
const JOBS: u64 = 300_000;

/// The answer to job `n` (something a worker must really compute).
fn answer(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ n
}

fn queue_demo() -> DemoResult {
    println!(
        "\n--- a work queue: jobs to {QUEUE_WORKERS} worker processes over MPMC channels ---\n"
    );
    let pid = std::process::id();
    let (jobs_name, answers_name) = (
        format!("/shmkit-demo-jobs-{pid}"),
        format!("/shmkit-demo-answers-{pid}"),
    );
    let jobs = MpmcSender::<u64>::create(&jobs_name, 1024)?;
    let answers = MpmcReceiver::<[u64; 2]>::create(&answers_name, 1024)?;
    let mut workers = Vec::new();
    for _ in 0..QUEUE_WORKERS {
        workers.push(
            Command::new(std::env::current_exe()?)
                .env(ROLE_VAR, format!("queue:{jobs_name},{answers_name}"))
                .spawn()?,
        );
    }
    let t = Instant::now();
    // Feed the jobs from a thread while this one collects the answers:
    // both channels are bounded, so one thread doing both could wait on a
    // full jobs channel while the workers wait on a full answers channel.
    let feeder = std::thread::spawn(move || -> Result<(), String> {
        for n in 0..JOBS {
            jobs.send(n).map_err(|e| format!("sending job {n}: {e}"))?;
        }
        Ok(()) // dropping `jobs` tells the workers there is no more
    });
    let mut seen = vec![false; JOBS as usize];
    let mut answered = 0u64;
    loop {
        match answers.recv_timeout(PATIENCE) {
            Ok([n, a]) => {
                let slot = seen
                    .get_mut(n as usize)
                    .ok_or_else(|| format!("answer to unknown job {n}"))?;
                if std::mem::replace(slot, true) || a != answer(n) {
                    return Err(format!("job {n} answered twice or wrongly").into());
                }
                answered += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("collecting answers: {e}").into()),
        }
    }
    let elapsed = t.elapsed();
    feeder.join().map_err(|_| "the feeder thread panicked")??;
    for mut w in workers {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("worker exited with {status}").into());
        }
    }
    if answered != JOBS {
        return Err(format!("{answered} of {JOBS} jobs answered").into());
    }
    println!(
        "[parent] {JOBS} jobs out and {answered} answers back, each exactly once, in {elapsed:.0?} \
         ({:.2} M jobs/s, one every {:.0} ns, {QUEUE_WORKERS} workers and the parent sharing \
         {} CPUs)",
        JOBS as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_nanos() as f64 / JOBS as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("[parent] the workers saw Disconnected once the jobs ran out, and exited");
    Ok(())
}

fn queue_worker(names: &str) -> DemoResult {
    let (jobs_name, answers_name) = names.split_once(',').ok_or("bad queue role")?;
    let jobs = MpmcReceiver::<u64>::open(jobs_name)?;
    let answers = MpmcSender::<[u64; 2]>::open(answers_name)?;
    let mut done = 0u64;
    loop {
        match jobs.recv_timeout(PATIENCE) {
            Ok(n) => {
                answers.send([n, answer(n)])?;
                done += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("[worker {}] answered {done} jobs", std::process::id());
    Ok(())
}

/// Subscriber processes of the frame stream.
const FRAME_SUBSCRIBERS: usize = 3;
/// Frames the parent publishes.
const FRAMES: u64 = 200;
/// Bytes in a frame: 4 MiB.
const FRAME_LEN: usize = 4 << 20;
/// Descriptors each subscriber's queue holds.
const FRAME_QUEUE: usize = 4;
/// Frames each subscriber may hold at once.
const FRAME_HELD: usize = 1;
/// Pool blocks of a lossless stream that never finds the pool exhausted
/// (the rule of `ServiceConfig`'s documentation).
const FRAME_BLOCKS: usize = FRAME_SUBSCRIBERS * (FRAME_QUEUE + FRAME_HELD) + 1;
/// Time between two frames: a paced stream (200 frames a second), as a
/// camera's or a renderer's, not one that keeps every CPU busy filling.
const FRAME_INTERVAL: Duration = Duration::from_millis(5);
/// Words of a frame its checksum samples.
const SAMPLED_WORDS: usize = 16;
/// Copies of a frame timed for the comparison.
const COPIES: usize = 20;

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process of the
/// machine (an `Instant` cannot be compared across processes).
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The checksum of a frame's `words` (its number, the time it was sent,
/// this checksum, then the pattern): a hash of `SAMPLED_WORDS` words
/// spread over the frame.
fn sampled_checksum(words: &[u64]) -> u64 {
    let stride = words.len() / SAMPLED_WORDS;
    // The last word of each of `SAMPLED_WORDS` stretches: past the header.
    (1..=SAMPLED_WORDS).fold(0xcbf2_9ce4_8422_2325, |h, k| {
        let w = words.get(k * stride - 1).copied().unwrap_or(0);
        (h ^ w).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The median time of one `copy_from_slice` of a frame's size (after a
/// warm-up that also maps both buffers in).
fn copy_time() -> Duration {
    let src = vec![0x5au8; FRAME_LEN];
    let mut dst = vec![0u8; FRAME_LEN];
    for _ in 0..3 {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    let mut times: Vec<Duration> = (0..COPIES)
        .map(|_| {
            let t = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[COPIES / 2]
}

/// Child processes, killed and reaped when dropped (those that have not
/// exited: an act that stops early leaves none behind).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn frames_demo() -> DemoResult {
    println!(
        "\n--- 4 MiB frames to {FRAME_SUBSCRIBERS} subscriber processes over publish/subscribe, zero-copy ---\n"
    );
    let copy = copy_time();
    println!(
        "[parent] one copy of a 4 MiB frame on this machine: {copy:.0?} (copy_from_slice, median of {COPIES})"
    );
    let name = format!("/shmkit-demo-frames-{}", std::process::id());
    let config = ServiceConfig::new(PoolConfig::new().class(FRAME_LEN, FRAME_BLOCKS))
        .subscribers(FRAME_SUBSCRIBERS)
        .queue_capacity(FRAME_QUEUE)
        .held_limit(FRAME_HELD);
    let publisher = Publisher::create(&name, &config)?;
    println!(
        "[parent] created service {name}: {FRAME_BLOCKS} blocks of 4 MiB, \
         {FRAME_SUBSCRIBERS} × ({FRAME_QUEUE} queued + {FRAME_HELD} held) + 1, so a lossless \
         stream never runs out ({} MiB in all)",
        ServiceConfig::bytes_for(&config)? >> 20
    );
    let t = Instant::now();
    let mut subs = Children(Vec::new());
    for _ in 0..FRAME_SUBSCRIBERS {
        subs.0.push(
            Command::new(std::env::current_exe()?)
                .env(ROLE_VAR, format!("frames:{name}"))
                .stdout(Stdio::piped())
                .spawn()?,
        );
    }
    while publisher.subscribers() < FRAME_SUBSCRIBERS {
        for c in &mut subs.0 {
            if let Some(status) = c.try_wait()? {
                return Err(format!("subscriber {} exited early with {status}", c.id()).into());
            }
        }
        if t.elapsed() > PATIENCE {
            return Err(format!("timed out after {PATIENCE:?} waiting for the subscribers").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "[parent] {FRAME_SUBSCRIBERS} subscriber processes joined in {:.0?}",
        t.elapsed()
    );

    let started = Instant::now();
    let mut fills = Vec::with_capacity(FRAMES as usize);
    let mut progress = Progress::new("frames", FRAMES);
    for n in 0..FRAMES {
        progress.set(n);
        let tick = started + FRAME_INTERVAL * n as u32;
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let fill = Instant::now();
        let mut frame = publisher
            .loan(FRAME_LEN)
            .map_err(|e| format!("loaning a block for frame {n}: {e}"))?;
        let words: &mut [u64] = bytemuck::try_cast_slice_mut(&mut frame[..])
            .map_err(|e| format!("frame {n} is not a slice of words: {e}"))?;
        // The producer's real work: every byte of the frame written once.
        let base = n << 32;
        for (j, w) in words.iter_mut().enumerate() {
            *w = base | j as u64;
        }
        let sum = sampled_checksum(words);
        let [number, sent, check, ..] = words else {
            return Err("a frame shorter than its header".into());
        };
        *number = n;
        *check = sum;
        fills.push(fill.elapsed());
        // The clock starts once the frame is written: what is measured is
        // the trip, not the fill.
        *sent = monotonic_ns();
        frame
            .send_timeout(PATIENCE)
            .map_err(|e| format!("sending frame {n}: {e}"))?;
    }
    let elapsed = started.elapsed();
    drop(progress);
    fills.sort_unstable();
    println!(
        "[parent] published {FRAMES} frames of 4 MiB, one every {FRAME_INTERVAL:.0?}, in \
         {elapsed:.2?}: each written once, in place in a pool block (median {:.0?} to write \
         it), then sent and never copied",
        fills[fills.len() / 2]
    );

    let t = Instant::now();
    let mut statuses = vec![None; subs.0.len()];
    while statuses.iter().any(Option::is_none) {
        for (c, s) in subs.0.iter_mut().zip(&mut statuses) {
            if s.is_none() {
                *s = c.try_wait()?;
            }
        }
        if t.elapsed() > PATIENCE {
            return Err(format!(
                "timed out after {PATIENCE:?} waiting for the subscribers to exit"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (c, status) in subs.0.iter_mut().zip(statuses.into_iter().flatten()) {
        if !status.success() {
            return Err(format!("subscriber {} exited with {status}", c.id()).into());
        }
        // It has exited: its few lines are all in the pipe.
        let mut out = String::new();
        c.stdout
            .take()
            .ok_or("a subscriber's output was not captured")?
            .read_to_string(&mut out)?;
        let report = out
            .lines()
            .find_map(|l| l.strip_prefix("frames "))
            .ok_or_else(|| format!("subscriber {} reported nothing", c.id()))?;
        let figures = report
            .split(' ')
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()?;
        let &[received, p50, p99, max] = &figures[..] else {
            return Err(format!("subscriber {} reported {report:?}", c.id()).into());
        };
        if received != FRAMES {
            return Err(format!(
                "subscriber {} received {received} of {FRAMES} frames",
                c.id()
            )
            .into());
        }
        let ns = Duration::from_nanos;
        println!(
            "[parent] subscriber {}: {received} frames, in order, checksums right; one way \
             p50 {:.1?}, p99 {:.1?}, max {:.1?} for a 4 MiB frame; one copy of it takes \
             {copy:.0?}: p50 {:.0}× less",
            c.id(),
            ns(p50),
            ns(p99),
            ns(max),
            copy.as_secs_f64() / ns(p50.max(1)).as_secs_f64()
        );
    }
    let free = publisher.free_blocks(0);
    if free != Some(FRAME_BLOCKS) {
        return Err(
            format!("{free:?} of {FRAME_BLOCKS} blocks free after the subscribers left").into(),
        );
    }
    println!(
        "[parent] {FRAME_BLOCKS} of {FRAME_BLOCKS} pool blocks free after the subscribers left: \
         every frame's block came back; dropping the publisher removes {name}"
    );
    Ok(())
}

fn frame_subscriber(name: &str) -> DemoResult {
    let sub = Subscriber::open(name)?;
    let first = sub.join_seq();
    let mut latencies = Vec::with_capacity(FRAMES as usize);
    for n in 0..FRAMES {
        let frame = sub
            .recv_timeout(PATIENCE)
            .map_err(|e| format!("receiving frame {n}: {e}"))?;
        let now = monotonic_ns();
        // Read in place: the block the parent wrote.
        let words: &[u64] = bytemuck::try_cast_slice(&frame[..])
            .map_err(|e| format!("frame {n} is not a slice of words: {e}"))?;
        let &[number, sent, check, ..] = words else {
            return Err(format!("frame {n} is shorter than its header").into());
        };
        if frame.len() != FRAME_LEN || number != n || frame.seq() != first + n {
            return Err(format!(
                "expected frame {n} of {FRAME_LEN} bytes, got frame {number} (sample {}) of {}",
                frame.seq(),
                frame.len()
            )
            .into());
        }
        if sampled_checksum(words) != check {
            return Err(format!("frame {n}: checksum of the sampled words is wrong").into());
        }
        let latency = now
            .checked_sub(sent)
            .ok_or_else(|| format!("frame {n} arrived before it was sent"))?;
        latencies.push(latency);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "frames {} {} {} {}",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Act 5: a process pool that survives a killed worker
// ---------------------------------------------------------------------------

fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn slow_mix(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    mix(x)
}

fn pool_demo() -> DemoResult {
    use shmkit::process::{ProcessPool, Shutdown, TaskError};
    println!("\n== 5. a process pool that survives a killed worker");
    let pool = ProcessPool::builder().workers(2).build()?;
    println!("[parent] pool of 2 worker processes: {:?}", pool.pids());

    let n = 1_000_000u64;
    let t = Instant::now();
    let out = pool.map_chunked(mix, 0..n, 1000)?;
    let took = t.elapsed();
    if out.iter().enumerate().any(|(i, v)| *v != mix(i as u64)) {
        return Err("a map result was wrong".into());
    }
    println!(
        "[parent] map of {n} tiny tasks in chunks of 1000: {took:.1?}, {:.1} M tasks/s, every result checked",
        n as f64 / took.as_secs_f64() / 1e6
    );

    let rounds = 10_000u64;
    let t = Instant::now();
    for i in 0..rounds {
        if pool.apply(mix, i)? != mix(i) {
            return Err("an apply result was wrong".into());
        }
    }
    println!(
        "[parent] {rounds} apply round trips: {:.2} µs each",
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );

    let victim = pool.pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status()
    });
    let outcomes: Vec<_> = pool.imap(slow_mix, 0..300).collect();
    killer.join().map_err(|_| "killer thread")??;
    let failed: Vec<(usize, TaskError)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.clone().err().map(|e| (i, e)))
        .collect();
    let ok = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| **o == Ok(mix(*i as u64)))
        .count();
    println!(
        "[parent] worker {victim} SIGKILLed during an imap of 300 tasks: {ok} right results, failed: {failed:?}"
    );
    if ok + failed.len() != 300 || failed.len() > 1 {
        return Err("the killed worker cost more than its own task".into());
    }
    let start = Instant::now();
    while pool.pids().contains(&victim) || pool.pids().len() < 2 {
        if start.elapsed() > PATIENCE {
            return Err("the killed worker was not replaced".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("[parent] replaced: workers now {:?}", pool.pids());
    pool.shutdown(Shutdown::Wait);
    Ok(())
}
