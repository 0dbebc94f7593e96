//! Request/response: round trips and streams, several pending requests,
//! the held limits, full queues, one server at a time, scribbled
//! envelopes, and killed servers and clients, across processes.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, kill, spawn, unique_name, wait_for_line};
use shmkit::pool::PoolConfig;
use shmkit::reqresp::{
    Client, CopyError, Envelope, FinishTimeoutError, RecvTimeoutError, RespondError, ResponseError,
    ResponseTimeoutError, SendError, Server, ServiceConfig, TryFinishError, TryRecvError,
    TryRespondError, TryResponseError, TrySendError,
};
use shmkit::ring::mpmc::MpmcRing;
use shmkit::testing::mpmc;
use shmkit::testing::reqresp as wire;
use shmkit::{Error, RegionOptions};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
const BLOCKS: usize = 64;

fn config() -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(64, BLOCKS))
        .clients(4)
        .queue_capacity(8)
        .held_limit(4)
}

fn u64_of(r: &[u8]) -> u64 {
    u64::from_le_bytes(r[..8].try_into().unwrap())
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "serve" => {
            // Serves `args[1]` requests: n -> n+1, n+2, .. n+k for k = n % 4.
            let server = Server::open_or_create(&args[0], &config()).expect("serve");
            common::report("ready");
            let n: usize = args[1].parse().unwrap();
            for _ in 0..n {
                let req = server.recv_timeout(WAIT).expect("recv");
                let v = req.value::<u64>().expect("8 bytes");
                for k in 0..=v % 4 {
                    req.respond_copy(&(v + k).to_le_bytes()).expect("respond");
                }
                req.finish().expect("finish");
            }
            common::report(format!("served {n}"));
        }
        "hang" => {
            // Takes one request, answers part of it, then waits to die.
            let server = Server::open(&args[0]).expect("serve");
            common::report("ready");
            let req = server.recv_timeout(WAIT).expect("recv");
            req.respond_copy(&1u64.to_le_bytes()).expect("respond");
            common::report("answered one");
            std::thread::sleep(LIMIT);
        }
        "ask" => {
            // Sends one request, holds the loaned bytes, waits to die.
            let client = Client::open(&args[0]).expect("client");
            let pending = client.send_copy(&7u64.to_le_bytes()).expect("send");
            common::report("asked");
            std::thread::sleep(LIMIT);
            drop(pending);
        }
        "ask-cut" => {
            // Shares a request with the server, never pushes it, waits to die.
            let client = Client::open(&args[0]).expect("client");
            let mut req = client.loan(8).expect("loan");
            req.copy_from_slice(&9u64.to_le_bytes());
            let id = wire::send_cut_short(req).expect("cut short");
            common::report(format!("cut {id}"));
            std::thread::sleep(LIMIT);
        }
        "answer-cut" => {
            // Sends `args[1]` responses 1, 2, .. to one request, shares
            // the next with the client without pushing it, waits to die.
            let server = Server::open(&args[0]).expect("serve");
            common::report("ready");
            let req = server.recv_timeout(WAIT).expect("recv");
            let n: u64 = args[1].parse().unwrap();
            for k in 1..=n {
                req.respond_copy(&k.to_le_bytes()).expect("respond");
            }
            let mut part = req.loan(8).expect("loan");
            part.copy_from_slice(&(n + 1).to_le_bytes());
            wire::respond_cut_short(part).expect("cut short");
            common::report("cut");
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_stream_of_responses_reaches_its_request_only_in_order() {
    let server = Server::anonymous(&config()).unwrap();
    let client = server.client().unwrap();
    let a = client.send_copy(&100u64.to_le_bytes()).unwrap();
    let b = client.send_copy(&200u64.to_le_bytes()).unwrap();
    assert_eq!((a.id(), b.id()), (1, 2));
    let (ra, rb) = (server.recv().unwrap(), server.recv().unwrap());
    assert_eq!((ra.id(), rb.id()), (1, 2));
    // Interleaved on the wire; each pending request gets its own.
    for k in 0..3u64 {
        rb.respond_copy(&(200 + k).to_le_bytes()).unwrap();
        ra.respond_copy(&(100 + k).to_le_bytes()).unwrap();
    }
    drop(rb); // dropping finishes the stream too
    ra.finish().unwrap();
    let take = |p: &shmkit::reqresp::PendingResponse<'_>| {
        let mut got = Vec::new();
        while let Some(r) = p.recv_timeout(WAIT).unwrap() {
            assert_eq!(r.request(), p.id());
            got.push(u64_of(&r));
        }
        assert!(p.is_done());
        assert!(p.recv().unwrap().is_none(), "done stays done");
        got
    };
    assert_eq!(take(&b), vec![200, 201, 202]);
    assert_eq!(take(&a), vec![100, 101, 102]);
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
}

#[test]
fn a_last_response_ends_its_stream_without_an_end_marker() {
    let name = unique_name("rr-send-last");
    let cfg = config();
    let server = Server::create(&name, &cfg).unwrap();
    let client = Client::open(&name).unwrap();
    let peer = RegionOptions::new().any_layout().open(&name).unwrap();
    let queue =
        MpmcRing::<Envelope>::open(&peer, wire::response_queue_offset(&cfg, client.entry()))
            .unwrap();
    let a = client.send_copy(&1u64.to_le_bytes()).unwrap();
    let b = client.send_copy(&2u64.to_le_bytes()).unwrap();
    let (ra, rb) = (server.recv().unwrap(), server.recv().unwrap());
    let last = |r: &shmkit::reqresp::ActiveRequest<'_>, bytes: &[u8]| {
        let mut m = r.loan(bytes.len()).unwrap();
        m.copy_from_slice(bytes);
        m.send_last().unwrap();
    };
    ra.respond_copy(b"a1").unwrap();
    last(&ra, b"a2");
    rb.respond_copy(b"b1").unwrap();
    last(&rb, b"b2");
    // The streams are over: finishing or dropping sends nothing more.
    ra.finish().unwrap();
    drop(rb);
    assert_eq!(queue.len(), 4, "two responses each, no end marker");
    let take = |p: &shmkit::reqresp::PendingResponse<'_>| {
        let mut got = Vec::new();
        while let Some(r) = p.recv_timeout(WAIT).unwrap() {
            got.push(r.to_vec());
        }
        assert!(p.is_done());
        got
    };
    // `a`'s two are set aside while `b` is received, its last among them.
    assert_eq!(take(&b), vec![b"b1".to_vec(), b"b2".to_vec()]);
    assert_eq!(take(&a), vec![b"a1".to_vec(), b"a2".to_vec()]);
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
}

