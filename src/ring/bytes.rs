//! [`ByteRing`]: a single-producer single-consumer ring of variable-length
//! byte records in shared memory, with in-place writing ([`WriteChunk`]) and
//! reading ([`ReadChunk`]).
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
//! [`HEADER_SIZE`] is 384: the header is three 128-byte lines (so the two
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
pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();

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
    /// [`HEADER_SIZE`] plus `capacity`. Fails with
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
    ///   ([`Region::write`](crate::Region::write),
    ///   [`HeapByteRing::corrupt_word`]) except, from the thread using the
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
        Ok(Producer {
            ring: *self,
            prod,
            cons_cache: cons,
        })
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
        Ok(Consumer {
            ring: *self,
            cons,
            prod_cache: prod,
        })
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

/// The producing side of a [`ByteRing`]: sends records by copy
/// ([`try_push`](Self::try_push)) or writes them in place
/// ([`write_chunk`](Self::write_chunk)).
///
/// ```
/// use shmkit::ring::bytes::HeapByteRing;
///
/// let mut ring = HeapByteRing::new(256, 64)?;
/// let (mut tx, mut rx) = ring.split()?;
/// tx.try_push(b"copied")?;
/// let mut chunk = tx.write_chunk(32)?;
/// chunk[..7].copy_from_slice(b"in situ");
/// chunk.commit(7);
/// let mut got = Vec::new();
/// rx.try_pop(&mut got)?;
/// assert_eq!(got, b"copied");
/// rx.try_pop(&mut got)?;
/// assert_eq!(got, b"in situ");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<'a> {
    ring: ByteRing<'a>,
    /// Our index: where the next frame goes. Only this handle writes the
    /// shared copy, so it is never read back.
    prod: u64,
    /// The consumer index as last loaded; `prod - cons_cache` is checked
    /// to be within `[0, capacity]`.
    cons_cache: u64,
}

impl fmt::Debug for Producer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.ring)
            .field("prod", &self.prod)
            .field("cons_cache", &self.cons_cache)
            .finish()
    }
}

impl<'a> Producer<'a> {
    /// The ring this handle writes.
    pub fn ring(&self) -> &ByteRing<'a> {
        &self.ring
    }

    /// Bytes produced so far (the producer index), wrap padding and frame
    /// headers included.
    pub fn index(&self) -> u64 {
        self.prod
    }

    /// Copies `data` into the ring as one record.
    ///
    /// [`WriteError::TooLarge`] if it is longer than
    /// [`ByteRing::max_message`], `Full` if it does not fit now, `Corrupted`
    /// if the consumer index in shared memory is invalid.
    #[inline]
    pub fn try_push(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let mut chunk = self.write_chunk(data.len())?;
        chunk.copy_from_slice(data);
        chunk.commit_all();
        Ok(())
    }

    /// Reserves room for a record of `len` bytes and hands out those bytes
    /// (which hold stale data) to fill in place. Nothing is visible to the
    /// consumer until [`WriteChunk::commit`] or
    /// [`WriteChunk::commit_all`]; dropping the chunk publishes nothing.
    ///
    /// Errors as for [`try_push`](Self::try_push).
    #[inline]
    pub fn write_chunk(&mut self, len: usize) -> Result<WriteChunk<'_, 'a>, WriteError> {
        let cap = self.ring.capacity;
        if len > self.ring.max_message {
            return Err(WriteError::TooLarge {
                len,
                max: self.ring.max_message,
            });
        }
        let fp = footprint(len);
        let pos = (self.prod & self.ring.mask()) as usize;
        let tail = cap - pos;
        // Wrap when the frame does not fit before the end.
        let skip = if tail < fp { tail } else { 0 };
        let need = (skip + fp) as u64;
        if need > self.free() {
            self.refresh_cons()?;
            if need > self.free() {
                return Err(WriteError::Full);
            }
        }
        let start = if skip == 0 {
            pos
        } else {
            // SAFETY: `pos` is `prod` masked, a multiple of 8 below the
            // capacity; the `need` free bytes from `prod` on, the wrap
            // frame's among them, are this producer's, and no chunk is
            // alive (`write_chunk` borrows the producer mutably).
            unsafe { self.ring.write_frame(pos, KIND_WRAP, 0) };
            0
        };
        self.ring.track(start, fp, true);
        Ok(WriteChunk {
            producer: self,
            start,
            len,
            skip,
        })
    }

    /// Free bytes as far as the cached consumer index knows.
    #[inline]
    fn free(&self) -> u64 {
        self.ring.capacity as u64 - self.prod.wrapping_sub(self.cons_cache)
    }

    /// Loads and checks the consumer index.
    #[cold]
    fn refresh_cons(&mut self) -> Result<(), Corrupted> {
        let cons = self.ring.header.cons.load(Ordering::Acquire);
        check_indices(self.prod, cons, self.ring.capacity)?;
        if self.prod.wrapping_sub(cons) > self.prod.wrapping_sub(self.cons_cache) {
            return Err(Corrupted("consumer index moved backwards"));
        }
        self.cons_cache = cons;
        Ok(())
    }

    /// Publishes the frame the chunk reserved.
    #[inline]
    fn publish(&mut self, start: usize, skip: usize, len: usize) {
        // SAFETY: `start` is where `write_chunk` placed the record, a
        // multiple of 8 whose footprint fits before the end, in the free
        // bytes it found; the chunk that lent the payload is consumed.
        unsafe { self.ring.write_frame(start, KIND_RECORD, len) };
        let fp = footprint(len);
        self.ring.track(start, fp, true);
        self.prod = self.prod.wrapping_add((skip + fp) as u64);
        self.ring.header.prod.store(self.prod, Ordering::Release);
    }
}

