//! [`MpmcSender`] and [`MpmcReceiver`]: a blocking channel of `T: Pod`
//! values for many senders and many receivers, threads or processes, over
//! an [`MpmcRing`]. The user-facing documentation (semantics, handles,
//! disconnect, what a killed participant leaves behind) is on
//! [`MpmcSender`], which the `channel` module re-exports.
//!
//! A named channel, its ends attached as separate processes would:
//!
//! ```
//! use shmkit::channel::{MpmcReceiver, MpmcSender, RecvError};
//! # let name = format!("/shmkit-doc-mpmc-{}", std::process::id());
//! let jobs = MpmcReceiver::<[u32; 2]>::create(&name, 16)?;
//! let helper = jobs.try_clone()?;
//! let a = MpmcSender::<[u32; 2]>::open(&name)?;
//! let b = a.try_clone()?;
//! a.send([1, 0]).unwrap();
//! b.send([2, 0]).unwrap();
//! drop((a, b));
//! let mut got = vec![jobs.recv().unwrap(), helper.recv().unwrap()];
//! got.sort();
//! assert_eq!(got, [[1, 0], [2, 0]]);
//! assert_eq!(helper.recv(), Err(RecvError::Disconnected));
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! # Layout
//!
//! The same as the SPSC channel's ([`super::Sender`]): the channel header
//! (`blocking.rs`) at offset 0 and an [`MpmcRing`] at `RING_OFFSET`
//! (1024), under a layout id of its own, so opening an SPSC channel as an
//! MPMC one (or the reverse, or with another `T`) fails with
//! [`Error::LayoutMismatch`](crate::Error::LayoutMismatch). Each end's
//! attachment table (`Side`) holds its 32 handles.

