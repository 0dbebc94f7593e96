//! The sync layer's errors, one per kind of operation, each with only the
//! variants that operation can return.
//!
//! | operation | error |
//! |---|---|
//! | `lock`, `read`, `write`, [`Condvar`](super::Condvar) waits | [`LockError`] |
//! | `try_lock`, `try_read`, `try_write` | [`TryLockError`] |
//! | `lock_timeout`/`_deadline`, `read_…`, `write_…` | [`LockTimeoutError`] |
//! | `Semaphore::acquire`, the event's calls, snapshots (`available`, `parties`, …) | [`Corrupted`] |
//! | `Semaphore::try_acquire`, `Event::try_wait` | [`TryWaitError`] |
//! | `Semaphore::acquire_timeout`/`_deadline`, `Event::wait_timeout`/`_deadline` | [`WaitTimeoutError`] |
//! | `Semaphore::release`, `release_n` | [`ReleaseError`] |
//! | `Semaphore::acquire_permit` | [`AcquirePermitError`] |
//! | `Semaphore::try_acquire_permit` | [`TryAcquirePermitError`] |
//! | `Semaphore::acquire_permit_timeout`/`_deadline` | [`AcquirePermitTimeoutError`] |
//! | `Barrier::wait` | [`BarrierError`] |
//! | `Barrier::wait_timeout`/`_deadline` | [`BarrierTimeoutError`] |
//!
//! A blocking call's error converts into its `try_` and timed forms' errors
//! (`From`), so code that handles both can widen with `?`.

use std::fmt;

/// Defines a lock error enum: `OwnerDied(G)`, `NotRecoverable`, the extra
/// variants given, `Corrupted`; with `into_owner_died`, `map`, `Debug`
/// (not requiring `G: Debug`), `Display` and `Error`.
macro_rules! lock_error {
    (
        $(#[$meta:meta])*
        pub enum $name:ident<G> {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub enum $name<G> {
            /// Acquired, but the previous holder died while holding the lock.
            OwnerDied(G),
            /// A holder that died was not followed by `mark_consistent()`:
            /// the lock can never be taken again.
            NotRecoverable,
            $( $(#[$vmeta])* $variant, )*
            /// The lock's shared state holds a value no correct participant
            /// writes.
            Corrupted(&'static str),
        }

        impl<G> $name<G> {
            /// The guard of an `OwnerDied` error, `None` otherwise.
            pub fn into_owner_died(self) -> Option<G> {
                match self {
                    $name::OwnerDied(g) => Some(g),
                    _ => None,
                }
            }

            /// Applies `f` to the guard of an `OwnerDied` error.
            pub fn map<H>(self, f: impl FnOnce(G) -> H) -> $name<H> {
                match self {
                    $name::OwnerDied(g) => $name::OwnerDied(f(g)),
                    $name::NotRecoverable => $name::NotRecoverable,
                    $( $name::$variant => $name::$variant, )*
                    $name::Corrupted(w) => $name::Corrupted(w),
                }
            }
        }

        impl<G> fmt::Debug for $name<G> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::OwnerDied(_) => f.write_str("OwnerDied(..)"),
                    $name::NotRecoverable => f.write_str("NotRecoverable"),
                    $( $name::$variant => f.write_str(stringify!($variant)), )*
                    $name::Corrupted(w) => f.debug_tuple("Corrupted").field(w).finish(),
                }
            }
        }

        impl<G> fmt::Display for $name<G> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::OwnerDied(_) => f.write_str(
                        "the lock's previous holder died; its data may be inconsistent",
                    ),
                    $name::NotRecoverable => f.write_str("the lock is not recoverable"),
                    $( $name::$variant => f.write_str($text), )*
                    $name::Corrupted(w) => write!(f, "lock state is corrupted: {w}"),
                }
            }
        }

        impl<G> std::error::Error for $name<G> {}

        impl<G> From<RawLockError> for $name<G> {
            fn from(e: RawLockError) -> Self {
                match e {
                    RawLockError::NotRecoverable => $name::NotRecoverable,
                    RawLockError::Corrupted(w) => $name::Corrupted(w),
                    RawLockError::Busy => lock_error!(@busy $name $($variant)*),
                }
            }
        }
    };
    // What a raw "would have to wait / deadline passed" becomes.
    (@busy $name:ident WouldBlock) => { $name::WouldBlock };
    (@busy $name:ident Timeout) => { $name::Timeout };
    (@busy $name:ident) => { $name::Corrupted(unexpected("a lock wait without a deadline ended")) };
}

