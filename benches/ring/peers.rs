//! The kernel's comparison peers for streams: pipes and a Unix stream
//! socket pair, blocking `write_all`/`read_exact` (their ping-pong rows
//! are `support::kernel_latency`).

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::{self, check_msg, inherited_fd, patterned, stamp, Control, Wait};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::LINK_A_VAR;
use shmkit::Shm;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

/// A pipe's or socket's writing end: one `write_all` per message.
pub(crate) struct StreamProducer<W> {
    tx: W,
    msg: Vec<u8>,
}

impl<W: Write> Producer for StreamProducer<W> {
    fn produce(&mut self, first: u64, count: u64) -> Result<(), String> {
        for seq in first..first + count {
            stamp(&mut self.msg, seq);
            self.tx
                .write_all(&self.msg)
                .map_err(|e| format!("writing message {seq}: {e}"))?;
        }
        Ok(())
    }
}

/// A pipe's or socket's reading end: one `read_exact` per message.
pub(crate) struct StreamConsumer<R> {
    rx: R,
    msg: Vec<u8>,
}

impl<R: Read> StreamConsumer<R> {
    fn new(rx: R, size: usize) -> Self {
        StreamConsumer {
            rx,
            msg: vec![0; size],
        }
    }
}

impl<R: Read> Consumer for StreamConsumer<R> {
    fn consume(&mut self, first: u64, count: u64) -> Result<(), String> {
        let len = self.msg.len();
        for seq in first..first + count {
            self.rx
                .read_exact(&mut self.msg)
                .map_err(|e| format!("reading message {seq}: {e}"))?;
            check_msg(&self.msg, len, seq)?;
        }
        Ok(())
    }
}

/// A stream over a pipe or a socket pair: the parent's side.
pub(crate) fn throughput(
    link: Link,
    size: usize,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Streamed {
    let plan = &ctx.plan;
    match link {
        Link::Pipe => {
            let (r, w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let child = ctx.spawn(role, control, |cmd| {
                support::pass_fd_to_child(cmd, w.as_fd(), LINK_A_VAR);
            })?;
            let mut consumer = StreamConsumer::new(File::from(r), size);
            ctx.drive(role, control, child, w, || {
                stream(&mut consumer, control, plan)
            })
        }
        Link::Unix => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let child = ctx.spawn(role, control, |cmd| {
                support::pass_fd_to_child(cmd, theirs.as_fd(), LINK_A_VAR);
            })?;
            let mut consumer = StreamConsumer::new(mine, size);
            ctx.drive(role, control, child, theirs, || {
                stream(&mut consumer, control, plan)
            })
        }
        _ => Err(format!("no stream over {link:?}")),
    }
}

/// The child's producer over a pipe or a socket.
pub(crate) fn produce(link: Link, size: usize, control: &Control, how: Wait) -> Result<(), String> {
    match link {
        Link::Pipe => {
            let tx: File = inherited_fd(LINK_A_VAR)?;
            let msg = patterned(size);
            serve_stream(control, StreamProducer { tx, msg }, how)
        }
        Link::Unix => {
            let tx: UnixStream = inherited_fd(LINK_A_VAR)?;
            let msg = patterned(size);
            serve_stream(control, StreamProducer { tx, msg }, how)
        }
        _ => Err(format!("no stream over {link:?}")),
    }
}
