//! What a process started as a worker does: find its job in the
//! environment [`init`](super::init) read, run it, and turn panics into
//! messages for the parent.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};

/// Exit code of a process that refused worker mode (`AT_SECURE`).
pub(crate) const EXIT_REFUSED: i32 = 121;
/// Exit code of a worker whose setup from the parent did not check out.
pub(crate) const EXIT_BAD_SETUP: i32 = 122;

thread_local! {
    /// The last panic's message and place, recorded by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Parses `call:<fd>` (one function, see `call`) or `pool:<fd>,<fd>[,<fd>]`
/// (a pool worker: its region, the pool's doorbell, its shared blocks) and
/// runs it; returns the exit code.
pub(crate) fn run(value: &OsStr) -> i32 {
    let Some(value) = value.to_str() else {
        return EXIT_BAD_SETUP;
    };
    let Some((mode, fds)) = value.split_once(':') else {
        return EXIT_BAD_SETUP;
    };
    let Some(mut fds) = fds
        .split(',')
        .map(inherited)
        .collect::<Option<Vec<OwnedFd>>>()
    else {
        return EXIT_BAD_SETUP;
    };
    match (mode, fds.len()) {
        ("call", 1) => {
            record_panics(true);
            super::call::serve(fds.remove(0))
        }
        ("pool", 2 | 3) => {
            record_panics(false);
            let blocks = (fds.len() == 3).then(|| fds.remove(2));
            let doorbell = fds.remove(1);
            super::pool::worker::serve(fds.remove(0), doorbell, blocks)
        }
        _ => EXIT_BAD_SETUP,
    }
}

/// Takes ownership of the inherited descriptor numbered `text`.
fn inherited(text: &str) -> Option<OwnedFd> {
    let raw: RawFd = text.parse().ok().filter(|fd| *fd > 2)?;
    // SAFETY: the number came from the parent, which cleared close-on-exec
    // on exactly this descriptor for this process; `init` removed the
    // variable, so nothing else in this process takes it, and F_GETFD
    // checks that it is open before it is owned.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_getfd(borrowed).ok()?;
    // SAFETY: open (checked above) and owned by nothing else (see above).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(fd)
}

/// Installs the hook that records each panic's message and location;
/// `print` keeps the default report on stderr too.
fn record_panics(print: bool) {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".into());
        let message = match info.location() {
            Some(l) => format!("{message} (at {}:{}:{})", l.file(), l.line(), l.column()),
            None => message,
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        if print {
            default(info);
        }
    }));
}

/// Runs `f`, turning a panic into its recorded message.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}
