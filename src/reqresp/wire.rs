//! The request/response service header and the envelope its queues
//! carry: the wire format every process that opens a service agrees on
//! (offsets from the region data's start).

use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::pool::BlockRef;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use bytemuck::{Pod, Zeroable};

/// The magic word of a service header, `b"shmkREQ1"` read as a
/// little-endian `u64`.
pub const SERVICE_MAGIC: u64 = u64::from_le_bytes(*b"shmkREQ1");
/// The format version the header's `version` word holds.
pub const SERVICE_VERSION: u64 = 2;
/// Offset of the number of client entries (`u64`, 1 ..= 62).
pub const CLIENTS_OFFSET: usize = 16;
/// Offset of each queue's capacity (`u64`).
pub const QUEUE_CAPACITY_OFFSET: usize = 24;
/// Offset of the limit of messages one side holds at once (`u64`).
pub const HELD_LIMIT_OFFSET: usize = 32;
/// Offset of the server's send under way (a [`SENDING_SIZE`]-byte
/// record: the response, its client's entry, the queue position).
pub const SENDING_OFFSET: usize = 64;
/// Bytes of a send-under-way record: words `class | index << 32`,
/// `generation | len << 32`, request, flags, position, and `entry + 1`
/// while it is filled (0: empty).
pub const SENDING_SIZE: usize = 48;
/// Offset of a client's request under way in its entry.
pub const ENTRY_SENDING_OFFSET: usize = 64;
/// Offset of the server's participant token (`u32`, 0: none; with
/// [`ATTACHING`] set: a server still attaching, or a peer cleaning up
/// after a dead one, which clients treat as no server).
pub const SERVER_OFFSET: usize = 128;
/// Bit 31 of the server's word: its holder (the other bits) took the word
/// over and is still cleaning up after the server before it (handing on
/// its queue claims, clearing bit 62 on every block). Clients see no
/// server until the holder stores its token without the bit, so no
/// request reaches a server before its sweep of bit 62 is done.
pub const ATTACHING: u32 = 1 << 31;
/// Offset of the server's signal: clients notify it after each request.
pub const SERVER_SIGNAL_OFFSET: usize = 256;
/// Offset of client entry 0; entry `i` is at `ENTRIES_OFFSET + 128 i`:
/// its token (`u32`, 0: free) at +0, its response signal at +8, its
/// request-space signal at +16, its response-space signal at +24, its
/// request under way at +64 ([`ENTRY_SENDING_OFFSET`]).
pub const ENTRIES_OFFSET: usize = 384;
/// Bytes between two client entries.
pub const ENTRY_STRIDE: usize = 128;
/// The most clients a service may have: bit 62 of a block's holders mask
/// is the server's.
pub const MAX_CLIENTS: usize = 62;
/// Bytes of the service header; the first queue starts here.
pub const HEADER_SIZE: usize = ENTRIES_OFFSET + MAX_CLIENTS * ENTRY_STRIDE;

/// The server's hold on a block (bit 62 of its holders mask): a request
/// it has not released, or a response it is still handing over.
pub(crate) const SERVER_BIT: u64 = 1 << 62;

/// Envelope flag: the last message of a response stream (it names no
/// block).
pub const END: u64 = 1;
/// Envelope flag: a response that is also the end of its stream (it
/// names a block; no [`END`] follows).
pub const LAST: u64 = 2;

/// One client entry.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// The participant token of the client holding the entry; 0: free.
    pub(crate) token: AtomicU32,
    _pad: AtomicU32,
    /// The client sleeps here for responses; the server notifies it
    /// after each push.
    pub(crate) responses: Signal,
    /// The client sleeps here on a full request queue; the server
    /// notifies it after each pop.
    pub(crate) request_space: Signal,
    /// The server sleeps here on a full response queue; the client
    /// notifies it after each pop.
    pub(crate) response_space: Signal,
    _gap: [AtomicU64; 4],
    /// The request the client is sending; see [`Sending`].
    pub(crate) sending: Sending,
}

/// A message under way, recorded by its sender before it shares the
/// block, so that whoever speaks for the sender after its death can tell
/// whether the push happened: the envelope, the entry it goes to or
/// comes from, and the position the push takes in that entry's queue
/// (the sender is that queue's only producer). Written by the sender
/// only, emptied by it or by whoever speaks for it; read by the latter.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Sending {
    words: [AtomicU64; 6],
}

// SAFETY: repr(C) atomics; any bytes are a valid record (checked when
// read).
unsafe impl ShmSafe for Sending {}

