//! `membarrier(2)`: a full memory barrier forced on every CPU running a
//! registered process, so that a rarely-taken slow path can pay for the
//! ordering a hot path would otherwise need a fence for.

use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};

/// Registers this process for `GLOBAL_EXPEDITED` barriers; `true` if the
/// kernel supports them and registration worked.
pub(crate) fn register_global_expedited() -> bool {
    membarrier_query().contains_command(MembarrierCommand::GlobalExpedited)
        && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
}

/// Issues a `GLOBAL_EXPEDITED` barrier; `false` if it failed.
pub(crate) fn global_expedited() -> bool {
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}
