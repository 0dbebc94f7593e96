//! The MPMC ring's sequence words: what one `u64` per slot says about
//! that slot, and who holds it.
//!
//! ```text
//! bits   63 ..= 8                      7 ..= 6   5 ..= 0
//!        position (its low 56 bits)    state     participant
//! ```
//!
//! ```text
//! state        word for position p            meaning
//! Empty    0   word(p, Empty, 0)              awaits the producer of p
//! Claimed  1   word(p, Claimed, who)          producer `who` is writing p's value
//! Full     2   word(p, Full, 0)               holds p's value, awaits its consumer
//! Taking   3   word(p, Taking, who)           consumer `who` is reading p's value
//! ```
//!
//! A consumer that is done stores `word(p + capacity, Empty, 0)`: the slot
//! awaits the producer of the next lap. So does a repair of a slot whose
//! claimant died (see [`MpmcRing::repair`](super::MpmcRing::repair)).
//!
//! Positions are compared modulo 2^56 ([`distance`]): a ring would have to
//! move 2^55 values while one participant stands still for two positions
//! to be confused. Every capacity divides 2^56, so `position % capacity`,
//! the slot's index, survives the truncation.

/// How far the position is shifted in a word.
pub const POSITION_SHIFT: u32 = 8;
/// The bits of a position that a word keeps.
pub const POSITION_MASK: u64 = (1 << (64 - POSITION_SHIFT)) - 1;
/// How far the state is shifted in a word.
pub const STATE_SHIFT: u32 = 6;
/// The bits of the participant field.
pub const PARTICIPANT_MASK: u64 = (1 << STATE_SHIFT) - 1;

/// What a slot is doing, from the word's bits 7..=6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Awaits the producer of its position.
    Empty = 0,
    /// A producer claimed its position and is writing the value.
    Claimed = 1,
    /// Holds its position's value.
    Full = 2,
    /// A consumer claimed its position and is reading the value.
    Taking = 3,
}

impl State {
    fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            0 => Self::Empty,
            1 => Self::Claimed,
            2 => Self::Full,
            _ => Self::Taking,
        }
    }
}

/// Who claims a slot: an id the layer above the ring gives each of its
/// participants, so that it can tell whether the holder of a stalled slot
/// is still alive. The MPMC channel uses the entry of the handle in its
/// attachment table.
///
/// [`Participant::ANONYMOUS`] is for users that do not track liveness
/// ([`MpmcRing::try_push`](super::MpmcRing::try_push) and `try_pop` claim
/// as it); nothing can tell whether an anonymous claimant is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Participant(u8);

impl Participant {
    /// The largest id [`new`](Self::new) accepts.
    pub const MAX_ID: u8 = 62;
    /// The claimant of operations that name none.
    pub const ANONYMOUS: Self = Self(63);

    /// Participant `id`, or `None` if `id > MAX_ID`.
    ///
    /// ```
    /// use shmkit::ring::mpmc::Participant;
    /// assert_eq!(Participant::new(5).unwrap().id(), 5);
    /// assert!(Participant::new(63).is_none());
    /// ```
    pub const fn new(id: u8) -> Option<Self> {
        if id <= Self::MAX_ID {
            Some(Self(id))
        } else {
            None
        }
    }

    /// The participant a word's bits 5..=0 name (63 is anonymous).
    pub(super) const fn from_bits(bits: u8) -> Self {
        Self(bits & PARTICIPANT_MASK as u8)
    }

    /// The id (63 for [`ANONYMOUS`](Self::ANONYMOUS)).
    pub const fn id(self) -> u8 {
        self.0
    }
}

/// The word for `position` (its low 56 bits) in `state`, claimed by `who`
/// (give participant 0 for `Empty` and `Full`: a correct ring never holds
/// another there).
pub const fn word(position: u64, state: State, who: u8) -> u64 {
    (position & POSITION_MASK) << POSITION_SHIFT
        | (state as u64) << STATE_SHIFT
        | (who as u64 & PARTICIPANT_MASK)
}

/// A word's parts: its position (low 56 bits), state and participant id.
pub const fn parts(word: u64) -> (u64, State, u8) {
    let state = match (word >> STATE_SHIFT) & 3 {
        0 => State::Empty,
        1 => State::Claimed,
        2 => State::Full,
        _ => State::Taking,
    };
    (
        word >> POSITION_SHIFT,
        state,
        (word & PARTICIPANT_MASK) as u8,
    )
}

/// `a - b` between two positions, modulo 2^56, as a signed distance
/// (either may carry bits above the 56 a word keeps: they are ignored).
#[inline]
pub const fn distance(a: u64, b: u64) -> i64 {
    (a.wrapping_sub(b) << POSITION_SHIFT) as i64 >> POSITION_SHIFT
}

/// A word, decoded once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Word {
    pub(super) position: u64,
    pub(super) state: State,
    pub(super) who: u8,
}

impl Word {
    #[inline]
    pub(super) fn of(word: u64) -> Self {
        Self {
            position: word >> POSITION_SHIFT,
            state: State::from_bits(word >> STATE_SHIFT),
            who: (word & PARTICIPANT_MASK) as u8,
        }
    }

    /// Whether a correct ring could hold this word: `Empty` and `Full` name
    /// no participant.
    #[inline]
    pub(super) fn well_formed(&self) -> bool {
        matches!(self.state, State::Claimed | State::Taking) || self.who == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for (p, s, w) in [
            (0, State::Empty, 0),
            (7, State::Claimed, 62),
            (POSITION_MASK, State::Full, 0),
            (u64::MAX, State::Taking, 63),
        ] {
            let (q, st, who) = parts(word(p, s, w));
            assert_eq!((q, st, who), (p & POSITION_MASK, s, w));
            let d = Word::of(word(p, s, w));
            assert_eq!((d.position, d.state, d.who), (q, st, who));
        }
    }

    #[test]
    fn distances_wrap_at_2_pow_56() {
        assert_eq!(distance(5, 3), 2);
        assert_eq!(distance(3, 5), -2);
        assert_eq!(distance(0, POSITION_MASK), 1);
        assert_eq!(distance(POSITION_MASK, 0), -1);
        // Bits above 56 are ignored on either side.
        assert_eq!(distance(1 << 56 | 4, 4), 0);
        assert_eq!(distance(u64::MAX, (1 << 56) - 1), 0);
    }

    #[test]
    fn participants() {
        assert_eq!(Participant::new(62).map(Participant::id), Some(62));
        assert_eq!(Participant::new(63), None);
        assert_eq!(Participant::ANONYMOUS.id(), 63);
    }
}
