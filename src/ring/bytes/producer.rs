//! The producing side of a byte ring and its in-place write chunk.

use super::*;

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
    /// The producer of `ring` at index `prod`, having seen `cons`
    /// (checked by the caller).
    pub(super) fn new(ring: ByteRing<'a>, prod: u64, cons: u64) -> Self {
        Self {
            ring,
            prod,
            cons_cache: cons,
        }
    }

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
