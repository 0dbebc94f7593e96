//! One function run in a child: the scratch file that carries its argument
//! in and its outcome out, and [`JoinHandle`], which waits for it.
//!
//! ```text
//! offset  field        written by
//!      0  magic        parent   b"shmkPRC1"
//!      8  exe dev      parent   the parent's /proc/self/exe, which the
//!     16  exe ino      parent   child checks it runs too
//!     24  trampoline   parent   code offsets (see `entry`)
//!     32  function     parent
//!     40  arg_len      parent
//!     48  started      child    1 once it has taken over in `init`
//!     56  outcome      child    OK, PANIC or BAD_ARGUMENT, last
//!     64  out_len      child
//!   4096  argument     parent   arg_len bytes
//!      R  outcome      child    out_len bytes, R = 4096 + arg_len rounded
//!                               up to 4096
//! ```
//!
//! The file is a memfd only parent and child hold. The parent reads the
//! outcome once the child has ended (so nothing writes it any more), with
//! `pread`, checking every length against what is there.

use super::child::Child;
use super::entry;
use super::error::{JoinError, JoinTimeoutError};
use super::payload::{from_bytes, DecodeError, Payload};
use super::ExitStatus;
use crate::sys::proc as sys;
use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmkPRC1");
pub(crate) const ARG_OFFSET: u64 = 4096;
const WORDS: usize = 9;
pub(crate) const STARTED: u64 = 48;
pub(crate) const OUTCOME: u64 = 56;

pub(crate) const OK: u64 = 1;
pub(crate) const PANIC: u64 = 2;
pub(crate) const BAD_ARGUMENT: u64 = 3;

/// Where the outcome starts for an argument of `arg_len` bytes.
pub(crate) fn out_offset(arg_len: u64) -> u64 {
    ARG_OFFSET + arg_len.div_ceil(4096) * 4096
}

/// The header as the parent writes it (the child's words zero).
pub(crate) fn header(
    exe: (u64, u64),
    trampoline: u64,
    function: u64,
    arg_len: u64,
) -> [u8; WORDS * 8] {
    let words = [MAGIC, exe.0, exe.1, trampoline, function, arg_len, 0, 0, 0];
    let mut out = [0u8; WORDS * 8];
    out.copy_from_slice(bytemuck::cast_slice(&words));
    out
}

/// The header as read back: `None` if it is not one of ours.
pub(crate) fn read_header(fd: &OwnedFd) -> io::Result<Option<[u64; WORDS]>> {
    let mut words = [0u64; WORDS];
    let n = sys::read_full_at(fd, bytemuck::cast_slice_mut(&mut words), 0)?;
    Ok((n == WORDS * 8 && words[0] == MAGIC).then_some(words))
}

/// A function running in a child process, and the way to its result: what
/// [`spawn`](super::spawn) returns.
///
/// [`join`](Self::join) waits for the child to end and gives the
/// function's result, or why there is none (a panic with its message, a
/// signal, an exit before the end). The process itself is
/// [`child`](Self::child): its pid, whether it is alive, `terminate`,
/// `kill`, its exit status.
pub struct JoinHandle<R> {
    child: Child,
    scratch: OwnedFd,
    _result: PhantomData<fn() -> R>,
}

impl<R> JoinHandle<R> {
    pub(crate) fn new(child: Child, scratch: OwnedFd) -> Self {
        Self {
            child,
            scratch,
            _result: PhantomData,
        }
    }

    /// The child process.
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// The child process, to wait on it beside others
    /// ([`wait_any`](super::wait_any)) or to reap it.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the child is still running.
    pub fn is_alive(&mut self) -> io::Result<bool> {
        self.child.is_alive()
    }

    /// Sends `SIGTERM` to the child.
    pub fn terminate(&self) -> io::Result<()> {
        self.child.terminate()
    }

    /// Sends `SIGKILL` to the child.
    pub fn kill(&self) -> io::Result<()> {
        self.child.kill()
    }
}

impl<R: Payload> JoinHandle<R> {
    /// Waits for the child to end and returns the function's result.
    pub fn join(mut self) -> Result<R, JoinError> {
        let status = self.child.wait().map_err(JoinError::io("waitid"))?;
        self.outcome(status)
    }

    /// Waits at most `timeout` for the child to end; gives the handle back
    /// in [`JoinTimeoutError::Timeout`] if it still runs.
    pub fn join_timeout(self, timeout: Duration) -> Result<R, JoinTimeoutError<R>> {
        self.join_deadline(Instant::now() + timeout)
    }

