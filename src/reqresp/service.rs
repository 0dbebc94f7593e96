//! The service's shared parts as one process sees them, and the steps
//! server and clients share: attaching, checking an envelope, cleaning a
//! client entry, reclaiming what dead peers left.

use super::config::{plan, plan_queues, ServiceConfig};
use super::wire::*;
use crate::blocks::Signal;
use crate::error::{Error, Result};
use crate::pool::{BlockRef, Corrupted, Loan, LoanError, LoanTimeoutError, Pool};
use crate::primitive::Ordering;
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::mpmc::{Holder, MpmcRing, Participant};
use crate::ring::{Miss, PopError};
use crate::sync::owner::{self, Token};
use crate::sync::wait::{wait_for, PROBE_INTERVAL};
use core::ptr::NonNull;
use std::time::Instant;

/// The participant id the server's claims name in every queue.
pub(crate) const SERVER: Participant = match Participant::new(0) {
    Some(p) => p,
    None => Participant::ANONYMOUS,
};
/// The participant id the claims of an entry's holder name (its client,
/// or a peer cleaning the entry).
pub(crate) const CLIENT: Participant = match Participant::new(1) {
    Some(p) => p,
    None => Participant::ANONYMOUS,
};

/// The layout id of a service region.
pub(crate) const LAYOUT: LayoutId = LayoutId::named("shmkit::reqresp::Service", 1);

/// The options of a service region (sized for `config`, if given).
pub(crate) fn options(config: Option<&ServiceConfig>) -> Result<RegionOptions> {
    let opts = RegionOptions::new()
        .layout(LAYOUT)
        .kind(ObjectKind::ReqResp);
    Ok(match config {
        Some(c) => opts.size(ServiceConfig::bytes_for(c)?),
        None => opts,
    })
}

/// The request/response kind of service, for [`crate::service`].
pub(crate) struct ReqResp;

impl crate::service::Kind for ReqResp {
    type Config = ServiceConfig;
    fn options(config: Option<&ServiceConfig>) -> Result<RegionOptions> {
        options(config)
    }
    fn init(region: &Region, config: &ServiceConfig) -> Result<()> {
        init(region, config)
    }
    fn mismatch() -> Error {
        mismatch()
    }
}

/// Lays out a fresh service of `config` in `region`: queues, pool, then
/// the header, its magic last.
pub(crate) fn init(region: &Region, config: &ServiceConfig) -> Result<()> {
    let p = plan(config)?;
    let header = region.place::<ServiceHeader>(0)?;
    for i in 0..config.clients {
        MpmcRing::<Envelope>::create(region, p.request_queue(i), config.queue_capacity)?;
        MpmcRing::<Envelope>::create(region, p.response_queue(i), config.queue_capacity)?;
    }
    Pool::create(region, p.pool_offset, &config.pool)?;
    let set = |w: &crate::primitive::AtomicU64, v: usize| w.store(v as u64, Ordering::Relaxed);
    header.version.store(SERVICE_VERSION, Ordering::Relaxed);
    set(&header.clients, config.clients);
    set(&header.queue_capacity, config.queue_capacity);
    set(&header.held_limit, config.held_limit);
    set(&header.pool_offset, p.pool_offset);
    set(&header.total_bytes, p.total);
    header.magic.store(SERVICE_MAGIC, Ordering::Release);
    Ok(())
}

/// What a role's word that names no participant is.
const NO_TOKEN: &str = "request/response word holds no participant token";

fn corrupted(what: &'static str) -> Error {
    Error::Corrupted { what }
}

/// One client's pair of queues.
pub(crate) struct Queues {
    /// Client to server (the client pushes as [`CLIENT`], the server pops
    /// as [`SERVER`]).
    pub(crate) requests: MpmcRing<'static, Envelope>,
    /// Server to client (the server pushes as [`SERVER`], the client pops
    /// as [`CLIENT`]).
    pub(crate) responses: MpmcRing<'static, Envelope>,
}

/// A message checked against the block it names: where its bytes are.
pub(crate) struct Checked {
    pub(crate) block: BlockRef,
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
}

