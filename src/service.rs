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

use crate::blocks::ShmSafe;
use crate::error::{Error, Result};
use crate::pool::Corrupted;
use crate::primitive::{AtomicU32, Ordering};
use crate::region::{LayoutId, Region, RegionOptions};
use crate::sync::owner::{self, Liveness, Token};
use crate::sync::wait::{coarse_now, PROBE_INTERVAL};
use core::cell::Cell;
use core::time::Duration;

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

/// Whether the participant whose token `t` the service word `w` holds
/// (a role's word: an entry's, a publisher's, a server's) is dead;
/// [`Corrupted`]`(what)` for a value that names no participant.
pub(crate) fn dead(w: &AtomicU32, t: u32, what: &'static str) -> Result<bool, Corrupted> {
    if !Token::is_well_formed(t) {
        return Err(Corrupted(what));
    }
    match owner::liveness(w, Token::from_raw(t)) {
        Liveness::Alive => Ok(false),
        Liveness::Dead => Ok(true),
        Liveness::Invalid => Err(Corrupted(what)),
    }
}

/// What one attempt to take a role's word (a publisher's, a server's)
/// found.
pub(crate) enum Take {
    /// The word is this process's now.
    Taken,
    /// A live handle holds the role.
    Busy,
    /// A live peer holds the word to clean up after a dead holder, for
    /// the length of a sweep.
    Cleaning,
}

/// How long an attach waits for a live peer cleaning up after a dead
/// holder of the role's word before it gives up with
/// [`Error::ServiceBusy`].
pub(crate) const ATTACH_PATIENCE: Duration = Duration::from_secs(1);

/// Takes a role's word with `attempt`, waiting (up to
/// [`ATTACH_PATIENCE`], polling) while a cleaner holds it; whether it
/// did (`false`: a live holder has the role, or the cleaner took too
/// long).
pub(crate) fn take_role(mut attempt: impl FnMut() -> Result<Take>) -> Result<bool> {
    let deadline = std::time::Instant::now() + ATTACH_PATIENCE;
    loop {
        match attempt()? {
            Take::Taken => return Ok(true),
            Take::Busy => return Ok(false),
            Take::Cleaning if std::time::Instant::now() >= deadline => return Ok(false),
            Take::Cleaning => std::thread::sleep(Duration::from_micros(100)),
        }
    }
}

/// A peer's token last found alive, trusted for [`PROBE_INTERVAL`]: a
/// hot path that must not send to a dead peer asks the kernel (a system
/// call: the peer's slot lock) at most that often per peer, and
/// otherwise only loads the peer's word. A peer that dies is noticed at
/// most that late; a caller that must know at once asks [`dead`].
///
/// [`PROBE_INTERVAL`]: crate::sync::wait::PROBE_INTERVAL
#[derive(Debug, Default)]
pub(crate) struct Seen {
    token: Cell<u32>,
    until: Cell<Duration>,
}

impl Seen {
    /// The token in `w` if it names a live participant, as far as the
    /// last look within the interval knew; `None` for none, a dead one,
    /// or garbage.
    pub(crate) fn live(&self, w: &AtomicU32) -> Option<u32> {
        let t = w.load(Ordering::Acquire);
        if t == 0 {
            return None;
        }
        let now = coarse_now();
        if t == self.token.get() && now < self.until.get() {
            return Some(t);
        }
        let alive =
            Token::is_well_formed(t) && owner::liveness(w, Token::from_raw(t)) == Liveness::Alive;
        self.token.set(if alive { t } else { 0 });
        self.until.set(now + PROBE_INTERVAL);
        alive.then_some(t)
    }

    /// Forgets the last look (a caller that found the peer dead).
    pub(crate) fn forget(&self) {
        self.token.set(0);
    }
}

/// Whether the word `w` is held, by a participant that is dead (0: free,
/// not held).
pub(crate) fn held_by_dead(w: &AtomicU32, what: &'static str) -> Result<bool, Corrupted> {
    match w.load(Ordering::Acquire) {
        0 => Ok(false),
        t => dead(w, t, what),
    }
}

/// Takes the word `w` for `me`: from free, or (if `dead_too`) from a dead
/// holder, with one CAS on the exact value seen. `Some(inherited)` (was
/// it a dead holder's) if it did; `None` if a live holder has it or
/// another took it first.
pub(crate) fn take(
    w: &AtomicU32,
    me: Token,
    dead_too: bool,
    what: &'static str,
) -> Result<Option<bool>, Corrupted> {
    let t = w.load(Ordering::Acquire);
    if t != 0 && !(dead_too && dead(w, t, what)?) {
        return Ok(None);
    }
    Ok(
        w.compare_exchange(t, me.raw(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            .then_some(t != 0),
    )
}

/// What a service's header must say before anything else is read: the
/// region's layout id, then (copied out of the header) its magic and
/// format version; `bad` names the two failures.
pub(crate) struct Expect {
    pub(crate) layout: LayoutId,
    pub(crate) magic: u64,
    pub(crate) version: u64,
    pub(crate) bad: [&'static str; 2],
}

impl Expect {
    /// Checks `region` against these and places its header `T` at offset
    /// 0; `words` reads the header's magic and version words.
    pub(crate) fn header<'r, T: ShmSafe>(
        &self,
        region: &'r Region,
        words: impl FnOnce(&T) -> (u64, u64),
    ) -> Result<&'r T> {
        if region.layout() != self.layout {
            return Err(Error::LayoutMismatch {
                found: region.layout().to_raw(),
                expected: self.layout.to_raw(),
            });
        }
        let header = region.place::<T>(0)?;
        let (magic, version) = words(header);
        let [no_magic, no_version] = self.bad;
        if magic != self.magic {
            return Err(Error::Corrupted { what: no_magic });
        }
        if version != self.version {
            return Err(Error::Corrupted { what: no_version });
        }
        Ok(header)
    }
}
