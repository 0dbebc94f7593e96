//! [`Client`], [`RequestMut`], [`PendingResponse`] and [`Response`]: the
//! asking side.

use super::config::ServiceConfig;
use super::error::{
    CopyError, ResponseError, ResponseTimeoutError, SendError, SendTimeoutError, TryResponseError,
    TrySendError,
};
use super::service::{addressed_to, patience, push_with_room, Pushed, ReqResp, Service, CLIENT};
use super::wire::{Envelope, END, LAST, SERVER_BIT};
use crate::error::{Error, Result};
use crate::pool::holds::Holds;
use crate::pool::{BlockRef, Corrupted, Loan, LoanError, LoanTimeoutError};
use crate::primitive::Ordering;
use crate::region::Region;
use crate::ring::mpmc::Holder;
use crate::ring::Miss;
use crate::service::{self, Seen};
use crate::sync::wait::deadline_after;
use crate::sync::wait::wait_for;
use bytemuck::Zeroable;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One client of a service: sends requests and receives the responses
/// to each; see the [module documentation](super).
///
/// `Send`, not `Sync`: one thread uses it at a time. Several requests may
/// be pending at once; each [`PendingResponse`] receives its own
/// request's responses only.
pub struct Client {
    svc: Service,
    /// Its entry: bit `entry` of a holders mask is its hold.
    entry: usize,
    /// Its token in the entry: responses for it carry it.
    token: u32,
    /// The id of its next request.
    next_id: Cell<u64>,
    /// Per pending request: responses received for it while another
    /// pending request was being waited on.
    pending: RefCell<HashMap<u64, VecDeque<Envelope>>>,
    /// Responses it holds now.
    held: Cell<usize>,
    /// The server last found alive: a send asks the kernel at most every
    /// probe interval.
    server_seen: Seen,
    /// The blocks its live responses hold.
    holding: Holds,
    /// Last: the views in `svc` borrow its mapping.
    region: Region,
}

/// A block loaned for one request: derefs to its `len` bytes (stale until
/// written); [`send`](Self::send) sends it, dropping it gives the block
/// back unsent.
pub struct RequestMut<'c> {
    client: &'c Client,
    loan: Loan<'c>,
}

/// A request sent and not yet answered in full: receives its responses,
/// in order, until the server ends the stream (`Ok(None)`).
pub struct PendingResponse<'c> {
    client: &'c Client,
    id: u64,
    /// The token of the server the request went to.
    server: u32,
    done: Cell<bool>,
}

/// A response received: derefs to its bytes inside the server's block
/// (read-only, no copy); dropping it frees the block. As for a
/// publish/subscribe [`Sample`](crate::pubsub::Sample), the bytes are
/// shared memory: treat them as untrusted input.
pub struct Response<'c> {
    client: &'c Client,
    block: BlockRef,
    ptr: NonNull<u8>,
    len: usize,
    request: u64,
}

/// Why a receive stopped, before each form narrows it.
enum Stop {
    Empty,
    ServerGone,
    HeldLimit,
    Corrupted(&'static str),
}

impl From<Corrupted> for Stop {
    fn from(Corrupted(w): Corrupted) -> Self {
        Stop::Corrupted(w)
    }
}

/// Why a send stopped.
enum SendStop {
    Full,
    NoServer,
    Corrupted(&'static str),
}

impl From<Corrupted> for SendStop {
    fn from(Corrupted(w): Corrupted) -> Self {
        SendStop::Corrupted(w)
    }
}

impl service::Handle<ReqResp> for Client {
    fn attach(region: Region) -> Result<Self> {
        Self::attach(region)
    }
    fn matches(&self, config: &ServiceConfig) -> bool {
        self.svc.matches(config)
    }
}

impl Client {
    /// Creates a named service of `config` and attaches as a client.
    pub fn create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::create::<ReqResp, _>(name, config)
    }

    /// Opens the named service and attaches as a client. Fails with
    /// [`Error::ServiceBusy`] if every client entry is held by a live
    /// handle (a dead one's entry is cleaned and taken over).
    pub fn open(name: &str) -> Result<Self> {
        service::open::<ReqResp, _>(name)
    }

