//! [`Sender`] and [`Receiver`]: a blocking, typed channel of `T: Pod`
//! values over an [`SpscRing`], between two processes (or threads).
//!
//! One sender and one receiver at a time: a second `open` of the same end
//! while the first is attached (and alive) is refused with
//! [`Error::ChannelBusy`]. Either end may create the channel, by name or
//! anonymously; the other opens it.

use super::blocking::{
    busy, extend, init_region, region_options, ring_open_error, Blocked, ChannelHeader, End,
    PeerGone, RING_OFFSET,
};
use super::endpoint::endpoint_constructors;
use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::error::Result;
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::spsc::{Consumer, Producer, SpscRing};
use crate::ring::Miss;
use crate::sync::wait::deadline_after;
use bytemuck::Pod;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The layout id of a typed channel of `T`.
fn layout<T>() -> LayoutId {
    struct TypedChannel<T>(PhantomData<T>);
    LayoutId::of::<TypedChannel<T>>()
}

fn options<T: Pod + Send>(capacity: Option<usize>) -> Result<RegionOptions> {
    region_options(
        ObjectKind::SpscChannel,
        layout::<T>(),
        capacity,
        SpscRing::<T>::bytes_for,
    )
}

fn init<T: Pod + Send>(region: &Region, capacity: usize) -> Result<()> {
    init_region(region, |r| {
        SpscRing::<T>::create(r, RING_OFFSET, capacity).map(drop)
    })
}

/// The channel's shared parts, borrowed for the region's lifetime.
struct Attached<T: Pod> {
    header: &'static ChannelHeader,
    ring: SpscRing<'static, T>,
}

impl<T: Pod + Send> Attached<T> {
    /// The views of `region`'s channel.
    ///
    /// # Safety
    ///
    /// As for [`extend`]: the caller stores the result in the handle that
    /// owns `region`, in a field declared before it, and never lends the
    /// views out as `'static`.
    unsafe fn new(region: &Region) -> Result<Self> {
        // SAFETY: forwarded to the caller; the reference is used here only.
        let region = unsafe { extend(region) };
        Ok(Self {
            header: region.place::<ChannelHeader>(0)?,
            ring: SpscRing::open(region, RING_OFFSET)?,
        })
    }
}

