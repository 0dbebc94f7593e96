//! [`ByteRing`]: a single-producer single-consumer ring of variable-length
//! byte records in shared memory, with in-place writing ([`WriteChunk`]) and
//! reading ([`ReadChunk`]).
//!
//! ```
//! use shmkit::ring::bytes::HeapByteRing;
//!
//! let mut ring = HeapByteRing::new(256, 64)?;
//! let (mut tx, mut rx) = ring.split()?;
//! tx.try_push(b"by copy")?;
//! let mut chunk = tx.write_chunk(8)?; // in place
//! chunk[..5].copy_from_slice(b"fresh");
//! chunk.commit(5);
//! let mut got = Vec::new();
//! rx.try_pop(&mut got)?;
//! assert_eq!(got, b"by copy");
//! assert_eq!(&*rx.read_chunk()?, b"fresh"); // read in place, freed on drop
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! ```text
//! offset  field        written by          notes
//!      0  magic        creator, once       b"shmkBR\0\x01" (LE), stored last
//!      8  capacity     creator, once       bytes in the buffer, a power of two >= 16
//!     16  max_message  creator, once       largest record, <= capacity/2 - 8
//!    128  prod         producer            u64 byte counter, only grows
//!    256  cons         consumer            u64 byte counter, only grows
//!    384  buffer       both, by protocol   `capacity` bytes
//! ```
//!
//! The header is three 128-byte lines, 384 bytes (so the two
//! indices never share a cache line, nor the adjacent-line prefetch pair
//! with each other), and the buffer follows it. A ring placed at a
//! 128-aligned offset of a region takes [`ByteRing::bytes_for`]`(capacity)`
//! bytes. Every word is an atomic `u64`; zero-filled memory has magic 0
//! and is never mistaken for a ring.
//!
//! # Frames
//!
//! The buffer holds frames, each starting at a multiple of 8 with an
//! 8-byte header: one native-endian `u64` holding `kind << 32 | len`.
//!
//! ```text
//! kind     value         meaning
//! RECORD   0x5245_4344   `len` payload bytes follow, then zero to seven
//!                        bytes of padding up to the next multiple of 8
//! WRAP     0x5752_4150   `len` is 0; the rest of the buffer up to its end
//!                        is unused, the next frame starts at offset 0
//! (other)                corrupted (zero-filled memory included)
//! ```
//!
//! A record of `len` bytes takes `8 + round_up(len, 8)` bytes (its
//! footprint) and never crosses the end of the buffer: when the footprint
//! does not fit in the `tail` bytes left before the end, the producer
//! writes a WRAP frame there and puts the record at offset 0, so the
//! record costs `tail + footprint` bytes of the ring. This is the padding
//! record of Aeron's `OneToOneRingBuffer`; the index protocol is
//! Lamport's single-producer single-consumer queue with cached indices
//! (as in rtrb).
//!
//! # Why the largest record is `capacity/2 - 8`
//!
//! A record's footprint `F` is then at most `capacity/2`, and the tail a
//! wrap wastes is less than `F` (otherwise the record would have fit), so
//! `tail + F < 2F <= capacity`: a record of any allowed size fits into an
//! *empty* ring wherever the indices stand. A producer that gets `Full`
//! only ever waits for the consumer to drain what is already there, never
//! for something that cannot happen. A larger maximum would let a record
//! at an unlucky position need more than the whole ring.
//!
//! # Protocol and invariants
//!
//! - Indices are byte counters that only grow (modulo 2^64); a frame's
//!   offset is `index & (capacity - 1)`. Both are multiples of 8, and
//!   `0 <= prod - cons <= capacity`.
//! - The producer owns `[prod, cons + capacity)`: it writes frames there,
//!   then publishes them with one `Release` store of `prod`. The consumer
//!   owns `[cons, prod)`: it reads frames there (after an `Acquire` load
//!   of `prod`), then frees them with one `Release` store of `cons`, which
//!   the producer loads with `Acquire` before reusing the bytes.
//! - A WRAP frame and the record after it are published by one store, so
//!   a correct consumer never sees a WRAP frame as the last frame, never
//!   two in a row, and never one at offset 0.
//! - Each side keeps its own index and its last view of the other's in
//!   process-local memory; it reads the other's shared index only when
//!   the cached one says full (or empty), and reads its own only once,
//!   when its handle is made (so a new handle resumes where the last one
//!   stopped).
//! - One producer and one consumer: [`ByteRing::producer`] and
//!   [`ByteRing::consumer`] are `unsafe` because only the caller can
//!   promise it (the channel layer does, with its attachment table);
//!   [`HeapByteRing::split`] proves it with `&mut` and is safe.
//!
//! Operations never block and make no system call: they return
//! [`WriteError::Full`] or [`PopError::Empty`], and waiting is the
//! channel layer's job.
//!
//! # Untrusted memory
//!
//! The peer may write anything anywhere at any time. Every index and frame
//! header read from shared memory is loaded once and checked before use:
//! an index not a multiple of 8, a consumer index ahead of the producer
//! index, `prod - cons > capacity`, a consumer index that moves backwards,
//! an unknown frame kind, a length above the maximum, a frame that crosses
//! the end of the buffer or the producer index, a WRAP frame at offset 0,
//! with a length, last, or twice in a row: all yield
//! a `Corrupted` error, never an out-of-bounds access, a panic or a
//! loop (a read looks at two frame headers at most).
//!
//! In-place access hands out `&mut [u8]` ([`WriteChunk`]) and `&[u8]`
//! ([`ReadChunk`]) into shared memory. Under the protocol nobody else
//! touches those bytes while the borrow lives; a peer that breaks it can
//! change them under the borrow, which can garble the contents (any bytes
//! are valid `u8`) but not this process's memory safety in practice. Treat
//! what you read as untrusted input, and never trust a length inside it
//! without checking.
//!
//! # Under loom
//!
//! The heap ring gives loom one cell per 8-byte word of the buffer, and
//! every frame header read or write, payload copy, write chunk and read chunk
//! touches the cells of the words it covers. So loom checks the index
//! protocol (the atomics and their orderings) *and* that each byte access
//! is ordered after the other side's last access to the same word: make
//! the `Release` store of either index `Relaxed` and the model fails with
//! a causality violation. It cannot see what the caller does through a
//! write chunk's or read chunk's slice between its creation and its end (both ends
//! are tracked), nor anything about a ring in a region.