/// Room for one record, reserved by [`Producer::write_chunk`]: exactly
/// the requested number of bytes inside the ring, to fill in place.
///
/// The bytes hold whatever was there before. They are the producer's
/// alone until committed (a peer that breaks the protocol could still
/// write them: see the module documentation).
///
/// ```
/// use shmkit::ring::bytes::HeapByteRing;
///
/// let mut ring = HeapByteRing::new(256, 64)?;
/// let (mut tx, mut rx) = ring.split()?;
/// {
///     let _unused = tx.write_chunk(10)?; // dropped: publishes nothing
/// }
/// let mut chunk = tx.write_chunk(10)?;
/// assert_eq!(chunk.len(), 10);
/// chunk.fill(7);
/// chunk.commit_all();
/// assert_eq!(&*rx.read_chunk()?, &[7; 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a write chunk publishes nothing"]
pub struct WriteChunk<'p, 'a> {
    producer: &'p mut Producer<'a>,
    /// Offset of the record's frame header.
    start: usize,
    len: usize,
    /// Wrap padding before `start` (0 if none).
    skip: usize,
}

impl fmt::Debug for WriteChunk<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunk")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("skip", &self.skip)
            .finish_non_exhaustive()
    }
}

impl WriteChunk<'_, '_> {
    /// Publishes the record with all the reserved bytes.
    #[inline]
    pub fn commit_all(self) {
        let len = self.len;
        self.commit(len);
    }

    /// Publishes the record with only its first `len` bytes; the rest of
    /// the reservation is given back.
    ///
    /// # Panics
    ///
    /// If `len` is larger than the reservation.
    #[inline]
    pub fn commit(self, len: usize) {
        assert!(
            len <= self.len,
            "commit({len}) exceeds the {}-byte chunk",
            self.len
        );
        self.producer.publish(self.start, self.skip, len);
    }
}

impl Deref for WriteChunk<'_, '_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `start + 8 + len <= capacity` (write_chunk placed the
        // footprint before the end), so the bytes are in the buffer; the
        // producer owns them under the protocol until it publishes them,
        // which needs this chunk (consumed) or its `&mut Producer` (borrowed
        // by it); any bytes are valid u8.
        unsafe {
            core::slice::from_raw_parts(self.producer.ring.at(self.start + FRAME_HEADER), self.len)
        }
    }
}

impl DerefMut for WriteChunk<'_, '_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow
        // of these bytes in this process.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.producer.ring.at(self.start + FRAME_HEADER),
                self.len,
            )
        }
    }
}

