//! [`Payload`]: how arguments and results cross to another process.
//!
//! A payload is written as bytes into shared memory by one process and read
//! back by another. [`Plain`] types (`bytemuck::Pod`: integers, floats,
//! arrays of them, your `#[repr(C)]` structs) go as their bytes, with no
//! serialization; `String`, `Vec<T>`, `Option<T>`, `Result<T, E>`, tuples,
//! `bool`, `char` and `Duration` are framed with lengths and tags. Anything
//! serde can serialize goes as `Serde<T>` (feature `serde`); or serialize
//! it yourself into a `Vec<u8>`.
//!
//! What comes back from another process is untrusted: decoding checks every
//! length and tag and gives a [`DecodeError`], never a panic, and never
//! allocates more than the bytes at hand justify.
//!
//! ```
//! use shmkit::process::{Payload, Plain};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Point { x: f64, y: f64 }
//! impl Plain for Point {} // sent as its 16 bytes
//!
//! let value = (Point { x: 1.0, y: 2.0 }, vec!["a".to_string()], Some(7u32));
//! let mut bytes = Vec::new();
//! value.encode(&mut bytes);
//! let back = <(Point, Vec<String>, Option<u32>)>::decode(&mut &bytes[..])?;
//! assert_eq!(back, value);
//! # Ok::<(), shmkit::process::DecodeError>(())
//! ```

use std::time::Duration;

/// Bytes that do not decode as the expected type: too short, a bad tag, an
/// invalid `bool`, `char` or UTF-8 string, or a length beyond the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload does not decode as {what}: {why}")]
pub struct DecodeError {
    /// The type being decoded.
    pub what: &'static str,
    /// What was wrong.
    pub why: &'static str,
}

impl DecodeError {
    fn new<T: ?Sized>(why: &'static str) -> Self {
        Self {
            what: std::any::type_name::<T>(),
            why,
        }
    }
}

/// A value that can be sent to another process of the same program as
/// bytes: an argument or result of a child or of a pool task.
///
/// `encode` appends the value to `out`; `decode` reads one value from the
/// front of `input` and advances it past what it read, so payloads can be
/// concatenated (a batch of tasks is one buffer).
pub trait Payload: Sized {
    /// Appends this value's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from the front of `input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;

    /// The fewest bytes one value takes (bounds how many items a length
    /// prefix may claim before anything is allocated).
    #[doc(hidden)]
    const MIN_ENCODED: usize = 0;

    /// Appends `items`, one after the other (what `Vec<Self>` sends).
    #[doc(hidden)]
    fn encode_slice(items: &[Self], out: &mut Vec<u8>) {
        for item in items {
            item.encode(out);
        }
    }

    /// Reads `n` values (what `Vec<Self>` receives); `n` has been checked
    /// against the input's length and [`MIN_ENCODED`](Self::MIN_ENCODED).
    #[doc(hidden)]
    fn decode_vec(n: usize, input: &mut &[u8]) -> Result<Vec<Self>, DecodeError> {
        let mut v = Vec::with_capacity(n.min(input.len()));
        for _ in 0..n {
            v.push(Self::decode(input)?);
        }
        Ok(v)
    }
}

/// A plain-data type sent as its bytes: implement it (no method, no
/// `unsafe`) for your `bytemuck::Pod` types to make them [`Payload`]s.
///
/// The integers, floats, `()` and arrays of `Plain` types are `Plain`
/// already; a `Vec` of a `Plain` type goes as one copy of its bytes.
pub trait Plain: bytemuck::Pod {}

fn take<'a, T: ?Sized>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError::new::<T>("input too short"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

impl<T: Plain> Payload for T {
    const MIN_ENCODED: usize = size_of::<T>();

    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::bytes_of(self));
    }

    #[inline]
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(bytemuck::pod_read_unaligned(take::<T>(
            input,
            size_of::<T>(),
        )?))
    }

    fn encode_slice(items: &[Self], out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::cast_slice(items));
    }

    fn decode_vec(n: usize, input: &mut &[u8]) -> Result<Vec<Self>, DecodeError> {
        let bytes = n
            .checked_mul(size_of::<T>())
            .ok_or_else(|| DecodeError::new::<Vec<T>>("length overflows"))?;
        let src = take::<Vec<T>>(input, bytes)?;
        let mut v = vec![T::zeroed(); n];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(src);
        Ok(v)
    }
}

