//! [`ByteSender`] and [`ByteReceiver`]: a blocking channel of
//! variable-length byte messages over a [`ByteRing`], between two
//! processes (or threads), with in-place reading.

use super::blocking::{
    busy, extend, init_region, region_options, ring_open_error, Blocked, ChannelHeader, End,
    PeerGone, RING_OFFSET,
};
use super::error::{
    ByteSendError, ByteSendTimeoutError, ByteTrySendError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError,
};
use crate::error::{Error, Result};
use crate::region::{LayoutId, ObjectKind, Region, RegionOptions};
use crate::ring::bytes::{ByteRing, Consumer, Producer};
use crate::ring::PopError;
use crate::sync::wait::deadline_after;
use std::cell::RefCell;
use std::fmt;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const LAYOUT: LayoutId = LayoutId::named("shmkit::channel::bytes", 1);

fn init(region: &Region, capacity: usize, max_message: usize) -> Result<()> {
    init_region(region, |r| {
        ByteRing::create(r, RING_OFFSET, capacity, max_message).map(drop)
    })
}

fn options(capacity: Option<usize>) -> Result<RegionOptions> {
    region_options(
        ObjectKind::ByteChannel,
        LAYOUT,
        capacity,
        ByteRing::bytes_for,
    )
}

/// The sending end of a byte channel.
///
/// ```
/// use shmkit::channel::byte_channel;
///
/// let (tx, rx) = byte_channel(1 << 16, 1024)?;
/// tx.send(b"hello")?;
/// let mut buf = Vec::new();
/// assert_eq!(rx.recv(&mut buf)?, 5);
/// assert_eq!(buf, b"hello");
/// // Or read in place, without a copy:
/// tx.send(b"in place")?;
/// let len = rx.recv_with(|bytes| bytes.len())?;
/// assert_eq!(len, 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteSender {
    producer: RefCell<Producer<'static>>,
    peer_gone: PeerGone,
    header: &'static ChannelHeader,
    entry: usize,
    region: Region,
}

/// The receiving end of a byte channel; see [`ByteSender`].
///
/// A message is received by copy into a `Vec` ([`recv`](Self::recv), which
/// reuses the buffer's allocation), or read in place in the shared ring
/// ([`recv_with`](Self::recv_with)), no copy at all. Either way the bytes
/// are what the sender wrote: treat them as untrusted input.
///
/// ```
/// use shmkit::channel::{byte_channel, RecvError};
///
/// let (tx, rx) = byte_channel(1 << 12, 256)?;
/// tx.send(b"GET /index.html").unwrap();
/// tx.send(b"").unwrap(); // empty messages are messages too
/// tx.send(b"GET /favicon.ico").unwrap();
/// drop(tx);
///
/// let mut buf = Vec::with_capacity(256);
/// assert_eq!(rx.recv(&mut buf), Ok(15));
/// assert_eq!(buf, b"GET /index.html");
/// assert_eq!(rx.recv(&mut buf), Ok(0));
/// // In place: `f` sees the bytes inside the ring, then they are freed.
/// let is_get = rx.recv_with(|msg| msg.starts_with(b"GET "))?;
/// assert!(is_get);
/// assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteReceiver {
    consumer: RefCell<Consumer<'static>>,
    peer_gone: PeerGone,
    header: &'static ChannelHeader,
    entry: usize,
    region: Region,
}

/// Creates an anonymous byte channel with a `capacity`-byte ring (a power
/// of two) carrying messages of at most `max_message` bytes. Its ends
/// reach another process as those of [`channel`](super::channel()) do.
///
/// ```
/// use shmkit::channel::{byte_channel, ByteSendError};
///
/// let (tx, rx) = byte_channel(1024, 64)?;
/// assert_eq!(tx.max_message(), 64);
/// tx.send(&[7; 64]).unwrap();
/// assert_eq!(tx.send(&[7; 65]), Err(ByteSendError::TooLarge { len: 65, max: 64 }));
/// assert_eq!(rx.recv_with(|m| m.len()), Ok(64));
/// # Ok::<(), shmkit::Error>(())
/// ```
pub fn byte_channel(capacity: usize, max_message: usize) -> Result<(ByteSender, ByteReceiver)> {
    let region = options(Some(capacity))?.anonymous_with(|r| init(r, capacity, max_message))?;
    let twin = RegionOptions::new()
        .layout(LAYOUT)
        .from_fd(crate::sys::fd::dup(region.as_fd())?)?;
    Ok((ByteSender::attach(region)?, ByteReceiver::attach(twin)?))
}

