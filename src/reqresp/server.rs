//! [`Server`], [`ActiveRequest`] and [`ResponseMut`]: the answering side.

use super::client::Client;
use super::config::ServiceConfig;
use super::error::{
    CopyError, FinishTimeoutError, RecvError, RecvTimeoutError, RespondError, TryFinishError,
    TryRecvError, TryRespondError,
};
use super::service::{addressed_to, patience, push_with_room, Pushed, ReqResp, Service, SERVER};
use super::wire::{Envelope, ATTACHING, END, LAST, SERVER_BIT};
use crate::error::{Error, Result};
use crate::pool::holds::Holds;
use crate::pool::{BlockRef, Corrupted, Loan, LoanError, LoanTimeoutError};
use crate::primitive::Ordering;
use crate::region::{Region, RegionOptions};
use crate::ring::Miss;
use crate::service::{self, Seen, Take};
use crate::sync::wait::wait_for;
use crate::sync::wait::{deadline_after, PROBE_INTERVAL};
use bytemuck::Zeroable;
use core::cell::Cell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The one server of a service: receives the clients' requests and
/// answers each with a stream of responses; see the [module
/// documentation](super).
///
/// `Send`, not `Sync`: one thread serves at a time.
pub struct Server {
    svc: Service,
    /// The client queue the next receive looks at first (round robin).
    next_queue: Cell<usize>,
    /// Requests it holds now.
    held: Cell<usize>,
    /// The blocks its live requests hold.
    holding: Holds,
    /// When a receive next cleans the entries of dead clients.
    next_probe: Cell<Instant>,
    /// Per entry, the client last found alive there: a receive or a
    /// response asks the kernel at most every probe interval.
    clients_seen: Vec<Seen>,
    /// Last: the views in `svc` borrow its mapping.
    region: Region,
}

/// A request received: derefs to its bytes inside the client's block
/// (read-only, no copy). Answer it with [`loan`](Self::loan) /
/// [`respond_copy`](Self::respond_copy) (as many responses as the stream
/// needs), then [`finish`](Self::finish); dropping it finishes the
/// stream too. Either way its block is freed. The bytes are shared
/// memory: treat them as untrusted input.
pub struct ActiveRequest<'s> {
    server: &'s Server,
    /// The client's entry, and its token when the request was received.
    client: usize,
    token: u32,
    id: u64,
    block: BlockRef,
    ptr: NonNull<u8>,
    len: usize,
    finished: Cell<bool>,
}

/// A block loaned for one response to `request`: derefs to its `len`
/// bytes (stale until written); [`send`](Self::send) sends it to the
/// client, dropping it gives the block back unsent.
pub struct ResponseMut<'r, 's> {
    request: &'r ActiveRequest<'s>,
    loan: Loan<'s>,
}

/// Why a receive stopped, before each form narrows it.
enum Stop {
    HeldLimit,
    Corrupted(&'static str),
}

impl From<Corrupted> for Stop {
    fn from(Corrupted(w): Corrupted) -> Self {
        Stop::Corrupted(w)
    }
}

/// Why a response stopped.
enum RespondStop {
    Full,
    ClientGone,
    Corrupted(&'static str),
}

impl From<RespondStop> for RespondError {
    fn from(e: RespondStop) -> Self {
        match e {
            RespondStop::ClientGone => RespondError::ClientGone,
            RespondStop::Corrupted(w) => RespondError::Corrupted(w),
            RespondStop::Full => RespondError::Corrupted("a blocking response gave up"),
        }
    }
}

impl service::Handle<ReqResp> for Server {
    fn attach(region: Region) -> Result<Self> {
        Self::attach(region)
    }
    fn matches(&self, config: &ServiceConfig) -> bool {
        self.svc.matches(config)
    }
}

impl Server {
    /// Creates a named service of `config` and attaches as its server.
    pub fn create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::create::<ReqResp, _>(name, config)
    }

    /// Opens the named service and attaches as its server. Fails with
    /// [`Error::ServiceBusy`] while another server is attached and alive
    /// (one that was dropped or died is replaced; requests sent to it
    /// are dropped, and their clients' waits end with `ServerGone`), and
    /// for the moment another is attaching or a peer's `reclaim` cleans up
    /// after a dead one.
    pub fn open(name: &str) -> Result<Self> {
        service::open::<ReqResp, _>(name)
    }

