//! Runs sequences of requests, responses, receives, joins, leaves, server
//! replacements and scribbles on an anonymous request/response service
//! (`shmkit::reqresp`), and checks every result against a model of what
//! each queue carries and each side holds. Any mismatch panics.
//!
//! One server (replaced now and then: its requests are ended, it is
//! dropped, and a new one attaches through a handle of its own; or it
//! leaves and the service has none for a while) and up to the service's
//! number of clients (`Server::client`, each a handle of its own), all in
//! this thread. Each client may have several requests pending at once;
//! the server holds several requests at once and answers each with a
//! stream of responses (loaned and sent, or copied), then ends it
//! (`finish`, or dropping the `ActiveRequest`). The model knows every
//! request's and response's pattern (written by the target into the
//! block), length, class and block, what each client's request and
//! response queue holds in order, what each client has set aside for its
//! other pending requests, and which server each request went to. While
//! nothing has been scribbled on, it is exact and checks:
//! - a loan (client or server) fails with `TooLarge` past the largest
//!   block and with `Exhausted` exactly when every block of its class is
//!   taken (by unsent loans, queued or set-aside messages, held requests
//!   and responses), and never returns a block an unsent loan or a held
//!   message has;
//! - a request (`try_send`, `send_timeout(0)`; `send` and `send_copy`
//!   only where the model says they will not wait) gets the client's next
//!   id and is queued; `try_send` and `send_timeout(0)` give it back
//!   (`Full` / `Timeout`) exactly when the client's request queue is full,
//!   and every form with `NoServer` / `Gone` exactly when no server is
//!   attached;
//! - the server receives (`try_recv`, `recv_timeout(0)`) round robin over
//!   the clients' queues exactly the requests sent to it, skipping (and
//!   freeing) those sent to a server before it; `Empty` / `Timeout` when
//!   there are none; `HeldLimit` once it holds its limit;
//! - a response (`ResponseMut::try_send`, `send` and `respond_copy` only
//!   where they will not wait) is queued for its client; `Full` exactly
//!   when the client's response queue is full; `ClientGone` / `Gone`
//!   exactly when the client that sent the request has left (even if a
//!   new client took its entry); ending a request (`finish`, drop: only
//!   where the queue has room or the client is gone) queues the end of
//!   the stream;
//! - each `PendingResponse` receives (`try_recv`, `recv_timeout(0)`)
//!   exactly its own request's responses, in order, each with its request
//!   id, length, block and bytes, then `Ok(None)` (and `Ok(None)` again);
//!   `Empty` / `Timeout` exactly when nothing is queued or set aside for
//!   it and its server is the one attached; `ServerGone` when it is not;
//!   `HeldLimit` once the client holds its limit; responses for dropped
//!   `PendingResponse`s are released as they come;
//! - a joiner takes the lowest free entry, `ServiceBusy` when every entry
//!   is held; so is a second server while one is attached; `reclaim`
//!   frees nothing (nobody died); `free_blocks` of every class, `held` of
//!   every handle, `server_present`, `client_gone` and `is_done` agree
//!   with the model, after every operation; when everything is dropped at
//!   the end, every block is free.
//!
//! A scribble writes a word of the service's control area through a
//! handle of its own, as a misbehaving peer could: a header word (the
//! creator's words, the server's token and signal, an entry's token or
//! signals, or any other), a request or response queue's header or slot
//! words, or the pool's header, state, holders or bitmap words (never a
//! block's bytes), with an arbitrary value, a small change of the word, a
//! flipped bit, or a plausible one (a token this run has seen, live or
//! dead; a slot word of another state or lap; a shared, free, lent or
//! held state of the word's generation; a holders mask with a client's or
//! the server's bit flipped). A forgery pushes an envelope into a request
//! or response queue through the ring's own protocol (a copy of a request
//! the server holds or of a response a client holds, one naming a block
//! on loan, an end of stream for a pending request, one addressed to an
//! earlier server, an earlier generation of a held block, or any fields).
//! From then on the model is not compared; every call must still return
//! with a typed error or a value: only `try_` forms and timeouts of zero
//! (at most 16 sends in all: a queue with room that refuses the push
//! costs one 10 ms wait each), and a request is ended (and the server
//! replaced) only once `client_gone` says nobody waits for the end of its
//! stream (the end waits for room in the client's queue, which a scribble
//! can make look full for good). And: no loan returns a block an unsent
//! loan or a held request or response of this process has, no received
//! request or response names a block on loan here, no handle holds two
//! messages of one block, `held` counts stay right, and the bytes of
//! every unsent loan and held message stay what they were (scribbles
//! never touch block bytes). At the end, after every client has left, a
//! request whose client still looks present (a scribbled entry token
//! naming a live handle) has that entry's token cleared by the target, as
//! a peer could, before it is dropped: its drop would otherwise wait for
//! room in a queue nobody drains.
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  clients: 1 + b % 4
//!      1    1  queue capacity: 1 << (b % 3); held limit: 1 + (b >> 2) % 3
//!      2    1  class 0: 1 + b % 24 blocks of 64 bytes
//!      3    1  class 1 if b & 1: 1 + (b >> 1) % 6 blocks of 256 bytes
//!      4    8  salt, u64 LE: mixed into every pattern
//!     12    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 20; a member byte picks the (b % n)-th of n
//! clients, an active byte one of the requests the server holds, the
//! other bytes one of that one's loans, pending requests or responses;
//! nothing happens without one):
//!
//! ```text
//!  0  client loan            member byte, u16 LE length (% largest block + 16)
//!  1  send a client loan     member byte, loan byte, form byte (% 3: try_send,
//!                            send_timeout(0), send)
//!  2  send_copy              member byte, u16 LE length
//!  3  drop a client loan     member byte, loan byte
//!  4  receive a response     member byte, pending byte, form byte (even: try_recv,
//!                            odd: recv_timeout(0))
//!  5  drop a pending request member byte, pending byte
//!  6  drop a response        member byte, response byte
//!  7  join                   (server.client(), or Client::from_region without one)
//!  8  leave                  member byte (its responses, pending requests, loans, then it)
//!  9  server receives        form byte (even: try_recv, odd: recv_timeout(0))
//! 10  loan a response        active byte, u16 LE length
//! 11  send a response loan   active byte, loan byte, form byte (even: try_send, odd: send)
//! 12  respond_copy           active byte, u16 LE length
//! 13  drop a response loan   active byte, loan byte
//! 14  end a request          active byte, form byte (even: finish, odd: drop)
//! 15  server leaves/attaches byte: with a server, odd: it leaves, even: it is replaced
//!                            (a second one is refused first); without one, one attaches
//! 16  reclaim                byte: the server if even, else a member
//! 17  scribble a word        area byte, u16 LE index, kind byte, u64 LE
//! 18  forge an envelope      queue byte (entry b % n; b & 16: response queue), kind byte, u64 LE
//! 19  check everything
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::pool::{BlockRef, LoanError, PoolConfig};
use shmkit::reqresp::{
    ActiveRequest, Client, CopyError, Envelope, PendingResponse, RecvTimeoutError, RequestMut,
    RespondError, Response, ResponseMut, ResponseTimeoutError, SendError, SendTimeoutError, Server,
    ServiceConfig, TryRecvError, TryRespondError, TryResponseError, TrySendError, END,
};
use shmkit::ring::mpmc::MpmcRing;
use shmkit::testing::mpmc as ring_wire;
use shmkit::testing::pool as pool_wire;
use shmkit::testing::reqresp as wire;
use shmkit::{Error, Region, RegionOptions};
use shmkit_fuzz::{fill, intact, Input};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const OPS: u8 = 20;
const MAX_OPS: usize = 1_500;
/// Unsent loans one client, or one request the server holds, keeps.
const MAX_LOANS: usize = 3;
/// Pending requests one client keeps.
const MAX_PENDING: usize = 6;
const MAX_ATTACHES: usize = 16;
const MAX_JOINS: usize = 48;
/// `try_send`s (either side) once the model is no longer exact: a queue
/// with room that refuses the push costs one 10 ms wait each.
const MAX_LAX_SENDS: usize = 16;
/// The server's bit in a holders mask.
const SERVER_BIT: u64 = 1 << 62;

