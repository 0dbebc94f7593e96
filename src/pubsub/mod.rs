//! Zero-copy publish/subscribe: one publisher, up to 62 subscribers, in
//! one region. A sample is written once into a block of the service's
//! [pool](crate::pool) and reaches every subscriber present when it was
//! sent, each of which reads it in place; the last one to drop it frees
//! the block.
//!
//! ```
//! use shmkit::pool::PoolConfig;
//! use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber};
//!
//! # let name = format!("/shmkit-doc-pubsub-{}", std::process::id());
//! let config = ServiceConfig::new(PoolConfig::new().class(64, 32).class(4096, 8))
//!     .subscribers(4)
//!     .queue_capacity(4)
//!     .held_limit(2);
//! // Two programs agree on a name and a configuration; either may start first.
//! let publisher = Publisher::open_or_create(&name, &config)?;
//! let a = Subscriber::open(&name)?;
//! let b = Subscriber::open(&name)?;
//!
//! let mut sample = publisher.loan(5)?; // a pool block, written in place
//! sample.copy_from_slice(b"hello");
//! let seq = sample.send()?;
//! publisher.send_copy(&7u64.to_le_bytes())?;
//!
//! let (first, second) = (a.recv()?, b.recv()?); // the same block, no copy
//! assert_eq!((&first[..], &second[..]), (&b"hello"[..], &b"hello"[..]));
//! assert_eq!((first.seq(), first.block()), (seq, second.block()));
//! drop((first, second)); // the last hold released frees the block
//! assert_eq!(a.recv()?.value::<u64>(), Some(7));
//! assert_eq!(b.try_recv()?.value::<u64>(), Some(7));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a sample travels
//!
//! Each pool block has a *holders* word besides its state word (see
//! [`crate::pool`]): bit `i` set while subscriber entry `i` holds the
//! block's sample, bit 62 while the [history](#history) keeps it, bit 63
//! while the publisher distributes it. A send:
//!
//! 1. waits (as its form allows) for room in every present subscriber's
//!    queue; on a timeout, or `Full` for [`SampleMut::try_send`], the
//!    sample comes back unsent;
//! 2. takes the next sequence number, then reads the *present* mask (bit
//!    `i`: entry `i` receives);
//! 3. records the send under way (the descriptor, in the header's
//!    *sending* slot), stores `holders = bit 63 | present` (and bit 62
//!    with a history) while the block is still lent to it, gives the
//!    loan up (`held(pub, g)`) and turns the block `shared(g)`: no
//!    participant owns it now, so the pool's scans and reclaims leave it
//!    alone;
//! 4. pushes a [`Descriptor`] `{class, index, generation, len, seq}` to
//!    each present subscriber's queue (an [`MpmcRing`]), waking it if it
//!    sleeps;
//! 5. clears bit 63. Whoever turns the mask to 0 frees the block
//!    (`shared(g)` -> `free(g)`); without subscribers that is the
//!    publisher at once.
//!
//! A receive pops a descriptor and checks it: block in range, not one the
//! subscriber holds already (each subscriber records its live samples'
//! blocks in process memory: a peer's copy of a descriptor is not a
//! second sample of one hold), not on loan in this process, state
//! `shared` under the descriptor's generation, this subscriber's bit
//! set, length within the block; anything else is `Corrupted` (never a
//! panic). While a sample of this process reads a block, no loan of this
//! process takes it, whatever a peer wrote into its state or holders word
//! (see `crate::pool`'s record of what the process lends). The
//! [`Sample`] derefs to the bytes in place; its drop clears the
//! subscriber's bit (`fetch_and`, so clearing twice is harmless). A
//! subscriber holds at most its *held limit* of samples at once
//! ([`ServiceConfig::held_limit`]); a receive past it fails with
//! `HeldLimit`. Samples stay valid after the publisher leaves or dies: its
//! bit goes, the subscribers' stay.
//!
//! A subscriber joins by taking a free entry (or one whose holder died),
//! cleaning it (draining the queue, clearing the entry's bit on every
//! shared block), setting its present bit, then reading the next sequence
//! number: its *join sequence*. A sample numbered from there on read the
//! present mask after the bit was set (both steps are `SeqCst`), so it
//! comes to the subscriber; a descriptor numbered below it is left over
//! from the entry's last holder, and is released and skipped. So a late
//! joiner receives exactly the samples sent after it joined (after the
//! [history](#history)'s, if the service keeps one), each once, in order.
//! A subscriber leaves by clearing its present bit, draining its
//! queue and clearing its bit on every block; a send racing the leave
//! drops the leaver's hold itself and cleans the entry after it.
//!
//! # History
//!
//! A service made with [`ServiceConfig::history`]`(n)` keeps its newest
//! `n` samples for late joiners: a subscriber that joins receives those
//! (oldest first), then every sample sent after it joined, each once and
//! in order; the history outlives the publisher, so a subscriber that
//! joins while none is attached still gets them. Sample `s` lives in
//! history slot `s % n`, its block held by bit 62 until sample `s + n`
//! takes the slot over (and releases it).
//!
//! A *history lock* (a robust mutex word in the header) orders the two
//! sides: a send holds it from taking its sequence number to the end of
//! its distribution (step 2 to 5 above, and filing the sample), a joiner
//! while it cleans its entry, sets its present bit, reads the join
//! sequence and sets its bit on every sample the history holds. So a
//! joiner never meets a send half done: every sample numbered below its
//! join sequence is complete and did not name it, every one from there
//! on names it. A send may wait for a join in progress (bounded work: an
//! entry's queue and the pool's state words). A holder killed with the
//! lock is taken over by the next locker, which repairs the history
//! first: slots that name no sample the history holds are emptied, bit
//! 62 is released on blocks no slot names (a sample numbered and shared,
//! never filed). Without a history the lock is never taken.
//!
//! # One publisher
//!
//! The publisher's token is in the header. A second [`Publisher`] while
//! one is attached and alive (in any process, this one included) is
//! refused with [`Error::ServiceBusy`](crate::Error::ServiceBusy). One
//! that attaches after the last publisher was dropped or died takes the
//! word over, hands on the queue slots it claimed and never filled,
//! clears its bit on every block, and continues the stream: sequence
//! numbers come from the header. A peer that cleans up after a dead
//! publisher (a `reclaim`, or a subscriber whose queue stalls) holds the
//! word marked `RECLAIMING` (bit 31) meanwhile; a publisher
//! that attaches then waits for it (up to a second), and takes the word
//! over if it died too.
//!
//! # Slow subscribers
//!
//! Set per service at creation ([`ServiceConfig::policy`]):
//!
//! - [`SlowSubscriber::Lossless`] (the default): the publisher waits for
//!   room in a full queue, as long as the call's form allows (`send`
//!   without limit, `try_send` not at all, `send_timeout` and
//!   `send_deadline` until their deadline). Waiting spins a little, then
//!   sleeps on the subscriber's space [`Signal`](crate::Signal), which
//!   each of its receives notifies (a load while nobody sleeps); between
//!   sleeps the publisher checks whether the subscriber is alive. It
//!   waits for no entry that nobody holds (a present bit on a free entry
//!   is a peer's scribble: joiners take the entry before they set the
//!   bit, leavers clear it before they free the entry). (One
//!   edge: a subscriber that joins while a send is under way, and finds
//!   its queue full of what its entry's last holder left, is waited for
//!   only until that send's deadline, not at all by `try_send`; past it,
//!   it misses that one sample. Likewise one whose queue has room but
//!   still refuses the push, because it is in the middle of popping the
//!   very slot the publisher needs, or a peer scribbled on the queue: `send`
//!   waits for it without limit, `try_send` and a timed send for 10 ms or
//!   until their deadline, whichever is later.)
//! - [`SlowSubscriber::DropOldest`]: the publisher pops the oldest
//!   descriptor of a full queue itself (the ring is MPMC; its claim names
//!   the publisher) and releases that subscriber's hold on its block,
//!   then pushes. The subscriber sees a gap in the sequence numbers. A
//!   send waits only in the rare case that the subscriber is itself
//!   popping the slot the publisher needs.
//!
//! Either way a subscriber receives in order, and releasing is safe
//! against the publisher's own late clears: only the publisher loans and
//! shares blocks, one send at a time, so a block a release finds freed
//! cannot be shared again under it (its holders word is rewritten at the
//! next loan).
//!
//! # Crashed peers
//!
//! - A subscriber killed with samples held and descriptors queued: its
//!   entry holds a dead token. Whoever notices takes the entry (one CAS,
//!   so one cleaner), clears its present bit, hands on the queue slot it
//!   was popping, drains its queue and clears its bit on every shared
//!   block, freeing those it held last; then frees the entry. Sends notice
//!   (a full queue's subscriber is checked at once, every present one each
//!   10 ms), so do joiners taking the entry over and [`Publisher::reclaim`]
//!   / [`Subscriber::reclaim`].
//! - A publisher killed mid-send: a queue slot it claimed and never
//!   filled is handed on by the waiting subscriber (its claims name the
//!   publisher's participant id, as in the [MPMC channel](crate::channel::MpmcSender));
//!   its bit 63 on the blocks it was distributing is cleared by the next
//!   publisher or by a `reclaim`, which also frees shared blocks whose
//!   last holder died between clearing its bit and freeing the block, and
//!   pool blocks a dead participant had on loan. A sample it shared and
//!   did not push to every subscriber is not lost: whoever takes the
//!   dead publisher's word reads the *sending* record, and for each
//!   subscriber whose bit is on that block but whose queue does not hold
//!   its descriptor, writes the descriptor into one of the entry's two
//!   *owed* slots. The subscriber receives an owed sample in sequence
//!   order (it notices the gap in the numbers, or an empty queue, and
//!   looks at its owed slots; it also takes the dead publisher's word
//!   itself when its queue stalls, or every 10 ms at most). (One limit:
//!   if both owed slots of an entry are full, because sends were cut
//!   short twice before the subscriber received again, a third such
//!   sample's hold stays until the entry is cleaned.) A drop-oldest
//!   publisher killed while popping a subscriber's oldest descriptor
//!   leaves no hold behind: it releases that hold while its pop still
//!   holds the queue slot, and the slot, handed on, passes the
//!   descriptor to whoever takes the dead publisher's word, which
//!   releases it again if need be.
//!
//! # Layout
//!
//! ```text
//! offset              field                 meaning
//!      0              magic                 b"shmkPUB1" (LE), stored last by the creator
//!      8              version               3
//!     16              subscribers           N, 1 ..= 62
//!     24              queue_capacity        Q, a power of two
//!     32              held_limit            H, at least 1
//!     40              policy                1: lossless, 2: drop-oldest
//!     48              pool_offset           where the pool starts (below)
//!     56              total_bytes           ServiceConfig::bytes_for
//!     64              history               H_n, 0 ..= Q
//!     72              sending               the send under way: a descriptor slot
//!    128              next_seq              the next sample's sequence number
//!    256              publisher             the publisher's participant token, 0: none;
//!                                           bit 31 (RECLAIMING): a cleaner, no publisher
//!    384              present               bit i: entry i receives
//!    512 + 128 i      entry i               token (u32, 0: free), data signal (+8),
//!                                           space signal (+16), two owed descriptor
//!                                           slots (+24, +56); 62 entries
//!   8448              history lock          robust mutex word (u32)
//!   8576 + 32 j       history slot j < H_n  a descriptor slot
//!   B + i S           queue i, i < N        MpmcRing<Descriptor> of Q slots
//!   B + N S           the pool              Pool (with its holders words)
//! ```
//!
//! A *descriptor slot* is four words: `class | index << 32`,
//! `generation | len << 32`, `seq`, and filled (1) or empty (0); it is
//! checked word by word as it is read. Here
//! `B = 8576 + r128(32 H_n)`, `S =
//! r128(MpmcRing::<Descriptor>::bytes_for(Q))`, `r128` rounding up to a
//! multiple of 128. Every word is checked when a handle attaches
//! (magic, version, counts, capacity, policy, offsets against the layout
//! they imply, the pool's and each queue's own headers), and every shared
//! word read later (present mask, tokens, descriptors, state and holders
//! words) is checked as it is read.
//!
//! # Memory
//!
//! ```text
//! ServiceConfig::bytes_for = 8576 + r128(32 H_n) + N r128(384 + 40 Q)
//!                            + Pool::bytes_for(pool)
//! ```
//!
//! (a queue is the ring's 384-byte header and Q slots of 40 bytes: a
//! sequence word and a 32-byte descriptor). A lossless service needs
//! `N (Q + H) + H_n + 1` blocks of its samples' class never to run out.
//!
//! [`MpmcRing`]: crate::ring::mpmc::MpmcRing

pub(crate) mod config;
mod error;
mod history;
mod inspect;
mod publisher;
mod service;
mod subscriber;
pub(crate) mod wire;

pub use config::{ServiceConfig, SlowSubscriber};
pub use error::{
    RecvError, RecvTimeoutError, SendCopyError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use inspect::{inspect, ServiceInfo};
pub use publisher::{Publisher, SampleMut};
pub use subscriber::{Sample, Subscriber};
pub use wire::{Descriptor, MAX_SUBSCRIBERS};

/// Handles may move between threads (see each type).
#[cfg(not(shmkit_loom))]
const _: () = {
    const fn send<X: Send>() {}
    send::<Publisher>();
    send::<Subscriber>();
};