pub use super::error::{PopIntoError, WriteError};
use super::{Corrupted, PopError};
use crate::blocks::{CachePadded, ShmSafe};
#[cfg(shmkit_loom)]
use crate::primitive::UnsafeCell;
use crate::primitive::{AtomicU64, Ordering};
use crate::region::{Placed, Region};
use crate::Error;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::alloc::Layout;

mod consumer;
mod heap;
#[cfg(all(test, shmkit_loom))]
mod loom_tests;
mod producer;

pub use consumer::{Consumer, ReadChunk};
pub use heap::HeapByteRing;
pub use producer::{Producer, WriteChunk};

/// `b"shmkBR\0\x01"`: shmkit byte ring, format 1.
const MAGIC: u64 = u64::from_le_bytes(*b"shmkBR\0\x01");

/// Frame kind of a record.
const KIND_RECORD: u32 = 0x5245_4344;
/// Frame kind of a wrap (padding up to the end of the buffer).
const KIND_WRAP: u32 = 0x5752_4150;

/// Bytes of a frame header; also the alignment of every frame.
pub const FRAME_HEADER: usize = 8;

/// The smallest capacity a ring may have (then only empty records fit).
pub const MIN_CAPACITY: usize = 16;

/// Alignment of the header (and of the heap buffer): two cache lines.
const LINE: usize = 128;

/// Written once by the creator, then only read.
#[repr(C)]
struct Config {
    magic: AtomicU64,
    capacity: AtomicU64,
    max_message: AtomicU64,
}

/// The ring's shared header; see the module documentation.
#[repr(C)]
struct Header {
    config: CachePadded<Config>,
    prod: CachePadded<AtomicU64>,
    cons: CachePadded<AtomicU64>,
}

// SAFETY: repr(C) structs of u64 atomics plus padding: any bytes are a
// valid value (every word is checked before use), zero is valid, no
// pointers, no Drop, all access atomic.
unsafe impl ShmSafe for Header {}

/// Bytes from the start of a ring's header to its buffer: 384.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<Header>();

#[cfg(not(shmkit_loom))]
const _: () = assert!(HEADER_SIZE == 3 * LINE && core::mem::align_of::<Header>() == LINE);

