//! What the fuzz targets share: a reader that turns the fuzzer's bytes
//! into operation codes and arguments.

/// Reads the input front to back; past its end, zeros (so every input,
/// however short, is a complete run).
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// Whether every byte has been read.
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }

    /// The next byte, or 0 past the end.
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// A size in `0..=max`, biased to small ones and to `max` itself.
    pub fn size(&mut self, max: usize) -> usize {
        match self.u8() {
            255 => max,
            b => b as usize % (max + 1),
        }
    }
}

/// Byte `i` of the pattern a target writes under `seed` (into a loan, a
/// sample, a request): distinct seeds give distinct bytes, so a block
/// handed to two owners, or bytes changed under a borrow, show.
pub fn pattern(seed: u64, i: usize) -> u8 {
    let x = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x.wrapping_mul(0xd6e8_feb8_6659_fd93) >> 56) as u8
}

/// Writes `seed`'s pattern over `bytes`.
pub fn fill(bytes: &mut [u8], seed: u64) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern(seed, i);
    }
}

/// Whether `bytes` still hold `seed`'s pattern.
pub fn intact(bytes: &[u8], seed: u64) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(seed, i))
}
