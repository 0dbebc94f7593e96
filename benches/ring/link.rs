//! What carries the messages: every row's link, its tag and its labels.

use crate::BATCH;

/// What carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// One cache line bounced (the latency floor).
    Line,
    /// The hand-rolled SPSC `u64` ring publishing once per `BATCH` items
    /// (the throughput floor for batches).
    Ideal,
    /// The same ring publishing every item (the floor per message).
    IdealEach,
    /// Pipes.
    Pipe,
    /// A Unix stream socket pair.
    Unix,
    /// shmkit's typed channel, per message.
    Typed,
    /// shmkit's typed channel, `send_all`/`recv_slice` in batches.
    TypedBatch,
    /// shmkit's byte channel.
    Bytes,
    /// shmkit's MPMC channel, one sender and one receiver, per message.
    Mpmc,
    /// shmkit's `SpscRing` itself, whole batches written and read in place
    /// (`write_chunk`/`read_chunk`), as the ideal ring moves them.
    RingChunks,
    /// shmkit's `SpscRing` itself, one `try_push`/`pop_into` per item,
    /// spinning when full or empty, as the ideal ring per item does.
    RingEach,
}

impl Link {
    pub(crate) const ALL: [Link; 11] = [
        Link::RingChunks,
        Link::RingEach,
        Link::Line,
        Link::Ideal,
        Link::IdealEach,
        Link::Pipe,
        Link::Unix,
        Link::Typed,
        Link::TypedBatch,
        Link::Bytes,
        Link::Mpmc,
    ];

    /// Names the link in a child role.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Link::Line => "line",
            Link::Ideal => "ideal",
            Link::IdealEach => "ideal-each",
            Link::Pipe => "pipe",
            Link::Unix => "unix",
            Link::Typed => "typed",
            Link::TypedBatch => "typed-batch",
            Link::Bytes => "bytes",
            Link::Mpmc => "mpmc",
            Link::RingChunks => "ring-chunks",
            Link::RingEach => "ring-each",
        }
    }

    /// Items the ideal ring publishes at once over this link.
    pub(crate) fn ideal_batch(self) -> u64 {
        if self == Link::IdealEach {
            1
        } else {
            BATCH as u64
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<Link> {
        Link::ALL.into_iter().find(|l| l.tag() == tag)
    }

    /// Names the link in a latency table.
    pub(crate) fn latency_label(self) -> &'static str {
        match self {
            Link::Line => "floor: cache line one-way, 2 procs",
            Link::Pipe => "pipe, 64 B write_all/read_exact",
            Link::Unix => "unix socket pair, 64 B",
            Link::Typed => "shmkit channel<[u8; 64]> send/recv",
            Link::Bytes => "shmkit byte_channel, 64 B records",
            Link::Mpmc => "shmkit mpmc_channel<[u8; 64]> send/recv",
            Link::Ideal
            | Link::IdealEach
            | Link::TypedBatch
            | Link::RingChunks
            | Link::RingEach => "?",
        }
    }

    /// Names the link in a throughput table (`size`: message bytes).
    pub(crate) fn stream_label(self, size: usize) -> String {
        match self {
            Link::Ideal => format!("ideal SPSC (hand-rolled, index per {BATCH})"),
            Link::IdealEach => "ideal SPSC (hand-rolled, index per item)".to_owned(),
            Link::Typed if size == 8 => "shmkit channel<u64> send/recv".to_owned(),
            Link::Typed => format!("shmkit channel<[u8; {size}]> send/recv"),
            Link::TypedBatch => format!("shmkit channel<u64> send_all/recv_slice x{BATCH}"),
            Link::RingChunks => format!("shmkit SpscRing<u64> chunks of {BATCH}, in place"),
            Link::RingEach => "shmkit SpscRing<u64> try_push/pop_into".to_owned(),
            Link::Bytes => "shmkit byte_channel send/recv".to_owned(),
            Link::Mpmc if size == 8 => "shmkit mpmc_channel<u64> send/recv".to_owned(),
            Link::Mpmc => format!("shmkit mpmc_channel<[u8; {size}]> send/recv"),
            Link::Pipe => "pipe write_all/read_exact".to_owned(),
            Link::Unix => "unix socket write_all/read_exact".to_owned(),
            Link::Line => "?".to_owned(),
        }
    }
}
