//! The one protocol every row runs, whatever carries its messages.
//!
//! A row is two [`End`]s, this process's and its far end's (a child
//! process, or a thread for the in-process references). Every message is
//! `size` bytes with a sequence number stamped into its first and its last
//! 8 bytes ([`stamp`]); a receiver checks both stamps ([`read_stamp`]), so
//! a torn or stale message is an error, never a figure.
//!
//! The far end first sends [`READY`] (it is attached), then echoes
//! `echoes` messages (the latency phase: warm-up rounds, then timed round
//! trips, one-way = round trip / 2), then takes `sinks` messages without
//! answering and acknowledges the last one (the throughput phase: time
//! from the first send to the acknowledgement). [`far_end`] is the far
//! end's whole program; [`measure`] is this side's.

use std::time::Instant;

/// The stamp of the far end's first message: "attached, go".
pub const READY: u64 = u64::MAX - 1;

/// What the far end is asked to do: `[size, echoes, sinks]`.
pub type Job = [u64; 3];

/// One side of a row's link.
pub trait End {
    /// Sends one message of the row's size stamped with `seq`, waiting
    /// while the link is full.
    fn send(&mut self, seq: u64) -> Result<(), String>;
    /// Receives one message, checks it, and returns its stamp.
    fn recv(&mut self) -> Result<u64, String>;
}

/// Writes `seq` into the first and the last 8 bytes of `msg` (at least
/// 16 bytes long).
#[inline]
pub fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_ne_bytes());
}

/// The stamp of `msg`, which must be `len` bytes with the same stamp at
/// both ends.
#[inline]
pub fn read_stamp(msg: &[u8], len: usize) -> Result<u64, String> {
    if msg.len() != len || len < 16 {
        return Err(format!("a message of {} bytes, not {len}", msg.len()));
    }
    let head = u64::from_ne_bytes(msg[..8].try_into().expect("8 bytes"));
    let tail = u64::from_ne_bytes(msg[len - 8..].try_into().expect("8 bytes"));
    if head != tail {
        return Err(format!("a torn message (stamps {head} and {tail})"));
    }
    Ok(head)
}

/// A message of `len` bytes, patterned (not all zeros, so nothing can
/// skip copying it), stamped with 0.
pub fn message(len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
    stamp(&mut m, 0);
    m
}

/// The far end's program: announce, echo, sink, acknowledge.
pub fn far_end(end: &mut impl End, job: Job) -> Result<(), String> {
    let [_, echoes, sinks] = job;
    end.send(READY)?;
    for i in 0..echoes {
        let seq = end.recv()?;
        if seq != i {
            return Err(format!("echo phase: message {seq}, expected {i}"));
        }
        end.send(seq)?;
    }
    for i in 0..sinks {
        let seq = end.recv()?;
        if seq != echoes + i {
            return Err(format!(
                "throughput phase: message {seq}, expected {}",
                echoes + i
            ));
        }
    }
    if sinks > 0 {
        end.send(echoes + sinks - 1)?;
    }
    Ok(())
}

/// What one row measured at one size.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// One-way latency percentiles, ns: p50, p99, p99.9.
    pub one_way: [f64; 3],
    /// How many one-way samples they come from.
    pub samples: usize,
    /// Messages per second one way, if the throughput phase ran.
    pub per_second: Option<f64>,
}

impl Figures {
    /// The figures of one-way `samples` (ns; nearest-rank percentiles).
    pub fn from_samples(mut samples: Vec<f64>, per_second: Option<f64>) -> Figures {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            samples[((samples.len() - 1) as f64 * p).round() as usize]
        };
        Figures {
            one_way: [at(0.5), at(0.99), at(0.999)],
            samples: samples.len(),
            per_second,
        }
    }

    /// Figures another program measured.
    pub fn from_quantiles(one_way: [f64; 3], samples: usize, per_second: Option<f64>) -> Figures {
        Figures {
            one_way,
            samples,
            per_second,
        }
    }

    /// The median one-way latency, ns.
    pub fn p50(&self) -> f64 {
        self.one_way[0]
    }
}

/// How much of a row to run at one size.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Message size, bytes.
    pub size: usize,
    /// Unmeasured round trips first.
    pub warmup: usize,
    /// Timed round trips.
    pub rounds: usize,
    /// Messages of the throughput phase (0: no throughput phase).
    pub stream: usize,
}

impl Plan {
    /// The far end's job for this plan.
    pub fn job(&self) -> Job {
        [
            self.size as u64,
            (self.warmup + self.rounds) as u64,
            self.stream as u64,
        ]
    }
}

/// This side's program, against a far end running [`far_end`] with
/// `plan.job()`; `progress` is told the fraction done now and then.
pub fn measure(
    end: &mut impl End,
    plan: &Plan,
    progress: &mut dyn FnMut(f64),
) -> Result<Figures, String> {
    match end.recv()? {
        READY => {}
        other => return Err(format!("the far end began with {other}, not ready")),
    }
    let total = (plan.warmup + plan.rounds + plan.stream).max(1) as f64;
    let every = (plan.rounds / 64).max(1);
    for seq in 0..plan.warmup as u64 {
        round_trip(end, seq)?;
    }
    let mut one_way = Vec::with_capacity(plan.rounds);
    for i in 0..plan.rounds {
        let seq = (plan.warmup + i) as u64;
        let t = Instant::now();
        round_trip(end, seq)?;
        one_way.push(t.elapsed().as_nanos() as f64 / 2.0);
        if i % every == 0 {
            progress((plan.warmup + i) as f64 / total);
        }
    }
    let mut per_second = None;
    if plan.stream > 0 {
        let first = (plan.warmup + plan.rounds) as u64;
        let every = (plan.stream / 64).max(1);
        let t = Instant::now();
        for i in 0..plan.stream {
            end.send(first + i as u64)?;
            if i % every == 0 {
                progress((plan.warmup + plan.rounds + i) as f64 / total);
            }
        }
        let last = first + plan.stream as u64 - 1;
        match end.recv()? {
            seq if seq == last => {}
            other => return Err(format!("acknowledged {other}, not {last}")),
        }
        per_second = Some(plan.stream as f64 / t.elapsed().as_secs_f64());
    }
    progress(1.0);
    Ok(Figures::from_samples(one_way, per_second))
}

#[inline]
fn round_trip(end: &mut impl End, seq: u64) -> Result<(), String> {
    end.send(seq)?;
    match end.recv()? {
        back if back == seq => Ok(()),
        back => Err(format!("sent {seq}, the echo was {back}")),
    }
}

/// Pins the calling thread to `cpu` (no effect if that fails: the figure
/// is then the scheduler's placement's).
pub fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

/// The CPUs this process could use before [`pin`] narrowed them, for the
/// programs it runs (`Command` children inherit the pinned thread's
/// mask: see [`unpinned`]).
static ALLOWED: std::sync::OnceLock<rustix::thread::CpuSet> = std::sync::OnceLock::new();

/// Makes `cmd`'s program start with every CPU this process could use
/// at first, not the one CPU this thread is pinned to.
pub fn unpinned(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    let Some(&set) = ALLOWED.get() else {
        return cmd;
    };
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one system call (sched_setaffinity), which is
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            let _ = rustix::thread::sched_setaffinity(None, &set);
            Ok(())
        })
    }
}

/// The two CPUs the rows run on: this process's and the far end's, the
/// first two this process may use (none if it may use only one).
pub fn cpu_pair() -> Option<(usize, usize)> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let _ = ALLOWED.set(set);
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}
