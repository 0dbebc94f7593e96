//! Processes: start a function of this program or any command in a child,
//! follow its life through a pidfd, and get its result back through shared
//! memory.
//!
//! A child that runs a function is this same program started again (as
//! Python's `spawn` start method does, never `fork` alone, which is unsafe
//! in a program with threads): the child's `main` begins with [`init`],
//! which turns it into the worker and never returns there. The function is
//! any `fn(A) -> R` (a closure that captures nothing is one) whose argument
//! and result are [`Payload`]s: plain data as its bytes, strings, vectors,
//! options and tuples framed, anything else as bytes you serialize.
//!
//! ```
//! use shmkit::process::{self, ExitStatus, JoinError};
//! use std::time::Duration;
//!
//! fn count_primes(below: u64) -> u64 {
//!     (2..below).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count() as u64
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     process::init(); // first: a child becomes its worker here
//!
//!     let child = process::spawn(count_primes, 100_000)?;
//!     println!("child {} is counting", child.pid());
//!     assert_eq!(child.join()?, 9592);
//!
//!     // A panic comes back as a value, with its message.
//!     let child = process::spawn(|x: u32| -> u32 { panic!("no {x} today") }, 7)?;
//!     match child.join() {
//!         Err(JoinError::Panicked { message }) => assert!(message.starts_with("no 7 today")),
//!         other => panic!("{other:?}"),
//!     }
//!
//!     // Stop one that takes too long: terminate (SIGTERM), then kill.
//!     let mut sleeper = process::spawn(|s: u64| std::thread::sleep(Duration::from_secs(s)), 60)?;
//!     assert_eq!(sleeper.child_mut().wait_timeout(Duration::from_millis(50))?, None);
//!     sleeper.terminate()?;
//!     assert_eq!(sleeper.child_mut().wait()?, ExitStatus::Signal(15));
//!     Ok(())
//! }
//! ```
//!
//! # Coming from Python
//!
//! | Python | `shmkit::process` |
//! |---|---|
//! | `Process(target=f, args=(x,)).start()` | [`spawn(f, x)`](spawn); [`Builder`] for the options |
//! | `subprocess.Popen(cmd)` | [`spawn_command(cmd)`](spawn_command) |
//! | `p.pid`, `p.is_alive()` | [`Child::pid`], [`Child::is_alive`] |
//! | `p.join()`, `p.join(timeout)` | [`Child::wait`], [`Child::wait_timeout`]; [`JoinHandle::join`] also gives the function's result |
//! | `p.exitcode` (`3`, `-9`) | [`Child::exit_status`]: [`ExitStatus::Code`]`(3)`, [`ExitStatus::Signal`]`(9)` |
//! | `p.terminate()`, `p.kill()` | [`Child::terminate`] (SIGTERM), [`Child::kill`] (SIGKILL) |
//! | `multiprocessing.connection.wait(sentinels)` | [`wait_any`], [`wait_all`]; a [`Child`] is a pollable pidfd (`AsFd`) |
//! | `daemon=True` | the default (children die with the parent, even on `SIGKILL`); [`Builder::survive_parent`] to outlive it |
//! | an exception in the child | [`JoinError::Panicked`] with the message |
//! | pickled arguments | [`Payload`]: plain data as its bytes ([`Plain`]), strings, vectors, options, tuples; `Serde<T>` with the `serde` feature |
//! | `multiprocessing.shared_memory` for a large argument or result | [`SharedBytes`]: written once in a block of the pool's shared memory ([`PoolBuilder::shared_blocks`], [`ProcessPool::loan_bytes`], [`loan_bytes`] in a worker), read in place on the other side, given back when the last holder drops it or dies (no resource tracker to unlink it under a live user) |
//! | `Pool(n)`, `ProcessPoolExecutor(n)` | [`ProcessPool::builder`]`().workers(n).build()`, [`ProcessPool::new`] |
//! | `initializer=f, initargs=(a,)` | [`PoolBuilder::initializer`]`(f, a)` |
//! | `maxtasksperchild=n`, `max_tasks_per_child=n` | [`PoolBuilder::max_tasks_per_child`] |
//! | `pool.apply(f, (x,))` | [`ProcessPool::apply`] |
//! | `pool.apply_async(f, (x,))`, `executor.submit(f, x)` | [`ProcessPool::submit`] → [`TaskHandle`] |
//! | `result.get(timeout)`, `future.result(timeout)` | [`TaskHandle::wait`], [`TaskHandle::wait_timeout`] |
//! | `future.cancel()`, `future.done()` | [`TaskHandle::cancel`], [`TaskHandle::is_finished`] |
//! | `pool.map(f, xs, chunksize)` | [`ProcessPool::map`], [`ProcessPool::map_chunked`] |
//! | `pool.imap(f, xs)`, `pool.imap_unordered(f, xs)` | [`ProcessPool::imap`], [`ProcessPool::imap_unordered`] (and `_chunked`) |
//! | `pebble`'s `schedule(f, timeout=t)` | [`ProcessPool::submit_timeout`], [`PoolBuilder::task_timeout`] |
//! | `pool.close(); pool.join()` | [`ProcessPool::close`]; [`ProcessPool::shutdown`]`(`[`Shutdown::Wait`]`)` |
//! | `executor.shutdown(cancel_futures=True)` | [`ProcessPool::shutdown`]`(`[`Shutdown::CancelPending`]`)` |
//! | `pool.terminate()` | [`ProcessPool::shutdown`]`(`[`Shutdown::Kill`]`)`, or drop the pool |
//! | a worker killed: `Pool` hangs, `ProcessPoolExecutor` raises `BrokenProcessPool` for everything | that task alone fails with [`TaskError::WorkerDied`]; the worker is replaced ([`PoolBuilder::retries`] runs it again instead) |
//!
//! # What a task is, and what a worker's death costs
//!
//! A task is one [`submit`](ProcessPool::submit), or one chunk of a
//! [`map`](ProcessPool::map) (as in Python, where `chunksize` items make
//! one task). A panic fails only its own item. A worker that dies fails
//! the task it was running, and only that one: the tasks queued behind it
//! go to other workers, and nothing that was done is lost. With
//! [`PoolBuilder::retries`] the task runs again (so it may run twice: make
//! it idempotent); a timeout is never retried.
//!
//! # Lifetimes and liveness
//!
//! Every child is watched through a pidfd, so a pid the system reused for
//! another process is never waited on or signalled by mistake. A child is
//! killed when its parent dies (by any death, `SIGKILL` included) unless
//! it was started with [`Builder::survive_parent`]: Linux's parent-death
//! signal, armed from a thread that lives as long as the process. A
//! dropped handle leaves its child running and reaps it when it ends.
//!
//! # Test binaries and benches
//!
//! A test binary's `main` is the test harness's: invoke
//! [`process_test_support!()`](crate::process_test_support) once in each
//! test file instead of calling [`init`]. Examples and benchmarks with
//! `harness = false` have a `main` of their own and call [`init`] there.