fn id(b: BlockRef) -> (u32, u32) {
    (b.class, b.index)
}

/// The `(b % n)`-th of `n`, if there is any.
fn pick(n: usize, b: u8) -> Option<usize> {
    (n > 0).then(|| b as usize % n)
}

/// A message's contents as the model knows them.
#[derive(Debug, Clone, Copy)]
struct Data {
    seed: u64,
    len: usize,
    class: usize,
    /// Unknown for `send_copy` and `respond_copy`.
    block: Option<BlockRef>,
}

impl Data {
    /// Whether `bytes` in `block` are this message.
    fn check(&self, bytes: &[u8], block: BlockRef, what: &str) {
        assert_eq!(bytes.len(), self.len, "{what}: its length");
        assert_eq!(block.class as usize, self.class, "{what}: its class");
        assert!(
            self.block.is_none_or(|b| b == block),
            "{what}: block {block:?}, sent as {:?}",
            self.block
        );
        assert!(intact(bytes, self.seed), "{what}: its bytes");
    }
}

/// One envelope of a response queue, as the model sees it.
#[derive(Debug, Clone, Copy)]
struct Msg {
    request: u64,
    /// `None`: the end of the stream.
    data: Option<Data>,
}

/// One envelope of a request queue.
#[derive(Debug, Clone, Copy)]
struct Req {
    id: u64,
    data: Data,
    /// The server it was sent to.
    server: u64,
    /// A successor of that server swept its hold: the block is free.
    freed: bool,
}

/// What the model expects of a `PendingResponse::try_recv`.
#[derive(Debug)]
enum Want {
    Done,
    End,
    Data(Data),
    Empty,
    ServerGone,
    HeldLimit,
}

/// Why a response was not sent.
enum Refused {
    Full(ResponseMut<'static, 'static>),
    Gone,
    Corrupted,
}

/// A pending request.
struct Pend {
    p: PendingResponse<'static>,
    id: u64,
    /// The server it was sent to (exact model only).
    server: u64,
    /// The model's idea of `is_done` (exact model only).
    done: bool,
}

/// A response received and not dropped, with the bytes it had then.
struct Held {
    r: Response<'static>,
    bytes: Vec<u8>,
}

/// A client and what borrows it: boxed, freed only after every one of
/// them (see `Drop`).
struct Member {
    responses: Vec<Held>,
    pendings: Vec<Pend>,
    /// Unsent loans, each with its pattern's seed.
    loans: Vec<(RequestMut<'static>, u64)>,
    client: NonNull<Client>,
    /// Which join made it (entries are reused).
    uid: u64,
    entry: usize,
    // The exact model:
    next_id: u64,
    requests: VecDeque<Req>,
    queue: VecDeque<Msg>,
    /// Set aside for its other pending requests, by id.
    kept: BTreeMap<u64, VecDeque<Msg>>,
}

impl Member {
    fn new(client: Client, uid: u64) -> Self {
        let entry = client.entry();
        Member {
            responses: Vec::new(),
            pendings: Vec::new(),
            loans: Vec::new(),
            client: NonNull::from(Box::leak(Box::new(client))),
            uid,
            entry,
            next_id: 1,
            requests: VecDeque::new(),
            queue: VecDeque::new(),
            kept: BTreeMap::new(),
        }
    }

    /// The client, for as long as this member lives.
    fn client(&self) -> &'static Client {
        // SAFETY: the box is freed only in `Drop`, after every borrow of
        // it (all in this member's vectors).
        unsafe { self.client.as_ref() }
    }

    /// What `try_recv` on pending request `j` gives, as
    /// `PendingResponse::try_recv` takes it: from what was set aside for
    /// it, else from the queue, setting aside what belongs to other
    /// pending requests and releasing what belongs to none. `server`: the
    /// server attached now.
    fn model_recv(&mut self, j: usize, server: Option<u64>, held_limit: usize) -> Want {
        let (id, sent_to, done) = {
            let p = &self.pendings[j];
            (p.id, p.server, p.done)
        };
        if done {
            return Want::Done;
        }
        if self.responses.len() >= held_limit {
            return Want::HeldLimit;
        }
        let found = match self.kept.get_mut(&id).and_then(VecDeque::pop_front) {
            Some(msg) => Some(msg),
            None => loop {
                let Some(msg) = self.queue.pop_front() else {
                    break None;
                };
                if msg.request == id {
                    break Some(msg);
                }
                if self.pendings.iter().any(|p| p.id == msg.request && !p.done) {
                    self.kept.entry(msg.request).or_default().push_back(msg);
                }
            },
        };
        match found {
            Some(Msg { data: None, .. }) => {
                self.pendings[j].done = true;
                self.kept.remove(&id);
                Want::End
            }
            Some(Msg { data: Some(d), .. }) => Want::Data(d),
            None if server != Some(sent_to) => Want::ServerGone,
            None => Want::Empty,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.responses.clear();
        self.pendings.clear();
        self.loans.clear();
        // SAFETY: from `Box::leak` in `new`; nothing borrows it now.
        drop(unsafe { Box::from_raw(self.client.as_ptr()) });
    }
}

/// A request the server holds, and its unsent response loans (which
/// borrow it): boxed, freed only after them.
struct Active {
    loans: Vec<(ResponseMut<'static, 'static>, u64)>,
    /// `None` once taken out to `finish`.
    req: Option<NonNull<ActiveRequest<'static>>>,
    bytes: Vec<u8>,
    /// The member that sent it (exact model only).
    uid: u64,
}

impl Active {
    fn new(req: ActiveRequest<'static>, uid: u64) -> Self {
        let bytes = req.to_vec();
        Active {
            loans: Vec::new(),
            req: Some(NonNull::from(Box::leak(Box::new(req)))),
            bytes,
            uid,
        }
    }

    fn get(&self) -> &'static ActiveRequest<'static> {
        // SAFETY: the box is freed only by `take` or `Drop`, after every
        // loan borrowing it (all in `self.loans`).
        unsafe { self.req.expect("a request").as_ref() }
    }

