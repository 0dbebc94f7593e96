//! The messages: sequence stamps, their checks, and patterned contents.

/// Writes `seq` into the first and the last 8 bytes of `msg` (the same 8
/// when `msg` is 8 bytes long), so a torn or truncated copy shows.
#[inline]
pub fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number stamped into `msg` by [`stamp`], or an error if its
/// two copies disagree.
#[inline]
pub fn read_stamp(msg: &[u8]) -> Result<u64, String> {
    let n = msg.len();
    if n < 8 {
        return Err(wrong_len(n, 8, 0));
    }
    let head = u64::from_le_bytes(msg[..8].try_into().unwrap_or_default());
    let tail = u64::from_le_bytes(msg[n - 8..].try_into().unwrap_or_default());
    if head != tail {
        return Err(torn(head, tail));
    }
    Ok(head)
}

#[cold]
#[inline(never)]
pub fn torn(head: u64, tail: u64) -> String {
    format!("torn message: stamped {head} at the start and {tail} at the end")
}

/// Checks that `msg` is `len` bytes stamped `seq`.
#[inline]
pub fn check_msg(msg: &[u8], len: usize, seq: u64) -> Result<(), String> {
    if msg.len() != len {
        return Err(wrong_len(msg.len(), len, seq));
    }
    let got = read_stamp(msg)?;
    if got != seq {
        return Err(out_of_sequence(got, seq));
    }
    Ok(())
}

#[cold]
#[inline(never)]
pub fn wrong_len(got: usize, want: usize, seq: u64) -> String {
    format!("message {seq} is {got} bytes long, expected {want}")
}

#[cold]
#[inline(never)]
pub fn out_of_sequence(got: u64, want: u64) -> String {
    format!("expected message {want}, received {got}: lost, repeated or reordered")
}

/// A message of `len` bytes filled with a pattern.
pub fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// An `N`-byte message filled with the pattern.
pub fn patterned_array<const N: usize>() -> [u8; N] {
    let mut msg = [0; N];
    msg.copy_from_slice(&patterned(N));
    msg
}
