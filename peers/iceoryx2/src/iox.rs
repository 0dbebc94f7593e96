//! iceoryx2's publish/subscribe (0.10, `ipc::Service`) as a link
//! between the parent and a child: two services of `[u8]` slices, pings
//! (or the stream) from the parent on one, pongs (or the acknowledgement)
//! back on the other.
//!
//! Latency ([`iceoryx2_latency`]), as iceoryx2's own benchmark: each
//! service has one publisher and one subscriber, no history, a subscriber
//! buffer of 1 with safe overflow; the publisher's slices are
//! `initial_max_slice_len` = the payload size; a sample is
//! `loan_slice_uninit(len)`, written in place, `assume_init`, `send`; the
//! receiver busy-polls `receive()`. What is written is what shmkit's loan
//! rows write: the sequence number into the first and the last 8 bytes.
//!
//! Throughput ([`iceoryx2_throughput`]), as `shmkit bench` measures its
//! own rows: the same, but the ping service is lossless, its subscriber
//! buffer as long as shmkit's stream queue ([`stream_queue`]), safe
//! overflow off, the publisher retrying while the buffer is full
//! (`BackpressureStrategy::RetryUntilDelivered`, given up with an error
//! past [`PARENT_WAIT_LIMIT`]). After a few round trips, the parent sends
//! [`stream_len`] samples back to back; the child receives each in order,
//! checks its stamps (a lost, repeated or torn sample is an error) and
//! after the last one answers on the pong service with its sequence
//! number; messages/s = samples / (first send to that answer).

use crate::support::{
    self, check_msg, drive, ping_pong, read_stamp, serve_echo, spawn_with_control, Control, Echoer,
    LatencyBudget, Pinger, Pings, Placement, Wait, CHILD_IDLE_LIMIT, PARENT_WAIT_LIMIT, STOP,
};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;
use shmkit::Shm;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Names the latency link in a child role.
pub const TAG: &str = "iceoryx2";
/// Names the throughput link in a child role (`echo:iceoryx2-stream:…`:
/// the child echoes the warm-up round trips, then takes the stream).
pub const STREAM_TAG: &str = "iceoryx2-stream";

/// Round trips before the stream, untimed: a fresh link warmed up, as
/// the suite's links are by their latency phase before theirs.
const STREAM_WARMUP: u64 = 100;

type Tx = Publisher<ipc::Service, [u8], ()>;
type Rx = Subscriber<ipc::Service, [u8], ()>;

/// What a pair of services is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Ping-pong latency: both services as iceoryx2's benchmark makes
    /// them (a subscriber buffer of 1, safe overflow).
    PingPong,
    /// The throughput stream: the ping service lossless with a buffer of
    /// [`stream_queue`] samples, its publisher waiting while it is full;
    /// the pong service (the acknowledgement) as for [`Link::PingPong`].
    Stream,
}

/// The subscriber buffer of the stream's service at `size` bytes:
/// shmkit's own stream queue at that size (`shmkit bench`'s
/// `loan_config`), 32 MiB worth, 2 to 64 samples.
pub fn stream_queue(size: usize) -> usize {
    ((32 << 20) / size.max(1)).clamp(2, 64)
}

/// Samples in the throughput stream at `size` bytes, as `shmkit bench`
/// streams its own rows: 512 MiB worth, 16 to 100 000 samples; in a smoke
/// run (`quick`) 8 MiB worth, 16 to 2000.
pub fn stream_len(size: usize, quick: bool) -> usize {
    let (bytes, most) = if quick {
        (8 << 20, 2_000)
    } else {
        (512 << 20, 100_000)
    };
    (bytes / size.max(1)).clamp(16, most)
}

/// One side's node and ports: it publishes on one service and subscribes
/// to the other.
pub struct Ends {
    tx: Tx,
    rx: Rx,
    len: usize,
    /// Last: the ports were made through it.
    _node: Node<ipc::Service>,
}

/// The services' names for a row whose children are told `base`.
fn names(base: &str) -> (String, String) {
    (format!("{base}/ping"), format!("{base}/pong"))
}

/// A fresh name for a row's two services.
pub fn fresh_base() -> String {
    let unique = support::unique_names(1).remove(0);
    format!("shmkit-peer{}", unique.replace('/', "-"))
}

/// A publisher's wait on a full buffer, bounded: retry for up to
/// [`PARENT_WAIT_LIMIT`], then fail the send (the receiver is stuck).
fn bounded_retry(info: &BackpressureInfo) -> BackpressureAction {
    if info.elapsed_time < PARENT_WAIT_LIMIT {
        BackpressureAction::Retry
    } else {
        BackpressureAction::DiscardDataAndFail
    }
}

