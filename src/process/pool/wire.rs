//! What a pool worker shares with its parent: one region per worker, with
//! a header, a task ring (parent to worker) and a result ring (worker to
//! parent), plus one doorbell region per pool that every worker rings.
//!
//! ```text
//! worker region
//! offset  field          written by
//!      0  exe_dev        parent, before the spawn   the executable the
//!      8  exe_ino        parent                     worker must be running
//!     16  ready          worker                     1 once it has checked all this
//!     24  slot           parent                     the worker's slot (its holder bit)
//!     32  cpu            worker                     the CPU it last waited on
//!    128  max_tasks      parent                     0 = no limit
//!    256  tasks_ready    both (Signal)              the worker sleeps here
//!    384  results_room   both (Signal)              the worker sleeps here
//!    512  job            worker                     id of the job it runs, 0 = none
//!    640  item           worker                     1 + index of the item it runs
//!   1024  task ring      ByteRing (parent produces, worker consumes)
//!      R  result ring    ByteRing (worker produces, parent consumes),
//!                        R = 1024 + ByteRing::bytes_for(task capacity)
//!
//! doorbell region
//!      0  rung           workers                    bumped after each result
//!    128  signal         both (Signal)              the parent's waiters sleep here
//!    256  waiter_cpu     parent                     the CPU a waiter last waited on
//! ```
//!
//! # Messages
//!
//! A message is a [`MsgHeader`], a body and the names of the shared
//! blocks it carries (`attached` of them, 28 bytes each, last; see
//! `process::shared`), sent as one or more ring
//! records (so a message may be larger than a ring). Each record starts
//! with an 8-byte frame word: [`FIRST`] on the first record of a message,
//! [`LAST`] on its last (both on a message of one record); in the first
//! record its upper half is the whole message's length (capped at
//! `u32::MAX`), a hint for the receiver's allocation.
//!
//! ```text
//! parent to worker
//! JOB      id, count items, trampoline, function; body: the items, encoded
//! STOP     the worker exits(0)
//! worker to parent
//! RESULTS  id, count; body: PLAIN then every item's encoded result, one
//!          after the other (no item failed), or TAGGED then per item a tag
//!          (OK, PANIC, BAD_ARGUMENT) and the encoded result (OK) or the
//!          message as a String (PANIC)
//! RETIRING id of the last job done; the worker exits(0) next (its
//!          max_tasks is reached), having taken no later job
//! ```
//!
//! Each side treats what the other wrote as untrusted: frames out of
//! order, unknown kinds, a message past the size limit or a reply for a
//! job that is not the oldest outstanding one are protocol errors (the
//! parent then kills and replaces that worker).

use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::primitive::AtomicU64;
use crate::process::shared::Desc;
use crate::region::LayoutId;
use crate::ring::bytes::{Consumer, Producer, WriteError};
use crate::ring::PopError;

/// The layout of a worker's region.
pub(crate) const WORKER_LAYOUT: LayoutId = LayoutId::named("shmkit::process::pool::worker", 1);
/// The layout of a pool's doorbell region.
pub(crate) const DOORBELL_LAYOUT: LayoutId = LayoutId::named("shmkit::process::pool::doorbell", 1);

/// Where the task ring starts in a worker's region.
pub(crate) const TASKS_OFFSET: usize = 1024;

/// A worker region's header.
#[repr(C)]
pub(crate) struct WorkerHeader {
    pub(crate) exe_dev: AtomicU64,
    pub(crate) exe_ino: AtomicU64,
    pub(crate) ready: AtomicU64,
    pub(crate) slot: AtomicU64,
    pub(crate) cpu: AtomicU64,
    pub(crate) max_tasks: CachePadded<AtomicU64>,
    pub(crate) tasks_ready: CachePadded<Signal>,
    pub(crate) results_room: CachePadded<Signal>,
    pub(crate) job: CachePadded<AtomicU64>,
    pub(crate) item: CachePadded<AtomicU64>,
}

// SAFETY: repr(C) of atomics and Signals (ShmSafe); any value a peer
// writes is a wrong number (checked or only shown), never unsound.
unsafe impl ShmSafe for WorkerHeader {}

/// A pool's doorbell: bumped and notified by a worker after each result
/// message, waited on by the parent.
#[repr(C)]
pub(crate) struct Doorbell {
    pub(crate) rung: CachePadded<AtomicU64>,
    pub(crate) signal: CachePadded<Signal>,
    /// Where the parent's last waiter waited: a worker on the same CPU
    /// yields instead of spinning (spinning there only delays it).
    pub(crate) waiter_cpu: CachePadded<AtomicU64>,
}

// SAFETY: repr(C) of an atomic and a Signal; garbage costs a spare wake or
// a bounded delay.
unsafe impl ShmSafe for Doorbell {}