    /// Opens the named service, or creates it with `config`, and attaches
    /// as a client. An existing service must have been made with the same
    /// configuration ([`Error::InvalidSize`] otherwise).
    pub fn open_or_create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::open_or_create::<ReqResp, _>(name, config)
    }

    /// Attaches as a client of a service region opened by other means.
    pub fn from_region(region: Region) -> Result<Self> {
        Self::attach(region)
    }

    fn attach(region: Region) -> Result<Self> {
        // SAFETY: `svc` goes into `Self` beside `region`, whose field comes
        // last; the views are lent out only through `&self`.
        let svc = unsafe { Service::open(&region)? };
        let mut taken = None;
        for i in 0..svc.queues.len() {
            if let Ok(Some(inherited)) = svc.take_entry(i, true) {
                taken = Some((i, inherited));
                break;
            }
        }
        let Some((entry, inherited)) = taken else {
            return Err(Error::ServiceBusy { role: "client" });
        };
        if let Err(Corrupted(what)) = svc.clean_entry(entry, inherited) {
            svc.free_entry(entry);
            return Err(Error::Corrupted { what });
        }
        let holding = Holds::new(&svc.pool);
        let token = svc.me().raw();
        Ok(Self {
            svc,
            entry,
            token,
            next_id: Cell::new(1),
            server_seen: Seen::default(),
            pending: RefCell::new(HashMap::new()),
            held: Cell::new(0),
            holding,
            region,
        })
    }

    /// The service's region (to pass it to a child process).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// This client's entry in the client table (`0..62`).
    pub fn entry(&self) -> usize {
        self.entry
    }

    /// Whether a live server is attached now.
    pub fn server_present(&self) -> bool {
        let present = self.svc.server().is_some();
        if !present {
            self.server_seen.forget();
        }
        present
    }

    /// How many responses it holds now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// How many blocks of pool class `class` are free now (a snapshot).
    pub fn free_blocks(&self, class: usize) -> Option<usize> {
        self.svc.pool.free_blocks(class)
    }

