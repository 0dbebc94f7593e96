//! [`Publisher`] and [`SampleMut`]: the write side.

use super::config::{ServiceConfig, SlowSubscriber};
use super::error::{SendCopyError, SendError, SendTimeoutError, TrySendError};
use super::service::{PubSub, PublisherWord, Service, PUB};
use super::subscriber::Subscriber;
use super::wire::HISTORY_BIT;
use super::Descriptor;
use crate::error::{Error, Result};
use crate::pool::shared::PUBLISHER_BIT;
use crate::pool::{BlockRef, Corrupted, Loan, LoanError, LoanTimeoutError};
use crate::primitive::Ordering;
use crate::region::{Region, RegionOptions};
use crate::service::{self, Take};
use crate::sync::wait::{
    coarse_now, deadline_after, expired, probe_slice, spin_for, PROBE_INTERVAL,
};
use bytemuck::Zeroable;
use core::cell::Cell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The one publisher of a service: loans blocks from its pool, fills them
/// and sends each to every subscriber present; see the [module
/// documentation](super).
///
/// `Send`, not `Sync`: one thread publishes at a time (its sequence of
/// samples is one stream).
pub struct Publisher {
    svc: Service,
    /// When a send next checks whether present subscribers are alive.
    next_probe: Cell<Duration>,
    /// When an exhausted loan may next reclaim what dead peers held.
    next_reclaim: Cell<Instant>,
    /// Last: the views in `svc` borrow its mapping.
    region: Region,
}

/// A block loaned for one sample: derefs to its `len` bytes (stale until
/// written, as a [`Loan`]'s); [`send`](Self::send) publishes it, dropping
/// it gives the block back unsent.
pub struct SampleMut<'p> {
    publisher: &'p Publisher,
    loan: Loan<'p>,
}

/// Why a send stopped, before it is narrowed to each form's error.
enum Stop {
    Full,
    Timeout,
    Corrupted(&'static str),
}

impl From<Corrupted> for Stop {
    fn from(Corrupted(w): Corrupted) -> Self {
        Stop::Corrupted(w)
    }
}

impl service::Handle<PubSub> for Publisher {
    fn attach(region: Region) -> Result<Self> {
        Self::attach(region)
    }
    fn matches(&self, config: &ServiceConfig) -> bool {
        self.svc.matches(config)
    }
}

impl Publisher {
    /// Creates a named service of `config` and attaches as its publisher.
    pub fn create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::create::<PubSub, _>(name, config)
    }

    /// Opens the named service and attaches as its publisher. Fails with
    /// [`Error::ServiceBusy`] while another publisher is attached and
    /// alive (a publisher whose process died, or that was dropped, is
    /// replaced: the stream continues with the next sequence number).
    pub fn open(name: &str) -> Result<Self> {
        service::open::<PubSub, _>(name)
    }

