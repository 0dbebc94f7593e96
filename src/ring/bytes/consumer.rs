//! The consuming side of a byte ring and its in-place read chunk.

use super::*;

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
    /// The consumer of `ring` at index `cons`, having seen `prod`
    /// (checked by the caller).
    pub(super) fn new(ring: ByteRing<'a>, cons: u64, prod: u64) -> Self {
        Self {
            ring,
            cons,
            prod_cache: prod,
        }
    }

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
