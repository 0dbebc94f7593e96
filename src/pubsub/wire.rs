//! The service header and the sample descriptor: the wire format every
//! process that opens a service agrees on (offsets from the region data's
//! start).

use crate::blocks::{CachePadded, ShmSafe, Signal};
use crate::pool::BlockRef;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::sync::raw_mutex::RawMutex;
use bytemuck::{Pod, Zeroable};

/// The magic word of a service header, `b"shmkPUB1"` read as a
/// little-endian `u64`.
pub const SERVICE_MAGIC: u64 = u64::from_le_bytes(*b"shmkPUB1");
/// The format version the header's `version` word holds.
pub const SERVICE_VERSION: u64 = 3;
/// Offset of the magic word (`u64`).
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the number of subscriber entries (`u64`, 1 ..= 62).
pub const SUBSCRIBERS_OFFSET: usize = 16;
/// Offset of each subscriber queue's capacity (`u64`).
pub const QUEUE_CAPACITY_OFFSET: usize = 24;
/// Offset of the per-subscriber limit of samples held at once (`u64`).
pub const HELD_LIMIT_OFFSET: usize = 32;
/// Offset of the history length (`u64`, 0 ..= the queue capacity): how
/// many of the newest samples a late joiner receives.
pub const HISTORY_OFFSET: usize = 64;
/// Offset of the send under way (a descriptor slot, 32 bytes).
pub const SENDING_OFFSET: usize = 72;
/// Offset of the next sequence number (`u64`).
pub const NEXT_SEQ_OFFSET: usize = 128;
/// Offset of the publisher's participant token (`u32`, 0: none; with
/// [`RECLAIMING`] set: a peer cleaning up after a dead publisher, not a
/// publisher).
pub const PUBLISHER_OFFSET: usize = 256;
/// Bit 31 of the publisher's word: its holder (the other bits) took the
/// word from a dead publisher to clean up after it, and frees it when
/// done. No publisher is attached meanwhile; one that attaches waits for
/// the holder (or takes the word over if the holder died too).
pub const RECLAIMING: u32 = 1 << 31;
/// Offset of the present mask (`u64`): bit `i` set while subscriber entry
/// `i` receives.
pub const PRESENT_OFFSET: usize = 384;
/// Offset of subscriber entry 0; entry `i` is at `ENTRIES_OFFSET + 128 i`:
/// its token (`u32`, 0: free) at +0, its data signal at +8, its space
/// signal at +16, its owed samples (descriptor slots) from +24.
pub const ENTRIES_OFFSET: usize = 512;
/// Bytes between two subscriber entries.
pub const ENTRY_STRIDE: usize = 128;
/// The most subscribers a service may have: bit 63 of a block's holders
/// mask is the publisher's, bit 62 the history's.
pub const MAX_SUBSCRIBERS: usize = 62;
/// The history's hold on a block (bit 62 of its holders mask): set while
/// the block's sample is among the newest the history keeps.
pub(crate) const HISTORY_BIT: u64 = 1 << 62;
/// Offset of the history lock (a robust mutex word, `u32`).
pub const HISTORY_LOCK_OFFSET: usize = ENTRIES_OFFSET + MAX_SUBSCRIBERS * ENTRY_STRIDE;
/// Bytes of the service header; the history slots start here, then the
/// queues.
pub const HEADER_SIZE: usize = HISTORY_LOCK_OFFSET + 128;
/// Bytes of one history slot.
pub const HISTORY_SLOT_SIZE: usize = 32;
/// How many owed samples an entry keeps at once.
pub const OWED_SLOTS: usize = 2;

/// One subscriber entry.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// The participant token of the handle holding the entry; 0: free.
    pub(crate) token: AtomicU32,
    _pad: AtomicU32,
    /// The subscriber sleeps here on an empty queue; the publisher
    /// notifies it after each push.
    pub(crate) data: Signal,
    /// The publisher sleeps here on a full queue; the subscriber notifies
    /// it after each pop.
    pub(crate) space: Signal,
    /// Samples owed to the entry: a dead publisher's send shared them with
    /// it (its bit set) and never pushed their descriptors. Filled by
    /// whoever takes the publisher's word from the dead one, emptied by
    /// the entry's holder (see [`Service::owe_unsent`](super::service::Service::owe_unsent)).
    pub(crate) owed: [DescriptorSlot; OWED_SLOTS],
}

/// The service header; see the [module documentation](super).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ServiceHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU64,
    pub(crate) subscribers: AtomicU64,
    pub(crate) queue_capacity: AtomicU64,
    pub(crate) held_limit: AtomicU64,
    pub(crate) policy: AtomicU64,
    pub(crate) pool_offset: AtomicU64,
    pub(crate) total_bytes: AtomicU64,
    pub(crate) history: AtomicU64,
    /// The descriptor of the publisher's send under way (or its last),
    /// written before the block is shared: what a send killed between
    /// sharing and pushing leaves for the next holder of the publisher's
    /// word.
    pub(crate) sending: DescriptorSlot,
    _reserved: [AtomicU64; 3],
    pub(crate) next_seq: CachePadded<AtomicU64>,
    pub(crate) publisher: CachePadded<AtomicU32>,
    pub(crate) present: CachePadded<AtomicU64>,
    pub(crate) entries: [CachePadded<Entry>; MAX_SUBSCRIBERS],
    /// Held while a send numbers a sample and files it in the history,
    /// and while a joiner takes the history's samples.
    pub(crate) history_lock: CachePadded<RawMutex>,
}