    /// Loans a block for a request of `len` bytes (of the smallest pool
    /// class that holds it); fails as [`Pool::try_loan`](crate::pool::Pool::try_loan)
    /// does.
    /// With the class exhausted it first reclaims what dead peers held (at
    /// most once per 10 ms).
    pub fn loan(&self, len: usize) -> Result<RequestMut<'_>, LoanError> {
        Ok(RequestMut {
            client: self,
            loan: self.svc.try_loan(len)?,
        })
    }

    /// Loans as [`loan`](Self::loan) does, waiting up to `timeout` for a
    /// block while the class is exhausted.
    pub fn loan_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<RequestMut<'_>, LoanTimeoutError> {
        self.loan_deadline_inner(len, deadline_after(timeout))
    }

    /// Loans as [`loan`](Self::loan) does, waiting until `deadline` for a
    /// block while the class is exhausted.
    pub fn loan_deadline(
        &self,
        len: usize,
        deadline: Instant,
    ) -> Result<RequestMut<'_>, LoanTimeoutError> {
        self.loan_deadline_inner(len, Some(deadline))
    }

    fn loan_deadline_inner(
        &self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<RequestMut<'_>, LoanTimeoutError> {
        Ok(RequestMut {
            client: self,
            loan: self.svc.loan(len, deadline, true)?,
        })
    }

    /// Loans a block, copies `bytes` in and sends it as
    /// [`RequestMut::send`] does.
    pub fn send_copy(&self, bytes: &[u8]) -> Result<PendingResponse<'_>, CopyError> {
        let mut r = self.loan(bytes.len()).map_err(CopyError::from)?;
        r.copy_from_slice(bytes);
        r.send().map_err(|e| match e {
            SendError::NoServer(_) => CopyError::Gone,
            SendError::Corrupted(w) => CopyError::Corrupted(w),
        })
    }

    /// Reclaims what dead peers left (dead clients' entries, a dead
    /// server's holds and claims, blocks nobody holds, dead participants'
    /// loans); returns the blocks freed.
    pub fn reclaim(&self) -> Result<usize, Corrupted> {
        self.svc.reclaim()
    }

    fn bit(&self) -> u64 {
        1 << self.entry
    }

    /// Step 2 of a request to `server`: numbers it, records it as under
    /// way, stores its holders word and shares its block. Returns its
    /// envelope.
    fn share(&self, loan: Loan<'_>, server: u32) -> Result<Envelope, SendStop> {
        let svc = &self.svc;
        let e = svc.entry(self.entry);
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let b = loan.block();
        let Some(holders) = svc.pool.holders(b) else {
            return Err(SendStop::Corrupted("a loan names no block"));
        };
        let env = Envelope::of(b, loan.len(), id, u64::from(server) << 32);
        // Whoever cleans the entry after our death reads this to learn
        // whether the push happened (only we push here).
        let next = svc.queues[self.entry].requests.next_push();
        e.sending.write(&env, self.entry, next);
        // Our bit while we hand it over, the server's for good.
        holders.store(self.bit() | SERVER_BIT, Ordering::Release);
        if loan.share().is_none() {
            e.sending.clear();
            return Err(SendStop::Corrupted(
                "a request's block was taken from its client",
            ));
        }
        Ok(env)
    }

    /// Sends `loan` as the next request (the steps of the [module
    /// documentation](super#how-a-request-travels)).
    fn send_inner<'c>(
        &'c self,
        loan: Loan<'c>,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<PendingResponse<'c>, (SendStop, Option<Loan<'c>>)> {
        let svc = &self.svc;
        let q = &svc.queues[self.entry];
        let e = svc.entry(self.entry);
        let room = || -> Result<Option<u32>, SendStop> {
            let server = self
                .server_seen
                .live(&svc.header.server)
                .ok_or(SendStop::NoServer)?;
            Ok((q.requests.len() < q.requests.capacity()).then_some(server))
        };
        let server = match wait_for(&e.request_space, deadline, wait, room, || Ok(())) {
            Ok(Some(s)) => s,
            Ok(None) => return Err((SendStop::Full, Some(loan))),
            Err(stop) => return Err((stop, Some(loan))),
        };
        let env = self.share(loan, server).map_err(|w| (w, None))?;
        let (b, id) = (env.block(), env.request);
        // Only this client pushes here, and there was room: a push misses
        // only while the server is still popping the slot we need, or
        // after a peer broke the protocol. A `try_send` waits for that
        // one probe interval, not for good.
        let pushed = push_with_room(
            &q.requests,
            CLIENT,
            &env,
            &e.request_space,
            patience(deadline, wait),
            || svc.server() == Some(server),
        );
        let refused = match pushed {
            Pushed::Done => None,
            Pushed::GaveUp => Some("a request queue with room refused the push"),
            Pushed::Corrupted(w) => Some(w),
        };
        if refused.is_some() {
            // We give both holds back ourselves.
            e.sending.clear();
        }
        svc.pool.release_shared(b, self.bit());
        if let Some(w) = refused {
            svc.pool.release_shared(b, SERVER_BIT);
            return Err((SendStop::Corrupted(w), None));
        }
        svc.header.requests.notify();
        self.pending.borrow_mut().insert(id, VecDeque::new());
        Ok(PendingResponse {
            client: self,
            id,
            server,
            done: Cell::new(false),
        })
    }

    /// The next response for request `id`, if one has come: from what
    /// was set aside for it, else from the queue (setting aside what
    /// belongs to other pending requests, releasing what belongs to none).
    /// `Ok(None)` inside: the end of its stream.
    fn next_for(&self, id: u64) -> Result<Option<Option<Response<'_>>>, Stop> {
        let kept = self
            .pending
            .borrow_mut()
            .get_mut(&id)
            .and_then(VecDeque::pop_front);
        if let Some(env) = kept {
            return self.accept(&env).map(Some);
        }
        let q = &self.svc.queues[self.entry].responses;
        let mut env = Envelope::zeroed();
        for _ in 0..=q.capacity() {
            match q.pop_into_as(CLIENT, &mut env) {
                Ok(()) => {}
                Err(Miss::WouldBlock) => return Ok(None),
                Err(Miss::Corrupted(w)) => return Err(Stop::Corrupted(w)),
            }
            self.svc.entry(self.entry).response_space.notify();
            // For the entry's last holder (a server that checked it was
            // still there just before it left): not ours.
            if addressed_to(&env) != self.token {
                self.svc.release_envelope(&env, self.bit());
                continue;
            }
            if env.request == id {
                return self.accept(&env).map(Some);
            }
            match self.pending.borrow_mut().get_mut(&env.request) {
                Some(other) => other.push_back(env),
                // For a request nobody waits on now: dropped unanswered.
                None => {
                    self.svc.release_envelope(&env, self.bit());
                }
            }
        }
        Ok(None)
    }

    /// Makes envelope `env` (for a pending request) a response, or the
    /// end of its stream (`None`).
    fn accept(&self, env: &Envelope) -> Result<Option<Response<'_>>, Stop> {
        let kind = u64::from(env.flags as u32);
        if kind == END {
            return Ok(None);
        }
        if kind != 0 && kind != LAST {
            return Err(Stop::Corrupted("a response envelope's flags"));
        }
        let c = self.svc.check(env, self.bit())?;
        if self.holding.contains(c.block) {
            return Err(Stop::Corrupted(
                "a response names a block this client already holds",
            ));
        }
        // From here on no loan of this process takes the block (and one
        // that has it on loan makes this `Corrupted`).
        self.svc.pool.read_shared(c.block)?;
        self.holding.insert(c.block);
        self.held.set(self.held.get() + 1);
        if kind == LAST {
            // The end of the stream comes next, without a message.
            if let Some(kept) = self.pending.borrow_mut().get_mut(&env.request) {
                kept.push_front(Envelope { flags: END, ..*env });
            }
        }
        Ok(Some(Response {
            client: self,
            block: c.block,
            ptr: c.ptr,
            len: c.len,
            request: env.request,
        }))
    }

    /// Hands on a queue slot a dead server claimed and never filled, if
    /// that is what keeps the response queue looking empty.
    fn repair(&self) {
        // A dead server's word, taken by the first to notice: its claims
        // handed on, its holds cleared, the response it was sending
        // pushed for it. Errors are the next receive's to meet.
        let _ = self.svc.reclaim_server();
        let q = &self.svc.queues[self.entry].responses;
        let Some(stall) = q.stalled_pop() else {
            return;
        };
        if !matches!(stall.holder(), Holder::Producer(_)) || self.svc.server().is_some() {
            return;
        }
        // SAFETY: only the server pushes responses, and no live server is
        // attached (its word is free, holds a dead token, or is marked
        // attaching: a successor pushes nothing before it has handed on
        // the dead one's claims, by the same CAS on the exact word that
        // `repair` makes); a server that attaches later claims other
        // positions.
        unsafe {
            q.repair(stall);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // No response or request is out (each borrows `self`): take back
        // unserved requests, drain responses, give back every hold.
        let _ = self.svc.clean_entry(self.entry, false);
        self.svc.free_entry(self.entry);
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.region.name())
            .field("entry", &self.entry)
            .field("held", &self.held.get())
            .finish_non_exhaustive()
    }
}

