//! shmkit's byte channel: 64-byte records ping-ponged, and streams of
//! records of every size, received by copy.

use crate::control::Control;
use crate::latency::{ping_pong, serve_echo, Echoer, Pinger, Pings};
use crate::message::{check_msg, patterned, read_stamp, stamp};
use crate::plan::Ctx;
use crate::support::Wait;
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{BYTES_CAPACITY, BYTES_LATENCY_CAPACITY, LINK_A_VAR, LINK_B_VAR, MSG, STOP};
use shmkit::channel::{byte_channel, ByteReceiver, ByteSender};
use shmkit::Shm;

/// Latency over two byte channels: a ping channel to the child and a pong
/// channel back.
pub(crate) fn latency(ctx: &Ctx, role: &str, control: &Shm<Control>) -> Pings {
    let plan = &ctx.plan;
    let (ping_tx, ping_rx) = byte_channel(BYTES_LATENCY_CAPACITY, MSG)
        .map_err(|e| format!("creating the ping channel: {e}"))?;
    let (pong_tx, pong_rx) = byte_channel(BYTES_LATENCY_CAPACITY, MSG)
        .map_err(|e| format!("creating the pong channel: {e}"))?;
    let child = ctx.spawn(role, control, |cmd| {
        ping_rx.region().pass_to_child(cmd, LINK_A_VAR);
        pong_tx.region().pass_to_child(cmd, LINK_B_VAR);
    })?;
    let mut pinger = BytesPinger {
        tx: ping_tx,
        rx: pong_rx,
        msg: patterned(MSG),
        echo: Vec::with_capacity(MSG),
    };
    ctx.drive(role, control, child, (ping_rx, pong_tx), || {
        ping_pong(&mut pinger, plan)
    })
}

/// A stream of `size`-byte records over a byte channel, produced by the
/// child.
pub(crate) fn throughput(size: usize, ctx: &Ctx, role: &str, control: &Shm<Control>) -> Streamed {
    let plan = &ctx.plan;
    let (tx, rx) = byte_channel(BYTES_CAPACITY, size)
        .map_err(|e| format!("creating the byte channel: {e}"))?;
    let child = ctx.spawn(role, control, |cmd| {
        tx.region().pass_to_child(cmd, LINK_A_VAR);
    })?;
    let mut consumer = BytesConsumer {
        rx,
        msg: Vec::with_capacity(size),
        size,
    };
    ctx.drive(role, control, child, tx, || {
        stream(&mut consumer, control, plan)
    })
}

/// The child's echo over two byte channels.
pub(crate) fn echo(control: &Control) -> Result<(), String> {
    // SAFETY: the parent passed this channel's region with
    // `pass_to_child` under LINK_A_VAR for exactly this
    // purpose; nothing else in this process owns it, and this
    // is the only call for the variable.
    let rx = unsafe { ByteReceiver::from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the ping channel: {e}"))?;
    // SAFETY: as above, for LINK_B_VAR.
    let tx = unsafe { ByteSender::from_env(LINK_B_VAR) }
        .map_err(|e| format!("opening the pong channel: {e}"))?;
    serve_echo(
        control,
        BytesEchoer {
            rx,
            tx,
            msg: Vec::with_capacity(MSG),
        },
    )
}

/// The child's producer over a byte channel.
pub(crate) fn produce(size: usize, control: &Control, how: Wait) -> Result<(), String> {
    // SAFETY: the parent passed this channel's region with
    // `pass_to_child` under LINK_A_VAR for exactly this
    // purpose; nothing else in this process owns it, and this
    // is the only call for the variable.
    let tx = unsafe { ByteSender::from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the byte channel: {e}"))?;
    let msg = patterned(size);
    serve_stream(control, BytesProducer { tx, msg }, how)
}

pub(crate) struct BytesPinger {
    tx: ByteSender,
    rx: ByteReceiver,
    msg: Vec<u8>,
    echo: Vec<u8>,
}

impl Pinger for BytesPinger {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx
            .send(&self.msg)
            .map_err(|e| format!("sending ping {seq}: {e}"))?;
        let n = self
            .rx
            .recv(&mut self.echo)
            .map_err(|e| format!("receiving echo {seq}: {e}"))?;
        check_msg(received(&self.echo, n)?, MSG, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .send(&self.msg)
            .map_err(|e| format!("sending the stop message: {e}"))
    }
}

pub(crate) struct BytesEchoer {
    rx: ByteReceiver,
    tx: ByteSender,
    msg: Vec<u8>,
}

impl Echoer for BytesEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let n = self
            .rx
            .recv(&mut self.msg)
            .map_err(|e| format!("receiving a ping: {e}"))?;
        let msg = received(&self.msg, n)?;
        if read_stamp(msg)? == STOP {
            return Ok(false);
        }
        self.tx
            .send(msg)
            .map_err(|e| format!("sending an echo: {e}"))?;
        Ok(true)
    }
}

/// The `n` bytes a byte channel's `recv` reported into `buf`.
#[inline]
pub(crate) fn received(buf: &[u8], n: usize) -> Result<&[u8], String> {
    buf.get(..n)
        .filter(|m| m.len() >= 8)
        .ok_or_else(|| format!("recv reported {n} bytes, the buffer holds {}", buf.len()))
}

pub(crate) struct BytesProducer {
    tx: ByteSender,
    msg: Vec<u8>,
}

impl Producer for BytesProducer {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            stamp(&mut self.msg, seq);
            self.tx
                .send(&self.msg)
                .map_err(|e| format!("sending message {seq}: {e}"))?;
        }
        Ok(())
    }
}

pub(crate) struct BytesConsumer {
    rx: ByteReceiver,
    msg: Vec<u8>,
    size: usize,
}

impl Consumer for BytesConsumer {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            let n = self
                .rx
                .recv(&mut self.msg)
                .map_err(|e| format!("receiving message {seq}: {e}"))?;
            check_msg(received(&self.msg, n)?, self.size, seq)?;
        }
        Ok(())
    }
}