use super::blocking::{
    busy, extend, init_region, region_options, Blocked, ChannelHeader, End, PeerGone, Repair,
    RING_OFFSET,
};
use super::endpoint::endpoint_constructors;
use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::side::{Side, MAX_HANDLES};
use crate::error::Result;
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::mpmc::{Holder, MpmcRing, Participant};
use crate::sync::wait::deadline_after;
use bytemuck::Pod;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The layout id of an MPMC channel of `T` (not the SPSC channel's).
fn layout<T>() -> LayoutId {
    struct MpmcChannel<T>(PhantomData<T>);
    LayoutId::of::<MpmcChannel<T>>()
}

fn options<T: Pod + Send>(capacity: Option<usize>) -> Result<RegionOptions> {
    region_options(
        ObjectKind::MpmcChannel,
        layout::<T>(),
        capacity,
        MpmcRing::<T>::bytes_for,
    )
}

fn init<T: Pod + Send>(region: &Region, capacity: usize) -> Result<()> {
    init_region(region, |r| {
        MpmcRing::<T>::create(r, RING_OFFSET, capacity).map(drop)
    })
}

/// The channel's shared parts, borrowed for the region's lifetime; every
/// clone of a handle uses the same views.
#[derive(Clone, Copy)]
struct Attached<T: Pod> {
    header: &'static ChannelHeader,
    ring: MpmcRing<'static, T>,
    capacity: usize,
}

impl<T: Pod + Send> Attached<T> {
    /// The views of `region`'s channel, for every clone of a handle.
    ///
    /// # Safety
    ///
    /// As for [`extend`]: the caller stores the result (and every copy of
    /// it) in a handle holding an `Arc` of `region`, in a field declared
    /// before it, and never lends the views out as `'static`.
    unsafe fn new(region: &Region) -> Result<Self> {
        // SAFETY: forwarded to the caller; the reference is used here only.
        let region = unsafe { extend(region) };
        let ring = MpmcRing::open(region, RING_OFFSET)?;
        Ok(Self {
            header: region.place::<ChannelHeader>(0)?,
            capacity: ring.capacity(),
            ring,
        })
    }
}

impl<T: Pod> Attached<T> {
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The attachment table of `end`.
    fn side(&self, end: End) -> &Side {
        match end {
            End::Sender => &self.header.senders,
            End::Receiver => &self.header.receivers,
        }
    }
}

impl<T: Pod + Send> Attached<T> {
    /// Takes an entry in `end`'s table for a new handle (or fails with
    /// `ChannelBusy`); returns it. An entry taken over
    /// from a dead process first gives back every slot that process
    /// claimed under it: from now on, claims under that entry are this
    /// handle's, which is alive, so no waiter would repair them.
    fn attach(&self, end: End) -> Result<usize> {
        let (name, holder): (_, fn(Participant) -> Holder) = match end {
            End::Sender => ("sender", Holder::Producer),
            End::Receiver => ("receiver", Holder::Consumer),
        };
        let entry = self
            .side(end)
            .attach_entry(MAX_HANDLES)?
            .ok_or_else(|| busy(name))?;
        if entry.inherited {
            // SAFETY: the entry held a dead process's token, so every claim
            // under its participant id is that process's: the `Side` table
            // gives an entry to one handle at a time, and this handle, the
            // only one of this process with the id, has not operated yet.
            unsafe { self.ring.release_claims(holder(participant(entry.index))) };
        }
        Ok(entry.index)
    }
}

/// The ring participant of the handle holding `entry`.
fn participant(entry: usize) -> Participant {
    const _: () = assert!(MAX_HANDLES <= Participant::MAX_ID as usize + 1);
    Participant::new(entry as u8).unwrap_or(Participant::ANONYMOUS)
}

impl<T: Pod + Send> Repair for Attached<T> {
    /// Gives back the slot that keeps `end` waiting if the handle that
    /// holds it belongs to a dead process (or has detached, which a handle
    /// never does mid-operation).
    fn repair(&self, end: End) -> bool {
        let stall = match end {
            End::Sender => self.ring.stalled_push(),
            End::Receiver => self.ring.stalled_pop(),
        };
        let Some(stall) = stall else {
            return false;
        };
        let (side, p) = match stall.holder() {
            Holder::Producer(p) => (End::Sender, p),
            Holder::Consumer(p) => (End::Receiver, p),
        };
        // SAFETY: `holder_gone` found the holder's entry free or holding a
        // dead process's token. Handles of this process hold live tokens
        // and detach only when dropped, never mid-operation, so no thread
        // of this process holds the claim `stall` names; a later handle
        // that takes the entry claims other positions (the CAS in `repair`
        // is on the exact word seen).
        self.side(side).holder_gone(usize::from(p.id())) && unsafe { self.ring.repair(stall) }
    }
}

/// A sending end of an MPMC channel: many senders and many receivers,
/// threads or processes, over an [`MpmcRing`]; made with
/// [`mpmc_channel`] or the constructors below.
///
/// Each value sent is received exactly once, by whichever receiver claims
/// it first. Values one thread sends reach any one receiver in the order
/// they were sent; there is no order between different senders' values, and
/// none between what different receivers get.
///
/// ```
/// use shmkit::channel::{mpmc_channel, RecvError};
///
/// let (tx, rx) = mpmc_channel::<u64>(64)?;
/// // Three receiving threads, each with its own handle.
/// let mut workers = Vec::new();
/// for _ in 0..3 {
///     let rx = rx.try_clone()?;
///     workers.push(std::thread::spawn(move || {
///         let mut sum = 0;
///         loop {
///             match rx.recv() {
///                 Ok(v) => sum += v,
///                 Err(RecvError::Disconnected) => return sum,
///                 Err(e) => panic!("{e}"),
///             }
///         }
///     }));
/// }
/// drop(rx);
/// // Two sending threads sharing one handle (handles are `Sync`).
/// std::thread::scope(|s| {
///     for t in 0..2 {
///         let tx = &tx;
///         s.spawn(move || {
///             for i in 0..500 {
///                 tx.send(t * 500 + i).unwrap();
///             }
///         });
///     }
/// });
/// // The last sender leaves: the receivers drain the channel, then see
/// // `Disconnected`.
/// drop(tx);
/// let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, (0..1000).sum::<u64>());
/// # Ok::<(), shmkit::Error>(())
/// ```
///
/// # Handles
///
/// Every handle ([`create`](MpmcSender::create), [`open`](MpmcSender::open),
/// [`from_region`](MpmcSender::from_region),
/// [`from_env`](MpmcSender::from_env), [`try_clone`](MpmcSender::try_clone),
/// and the two ends [`mpmc_channel`] returns) takes one entry in its end's
/// table in the channel's shared header: at most 32 handles of each end
/// are attached at once, across all processes, and one more is refused
/// with [`Error::ChannelBusy`](crate::Error::ChannelBusy). A handle frees
/// its entry when dropped, and the entries of a process that died are
/// reused.
///
/// Handles are [`Send`] and [`Sync`]: every operation takes `&self`, the
/// ring is built for concurrent use, and a handle's own state is an atomic
/// flag. Threads may share one handle (by reference or in an `Arc`), which
/// costs no entry, or take one each with `try_clone`, which does. A clone
/// attaches a new entry and so can fail (the table is full), which is why there is `try_clone` and no
/// [`Clone`]: `clone` could only report that by panicking.
///
/// # Disconnect
///
/// Receivers get [`RecvError::Disconnected`] once every sender handle has
/// been dropped or its process has died, and every value sent has been
/// received. Senders get [`SendError::Disconnected`] once every receiver
/// handle is gone the same way. Until any handle of the other end has
/// attached, the other end is not gone but not there yet: a receiver
/// created before its senders waits for them. A clean drop is noticed by
/// every call at once; a death is noticed within a few milliseconds by the
/// blocking calls, and by the `try_` calls that find nothing to do (a
/// liveness check, at most once per 10 ms per handle). An end whose
/// attachment table was scribbled on (its count below the handles
/// attached, or past any count a healthy table reaches) is reported as
/// [`RecvError::Corrupted`] / [`SendError::Corrupted`], never as
/// disconnected.
///
/// # A participant killed mid-operation
///
/// A send claims a slot and then publishes it; a receive claims one and
/// then releases it (see [`crate::ring::mpmc`]). The claim names the
/// handle's entry, so a process killed between the two steps does not
/// wedge the channel: a call that waits on that slot checks, once per
/// probe (at most every 10 ms), whether the entry's process is alive, and
/// if it is dead hands the slot on. A dead sender's value was never sent
/// (its `send` did not return), so receivers skip the slot and receive
/// what was sent behind it; before reporting `Disconnected` they do this
/// for every slot dead senders hold. A dead receiver's value is lost with
/// it, as a job a killed worker took: at most once, never twice. A handle
/// that takes over a dead process's entry hands on that process's claims
/// when it attaches. A participant that is only descheduled between its
/// two steps delays the others until it runs again.
///
/// Handles must not be used across `fork`: a child inherits its parent's
/// entries and would be taken for dead once the parent is. Open the
/// channel again in the child.
pub struct MpmcSender<T: Pod> {
    /// Set once a call has seen every receiver gone (left or dead).
    peer_gone: PeerGone,
    shared: Attached<T>,
    /// Its entry in its end's table, which also names its claims in the
    /// ring.
    entry: usize,
    /// Shared by this handle's clones in this process; last, so dropped
    /// after every view borrowed from it.
    region: Arc<Region>,
}

/// A receiving end of an MPMC channel; see [`MpmcSender`] for how the
/// channel behaves.
///
/// `Send` and `Sync`; [`try_clone`](Self::try_clone) makes another
/// receiver (one of at most 32 per channel across all processes).
///
/// ```
/// use shmkit::channel::{mpmc_channel, RecvError, TryRecvError};
/// use std::time::Duration;
///
/// let (tx, rx) = mpmc_channel::<u32>(8)?;
/// let other = rx.try_clone()?;
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// // Each value goes to exactly one receiver, whichever asks first.
/// let a = rx.recv().unwrap();
/// let b = other.recv().unwrap();
/// assert_eq!(a + b, 3);
/// assert_eq!(other.try_recv(), Err(TryRecvError::Empty));
/// assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
/// drop(tx);
/// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct MpmcReceiver<T: Pod> {
    /// Set once a call has seen every sender gone (left or dead).
    peer_gone: PeerGone,
    shared: Attached<T>,
    /// Its entry in its end's table, which also names its claims in the
    /// ring.
    entry: usize,
    /// As for [`MpmcSender`]: last.
    region: Arc<Region>,
}