    /// Opens the named service, or creates it with `config`, and attaches
    /// as its server. An existing service must have been made with the
    /// same configuration ([`Error::InvalidSize`] otherwise).
    pub fn open_or_create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::open_or_create::<ReqResp, _>(name, config)
    }

    /// Creates an anonymous service of `config` and attaches as its
    /// server; [`client`](Self::client) attaches clients in this process,
    /// [`region`](Self::region) passes it to a child.
    pub fn anonymous(config: &ServiceConfig) -> Result<Self> {
        service::anonymous::<ReqResp, _>(config)
    }

    /// Attaches as the server of a service region opened by other means.
    pub fn from_region(region: Region) -> Result<Self> {
        Self::attach(region)
    }

    fn attach(region: Region) -> Result<Self> {
        // SAFETY: `svc` goes into `Self` beside `region`, whose field comes
        // last; the views are lent out only through `&self`.
        let svc = unsafe { Service::open(&region)? };
        let w = &svc.header.server;
        // A live peer holding the word marked attaching is a server
        // attaching or a peer cleaning up after a dead one, for the
        // length of a sweep: waited for, a while; a live server is not.
        let taken = service::take_role(|| {
            let t = w.load(Ordering::Acquire);
            Ok(match svc.take_server_word(t) {
                true => Take::Taken,
                false if t & ATTACHING != 0 => Take::Cleaning,
                false => Take::Busy,
            })
        })?;
        if !taken {
            return Err(Error::ServiceBusy { role: "server" });
        }
        // Clients see no server until the word holds our plain token: the
        // sweep of bit 62 catches no request sent to us.
        let cleaned = svc.after_server().and_then(|_| svc.pool.reclaim());
        if let Err(Corrupted(what)) = cleaned {
            w.store(0, Ordering::Release);
            return Err(Error::Corrupted { what });
        }
        w.store(svc.me().raw(), Ordering::Release);
        let holding = Holds::new(&svc.pool);
        let clients_seen = (0..svc.queues.len()).map(|_| Seen::default()).collect();
        Ok(Self {
            svc,
            next_queue: Cell::new(0),
            held: Cell::new(0),
            holding,
            next_probe: Cell::new(Instant::now()),
            clients_seen,
            region,
        })
    }

    /// Attaches a client to this service through a handle of its own on
    /// the same region (for this process's threads; for an anonymous
    /// service, the way to get a client).
    pub fn client(&self) -> Result<Client> {
        let twin = RegionOptions::new()
            .layout(self.region.layout())
            .from_fd(crate::sys::fd::dup(self.region.as_fd())?)?;
        Client::from_region(twin)
    }

    /// The service's region (to pass it to a child process).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// How many requests it holds now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// How many blocks of pool class `class` are free now (a snapshot).
    pub fn free_blocks(&self, class: usize) -> Option<usize> {
        self.svc.pool.free_blocks(class)
    }

    /// Reclaims what dead peers left (see [`Client::reclaim`]); returns
    /// the blocks freed. Receives do part of it on their own: every
    /// `PROBE_INTERVAL` (10 ms) of waiting, dead clients' entries.
    pub fn reclaim(&self) -> Result<usize, Corrupted> {
        self.svc.reclaim()
    }

