//! shmkit's byte channel: streams of records of every size, received by
//! copy (its ping-pong row is `support::bytes_latency`).

use crate::plan::Ctx;
use crate::support::{check_msg, patterned, received, stamp, Control, Wait};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{BYTES_CAPACITY, LINK_A_VAR};
use shmkit::channel::{byte_channel, ByteReceiver, ByteSender};
use shmkit::Shm;

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