macro_rules! byte_endpoint {
    ($ty:ident, $side:ident, $end:literal, $handle:ident, $make:ident) => {
        impl $ty {
            /// Creates an anonymous byte channel (a `capacity`-byte ring,
            /// a power of two, for messages of at most `max_message`
            /// bytes) and attaches this end only, for another process to
            /// attach the other with `from_env` once it inherits the
            /// [`region`](Self::region): until then this end sees the
            /// other as not yet attached, never as gone.
            pub fn anonymous(capacity: usize, max_message: usize) -> Result<Self> {
                let region =
                    options(Some(capacity))?.anonymous_with(|r| init(r, capacity, max_message))?;
                Self::attach(region)
            }

            /// Creates a named byte channel (a `capacity`-byte ring, a
            /// power of two, for messages of at most `max_message` bytes)
            /// and attaches this end.
            pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<Self> {
                let region = options(Some(capacity))?
                    .create_with(name, |r| init(r, capacity, max_message))?;
                Self::attach(region)
            }

            /// Opens the named byte channel and attaches this end.
            pub fn open(name: &str) -> Result<Self> {
                Self::attach(options(None)?.open(name)?)
            }

            /// Opens the named byte channel, or creates it as
            /// [`create`](Self::create) does if there is none, and attaches
            /// this end. An existing channel must have a `capacity`-byte
            /// ring ([`Error::InvalidSize`] otherwise) and keeps its own
            /// `max_message`. A half-made channel whose creator died is
            /// replaced; one whose processes all died is reused, this end
            /// taking over a dead handle's place.
            pub fn open_or_create(name: &str, capacity: usize, max_message: usize) -> Result<Self> {
                let region = options(Some(capacity))?
                    .open_or_create_with(name, |r| init(r, capacity, max_message))?;
                Self::attach(region)
            }

            /// Attaches this end to a byte-channel region opened by other
            /// means.
            pub fn from_region(region: Region) -> Result<Self> {
                if region.layout() != LAYOUT {
                    return Err(Error::LayoutMismatch {
                        found: region.layout().to_raw(),
                        expected: LAYOUT.to_raw(),
                    });
                }
                Self::attach(region)
            }

            /// Opens the byte-channel region a parent passed with
            /// [`Region::pass_to_child`] under `var`, and attaches this end.
            ///
            /// # Safety
            ///
            /// As for [`RegionOptions::from_env`].
            pub unsafe fn from_env(var: &str) -> Result<Self> {
                // SAFETY: forwarded to the caller.
                let region = unsafe { options(None)?.from_env(var)? };
                Self::from_region(region)
            }

            /// The channel's region (to pass it to a child process).
            pub fn region(&self) -> &Region {
                &self.region
            }

            /// The ring's size in bytes, frames included (as validated
            /// when this end attached).
            pub fn capacity(&self) -> usize {
                self.$handle.borrow().ring().capacity()
            }

            fn attach(region: Region) -> Result<Self> {
                // SAFETY: the views built from `r` (the header and the
                // ring's handle) go into `Self` beside `region`, whose field
                // comes last; the handle lends them only through `&self`
                // (`recv_with` passes the record to a closure).
                let r = unsafe { extend(&region) };
                let header = r.place::<ChannelHeader>(0)?;
                let ring = ByteRing::open(r, RING_OFFSET)?;
                let entry = header.$side.attach(1)?.ok_or_else(|| busy($end))?;
                // SAFETY: `attach(1)` above admitted this handle as the only
                // live one of its end across all processes, and the handle
                // is not `Sync`, so no second one exists while it lives.
                match unsafe { ring.$make() } {
                    Ok(h) => Ok(Self {
                        $handle: RefCell::new(h),
                        peer_gone: PeerGone::default(),
                        header,
                        entry,
                        region,
                    }),
                    Err(e) => {
                        header.$side.detach(entry);
                        Err(ring_open_error(e))
                    }
                }
            }
        }

        impl Drop for $ty {
            fn drop(&mut self) {
                self.header.$side.detach(self.entry);
                // Wake the other end if it sleeps, so it sees we left.
                self.header.data.notify();
                self.header.space.notify();
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.region.name())
                    .finish_non_exhaustive()
            }
        }
    };
}

byte_endpoint!(ByteSender, senders, "sender", producer, producer);
byte_endpoint!(ByteReceiver, receivers, "receiver", consumer, consumer);

