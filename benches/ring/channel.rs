//! shmkit's typed channels, SPSC (`channel`) and MPMC (`mpmc_channel`):
//! `[u8; 64]` ping-pong, and `u64` and `[u8; 64]` streams, per message and
//! (SPSC) in batches.

use crate::control::Control;
use crate::latency::{ping_pong, serve_echo, Echoer, Pinger, Pings};
use crate::link::Link;
use crate::message::{check_msg, out_of_sequence, patterned_msg, read_stamp, stamp};
use crate::plan::Ctx;
use crate::support::Wait;
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{Msg, BATCH, LINK_A_VAR, LINK_B_VAR, MSG, MSG_CAPACITY, STOP, U64_CAPACITY};
use bytemuck::Pod;
use shmkit::channel::{channel, mpmc_channel, MpmcReceiver, MpmcSender, Receiver, Sender};
use shmkit::{Region, Shm};

/// A typed channel's sending end, SPSC or MPMC, as the rows use it.
pub(crate) trait TypedTx<T>: Sized {
    /// Sends `value`, waiting while the channel is full.
    fn send(&self, value: T) -> Result<(), String>;
    /// The channel's region, to pass to a child.
    fn link_region(&self) -> &Region;
    /// Opens the end the parent passed under `var`.
    ///
    /// # Safety
    ///
    /// As for the channels' `from_env`: the descriptor under `var` was
    /// passed for this purpose and nothing else in this process owns
    /// it.
    unsafe fn open_env(var: &str) -> shmkit::Result<Self>;
}

/// A typed channel's receiving end, SPSC or MPMC.
pub(crate) trait TypedRx<T>: Sized {
    /// Receives a value, waiting while the channel is empty.
    fn recv(&self) -> Result<T, String>;
    /// The channel's region, to pass to a child.
    fn link_region(&self) -> &Region;
    /// Opens the end the parent passed under `var`.
    ///
    /// # Safety
    ///
    /// As for [`TypedTx::open_env`].
    unsafe fn open_env(var: &str) -> shmkit::Result<Self>;
}

/// Implements the row traits for a channel's two ends.
macro_rules! typed_ends {
    ($tx:ident, $rx:ident) => {
        impl<T: Pod + Send> TypedTx<T> for $tx<T> {
            #[inline]
            fn send(&self, value: T) -> Result<(), String> {
                $tx::send(self, value).map_err(|e| e.to_string())
            }
            fn link_region(&self) -> &Region {
                self.region()
            }
            unsafe fn open_env(var: &str) -> shmkit::Result<Self> {
                // SAFETY: the caller upholds `from_env`'s contract.
                unsafe { $tx::from_env(var) }
            }
        }

        impl<T: Pod + Send> TypedRx<T> for $rx<T> {
            #[inline]
            fn recv(&self) -> Result<T, String> {
                $rx::recv(self).map_err(|e| e.to_string())
            }
            fn link_region(&self) -> &Region {
                self.region()
            }
            unsafe fn open_env(var: &str) -> shmkit::Result<Self> {
                // SAFETY: the caller upholds `from_env`'s contract.
                unsafe { $rx::from_env(var) }
            }
        }
    };
}
typed_ends!(Sender, Receiver);
typed_ends!(MpmcSender, MpmcReceiver);

/// Makes a channel pair of some capacity: `channel` or `mpmc_channel`.
pub(crate) type PairFn<S, R> = fn(usize) -> shmkit::Result<(S, R)>;

/// Latency over two typed channels made by `pair`: ping to the child,
/// pong back.
pub(crate) fn typed_latency<S: TypedTx<Msg>, R: TypedRx<Msg>>(
    pair: PairFn<S, R>,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let (ping_tx, ping_rx) =
        pair(MSG_CAPACITY).map_err(|e| format!("creating the ping channel: {e}"))?;
    let (pong_tx, pong_rx) =
        pair(MSG_CAPACITY).map_err(|e| format!("creating the pong channel: {e}"))?;
    let child = ctx.spawn(role, control, |cmd| {
        ping_rx.link_region().pass_to_child(cmd, LINK_A_VAR);
        pong_tx.link_region().pass_to_child(cmd, LINK_B_VAR);
    })?;
    let mut pinger = TypedPinger {
        tx: ping_tx,
        rx: pong_rx,
        msg: patterned_msg(),
    };
    ctx.drive(role, control, child, (ping_rx, pong_tx), || {
        ping_pong(&mut pinger, &ctx.plan)
    })
}

