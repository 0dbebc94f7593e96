//! What a [`Region`](super::Region) handle has handed out references to:
//! byte ranges of its data, each with the one type it is used as.
//!
//! Rust's rules forbid, inside one process, a plain write under a `&T` or
//! `&mut T` of plain data (a lock guard's, a ring chunk's), a plain access
//! racing with any other, and atomic writes of one size racing with
//! accesses of another. Every `ShmSafe` type is sound on its own, used
//! through `&T` from any number of threads; what could still break those
//! rules is the same bytes used as two *different* things at once: a
//! `SharedCell` placed over a locked mutex's data, an `AtomicU64` over the
//! bytes of a `SharedCell<[u8; 8]>`, a second ring laid out half over a
//! first. So a handle records every placement, and refuses a new one that
//! overlaps an earlier one unless both view the bytes the same way: the
//! same type, at offsets a whole number of values apart (two references to
//! the same values, which is what sharing `&T` means anyway). A ring's
//! `create` asks for bytes nobody placed yet, since laying a ring out
//! again resets it under views that may be in use.
//!
//! Records are never removed while the handle lives: a placement's
//! references borrow the handle, and nothing tells when the last one ends.
//! Another handle of the same object (opened again, or in another process)
//! keeps its own records; to this handle it is a peer, whose writes the
//! crate treats as untrusted input.

use crate::error::{Error, Result};
use std::any::TypeId;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// One recorded placement: `[start, end)` of the data, used as values of
/// one type, `stride` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    start: usize,
    end: usize,
    stride: usize,
    ty: TypeId,
    name: &'static str,
}

impl Placed {
    /// `count` values of `T` from `start` on (`start + size` must not
    /// overflow; the caller checked the bounds).
    pub(crate) fn of<T: 'static>(start: usize, count: usize) -> Self {
        let stride = core::mem::size_of::<T>();
        Self {
            start,
            end: start + stride * count,
            stride,
            ty: TypeId::of::<T>(),
            name: core::any::type_name::<T>(),
        }
    }

    /// `len` bytes from `start` on, used as one object of kind `M` (a
    /// marker type naming what the bytes are, such as a ring's buffer).
    pub(crate) fn bytes<M: 'static>(start: usize, len: usize) -> Self {
        Self {
            start,
            end: start + len,
            stride: len,
            ty: TypeId::of::<M>(),
            name: core::any::type_name::<M>(),
        }
    }

    fn overlaps(&self, other: &Placed) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether both view their common bytes as the same values: one type,
    /// offsets a whole number of values apart.
    fn agrees(&self, other: &Placed) -> bool {
        self.ty == other.ty
            && self.stride == other.stride
            && self.start.abs_diff(other.start) % self.stride == 0
    }

    fn conflict(&self, other: &Placed) -> Error {
        Error::PlacementConflict {
            offset: self.start,
            size: self.end - self.start,
            placed: other.name,
            placed_offset: other.start,
            placed_size: other.end - other.start,
        }
    }
}

/// Every placement a handle made, each with the number of claims on it
/// that may still be given back (see [`Placements::release`]); see the
/// [module documentation](self).
#[derive(Default)]
pub(crate) struct Placements(Mutex<Vec<(Placed, usize)>>);

impl fmt::Debug for Placements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "Placements({n})")
    }
}