lock_error! {
    /// Why a blocking lock call (`lock`, `read`, `write`) returned without a
    /// clean guard.
    ///
    /// `OwnerDied` is the only variant that carries a guard: the lock *was*
    /// acquired, but its previous holder died holding it, so the data may be
    /// half-updated. Inspect and repair it, then call `mark_consistent()` on
    /// the guard; dropping the guard without doing so makes the lock
    /// permanently unusable ([`LockError::NotRecoverable`] for everyone).
    ///
    /// ```
    /// use shmkit::sync::{LockError, Mutex};
    ///
    /// let m = Mutex::new([0u32; 2]);
    /// let guard = match m.lock() {
    ///     Ok(guard) => guard,
    ///     Err(LockError::OwnerDied(mut guard)) => {
    ///         // The last holder died mid-update: repair, then say so.
    ///         let v = guard[0].max(guard[1]);
    ///         *guard = [v, v];
    ///         guard.mark_consistent();
    ///         guard
    ///     }
    ///     Err(e) => return Err(e.to_string()),
    /// };
    /// assert!(guard.is_consistent());
    /// # Ok::<(), String>(())
    /// ```
    pub enum LockError<G> {}
}

lock_error! {
    /// Why a `try_` lock call (`try_lock`, `try_read`, `try_write`)
    /// returned without a clean guard: as [`LockError`], or the lock is
    /// held.
    ///
    /// ```
    /// use shmkit::sync::{Mutex, TryLockError};
    ///
    /// let m = Mutex::new(0u64);
    /// let held = m.lock().unwrap();
    /// assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    /// drop(held);
    /// let mut guard = match m.try_lock() {
    ///     Ok(guard) => guard,
    ///     Err(TryLockError::OwnerDied(mut guard)) => {
    ///         *guard = 0;
    ///         guard.mark_consistent();
    ///         guard
    ///     }
    ///     Err(e) => panic!("{e}"),
    /// };
    /// *guard += 1;
    /// ```
    pub enum TryLockError<G> {
        /// The lock is held by a live holder (or, for a read, the table of
        /// readers is full).
        WouldBlock => "the lock is held",
    }
}

lock_error! {
    /// Why a timed lock call (`lock_timeout`, `lock_deadline` and the
    /// `read_`/`write_` forms) returned without a clean guard: as
    /// [`LockError`], or the deadline passed.
    ///
    /// ```
    /// use shmkit::sync::{LockTimeoutError, RwLock};
    /// use std::time::Duration;
    ///
    /// let lock = RwLock::new(7u32);
    /// let reader = lock.read().unwrap();
    /// let short = Duration::from_millis(1);
    /// assert!(matches!(lock.write_timeout(short), Err(LockTimeoutError::Timeout)));
    /// drop(reader);
    /// let w = match lock.write_timeout(short) {
    ///     Ok(w) => w,
    ///     Err(LockTimeoutError::OwnerDied(mut w)) => {
    ///         w.mark_consistent();
    ///         w
    ///     }
    ///     Err(e) => panic!("{e}"),
    /// };
    /// assert_eq!(*w, 7);
    /// ```
    pub enum LockTimeoutError<G> {
        /// The deadline passed before the lock could be taken.
        Timeout => "timed out waiting for the lock",
    }
}

impl<G> From<LockError<G>> for TryLockError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(g) => TryLockError::OwnerDied(g),
            LockError::NotRecoverable => TryLockError::NotRecoverable,
            LockError::Corrupted(w) => TryLockError::Corrupted(w),
        }
    }
}