    /// The request itself, its loans dropped first.
    fn take(mut self) -> ActiveRequest<'static> {
        self.loans.clear();
        let p = self.req.take().expect("a request");
        // SAFETY: from `Box::leak` in `new`; no loan borrows it now.
        *unsafe { Box::from_raw(p.as_ptr()) }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.loans.clear();
        if let Some(p) = self.req.take() {
            // SAFETY: as in `take`.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

/// The server and the requests it holds (which borrow it).
struct Srv {
    actives: Vec<Active>,
    server: NonNull<Server>,
    /// Which attach made it.
    gen: u64,
    /// Where its next receive starts looking (exact model only).
    next_queue: usize,
}

impl Srv {
    fn new(server: Server, gen: u64) -> Self {
        Srv {
            actives: Vec::new(),
            server: NonNull::from(Box::leak(Box::new(server))),
            gen,
            next_queue: 0,
        }
    }

    fn get(&self) -> &'static Server {
        // SAFETY: as for `Member::client`: the requests are all in
        // `self.actives`.
        unsafe { self.server.as_ref() }
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.actives.clear();
        // SAFETY: from `Box::leak` in `new`; no request borrows it now.
        drop(unsafe { Box::from_raw(self.server.as_ptr()) });
    }
}

struct Model {
    exact: bool,
    sizes: Vec<usize>,
    counts: Vec<usize>,
    next_seed: u64,
    salt: u64,
    /// Attaches so far: the `gen` of the latest server.
    gen: u64,
    next_uid: u64,
}

impl Model {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        (self.next_seed ^ self.salt).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    }

    fn class_for(&self, len: usize) -> Option<usize> {
        self.sizes.iter().position(|&s| s >= len)
    }
}

/// The blocks of class `c` the model says are taken.
fn busy(members: &[Member], srv: &Option<Srv>, c: usize) -> usize {
    let of = |d: &Data| usize::from(d.class == c);
    let mut n = 0;
    for x in members {
        n += x
            .loans
            .iter()
            .filter(|(r, _)| r.block().class as usize == c)
            .count();
        n += x
            .requests
            .iter()
            .filter(|r| !r.freed)
            .map(|r| of(&r.data))
            .sum::<usize>();
        n += x
            .queue
            .iter()
            .chain(x.kept.values().flatten())
            .filter_map(|m| m.data.as_ref())
            .map(of)
            .sum::<usize>();
        n += x
            .responses
            .iter()
            .filter(|h| h.r.block().class as usize == c)
            .count();
    }
    for a in srv.iter().flat_map(|s| &s.actives) {
        n += usize::from(a.get().block().class as usize == c);
        n += a
            .loans
            .iter()
            .filter(|(r, _)| r.block().class as usize == c)
            .count();
    }
    n
}

/// Every unsent loan's block, client's and server's.
fn loan_blocks(members: &[Member], srv: &Option<Srv>) -> Vec<BlockRef> {
    members
        .iter()
        .flat_map(|x| x.loans.iter().map(|(r, _)| r.block()))
        .chain(
            srv.iter()
                .flat_map(|s| &s.actives)
                .flat_map(|a| a.loans.iter().map(|(r, _)| r.block())),
        )
        .collect()
}

/// Every held message's block: responses and requests.
fn held_blocks(members: &[Member], srv: &Option<Srv>) -> Vec<BlockRef> {
    members
        .iter()
        .flat_map(|x| x.responses.iter().map(|h| h.r.block()))
        .chain(srv.iter().flat_map(|s| &s.actives).map(|a| a.get().block()))
        .collect()
}

/// A new loan's block `b` is nobody else's here.
fn fresh_loan(b: BlockRef, members: &[Member], srv: &Option<Srv>) {
    for l in loan_blocks(members, srv) {
        assert!(
            id(l) != id(b),
            "a loan names {b:?}, which an unsent loan has"
        );
    }
    for h in held_blocks(members, srv) {
        assert!(
            id(h) != id(b),
            "a loan names {b:?}, which a held message reads"
        );
    }
}

/// The bytes of every unsent loan and held message are as they were, and
/// the held counts are right.
fn check_bytes(members: &[Member], srv: &Option<Srv>) {
    for x in members {
        for (r, seed) in &x.loans {
            assert!(intact(r, *seed), "an unsent request's bytes changed: {r:?}");
        }
        for h in &x.responses {
            assert!(h.r[..] == h.bytes[..], "a held response's bytes changed");
        }
        assert_eq!(
            x.client().held(),
            x.responses.len(),
            "a client's held count"
        );
    }
    if let Some(s) = srv {
        for a in &s.actives {
            assert!(a.get()[..] == a.bytes[..], "a held request's bytes changed");
            for (r, seed) in &a.loans {
                assert!(intact(r, *seed), "an unsent response's bytes changed");
            }
        }
        assert_eq!(s.get().held(), s.actives.len(), "the server's held count");
    }
}

/// The service's control words, as the scribbling handle sees them.
struct Words<'r> {
    header: &'r [AtomicU64],
    /// Per entry: its request queue, its response queue.
    queues: Vec<[&'r [AtomicU64]; 2]>,
    pool_header: &'r [AtomicU64],
    states: Vec<&'r [AtomicU64]>,
    holders: Vec<&'r [AtomicU64]>,
    bitmap: Vec<&'r [AtomicU64]>,
}

impl<'r> Words<'r> {
    fn new(region: &'r Region, config: &ServiceConfig, entries: usize, capacity: usize) -> Self {
        let words = |at: usize, n: usize| -> &'r [AtomicU64] {
            region.place_slice(at, n).expect("service words")
        };
        let header = words(0, wire::HEADER_SIZE / 8);
        let first = wire::request_queue_offset(config, 0);
        let stride = wire::response_queue_offset(config, 0) - first;
        let pool = first + 2 * entries * stride;
        assert_eq!(header[5].load(Ordering::SeqCst), pool as u64, "pool offset");
        let pool_header = words(pool, pool_wire::HEADER_SIZE / 8);
        let field = |c: usize, f: usize| {
            pool + pool_header[(pool_wire::CLASSES_OFFSET + c * pool_wire::CLASS_STRIDE + f) / 8]
                .load(Ordering::SeqCst) as usize
        };
        let counts: Vec<usize> = config.pool().classes().iter().map(|&(_, n)| n).collect();
        let queue = (ring_wire::HEADER_SIZE + 40 * capacity) / 8;
        Words {
            header,
            queues: (0..entries)
                .map(|i| {
                    [
                        words(wire::request_queue_offset(config, i), queue),
                        words(wire::response_queue_offset(config, i), queue),
                    ]
                })
                .collect(),
            pool_header,
            states: (0..counts.len())
                .map(|c| words(field(c, pool_wire::CLASS_META_OFFSET), counts[c]))
                .collect(),
            holders: (0..counts.len())
                .map(|c| words(field(c, pool_wire::CLASS_HOLDERS_OFFSET), counts[c]))
                .collect(),
            bitmap: (0..counts.len())
                .map(|c| {
                    words(
                        field(c, pool_wire::CLASS_BITMAP_OFFSET),
                        counts[c].div_ceil(64),
                    )
                })
                .collect(),
        }
    }

    /// The header word of entry `e`'s token (its low half).
    fn entry_word(e: usize) -> usize {
        (wire::ENTRIES_OFFSET + e * wire::ENTRY_STRIDE) / 8
    }

    /// The token in the low half of header word `w`.
    fn token(&self, w: usize) -> u32 {
        self.header[w].load(Ordering::SeqCst) as u32
    }
}