#[test]
fn responses_to_a_dropped_request_are_released() {
    let server = Server::anonymous(&config()).unwrap();
    let client = server.client().unwrap();
    let dropped = client.send_copy(&1u64.to_le_bytes()).unwrap();
    let kept = client.send_copy(&2u64.to_le_bytes()).unwrap();
    let (r1, r2) = (server.recv().unwrap(), server.recv().unwrap());
    r1.respond_copy(b"for the first").unwrap();
    r2.respond_copy(b"second").unwrap();
    r1.respond_copy(b"more").unwrap();
    drop((r1, r2));
    // Receiving for `kept` sets aside the first request's two responses.
    assert_eq!(&kept.recv().unwrap().unwrap()[..], b"second");
    assert!(server.free_blocks(0) < Some(BLOCKS));
    drop(dropped);
    assert!(kept.recv().unwrap().is_none());
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
}

#[test]
fn without_a_server_a_request_comes_back() {
    let name = unique_name("rr-noserver");
    let client = Client::create(&name, &config()).unwrap();
    assert!(!client.server_present());
    let mut req = client.loan(8).unwrap();
    req.copy_from_slice(&5u64.to_le_bytes());
    let SendError::NoServer(req) = req.send().unwrap_err() else {
        panic!("not NoServer");
    };
    assert!(matches!(client.send_copy(b"x"), Err(CopyError::Gone)));
    let server = Server::open(&name).unwrap();
    let pending = req.send().unwrap();
    let got = server.recv().unwrap();
    assert_eq!(got.value::<u64>(), Some(5));
    got.respond_copy(b"yes").unwrap();
    drop(got);
    assert_eq!(&pending.recv().unwrap().unwrap()[..], b"yes");
}