    /// Receives the next request from any client, waiting as long as it
    /// takes (spinning a little, then sleeping). Fails with
    /// [`RecvError::HeldLimit`] while it holds its limit of requests.
    pub fn recv(&self) -> Result<ActiveRequest<'_>, RecvError> {
        match self.recv_inner(None, true) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(RecvError::Corrupted("a blocking receive gave up")),
            Err(Stop::HeldLimit) => Err(RecvError::HeldLimit),
            Err(Stop::Corrupted(w)) => Err(RecvError::Corrupted(w)),
        }
    }

    /// Receives the next request if one is queued now.
    pub fn try_recv(&self) -> Result<ActiveRequest<'_>, TryRecvError> {
        match self.recv_inner(None, false) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(TryRecvError::Empty),
            Err(Stop::HeldLimit) => Err(TryRecvError::HeldLimit),
            Err(Stop::Corrupted(w)) => Err(TryRecvError::Corrupted(w)),
        }
    }

    /// Receives the next request, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ActiveRequest<'_>, RecvTimeoutError> {
        self.recv_deadline_inner(deadline_after(timeout))
    }

    /// Receives the next request, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<ActiveRequest<'_>, RecvTimeoutError> {
        self.recv_deadline_inner(Some(deadline))
    }

    fn recv_deadline_inner(
        &self,
        deadline: Option<Instant>,
    ) -> Result<ActiveRequest<'_>, RecvTimeoutError> {
        match self.recv_inner(deadline, true) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(RecvTimeoutError::Timeout),
            Err(Stop::HeldLimit) => Err(RecvTimeoutError::HeldLimit),
            Err(Stop::Corrupted(w)) => Err(RecvTimeoutError::Corrupted(w)),
        }
    }

    fn recv_inner(
        &self,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Option<ActiveRequest<'_>>, Stop> {
        if self.held.get() >= self.svc.held_limit {
            return Err(Stop::HeldLimit);
        }
        let probe = || {
            let now = Instant::now();
            if now >= self.next_probe.get() {
                self.next_probe.set(now + PROBE_INTERVAL);
                for i in 0..self.svc.queues.len() {
                    self.svc.reclaim_entry(i)?;
                }
            }
            Ok(())
        };
        wait_for(
            &self.svc.header.requests,
            deadline,
            wait,
            || self.try_once(),
            probe,
        )
    }

    /// Pops requests, round robin over the clients' queues, until one is
    /// for this server from a client still attached; `None` if every
    /// queue is empty.
    fn try_once(&self) -> Result<Option<ActiveRequest<'_>>, Stop> {
        let svc = &self.svc;
        let me = svc.me().raw();
        let n = svc.queues.len();
        let start = self.next_queue.get();
        let mut env = Envelope::zeroed();
        for k in 0..n {
            let i = (start + k) % n;
            let q = &svc.queues[i].requests;
            for _ in 0..=q.capacity() {
                match q.pop_into_as(SERVER, &mut env) {
                    Ok(()) => {}
                    Err(Miss::WouldBlock) => break,
                    Err(Miss::Corrupted(w)) => return Err(Stop::Corrupted(w)),
                }
                svc.entry(i).request_space.notify();
                if env.flags as u32 != 0 {
                    return Err(Stop::Corrupted("a request envelope's flags"));
                }
                // Sent to a server before this one, or by a client that
                // has gone since: nobody waits for its answer.
                let live = self.clients_seen[i].live(&svc.entry(i).token);
                let Some(token) = live.filter(|_| addressed_to(&env) == me) else {
                    svc.release_envelope(&env, SERVER_BIT);
                    continue;
                };
                let c = svc.check(&env, SERVER_BIT)?;
                if self.holding.contains(c.block) {
                    return Err(Stop::Corrupted(
                        "a request names a block this server already holds",
                    ));
                }
                // As a client's response: no loan of this process takes
                // the block while the request is read.
                svc.pool.read_shared(c.block)?;
                self.holding.insert(c.block);
                self.held.set(self.held.get() + 1);
                self.next_queue.set((i + 1) % n);
                return Ok(Some(ActiveRequest {
                    server: self,
                    client: i,
                    token,
                    id: env.request,
                    block: c.block,
                    ptr: c.ptr,
                    len: c.len,
                    finished: Cell::new(false),
                }));
            }
        }
        Ok(None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // No request is out (each borrows `self`), so no block carries
        // this server's bit but queued requests, which name its token:
        // a successor skips and releases them.
        let me = self.svc.me().raw();
        let _ = self
            .svc
            .header
            .server
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.region.name())
            .field("held", &self.held.get())
            .finish_non_exhaustive()
    }
}

impl<'s> ActiveRequest<'s> {
    /// The request's id (its client's numbering).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The entry of the client that sent it.
    pub fn client(&self) -> usize {
        self.client
    }

    /// Whether the client that sent it has left or died.
    pub fn client_gone(&self) -> bool {
        let gone = self.server.svc.client(self.client) != Some(self.token);
        if gone {
            self.server.clients_seen[self.client].forget();
        }
        gone
    }

