//! [`Shm<T>`]: a region holding one `T`, opened by type.

use super::{LayoutId, Region, RegionOptions, ShmSafe};
use crate::error::Result;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

/// A region holding one `T` at offset 0, usable from every process that
/// opens it. The header records `T`'s layout, so opening a region of
/// another type fails with [`Error::LayoutMismatch`](crate::Error::LayoutMismatch).
///
/// ```
/// use shmkit::{Shm, ShmSafe, SharedCell};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[repr(C)]
/// struct Board {
///     visits: AtomicU64,
///     motto: SharedCell<[u8; 8]>,
/// }
/// // SAFETY: repr(C); every field is ShmSafe.
/// unsafe impl ShmSafe for Board {}
///
/// # let name = format!("/shmkit-doc-shm-{}", std::process::id());
/// let board = Shm::<Board>::create(&name, |b| b.motto.set(*b"hello!\0\0"))?;
/// // In another process:
/// let seen = Shm::<Board>::open(&name)?;
/// seen.visits.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(board.visits.load(Ordering::Relaxed), 1);
/// assert_eq!(&seen.motto.get()[..6], b"hello!");
/// # Ok::<(), shmkit::Error>(())
/// ```
pub struct Shm<T: ShmSafe> {
    region: Region,
    _t: PhantomData<T>,
}

impl<T: ShmSafe> Shm<T> {
    /// Creates a named region holding a zeroed `T`, runs `init` on it, then
    /// publishes it.
    pub fn create(name: &str, init: impl FnOnce(&T)) -> Result<Self> {
        let region = RegionOptions::for_type::<T>().create_with(name, |r| {
            init(r.place::<T>(0)?);
            Ok(())
        })?;
        Self::from_region(region)
    }

    /// Opens the named region holding a `T`.
    pub fn open(name: &str) -> Result<Self> {
        Self::from_region(RegionOptions::for_type::<T>().open(name)?)
    }

    /// Opens the named region, or creates it running `init`; exactly one of
    /// any number of racing callers runs `init`.
    pub fn open_or_create(name: &str, init: impl FnOnce(&T)) -> Result<Self> {
        let region = RegionOptions::for_type::<T>().open_or_create_with(name, |r| {
            init(r.place::<T>(0)?);
            Ok(())
        })?;
        Self::from_region(region)
    }

    /// Creates an anonymous region holding a `T`.
    pub fn anonymous(init: impl FnOnce(&T)) -> Result<Self> {
        let region = RegionOptions::for_type::<T>().anonymous_with(|r| {
            init(r.place::<T>(0)?);
            Ok(())
        })?;
        Self::from_region(region)
    }

    /// Wraps a region opened with other options (a timeout, say): checks
    /// that it holds a `T`.
    pub fn from_region(region: Region) -> Result<Self> {
        let expected = LayoutId::of::<T>();
        if region.layout() != expected {
            return Err(crate::Error::LayoutMismatch {
                found: region.layout().to_raw(),
                expected: expected.to_raw(),
            });
        }
        region.place::<T>(0)?;
        Ok(Self {
            region,
            _t: PhantomData,
        })
    }

    /// The underlying region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The underlying region, mutably (to call [`Region::keep`]).
    pub fn region_mut(&mut self) -> &mut Region {
        &mut self.region
    }

    /// Unwraps the region.
    pub fn into_region(self) -> Region {
        self.region
    }
}

impl<T: ShmSafe> Deref for Shm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `from_region` checked (via `place`) that a `T` fits at
        // offset 0 with its alignment; `T: ShmSafe` makes `&T` sound to
        // shared memory; the mapping lives as long as `self.region`.
        unsafe { &*(self.region.as_ptr() as *const T) }
    }
}

impl<T: ShmSafe> fmt::Debug for Shm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shm")
            .field("type", &std::any::type_name::<T>())
            .field("region", &self.region)
            .finish()
    }
}