/// Creates an anonymous MPMC channel of `capacity` slots (a power of two)
/// and returns a sender and a receiver. Make more of either with
/// `try_clone`; hand one to a child with [`Region::pass_to_child`]
/// (through [`MpmcSender::region`] or [`MpmcReceiver::region`]), where
/// `from_env` attaches it. The child's handle attaches beside this
/// process's own (up to 32 an end), so keep this process's handle of that
/// end until the child says it has attached: an end all of whose handles
/// have gone reads as disconnected to the other.
///
/// ```
/// use shmkit::channel::mpmc_channel;
///
/// let (tx, rx) = mpmc_channel::<u64>(16)?;
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let rx = rx.try_clone()?;
///         Ok(std::thread::spawn(move || rx.iter().sum::<u64>()))
///     })
///     .collect::<Result<_, shmkit::Error>>()?;
/// drop(rx);
/// for job in 1..=100 {
///     tx.send(job).unwrap();
/// }
/// drop(tx); // the workers drain the queue, then their iterators end
/// let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, 5050);
/// # Ok::<(), shmkit::Error>(())
/// ```
pub fn mpmc_channel<T: Pod + Send>(capacity: usize) -> Result<(MpmcSender<T>, MpmcReceiver<T>)> {
    let region = options::<T>(Some(capacity))?.anonymous_with(|r| init::<T>(r, capacity))?;
    let twin = RegionOptions::new()
        .layout(layout::<T>())
        .from_fd(crate::sys::fd::dup(region.as_fd())?)?;
    Ok((MpmcSender::attach(region)?, MpmcReceiver::attach(twin)?))
}

