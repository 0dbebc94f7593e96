//! [`ServiceConfig`] and the layout a configuration takes.

use super::wire::{Envelope, HEADER_SIZE, MAX_CLIENTS};
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolConfig};
use crate::ring::mpmc::MpmcRing;

/// How a request/response service is made: how many clients it admits
/// at once, each one's request and response queues, how many messages
/// one side holds at once, and the block pool requests and responses
/// live in.
///
/// ```
/// use shmkit::pool::PoolConfig;
/// use shmkit::reqresp::ServiceConfig;
///
/// let config = ServiceConfig::new(PoolConfig::new().class(256, 64))
///     .clients(4)
///     .queue_capacity(8)
///     .held_limit(4);
/// assert!(ServiceConfig::bytes_for(&config)? > 64 * 256);
/// # Ok::<(), shmkit::Error>(())
/// ```
///
/// A service never runs out of blocks if its pool has at least
/// `clients * (2 * queue_capacity + held_limit) + held_limit` blocks of
/// the class its messages take (every queue full, every client and the
/// server at their held limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub(crate) clients: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) held_limit: usize,
    pub(crate) pool: PoolConfig,
}

impl ServiceConfig {
    /// A configuration over a pool of `pool`'s classes: 8 clients, queues
    /// of 16 envelopes, 16 messages held at once.
    pub fn new(pool: PoolConfig) -> Self {
        Self {
            clients: 8,
            queue_capacity: 16,
            held_limit: 16,
            pool,
        }
    }

    /// How many clients may be attached at once: `1..=62`.
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// How many envelopes each client's request queue and response queue
    /// hold: a power of two.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// How many messages one side holds at once (at least 1): requests
    /// the server has received and not dropped, responses a client has
    /// received and not dropped.
    pub fn held_limit(mut self, n: usize) -> Self {
        self.held_limit = n;
        self
    }

    /// The pool configuration it asks for.
    pub fn pool(&self) -> &PoolConfig {
        &self.pool
    }

    /// How many region bytes a service of `config` takes:
    /// `8320 + 2 N r128(384 + 40 Q) + Pool::bytes_for(pool)` for `N`
    /// clients and queues of `Q`, `r128` rounding up to a multiple of
    /// 128. Fails with [`Error::InvalidSize`] for a configuration that
    /// breaks a rule of its setters or of [`PoolConfig`].
    pub fn bytes_for(config: &ServiceConfig) -> Result<usize> {
        Ok(plan(config)?.total)
    }
}

/// Where a service's parts lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Bytes between two queues (a multiple of 128).
    pub(crate) queue_stride: usize,
    /// Where the pool starts.
    pub(crate) pool_offset: usize,
    pub(crate) total: usize,
}

impl Plan {
    /// Where client `i`'s request queue starts.
    pub(crate) fn request_queue(&self, i: usize) -> usize {
        HEADER_SIZE + 2 * i * self.queue_stride
    }

    /// Where client `i`'s response queue starts.
    pub(crate) fn response_queue(&self, i: usize) -> usize {
        self.request_queue(i) + self.queue_stride
    }
}

fn invalid(size: usize, reason: &'static str) -> Error {
    Error::InvalidSize {
        size: size as u64,
        reason,
    }
}

pub(crate) fn plan(config: &ServiceConfig) -> Result<Plan> {
    let queues = plan_queues(config.clients, config.queue_capacity, config.held_limit)?;
    let total = Pool::bytes_for(&config.pool)?
        .checked_add(queues.pool_offset)
        .ok_or_else(too_large)?;
    Ok(Plan { total, ..queues })
}

fn too_large() -> Error {
    invalid(usize::MAX, "a service of this configuration is too large")
}

/// The plan of the header and `n` pairs of queues of `capacity`; `total`
/// is where the pool starts.
pub(crate) fn plan_queues(n: usize, capacity: usize, held: usize) -> Result<Plan> {
    if n == 0 || n > MAX_CLIENTS {
        return Err(invalid(n, "a service has 1 ..= 62 clients"));
    }
    if held == 0 || held > u32::MAX as usize {
        return Err(invalid(held, "a service's held limit is at least 1"));
    }
    let ring = MpmcRing::<Envelope>::bytes_for(capacity)?;
    let queue_stride = ring.checked_next_multiple_of(128).ok_or_else(too_large)?;
    let pool_offset = queue_stride
        .checked_mul(2 * n)
        .and_then(|q| q.checked_add(HEADER_SIZE))
        .ok_or_else(too_large)?;
    Ok(Plan {
        queue_stride,
        pool_offset,
        total: pool_offset,
    })
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_is_the_formula_and_bad_configurations_are_invalid() {
        let r128 = |x: usize| x.div_ceil(128) * 128;
        let pool = PoolConfig::new().class(100, 10);
        for (n, q) in [(1, 1), (3, 8), (62, 64)] {
            let c = ServiceConfig::new(pool.clone())
                .clients(n)
                .queue_capacity(q);
            let want = 8320 + 2 * n * r128(384 + 40 * q) + Pool::bytes_for(&pool).unwrap();
            assert_eq!(ServiceConfig::bytes_for(&c).unwrap(), want, "{n} {q}");
        }
        let ok = ServiceConfig::new(pool);
        for bad in [
            ok.clone().clients(0),
            ok.clone().clients(63),
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
