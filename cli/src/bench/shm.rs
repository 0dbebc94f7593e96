//! The rows over shared memory: the machine's floor and shmkit's own
//! channels, publish/subscribe loans and process pool.
#![allow(clippy::disallowed_types)] // std's atomics in a ShmSafe struct, as users write them

use super::far::{self, finish, spin_until, text, Cpus, PATIENCE, PING_VAR, PONG_VAR};
use super::measure::{self, far_end, read_stamp, stamp, End, Figures, Job, Plan};
use shmkit::channel::{ByteReceiver, ByteSender, MpmcReceiver, MpmcSender, Receiver, Sender};
use shmkit::pool::PoolConfig;
use shmkit::process::{ProcessPool, Shutdown};
use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber};
use shmkit::{CachePadded, Region, RegionOptions, ShmSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Opens the region the parent passed under `var`.
fn inherited(var: &str) -> Result<Region, String> {
    // SAFETY: the parent passed this region under `var` for this row
    // only, and this is the only call for the variable in this process.
    unsafe { RegionOptions::new().any_layout().from_env(var) }.map_err(text)
}

// ---- the floor ---------------------------------------------------------------

/// A direction's words: the count of messages sent (its sender's) and of
/// messages taken (its receiver's), each alone on its cache lines.
#[derive(ShmSafe)]
#[repr(C)]
struct Words {
    sent: CachePadded<AtomicU64>,
    taken: CachePadded<AtomicU64>,
}

/// Where a direction's slots begin in its region.
const SLOTS_AT: usize = 256;
/// A value neither a stamp nor [`measure::READY`]: "nothing yet".
const NOTHING: u64 = u64::MAX;

/// Slots of a floor ring of `size`-byte messages.
fn floor_slots(size: usize) -> usize {
    ((32 << 20) / size).clamp(2, 64)
}

/// One direction of the memcpy floor: a ring of `slots` slots of `size`
/// bytes, the message copied in by its sender and out by its receiver, a
/// counter each: what any copying channel must do at the least.
struct Ring {
    region: Region,
    /// `region`'s words, placed once (placing is checked each time; the
    /// timed loop should not pay for it).
    words: *const Words,
    size: usize,
    slots: u64,
}

impl Ring {
    fn new(size: usize) -> Result<Ring, String> {
        let slots = floor_slots(size);
        let region = Region::anonymous(SLOTS_AT + slots * size).map_err(text)?;
        let words = region.place::<Words>(0).map_err(text)? as *const Words;
        Ok(Ring {
            region,
            words,
            size,
            slots: slots as u64,
        })
    }

    fn open(var: &str, size: usize) -> Result<Ring, String> {
        let region = inherited(var)?;
        let slots = floor_slots(size);
        if region.len() < SLOTS_AT + slots * size {
            return Err("the floor's region is too small".into());
        }
        let words = region.place::<Words>(0).map_err(text)? as *const Words;
        Ok(Ring {
            region,
            words,
            size,
            slots: slots as u64,
        })
    }

    fn words(&self) -> &Words {
        // SAFETY: placed in `region`, which this ring owns: the mapping
        // lives as long as `self`.
        unsafe { &*self.words }
    }

    fn offset(&self, n: u64) -> usize {
        SLOTS_AT + (n % self.slots) as usize * self.size
    }
}

/// A floor end: its sending ring and its receiving ring.
struct FloorEnd {
    tx: Ring,
    rx: Ring,
    msg: Vec<u8>,
    got: Vec<u8>,
    sent: u64,
    taken: u64,
}

impl FloorEnd {
    fn new(tx: Ring, rx: Ring) -> FloorEnd {
        let size = tx.size;
        FloorEnd {
            tx,
            rx,
            msg: measure::message(size),
            got: vec![0; size],
            sent: 0,
            taken: 0,
        }
    }
}

impl End for FloorEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        let words = self.tx.words();
        let (sent, slots) = (self.sent, self.tx.slots);
        spin_until(|| sent - words.taken.load(Ordering::Acquire) < slots)?;
        stamp(&mut self.msg, seq);
        // SAFETY: the slot at `sent` is this sender's alone until it
        // publishes `sent + 1`: the receiver has taken every message up
        // to `sent - slots` and reads no slot it has not been given.
        unsafe { self.tx.region.write_bytes(self.tx.offset(sent), &self.msg) }.map_err(text)?;
        words.sent.store(sent + 1, Ordering::Release);
        self.sent += 1;
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        let words = self.rx.words();
        let taken = self.taken;
        spin_until(|| words.sent.load(Ordering::Acquire) > taken)?;
        // SAFETY: the sender published this slot (Release, read with
        // Acquire above) and will not write it again before this side
        // publishes `taken + 1`.
        unsafe {
            self.rx
                .region
                .read_bytes(self.rx.offset(taken), &mut self.got)
        }
        .map_err(text)?;
        words.taken.store(taken + 1, Ordering::Release);
        self.taken += 1;
        read_stamp(&self.got, self.rx.size)
    }
}