impl Header {
    fn new() -> Self {
        Self {
            config: CachePadded::new(Config {
                magic: AtomicU64::new(0),
                capacity: AtomicU64::new(0),
                max_message: AtomicU64::new(0),
            }),
            prod: CachePadded::new(AtomicU64::new(0)),
            cons: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Initializes a fresh ring; the magic goes last.
    fn init(&self, capacity: usize, max_message: usize) {
        let c = &self.config;
        c.capacity.store(capacity as u64, Ordering::Relaxed);
        c.max_message.store(max_message as u64, Ordering::Relaxed);
        self.prod.store(0, Ordering::Relaxed);
        self.cons.store(0, Ordering::Relaxed);
        c.magic.store(MAGIC, Ordering::Release);
    }

    /// Loads and checks the creator's words: `(capacity, max_message)`.
    fn validate(&self) -> crate::Result<(usize, usize)> {
        let c = &self.config;
        if c.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::Corrupted {
                what: "byte ring magic (not a byte ring, or not initialized)",
            });
        }
        let capacity = usize::try_from(c.capacity.load(Ordering::Relaxed))
            .ok()
            .filter(|&cap| valid_capacity(cap))
            .ok_or(Error::Corrupted {
                what: "byte ring capacity",
            })?;
        let max_message = usize::try_from(c.max_message.load(Ordering::Relaxed))
            .ok()
            .filter(|&max| max <= max_message_for(capacity))
            .ok_or(Error::Corrupted {
                what: "byte ring maximum message size",
            })?;
        Ok((capacity, max_message))
    }
}

fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY
}

/// The largest maximum message size a ring of `capacity` bytes may have:
/// `capacity/2 - 8` (see the module documentation), and at most
/// `u32::MAX` (the frame's length field). 0 for a capacity below
/// [`MIN_CAPACITY`].
pub const fn max_message_for(capacity: usize) -> usize {
    if capacity < MIN_CAPACITY {
        return 0;
    }
    let max = capacity / 2 - FRAME_HEADER;
    if max > u32::MAX as usize {
        u32::MAX as usize
    } else {
        max
    }
}

/// Checks creation parameters.
fn check_params(capacity: usize, max_message: usize) -> crate::Result<()> {
    if !valid_capacity(capacity) {
        return Err(Error::InvalidSize {
            size: capacity as u64,
            reason: "byte ring capacity must be a power of two of at least 16 bytes",
        });
    }
    if max_message > max_message_for(capacity) {
        return Err(Error::InvalidSize {
            size: max_message as u64,
            reason: "byte ring maximum message size must be at most capacity/2 - 8",
        });
    }
    Ok(())
}

/// Bytes a frame with `len` payload bytes takes: header plus payload
/// rounded up to 8. `len` is at most `u32::MAX`, so this cannot overflow.
#[inline]
fn footprint(len: usize) -> usize {
    FRAME_HEADER + ((len + 7) & !7)
}

/// Checks a pair of indices loaded (at least one of them) from shared
/// memory.
#[inline]
fn check_indices(prod: u64, cons: u64, capacity: usize) -> Result<(), Corrupted> {
    if (prod | cons) % FRAME_HEADER as u64 != 0 {
        return Err(Corrupted("ring index is not a multiple of 8"));
    }
    if prod.wrapping_sub(cons) > capacity as u64 {
        return Err(Corrupted(if cons.wrapping_sub(prod) <= capacity as u64 {
            "consumer index is ahead of the producer index"
        } else {
            "producer index is more than the capacity ahead of the consumer index"
        }));
    }
    Ok(())
}

