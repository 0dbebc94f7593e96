//! Loom-only support for models of a participant that dies mid-protocol.
//!
//! A model picks the step after which one of its threads stops
//! ([`stop_after`]); the protocol code marks its steps with
//! `stop_point!` (defined in `sync/mod.rs`), which returns early from the
//! operation there (and expands to nothing outside loom). The thread then declares itself dead
//! ([`die`]) and does nothing more to shared state, which is what a killed
//! process looks like to the others.

use std::cell::Cell;

loom::thread_local! {
    /// The step after which this loom thread stops, and whether it did.
    static STOP: Cell<(Option<&'static str>, bool)> = Cell::new((None, false));
}

/// Makes the calling thread stop at the first `stop_point!` named `step`.
#[cfg(test)]
pub(crate) fn stop_after(step: &'static str) {
    STOP.with(|s| s.set((Some(step), false)));
}

/// Whether the calling thread is to stop at `step` now (records it).
pub(crate) fn stops_at(step: &'static str) -> bool {
    STOP.with(|s| {
        let (target, stopped) = s.get();
        let now = !stopped && target == Some(step);
        if now {
            s.set((target, true));
        }
        now
    })
}

/// Whether the calling thread stopped at the step it was given.
#[cfg(test)]
pub(crate) fn stopped() -> bool {
    STOP.with(|s| s.get().1)
}

/// Declares the calling thread dead: from now on liveness checks of its
/// token say `Dead`. The thread must not touch shared state afterwards.
#[cfg(test)]
pub(crate) fn die() {
    crate::region::participants::declare_dead();
}

/// What a call stopped at a `stop_point!` reports: its result does not
/// matter (its thread plays a killed process), any error will do.
pub(crate) const STOPPED: &str = "stopped by the model";
