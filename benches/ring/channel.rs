//! shmkit's typed channels, SPSC (`channel`) and MPMC (`mpmc_channel`):
//! `u64` and `[u8; 64]` streams, per message and (SPSC) in batches (their
//! `[u8; 64]` ping-pong rows are `support::typed_latency`).

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::{
    check_msg, out_of_sequence, patterned_array, stamp, Control, PairFn, TypedRx, TypedTx, Wait,
};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{Msg, BATCH, LINK_A_VAR, MSG, MSG_CAPACITY, U64_CAPACITY};
use shmkit::channel::{channel, mpmc_channel, MpmcSender, Receiver, Sender};
use shmkit::Shm;

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
            msg: patterned_array(),
        }),
        (Link::Mpmc, MSG) => typed_produce(control, how, |tx: MpmcSender<Msg>| MsgProducer {
            tx,
            msg: patterned_array(),
        }),
        _ => Err(format!(
            "no shmkit stream of {size}-byte messages over {link:?}"
        )),
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
