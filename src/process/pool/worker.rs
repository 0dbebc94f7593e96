//! A pool worker: the loop a worker process runs, and the trampoline that
//! runs a job's items.

use super::wire::{
    self, Assembler, Doorbell, MsgHeader, Sending, WorkerHeader, DOORBELL_LAYOUT, TASKS_OFFSET,
    WORKER_LAYOUT,
};
use crate::primitive::{AtomicU64, Ordering};
use crate::process::entry;
use crate::process::payload::{decode_many, Payload};
use crate::process::shared::{collect, Attached, BlockPool, MAX_WORKERS};
use crate::process::worker::{catch, EXIT_BAD_SETUP};
use crate::region::{Region, RegionOptions};
use crate::ring::bytes::ByteRing;
use crate::sync::wait::{spin_for, spin_within, yield_for};
use std::time::Duration;

/// How long a side spins for the rest of a message larger than a ring
/// before it sleeps.
pub(crate) const MID_MESSAGE_SPIN: Duration = Duration::from_millis(2);
use std::os::fd::OwnedFd;

/// Runs the `count` items encoded in `input` through the function at `f`,
/// appending each outcome to `out`; `item` tracks which one runs.
pub(crate) type ChunkTrampoline =
    fn(f: usize, count: u32, input: &[u8], out: &mut Vec<u8>, item: &AtomicU64);

/// The trampoline for `fn(A) -> R`: writes a PLAIN body while every item
/// succeeds, and turns it into a TAGGED one at the first that fails.
pub(crate) fn run_chunk<A: Payload, R: Payload>(
    f: usize,
    count: u32,
    mut input: &[u8],
    out: &mut Vec<u8>,
    item: &AtomicU64,
) {
    // SAFETY: `f` is `address_at` of an offset the parent took of a
    // `fn(A) -> R` of this same executable, sent together with this very
    // instantiation of `run_chunk::<A, R>` (the parent builds both from one
    // call of `ProcessPool::submit`/`map`).
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let Ok(args) = decode_many::<A>(count as usize, &mut input) else {
        out.push(wire::TAGGED);
        out.extend(std::iter::repeat_n(wire::BAD_ARGUMENT, count as usize));
        return;
    };
    out.push(wire::PLAIN);
    // Where each item's result ends, while the body is PLAIN.
    let mut ends: Vec<usize> = Vec::new();
    let mut tagged = false;
    for (i, arg) in args.into_iter().enumerate() {
        item.store(i as u64 + 1, Ordering::Relaxed);
        match catch(|| f(arg)) {
            Ok(r) => {
                if tagged {
                    out.push(wire::OK);
                }
                r.encode(out);
                if !tagged {
                    ends.push(out.len());
                }
            }
            Err(message) => {
                if !tagged {
                    retag(out, &ends);
                    tagged = true;
                }
                out.push(wire::PANIC);
                message.encode(out);
            }
        }
    }
}

/// Rewrites a PLAIN body whose items end at `ends` as a TAGGED one.
fn retag(out: &mut Vec<u8>, ends: &[usize]) {
    let plain = std::mem::take(out);
    out.reserve(plain.len() + ends.len());
    out.push(wire::TAGGED);
    let mut start = 1;
    for &end in ends {
        out.push(wire::OK);
        out.extend_from_slice(&plain[start..end]);
        start = end;
    }
}

/// The worker's side of its region and the pool's doorbell.
struct Link {
    header: &'static WorkerHeader,
    doorbell: &'static Doorbell,
    tasks: crate::ring::bytes::Consumer<'static>,
    results: crate::ring::bytes::Producer<'static>,
    // Last: what the views above borrow.
    _regions: (Region, Region),
}