#[cfg(not(shmkit_loom))]
const _: () = {
    assert!(size_of::<WorkerHeader>() <= TASKS_OFFSET);
    assert!(core::mem::offset_of!(WorkerHeader, max_tasks) == 128);
    assert!(core::mem::offset_of!(WorkerHeader, item) == 640);
};

/// A message's first 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MsgHeader {
    pub(crate) kind: u32,
    pub(crate) count: u32,
    pub(crate) id: u64,
    pub(crate) trampoline: u64,
    pub(crate) function: u64,
    /// Shared blocks named at the end of the message.
    pub(crate) attached: u32,
    pub(crate) _reserved: u32,
}

pub(crate) const HEADER_LEN: usize = size_of::<MsgHeader>();

/// Parent to worker: run `count` items.
pub(crate) const JOB: u32 = 1;
/// Parent to worker: exit.
pub(crate) const STOP: u32 = 2;
/// Worker to parent: the outcomes of a job's items.
pub(crate) const RESULTS: u32 = 3;
/// Worker to parent: leaving after this job (`max_tasks` reached).
pub(crate) const RETIRING: u32 = 4;

/// The first byte of a RESULTS body: every item succeeded, results follow
/// untagged (decoded in one go, a copy for plain data).
pub(crate) const PLAIN: u8 = 0x50;
/// The first byte of a RESULTS body: each item's outcome is tagged.
pub(crate) const TAGGED: u8 = 0x54;

/// Item outcome tags in a TAGGED RESULTS body.
pub(crate) const OK: u8 = 0;
pub(crate) const PANIC: u8 = 1;
pub(crate) const BAD_ARGUMENT: u8 = 2;

/// Frame word flags.
pub(crate) const FIRST: u32 = 1;
pub(crate) const LAST: u32 = 2;
const FRAME: usize = 8;

impl MsgHeader {
    /// Splits an assembled message into its header and the rest (body
    /// and block names).
    pub(crate) fn split(msg: &[u8]) -> Option<(MsgHeader, &[u8])> {
        if msg.len() < HEADER_LEN {
            return None;
        }
        let (h, body) = msg.split_at(HEADER_LEN);
        Some((bytemuck::pod_read_unaligned(h), body))
    }

    /// Splits what follows the header into the body and the names of its
    /// `attached` blocks; `None` if they do not fit.
    pub(crate) fn attachments<'m>(&self, rest: &'m [u8]) -> Option<(&'m [u8], Vec<Desc>)> {
        let names = (self.attached as usize).checked_mul(Desc::SIZE)?;
        let at = rest.len().checked_sub(names)?;
        let (body, mut tail) = rest.split_at(at);
        let descs = (0..self.attached)
            .map(|_| Desc::read(&mut tail).ok())
            .collect::<Option<Vec<_>>>()?;
        Some((body, descs))
    }
}

/// A message being sent: its header and body, and how much of the two has
/// gone into the ring so far.
#[derive(Debug, Default)]
pub(crate) struct Sending {
    pub(crate) sent: usize,
}

/// Sends as much of `header ++ body` (from `state.sent` on) as the ring
/// takes now; `Ok(true)` once all of it has gone.
pub(crate) fn send(
    tx: &mut Producer<'_>,
    header: &MsgHeader,
    body: &[u8],
    state: &mut Sending,
) -> Result<bool, &'static str> {
    let head = bytemuck::bytes_of(header);
    let total = HEADER_LEN + body.len();
    let room = tx.ring().max_message() - FRAME;
    while state.sent < total {
        let n = room.min(total - state.sent);
        let mut chunk = match tx.write_chunk(FRAME + n) {
            Ok(c) => c,
            Err(WriteError::Full) => return Ok(false),
            Err(_) => return Err("ring refused a record"),
        };
        let mut flags = 0;
        if state.sent == 0 {
            flags |= FIRST;
        }
        if state.sent + n == total {
            flags |= LAST;
        }
        chunk[..4].copy_from_slice(&flags.to_ne_bytes());
        // The first piece says how long the whole message is (a hint for
        // the receiver's allocation, capped; never trusted as a length).
        let hint = if state.sent == 0 {
            total.min(u32::MAX as usize) as u32
        } else {
            0
        };
        chunk[4..FRAME].copy_from_slice(&hint.to_ne_bytes());
        // Copy [sent, sent + n) of the two parts.
        let mut at = FRAME;
        let mut pos = state.sent;
        while at < FRAME + n {
            let (src, off) = if pos < HEADER_LEN {
                (head, pos)
            } else {
                (body, pos - HEADER_LEN)
            };
            let take = (src.len() - off).min(FRAME + n - at);
            chunk[at..at + take].copy_from_slice(&src[off..off + take]);
            at += take;
            pos += take;
        }
        chunk.commit_all();
        state.sent += n;
    }
    Ok(true)
}