#[test]
fn one_server_at_a_time_and_a_successor_skips_old_requests() {
    let name = unique_name("rr-busy");
    let client = Client::create(&name, &config()).unwrap();
    let server = Server::open(&name).unwrap();
    assert!(matches!(
        Server::open(&name),
        Err(Error::ServiceBusy { role: "server" })
    ));
    let old = client.send_copy(b"to the first").unwrap();
    // Its successor (a handle of its own: another token) skips the
    // request sent to it; the wait for its answer ends.
    drop(server);
    assert!(!client.server_present());
    let server = Server::open(&name).unwrap();
    assert!(matches!(
        server.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    ));
    assert_eq!(
        old.recv_timeout(WAIT).unwrap_err(),
        ResponseTimeoutError::ServerGone
    );
    drop(old);
    assert_eq!(
        server.free_blocks(0),
        Some(BLOCKS),
        "the skipped request's block"
    );
    assert!(matches!(
        Server::open_or_create(&name, &config().clients(3)),
        Err(Error::ServiceBusy { .. } | Error::InvalidSize { .. })
    ));
}

#[test]
fn held_limits_and_full_queues_are_typed() {
    let server = Server::anonymous(&config().held_limit(1).queue_capacity(2)).unwrap();
    let client = server.client().unwrap();
    let p1 = client.send_copy(&1u64.to_le_bytes()).unwrap();
    let p2 = client.send_copy(&2u64.to_le_bytes()).unwrap();
    let req = client.loan(8).unwrap();
    let TrySendError::Full(req) = req.try_send().unwrap_err() else {
        panic!("not Full");
    };
    let r1 = server.recv().unwrap();
    assert!(matches!(server.try_recv(), Err(TryRecvError::HeldLimit)));
    let p3 = req.try_send().unwrap();
    for _ in 0..2 {
        r1.respond_copy(b"r").unwrap();
    }
    let full = r1.loan(1).unwrap();
    let TryRespondError::Full(full) = full.try_send().unwrap_err() else {
        panic!("not Full");
    };
    let got = p1.try_recv().unwrap().unwrap();
    assert!(matches!(p1.try_recv(), Err(TryResponseError::HeldLimit)));
    drop(got);
    full.send().unwrap();
    // The queue is full again: one more received makes room for the end.
    drop(p1.recv_timeout(WAIT).unwrap().unwrap());
    r1.finish().unwrap();
    let mut n = 0;
    while let Some(r) = p1.recv_timeout(WAIT).unwrap() {
        drop(r);
        n += 1;
    }
    assert_eq!(n, 1);
    assert!(matches!(p2.try_recv(), Err(TryResponseError::Empty)));
    drop((p2, p3));
    assert!(matches!(
        server
            .recv_timeout(Duration::from_millis(5))
            .map(|r| r.id()),
        Ok(2)
    ));
    assert!(matches!(
        server.recv_timeout(Duration::from_millis(5)),
        Ok(_) | Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn round_trips_and_streams_with_a_server_process() {
    let name = unique_name("rr-procs");
    let client = Client::create(&name, &config()).unwrap();
    const N: u64 = 2000;
    let child = spawn("serve", &[&name, &N.to_string()]);
    common::wait_until(WAIT, "the server", || client.server_present());
    let start = Instant::now();
    for v in 0..N {
        let pending = client.send_copy(&v.to_le_bytes()).unwrap();
        let mut got = Vec::new();
        while let Some(r) = pending.recv_timeout(WAIT).unwrap() {
            got.push(u64_of(&r));
        }
        let want: Vec<u64> = (0..=v % 4).map(|k| v + k).collect();
        assert_eq!(got, want, "request {v}");
    }
    let elapsed = start.elapsed();
    assert_eq!(finish(child, LIMIT), vec!["ready", &format!("served {N}")]);
    println!("{N} requests with streams in {elapsed:?}");
    assert_eq!(client.free_blocks(0), Some(BLOCKS));
}

#[test]
fn a_server_killed_mid_request_ends_the_wait_with_an_error() {
    let name = unique_name("rr-kill-server");
    let client = Client::create(&name, &config()).unwrap();
    let mut child = spawn("hang", &[&name]);
    assert_eq!(wait_for_line(&mut child), "ready");
    let pending = client.send_copy(&3u64.to_le_bytes()).unwrap();
    // What it answered before it died still arrives.
    let first = pending.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(u64_of(&first), 1);
    kill(child);
    let t = Instant::now();
    assert_eq!(pending.recv().unwrap_err(), ResponseError::ServerGone);
    assert!(t.elapsed() < WAIT, "ended in {:?}", t.elapsed());
    assert!(matches!(
        pending.try_recv(),
        Err(TryResponseError::ServerGone)
    ));
    assert!(matches!(
        pending.recv_timeout(WAIT),
        Err(ResponseTimeoutError::ServerGone)
    ));
    drop((first, pending));
    client.reclaim().unwrap();
    assert_eq!(client.free_blocks(0), Some(BLOCKS), "its request came back");
    // A new server serves new requests.
    let server = Server::open(&name).unwrap();
    let p = client.send_copy(b"again").unwrap();
    server.recv().unwrap().finish().unwrap();
    assert!(p.recv().unwrap().is_none());
}

#[test]
fn a_client_killed_mid_request_is_gone_to_its_server_and_cleaned() {
    let name = unique_name("rr-kill-client");
    let server = Server::create(&name, &config()).unwrap();
    let mut child = spawn("ask", &[&name]);
    assert_eq!(wait_for_line(&mut child), "asked");
    let req = server.recv_timeout(WAIT).unwrap();
    assert_eq!(req.value::<u64>(), Some(7));
    assert!(!req.client_gone());
    kill(child);
    assert!(req.client_gone());
    assert_eq!(
        req.respond_copy(b"late").unwrap_err(),
        CopyError::Gone,
        "nothing reaches a dead client"
    );
    let r = req.loan(4).unwrap();
    assert_eq!(r.send().unwrap_err(), RespondError::ClientGone);
    drop(req);
    server.reclaim().unwrap();
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
    // Its entry is free again for a new client.
    let clients: Vec<_> = (0..4).map(|_| Client::open(&name).unwrap()).collect();
    assert!(matches!(
        Client::open(&name),
        Err(Error::ServiceBusy { role: "client" })
    ));
    drop(clients);
}

#[test]
fn a_client_killed_between_sharing_and_pushing_a_request_leaves_no_hold() {
    let name = unique_name("rr-cut-request");
    let server = Server::create(&name, &config()).unwrap();
    let mut child = spawn("ask-cut", &[&name]);
    assert_eq!(wait_for_line(&mut child), "cut 1");
    kill(child);
    assert!(matches!(server.try_recv(), Err(TryRecvError::Empty)));
    server.reclaim().unwrap();
    assert_eq!(
        server.free_blocks(0),
        Some(BLOCKS),
        "the request its server never saw came back"
    );
}

#[test]
fn a_server_killed_between_sharing_and_pushing_a_response_still_delivers_it() {
    let name = unique_name("rr-cut-response");
    let client = Client::create(&name, &config()).unwrap();
    let mut child = spawn("answer-cut", &[&name, "1"]);
    assert_eq!(wait_for_line(&mut child), "ready");
    let pending = client.send_copy(&3u64.to_le_bytes()).unwrap();
    let first = pending.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(u64_of(&first), 1);
    assert_eq!(wait_for_line(&mut child), "cut");
    kill(child);
    // The client notices the death and pushes the response for it.
    let second = pending.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(u64_of(&second), 2, "the response cut short arrives");
    assert_eq!(pending.recv().unwrap_err(), ResponseError::ServerGone);
    drop((first, second, pending));
    assert_eq!(client.free_blocks(0), Some(BLOCKS), "no hold is left");
    // A new server attaches at once.
    let server = Server::open(&name).unwrap();
    let p = client.send_copy(b"again").unwrap();
    server.recv().unwrap().finish().unwrap();
    assert!(p.recv().unwrap().is_none());
}

#[test]
fn a_response_cut_short_into_a_full_queue_gives_its_hold_back() {
    let name = unique_name("rr-cut-full");
    let client = Client::create(&name, &config()).unwrap();
    let mut child = spawn("answer-cut", &[&name, "8"]);
    assert_eq!(wait_for_line(&mut child), "ready");
    let pending = client.send_copy(&3u64.to_le_bytes()).unwrap();
    assert_eq!(wait_for_line(&mut child), "cut");
    kill(child);
    // The dead server's queue to us is full: its ninth response cannot
    // be pushed for it, so our hold on that block goes.
    client.reclaim().unwrap();
    for k in 1..=8 {
        let r = pending.recv_timeout(WAIT).unwrap().unwrap();
        assert_eq!(u64_of(&r), k);
    }
    assert_eq!(pending.recv().unwrap_err(), ResponseError::ServerGone);
    drop(pending);
    assert_eq!(client.free_blocks(0), Some(BLOCKS), "no hold is left");
}

#[test]
fn scribbled_envelopes_are_corrupted_never_a_second_reader() {
    let name = unique_name("rr-scribble");
    let cfg = config();
    let server = Server::create(&name, &cfg).unwrap();
    let client = Client::open(&name).unwrap();
    let peer = RegionOptions::new().any_layout().open(&name).unwrap();
    let queue = MpmcRing::<Envelope>::open(&peer, wire::request_queue_offset(&cfg, client.entry()))
        .unwrap();
    let token = peer
        .place::<std::sync::atomic::AtomicU32>(wire::SERVER_OFFSET)
        .unwrap()
        .load(std::sync::atomic::Ordering::SeqCst);
    let pending = client.send_copy(b"real").unwrap();
    let real = server.recv().unwrap();
    // A copy of the real request's envelope, pushed by a peer.
    let b = real.block();
    let forged = Envelope {
        class: b.class,
        index: b.index,
        generation: b.generation,
        len: 4,
        request: 9,
        flags: u64::from(token) << 32,
    };
    queue.try_push(forged).unwrap();
    assert!(matches!(server.try_recv(), Err(TryRecvError::Corrupted(_))));
    // Out of range, and flags no client writes.
    queue
        .try_push(Envelope {
            index: 10_000,
            ..forged
        })
        .unwrap();
    assert!(matches!(server.try_recv(), Err(TryRecvError::Corrupted(_))));
    queue
        .try_push(Envelope {
            flags: forged.flags | 5,
            ..forged
        })
        .unwrap();
    assert!(matches!(server.try_recv(), Err(TryRecvError::Corrupted(_))));
    assert_eq!(&real[..], b"real");
    drop(real);
    assert!(pending.recv_timeout(WAIT).unwrap().is_none());
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
}

#[test]
fn a_request_sent_the_moment_a_new_server_attaches_reaches_it_whole() {
    // A new server clears the server's bit its predecessors left on every
    // block before clients see it: a request sent to it as soon as it
    // shows is never caught by that sweep.
    const ROUNDS: u64 = 1000;
    let name = unique_name("rr-attach");
    let client = Client::create(&name, &config()).unwrap();
    std::thread::scope(|s| {
        let servers = s.spawn(|| {
            for round in 0..ROUNDS {
                let server = Server::open(&name).unwrap();
                let req = server
                    .recv_timeout(WAIT)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                req.respond_copy(&req.value::<u64>().unwrap().to_le_bytes())
                    .unwrap();
                req.finish().unwrap();
            }
        });
        let mut answered = 0u64;
        while !servers.is_finished() {
            if !client.server_present() {
                std::hint::spin_loop();
                continue;
            }
            let Ok(pending) = client.send_copy(&answered.to_le_bytes()) else {
                continue;
            };
            match pending.recv_timeout(WAIT) {
                Ok(Some(r)) => {
                    assert_eq!(r.value::<u64>(), Some(answered));
                    drop(r);
                    assert!(pending.recv_timeout(WAIT).unwrap().is_none());
                    answered += 1;
                }
                Err(ResponseTimeoutError::ServerGone) => {}
                other => panic!("after {answered}: {other:?}"),
            }
        }
        if let Err(panic) = servers.join() {
            std::panic::resume_unwind(panic);
        }
        assert_eq!(answered, ROUNDS);
    });
    assert_eq!(client.free_blocks(0), Some(BLOCKS));
}

#[test]
fn a_try_send_returns_when_a_queue_with_room_refuses_the_push() {
    for side in ["request", "response"] {
        let cfg = config().queue_capacity(1);
        let server = Server::anonymous(&cfg).unwrap();
        let fd = server.region().as_fd().try_clone_to_owned().unwrap();
        let peer = RegionOptions::new().any_layout().from_fd(fd).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Not scoped: a send that never returns must not hang the test.
        std::thread::spawn(move || {
            let client = server.client().unwrap();
            // A round trip: position 0 of both queues is used and popped.
            let pending = client.send_copy(b"a").unwrap();
            let req = server.recv().unwrap();
            req.respond_copy(b"b").unwrap();
            drop(pending.recv().unwrap());
            // Position 0's slot as its consumer leaves it while taking it
            // (a consumer stopped mid-pop, or a peer's scribble): the
            // queue has room, but the push of position 1 waits for it.
            let (queue, consumer) = match side {
                "request" => (wire::request_queue_offset(&cfg, client.entry()), 0),
                _ => (wire::response_queue_offset(&cfg, client.entry()), 1),
            };
            let taking = mpmc::word(0, mpmc::State::Taking, consumer);
            // SAFETY: a queue's sequence word only atomics reference;
            // plays a peer.
            unsafe { peer.write::<u64>(queue + mpmc::HEADER_SIZE, &taking) }.unwrap();
            let start = Instant::now();
            let got = match side {
                "request" => client
                    .loan(1)
                    .unwrap()
                    .try_send()
                    .map(drop)
                    .map_err(|e| format!("{e:?}")),
                _ => req
                    .loan(1)
                    .unwrap()
                    .try_send()
                    .map_err(|e| format!("{e:?}")),
            };
            let took = start.elapsed();
            // The client first: the end of the stream then waits for no
            // room in its queue.
            drop(pending);
            drop(client);
            drop(req);
            let _ = tx.send((got, took, server.free_blocks(0)));
        });
        let (got, took, free) = rx.recv_timeout(WAIT).expect("the send never returned");
        assert!(
            got.as_ref().is_err_and(|e| e.starts_with("Corrupted")),
            "{side}: {got:?}"
        );
        assert!(took < WAIT, "{side}: {took:?}");
        assert_eq!(free, Some(BLOCKS), "{side}: the refused message's block");
    }
}

#[test]
fn a_response_for_the_entrys_last_client_is_not_taken_by_the_next() {
    let name = unique_name("rr-last-client");
    let cfg = config();
    let server = Server::create(&name, &cfg).unwrap();
    let peer = RegionOptions::new().any_layout().open(&name).unwrap();
    let token_word = peer
        .place::<std::sync::atomic::AtomicU32>(wire::ENTRIES_OFFSET)
        .unwrap();
    let old = Client::open(&name).unwrap();
    assert_eq!(old.entry(), 0);
    let old_token = token_word.load(std::sync::atomic::Ordering::SeqCst);
    drop(old);
    let new = Client::open(&name).unwrap();
    assert_eq!(new.entry(), 0);
    let pending = new.send_copy(b"mine").unwrap();
    assert_eq!(pending.id(), 1, "ids restart with every client");
    // What a server that checked the old client just before it left
    // would push: the end of the old client's request 1.
    let queue = MpmcRing::<Envelope>::open(&peer, wire::response_queue_offset(&cfg, 0)).unwrap();
    queue
        .try_push(Envelope {
            class: 0,
            index: 0,
            generation: 0,
            len: 0,
            request: 1,
            flags: wire::END | u64::from(old_token) << 32,
        })
        .unwrap();
    assert!(matches!(pending.try_recv(), Err(TryResponseError::Empty)));
    let req = server.recv().unwrap();
    req.respond_copy(b"yours").unwrap();
    req.finish().unwrap();
    assert_eq!(&pending.recv().unwrap().unwrap()[..], b"yours");
    assert!(pending.recv().unwrap().is_none());
}

#[test]
fn a_finish_can_be_bounded_and_gives_the_request_back() {
    let server = Server::anonymous(&config().queue_capacity(1)).unwrap();
    let client = server.client().unwrap();
    let pending = client.send_copy(b"q").unwrap();
    let req = server.recv().unwrap();
    req.respond_copy(b"r").unwrap(); // the client's queue is full now
    let TryFinishError::Full(req) = req.try_finish().unwrap_err() else {
        panic!("not Full");
    };
    let t = Instant::now();
    let FinishTimeoutError::Timeout(req) =
        req.finish_timeout(Duration::from_millis(20)).unwrap_err()
    else {
        panic!("not Timeout");
    };
    assert!(t.elapsed() >= Duration::from_millis(20));
    // Still open: the client gets the response, then the end.
    assert_eq!(&pending.recv().unwrap().unwrap()[..], b"r");
    req.try_finish().unwrap();
    assert!(pending.recv().unwrap().is_none());
    drop(pending);
    // A client that left is gone to a bounded finish too.
    drop(client.send_copy(b"q").unwrap());
    let req = server.recv().unwrap();
    drop(client);
    assert!(matches!(req.try_finish(), Err(TryFinishError::ClientGone)));
    assert_eq!(server.free_blocks(0), Some(BLOCKS));
}