/// A stream over a typed channel made by `pair`, received by the
/// consumer `consumer` makes of the receiving end.
pub(crate) fn typed_throughput<T, S: TypedTx<T>, R: TypedRx<T>, C: Consumer>(
    pair: PairFn<S, R>,
    capacity: usize,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
    consumer: impl FnOnce(R) -> C,
) -> Streamed {
    let (tx, rx) = pair(capacity).map_err(|e| format!("creating the channel: {e}"))?;
    let child = ctx.spawn(role, control, |cmd| {
        tx.link_region().pass_to_child(cmd, LINK_A_VAR);
    })?;
    let mut consumer = consumer(rx);
    ctx.drive(role, control, child, tx, || {
        stream(&mut consumer, control, &ctx.plan)
    })
}

/// The child's echo over two typed channels.
pub(crate) fn typed_echo<R: TypedRx<Msg>, S: TypedTx<Msg>>(
    control: &Control,
) -> Result<(), String> {
    // SAFETY: the parent passed this channel's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let rx =
        unsafe { R::open_env(LINK_A_VAR) }.map_err(|e| format!("opening the ping channel: {e}"))?;
    // SAFETY: as above, for LINK_B_VAR.
    let tx =
        unsafe { S::open_env(LINK_B_VAR) }.map_err(|e| format!("opening the pong channel: {e}"))?;
    serve_echo(control, TypedEchoer { rx, tx })
}

/// The child's producer over a typed channel, made by `producer` of
/// the sending end.
pub(crate) fn typed_produce<T, S: TypedTx<T>, P: Producer>(
    control: &Control,
    how: Wait,
    producer: impl FnOnce(S) -> P,
) -> Result<(), String> {
    // SAFETY: the parent passed this channel's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let tx = unsafe { S::open_env(LINK_A_VAR) }.map_err(|e| format!("opening the channel: {e}"))?;
    serve_stream(control, producer(tx), how)
}

/// Latency over two typed channels: a ping channel to the child and a
/// pong channel back.
pub(crate) fn latency(link: Link, ctx: &Ctx, role: &str, control: &Shm<Control>) -> Pings {
    match link {
        Link::Typed => typed_latency(channel::<Msg>, ctx, role, control),
        Link::Mpmc => typed_latency(mpmc_channel::<Msg>, ctx, role, control),
        _ => Err(format!("no shmkit latency measurement over {link:?}")),
    }
}

/// A stream over a typed channel, produced by the child.
pub(crate) fn throughput(
    link: Link,
    size: usize,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Streamed {
    match (link, size) {
        (Link::Typed, 8) => {
            typed_throughput(channel::<u64>, U64_CAPACITY, ctx, role, control, |rx| {
                U64Consumer { rx }
            })
        }
        (Link::TypedBatch, 8) => {
            typed_throughput(channel::<u64>, U64_CAPACITY, ctx, role, control, |rx| {
                U64BatchConsumer {
                    rx,
                    buf: vec![0; BATCH],
                }
            })
        }
        (Link::Mpmc, 8) => typed_throughput(
            mpmc_channel::<u64>,
            U64_CAPACITY,
            ctx,
            role,
            control,
            |rx| U64Consumer { rx },
        ),
        (Link::Typed, MSG) => {
            typed_throughput(channel::<Msg>, MSG_CAPACITY, ctx, role, control, |rx| {
                MsgConsumer { rx }
            })
        }
        (Link::Mpmc, MSG) => typed_throughput(
            mpmc_channel::<Msg>,
            MSG_CAPACITY,
            ctx,
            role,
            control,
            |rx| MsgConsumer { rx },
        ),
        _ => Err(format!(
            "no shmkit stream of {size}-byte messages over {link:?}"
        )),
    }
}

/// The child's echo over two typed channels.
pub(crate) fn echo(link: Link, control: &Control) -> Result<(), String> {
    match link {
        Link::Typed => typed_echo::<Receiver<Msg>, Sender<Msg>>(control),
        Link::Mpmc => typed_echo::<MpmcReceiver<Msg>, MpmcSender<Msg>>(control),
        _ => Err(format!("no shmkit echo over {link:?}")),
    }
}

/// The child's producer over a typed channel.
pub(crate) fn produce(link: Link, size: usize, control: &Control, how: Wait) -> Result<(), String> {
    match (link, size) {
        (Link::Typed, 8) => typed_produce(control, how, |tx: Sender<u64>| U64Producer { tx }),
        (Link::TypedBatch, 8) => typed_produce(control, how, |tx: Sender<u64>| U64BatchProducer {
            tx,
            buf: vec![0; BATCH],
        }),
        (Link::Mpmc, 8) => typed_produce(control, how, |tx: MpmcSender<u64>| U64Producer { tx }),
        (Link::Typed, MSG) => typed_produce(control, how, |tx: Sender<Msg>| MsgProducer {
            tx,
            msg: patterned_msg(),
        }),
        (Link::Mpmc, MSG) => typed_produce(control, how, |tx: MpmcSender<Msg>| MsgProducer {
            tx,
            msg: patterned_msg(),
        }),
        _ => Err(format!(
            "no shmkit stream of {size}-byte messages over {link:?}"
        )),
    }
}

pub(crate) struct TypedPinger<S, R> {
    tx: S,
    rx: R,
    msg: Msg,
}

impl<S: TypedTx<Msg>, R: TypedRx<Msg>> Pinger for TypedPinger<S, R> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx
            .send(self.msg)
            .map_err(|e| format!("sending ping {seq}: {e}"))?;
        let echo = self
            .rx
            .recv()
            .map_err(|e| format!("receiving echo {seq}: {e}"))?;
        check_msg(&echo, MSG, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .send(self.msg)
            .map_err(|e| format!("sending the stop message: {e}"))
    }
}

