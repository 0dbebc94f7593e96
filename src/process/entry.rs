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

/// The executable ranges of the object file [`anchor`] is in (the
/// executable, unless shmkit was linked as a shared library), read once.
fn image() -> &'static [(usize, usize)] {
    static IMAGE: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        crate::sys::proc::code_ranges_of(anchor as *const () as usize).unwrap_or_default()
    })
}

/// Whether `addr` is code of the same object file as [`anchor`]: only
/// such an address has the same distance from it in another run.
pub(crate) fn in_image(addr: usize) -> bool {
    image().iter().any(|(lo, hi)| (*lo..*hi).contains(&addr))
}

/// The distance of `addr` (a function of this executable) from [`anchor`],
/// or `None` if `addr` is not code of the object file `anchor` is in (a
/// function of a library loaded at run time, whose place differs from
/// run to run).
pub(crate) fn offset_of(addr: usize) -> Option<u64> {
    in_image(addr).then(|| addr.wrapping_sub(anchor as *const () as usize) as u64)
}

/// The address `off` bytes from [`anchor`], if it is code of the same
/// object file (an offset from a peer is checked before it is called).
pub(crate) fn address_at(off: u64) -> Option<usize> {
    let addr = (anchor as *const () as usize).wrapping_add(off as usize);
    in_image(addr).then_some(addr)
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

/// Turns `off` (from the parent) back into a trampoline; `None` if it
/// lands outside this executable's code.
///
/// # Safety
///
/// `off` must be `offset_of(t as usize)` for a [`Trampoline`] `t` of this
/// same executable.
pub(crate) unsafe fn trampoline_at(off: u64) -> Option<Trampoline> {
    // SAFETY: forwarded to the caller; a function pointer and a usize have
    // the same size.
    address_at(off).map(|a| unsafe { std::mem::transmute::<usize, Trampoline>(a) })
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
/// ```
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

#[cfg(test)]
mod tests {
    use super::*;

    fn local(x: u8) -> u8 {
        x
    }

    #[test]
    fn only_code_of_this_executable_gets_an_offset() {
        let f: fn(u8) -> u8 = local;
        let off = offset_of(f as usize).expect("a function of this executable");
        assert_eq!(address_at(off), Some(f as usize));
        // A function of the C library, a shared object loaded elsewhere.
        assert_eq!(offset_of(libc::getpid as *const () as usize), None);
        // Data, not code; and an offset a peer made up.
        static DATA: u8 = 0;
        assert_eq!(offset_of(&DATA as *const u8 as usize), None);
        assert_eq!(address_at(u64::MAX / 2), None);
    }
}
