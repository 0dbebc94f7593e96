//! Owners: the identity a lock word holds, and whether it is still alive.
//!
//! Identities are region-local participant tokens
//! ([`crate::region::participants`]): a lock placed in a region is owned by
//! one *handle* of that region (a [`Region`](crate::Region) value in some
//! process), and that handle's liveness is an OFD lock on the region's own
//! file that the kernel drops when the handle is dropped or its process
//! dies. Every function here takes `at`, the address of the lock word: it
//! names the region (and so the table) the token belongs to.

pub(crate) use crate::region::participants::{Liveness, Token};

/// The token this process writes into lock words at `at`.
#[inline]
pub(crate) fn current(at: &impl Sized) -> Token {
    crate::region::participants::current(at as *const _ as *const u8)
}

/// Whether the holder of token `t` in the lock word at `at` is alive.
pub(crate) fn liveness(at: &impl Sized, t: Token) -> Liveness {
    crate::region::participants::liveness(at as *const _ as *const u8, t)
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use crate::primitive::AtomicU32;
    use crate::region::participants::MAX_PARTICIPANTS;
    use crate::Region;

    #[test]
    fn private_memory_has_one_live_owner_and_garbage_is_invalid() {
        let word = AtomicU32::new(0);
        let me = current(&word);
        assert_eq!(me, Token::PRIVATE);
        assert_eq!(liveness(&word, me), Liveness::Alive);
        assert_eq!(liveness(&word, Token::from_raw(0)), Liveness::Invalid);
        assert_eq!(
            liveness(&word, Token::from_raw(u32::MAX)),
            Liveness::Invalid
        );
        assert_eq!(
            liveness(&word, Token::from_raw(Token::MAX_RAW + 1)),
            Liveness::Invalid
        );
    }

    #[test]
    fn each_region_handle_is_its_own_live_participant() {
        let a = Region::anonymous(64).unwrap();
        let word: &AtomicU32 = a.place(0).unwrap();
        let me = current(word);
        assert!(Token::is_well_formed(me.raw()));
        assert_eq!(current(word), me, "one token per handle");
        assert_eq!(liveness(word, me), Liveness::Alive);
        // A predecessor in our own slot is gone.
        let other_gen = if me.gen() == 1 { 2 } else { me.gen() - 1 };
        assert_eq!(
            liveness(word, Token::new(me.slot(), other_gen)),
            Liveness::Dead
        );
        // A slot nobody holds is dead.
        let free = (me.slot() + MAX_PARTICIPANTS / 2) % MAX_PARTICIPANTS;
        assert_eq!(liveness(word, Token::new(free, 1)), Liveness::Dead);
    }
}