impl<T: Pod> Attached<T> {
    fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

/// The sending end of a typed channel.
///
/// ```
/// use shmkit::channel::{channel, RecvError};
///
/// let (tx, rx) = channel::<u64>(1024)?;
/// std::thread::spawn(move || {
///     for i in 0..100 {
///         tx.send(i).unwrap();
///     }
/// });
/// let mut sum = 0;
/// loop {
///     match rx.recv() {
///         Ok(v) => sum += v,
///         Err(RecvError::Disconnected) => break,
///         Err(e) => panic!("{e}"),
///     }
/// }
/// assert_eq!(sum, 4950);
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct Sender<T: Pod> {
    producer: std::cell::RefCell<Producer<'static, T>>,
    /// Set once a call has seen every receiver gone (left or dead).
    peer_gone: PeerGone,
    shared: Attached<T>,
    entry: usize,
    region: Region,
}

/// The receiving end of a typed channel; see [`Sender`].
///
/// Values come one at a time ([`recv`](Self::recv)), in batches into a
/// buffer ([`recv_slice`](Self::recv_slice)), or from an iterator
/// ([`iter`](Self::iter)) that ends once the sender is gone and everything
/// it sent has been received.
///
/// ```
/// use shmkit::channel::{channel, TryRecvError};
///
/// let (tx, rx) = channel::<[f32; 2]>(16)?;
/// tx.send_all(&[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]).unwrap();
/// assert_eq!(rx.recv(), Ok([0.0, 1.0]));
/// let mut batch = [[0.0; 2]; 8];
/// assert_eq!(rx.recv_slice(&mut batch), Ok(2)); // all that is there
/// assert_eq!(batch[..2], [[2.0, 3.0], [4.0, 5.0]]);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.iter().count(), 0); // drained, sender gone: the iterator ends
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct Receiver<T: Pod> {
    consumer: std::cell::RefCell<Consumer<'static, T>>,
    /// Set once a call has seen every sender gone (left or dead).
    peer_gone: PeerGone,
    shared: Attached<T>,
    entry: usize,
    region: Region,
}

/// Creates an anonymous channel of `capacity` slots (a power of two) and
/// returns both ends.
///
/// To hand one end to a child, have it inherit the region with
/// [`Region::pass_to_child`] (through [`Sender::region`] or
/// [`Receiver::region`]: both ends map the same memory), drop that end
/// here before the child attaches it with [`from_env`](Receiver::from_env)
/// (an end admits one handle at a time), and use the end kept here only
/// once the child says it has attached: until then the dropped end reads
/// as gone, and this end's calls would return `Disconnected`. The crate
/// documentation has the whole exchange; a named channel
/// ([`Sender::open_or_create`]) needs none of it.
///
/// ```
/// use shmkit::channel::channel;
///
/// let (tx, rx) = channel::<u64>(4)?;
/// assert_eq!(tx.capacity(), 4);
/// assert!(tx.region().name().is_none()); // anonymous: nothing in /dev/shm
/// tx.send(1).unwrap();
/// assert_eq!(rx.recv(), Ok(1));
/// assert!(channel::<u64>(3).is_err()); // not a power of two
/// # Ok::<(), shmkit::Error>(())
/// ```
pub fn channel<T: Pod + Send>(capacity: usize) -> Result<(Sender<T>, Receiver<T>)> {
    let region = options::<T>(Some(capacity))?.anonymous_with(|r| init::<T>(r, capacity))?;
    let twin = RegionOptions::new()
        .layout(layout::<T>())
        .from_fd(crate::sys::fd::dup(region.as_fd())?)?;
    Ok((Sender::attach(region)?, Receiver::attach(twin)?))
}

endpoint_constructors!(Sender, layout: layout, options: options, init: init);
endpoint_constructors!(Receiver, layout: layout, options: options, init: init);

impl<T: Pod + Send> Sender<T> {
    fn attach(region: Region) -> Result<Self> {
        // SAFETY: `shared` goes into `Self` beside `region`, whose field
        // comes last; the handle lends the views only through `&self`.
        let shared = unsafe { Attached::<T>::new(&region)? };
        let entry = shared
            .header
            .senders
            .attach(1)?
            .ok_or_else(|| busy("sender"))?;
        // SAFETY: `attach(1)` above admitted this handle as the only live
        // sender across all processes (the `Side` table holds one entry per
        // live handle), the handle is not `Sync`, and it detaches only when
        // dropped, with the producer; so no second producer of this ring
        // exists while this one lives. The ring's memory is this channel's
        // region, which the channel writes only through its ring handles.
        let producer = match unsafe { shared.ring.producer() } {
            Ok(p) => p,
            Err(e) => {
                shared.header.senders.detach(entry);
                return Err(ring_open_error(e));
            }
        };
        Ok(Self {
            producer: std::cell::RefCell::new(producer),
            peer_gone: PeerGone::default(),
            shared,
            entry,
            region,
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
        let mut p = self.producer.borrow_mut();
        self.shared
            .header
            .block_on(End::Sender, deadline, || p.push_ref(&value))
            .map_err(|b| err(self.peer_gone.note(b), value))
    }

    /// Sends `value`, waiting while the channel is full. Fails with
    /// [`SendError::Disconnected`] once the receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_inner(value, None, SendError::from_blocked)
    }

    /// Sends `value` if there is room now. Notices a receiver that left
    /// cleanly at once; one that died when the channel is full (a liveness
    /// check, at most once per 10 ms per handle) or once a blocking call
    /// has seen it.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut p = self.producer.borrow_mut();
        self.shared
            .header
            .try_send(&self.peer_gone, value, || p.push_ref(&value))
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

    /// Sends `values` in order; on failure, the error and how many were
    /// sent.
    #[inline]
    fn send_all_inner(
        &self,
        values: &[T],
        deadline: Option<Instant>,
    ) -> Result<(), (Blocked, usize)> {
        let mut p = self.producer.borrow_mut();
        let mut sent = 0;
        while sent < values.len() {
            let rest = &values[sent..];
            let n = self
                .shared
                .header
                .block_on(End::Sender, deadline, || match p.push_slice(rest) {
                    Ok(0) => Err(Miss::WouldBlock),
                    other => other.map_err(Miss::from),
                })
                .map_err(|b| (self.peer_gone.note(b), sent))?;
            sent += n;
        }
        Ok(())
    }

    /// Sends every value of `values` in order, as few ring publications as
    /// room allows, waiting while the channel is full. On failure the
    /// error carries the values not sent, the tail of `values` (those
    /// before it are delivered).
    ///
    /// ```
    /// use shmkit::channel::{channel, SendError};
    ///
    /// let (tx, rx) = channel::<u32>(4)?;
    /// tx.send_all(&[1, 2, 3])?;
    /// drop(rx);
    /// assert_eq!(tx.send_all(&[4, 5]), Err(SendError::Disconnected(&[4, 5][..])));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send_all<'v>(&self, values: &'v [T]) -> Result<(), SendError<&'v [T]>> {
        self.send_all_inner(values, None)
            .map_err(|(b, sent)| SendError::from_blocked(b, &values[sent..]))
    }