/// Notes token `t` (nonzero) as seen.
fn seen(tokens: &mut Vec<u32>, t: u32) {
    if t != 0 && !tokens.contains(&t) && tokens.len() < 64 {
        tokens.push(t);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let b0 = input.u8();
    let b1 = input.u8();
    let b2 = input.u8();
    let b3 = input.u8();
    let salt = input.u64();
    let entries = 1 + b0 as usize % 4;
    let capacity = 1usize << (b1 % 3);
    let held_limit = 1 + (b1 as usize >> 2) % 3;
    let mut pool = PoolConfig::new().class(64, 1 + b2 as usize % 24);
    if b3 & 1 != 0 {
        pool = pool.class(256, 1 + (b3 as usize >> 1) % 6);
    }
    let config = ServiceConfig::new(pool)
        .clients(entries)
        .queue_capacity(capacity)
        .held_limit(held_limit);
    let counts: Vec<usize> = config.pool().classes().iter().map(|&(_, n)| n).collect();
    let sizes: Vec<usize> = config
        .pool()
        .classes()
        .iter()
        .map(|&(s, _)| s.next_multiple_of(64))
        .collect();
    let max = *sizes.last().unwrap();
    let first = Server::anonymous(&config).expect("a service");
    let service = first.region().as_fd().try_clone_to_owned().expect("dup");
    let fd = || service.try_clone().expect("dup");
    let handle = || {
        RegionOptions::new()
            .any_layout()
            .from_fd(fd())
            .expect("a handle")
    };
    let scribbler = handle();
    let pusher = handle();
    let words = Words::new(&scribbler, &config, entries, capacity);
    let rings: Vec<[MpmcRing<'_, Envelope>; 2]> = (0..entries)
        .map(|i| {
            let open = |at| MpmcRing::open(&pusher, at).expect("a queue");
            [
                open(wire::request_queue_offset(&config, i)),
                open(wire::response_queue_offset(&config, i)),
            ]
        })
        .collect();
    let server_word = wire::SERVER_OFFSET / 8;
    let mut tokens = Vec::new();
    seen(&mut tokens, words.token(server_word));
    let mut m = Model {
        exact: true,
        sizes,
        counts: counts.clone(),
        next_seed: 0,
        salt,
        gen: 1,
        next_uid: 0,
    };
    // The server and the members: each frees its handle after what
    // borrows it (`Drop`).
    let mut srv = Some(Srv::new(first, m.gen));
    let mut members: Vec<Member> = Vec::new();
    let mut attaches = 0;
    let mut joins = 0;
    let mut lax_sends = 0;

    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = input.u8() % OPS;
        let server_gen = srv.as_ref().map(|s| s.gen);
        match op {
            0 | 2 => {
                let k = input.u8();
                let len = input.u16() as usize % (max + 16);
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let class = m.class_for(len);
                if op == 2 {
                    // `send_copy` waits for room in the request queue
                    // while a server is attached: only where the model
                    // says it will not.
                    let x = &members[k];
                    if !m.exact
                        || x.pendings.len() >= MAX_PENDING
                        || (srv.is_some() && x.requests.len() >= capacity)
                    {
                        continue;
                    }
                    let free = class.map(|c| busy(&members, &srv, c) < m.counts[c]);
                    let seed = m.seed();
                    let mut bytes = vec![0; len];
                    fill(&mut bytes, seed);
                    let x = &mut members[k];
                    let got = x.client().send_copy(&bytes);
                    match (got, class, free) {
                        (Err(CopyError::TooLarge { len: l, max: x }), None, _) => {
                            assert_eq!((l, x), (len, max))
                        }
                        (Err(CopyError::Exhausted), Some(_), Some(false)) => {}
                        (Err(CopyError::Gone), Some(_), Some(true)) => {
                            assert!(server_gen.is_none(), "Gone with a server attached")
                        }
                        (Ok(p), Some(c), Some(true)) => {
                            let server = server_gen.expect("sent with no server");
                            assert_eq!(p.id(), x.next_id, "a request's id");
                            x.next_id += 1;
                            x.requests.push_back(Req {
                                id: p.id(),
                                data: Data {
                                    seed,
                                    len,
                                    class: c,
                                    block: None,
                                },
                                server,
                                freed: false,
                            });
                            x.pendings.push(Pend {
                                id: p.id(),
                                p,
                                server,
                                done: false,
                            });
                        }
                        (got, class, free) => panic!(
                            "send_copy of {len} (class {class:?}, free {free:?}): {:?}",
                            got.map(|p| p.id())
                        ),
                    }
                    continue;
                }
                if members[k].loans.len() >= MAX_LOANS {
                    continue;
                }
                let got = members[k].client().loan(len);
                match (got, class) {
                    (Err(LoanError::TooLarge { len: l, max: x }), None) => {
                        assert_eq!((l, x), (len, max));
                    }
                    (Ok(mut r), Some(c)) => {
                        let b = r.block();
                        assert_eq!((b.class as usize, r.len()), (c, len));
                        fresh_loan(b, &members, &srv);
                        if m.exact {
                            assert!(
                                busy(&members, &srv, c) < m.counts[c],
                                "a loan with every block taken"
                            );
                        }
                        let seed = m.seed();
                        fill(&mut r, seed);
                        members[k].loans.push((r, seed));
                    }
                    (Err(LoanError::Exhausted), Some(c)) => {
                        if m.exact {
                            assert_eq!(
                                busy(&members, &srv, c),
                                m.counts[c],
                                "exhausted with a block free"
                            );
                        }
                    }
                    (Err(LoanError::Corrupted(w)), Some(_)) => assert!(!m.exact, "{w}"),
                    (got, class) => panic!("loan of {len} (class {class:?}): {:?}", got.err()),
                }
            }
            1 | 3 => {
                let k = input.u8();
                let j = input.u8();
                let form = input.u8() % 3;
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let x = &mut members[k];
                let Some(j) = pick(x.loans.len(), j) else {
                    continue;
                };
                if op == 1 && x.pendings.len() >= MAX_PENDING {
                    continue;
                }
                if op == 1 && !m.exact {
                    if lax_sends >= MAX_LAX_SENDS {
                        continue;
                    }
                    lax_sends += 1;
                }
                let (r, seed) = x.loans.swap_remove(j);
                assert!(intact(&r, seed), "an unsent request's bytes changed");
                if op == 3 {
                    drop(r);
                    continue;
                }
                let room = x.requests.len() < capacity;
                // `send` waits for room while a server is attached.
                let form = if form == 2 && !(m.exact && (server_gen.is_none() || room)) {
                    0
                } else {
                    form
                };
                let (block, len) = (r.block(), r.len());
                let got: Result<PendingResponse<'static>, Option<(RequestMut<'static>, bool)>> =
                    match form {
                        0 => r.try_send().map_err(|e| match e {
                            TrySendError::Full(r) => Some((r, true)),
                            TrySendError::NoServer(r) => Some((r, false)),
                            TrySendError::Corrupted(_) => None,
                            e => panic!("try_send: {e:?}"),
                        }),
                        1 => r.send_timeout(Duration::ZERO).map_err(|e| match e {
                            SendTimeoutError::Timeout(r) => Some((r, true)),
                            SendTimeoutError::NoServer(r) => Some((r, false)),
                            SendTimeoutError::Corrupted(_) => None,
                            e => panic!("send_timeout: {e:?}"),
                        }),
                        _ => r.send().map_err(|e| match e {
                            SendError::NoServer(r) => Some((r, false)),
                            SendError::Corrupted(_) => None,
                            e => panic!("send: {e:?}"),
                        }),
                    };
                match got {
                    Ok(p) => {
                        if m.exact {
                            let server = server_gen.expect("sent with no server");
                            assert!(room, "sent to a full queue");
                            assert_eq!(p.id(), x.next_id, "a request's id");
                            x.next_id += 1;
                            x.requests.push_back(Req {
                                id: p.id(),
                                data: Data {
                                    seed,
                                    len,
                                    class: block.class as usize,
                                    block: Some(block),
                                },
                                server,
                                freed: false,
                            });
                        }
                        x.pendings.push(Pend {
                            id: p.id(),
                            p,
                            server: server_gen.unwrap_or(0),
                            done: false,
                        });
                    }
                    Err(Some((r, full))) => {
                        if m.exact {
                            if full {
                                assert!(server_gen.is_some() && !room, "Full with room");
                            } else {
                                assert!(server_gen.is_none(), "NoServer with a server");
                            }
                        }
                        assert_eq!(r.block(), block, "the request that came back");
                        assert!(intact(&r, seed), "a returned request's bytes changed");
                        x.loans.push((r, seed));
                    }
                    Err(None) => assert!(!m.exact, "a send found corruption"),
                }
            }
            4 => {
                let k = input.u8();
                let j = input.u8();
                let form = input.u8() % 2;
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let Some(j) = pick(members[k].pendings.len(), j) else {
                    continue;
                };
                let loans = loan_blocks(&members, &srv);
                let x = &mut members[k];
                let want = m.exact.then(|| x.model_recv(j, server_gen, held_limit));
                let pend = &x.pendings[j];
                let got = if form == 0 {
                    pend.p.try_recv()
                } else {
                    pend.p.recv_timeout(Duration::ZERO).map_err(|e| match e {
                        ResponseTimeoutError::Timeout => TryResponseError::Empty,
                        ResponseTimeoutError::ServerGone => TryResponseError::ServerGone,
                        ResponseTimeoutError::HeldLimit => TryResponseError::HeldLimit,
                        ResponseTimeoutError::Corrupted(w) => TryResponseError::Corrupted(w),
                        e => panic!("recv_timeout: {e:?}"),
                    })
                };
                match got {
                    Ok(Some(r)) => {
                        let b = r.block();
                        assert!(
                            loans.iter().all(|&l| id(l) != id(b)),
                            "a response names {b:?}, which a loan has"
                        );
                        assert!(
                            x.responses.iter().all(|h| id(h.r.block()) != id(b)),
                            "two responses of one client name {b:?}"
                        );
                        assert_eq!(r.request(), pend.id, "a response to another request");
                        assert!(r.len() <= m.sizes[b.class as usize]);
                        match want {
                            Some(Want::Data(d)) => d.check(&r, b, "a response"),
                            None => {}
                            Some(w) => panic!("a response where the model has {w:?}"),
                        }
                        let bytes = r.to_vec();
                        x.responses.push(Held { r, bytes });
                    }
                    Ok(None) => {
                        assert!(pend.p.is_done(), "the end, not done");
                        assert!(
                            matches!(want, None | Some(Want::End | Want::Done)),
                            "the end where the model has {want:?}"
                        );
                    }
                    Err(e) => {
                        let w = want.as_ref();
                        match e {
                            TryResponseError::Empty => {
                                assert!(matches!(w, None | Some(Want::Empty)), "Empty: {w:?}")
                            }
                            TryResponseError::ServerGone => {
                                assert!(
                                    matches!(w, None | Some(Want::ServerGone)),
                                    "ServerGone: {w:?}"
                                )
                            }
                            TryResponseError::HeldLimit => {
                                assert!(
                                    matches!(w, None | Some(Want::HeldLimit)),
                                    "HeldLimit: {w:?}"
                                )
                            }
                            TryResponseError::Corrupted(c) => assert!(w.is_none(), "{c}"),
                            e => panic!("try_recv: {e:?}"),
                        }
                    }
                }
                if m.exact {
                    for p in &x.pendings {
                        assert_eq!(p.p.is_done(), p.done, "is_done of request {}", p.id);
                    }
                }
            }
            5 => {
                let k = input.u8();
                let j = input.u8();
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let x = &mut members[k];
                let Some(j) = pick(x.pendings.len(), j) else {
                    continue;
                };
                let p = x.pendings.swap_remove(j);
                // What was set aside for it is released; what comes later
                // is, as it comes.
                x.kept.remove(&p.id);
                drop(p);
            }
            6 => {
                let k = input.u8();
                let j = input.u8();
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let x = &mut members[k];
                let Some(j) = pick(x.responses.len(), j) else {
                    continue;
                };
                let h = x.responses.swap_remove(j);
                assert!(h.r[..] == h.bytes[..], "a held response's bytes changed");
                drop(h);
            }
            7 => {
                if joins >= MAX_JOINS {
                    continue;
                }
                joins += 1;
                let got = match srv.as_ref() {
                    Some(s) => s.get().client(),
                    None => Client::from_region(handle()),
                };
                match got {
                    Ok(c) => {
                        if m.exact {
                            let free = (0..entries)
                                .find(|e| members.iter().all(|x| x.entry != *e))
                                .expect("joined with every entry held");
                            assert_eq!(c.entry(), free, "a joiner's entry");
                            assert_eq!(c.server_present(), srv.is_some());
                        }
                        assert!(c.entry() < entries && c.held() == 0);
                        seen(&mut tokens, words.token(Words::entry_word(c.entry())));
                        m.next_uid += 1;
                        members.push(Member::new(c, m.next_uid));
                    }
                    Err(Error::ServiceBusy { role }) => {
                        assert_eq!(role, "client");
                        assert!(
                            !m.exact || members.len() == entries,
                            "refused with a free entry"
                        );
                    }
                    Err(e) => assert!(!m.exact, "join: {e}"),
                }
            }
            8 => {
                let k = input.u8();
                let Some(k) = pick(members.len(), k) else {
                    continue;
                };
                let x = members.swap_remove(k);
                for h in &x.responses {
                    assert!(h.r[..] == h.bytes[..], "a held response's bytes changed");
                }
                // Its queues are drained, its holds given back.
                drop(x);
            }
            9 => {
                let form = input.u8() % 2;
                let Some(s) = srv.as_mut() else { continue };
                let loans = loan_blocks(&members, &None)
                    .into_iter()
                    .chain(
                        s.actives
                            .iter()
                            .flat_map(|a| a.loans.iter().map(|(r, _)| r.block())),
                    )
                    .collect::<Vec<_>>();
                let want = if !m.exact {
                    None
                } else if s.actives.len() >= held_limit {
                    Some(Err(TryRecvError::HeldLimit))
                } else {
                    // Round robin from where the last receive stopped,
                    // skipping what was sent to an earlier server.
                    let mut found = None;
                    for k in 0..entries {
                        let i = (s.next_queue + k) % entries;
                        let Some(x) = members.iter_mut().find(|x| x.entry == i) else {
                            continue;
                        };
                        while let Some(r) = x.requests.pop_front() {
                            if r.server == s.gen {
                                found = Some((x.uid, i, r));
                                break;
                            }
                        }
                        if found.is_some() {
                            s.next_queue = (i + 1) % entries;
                            break;
                        }
                    }
                    Some(found.ok_or(TryRecvError::Empty))
                };
                let server = s.get();
                let got = if form == 0 {
                    server.try_recv()
                } else {
                    server.recv_timeout(Duration::ZERO).map_err(|e| match e {
                        RecvTimeoutError::Timeout => TryRecvError::Empty,
                        RecvTimeoutError::HeldLimit => TryRecvError::HeldLimit,
                        RecvTimeoutError::Corrupted(w) => TryRecvError::Corrupted(w),
                        e => panic!("recv_timeout: {e:?}"),
                    })
                };
                match got {
                    Ok(a) => {
                        let b = a.block();
                        assert!(
                            loans.iter().all(|&l| id(l) != id(b)),
                            "a request names {b:?}, which a loan has"
                        );
                        assert!(
                            s.actives.iter().all(|x| id(x.get().block()) != id(b)),
                            "two requests the server holds name {b:?}"
                        );
                        assert!(a.client() < entries);
                        assert!(a.len() <= m.sizes[b.class as usize]);
                        let uid = match want {
                            Some(Ok((uid, i, r))) => {
                                assert_eq!((a.client(), a.id()), (i, r.id), "the request received");
                                r.data.check(&a, b, "a request");
                                assert!(!a.client_gone());
                                uid
                            }
                            None => 0,
                            Some(Err(e)) => panic!("a request where the model has {e:?}"),
                        };
                        s.actives.push(Active::new(a, uid));
                    }
                    Err(e) => match (e, want) {
                        (TryRecvError::Empty, Some(Err(TryRecvError::Empty))) => {}
                        (TryRecvError::HeldLimit, Some(Err(TryRecvError::HeldLimit))) => {}
                        (TryRecvError::Corrupted(_), None) => {}
                        (TryRecvError::Empty | TryRecvError::HeldLimit, None) => {}
                        (e, want) => panic!(
                            "server try_recv: {e:?}, the model has {:?}",
                            want.map(|w| w.map(|(_, i, r)| (i, r.id)))
                        ),
                    },
                }
            }
            10 | 12 => {
                let k = input.u8();
                let len = input.u16() as usize % (max + 16);
                let Some(s) = srv.as_ref() else { continue };
                let Some(k) = pick(s.actives.len(), k) else {
                    continue;
                };
                let class = m.class_for(len);
                let a = &s.actives[k];
                let req = a.get();
                let x = members.iter().position(|x| x.uid == a.uid);
                if op == 12 {
                    // `respond_copy` waits for room while the client is
                    // present.
                    let gone = req.client_gone();
                    let room = x.is_none_or(|x| members[x].queue.len() < capacity);
                    if m.exact {
                        assert_eq!(gone, x.is_none(), "client_gone");
                        if !room {
                            continue;
                        }
                    } else if !gone {
                        continue;
                    }
                    let free = class.map(|c| busy(&members, &srv, c) < m.counts[c]);
                    let seed = m.seed();
                    let mut bytes = vec![0; len];
                    fill(&mut bytes, seed);
                    let got = req.respond_copy(&bytes);
                    if !m.exact {
                        match got {
                            Ok(()) => panic!("responded to a client that is gone"),
                            Err(CopyError::Gone | CopyError::Exhausted) => {}
                            Err(CopyError::TooLarge { .. }) => assert!(class.is_none()),
                            Err(CopyError::Corrupted(_)) => {}
                            Err(e) => panic!("respond_copy: {e:?}"),
                        }
                        continue;
                    }
                    match (got, class, free) {
                        (Err(CopyError::TooLarge { len: l, max: x }), None, _) => {
                            assert_eq!((l, x), (len, max))
                        }
                        (Err(CopyError::Exhausted), Some(_), Some(false)) => {}
                        (Err(CopyError::Gone), Some(_), Some(true)) => {
                            assert!(x.is_none(), "Gone with the client present")
                        }
                        (Ok(()), Some(c), Some(true)) => {
                            let x = x.expect("a response to a client that is gone");
                            members[x].queue.push_back(Msg {
                                request: req.id(),
                                data: Some(Data {
                                    seed,
                                    len,
                                    class: c,
                                    block: None,
                                }),
                            });
                        }
                        (got, class, free) => panic!(
                            "respond_copy of {len} (class {class:?}, free {free:?}): {got:?}"
                        ),
                    }
                    continue;
                }
                if a.loans.len() >= MAX_LOANS {
                    continue;
                }
                let got = req.loan(len);
                match (got, class) {
                    (Err(LoanError::TooLarge { len: l, max: x }), None) => {
                        assert_eq!((l, x), (len, max));
                    }
                    (Ok(mut r), Some(c)) => {
                        let b = r.block();
                        assert_eq!((b.class as usize, r.len()), (c, len));
                        fresh_loan(b, &members, &srv);
                        if m.exact {
                            assert!(
                                busy(&members, &srv, c) < m.counts[c],
                                "a loan with every block taken"
                            );
                        }
                        let seed = m.seed();
                        fill(&mut r, seed);
                        srv.as_mut().unwrap().actives[k].loans.push((r, seed));
                    }
                    (Err(LoanError::Exhausted), Some(c)) => {
                        if m.exact {
                            assert_eq!(
                                busy(&members, &srv, c),
                                m.counts[c],
                                "exhausted with a block free"
                            );
                        }
                    }
                    (Err(LoanError::Corrupted(w)), Some(_)) => assert!(!m.exact, "{w}"),
                    (got, class) => panic!("loan of {len} (class {class:?}): {:?}", got.err()),
                }
            }
            11 | 13 => {
                let k = input.u8();
                let j = input.u8();
                let form = input.u8() % 2;
                let Some(s) = srv.as_mut() else { continue };
                let Some(k) = pick(s.actives.len(), k) else {
                    continue;
                };
                let a = &mut s.actives[k];
                let Some(j) = pick(a.loans.len(), j) else {
                    continue;
                };
                if op == 11 && !m.exact {
                    if lax_sends >= MAX_LAX_SENDS {
                        continue;
                    }
                    lax_sends += 1;
                }
                let (r, seed) = a.loans.swap_remove(j);
                assert!(intact(&r, seed), "an unsent response's bytes changed");
                if op == 13 {
                    drop(r);
                    continue;
                }
                let req = a.get();
                let x = members.iter().position(|x| x.uid == a.uid);
                let gone = x.is_none();
                let room = x.is_none_or(|x| members[x].queue.len() < capacity);
                if m.exact {
                    assert_eq!(req.client_gone(), gone, "client_gone");
                }
                // `send` waits for room while the client is present.
                let blocking = form == 1 && m.exact && room;
                let (block, len) = (r.block(), r.len());
                let got: Result<(), Refused> = if blocking {
                    r.send().map_err(|e| match e {
                        RespondError::ClientGone => Refused::Gone,
                        RespondError::Corrupted(_) => Refused::Corrupted,
                        e => panic!("send: {e:?}"),
                    })
                } else {
                    r.try_send().map_err(|e| match e {
                        TryRespondError::Full(r) => Refused::Full(r),
                        TryRespondError::ClientGone => Refused::Gone,
                        TryRespondError::Corrupted(_) => Refused::Corrupted,
                        e => panic!("try_send: {e:?}"),
                    })
                };
                if !m.exact {
                    if let Err(Refused::Full(r)) = got {
                        assert_eq!(r.block(), block, "the response that came back");
                        a.loans.push((r, seed));
                    }
                    continue;
                }
                match got {
                    Ok(()) => {
                        assert!(!gone, "a response reached a client that is gone");
                        assert!(room, "a response went to a full queue");
                        members[x.unwrap()].queue.push_back(Msg {
                            request: req.id(),
                            data: Some(Data {
                                seed,
                                len,
                                class: block.class as usize,
                                block: Some(block),
                            }),
                        });
                    }
                    Err(Refused::Full(r)) => {
                        assert!(!gone && !room, "Full with room or the client gone");
                        assert_eq!(r.block(), block, "the response that came back");
                        assert!(intact(&r, seed), "a returned response's bytes changed");
                        a.loans.push((r, seed));
                    }
                    Err(Refused::Gone) => assert!(gone, "ClientGone with the client present"),
                    Err(Refused::Corrupted) => panic!("a response found corruption"),
                }
            }
            14 => {
                let k = input.u8();
                let form = input.u8() % 2;
                let Some(s) = srv.as_mut() else { continue };
                let Some(k) = pick(s.actives.len(), k) else {
                    continue;
                };
                let a = &s.actives[k];
                let gone = a.get().client_gone();
                let x = members.iter().position(|x| x.uid == a.uid);
                if m.exact {
                    assert_eq!(gone, x.is_none(), "client_gone");
                    // The end waits for room while the client is present.
                    if x.is_some_and(|x| members[x].queue.len() >= capacity) {
                        continue;
                    }
                } else if !gone {
                    continue;
                }
                let a = s.actives.swap_remove(k);
                assert!(a.get()[..] == a.bytes[..], "a held request's bytes changed");
                let rid = a.get().id();
                if form == 0 {
                    match a.take().finish() {
                        Ok(()) => assert!(!gone, "finished for a client that is gone"),
                        Err(RespondError::ClientGone) => assert!(gone, "ClientGone"),
                        Err(e) => assert!(!m.exact, "finish: {e:?}"),
                    }
                } else {
                    drop(a);
                }
                if m.exact {
                    if let Some(x) = x {
                        members[x].queue.push_back(Msg {
                            request: rid,
                            data: None,
                        });
                    }
                }
            }
            15 => {
                let b = input.u8();
                if let Some(s) = srv.as_ref() {
                    // Its requests end first, each waiting for room in
                    // its client's queue while the client is present.
                    if m.exact {
                        let mut ends = vec![0; members.len()];
                        let mut ok = true;
                        for a in &s.actives {
                            if let Some(x) = members.iter().position(|x| x.uid == a.uid) {
                                ends[x] += 1;
                                ok &= members[x].queue.len() + ends[x] <= capacity;
                            }
                        }
                        if !ok {
                            continue;
                        }
                        for a in &s.actives {
                            if let Some(x) = members.iter_mut().find(|x| x.uid == a.uid) {
                                x.queue.push_back(Msg {
                                    request: a.get().id(),
                                    data: None,
                                });
                            }
                        }
                    } else if !s.actives.iter().all(|a| a.get().client_gone()) {
                        continue;
                    }
                    // A second one is refused while the first is attached.
                    match Server::from_region(handle()) {
                        Err(Error::ServiceBusy { role }) => assert_eq!(role, "server"),
                        Err(e) => assert!(!m.exact, "a second server: {e}"),
                        Ok(second) => {
                            assert!(!m.exact, "two servers attached");
                            drop(second);
                        }
                    }
                    drop(srv.take());
                    if b & 1 != 0 {
                        if m.exact {
                            for x in &members {
                                assert!(!x.client().server_present(), "a server after it left");
                            }
                        }
                        continue;
                    }
                }
                if attaches >= MAX_ATTACHES {
                    continue;
                }
                attaches += 1;
                match Server::from_region(handle()) {
                    Ok(ns) => {
                        m.gen += 1;
                        seen(&mut tokens, words.token(server_word));
                        // Its predecessors' holds on queued requests are
                        // swept: those blocks are free, the envelopes stay
                        // (to be skipped).
                        for x in &mut members {
                            for r in &mut x.requests {
                                r.freed = true;
                            }
                        }
                        srv = Some(Srv::new(ns, m.gen));
                    }
                    Err(e) => assert!(!m.exact, "a new server: {e}"),
                }
            }
            16 => {
                let k = input.u8() as usize;
                let got = if k.is_multiple_of(2) || members.is_empty() {
                    match srv.as_ref() {
                        Some(s) => s.get().reclaim(),
                        None => continue,
                    }
                } else {
                    members[k / 2 % members.len()].client().reclaim()
                };
                if m.exact {
                    assert_eq!(got, Ok(0), "reclaim with nobody dead");
                }
            }
            17 => {
                let area = input.u8() % 6;
                let at = input.u16() as usize;
                let kind = input.u8();
                let raw = input.u64();
                for w in (0..entries).map(Words::entry_word).chain([server_word]) {
                    seen(&mut tokens, words.token(w));
                }
                let token = match tokens.len() {
                    0 => 0,
                    n => u64::from(tokens[raw as usize % n]),
                };
                let nclasses = counts.len();
                let (word, plausible) = match area {
                    0 => {
                        let mut interesting: Vec<usize> =
                            (0..8).chain([server_word, server_word + 1]).collect();
                        interesting.push(wire::SERVER_SIGNAL_OFFSET / 8);
                        let sending = wire::SENDING_SIZE / 8;
                        let header_sending = wire::SENDING_OFFSET / 8;
                        interesting.extend(header_sending..header_sending + sending);
                        for e in 0..(entries + 1).min(wire::MAX_CLIENTS) {
                            let w = Words::entry_word(e);
                            interesting.extend([w, w + 1, w + 2, w + 3]);
                            let r = w + wire::ENTRY_SENDING_OFFSET / 8;
                            interesting.extend(r..r + sending);
                        }
                        // A record of a send under way (its entry word,
                        // position, envelope words).
                        let is_sending = |w: usize| {
                            (header_sending..header_sending + sending).contains(&w)
                                || (w >= Words::entry_word(0) && {
                                    let off = (w - Words::entry_word(0)) % (wire::ENTRY_STRIDE / 8);
                                    let r = wire::ENTRY_SENDING_OFFSET / 8;
                                    (r..r + sending).contains(&off)
                                })
                        };
                        let w = if kind & 0x80 != 0 {
                            at % words.header.len()
                        } else {
                            interesting[at % interesting.len()]
                        };
                        let word = &words.header[w];
                        let old = word.load(Ordering::SeqCst);
                        let is_token = w == server_word
                            || (w >= Words::entry_word(0)
                                && (w - Words::entry_word(0))
                                    .is_multiple_of(wire::ENTRY_STRIDE / 8));
                        let plausible = if is_token {
                            (old & !0xffff_ffff) | token
                        } else if is_sending(w) {
                            old ^ 1 << (raw % 64)
                        } else if w < 8 {
                            old ^ 1 << (raw % 8)
                        } else {
                            // A signal with a sleeper, or another epoch.
                            old ^ 1 << (32 * (raw & 1))
                        };
                        (word, plausible)
                    }
                    1 => {
                        let q = &words.queues[at % entries][(at >> 2) & 1];
                        let w = (at >> 3) % q.len();
                        let word = &q[w];
                        let old = word.load(Ordering::SeqCst);
                        let slots = ring_wire::HEADER_SIZE / 8;
                        let plausible = if w >= slots && (w - slots).is_multiple_of(5) {
                            // A slot's sequence word: another state, holder
                            // or lap.
                            let (pos, _, _) = ring_wire::parts(old);
                            let state = [
                                ring_wire::State::Empty,
                                ring_wire::State::Claimed,
                                ring_wire::State::Full,
                                ring_wire::State::Taking,
                            ][raw as usize % 4];
                            let who = if matches!(
                                state,
                                ring_wire::State::Claimed | ring_wire::State::Taking
                            ) {
                                (raw >> 2) as u8 % 2
                            } else {
                                0
                            };
                            let lap = match (raw >> 4) % 3 {
                                0 => 0,
                                1 => capacity as u64,
                                _ => (capacity as u64).wrapping_neg(),
                            };
                            ring_wire::word(pos.wrapping_add(lap), state, who)
                        } else if w == ring_wire::ENQUEUE_OFFSET / 8
                            || w == ring_wire::DEQUEUE_OFFSET / 8
                        {
                            old.wrapping_add(if raw & 1 == 0 { 1 } else { capacity as u64 })
                        } else {
                            raw % 16
                        };
                        (word, plausible)
                    }
                    2 => (&words.pool_header[at % words.pool_header.len()], raw % 4096),
                    _ => {
                        let c = at % nclasses;
                        let i = (at >> 2) % counts[c];
                        let (list, plausible): (&[AtomicU64], Box<dyn Fn(u64) -> u64>) = match area
                        {
                            3 => (
                                words.states[c],
                                Box::new(move |old: u64| {
                                    let g = old & !0xffff_ffff;
                                    match raw % 4 {
                                        0 => g | pool_wire::DETACHED,
                                        1 => g,
                                        2 => g | token,
                                        _ => g | pool_wire::DETACHED | token,
                                    }
                                }),
                            ),
                            4 => (
                                words.holders[c],
                                Box::new(move |old: u64| {
                                    if raw & 1 == 0 {
                                        old ^ SERVER_BIT
                                    } else {
                                        old ^ 1 << ((raw >> 1) % entries as u64)
                                    }
                                }),
                            ),
                            _ => {
                                let i = i / 64;
                                let word = &words.bitmap[c][i];
                                let old = word.load(Ordering::SeqCst);
                                (
                                    std::slice::from_ref(word),
                                    Box::new(move |_| old ^ 1 << (raw % 64)),
                                )
                            }
                        };
                        let word = &list[i % list.len()];
                        (word, plausible(word.load(Ordering::SeqCst)))
                    }
                };
                let old = word.load(Ordering::SeqCst);
                let value = match kind % 6 {
                    0 => raw,
                    1 => old.wrapping_add(raw % 5).wrapping_sub(2),
                    2 => old ^ 1 << (raw % 64),
                    3 => 0,
                    4 => plausible,
                    _ => u64::MAX,
                };
                word.store(value, Ordering::SeqCst);
                if value != old {
                    m.exact = false;
                }
            }
            18 => {
                let q = input.u8();
                let kind = input.u8() % 6;
                let raw = input.u64();
                let e = q as usize % entries;
                let to_server = q & 16 == 0;
                let addressed = u64::from(words.token(server_word)) << 32;
                // Responses name the client they are for (a forgery that
                // did not would only be skipped).
                let client = u64::from(words.token(Words::entry_word(e))) << 32;
                let mut env = Envelope {
                    class: (raw % 3) as u32,
                    index: (raw >> 8) as u32 % 32,
                    generation: (raw >> 16) as u32 % 8,
                    len: (raw >> 24) as u32 % 300,
                    request: 1 + (raw >> 40) % 4,
                    flags: if to_server {
                        addressed | (raw >> 62 & 1)
                    } else {
                        client | [0, END, 2][(raw >> 62) as usize % 3]
                    },
                };
                let copy = |b: BlockRef, len: usize, request: u64, env: &mut Envelope| {
                    env.class = b.class;
                    env.index = b.index;
                    env.generation = b.generation;
                    env.len = len as u32;
                    env.request = request;
                };
                let actives: Vec<&Active> = srv.iter().flat_map(|s| &s.actives).collect();
                let member = members.iter().find(|x| x.entry == e);
                match kind {
                    // A copy of a request the server holds, or (in a
                    // response queue) of one for its client.
                    0 => {
                        if let Some(a) = pick(actives.len(), raw as u8) {
                            let r = actives[a].get();
                            copy(r.block(), r.len(), r.id(), &mut env);
                        }
                    }
                    // A copy of a response a client holds.
                    1 => {
                        let held: Vec<&Held> = member
                            .into_iter()
                            .chain(&members)
                            .flat_map(|x| &x.responses)
                            .collect();
                        if let Some(h) = pick(held.len(), raw as u8) {
                            let r = &held[h].r;
                            copy(r.block(), r.len(), r.request(), &mut env);
                        }
                    }
                    // A block on loan.
                    2 => {
                        let loans = loan_blocks(&members, &srv);
                        if let Some(l) = pick(loans.len(), raw as u8) {
                            copy(loans[l], 8, env.request, &mut env);
                        }
                    }
                    // The end of a pending request's stream, or a request
                    // addressed to some other token.
                    3 => {
                        if to_server {
                            let t = tokens.get(raw as usize % tokens.len().max(1));
                            env.flags = u64::from(t.copied().unwrap_or(1)) << 32;
                        } else if let Some(x) = member {
                            if let Some(j) = pick(x.pendings.len(), raw as u8) {
                                env = Envelope {
                                    class: 0,
                                    index: 0,
                                    generation: 0,
                                    len: 0,
                                    request: x.pendings[j].id,
                                    flags: client | END,
                                };
                            }
                        }
                    }
                    // An earlier generation of a held block.
                    4 => {
                        let held = held_blocks(&members, &srv);
                        if let Some(h) = pick(held.len(), raw as u8) {
                            let b = held[h];
                            copy(b, 8, env.request, &mut env);
                            env.generation = b.generation.wrapping_sub(1 + (raw >> 8) as u32 % 2);
                        }
                    }
                    _ => {}
                }
                if rings[e][usize::from(!to_server)].try_push(env).is_ok() {
                    m.exact = false;
                }
            }
            _ => {
                if let Some(s) = srv.as_ref() {
                    let server = s.get();
                    assert!(server.free_blocks(counts.len()).is_none());
                    for a in &s.actives {
                        let gone = a.get().client_gone();
                        if m.exact {
                            assert_eq!(gone, members.iter().all(|x| x.uid != a.uid));
                        }
                    }
                }
                for x in &members {
                    let c = x.client();
                    assert_eq!(c.entry(), x.entry);
                    if m.exact {
                        assert_eq!(c.server_present(), srv.is_some(), "server_present");
                        for p in &x.pendings {
                            assert_eq!(p.p.is_done(), p.done, "is_done");
                        }
                    }
                }
            }
        }
        check_bytes(&members, &srv);
        if m.exact {
            let free = |c| match (srv.as_ref(), members.first()) {
                (Some(s), _) => s.get().free_blocks(c),
                (None, Some(x)) => x.client().free_blocks(c),
                (None, None) => None,
            };
            for (c, &n) in counts.iter().enumerate() {
                if let Some(f) = free(c) {
                    assert_eq!(f, n - busy(&members, &srv, c), "free blocks of class {c}");
                }
            }
            let mut seen: Vec<usize> = members.iter().map(|x| x.entry).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), members.len(), "two clients on one entry");
        }
    }

    // Everything dropped: the clients first (so that no request's end
    // waits for room), then the requests, then the server.
    check_bytes(&members, &srv);
    drop(members);
    if let Some(s) = srv.as_mut() {
        for a in &s.actives {
            let r = a.get();
            if !r.client_gone() {
                // A scribbled entry token names a live handle: nobody will
                // make room for the end of this stream. Clear the token,
                // as a peer could, so that the drop does not wait.
                assert!(
                    !m.exact,
                    "a request's client present after every client left"
                );
                words.header[Words::entry_word(r.client())].store(0, Ordering::SeqCst);
                assert!(r.client_gone());
            }
        }
        s.actives.clear();
    }
    if m.exact {
        let free = |c| match srv.as_ref() {
            Some(s) => s.get().free_blocks(c),
            None => Client::from_region(handle())
                .expect("a client")
                .free_blocks(c),
        };
        for (c, &n) in counts.iter().enumerate() {
            assert_eq!(free(c), Some(n), "class {c} after everything was dropped");
        }
    }
    drop(srv);
});