pub(crate) struct TypedEchoer<R, S> {
    rx: R,
    tx: S,
}

impl<R: TypedRx<Msg>, S: TypedTx<Msg>> Echoer for TypedEchoer<R, S> {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let msg = self
            .rx
            .recv()
            .map_err(|e| format!("receiving a ping: {e}"))?;
        if read_stamp(&msg)? == STOP {
            return Ok(false);
        }
        self.tx
            .send(msg)
            .map_err(|e| format!("sending an echo: {e}"))?;
        Ok(true)
    }
}

pub(crate) struct U64Producer<S> {
    tx: S,
}

impl<S: TypedTx<u64>> Producer for U64Producer<S> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            self.tx
                .send(seq)
                .map_err(|e| format!("sending {seq}: {e}"))?;
        }
        Ok(())
    }
}

pub(crate) struct U64Consumer<R> {
    rx: R,
}

impl<R: TypedRx<u64>> Consumer for U64Consumer<R> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            let v = self
                .rx
                .recv()
                .map_err(|e| format!("receiving {seq}: {e}"))?;
            if v != seq {
                return Err(out_of_sequence(v, seq));
            }
        }
        Ok(())
    }
}

pub(crate) struct U64BatchProducer {
    tx: Sender<u64>,
    buf: Vec<u64>,
}

impl Producer for U64BatchProducer {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        let end = first + count;
        let mut seq = first;
        while seq < end {
            let k = (end - seq).min(self.buf.len() as u64) as usize;
            for (i, v) in self.buf[..k].iter_mut().enumerate() {
                *v = seq + i as u64;
            }
            self.tx
                .send_all(&self.buf[..k])
                .map_err(|e| format!("sending {seq}..{}: {e}", seq + k as u64))?;
            seq += k as u64;
        }
        Ok(())
    }
}

pub(crate) struct U64BatchConsumer {
    rx: Receiver<u64>,
    buf: Vec<u64>,
}

impl Consumer for U64BatchConsumer {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let end = first + count;
        let mut seq = first;
        while seq < end {
            let want = (end - seq).min(self.buf.len() as u64) as usize;
            let n = self
                .rx
                .recv_slice(&mut self.buf[..want])
                .map_err(|e| format!("receiving from {seq}: {e}"))?;
            let got = self
                .buf
                .get(..n)
                .ok_or_else(|| format!("recv_slice reported {n} values into room for {want}"))?;
            let mut wrong = 0;
            for (i, v) in got.iter().enumerate() {
                wrong |= v ^ (seq + i as u64);
            }
            if wrong != 0 {
                return Err(format!(
                    "a slice received from {seq} holds values out of sequence"
                ));
            }
            seq += n as u64;
        }
        Ok(())
    }
}

pub(crate) struct MsgProducer<S> {
    tx: S,
    msg: Msg,
}

impl<S: TypedTx<Msg>> Producer for MsgProducer<S> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            stamp(&mut self.msg, seq);
            self.tx
                .send(self.msg)
                .map_err(|e| format!("sending message {seq}: {e}"))?;
        }
        Ok(())
    }
}

pub(crate) struct MsgConsumer<R> {
    rx: R,
}

impl<R: TypedRx<Msg>> Consumer for MsgConsumer<R> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            let msg = self
                .rx
                .recv()
                .map_err(|e| format!("receiving message {seq}: {e}"))?;
            check_msg(&msg, MSG, seq)?;
        }
        Ok(())
    }
}
