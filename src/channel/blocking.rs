//! The shared header of every channel and the blocking loops around a
//! ring's non-blocking operations.
//!
//! ```text
//! offset  field       written by                 read by
//!      0  data        receivers (to sleep)       senders, after each send
//!    128  space       senders (to sleep)         receivers, after each receive
//!    256  senders     senders (attach/detach)    receivers, on slow paths
//!    512  receivers   receivers                  senders, on slow paths
//!   1024  the ring
//! ```
//!
//! Each attachment table (`Side`, `side.rs`) holds `attached` at +0,
//! `count` at +4, its 32 entries at +8 and `epoch` at +136.
//!
//! A blocking call tries its ring operation, spins a little retrying it,
//! then sleeps on its [`Signal`] in slices of `PROBE_INTERVAL`; between
//! slices it checks whether the other side is still there (attached and
//! alive; a table whose count contradicts its entries is `Corrupted`,
//! never a clean end) and, over a ring where a participant can hold a
//! slot (MPMC), has [`Repair`] give back a slot whose holder died. A
//! receiver reports `Disconnected` only once the ring is empty (past every
//! slot a dead sender held), so nothing sent before the last sender left
//! is lost.

use super::error::{TryRecvError, TrySendError};
use super::side::{Side, SideState};
use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::error::{Error, Result};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::{Corrupted, Miss};
use crate::sync::wait::{expired, probe_slice, spin_for, PROBE_INTERVAL};
use std::time::Instant;

/// Where the ring starts in a channel region's data.
pub(crate) const RING_OFFSET: usize = 1024;

/// The header in front of every channel's ring.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct ChannelHeader {
    /// Receivers sleep here when the ring is empty.
    pub(crate) data: CachePadded<Signal>,
    /// Senders sleep here when the ring is full.
    pub(crate) space: CachePadded<Signal>,
    pub(crate) senders: CachePadded<Side>,
    pub(crate) receivers: CachePadded<Side>,
}

// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for ChannelHeader {}

#[cfg(not(shmkit_loom))]
const _: () = assert!(core::mem::size_of::<ChannelHeader>() <= RING_OFFSET);

/// Which end a blocking call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Sender,
    Receiver,
}

/// Why a blocking call gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    Timeout,
    Disconnected,
    Corrupted(&'static str),
}

impl ChannelHeader {
    fn mine(&self, end: End) -> (&Signal, &Signal, &Side) {
        match end {
            // A sender waits on `space`, wakes receivers through `data`,
            // and watches the receivers' side.
            End::Sender => (&self.space, &self.data, &self.receivers),
            End::Receiver => (&self.data, &self.space, &self.senders),
        }
    }