impl<G> From<LockError<G>> for LockTimeoutError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(g) => LockTimeoutError::OwnerDied(g),
            LockError::NotRecoverable => LockTimeoutError::NotRecoverable,
            LockError::Corrupted(w) => LockTimeoutError::Corrupted(w),
        }
    }
}

/// What a blocking lock call returns (as `std::sync::LockResult`).
pub type LockResult<G> = Result<G, LockError<G>>;
/// What a `try_` lock call returns.
pub type TryLockResult<G> = Result<G, TryLockError<G>>;
/// What a timed lock call returns.
pub type LockTimeoutResult<G> = Result<G, LockTimeoutError<G>>;

/// Why a raw lock word was not acquired (each public call narrows it to
/// its own error type).
#[derive(Debug)]
pub(crate) enum RawLockError {
    NotRecoverable,
    /// Held: a `try_` call would have to wait, or a timed call's deadline
    /// passed.
    Busy,
    Corrupted(&'static str),
}

/// What a call reports for a failure its own paths never produce (a bug
/// here, not anything a peer can cause): corruption, rather than a panic
/// in the process of whoever called it. Debug builds assert.
#[cold]
pub(crate) fn unexpected(what: &'static str) -> &'static str {
    debug_assert!(false, "{what}");
    what
}

/// Shared state holds a value no correct participant writes: the only way
/// some calls can fail (`Semaphore::acquire`, the event's calls, snapshots
/// such as `Semaphore::available`).
///
/// ```
/// use shmkit::sync::{Corrupted, Semaphore};
///
/// let s = Semaphore::new(1, None);
/// let result: Result<(), Corrupted> = s.acquire();
/// assert!(result.is_ok());
/// assert_eq!(
///     Corrupted("semaphore bound out of range").to_string(),
///     "shared state is corrupted: semaphore bound out of range"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shared state is corrupted: {0}")]
pub struct Corrupted(pub &'static str);

/// Why a wait of a semaphore, event or barrier ended inside the layer
/// (each public call narrows it to its own error type).
#[derive(Debug)]
pub(crate) enum Fail {
    /// A `try_` call would have to wait, or a timed call's deadline passed.
    Busy,
    /// A barrier is broken.
    Broken,
    /// A table of participants is full.
    Full(crate::Error),
    Corrupted(&'static str),
}

impl From<Corrupted> for Fail {
    fn from(Corrupted(w): Corrupted) -> Self {
        Fail::Corrupted(w)
    }
}

/// Defines a wait error enum from the names of its variants, each with its
/// canonical documentation and text, plus `From<Corrupted>` and the
/// narrowing `From<Fail>` (`Busy` becomes its `WouldBlock` or `Timeout`).
macro_rules! wait_error {
    ($(#[$meta:meta])* pub enum $name:ident { $($variant:ident),+ $(,)? }) => {
        wait_error!(@munch [$(#[$meta])*] $name [] [] $($variant)+);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] WouldBlock $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// The call would have had to wait.
            #[error("the operation would block")]
            WouldBlock,
        ] [$($arm)* Fail::Busy => $name::WouldBlock,] $($rest)*);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] Timeout $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// The deadline passed first.
            #[error("timed out")]
            Timeout,
        ] [$($arm)* Fail::Busy => $name::Timeout,] $($rest)*);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] Overflow $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// The release would push a bounded semaphore past its bound.
            #[error("released more permits than the bound allows")]
            Overflow,
        ] [$($arm)*] $($rest)*);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] Broken $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// The barrier was aborted, or one of its parties died: nobody
            /// will ever pass it.
            #[error("the barrier is broken")]
            Broken,
        ] [$($arm)* Fail::Broken => $name::Broken,] $($rest)*);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] Registry $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// A table of participants is full (a semaphore's owners, a
            /// barrier's parties): more of them than it can track.
            #[error("cannot register as a participant: {0}")]
            Registry(#[source] crate::Error),
        ] [$($arm)* Fail::Full(e) => $name::Registry(e),] $($rest)*);
    };
    (@munch $meta:tt $name:ident [$($body:tt)*] [$($arm:tt)*] Corrupted $($rest:ident)*) => {
        wait_error!(@munch $meta $name [$($body)*
            /// Shared state holds a value no correct participant writes.
            #[error("shared state is corrupted: {0}")]
            Corrupted(&'static str),
        ] [$($arm)*] $($rest)*);
    };
    (@munch [$($meta:tt)*] $name:ident [$($body:tt)*] [$($arm:tt)*]) => {
        $($meta)*
        #[non_exhaustive]
        pub enum $name {
            $($body)*
        }

        impl From<Corrupted> for $name {
            fn from(Corrupted(w): Corrupted) -> Self {
                $name::Corrupted(w)
            }
        }

        impl From<Fail> for $name {
            #[allow(unreachable_patterns)] // when every `Fail` has an arm
            fn from(e: Fail) -> Self {
                match e {
                    Fail::Corrupted(w) => $name::Corrupted(w),
                    $($arm)*
                    _ => $name::Corrupted(unexpected(concat!(
                        stringify!($name),
                        ": a failure this call never returns"
                    ))),
                }
            }
        }
    };
}

