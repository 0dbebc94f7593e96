//! A test file without `process_test_support!()`: its children never
//! become workers (the re-executed binary finds no entry test and exits).
//! A one-off child says so when joined, and a pool gives up after a few
//! such workers instead of starting new ones without end.

use shmkit::process::{self, JoinError, ProcessPool, TaskError};
use std::time::{Duration, Instant};

fn double(x: u32) -> u32 {
    2 * x
}

#[test]
fn a_child_of_a_binary_without_the_entry_point_never_started() {
    match process::spawn(double, 21).unwrap().join() {
        Err(JoinError::NotStarted(status)) => assert_eq!(status.code(), Some(0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pool_whose_workers_cannot_start_breaks_instead_of_respawning_forever() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let started = Instant::now();
    match pool.apply(double, 1) {
        Err(TaskError::Spawn { message }) => {
            assert!(message.contains("init()"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // Later tasks fail at once with the same error.
    assert!(matches!(
        pool.apply(double, 2),
        Err(TaskError::Spawn { .. })
    ));
}
