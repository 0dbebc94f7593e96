//! Serde values as arguments and results of children and pool tasks
//! (feature `serde`).
#![cfg(feature = "serde")]

use shmkit::process::{self, ProcessPool, Serde};
use std::collections::BTreeMap;

shmkit::process_test_support!();

fn word_counts(Serde(text): Serde<String>) -> Serde<BTreeMap<String, u32>> {
    let mut counts = BTreeMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    Serde(counts)
}

#[test]
fn serde_payloads_cross_to_a_child_and_through_a_pool() {
    let text = "the cat and the hat and the bat".to_string();
    let Serde(counts) = process::spawn(word_counts, Serde(text.clone()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(counts["the"], 3);
    assert_eq!(counts["and"], 2);

    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let texts: Vec<Serde<String>> = (0..50).map(|i| Serde(format!("w{i} w{i} x"))).collect();
    let all = pool.map(word_counts, texts).unwrap();
    for (i, Serde(c)) in all.iter().enumerate() {
        assert_eq!(c[&format!("w{i}")], 2);
        assert_eq!(c["x"], 1);
    }
}