/// The consuming side of a [`ByteRing`]: pops records by copy
/// ([`try_pop`](Self::try_pop), [`try_pop_into`](Self::try_pop_into))
/// or reads them in place ([`read_chunk`](Self::read_chunk)).
///
/// ```
/// use shmkit::ring::bytes::{HeapByteRing, PopIntoError};
/// use shmkit::ring::PopError;
///
/// let mut ring = HeapByteRing::new(256, 64)?;
/// let (mut tx, mut rx) = ring.split()?;
/// assert_eq!(rx.read_chunk().unwrap_err(), PopError::Empty);
/// tx.try_push(b"abc")?;
/// tx.try_push(b"defgh")?;
/// let mut small = [0u8; 4];
/// assert_eq!(rx.try_pop_into(&mut small)?, 3);
/// assert_eq!(
///     rx.try_pop_into(&mut small),
///     Err(PopIntoError::TooLarge { len: 5, max: 4 }) // still in the ring
/// );
/// let mut got = Vec::new();
/// assert_eq!(rx.try_pop(&mut got)?, 5);
/// assert_eq!(got, b"defgh");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer<'a> {
    ring: ByteRing<'a>,
    /// Our index: where the next frame starts. Only this handle writes the
    /// shared copy, so it is never read back.
    cons: u64,
    /// The producer index as last loaded; `prod_cache - cons` is checked
    /// to be within `[0, capacity]`.
    prod_cache: u64,
}

impl fmt::Debug for Consumer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.ring)
            .field("cons", &self.cons)
            .field("prod_cache", &self.prod_cache)
            .finish()
    }
}

/// Where the next record is: payload offset, length, and the consumer
/// index after it.
struct Next {
    data: usize,
    len: usize,
    after: u64,
}

impl<'a> Consumer<'a> {
    /// The ring this handle reads.
    pub fn ring(&self) -> &ByteRing<'a> {
        &self.ring
    }

    /// Bytes consumed so far (the consumer index), wrap padding and frame
    /// headers included.
    pub fn index(&self) -> u64 {
        self.cons
    }

    /// Replaces the contents of `out` with the next record; returns its
    /// length.
    ///
    /// [`PopError::Empty`] if there is none, `Corrupted` if the producer
    /// index or the frame in shared memory is invalid.
    #[inline]
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<usize, PopError> {
        let next = self.next()?;
        out.clear();
        out.reserve(next.len);
        // SAFETY: `next` checked that the payload lies in the buffer and
        // in the consumer's part of it; `out` has room for `len` bytes
        // and is distinct memory; u8 needs no initialization invariant
        // beyond being written, which the copy does before `set_len`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ring.at(next.data), out.as_mut_ptr(), next.len);
            out.set_len(next.len);
        }
        self.release(next.after);
        Ok(next.len)
    }

    /// Copies the next record into the front of `out`; returns its length.
    ///
    /// If the record is longer than `out`, fails with
    /// [`PopIntoError::TooLarge`]` { len: record length, max: out.len() }`
    /// and leaves the record in the ring. Otherwise errors as for
    /// [`try_pop`](Self::try_pop).
    #[inline]
    pub fn try_pop_into(&mut self, out: &mut [u8]) -> Result<usize, PopIntoError> {
        let next = self.next()?;
        if next.len > out.len() {
            return Err(PopIntoError::TooLarge {
                len: next.len,
                max: out.len(),
            });
        }
        // SAFETY: as in `try_pop`; `out` holds at least `len` bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ring.at(next.data), out.as_mut_ptr(), next.len)
        };
        self.release(next.after);
        Ok(next.len)
    }

    /// The next record, in place: the chunk derefs to its bytes inside
    /// the ring, and frees them when released or dropped. (A record is
    /// read whole, so unlike an SPSC ring's chunk this one is never empty
    /// for want of data: that is [`PopError::Empty`].)
    ///
    /// Errors as for [`try_pop`](Self::try_pop).
    #[inline]
    pub fn read_chunk(&mut self) -> Result<ReadChunk<'_, 'a>, PopError> {
        let next = self.next()?;
        Ok(ReadChunk {
            consumer: self,
            data: next.data,
            len: next.len,
            after: next.after,
        })
    }

    /// Finds and checks the next record, skipping at most one wrap frame.
    #[inline]
    fn next(&mut self) -> Result<Next, PopError> {
        let cap = self.ring.capacity;
        let mut cons = self.cons;
        if cons == self.prod_cache {
            self.refresh_prod()?;
            if cons == self.prod_cache {
                return Err(PopError::Empty);
            }
        }
        // Both indices are multiples of 8 and 0 < avail <= capacity.
        let mut avail = self.prod_cache.wrapping_sub(cons) as usize;
        let mut pos = (cons & self.ring.mask()) as usize;
        // The copy's length comes from the frame header, so without this
        // the line after the header's would be fetched only once the
        // header arrived: a second round trip to the producer's cache for
        // every record that crosses a line.
        crate::primitive::prefetch(self.ring.at(pos).wrapping_add(64));
        // SAFETY: `pos` is `cons` masked, a multiple of 8 below the
        // capacity, and `avail > 0` published bytes start there, so the
        // frame header (8 bytes, as `avail` is a multiple of 8) is the
        // consumer's.
        let (mut kind, mut len) = unsafe { self.ring.read_frame(pos) };
        if kind == KIND_WRAP {
            if pos == 0 {
                return Err(PopError::Corrupted("wrap frame at the start of the buffer"));
            }
            if len != 0 {
                return Err(PopError::Corrupted("wrap frame with a length"));
            }
            let skip = cap - pos;
            if skip >= avail {
                return Err(PopError::Corrupted("wrap frame not followed by a record"));
            }
            cons = cons.wrapping_add(skip as u64);
            avail -= skip;
            pos = 0;
            // SAFETY: offset 0 is where the published range goes on after
            // the wrap, and `skip < avail` leaves at least 8 of its bytes.
            (kind, len) = unsafe { self.ring.read_frame(0) };
            if kind == KIND_WRAP {
                return Err(PopError::Corrupted("two wrap frames in a row"));
            }
        }
        if kind != KIND_RECORD {
            return Err(PopError::Corrupted("unknown frame kind"));
        }
        if len > self.ring.max_message {
            return Err(PopError::Corrupted(
                "frame length exceeds the maximum message size",
            ));
        }
        let fp = footprint(len);
        if fp > cap - pos {
            return Err(PopError::Corrupted("frame crosses the end of the buffer"));
        }
        if fp > avail {
            return Err(PopError::Corrupted("frame extends past the producer index"));
        }
        self.ring.track(pos, fp, false);
        Ok(Next {
            data: pos + FRAME_HEADER,
            len,
            after: cons.wrapping_add(fp as u64),
        })
    }

    /// Loads and checks the producer index.
    #[cold]
    fn refresh_prod(&mut self) -> Result<(), Corrupted> {
        let prod = self.ring.header.prod.load(Ordering::Acquire);
        // Called only when `prod_cache == cons`, so any index within
        // `[cons, cons + capacity]` is consistent with what we saw before.
        check_indices(prod, self.cons, self.ring.capacity)?;
        self.prod_cache = prod;
        Ok(())
    }

    /// Frees everything before `after`.
    #[inline]
    fn release(&mut self, after: u64) {
        self.cons = after;
        self.ring.header.cons.store(after, Ordering::Release);
    }
}