wait_error! {
    /// Why a `try_` wait ([`Semaphore::try_acquire`](super::Semaphore::try_acquire),
    /// [`Event::try_wait`](super::Event::try_wait)) did not pass.
    ///
    /// ```
    /// use shmkit::sync::{Event, EventMode, TryWaitError};
    ///
    /// let ready = Event::new(EventMode::AutoReset);
    /// assert_eq!(ready.try_wait(), Err(TryWaitError::WouldBlock));
    /// ready.set().unwrap();
    /// assert_eq!(ready.try_wait(), Ok(())); // and clears it (auto reset)
    /// assert_eq!(ready.try_wait(), Err(TryWaitError::WouldBlock));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum TryWaitError { WouldBlock, Corrupted }
}

wait_error! {
    /// Why a timed wait (the `_timeout` and `_deadline` forms of
    /// [`Semaphore::acquire`](super::Semaphore::acquire) and
    /// [`Event::wait`](super::Event::wait)) did not pass.
    ///
    /// ```
    /// use shmkit::sync::{Semaphore, WaitTimeoutError};
    /// use std::time::Duration;
    ///
    /// let s = Semaphore::new(0, None);
    /// let short = Duration::from_millis(1);
    /// assert_eq!(s.acquire_timeout(short), Err(WaitTimeoutError::Timeout));
    /// s.release().unwrap();
    /// assert_eq!(s.acquire_timeout(short), Ok(()));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum WaitTimeoutError { Timeout, Corrupted }
}

wait_error! {
    /// Why [`Semaphore::release`](super::Semaphore::release) or
    /// [`release_n`](super::Semaphore::release_n) changed nothing.
    ///
    /// ```
    /// use shmkit::sync::{ReleaseError, Semaphore};
    ///
    /// let s = Semaphore::new(1, Some(2)); // one of two permits there
    /// assert_eq!(s.release_n(2), Err(ReleaseError::Overflow)); // all or nothing
    /// assert_eq!(s.available(), Ok(1));
    /// assert_eq!(s.release(), Ok(()));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum ReleaseError { Overflow, Corrupted }
}