endpoint_constructors!(MpmcSender, layout: layout, options: options, init: init);
endpoint_constructors!(MpmcReceiver, layout: layout, options: options, init: init);

impl<T: Pod + Send> MpmcSender<T> {
    fn attach(region: Region) -> Result<Self> {
        // SAFETY: `shared` goes into `Self` beside `region` (as an `Arc`),
        // whose field comes last; clones copy both together; the handle
        // lends the views only through `&self`.
        let shared = unsafe { Attached::<T>::new(&region)? };
        Ok(Self {
            peer_gone: PeerGone::default(),
            entry: shared.attach(End::Sender)?,
            shared,
            region: Arc::new(region),
        })
    }

    /// Another sender on the same channel, attached as a handle of its own
    /// (the channel stays connected while any sender is attached).
    ///
    /// Fails with [`Error::ChannelBusy`](crate::Error::ChannelBusy) if 32 senders are attached
    /// already, across all processes.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            peer_gone: PeerGone::with(self.peer_gone.get()),
            entry: self.shared.attach(End::Sender)?,
            shared: self.shared,
            region: Arc::clone(&self.region),
        })
    }

    /// Sends `value`; a failure becomes the caller's error through `err`
    /// right here, so that no result is converted (and a large `T`
    /// copied) on the way out.
    #[inline]
    fn send_inner<E>(
        &self,
        value: T,
        deadline: Option<Instant>,
        err: impl FnOnce(Blocked, T) -> E,
    ) -> Result<(), E> {
        let ring = self.shared.ring;
        self.shared
            .header
            .block_on_repairing(End::Sender, deadline, &self.shared, || {
                ring.push_ref_as(participant(self.entry), &value)
            })
            .map_err(|b| err(self.peer_gone.note(b), value))
    }

    /// Sends `value`, waiting while the channel is full. Fails with
    /// [`SendError::Disconnected`] once every receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_inner(value, None, SendError::from_blocked)
    }

    /// Sends `value` if there is room now; [`TrySendError::Full`] otherwise
    /// (also, rarely, when many senders contend for the same slots). Notices
    /// receivers that all left cleanly at once; their deaths when the
    /// channel is full (a liveness check, at most once per 10 ms per
    /// handle) or once a blocking call has seen them.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let ring = self.shared.ring;
        self.shared
            .header
            .try_send_repairing(&self.peer_gone, value, &self.shared, || {
                ring.push_ref_as(participant(self.entry), &value)
            })
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline_inner(value, deadline_after(timeout))
    }

    /// Sends `value`, waiting until `deadline` at the latest.
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline_inner(value, Some(deadline))
    }

    fn send_deadline_inner(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send_inner(value, deadline, SendTimeoutError::from_blocked)
    }
}

