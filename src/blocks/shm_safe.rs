//! [`ShmSafe`]: the marker for what may live in shared memory.

/// Types that may be placed in shared memory and used through `&Self` from
/// several threads and processes at once.
///
/// Implemented for the integer atomics (`core`'s and shmkit's), for
/// [`SharedCell<T>`](crate::SharedCell), for the locks and other objects of [`sync`](crate::sync),
/// for the rings' parts, and for arrays of `ShmSafe` types. For your own
/// `#[repr(C)]` structs whose fields are all `ShmSafe`, derive it (see
/// [*Deriving*](#deriving)):
///
/// ```
/// use shmkit::{ShmSafe, SharedCell};
/// use std::sync::atomic::AtomicU64;
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Stats {
///     hits: AtomicU64,
///     last: SharedCell<[u8; 16]>,
/// }
/// ```
///
/// What the crate guarantees, with this trait, is that **safe code of this
/// process cannot break Rust's rules on shared memory**: every access to
/// plain data either copies it ([`SharedCell`](crate::SharedCell), the rings' push and pop,
/// [`Region::read`](crate::Region::read) and friends, which are `unsafe`)
/// or goes through a reference handed out under a protocol that excludes
/// every other access of this process while the reference lives: a lock
/// guard ([`MutexGuard`](crate::sync::MutexGuard) and the
/// [`RwLock`](crate::sync::RwLock) guards, whose lock word admits one
/// writer or only readers), or a ring side's chunk of slots (which only
/// that side may touch, and which only one side of each kind may be:
/// attaching one is `unsafe` where the ring cannot prove it). A region
/// handle keeps the bytes of each placement to one type
/// ([`Region::place`](crate::Region::place)), so nothing else of this
/// process can be placed over a locked mutex's data.
///
/// What no type can guarantee is how *another process* behaves (Rust's
/// rules do not reach it): a peer may write any byte at any time, under a
/// lock it does not hold, a chunk it does not own, or into a lock word so
/// that two threads here both get a guard. That is the untrusted input the
/// crate is built to survive: values are `Pod` (any bytes valid) and every
/// index is checked, so a misbehaving peer garbles or loses values, or gets
/// `Corrupted` reported, and never makes this process read or write outside
/// the region. A second handle of the same object in this process (the
/// object opened again) counts as such a peer.
///
/// # Safety
///
/// Implementing it promises that:
/// 1. every bit pattern of `size_of::<Self>()` bytes is a valid `Self`
///    (a peer may write anything), and the all-zero pattern is its initial
///    value (new regions are zero-filled);
/// 2. `Self` holds no pointer or reference, and nothing whose meaning
///    depends on the address space (a file descriptor, a `Box`);
/// 3. everything reachable from `&Self`, from any number of threads at
///    once, is sound: its fields are atomics, [`SharedCell`](crate::SharedCell)s, or other
///    `ShmSafe` types, or plain data (`Pod`) inside an `UnsafeCell` that
///    `&Self` reaches only by copy or through a reference lent under a
///    protocol that, while the reference lives, keeps every other thread
///    of this process from accessing those bytes (as the crate's lock
///    guards do); a value a peer wrote under such a reference must still
///    be valid, which `Pod` ensures;
/// 4. `Self` needs no `Drop` (regions never run destructors), and its
///    layout is fixed (`#[repr(C)]` or `#[repr(transparent)]`).
///
/// `AtomicBool` is not `ShmSafe` (a peer may write a byte that is not a
/// `bool`), nor are raw pointers or references.
///
/// # Deriving
///
/// `#[derive(ShmSafe)]` (brought in by the same `use shmkit::ShmSafe;` as
/// the trait) writes the `unsafe impl` for a struct (named fields, tuple or
/// unit) after checking, at compile time, what the type system can:
///
/// - the struct is `#[repr(C)]` or `#[repr(transparent)]` (with
///   `align(N)` if you like), so its layout is fixed (point 4); Rust's
///   default layout may differ between two builds, and two processes built
///   differently would read each other's fields at the wrong offsets.
///   `repr(packed)` is refused (atomics need their alignment);
/// - every field's type is `ShmSafe` (points 1 to 3 then hold field by
///   field; padding between fields carries nothing, so any bytes there
///   do);
/// - the struct does not implement `Drop` (point 4);
/// - it has no lifetime parameters (point 2: no references); each type
///   parameter gets a `T: ShmSafe` bound.
///
/// Enums are refused (a peer may write a discriminant that names no
/// variant), and so are unions (write that impl by hand, with its proof).
///
/// What it cannot check is what your own code does with the fields: the
/// derive vouches for the type, and the crate's API keeps access to
/// atomics, [`SharedCell`](crate::SharedCell)s and its locks sound; an
/// `unsafe` block of yours that reaches into them is yours to prove. Nor
/// can it see that two programs agree on the struct (the same fields, in
/// the same order): a [`Region`](crate::Region)'s layout id checks the
/// type's name, size and alignment, not its fields.
///
/// Each refusal has its own error:
///
/// ```compile_fail
/// use shmkit::ShmSafe;
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Names {
///     list: Vec<u8>, // a pointer into one process's heap: not ShmSafe
/// }
/// ```
///
/// ```compile_fail
/// use shmkit::ShmSafe;
/// use std::sync::atomic::AtomicU64;
///
/// #[derive(ShmSafe)] // no #[repr(C)]: the layout is not fixed
/// struct Loose {
///     n: AtomicU64,
/// }
/// ```
///
/// ```compile_fail
/// use shmkit::ShmSafe;
///
/// #[derive(ShmSafe)]
/// #[repr(u32)]
/// enum State { Idle, Busy } // a peer may write 7
/// ```
///
/// ```compile_fail
/// use shmkit::ShmSafe;
/// use std::sync::atomic::AtomicU64;
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Noisy {
///     n: AtomicU64,
/// }
/// impl Drop for Noisy { // regions never run destructors
///     fn drop(&mut self) {}
/// }
/// ```
///
/// Generic structs get bounds on their type parameters:
///
/// ```
/// use shmkit::{CachePadded, ShmSafe};
/// use std::sync::atomic::AtomicU32;
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Pair<T, const N: usize> {
///     left: CachePadded<[T; N]>,
///     right: CachePadded<[T; N]>,
/// }
///
/// fn is_shm_safe<T: ShmSafe>() {}
/// is_shm_safe::<Pair<AtomicU32, 4>>();
/// ```
pub unsafe trait ShmSafe: Sync + Sized + 'static {
    /// What a region holding one of these alone ([`Shm<T>`](crate::Shm))
    /// is to `shmkit ls` and [`region::inspect`](crate::region::inspect):
    /// a plain value unless the type says otherwise.
    #[doc(hidden)]
    const OBJECT_KIND: crate::region::ObjectKind = crate::region::ObjectKind::Value;
}

// SAFETY: an array of `ShmSafe` values meets every point field by field.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