    /// [`client_gone`](Self::client_gone) as far as the server's last look
    /// within the probe interval knew: for the hot paths.
    fn client_seen_gone(&self) -> bool {
        let svc = &self.server.svc;
        self.server.clients_seen[self.client].live(&svc.entry(self.client).token)
            != Some(self.token)
    }

    /// The block it lives in.
    pub fn block(&self) -> BlockRef {
        self.block
    }

    /// A copy of the request as a `T`, if it is exactly
    /// `size_of::<T>()` bytes.
    pub fn value<T: bytemuck::Pod>(&self) -> Option<T> {
        (self.len == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(self))
    }

    /// Loans a block for a response of `len` bytes (with the class
    /// exhausted, after reclaiming what dead peers held).
    pub fn loan(&self, len: usize) -> Result<ResponseMut<'_, 's>, LoanError> {
        Ok(ResponseMut {
            request: self,
            loan: self.server.svc.try_loan(len)?,
        })
    }

    /// Loans as [`loan`](Self::loan) does, waiting up to `timeout` for a
    /// block while the class is exhausted.
    pub fn loan_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<ResponseMut<'_, 's>, LoanTimeoutError> {
        Ok(ResponseMut {
            request: self,
            loan: self.server.svc.loan(len, deadline_after(timeout), true)?,
        })
    }

    /// Loans a block, copies `bytes` in and sends it as
    /// [`ResponseMut::send`] does.
    pub fn respond_copy(&self, bytes: &[u8]) -> Result<(), CopyError> {
        let mut r = self.loan(bytes.len()).map_err(CopyError::from)?;
        r.copy_from_slice(bytes);
        r.send().map_err(|e| match e {
            RespondError::ClientGone => CopyError::Gone,
            RespondError::Corrupted(w) => CopyError::Corrupted(w),
        })
    }

    /// Ends the response stream: the client's [`PendingResponse`](super::PendingResponse)
    /// receives `Ok(None)` after the responses sent before. Waits for
    /// room in the client's queue as a response does (as long as the
    /// client is there: see [`try_finish`](Self::try_finish) and
    /// [`finish_timeout`](Self::finish_timeout) for a bound).
    pub fn finish(self) -> Result<(), RespondError> {
        if self.finished.replace(true) {
            return Ok(());
        }
        self.send_end(None, true)
    }

