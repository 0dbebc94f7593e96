//! The run's budgets, its selection of rows, and driving a child.

use crate::support::{
    self, ChildGuard, Control, LatencyBudget, Placement, Selection, StreamBudget,
};
use shmkit::Shm;
use std::process::Command;

/// Budgets for one run.
pub(crate) struct Plan {
    /// Latency: warm-up, budget and rounds of every row.
    pub(crate) latency: LatencyBudget,
    /// Streams: calibration, repetitions and rounds of every row.
    pub(crate) streams: StreamBudget,
}

/// The run's plan and where its two sides run.
pub(crate) struct Ctx {
    pub(crate) plan: Plan,
    /// Whether to run section A (latency) and section B (streams).
    pub(crate) latency: bool,
    pub(crate) streams: bool,
    /// The rows selected on the command line. The baselines the ratios
    /// need run anyway.
    pub(crate) selection: Selection,
    pub(crate) placement: Placement,
}

impl Ctx {
    /// Whether the row labelled `label` is selected.
    pub(crate) fn selects(&self, label: &str) -> bool {
        self.selection.selects(label)
    }

    pub(crate) fn describe_pinning(&self, pinned: bool) -> String {
        self.placement.describe(pinned)
    }

    /// Spawns the child `role` with the control region, its CPU and wait
    /// mode; `configure` hands it its ends of the link.
    pub(crate) fn spawn(
        &self,
        role: &str,
        control: &Shm<Control>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildGuard, String> {
        support::spawn_with_control(role, control, &self.placement, configure)
    }

    /// The parent's side of a measurement with a spawned child
    /// ([`support::drive`]).
    pub(crate) fn drive<T, K>(
        &self,
        role: &str,
        control: &Shm<Control>,
        child: ChildGuard,
        child_ends: K,
        body: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, bool), String> {
        support::drive(role, control, &self.placement, child, child_ends, body)
    }
}