/// The service's parts, borrowed for the region's lifetime.
pub(crate) struct Service {
    pub(crate) header: &'static ServiceHeader,
    pub(crate) pool: Pool<'static>,
    pub(crate) queues: Vec<Queues>,
    pub(crate) held_limit: usize,
    /// When an exhausted loan may next reclaim what dead peers held.
    next_reclaim: core::cell::Cell<Instant>,
}

impl Service {
    /// The views of `region`'s service, after checking every header word.
    ///
    /// # Safety
    ///
    /// As for [`crate::channel::blocking::extend`]: the caller stores the
    /// result in a handle that owns `region`, in a field declared before
    /// it, and lends the views out only for borrows of that handle.
    pub(crate) unsafe fn open(region: &Region) -> Result<Self> {
        // SAFETY: forwarded to the caller.
        let region = unsafe { crate::channel::blocking::extend(region) };
        let expect = crate::service::Expect {
            layout: LAYOUT,
            magic: SERVICE_MAGIC,
            version: SERVICE_VERSION,
            bad: [
                "no request/response service here (magic)",
                "request/response format version",
            ],
        };
        let header = expect.header::<ServiceHeader>(region, |h| {
            (
                h.magic.load(Ordering::Acquire),
                h.version.load(Ordering::Relaxed),
            )
        })?;
        let word = |w: &crate::primitive::AtomicU64| usize::try_from(w.load(Ordering::Relaxed));
        let (Ok(n), Ok(cap), Ok(held), Ok(pool_offset), Ok(total)) = (
            word(&header.clients),
            word(&header.queue_capacity),
            word(&header.held_limit),
            word(&header.pool_offset),
            word(&header.total_bytes),
        ) else {
            return Err(corrupted("request/response header word"));
        };
        let p = plan_queues(n, cap, held)
            .map_err(|_| corrupted("request/response client count, capacity or held limit"))?;
        if pool_offset != p.pool_offset || total > region.len() || total < pool_offset {
            return Err(corrupted("request/response layout"));
        }
        let pool = Pool::open(region, pool_offset)?;
        let ring = |offset| {
            let q = MpmcRing::<Envelope>::open(region, offset)?;
            if q.capacity() != cap {
                return Err(corrupted("request/response queue capacity"));
            }
            Ok(q)
        };
        let queues = (0..n)
            .map(|i| {
                Ok(Queues {
                    requests: ring(p.request_queue(i))?,
                    responses: ring(p.response_queue(i))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            header,
            pool,
            queues,
            held_limit: held,
            next_reclaim: core::cell::Cell::new(Instant::now()),
        })
    }

    /// Whether this service is what `config` would make (for
    /// `open_or_create`).
    pub(crate) fn matches(&self, config: &ServiceConfig) -> bool {
        let classes = config.pool.classes();
        self.queues.len() == config.clients
            && self.queues[0].requests.capacity() == config.queue_capacity
            && self.held_limit == config.held_limit
            && self.pool.class_count() == classes.len()
            && classes.iter().enumerate().all(|(c, &(size, count))| {
                self.pool.block_count(c) == Some(count)
                    && self.pool.block_size(c) == Some(size.next_multiple_of(64))
            })
    }

    pub(crate) fn entry(&self, i: usize) -> &'static Entry {
        &self.header.entries[i]
    }

    /// This process's token for the entries' and server's words.
    pub(crate) fn me(&self) -> Token {
        owner::current(&self.header.server)
    }

    /// The token in `w` if it names a live participant: `None` for none,
    /// a dead one, or garbage.
    fn live(w: &crate::primitive::AtomicU32) -> Option<u32> {
        match w.load(Ordering::Acquire) {
            0 => None,
            t => (crate::service::dead(w, t, NO_TOKEN) == Ok(false)).then_some(t),
        }
    }

    /// The live server's token, if one is attached (a word marked
    /// [`ATTACHING`] holds no token: none yet).
    pub(crate) fn server(&self) -> Option<u32> {
        Self::live(&self.header.server)
    }

    /// Takes the server's word for this process, marked [`ATTACHING`]
    /// (clients see no server in it), if it holds `t`: none, garbage, or
    /// a dead holder (a server, or a peer attaching or cleaning up).
    /// `false` if a live holder has it, or another process took it first.
    pub(crate) fn take_server_word(&self, t: u32) -> bool {
        let w = &self.header.server;
        let held = t != 0 && crate::service::dead(w, t & !ATTACHING, NO_TOKEN) == Ok(false);
        !held
            && w.compare_exchange(
                t,
                self.me().raw() | ATTACHING,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The live client's token in entry `i`, if one holds it.
    pub(crate) fn client(&self, i: usize) -> Option<u32> {
        Self::live(&self.entry(i).token)
    }

    /// Takes entry `i` for this process: from free, or (if `dead_too`)
    /// from a dead handle. `Some(inherited)` if it did.
    pub(crate) fn take_entry(&self, i: usize, dead_too: bool) -> Result<Option<bool>, Corrupted> {
        crate::service::take(&self.entry(i).token, self.me(), dead_too, NO_TOKEN)
    }

    /// Frees entry `i`, which this process holds.
    pub(crate) fn free_entry(&self, i: usize) {
        let e = self.entry(i);
        e.token.store(0, Ordering::Release);
        e.response_space.notify();
        e.request_space.notify();
    }

    /// Checks envelope `e` (not an end marker) against the block it
    /// names, which `bit` must hold: block in range, shared under the
    /// envelope's generation with `bit` set, length within the block.
    pub(crate) fn check(&self, e: &Envelope, bit: u64) -> Result<Checked, Corrupted> {
        let block = e.block();
        let Some((ptr, size)) = self.pool.block_ptr(block) else {
            return Err(Corrupted("an envelope names no block of the pool"));
        };
        if !self.pool.is_shared(block)? {
            return Err(Corrupted(
                "an envelope's block is not shared under its generation",
            ));
        }
        if self
            .pool
            .holders(block)
            .is_none_or(|h| h.load(Ordering::Acquire) & bit == 0)
        {
            return Err(Corrupted(
                "an envelope's block is not held for its receiver",
            ));
        }
        let len = e.len as usize;
        if len > size {
            return Err(Corrupted("an envelope's length exceeds its block"));
        }
        Ok(Checked { block, ptr, len })
    }

    /// Releases `bit`'s hold on the block envelope `e` names, for an
    /// envelope that will not be received (drained, stale, refused):
    /// only if it names a shared block of its generation with `bit` set.
    pub(crate) fn release_envelope(&self, e: &Envelope, bit: u64) -> bool {
        if e.flags & END != 0 {
            return false;
        }
        match self.check(e, bit) {
            Ok(c) => self.pool.release_shared(c.block, bit),
            Err(_) => false,
        }
    }

    /// Pops every envelope of `q` as `who`, releasing `bit`'s hold on
    /// each; returns the blocks freed.
    fn drain(
        &self,
        q: &MpmcRing<'_, Envelope>,
        who: Participant,
        bit: u64,
    ) -> Result<usize, Corrupted> {
        let mut freed = 0;
        for _ in 0..2 * q.capacity() {
            match q.try_pop_as(who) {
                Ok(e) => freed += usize::from(self.release_envelope(&e, bit)),
                Err(PopError::Empty) => break,
                Err(PopError::Corrupted(w)) => return Err(Corrupted(w)),
            }
        }
        Ok(freed)
    }

    /// Gives back everything entry `i`'s last client left, for a caller
    /// that holds the entry: hands on the queue claims of a dead holder
    /// (`inherited`), takes its unserved requests back (the server's hold
    /// on each), drains its responses (its hold on each), and clears its
    /// bit on every shared block. Returns the blocks freed.
    pub(crate) fn clean_entry(&self, i: usize, inherited: bool) -> Result<usize, Corrupted> {
        let q = &self.queues[i];
        let e = self.entry(i);
        // A request its dead client shared and never published: nobody
        // but this cleaner will see it, so it speaks for the server's
        // bit too. Asked before the claims are handed on (a claim the
        // client never filled then still reads `Claimed`).
        let unsent = if inherited {
            e.sending
                .read(self.queues.len())
                .filter(|&(_, entry, p)| entry == i && q.requests.unpublished(p))
        } else {
            None
        };
        if inherited {
            // SAFETY: the entry held a dead handle's token; only the
            // entry's holder pushes requests and pops responses as
            // `CLIENT`, and this process took the entry just now.
            unsafe {
                q.requests.release_claims(Holder::Producer(CLIENT));
                q.responses.release_claims(Holder::Consumer(CLIENT));
            }
        }
        let bit = 1u64 << i;
        let mut freed = self.drain(&q.requests, CLIENT, SERVER_BIT)?;
        freed += self.drain(&q.responses, CLIENT, bit)?;
        if let Some((env, _, _)) = unsent {
            if self.pool.shared_with(env.block(), bit | SERVER_BIT)? {
                self.pool.release_shared(env.block(), SERVER_BIT);
            }
        }
        e.sending.clear();
        e.response_space.notify();
        Ok(freed + self.pool.sweep_shared(bit)?)
    }

    /// Cleans entry `i` if its holder is dead; the blocks freed, `None`
    /// if it is not dead (or another process took the entry first).
    pub(crate) fn reclaim_entry(&self, i: usize) -> Result<Option<usize>, Corrupted> {
        if !crate::service::held_by_dead(&self.entry(i).token, NO_TOKEN)? {
            return Ok(None);
        }
        match self.take_entry(i, true)? {
            Some(_) => {
                let freed = self.clean_entry(i, true);
                self.free_entry(i);
                freed.map(Some)
            }
            None => Ok(None),
        }
    }

    /// What a caller that took the server's word from a dead server does
    /// first: hands on its queue claims and clears its bit on every
    /// shared block (its requests, the responses it was handing over).
    /// Requests still queued stay: they name the dead server's token, so
    /// a successor skips (and releases) them. Returns the blocks freed.
    pub(crate) fn after_server(&self) -> Result<usize, Corrupted> {
        let unsent = self.unsent_response()?;
        for q in &self.queues {
            // SAFETY: the server's word held a dead token or none, and only
            // the server pops requests and pushes responses as `SERVER`: no
            // thread of this process does either while the caller holds
            // the word.
            unsafe {
                q.requests.release_claims(Holder::Consumer(SERVER));
                q.responses.release_claims(Holder::Producer(SERVER));
            }
        }
        let mut freed = 0;
        if let Some((env, i)) = unsent {
            // Its push, completed for the dead server (the caller holds
            // the server's word: the queue's only producer). Into a full
            // queue it cannot go: the client's hold goes instead.
            match self.queues[i].responses.push_ref_as(SERVER, &env) {
                Ok(()) => self.entry(i).responses.notify(),
                Err(_) => freed += usize::from(self.pool.release_shared(env.block(), 1 << i)),
            }
        }
        self.header.sending.clear();
        Ok(freed + self.pool.sweep_shared(SERVER_BIT)?)
    }

    /// The response a dead server shared and never published, and its
    /// client's entry: recorded in the header, still shared with the
    /// server's bit and the client's, its position not yet published in
    /// that client's response queue. For the holder of the server's word,
    /// before the dead server's claims are handed on.
    fn unsent_response(&self) -> Result<Option<(Envelope, usize)>, Corrupted> {
        let Some((env, i, p)) = self.header.sending.read(self.queues.len()) else {
            return Ok(None);
        };
        let held = self.pool.shared_with(env.block(), SERVER_BIT | 1 << i)?;
        Ok((held && self.queues[i].responses.unpublished(p)).then_some((env, i)))
    }

    /// Cleans up after a dead server: takes its word (marked attaching, so
    /// that no client takes this process for a server), cleans, frees it.
    pub(crate) fn reclaim_server(&self) -> Result<usize, Corrupted> {
        let w = &self.header.server;
        let t = w.load(Ordering::Acquire);
        if t == 0
            || !crate::service::dead(w, t & !ATTACHING, NO_TOKEN)?
            || !self.take_server_word(t)
        {
            return Ok(0);
        }
        let freed = self.after_server();
        w.store(0, Ordering::Release);
        freed
    }

    /// Reclaims what dead peers left: dead clients' entries, a dead
    /// server's holds and claims, shared blocks nobody holds, and pool
    /// blocks dead participants had on loan. Returns the blocks freed.
    pub(crate) fn reclaim(&self) -> Result<usize, Corrupted> {
        let mut freed = 0;
        for i in 0..self.queues.len() {
            freed += self.reclaim_entry(i)?.unwrap_or(0);
        }
        freed += self.reclaim_server()?;
        freed += self.pool.sweep_shared(0)?;
        freed += self.pool.reclaim()?;
        Ok(freed)
    }
}

/// The envelope's token field: requests carry the token of the server
/// they were sent to in the upper half of `flags`, responses the token of
/// the client they are for.
pub(crate) fn addressed_to(e: &Envelope) -> u32 {
    (e.flags >> 32) as u32
}

/// How [`push_with_room`] ended.
pub(crate) enum Pushed {
    /// The envelope is in the queue.
    Done,
    /// Not pushed: the patience ran out, or the receiver went.
    GaveUp,
    /// Not pushed: the queue's words are corrupted.
    Corrupted(&'static str),
}

/// How long a push into a queue that has room waits for a refused slot
/// (see [`push_with_room`]): a `try_` form and a timed form one probe
/// interval at least, a timed form until its `deadline` at most
/// otherwise; `None` (a blocking form): as long as the receiver stays.
pub(crate) fn patience(deadline: Option<Instant>, wait: bool) -> Option<Instant> {
    (!wait || deadline.is_some()).then(|| {
        let now = Instant::now();
        deadline
            .map_or(now, |d| d.max(now))
            .max(now + PROBE_INTERVAL)
    })
}

/// Pushes `env` to `q` as `who`, for its only producer, which saw room in
/// it. A push with room is refused only while the consumer is still
/// handing on the slot it needs (or a peer scribbled on the queue, or the
/// consumer died mid-pop): tried at once, spinning a little, then again
/// whenever the consumer notifies `space` (after each pop), until
/// `patience` (see [`patience`]), while `present` says the receiver is
/// still there (checked before each sleep).
pub(crate) fn push_with_room(
    q: &MpmcRing<'_, Envelope>,
    who: Participant,
    env: &Envelope,
    space: &Signal,
    patience: Option<Instant>,
    present: impl Fn() -> bool,
) -> Pushed {
    let push = || match q.push_ref_as(who, env) {
        Ok(()) => Ok(Some(())),
        Err(Miss::WouldBlock) => Ok(None),
        Err(Miss::Corrupted(w)) => Err(Some(w)),
    };
    let between = || if present() { Ok(()) } else { Err(None) };
    match wait_for(space, patience, true, push, between) {
        Ok(Some(())) => Pushed::Done,
        Ok(None) | Err(None) => Pushed::GaveUp,
        Err(Some(w)) => Pushed::Corrupted(w),
    }
}

/// The error of an `open_or_create` that found another configuration.
pub(crate) fn mismatch() -> Error {
    Error::InvalidSize {
        size: 0,
        reason: "an existing request/response service has another configuration",
    }
}

impl Service {
    /// Loans a block for a message of `len` bytes, waiting (if `wait`)
    /// until `deadline`; with the class exhausted, reclaims what dead
    /// peers held first (at most once per 10 ms).
    pub(crate) fn loan(
        &self,
        len: usize,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Loan<'_>, LoanTimeoutError> {
        self.pool
            .loan_reclaiming(len, deadline, wait, &self.next_reclaim, || self.reclaim())
    }

    /// [`loan`](Self::loan) without waiting, as a `try_` loan reports it.
    pub(crate) fn try_loan(&self, len: usize) -> Result<Loan<'_>, LoanError> {
        self.pool
            .try_loan_reclaiming(len, &self.next_reclaim, || self.reclaim())
    }
}

impl From<LoanError> for super::error::CopyError {
    fn from(e: LoanError) -> Self {
        use super::error::CopyError;
        match e {
            LoanError::TooLarge { len, max } => CopyError::TooLarge { len, max },
            LoanError::Corrupted(w) => CopyError::Corrupted(w),
            _ => CopyError::Exhausted,
        }
    }
}
