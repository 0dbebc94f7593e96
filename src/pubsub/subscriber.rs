//! [`Subscriber`] and [`Sample`]: the read side.

use super::config::ServiceConfig;
use super::error::{RecvError, RecvTimeoutError, TryRecvError};
use super::service::{PubSub, Service, SUB};
use super::Descriptor;
use crate::error::{Error, Result};
use crate::pool::holds::Holds;
use crate::pool::{BlockRef, Corrupted};
use crate::primitive::Ordering;
use crate::region::Region;
use crate::ring::mpmc::Holder;
use crate::ring::Miss;
use crate::service;
use crate::sync::wait::{coarse_now, deadline_after, wait_for, PROBE_INTERVAL};
use bytemuck::Pod;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One subscriber of a service: receives every sample sent while it is
/// attached, in order, as [`Sample`]s that borrow the publisher's block
/// (no copy); see the [module documentation](super).
///
/// `Send`, not `Sync`: one thread receives from it at a time.
pub struct Subscriber {
    svc: Service,
    /// Its entry in the subscriber table: bit `entry` of every holders
    /// mask is its hold.
    entry: usize,
    /// Samples numbered below this were sent before it joined.
    join_seq: u64,
    /// The sequence number after the last sample it received from its
    /// queue (or its owed slots): an owed sample numbered below it came
    /// through the queue already.
    next_seq: Cell<u64>,
    /// When an idle receive next checks whether the publisher died.
    next_probe: Cell<Duration>,
    /// The history's samples it took when it joined, oldest first, not
    /// yet received (it holds each one's block); and a descriptor popped
    /// while an owed sample numbered below it was received first.
    history: RefCell<VecDeque<Descriptor>>,
    /// Samples it holds now.
    held: Cell<usize>,
    /// The blocks it holds as a live [`Sample`]: a descriptor naming one
    /// of them (a copy or a forgery a peer pushed) is refused, so no two
    /// samples of this subscriber cover one block, and nothing releases
    /// the hold a live sample stands on.
    holding: Holds,
    /// Last: the views in `svc` borrow its mapping.
    region: Region,
}

/// A sample received: derefs to its bytes, inside the publisher's block
/// (read-only, no copy). Dropping it releases this subscriber's hold on
/// the block; the last hold released frees it.
///
/// The bytes are shared memory: a peer that breaks the protocol (writes a
/// block it does not own) can change them under the borrow. The contents
/// are then garbled, this process's memory is not; treat them as
/// untrusted input.
pub struct Sample<'s> {
    sub: &'s Subscriber,
    block: BlockRef,
    ptr: NonNull<u8>,
    len: usize,
    seq: u64,
}

/// Why a receive stopped, before each form narrows it.
enum Stop {
    Empty,
    HeldLimit,
    Corrupted(&'static str),
}

impl From<Corrupted> for Stop {
    fn from(Corrupted(w): Corrupted) -> Self {
        Stop::Corrupted(w)
    }
}

impl service::Handle<PubSub> for Subscriber {
    fn attach(region: Region) -> Result<Self> {
        Self::attach(region)
    }
    fn matches(&self, config: &ServiceConfig) -> bool {
        self.svc.matches(config)
    }
}

impl Subscriber {
    /// Creates a named service of `config` and attaches as a subscriber.
    pub fn create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::create::<PubSub, _>(name, config)
    }

    /// Opens the named service and attaches as a subscriber: from now on
    /// it receives every sample sent. Fails with [`Error::ServiceBusy`]
    /// if every subscriber entry is held by a live handle (a dead one's
    /// entry is cleaned and taken over).
    pub fn open(name: &str) -> Result<Self> {
        service::open::<PubSub, _>(name)
    }

    /// Opens the named service, or creates it with `config`, and attaches
    /// as a subscriber. An existing service must have been made with the
    /// same configuration ([`Error::InvalidSize`] otherwise).
    pub fn open_or_create(name: &str, config: &ServiceConfig) -> Result<Self> {
        service::open_or_create::<PubSub, _>(name, config)
    }

    /// Attaches as a subscriber of a service region opened by other means.
    pub fn from_region(region: Region) -> Result<Self> {
        Self::attach(region)
    }