    /// Sends as many values from the front of `values` as there is room
    /// for now, in one ring publication; returns how many (0 only for an
    /// empty `values`). [`TrySendError::Full`] (with all of `values`) if
    /// there is no room at all; receivers gone as for
    /// [`try_send`](Self::try_send).
    ///
    /// ```
    /// use shmkit::channel::{channel, TrySendError};
    ///
    /// let (tx, rx) = channel::<u32>(4)?;
    /// assert_eq!(tx.try_send_all(&[1, 2, 3, 4, 5, 6]), Ok(4));
    /// assert_eq!(tx.try_send_all(&[5, 6]), Err(TrySendError::Full(&[5, 6][..])));
    /// let mut buf = [0; 8];
    /// assert_eq!(rx.try_recv_slice(&mut buf), Ok(4));
    /// assert_eq!(buf[..4], [1, 2, 3, 4]);
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    #[inline]
    pub fn try_send_all<'v>(&self, values: &'v [T]) -> Result<usize, TrySendError<&'v [T]>> {
        if values.is_empty() {
            return Ok(0);
        }
        let mut p = self.producer.borrow_mut();
        let mut sent = 0;
        self.shared
            .header
            .try_send(&self.peer_gone, values, || match p.push_slice(values) {
                Ok(0) => Err(Miss::WouldBlock),
                Ok(n) => {
                    sent = n;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            })?;
        Ok(sent)
    }

    /// [`send_all`](Self::send_all), waiting at most `timeout` in all; on
    /// [`SendTimeoutError::Timeout`] the error carries the values not
    /// sent.
    pub fn send_all_timeout<'v>(
        &self,
        values: &'v [T],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<&'v [T]>> {
        self.send_all_deadline_inner(values, deadline_after(timeout))
    }

    /// [`send_all`](Self::send_all), waiting until `deadline` at the
    /// latest.
    pub fn send_all_deadline<'v>(
        &self,
        values: &'v [T],
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<&'v [T]>> {
        self.send_all_deadline_inner(values, Some(deadline))
    }

    fn send_all_deadline_inner<'v>(
        &self,
        values: &'v [T],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<&'v [T]>> {
        self.send_all_inner(values, deadline)
            .map_err(|(b, sent)| SendTimeoutError::from_blocked(b, &values[sent..]))
    }
}

impl<T: Pod + Send> Receiver<T> {
    fn attach(region: Region) -> Result<Self> {
        // SAFETY: as in `Sender::attach`.
        let shared = unsafe { Attached::<T>::new(&region)? };
        let entry = shared
            .header
            .receivers
            .attach(1)?
            .ok_or_else(|| busy("receiver"))?;
        // SAFETY: as in `Sender::attach`: `attach(1)` admitted this handle
        // as the only live receiver, so no second consumer of this ring
        // exists while this one lives.
        let consumer = match unsafe { shared.ring.consumer() } {
            Ok(c) => c,
            Err(e) => {
                shared.header.receivers.detach(entry);
                return Err(ring_open_error(e));
            }
        };
        Ok(Self {
            consumer: std::cell::RefCell::new(consumer),
            peer_gone: PeerGone::default(),
            shared,
            entry,
            region,
        })
    }

