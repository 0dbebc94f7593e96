//! Zero-copy request/response: one server, up to 62 clients, in one
//! region. A client loans a block of the service's [pool](crate::pool),
//! writes its request in place and sends it; the server reads it in
//! place and answers with a stream of responses, each a block it wrote in
//! place, that reach that request's [`PendingResponse`] only. A server
//! that dies mid-request ends the client's wait with
//! [`ResponseError::ServerGone`], never a hang.
//!
//! ```
//! use shmkit::pool::PoolConfig;
//! use shmkit::reqresp::{Server, ServiceConfig};
//!
//! let config = ServiceConfig::new(PoolConfig::new().class(64, 32)).clients(2);
//! let server = Server::anonymous(&config)?;
//! let client = server.client()?; // or Client::open(name) in another process
//!
//! let pending = client.send_copy(&21u64.to_le_bytes())?;
//! let request = server.recv()?; // the client's block, no copy
//! let n = request.value::<u64>().unwrap();
//! request.respond_copy(&(n * 2).to_le_bytes())?;
//! let mut part = request.loan(2)?; // or write a block in place
//! part.copy_from_slice(b"ok");
//! part.send()?;
//! request.finish()?; // the end of the stream
//!
//! assert_eq!(pending.recv()?.unwrap().value::<u64>(), Some(42));
//! assert_eq!(&pending.recv()?.unwrap()[..], b"ok");
//! assert!(pending.recv()?.is_none()); // done
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a request travels
//!
//! Every client `i` has an entry (its token) and two queues
//! ([`MpmcRing`]s of 32-byte [`Envelope`]s): requests to the server and
//! responses back. A block's holders word (see [`crate::pool`]) has bit
//! `i` for client `i`'s hold and bit 62 for the server's. A request:
//!
//! 1. the client waits (as its form allows) for room in its request
//!    queue, while a live server is attached (else `NoServer`, the
//!    request back);
//! 2. it numbers the request (its own count, from 1), records it in its
//!    entry as under way (the envelope and the queue position its push
//!    takes: the client is its request queue's only producer), stores
//!    `holders = bit i | bit 62` while the block is still lent to it, and
//!    shares the block;
//! 3. it pushes `{block, len, request id, the server's token}` and
//!    clears bit `i`; whoever clears the last bit frees the block;
//! 4. the server pops requests round robin over the clients' queues; one
//!    addressed to another server (a predecessor), or from a client that
//!    has gone, is released and skipped. The rest is checked (block in
//!    range, shared under its generation, bit 62 set, length within the
//!    block, not a block this server holds already) and becomes an
//!    [`ActiveRequest`], whose drop clears bit 62.
//!
//! A response goes the same way back: the server records it in the
//! header as under way, stores `bit 62 | bit i`, shares, pushes `{block,
//! len, request id, the client's token}` to client `i`'s response queue,
//! clears bit 62. A client releases and skips a response addressed to
//! another token: one the server pushed for the entry's last holder,
//! after checking it was still there, as it left. The end of the stream
//! is an envelope with the [`END`] flag and no block, or the last
//! response itself, flagged [`LAST`] ([`ResponseMut::send_last`]: one
//! message fewer). The client sets aside what comes for its other
//! pending requests and releases what comes for requests nobody waits on
//! (a dropped `PendingResponse`).
//!
//! Waiting, on either side, spins a little, then sleeps on a
//! [`Signal`](crate::Signal) (the server's in the header, each client's
//! in its entry), which the other side notifies after each push (a load
//! while nobody sleeps): no system call while messages flow.
//!
//! # Crashed peers
//!
//! - **A server killed** mid-request: a waiting client checks the
//!   server's token between sleeps (every 10 ms at most) and ends with
//!   [`ResponseError::ServerGone`] once it is dead or replaced, after
//!   taking whatever the server sent before. A new server takes the word
//!   over marked as attaching (bit 31 set: clients see no server in it),
//!   hands on the dead one's queue claims, clears bit 62 on every block
//!   (its requests, the responses it was handing over) and frees its
//!   loans, and only then stores its plain token, so that no request
//!   sent to it meets that sweep. Requests still queued name the old
//!   token and are skipped. A `reclaim` that cleans up after a dead
//!   server holds the word the same way meanwhile, and so does a client
//!   that finds the server dead while it waits (a server attaching
//!   meanwhile waits for that, up to a second). Whoever takes the word
//!   first reads the dead server's record of the response it was
//!   sending: if its position in the client's queue was never
//!   published, it pushes the response for the dead server (into a
//!   full queue it cannot: the client's hold on that block is released
//!   instead), so the client receives it before `ServerGone`.
//! - **A client killed**: a response to it fails with
//!   [`RespondError::ClientGone`] (the server compares the entry's token
//!   with the one it received the request under, and checks it is
//!   alive). Whether a peer is alive costs a system call (its slot lock),
//!   so sends and receives ask at most every 10 ms per peer and otherwise
//!   trust the last answer while the peer's word still holds its token:
//!   a response sent within 10 ms of the client's death may still be
//!   pushed (the entry's cleaning gives it back), and likewise a request
//!   to a server that just died (its wait ends with `ServerGone`).
//!   [`ActiveRequest::client_gone`] and [`Client::server_present`] ask
//!   at once. Its entry is cleaned by the next client that takes it, by
//!   the server's receive (every 10 ms of waiting) or by a `reclaim`:
//!   queue claims handed on, unserved requests taken back, responses
//!   drained, bit `i` cleared on every block. A request the client
//!   shared and never published (its entry's record names a position
//!   its queue never filled) no server saw: the cleaner releases bit 62
//!   on it too.
//!
//! # Layout
//!
//! ```text
//! offset              field                 meaning
//!      0              magic                 b"shmkREQ1" (LE), stored last by the creator
//!      8              version               2
//!     16              clients               N, 1 ..= 62
//!     24              queue_capacity        Q, a power of two
//!     32              held_limit            H, at least 1
//!     40              pool_offset           where the pool starts (below)
//!     48              total_bytes           ServiceConfig::bytes_for
//!     64              sending               the server's response under way (a record)
//!    128              server                the server's participant token, 0: none;
//!                                           bit 31 (ATTACHING): no server yet
//!    256              requests              the server's signal
//!    384 + 128 i      entry i               token (u32, 0: free), response signal (+8),
//!                                           request-space signal (+16),
//!                                           response-space signal (+24), its
//!                                           request under way (+64, a record);
//!                                           62 entries
//!   8320 + 2 i S      requests of client i  MpmcRing<Envelope> of Q slots
//!   8320 + (2i+1) S   responses to client i MpmcRing<Envelope> of Q slots
//!   8320 + 2 N S      the pool              Pool (with its holders words)
//! ```
//!
//! with `S = r128(384 + 40 Q)`; [`ServiceConfig::bytes_for`] is the sum.
//! A *record* of a send under way is six words: `class | index << 32`,
//! `generation | len << 32`, the request id, the envelope's flags, the
//! queue position the push takes, and the entry plus one (0: empty).
//! Every word is checked when a handle attaches and every shared word
//! read later (tokens, envelopes, state and holders words) as it is read.
//!
//! [`MpmcRing`]: crate::ring::mpmc::MpmcRing

mod client;
pub(crate) mod config;
mod error;
mod inspect;
mod server;
mod service;
pub(crate) mod wire;

pub use client::{Client, PendingResponse, RequestMut, Response};
pub use config::ServiceConfig;
pub use error::{
    CopyError, FinishTimeoutError, RecvError, RecvTimeoutError, RespondError, ResponseError,
    ResponseTimeoutError, SendError, SendTimeoutError, TryFinishError, TryRecvError,
    TryRespondError, TryResponseError, TrySendError,
};
pub use inspect::{inspect, ServiceInfo};
pub use server::{ActiveRequest, ResponseMut, Server};
pub use wire::{Envelope, END, LAST, MAX_CLIENTS};

/// Handles may move between threads (see each type).
#[cfg(not(shmkit_loom))]
const _: () = {
    const fn send<X: Send>() {}
    send::<Server>();
    send::<Client>();
};