    fn attach(region: Region) -> Result<Self> {
        // SAFETY: as in `Publisher::attach`.
        let svc = unsafe { Service::open(&region)? };
        let mut taken = None;
        for i in 0..svc.subscribers() {
            // An entry whose token is garbage is skipped, not taken.
            if let Ok(Some(inherited)) = svc.take_entry(i, true) {
                taken = Some((i, inherited));
                break;
            }
        }
        let Some((entry, inherited)) = taken else {
            return Err(Error::ServiceBusy { role: "subscriber" });
        };
        match Self::join(&svc, entry, inherited) {
            Ok((join_seq, history)) => {
                let holding = Holds::new(&svc.pool);
                Ok(Self {
                    svc,
                    entry,
                    join_seq,
                    next_seq: Cell::new(join_seq),
                    next_probe: Cell::new(Duration::ZERO),
                    history: RefCell::new(history.into()),
                    held: Cell::new(0),
                    holding,
                    region,
                })
            }
            Err(Corrupted(what)) => {
                // Whatever it took, its entry's cleaning gives back.
                let _ = svc.clean_entry(entry, false);
                svc.free_entry(entry);
                Err(Error::Corrupted { what })
            }
        }
    }

    /// Joins through entry `entry`, just taken: cleans it, sets its
    /// present bit, reads the join sequence and takes the history's
    /// samples (under the history lock, if there is a history).
    fn join(
        svc: &Service,
        entry: usize,
        inherited: bool,
    ) -> Result<(u64, Vec<Descriptor>), Corrupted> {
        let lock = svc.lock_history()?;
        // Whatever the entry's last holder left: its holds, its queue.
        svc.clean_entry(entry, inherited)?;
        // Present first, then the sequence number: a sample numbered
        // from `join_seq` on read the present mask after this bit was set
        // (both SeqCst), so it comes to this entry.
        svc.header.present.fetch_or(1 << entry, Ordering::SeqCst);
        let join_seq = svc.header.next_seq.load(Ordering::SeqCst);
        let history = match &lock {
            Some(lock) => svc.take_history(lock, entry, join_seq)?,
            None => Vec::new(),
        };
        Ok((join_seq, history))
    }

    /// The service's region (to pass it to a child process).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// This subscriber's entry in the subscriber table (`0..62`).
    pub fn entry(&self) -> usize {
        self.entry
    }

    /// The sequence number of the first sample sent after this
    /// subscriber joined: it receives every sample from here on. With a
    /// [history](super::ServiceConfig::history) it receives the history's
    /// samples (numbered below) first.
    pub fn join_seq(&self) -> u64 {
        self.join_seq
    }

    /// How many samples it holds now.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// How many samples it may hold at once (set at creation).
    pub fn held_limit(&self) -> usize {
        self.svc.held_limit
    }

    /// Whether no live publisher is attached now (a new one may attach;
    /// receiving waits for it).
    pub fn publisher_gone(&self) -> bool {
        self.svc.publisher_gone().unwrap_or(true)
    }

    /// Reclaims what dead peers left: the entries of dead subscribers
    /// (their holds on every block, their queues), a dead publisher's
    /// holds and queue claims, shared blocks nobody holds, and blocks
    /// dead participants had on loan. Returns the blocks freed; fails
    /// with [`Corrupted`] at the first impossible shared word.
    pub fn reclaim(&self) -> Result<usize, Corrupted> {
        self.svc.reclaim()
    }