mod call;
mod child;
mod entry;
mod error;
mod payload;
mod pool;
mod shared;
#[doc(hidden)]
pub(crate) use pool::{task as pool_task, wire as pool_wire};
mod spawner;
mod worker;

pub use call::JoinHandle;
pub use child::{wait_all, wait_any, Child, ExitStatus};
pub use entry::init;
pub use error::{JoinError, JoinTimeoutError, SpawnError};
#[cfg(feature = "serde")]
pub use payload::Serde;
pub use payload::{DecodeError, Payload, Plain};
pub use pool::{Imap, PoolBuilder, ProcessPool, Shutdown, TaskError, TaskHandle, WaitTimeoutError};
pub use shared::{loan_bytes, BytesLoan, LoanBytesError, SharedBytes};

use crate::sys::proc as sys;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts `f(arg)` in a child process with the default [`Builder`].
///
/// The argument is encoded into shared memory here and decoded in the
/// child; the result travels back the same way to
/// [`JoinHandle::join`]. This program's `main` must call [`init`] first
/// (see the [module docs](self)).
pub fn spawn<A: Payload, R: Payload>(f: fn(A) -> R, arg: A) -> Result<JoinHandle<R>, SpawnError> {
    Builder::new().spawn(f, arg)
}

/// Starts a command in a child process with the default [`Builder`]: it is
/// watched through a pidfd and killed if this process dies.
pub fn spawn_command(cmd: Command) -> Result<Child, SpawnError> {
    Builder::new().spawn_command(cmd)
}

