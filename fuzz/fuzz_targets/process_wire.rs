//! What a process pool's parent and workers read from each other, as bytes
//! a broken peer could write: payload decoding (never a panic, and what
//! decodes re-encodes to the very bytes it came from), ring records put
//! together into messages (out-of-order frames and oversized messages are
//! errors), messages split over rings of every size (they come back
//! whole), and outcome bodies read item by item (one outcome per item,
//! whatever the bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::process::Payload;
use shmkit::testing::process as hook;
use std::fmt::Debug;
use std::time::Duration;

fn canonical<T: Payload + PartialEq + Debug>(bytes: &[u8]) {
    let mut input = bytes;
    if let Ok(v) = T::decode(&mut input) {
        let used = &bytes[..bytes.len() - input.len()];
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, used, "{v:?} re-encodes to other bytes");
        assert_eq!(T::decode(&mut &out[..]).as_ref(), Ok(&v));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            canonical::<u64>(rest);
            canonical::<String>(rest);
            canonical::<Vec<u32>>(rest);
            canonical::<Vec<String>>(rest);
            canonical::<Option<(bool, char)>>(rest);
            canonical::<Result<Vec<u8>, String>>(rest);
            canonical::<Duration>(rest);
            canonical::<(u8, Vec<Vec<u16>>, Option<String>)>(rest);
            canonical::<Vec<()>>(rest);
        }
        1 => {
            let records: Vec<&[u8]> = rest.split(|b| *b == 0xA5).collect();
            for m in hook::assemble(256, &records, 4096).into_iter().flatten() {
                assert!(m.len() <= 4096);
            }
        }
        2 => {
            let Some((&shift, body)) = rest.split_first() else {
                return;
            };
            let capacity = 64usize << (shift % 8);
            assert_eq!(hook::round_trip(capacity, body).as_deref(), Ok(body));
        }
        _ => {
            if rest.len() < 2 {
                return;
            }
            let count = u16::from_le_bytes([rest[0], rest[1]]) as u32 % 2048;
            let body = rest[2..].to_vec();
            assert_eq!(
                hook::read_results::<u64>(body.clone(), count).len(),
                count as usize
            );
            assert_eq!(
                hook::read_results::<String>(body, count).len(),
                count as usize
            );
        }
    }
});
