//! The `shmkit` command against live, dead-owner, foreign and corrupted
//! objects: what it prints and how it exits.

use shmkit::Region;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

shmkit::process_test_support!();

fn name(tag: &str) -> String {
    format!("/shmkit-cli-test-{}-{tag}", std::process::id())
}

fn path(name: &str) -> String {
    format!("/dev/shm{name}")
}

fn shmkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child that creates `name`, keeps it, and dies by abort: a crashed
/// owner's leftover.
fn create_and_crash(name: String) {
    let mut r = Region::create(&name, 4096).unwrap();
    r.keep();
    std::process::abort();
}

#[test]
fn a_live_object_is_listed_in_use_inspected_and_never_cleaned() {
    let n = name("live");
    let r = Region::create(&n, 8192).unwrap();
    let me = std::process::id().to_string();

    let ls = shmkit(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let line = stdout(&ls)
        .lines()
        .find(|l| l.starts_with(&n))
        .map(str::to_owned);
    let line = line.expect("listed");
    assert!(line.contains("region") && line.contains("ready"), "{line}");
    assert!(line.contains(&format!("in use by {me}")), "{line}");

    let json = shmkit(&["ls", "--json"]);
    let text = stdout(&json);
    assert!(
        text.starts_with('[') && text.trim_end().ends_with(']'),
        "{text}"
    );
    assert!(text.contains(&format!("\"name\":\"{n}\"")), "{text}");
    assert!(text.contains("\"in_use\":true"), "{text}");

    // Without the leading slash too.
    let page = shmkit(&["inspect", &n[1..]]);
    assert!(page.status.success(), "{}", stderr(&page));
    let page = stdout(&page);
    assert!(page.contains("kind:      region"), "{page}");
    assert!(page.contains("in use:    yes"), "{page}");
    assert!(page.contains(&me), "{page}");

    for args in [vec!["clean", "--dry-run", &n], vec!["clean", &n]] {
        let out = shmkit(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("kept     {n}")),
            "{}",
            stdout(&out)
        );
    }
    assert!(std::path::Path::new(&path(&n)).exists());
    drop(r);
}