/// A record read in place by [`Consumer::read_chunk`]: derefs to its bytes
/// inside the ring, valid until [`release`](Self::release) or drop, which
/// frees them for the producer.
///
/// The bytes are untrusted input: under the protocol the producer does not
/// touch them until released, but a peer that breaks it could change them
/// under this borrow (see the module documentation). Copy out and check
/// anything whose consistency matters, such as an embedded length.
///
/// ```
/// use shmkit::ring::bytes::HeapByteRing;
///
/// let mut ring = HeapByteRing::new(256, 64)?;
/// let (mut tx, mut rx) = ring.split()?;
/// tx.try_push(b"zero-copy")?;
/// let record = rx.read_chunk()?;
/// assert_eq!(&*record, b"zero-copy");
/// record.release();
/// assert!(rx.read_chunk().is_err()); // Empty
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the chunk at once discards the record"]
pub struct ReadChunk<'c, 'a> {
    consumer: &'c mut Consumer<'a>,
    /// Offset of the payload.
    data: usize,
    len: usize,
    /// The consumer index once released.
    after: u64,
}

impl fmt::Debug for ReadChunk<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ReadChunk<'_, '_> {
    /// Frees the record (as dropping the chunk does).
    #[inline]
    pub fn release(self) {}
}

impl Deref for ReadChunk<'_, '_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `next` checked the payload lies in the buffer, inside the
        // published range the consumer owns until it stores `cons` past it
        // (in drop, after this borrow ends); any bytes are valid u8.
        unsafe { core::slice::from_raw_parts(self.consumer.ring.at(self.data), self.len) }
    }
}

