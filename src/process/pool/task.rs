//! What a pool hands back: [`TaskHandle`], the [`Imap`] iterators, and the
//! errors of a task.

use super::state::{Body, Outcome, State};
use super::wire;
use super::{ProcessPool, Shared};
use crate::process::payload::{decode_many, DecodeError, Payload};
use crate::process::ExitStatus;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a task gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked in the worker; the worker lives on.
    #[error("the task panicked: {message}")]
    Panicked {
        /// The panic's message, with where it was raised.
        message: String,
    },
    /// The worker running the task ended (killed, crashed, or exited)
    /// before it finished; the worker was replaced.
    #[error("the worker running the task ended ({status})")]
    WorkerDied {
        /// How the worker ended: [`ExitStatus::Signal`] with the signal
        /// that killed it, say.
        status: ExitStatus,
    },
    /// The task ran past its timeout; its worker was killed and replaced.
    #[error("the task ran past its timeout of {after:?}; its worker was killed and replaced")]
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The task was cancelled before it started.
    #[error("the task was cancelled before it started")]
    Cancelled,
    /// The pool was closed, or shut down, before the task ran.
    #[error("the pool was closed before the task ran")]
    PoolClosed,
    /// The pool's initializer failed, so no worker can run tasks.
    #[error("the pool's initializer failed: {message}")]
    InitializerFailed {
        /// The initializer's panic message, or how its worker ended.
        message: String,
    },
    /// The function is not code of this program's executable (it lives
    /// in a library loaded at run time, say): a worker could not find it.
    #[error("the function is not code of this executable (a library loaded at run time?): a worker cannot find it")]
    ForeignFunction,
    /// A worker could not be started.
    #[error("a pool worker could not be started: {message}")]
    Spawn {
        /// The error the system gave.
        message: String,
    },
    /// The argument did not decode in the worker, or the result did not
    /// decode here.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// How [`ProcessPool::shutdown`] treats the tasks it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shutdown {
    /// Runs every queued task to the end, then stops the workers (Python's
    /// `close()` then `join()`; `Executor.shutdown(wait=True)`).
    Wait,
    /// Cancels the queued tasks ([`TaskError::Cancelled`]), lets the
    /// running ones finish, then stops the workers
    /// (`shutdown(cancel_futures=True)`).
    CancelPending,
    /// Kills the workers at once; every task not done fails with
    /// [`TaskError::PoolClosed`] (Python's `terminate()`). Dropping the
    /// pool does this.
    Kill,
}

/// A task given to a [`ProcessPool`]: wait for its result, or cancel it
/// while it is still queued (Python's `AsyncResult`, `Future`).
///
/// Dropping the handle lets the task run; its result is thrown away.
pub struct TaskHandle<R> {
    shared: Arc<Shared>,
    id: u64,
    done: bool,
    _result: PhantomData<fn() -> R>,
}

/// Why [`TaskHandle::wait_timeout`] gave no result: not done yet (the
/// handle comes back), or it failed.
#[non_exhaustive]
pub enum WaitTimeoutError<R> {
    /// The task was not done when the time was up.
    Timeout(TaskHandle<R>),
    /// The task failed.
    Failed(TaskError),
}

impl<R> fmt::Debug for WaitTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("Timeout(..)"),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<R> fmt::Display for WaitTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("the task was not done when the time was up"),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<R> std::error::Error for WaitTimeoutError<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout(_) => None,
            Self::Failed(e) => Some(e),
        }
    }
}

impl<R> TaskHandle<R> {
    pub(super) fn new(shared: Arc<Shared>, id: u64) -> Self {
        Self {
            shared,
            id,
            done: false,
            _result: PhantomData,
        }
    }

    /// Whether the outcome is in (a result or an error).
    pub fn is_finished(&self) -> bool {
        let mut st = self.shared.lock();
        st.pump(&self.shared.spawner());
        matches!(st.outcomes.get(&self.id), Some(Some(_)) | None)
    }