impl<T: Pod + Send> MpmcReceiver<T> {
    fn attach(region: Region) -> Result<Self> {
        // SAFETY: as in `MpmcSender::attach`.
        let shared = unsafe { Attached::<T>::new(&region)? };
        Ok(Self {
            peer_gone: PeerGone::default(),
            entry: shared.attach(End::Receiver)?,
            shared,
            region: Arc::new(region),
        })
    }

    /// Another receiver on the same channel, attached as a handle of its
    /// own (senders stay connected while any receiver is attached).
    ///
    /// Fails with [`Error::ChannelBusy`](crate::Error::ChannelBusy) if 32 receivers are attached
    /// already, across all processes.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            peer_gone: PeerGone::with(self.peer_gone.get()),
            entry: self.shared.attach(End::Receiver)?,
            shared: self.shared,
            region: Arc::clone(&self.region),
        })
    }

    /// Receives a value; a failure becomes the caller's error through
    /// `err` right here (see `MpmcSender::send_inner`).
    #[inline]
    fn recv_inner<E>(
        &self,
        deadline: Option<Instant>,
        err: impl FnOnce(Blocked) -> E,
    ) -> Result<T, E> {
        let ring = self.shared.ring;
        // The value goes straight to `out`, so that a large `T` is written
        // once, not moved through the blocking loop's nested results.
        let mut out = T::zeroed();
        self.shared
            .header
            .block_on_repairing(End::Receiver, deadline, &self.shared, || {
                ring.pop_into_as(participant(self.entry), &mut out)
            })
            .map_err(|b| err(self.peer_gone.note(b)))?;
        Ok(out)
    }

    /// Receives a value, waiting while the channel is empty. Fails with
    /// [`RecvError::Disconnected`] once every sender is gone and everything
    /// they sent has been received (by this receiver or another).
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_inner(None, RecvError::from_blocked)
    }

    /// Receives a value if one is there now; [`TryRecvError::Empty`] otherwise
    /// (also, rarely, when many receivers contend for the same slots).
    /// Notices senders that all left cleanly at once; their deaths when the
    /// channel is empty (a liveness check, at most once per 10 ms per
    /// handle) or once a blocking call has seen them.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let ring = self.shared.ring;
        let mut out = T::zeroed();
        self.shared
            .header
            .try_recv_repairing(&self.peer_gone, &self.shared, || {
                ring.pop_into_as(participant(self.entry), &mut out)
            })?;
        Ok(out)
    }

    /// Receives a value, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_inner(deadline_after(timeout), RecvTimeoutError::from_blocked)
    }

    /// Receives a value, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_inner(Some(deadline), RecvTimeoutError::from_blocked)
    }
}

impl<T: Pod> Drop for MpmcSender<T> {
    fn drop(&mut self) {
        self.shared.header.senders.detach(self.entry);
        // Wake receivers sleeping on an empty ring so they see who left.
        self.shared.header.data.notify();
    }
}

impl<T: Pod> Drop for MpmcReceiver<T> {
    fn drop(&mut self) {
        self.shared.header.receivers.detach(self.entry);
        self.shared.header.space.notify();
    }
}

/// Handles may be shared between threads (see the module documentation).
#[cfg(not(shmkit_loom))]
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<MpmcSender<u64>>();
    send_sync::<MpmcReceiver<[u8; 64]>>();
};
