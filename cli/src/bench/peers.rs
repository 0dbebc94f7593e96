//! The peers' rows: the kernel's pipe and Unix socket, ipc-channel,
//! `shared_memory` with `raw_sync` events, and, as the in-process
//! reference, `std::sync::mpsc` and crossbeam-channel between two
//! threads.

use super::far::{self, finish, text, Cpus, NAME_VAR, PATIENCE};
use super::measure::{self, far_end, measure, read_stamp, stamp, End, Figures, Job, Plan};
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use raw_sync::events::{Event, EventImpl, EventInit, EventState};
use raw_sync::Timeout;
use shared_memory::{Shmem, ShmemConf};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;

// ---- byte streams: a pipe, a Unix socket ----------------------------------------

/// An end over a byte stream: the message written whole, read whole.
struct StreamEnd<W, R> {
    tx: W,
    rx: R,
    msg: Vec<u8>,
    got: Vec<u8>,
}

impl<W, R> StreamEnd<W, R> {
    fn new(tx: W, rx: R, size: usize) -> Self {
        StreamEnd {
            tx,
            rx,
            msg: measure::message(size),
            got: vec![0; size],
        }
    }
}

impl<W: Write, R: Read> End for StreamEnd<W, R> {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx.write_all(&self.msg).map_err(text)?;
        // stdout is line-buffered; a pipe and a socket write through.
        self.tx.flush().map_err(text)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        self.rx.read_exact(&mut self.got).map_err(text)?;
        read_stamp(&self.got, self.msg.len())
    }
}

fn pipe_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let (rx, tx) = (std::io::stdin().lock(), std::io::stdout().lock());
    far_end(&mut StreamEnd::new(tx, rx, job[0] as usize), job)
}

/// Two pipes (the child's stdin and stdout), `write_all` and
/// `read_exact` of the whole message.
pub fn pipe(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let builder = cpus.builder().stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = far::spawn(builder, pipe_child, plan)?;
    let tx = child.child_mut().take_stdin().ok_or("no stdin")?;
    let rx = child.child_mut().take_stdout().ok_or("no stdout")?;
    finish(StreamEnd::new(tx, rx, plan.size), child, plan, progress)
}

fn socket_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let path = std::env::var(NAME_VAR).map_err(text)?;
    let s = UnixStream::connect(path).map_err(text)?;
    let r = s.try_clone().map_err(text)?;
    far_end(&mut StreamEnd::new(s, r, job[0] as usize), job)
}

/// A connected Unix stream socket.
pub fn socket(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let dir = std::env::temp_dir().join(format!("shmkit-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).map_err(text)?;
    let child = far::spawn(cpus.builder().env(NAME_VAR, &dir), socket_child, plan);
    let accepted = child.and_then(|c| listener.accept().map(|a| (c, a.0)).map_err(text));
    let _ = std::fs::remove_file(&dir);
    let (child, s) = accepted?;
    let r = s.try_clone().map_err(text)?;
    finish(StreamEnd::new(s, r, plan.size), child, plan, progress)
}

// ---- ipc-channel ---------------------------------------------------------------

struct IpcEnd {
    tx: IpcBytesSender,
    rx: IpcBytesReceiver,
    msg: Vec<u8>,
}

impl End for IpcEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx.send(&self.msg).map_err(text)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        let got = self.rx.recv().map_err(|e| format!("{e:?}"))?;
        read_stamp(&got, self.msg.len())
    }
}

fn ipc_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let name = std::env::var(NAME_VAR).map_err(text)?;
    let bootstrap = IpcSender::<(IpcBytesSender, IpcBytesReceiver)>::connect(name).map_err(text)?;
    let (ping_tx, ping_rx) = ipc::bytes_channel().map_err(text)?;
    let (pong_tx, pong_rx) = ipc::bytes_channel().map_err(text)?;
    bootstrap.send((ping_tx, pong_rx)).map_err(text)?;
    let end = &mut IpcEnd {
        tx: pong_tx,
        rx: ping_rx,
        msg: measure::message(job[0] as usize),
    };
    far_end(end, job)
}