    /// Cancels the task if no worker has it yet; `true` if it was
    /// cancelled (its wait then gives [`TaskError::Cancelled`]).
    pub fn cancel(&self) -> bool {
        let mut st = self.shared.lock();
        match st.pending.iter().position(|j| j.id == self.id) {
            Some(at) => {
                st.pending.remove(at);
                st.finish(self.id, Err(TaskError::Cancelled));
                true
            }
            None => false,
        }
    }
}

impl<R: Payload> TaskHandle<R> {
    /// Waits for the task's result.
    pub fn wait(mut self) -> Result<R, TaskError> {
        let id = self.id;
        let outcome = self.shared.wait_until(None, |st| Shared::take(st, id));
        self.done = true;
        single(outcome.unwrap_or(Err(TaskError::PoolClosed)))
    }

    /// Waits at most `timeout`; gives the handle back in
    /// [`WaitTimeoutError::Timeout`] if the task is not done.
    pub fn wait_timeout(self, timeout: Duration) -> Result<R, WaitTimeoutError<R>> {
        self.wait_deadline(Instant::now() + timeout)
    }

    /// Waits until `deadline`; gives the handle back in
    /// [`WaitTimeoutError::Timeout`] if the task is not done.
    pub fn wait_deadline(mut self, deadline: Instant) -> Result<R, WaitTimeoutError<R>> {
        let id = self.id;
        match self
            .shared
            .wait_until(Some(deadline), |st| Shared::take(st, id))
        {
            Some(outcome) => {
                self.done = true;
                single(outcome).map_err(WaitTimeoutError::Failed)
            }
            None => Err(WaitTimeoutError::Timeout(self)),
        }
    }
}

impl<R> Drop for TaskHandle<R> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.abandon(self.id);
        }
    }
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn malformed(why: &'static str) -> TaskError {
    DecodeError {
        what: "a task's outcome",
        why,
    }
    .into()
}

/// Reads one item's outcome from the front of a TAGGED body.
fn tagged_item<R: Payload>(body: &mut &[u8]) -> Result<R, TaskError> {
    let Some((&tag, rest)) = body.split_first() else {
        return Err(malformed("missing"));
    };
    *body = rest;
    match tag {
        wire::OK => Ok(R::decode(body)?),
        wire::PANIC => Err(TaskError::Panicked {
            message: String::decode(body)?,
        }),
        wire::BAD_ARGUMENT => Err(DecodeError {
            what: "the task's argument, in the worker",
            why: "did not decode",
        }
        .into()),
        _ => Err(malformed("unknown tag")),
    }
}

/// A task's outcome being handed out item by item.
enum Reading<R> {
    /// Every item succeeded: decoded in one go.
    Values(std::vec::IntoIter<R>),
    /// Items one at a time from a TAGGED body, from `pos` (its shared
    /// blocks held until it is dropped).
    Tagged { body: Body, pos: usize, left: u32 },
    /// The task failed as a whole: `left` more items get this.
    Failed { error: TaskError, left: u32 },
}

impl<R: Payload> Reading<R> {
    fn new(outcome: Outcome, count: u32) -> Self {
        let body = match outcome {
            Ok(body) => body,
            Err(error) => return Self::Failed { error, left: count },
        };
        let failed = |why| Self::Failed {
            error: malformed(why),
            left: count,
        };
        match body.bytes.split_first() {
            Some((&wire::PLAIN, mut rest)) => match decode_many::<R>(count as usize, &mut rest) {
                Ok(v) if rest.is_empty() => Self::Values(v.into_iter()),
                Ok(_) => failed("trailing bytes"),
                Err(e) => Self::Failed {
                    error: e.into(),
                    left: count,
                },
            },
            Some((&wire::TAGGED, _)) => Self::Tagged {
                body,
                pos: 1,
                left: count,
            },
            _ => failed("unknown body"),
        }
    }