impl ByteSender {
    #[inline]
    fn send_inner(
        &self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Result<(), Blocked>, TooLarge> {
        self.check_len(msg)?;
        let mut p = self.producer.borrow_mut();
        Ok(self
            .header
            .block_on(End::Sender, deadline, || p.try_push(msg))
            .map_err(|b| self.peer_gone.note(b)))
    }

    /// Refuses a message longer than the channel carries.
    #[inline]
    fn check_len(&self, msg: &[u8]) -> Result<(), TooLarge> {
        let max = self.max_message();
        if msg.len() > max {
            return Err(TooLarge {
                len: msg.len(),
                max,
            });
        }
        Ok(())
    }

    /// The largest message this channel carries.
    pub fn max_message(&self) -> usize {
        self.producer.borrow().ring().max_message()
    }

    /// Sends `msg`, waiting while the ring is full. A message longer than
    /// [`max_message`](Self::max_message) is refused at once.
    #[inline]
    pub fn send(&self, msg: &[u8]) -> Result<(), ByteSendError> {
        match self.send_inner(msg, None) {
            Ok(r) => r.map_err(|b| SendError::from_blocked(b, ()).into()),
            Err(TooLarge { len, max }) => Err(ByteSendError::TooLarge { len, max }),
        }
    }

    /// Sends `msg` if there is room now.
    #[inline]
    pub fn try_send(&self, msg: &[u8]) -> Result<(), ByteTrySendError> {
        if let Err(TooLarge { len, max }) = self.check_len(msg) {
            return Err(ByteTrySendError::TooLarge { len, max });
        }
        let mut p = self.producer.borrow_mut();
        self.header
            .try_send(&self.peer_gone, (), || p.try_push(msg))
            .map_err(Into::into)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), ByteSendTimeoutError> {
        self.send_deadline_inner(msg, deadline_after(timeout))
    }

    /// Sends `msg`, waiting until `deadline` at the latest.
    pub fn send_deadline(&self, msg: &[u8], deadline: Instant) -> Result<(), ByteSendTimeoutError> {
        self.send_deadline_inner(msg, Some(deadline))
    }

    fn send_deadline_inner(
        &self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), ByteSendTimeoutError> {
        match self.send_inner(msg, deadline) {
            Ok(r) => r.map_err(|b| SendTimeoutError::from_blocked(b, ()).into()),
            Err(TooLarge { len, max }) => Err(ByteSendTimeoutError::TooLarge { len, max }),
        }
    }
}

impl ByteReceiver {
    /// Receives a message into `buf` (replacing its contents), waiting
    /// while the channel is empty; returns its length.
    #[inline]
    pub fn recv(&self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.recv_inner(buf, None).map_err(RecvError::from_blocked)
    }

    /// Receives a message if one is there now.
    #[inline]
    pub fn try_recv(&self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        let mut c = self.consumer.borrow_mut();
        self.header.try_recv(&self.peer_gone, || c.try_pop(buf))
    }

    /// Receives a message, waiting at most `timeout`.
    pub fn recv_timeout(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_inner(buf, deadline_after(timeout))
            .map_err(RecvTimeoutError::from_blocked)
    }

    /// Receives a message, waiting until `deadline` at the latest.
    pub fn recv_deadline(
        &self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_inner(buf, Some(deadline))
            .map_err(RecvTimeoutError::from_blocked)
    }

    #[inline]
    fn recv_inner(&self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize, Blocked> {
        let mut c = self.consumer.borrow_mut();
        self.header
            .block_on(End::Receiver, deadline, || c.try_pop(buf))
            .map_err(|b| self.peer_gone.note(b))
    }

    /// Waits for a message and runs `f` on it in place, inside the shared
    /// ring (no copy), then frees it. The bytes are the sender's: treat
    /// them as untrusted input.
    #[inline]
    pub fn recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        self.recv_with_inner(f, None)
            .map_err(RecvError::from_blocked)
    }

    /// [`recv_with`](Self::recv_with) if a message is there now;
    /// [`TryRecvError::Empty`] (and `f` not run) otherwise.
    ///
    /// ```
    /// use shmkit::channel::{byte_channel, TryRecvError};
    ///
    /// let (tx, rx) = byte_channel(1024, 64)?;
    /// assert_eq!(rx.try_recv_with(|m| m.len()), Err(TryRecvError::Empty));
    /// tx.send(b"hello").unwrap();
    /// assert_eq!(rx.try_recv_with(|m| m == b"hello"), Ok(true));
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    #[inline]
    pub fn try_recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let mut f = Some(f);
        let mut c = self.consumer.borrow_mut();
        self.header
            .try_recv(&self.peer_gone, || read_with(&mut c, &mut f))
    }

    /// [`recv_with`](Self::recv_with), waiting at most `timeout`.
    pub fn recv_with_timeout<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
        timeout: Duration,
    ) -> Result<R, RecvTimeoutError> {
        self.recv_with_inner(f, deadline_after(timeout))
            .map_err(RecvTimeoutError::from_blocked)
    }

    /// [`recv_with`](Self::recv_with), waiting until `deadline` at the
    /// latest.
    pub fn recv_with_deadline<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
        deadline: Instant,
    ) -> Result<R, RecvTimeoutError> {
        self.recv_with_inner(f, Some(deadline))
            .map_err(RecvTimeoutError::from_blocked)
    }

    #[inline]
    fn recv_with_inner<R>(
        &self,
        f: impl FnOnce(&[u8]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R, Blocked> {
        let mut f = Some(f);
        let mut c = self.consumer.borrow_mut();
        self.header
            .block_on(End::Receiver, deadline, || read_with(&mut c, &mut f))
            .map_err(|b| self.peer_gone.note(b))
    }
}

/// One attempt of the `recv_with` forms: runs `f` (taken, so at most once)
/// on the next record in place and frees it, or fails as `read_chunk`
/// does and leaves `f` for the next attempt.
#[inline]
fn read_with<R>(
    c: &mut Consumer<'static>,
    f: &mut Option<impl FnOnce(&[u8]) -> R>,
) -> core::result::Result<R, PopError> {
    let chunk = c.read_chunk()?;
    let f = f
        .take()
        .expect("called once: only a successful read consumes it");
    let r = f(&chunk);
    chunk.release();
    Ok(r)
}

/// A message longer than the channel carries.
struct TooLarge {
    len: usize,
    max: usize,
}