    /// Opens the named service, or creates it with `config` if there is
    /// none, and attaches as its publisher. An existing service must have
    /// been made with the same configuration ([`Error::InvalidSize`]
    /// otherwise).
    pub fn open_or_create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::open_or_create::<PubSub, _>(name, config)
    }

    /// Creates an anonymous service of `config` and attaches as its
    /// publisher; [`subscriber`](Self::subscriber) attaches subscribers in
    /// this process, [`region`](Self::region) passes it to a child.
    pub fn anonymous(config: &ServiceConfig) -> Result<Self> {
        service::anonymous::<PubSub, _>(config)
    }

    /// Attaches as the publisher of a service region opened by other
    /// means (received over a socket, passed by a parent); a region of
    /// another layout is [`Error::LayoutMismatch`].
    pub fn from_region(region: Region) -> Result<Self> {
        Self::attach(region)
    }

    fn attach(region: Region) -> Result<Self> {
        // SAFETY: `svc` goes into `Self` beside `region`, whose field comes
        // last; the views are lent out only through `&self`.
        let svc = unsafe { Service::open(&region)? };
        let w = &svc.header.publisher;
        let taken = service::take_role(|| {
            let t = w.load(Ordering::Acquire);
            Ok(match svc.publisher_word(t).map_err(corrupted)? {
                PublisherWord::Cleaning => Take::Cleaning,
                PublisherWord::Publisher => Take::Busy,
                PublisherWord::Free => {
                    match w.compare_exchange(t, svc.me().raw(), Ordering::AcqRel, Ordering::Relaxed)
                    {
                        Ok(_) => Take::Taken,
                        Err(_) => Take::Busy,
                    }
                }
            })
        })?;
        if !taken {
            return Err(Error::ServiceBusy { role: "publisher" });
        }
        let p = Self {
            svc,
            next_probe: Cell::new(Duration::ZERO),
            next_reclaim: Cell::new(Instant::now()),
            region,
        };
        // Whatever the last publisher left: its claims, its holds, its
        // loans if it died.
        p.svc.after_publisher().map_err(corrupted)?;
        p.svc.pool.reclaim().map_err(corrupted)?;
        Ok(p)
    }

    /// Attaches a subscriber to this service, through a handle of its own
    /// on the same region (for this process's threads; for an anonymous
    /// service, the way to subscribe). As [`Subscriber::open`] otherwise.
    pub fn subscriber(&self) -> Result<Subscriber> {
        let twin = RegionOptions::new()
            .layout(self.region.layout())
            .from_fd(crate::sys::fd::dup(self.region.as_fd())?)?;
        Subscriber::from_region(twin)
    }

    /// The service's region (to pass it to a child process).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The next sample's sequence number (samples are numbered from 0 in
    /// the order they are sent, across publishers).
    pub fn next_seq(&self) -> u64 {
        self.svc.header.next_seq.load(Ordering::Relaxed)
    }

    /// How many subscribers are present now (a snapshot).
    pub fn subscribers(&self) -> usize {
        self.svc.present().map_or(0, |m| m.count_ones() as usize)
    }

    /// How many blocks of pool class `class` are free now (a snapshot),
    /// if the pool has that class.
    pub fn free_blocks(&self, class: usize) -> Option<usize> {
        self.svc.pool.free_blocks(class)
    }

    /// Loans a block for a sample of `len` bytes (of the smallest pool
    /// class that holds it); fails as [`Pool::try_loan`](crate::pool::Pool::try_loan)
    /// does (a pool exhausted by slow subscribers' samples included). With
    /// the class exhausted it first reclaims what dead subscribers held
    /// (at most once per 10 ms), so a killed subscriber's samples come
    /// back to the next loan that needs them.
    pub fn loan(&self, len: usize) -> Result<SampleMut<'_>, LoanError> {
        let loan = self
            .svc
            .pool
            .try_loan_reclaiming(len, &self.next_reclaim, || self.svc.reclaim())?;
        Ok(SampleMut {
            publisher: self,
            loan,
        })
    }

    /// [`loan_deadline`](Self::loan_deadline) with a deadline `timeout`
    /// from now.
    pub fn loan_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<SampleMut<'_>, LoanTimeoutError> {
        self.loan_wait(len, deadline_after(timeout))
    }

    /// Loans as [`loan`](Self::loan) does, waiting until `deadline` for a
    /// block while the class is exhausted (a subscriber's release wakes
    /// it; what dead subscribers held is reclaimed every 10 ms meanwhile).
    pub fn loan_deadline(
        &self,
        len: usize,
        deadline: Instant,
    ) -> Result<SampleMut<'_>, LoanTimeoutError> {
        self.loan_wait(len, Some(deadline))
    }

    fn loan_wait(
        &self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<SampleMut<'_>, LoanTimeoutError> {
        let loan =
            self.svc
                .pool
                .loan_reclaiming(len, deadline, true, &self.next_reclaim, || {
                    self.svc.reclaim()
                })?;
        Ok(SampleMut {
            publisher: self,
            loan,
        })
    }

    /// Loans a block, copies `bytes` in and sends it as
    /// [`SampleMut::send`] does; returns its sequence number.
    pub fn send_copy(&self, bytes: &[u8]) -> Result<u64, SendCopyError> {
        let mut s = self.loan(bytes.len()).map_err(|e| match e {
            LoanError::TooLarge { len, max } => SendCopyError::TooLarge { len, max },
            LoanError::Corrupted(w) => SendCopyError::Corrupted(w),
            _ => SendCopyError::Exhausted,
        })?;
        s.copy_from_slice(bytes);
        s.send()
            .map_err(|SendError::Corrupted(w)| SendCopyError::Corrupted(w))
    }

    /// Reclaims what dead peers left (see [`Subscriber::reclaim`]);
    /// returns the blocks freed. Sends do part of this on their own: a
    /// full queue whose subscriber died is cleaned, and every
    /// `PROBE_INTERVAL` (10 ms) a send checks every present subscriber.
    pub fn reclaim(&self) -> Result<usize, Corrupted> {
        self.svc.reclaim()
    }

    /// Sends `loan`: the steps of the [module documentation](super).
    fn send_inner<'p>(
        &'p self,
        loan: Loan<'p>,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<u64, (Stop, Option<Loan<'p>>)> {
        let svc = &self.svc;
        if let Err(e) = self.probe() {
            return Err((e.into(), Some(loan)));
        }
        // Room first, in every present subscriber's queue: the sample is
        // still ours to give back if there is none.
        let ready = match self.wait_for_room(deadline, wait) {
            Ok(m) => m,
            Err(Stop::Corrupted(w)) => return Err((Stop::Corrupted(w), None)),
            Err(e) => return Err((e, Some(loan))),
        };
        // With a history, the lock from here to the end of the
        // distribution: a joiner sees no send half done.
        let history = match svc.lock_history() {
            Ok(h) => h,
            Err(e) => return Err((e.into(), Some(loan))),
        };
        let kept = if history.is_some() { HISTORY_BIT } else { 0 };
        let (mask, b, d) = self.share(loan, kept).map_err(|e| (e, None))?;
        let seq = d.seq;
        let filed = match &history {
            Some(lock) => svc.file_in_history(lock, &d),
            None => Ok(()),
        };
        // A subscriber that had room and still refuses the push is being
        // waited for as long as a blocking send waits; `try_send` and a
        // timed send wait for it one probe interval at least, until their
        // deadline at most otherwise. (A blocking send reads no clock.)
        let (late, patience) = if wait && deadline.is_none() {
            (None, None)
        } else {
            let now = Instant::now();
            let patience = deadline
                .map_or(now, |d| d.max(now))
                .max(now + PROBE_INTERVAL);
            ((!wait).then_some(now).or(deadline), Some(patience))
        };
        let pushed = self.distribute(mask, ready, late, patience, b, &d);
        svc.pool.release_shared(b, PUBLISHER_BIT);
        drop(history);
        pushed.map_err(|w| (Stop::Corrupted(w), None))?;
        filed.map_err(|e| (e.into(), None))?;
        Ok(seq)
    }

    /// Steps 2 and 3 of a send: numbers the sample, reads the present
    /// mask, records the send under way and shares the block with `kept`
    /// and the present subscribers (and the publisher's bit). Returns the
    /// mask, the block and its descriptor; any failure has lost the loan.
    fn share(&self, loan: Loan<'_>, kept: u64) -> Result<(u64, BlockRef, Descriptor), Stop> {
        let svc = &self.svc;
        let seq = svc.header.next_seq.fetch_add(1, Ordering::SeqCst);
        let mask = svc.present()?;
        let b = loan.block();
        let Some(holders) = svc.pool.holders(b) else {
            return Err(Stop::Corrupted("a loan names no block"));
        };
        let d = Descriptor {
            class: b.class,
            index: b.index,
            generation: b.generation,
            len: loan.len() as u32,
            seq,
            reserved: 0,
        };
        // Recorded before the block is shared: killed from there to the
        // last push, this send's sample is owed to whom it did not reach
        // (`Service::owe_unsent`).
        svc.header.sending.write(&d);
        // The block is lent to us: nobody else reads or writes its word.
        holders.store(PUBLISHER_BIT | kept | mask, Ordering::Release);
        match loan.share() {
            Some(b) => Ok((mask, b, d)),
            None => Err(Stop::Corrupted(
                "a sample's block was taken from its publisher",
            )),
        }
    }

    /// Waits until every present subscriber's queue has room (or the
    /// subscriber is gone); returns the present mask it made room for.
    fn wait_for_room(&self, deadline: Option<Instant>, wait: bool) -> Result<u64, Stop> {
        let svc = &self.svc;
        let mask = svc.present()?;
        let drop_oldest = svc.policy == SlowSubscriber::DropOldest;
        let bad = Cell::new(None);
        for i in bits(mask) {
            let q = &svc.queues[i];
            let mut room = || {
                if q.len() < q.capacity() || svc.absent(i) {
                    return true;
                }
                if !drop_oldest {
                    return false;
                }
                // Full: take the oldest descriptor back, and with it the
                // subscriber's hold on its block, released while the pop
                // still holds the slot (killed there, the next holder of
                // our word is handed the descriptor and releases again:
                // harmless, as no block is loaned meanwhile).
                let mut d = Descriptor::zeroed();
                match q.pop_settle_as(PUB, &mut d, |d| {
                    svc.release_descriptor(i, d);
                }) {
                    Ok(()) => q.len() < q.capacity(),
                    Err(crate::ring::Miss::WouldBlock) => false,
                    Err(crate::ring::Miss::Corrupted(w)) => {
                        bad.set(Some(w));
                        true
                    }
                }
            };
            let found = spin_until(&mut room);
            if let Some(w) = bad.get() {
                return Err(Stop::Corrupted(w));
            }
            if found {
                continue;
            }
            loop {
                if svc.reclaim_entry(i)?.is_some() {
                    break;
                }
                if !wait {
                    return Err(Stop::Full);
                }
                if expired(deadline) {
                    return Err(Stop::Timeout);
                }
                let e = svc.entry(i);
                if e.space
                    .wait_deadline(probe_slice(deadline), || room().then_some(()))
                    .is_some()
                {
                    break;
                }
            }
            if let Some(w) = bad.get() {
                return Err(Stop::Corrupted(w));
            }
        }
        Ok(mask)
    }

    /// Pushes `d` (block `b`, which this publisher holds with
    /// `PUBLISHER_BIT`) to every subscriber in `mask`. Those in `ready`
    /// have room, and one of them still refusing the push (it is popping
    /// the slot we need, or a peer scribbled on its queue) is waited for
    /// until `patience`; one that joined since and finds its queue full of
    /// what it found there from before is waited for until `late`. Either
    /// then misses this sample.
    fn distribute(
        &self,
        mask: u64,
        ready: u64,
        late: Option<Instant>,
        patience: Option<Instant>,
        b: BlockRef,
        d: &Descriptor,
    ) -> Result<(), &'static str> {
        let svc = &self.svc;
        for i in bits(mask) {
            let q = &svc.queues[i];
            let e = svc.entry(i);
            let bit = 1u64 << i;
            let push = || match q.push_ref_as(PUB, d) {
                Ok(()) => Some(Ok(())),
                Err(crate::ring::Miss::WouldBlock) => None,
                Err(crate::ring::Miss::Corrupted(w)) => Some(Err(w)),
            };
            let gone = || svc.absent(i);
            let mut pushed = None;
            spin_until(|| {
                if pushed.is_none() {
                    pushed = push();
                }
                pushed.is_some() || gone()
            });
            if pushed.is_none() && !gone() {
                // Rare: a subscriber that joined during this send with its
                // queue full of what it found from before (or one that has
                // room but is still popping the slot we need). Wait for
                // it, watching its liveness; for a joiner, until `late`.
                let limit = if ready & bit != 0 { patience } else { late };
                pushed = loop {
                    if let Some(r) = push() {
                        break Some(r);
                    }
                    if gone()
                        || expired(limit)
                        || svc.reclaim_entry(i).map_err(|Corrupted(w)| w)?.is_some()
                    {
                        break None;
                    }
                    let woke = e.space.wait_deadline(probe_slice(limit), || {
                        if gone() {
                            Some(None)
                        } else {
                            push().map(Some)
                        }
                    });
                    if let Some(r) = woke {
                        break r;
                    }
                };
            }
            match pushed {
                Some(r) => {
                    r?;
                    e.data.notify();
                }
                // It left (or died) before this sample reached it, or
                // joined during this send and had no room in time: its
                // hold is ours to drop (the publisher's bit keeps the block).
                None => {
                    svc.pool.release_shared(b, bit);
                }
            }
        }
        // A subscriber that left while we pushed may have missed our
        // descriptor in its drain: clean its entry, if nobody took it.
        let now = svc.present().map_err(|Corrupted(w)| w)?;
        for i in bits(mask & !now) {
            if svc
                .take_entry(i, false)
                .map_err(|Corrupted(w)| w)?
                .is_some()
            {
                let r = svc.clean_entry(i, false);
                svc.free_entry(i);
                r.map_err(|Corrupted(w)| w)?;
            }
        }
        Ok(())
    }

    /// Every `PROBE_INTERVAL`: cleans the entries of present subscribers
    /// that died.
    fn probe(&self) -> Result<(), Corrupted> {
        let now = coarse_now();
        if now < self.next_probe.get() {
            return Ok(());
        }
        self.next_probe.set(now + PROBE_INTERVAL);
        for i in bits(self.svc.present()?) {
            self.svc.reclaim_entry(i)?;
        }
        Ok(())
    }
}

