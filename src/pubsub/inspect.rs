//! [`inspect`]: a publish/subscribe service as its shared memory
//! describes it, read from outside.

use super::wire::*;
use crate::error::Result;
use crate::pool::PoolUsage;
use crate::region::{ObjectKind, Outside};

/// A service as its shared memory describes it (see [`inspect`]): every
/// number is what the memory claims, checked only for being possible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// Subscriber entries the service was made with.
    pub max_subscribers: u64,
    /// The entries whose subscriber receives now.
    pub present: Vec<usize>,
    /// Whether a publisher holds the service (its token is set).
    pub publisher: bool,
    /// The sequence number the next sample will get.
    pub next_seq: u64,
    /// Each subscriber queue's capacity.
    pub queue_capacity: u64,
    /// Samples a late joiner receives.
    pub history: u64,
    /// The block pool: blocks free, lent and shared per class, and which
    /// holder bits hold the shared ones (bit `i`: subscriber entry `i`;
    /// 62: the history; 63: the publisher while it sends).
    pub pool: Result<PoolUsage, &'static str>,
}

/// Reads service `name` from outside: its subscribers, publisher,
/// sequence and how its pool's blocks are used, with `pread`, attaching
/// nothing and changing nothing. For tools (`shmkit inspect`) and health
/// checks. Fails as [`region::inspect`](crate::region::inspect) does, and with
/// [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) for an object that is not a ready service.
///
/// ```
/// use shmkit::pubsub::{self, Publisher, ServiceConfig, Subscriber};
/// # let name = format!("/shmkit-doc-pubsub-inspect-{}", std::process::id());
/// let config = ServiceConfig::new(shmkit::pool::PoolConfig::new().class(64, 16));
/// let publisher = Publisher::create(&name, &config)?;
/// let sub = Subscriber::open(&name)?;
/// publisher.send_copy(b"hello")?;
/// let info = pubsub::inspect(&name)?;
/// assert!(info.publisher);
/// assert_eq!(info.present.len(), 1);
/// assert_eq!(info.next_seq, 1);
/// let pool = info.pool.unwrap();
/// assert_eq!(pool.classes[0].shared, 1); // the sample waiting in the queue
/// # drop(sub);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<ServiceInfo> {
    let object = Outside::open(name, &[ObjectKind::PubSub])?;
    let head = object.data(0, HEADER_SIZE)?;
    let u64_at = |at| head.u64_at(at);
    let max_subscribers = u64_at(SUBSCRIBERS_OFFSET).min(MAX_SUBSCRIBERS as u64);
    let mask = u64_at(PRESENT_OFFSET);
    let present = (0..max_subscribers as usize)
        .filter(|i| mask & (1 << i) != 0)
        .collect();
    let publisher = u64_at(PUBLISHER_OFFSET) & 0xffff_ffff != 0;
    // The pool's offset, as the header's seventh word says.
    let pool_offset = u64_at(48) as usize;
    let pool = crate::pool::usage::read(|offset, len| {
        object
            .data(pool_offset.saturating_add(offset), len)
            .map(|w| w.0)
    })?;
    Ok(ServiceInfo {
        max_subscribers,
        present,
        publisher,
        next_seq: u64_at(NEXT_SEQ_OFFSET),
        queue_capacity: u64_at(QUEUE_CAPACITY_OFFSET),
        history: u64_at(HISTORY_OFFSET),
        pool,
    })
}
