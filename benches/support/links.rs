//! Ping-pong over the links several benches measure: shmkit's typed
//! channels of byte arrays, its byte channel, and the kernel's pipes and
//! Unix stream sockets, with messages of any size. Each link has its
//! parent's side (create, spawn the echoing child, time the round trips)
//! and its child's side (open the inherited ends, echo).

use super::{
    check_msg, drive, fd_from_env, pass_fd_to_child, ping_pong, pipe, read_stamp, serve_echo,
    spawn_with_control, stamp, Control, Echoer, LatencyBudget, Pinger, Pings, Placement,
    LINK_A_VAR, LINK_B_VAR, STOP,
};
use bytemuck::Pod;
use shmkit::channel::{
    byte_channel, ByteReceiver, ByteSender, MpmcReceiver, MpmcSender, Receiver, Sender,
};
use shmkit::{Region, Shm};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Slots of the typed channels the latency rows ping-pong over (one
/// message is in flight at a time).
pub const TYPED_LATENCY_CAPACITY: usize = 4096;

/// A typed channel's sending end, SPSC or MPMC, as the rows use it.
pub trait TypedTx<T>: Sized {
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
pub trait TypedRx<T>: Sized {
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
pub type PairFn<S, R> = fn(usize) -> shmkit::Result<(S, R)>;

/// The parent's side of a typed channel of `[u8; N]` messages: stamps
/// the message, sends it, receives the echo and checks it.
pub struct TypedPinger<S, R, const N: usize> {
    tx: S,
    rx: R,
    msg: [u8; N],
}

impl<S: TypedTx<[u8; N]>, R: TypedRx<[u8; N]>, const N: usize> Pinger for TypedPinger<S, R, N> {
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
        check_msg(&echo, N, seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .send(self.msg)
            .map_err(|e| format!("sending the stop message: {e}"))
    }
}

/// The child's side of a typed channel: echoes every message.
pub struct TypedEchoer<R, S, const N: usize> {
    rx: R,
    tx: S,
}

impl<R: TypedRx<[u8; N]>, S: TypedTx<[u8; N]>, const N: usize> Echoer for TypedEchoer<R, S, N> {
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

/// Latency over two typed channels of `msg`'s type made by `pair`: a ping
/// channel to the child and a pong channel back.
pub fn typed_latency<S: TypedTx<[u8; N]>, R: TypedRx<[u8; N]>, const N: usize>(
    pair: PairFn<S, R>,
    msg: [u8; N],
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let (ping_tx, ping_rx) =
        pair(TYPED_LATENCY_CAPACITY).map_err(|e| format!("creating the ping channel: {e}"))?;
    let (pong_tx, pong_rx) =
        pair(TYPED_LATENCY_CAPACITY).map_err(|e| format!("creating the pong channel: {e}"))?;
    let child = spawn_with_control(role, control, placement, |cmd| {
        ping_rx.link_region().pass_to_child(cmd, LINK_A_VAR);
        pong_tx.link_region().pass_to_child(cmd, LINK_B_VAR);
    })?;
    let mut pinger = TypedPinger {
        tx: ping_tx,
        rx: pong_rx,
        msg,
    };
    drive(role, control, placement, child, (ping_rx, pong_tx), || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's echo over two typed channels of `[u8; N]`.
pub fn typed_echo<R: TypedRx<[u8; N]>, S: TypedTx<[u8; N]>, const N: usize>(
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

/// Bytes of a byte channel's ring for ping-pong messages of `len` bytes
/// (a power of two; a record is at most half the ring less 8 bytes).
pub fn byte_latency_capacity(len: usize) -> usize {
    (2 * (len + 8)).next_power_of_two().max(64 << 10)
}

/// The parent's side of a byte channel pair: the whole message copied in
/// (`send`) and out (`recv` into a `Vec`).
pub struct BytesPinger {
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
        check_msg(received(&self.echo, n)?, self.msg.len(), seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(&mut self.msg, STOP);
        self.tx
            .send(&self.msg)
            .map_err(|e| format!("sending the stop message: {e}"))
    }
}

/// The child's side of a byte channel pair: receives each message by
/// copy and sends it back.
pub struct BytesEchoer {
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
pub fn received(buf: &[u8], n: usize) -> Result<&[u8], String> {
    buf.get(..n)
        .filter(|m| m.len() >= 8)
        .ok_or_else(|| format!("recv reported {n} bytes, the buffer holds {}", buf.len()))
}

/// Latency over two byte channels carrying `msg` (its length; its
/// contents are sent with a stamp): a ping channel to the child and a pong
/// channel back.
pub fn bytes_latency(
    msg: Vec<u8>,
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let len = msg.len();
    let capacity = byte_latency_capacity(len);
    let (ping_tx, ping_rx) =
        byte_channel(capacity, len).map_err(|e| format!("creating the ping channel: {e}"))?;
    let (pong_tx, pong_rx) =
        byte_channel(capacity, len).map_err(|e| format!("creating the pong channel: {e}"))?;
    let child = spawn_with_control(role, control, placement, |cmd| {
        ping_rx.region().pass_to_child(cmd, LINK_A_VAR);
        pong_tx.region().pass_to_child(cmd, LINK_B_VAR);
    })?;
    let mut pinger = BytesPinger {
        tx: ping_tx,
        rx: pong_rx,
        msg,
        echo: Vec::with_capacity(len),
    };
    drive(role, control, placement, child, (ping_rx, pong_tx), || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's echo over two byte channels.
pub fn bytes_echo(control: &Control) -> Result<(), String> {
    // SAFETY: the parent passed this channel's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let rx = unsafe { ByteReceiver::from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the ping channel: {e}"))?;
    // SAFETY: as above, for LINK_B_VAR.
    let tx = unsafe { ByteSender::from_env(LINK_B_VAR) }
        .map_err(|e| format!("opening the pong channel: {e}"))?;
    let msg = Vec::with_capacity(tx.max_message());
    serve_echo(control, BytesEchoer { rx, tx, msg })
}

/// The kernel's byte streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelLink {
    /// Two pipes, one each way.
    Pipe,
    /// A Unix stream socket pair.
    Unix,
}

/// The parent's side of a pipe pair or socket: one blocking `write_all`
/// and one `read_exact` of the whole message per direction. `M` is the
/// message buffer (an array or a `Vec`).
pub struct StreamPinger<W, R, M> {
    tx: W,
    rx: R,
    msg: M,
    echo: M,
}

impl<W: Write, R: Read, M: AsRef<[u8]> + AsMut<[u8]>> Pinger for StreamPinger<W, R, M> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        stamp(self.msg.as_mut(), seq);
        self.tx
            .write_all(self.msg.as_ref())
            .map_err(|e| format!("writing ping {seq}: {e}"))?;
        self.rx
            .read_exact(self.echo.as_mut())
            .map_err(|e| format!("reading echo {seq}: {e}"))?;
        check_msg(self.echo.as_ref(), self.msg.as_ref().len(), seq)
    }

    fn stop(&mut self) -> Result<(), String> {
        stamp(self.msg.as_mut(), STOP);
        self.tx
            .write_all(self.msg.as_ref())
            .map_err(|e| format!("writing the stop message: {e}"))
    }
}

/// The child's side of a pipe pair or socket: reads each whole message
/// and writes it back.
pub struct StreamEchoer<W, R, M> {
    tx: W,
    rx: R,
    msg: M,
}

impl<W: Write, R: Read, M: AsRef<[u8]> + AsMut<[u8]>> Echoer for StreamEchoer<W, R, M> {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        self.rx
            .read_exact(self.msg.as_mut())
            .map_err(|e| format!("reading a ping: {e}"))?;
        if read_stamp(self.msg.as_ref())? == STOP {
            return Ok(false);
        }
        self.tx
            .write_all(self.msg.as_ref())
            .map_err(|e| format!("writing an echo: {e}"))?;
        Ok(true)
    }
}

/// Latency over two pipes or a socket pair carrying `msg` (the echo is
/// read into a copy of it).
pub fn kernel_latency<M: AsRef<[u8]> + AsMut<[u8]> + Clone>(
    link: KernelLink,
    msg: M,
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let echo = msg.clone();
    match link {
        KernelLink::Pipe => {
            let (ping_r, ping_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
            let (pong_r, pong_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
            let child = spawn_with_control(role, control, placement, |cmd| {
                pass_fd_to_child(cmd, ping_r.as_fd(), LINK_A_VAR);
                pass_fd_to_child(cmd, pong_w.as_fd(), LINK_B_VAR);
            })?;
            let mut pinger = StreamPinger {
                tx: File::from(ping_w),
                rx: File::from(pong_r),
                msg,
                echo,
            };
            drive(role, control, placement, child, (ping_r, pong_w), || {
                ping_pong(&mut pinger, budget)
            })
        }
        KernelLink::Unix => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let child = spawn_with_control(role, control, placement, |cmd| {
                pass_fd_to_child(cmd, theirs.as_fd(), LINK_A_VAR);
            })?;
            let reader = mine
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            let mut pinger = StreamPinger {
                tx: mine,
                rx: reader,
                msg,
                echo,
            };
            drive(role, control, placement, child, theirs, || {
                ping_pong(&mut pinger, budget)
            })
        }
    }
}

/// The child's echo over two pipes or a socket pair, reading messages
/// as long as `msg`.
pub fn kernel_echo<M: AsRef<[u8]> + AsMut<[u8]>>(
    link: KernelLink,
    msg: M,
    control: &Control,
) -> Result<(), String> {
    match link {
        KernelLink::Pipe => {
            let rx: File = inherited_fd(LINK_A_VAR)?;
            let tx: File = inherited_fd(LINK_B_VAR)?;
            serve_echo(control, StreamEchoer { tx, rx, msg })
        }
        KernelLink::Unix => {
            let tx: UnixStream = inherited_fd(LINK_A_VAR)?;
            let rx = tx
                .try_clone()
                .map_err(|e| format!("cloning the socket: {e}"))?;
            serve_echo(control, StreamEchoer { tx, rx, msg })
        }
    }
}

/// The descriptor the parent passed under `var`, as a `T`.
pub fn inherited_fd<T: From<OwnedFd>>(var: &str) -> Result<T, String> {
    // SAFETY: the parent passed this descriptor with `pass_fd_to_child`
    // under `var` for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    unsafe { fd_from_env(var) }.map(T::from)
}
