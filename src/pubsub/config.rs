//! [`ServiceConfig`] and the layout a configuration takes.

use super::wire::{HEADER_SIZE, HISTORY_SLOT_SIZE, MAX_SUBSCRIBERS};
use super::Descriptor;
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolConfig};
use crate::ring::mpmc::MpmcRing;

/// What a subscriber's full queue makes the publisher do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowSubscriber {
    /// The publisher waits for room, as long as the send's form allows
    /// (`send` without limit, `try_send` not at all, `send_timeout` and
    /// `send_deadline` until their deadline): no subscriber misses a
    /// sample.
    #[default]
    Lossless,
    /// The publisher makes room in a full queue by taking its oldest
    /// descriptor back (and the subscriber's hold on that sample): a slow
    /// subscriber misses the oldest samples (a gap in [`seq`]), and never
    /// slows the publisher or the others down.
    ///
    /// [`seq`]: super::Sample::seq
    DropOldest,
}

impl SlowSubscriber {
    pub(crate) fn to_raw(self) -> u64 {
        match self {
            SlowSubscriber::Lossless => 1,
            SlowSubscriber::DropOldest => 2,
        }
    }

    pub(crate) fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            1 => Some(SlowSubscriber::Lossless),
            2 => Some(SlowSubscriber::DropOldest),
            _ => None,
        }
    }
}

/// How a publish/subscribe service is made: how many subscribers it
/// admits at once, each one's queue of sample descriptors and limit of
/// samples held at once, the slow-subscriber policy, and the block pool
/// the samples live in.
///
/// ```
/// use shmkit::pool::PoolConfig;
/// use shmkit::pubsub::ServiceConfig;
///
/// let config = ServiceConfig::new(PoolConfig::new().class(256, 64))
///     .subscribers(4)
///     .queue_capacity(8)
///     .held_limit(4);
/// assert!(ServiceConfig::bytes_for(&config)? > 64 * 256);
/// # Ok::<(), shmkit::Error>(())
/// ```
///
/// A lossless service never runs out of blocks if the pool has at least
/// `subscribers * (queue_capacity + held_limit) + history + 1` blocks of
/// the class its samples take; with fewer, a loan can find the pool
/// exhausted while slow subscribers (or the history) hold what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub(crate) subscribers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) held_limit: usize,
    pub(crate) policy: SlowSubscriber,
    pub(crate) history: usize,
    pub(crate) pool: PoolConfig,
}

impl ServiceConfig {
    /// A configuration over a pool of `pool`'s classes: 8 subscribers,
    /// queues of 64 descriptors, 16 samples held at once, lossless, no
    /// history.
    pub fn new(pool: PoolConfig) -> Self {
        Self {
            subscribers: 8,
            queue_capacity: 64,
            held_limit: 16,
            policy: SlowSubscriber::Lossless,
            history: 0,
            pool,
        }
    }

    /// How many subscribers may be attached at once: `1..=62`.
    pub fn subscribers(mut self, n: usize) -> Self {
        self.subscribers = n;
        self
    }

    /// How many descriptors each subscriber's queue holds: a power of two
    /// (as [`MpmcRing`] wants).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// How many samples one subscriber may hold at once (at least 1);
    /// a receive past it fails with a `HeldLimit` error.
    pub fn held_limit(mut self, n: usize) -> Self {
        self.held_limit = n;
        self
    }

    /// What a full queue makes the publisher do.
    pub fn policy(mut self, policy: SlowSubscriber) -> Self {
        self.policy = policy;
        self
    }

    /// How many of the newest samples the service keeps for a late
    /// joiner: `0..=queue_capacity` (0, the default: none). A subscriber
    /// that joins receives these first (those still kept, oldest first),
    /// then every sample sent after it joined. The history holds its
    /// samples' blocks until newer samples push them out, also after the
    /// publisher has left. See the [module documentation](super#history).
    pub fn history(mut self, n: usize) -> Self {
        self.history = n;
        self
    }