    /// Ends the response stream if the client's queue has room now;
    /// [`TryFinishError::Full`] (the request back, still open) otherwise.
    pub fn try_finish(self) -> Result<(), TryFinishError<'s>> {
        self.finish_bounded(None, false)
            .map_err(|(e, back)| match (e, back) {
                (RespondStop::Full, Some(r)) => TryFinishError::Full(r),
                (RespondStop::ClientGone, _) => TryFinishError::ClientGone,
                (RespondStop::Corrupted(w), _) => TryFinishError::Corrupted(w),
                _ => TryFinishError::Corrupted("a finish lost its request"),
            })
    }

    /// Ends the response stream, waiting up to `timeout` for room in the
    /// client's queue; [`FinishTimeoutError::Timeout`] (the request back,
    /// still open) once it passes.
    pub fn finish_timeout(self, timeout: Duration) -> Result<(), FinishTimeoutError<'s>> {
        let deadline = deadline_after(timeout);
        self.finish_bounded(deadline, true)
            .map_err(|(e, back)| match (e, back) {
                (RespondStop::Full, Some(r)) => FinishTimeoutError::Timeout(r),
                (RespondStop::ClientGone, _) => FinishTimeoutError::ClientGone,
                (RespondStop::Corrupted(w), _) => FinishTimeoutError::Corrupted(w),
                _ => FinishTimeoutError::Corrupted("a finish lost its request"),
            })
    }

    /// A finish that gives the request back if the client's queue has no
    /// room in time.
    fn finish_bounded(
        self,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<(), (RespondStop, Option<Self>)> {
        if self.finished.get() {
            // Its last response ended the stream.
            return Ok(());
        }
        match self.wait_for_room(deadline, wait) {
            Ok(()) => {}
            Err(RespondStop::Full) => return Err((RespondStop::Full, Some(self))),
            Err(e) => {
                // Gone or corrupted: nothing to end; dropped as finished.
                self.finished.set(true);
                return Err((e, None));
            }
        }
        self.finished.set(true);
        self.push(&self.end(), patience(deadline, wait))
            .map_err(|e| (e, None))
    }

    /// The end of this request's stream.
    fn end(&self) -> Envelope {
        Envelope {
            request: self.id,
            flags: END | u64::from(self.token) << 32,
            ..Envelope::zeroed()
        }
    }

    fn send_end(&self, deadline: Option<Instant>, wait: bool) -> Result<(), RespondError> {
        self.wait_for_room(deadline, wait)?;
        Ok(self.push(&self.end(), patience(deadline, wait))?)
    }

    /// Waits until the client's response queue has room (as the form
    /// allows), watching the client.
    fn wait_for_room(&self, deadline: Option<Instant>, wait: bool) -> Result<(), RespondStop> {
        let svc = &self.server.svc;
        let q = &svc.queues[self.client].responses;
        let room = || {
            if self.client_seen_gone() {
                return Err(RespondStop::ClientGone);
            }
            Ok((q.len() < q.capacity()).then_some(()))
        };
        let e = svc.entry(self.client);
        wait_for(&e.response_space, deadline, wait, room, || Ok(()))?.ok_or(RespondStop::Full)
    }

    /// Pushes `env` to the client's response queue, which has room (only
    /// this server pushes there), and wakes the client. A push with room
    /// misses only while the client is still popping the slot we need, or
    /// after a peer broke the protocol: waited for until `patience` (see
    /// [`patience`](super::service::patience)), while the client stays.
    fn push(&self, env: &Envelope, patience: Option<Instant>) -> Result<(), RespondStop> {
        let svc = &self.server.svc;
        let q = &svc.queues[self.client].responses;
        let e = svc.entry(self.client);
        match push_with_room(q, SERVER, env, &e.response_space, patience, || {
            !self.client_seen_gone()
        }) {
            Pushed::Done => {
                e.responses.notify();
                Ok(())
            }
            Pushed::GaveUp if self.client_seen_gone() => Err(RespondStop::ClientGone),
            Pushed::GaveUp => Err(RespondStop::Corrupted(
                "a response queue with room refused the push",
            )),
            Pushed::Corrupted(w) => Err(RespondStop::Corrupted(w)),
        }
    }
}

impl Deref for ActiveRequest<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: as for a `Response`: `ptr` is the first of `len <=
        // block_size` bytes of the request's block, shared under this
        // generation with the server's bit set when received; only this
        // request's drop clears that bit (a reclaim clears it only for a
        // dead or departed server, and this one is attached while `self`
        // borrows it).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        if !self.finished.get() {
            // Best effort: a client that is gone needs no end.
            let _ = self.send_end(None, true);
        }
        let s = self.server;
        s.holding.remove(self.block);
        s.svc.pool.end_read(self.block);
        s.svc.pool.release_shared(self.block, SERVER_BIT);
        s.held.set(s.held.get() - 1);
    }
}

impl fmt::Debug for ActiveRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRequest")
            .field("id", &self.id)
            .field("client", &self.client)
            .field("len", &self.len)
            .finish()
    }
}

