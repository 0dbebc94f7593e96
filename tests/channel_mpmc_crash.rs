//! MPMC channels whose participants are killed in the middle of an
//! operation, between claiming a slot and handing it on: the slot names
//! its holder, and the others give it back once the holder's process is
//! dead, so nothing sent is lost behind it and nobody waits forever.
//!
//! Deterministic cases leave the claim exactly as a process killed at that
//! instant does (a child sends or receives through the channel, then
//! writes its next claim by hand, as the ring documents it, and waits to
//! be killed); a randomized one kills real senders at random moments and
//! checks that every value whose `send` returned is received.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_command, child_role, kill, report, spawn, unique_name, wait_for_line};
use shmkit::channel::{MpmcReceiver, MpmcSender, RecvTimeoutError, TryRecvError};
use shmkit::ring::mpmc::MpmcRing;
use shmkit::testing::mpmc::{word, State, DEQUEUE_OFFSET, ENQUEUE_OFFSET, HEADER_SIZE};
use shmkit::{LayoutId, Region, RegionOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// How long a repair may take (the probe interval is 10 ms; this leaves
/// room for a loaded machine).
const NOTICE: Duration = Duration::from_secs(5);
/// Where a channel's ring starts in its region's data (the channel
/// module's documented layout).
const RING: usize = 1024;
/// Bytes per slot of a ring of `u64`: the sequence word, then the value.
const STRIDE: usize = 16;

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    let name = &args[0];
    match role.as_str() {
        // Sends `n` values `base..base + n`, then claims the next position
        // as a sender killed mid-send leaves it, under `entry` (the
        // handle's entry: 0 for the first sender attached, and so on).
        "send-then-claim" => {
            let tx = MpmcSender::<u64>::open(name).expect("open sender");
            let [entry, n, base] = [1, 2, 3].map(|i| args[i].parse::<u64>().unwrap());
            for v in base..base + n {
                tx.send(v).expect("send");
            }
            let pos = claim_by_hand(name, State::Claimed, ENQUEUE_OFFSET, entry as u8);
            report(format!("claimed {pos}"));
            std::thread::sleep(LIMIT);
            drop(tx);
        }
        // Receives one value and reports it, then claims the next
        // position as a receiver killed mid-receive leaves it.
        "recv-then-take" => {
            let rx = MpmcReceiver::<u64>::open(name).expect("open receiver");
            let got = rx.recv_timeout(LIMIT).expect("recv");
            let pos = claim_by_hand(name, State::Taking, DEQUEUE_OFFSET, 0);
            report(format!("got {got} taking {pos}"));
            std::thread::sleep(LIMIT);
            drop(rx);
        }
        // Sends `id << 32 | i` for i = 0, 1, ... until killed, recording
        // in the shared progress word how many sends have returned.
        "send-until-killed" => {
            let id: u64 = args[1].parse().unwrap();
            // SAFETY: the parent passed this descriptor for this child.
            let progress = unsafe { progress_options().from_env(PROGRESS_VAR) }.expect("from_env");
            let done = &progress.place_slice::<AtomicU64>(0, 2).unwrap()[id as usize];
            let tx = MpmcSender::<Big>::open(name).expect("open sender");
            report("attached");
            for i in 0.. {
                tx.send([id << 32 | i; BIG]).expect("send");
                done.store(i + 1, Ordering::Release);
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Writes, by hand, the claim a handle with entry `entry` makes on the
/// next position of `counter` (the sequence word `state`, then the
/// counter moved on), as the ring's documentation lays it out; returns
/// the position. The caller is the only participant of its end that is
/// busy.
fn claim_by_hand(name: &str, state: State, counter: usize, entry: u8) -> u64 {
    let region = RegionOptions::new().any_layout().open(name).expect("open");
    let ring = MpmcRing::<u64>::open(&region, RING).expect("ring");
    // SAFETY: this mapping is this function's own, and no thread of this
    // process uses the words it copies (the channel's handles, if any, are
    // in other processes or use other mappings): to them it is a peer.
    let pos: u64 = unsafe { region.read(RING + counter) }.unwrap();
    let slot = RING + HEADER_SIZE + (pos as usize & (ring.capacity() - 1)) * STRIDE;
    // SAFETY: as above.
    unsafe {
        region.write(slot, &word(pos, state, entry)).unwrap();
        region.write(RING + counter, &(pos + 1)).unwrap();
    }
    pos
}

#[test]
fn a_sender_killed_mid_send_is_skipped_and_what_followed_is_received() {
    let name = unique_name("mpmc-killed-mid-send");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    let mut child = spawn("send-then-claim", &[&name, "0", "3", "0"]);
    assert_eq!(wait_for_line(&mut child), "claimed 3");
    let tx = MpmcSender::<u64>::open(&name).unwrap();
    for v in 100..104 {
        tx.send(v).unwrap();
    }
    for v in 0..3 {
        assert_eq!(rx.recv_timeout(LIMIT), Ok(v));
    }
    // Position 3 is claimed by a live sender: the values behind it wait.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    kill(child);
    let killed = Instant::now();
    for v in 100..104 {
        assert_eq!(rx.recv_timeout(LIMIT), Ok(v));
    }
    assert!(killed.elapsed() < NOTICE, "{:?}", killed.elapsed());
    drop(tx);
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn try_recv_alone_skips_a_sender_killed_mid_send() {
    let name = unique_name("mpmc-try-killed-mid-send");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    let mut child = spawn("send-then-claim", &[&name, "0", "0", "0"]);
    assert_eq!(wait_for_line(&mut child), "claimed 0");
    let tx = MpmcSender::<u64>::open(&name).unwrap();
    tx.send(7).unwrap();
    kill(child);
    let deadline = Instant::now() + NOTICE;
    let got = loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => break other,
        }
    };
    assert_eq!(got, Ok(7));
}

#[test]
fn every_sender_killed_the_last_mid_send_still_delivers_what_was_sent() {
    let name = unique_name("mpmc-all-killed-mid-send");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    let mut stuck = spawn("send-then-claim", &[&name, "0", "2", "0"]);
    assert_eq!(wait_for_line(&mut stuck), "claimed 2");
    // A second sender process (entry 1) sends behind that claim, then is
    // killed mid-send too.
    let mut behind = spawn("send-then-claim", &[&name, "1", "2", "10"]);
    assert_eq!(wait_for_line(&mut behind), "claimed 5");
    kill(stuck);
    kill(behind);
    // Both claims are given back: the values behind the first arrive, and
    // the receiver reports the end only after them.
    for v in [0, 1, 10, 11] {
        assert_eq!(rx.recv_timeout(LIMIT), Ok(v));
    }
    assert_eq!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn a_receiver_killed_mid_receive_loses_only_the_value_it_took() {
    let name = unique_name("mpmc-killed-mid-recv");
    let tx = MpmcSender::<u64>::create(&name, 4).unwrap();
    for v in 0..4 {
        tx.send(v).unwrap();
    }
    let mut child = spawn("recv-then-take", &[&name]);
    assert_eq!(wait_for_line(&mut child), "got 0 taking 1");
    let rx = MpmcReceiver::<u64>::open(&name).unwrap();
    // Position 4 reuses the slot the child's receive freed; position 5
    // needs the slot the child is still taking from.
    tx.send_timeout(4, LIMIT).unwrap();
    assert!(tx.send_timeout(5, Duration::from_millis(50)).is_err());
    kill(child);
    tx.send_timeout(5, NOTICE).unwrap();
    let got: Vec<u64> = (0..4).map(|_| rx.recv_timeout(LIMIT).unwrap()).collect();
    assert_eq!(got, [2, 3, 4, 5], "value 1 went with the killed receiver");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_sender_that_takes_over_a_killed_ones_entry_gives_back_its_claim() {
    let name = unique_name("mpmc-takeover");
    let rx = MpmcReceiver::<u64>::create(&name, 8).unwrap();
    let mut child = spawn("send-then-claim", &[&name, "0", "2", "0"]);
    assert_eq!(wait_for_line(&mut child), "claimed 2");
    kill(child);
    // This sender takes over the dead one's entry 0; from now on entry 0
    // is alive, so no receiver would repair a claim under it: the new
    // sender gives it back when it attaches.
    let tx = MpmcSender::<u64>::open(&name).unwrap();
    tx.send(7).unwrap();
    for v in [0, 1, 7] {
        assert_eq!(rx.recv_timeout(NOTICE), Ok(v));
    }
}

const PROGRESS_VAR: &str = "SHMKIT_TEST_PROGRESS";

/// Words per value in the random-kill test: a copy long enough that a
/// kill often lands between a claim and its publication.
const BIG: usize = 128;
type Big = [u64; BIG];

fn progress_options() -> RegionOptions {
    RegionOptions::new()
        .size(16)
        .layout(LayoutId::named("shmkit-test-mpmc-crash-progress", 1))
}

/// Rounds of two sender processes killed at random moments while the
/// parent receives. Whatever the moment, every value whose `send` returned
/// must arrive, whole (never a torn or half-written one), each sender's in
/// order, at most one more (sent, not yet recorded), and the round must end
/// with `Disconnected` rather than hang or stop early at a slot a dead
/// sender holds. A kill lands between a claim and its publication only now
/// and then (about one round in 100-150 here, measured with repairs
/// switched off), so this is a check on real kills, not the detector of a
/// missing repair: the deterministic tests above are.
#[test]
fn senders_killed_at_random_moments_lose_nothing_they_sent() {
    const ROUNDS: u64 = 40;
    let name = unique_name("mpmc-random-kills");
    // The creator stays attached (and never receives) so the name lives
    // across rounds; each round receives through a fresh handle, since a
    // handle remembers that its senders left.
    let _keep = MpmcReceiver::<Big>::create(&name, 16).unwrap();
    let progress: Region = progress_options().anonymous().unwrap();
    let done = progress.place_slice::<AtomicU64>(0, 2).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..ROUNDS {
        done.iter().for_each(|d| d.store(0, Ordering::Relaxed));
        let rx = MpmcReceiver::<Big>::open(&name).unwrap();
        let children: Vec<_> = (0..2u64)
            .map(|id| {
                let mut cmd = child_command("send-until-killed", &[&name, &id.to_string()]);
                progress.pass_to_child(&mut cmd, PROGRESS_VAR);
                let mut c = cmd.spawn().expect("spawn");
                assert_eq!(wait_for_line(&mut c), "attached");
                c
            })
            .collect();
        let receiver = std::thread::spawn(move || {
            let mut got = [Vec::new(), Vec::new()];
            loop {
                match rx.recv_timeout(LIMIT) {
                    Ok(v) => {
                        assert!(v.iter().all(|w| *w == v[0]), "round {round}: torn");
                        got[(v[0] >> 32) as usize].push(v[0] & 0xffff_ffff);
                    }
                    Err(RecvTimeoutError::Disconnected) => return got,
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(500 + seed % 3000));
        for c in children {
            kill(c);
        }
        let got = receiver.join().expect("receiver");
        for (id, values) in got.iter().enumerate() {
            let acked = done[id].load(Ordering::Acquire);
            let n = values.len() as u64;
            assert!(
                (acked..=acked + 1).contains(&n),
                "round {round}, sender {id}: {n} values received, {acked} sends returned"
            );
            assert!(
                values.iter().copied().eq(0..n),
                "round {round}, sender {id}: out of order or duplicated"
            );
        }
    }
}
