//! The errors of spawning and joining processes.

use super::{DecodeError, ExitStatus, JoinHandle};
use std::fmt;
use std::io;

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// This process was itself started as a worker but its `main` did not
    /// call [`init`](super::init) first (or, in a test binary, the file has
    /// no [`process_test_support!`](crate::process_test_support)); spawning
    /// from here would start the same program again without end.
    #[error("this process was started as a shmkit worker but did not call shmkit::process::init() first in main (or process_test_support!() in a test file)")]
    NotInitialized,
    /// The function is not code of this program's executable (it lives in
    /// a library loaded at run time, say): a child could not find it.
    #[error("the function is not code of this executable (a library loaded at run time?): a child cannot find it")]
    ForeignFunction,
    /// The settings do not go together.
    #[error("{why}")]
    Config {
        /// Which rule they break.
        why: &'static str,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { op, source }
    }
}

/// Why a child's function gave no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The function panicked; its message (and where) came back.
    #[error("the child panicked: {message}")]
    Panicked {
        /// The panic's message, `at file:line:column` included when known.
        message: String,
    },
    /// The child ended without a result: killed by a signal, or exited by
    /// `std::process::exit` (or `abort`) inside the function.
    #[error("the child ended without a result ({0})")]
    Ended(ExitStatus),
    /// The child exited without running the function: its `main` does not
    /// call [`init`](super::init) first, or the test file has no
    /// [`process_test_support!`](crate::process_test_support).
    #[error("the child never ran the function ({0}): call shmkit::process::init() first in main, or process_test_support!() in the test file")]
    NotStarted(ExitStatus),
    /// The argument did not decode in the child, or the result did not
    /// decode here.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error the system gave.
        #[source]
        source: io::Error,
    },
}

impl JoinError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { op, source }
    }
}

/// Why [`JoinHandle::join_timeout`] gave no result: the child still runs
/// (its handle comes back), or it ended without one.
#[non_exhaustive]
pub enum JoinTimeoutError<R> {
    /// The child was still running when the time was up; here is its
    /// handle, to wait again, terminate or kill it.
    Timeout(JoinHandle<R>),
    /// The child ended without a result.
    Failed(JoinError),
}

impl<R> fmt::Debug for JoinTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(h) => f.debug_tuple("Timeout").field(&h.pid()).finish(),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<R> fmt::Display for JoinTimeoutError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(h) => write!(f, "child {} still running when the time was up", h.pid()),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<R> std::error::Error for JoinTimeoutError<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout(_) => None,
            Self::Failed(e) => Some(e),
        }
    }
}

impl<R> From<JoinError> for JoinTimeoutError<R> {
    fn from(e: JoinError) -> Self {
        Self::Failed(e)
    }
}