#[test]
fn a_crashed_owners_object_shows_unused_and_is_cleaned() {
    let n = name("crashed");
    let child = shmkit::process::spawn(create_and_crash, n.clone()).unwrap();
    assert!(child.join().is_err(), "the child aborts");

    let ls = stdout(&shmkit(&["ls"]));
    let line = ls.lines().find(|l| l.starts_with(&n)).expect("listed");
    assert!(line.contains("unused") && line.contains("(gone)"), "{line}");

    let dry = shmkit(&["clean", "--dry-run", &n]);
    assert!(dry.status.success());
    assert!(
        stdout(&dry).contains(&format!("would remove {n}")),
        "{}",
        stdout(&dry)
    );
    assert!(
        std::path::Path::new(&path(&n)).exists(),
        "a dry run removes nothing"
    );

    let clean = shmkit(&["clean", &n]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(
        stdout(&clean).contains(&format!("removed  {n}")),
        "{}",
        stdout(&clean)
    );
    assert!(!std::path::Path::new(&path(&n)).exists());

    let gone = shmkit(&["inspect", &n]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("no shared memory region"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn foreign_files_bad_names_and_symlinks_are_refused_without_a_panic() {
    let n = name("foreign");
    std::fs::write(path(&n), b"not a shmkit object at all, just bytes").unwrap();
    std::fs::set_permissions(path(&n), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = shmkit(&["inspect", &n]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("shmkit"), "{}", stderr(&out));
    assert!(!stdout(&shmkit(&["ls"])).contains(&n), "not listed");
    let clean = shmkit(&["clean", &n]);
    assert_eq!(clean.status.code(), Some(1));
    assert!(std::path::Path::new(&path(&n)).exists(), "never removed");
    std::fs::remove_file(path(&n)).unwrap();

    let link = name("link");
    std::os::unix::fs::symlink("/etc/passwd", path(&link)).unwrap();
    let out = shmkit(&["inspect", &link]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    std::fs::remove_file(path(&link)).unwrap();

    for bad in ["a/b", "", "/../../etc/passwd", &"x".repeat(300)] {
        let out = shmkit(&["inspect", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // A usage error is 2.
    assert_eq!(shmkit(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_corrupted_header_is_reported_with_exit_code_3() {
    let n = name("corrupt");
    let mut r = Region::create(&n, 4096).unwrap();
    r.keep();
    drop(r);
    // The layout id, covered by the header's checksum.
    let mut bytes = std::fs::read(path(&n)).unwrap();
    bytes[16] ^= 0xff;
    std::fs::write(path(&n), &bytes).unwrap();

    let out = shmkit(&["inspect", &n]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("corrupted: header checksum"),
        "{}",
        stdout(&out)
    );
    let json = stdout(&shmkit(&["inspect", "--json", &n]));
    assert!(json.contains("\"state\":\"corrupted\""), "{json}");
    assert!(
        stdout(&shmkit(&["ls"])).contains(&n),
        "listed, as corrupted"
    );
    // Nobody has it open: it may be cleaned.
    assert!(shmkit(&["clean", &n]).status.success());
    assert!(!std::path::Path::new(&path(&n)).exists());
}

#[test]
fn a_channels_fill_level_and_ends_are_shown() {
    use shmkit::channel::{ByteSender, MpmcSender, Sender};
    let (a, b, c) = (name("spsc"), name("mpmc"), name("bytes"));
    let spsc = Sender::<u64>::create(&a, 16).unwrap();
    spsc.try_send(1).unwrap();
    spsc.try_send(2).unwrap();
    let mpmc = MpmcSender::<[u8; 8]>::create(&b, 8).unwrap();
    mpmc.try_send([0; 8]).unwrap();
    let bytes = ByteSender::create(&c, 4096, 100).unwrap();
    bytes.try_send(b"hello").unwrap();

    let page = stdout(&shmkit(&["inspect", &a]));
    assert!(page.contains("channel:   16 slots, 2 queued"), "{page}");
    assert!(
        page.contains("1 sender handle(s), 0 receiver handle(s)"),
        "{page}"
    );
    let page = stdout(&shmkit(&["inspect", &b]));
    assert!(page.contains("channel:   8 slots, 1 queued"), "{page}");
    let out = shmkit(&["inspect", "--json", &c]);
    assert!(out.status.success());
    let json = stdout(&out);
    assert!(
        json.contains("\"channel\":{\"capacity\":4096,\"len\":16,\"max_message\":100"),
        "{json}"
    );
    drop((spsc, mpmc, bytes));
}

#[test]
fn a_services_subscribers_and_pool_usage_are_shown() {
    use shmkit::pool::PoolConfig;
    use shmkit::pubsub::{Publisher, ServiceConfig, Subscriber};
    let n = name("pubsub");
    let config = ServiceConfig::new(PoolConfig::new().class(256, 32));
    let publisher = Publisher::create(&n, &config).unwrap();
    let sub = Subscriber::open(&n).unwrap();
    for _ in 0..3 {
        publisher.send_copy(b"frame").unwrap();
    }
    let held = sub.try_recv().unwrap();
    let out = shmkit(&["inspect", &n]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains("publisher: attached"), "{page}");
    assert!(
        page.contains("receivers: 1 of 8 subscriber entries present [0]"),
        "{page}"
    );
    assert!(page.contains("next sequence 3"), "{page}");
    assert!(
        page.contains("32 blocks of 256 B: 29 free, 0 lent, 3 shared (subscriber 0: 3)"),
        "{page}"
    );
    let json = stdout(&shmkit(&["inspect", "--json", &n]));
    assert!(json.contains("\"service\":{\"publisher\":true"), "{json}");
    drop(held);
    drop((sub, publisher));
}

#[test]
fn a_request_response_services_server_and_clients_are_shown() {
    use shmkit::pool::PoolConfig;
    use shmkit::reqresp::{Client, Server, ServiceConfig};
    let n = name("reqresp");
    let server = Server::create(&n, &ServiceConfig::new(PoolConfig::new().class(128, 8))).unwrap();
    let (a, b) = (Client::open(&n).unwrap(), Client::open(&n).unwrap());
    let page = stdout(&shmkit(&["inspect", &n]));
    assert!(page.contains("server:    attached"), "{page}");
    assert!(page.contains("clients:   2 of"), "{page}");
    assert!(page.contains("8 blocks of 128 B: 8 free"), "{page}");
    drop((a, b, server));
}

#[test]
fn bench_runs_every_system_and_writes_a_csv_and_charts() {
    let dir = std::env::temp_dir().join(format!("shmkit-cli-test-{}-bench", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = shmkit(&[
        "bench",
        "--quick",
        "--rounds",
        "50",
        "--size",
        "64",
        "--size",
        "65536",
        "--out",
        &dir.display().to_string(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    let systems = [
        "floor: one cache line",
        "floor: memcpy ring",
        "shmkit SPSC channel",
        "shmkit MPMC channel",
        "shmkit byte channel",
        "shmkit pub/sub loan",
        "shmkit ProcessPool",
        "pipe",
        "Unix socket",
        "ipc-channel",
        "shared_memory + raw_sync",
        "iceoryx2",
        "Python multiprocessing.Pipe",
        "Python multiprocessing.Queue",
        "std::sync::mpsc",
        "crossbeam-channel",
    ];
    for row in systems {
        assert!(table.contains(row), "{row}: {table}");
    }
    assert!(!table.contains("FAILED"), "{table}");
    let text = std::fs::read_to_string(dir.join("bench.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "system,group,size_bytes,p50_ns,p99_ns,p999_ns,samples,messages_per_s,\
             bytes_per_s,x_floor,x_best_peer,note"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2 * systems.len(), "{text}");
    for r in &rows {
        assert_eq!(r.len(), 12, "{r:?}");
        if r[11].is_empty() {
            // Measured: ordered percentiles, samples, a ratio to the floor.
            let p: Vec<f64> = r[3..6].iter().map(|v| v.parse().unwrap()).collect();
            assert!(p[0] > 0.0 && p[0] <= p[1] && p[1] <= p[2], "{r:?}");
            assert!(r[6].parse::<usize>().unwrap() > 0, "{r:?}");
            assert!(r[9].parse::<f64>().unwrap() > 0.0, "{r:?}");
        } else {
            assert!(r[11].starts_with("not run: "), "{r:?}");
        }
    }
    // What runs everywhere was measured at both sizes.
    for (name, size) in [("shmkit byte channel", "64"), ("pipe", "65536")] {
        let r = rows.iter().find(|r| r[0] == name && r[2] == size).unwrap();
        assert!(r[11].is_empty() && !r[7].is_empty(), "{r:?}");
    }
    for chart in ["latency.png", "throughput.png"] {
        let png = std::fs::read(dir.join(chart)).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{chart}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_refuses_a_size_it_does_not_have() {
    let out = shmkit(&["bench", "--size", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no size 100"), "{}", stderr(&out));
}

/// A child that opens mutex `name`, locks it and dies holding it.
fn lock_and_crash(name: String) {
    let m = shmkit::Shm::<shmkit::sync::Mutex<u64>>::open(&name).unwrap();
    let guard = m.lock().unwrap();
    std::mem::forget(guard);
    std::process::abort();
}

#[test]
fn a_mutexs_holder_and_its_liveness_are_shown() {
    use shmkit::sync::Mutex;
    let n = name("mutex");
    let m = shmkit::Shm::<Mutex<u64>>::create(&n, |_| {}).unwrap();
    listed_as(&n, "mutex");
    assert!(stdout(&shmkit(&["inspect", &n])).contains("lock:      unlocked"));

    let guard = m.lock().unwrap();
    let me = std::process::id();
    let page = stdout(&shmkit(&["inspect", &n]));
    assert!(
        page.contains(&format!("locked by pid {me} (alive)")),
        "{page}"
    );
    drop(guard);

    // A holder killed while holding it: shown dead, nothing changed.
    let pid = crashed(lock_and_crash, &n);
    let out = json_page(&n);
    assert!(
        stdout(&out).contains(&format!(
            "\"mutex\":{{\"state\":\"locked\",\"pid\":{pid},\"alive\":false"
        )),
        "{}",
        stdout(&out)
    );
    // Inspecting took nothing over: the next locker still finds the
    // dead holder.
    assert!(matches!(
        m.lock(),
        Err(shmkit::sync::LockError::OwnerDied(_))
    ));

    // A word no lock writes: reported corrupted, exit code 3.
    let raw = shmkit::RegionOptions::new().any_layout().open(&n).unwrap();
    // SAFETY: the lock word is scribbled on purpose; nobody holds it
    // (the guard above was dropped with the error).
    unsafe { raw.write::<u32>(0, &0xFFFF_FFFE).unwrap() };
    let bad = shmkit(&["inspect", &n]);
    assert_eq!(bad.status.code(), Some(3), "{}", stdout(&bad));
    assert!(
        stdout(&bad).contains("corrupted (lock word 0xfffffffe)"),
        "{}",
        stdout(&bad)
    );
    drop((raw, m));
}

/// Checks that `shmkit ls` lists `name` as a `kind`.
fn listed_as(name: &str, kind: &str) {
    let ls = stdout(&shmkit(&["ls"]));
    let line = ls.lines().find(|l| l.starts_with(name)).expect("listed");
    assert!(line.contains(kind), "{line}");
}

/// Runs `f(name)` in a child that aborts; its pid.
fn crashed(f: fn(String), name: &str) -> u32 {
    let child = shmkit::process::spawn(f, name.to_owned()).unwrap();
    let pid = child.pid();
    assert!(child.join().is_err(), "the child aborts");
    pid
}

/// `shmkit inspect NAME --json`, checked to succeed.
fn json_page(name: &str) -> Output {
    let out = shmkit(&["inspect", name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// `shmkit inspect NAME` (text), checked to succeed.
fn page(name: &str) -> String {
    let out = shmkit(&["inspect", name]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Writes `bytes` at `offset` of `name`'s data, as a peer scribbling on
/// it would, and returns what `shmkit inspect` then says (exit code 3).
fn scribbled(name: &str, offset: usize, bytes: &[u8]) -> String {
    let raw = shmkit::RegionOptions::new()
        .any_layout()
        .open(name)
        .unwrap();
    // SAFETY: the word is scribbled on purpose, to see it reported; the
    // test's own handles do not use it afterwards.
    unsafe { raw.write_bytes(offset, bytes).unwrap() };
    let bad = shmkit(&["inspect", name]);
    assert_eq!(bad.status.code(), Some(3), "{}", stdout(&bad));
    stdout(&bad)
}

fn write_and_crash(name: String) {
    let l = shmkit::Shm::<shmkit::sync::RwLock<u64>>::open(&name).unwrap();
    std::mem::forget(l.write().unwrap());
    std::process::abort();
}

#[test]
fn an_rwlocks_writer_and_readers_are_shown() {
    use shmkit::sync::RwLock;
    let n = name("rwlock");
    let l = shmkit::Shm::<RwLock<u64>>::create(&n, |_| {}).unwrap();
    listed_as(&n, "rwlock");
    let free = page(&n);
    assert!(free.contains("writer:    none\n"), "{free}");
    assert!(free.contains("readers:   none\n"), "{free}");

    let me = std::process::id();
    let (a, b) = (l.read().unwrap(), l.read().unwrap());
    let read = page(&n);
    assert!(
        read.contains(&format!("readers:   pid {me} (alive): 2 read locks")),
        "{read}"
    );
    drop((a, b));
    let w = l.write().unwrap();
    let written = page(&n);
    assert!(
        written.contains(&format!("writer:    pid {me} (alive) holds it")),
        "{written}"
    );
    drop(w);

    // A writer killed while writing: shown dead; nothing taken over.
    let pid = crashed(write_and_crash, &n);
    let out = json_page(&n);
    assert!(
        stdout(&out).contains(&format!(
            "\"rwlock\":{{\"writer\":{{\"pid\":{pid},\"alive\":false}},\"claiming\":false,\"readers\":[]"
        )),
        "{}",
        stdout(&out)
    );
    assert!(matches!(
        l.write(),
        Err(shmkit::sync::LockError::OwnerDied(_))
    ));

    // A reserved bit of the state set.
    let bad = scribbled(&n, 0, &1u64.to_ne_bytes());
    assert!(
        bad.contains("corrupted: rwlock state has a reserved bit set"),
        "{bad}"
    );
    drop(l);
}

fn take_permit_and_crash(name: String) {
    let s = shmkit::Shm::<shmkit::sync::Semaphore>::open(&name).unwrap();
    std::mem::forget(s.acquire_permit().unwrap());
    std::process::abort();
}

#[test]
fn a_semaphores_permits_and_their_owners_are_shown() {
    use shmkit::sync::Semaphore;
    let n = name("semaphore");
    let s = shmkit::Shm::<Semaphore>::create(&n, |s| s.init(3, Some(3))).unwrap();
    listed_as(&n, "semaphore");
    let full = page(&n);
    assert!(full.contains("permits:   3 available, bound 3\n"), "{full}");
    assert!(full.contains("owned:     none\n"), "{full}");

    let me = std::process::id();
    let mine = s.acquire_permit().unwrap();
    s.acquire().unwrap(); // plain: nobody records it
    let held = page(&n);
    assert!(held.contains("permits:   1 available, bound 3\n"), "{held}");
    assert!(
        held.contains(&format!("owned:     pid {me} (alive): 1 permits\n")),
        "{held}"
    );
    drop(mine);
    s.release().unwrap();

    // An owner killed holding a permit: shown dead; nothing given back.
    let pid = crashed(take_permit_and_crash, &n);
    let out = json_page(&n);
    assert!(
        stdout(&out).contains(&format!(
            "\"semaphore\":{{\"available\":2,\"bound\":3,\"sleepers\":false,\"owners\":[{{\"pid\":{pid},\"alive\":false,\"count\":1}}]"
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.available().unwrap(), 2);

    // More permits than its bound.
    let bad = scribbled(&n, 0, &7u64.to_ne_bytes());
    assert!(
        bad.contains("corrupted: semaphore count above its bound"),
        "{bad}"
    );
    drop(s);
}

fn wait_forever(name: String) {
    let b = shmkit::Shm::<shmkit::sync::Barrier>::open(&name).unwrap();
    let _ = b.wait();
}

#[test]
fn a_barriers_arrivals_and_parties_are_shown() {
    use shmkit::sync::Barrier;
    let n = name("barrier");
    let b = shmkit::Shm::<Barrier>::create(&n, |b| b.init(2)).unwrap();
    listed_as(&n, "barrier");
    let fresh = page(&n);
    assert!(
        fresh.contains("barrier:   0 of 2 arrived, generation 0\n"),
        "{fresh}"
    );
    assert!(fresh.contains("processes: none\n"), "{fresh}");

    let me = std::process::id();
    std::thread::scope(|s| {
        s.spawn(|| b.wait().unwrap());
        b.wait().unwrap();
    });
    let passed = page(&n);
    assert!(
        passed.contains("0 of 2 arrived, generation 1\n"),
        "{passed}"
    );
    assert!(
        passed.contains(&format!("processes: pid {me} (alive)\n")),
        "{passed}"
    );

    // A party that arrives, then is killed while it waits.
    let child = shmkit::process::spawn(wait_forever, n.clone()).unwrap();
    let pid = child.pid();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !page(&n).contains("1 of 2 arrived") {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    assert!(child.join().is_err(), "the child was killed");
    let out = json_page(&n);
    assert!(
        stdout(&out).contains(&format!(
            "\"barrier\":{{\"parties\":2,\"arrived\":1,\"generation\":1,\"broken\":false,\"sleepers\":true,\"processes\":[{{\"pid\":{me},\"alive\":true}},{{\"pid\":{pid},\"alive\":false}}]"
        )) || stdout(&out).contains(&format!(
            "\"processes\":[{{\"pid\":{pid},\"alive\":false}},{{\"pid\":{me},\"alive\":true}}]"
        )),
        "{}",
        stdout(&out)
    );
    // Its arrival still counts: this wait completes the generation. The
    // next finds the dead party (a party for the barrier's whole life)
    // and breaks it, and that is shown.
    b.wait().unwrap();
    assert!(matches!(
        b.wait_timeout(std::time::Duration::from_secs(20)),
        Err(shmkit::sync::BarrierTimeoutError::Broken)
    ));
    assert!(page(&n).contains(", broken: every wait fails"));

    // More parties than a barrier has.
    let bad = scribbled(&n, 4, &1000u32.to_ne_bytes());
    assert!(
        bad.contains("corrupted: barrier has more parties than allowed"),
        "{bad}"
    );
    drop(b);
}

#[test]
fn an_events_flag_and_mode_are_shown() {
    use shmkit::sync::{Event, EventMode};
    let n = name("event");
    let e = shmkit::Shm::<Event>::create(&n, |e| e.init(EventMode::AutoReset)).unwrap();
    listed_as(&n, "event");
    assert!(page(&n).contains("event:     clear, auto reset\n"));
    e.set().unwrap();
    assert!(page(&n).contains("event:     set, auto reset\n"));
    let out = json_page(&n);
    assert!(
        stdout(&out).contains(
            "\"event\":{\"set\":true,\"auto_reset\":true,\"sleepers\":false,\"corrupted\":null}"
        ),
        "{}",
        stdout(&out)
    );
    e.try_wait().unwrap();
    assert!(page(&n).contains("event:     clear, auto reset\n"));

    // A mode no event has.
    let bad = scribbled(&n, 4, &7u32.to_ne_bytes());
    assert!(bad.contains("corrupted: event mode out of range"), "{bad}");
    drop(e);
}