fn floor_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let size = job[0] as usize;
    // The parent's ping ring is this side's receiving ring.
    let rx = Ring::open(PING_VAR, size)?;
    let tx = Ring::open(PONG_VAR, size)?;
    far_end(&mut FloorEnd::new(tx, rx), job)
}

/// The memcpy floor: each message copied into shared memory and out
/// again, one counter each way.
pub fn floor(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let ping = Ring::new(plan.size)?;
    let pong = Ring::new(plan.size)?;
    let child = far::spawn_pair(cpus, &ping.region, &pong.region, floor_child, plan)?;
    finish(FloorEnd::new(ping, pong), child, plan, progress)
}

/// The cache-line floor's end: a message is one 8-byte word, alone on
/// its cache line, one line each way (`sent` carries the pings,
/// `taken` the pongs).
struct LineEnd {
    /// Keeps the mapping `words` points into.
    _region: Region,
    /// `region`'s words, placed once.
    words: *const Words,
    parent: bool,
    seen: u64,
}

impl LineEnd {
    /// This side's outgoing word and its incoming one.
    fn words(&self) -> (&AtomicU64, &AtomicU64) {
        // SAFETY: placed in `region`, which this end owns.
        let w = unsafe { &*self.words };
        if self.parent {
            (&w.sent, &w.taken)
        } else {
            (&w.taken, &w.sent)
        }
    }
}

impl End for LineEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        self.words().0.store(seq, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        let seen = self.seen;
        let word = self.words().1;
        let mut now = seen;
        spin_until(|| {
            now = word.load(Ordering::Acquire);
            now != seen
        })?;
        self.seen = now;
        Ok(now)
    }
}

fn line_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let region = inherited(PING_VAR)?;
    let words = region.place::<Words>(0).map_err(text)? as *const Words;
    far_end(
        &mut LineEnd {
            _region: region,
            words,
            parent: false,
            seen: NOTHING,
        },
        job,
    )
}

/// The cache-line floor: the smallest thing one process can tell
/// another, one cache line moved from one core to the other. Messages
/// are one word; no throughput phase (a word has no room for a queue).
pub fn line(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let region = Region::anonymous(SLOTS_AT).map_err(text)?;
    let words = region.place::<Words>(0).map_err(text)?;
    words.sent.store(NOTHING, Ordering::Relaxed);
    words.taken.store(NOTHING, Ordering::Relaxed);
    let plan = Plan { stream: 0, ..*plan };
    let builder = cpus
        .builder()
        .pass_region(PING_VAR, &region)
        .map_err(text)?;
    let child = far::spawn(builder, line_child, &plan)?;
    let words = words as *const Words;
    let end = LineEnd {
        _region: region,
        words,
        parent: true,
        seen: NOTHING,
    };
    finish(end, child, &plan, progress)
}

// ---- typed channels ------------------------------------------------------------

/// The sizes a typed channel of `[u8; N]` is measured at (a value that
/// size crosses the stack by value: larger ones are the byte channel's
/// and the pool's).
pub const TYPED_SIZES: [usize; 3] = [64, 4 << 10, 64 << 10];

/// Slots of the typed channels (one message in flight while timing
/// latency; room to stream).
fn typed_slots(size: usize) -> usize {
    ((8 << 20) / size).clamp(16, 1024)
}

/// A typed channel end pair, SPSC or MPMC, of `[u8; N]`.
struct TypedEnd<S, R, const N: usize> {
    tx: S,
    rx: R,
    msg: Box<[u8; N]>,
}

