//! The kernel's comparison peers: pipes and a Unix stream socket pair,
//! blocking `write_all`/`read_exact`.

use crate::control::Control;
use crate::latency::{ping_pong, serve_echo, Echoer, Pinger, Pings};
use crate::link::Link;
use crate::message::{check_msg, patterned, read_stamp, stamp};
use crate::plan::Ctx;
use crate::support::{self, Wait};
use crate::throughput::{serve_stream, stream, Consumer, Producer, Streamed};
use crate::{Msg, LINK_A_VAR, LINK_B_VAR, MSG, STOP};
use shmkit::Shm;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

/// The parent's side of a pipe pair or socket: blocking 64-byte writes
/// and reads.
pub(crate) struct StreamPinger<W, R> {
    tx: W,
    rx: R,
    msg: Msg,
    echo: Msg,
}

impl<W: Write, R: Read> StreamPinger<W, R> {
    fn new(tx: W, rx: R) -> Self {
        let mut msg = [0; MSG];
        msg.copy_from_slice(&patterned(MSG));
        StreamPinger {
            tx,
            rx,
            msg,
            echo: [0; MSG],
        }
    }
}

impl<W: Write, R: Read> Pinger for StreamPinger<W, R> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        stamp(&mut self.msg, seq);
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing ping {seq}: {e}"))?;
        self.rx
            .read_exact(&mut self.echo)
            .map_err(|e| format!("reading echo {seq}: {e}"))?;
        check_msg(&self.echo, MSG, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing the stop message: {e}"))
    }
}

/// The child's side of a pipe pair or socket.
pub(crate) struct StreamEchoer<W, R> {
    tx: W,
    rx: R,
    msg: Msg,
}

impl<W: Write, R: Read> Echoer for StreamEchoer<W, R> {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        self.rx
            .read_exact(&mut self.msg)
            .map_err(|e| format!("reading a ping: {e}"))?;
        if read_stamp(&self.msg)? == STOP {
            return Ok(false);
        }
        self.tx
            .write_all(&self.msg)
            .map_err(|e| format!("writing an echo: {e}"))?;
        Ok(true)
    }
}

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

/// Latency over two pipes or a socket pair: the parent's side.
pub(crate) fn latency(link: Link, ctx: &Ctx, role: &str, control: &Shm<Control>) -> Pings {
    let plan = &ctx.plan;
    match link {
        Link::Pipe => {
            let (ping_r, ping_w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let (pong_r, pong_w) = support::pipe().map_err(|e| format!("pipe: {e}"))?;
            let child = ctx.spawn(role, control, |cmd| {
                support::pass_fd_to_child(cmd, ping_r.as_fd(), LINK_A_VAR);
                support::pass_fd_to_child(cmd, pong_w.as_fd(), LINK_B_VAR);
            })?;
            let mut pinger = StreamPinger::new(File::from(ping_w), File::from(pong_r));
            ctx.drive(role, control, child, (ping_r, pong_w), || {
                ping_pong(&mut pinger, plan)
            })
        }
        Link::Unix => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let child = ctx.spawn(role, control, |cmd| {
                support::pass_fd_to_child(cmd, theirs.as_fd(), LINK_A_VAR);
            })?;
            let reader = mine
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            let mut pinger = StreamPinger::new(mine, reader);
            ctx.drive(role, control, child, theirs, || {
                ping_pong(&mut pinger, plan)
            })
        }
        _ => Err(format!("no latency measurement over {link:?}")),
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

/// The child's echo over two pipes or a socket pair.
pub(crate) fn echo(link: Link, control: &Control) -> Result<(), String> {
    match link {
        Link::Pipe => {
            let rx: File = inherited_fd(LINK_A_VAR)?;
            let tx: File = inherited_fd(LINK_B_VAR)?;
            serve_echo(
                control,
                StreamEchoer {
                    tx,
                    rx,
                    msg: [0; MSG],
                },
            )
        }
        Link::Unix => {
            let tx: UnixStream = inherited_fd(LINK_A_VAR)?;
            let rx = tx
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            serve_echo(
                control,
                StreamEchoer {
                    tx,
                    rx,
                    msg: [0; MSG],
                },
            )
        }
        _ => Err(format!("no echo over {link:?}")),
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

/// The descriptor the parent passed under `var`, as a `T`.
pub(crate) fn inherited_fd<T: From<std::os::fd::OwnedFd>>(var: &str) -> Result<T, String> {
    // SAFETY: the parent passed this descriptor with `pass_fd_to_child`
    // under `var` for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    unsafe { support::fd_from_env(var) }.map(T::from)
}