/// A view of a byte ring in shared memory (or in a [`HeapByteRing`]).
///
/// The view is cheap to copy; it holds the validated capacity and maximum
/// message size (loaded once, so a peer that rewrites them later changes
/// nothing here). Data moves through one [`Producer`] and one
/// [`Consumer`], usually in different processes.
///
/// ```
/// use shmkit::ring::bytes::ByteRing;
/// use shmkit::RegionOptions;
///
/// let size = ByteRing::bytes_for(4096)?;
/// let region = RegionOptions::new()
///     .size(size)
///     .anonymous_with(|r| ByteRing::create(r, 0, 4096, 1024).map(drop))?;
/// // In the other process (after `Region::pass_to_child`, say):
/// let ring = ByteRing::open(&region, 0)?;
/// assert_eq!((ring.capacity(), ring.max_message()), (4096, 1024));
/// // SAFETY: this is the only producer and the only consumer of the ring.
/// let (mut tx, mut rx) = unsafe { (ring.producer()?, ring.consumer()?) };
/// tx.try_push(b"hello")?;
/// let mut got = Vec::new();
/// rx.try_pop(&mut got)?;
/// assert_eq!(got, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct ByteRing<'a> {
    header: &'a Header,
    /// `capacity` bytes, 8-aligned, living as long as `'a`.
    buf: NonNull<u8>,
    capacity: usize,
    max_message: usize,
    /// Under loom, one cell per 8-byte word of the buffer, touched on every
    /// access so loom checks that the index protocol orders the byte
    /// accesses (empty for a ring in a region).
    #[cfg(shmkit_loom)]
    shadow: &'a [UnsafeCell<()>],
}

// SAFETY: the view is a shared reference to atomics plus a pointer to
// bytes that live for `'a`; it does not access the bytes itself. The
// handles that do follow the ring protocol, and the one-producer /
// one-consumer rule is the caller's promise (see `producer`/`consumer`).
unsafe impl Send for ByteRing<'_> {}
// SAFETY: as for `Send`: `&ByteRing` only reads the validated copies.
unsafe impl Sync for ByteRing<'_> {}

