//! Ping-pong through two publish/subscribe services, every sample a pool
//! block loaned, stamped in place and sent: the parent publishes pings on
//! one service and subscribes to the other, the child the other way round.
//!
//! What is written: the sequence number into the first and the last 8
//! bytes of the loaned block ([`stamp`]); the rest of the payload is left
//! as the block holds it. Zero-copy means the writer writes its data once,
//! in place, however it makes it; what the transport adds, and what this
//! measures, is the loan, the send, the receive and the release, which do
//! not depend on how much of the block is written. The receiver checks
//! the length and both stamps, reading those 16 bytes in place.
//!
//! Also built into `peers/iceoryx2`, which measures the same row beside
//! iceoryx2's: this file names nothing of the bench it sits in but
//! `crate::support`.

use crate::support::{
    self, check_msg, drive, ping_pong, read_stamp, serve_echo, spawn_with_control, stamp, Control,
    Echoer, LatencyBudget, Pinger, Pings, Placement, Wait, CHILD_IDLE_LIMIT, LINK_A_VAR,
    LINK_B_VAR, PARENT_WAIT_LIMIT, STOP,
};
use shmkit::pool::PoolConfig;
use shmkit::pubsub::{Publisher, Sample, ServiceConfig, Subscriber, TryRecvError};
use shmkit::{RegionOptions, Shm};
use std::time::{Duration, Instant};

/// The payload sizes of the latency rows, in bytes.
pub const PAYLOAD_SIZES: [usize; 5] = [64, 4 << 10, 64 << 10, 1 << 20, 16 << 20];

/// Descriptors in each subscriber's queue (one sample is in flight each
/// way; two leave room for the next ping while the last is released).
const LOAN_QUEUE: usize = 2;
/// Samples a subscriber holds at once: one, dropped before the next
/// receive.
const LOAN_HELD: usize = 1;
/// Blocks of the one class of a latency service: the lossless bound
/// `subscribers * (queue + held) + 1` for one subscriber, so a loan never
/// finds the pool empty.
const LOAN_BLOCKS: usize = LOAN_QUEUE + LOAN_HELD + 1;

/// A service for ping-pong samples of `size` bytes: one subscriber, a pool
/// of one class of [`LOAN_BLOCKS`] blocks of `size` (a pool has at most
/// four classes, so each size gets services of its own; at 16 MiB the two
/// services of a row take 128 MiB of shared memory).
pub fn loan_config(size: usize) -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(size, LOAN_BLOCKS))
        .subscribers(1)
        .queue_capacity(LOAN_QUEUE)
        .held_limit(LOAN_HELD)
}

/// Shared memory a latency row of `size`-byte samples maps (both
/// services).
pub fn loan_row_bytes(size: usize) -> Result<usize, String> {
    ServiceConfig::bytes_for(&loan_config(size))
        .map(|b| 2 * b)
        .map_err(|e| format!("sizing the services: {e}"))
}

/// How a side waits for the next sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// `recv`: spin a little, then sleep on the subscriber's signal.
    Blocking,
    /// `try_recv` in a loop, spinning until a sample is there (as
    /// iceoryx2's benchmarks poll `receive`).
    Poll,
}

impl Receive {
    /// Names it in a child role.
    pub fn tag(self) -> &'static str {
        match self {
            Receive::Blocking => "loan",
            Receive::Poll => "loan-poll",
        }
    }

    /// The way of waiting a child role names.
    pub fn from_tag(tag: &str) -> Option<Receive> {
        [Receive::Blocking, Receive::Poll]
            .into_iter()
            .find(|r| r.tag() == tag)
    }
}

/// The next sample of `sub`, waiting as `how` says: blocking until
/// `deadline` (none: as long as it takes), or polling for about `limit`
/// (the clock is read only once polling has gone on for a while).
#[inline]
fn next_sample(
    sub: &Subscriber,
    how: Receive,
    deadline: Option<Instant>,
    limit: Duration,
) -> Result<Sample<'_>, String> {
    match (how, deadline) {
        (Receive::Blocking, Some(d)) => sub.recv_deadline(d).map_err(|e| e.to_string()),
        (Receive::Blocking, None) => sub.recv().map_err(|e| e.to_string()),
        (Receive::Poll, _) => support::wait_for(limit, Wait::Spin, || match sub.try_recv() {
            Ok(s) => Some(Ok(s)),
            Err(TryRecvError::Empty) => None,
            Err(e) => Some(Err(e.to_string())),
        })
        .unwrap_or_else(|| Err(format!("nothing within {limit:?}"))),
    }
}

