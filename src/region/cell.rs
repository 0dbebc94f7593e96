//! [`SharedCell`], a cell for plain data that peers read and write.

use crate::blocks::ShmSafe;
use crate::primitive::UnsafeCell;
use bytemuck::Pod;
use std::fmt;

/// A cell holding plain data (`T: Pod`) in shared memory, read and written
/// by copy, never by reference.
///
/// [`get`](Self::get) and [`set`](Self::set) copy the value as relaxed
/// atomic words of one width (the alignment of `T`, at most 8 bytes), so
/// any number of threads, and processes, may call them at once: no copy
/// is a data race, and no reference to the contents ever exists that a
/// peer could change under it. A `get` that overlaps a `set` (or two
/// `set`s that overlap each other) can *tear*: the value read may hold
/// some words of one value and some of another, which is still a valid
/// `T` (every bit pattern of a `Pod` type is). Guard multi-word values
/// with a lock or a sequence counter when tearing matters. The copies are
/// `Relaxed`: they order nothing else; publish other data with an atomic
/// flag (`Release` store, `Acquire` load) when a reader needs it.
///
/// ```
/// use shmkit::SharedCell;
/// let c = SharedCell::new([1u32, 2, 3]);
/// c.set([4, 5, 6]);
/// assert_eq!(c.get(), [4, 5, 6]);
/// std::thread::scope(|s| {
///     s.spawn(|| c.set([7, 7, 7]));
///     // Old words, new words, or a mix of the two: never anything else.
///     assert!(c.get().iter().all(|&w| w == 7 || (4..=6).contains(&w)));
/// });
/// ```
#[repr(transparent)]
pub struct SharedCell<T: Pod> {
    value: UnsafeCell<T>,
}

// SAFETY: all access to the contents is a copy of a `Pod` value in relaxed
// atomic words of one width per `T` (`get`/`set`), so concurrent access
// from several threads is not a data race; no reference to the contents
// escapes, and torn values are valid `T`s.
unsafe impl<T: Pod + Send> Sync for SharedCell<T> {}

// SAFETY: `repr(transparent)` over `T: Pod` (any bit pattern valid, zero is
// valid, no pointers, no `Drop`); access is only by atomic word copies.
unsafe impl<T: Pod + Send> ShmSafe for SharedCell<T> {}

impl<T: Pod> SharedCell<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
        }
    }

    /// Copies the value out (possibly torn by a concurrent [`set`](Self::set),
    /// see the [type documentation](Self)).
    #[inline]
    pub fn get(&self) -> T {
        let mut out = T::zeroed();
        #[cfg(not(shmkit_loom))]
        // SAFETY: the pointer comes from a live `UnsafeCell<T>`, so it is
        // valid and aligned for a `T`, and `out` is a local `T`; every
        // access to the cell's bytes is `get` or `set`, both atomic words
        // of `atomic_width::<T>()` (a peer process's writes are outside
        // this process's memory model, and garble at most); `T: Pod` has
        // no padding and is valid for any bytes.
        self.value
            .with(|p| unsafe { crate::primitive::atomic_load(p, &mut out) });
        #[cfg(shmkit_loom)]
        // SAFETY: as above; under loom the cell is a loom cell, whose
        // plain copy loom checks (no model shares a `SharedCell`).
        self.value.with(|p| out = unsafe { p.read() });
        out
    }

    /// Copies `value` in (see the [type documentation](Self) for
    /// concurrent calls).
    #[inline]
    pub fn set(&self, value: T) {
        #[cfg(not(shmkit_loom))]
        // SAFETY: as in `get`; no reference to the contents exists to be
        // invalidated by the write (the cell never lends one).
        self.value
            .with_mut(|p| unsafe { crate::primitive::atomic_store(p, &value) });
        #[cfg(shmkit_loom)]
        // SAFETY: as in `get`.
        self.value.with_mut(|p| unsafe { p.write(value) });
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for SharedCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedCell").field(&self.get()).finish()
    }
}

impl<T: Pod> Default for SharedCell<T> {
    fn default() -> Self {
        Self::new(T::zeroed())
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use crate::primitive::{atomic_width, Ordering};

    /// Every field width, so that `get` and `set` use each word size.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Mixed {
        a: u32,
        b: u16,
        c: u8,
        d: u8,
    }

    #[test]
    fn words_follow_the_alignment_up_to_eight() {
        assert_eq!(atomic_width::<u8>(), 1);
        assert_eq!(atomic_width::<[u8; 24]>(), 1);
        assert_eq!(atomic_width::<[u16; 3]>(), 2);
        assert_eq!(atomic_width::<Mixed>(), 4);
        assert_eq!(atomic_width::<[u64; 4]>(), 8);
        assert_eq!(atomic_width::<u128>(), 8);
    }