impl<'c> RequestMut<'c> {
    /// A send stopped as one killed mid-way stops (for kill tests, in a
    /// process that dies next): the request numbered, recorded and shared
    /// with the server, never pushed, the client's hold kept. Returns its
    /// id.
    pub(crate) fn send_cut_short(self) -> Result<u64, &'static str> {
        let c = self.client;
        let server = c.svc.server().ok_or("no server")?;
        match c.share(self.loan, server) {
            Ok(env) => Ok(env.request),
            Err(SendStop::Corrupted(w)) => Err(w),
            Err(_) => Err("a share gave up"),
        }
    }

    /// Sends the request, waiting (as long as it takes) for room in this
    /// client's request queue; the [`PendingResponse`] receives its
    /// responses. [`SendError::NoServer`] (the request back) if no live
    /// server is attached.
    pub fn send(self) -> Result<PendingResponse<'c>, SendError<'c>> {
        let c = self.client;
        c.send_inner(self.loan, None, true)
            .map_err(|(e, loan)| match (e, loan) {
                (SendStop::NoServer, Some(loan)) => {
                    SendError::NoServer(RequestMut { client: c, loan })
                }
                (SendStop::Corrupted(w), _) => SendError::Corrupted(w),
                _ => SendError::Corrupted("a blocking send gave up"),
            })
    }

    /// Sends the request if the request queue has room now. A queue with
    /// room whose next slot stays refused for a probe interval (10 ms; a
    /// peer broke the protocol) fails with `Corrupted`, the request lost.
    pub fn try_send(self) -> Result<PendingResponse<'c>, TrySendError<'c>> {
        let c = self.client;
        c.send_inner(self.loan, None, false)
            .map_err(|(e, loan)| match (e, loan) {
                (SendStop::Full, Some(loan)) => TrySendError::Full(RequestMut { client: c, loan }),
                (SendStop::NoServer, Some(loan)) => {
                    TrySendError::NoServer(RequestMut { client: c, loan })
                }
                (SendStop::Corrupted(w), _) => TrySendError::Corrupted(w),
                _ => TrySendError::Corrupted("a send lost its request"),
            })
    }

    /// [`send_deadline`](Self::send_deadline) with a deadline `timeout`
    /// from now.
    pub fn send_timeout(
        self,
        timeout: Duration,
    ) -> Result<PendingResponse<'c>, SendTimeoutError<'c>> {
        self.send_deadline_inner(deadline_after(timeout))
    }

    /// Sends the request, waiting until `deadline` at most for room.
    pub fn send_deadline(
        self,
        deadline: Instant,
    ) -> Result<PendingResponse<'c>, SendTimeoutError<'c>> {
        self.send_deadline_inner(Some(deadline))
    }

    fn send_deadline_inner(
        self,
        deadline: Option<Instant>,
    ) -> Result<PendingResponse<'c>, SendTimeoutError<'c>> {
        let c = self.client;
        c.send_inner(self.loan, deadline, true)
            .map_err(|(e, loan)| match (e, loan) {
                (SendStop::Full, Some(loan)) => {
                    SendTimeoutError::Timeout(RequestMut { client: c, loan })
                }
                (SendStop::NoServer, Some(loan)) => {
                    SendTimeoutError::NoServer(RequestMut { client: c, loan })
                }
                (SendStop::Corrupted(w), _) => SendTimeoutError::Corrupted(w),
                _ => SendTimeoutError::Corrupted("a send lost its request"),
            })
    }

    /// The block's name.
    pub fn block(&self) -> BlockRef {
        self.loan.block()
    }
}