impl Link {
    fn open(worker: OwnedFd, doorbell: OwnedFd) -> Option<Self> {
        let region = RegionOptions::new()
            .layout(WORKER_LAYOUT)
            .from_fd(worker)
            .ok()?;
        let bell = RegionOptions::new()
            .layout(DOORBELL_LAYOUT)
            .from_fd(doorbell)
            .ok()?;
        // SAFETY: the views built from these go into `Link` beside the two
        // regions, which are its last field, so they never outlive them.
        let (r, b) = unsafe { (extend(&region), extend(&bell)) };
        let header = r.place::<WorkerHeader>(0).ok()?;
        let doorbell = b.place::<Doorbell>(0).ok()?;
        let tasks = ByteRing::open(r, TASKS_OFFSET).ok()?;
        let at = TASKS_OFFSET + ByteRing::bytes_for(tasks.capacity()).ok()?;
        let results = ByteRing::open(r, at).ok()?;
        // SAFETY: this process is the only consumer of its task ring and
        // the only producer of its result ring: the parent made the region
        // for this worker alone and only ever produces tasks and consumes
        // results on it; the worker makes each side once, here.
        let (tasks, results) = unsafe { (tasks.consumer().ok()?, results.producer().ok()?) };
        Some(Self {
            header,
            doorbell,
            tasks,
            results,
            _regions: (region, bell),
        })
    }

    /// Waits until `asm` holds the next whole message.
    fn receive(&mut self, asm: &mut Assembler) -> Result<(), &'static str> {
        let tasks = &mut self.tasks;
        let doorbell = self.doorbell;
        let mid = std::cell::Cell::new(false);
        let mut attempt = || {
            let before = tasks.index();
            let got = asm.poll(tasks);
            mid.set(asm.in_message());
            match got {
                Ok(true) => Some(Ok(())),
                Ok(false) => {
                    if tasks.index() != before {
                        // Part of a message larger than the ring came in:
                        // tell the parent there is room for the rest.
                        doorbell.rung.fetch_add(1, Ordering::Release);
                        doorbell.signal.notify();
                    }
                    None
                }
                Err(e) => Some(Err(e)),
            }
        };
        // A parent waiting on this very CPU cannot send while we spin.
        let cpu = crate::sys::proc::current_cpu();
        self.header.cpu.store(cpu, Ordering::Relaxed);
        let together = doorbell.waiter_cpu.load(Ordering::Relaxed) == cpu;
        loop {
            let got = attempt().or_else(|| {
                if together {
                    yield_for(&mut attempt)
                } else {
                    spin_for(&mut attempt)
                }
            });
            if let Some(r) = got {
                return r;
            }
            // Mid-message the parent is sending the rest: keep looking
            // rather than sleep through each piece.
            if mid.get() {
                if let Some(r) = spin_within(MID_MESSAGE_SPIN, &mut attempt) {
                    return r;
                }
            }
            if let Some(r) = self.header.tasks_ready.wait_deadline(None, &mut attempt) {
                return r;
            }
        }
    }

    /// Sends a whole message, waiting for room as needed.
    fn send(&mut self, header: &MsgHeader, body: &[u8]) -> Result<(), &'static str> {
        let mut state = Sending::default();
        let results = &mut self.results;
        let mut attempt = || match wire::send(results, header, body, &mut state) {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        };
        let done = match attempt() {
            Some(r) => r,
            None => match spin_for(&mut attempt) {
                Some(r) => r,
                None => self
                    .header
                    .results_room
                    .wait_deadline(None, attempt)
                    .unwrap_or(Err("woke without room")),
            },
        };
        done?;
        self.doorbell.rung.fetch_add(1, Ordering::Release);
        self.doorbell.signal.notify();
        Ok(())
    }
}

/// # Safety
///
/// The caller keeps every use of the reference within `region`'s life.
unsafe fn extend(region: &Region) -> &'static Region {
    // SAFETY: forwarded to the caller.
    unsafe { &*(region as *const Region) }
}

