//! The control region a parent shares with each child it measures with,
//! and driving such a child: spawn, hand-over, readiness, reaping.

use super::{
    child_placement, spawn_child, wait_ready, ChildGuard, Placement, Wait, CHILD_EXIT_LIMIT,
    CHILD_IDLE_LIMIT,
};
use shmkit::{RegionOptions, Shm, ShmSafe};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Carries the control region's descriptor to the child.
pub const CONTROL_VAR: &str = "SHMKIT_BENCH_CONTROL";
/// Carries the child's first link end (a region or a descriptor).
pub const LINK_A_VAR: &str = "SHMKIT_BENCH_LINK_A";
/// Carries the child's second link end, if any.
pub const LINK_B_VAR: &str = "SHMKIT_BENCH_LINK_B";

/// The sequence number that tells an echoing child to stop, and the `go`
/// value that tells a producing (or consuming) child to.
pub const STOP: u64 = u64::MAX;

/// Parent ↔ child signals, in their own anonymous region.
#[repr(C)]
pub struct Control {
    /// Parent → child: 1 once the parent has closed its copies of the
    /// child's link ends. The child opens its ends only then: a channel
    /// end admits one live holder at a time.
    pub handed_over: AtomicU64,
    /// Child → parent: 1 once it has attached its link ends and pinned
    /// itself.
    pub ready: AtomicU64,
    /// Parent → child: the stream repetition to produce or consume (from
    /// 1), or [`STOP`].
    pub go: AtomicU64,
    /// Parent → child: the sequence number of the repetition's first
    /// message.
    pub first: AtomicU64,
    /// Parent → child: messages in the repetition.
    pub count: AtomicU64,
    /// Child → parent: messages produced so far, all repetitions (a
    /// producing child).
    pub produced: AtomicU64,
    /// Child → parent: messages received and checked so far, all
    /// repetitions (a consuming child).
    pub consumed: AtomicU64,
}
// SAFETY: repr(C); every field is an AtomicU64, which is ShmSafe.
unsafe impl ShmSafe for Control {}

/// A fresh control region.
pub fn new_control() -> Result<Shm<Control>, String> {
    Shm::<Control>::anonymous(|_| {}).map_err(|e| format!("creating the control region: {e}"))
}

/// Spawns the child `role` with the control region, its CPU and wait
/// mode from `placement`; `configure` hands it its ends of the link.
pub fn spawn_with_control(
    role: &str,
    control: &Shm<Control>,
    placement: &Placement,
    configure: impl FnOnce(&mut Command),
) -> Result<ChildGuard, String> {
    spawn_child(role, |cmd| {
        control.region().pass_to_child(cmd, CONTROL_VAR);
        placement.pass_to_child(cmd);
        configure(cmd);
    })
    .map_err(|e| format!("spawning the {role} child: {e}"))
}

/// The parent's side of a measurement with a spawned child: closes
/// `child_ends` (the parent's copies of what the child inherited, so that
/// the child's are the only ones: a channel end admits one holder, and a
/// pipe reports end of file only once every write end is closed), tells
/// the child it may open them, pins this thread, waits for the child to be
/// ready, runs `body` and reaps the child. Returns `body`'s result and
/// whether the pinning took effect.
pub fn drive<T, K>(
    role: &str,
    control: &Shm<Control>,
    placement: &Placement,
    child: ChildGuard,
    child_ends: K,
    body: impl FnOnce() -> Result<T, String>,
) -> Result<(T, bool), String> {
    drive_all(role, vec![(control, child)], placement, child_ends, body)
}

/// [`drive`] with several children, each with its own control region:
/// every one is told to open its ends, then waited for, before `body`
/// runs; all are reaped after it (the first failure is returned).
pub fn drive_all<T, K>(
    role: &str,
    children: Vec<(&Shm<Control>, ChildGuard)>,
    placement: &Placement,
    child_ends: K,
    body: impl FnOnce() -> Result<T, String>,
) -> Result<(T, bool), String> {
    drop(child_ends);
    for (control, _) in &children {
        control.handed_over.store(1, Ordering::Release);
    }
    let pinned = placement.pin_parent();
    let is_pinned = pinned.as_ref().is_some_and(|p| p.pinned);
    let mut guards = Vec::with_capacity(children.len());
    let mut result = Ok(());
    for (control, mut child) in children {
        if result.is_ok() {
            result = wait_ready(&mut child, || control.ready.load(Ordering::Acquire) == 1);
        }
        guards.push(child);
    }
    let result = result.and_then(|()| body());
    drop(pinned);
    let mut result = result.map_err(|e| format!("{role}: {e}"));
    let mut guards = guards.into_iter();
    // The first child carries the result (an error gets its status); the
    // others must exit cleanly too, unless it failed: then they are
    // killed as their guards drop.
    if let Some(first) = guards.next() {
        result = first.settle(result, CHILD_EXIT_LIMIT);
    }
    for child in guards {
        if result.is_err() {
            break;
        }
        child.finish(CHILD_EXIT_LIMIT)?;
    }
    Ok((result?, is_pinned))
}

/// In a child: the inherited control region (once the parent has handed
/// the link over), this process pinned, and how to wait.
pub fn child_setup() -> Result<(Shm<Control>, Wait), String> {
    // SAFETY: the parent passed this descriptor with `pass_to_child` under
    // CONTROL_VAR for exactly this purpose; nothing else in this process
    // owns it, and this is the only call for the variable.
    let region = unsafe { RegionOptions::for_type::<Control>().from_env(CONTROL_VAR) }
        .map_err(|e| format!("opening the inherited control region: {e}"))?;
    let control =
        Shm::<Control>::from_region(region).map_err(|e| format!("control region type: {e}"))?;
    let deadline = Instant::now() + CHILD_IDLE_LIMIT;
    while control.handed_over.load(Ordering::Acquire) != 1 {
        if Instant::now() >= deadline {
            return Err(format!(
                "the parent did not hand the link over within {CHILD_IDLE_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let how = child_placement();
    Ok((control, how))
}