macro_rules! plain {
    ($($t:ty),*) => { $(impl Plain for $t {})* };
}
plain!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    ()
);
impl<T: Plain, const N: usize> Plain for [T; N] {}

/// Reads a `u64` length prefix that may claim at most what `input` can
/// hold for items of `min` bytes each (and at most 2^24 items of nothing).
fn length<T: ?Sized>(input: &mut &[u8], min: usize) -> Result<usize, DecodeError> {
    let n = u64::decode(input)?;
    let n = usize::try_from(n).map_err(|_| DecodeError::new::<T>("length overflows"))?;
    let fits = match min {
        0 => n <= 1 << 24,
        m => n <= input.len() / m,
    };
    if fits {
        Ok(n)
    } else {
        Err(DecodeError::new::<T>("length beyond the input"))
    }
}

impl<T: Payload> Payload for Vec<T> {
    const MIN_ENCODED: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        T::encode_slice(self, out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = length::<Self>(input, T::MIN_ENCODED)?;
        T::decode_vec(n, input)
    }
}

impl Payload for String {
    const MIN_ENCODED: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = length::<Self>(input, 1)?;
        let bytes = take::<Self>(input, n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::new::<Self>("not UTF-8"))
    }
}

impl Payload for bool {
    const MIN_ENCODED: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take::<Self>(input, 1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::new::<Self>("neither 0 nor 1")),
        }
    }
}

impl Payload for char {
    const MIN_ENCODED: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        char::from_u32(u32::decode(input)?).ok_or_else(|| DecodeError::new::<Self>("not a char"))
    }
}

impl Payload for Duration {
    const MIN_ENCODED: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.as_secs().encode(out);
        self.subsec_nanos().encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let secs = u64::decode(input)?;
        let nanos = u32::decode(input)?;
        if nanos >= 1_000_000_000 {
            return Err(DecodeError::new::<Self>("nanoseconds out of range"));
        }
        Ok(Duration::new(secs, nanos))
    }
}

impl<T: Payload> Payload for Option<T> {
    const MIN_ENCODED: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take::<Self>(input, 1)?[0] {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            _ => Err(DecodeError::new::<Self>("bad tag")),
        }
    }
}

impl<T: Payload, E: Payload> Payload for Result<T, E> {
    const MIN_ENCODED: usize = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                out.push(0);
                v.encode(out);
            }
            Err(e) => {
                out.push(1);
                e.encode(out);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take::<Self>(input, 1)?[0] {
            0 => T::decode(input).map(Ok),
            1 => E::decode(input).map(Err),
            _ => Err(DecodeError::new::<Self>("bad tag")),
        }
    }
}