    /// Receives the next sample, waiting as long as it takes (spinning a
    /// little, then sleeping; with no publisher attached, until one
    /// attaches and sends). Fails with [`RecvError::HeldLimit`] if this
    /// subscriber holds its limit of samples, and with
    /// [`RecvError::Corrupted`] for a descriptor that does not name a
    /// sample of this subscriber (see the [module documentation](super)).
    pub fn recv(&self) -> Result<Sample<'_>, RecvError> {
        self.recv_inner(None, true).map_err(|e| match e {
            Stop::HeldLimit => RecvError::HeldLimit,
            Stop::Corrupted(w) => RecvError::Corrupted(w),
            Stop::Empty => RecvError::Corrupted("a blocking receive gave up"),
        })
    }

    /// Receives the next sample if one is queued now.
    pub fn try_recv(&self) -> Result<Sample<'_>, TryRecvError> {
        self.recv_inner(None, false).map_err(|e| match e {
            Stop::Empty => TryRecvError::Empty,
            Stop::HeldLimit => TryRecvError::HeldLimit,
            Stop::Corrupted(w) => TryRecvError::Corrupted(w),
        })
    }

    /// Receives the next sample, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Sample<'_>, RecvTimeoutError> {
        self.recv_deadline_inner(deadline_after(timeout))
    }

    /// Receives the next sample, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Sample<'_>, RecvTimeoutError> {
        self.recv_deadline_inner(Some(deadline))
    }

    fn recv_deadline_inner(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Sample<'_>, RecvTimeoutError> {
        self.recv_inner(deadline, true).map_err(|e| match e {
            Stop::Empty => RecvTimeoutError::Timeout,
            Stop::HeldLimit => RecvTimeoutError::HeldLimit,
            Stop::Corrupted(w) => RecvTimeoutError::Corrupted(w),
        })
    }

    fn recv_inner(&self, deadline: Option<Instant>, wait: bool) -> Result<Sample<'_>, Stop> {
        if self.held.get() >= self.svc.held_limit {
            return Err(Stop::HeldLimit);
        }
        if !wait {
            if let Some(s) = self.try_once()? {
                return Ok(s);
            }
            self.repair();
            return self.try_once()?.ok_or(Stop::Empty);
        }
        // Between sleeps: clean up after a dead publisher.
        let repair = || {
            self.repair();
            Ok(())
        };
        let data = &self.svc.entry(self.entry).data;
        wait_for(data, deadline, true, || self.try_once(), repair)?.ok_or(Stop::Empty)
    }

    /// Between an idle receive's sleeps: cleans up after a dead publisher
    /// (at most once per [`PROBE_INTERVAL`]), or sooner if a slot it
    /// claimed and never filled is what keeps this queue looking empty.
    /// Its claims are handed on, and a send it had under way owes its
    /// sample to whom it did not reach ([`Service::owe_unsent`]), so this
    /// subscriber receives it next.
    fn repair(&self) {
        let now = coarse_now();
        let stalled = matches!(
            self.svc.queues[self.entry]
                .stalled_pop()
                .map(|s| s.holder()),
            Some(Holder::Producer(_))
        );
        if !stalled && now < self.next_probe.get() {
            return;
        }
        self.next_probe.set(now + PROBE_INTERVAL);
        // A scribbled word is the next send's or receive's to report.
        let _ = self.svc.reclaim_publisher();
    }

    /// Pops descriptors until one names a sample for this subscriber
    /// (skipping those from before it joined); `None` if the queue is
    /// empty. An owed sample numbered below the descriptor popped (or
    /// with the queue empty) comes first: its descriptor never reached
    /// the queue, so nothing numbered between comes later.
    fn try_once(&self) -> Result<Option<Sample<'_>>, Stop> {
        let kept = self.history.borrow_mut().pop_front();
        if let Some(d) = kept {
            // The history's are numbered below `next_seq`; a descriptor
            // set aside for an owed sample is not.
            let next = self.next_seq.get().max(d.seq.saturating_add(1));
            self.next_seq.set(next);
            return self.accept(&d).map(Some);
        }
        let q = &self.svc.queues[self.entry];
        let mut d = Descriptor::zeroed();
        for _ in 0..=q.capacity() {
            match q.pop_into_as(SUB, &mut d) {
                Ok(()) => {}
                Err(Miss::WouldBlock) => return self.owed(u64::MAX),
                Err(Miss::Corrupted(w)) => return Err(Stop::Corrupted(w)),
            }
            self.svc.entry(self.entry).space.notify();
            if d.seq < self.join_seq {
                // A leftover of the entry's last holder. One naming a
                // block a live sample of ours holds is a peer's forgery
                // (a real leftover's block was freed since, or is of
                // another generation): its hold is the sample's.
                if !self.holding.contains(d.block()) {
                    self.svc.release_descriptor(self.entry, &d);
                }
                continue;
            }
            // A gap: samples between were dropped, or owed.
            if d.seq > self.next_seq.get() {
                if let Some(s) = self.owed(d.seq)? {
                    self.history.borrow_mut().push_front(d);
                    return Ok(Some(s));
                }
            }
            self.next_seq.set(d.seq.saturating_add(1));
            return self.accept(&d).map(Some);
        }
        Ok(None)
    }

    /// The oldest sample owed to this subscriber numbered below `before`
    /// (and from its next expected one on), taken from the entry's owed
    /// slots; owed copies of samples it received through the queue
    /// already are emptied on the way.
    fn owed(&self, before: u64) -> Result<Option<Sample<'_>>, Stop> {
        let slots = &self.svc.entry(self.entry).owed;
        let mut oldest: Option<(usize, Descriptor)> = None;
        for (i, slot) in slots.iter().enumerate() {
            match slot.read() {
                Ok(Some(d)) if d.seq < self.next_seq.get() => slot.clear(),
                Ok(Some(d)) if oldest.is_none_or(|(_, o)| d.seq < o.seq) => {
                    oldest = Some((i, d));
                }
                Ok(_) => {}
                Err(()) => {
                    slot.clear();
                    return Err(Stop::Corrupted("an owed sample's slot"));
                }
            }
        }
        match oldest {
            Some((i, d)) if d.seq < before => {
                slots[i].clear();
                self.next_seq.set(d.seq.saturating_add(1));
                self.accept(&d).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Checks descriptor `d` against the block it names and makes it a
    /// sample.
    fn accept(&self, d: &Descriptor) -> Result<Sample<'_>, Stop> {
        let pool = &self.svc.pool;
        let block = d.block();
        let bad = |w| Err(Stop::Corrupted(w));
        let Some((ptr, size)) = pool.block_ptr(block) else {
            return bad("a descriptor names no block of the pool");
        };
        // Our bit keeps a block we hold from being freed and shared
        // again: a second descriptor of it is a peer's copy or forgery.
        if self.holding.contains(block) {
            return bad("a descriptor names a block this subscriber already holds");
        }
        // Counted as read first (and refused if lent in this process):
        // from here on no loan of this process takes the block.
        pool.read_shared(block)?;
        let checked = || -> Result<(), Stop> {
            if !pool.is_shared(block)? {
                return Err(Stop::Corrupted(
                    "a descriptor's block is not shared under its generation",
                ));
            }
            let bit = 1u64 << self.entry;
            if pool
                .holders(block)
                .is_none_or(|h| h.load(Ordering::Acquire) & bit == 0)
            {
                return Err(Stop::Corrupted(
                    "a descriptor's block is not held for this subscriber",
                ));
            }
            if d.len as usize > size {
                return Err(Stop::Corrupted("a descriptor's length exceeds its block"));
            }
            Ok(())
        };
        if let Err(e) = checked() {
            pool.end_read(block);
            return Err(e);
        }
        let len = d.len as usize;
        self.holding.insert(block);
        self.held.set(self.held.get() + 1);
        Ok(Sample {
            sub: self,
            block,
            ptr,
            len,
            seq: d.seq,
        })
    }
}

