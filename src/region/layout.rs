//! Layout ids: a 64-bit fingerprint of what a region's data holds, stored in
//! the header so that opening a region as the wrong type fails cleanly.

use std::fmt;

/// FNV-1a, 64-bit: small, stable across builds and platforms (unlike
/// `std`'s `DefaultHasher`, whose output may change between releases).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) const fn new() -> Self {
        Self(Self::OFFSET)
    }

    pub(crate) const fn write(mut self_: Self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self_.0 ^= bytes[i] as u64;
            self_.0 = self_.0.wrapping_mul(Self::PRIME);
            i += 1;
        }
        self_
    }

    pub(crate) fn write_u64(&mut self, v: u64) {
        *self = Self::write(*self, &v.to_le_bytes());
    }

    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

/// A fingerprint of the type or format a region's data holds.
///
/// [`LayoutId::of`] derives one from a type's name, size and alignment;
/// [`LayoutId::named`] from a format name and version of your choosing,
/// which stays the same however the type is spelt or where it is defined.
/// The header stores it; opening with another id fails with
/// [`Error::LayoutMismatch`](crate::Error::LayoutMismatch).
///
/// ```
/// use shmkit::LayoutId;
/// assert_eq!(LayoutId::of::<u64>(), LayoutId::of::<u64>());
/// assert_ne!(LayoutId::of::<u64>(), LayoutId::of::<u32>());
/// assert_ne!(LayoutId::named("queue", 1), LayoutId::named("queue", 2));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayoutId(u64);

impl LayoutId {
    /// The layout of a region of plain bytes with no declared type.
    pub const BYTES: LayoutId = LayoutId::named("shmkit::bytes", 1);

    /// The layout of `T`: its type name, size and alignment.
    ///
    /// The name comes from [`std::any::type_name`], the same for the same
    /// type and compiler in every binary; if programs built by different
    /// compiler versions share a region, prefer [`LayoutId::named`].
    pub fn of<T>() -> Self {
        let mut h = Fnv::write(Fnv::new(), std::any::type_name::<T>().as_bytes());
        h.write_u64(core::mem::size_of::<T>() as u64);
        h.write_u64(core::mem::align_of::<T>() as u64);
        Self(h.finish())
    }

    /// A layout named by the caller: a format name and its version.
    pub const fn named(name: &str, version: u32) -> Self {
        let h = Fnv::write(Fnv::new(), name.as_bytes());
        let h = Fnv::write(h, &version.to_le_bytes());
        Self(h.finish())
    }

    /// A layout from its raw value, as stored in a header.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value stored in the header.
    pub const fn to_raw(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for LayoutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayoutId({:#018x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(Fnv::new().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::write(Fnv::new(), b"a").finish(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            Fnv::write(Fnv::new(), b"foobar").finish(),
            0x8594_4171_f739_67e8
        );
    }

    #[test]
    fn layouts_differ_by_name_size_and_align() {
        #[repr(C)]
        struct A(u64);
        #[repr(C)]
        struct B(u64);
        assert_ne!(LayoutId::of::<A>(), LayoutId::of::<B>());
        assert_ne!(LayoutId::of::<[u8; 8]>(), LayoutId::of::<u64>());
        assert_ne!(LayoutId::BYTES, LayoutId::of::<u8>());
    }
}