impl Deref for RequestMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.loan
    }
}

impl DerefMut for RequestMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.loan
    }
}

impl fmt::Debug for RequestMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMut")
            .field("block", &self.loan.block())
            .field("len", &self.loan.len())
            .finish()
    }
}

impl<'c> PendingResponse<'c> {
    /// The request's id (this client numbers its requests from 1).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the response stream has ended.
    pub fn is_done(&self) -> bool {
        self.done.get()
    }

    /// The next response, waiting as long as it takes (spinning a little,
    /// then sleeping); `Ok(None)` once the server has ended the stream.
    /// Fails with [`ResponseError::ServerGone`] if the server leaves or
    /// dies first (within a few milliseconds of its death).
    pub fn recv(&self) -> Result<Option<Response<'c>>, ResponseError> {
        self.recv_inner(None, true).map_err(|e| match e {
            Stop::ServerGone => ResponseError::ServerGone,
            Stop::HeldLimit => ResponseError::HeldLimit,
            Stop::Corrupted(w) => ResponseError::Corrupted(w),
            Stop::Empty => ResponseError::Corrupted("a blocking receive gave up"),
        })
    }

    /// The next response if one has come.
    pub fn try_recv(&self) -> Result<Option<Response<'c>>, TryResponseError> {
        self.recv_inner(None, false).map_err(|e| match e {
            Stop::Empty => TryResponseError::Empty,
            Stop::ServerGone => TryResponseError::ServerGone,
            Stop::HeldLimit => TryResponseError::HeldLimit,
            Stop::Corrupted(w) => TryResponseError::Corrupted(w),
        })
    }

    /// The next response, waiting at most `timeout`.
    pub fn recv_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<Response<'c>>, ResponseTimeoutError> {
        self.recv_deadline_inner(deadline_after(timeout))
    }

    /// The next response, waiting until `deadline` at the latest.
    pub fn recv_deadline(
        &self,
        deadline: Instant,
    ) -> Result<Option<Response<'c>>, ResponseTimeoutError> {
        self.recv_deadline_inner(Some(deadline))
    }

    fn recv_deadline_inner(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Response<'c>>, ResponseTimeoutError> {
        self.recv_inner(deadline, true).map_err(|e| match e {
            Stop::Empty => ResponseTimeoutError::Timeout,
            Stop::ServerGone => ResponseTimeoutError::ServerGone,
            Stop::HeldLimit => ResponseTimeoutError::HeldLimit,
            Stop::Corrupted(w) => ResponseTimeoutError::Corrupted(w),
        })
    }

    fn recv_inner(
        &self,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Option<Response<'c>>, Stop> {
        let c = self.client;
        if self.done.get() {
            return Ok(None);
        }
        if c.held.get() >= c.svc.held_limit {
            return Err(Stop::HeldLimit);
        }
        let once = || c.next_for(self.id);
        // Between sleeps: a server that went leaves what it sent first,
        // then `ServerGone`.
        let gone = || {
            if c.svc.server() == Some(self.server) {
                return Ok(());
            }
            c.repair();
            Err(Stop::ServerGone)
        };
        let got = match wait_for(&c.svc.entry(c.entry).responses, deadline, wait, once, gone) {
            Ok(Some(r)) => r,
            // One last look, and the server's state, before `Empty`.
            Ok(None) => match c.next_for(self.id)? {
                Some(r) => r,
                None if c.svc.server() != Some(self.server) => {
                    c.repair();
                    c.next_for(self.id)?.ok_or(Stop::ServerGone)?
                }
                None => return Err(Stop::Empty),
            },
            // Whatever it sent before going is still ours.
            Err(Stop::ServerGone) => c.next_for(self.id)?.ok_or(Stop::ServerGone)?,
            Err(e) => return Err(e),
        };
        if got.is_none() {
            self.done.set(true);
            c.pending.borrow_mut().remove(&self.id);
        }
        Ok(got)
    }
}

