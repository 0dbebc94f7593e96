//! [`SemaphorePermit`]: an owned permit, given back on drop.

use super::Semaphore;
use crate::sync::owner::Token;
use std::fmt;

/// An owned permit of a [`Semaphore`], taken with
/// [`acquire_permit`](Semaphore::acquire_permit) and its `try_`,
/// `_timeout` and `_deadline` forms: recorded in the semaphore as held by
/// this participant, given back when dropped, and given back by the next
/// acquirer if this process dies holding it.
///
/// Dropping it gives the permit back (waking a waiter if one sleeps); if
/// plain releases have meanwhile filled a bounded semaphore to its bound,
/// the permit is dropped instead (the count saturates at the bound). A
/// permit whose recorded entry a peer scribbles over is not given back
/// (its release is skipped rather than done twice).
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    pub(super) sem: &'a Semaphore,
    /// The owner entry recording it, and whose it is.
    pub(super) entry: usize,
    pub(super) token: Token,
}

impl<'a> SemaphorePermit<'a> {
    /// The semaphore this permit belongs to.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }

    /// Turns this permit into a plain one that stays taken: nothing
    /// releases it when this process drops or dies, and any process may
    /// release it later with [`Semaphore::release`] (as tokio's
    /// `SemaphorePermit::forget`).
    ///
    /// ```
    /// use shmkit::sync::Semaphore;
    ///
    /// let s = Semaphore::new(1, Some(1));
    /// s.acquire_permit().unwrap().forget();
    /// assert_eq!(s.available().unwrap(), 0);
    /// s.release().unwrap();
    /// assert_eq!(s.available().unwrap(), 1);
    /// ```
    pub fn forget(self) {
        let this = std::mem::ManuallyDrop::new(self);
        this.sem.forget_owned(this.entry, this.token);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release_owned(self.entry, self.token);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}