impl Placements {
    /// Records `parts`, all or none. `fresh`: no byte of them may have
    /// been placed before, as anything; otherwise only placements that
    /// agree with them may overlap them. Empty parts (no bytes) always
    /// pass and are not recorded.
    pub(crate) fn add(&self, parts: &[Placed], fresh: bool) -> Result<()> {
        // The list is only ever extended, one consistent step at a time,
        // so a panic elsewhere while it was locked left it valid.
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, p) in parts.iter().enumerate() {
            if p.start == p.end {
                continue;
            }
            let earlier = list.iter().map(|(q, _)| q).chain(&parts[..i]);
            if let Some(q) = earlier
                .filter(|q| q.start != q.end)
                .find(|q| q.overlaps(p) && (fresh || !q.agrees(p)))
            {
                return Err(p.conflict(q));
            }
        }
        for p in parts.iter().filter(|p| p.start != p.end) {
            match list.iter_mut().find(|(q, _)| q == p) {
                Some((_, claims)) => *claims += 1,
                None => list.push((*p, 1)),
            }
        }
        Ok(())
    }

    /// Gives back one claim on each of `parts`, which [`add`](Self::add)
    /// recorded; a placement nobody else claimed is forgotten, so its
    /// bytes are free again. For an opener whose check of what it placed
    /// failed, so that a failed probe does not keep the bytes from a
    /// later `create`.
    ///
    /// # Safety
    ///
    /// The caller claimed each of `parts` with `add` and has not given
    /// that claim back, and no reference it made from them is alive (or
    /// will be made again without a new claim).
    pub(crate) unsafe fn release(&self, parts: &[Placed]) {
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for p in parts.iter().filter(|p| p.start != p.end) {
            if let Some(i) = list.iter().position(|(q, _)| q == p) {
                list[i].1 -= 1;
                if list[i].1 == 0 {
                    list.swap_remove(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_placements_may_overlap_and_others_may_not() {
        let p = Placements::default();
        p.add(&[Placed::of::<u64>(0, 4)], false).unwrap();
        // The same values again, a part of them, or a run reaching past.
        p.add(&[Placed::of::<u64>(0, 4)], false).unwrap();
        p.add(&[Placed::of::<u64>(8, 1)], false).unwrap();
        p.add(&[Placed::of::<u64>(24, 2)], false).unwrap();
        // Another type, or the same one off the values' boundaries.
        let err = p.add(&[Placed::of::<u32>(8, 1)], false).unwrap_err();
        assert!(
            matches!(
                err,
                Error::PlacementConflict {
                    offset: 8,
                    size: 4,
                    placed: "u64",
                    placed_offset: 0,
                    placed_size: 32,
                }
            ),
            "{err:?}"
        );
        assert!(p.add(&[Placed::of::<u64>(4, 1)], false).is_err());
        // Fresh: nothing overlapping at all, even the same values.
        assert!(p.add(&[Placed::of::<u64>(0, 1)], true).is_err());
        p.add(&[Placed::of::<u64>(40, 1)], true).unwrap();
        // Side by side is no overlap; empty parts never conflict.
        p.add(&[Placed::of::<u32>(48, 1)], false).unwrap();
        p.add(&[Placed::of::<u8>(8, 0), Placed::of::<()>(8, 5)], true)
            .unwrap();
        // Markers: one object, whose copies must start where it does.
        p.add(&[Placed::bytes::<()>(64, 16)], false).unwrap();
        p.add(&[Placed::bytes::<()>(64, 16)], false).unwrap();
        assert!(p.add(&[Placed::bytes::<()>(72, 16)], false).is_err());
        assert!(p.add(&[Placed::bytes::<()>(64, 8)], false).is_err());
    }

    #[test]
    fn a_placement_is_forgotten_once_every_claim_on_it_is_given_back() {
        let p = Placements::default();
        let a = Placed::of::<u64>(0, 2);
        p.add(&[a], false).unwrap();
        p.add(&[a], false).unwrap();
        // SAFETY: one of the claims above; no reference was made from it.
        unsafe { p.release(&[a]) };
        assert!(p.add(&[Placed::of::<u32>(0, 1)], false).is_err());
        // SAFETY: the other one.
        unsafe { p.release(&[a]) };
        p.add(&[Placed::of::<u32>(0, 1)], true).unwrap();
    }

    #[test]
    fn a_refused_request_records_none_of_its_parts() {
        let p = Placements::default();
        p.add(&[Placed::of::<u64>(8, 1)], false).unwrap();
        let request = [Placed::of::<u32>(0, 1), Placed::of::<u32>(8, 1)];
        assert!(p.add(&request, false).is_err());
        // Had the first part been kept, this would conflict with it.
        p.add(&[Placed::of::<u16>(0, 2)], true).unwrap();
        // Parts of one request must agree with each other too.
        let split = [Placed::of::<u32>(16, 2), Placed::of::<u64>(16, 1)];
        assert!(p.add(&split, false).is_err());
        assert!(p.add(&[Placed::of::<u32>(16, 2)], true).is_ok());
    }
}
