//! Parent ↔ child signals.

use shmkit::ShmSafe;
use std::sync::atomic::AtomicU64;

/// Parent ↔ child signals, in their own anonymous region.
#[repr(C)]
pub(crate) struct Control {
    /// Parent → child: 1 once the parent has closed its copies of the
    /// child's link ends. The child opens its ends only then: a channel
    /// end admits one live holder at a time.
    pub(crate) handed_over: AtomicU64,
    /// Child → parent: 1 once it has attached its link ends and pinned
    /// itself.
    pub(crate) ready: AtomicU64,
    /// Parent → child: the stream repetition to produce (from 1), or
    /// [`STOP`].
    pub(crate) go: AtomicU64,
    /// Parent → child: the sequence number of the repetition's first
    /// message.
    pub(crate) first: AtomicU64,
    /// Parent → child: messages in the repetition.
    pub(crate) count: AtomicU64,
    /// Child → parent: messages produced so far, all repetitions.
    pub(crate) produced: AtomicU64,
}
// SAFETY: repr(C); every field is an AtomicU64, which is ShmSafe.
unsafe impl ShmSafe for Control {}
