//! Hooks for shmkit's own tests, fuzz targets and benches: where each word
//! of a ring's shared header lies, the MPMC ring's sequence-word helpers,
//! and ways to scribble on a heap ring as a misbehaving peer would. Not
//! part of the API: hidden from the documentation, and free to change in
//! any release.

/// The SPSC ring's header words ([`crate::ring::spsc`]).
pub mod spsc {
    pub use crate::ring::spsc::wire::{
        SpscHeader, CAPACITY_OFFSET, ELEM_ALIGN_OFFSET, ELEM_SIZE_OFFSET, HEADER_SIZE, HEAD_OFFSET,
        MAGIC_OFFSET, SPSC_MAGIC, TAIL_OFFSET,
    };
    use crate::ring::spsc::{HeapSpscRing, SpscRing};
    use bytemuck::Pod;

    /// The shared header of `ring`, to watch or to scribble on its words.
    pub fn header_of<'a, T: Pod>(ring: &SpscRing<'a, T>) -> &'a SpscHeader {
        ring.header()
    }

    /// The view of `heap`, after checking its header as
    /// [`SpscRing::open`] does (the capacity must also match the slot
    /// array).
    pub fn reopen<T: Pod>(heap: &HeapSpscRing<T>) -> crate::Result<SpscRing<'_, T>> {
        heap.open()
    }
}

/// The MPMC ring's header words and sequence words ([`crate::ring::mpmc`]).
pub mod mpmc {
    pub use crate::ring::mpmc::seq::{
        distance, parts, word, State, PARTICIPANT_MASK, POSITION_MASK, POSITION_SHIFT, STATE_SHIFT,
    };
    pub use crate::ring::mpmc::wire::*;
}

/// The byte ring's header, and scribbles on a heap byte ring
/// ([`crate::ring::bytes`]).
pub mod bytes {
    use crate::ring::bytes::HeapByteRing;

    /// Bytes from the start of a byte ring's header to its buffer.
    pub const HEADER_SIZE: usize = crate::ring::bytes::HEADER_SIZE;

    /// Overwrites the header word at byte `offset` (0 magic, 8 capacity,
    /// 16 maximum message size, 128 producer index, 256 consumer index)
    /// with `value`, as a misbehaving peer could. Views keep the capacity
    /// and maximum they validated, so only the indices matter to existing
    /// handles.
    ///
    /// Safe: the words are atomics, so the store races with nothing, and
    /// handles from [`HeapByteRing::split`] borrow the ring mutably, so
    /// none is alive to act on a scribbled index. Handles attached through
    /// [`HeapByteRing::ring`] are `unsafe` to make, and their contract
    /// ([`ByteRing::producer`](crate::ring::bytes::ByteRing::producer))
    /// says when such a scribble is allowed.
    ///
    /// # Panics
    ///
    /// If `offset` is not one of those.
    pub fn corrupt_word(ring: &HeapByteRing, offset: usize, value: u64) {
        ring.corrupt_word(offset, value);
    }

    /// Overwrites buffer bytes from `offset` with `bytes` (clipped at the
    /// end of the buffer), as a misbehaving peer could.
    ///
    /// # Safety
    ///
    /// No write or read chunk of this ring is alive (they hold references
    /// to the buffer), and no other thread uses the ring.
    pub unsafe fn corrupt_bytes(ring: &HeapByteRing, offset: usize, bytes: &[u8]) {
        // SAFETY: forwarded: the caller's promise is the method's contract.
        unsafe { ring.corrupt_bytes(offset, bytes) }
    }
}

/// The pool's header words and state-word encoding ([`crate::pool`]).
pub mod pool {
    pub use crate::pool::wire::*;

    /// Bit 31 of a state word: the owner holds the block as a `BlockRef`
    /// (without an owner: the block is shared by a publish/subscribe
    /// service).
    pub const DETACHED: u64 = crate::pool::state::DETACHED;

    /// The largest raw participant token: a state word whose owner is
    /// above it is impossible.
    pub const MAX_TOKEN: u32 = crate::region::participants::Token::MAX_RAW;
}

/// The publish/subscribe service's header offsets ([`crate::pubsub`]).
pub mod pubsub {
    pub use crate::pubsub::wire::*;

