//! How every service handle (a publish/subscribe [`Publisher`] or
//! [`Subscriber`], a request/response [`Server`] or [`Client`]) comes to
//! a region of its service: created, opened, opened or created, or
//! anonymous, then attached in its role. Written once here; each handle's
//! public constructors say what their role adds.
//!
//! [`Publisher`]: crate::pubsub::Publisher
//! [`Subscriber`]: crate::pubsub::Subscriber
//! [`Server`]: crate::reqresp::Server
//! [`Client`]: crate::reqresp::Client

use crate::error::{Error, Result};
use crate::region::{Region, RegionOptions};

/// A kind of service: its configuration and how its region is laid out.
pub(crate) trait Kind {
    type Config;
    /// The options of a region of this kind (sized for `config`, if
    /// given).
    fn options(config: Option<&Self::Config>) -> Result<RegionOptions>;
    /// Lays out a fresh service of `config` in `region`.
    fn init(region: &Region, config: &Self::Config) -> Result<()>;
    /// What `open_or_create` reports for a service of another
    /// configuration.
    fn mismatch() -> Error;
}

/// A handle in one role of a service of kind `K`.
pub(crate) trait Handle<K: Kind>: Sized {
    /// Attaches in this role to a region of the service.
    fn attach(region: Region) -> Result<Self>;
    /// Whether the service is what `config` would make.
    fn matches(&self, config: &K::Config) -> bool;
}

/// Creates a named service of `config` and attaches as `H`.
pub(crate) fn create<K: Kind, H: Handle<K>>(name: &str, config: &K::Config) -> Result<H> {
    H::attach(K::options(Some(config))?.create_with(name, |r| K::init(r, config))?)
}

/// Opens the named service and attaches as `H`.
pub(crate) fn open<K: Kind, H: Handle<K>>(name: &str) -> Result<H> {
    H::attach(K::options(None)?.open(name)?)
}

/// Opens the named service, or creates it with `config`, and attaches as
/// `H`; an existing service of another configuration is `K::mismatch()`.
pub(crate) fn open_or_create<K: Kind, H: Handle<K>>(name: &str, config: &K::Config) -> Result<H> {
    let region = K::options(Some(config))?.open_or_create_with(name, |r| K::init(r, config))?;
    let handle = H::attach(region)?;
    if !handle.matches(config) {
        return Err(K::mismatch());
    }
    Ok(handle)
}

/// Creates an anonymous service of `config` and attaches as `H`.
pub(crate) fn anonymous<K: Kind, H: Handle<K>>(config: &K::Config) -> Result<H> {
    H::attach(K::options(Some(config))?.anonymous_with(|r| K::init(r, config))?)
}
