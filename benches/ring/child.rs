//! The children: a role from the command line, the inherited control
//! region, and the link's end for each role.

use crate::control::Control;
use crate::link::Link;
use crate::support::{self, Wait, CHILD_IDLE_LIMIT};
use crate::{bytes, channel, ideal, line, peers, spsc};
use crate::{CONTROL_VAR, ROLE_ECHO, ROLE_PRODUCE, RUN_LIMIT};
use shmkit::{RegionOptions, Shm};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) fn run_child(role: &str) -> i32 {
    support::die_with_parent();
    support::watchdog(RUN_LIMIT, &format!("bench child ({role})"), 4);
    let mut parts = role.split(':');
    let result = match (
        parts.next(),
        parts.next().and_then(Link::from_tag),
        parts.next().map(str::parse::<usize>),
    ) {
        (Some(ROLE_ECHO), Some(link), None) => echo_child(link),
        (Some(ROLE_PRODUCE), Some(link), Some(Ok(size))) if size >= 8 => produce_child(link, size),
        _ => {
            eprintln!("bench child: unknown role {role:?}");
            return 2;
        }
    };
    support::exit_code(role, result)
}

/// The inherited control region, this process pinned, and how to wait.
pub(crate) fn child_setup() -> Result<(Shm<Control>, Wait), String> {
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
    let how = support::child_placement();
    Ok((control, how))
}

pub(crate) fn echo_child(link: Link) -> Result<(), String> {
    let (control, how) = child_setup()?;
    match link {
        Link::Line => line::echo(&control, how),
        Link::Pipe | Link::Unix => peers::echo(link, &control),
        Link::Typed | Link::Mpmc => channel::echo(link, &control),
        Link::Bytes => bytes::echo(&control),
        Link::Ideal | Link::IdealEach | Link::TypedBatch | Link::RingChunks | Link::RingEach => {
            Err(format!("no echo over {link:?}"))
        }
    }
}

pub(crate) fn produce_child(link: Link, size: usize) -> Result<(), String> {
    let (control, how) = child_setup()?;
    match link {
        Link::Ideal | Link::IdealEach => ideal::produce(link, &control, how),
        Link::Pipe | Link::Unix => peers::produce(link, size, &control, how),
        Link::Typed | Link::TypedBatch | Link::Mpmc => channel::produce(link, size, &control, how),
        Link::Bytes => bytes::produce(size, &control, how),
        Link::RingChunks | Link::RingEach => spsc::produce(link, size, &control, how),
        Link::Line => Err("no stream over a single cache line".to_owned()),
    }
}