    #[test]
    fn set_then_get_gives_back_exactly_what_was_set() {
        fn round_trip<T: Pod + PartialEq + fmt::Debug>(values: &[T]) {
            let cell = SharedCell::<T>::default();
            assert_eq!(cell.get(), T::zeroed());
            for &v in values {
                cell.set(v);
                assert_eq!(cell.get(), v);
                assert_eq!(cell.get(), v, "a get changes nothing");
            }
        }
        round_trip(&[1u8, 0xff, 0]);
        round_trip(&[[1u8, 2, 3, 4, 5, 6, 7], [0xa5; 7]]);
        round_trip(&[[1u16, 0xfffe, 3], [0; 3]]);
        round_trip(&[
            Mixed {
                a: 0xdead_beef,
                b: 0x1234,
                c: 0x56,
                d: 0x78,
            },
            Mixed {
                a: 1,
                b: 2,
                c: 3,
                d: 4,
            },
        ]);
        round_trip(&[[u64::MAX, 1, 2, 3], [4, 5, 6, 7]]);
        round_trip(&[u128::MAX - 1, 1 << 100]);
    }

    /// Two writers and a reader hammer one cell; every word the reader
    /// sees, at every position, is that position's word of a value some
    /// writer set (or of the initial value): reads may tear between
    /// words, never within one, and never invent or move a word. The
    /// values are few (`K`), with a different word for each at every
    /// position, so a wrong word rarely passes for a right one.
    fn hammer<T, const N: usize, W>(word: fn(u64, usize) -> W)
    where
        T: Pod + Send,
        W: Pod + PartialEq + fmt::Debug,
    {
        const K: u64 = 7;
        const READS: u64 = 20_000;
        assert_eq!(size_of::<T>(), N * size_of::<W>());
        assert_eq!(atomic_width::<T>(), size_of::<W>());
        for i in 0..N {
            for (a, b) in (0..K).flat_map(|a| (0..a).map(move |b| (a, b))) {
                assert_ne!(word(a, i), word(b, i), "values {a} and {b} at {i}");
            }
        }
        let value = |k: u64| -> T {
            let words: [W; N] = core::array::from_fn(|i| word(k, i));
            bytemuck::pod_read_unaligned(bytemuck::cast_slice::<W, u8>(&words))
        };
        // The initial value is 0; writer w sets 1 + w, 3 + w, 5 + w, 1 + w...
        let cell = SharedCell::new(value(0));
        let stop = crate::primitive::AtomicU32::new(0);
        std::thread::scope(|s| {
            for w in 0..2u64 {
                let (cell, stop) = (&cell, &stop);
                s.spawn(move || {
                    let mut k = 1 + w;
                    while stop.load(Ordering::Relaxed) == 0 {
                        cell.set(value(k));
                        k = if k + 2 < K { k + 2 } else { 1 + w };
                    }
                });
            }
            let (mut torn, mut seen) = (0u64, [0u64; K as usize]);
            for _ in 0..READS {
                let got = cell.get();
                let words: &[W] = bytemuck::cast_slice(bytemuck::bytes_of(&got));
                let ks: Vec<u64> = words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        (0..K)
                            .find(|&k| word(k, i) == *w)
                            .unwrap_or_else(|| panic!("word {i} is {w:?}: no value has it there"))
                    })
                    .collect();
                seen[ks[0] as usize] += 1;
                torn += u64::from(ks.iter().any(|&k| k != ks[0]));
            }
            stop.store(1, Ordering::Relaxed);
            eprintln!(
                "{}: {torn} torn reads of {READS}; first words by value {seen:?}",
                core::any::type_name::<T>()
            );
        });
    }

    #[test]
    fn concurrent_sets_and_gets_only_see_written_words() {
        // 29, 1000 and 1 << 8 keep the K values' words apart at each
        // position; the position term moves them apart between positions.
        hammer::<[u8; 24], 24, u8>(|k, i| (k * 29 + i as u64 * 37 + 11) as u8);
        hammer::<[u16; 6], 6, u16>(|k, i| (k * 1000 + i as u64 * 7) as u16);
        hammer::<Mixed, 2, u32>(|k, i| (k << 16 | i as u64) as u32);
        hammer::<[u64; 4], 4, u64>(|k, i| k << 8 | i as u64);
    }
}
