//! B. Fan-out throughput: the parent publishes 64-byte samples, each
//! subscriber child receives and checks every one (lossless: the
//! publisher waits for room in every queue).

use crate::support::{
    self, check_msg, child_setup, drive_all, new_control, read_stamp, spawn_with_control, stamp,
    Control, Placement, StreamBudget, StreamRun, Wait, CPU_VAR, LINK_A_VAR, PARENT_WAIT_LIMIT,
    STOP,
};
use crate::ROLE_SUBSCRIBE;
use shmkit::pool::PoolConfig;
use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber};
use shmkit::{RegionOptions, Shm};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Bytes of a fan-out sample.
pub(crate) const FANOUT_SIZE: usize = 64;
/// The subscriber counts of the rows.
pub(crate) const FANOUT_SUBSCRIBERS: [usize; 3] = [1, 2, 3];
/// Descriptors in each subscriber's queue.
const FANOUT_QUEUE: usize = 64;
/// Samples a subscriber holds at once (each is dropped before the next
/// receive).
const FANOUT_HELD: usize = 1;
/// Blocks of the pool's one class: at least the lossless bound
/// `3 * (64 + 1) + 1 = 196`, so a loan never finds the pool empty.
const FANOUT_BLOCKS: usize = 256;
/// Repetitions are whole multiples of this many samples.
const FANOUT_BATCH: u64 = 256;

/// The service of a fan-out row with `subscribers` subscribers.
pub(crate) fn fanout_config(subscribers: usize) -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(FANOUT_SIZE, FANOUT_BLOCKS))
        .subscribers(subscribers)
        .queue_capacity(FANOUT_QUEUE)
        .held_limit(FANOUT_HELD)
}

/// "1 subscriber", "3 subscribers".
pub(crate) fn fanout_label(subscribers: usize) -> String {
    let s = if subscribers == 1 { "" } else { "s" };
    format!("fan-out to {subscribers} subscriber{s}")
}

/// The CPUs of `n` subscriber children: the allowed CPUs other than the
/// parent's, in turn (all on the one other CPU of a 2-CPU machine);
/// `None` (not pinned) with a single CPU.
fn child_cpus(placement: &Placement, n: usize) -> Vec<Option<usize>> {
    let Some(pair) = placement.pair else {
        return vec![None; n];
    };
    let others: Vec<usize> = support::allowed_cpus()
        .into_iter()
        .filter(|&c| c != pair.parent)
        .collect();
    (0..n)
        .map(|i| others.get(i % others.len().max(1)).copied())
        .collect()
}

/// One round of a fan-out row: a fresh service and `subscribers` fresh
/// children; every repetition is timed from its first loan to the moment
/// the last subscriber has checked its last sample.
pub(crate) fn fanout(
    subscribers: usize,
    placement: &Placement,
    budget: &StreamBudget,
) -> Result<StreamRun, String> {
    let publisher = Publisher::anonymous(&fanout_config(subscribers))
        .map_err(|e| format!("creating the service: {e}"))?;
    let controls = (0..subscribers)
        .map(|_| new_control())
        .collect::<Result<Vec<Shm<Control>>, String>>()?;
    let cpus = child_cpus(placement, subscribers);
    let mut children = Vec::with_capacity(subscribers);
    for (control, cpu) in controls.iter().zip(cpus) {
        let child = spawn_with_control(ROLE_SUBSCRIBE, control, placement, |cmd| {
            publisher.region().pass_to_child(cmd, LINK_A_VAR);
            if let Some(cpu) = cpu {
                cmd.env(CPU_VAR, cpu.to_string());
            }
        })?;
        children.push((control, child));
    }
    let ((samples, count), pinned) = drive_all(ROLE_SUBSCRIBE, children, placement, (), || {
        publish(&publisher, &controls, budget)
    })?;
    Ok(StreamRun {
        samples,
        count,
        pinned,
    })
}

/// The parent's side: timed repetitions of samples stamped with their
/// sequence numbers, then the stop sample.
fn publish(
    publisher: &Publisher,
    controls: &[Shm<Control>],
    budget: &StreamBudget,
) -> Result<(Vec<f64>, u64), String> {
    let send = |seq: u64| -> Result<(), String> {
        let mut sample = publisher
            .loan(FANOUT_SIZE)
            .map_err(|e| format!("loaning sample {seq}: {e}"))?;
        stamp(&mut sample, seq);
        sample
            .send()
            .map(drop)
            .map_err(|e| format!("sending sample {seq}: {e}"))
    };
    let result = support::timed_reps(budget, FANOUT_BATCH, |first, count| {
        let t = Instant::now();
        for seq in first..first + count {
            send(seq)?;
        }
        let end = first + count;
        for (i, c) in controls.iter().enumerate() {
            support::wait_for(PARENT_WAIT_LIMIT, Wait::Spin, || {
                (c.consumed.load(Ordering::Acquire) >= end).then_some(())
            })
            .ok_or_else(|| {
                format!(
                    "subscriber {i} checked {} of {end} samples within {PARENT_WAIT_LIMIT:?}",
                    c.consumed.load(Ordering::Acquire)
                )
            })?;
        }
        Ok(t.elapsed())
    })?;
    send(STOP)?;
    Ok(result)
}

/// The child's side: receives every sample, checks its length and stamp
/// (its sequence number, in order), counts it, drops it; returns at the
/// stop sample.
pub(crate) fn subscribe_child() -> Result<(), String> {
    let (control, _) = child_setup()?;
    // SAFETY: the parent passed this service's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let region = unsafe { RegionOptions::new().any_layout().from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the service: {e}"))?;
    let sub = Subscriber::from_region(region).map_err(|e| format!("subscribing: {e}"))?;
    control.ready.store(1, Ordering::Release);
    let mut expect: u64 = 0;
    loop {
        // No deadline: a child whose parent dies dies with it.
        let sample = sub
            .recv()
            .map_err(|e| format!("receiving sample {expect}: {e}"))?;
        if read_stamp(&sample)? == STOP {
            return Ok(());
        }
        check_msg(&sample, FANOUT_SIZE, expect)?;
        drop(sample);
        expect += 1;
        control.consumed.store(expect, Ordering::Release);
    }
}