    /// Where the pool of a service of `config` starts.
    pub fn pool_offset(config: &crate::pubsub::ServiceConfig) -> usize {
        crate::pubsub::config::plan(config).unwrap().pool_offset
    }

    /// Where queue `i` of a service of `config` starts.
    pub fn queue_offset(config: &crate::pubsub::ServiceConfig, i: usize) -> usize {
        crate::pubsub::config::plan(config).unwrap().queue_offset(i)
    }

    /// Where history slot `i` of a service starts.
    pub fn history_slot_offset(i: usize) -> usize {
        HEADER_SIZE + i * HISTORY_SLOT_SIZE
    }

    /// Sends `sample` as a publisher killed mid-send leaves it: shared
    /// with every present subscriber, its descriptor pushed only to the
    /// entries in the mask `reach`, the publisher's hold kept. For a
    /// process that dies next (a service without a history); returns the
    /// sample's sequence number.
    pub fn send_cut_short(
        sample: crate::pubsub::SampleMut<'_>,
        reach: u64,
    ) -> Result<u64, &'static str> {
        sample.send_cut_short(reach)
    }
}

/// The request/response service's header offsets ([`crate::reqresp`]).
pub mod reqresp {
    pub use crate::reqresp::wire::*;

    /// Where client `i`'s request queue starts in a service of `config`.
    pub fn request_queue_offset(config: &crate::reqresp::ServiceConfig, i: usize) -> usize {
        crate::reqresp::config::plan(config)
            .unwrap()
            .request_queue(i)
    }

    /// Sends `request` as a client killed mid-send leaves it: numbered,
    /// recorded and shared with the server, never pushed, the client's
    /// hold kept. For a process that dies next; returns the request's id.
    pub fn send_cut_short(request: crate::reqresp::RequestMut<'_>) -> Result<u64, &'static str> {
        request.send_cut_short()
    }

    /// Sends `response` as a server killed mid-send leaves it: recorded
    /// and shared with its client, never pushed, the server's hold kept.
    /// For a process that dies next.
    pub fn respond_cut_short(
        response: crate::reqresp::ResponseMut<'_, '_>,
    ) -> Result<(), &'static str> {
        response.send_cut_short()
    }

    /// Where client `i`'s response queue starts in a service of `config`.
    pub fn response_queue_offset(config: &crate::reqresp::ServiceConfig, i: usize) -> usize {
        crate::reqresp::config::plan(config)
            .unwrap()
            .response_queue(i)
    }
}

/// The process pool's messages and outcome bodies
/// ([`crate::process::ProcessPool`]).
pub mod process {
    use crate::process::{Payload, TaskError};
    use crate::ring::bytes::HeapByteRing;

    /// Pushes `records` (each as one ring record, clipped to what fits)
    /// through a ring of `capacity` bytes into the pool's message
    /// assembler, which accepts messages up to `limit` bytes; returns
    /// each whole message or the error that stopped the assembler.
    pub fn assemble(
        capacity: usize,
        records: &[&[u8]],
        limit: usize,
    ) -> Vec<Result<Vec<u8>, &'static str>> {
        let Ok(mut ring) =
            HeapByteRing::new(capacity, crate::ring::bytes::max_message_for(capacity))
        else {
            return Vec::new();
        };
        let Ok((mut tx, mut rx)) = ring.split() else {
            return Vec::new();
        };
        let max = tx.ring().max_message();
        let mut asm = crate::process::pool_wire::Assembler::new(limit);
        let mut out = Vec::new();
        for r in records {
            let r = &r[..r.len().min(max)];
            if tx.try_push(r).is_err() {
                break;
            }
            match asm.poll(&mut rx) {
                Ok(true) => out.push(Ok(asm.message().to_vec())),
                Ok(false) => {}
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    /// Sends `body` behind a header as one message through a ring of
    /// `capacity` bytes (in as many records as it takes), then assembles
    /// it again: what the two sides of a worker's rings do.
    pub fn round_trip(capacity: usize, body: &[u8]) -> Result<Vec<u8>, &'static str> {
        crate::process::pool_wire::round_trip(capacity, body)
    }

    /// The items of a task of `count` items whose outcome body is `body`,
    /// as a pool's handles read them.
    pub fn read_results<R: Payload>(body: Vec<u8>, count: u32) -> Vec<Result<R, TaskError>> {
        crate::process::pool_task::read_all(body, count)
    }
}