/// ipc-channel's byte channels (Servo's IPC: a Unix socket, large
/// messages through shared memory), set up through its one-shot server.
pub fn ipc_channel(
    plan: &Plan,
    cpus: Cpus,
    progress: &mut dyn FnMut(f64),
) -> Result<Figures, String> {
    let (server, name) =
        IpcOneShotServer::<(IpcBytesSender, IpcBytesReceiver)>::new().map_err(text)?;
    let child = far::spawn(cpus.builder().env(NAME_VAR, name), ipc_child, plan)?;
    // No timeout on accept: a child that fails before connecting would
    // leave it waiting, so watch for that from a thread.
    let (_, (tx, rx)) = accept_or_child_gone(server, &child)?;
    let end = IpcEnd {
        tx,
        rx,
        msg: measure::message(plan.size),
    };
    finish(end, child, plan, progress)
}

type Bootstrap = (IpcBytesSender, IpcBytesReceiver);

fn accept_or_child_gone(
    server: IpcOneShotServer<Bootstrap>,
    child: &shmkit::process::JoinHandle<Result<(), String>>,
) -> Result<(ipc::IpcReceiver<Bootstrap>, Bootstrap), String> {
    let pid = child.pid();
    let waiter = std::thread::spawn(move || server.accept().map_err(text));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !waiter.is_finished() {
        if std::time::Instant::now() > deadline || !alive(pid) {
            // The accepting thread stays blocked; the process ends soon.
            return Err("the far end never connected".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    waiter
        .join()
        .map_err(|_| "the accepting thread panicked".to_owned())?
}

/// Whether process `pid` is still running (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z")
        })
        .unwrap_or(false)
}

// ---- shared_memory + raw_sync ------------------------------------------------------

/// Where in the segment each direction's two events and its data are.
const EVENT_ROOM: usize = 256;
const DATA_AT: usize = 4 * EVENT_ROOM;

/// One direction: a one-message slot and two auto-reset events, "full"
/// and "free", as a program built on these two crates would hand a
/// message over.
struct Slot {
    full: Box<dyn EventImpl>,
    free: Box<dyn EventImpl>,
    data: *mut u8,
}

struct RawSyncEnd {
    // Keeps the mapping (and, in the creator, the segment's name).
    _shmem: Shmem,
    tx: Slot,
    rx: Slot,
    msg: Vec<u8>,
    got: Vec<u8>,
}

/// The events and data of direction `dir` (0 or 1) of `shmem`, made
/// anew (the creator) or opened.
fn slot(shmem: &Shmem, dir: usize, size: usize, create: bool) -> Result<Slot, String> {
    let base = shmem.as_ptr();
    if shmem.len() < DATA_AT + 2 * size
        || Event::size_of(Some(base)) > EVENT_ROOM - std::mem::align_of::<usize>()
    {
        return Err("the segment is too small for its events".into());
    }
    let event = |i: usize| -> Result<Box<dyn EventImpl>, String> {
        // SAFETY: offsets inside the segment (checked above), each event
        // in a room of its own; the creator makes each event once before
        // the child is started, the child opens what the creator made.
        unsafe {
            let at = base.add((2 * dir + i) * EVENT_ROOM);
            if create {
                Event::new(at, true)
            } else {
                Event::from_existing(at)
            }
        }
        .map(|(e, _)| e)
        .map_err(text)
    };
    let (full, free) = (event(0)?, event(1)?);
    if create {
        free.set(EventState::Signaled).map_err(text)?;
    }
    // SAFETY: inside the segment (checked above).
    let data = unsafe { base.add(DATA_AT + dir * size) };
    Ok(Slot { full, free, data })
}

impl End for RawSyncEnd {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx.free.wait(Timeout::Val(PATIENCE)).map_err(text)?;
        // SAFETY: the slot is this side's between "free" and "full" (the
        // events' mutex orders the copies); in the segment (checked).
        unsafe { std::ptr::copy_nonoverlapping(self.msg.as_ptr(), self.tx.data, self.msg.len()) };
        self.tx.full.set(EventState::Signaled).map_err(text)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64, String> {
        self.rx.full.wait(Timeout::Val(PATIENCE)).map_err(text)?;
        // SAFETY: as in `send`, the other way.
        unsafe {
            std::ptr::copy_nonoverlapping(self.rx.data, self.got.as_mut_ptr(), self.got.len())
        };
        self.rx.free.set(EventState::Signaled).map_err(text)?;
        read_stamp(&self.got, self.msg.len())
    }
}

