//! The children: a role from the command line, the inherited control
//! region, and the link's end for each role.

use crate::latency::kernel;
use crate::link::Link;
use crate::support::{self, child_setup};
use crate::{bytes, channel, ideal, line, peers, spsc};
use crate::{Msg, MSG, ROLE_ECHO, ROLE_PRODUCE, RUN_LIMIT};
use shmkit::channel::{MpmcReceiver, MpmcSender, Receiver, Sender};

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

pub(crate) fn echo_child(link: Link) -> Result<(), String> {
    let (control, how) = child_setup()?;
    match link {
        Link::Line => line::echo(&control, how),
        Link::Pipe | Link::Unix => support::kernel_echo(kernel(link), [0; MSG], &control),
        Link::Typed => support::typed_echo::<Receiver<Msg>, Sender<Msg>, MSG>(&control),
        Link::Mpmc => support::typed_echo::<MpmcReceiver<Msg>, MpmcSender<Msg>, MSG>(&control),
        Link::Bytes => support::bytes_echo(&control),
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