/// The worker process's loop: jobs in, results out, until STOP, its task
/// limit, or a protocol error. Returns the exit code.
pub(crate) fn serve(worker: OwnedFd, doorbell: OwnedFd, blocks: Option<OwnedFd>) -> i32 {
    let Some(mut link) = Link::open(worker, doorbell) else {
        return EXIT_BAD_SETUP;
    };
    let slot = link.header.slot.load(Ordering::Relaxed);
    let blocks = match blocks {
        None => None,
        Some(fd) if slot < MAX_WORKERS as u64 => match BlockPool::open(fd, 1 << slot) {
            Ok(bp) => {
                BlockPool::serve_as_worker(bp.clone());
                Some(bp)
            }
            Err(_) => return EXIT_BAD_SETUP,
        },
        Some(_) => return EXIT_BAD_SETUP,
    };
    let exe = (
        link.header.exe_dev.load(Ordering::Relaxed),
        link.header.exe_ino.load(Ordering::Relaxed),
    );
    if crate::sys::proc::exe_identity().ok() != Some(exe) {
        eprintln!("shmkit: pool worker refused: not the parent's executable");
        return EXIT_BAD_SETUP;
    }
    let max_tasks = link.header.max_tasks.load(Ordering::Relaxed);
    link.header.ready.store(1, Ordering::Release);
    let mut asm = Assembler::new(usize::MAX);
    let mut out = Vec::new();
    let mut done = 0u64;
    loop {
        if let Err(e) = link.receive(&mut asm) {
            eprintln!("shmkit: pool worker: {e}");
            return EXIT_BAD_SETUP;
        }
        let Some((h, rest)) = MsgHeader::split(asm.message()) else {
            return EXIT_BAD_SETUP;
        };
        match h.kind {
            wire::STOP => return 0,
            wire::JOB => {}
            _ => return EXIT_BAD_SETUP,
        }
        let Some((body, descs)) = h.attachments(rest) else {
            return EXIT_BAD_SETUP;
        };
        // Hold the job's blocks (the parent's bit keeps them meanwhile)
        // until it is answered.
        let mut job_blocks = Attached::default();
        let mut all_taken = true;
        for d in &descs {
            match &blocks {
                Some(bp) if bp.take(d) => job_blocks.push(bp.clone(), *d),
                _ => all_taken = false,
            }
        }
        let (Some(run), Some(f)) = (
            entry::address_at(h.trampoline),
            entry::address_at(h.function),
        ) else {
            eprintln!("shmkit: pool worker: a job names code outside this executable");
            return EXIT_BAD_SETUP;
        };
        // SAFETY: the parent runs this same executable (checked above by
        // device and inode) and sent `offset_of` a `run_chunk::<A, R>`
        // (and `address_at` checked it lands in this executable's code).
        let run: ChunkTrampoline = unsafe { std::mem::transmute::<usize, ChunkTrampoline>(run) };
        out.clear();
        let ((), sent_blocks) = if all_taken {
            link.header.job.store(h.id, Ordering::Relaxed);
            let r = collect(|| run(f, h.count, body, &mut out, &link.header.item));
            link.header.job.store(0, Ordering::Relaxed);
            r
        } else {
            // A block the job names cannot be held: no item can read it.
            out.push(wire::TAGGED);
            out.extend(std::iter::repeat_n(wire::BAD_ARGUMENT, h.count as usize));
            ((), Attached::default())
        };
        // Blocks going back: the parent's bit first (ours holds them).
        for d in sent_blocks.descs() {
            if let Some(bp) = &blocks {
                bp.give_parent(d);
            }
            d.write(&mut out);
        }
        let reply = MsgHeader {
            kind: wire::RESULTS,
            count: h.count,
            id: h.id,
            attached: sent_blocks.descs().count() as u32,
            ..MsgHeader::default()
        };
        if link.send(&reply, &out).is_err() {
            return EXIT_BAD_SETUP;
        }
        drop(sent_blocks);
        drop(job_blocks);
        // The initializer (id 0 is never used; the parent marks it with
        // the top bit) does not count as a task.
        if h.id & super::INIT_BIT == 0 {
            done += 1;
        }
        if max_tasks != 0 && done >= max_tasks {
            let bye = MsgHeader {
                kind: wire::RETIRING,
                id: h.id,
                ..MsgHeader::default()
            };
            let _ = link.send(&bye, &[]);
            return 0;
        }
    }
}
