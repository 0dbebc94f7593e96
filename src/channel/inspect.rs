//! [`inspect`]: what a channel's shared memory says, read from outside.

use super::blocking::RING_OFFSET;
use crate::error::Result;
use crate::region::{ObjectKind, Outside};

/// A channel as its shared memory describes it, read without attaching
/// to it or changing anything (see [`inspect`]). Every number is what the
/// memory claims, checked only for being possible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// SPSC, MPMC or byte channel.
    pub kind: ObjectKind,
    /// Slots (typed channels) or buffer bytes (byte channels).
    pub capacity: u64,
    /// Values queued (typed), or bytes queued, frame headers included
    /// (byte channels).
    pub len: u64,
    /// The largest message (byte channels).
    pub max_message: Option<u64>,
    /// Sender handles attached, as the senders' table counts them.
    pub senders: u32,
    /// Receiver handles attached, as the receivers' table counts them.
    pub receivers: u32,
    /// What does not add up (indices that cannot be), if anything.
    pub inconsistent: Option<&'static str>,
}

/// Reads channel `name` from outside: its ring's capacity and fill level
/// and how many handles each end has, without mapping it or attaching a
/// handle (`pread` of its file). For tools (`shmkit inspect`) and health
/// checks.
///
/// Fails as [`region::inspect`](crate::region::inspect) does for a bad name, a foreign file or
/// another user's object, and with [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) for an object
/// that is not a channel (or not ready).
///
/// ```
/// use shmkit::channel::{self, Sender};
/// # let name = format!("/shmkit-doc-chan-inspect-{}", std::process::id());
/// let tx = Sender::<u64>::create(&name, 64)?;
/// tx.try_send(7)?;
/// let info = channel::inspect(&name)?;
/// assert_eq!((info.capacity, info.len, info.senders, info.receivers), (64, 1, 1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<ChannelInfo> {
    let object = Outside::open(
        name,
        &[
            ObjectKind::SpscChannel,
            ObjectKind::MpmcChannel,
            ObjectKind::ByteChannel,
        ],
    )?;
    let kind = object.info.kind;
    let (cap_at, head_at, tail_at) = match kind {
        // SPSC: head (consumer) at 128, tail (producer) at 256.
        ObjectKind::SpscChannel => (8, 128, 256),
        // MPMC: enqueue at 128, dequeue at 256.
        ObjectKind::MpmcChannel => (8, 256, 128),
        // Byte ring: prod at 128, cons at 256.
        _ => (8, 256, 128),
    };
    let bytes = object.data(0, RING_OFFSET + 384)?;
    let (u32_at, u64_at) = (|at| bytes.u32_at(at), |at| bytes.u64_at(at));
    // The channel header: senders' table at 256, receivers' at 512, each
    // with its count at +4.
    let senders = u32_at(256 + 4);
    let receivers = u32_at(512 + 4);
    let ring = RING_OFFSET;
    let capacity = u64_at(ring + cap_at);
    let (head, tail) = (u64_at(ring + head_at), u64_at(ring + tail_at));
    let used = tail.wrapping_sub(head);
    let mut inconsistent = None;
    if bytes.len() < ring + 384 {
        inconsistent = Some("the file ends inside the ring's header");
    } else if used > capacity {
        inconsistent = Some("the ring's indices are further apart than its capacity");
    }
    let max_message = (kind == ObjectKind::ByteChannel).then(|| u64_at(ring + 16));
    Ok(ChannelInfo {
        kind,
        capacity,
        len: used.min(capacity),
        max_message,
        senders,
        receivers,
        inconsistent,
    })
}