use bytemuck::Zeroable;

impl Drop for Subscriber {
    fn drop(&mut self) {
        // No sample is out (each borrows `self`): give back the queue's
        // descriptors and every hold, then the entry.
        let _ = self.svc.clean_entry(self.entry, false);
        self.svc.free_entry(self.entry);
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.region.name())
            .field("entry", &self.entry)
            .field("held", &self.held.get())
            .finish_non_exhaustive()
    }
}

impl Sample<'_> {
    /// The sample's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The block it lives in.
    pub fn block(&self) -> BlockRef {
        self.block
    }

    /// A copy of the sample as a `T`, if it is exactly `size_of::<T>()`
    /// bytes (read unaligned: any bytes are a valid `T: Pod`).
    pub fn value<T: Pod>(&self) -> Option<T> {
        (self.len == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(self))
    }
}

impl Deref for Sample<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the first of `len <= block_size` bytes of the
        // sample's block, inside the pool's blocks, valid while the
        // subscriber (and so its mapping) is borrowed. The block was
        // `shared` under this generation with this subscriber's bit set
        // when received, and stays so while the bit is: only this sample's
        // drop clears it (reclaims clear the bits of dead or departed
        // subscribers only), and a shared block is lent to nobody, so no
        // `&mut` to it exists in this process. A peer breaking the
        // protocol can change the bytes (any bytes are valid `u8`).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Sample<'_> {
    fn drop(&mut self) {
        self.sub.holding.remove(self.block);
        let bit = 1u64 << self.sub.entry;
        // No longer read: then the hold goes (which may free the block).
        self.sub.svc.pool.end_read(self.block);
        self.sub.svc.pool.release_shared(self.block, bit);
        self.sub.held.set(self.sub.held.get() - 1);
    }
}

impl fmt::Debug for Sample<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("seq", &self.seq)
            .field("block", &self.block)
            .field("len", &self.len)
            .finish()
    }
}