macro_rules! typed_rows {
    ($row:ident, $child:ident, $tx:ident, $rx:ident) => {
        impl<const N: usize> End for TypedEnd<$tx<[u8; N]>, $rx<[u8; N]>, N> {
            #[inline]
            fn send(&mut self, seq: u64) -> Result<(), String> {
                stamp(&mut self.msg[..], seq);
                self.tx.send(*self.msg).map_err(text)
            }

            #[inline]
            fn recv(&mut self) -> Result<u64, String> {
                let got = self.rx.recv().map_err(text)?;
                read_stamp(&got, N)
            }
        }

        fn $child(job: Job) -> Result<(), String> {
            fn run<const N: usize>(job: Job) -> Result<(), String> {
                // SAFETY: the parent passed these regions for these
                // ends only, once each.
                let rx = unsafe { $rx::<[u8; N]>::from_env(PING_VAR) }.map_err(text)?;
                // SAFETY: as above.
                let tx = unsafe { $tx::<[u8; N]>::from_env(PONG_VAR) }.map_err(text)?;
                let msg = Box::new(measure::message(N).try_into().expect("N bytes"));
                far_end(&mut TypedEnd { tx, rx, msg }, job)
            }
            far::pin_far_end();
            match job[0] as usize {
                64 => run::<64>(job),
                4096 => run::<4096>(job),
                65536 => run::<65536>(job),
                n => Err(format!("no typed row of {n} bytes")),
            }
        }

        /// The row at `plan.size` (one of [`TYPED_SIZES`]).
        pub fn $row(
            plan: &Plan,
            cpus: Cpus,
            progress: &mut dyn FnMut(f64),
        ) -> Result<Figures, String> {
            fn run<const N: usize>(
                plan: &Plan,
                cpus: Cpus,
                progress: &mut dyn FnMut(f64),
            ) -> Result<Figures, String> {
                let tx = $tx::<[u8; N]>::anonymous(typed_slots(N)).map_err(text)?;
                let rx = $rx::<[u8; N]>::anonymous(typed_slots(N)).map_err(text)?;
                let child = far::spawn_pair(cpus, tx.region(), rx.region(), $child, plan)?;
                let msg = Box::new(measure::message(N).try_into().expect("N bytes"));
                finish(TypedEnd { tx, rx, msg }, child, plan, progress)
            }
            match plan.size {
                64 => run::<64>(plan, cpus, progress),
                4096 => run::<4096>(plan, cpus, progress),
                65536 => run::<65536>(plan, cpus, progress),
                n => Err(format!("no typed row of {n} bytes")),
            }
        }
    };
}
typed_rows!(spsc, spsc_child, Sender, Receiver);
typed_rows!(mpmc, mpmc_child, MpmcSender, MpmcReceiver);

// ---- the byte channel ----------------------------------------------------------

/// A byte channel's ring for messages of `size` bytes: room for a few
/// (a record is at most half the ring, less 8 bytes).
fn byte_ring(size: usize) -> usize {
    (4 * (size + 8))
        .next_power_of_two()
        .clamp(1 << 20, 64 << 20)
}

struct BytesEnd {
    tx: ByteSender,
    rx: ByteReceiver,
    msg: Vec<u8>,
    got: Vec<u8>,
}

impl End for BytesEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx.send(&self.msg).map_err(text)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        self.rx.recv(&mut self.got).map_err(text)?;
        read_stamp(&self.got, self.msg.len())
    }
}

fn bytes_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let size = job[0] as usize;
    // SAFETY: the parent passed these regions for these ends only.
    let rx = unsafe { ByteReceiver::from_env(PING_VAR) }.map_err(text)?;
    // SAFETY: as above.
    let tx = unsafe { ByteSender::from_env(PONG_VAR) }.map_err(text)?;
    let end = &mut BytesEnd {
        tx,
        rx,
        msg: measure::message(size),
        got: Vec::with_capacity(size),
    };
    far_end(end, job)
}

/// shmkit's byte channel: the message copied into the ring and out into
/// the receiver's `Vec`.
pub fn bytes(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let ring = byte_ring(plan.size);
    let tx = ByteSender::anonymous(ring, plan.size).map_err(text)?;
    let rx = ByteReceiver::anonymous(ring, plan.size).map_err(text)?;
    let child = far::spawn_pair(cpus, tx.region(), rx.region(), bytes_child, plan)?;
    let end = BytesEnd {
        tx,
        rx,
        msg: measure::message(plan.size),
        got: Vec::with_capacity(plan.size),
    };
    finish(end, child, plan, progress)
}

// ---- publish/subscribe loans ---------------------------------------------------