/// Opens this side's ends of the two services named after `base`, made
/// for `link`: the parent (`parent`) creates both and publishes pings,
/// the child opens them and publishes pongs.
pub fn open(base: &str, len: usize, link: Link, parent: bool) -> Result<Ends, String> {
    if len < 8 {
        return Err(format!(
            "samples of {len} bytes: the stamps need at least 8"
        ));
    }
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| format!("creating the iceoryx2 node: {e}"))?;
    // The stream's pings: lossless, a buffer long enough to stream.
    let stream = link == Link::Stream;
    let service = |name: &str, lossless: bool| {
        let (buffer, overflow) = if lossless {
            (stream_queue(len), false)
        } else {
            (1, true)
        };
        let name = ServiceName::new(name).map_err(|e| format!("service name {name}: {e:?}"))?;
        let builder = node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(buffer)
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(overflow);
        if parent {
            builder
                .create()
                .map_err(|e| format!("creating {name}: {e}"))
        } else {
            builder.open().map_err(|e| format!("opening {name}: {e}"))
        }
    };
    let (ping_name, pong_name) = names(base);
    let (ping, pong) = (service(&ping_name, stream)?, service(&pong_name, false)?);
    let (out, back) = if parent {
        (&ping, &pong)
    } else {
        (&pong, &ping)
    };
    // One sample loaned at a time: each is sent before the next is
    // loaned. The service's data segment then holds, as iceoryx2 sizes
    // it, buffer + borrowed + loaned samples: shmkit's stream pool of
    // queue + 2 blocks.
    let mut publisher = out
        .publisher_builder()
        .initial_max_slice_len(len)
        .max_loaned_samples(1);
    if stream && parent {
        publisher = publisher
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .set_backpressure_handler(bounded_retry);
    }
    let tx = publisher
        .create()
        .map_err(|e| format!("creating the publisher: {e}"))?;
    // The subscriber's buffer: the service's whole buffer.
    let rx = back
        .subscriber_builder()
        .create()
        .map_err(|e| format!("creating the subscriber: {e}"))?;
    Ok(Ends {
        tx,
        rx,
        len,
        _node: node,
    })
}

impl Ends {
    /// Loans a sample, stamps its first and last 8 bytes with `seq` and
    /// sends it.
    #[inline]
    fn send(&self, seq: u64) -> Result<(), String> {
        let mut sample = self
            .tx
            .loan_slice_uninit(self.len)
            .map_err(|e| format!("loaning sample {seq}: {e:?}"))?;
        let stamp = seq.to_le_bytes().map(MaybeUninit::new);
        let payload = sample.payload_mut();
        let n = payload.len();
        payload[..8].copy_from_slice(&stamp);
        payload[n - 8..].copy_from_slice(&stamp);
        // SAFETY: the payload is a chunk of the publisher's data segment,
        // shared memory mapped from a file whose every byte the kernel
        // initialized (zeroes at first, earlier samples' bytes since), as
        // a shmkit loan's block is; iceoryx2's own benchmark sends loans
        // without writing them at all. Its first and last 8 bytes were
        // just written.
        let sample = unsafe { sample.assume_init() };
        sample
            .send()
            .map(drop)
            .map_err(|e| format!("sending sample {seq}: {e:?}"))
    }

    /// Busy-polls `receive` for about `limit` at most.
    #[inline]
    fn receive(&self, limit: Duration) -> Result<Sample<ipc::Service, [u8], ()>, String> {
        support::wait_for(limit, Wait::Spin, || self.rx.receive().transpose())
            .ok_or_else(|| format!("no sample within {limit:?}"))?
            .map_err(|e| format!("receiving: {e:?}"))
    }
}

/// The parent's side.
pub struct IoxPinger(Ends);

impl Pinger for IoxPinger {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        self.0.send(seq)?;
        let pong = self
            .0
            .receive(PARENT_WAIT_LIMIT)
            .map_err(|e| format!("echo {seq}: {e}"))?;
        check_msg(pong.payload(), self.0.len, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        self.0.send(STOP)
    }
}

/// The child's side: answers each ping with a sample of its own stamped
/// alike, then drops the ping.
pub struct IoxEchoer(Ends);

impl Echoer for IoxEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let ping = self
            .0
            .receive(CHILD_IDLE_LIMIT)
            .map_err(|e| format!("a ping: {e}"))?;
        let seq = read_stamp(ping.payload())?;
        if seq == STOP {
            return Ok(false);
        }
        check_msg(ping.payload(), self.0.len, seq)?;
        self.0.send(seq)?;
        drop(ping);
        Ok(true)
    }
}

