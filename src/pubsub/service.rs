//! The service's shared parts as one process sees them, and the steps
//! publisher and subscribers share: attaching, cleaning a subscriber
//! entry, releasing a descriptor's hold, reclaiming what dead peers left.

use super::config::{plan, plan_queues, ServiceConfig, SlowSubscriber};
use super::wire::*;
use crate::error::{Error, Result};
use crate::pool::shared::PUBLISHER_BIT;
use crate::pool::{Corrupted, Pool};
use crate::primitive::Ordering;
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::mpmc::{Holder, MpmcRing, Participant};
use crate::sync::owner::{self, Token};

/// The participant id the publisher's claims name in every queue.
pub(crate) const PUB: Participant = match Participant::new(0) {
    Some(p) => p,
    None => Participant::ANONYMOUS,
};
/// The participant id the claims of a queue's consumer name: whoever holds
/// the queue's subscriber entry (its subscriber, or a peer cleaning it).
pub(crate) const SUB: Participant = match Participant::new(1) {
    Some(p) => p,
    None => Participant::ANONYMOUS,
};

/// The layout id of a service region.
pub(crate) const LAYOUT: LayoutId = LayoutId::named("shmkit::pubsub::Service", 2);

/// The options of a service region (sized for `config`, if given).
pub(crate) fn options(config: Option<&ServiceConfig>) -> Result<RegionOptions> {
    let opts = RegionOptions::new().layout(LAYOUT).kind(ObjectKind::PubSub);
    Ok(match config {
        Some(c) => opts.size(ServiceConfig::bytes_for(c)?),
        None => opts,
    })
}

/// The publish/subscribe kind of service, for [`crate::service`].
pub(crate) struct PubSub;

impl crate::service::Kind for PubSub {
    type Config = ServiceConfig;
    fn options(config: Option<&ServiceConfig>) -> Result<RegionOptions> {
        options(config)
    }
    fn init(region: &Region, config: &ServiceConfig) -> Result<()> {
        init(region, config)
    }
    fn mismatch() -> Error {
        super::publisher::mismatch()
    }
}

/// Lays out a fresh service of `config` in `region`: queues, pool, then
/// the header, its magic last.
pub(crate) fn init(region: &Region, config: &ServiceConfig) -> Result<()> {
    let p = plan(config)?;
    let header = region.place::<ServiceHeader>(0)?;
    for i in 0..config.subscribers {
        MpmcRing::<Descriptor>::create(region, p.queue_offset(i), config.queue_capacity)?;
    }
    Pool::create(region, p.pool_offset, &config.pool)?;
    let set = |w: &crate::primitive::AtomicU64, v: usize| w.store(v as u64, Ordering::Relaxed);
    header.version.store(SERVICE_VERSION, Ordering::Relaxed);
    set(&header.subscribers, config.subscribers);
    set(&header.queue_capacity, config.queue_capacity);
    set(&header.held_limit, config.held_limit);
    set(&header.history, config.history);
    header
        .policy
        .store(config.policy.to_raw(), Ordering::Relaxed);
    set(&header.pool_offset, p.pool_offset);
    set(&header.total_bytes, p.total);
    header.magic.store(SERVICE_MAGIC, Ordering::Release);
    Ok(())
}

/// What a role's word that names no participant is.
const NO_TOKEN: &str = "publish/subscribe entry holds no participant token";

fn corrupted(what: &'static str) -> Error {
    Error::Corrupted { what }
}

/// Who holds the publisher's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublisherWord {
    /// Nobody live: none, a dead publisher, or a dead cleaner.
    Free,
    /// A live peer cleaning up after a dead publisher ([`RECLAIMING`]).
    Cleaning,
    /// A live publisher.
    Publisher,
}