    /// Waits until `deadline` for the child to end; gives the handle back
    /// in [`JoinTimeoutError::Timeout`] if it still runs.
    pub fn join_deadline(mut self, deadline: Instant) -> Result<R, JoinTimeoutError<R>> {
        match self.child.wait_deadline(Some(deadline)) {
            Ok(Some(status)) => Ok(self.outcome(status)?),
            Ok(None) => Err(JoinTimeoutError::Timeout(self)),
            Err(e) => Err(JoinError::io("waitid")(e).into()),
        }
    }

    /// Reads what the ended child left.
    fn outcome(&self, status: ExitStatus) -> Result<R, JoinError> {
        let read = JoinError::io("pread");
        let Some(words) = read_header(&self.scratch).map_err(read)? else {
            return Err(JoinError::Decode(DecodeError {
                what: "the child's outcome",
                why: "header overwritten",
            }));
        };
        let (arg_len, started, outcome, out_len) = (words[5], words[6], words[7], words[8]);
        if started != 1 {
            // Killed before it took over: something else stopped it.
            return Err(match status {
                ExitStatus::Signal(_) => JoinError::Ended(status),
                _ => JoinError::NotStarted(status),
            });
        }
        if ![OK, PANIC, BAD_ARGUMENT].contains(&outcome) {
            return Err(JoinError::Ended(status));
        }
        let at = out_offset(arg_len);
        let size = crate::sys::fd::info(std::os::fd::AsFd::as_fd(&self.scratch))
            .map(|i| i.size)
            .unwrap_or(0);
        if out_len > size.saturating_sub(at) {
            return Err(JoinError::Decode(DecodeError {
                what: "the child's outcome",
                why: "length beyond the file",
            }));
        }
        let mut bytes = vec![0u8; out_len as usize];
        let n = sys::read_full_at(&self.scratch, &mut bytes, at).map_err(JoinError::io("pread"))?;
        bytes.truncate(n);
        match outcome {
            OK => Ok(from_bytes::<R>(&bytes)?),
            PANIC => Err(JoinError::Panicked {
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }),
            _ => Err(JoinError::Decode(DecodeError {
                what: "the argument, in the child",
                why: "did not decode",
            })),
        }
    }
}

impl<R> std::fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

/// The child's side: runs the call described in `fd` and records the
/// outcome; returns the exit code.
pub(crate) fn serve(fd: OwnedFd) -> i32 {
    let Ok(Some(words)) = read_header(&fd) else {
        return super::worker::EXIT_BAD_SETUP;
    };
    let (dev, ino, trampoline, function, arg_len) =
        (words[1], words[2], words[3], words[4], words[5]);
    if sys::exe_identity().ok() != Some((dev, ino)) {
        eprintln!("shmkit: worker refused: not the parent's executable");
        return super::worker::EXIT_BAD_SETUP;
    }
    let mut arg = vec![0u8; usize::try_from(arg_len).unwrap_or(0)];
    match sys::read_full_at(&fd, &mut arg, ARG_OFFSET) {
        Ok(n) if n == arg.len() => {}
        _ => return super::worker::EXIT_BAD_SETUP,
    }
    if sys::write_full_at(&fd, &1u64.to_ne_bytes(), STARTED).is_err() {
        return super::worker::EXIT_BAD_SETUP;
    }
    // SAFETY: the header came from the parent, which runs this same
    // executable (checked just above by device and inode) and wrote
    // `offset_of` of a `call_one::<A, R>` instantiation there.
    let (Some(run), Some(f)) = (
        unsafe { entry::trampoline_at(trampoline) },
        entry::address_at(function),
    ) else {
        eprintln!("shmkit: worker refused: the function is not in this executable's code");
        return super::worker::EXIT_BAD_SETUP;
    };
    let mut out = Vec::new();
    let outcome = match super::worker::catch(|| run(f, &arg, &mut out)) {
        Ok(Ok(())) => OK,
        Ok(Err(_)) => BAD_ARGUMENT,
        Err(message) => {
            out = message.into_bytes();
            PANIC
        }
    };
    let at = out_offset(arg_len);
    let tail = [outcome, out.len() as u64];
    let written = sys::write_full_at(&fd, &out, at)
        .and_then(|()| sys::write_full_at(&fd, bytemuck::cast_slice(&tail), OUTCOME));
    match (written, outcome) {
        (Err(_), _) => super::worker::EXIT_BAD_SETUP,
        (Ok(()), PANIC) => 101,
        (Ok(()), _) => 0,
    }
}