/// Latency through two iceoryx2 services of `size`-byte slices; the
/// child's role is `role` followed by the services' base name.
pub fn iceoryx2_latency(
    size: usize,
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let base = fresh_base();
    let ends = open(&base, size, Link::PingPong, true)?;
    let role = format!("{role}:{base}");
    let child = spawn_with_control(&role, control, placement, |_| {})?;
    let mut pinger = IoxPinger(ends);
    drive(&role, control, placement, child, (), || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's echo through the services named after `base`.
pub fn iceoryx2_echo(size: usize, base: &str, control: &Control) -> Result<(), String> {
    serve_echo(control, IoxEchoer(open(base, size, Link::PingPong, false)?))
}

/// One-way throughput through a [`Link::Stream`] of `size`-byte slices:
/// [`STREAM_WARMUP`] round trips, then `stream` samples sent back to back,
/// timed from the first send to the child's acknowledgement of the last
/// (the child's role is `role` followed by the services' base name).
/// Returns messages per second and whether the parent ran pinned.
pub fn iceoryx2_throughput(
    size: usize,
    stream: usize,
    placement: &Placement,
    role: &str,
    control: &Shm<Control>,
) -> Result<(f64, bool), String> {
    if stream == 0 {
        return Err("a stream of no samples".to_owned());
    }
    let count = stream as u64;
    let base = fresh_base();
    let ends = open(&base, size, Link::Stream, true)?;
    // Read by the child once it is handed the link over (Release there).
    control.first.store(STREAM_WARMUP, Ordering::Relaxed);
    control.count.store(count, Ordering::Relaxed);
    let role = format!("{role}:{base}");
    let child = spawn_with_control(&role, control, placement, |_| {})?;
    let mut pinger = IoxPinger(ends);
    drive(&role, control, placement, child, (), || {
        for seq in 0..STREAM_WARMUP {
            pinger.ping(seq)?;
        }
        let ends = &pinger.0;
        let last = STREAM_WARMUP + count - 1;
        let t = Instant::now();
        for seq in STREAM_WARMUP..=last {
            ends.send(seq)?;
        }
        let ack = ends
            .receive(PARENT_WAIT_LIMIT)
            .map_err(|e| format!("the acknowledgement of sample {last}: {e}"))?;
        let took = t.elapsed();
        check_msg(ack.payload(), ends.len, last)
            .map_err(|e| format!("the acknowledgement: {e}"))?;
        drop(ack);
        // The child may go (its acknowledgement is in).
        control.go.store(STOP, Ordering::Release);
        Ok(count as f64 / took.as_secs_f64().max(1e-9))
    })
}

/// The child's side of [`iceoryx2_throughput`] through the services named
/// after `base`: echoes `control.first` pings, takes the next
/// `control.count` samples without answering, each checked to be the
/// next in sequence, acknowledges the last one, then waits for the parent
/// to have read that.
pub fn iceoryx2_sink(size: usize, base: &str, control: &Control) -> Result<(), String> {
    let ends = open(base, size, Link::Stream, false)?;
    let echoes = control.first.load(Ordering::Acquire);
    let count = control.count.load(Ordering::Acquire);
    let end = echoes
        .checked_add(count)
        .filter(|&e| e < STOP && count > 0)
        .ok_or_else(|| format!("no stream of {count} samples after {echoes}"))?;
    control.ready.store(1, Ordering::Release);
    for seq in 0..echoes {
        let ping = ends
            .receive(CHILD_IDLE_LIMIT)
            .map_err(|e| format!("ping {seq}: {e}"))?;
        check_msg(ping.payload(), ends.len, seq)?;
        ends.send(seq)?;
        drop(ping);
    }
    for seq in echoes..end {
        let sample = ends
            .receive(CHILD_IDLE_LIMIT)
            .map_err(|e| format!("stream sample {seq}: {e}"))?;
        check_msg(sample.payload(), ends.len, seq).map_err(|e| format!("the stream: {e}"))?;
    }
    ends.send(end - 1)?;
    // Keeps the acknowledgement's publisher until it has been received.
    let gone = support::wait_for(CHILD_IDLE_LIMIT, Wait::Yield, || {
        (control.go.load(Ordering::Acquire) == STOP).then_some(())
    });
    gone.ok_or_else(|| "the parent did not take the acknowledgement".to_owned())
}