/// Gathers records into messages.
#[derive(Debug)]
pub(crate) struct Assembler {
    buf: Vec<u8>,
    open: bool,
    limit: usize,
}

impl Assembler {
    /// Messages of at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            open: false,
            limit,
        }
    }

    /// Reads records until a message is whole (`Ok(true)`: see
    /// [`message`](Self::message)) or the ring is empty (`Ok(false)`).
    pub(crate) fn poll(&mut self, rx: &mut Consumer<'_>) -> Result<bool, &'static str> {
        loop {
            let record = match rx.read_chunk() {
                Ok(r) => r,
                Err(PopError::Empty) => return Ok(false),
                Err(_) => return Err("corrupted ring"),
            };
            if record.len() < FRAME {
                return Err("record shorter than its frame word");
            }
            let flags = u32::from_ne_bytes(record[..4].try_into().unwrap_or_default());
            if flags & !(FIRST | LAST) != 0 {
                return Err("unknown frame flags");
            }
            if (flags & FIRST != 0) == self.open {
                return Err("frames out of order");
            }
            if flags & FIRST != 0 {
                self.buf.clear();
                self.open = true;
                // Room for the whole message at once, as far as the limit
                // allows (a wrong hint costs only memory, within it).
                let hint = u32::from_ne_bytes(record[4..FRAME].try_into().unwrap_or_default());
                self.buf.reserve((hint as usize).min(self.limit));
            }
            if self.buf.len() + record.len() - FRAME > self.limit {
                return Err("message past the size limit");
            }
            self.buf.extend_from_slice(&record[FRAME..]);
            drop(record);
            if flags & LAST != 0 {
                self.open = false;
                return Ok(true);
            }
        }
    }

    /// Whether part of a message has come and the rest has not.
    pub(crate) fn in_message(&self) -> bool {
        self.open
    }

    /// The message the last `Ok(true)` of [`poll`](Self::poll) completed.
    pub(crate) fn message(&self) -> &[u8] {
        &self.buf
    }
}

/// Sends `body` behind a JOB header through a heap ring of `capacity`
/// bytes and assembles it again (the test hooks' round trip).
pub(crate) fn round_trip(capacity: usize, body: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut ring = crate::ring::bytes::HeapByteRing::new(
        capacity,
        crate::ring::bytes::max_message_for(capacity),
    )
    .map_err(|_| "bad capacity")?;
    let (mut tx, mut rx) = ring.split().map_err(|_| "corrupted ring")?;
    let header = MsgHeader {
        kind: JOB,
        count: 1,
        ..MsgHeader::default()
    };
    let mut asm = Assembler::new(usize::MAX);
    let mut state = Sending::default();
    loop {
        let done = send(&mut tx, &header, body, &mut state)?;
        if asm.poll(&mut rx)? {
            let (_, got) = MsgHeader::split(asm.message()).ok_or("short message")?;
            return Ok(got.to_vec());
        }
        if done && rx.ring().is_empty() {
            return Err("sent whole, never assembled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::bytes::HeapByteRing;

    #[test]
    fn messages_larger_than_the_ring_cross_in_frames() {
        let mut ring = HeapByteRing::new(256, 120).unwrap();
        let (mut tx, mut rx) = ring.split().unwrap();
        let mut asm = Assembler::new(1 << 20);
        let header = MsgHeader {
            kind: JOB,
            count: 3,
            id: 9,
            trampoline: 1,
            function: 2,
            ..MsgHeader::default()
        };
        let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut state = Sending::default();
        let mut got = None;
        for _ in 0..100 {
            if send(&mut tx, &header, &body, &mut state).unwrap() && got.is_some() {
                break;
            }
            if asm.poll(&mut rx).unwrap() {
                got = Some(asm.message().to_vec());
            }
        }
        let got = got.expect("whole message");
        let (h, b) = MsgHeader::split(&got).unwrap();
        assert_eq!((h.kind, h.count, h.id), (JOB, 3, 9));
        assert_eq!(b, &body[..]);
    }

    #[test]
    fn frames_out_of_order_and_oversized_messages_are_refused() {
        let mut ring = HeapByteRing::new(256, 120).unwrap();
        let (mut tx, mut rx) = ring.split().unwrap();
        // A middle frame with no first.
        tx.try_push(&[0u8; 16]).unwrap();
        assert!(Assembler::new(1 << 20).poll(&mut rx).is_err());
        // Unknown flags.
        tx.try_push(&[0xffu8; 16]).unwrap();
        assert!(Assembler::new(1 << 20).poll(&mut rx).is_err());
        // Past the limit.
        let mut state = Sending::default();
        let body = [7u8; 64];
        assert!(send(&mut tx, &MsgHeader::default(), &body, &mut state).unwrap());
        assert!(Assembler::new(32).poll(&mut rx).is_err());
    }
}