macro_rules! tuple {
    ($($name:ident)+) => {
        impl<$($name: Payload),+> Payload for ($($name,)+) {
            const MIN_ENCODED: usize = 0 $(+ $name::MIN_ENCODED)+;

            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }

            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);

/// Decodes `n` values one after the other from the front of `input` (what
/// a batch of tasks or results is), refusing a count the input cannot hold
/// before anything is allocated.
pub(crate) fn decode_many<T: Payload>(n: usize, input: &mut &[u8]) -> Result<Vec<T>, DecodeError> {
    let fits = match T::MIN_ENCODED {
        0 => n <= 1 << 24,
        m => n <= input.len() / m,
    };
    if !fits {
        return Err(DecodeError::new::<Vec<T>>("count beyond the input"));
    }
    T::decode_vec(n, input)
}

/// Encodes `value` into a fresh buffer.
pub(crate) fn to_bytes<T: Payload>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes exactly one `T` from `bytes` (trailing bytes are an error).
pub(crate) fn from_bytes<T: Payload>(mut bytes: &[u8]) -> Result<T, DecodeError> {
    let v = T::decode(&mut bytes)?;
    if bytes.is_empty() {
        Ok(v)
    } else {
        Err(DecodeError::new::<T>("trailing bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Payload + PartialEq + std::fmt::Debug>(v: T) {
        let bytes = to_bytes(&v);
        assert_eq!(from_bytes::<T>(&bytes).unwrap(), v);
        // Every strict prefix fails (no value decodes from less).
        for cut in 0..bytes.len() {
            assert!(
                from_bytes::<T>(&bytes[..cut]).is_err(),
                "prefix {cut} of {v:?}"
            );
        }
    }

    #[test]
    fn values_round_trip_and_prefixes_fail() {
        round_trip(7u64);
        round_trip(-3i8);
        round_trip([1.5f32, 2.5]);
        round_trip(vec![1u32, 2, 3]);
        round_trip(vec![vec![1u8], vec![], vec![2, 3]]);
        round_trip("héllo".to_string());
        round_trip((true, 'x', Some(Duration::from_millis(1500))));
        round_trip(Ok::<u8, String>(1));
        round_trip(Err::<u8, String>("no".into()));
        round_trip(vec![(); 5]);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(from_bytes::<bool>(&[2]).is_err());
        assert!(from_bytes::<char>(&0xD800u32.to_ne_bytes()).is_err());
        assert!(from_bytes::<String>(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
        assert!(from_bytes::<Option<u8>>(&[9, 0]).is_err());
        // A length far beyond the input is refused before any allocation.
        let mut huge = u64::MAX.to_ne_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(from_bytes::<Vec<u64>>(&huge).is_err());
        assert!(from_bytes::<Vec<()>>(&huge).is_err());
        assert!(from_bytes::<Vec<String>>(&huge).is_err());
        assert!(from_bytes::<u32>(&[0; 5]).is_err(), "trailing bytes");
    }
}

/// Any serde type as a [`Payload`] (feature `serde`), in postcard's
/// compact format behind a length: for what is neither plain data nor
/// one of the framed std types.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use shmkit::process::{Payload, Serde};
/// use std::collections::BTreeMap;
///
/// let mut scores = BTreeMap::new();
/// scores.insert("ada".to_string(), 36u32);
/// let mut bytes = Vec::new();
/// Serde(scores.clone()).encode(&mut bytes);
/// let Serde(back) = Serde::<BTreeMap<String, u32>>::decode(&mut &bytes[..]).unwrap();
/// assert_eq!(back, scores);
/// # }
/// ```
///
/// A value whose `Serialize` fails is sent as a marker that fails to
/// decode on the other side ([`DecodeError`]), since encoding cannot
/// fail.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serde<T>(pub T);

/// The length word of a value whose serialization failed.
#[cfg(feature = "serde")]
const UNSERIALIZABLE: u64 = u64::MAX;

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Payload for Serde<T> {
    const MIN_ENCODED: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        match postcard::to_allocvec(&self.0) {
            Ok(bytes) => {
                (bytes.len() as u64).encode(out);
                out.extend_from_slice(&bytes);
            }
            Err(_) => UNSERIALIZABLE.encode(out),
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = u64::decode(input)?;
        if n == UNSERIALIZABLE {
            return Err(DecodeError::new::<T>("the value did not serialize"));
        }
        let n = usize::try_from(n).map_err(|_| DecodeError::new::<T>("length overflows"))?;
        let bytes = take::<T>(input, n)?;
        postcard::from_bytes(bytes)
            .map(Serde)
            .map_err(|_| DecodeError::new::<T>("not a valid postcard encoding"))
    }
}

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use super::*;
    use std::collections::BTreeMap;

    type Mixed = (
        Vec<(i32, i32)>,
        BTreeMap<String, Option<f64>>,
        Result<u8, String>,
    );

    #[test]
    fn serde_values_round_trip_and_bad_bytes_are_errors() {
        let mut map = BTreeMap::new();
        map.insert("half".to_string(), Some(2.5));
        map.insert("none".to_string(), None);
        let v = Serde::<Mixed>((vec![(0, 0), (3, -4)], map, Err("no".into())));
        let bytes = to_bytes(&v);
        assert_eq!(from_bytes::<Serde<Mixed>>(&bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Serde<Mixed>>(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[8] = 0xff; // the Vec's length, as a varint that never ends
        assert!(from_bytes::<Serde<Mixed>>(&bad).is_err());
    }
}
