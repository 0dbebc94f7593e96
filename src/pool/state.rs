//! The per-block state word: the truth about who owns a block.
//!
//! ```text
//! bits   63 ..= 32     31         30 ..= 0
//!        generation    detached   owner token (0: free)
//!
//! word                          meaning
//! free(g)        g << 32        nobody owns the block; g: its last loan's generation
//! lent(t, g)     g << 32 | t    participant t holds it as a `Loan` (a `&mut [u8]` is out)
//! held(t, g)     lent | 1 << 31 participant t holds it as a `BlockRef` (no reference out)
//! shared(g)      g << 32 | 1 << 31  a publish/subscribe service's: its holders word
//!                               says who holds it; no participant owns it, so no
//!                               loan, scan or reclaim of the pool takes it
//! (other)                       corrupted: an owner that is no participant token
//! ```

use super::error::Corrupted;
use crate::region::participants::Token;

/// The detached bit: the owner gave the block up as a `BlockRef`.
pub(crate) const DETACHED: u64 = 1 << 31;
const OWNER_MASK: u64 = DETACHED - 1;

/// `free(gen)`.
#[inline]
pub(crate) const fn free(gen: u32) -> u64 {
    (gen as u64) << 32
}

/// `lent(owner, gen)`.
#[inline]
pub(crate) const fn lent(owner: Token, gen: u32) -> u64 {
    (gen as u64) << 32 | owner.raw() as u64
}

/// `held(owner, gen)`.
#[inline]
pub(crate) const fn held(owner: Token, gen: u32) -> u64 {
    lent(owner, gen) | DETACHED
}

/// `shared(gen)`: the block belongs to the publish/subscribe service whose
/// holders word names its holders.
#[inline]
pub(crate) const fn shared(gen: u32) -> u64 {
    (gen as u64) << 32 | DETACHED
}

/// What a state word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Nobody owns the block.
    Free { gen: u32 },
    /// The publish/subscribe service holds it (its holders word says who).
    Shared { gen: u32 },
    /// `owner` does, lent out as a `Loan` or (`detached`) held as a
    /// `BlockRef`.
    Owned {
        owner: Token,
        gen: u32,
        detached: bool,
    },
}

/// Reads a state word a peer may have written; an impossible one is
/// [`Corrupted`].
#[inline]
pub(crate) fn parse(word: u64) -> Result<State, Corrupted> {
    let gen = (word >> 32) as u32;
    let owner = (word & OWNER_MASK) as u32;
    let detached = word & DETACHED != 0;
    if owner == 0 {
        if detached {
            return Ok(State::Shared { gen });
        }
        return Ok(State::Free { gen });
    }
    if !Token::is_well_formed(owner) {
        return Err(Corrupted(
            "pool block state: the owner is no participant token",
        ));
    }
    Ok(State::Owned {
        owner: Token::from_raw(owner),
        gen,
        detached,
    })
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_garbage_is_corrupted() {
        let t = Token::PRIVATE;
        assert_eq!(parse(free(7)), Ok(State::Free { gen: 7 }));
        assert_eq!(
            parse(lent(t, 3)),
            Ok(State::Owned {
                owner: t,
                gen: 3,
                detached: false
            })
        );
        assert_eq!(
            parse(held(t, u32::MAX)),
            Ok(State::Owned {
                owner: t,
                gen: u32::MAX,
                detached: true
            })
        );
        assert_eq!(parse(shared(9)), Ok(State::Shared { gen: 9 }));
        assert!(parse(OWNER_MASK).is_err());
        assert!(parse(1 << 32 | (Token::MAX_RAW as u64 + 1)).is_err());
    }
}