impl Drop for ReadChunk<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        let c = &mut *self.consumer;
        c.ring
            .track(self.data - FRAME_HEADER, footprint(self.len), false);
        c.release(self.after);
    }
}

/// A byte ring on the heap, for tests, models and fuzzing (and anything
/// that stays inside one process). It runs exactly the code a ring in a
/// region runs.
///
/// ```
/// use shmkit::ring::bytes::HeapByteRing;
///
/// let mut ring = HeapByteRing::new(64, 24)?;
/// let (mut tx, mut rx) = ring.split()?;
/// let mut got = Vec::new();
/// for len in [20, 9, 17] {
///     tx.try_push(&vec![len as u8; len])?;
///     rx.try_pop(&mut got)?;
///     assert_eq!(got, vec![len as u8; len]);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HeapByteRing {
    header: Box<Header>,
    /// `layout.size()` bytes from `alloc_zeroed`, freed in `Drop`.
    buf: NonNull<u8>,
    layout: Layout,
    capacity: usize,
    max_message: usize,
    #[cfg(shmkit_loom)]
    shadow: Box<[UnsafeCell<()>]>,
}

// SAFETY: owns its allocations; shared access goes through views, which
// follow the ring protocol.
unsafe impl Send for HeapByteRing {}
// SAFETY: `&HeapByteRing` gives views (see `ByteRing`'s impls) and atomic
// stores to the header.
unsafe impl Sync for HeapByteRing {}

impl fmt::Debug for HeapByteRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapByteRing")
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl HeapByteRing {
    /// An empty ring of `capacity` bytes for records of at most
    /// `max_message` bytes (limits as for [`ByteRing::create`]).
    pub fn new(capacity: usize, max_message: usize) -> crate::Result<Self> {
        check_params(capacity, max_message)?;
        let layout = Layout::from_size_align(capacity, LINE).map_err(|_| Error::InvalidSize {
            size: capacity as u64,
            reason: "byte ring too large",
        })?;
        // SAFETY: the size is at least MIN_CAPACITY, not zero.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let buf = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let header = Box::new(Header::new());
        header.init(capacity, max_message);
        Ok(Self {
            header,
            buf,
            layout,
            capacity,
            max_message,
            #[cfg(shmkit_loom)]
            shadow: (0..capacity / FRAME_HEADER)
                .map(|_| UnsafeCell::new(()))
                .collect(),
        })
    }

    /// A view of the ring.
    pub fn ring(&self) -> ByteRing<'_> {
        // SAFETY: `buf` is `capacity` bytes, 128-aligned, owned by `self`
        // and accessed only through views.
        let ring = unsafe {
            ByteRing::from_parts(&self.header, self.buf, self.capacity, self.max_message)
        };
        #[cfg(shmkit_loom)]
        let ring = ByteRing {
            shadow: &self.shadow,
            ..ring
        };
        ring
    }

    /// The producer and the consumer. Safe: `&mut self` proves no other
    /// handle exists, and none can be made while these live.
    ///
    /// Fails with [`Corrupted`] if the indices were corrupted
    /// ([`corrupt_word`](Self::corrupt_word)).
    pub fn split(&mut self) -> Result<(Producer<'_>, Consumer<'_>), Corrupted> {
        let ring = self.ring();
        // SAFETY: `&mut self` is borrowed for as long as both handles live,
        // so no other view (and hence no other handle) of this ring exists.
        unsafe { Ok((ring.producer()?, ring.consumer()?)) }
    }

    /// Overwrites the header word at byte `offset` of the documented
    /// layout (0 magic, 8 capacity, 16 maximum message size, 128 producer
    /// index, 256 consumer index) with `value`, as a misbehaving peer
    /// could. For tests and fuzzing. Views keep the capacity and maximum
    /// they validated, so only the indices matter to existing handles.
    ///
    /// Safe: the words are atomics, so the store races with nothing, and
    /// handles from [`split`](Self::split) borrow `self` mutably, so none
    /// is alive to act on a scribbled index. Handles attached through
    /// [`ring`](Self::ring) are `unsafe` to make, and their contract
    /// ([`ByteRing::producer`]) says when such a scribble is allowed.
    ///
    /// # Panics
    ///
    /// If `offset` is not one of those.
    pub fn corrupt_word(&self, offset: usize, value: u64) {
        let h = &*self.header;
        let word = match offset {
            0 => &h.config.magic,
            8 => &h.config.capacity,
            16 => &h.config.max_message,
            128 => &h.prod,
            256 => &h.cons,
            _ => panic!("no header word at offset {offset}"),
        };
        word.store(value, Ordering::Release);
    }

    /// Overwrites buffer bytes from `offset` with `bytes` (clipped at the
    /// end of the buffer), as a misbehaving peer could. For tests and
    /// fuzzing.
    ///
    /// # Safety
    ///
    /// No [`WriteChunk`] or [`ReadChunk`] of this ring is alive (they hold
    /// references to the buffer), and no other thread uses the ring.
    pub unsafe fn corrupt_bytes(&self, offset: usize, bytes: &[u8]) {
        let n = bytes.len().min(self.capacity.saturating_sub(offset));
        // SAFETY: offset + n <= capacity; the caller guarantees no
        // reference to the buffer is alive and no concurrent access.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buf.as_ptr().add(offset), n) };
    }
}