fn raw_sync_child(job: Job) -> Result<(), String> {
    far::pin_far_end();
    let size = job[0] as usize;
    let id = std::env::var(NAME_VAR).map_err(text)?;
    let shmem = ShmemConf::new().os_id(id).open().map_err(text)?;
    let (rx, tx) = (slot(&shmem, 0, size, false)?, slot(&shmem, 1, size, false)?);
    let end = &mut RawSyncEnd {
        _shmem: shmem,
        tx,
        rx,
        msg: measure::message(size),
        got: vec![0; size],
    };
    far_end(end, job)
}

/// A `shared_memory` segment with `raw_sync` events (pthread mutexes and
/// condition variables in the segment): the message copied in and out.
pub fn raw_sync(plan: &Plan, cpus: Cpus, progress: &mut dyn FnMut(f64)) -> Result<Figures, String> {
    let shmem = ShmemConf::new()
        .size(DATA_AT + 2 * plan.size)
        .create()
        .map_err(text)?;
    let (tx, rx) = (
        slot(&shmem, 0, plan.size, true)?,
        slot(&shmem, 1, plan.size, true)?,
    );
    let id = shmem.get_os_id().to_owned();
    let child = far::spawn(cpus.builder().env(NAME_VAR, id), raw_sync_child, plan)?;
    let end = RawSyncEnd {
        _shmem: shmem,
        tx,
        rx,
        msg: measure::message(plan.size),
        got: vec![0; plan.size],
    };
    finish(end, child, plan, progress)
}

// ---- threads: std::sync::mpsc, crossbeam-channel ---------------------------------

/// Messages a thread channel holds (bounded, as the others are).
fn thread_queue(size: usize) -> usize {
    ((32 << 20) / size).clamp(1, 64)
}

/// A thread end: each message a fresh `Vec` (a copy of this side's
/// message: what sending bytes one owns costs in-process), moved across.
struct ThreadEnd<S, R> {
    tx: S,
    rx: R,
    msg: Vec<u8>,
}

macro_rules! thread_row {
    ($row:ident, $doc:literal, $make:expr, $tx:ty, $rx:ty) => {
        impl End for ThreadEnd<$tx, $rx> {
            #[inline]
            fn send(&mut self, seq: u64) -> Result<(), String> {
                stamp(&mut self.msg, seq);
                self.tx.send(self.msg.clone()).map_err(text)
            }

            #[inline]
            fn recv(&mut self) -> Result<u64, String> {
                let got = self.rx.recv().map_err(text)?;
                read_stamp(&got, self.msg.len())
            }
        }

        #[doc = $doc]
        pub fn $row(
            plan: &Plan,
            cpus: Cpus,
            progress: &mut dyn FnMut(f64),
        ) -> Result<Figures, String> {
            let queue = thread_queue(plan.size);
            let (ping_tx, ping_rx) = $make(queue);
            let (pong_tx, pong_rx) = $make(queue);
            let (job, far_cpu, size) = (plan.job(), cpus.far(), plan.size);
            let far = std::thread::spawn(move || {
                measure::pin(far_cpu);
                let end = &mut ThreadEnd {
                    tx: pong_tx,
                    rx: ping_rx,
                    msg: measure::message(size),
                };
                far_end(end, job)
            });
            let mut end = ThreadEnd {
                tx: ping_tx,
                rx: pong_rx,
                msg: measure::message(plan.size),
            };
            let figures = measure(&mut end, plan, progress);
            drop(end);
            let joined = far
                .join()
                .map_err(|_| "the far thread panicked".to_owned())?;
            let figures = figures?;
            joined?;
            Ok(figures)
        }
    };
}
thread_row!(
    std_mpsc,
    "`std::sync::mpsc::sync_channel` between two threads.",
    std::sync::mpsc::sync_channel::<Vec<u8>>,
    std::sync::mpsc::SyncSender<Vec<u8>>,
    std::sync::mpsc::Receiver<Vec<u8>>
);
thread_row!(
    crossbeam,
    "crossbeam-channel's `bounded` between two threads.",
    crossbeam_channel::bounded::<Vec<u8>>,
    crossbeam_channel::Sender<Vec<u8>>,
    crossbeam_channel::Receiver<Vec<u8>>
);