/// The service's parts, borrowed for the region's lifetime.
pub(crate) struct Service {
    pub(crate) header: &'static ServiceHeader,
    pub(crate) pool: Pool<'static>,
    pub(crate) queues: Vec<MpmcRing<'static, Descriptor>>,
    pub(crate) held_limit: usize,
    pub(crate) policy: SlowSubscriber,
    /// The history's slots (none: no history).
    pub(crate) history: &'static [HistorySlot],
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
                "no publish/subscribe service here (magic)",
                "publish/subscribe format version",
            ],
        };
        let header = expect.header::<ServiceHeader>(region, |h| {
            (
                h.magic.load(Ordering::Acquire),
                h.version.load(Ordering::Relaxed),
            )
        })?;
        let word = |w: &crate::primitive::AtomicU64| usize::try_from(w.load(Ordering::Relaxed));
        let (Ok(n), Ok(cap), Ok(held), Ok(history), Ok(pool_offset), Ok(total)) = (
            word(&header.subscribers),
            word(&header.queue_capacity),
            word(&header.held_limit),
            word(&header.history),
            word(&header.pool_offset),
            word(&header.total_bytes),
        ) else {
            return Err(corrupted("publish/subscribe header word"));
        };
        let p = plan_queues(n, cap, history)
            .map_err(|_| corrupted("publish/subscribe queue count, capacity or history"))?;
        if held == 0 || held > u32::MAX as usize {
            return Err(corrupted("publish/subscribe held limit"));
        }
        let Some(policy) = SlowSubscriber::from_raw(header.policy.load(Ordering::Relaxed)) else {
            return Err(corrupted("publish/subscribe policy"));
        };
        if pool_offset != p.pool_offset || total > region.len() || total < pool_offset {
            return Err(corrupted("publish/subscribe layout"));
        }
        let pool = Pool::open(region, pool_offset)?;
        let history = match history {
            0 => &[],
            n => region.place_slice::<HistorySlot>(HEADER_SIZE, n)?,
        };
        let queues = (0..n)
            .map(|i| {
                let q = MpmcRing::<Descriptor>::open(region, p.queue_offset(i))?;
                if q.capacity() != cap {
                    return Err(corrupted("publish/subscribe queue capacity"));
                }
                Ok(q)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            header,
            pool,
            queues,
            held_limit: held,
            policy,
            history,
        })
    }

    /// Whether this service is what `config` would make (for
    /// `open_or_create`).
    pub(crate) fn matches(&self, config: &ServiceConfig) -> bool {
        let classes = config.pool.classes();
        self.queues.len() == config.subscribers
            && self.queues[0].capacity() == config.queue_capacity
            && self.held_limit == config.held_limit
            && self.policy == config.policy
            && self.history.len() == config.history
            && self.pool.class_count() == classes.len()
            && classes.iter().enumerate().all(|(c, &(size, count))| {
                self.pool.block_count(c) == Some(count)
                    && self.pool.block_size(c) == Some(size.next_multiple_of(64))
            })
    }

    /// How many subscriber entries the service has.
    pub(crate) fn subscribers(&self) -> usize {
        self.queues.len()
    }

    /// The bits of the present mask that name entries.
    fn valid(&self) -> u64 {
        (1u64 << self.subscribers()) - 1
    }

    /// The present mask, checked.
    pub(crate) fn present(&self) -> Result<u64, Corrupted> {
        let m = self.header.present.load(Ordering::SeqCst);
        if m & !self.valid() != 0 {
            return Err(Corrupted(
                "publish/subscribe present mask names no subscriber",
            ));
        }
        Ok(m)
    }

    pub(crate) fn entry(&self, i: usize) -> &'static Entry {
        &self.header.entries[i]
    }

    /// This process's token for the entries' and publisher's words.
    pub(crate) fn me(&self) -> Token {
        owner::current(&self.header.publisher)
    }

    /// Whether nobody receives through entry `i` now: its present bit is
    /// clear, or nobody holds the entry (a leaver clears the bit before
    /// it frees the entry, and a joiner takes the entry before it sets
    /// the bit, so a set bit on a free entry is a peer's scribble). A
    /// send does not wait for room in such an entry's queue.
    pub(crate) fn absent(&self, i: usize) -> bool {
        self.header.present.load(Ordering::SeqCst) & (1 << i) == 0
            || self.entry(i).token.load(Ordering::SeqCst) == 0
    }

    /// Whether entry `i` is held by a dead handle.
    pub(crate) fn entry_dead(&self, i: usize) -> Result<bool, Corrupted> {
        crate::service::held_by_dead(&self.entry(i).token, NO_TOKEN)
    }

    /// Whether no live publisher is attached (nobody, or a dead one).
    pub(crate) fn publisher_gone(&self) -> Result<bool, Corrupted> {
        let t = self.header.publisher.load(Ordering::Acquire);
        Ok(self.publisher_word(t)? != PublisherWord::Publisher)
    }

    /// Who holds the publisher's word when it holds `t`.
    pub(crate) fn publisher_word(&self, t: u32) -> Result<PublisherWord, Corrupted> {
        if t == 0 || crate::service::dead(&self.header.publisher, t & !RECLAIMING, NO_TOKEN)? {
            return Ok(PublisherWord::Free);
        }
        Ok(match t & RECLAIMING {
            0 => PublisherWord::Publisher,
            _ => PublisherWord::Cleaning,
        })
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
        e.space.notify();
    }

    /// Gives back everything entry `i`'s last subscriber held, for a
    /// caller that holds the entry: clears its present bit, hands on the
    /// queue claims of a dead holder (`inherited`), drains its queue
    /// (releasing each descriptor's hold) and clears its bit on every
    /// shared block. Returns the blocks freed.
    pub(crate) fn clean_entry(&self, i: usize, inherited: bool) -> Result<usize, Corrupted> {
        let bit = 1u64 << i;
        self.header.present.fetch_and(!bit, Ordering::SeqCst);
        let q = &self.queues[i];
        if inherited {
            // SAFETY: the entry held a dead handle's token, and only the
            // entry's holder pops this queue (as `SUB`); this process took
            // the entry just now and has not popped it since.
            unsafe { q.release_claims(Holder::Consumer(SUB)) };
        }
        let mut freed = 0;
        for _ in 0..2 * q.capacity() {
            match q.try_pop_as(SUB) {
                Ok(d) => freed += usize::from(self.release_descriptor(i, &d)),
                Err(crate::ring::PopError::Empty) => break,
                Err(crate::ring::PopError::Corrupted(w)) => return Err(Corrupted(w)),
            }
        }
        // Owed samples are holds of the same bit, given back by the sweep.
        for o in &self.entry(i).owed {
            o.clear();
        }
        self.entry(i).space.notify();
        Ok(freed + self.pool.sweep_shared(bit)?)
    }

    /// Releases entry `i`'s hold on the block `d` names, if `d` names a
    /// shared block of its generation on which entry `i`'s bit is set
    /// (for a descriptor that will not be received: drained, or from
    /// before the subscriber joined). Whether that freed the block.
    pub(crate) fn release_descriptor(&self, i: usize, d: &Descriptor) -> bool {
        let (b, bit) = (d.block(), 1u64 << i);
        self.pool.shared_with(b, bit) == Ok(true) && self.pool.release_shared(b, bit)
    }

    /// Cleans entry `i` if its holder is dead: takes it, cleans it, frees
    /// it. Returns the blocks freed, `None` if the holder is not dead (or
    /// another process took the entry first).
    pub(crate) fn reclaim_entry(&self, i: usize) -> Result<Option<usize>, Corrupted> {
        if !self.entry_dead(i)? {
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

    /// Cleans up after a dead publisher: takes its word, hands on its
    /// queue claims, clears its bit on every shared block, frees the
    /// word. Returns the blocks freed.
    pub(crate) fn reclaim_publisher(&self) -> Result<usize, Corrupted> {
        let w = &self.header.publisher;
        let t = w.load(Ordering::Acquire);
        if t == 0 || self.publisher_word(t)? != PublisherWord::Free {
            return Ok(0);
        }
        let me = self.me().raw() | RECLAIMING;
        if w.compare_exchange(t, me, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Ok(0);
        }
        let freed = self.after_publisher();
        w.store(0, Ordering::Release);
        freed
    }

    /// What a caller that took the publisher's word from a dead (or
    /// departed) publisher does before anything else.
    pub(crate) fn after_publisher(&self) -> Result<usize, Corrupted> {
        let mut freed = 0;
        for (i, q) in self.queues.iter().enumerate() {
            // SAFETY: the publisher's word held a dead token or none, and
            // only the publisher pushes (as `PUB`, and pops as `PUB` under
            // drop-oldest): no thread of this process does either while
            // the caller holds the word.
            unsafe { q.release_claims(Holder::Producer(PUB)) };
            // SAFETY: as above, for the pops of a drop-oldest publisher
            // (its claims name `PUB` as a consumer). The descriptor such a
            // pop was taking back went with it, and with it the
            // subscriber's hold on its block: released here.
            unsafe {
                q.release_claims_taking(Holder::Consumer(PUB), |d| {
                    freed += usize::from(self.release_descriptor(i, &d));
                })
            };
        }
        self.owe_unsent()?;
        Ok(freed + self.pool.sweep_shared(PUBLISHER_BIT)?)
    }

    /// For a caller that took the publisher's word from a dead (or
    /// departed) publisher and handed on its queue claims: if the last
    /// publisher's send was cut short after sharing its block (the block
    /// still has [`PUBLISHER_BIT`] and is the one the header's `sending`
    /// record names), every subscriber the block was shared with whose
    /// queue does not hold its descriptor is owed the sample: the
    /// descriptor goes into the entry's `owed` slots, where its subscriber
    /// receives it in sequence order (see [`Subscriber`](super::Subscriber)).
    /// A subscriber that popped the descriptor already skips the owed copy
    /// by its sequence number. So a send killed between sharing and pushing
    /// loses nothing and leaves no hold behind.
    ///
    /// An entry whose owed slots are full (two sends cut short in a row
    /// before its subscriber received again) keeps its hold until the
    /// entry is cleaned.
    pub(crate) fn owe_unsent(&self) -> Result<(), Corrupted> {
        let Ok(Some(d)) = self.header.sending.read() else {
            return Ok(());
        };
        let b = d.block();
        if !self.pool.shared_with(b, PUBLISHER_BIT)? {
            return Ok(());
        }
        let Some(h) = self.pool.holders(b) else {
            return Ok(());
        };
        for i in super::publisher::bits(h.load(Ordering::Acquire) & self.valid()) {
            // SAFETY: the caller holds the publisher's word: no correct
            // participant pushes to a subscriber's queue meanwhile.
            if unsafe { self.queues[i].any_published(|q| *q == d) } {
                continue;
            }
            let owed = &self.entry(i).owed;
            // Only the holder of the publisher's word fills a slot, only
            // the entry's holder empties one.
            if owed.iter().any(|o| o.read() == Ok(Some(d))) {
                continue;
            }
            if let Some(free) = owed.iter().find(|o| o.read() == Ok(None)) {
                free.write(&d);
            }
        }
        Ok(())
    }

    /// Reclaims what dead peers left: dead subscribers' entries (their
    /// holds on every block, their queues), a dead publisher's holds and
    /// claims, shared blocks nobody holds, and pool blocks dead
    /// participants had on loan. Returns the blocks freed.
    pub(crate) fn reclaim(&self) -> Result<usize, Corrupted> {
        let mut freed = 0;
        for i in 0..self.subscribers() {
            freed += self.reclaim_entry(i)?.unwrap_or(0);
        }
        freed += self.reclaim_publisher()?;
        freed += self.pool.sweep_shared(0)?;
        freed += self.pool.reclaim()?;
        Ok(freed)
    }
}