    /// Runs `attempt` (a ring operation whose error says
    /// [`Miss::WouldBlock`] when the ring is full or empty) until it
    /// succeeds, the deadline passes, or the other end is gone; wakes the
    /// other end after a success.
    #[inline]
    pub(crate) fn block_on<R, E: Into<Miss>>(
        &self,
        end: End,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, Blocked> {
        self.block_on_repairing(end, deadline, &NoRepair, attempt)
    }

    /// [`block_on`](Self::block_on) over a ring in which a dead
    /// participant can hold a slot: while it waits, it has `repair` give
    /// back what keeps it waiting, once per probe slice.
    #[inline]
    pub(crate) fn block_on_repairing<R, E: Into<Miss>>(
        &self,
        end: End,
        deadline: Option<Instant>,
        repair: &impl Repair,
        mut attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, Blocked> {
        let (_, theirs, peers) = self.mine(end);
        // Sending into a channel every receiver left cleanly is pointless.
        if end == End::Sender && peers.all_detached() {
            if let Some(b) = left(peers) {
                return Err(b);
            }
        }
        match outcome(attempt()) {
            Some(r) => r.inspect(|_| theirs.notify()),
            None => self.block_slow(end, deadline, repair, attempt),
        }
    }

    #[cold]
    fn block_slow<R, E: Into<Miss>>(
        &self,
        end: End,
        deadline: Option<Instant>,
        repair: &impl Repair,
        mut attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, Blocked> {
        let (sleep_on, theirs, peers) = self.mine(end);
        let mut try_once = || outcome(attempt());
        if let Some(r) = spin_for(&mut try_once) {
            return r.inspect(|_| theirs.notify());
        }
        loop {
            match peers.state() {
                SideState::Closed => {
                    // Whatever was sent before the last sender left is
                    // still delivered (past slots dead senders held);
                    // after that, nothing more will come.
                    let drained = drain(end, repair, &mut try_once);
                    return match drained {
                        Some(r) => r.inspect(|_| theirs.notify()),
                        None => Err(Blocked::Disconnected),
                    };
                }
                SideState::Corrupted(w) => return Err(Blocked::Corrupted(w)),
                SideState::Idle | SideState::Open => {}
            }
            if expired(deadline) {
                return Err(Blocked::Timeout);
            }
            if repair.repair(end) {
                // Others of this end may wait on the same slot.
                sleep_on.notify();
                if let Some(r) = try_once() {
                    return r.inspect(|_| theirs.notify());
                }
            }
            if let Some(r) = sleep_on.wait_deadline(probe_slice(deadline), &mut try_once) {
                return r.inspect(|_| theirs.notify());
            }
        }
    }
}

/// What a hot path does once [`Side::all_detached`] said `peers` may all
/// have left: asks [`Side::state`], which checks the count against the
/// entries. `Disconnected` for a clean end, `Corrupted` for a table that
/// contradicts itself, `None` (carry on) if somebody is there after all.
#[cold]
fn left(peers: &Side) -> Option<Blocked> {
    match peers.state() {
        SideState::Closed => Some(Blocked::Disconnected),
        SideState::Corrupted(w) => Some(Blocked::Corrupted(w)),
        SideState::Idle | SideState::Open => None,
    }
}

/// Slots a dead participant holds that [`drain`] gives back before a
/// receiver reports `Disconnected`; a bound, so that a peer that keeps
/// writing claims cannot keep a receiver here.
const DRAIN_REPAIRS: usize = 1024;

/// The last attempts of an end whose peers are all gone: a receiver
/// tries once more after each slot a dead participant held is given
/// back; a sender tries once.
fn drain<R>(
    end: End,
    repair: &impl Repair,
    try_once: &mut impl FnMut() -> Option<Result<R, Blocked>>,
) -> Option<Result<R, Blocked>> {
    for _ in 0..DRAIN_REPAIRS {
        if let Some(r) = try_once() {
            return Some(r);
        }
        if end == End::Sender || !repair.repair(end) {
            return None;
        }
    }
    None
}

/// What a blocking or `try_` call can do about a ring that stays full or
/// empty because a dead participant holds a slot: the MPMC ring's claims
/// name their holder, so its channel gives such slots back. The SPSC and
/// byte rings hand over by one index store, so nothing is ever held.
pub(crate) trait Repair {
    /// Gives back the slot that keeps `end` waiting, if its holder is
    /// dead; whether anything changed.
    fn repair(&self, end: End) -> bool;
}

/// Rings in which nobody holds a slot.
pub(crate) struct NoRepair;

impl Repair for NoRepair {
    fn repair(&self, _: End) -> bool {
        false
    }
}

impl ChannelHeader {
    /// One non-blocking send: `attempt` pushes `value` (given back on
    /// failure); receivers known gone make it `Disconnected`, and so do
    /// receivers found dead when the ring is full; a success wakes
    /// sleeping receivers.
    #[inline]
    pub(crate) fn try_send<V, E: Into<Miss>>(
        &self,
        gone: &PeerGone,
        value: V,
        attempt: impl FnMut() -> Result<(), E>,
    ) -> Result<(), TrySendError<V>> {
        self.try_send_repairing(gone, value, &NoRepair, attempt)
    }

    /// [`try_send`](Self::try_send) over a ring in which a dead
    /// participant can hold a slot: a full ring is also probed (at most
    /// once per [`PROBE_INTERVAL`] per handle) for a slot to give back,
    /// and tried again if one was.
    #[inline]
    pub(crate) fn try_send_repairing<V, E: Into<Miss>>(
        &self,
        gone: &PeerGone,
        value: V,
        repair: &impl Repair,
        mut attempt: impl FnMut() -> Result<(), E>,
    ) -> Result<(), TrySendError<V>> {
        if let Some(b) = gone.seen(&self.receivers) {
            return Err(match b {
                Blocked::Corrupted(w) => TrySendError::Corrupted(w),
                _ => TrySendError::Disconnected(value),
            });
        }
        let mut r = attempt().map_err(Into::into);
        if r == Err(Miss::WouldBlock) {
            match gone.probe(&self.receivers, || repair.repair(End::Sender)) {
                Probe::Gone => return Err(TrySendError::Disconnected(value)),
                Probe::Corrupted(w) => return Err(TrySendError::Corrupted(w)),
                Probe::Repaired => r = attempt().map_err(Into::into),
                Probe::Nothing => {}
            }
        }
        match r {
            Ok(()) => {
                self.data.notify();
                Ok(())
            }
            Err(Miss::WouldBlock) => Err(TrySendError::Full(value)),
            Err(Miss::Corrupted(w)) => Err(TrySendError::Corrupted(w)),
        }
    }

    /// One non-blocking receive: on `Empty` with the senders known gone (or
    /// found dead) it tries once more (a sender may have sent just before
    /// leaving), then reports `Disconnected`; a success wakes sleeping
    /// senders.
    #[inline]
    pub(crate) fn try_recv<R, E: Into<Miss>>(
        &self,
        gone: &PeerGone,
        attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, TryRecvError> {
        self.try_recv_repairing(gone, &NoRepair, attempt)
    }

    /// [`try_recv`](Self::try_recv) over a ring in which a dead
    /// participant can hold a slot: an empty ring is also probed for a
    /// slot to give back, and tried again if one was; senders found gone
    /// first have every slot they held given back, so that what they sent
    /// behind it is still received.
    #[inline]
    pub(crate) fn try_recv_repairing<R, E: Into<Miss>>(
        &self,
        gone: &PeerGone,
        repair: &impl Repair,
        mut attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, TryRecvError> {
        // Matched as it comes (see `outcome`).
        match attempt() {
            Ok(r) => {
                self.space.notify();
                Ok(r)
            }
            Err(e) => match e.into() {
                Miss::WouldBlock => self.try_recv_empty(gone, repair, attempt),
                Miss::Corrupted(w) => Err(TryRecvError::Corrupted(w)),
            },
        }
    }

    /// The rest of [`try_recv_repairing`](Self::try_recv_repairing) once
    /// the ring was found empty.
    #[cold]
    fn try_recv_empty<R, E: Into<Miss>>(
        &self,
        gone: &PeerGone,
        repair: &impl Repair,
        mut attempt: impl FnMut() -> Result<R, E>,
    ) -> Result<R, TryRecvError> {
        let r = match gone.probe(&self.senders, || repair.repair(End::Receiver)) {
            Probe::Gone => {
                let mut once = || outcome(attempt());
                match drain(End::Receiver, repair, &mut once) {
                    Some(Ok(r)) => Ok(r),
                    Some(Err(Blocked::Corrupted(w))) => Err(TryRecvError::Corrupted(w)),
                    Some(Err(_)) | None => Err(TryRecvError::Disconnected),
                }
            }
            Probe::Corrupted(w) => return Err(TryRecvError::Corrupted(w)),
            Probe::Repaired => match outcome(attempt()) {
                Some(Ok(r)) => Ok(r),
                Some(Err(Blocked::Corrupted(w))) => Err(TryRecvError::Corrupted(w)),
                Some(Err(_)) | None => Err(TryRecvError::Empty),
            },
            Probe::Nothing => Err(TryRecvError::Empty),
        };
        r.inspect(|_| self.space.notify())
    }
}

/// What a ring operation's result means for a blocking call: `None` to
/// keep waiting (full or empty), `Some` to return.
#[inline]
fn outcome<R, E: Into<Miss>>(r: Result<R, E>) -> Option<Result<R, Blocked>> {
    // Matched as it comes, not converted first: converting the result
    // would move a large `R` once more on the way out.
    match r {
        Ok(r) => Some(Ok(r)),
        Err(e) => match e.into() {
            Miss::WouldBlock => None,
            Miss::Corrupted(w) => Some(Err(Blocked::Corrupted(w))),
        },
    }
}

/// A handle's memory that the other end has gone (left or died), so that
/// its `try_` calls report what a blocking call found out, and when a
/// `try_` call that would block may next check whether the other end's
/// processes are alive. Atomics (in this process's memory), so handles
/// that threads share may hold it.
#[derive(Debug, Default)]
pub(crate) struct PeerGone {
    gone: AtomicU32,
    /// Nanoseconds after [`epoch`] before which no `try_` call probes.
    next_probe: AtomicU64,
}

impl PeerGone {
    /// A memo that starts out knowing `gone` (a clone inherits its
    /// original's).
    pub(crate) fn with(gone: bool) -> Self {
        Self {
            gone: AtomicU32::new(u32::from(gone)),
            next_probe: AtomicU64::new(0),
        }
    }

    /// Whether a call has seen the other end gone.
    pub(crate) fn get(&self) -> bool {
        self.gone.load(Ordering::Relaxed) != 0
    }

    /// Passes `b` through, remembering a disconnect.
    pub(crate) fn note(&self, b: Blocked) -> Blocked {
        if b == Blocked::Disconnected {
            self.gone.store(1, Ordering::Relaxed);
        }
        b
    }

    /// Whether the other end is known gone: seen by an earlier call, or
    /// every handle of `peers` detached cleanly (the one-load hint,
    /// confirmed against the entries); or `peers`' table is corrupted.
    #[inline]
    pub(crate) fn seen(&self, peers: &Side) -> Option<Blocked> {
        if self.get() {
            Some(Blocked::Disconnected)
        } else if peers.all_detached() {
            left(peers)
        } else {
            None
        }
    }

    /// For a `try_` call that would block: whether the other end is gone,
    /// as [`seen`](Self::seen) says or, at most once per
    /// [`PROBE_INTERVAL`] for this handle, as the liveness of `peers`'
    /// processes says (a few system calls); in that same probe, if the
    /// other end is there, `repair` may give back a slot a dead
    /// participant held. So a loop of `try_` calls learns of a killed peer
    /// as a blocking call would, without paying for a probe on every call.
    #[cold]
    pub(crate) fn probe(&self, peers: &Side, repair: impl FnOnce() -> bool) -> Probe {
        match self.seen(peers) {
            Some(Blocked::Corrupted(w)) => return Probe::Corrupted(w),
            Some(_) => return Probe::Gone,
            None => {}
        }
        let now = epoch().elapsed().as_nanos() as u64;
        if now < self.next_probe.load(Ordering::Relaxed) {
            return Probe::Nothing;
        }
        let interval = PROBE_INTERVAL.as_nanos() as u64;
        self.next_probe.store(now + interval, Ordering::Relaxed);
        match peers.state() {
            SideState::Closed => {
                self.gone.store(1, Ordering::Relaxed);
                return Probe::Gone;
            }
            SideState::Corrupted(w) => return Probe::Corrupted(w),
            SideState::Idle | SideState::Open => {}
        }
        if repair() {
            Probe::Repaired
        } else {
            Probe::Nothing
        }
    }
}

/// What [`PeerGone::probe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The other end is gone.
    Gone,
    /// The other end's attachment table is corrupted.
    Corrupted(&'static str),
    /// A slot a dead participant held was given back: worth trying again.
    Repaired,
    /// Nothing new.
    Nothing,
}

/// A fixed instant of this process, for times kept as nanoseconds.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `region`, borrowed for `'static`, to build views of its mapping that a
/// handle stores next to the `Region` itself.
///
/// # Safety
///
/// The caller
/// - uses the returned reference only while `region` is borrowed, to build
///   views that point into the mapping and never at the `Region` value
///   (the ring views and `place` references qualify): the mapping stays
///   put when the `Region` moves, and lives until it drops;
/// - keeps every such view from outliving the `Region`: it stores them in
///   the handle that owns the `Region` (or an `Arc` of it), in fields
///   declared before it (so dropped first), and lends them out only for
///   borrows of that handle, never as `'static`.
pub(crate) unsafe fn extend(region: &Region) -> &'static Region {
    // SAFETY: the reference is valid now; the caller keeps every use of it,
    // and of what is built from it, within the `Region`'s life.
    unsafe { &*(region as *const Region) }
}

/// The options of a channel region with `layout`; with a capacity, sized
/// for the header and a ring of `ring_bytes(capacity)` bytes.
pub(crate) fn region_options(
    kind: ObjectKind,
    layout: LayoutId,
    capacity: Option<usize>,
    ring_bytes: impl FnOnce(usize) -> Result<usize>,
) -> Result<RegionOptions> {
    let opts = RegionOptions::new().layout(layout).kind(kind);
    Ok(match capacity {
        Some(c) => opts.size(RING_OFFSET + ring_bytes(c)?),
        None => opts,
    })
}

/// Lays out a fresh channel region: the header is valid zeroed (this
/// checks it fits); `create_ring` writes the ring's own header at
/// [`RING_OFFSET`].
pub(crate) fn init_region(
    region: &Region,
    create_ring: impl FnOnce(&Region) -> Result<()>,
) -> Result<()> {
    region.place::<ChannelHeader>(0)?;
    create_ring(region)
}

pub(crate) fn busy(end: &'static str) -> Error {
    Error::ChannelBusy { end }
}

pub(crate) fn ring_open_error(Corrupted(what): Corrupted) -> Error {
    Error::Corrupted { what }
}
