//! A byte ring on the heap.

use super::*;

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
    /// Fails with [`Corrupted`] if the indices were corrupted (tests
    /// scribble on them).
    pub fn split(&mut self) -> Result<(Producer<'_>, Consumer<'_>), Corrupted> {
        let ring = self.ring();
        // SAFETY: `&mut self` is borrowed for as long as both handles live,
        // so no other view (and hence no other handle) of this ring exists.
        unsafe { Ok((ring.producer()?, ring.consumer()?)) }
    }

    /// Overwrites the header word at byte `offset` of the documented
    /// layout (0 magic, 8 capacity, 16 maximum message size, 128 producer
    /// index, 256 consumer index) with `value`, as a misbehaving peer
    /// could ([`testing`](crate::testing)). Views keep the capacity and
    /// maximum they validated, so only the indices matter to existing
    /// handles.
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
    pub(crate) fn corrupt_word(&self, offset: usize, value: u64) {
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
    /// end of the buffer), as a misbehaving peer could
    /// ([`testing`](crate::testing)).
    ///
    /// # Safety
    ///
    /// No [`WriteChunk`] or [`ReadChunk`] of this ring is alive (they hold
    /// references to the buffer), and no other thread uses the ring.
    pub(crate) unsafe fn corrupt_bytes(&self, offset: usize, bytes: &[u8]) {
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