impl fmt::Debug for ByteRing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRing")
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl<'a> ByteRing<'a> {
    /// Bytes a ring of `capacity` buffer bytes takes in a region:
    /// the 384-byte header plus `capacity`. Fails with
    /// [`Error::InvalidSize`] unless `capacity` is a power of two of at
    /// least [`MIN_CAPACITY`].
    pub fn bytes_for(capacity: usize) -> crate::Result<usize> {
        check_params(capacity, 0)?;
        HEADER_SIZE.checked_add(capacity).ok_or(Error::InvalidSize {
            size: capacity as u64,
            reason: "byte ring too large",
        })
    }

    /// Lays out a new, empty ring at `offset` (128-aligned) in `region`:
    /// `capacity` buffer bytes (a power of two, at least
    /// [`MIN_CAPACITY`]), records of at most `max_message` bytes (at most
    /// [`max_message_for`]`(capacity)`).
    ///
    /// Meant for fresh memory, inside the `init` closure of
    /// [`RegionOptions::create_with`](crate::RegionOptions::create_with)
    /// or [`anonymous_with`](crate::RegionOptions::anonymous_with). This
    /// region handle refuses, with [`Error::PlacementConflict`], bytes it
    /// has placed anything over already, a ring made or opened there
    /// included: laying a ring out again resets it under its users. (A
    /// reset through another handle or from another process is a peer
    /// scribbling on the ring.)
    pub fn create(
        region: &'a Region,
        offset: usize,
        capacity: usize,
        max_message: usize,
    ) -> crate::Result<Self> {
        check_params(capacity, max_message)?;
        let header = region.spot::<Header>(offset, 1)?;
        let buf = Self::buffer_in(region, offset, capacity).ok_or(Error::OutOfBounds {
            offset,
            size: HEADER_SIZE.saturating_add(capacity),
            len: region.len(),
        })?;
        region.claim(
            &[header.placed(), Self::buffer_placed(offset, capacity)],
            true,
        )?;
        // SAFETY: claimed just above.
        let header = unsafe { &header.get()[0] };
        header.init(capacity, max_message);
        // SAFETY: `buf` is `capacity` bytes of the region right after the
        // header (checked by `buffer_in`), which live as long as `region`.
        Ok(unsafe { Self::from_parts(header, buf, capacity, max_message) })
    }

    /// Opens the ring at `offset` in `region`, checking its header: magic
    /// ([`Error::Corrupted`] for zero-filled memory or anything else that
    /// is not a ring), capacity, maximum message size, and that the buffer
    /// lies inside the region. Region errors for an offset out of bounds
    /// or not 128-aligned.
    pub fn open(region: &'a Region, offset: usize) -> crate::Result<Self> {
        // A failed check gives the header's placement back, so that a
        // failed probe leaves the bytes free for `create`.
        let (header, (capacity, max_message, buf)) =
            region.place_checked::<Header, _>(offset, |header| {
                let (capacity, max_message) = header.validate()?;
                let buf = Self::buffer_in(region, offset, capacity).ok_or(Error::Corrupted {
                    what: "byte ring capacity exceeds the region",
                })?;
                region.claim(&[Self::buffer_placed(offset, capacity)], false)?;
                Ok((capacity, max_message, buf))
            })?;
        // SAFETY: as in `create`.
        Ok(unsafe { Self::from_parts(header, buf, capacity, max_message) })
    }

    /// The placement of the buffer of a ring at `offset` (which
    /// [`buffer_in`](Self::buffer_in) found fits), one object of its own
    /// kind: its bytes are lent out as `&[u8]` and `&mut [u8]`, so nothing
    /// else may be placed over them.
    fn buffer_placed(offset: usize, capacity: usize) -> Placed {
        /// What the buffer's bytes are.
        struct Buffer;
        Placed::bytes::<Buffer>(offset + HEADER_SIZE, capacity)
    }

    /// The buffer of a ring whose header is at `offset`, if `capacity`
    /// bytes after the header fit in the region.
    fn buffer_in(region: &Region, offset: usize, capacity: usize) -> Option<NonNull<u8>> {
        let end = offset.checked_add(HEADER_SIZE)?.checked_add(capacity)?;
        if end > region.len() {
            return None;
        }
        // SAFETY: offset + HEADER_SIZE <= end <= region.len(): inside (or
        // one past the end of) the region's data.
        NonNull::new(unsafe { region.as_ptr().add(offset + HEADER_SIZE) })
    }

    /// # Safety
    ///
    /// `buf` is valid for reads and writes of `capacity` bytes, 8-aligned,
    /// for `'a`, and is accessed only through views of this header.
    unsafe fn from_parts(
        header: &'a Header,
        buf: NonNull<u8>,
        capacity: usize,
        max_message: usize,
    ) -> Self {
        debug_assert!(valid_capacity(capacity) && max_message <= max_message_for(capacity));
        debug_assert_eq!(buf.as_ptr() as usize % FRAME_HEADER, 0);
        Self {
            header,
            buf,
            capacity,
            max_message,
            #[cfg(shmkit_loom)]
            shadow: &[],
        }
    }

    /// Bytes in the buffer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest record the ring accepts.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// How many bytes of the buffer the records in the ring take (frame
    /// headers, padding and wrap frames included), as a snapshot taken
    /// from outside either side. Clamped to `0..=capacity` whatever the
    /// indices hold, as every ring's `len` is; a scribbled index is for
    /// the sides to report when they meet it.
    ///
    /// ```
    /// use shmkit::ring::bytes::HeapByteRing;
    ///
    /// let mut heap = HeapByteRing::new(64, 16)?;
    /// let (mut tx, _rx) = heap.split()?;
    /// assert!(tx.ring().is_empty());
    /// tx.try_push(b"abc")?; // an 8-byte frame header, 3 bytes padded to 8
    /// assert_eq!(tx.ring().len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let cons = self.header.cons.load(Ordering::Acquire);
        let prod = self.header.prod.load(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used > u64::MAX / 2 {
            0
        } else {
            used.min(self.capacity as u64) as usize
        }
    }

    /// Whether the ring holds no record, as a snapshot (see
    /// [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The producer handle, starting from the indices in shared memory
    /// (so a new producer resumes where a previous one stopped).
    ///
    /// Fails with [`Corrupted`] if those indices are invalid.
    ///
    /// # Safety
    ///
    /// While the returned handle lives:
    /// - no other [`Producer`] of this ring may exist, in this process or
    ///   any other. The ring cannot check this without a claim word that a
    ///   crashed process would leave held (recovering it needs liveness,
    ///   the channel layer's job): two producers in one process could hand
    ///   out aliasing `&mut [u8]` [`WriteChunk`]s;
    /// - nothing else in this process writes the ring's memory, its
    ///   indices included, from another thread (that would race with the
    ///   handles' accesses), or in a way that makes one handle reach bytes
    ///   under the other's live [`WriteChunk`] or [`ReadChunk`] (a scribbled
    ///   index does that to a handle's later operations). So no
    ///   [`create`](Self::create) over the ring, and no raw writes to it
    ///   ([`Region::write`](crate::Region::write), or the scribbles of a
    ///   heap ring that tests use) except, from the thread using the
    ///   handles and with no chunk of one alive while the other
    ///   operates, the scribbles tests use to play a misbehaving peer.
    ///
    /// A second producer or a scribbler in *another* process is a peer
    /// breaking the protocol, which this process survives as described in
    /// the module documentation.
    pub unsafe fn producer(&self) -> Result<Producer<'a>, Corrupted> {
        let prod = self.header.prod.load(Ordering::Acquire);
        let cons = self.header.cons.load(Ordering::Acquire);
        check_indices(prod, cons, self.capacity)?;
        Ok(Producer::new(*self, prod, cons))
    }

    /// The consumer handle, starting from the indices in shared memory.
    ///
    /// Fails with [`Corrupted`] if those indices are invalid.
    ///
    /// # Safety
    ///
    /// While the returned handle lives, no other [`Consumer`] of this ring
    /// may exist, in this process or any other, and nothing else in this
    /// process writes the ring's memory as [`producer`](Self::producer)
    /// rules out. (Two consumers could free the bytes under the other's
    /// [`ReadChunk`] for the producer to overwrite.)
    pub unsafe fn consumer(&self) -> Result<Consumer<'a>, Corrupted> {
        let cons = self.header.cons.load(Ordering::Acquire);
        let prod = self.header.prod.load(Ordering::Acquire);
        check_indices(prod, cons, self.capacity)?;
        Ok(Consumer::new(*self, cons, prod))
    }

    #[inline]
    fn mask(&self) -> u64 {
        self.capacity as u64 - 1
    }

    /// Reads the frame header at `pos`: `(kind, len)`.
    ///
    /// # Safety
    ///
    /// `pos` is a multiple of 8 below the capacity, and the caller is the
    /// consumer, which owns the 8 bytes there under the protocol (they lie
    /// in its published range), so no correct writer races with the read.
    #[inline]
    unsafe fn read_frame(&self, pos: usize) -> (u32, usize) {
        debug_assert!(pos % FRAME_HEADER == 0 && pos + FRAME_HEADER <= self.capacity);
        self.track(pos, FRAME_HEADER, false);
        // SAFETY: pos is a multiple of 8 below `capacity`, a multiple of
        // 8, so the 8 bytes lie in the buffer, aligned (the caller's
        // promise); the consumer owns them; any bytes are a valid u64;
        // volatile so the word is read exactly once.
        let word = unsafe { (self.buf.as_ptr().add(pos) as *const u64).read_volatile() };
        ((word >> 32) as u32, (word & 0xffff_ffff) as usize)
    }

    /// Writes a frame header at `pos`.
    ///
    /// # Safety
    ///
    /// `pos` is a multiple of 8 below the capacity, and the caller is the
    /// producer, which owns the 8 bytes there under the protocol (they lie
    /// in its free range) and lends no reference to them meanwhile.
    #[inline]
    unsafe fn write_frame(&self, pos: usize, kind: u32, len: usize) {
        debug_assert!(pos % FRAME_HEADER == 0 && pos + FRAME_HEADER <= self.capacity);
        debug_assert!(len <= u32::MAX as usize);
        self.track(pos, FRAME_HEADER, true);
        let word = (kind as u64) << 32 | len as u64;
        // SAFETY: in bounds and aligned (the caller's promise, checked in
        // debug builds); the caller (the one producer) owns these bytes
        // and lends no reference to them.
        unsafe { (self.buf.as_ptr().add(pos) as *mut u64).write_volatile(word) };
    }

    /// A pointer to byte `pos` of the buffer (computing it is safe
    /// whatever `pos`; using it is the caller's to justify).
    #[inline]
    fn at(&self, pos: usize) -> *mut u8 {
        debug_assert!(pos <= self.capacity);
        self.buf.as_ptr().wrapping_add(pos)
    }

    /// Under loom: tells loom about an access to the words covering
    /// `len` bytes at `pos`, so it checks they are ordered with the
    /// other side's accesses. Nothing otherwise.
    #[inline(always)]
    fn track(&self, pos: usize, len: usize, write: bool) {
        #[cfg(shmkit_loom)]
        for cell in self
            .shadow
            .iter()
            .skip(pos / FRAME_HEADER)
            .take(len.div_ceil(FRAME_HEADER))
        {
            if write {
                cell.with_mut(|_| ());
            } else {
                cell.with(|_| ());
            }
        }
        #[cfg(not(shmkit_loom))]
        let _ = (pos, len, write);
    }
}
