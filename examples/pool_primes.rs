//! A process pool doing real work: count the primes in ranges with `map`,
//! hash files as they finish with `imap_unordered`, and compare against
//! one process doing the same.
//!
//! Run: `cargo run --release --example pool_primes`

use shmkit::process::{self, ProcessPool};
use std::time::Instant;

/// Primes in `[lo, hi)`, by trial division (deliberately CPU-bound).
fn primes_in((lo, hi): (u64, u64)) -> u64 {
    (lo.max(2)..hi)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// FNV-1a of a file's bytes, with its name; an unreadable file is an error
/// string (a payload like any other).
fn hash_file(path: String) -> (String, Result<u64, String>) {
    let hash = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .map(|bytes| {
            bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        });
    (path, hash)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let pool = ProcessPool::new()?;
    println!("pool of {} workers: {:?}", pool.workers(), pool.pids());

    let limit = 3_000_000u64;
    let ranges: Vec<(u64, u64)> = (0..limit)
        .step_by(50_000)
        .map(|lo| (lo, lo + 50_000))
        .collect();

    let t = Instant::now();
    let alone: u64 = ranges.iter().map(|r| primes_in(*r)).sum();
    let one = t.elapsed();

    let t = Instant::now();
    let counts = pool.map(primes_in, ranges.clone())?;
    let many = t.elapsed();
    let total: u64 = counts.iter().sum();
    assert_eq!(total, alone);
    println!(
        "primes below {limit}: {total}; one process {:.0} ms, the pool {:.0} ms ({:.2}× faster)",
        one.as_secs_f64() * 1e3,
        many.as_secs_f64() * 1e3,
        one.as_secs_f64() / many.as_secs_f64()
    );

    // Files hashed as they finish, in whatever order.
    let files: Vec<String> = std::fs::read_dir("src")?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    let mut done = 0;
    for result in pool.imap_unordered(hash_file, files.clone()) {
        let (path, hash) = result?;
        match hash {
            Ok(h) => println!("  {h:016x}  {path}"),
            Err(e) => println!("  (unreadable: {e})  {path}"),
        }
        done += 1;
    }
    assert_eq!(done, files.len());
    println!("hashed {done} files");
    Ok(())
}
