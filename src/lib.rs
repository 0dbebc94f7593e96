//! # shmkit
//!
//! Fast, robust communication and synchronization between processes through
//! shared memory, for Linux.
//!
//! The crate is built in layers, each using only those below it. Read them
//! bottom up; most programs need only the top one or two.
//!
//! | layer | what it gives | start at |
//! |---|---|---|
//! | building blocks | what may live in shared memory, and how to wait for it | [`ShmSafe`], [`CachePadded`], [`Signal`] |
//! | [`region`] | named and anonymous mappings, validated on open; typed objects in them | [`Shm<T>`], [`Region`] |
//! | [`sync`] | process-shared locks and waits that survive a killed holder | [`sync::Mutex`], [`sync::Semaphore`] |
//! | [`ring`] | raw lock-free rings that never block | [`ring::spsc`], [`ring::mpmc`], [`ring::bytes`] |
//! | [`channel`] | blocking channels that notice a peer's death | [`channel::channel`] |
//! | [`pool`] | blocks of shared memory loaned by any process, reclaimed from dead ones | [`pool::Pool`], [`pool::PoolConfig`] |
//! | [`pubsub`] | zero-copy publish/subscribe: one publisher, up to 62 subscribers, samples in pool blocks, a history for late joiners | [`pubsub::Publisher`], [`pubsub::Subscriber`] |
//! | [`reqresp`] | zero-copy request/response: one server, up to 62 clients, streams of responses to each request; a dead server ends the wait | [`reqresp::Server`], [`reqresp::Client`] |
//!
//! # Building blocks
//!
//! [`ShmSafe`] marks what may be placed in shared memory: every bit pattern
//! valid, no pointers, sound through `&Self` from any number of processes.
//! `#[derive(ShmSafe)]` checks it for your `#[repr(C)]` structs of atomics,
//! [`SharedCell`]s and shmkit objects. [`CachePadded`] puts a value alone on
//! its cache lines, so two processes writing neighbouring fields do not
//! slow each other down. [`Signal`] is the park/unpark point the channels
//! wait on: a notify costs no system call while nobody sleeps.
//!
//! ```
//! use shmkit::{CachePadded, ShmSafe, Signal};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(ShmSafe)]
//! #[repr(C)]
//! struct Mailbox {
//!     value: CachePadded<AtomicU64>,
//!     posted: Signal,
//! }
//!
//! let mailbox = Mailbox { value: CachePadded::new(AtomicU64::new(0)), posted: Signal::new() };
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         mailbox.value.store(42, Ordering::Release);
//!         mailbox.posted.notify();
//!     });
//!     let got = mailbox.posted.wait_deadline(None, || {
//!         let v = mailbox.value.load(Ordering::Acquire);
//!         (v != 0).then_some(v)
//!     });
//!     assert_eq!(got, Some(42));
//! });
//! ```
//!
//! # Regions
//!
//! A [`Region`] is a mapping of a named POSIX shm object (`/dev/shm`,
//! created `O_EXCL`, mode 0600) or of an anonymous sealed memfd (passed to
//! a child or over a Unix socket). Opening one checks everything a peer or
//! a stale file could get wrong, and says which check failed. [`Shm<T>`]
//! is a region holding one `T`; [`Region::place`] puts typed objects at
//! checked offsets of a bigger one; [`SharedCell`] holds plain data that is
//! copied in and out. [`region::list`] shows what crashed programs left in
//! `/dev/shm`, and [`region::sweep`] removes what no live process has
//! open.
//!
//! ```
//! use shmkit::{SharedCell, Shm, ShmSafe};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(ShmSafe)]
//! #[repr(C)]
//! struct Stats {
//!     requests: AtomicU64,
//!     last_client: SharedCell<[u8; 8]>,
//! }
//!
//! # let name = format!("/shmkit-doc-lib-region-{}", std::process::id());
//! // Every process runs the same line: exactly one creates and initializes
//! // the region, the others wait (bounded) until it is ready.
//! let stats = Shm::<Stats>::open_or_create(&name, |s| s.last_client.set(*b"nobody\0\0"))?;
//! stats.requests.fetch_add(1, Ordering::Relaxed);
//! stats.last_client.set(*b"client-1");
//!
//! let other = Shm::<Stats>::open(&name)?; // as another process would
//! assert_eq!(other.requests.load(Ordering::Relaxed), 1);
//! assert_eq!(&other.last_client.get(), b"client-1");
//! assert!(shmkit::region::list()?.iter().any(|o| o.name == name && o.in_use));
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! # Sync
//!
//! [`sync`] has what Python's `multiprocessing` calls `Lock`, `Condition`,
//! `Semaphore`, `Event` and `Barrier`, as objects that live in a region:
//! [`Mutex<T>`](sync::Mutex) and [`RwLock<T>`](sync::RwLock) around plain
//! data, [`Condvar`](sync::Condvar), [`Semaphore`](sync::Semaphore),
//! [`Event`](sync::Event), [`Barrier`](sync::Barrier). A process killed
//! while holding a lock does not wedge it: the next locker gets the guard
//! inside [`LockError::OwnerDied`](sync::LockError::OwnerDied), repairs
//! the data, and calls `mark_consistent()`.
//!
//! ```
//! use shmkit::sync::{LockError, Mutex};
//! use shmkit::Shm;
//!
//! #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Account { debit: u64, credit: u64 }
//!
//! let ledger = Shm::<Mutex<Account>>::anonymous(|_| {})?;
//! let mut acct = match ledger.lock() {
//!     Ok(guard) => guard,
//!     Err(LockError::OwnerDied(mut guard)) => {
//!         // Its last holder was killed mid-update: restore the invariant.
//!         guard.credit = guard.debit;
//!         guard.mark_consistent();
//!         guard
//!     }
//!     Err(e) => return Err(e.map(|_| ()).into()),
//! };
//! acct.debit += 10;
//! acct.credit += 10;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rings
//!
//! [`ring`] has the raw rings the channels are built on: [`ring::spsc`]
//! (one producer, one consumer, `T: Pod` values, batches and in-place
//! chunks), [`ring::mpmc`] (many of each) and [`ring::bytes`]
//! (variable-length records, read in place). They never block and know
//! nothing of peers: `try_` calls that succeed or say full, empty or
//! corrupted. Use them when you own the waiting (a busy-polling loop, your
//! own [`Signal`]).
//!
//! ```
//! use shmkit::ring::spsc::HeapSpscRing;
//! use shmkit::ring::PopError;
//!
//! // On the heap for threads; `SpscRing::create` lays one out in a region.
//! let mut heap = HeapSpscRing::<u64>::new(8)?;
//! let (mut tx, mut rx) = heap.split()?;
//! tx.push_slice(&[1, 2, 3])?;
//! assert_eq!(rx.try_pop()?, 1);
//! let chunk = rx.read_chunk(2)?; // read in place, no copy
//! assert_eq!(chunk.as_slices(), (&[2, 3][..], &[][..]));
//! chunk.release_all();
//! assert_eq!(rx.try_pop(), Err(PopError::Empty));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Channels
//!
//! [`channel`] puts blocking ends over the rings: a send waits while the
//! channel is full, a receive while it is empty, spinning briefly and then
//! sleeping on a futex, with no system call while data flows. Each end
//! knows who is attached to the other: once every sender has dropped its
//! handle or been killed, receivers drain what was sent and then get
//! `Disconnected`, and the other way round.
//!
//! ```
//! use shmkit::channel::{channel, RecvError};
//!
//! let (tx, rx) = channel::<u64>(1024)?;
//! std::thread::spawn(move || {
//!     for i in 0..1000 {
//!         tx.send(i).unwrap();
//!     }
//! }); // `tx` is dropped here: the receiver drains, then sees `Disconnected`
//! let mut total = 0;
//! loop {
//!     match rx.recv() {
//!         Ok(v) => total += v,
//!         Err(RecvError::Disconnected) => break,
//!         Err(e) => panic!("{e}"),
//!     }
//! }
//! assert_eq!(total, 499_500);
//! # Ok::<(), shmkit::Error>(())
//! ```
//!
//! ## Which channel do I want?
//!
//! | you have | use |
//! |---|---|
//! | one producer and one consumer of `Pod` values | [`channel`](channel::channel) ([`Sender`](channel::Sender), [`Receiver`](channel::Receiver)) |
//! | several senders or several receivers: a work queue | [`mpmc_channel`](channel::mpmc_channel) ([`MpmcSender`](channel::MpmcSender), [`MpmcReceiver`](channel::MpmcReceiver); up to 32 handles an end, `Send + Sync`) |
//! | messages of varying length (bytes) | [`byte_channel`](channel::byte_channel) ([`ByteSender`](channel::ByteSender), [`ByteReceiver`](channel::ByteReceiver)) |
//! | no blocking: you own the waiting | [`ring::spsc`], [`ring::mpmc`], [`ring::bytes`] |
//! | to read without copying | [`ByteReceiver::recv_with`](channel::ByteReceiver::recv_with); the rings' in-place chunks ([`ring::spsc::Consumer::read_chunk`], [`ring::bytes::Consumer::read_chunk`]) |
//! | one stream to many readers, large samples written once and read in place | [`pubsub`] ([`Publisher`](pubsub::Publisher), [`Subscriber`](pubsub::Subscriber)) |
//!
//! Batches of typed values go faster than one at a time:
//! [`Sender::send_all`](channel::Sender::send_all) and
//! [`Receiver::recv_slice`](channel::Receiver::recv_slice) publish many in
//! one ring step.
//!
//! ## How the other process gets its end
//!
//! **By name**, the simplest: each process attaches its end of the same
//! name, one with [`Sender::create(name, capacity)`](channel::Sender::create)
//! and the other with [`Receiver::open(name)`](channel::Receiver::open)
//! (which fails with `NotFound` if it runs first), or both with
//! `open_or_create(name, capacity)`, so that either may start first and a
//! restarted one rejoins. A receiver waits for a sender that has not
//! attached yet, and the other way round.
//!
//! ```
//! use shmkit::channel::{Receiver, Sender};
//!
//! # let name = format!("/shmkit-doc-lib-named-{}", std::process::id());
//! // In the consumer's process:
//! let rx = Receiver::<[u8; 16]>::open_or_create(&name, 64)?;
//! // In the producer's process (a thread here):
//! let producer = {
//!     let name = name.clone();
//!     std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!         let tx = Sender::<[u8; 16]>::open_or_create(&name, 64)?;
//!         tx.send(*b"hello, consumer!")?;
//!         Ok(())
//!     })
//! };
//! assert_eq!(&rx.recv()?, b"hello, consumer!");
//! producer.join().unwrap().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Anonymous**, for a child: make only this process's end, with
//! `anonymous` ([`Sender::anonymous`](channel::Sender::anonymous) and the
//! like), have the child inherit the region's descriptor
//! ([`Region::pass_to_child`] on the end's
//! [`region`](channel::Sender::region), or
//! [`process::Builder::pass_region`]), and let the child attach the other
//! end with [`from_env`](channel::Receiver::from_env). Until it does, this
//! end sees the other as not yet attached (it waits, or queues what fits),
//! never as gone. [`Region::send_over`] and [`RegionOptions::receive`]
//! pass a region over a Unix socket the same way, for
//! [`from_region`](channel::Receiver::from_region). (With both ends made
//! here by [`channel`](channel::channel), the child's end must be dropped
//! here before the child attaches it, and this process must wait for the
//! child to say so before using its own end.)
//!
//! ```no_run
//! use shmkit::channel::{Receiver, Sender};
//! use std::process::Command;
//!
//! const VAR: &str = "MY_APP_CHANNEL";
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if std::env::var_os(VAR).is_some() {
//!         // The child (this program, run again).
//!         // SAFETY: the parent passed this descriptor for this end only,
//!         // and this is the one call for the variable.
//!         let rx = unsafe { Receiver::<u64>::from_env(VAR)? };
//!         let total: u64 = rx.iter().sum();
//!         assert_eq!(total, 499_500);
//!         return Ok(());
//!     }
//!     let tx = Sender::<u64>::anonymous(1024)?;
//!     let mut cmd = Command::new(std::env::current_exe()?);
//!     tx.region().pass_to_child(&mut cmd, VAR);
//!     let mut child = cmd.spawn()?;
//!     for i in 0..1000 {
//!         tx.send(i)?; // waits for the child while the channel is full
//!     }
//!     drop(tx); // the child drains the channel, then sees `Disconnected`
//!     assert!(child.wait()?.success());
//!     Ok(())
//! }
//! ```
//!
//! # Safety and trust
//!
//! Memory another process can write is treated as untrusted input: every
//! value read from it is checked before use, and a bad one is an
//! [`Error`] (or a `Corrupted` variant), never a panic or an access outside
//! the region; data a peer garbles is still a valid value (plain data is
//! `Pod`).
//!
//! Inside one process, safe code cannot break Rust's rules on shared
//! memory: plain data is reached only by copy or through a reference that
//! a protocol (a lock guard, a ring side's chunk) keeps exclusive while it
//! lives, and a region handle keeps each placed byte to one type. What the
//! type system cannot check is `unsafe`, with its contract under
//! `# Safety`: attaching an SPSC or byte ring side
//! ([`ring::spsc::SpscRing::producer`]), raw copies ([`Region::read`],
//! [`Region::write`]), handing on a stalled MPMC slot
//! ([`ring::mpmc::MpmcRing::repair`]). See [`ShmSafe`] for the whole
//! argument.
//!
//! The trust model as a whole (who can reach an object, what a peer that
//! can write it can still do, how liveness is decided, what survives
//! `SIGKILL`) is written once, in the *Trust model* section of the README.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod blocks;
pub mod channel;
mod error;
pub mod pool;
pub(crate) mod primitive;
pub mod process;
pub mod pubsub;
pub mod region;
pub mod reqresp;
pub mod ring;
mod service;
pub mod sync;
mod sys;
#[doc(hidden)]
pub mod testing;

pub use blocks::{CachePadded, Signal};
pub use error::{Error, Result};
pub use region::{
    LayoutId, Region, RegionOptions, SharedCell, Shm, ShmSafe, DEFAULT_TIMEOUT, MAX_NAME_LEN,
};
