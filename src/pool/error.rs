//! The pool's errors, one per kind of operation: a `try_` loan can find
//! its class exhausted, a timed loan can time out, a release can find the
//! block not held by this participant; every operation that reads shared
//! state can find it corrupted.

/// The pool's shared state holds a value no correct participant writes (a
/// peer scribbled on it): the only way [`Pool::reclaim`](super::Pool::reclaim)
/// can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pool state is corrupted: {0}")]
pub struct Corrupted(pub &'static str);

/// Why [`try_loan`](super::Pool::try_loan) (or
/// [`try_loan_value`](super::Pool::try_loan_value)) lent nothing.
///
/// ```
/// use shmkit::pool::{HeapPool, LoanError, PoolConfig};
///
/// let heap = HeapPool::new(&PoolConfig::new().class(64, 1))?;
/// let pool = heap.pool();
/// assert_eq!(pool.try_loan(65).unwrap_err(), LoanError::TooLarge { len: 65, max: 64 });
/// let _only = pool.try_loan(8)?;
/// assert_eq!(pool.try_loan(8).unwrap_err(), LoanError::Exhausted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoanError {
    /// No class has blocks of `len` bytes: it will never fit.
    #[error("a loan of {len} bytes exceeds the largest block of {max}")]
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest class's block size.
        max: usize,
    },
    /// Every block of the class is owned by a live participant.
    #[error("every block of the class is in use")]
    Exhausted,
    /// As [`Corrupted`].
    #[error("pool state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`loan_timeout`](super::Pool::loan_timeout) or
/// [`loan_deadline`](super::Pool::loan_deadline) lent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoanTimeoutError {
    /// As [`LoanError::TooLarge`].
    #[error("a loan of {len} bytes exceeds the largest block of {max}")]
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest class's block size.
        max: usize,
    },
    /// The deadline passed with every block of the class still owned by a
    /// live participant.
    #[error("timed out waiting for a free block")]
    Timeout,
    /// As [`Corrupted`].
    #[error("pool state is corrupted: {0}")]
    Corrupted(&'static str),
}

/// Why [`release_block`](super::Pool::release_block) released nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The pool has no such class or index.
    #[error("the pool has no block {index} in class {class}")]
    NoSuchBlock {
        /// The class asked for.
        class: u32,
        /// The index asked for.
        index: u32,
    },
    /// The block is not held as a [`BlockRef`](super::BlockRef) of this
    /// generation by this participant: released already, loaned again,
    /// reclaimed, lent out as a live [`Loan`](super::Loan), or another
    /// participant's.
    #[error("the block is not held by this participant under this generation")]
    NotHeld,
    /// As [`Corrupted`].
    #[error("pool state is corrupted: {0}")]
    Corrupted(&'static str),
}

impl From<Corrupted> for LoanError {
    fn from(Corrupted(w): Corrupted) -> Self {
        LoanError::Corrupted(w)
    }
}

impl From<Corrupted> for LoanTimeoutError {
    fn from(Corrupted(w): Corrupted) -> Self {
        LoanTimeoutError::Corrupted(w)
    }
}

impl From<Corrupted> for ReleaseError {
    fn from(Corrupted(w): Corrupted) -> Self {
        ReleaseError::Corrupted(w)
    }
}