    fn next(&mut self) -> Option<Result<R, TaskError>> {
        match self {
            Self::Values(v) => v.next().map(Ok),
            Self::Failed { error, left } => {
                *left = left.checked_sub(1)?;
                Some(Err(error.clone()))
            }
            Self::Tagged { body, pos, left } => {
                *left = left.checked_sub(1)?;
                let mut rest = body.bytes.get(*pos..).unwrap_or_default();
                let before = rest.len();
                let got = tagged_item::<R>(&mut rest);
                *pos += before - rest.len();
                Some(got)
            }
        }
    }
}

/// Every item of a task of `count` items whose body is `bytes` (for the
/// test hooks).
pub(crate) fn read_all<R: Payload>(bytes: Vec<u8>, count: u32) -> Vec<Result<R, TaskError>> {
    let body = Body {
        bytes,
        _held: Default::default(),
    };
    let mut r = Reading::<R>::new(Ok(body), count);
    std::iter::from_fn(|| r.next()).collect()
}

/// The result of a one-item task.
fn single<R: Payload>(outcome: Outcome) -> Result<R, TaskError> {
    Reading::<R>::new(outcome, 1)
        .next()
        .unwrap_or_else(|| Err(malformed("missing")))
}

/// The results of [`ProcessPool::imap`] and its kin, as they come: each
/// item's `Result`, in order or as done.
///
/// Items are taken from the input as results are consumed, a few tasks per
/// worker ahead. Dropping the iterator lets the tasks out run, and throws
/// their results away.
pub struct Imap<'p, A, R, I> {
    pool: &'p ProcessPool,
    f: fn(A) -> R,
    items: std::iter::Fuse<I>,
    chunksize: usize,
    ordered: bool,
    /// Tasks out: id and item count, in submission order.
    window: VecDeque<(u64, u32)>,
    reading: Option<Reading<R>>,
}

impl<'p, A: Payload, R: Payload, I: Iterator<Item = A>> Imap<'p, A, R, I> {
    pub(super) fn new(
        pool: &'p ProcessPool,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        Self {
            pool,
            f,
            items: items.fuse(),
            chunksize: chunksize.clamp(1, u32::MAX as usize),
            ordered,
            window: VecDeque::new(),
            reading: None,
        }
    }

    /// Submits tasks until the window is full or the items run out.
    fn fill(&mut self) {
        let limit = self.pool.workers() * super::PREFETCH * 2;
        while self.window.len() < limit {
            let chunk: Vec<A> = self.items.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                return;
            }
            let count = chunk.len() as u32;
            let (args, attached) = crate::process::shared::collect(|| {
                let mut args = Vec::new();
                A::encode_slice(&chunk, &mut args);
                args
            });
            let timeout = self.pool.shared.config.task_timeout;
            let id = self.pool.shared.enqueue(
                self.pool
                    .job::<A, R>(self.f, count, args, attached, timeout),
            );
            self.window.push_back((id, count));
        }
    }
}

impl<A: Payload, R: Payload, I: Iterator<Item = A>> Iterator for Imap<'_, A, R, I> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = &mut self.reading {
                if let Some(got) = r.next() {
                    return Some(got);
                }
                self.reading = None;
            }
            self.fill();
            if self.window.is_empty() {
                return None;
            }
            let ordered = self.ordered;
            let window = &self.window;
            let (at, outcome) = self.pool.shared.wait_until(None, |st: &mut State| {
                let at = if ordered {
                    0
                } else {
                    window
                        .iter()
                        .position(|(id, _)| !matches!(st.outcomes.get(id), Some(None)))?
                };
                Shared::take(st, window[at].0).map(|o| (at, o))
            })?;
            let (_, count) = self.window.remove(at).expect("index from the window");
            self.reading = Some(Reading::new(outcome, count));
        }
    }
}

impl<A, R, I> Drop for Imap<'_, A, R, I> {
    fn drop(&mut self) {
        for (id, _) in self.window.drain(..) {
            self.pool.shared.abandon(id);
        }
    }
}

impl<A, R, I> fmt::Debug for Imap<'_, A, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("chunksize", &self.chunksize)
            .field("ordered", &self.ordered)
            .field("tasks_out", &self.window.len())
            .finish_non_exhaustive()
    }
}