impl<'r, 's> ResponseMut<'r, 's> {
    /// A send stopped as one killed mid-way stops (for kill tests, in a
    /// process that dies next): the response recorded and shared with its
    /// client, never pushed, the server's hold kept.
    pub(crate) fn send_cut_short(self) -> Result<(), &'static str> {
        match share(self.request, self.loan, 0) {
            Ok(_) => Ok(()),
            Err(RespondStop::Corrupted(w)) => Err(w),
            Err(_) => Err("a share gave up"),
        }
    }

    /// Sends the response to the request's client, waiting (as long as it
    /// takes) for room in its response queue; [`RespondError::ClientGone`]
    /// if the client left or died.
    pub fn send(self) -> Result<(), RespondError> {
        self.send_inner(None, true, 0).map_err(|(e, _)| e.into())
    }

    /// Sends the response as [`send`](Self::send) does, as the last of
    /// the request's stream: the client's
    /// [`PendingResponse`](super::PendingResponse) receives it, then
    /// `Ok(None)`, with no end marker sent after it (one message fewer
    /// than `send` then [`ActiveRequest::finish`]). The request is
    /// finished: dropping or finishing it sends nothing more, and
    /// responses sent to it later are released by the client unread.
    ///
    /// ```
    /// use shmkit::pool::PoolConfig;
    /// use shmkit::reqresp::{Server, ServiceConfig};
    ///
    /// let server = Server::anonymous(&ServiceConfig::new(PoolConfig::new().class(64, 8)))?;
    /// let client = server.client()?;
    /// let pending = client.send_copy(b"ping")?;
    /// let request = server.recv()?;
    /// let mut answer = request.loan(4)?;
    /// answer.copy_from_slice(b"pong");
    /// answer.send_last()?;
    /// assert_eq!(&pending.recv()?.unwrap()[..], b"pong");
    /// assert!(pending.recv()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_last(self) -> Result<(), RespondError> {
        let request = self.request;
        let sent = self.send_inner(None, true, LAST).map_err(|(e, _)| e.into());
        request.finished.set(true);
        sent
    }

    /// Sends the response if the client's queue has room now;
    /// [`TryRespondError::Full`] (the response back) otherwise. A queue
    /// with room whose next slot stays refused for a probe interval (10
    /// ms; a peer broke the protocol) fails with `Corrupted`, the response
    /// lost.
    pub fn try_send(self) -> Result<(), TryRespondError<'r, 's>> {
        let request = self.request;
        self.send_inner(None, false, 0)
            .map_err(|(e, loan)| match (e, loan) {
                (RespondStop::Full, Some(loan)) => {
                    TryRespondError::Full(ResponseMut { request, loan })
                }
                (RespondStop::ClientGone, _) => TryRespondError::ClientGone,
                (RespondStop::Corrupted(w), _) => TryRespondError::Corrupted(w),
                _ => TryRespondError::Corrupted("a response lost its block"),
            })
    }

    /// Sends the response with `kind` (0, or [`LAST`]) in its flags.
    fn send_inner(
        self,
        deadline: Option<Instant>,
        wait: bool,
        kind: u64,
    ) -> Result<(), (RespondStop, Option<Loan<'s>>)> {
        let r = self.request;
        let svc = &r.server.svc;
        if let Err(e) = r.wait_for_room(deadline, wait) {
            return Err((e, Some(self.loan)));
        }
        let env = share(r, self.loan, kind).map_err(|e| (e, None))?;
        let (b, bit) = (env.block(), 1u64 << r.client);
        let sending = &svc.header.sending;
        let pushed = r.push(&env, patience(deadline, wait));
        if pushed.is_err() {
            // We give both holds back ourselves.
            sending.clear();
            svc.pool.release_shared(b, bit);
        }
        svc.pool.release_shared(b, SERVER_BIT);
        pushed.map_err(|e| (e, None))
    }

    /// The block's name.
    pub fn block(&self) -> BlockRef {
        self.loan.block()
    }
}

impl Deref for ResponseMut<'_, '_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.loan
    }
}

impl DerefMut for ResponseMut<'_, '_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.loan
    }
}

impl fmt::Debug for ResponseMut<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseMut")
            .field("request", &self.request.id)
            .field("len", &self.loan.len())
            .finish()
    }
}

/// The first steps of a response to `r` (`kind` in its flags: 0, or
/// [`LAST`]): records it as under way, stores its holders word and shares
/// its block. Returns its envelope.
fn share(r: &ActiveRequest<'_>, loan: Loan<'_>, kind: u64) -> Result<Envelope, RespondStop> {
    let svc = &r.server.svc;
    let b = loan.block();
    let Some(holders) = svc.pool.holders(b) else {
        return Err(RespondStop::Corrupted("a loan names no block"));
    };
    let env = Envelope::of(b, loan.len(), r.id, kind | u64::from(r.token) << 32);
    // Whoever takes the server's word after our death reads this to learn
    // whether the push happened (only we push there).
    let sending = &svc.header.sending;
    sending.write(&env, r.client, svc.queues[r.client].responses.next_push());
    // Ours while we hand it over, the client's for good.
    holders.store(SERVER_BIT | 1 << r.client, Ordering::Release);
    if loan.share().is_none() {
        sending.clear();
        return Err(RespondStop::Corrupted(
            "a response's block was taken from its server",
        ));
    }
    Ok(env)
}