    /// Receives a value; a failure becomes the caller's error through
    /// `err` right here (see `Sender::send_inner`).
    #[inline]
    fn recv_inner<E>(
        &self,
        deadline: Option<Instant>,
        err: impl FnOnce(Blocked) -> E,
    ) -> Result<T, E> {
        let mut c = self.consumer.borrow_mut();
        // The value goes straight to `out`, so that a large `T` is written
        // once, not copied through the blocking loop's nested results.
        let mut out = T::zeroed();
        self.shared
            .header
            .block_on(End::Receiver, deadline, || c.pop_into(&mut out))
            .map_err(|b| err(self.peer_gone.note(b)))?;
        Ok(out)
    }

    /// Receives a value, waiting while the channel is empty. Fails with
    /// [`RecvError::Disconnected`] once the sender is gone and everything
    /// it sent has been received.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_inner(None, RecvError::from_blocked)
    }

    /// Receives a value if one is there now. Notices a sender that left
    /// cleanly at once; one that died when the channel is empty (a
    /// liveness check, at most once per 10 ms per handle) or once a
    /// blocking call has seen it. So a loop of `try_recv` ends with
    /// [`TryRecvError::Disconnected`] as `recv` does.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut c = self.consumer.borrow_mut();
        let mut out = T::zeroed();
        self.shared
            .header
            .try_recv(&self.peer_gone, || c.pop_into(&mut out))?;
        Ok(out)
    }

    /// Receives a value, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_inner(deadline_after(timeout))
    }

    /// Receives a value, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_inner(Some(deadline))
    }

    fn recv_deadline_inner(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.recv_inner(deadline, RecvTimeoutError::from_blocked)
    }

    #[inline]
    fn recv_slice_inner(&self, buf: &mut [T], deadline: Option<Instant>) -> Result<usize, Blocked> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut c = self.consumer.borrow_mut();
        self.shared
            .header
            .block_on(End::Receiver, deadline, || match c.pop_slice(buf) {
                Ok(0) => Err(Miss::WouldBlock),
                other => other.map_err(Miss::from),
            })
            .map_err(|b| self.peer_gone.note(b))
    }

    /// Receives as many values as are there (at least one, waiting for it)
    /// into `buf`, in one ring publication; returns how many (0 only for
    /// an empty `buf`).
    #[inline]
    pub fn recv_slice(&self, buf: &mut [T]) -> Result<usize, RecvError> {
        self.recv_slice_inner(buf, None)
            .map_err(RecvError::from_blocked)
    }

    /// Receives as many values as are there now into `buf`, in one ring
    /// publication; returns how many (0 only for an empty `buf`).
    /// [`TryRecvError::Empty`] if there are none; senders gone as for
    /// [`try_recv`](Self::try_recv).
    #[inline]
    pub fn try_recv_slice(&self, buf: &mut [T]) -> Result<usize, TryRecvError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut c = self.consumer.borrow_mut();
        self.shared
            .header
            .try_recv(&self.peer_gone, || match c.pop_slice(buf) {
                Ok(0) => Err(Miss::WouldBlock),
                other => other.map_err(Miss::from),
            })
    }

    /// [`recv_slice`](Self::recv_slice), waiting at most `timeout`.
    pub fn recv_slice_timeout(
        &self,
        buf: &mut [T],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_slice_inner(buf, deadline_after(timeout))
            .map_err(RecvTimeoutError::from_blocked)
    }

    /// [`recv_slice`](Self::recv_slice), waiting until `deadline` at the
    /// latest.
    pub fn recv_slice_deadline(
        &self,
        buf: &mut [T],
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_slice_inner(buf, Some(deadline))
            .map_err(RecvTimeoutError::from_blocked)
    }
}

impl<T: Pod> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.header.senders.detach(self.entry);
        // Wake a receiver sleeping on an empty ring so it sees we left.
        self.shared.header.data.notify();
    }
}

impl<T: Pod> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.header.receivers.detach(self.entry);
        self.shared.header.space.notify();
    }
}
