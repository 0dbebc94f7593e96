//! iceoryx2's publish/subscribe (0.10, `ipc::Service`) as a ping-pong
//! link: two services of `[u8]` slices, pings from the parent, pongs back.
//!
//! As iceoryx2's own benchmark: each service has one publisher and one
//! subscriber, no history, a subscriber buffer of 1 with safe overflow;
//! the publisher's slices are `initial_max_slice_len` = the payload size;
//! a sample is `loan_slice_uninit(len)`, written in place, `assume_init`,
//! `send`; the receiver busy-polls `receive()`. What is written is what
//! shmkit's loan rows write: the sequence number into the first and the
//! last 8 bytes.

use crate::support::{
    self, check_msg, drive, ping_pong, read_stamp, serve_echo, spawn_with_control, Control, Echoer,
    LatencyBudget, Pinger, Pings, Placement, Wait, CHILD_IDLE_LIMIT, PARENT_WAIT_LIMIT, STOP,
};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;
use shmkit::Shm;
use std::mem::MaybeUninit;
use std::time::Duration;

/// Names the link in a child role.
pub const TAG: &str = "iceoryx2";

type Tx = Publisher<ipc::Service, [u8], ()>;
type Rx = Subscriber<ipc::Service, [u8], ()>;

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

/// Opens this side's ends of the two services named after `base`: the
/// parent (`parent`) creates both and publishes pings, the child opens
/// them and publishes pongs.
pub fn open(base: &str, len: usize, parent: bool) -> Result<Ends, String> {
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| format!("creating the iceoryx2 node: {e}"))?;
    let service = |name: &str| {
        let name = ServiceName::new(name).map_err(|e| format!("service name {name}: {e:?}"))?;
        let builder = node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(true);
        if parent {
            builder
                .create()
                .map_err(|e| format!("creating {name}: {e}"))
        } else {
            builder.open().map_err(|e| format!("opening {name}: {e}"))
        }
    };
    let (ping_name, pong_name) = names(base);
    let (ping, pong) = (service(&ping_name)?, service(&pong_name)?);
    let (out, back) = if parent {
        (&ping, &pong)
    } else {
        (&pong, &ping)
    };
    let tx = out
        .publisher_builder()
        .initial_max_slice_len(len)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| format!("creating the publisher: {e}"))?;
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
    let ends = open(&base, size, true)?;
    let role = format!("{role}:{base}");
    let child = spawn_with_control(&role, control, placement, |_| {})?;
    let mut pinger = IoxPinger(ends);
    drive(&role, control, placement, child, (), || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's echo through the services named after `base`.
pub fn iceoryx2_echo(size: usize, base: &str, control: &Control) -> Result<(), String> {
    serve_echo(control, IoxEchoer(open(base, size, false)?))
}
