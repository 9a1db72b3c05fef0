//! Running as a service: the HTTP API through real HTTP (curl, on the Unix socket and on
//! loopback TCP), SSE, metrics, signals and configuration reloads.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Tree, poll, wait_for};
use serde_json::Value;

/// `curl` over the index's Unix socket: (HTTP status, body).
fn curl_unix(t: &Tree, args: &[&str]) -> (u16, String) {
    let sock = t.index.join("vigil.sock");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&sock)
        .args(args);
    split_status(cmd.output().unwrap().stdout)
}

fn curl(args: &[&str]) -> (u16, String) {
    split_status(
        Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap()
            .stdout,
    )
}

fn split_status(out: Vec<u8>) -> (u16, String) {
    let text = String::from_utf8_lossy(&out).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn every_endpoint_answers_on_the_socket_and_on_loopback() {
    let t = Tree::new(false);
    t.write("notes/a.md", "the lighthouse keeper\n");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let w = t.watch_with(&["--listen", &addr]);
    let base = format!("http://{addr}");

    for (path, check) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        ("/status", "files_indexed"),
        ("/history?limit=5", "rows"),
        ("/files?state=indexed", "files"),
    ] {
        let (code, body) = curl_unix(&t, &[&format!("http://vigil{path}")]);
        assert_eq!(code, 200, "{path}: {body}");
        assert!(json(&body).get(check).is_some(), "{path}: {body}");
        let (code, body) = curl(&[&format!("{base}{path}")]);
        assert_eq!(code, 200, "tcp {path}: {body}");
    }
    let (code, body) = curl_unix(&t, &["http://vigil/search?q=lighthouse&mode=text&limit=3"]);
    assert_eq!(code, 200, "{body}");
    let hits = json(&body)["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1);
    assert!(hits[0]["path"].as_str().unwrap().ends_with("notes/a.md"));
    let (code, body) = curl_unix(&t, &["http://vigil/metrics"]);
    assert_eq!(code, 200);
    assert!(
        body.contains("vigil_changes_applied_total{kind=\"created\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("vigil_commit_duration_seconds_bucket"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"));
    // The socket is private to its owner.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.index.join("vigil.sock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(w.stop().success());
}

#[test]
fn malformed_and_oversized_requests_get_a_4xx_with_a_json_error() {
    let t = Tree::new(false);
    t.write("a.txt", "x\n");
    let w = t.watch();
    let long = format!("http://vigil/search?q={}", "a".repeat(10_000));
    let cases: Vec<(Vec<String>, u16)> = vec![
        (vec!["http://vigil/search".into()], 400),
        (vec!["http://vigil/search?q=x&limit=abc".into()], 400),
        (vec!["http://vigil/search?q=x&limit=100000".into()], 400),
        (vec!["http://vigil/search?q=x&mode=fuzzy".into()], 400),
        (vec!["http://vigil/search?q=x&path=%5B".into()], 400),
        (vec!["http://vigil/files?state=sideways".into()], 400),
        (vec!["http://vigil/nope".into()], 404),
        (
            vec!["-X".into(), "POST".into(), "http://vigil/status".into()],
            405,
        ),
        (vec![long], 414),
        (
            vec![
                "-H".into(),
                "Content-Length: 999999999".into(),
                "http://vigil/status".into(),
            ],
            413,
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = curl_unix(&t, &args);
        assert_eq!(code, expected, "{:?}: {body}", &args[..args.len().min(3)]);
        assert!(json(&body)["error"].is_string(), "{body}");
    }
    // Still alive after all that.
    assert_eq!(curl_unix(&t, &["http://vigil/healthz"]).0, 200);
    assert!(w.stop().success());
}

#[test]
fn a_public_listener_requires_the_token() {
    let t = Tree::new(false);
    t.write("a.txt", "x\n");
    let root = t.root.to_str().unwrap().to_string();
    // Non-loopback without --listen-public is refused at start.
    let out = t.run(&["watch", &root, "--no-tui", "--listen", "0.0.0.0:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen-public"));

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(t.tmp.path().join("w.log")).unwrap();
    let mut child = t
        .cmd()
        .env("VIGIL_API_TOKEN", "s3cret")
        .args([
            "watch",
            &root,
            "--no-tui",
            "--listen",
            &addr,
            "--listen-public",
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://{addr}/status");
    wait_for("the public listener", || curl(&[&url]).0 == 401);
    assert_eq!(curl(&["-H", "Authorization: Bearer wrong", &url]).0, 401);
    assert_eq!(curl(&["-H", "Authorization: Bearer s3cret", &url]).0, 200);
    // The Unix socket needs no token: it is private to its owner.
    assert_eq!(curl_unix(&t, &["http://vigil/status"]).0, 200);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn sse_delivers_a_change_made_after_subscribing_and_metrics_move() {
    let t = Tree::new(false);
    t.write("a.txt", "first\n");
    let w = t.watch();
    let before = curl_unix(&t, &["http://vigil/metrics"]).1;
    let mut sse = Command::new("curl")
        .args(["-s", "-N", "--unix-socket"])
        .arg(t.index.join("vigil.sock"))
        .arg("http://vigil/events")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sse.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The first event says the subscription is in place: every later change reaches it.
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(first, "event: state");
    t.write("fresh.txt", "a brand new file\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut got = false;
    while Instant::now() < deadline && !got {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got = line.starts_with("data:")
                && line.contains("fresh.txt")
                && lines.last().is_some_and(|l: &String| l == "event: change");
            lines.push(line);
        }
    }
    let _ = sse.kill();
    let _ = sse.wait();
    assert!(got, "no change event for fresh.txt; got {lines:?}");
    let after = curl_unix(&t, &["http://vigil/metrics"]).1;
    let created = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("vigil_changes_applied_total{kind=\"created\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(created(&after), created(&before) + 1, "{after}");
    assert!(
        after.contains("vigil_save_to_searchable_seconds_count 1"),
        "{after}"
    );
    assert!(
        after.contains("vigil_events_received_total{kind=\"create\"}"),
        "{after}"
    );
    assert!(w.stop().success());
}

#[test]
fn sigterm_during_the_initial_reconcile_exits_0_and_a_restart_is_consistent() {
    let t = Tree::new(false);
    for i in 0..4000 {
        t.write(
            &format!("d{}/f{i}.txt", i % 40),
            format!("word{i} and some shared text\n"),
        );
    }
    let root = t.root.to_str().unwrap().to_string();
    let mut child = t
        .cmd()
        .args(["watch", &root, "--no-tui"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGTERM while the initial reconcile runs (its socket answers meanwhile).
    wait_for("the initial reconcile to start", || {
        serde_json::from_slice::<Value>(&t.run(&["status", "--json"]).stdout)
            .is_ok_and(|s| s["phase"] == "scanning" && s["pid"] == child.id())
    });
    let sent = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        sent.elapsed()
    );
    let summary = t.index();
    assert!(summary.contains("0 failed"), "{summary}");
    let s: Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    assert_eq!(s["files_indexed"], 4000, "{s}");
    assert_eq!(s["chunks"], 4000, "{s}");
    assert_eq!(s["text_docs"], 4000, "{s}");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_adds_a_root() {
    let t = Tree::new(false);
    t.write("a/one.md", "alpha notes\n");
    t.write("b/two.md", "bravo notes\n");
    let config = t.tmp.path().join("vigil.toml");
    let root_a = t.path("a");
    let root_b = t.path("b");
    std::fs::write(
        &config,
        format!(
            "debounce_ms = 100\n[[roots]]\npath = {:?}\n",
            root_a.to_str().unwrap()
        ),
    )
    .unwrap();
    let log = t.tmp.path().join("watch.log");
    let mut child = t
        .cmd()
        .arg("--config")
        .arg(&config)
        .args(["watch", "--no-tui"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("alpha indexed", || {
        t.run(&["search", "notes", "--json"]).status.success()
            && t.found("notes", &[]) == vec!["a/one.md"]
    });

    std::fs::write(&config, "this is = not [ toml\n").unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("the rejection in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("configuration rejected")
    });
    t.write("a/three.md", "charlie notes\n");
    wait_for("the old configuration still in force", || {
        t.found("charlie", &[]) == vec!["a/three.md"]
    });

    std::fs::write(
        &config,
        format!(
            "debounce_ms = 100\n[[roots]]\npath = {:?}\n[[roots]]\npath = {:?}\ninclude = [\"*.md\"]\n",
            root_a.to_str().unwrap(),
            root_b.to_str().unwrap()
        ),
    )
    .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("the new root", || t.found("bravo", &[]) == vec!["b/two.md"]);
    t.write("b/skip.txt", "bravo but not markdown\n");
    t.write("b/four.md", "bravo again\n");
    wait_for("the include glob", || {
        t.found("again", &[]) == vec!["b/four.md"]
    });
    assert!(!t.found("bravo", &[]).contains(&"b/skip.txt".to_string()));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let ok = child.wait().unwrap().success();
    if !ok {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    assert!(ok);
    assert!(
        poll(|| !t.index.join("vigil.sock").exists()),
        "socket removed on exit"
    );
}

#[test]
fn config_check_validates_a_file() {
    let t = Tree::new(false);
    let good = t.tmp.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "max_file_size = \"1M\"\n[[roots]]\npath = {:?}\n",
            t.root.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = t.run(&["config", "check", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    let bad = t.tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[roots]]\npath = \"/definitely/not/here\"\n").unwrap();
    let out = t.run(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("/definitely/not/here"),
        "{err}"
    );
}

#[test]
fn systemd_hears_ready_and_status_and_a_second_signal_exits_at_once() {
    let t = Tree::new(false);
    for i in 0..3000 {
        t.write(&format!("d{}/f{i}.txt", i % 30), format!("w{i}\n"));
    }
    let (notify_path, notify) = notify_socket(&t);
    let root = t.root.to_str().unwrap().to_string();
    let mut child = t
        .cmd()
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .args(["watch", &root, "--no-tui"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = notify.recv(&mut buf).expect("a notification within 60 s");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("STATUS="), "{seen}");
    // Two signals in a row: the second one does not wait for a clean stop.
    t.write("late/more.txt", "more\n");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(matches!(status.code(), Some(0 | 130)), "{status}");
    // Whatever the moment, the index is recoverable and complete after a run.
    t.index();
    let s: Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    assert_eq!(s["files_indexed"], 3001, "{s}");
    assert_eq!(s["text_docs"], s["chunks"], "{s}");
}

#[test]
fn the_watchdog_is_fed_during_a_long_initial_reconcile() {
    // WatchdogSec = 300 ms, and an initial reconcile of 8,000 files that lasts much longer:
    // systemd must keep hearing WATCHDOG=1 while the reconcile advances, or it would kill
    // vigil in the middle of it.
    let t = Tree::new(false);
    for i in 0..8000 {
        t.write(&format!("d{}/f{i}.txt", i % 40), format!("w{i} harbour\n"));
    }
    let (notify_path, notify) = notify_socket(&t);
    let root = t.root.to_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let mut child = t
        .cmd()
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "300000")
        .args(["watch", &root, "--no-tui"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pings_before_ready = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = notify.recv(&mut buf).expect("a notification within 60 s");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.contains("WATCHDOG=1") {
            pings_before_ready.push(started.elapsed());
        }
        if msg.contains("READY=1") {
            break;
        }
    }
    let ready = started.elapsed();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(
        ready > Duration::from_millis(600),
        "the reconcile was too quick to test the watchdog ({ready:?})"
    );
    // Fed throughout: no silence longer than WatchdogSec while the reconcile ran (generous
    // slack for a loaded machine: systemd's own default is WatchdogSec with no slack).
    let mut last = Duration::ZERO;
    for at in pings_before_ready.iter().chain([&ready]) {
        assert!(
            *at - last < Duration::from_millis(1000),
            "no WATCHDOG=1 between {last:?} and {at:?} (pings {pings_before_ready:?})"
        );
        last = *at;
    }
    assert!(pings_before_ready.len() >= 2, "{pings_before_ready:?}");
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET` (reads wait up to 60 s).
fn notify_socket(t: &Tree) -> (std::path::PathBuf, std::os::unix::net::UnixDatagram) {
    let path = t.tmp.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    (path, socket)
}
