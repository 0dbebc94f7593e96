//! Placeholder; see the sync module.