impl Sending {
    /// The envelope, entry and position recorded, if any; `None` for an
    /// empty record or one no correct sender writes (entry out of range).
    pub(crate) fn read(&self, entries: usize) -> Option<(Envelope, usize, u64)> {
        let [a, b, request, flags, position, entry] = &self.words;
        let entry = entry.load(Ordering::Acquire);
        if entry == 0 || entry > entries as u64 {
            return None;
        }
        let (block, len) =
            BlockRef::from_words([a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)]);
        let (request, flags) = (
            request.load(Ordering::Relaxed),
            flags.load(Ordering::Relaxed),
        );
        let env = Envelope::of(block, len as usize, request, flags);
        Some((env, entry as usize - 1, position.load(Ordering::Relaxed)))
    }

    /// Records `env`, sent to or from `entry`, taking `position` in its
    /// queue (a reader sees the words once it sees the entry word).
    pub(crate) fn write(&self, env: &Envelope, entry: usize, position: u64) {
        let [a, b, request, flags, pos, e] = &self.words;
        e.store(0, Ordering::Relaxed);
        let [wa, wb] = env.block().to_words(env.len);
        a.store(wa, Ordering::Relaxed);
        b.store(wb, Ordering::Relaxed);
        request.store(env.request, Ordering::Relaxed);
        flags.store(env.flags, Ordering::Relaxed);
        pos.store(position, Ordering::Relaxed);
        e.store(entry as u64 + 1, Ordering::Release);
    }

    /// Empties the record.
    pub(crate) fn clear(&self) {
        self.words[5].store(0, Ordering::Release);
    }
}

/// The service header; see the [module documentation](super#layout).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ServiceHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU64,
    pub(crate) clients: AtomicU64,
    pub(crate) queue_capacity: AtomicU64,
    pub(crate) held_limit: AtomicU64,
    pub(crate) pool_offset: AtomicU64,
    pub(crate) total_bytes: AtomicU64,
    _reserved: AtomicU64,
    /// The response the server is sending; see [`Sending`].
    pub(crate) sending: Sending,
    _reserved_2: [AtomicU64; 2],
    pub(crate) server: CachePadded<AtomicU32>,
    pub(crate) requests: CachePadded<Signal>,
    pub(crate) entries: [CachePadded<Entry>; MAX_CLIENTS],
}

// SAFETY: repr(C) of atomics, signals and padding nobody reads: any bytes
// are a valid header (zero: no service, refused by open), no pointers, no
// Drop.
unsafe impl ShmSafe for ServiceHeader {}

#[cfg(not(shmkit_loom))]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<ServiceHeader>() == HEADER_SIZE);
    assert!(offset_of!(ServiceHeader, clients) == CLIENTS_OFFSET);
    assert!(offset_of!(ServiceHeader, queue_capacity) == QUEUE_CAPACITY_OFFSET);
    assert!(offset_of!(ServiceHeader, held_limit) == HELD_LIMIT_OFFSET);
    assert!(offset_of!(ServiceHeader, server) == SERVER_OFFSET);
    assert!(offset_of!(ServiceHeader, requests) == SERVER_SIGNAL_OFFSET);
    assert!(offset_of!(ServiceHeader, entries) == ENTRIES_OFFSET);
    assert!(offset_of!(ServiceHeader, sending) == SENDING_OFFSET);
    assert!(size_of::<Sending>() == SENDING_SIZE);
    assert!(offset_of!(Entry, sending) == ENTRY_SENDING_OFFSET);
    assert!(size_of::<CachePadded<Entry>>() == ENTRY_STRIDE);
    assert!(size_of::<Envelope>() == 32);
};

/// What the queues carry: a request (client to server) or one message of
/// a response stream (server to client), naming its block, length and
/// the request it belongs to. Plain data a peer may have written:
/// checked before use.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Envelope {
    /// The block's size class.
    pub class: u32,
    /// The block's index in its class.
    pub index: u32,
    /// The generation of the loan that filled the block.
    pub generation: u32,
    /// The message's length in bytes.
    pub len: u32,
    /// The request's id (the client numbers its requests from 1).
    pub request: u64,
    /// Low half: [`END`] for the end of a response stream (no block),
    /// [`LAST`] for a response that ends its stream, 0 otherwise. High
    /// half: a request's the token of the server it was sent to, a
    /// response's the token of the client it is for (a receiver skips
    /// what is addressed to another).
    pub flags: u64,
}

impl Envelope {
    /// The envelope of a message in `block`, `len` bytes long, for
    /// `request`, with `flags`.
    pub(crate) fn of(block: BlockRef, len: usize, request: u64, flags: u64) -> Self {
        Self {
            class: block.class,
            index: block.index,
            generation: block.generation,
            len: len as u32,
            request,
            flags,
        }
    }

    /// The block it names (meaningless for an end marker).
    pub(crate) fn block(&self) -> BlockRef {
        BlockRef {
            class: self.class,
            index: self.index,
            generation: self.generation,
        }
    }
}