/// The indices of the set bits of `mask`.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// Spins a little until `cond` holds; whether it did.
fn spin_until(mut cond: impl FnMut() -> bool) -> bool {
    cond() || spin_for(|| cond().then_some(())).is_some()
}

fn corrupted(Corrupted(what): Corrupted) -> Error {
    Error::Corrupted { what }
}

pub(crate) fn mismatch() -> Error {
    Error::InvalidSize {
        size: 0,
        reason: "an existing publish/subscribe service has another configuration",
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // No send is under way (a `SampleMut` borrows `self`), so every
        // block's publisher bit is clear and no queue claim is ours.
        let me = self.svc.me().raw();
        let _ =
            self.svc
                .header
                .publisher
                .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.region.name())
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

impl<'p> SampleMut<'p> {
    /// A send stopped as one killed mid-way stops (for kill tests, in a
    /// process that dies next): the sample shared with every present
    /// subscriber, its descriptor pushed to those of them in `reach`, the
    /// publisher's bit left set. Returns the sample's sequence number.
    pub(crate) fn send_cut_short(self, reach: u64) -> Result<u64, &'static str> {
        let p = self.publisher;
        let svc = &p.svc;
        if svc.lock_history().map_err(|Corrupted(w)| w)?.is_some() {
            return Err("a send cut short is for a service without a history");
        }
        let (mask, _, d) = p.share(self.loan, 0).map_err(|e| match e {
            Stop::Corrupted(w) => w,
            Stop::Full | Stop::Timeout => "a share gave up",
        })?;
        for i in bits(mask & reach) {
            svc.queues[i]
                .push_ref_as(PUB, &d)
                .map_err(|_| "a queue cut short has no room")?;
            svc.entry(i).data.notify();
        }
        Ok(d.seq)
    }

    /// Publishes the sample to every subscriber present now, waiting (as
    /// long as it takes) for room in each one's queue; returns its
    /// sequence number. Without subscribers, the block is freed at once.
    pub fn send(self) -> Result<u64, SendError> {
        let p = self.publisher;
        p.send_inner(self.loan, None, true)
            .map_err(|(e, _)| match e {
                Stop::Corrupted(w) => SendError::Corrupted(w),
                // No deadline, and waiting allowed: neither happens.
                Stop::Full | Stop::Timeout => SendError::Corrupted("a blocking send gave up"),
            })
    }

    /// Publishes the sample if every present subscriber's queue has room
    /// now; [`TrySendError::Full`] (the sample back) otherwise.
    pub fn try_send(self) -> Result<u64, TrySendError<'p>> {
        let p = self.publisher;
        p.send_inner(self.loan, None, false)
            .map_err(|(e, loan)| match (e, loan) {
                (Stop::Full | Stop::Timeout, Some(loan)) => {
                    TrySendError::Full(SampleMut { publisher: p, loan })
                }
                (Stop::Corrupted(w), _) => TrySendError::Corrupted(w),
                _ => TrySendError::Corrupted("a send lost its sample"),
            })
    }

    /// [`send_deadline`](Self::send_deadline) with a deadline `timeout`
    /// from now.
    pub fn send_timeout(self, timeout: Duration) -> Result<u64, SendTimeoutError<'p>> {
        self.send_deadline_inner(deadline_after(timeout))
    }

    /// Publishes the sample, waiting until `deadline` at most for room in
    /// every present subscriber's queue; [`SendTimeoutError::Timeout`]
    /// (the sample back, sent to nobody) once it passes.
    pub fn send_deadline(self, deadline: Instant) -> Result<u64, SendTimeoutError<'p>> {
        self.send_deadline_inner(Some(deadline))
    }

    fn send_deadline_inner(self, deadline: Option<Instant>) -> Result<u64, SendTimeoutError<'p>> {
        let p = self.publisher;
        p.send_inner(self.loan, deadline, true)
            .map_err(|(e, loan)| match (e, loan) {
                (Stop::Full | Stop::Timeout, Some(loan)) => {
                    SendTimeoutError::Timeout(SampleMut { publisher: p, loan })
                }
                (Stop::Corrupted(w), _) => SendTimeoutError::Corrupted(w),
                _ => SendTimeoutError::Corrupted("a send lost its sample"),
            })
    }

    /// The block's name.
    pub fn block(&self) -> BlockRef {
        self.loan.block()
    }
}

impl Deref for SampleMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.loan
    }
}

impl DerefMut for SampleMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.loan
    }
}

impl fmt::Debug for SampleMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleMut")
            .field("block", &self.loan.block())
            .field("len", &self.loan.len())
            .finish()
    }
}