/// A descriptor kept in shared memory: a history slot (the sample the
/// history holds, its block's holders word with bit 62 set, written under
/// the history lock), an entry's owed sample, the send under way. Words:
/// `class | index << 32`, `generation | len << 32`, `seq`, and 1 while the
/// slot is filled (0: empty).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct DescriptorSlot {
    pub(crate) words: [AtomicU64; 4],
}

/// A history slot.
pub(crate) type HistorySlot = DescriptorSlot;

// SAFETY: repr(C) atomics; any bytes are a valid slot (checked when read).
unsafe impl ShmSafe for DescriptorSlot {}

impl DescriptorSlot {
    /// The descriptor the slot holds, if it is filled; `Err` for a slot
    /// no correct peer writes (its filled word is neither 0 nor 1).
    pub(crate) fn read(&self) -> Result<Option<Descriptor>, ()> {
        let [a, b, seq, filled] = &self.words;
        match filled.load(Ordering::Acquire) {
            0 => return Ok(None),
            1 => {}
            _ => return Err(()),
        }
        let (block, len) =
            BlockRef::from_words([a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)]);
        Ok(Some(Descriptor {
            class: block.class,
            index: block.index,
            generation: block.generation,
            len,
            seq: seq.load(Ordering::Relaxed),
            reserved: 0,
        }))
    }

    /// Fills the slot with `d` (for its one writer: a reader sees the
    /// words once it sees the slot filled).
    pub(crate) fn write(&self, d: &Descriptor) {
        let [a, b, seq, filled] = &self.words;
        filled.store(0, Ordering::Relaxed);
        let [wa, wb] = d.block().to_words(d.len);
        a.store(wa, Ordering::Relaxed);
        b.store(wb, Ordering::Relaxed);
        seq.store(d.seq, Ordering::Relaxed);
        filled.store(1, Ordering::Release);
    }

    /// Empties the slot.
    pub(crate) fn clear(&self) {
        self.words[3].store(0, Ordering::Release);
    }
}

// SAFETY: repr(C) of atomics, signals and padding nobody reads: any bytes
// are a valid header (zero: no service, refused by open), no pointers, no
// Drop.
unsafe impl ShmSafe for ServiceHeader {}

#[cfg(not(shmkit_loom))]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<ServiceHeader>() == HEADER_SIZE);
    assert!(offset_of!(ServiceHeader, magic) == MAGIC_OFFSET);
    assert!(offset_of!(ServiceHeader, subscribers) == SUBSCRIBERS_OFFSET);
    assert!(offset_of!(ServiceHeader, queue_capacity) == QUEUE_CAPACITY_OFFSET);
    assert!(offset_of!(ServiceHeader, held_limit) == HELD_LIMIT_OFFSET);
    assert!(offset_of!(ServiceHeader, next_seq) == NEXT_SEQ_OFFSET);
    assert!(offset_of!(ServiceHeader, publisher) == PUBLISHER_OFFSET);
    assert!(offset_of!(ServiceHeader, present) == PRESENT_OFFSET);
    assert!(offset_of!(ServiceHeader, entries) == ENTRIES_OFFSET);
    assert!(offset_of!(ServiceHeader, history) == HISTORY_OFFSET);
    assert!(offset_of!(ServiceHeader, sending) == SENDING_OFFSET);
    assert!(offset_of!(Entry, owed) == 24);
    assert!(offset_of!(ServiceHeader, history_lock) == HISTORY_LOCK_OFFSET);
    assert!(size_of::<HistorySlot>() == HISTORY_SLOT_SIZE);
    assert!(size_of::<CachePadded<Entry>>() == ENTRY_STRIDE);
    assert!(size_of::<Descriptor>() == 32);
};

/// What a subscriber's queue carries: the name of a sample's block, its
/// length and its sequence number. Plain data a peer may have written:
/// checked before use.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Descriptor {
    /// The block's size class.
    pub class: u32,
    /// The block's index in its class.
    pub index: u32,
    /// The generation of the loan that filled the block.
    pub generation: u32,
    /// The sample's length in bytes.
    pub len: u32,
    /// The sample's sequence number.
    pub seq: u64,
    /// Zero.
    pub reserved: u64,
}

impl Descriptor {
    /// The block it names.
    pub(crate) fn block(&self) -> BlockRef {
        BlockRef {
            class: self.class,
            index: self.index,
            generation: self.generation,
        }
    }
}