/// The parent's side: loans a ping, stamps it, sends it, receives the pong
/// and checks it in place, then drops it.
pub struct LoanPinger {
    tx: Publisher,
    rx: Subscriber,
    len: usize,
    how: Receive,
    /// The receive gives up past this (the child died): set far enough
    /// out for the whole round, so that no ping reads the clock for it.
    deadline: Instant,
}

impl Pinger for LoanPinger {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        let mut ping = self
            .tx
            .loan(self.len)
            .map_err(|e| format!("loaning ping {seq}: {e}"))?;
        stamp(&mut ping, seq);
        ping.send()
            .map_err(|e| format!("sending ping {seq}: {e}"))?;
        let pong = next_sample(&self.rx, self.how, Some(self.deadline), PARENT_WAIT_LIMIT)
            .map_err(|e| format!("receiving echo {seq}: {e}"))?;
        check_msg(&pong, self.len, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        let mut ping = self
            .tx
            .loan(self.len)
            .map_err(|e| format!("loaning the stop message: {e}"))?;
        stamp(&mut ping, STOP);
        ping.send()
            .map(drop)
            .map_err(|e| format!("sending the stop message: {e}"))
    }
}

/// The child's side: receives a ping, checks it, answers with a pong of
/// its own loan stamped alike, then drops the ping.
pub struct LoanEchoer {
    rx: Subscriber,
    tx: Publisher,
    len: usize,
    how: Receive,
}

impl Echoer for LoanEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        // No deadline: a child whose parent dies dies with it.
        let ping = next_sample(&self.rx, self.how, None, CHILD_IDLE_LIMIT)
            .map_err(|e| format!("receiving a ping: {e}"))?;
        let seq = read_stamp(&ping)?;
        if seq == STOP {
            return Ok(false);
        }
        check_msg(&ping, self.len, seq)?;
        let mut pong = self
            .tx
            .loan(self.len)
            .map_err(|e| format!("loaning echo {seq}: {e}"))?;
        stamp(&mut pong, seq);
        pong.send()
            .map_err(|e| format!("sending echo {seq}: {e}"))?;
        drop(ping);
        Ok(true)
    }
}

/// Latency through two services of `size`-byte samples: pings to the
/// child on one, pongs back on the other.
pub fn loan_latency(
    size: usize,
    how: Receive,
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let config = loan_config(size);
    let ping =
        Publisher::anonymous(&config).map_err(|e| format!("creating the ping service: {e}"))?;
    // The child becomes the pong service's publisher once the parent's
    // handle is dropped (one publisher at a time).
    let pong_publisher =
        Publisher::anonymous(&config).map_err(|e| format!("creating the pong service: {e}"))?;
    let pong = pong_publisher
        .subscriber()
        .map_err(|e| format!("subscribing to the pong service: {e}"))?;
    let child = spawn_with_control(role, control, placement, |cmd| {
        ping.region().pass_to_child(cmd, LINK_A_VAR);
        pong_publisher.region().pass_to_child(cmd, LINK_B_VAR);
    })?;
    let round = budget.warmup + budget.budget / budget.rounds;
    let mut pinger = LoanPinger {
        tx: ping,
        rx: pong,
        len: size,
        how,
        deadline: Instant::now() + round * 4 + PARENT_WAIT_LIMIT + Duration::from_secs(1),
    };
    drive(role, control, placement, child, pong_publisher, || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's echo through the two services the parent passed.
pub fn loan_echo(size: usize, how: Receive, control: &Control) -> Result<(), String> {
    // SAFETY: the parent passed this service's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let ping = unsafe { RegionOptions::new().any_layout().from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the ping service: {e}"))?;
    // SAFETY: as above, for LINK_B_VAR.
    let pong = unsafe { RegionOptions::new().any_layout().from_env(LINK_B_VAR) }
        .map_err(|e| format!("opening the pong service: {e}"))?;
    let rx = Subscriber::from_region(ping).map_err(|e| format!("subscribing to the pings: {e}"))?;
    let tx = Publisher::from_region(pong).map_err(|e| format!("publishing the pongs: {e}"))?;
    serve_echo(
        control,
        LoanEchoer {
            rx,
            tx,
            len: size,
            how,
        },
    )
}
