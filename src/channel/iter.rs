//! Iterators over a receiver's values, as crossbeam-channel's: [`Iter`]
//! blocks for each value and ends once every sender has left (or died)
//! and the channel is drained; [`TryIter`] takes what is there now
//! without waiting; [`IntoIter`] is [`Iter`] owning its receiver.
//!
//! An iterator cannot report an error, so it also ends on
//! `RecvError::Corrupted`: call `recv` to learn why a channel ended.

use super::error::{RecvError, TryRecvError};
use super::mpmc::MpmcReceiver;
use super::typed::Receiver;
use bytemuck::Pod;

/// A receiver the iterators can draw from. Sealed: implemented by the
/// crate's typed receivers only.
pub trait Recv: sealed::Sealed {
    /// What it receives.
    type Item;
    #[doc(hidden)]
    fn recv_one(&self) -> Result<Self::Item, RecvError>;
    #[doc(hidden)]
    fn try_recv_one(&self) -> Result<Self::Item, TryRecvError>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! receiver_iterators {
    ($rx:ident) => {
        impl<T: Pod + Send> sealed::Sealed for $rx<T> {}

        impl<T: Pod + Send> Recv for $rx<T> {
            type Item = T;
            #[inline]
            fn recv_one(&self) -> Result<T, RecvError> {
                self.recv()
            }
            #[inline]
            fn try_recv_one(&self) -> Result<T, TryRecvError> {
                self.try_recv()
            }
        }

        impl<T: Pod + Send> $rx<T> {
            /// A blocking iterator over the values received: ends once
            /// every sender has left or died and everything they sent has
            /// been received (or on corrupted shared state).
            pub fn iter(&self) -> Iter<'_, Self> {
                Iter { rx: self }
            }

            /// An iterator over the values that can be received now,
            /// without waiting.
            pub fn try_iter(&self) -> TryIter<'_, Self> {
                TryIter { rx: self }
            }
        }

        impl<'a, T: Pod + Send> IntoIterator for &'a $rx<T> {
            type Item = T;
            type IntoIter = Iter<'a, $rx<T>>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }

        impl<T: Pod + Send> IntoIterator for $rx<T> {
            type Item = T;
            type IntoIter = IntoIter<$rx<T>>;
            fn into_iter(self) -> Self::IntoIter {
                IntoIter { rx: self }
            }
        }
    };
}

receiver_iterators!(Receiver);
receiver_iterators!(MpmcReceiver);

/// A blocking iterator over a receiver's values (from `iter()`): ends
/// once every sender has left or died and everything they sent has been
/// received, or on corrupted shared state (an iterator cannot report an
/// error: call `recv` to learn which).
///
/// ```
/// use shmkit::channel::channel;
///
/// let (tx, rx) = channel::<u32>(8)?;
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx); // every sender gone: the iterator ends once drained
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Iter<'a, R: Recv> {
    rx: &'a R,
}

impl<R: Recv> Iterator for Iter<'_, R> {
    type Item = R::Item;
    fn next(&mut self) -> Option<R::Item> {
        self.rx.recv_one().ok()
    }
}

/// An iterator over the values a receiver has now (from `try_iter()`):
/// ends at the first value that is not there yet, without waiting.
///
/// ```
/// use shmkit::channel::mpmc_channel;
///
/// let (tx, rx) = mpmc_channel::<u32>(8)?;
/// tx.send(7).unwrap();
/// tx.send(8).unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [7, 8]);
/// assert_eq!(rx.try_iter().next(), None); // empty now, sender still there
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct TryIter<'a, R: Recv> {
    rx: &'a R,
}

impl<R: Recv> Iterator for TryIter<'_, R> {
    type Item = R::Item;
    fn next(&mut self) -> Option<R::Item> {
        self.rx.try_recv_one().ok()
    }
}

/// A blocking iterator owning its receiver (from `into_iter()`); it ends
/// as [`Iter`] does.
///
/// ```
/// use shmkit::channel::channel;
///
/// let (tx, rx) = channel::<u64>(4)?;
/// let sum = std::thread::spawn(move || rx.into_iter().sum::<u64>());
/// for i in 1..=100 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(sum.join().unwrap(), 5050);
/// # Ok::<(), shmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct IntoIter<R: Recv> {
    rx: R,
}

impl<R: Recv> Iterator for IntoIter<R> {
    type Item = R::Item;
    fn next(&mut self) -> Option<R::Item> {
        self.rx.recv_one().ok()
    }
}
