//! The request/response service header and the envelope its queues
//! carry: the wire format every process that opens a service agrees on
//! (offsets from the region data's start).

use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::primitive::{AtomicU32, AtomicU64};
use bytemuck::{Pod, Zeroable};

/// The magic word of a service header, `b"shmkREQ1"` read as a
/// little-endian `u64`.
pub const SERVICE_MAGIC: u64 = u64::from_le_bytes(*b"shmkREQ1");
/// The format version the header's `version` word holds.
pub const SERVICE_VERSION: u64 = 1;
/// Offset of the number of client entries (`u64`, 1 ..= 62).
pub const CLIENTS_OFFSET: usize = 16;
/// Offset of each queue's capacity (`u64`).
pub const QUEUE_CAPACITY_OFFSET: usize = 24;
/// Offset of the limit of messages one side holds at once (`u64`).
pub const HELD_LIMIT_OFFSET: usize = 32;
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
/// request-space signal at +16, its response-space signal at +24.
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
    _reserved: [AtomicU64; 9],
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
    /// Low half: [`END`] for the end of a response stream (no block), 0
    /// otherwise. High half: a request's the token of the server it was
    /// sent to, a response's the token of the client it is for (a
    /// receiver skips what is addressed to another).
    pub flags: u64,
}
