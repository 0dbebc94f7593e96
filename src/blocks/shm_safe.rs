//! [`ShmSafe`]: the marker for what may live in shared memory.

/// Types that may be placed in shared memory and used through `&Self` from
/// several threads and processes at once.
///
/// Implemented for the integer atomics (`core`'s and shmkit's), for
/// [`SharedCell<T>`](crate::SharedCell), for the locks and other objects of [`sync`](crate::sync),
/// for the rings' parts, and for arrays of `ShmSafe` types. Implement it for
/// your own `#[repr(C)]` structs whose fields are all `ShmSafe`.
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
/// ```
/// use shmkit::{ShmSafe, SharedCell};
/// use std::sync::atomic::AtomicU64;
///
/// #[repr(C)]
/// struct Stats {
///     hits: AtomicU64,
///     last: SharedCell<[u8; 16]>,
/// }
/// // SAFETY: repr(C), every field is ShmSafe.
/// unsafe impl ShmSafe for Stats {}
/// ```
pub unsafe trait ShmSafe: Sync + Sized + 'static {}

// SAFETY: an array of `ShmSafe` values meets every point field by field.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