impl Drop for HeapByteRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; views borrow `self`,
        // so none outlives it.
        unsafe { std::alloc::dealloc(self.buf.as_ptr(), self.layout) };
    }
}

#[cfg(all(test, shmkit_loom))]
mod loom_tests {
    use super::*;
    use crate::primitive::spin_loop;
    use crate::ring::Miss;
    use std::sync::Arc;

    fn record(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j) as u8).collect()
    }

    /// Runs `op` until it does not fail for want of room or data.
    fn retry<E: Into<Miss>>(mut op: impl FnMut() -> Result<(), E>) {
        loop {
            match op().map_err(Into::into) {
                Ok(()) => return,
                Err(Miss::WouldBlock) => spin_loop(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// Three records of different lengths through a 64-byte ring with a
    /// 24-byte maximum: 20 (footprint 32) at 0, 9 (footprint 24) at 32,
    /// then 17 (footprint 32) does not fit in the 8 bytes left, so the
    /// producer writes a wrap frame at 56 and waits for the consumer to
    /// free offset 0..32. `in_place` picks reserve/commit and
    /// read/release over send/recv for the later records.
    fn three_records(in_place: bool) {
        loom::model(move || {
            let ring = Arc::new(HeapByteRing::new(64, 24).unwrap());
            let lens = [20usize, 9, 17];
            let producer = {
                let ring = ring.clone();
                loom::thread::spawn(move || {
                    let view = ring.ring();
                    // SAFETY: the only producer.
                    let mut tx = unsafe { view.producer() }.unwrap();
                    let d: Vec<Vec<u8>> = (0..3).map(|i| record(i, lens[i])).collect();
                    retry(|| tx.try_push(&d[0]));
                    if in_place {
                        // Reserve more than needed, shrink on commit.
                        retry(|| {
                            tx.write_chunk(lens[1] + 3).map(|mut g| {
                                g[..lens[1]].copy_from_slice(&d[1]);
                                g.commit(lens[1]);
                            })
                        });
                        // A dropped chunk publishes nothing; once one was
                        // reserved, the same reservation succeeds again.
                        retry(|| tx.write_chunk(lens[2]).map(|_unused| ()));
                        let mut g = tx.write_chunk(lens[2]).unwrap();
                        g.copy_from_slice(&d[2]);
                        g.commit_all();
                    } else {
                        retry(|| tx.try_push(&d[1]));
                        retry(|| tx.try_push(&d[2]));
                    }
                    tx.index()
                })
            };
            let view = ring.ring();
            // SAFETY: the only consumer.
            let mut rx = unsafe { view.consumer() }.unwrap();
            let mut got = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                if in_place {
                    retry(|| {
                        rx.read_chunk().map(|g| {
                            got.clear();
                            got.extend_from_slice(&g);
                            g.release();
                        })
                    });
                } else {
                    retry(|| rx.try_pop(&mut got).map(drop));
                }
                assert_eq!(got, record(i, len), "record {i}");
            }
            assert_eq!(rx.try_pop(&mut got), Err(PopError::Empty));
            let produced = producer.join().unwrap();
            // 32 + 24, then 8 of wrap padding, then 32.
            assert_eq!(produced, 96);
            assert_eq!(rx.index(), 96);
        });
    }

    #[test]
    fn three_records_wrap_send_recv() {
        three_records(false);
    }

    #[test]
    fn three_records_wrap_reserve_read() {
        three_records(true);
    }
}