impl Drop for PendingResponse<'_> {
    fn drop(&mut self) {
        // Responses set aside for it are released; later ones are, as
        // they come (for a request nobody waits on).
        let kept = self.client.pending.borrow_mut().remove(&self.id);
        for env in kept.into_iter().flatten() {
            self.client.svc.release_envelope(&env, self.client.bit());
        }
    }
}

impl fmt::Debug for PendingResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("id", &self.id)
            .field("done", &self.done.get())
            .finish()
    }
}

impl Response<'_> {
    /// The id of the request it answers.
    pub fn request(&self) -> u64 {
        self.request
    }

    /// The block it lives in.
    pub fn block(&self) -> BlockRef {
        self.block
    }

    /// A copy of the response as a `T`, if it is exactly
    /// `size_of::<T>()` bytes.
    pub fn value<T: bytemuck::Pod>(&self) -> Option<T> {
        (self.len == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(self))
    }
}

impl Deref for Response<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the first of `len <= block_size` bytes of the
        // response's block, valid while the client (and so its mapping) is
        // borrowed. The block was `shared` under this generation with this
        // client's bit set when received, and stays so while the bit is:
        // only this response's drop clears it (reclaims clear the bits of
        // dead or departed clients only), and a shared block is lent to
        // nobody. A peer breaking the protocol can change the bytes (any
        // bytes are valid `u8`).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        let c = self.client;
        c.holding.remove(self.block);
        c.svc.pool.end_read(self.block);
        c.svc.pool.release_shared(self.block, c.bit());
        c.held.set(c.held.get() - 1);
    }
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("request", &self.request)
            .field("block", &self.block)
            .field("len", &self.len)
            .finish()
    }
}