/// How to start a child: whether it outlives this process, its
/// environment, the regions it inherits, its standard streams.
///
/// ```
/// use shmkit::channel::{Receiver, Sender};
/// use shmkit::process::{self, Builder};
///
/// fn sum_all(_: ()) -> u64 {
///     // SAFETY: the parent passed this descriptor for this end only.
///     let rx = unsafe { Receiver::<u64>::from_env("SUMS") }.unwrap();
///     rx.iter().sum()
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     process::init();
///     let tx = Sender::<u64>::anonymous(1024)?; // the child makes the other end
///     let child = Builder::new().pass_region("SUMS", tx.region())?.spawn(sum_all, ())?;
///     for i in 0..1000 {
///         tx.send(i)?;
///     }
///     drop(tx);
///     assert_eq!(child.join()?, 499_500);
///     Ok(())
/// }
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    survive_parent: bool,
    env: Vec<(OsString, OsString)>,
    inherit: Vec<OwnedFd>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl Builder {
    /// A child that dies with this process, inherits its environment,
    /// standard output and error, and reads standard input from
    /// `/dev/null` (a function child) or this process's (a command).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the child keeps running after this process dies (default
    /// `false`: it is killed then, as Python's daemon processes are when
    /// their parent exits).
    pub fn survive_parent(mut self, survive: bool) -> Self {
        self.survive_parent = survive;
        self
    }

    /// Sets an environment variable in the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Has the child inherit `region`'s descriptor under the environment
    /// variable `var`, to open it there with
    /// [`RegionOptions::from_env`](crate::RegionOptions::from_env) or a
    /// channel end's `from_env`.
    pub fn pass_region(mut self, var: &str, region: &crate::Region) -> Result<Self, SpawnError> {
        let fd = crate::sys::fd::dup(region.as_fd()).map_err(|e| SpawnError::Io {
            op: "dup",
            source: std::io::Error::other(e),
        })?;
        self.env
            .push((var.into(), fd.as_raw_fd().to_string().into()));
        self.inherit.push(fd);
        Ok(self)
    }

    /// The child's standard input.
    pub fn stdin(mut self, cfg: impl Into<Stdio>) -> Self {
        self.stdin = Some(cfg.into());
        self
    }

    /// The child's standard output.
    pub fn stdout(mut self, cfg: impl Into<Stdio>) -> Self {
        self.stdout = Some(cfg.into());
        self
    }

    /// The child's standard error.
    pub fn stderr(mut self, cfg: impl Into<Stdio>) -> Self {
        self.stderr = Some(cfg.into());
        self
    }

    /// Starts `f(arg)` in a child process; see [`spawn`].
    pub fn spawn<A: Payload, R: Payload>(
        self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<JoinHandle<R>, SpawnError> {
        let scratch = sys::scratch_memfd().map_err(SpawnError::io("memfd_create"))?;
        let arg = payload::to_bytes(&arg);
        let exe = sys::exe_identity().map_err(SpawnError::io("stat /proc/self/exe"))?;
        let trampoline: entry::Trampoline = entry::call_one::<A, R>;
        let (Some(trampoline), Some(function)) = (
            entry::offset_of(trampoline as usize),
            entry::offset_of(f as usize),
        ) else {
            return Err(SpawnError::ForeignFunction);
        };
        let head = call::header(exe, trampoline, function, arg.len() as u64);
        let write = SpawnError::io("pwrite");
        sys::write_full_at(&scratch, &head, 0).map_err(write)?;
        sys::write_full_at(&scratch, &arg, call::ARG_OFFSET).map_err(SpawnError::io("pwrite"))?;
        let mut cmd = self.worker_command("call", &[scratch.as_raw_fd()])?;
        if self.stdin.is_none() {
            cmd.stdin(Stdio::null());
        }
        let child = self.start(cmd)?;
        Ok(JoinHandle::new(child, scratch))
    }

    /// Starts a command in a child process; see [`spawn_command`].
    pub fn spawn_command(self, cmd: Command) -> Result<Child, SpawnError> {
        self.start(cmd)
    }

    /// A command that runs this executable as a worker of `mode` over
    /// `fds` (inherited; the caller keeps them open until the spawn).
    pub(crate) fn worker_command(
        &self,
        mode: &str,
        fds: &[std::os::fd::RawFd],
    ) -> Result<Command, SpawnError> {
        if entry::skipped_init() {
            return Err(SpawnError::NotInitialized);
        }
        let mut cmd = Command::new("/proc/self/exe");
        if let Some(arg0) = std::env::args_os().next() {
            cmd.arg0(arg0);
        }
        cmd.args(entry::CHILD_ARGS);
        let list: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
        cmd.env(entry::ENV, format!("{mode}:{}", list.join(",")));
        for fd in fds {
            inherit(&mut cmd, *fd);
        }
        Ok(cmd)
    }

    /// Applies the settings to `cmd` and starts it.
    pub(crate) fn start(mut self, mut cmd: Command) -> Result<Child, SpawnError> {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for fd in &self.inherit {
            inherit(&mut cmd, fd.as_raw_fd());
        }
        if let Some(s) = self.stdin.take() {
            cmd.stdin(s);
        }
        if let Some(s) = self.stdout.take() {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr.take() {
            cmd.stderr(s);
        }
        let (child, pidfd) =
            spawner::spawn(cmd, !self.survive_parent).map_err(SpawnError::io("spawn"))?;
        Ok(Child::new(child, pidfd))
    }
}

/// Has the child keep descriptor `raw` open across its exec.
fn inherit(cmd: &mut Command, raw: std::os::fd::RawFd) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl(F_SETFD), which is async-signal-safe; `raw` is open in
    // the child because the caller keeps it open here until the spawn
    // returns (the builder or the handle being made owns it).
    unsafe {
        cmd.pre_exec(move || {
            // SAFETY: see above: open in the forked child, borrowed only
            // for this call.
            let fd = std::os::fd::BorrowedFd::borrow_raw(raw);
            crate::sys::fd::clear_cloexec(fd)
        });
    }
}
