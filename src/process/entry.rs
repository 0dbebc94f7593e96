//! How a re-executed child finds the function it is to run: [`init`], the
//! worker-mode switch at the start of `main`, and the code offsets that
//! name a function across two runs of the same executable.
//!
//! A function pointer differs between two runs of one executable only by
//! where the loader put its image (ASLR moves the whole image at once), so
//! its distance from a fixed function of the same image ([`anchor`]) is the
//! same in the parent and in the child. The parent sends two distances: the
//! user's function, and a *trampoline* monomorphized for its argument and
//! result types, which decodes the argument, calls the function and encodes
//! the result. The child adds them to its own `anchor`. This holds because
//! the child runs the very file the parent runs (`/proc/self/exe`, checked
//! by device and inode) and because both functions are in that file's code,
//! not in a shared library loaded elsewhere.

use super::payload::{from_bytes, DecodeError, Payload};
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that puts a process in worker mode; [`init`]
/// removes it.
pub(crate) const ENV: &str = "SHMKIT_PROCESS";

/// The arguments a child gets after the executable's name, so that a test
/// binary runs the one entry test [`test_support!`](crate::process_test_support)
/// defines (a program calling [`init`] first never looks at them).
pub(crate) const CHILD_ARGS: [&str; 6] = [
    "__shmkit_process_entry",
    "--ignored",
    "--nocapture",
    "--test-threads=1",
    "-q",
    "--color=never",
];

/// Set by [`init`]. Process-local, never in shared memory.
#[allow(clippy::disallowed_types)]
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// A function whose address the distances are measured from.
#[inline(never)]
fn anchor() {}

/// The distance of `addr` (a function of this executable) from [`anchor`].
pub(crate) fn offset_of(addr: usize) -> u64 {
    addr.wrapping_sub(anchor as *const () as usize) as u64
}

/// The address `off` bytes from [`anchor`].
pub(crate) fn address_at(off: u64) -> usize {
    (anchor as *const () as usize).wrapping_add(off as usize)
}

/// A trampoline: decodes an argument from `input`, calls the function at
/// `f` with it, encodes the result into `out`.
pub(crate) type Trampoline =
    fn(f: usize, input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError>;

/// The trampoline for `fn(A) -> R`.
pub(crate) fn call_one<A: Payload, R: Payload>(
    f: usize,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let arg = from_bytes::<A>(input)?;
    // SAFETY: `f` was made by `offset_of(f as usize)` for a `fn(A) -> R` in
    // this same executable (see the module docs), paired with this very
    // instantiation of `call_one::<A, R>`, and `address_at` undid it.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    f(arg).encode(out);
    Ok(())
}

/// Turns `off` (from the parent) back into a trampoline.
///
/// # Safety
///
/// `off` must be `offset_of(t as usize)` for a [`Trampoline`] `t` of this
/// same executable.
pub(crate) unsafe fn trampoline_at(off: u64) -> Trampoline {
    // SAFETY: forwarded to the caller; a function pointer and a usize have
    // the same size.
    unsafe { std::mem::transmute::<usize, Trampoline>(address_at(off)) }
}

/// Whether [`init`] has run in this process.
pub(crate) fn initialized() -> bool {
    INITIALIZED.load(Ordering::Relaxed)
}

/// Whether this process was started as a worker and did not take over in
/// [`init`] (so its `main` runs where a worker should): spawning functions
/// from it is refused, which stops a program that forgot [`init`] from
/// spawning itself without end.
pub(crate) fn skipped_init() -> bool {
    !initialized() && std::env::var_os(ENV).is_some()
}

/// Runs the worker this process was started as, if it was, and exits;
/// otherwise returns at once.
///
/// Call it first in `main` of every program that spawns functions with
/// [`spawn`](super::spawn) or runs a [`ProcessPool`](super::ProcessPool):
/// the child is this same program run again, and here it turns into the
/// worker instead of running `main`. In a test binary (which has no `main`
/// of yours), invoke [`process_test_support!`](crate::process_test_support)
/// once instead.
///
/// A set-user-ID or otherwise privileged run (`AT_SECURE`) never enters
/// worker mode: the environment of such a process is its invoker's to
/// choose, and a worker runs code the environment names.
///
/// ```no_run
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     shmkit::process::init();
///     let child = shmkit::process::spawn(square, 12)?;
///     assert_eq!(child.join()?, 144);
///     Ok(())
/// }
/// ```
pub fn init() {
    if INITIALIZED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    std::env::remove_var(ENV);
    if crate::sys::proc::is_secure_exec() {
        eprintln!("shmkit: refusing worker mode in a privileged (AT_SECURE) process");
        std::process::exit(super::worker::EXIT_REFUSED);
    }
    let code = super::worker::run(&value);
    std::process::exit(code);
}

/// Defines the test a re-executed test binary runs to become a worker:
/// invoke it once at the top level of each test file (integration test or
/// `#[cfg(test)]` module) whose tests spawn functions or run a
/// [`ProcessPool`](crate::process::ProcessPool). It is `shmkit`'s
/// counterpart of calling [`init`](crate::process::init) first in `main`;
/// the test it adds is `#[ignore]`d, so it never runs on its own.
///
/// ```no_run
/// // tests/children.rs
/// shmkit::process_test_support!();
///
/// fn double(x: u32) -> u32 {
///     2 * x
/// }
///
/// # #[allow(clippy::test_attr_in_doctest)]
/// #[test]
/// fn doubles_in_a_child() {
///     assert_eq!(shmkit::process::spawn(double, 21).unwrap().join().unwrap(), 42);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! process_test_support {
    () => {
        #[test]
        #[ignore = "the entry point of shmkit's worker processes"]
        fn __shmkit_process_entry() {
            $crate::process::init();
        }
    };
}