/// A service of `size`-byte samples with one subscriber, lossless, its
/// queue long enough to stream.
fn loan_config(size: usize) -> ServiceConfig {
    let queue = ((32 << 20) / size).clamp(2, 64);
    ServiceConfig::new(PoolConfig::new().class(size, queue + 2))
        .subscribers(1)
        .queue_capacity(queue)
        .held_limit(1)
}

/// A loan end: publishes on one service, subscribes to the other. A
/// sample is loaned, stamped in place (its first and last 8 bytes: the
/// payload is written once, where it lies, however it is made) and sent;
/// the receiver checks both stamps in place. Nothing is copied.
struct LoanEnd {
    tx: Publisher,
    rx: Subscriber,
    size: usize,
}

impl End for LoanEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        let mut sample = self.tx.loan_timeout(self.size, PATIENCE).map_err(text)?;
        stamp(&mut sample, seq);
        sample.send().map(drop).map_err(text)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        let sample = self
            .rx
            .recv_deadline(Instant::now() + PATIENCE)
            .map_err(text)?;
        read_stamp(&sample, self.size)
    }
}

fn loan_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let rx = Subscriber::from_region(inherited(PING_VAR)?).map_err(text)?;
    let tx = Publisher::from_region(inherited(PONG_VAR)?).map_err(text)?;
    let size = job[0] as usize;
    far_end(&mut LoanEnd { tx, rx, size }, job)
}

/// shmkit's publish/subscribe, zero-copy: a loaned block each message.
pub fn loan(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let config = loan_config(plan.size);
    let tx = Publisher::anonymous(&config).map_err(text)?;
    // The child publishes the pongs: this side subscribes and leaves the
    // publisher's place free (one publisher at a time).
    let rx = Publisher::anonymous(&config)
        .and_then(|p| p.subscriber())
        .map_err(text)?;
    let child = far::spawn_pair(cpus, tx.region(), rx.region(), loan_child, plan)?;
    // The child subscribes before it says it is ready: no ping is sent
    // to nobody.
    let end = LoanEnd {
        tx,
        rx,
        size: plan.size,
    };
    finish(end, child, plan, progress)
}

// ---- the process pool ------------------------------------------------------------

fn echo(msg: Vec<u8>) -> Vec<u8> {
    msg
}

fn stamp_of(msg: Vec<u8>) -> u64 {
    let n = msg.len();
    read_stamp(&msg, n).unwrap_or(u64::MAX)
}

/// shmkit's process pool, one worker: `apply(echo, msg)` (the message
/// there and back: one-way is half the call), and `map` over a stream of
/// messages for throughput (each one a task, its result the stamp).
pub fn pool(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let _ = cpus; // the pool places its worker itself
    let pool = ProcessPool::builder().workers(1).build().map_err(text)?;
    let result = (|| {
        let mut msg = measure::message(plan.size);
        let total = (plan.warmup + plan.rounds + plan.stream).max(1) as f64;
        let call = |seq: u64, msg: &mut Vec<u8>| -> Result<(), String> {
            stamp(msg, seq);
            let back = pool.apply(echo, std::mem::take(msg)).map_err(text)?;
            match read_stamp(&back, plan.size)? {
                s if s == seq => {
                    *msg = back;
                    Ok(())
                }
                s => Err(format!("sent {seq}, the echo was {s}")),
            }
        };
        for seq in 0..plan.warmup as u64 {
            call(seq, &mut msg)?;
        }
        let mut one_way = Vec::with_capacity(plan.rounds);
        let every = (plan.rounds / 64).max(1);
        for i in 0..plan.rounds {
            let t = Instant::now();
            call((plan.warmup + i) as u64, &mut msg)?;
            one_way.push(t.elapsed().as_nanos() as f64 / 2.0);
            if i % every == 0 {
                progress((plan.warmup + i) as f64 / total);
            }
        }
        let mut per_second = None;
        if plan.stream > 0 {
            let t = Instant::now();
            let first = (plan.warmup + plan.rounds) as u64;
            let msgs = (0..plan.stream as u64).map(|i| {
                let mut m = msg.clone();
                stamp(&mut m, first + i);
                m
            });
            let stamps = pool.map(stamp_of, msgs).map_err(text)?;
            if stamps.iter().zip(first..).any(|(&s, want)| s != want) {
                return Err("a task saw a message it was not given".into());
            }
            per_second = Some(plan.stream as f64 / t.elapsed().as_secs_f64());
        }
        progress(1.0);
        Ok(Figures::from_samples(one_way, per_second))
    })();
    pool.shutdown(Shutdown::Wait);
    result
}