wait_error! {
    /// Why [`Semaphore::acquire_permit`](super::Semaphore::acquire_permit)
    /// returned no permit.
    ///
    /// An owned permit names its holder in the semaphore's table of
    /// owners, which lives in a region, so it comes back if the holder is
    /// killed; more holders at once than the table tracks is `Registry`.
    ///
    /// ```
    /// use shmkit::sync::{AcquirePermitError, Semaphore, TryAcquirePermitError};
    /// use shmkit::Shm;
    ///
    /// let s = Shm::<Semaphore>::anonymous(|s| s.init(1, None))?;
    /// let permit = match s.acquire_permit() {
    ///     Ok(permit) => permit,
    ///     Err(AcquirePermitError::Registry(e)) => panic!("too many holders: {e}"),
    ///     Err(e) => panic!("{e}"),
    /// };
    /// assert!(matches!(s.try_acquire_permit(), Err(TryAcquirePermitError::WouldBlock)));
    /// drop(permit);
    /// assert!(s.try_acquire_permit().is_ok());
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    #[derive(Debug, thiserror::Error)]
    pub enum AcquirePermitError { Registry, Corrupted }
}

wait_error! {
    /// Why [`Semaphore::try_acquire_permit`](super::Semaphore::try_acquire_permit)
    /// returned no permit.
    #[derive(Debug, thiserror::Error)]
    pub enum TryAcquirePermitError { WouldBlock, Registry, Corrupted }
}

wait_error! {
    /// Why a timed owned acquire
    /// ([`acquire_permit_timeout`](super::Semaphore::acquire_permit_timeout),
    /// [`acquire_permit_deadline`](super::Semaphore::acquire_permit_deadline))
    /// returned no permit.
    #[derive(Debug, thiserror::Error)]
    pub enum AcquirePermitTimeoutError { Timeout, Registry, Corrupted }
}

wait_error! {
    /// Why [`Barrier::wait`](super::Barrier::wait) did not pass.
    ///
    /// ```
    /// use shmkit::sync::{Barrier, BarrierError, BarrierTimeoutError};
    /// use shmkit::Shm;
    /// use std::time::Duration;
    ///
    /// let barrier = Shm::<Barrier>::anonymous(|b| b.init(2))?;
    /// // The other party is late: the arrival is withdrawn, the barrier stays usable.
    /// let late = barrier.wait_timeout(Duration::from_millis(1));
    /// assert!(matches!(late, Err(BarrierTimeoutError::Timeout)));
    /// // Aborted (or a party died): nobody will ever pass it.
    /// barrier.abort();
    /// assert!(matches!(barrier.wait(), Err(BarrierError::Broken)));
    /// # Ok::<(), shmkit::Error>(())
    /// ```
    #[derive(Debug, thiserror::Error)]
    pub enum BarrierError { Broken, Registry, Corrupted }
}

wait_error! {
    /// Why a timed barrier wait
    /// ([`wait_timeout`](super::Barrier::wait_timeout),
    /// [`wait_deadline`](super::Barrier::wait_deadline)) did not pass: as
    /// [`BarrierError`], or the deadline passed (the arrival is withdrawn
    /// and the barrier stays usable).
    #[derive(Debug, thiserror::Error)]
    pub enum BarrierTimeoutError { Broken, Timeout, Registry, Corrupted }
}

impl From<Fail> for Corrupted {
    fn from(e: Fail) -> Self {
        match e {
            Fail::Corrupted(w) => Corrupted(w),
            _ => Corrupted(unexpected("a failure this call never returns")),
        }
    }
}

impl From<AcquirePermitError> for TryAcquirePermitError {
    fn from(e: AcquirePermitError) -> Self {
        match e {
            AcquirePermitError::Registry(e) => TryAcquirePermitError::Registry(e),
            AcquirePermitError::Corrupted(w) => TryAcquirePermitError::Corrupted(w),
        }
    }
}

impl From<AcquirePermitError> for AcquirePermitTimeoutError {
    fn from(e: AcquirePermitError) -> Self {
        match e {
            AcquirePermitError::Registry(e) => AcquirePermitTimeoutError::Registry(e),
            AcquirePermitError::Corrupted(w) => AcquirePermitTimeoutError::Corrupted(w),
        }
    }
}

impl From<BarrierError> for BarrierTimeoutError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Broken => BarrierTimeoutError::Broken,
            BarrierError::Registry(e) => BarrierTimeoutError::Registry(e),
            BarrierError::Corrupted(w) => BarrierTimeoutError::Corrupted(w),
        }
    }
}
