//! [`inspect`]: a request/response service as its shared memory describes
//! it, read from outside.

use super::wire::*;
use crate::error::Result;
use crate::pool::PoolUsage;
use crate::region::{ObjectKind, Outside};

/// A request/response service as its shared memory describes it (see
/// [`inspect`]): every number is what the memory claims.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// Client entries the service was made with.
    pub max_clients: u64,
    /// The entries a client has taken (its token is set; whether that
    /// process lives, the region's handles say).
    pub clients: Vec<usize>,
    /// Whether a server holds the service.
    pub server: bool,
    /// Each request and response queue's capacity.
    pub queue_capacity: u64,
    /// The block pool: blocks free, lent and shared per class, and which
    /// holder bits hold the shared ones (bit `i`: client entry `i`; 62:
    /// the server).
    pub pool: Result<PoolUsage, &'static str>,
}

/// Reads service `name` from outside: its server and clients and how its
/// pool's blocks are used, with `pread`, attaching nothing and changing
/// nothing. Fails as [`region::inspect`](crate::region::inspect) does, and with
/// [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) for an object that is not a ready service.
///
/// ```
/// use shmkit::reqresp::{self, Client, Server, ServiceConfig};
/// # let name = format!("/shmkit-doc-reqresp-inspect-{}", std::process::id());
/// let config = ServiceConfig::new(shmkit::pool::PoolConfig::new().class(64, 16));
/// let server = Server::create(&name, &config)?;
/// let client = Client::open(&name)?;
/// let info = reqresp::inspect(&name)?;
/// assert!(info.server);
/// assert_eq!(info.clients.len(), 1);
/// # drop((client, server));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<ServiceInfo> {
    let object = Outside::open(name, &[ObjectKind::ReqResp])?;
    let head = object.data(0, HEADER_SIZE)?;
    let u32_at = |at| head.u32_at(at);
    let u64_at = |at| head.u64_at(at);
    let max_clients = u64_at(CLIENTS_OFFSET).min(MAX_CLIENTS as u64);
    let clients = (0..max_clients as usize)
        .filter(|i| u32_at(ENTRIES_OFFSET + i * ENTRY_STRIDE) != 0)
        .collect();
    let server = u32_at(SERVER_OFFSET) & !ATTACHING != 0;
    // The pool's offset, as the header's sixth word says.
    let pool_offset = u64_at(40) as usize;
    let pool = crate::pool::usage::read(|offset, len| {
        object
            .data(pool_offset.saturating_add(offset), len)
            .map(|w| w.0)
    })?;
    Ok(ServiceInfo {
        max_clients,
        clients,
        server,
        queue_capacity: u64_at(QUEUE_CAPACITY_OFFSET),
        pool,
    })
}