    /// The subscriber entries it asks for.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
    }

    /// The pool configuration it asks for.
    pub fn pool(&self) -> &PoolConfig {
        &self.pool
    }

    /// How many region bytes a service of `config` takes: the formula of
    /// the [module documentation](super#memory). Fails with
    /// [`Error::InvalidSize`] for a configuration that breaks a rule of
    /// its setters or of [`PoolConfig`].
    pub fn bytes_for(config: &ServiceConfig) -> Result<usize> {
        Ok(plan(config)?.total)
    }
}

/// Where a service's parts lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Where the first queue starts (after the history's slots).
    pub(crate) queues_offset: usize,
    /// Bytes between two queues (a multiple of 128).
    pub(crate) queue_stride: usize,
    /// Where the pool starts.
    pub(crate) pool_offset: usize,
    pub(crate) total: usize,
}

impl Plan {
    /// Where queue `i` starts.
    pub(crate) fn queue_offset(&self, i: usize) -> usize {
        self.queues_offset + i * self.queue_stride
    }
}

fn invalid(size: usize, reason: &'static str) -> Error {
    Error::InvalidSize {
        size: size as u64,
        reason,
    }
}

pub(crate) fn plan(config: &ServiceConfig) -> Result<Plan> {
    if config.held_limit == 0 || config.held_limit > u32::MAX as usize {
        return Err(invalid(
            config.held_limit,
            "a service's held limit is at least 1",
        ));
    }
    let queues = plan_queues(config.subscribers, config.queue_capacity, config.history)?;
    let too_large = || invalid(usize::MAX, "a service of this configuration is too large");
    let total = Pool::bytes_for(&config.pool)?
        .checked_add(queues.pool_offset)
        .ok_or_else(too_large)?;
    Ok(Plan { total, ..queues })
}

/// The plan of the header, `history` slots and `n` queues of `capacity`;
/// `total` is where the pool starts.
pub(crate) fn plan_queues(n: usize, capacity: usize, history: usize) -> Result<Plan> {
    if n == 0 || n > MAX_SUBSCRIBERS {
        return Err(invalid(n, "a service has 1 ..= 62 subscribers"));
    }
    let ring = MpmcRing::<Descriptor>::bytes_for(capacity)?;
    if history > capacity {
        return Err(invalid(
            history,
            "a service's history is at most its queue capacity",
        ));
    }
    let too_large = || invalid(usize::MAX, "a service of this configuration is too large");
    let queue_stride = ring.checked_next_multiple_of(128).ok_or_else(too_large)?;
    // `history <= capacity`, whose ring's size did not overflow.
    let queues_offset = HEADER_SIZE + (history * HISTORY_SLOT_SIZE).next_multiple_of(128);
    let pool_offset = queue_stride
        .checked_mul(n)
        .and_then(|q| q.checked_add(queues_offset))
        .ok_or_else(too_large)?;
    Ok(Plan {
        queues_offset,
        queue_stride,
        pool_offset,
        total: pool_offset,
    })
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    fn r128(x: usize) -> usize {
        x.div_ceil(128) * 128
    }

    #[test]
    fn bytes_for_is_the_formula_and_bad_configurations_are_invalid() {
        let pool = PoolConfig::new().class(100, 10);
        for (n, q, h) in [(1, 1, 0), (3, 8, 5), (62, 64, 64)] {
            let c = ServiceConfig::new(pool.clone())
                .subscribers(n)
                .queue_capacity(q)
                .history(h);
            let want =
                8576 + r128(32 * h) + n * r128(384 + 40 * q) + Pool::bytes_for(&pool).unwrap();
            assert_eq!(ServiceConfig::bytes_for(&c).unwrap(), want, "{n} {q}");
        }
        let ok = ServiceConfig::new(pool.clone());
        for bad in [
            ok.clone().subscribers(0),
            ok.clone().subscribers(63),
            ok.clone().queue_capacity(4).history(5),
            ok.clone().queue_capacity(3),
            ok.clone().held_limit(0),
            ServiceConfig::new(PoolConfig::new()),
        ] {
            assert!(
                matches!(
                    ServiceConfig::bytes_for(&bad),
                    Err(Error::InvalidSize { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
