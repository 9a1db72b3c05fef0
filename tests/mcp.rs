//! The MCP server with a real client: the official MCP Python SDK (`mcp` on PyPI, pinned),
//! installed by the test itself, driving `vigil mcp` over stdio.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Tree, install_once};
use serde_json::Value;

/// The pinned client SDK.
const MCP_SDK: &str = "mcp==1.30.0";

/// The pinned MCP Python SDK, installed with pip.
fn python_sdk() -> Option<PathBuf> {
    install_once(
        "mcp-python-1.30.0",
        |dir| dir.join("mcp").is_dir(),
        |dir| {
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(dir)
                .arg(MCP_SDK)
                .output()
        },
    )
}

/// Starts the Python client on `scenario`, with `vigil ARGS` as the server command.
fn client(t: &Tree, sdk: &PathBuf, scenario: &str, args: &[&str]) -> std::process::Child {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(scenario)
        .arg(common::bin())
        .arg("--no-embed")
        .args(args)
        .env("PYTHONPATH", sdk)
        .env("TEST_ROOT", &t.root)
        .env("VIGIL_INDEX", &t.index)
        .env("XDG_DATA_HOME", t.tmp.path().join("data"))
        .env("VIGIL_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn steps(stdout: &str) -> std::collections::HashMap<String, Value> {
    common::json_lines(stdout)
        .into_iter()
        .map(|v| (v["step"].as_str().unwrap().to_string(), v))
        .collect()
}

/// The steps of a client that must have succeeded, after checking it met vigil and its
/// four tools.
fn steps_of(out: std::process::Output) -> std::collections::HashMap<String, Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = steps(&stdout);
    assert_eq!(s["initialize"]["server"], "vigil");
    assert_eq!(
        s["tools"]["names"],
        serde_json::json!(["changes", "read", "search", "status"])
    );
    s
}

#[test]
fn an_agent_initialises_lists_and_calls_every_tool_with_fresh_answers() {
    let Some(sdk) = python_sdk() else { return };
    let t = Tree::new(false);
    t.write(
        "src/harbour.rs",
        "fn dock_ship() { /* the harbour master */ }\n",
    );
    std::fs::write(t.tmp.path().join("outside.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(t.tmp.path().join("outside.txt"), t.path("escape_link")).unwrap();
    // No watcher yet: `vigil mcp ROOT` watches the root for the session.
    let root = t.root.to_str().unwrap().to_string();
    let s = steps_of(
        client(&t, &sdk, "tools", &["mcp", &root])
            .wait_with_output()
            .unwrap(),
    );
    let keywords: Vec<&str> = s["tools"]["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        !keywords.contains(&"format") && !keywords.contains(&"$schema"),
        "strict clients reject these: {keywords:?}"
    );
    assert_eq!(s["status"]["error"], false);
    // Without sync, the answer carries freshness that shows the lag.
    let nosync = &s["search_nosync"];
    assert_eq!(nosync["freshness"]["watched"], true);
    if nosync["hits"].as_array().unwrap().is_empty() {
        assert!(
            nosync["freshness"]["applied_ms"].as_u64().unwrap()
                < nosync["written_ms"].as_u64().unwrap(),
            "{nosync}"
        );
    }
    // With sync, the file written just before the call is found.
    let sync = &s["search_sync"];
    assert_eq!(sync["error"], false);
    assert!(
        sync["hits"][0].as_str().unwrap().ends_with("fresh_note.md"),
        "{sync}"
    );
    assert!(sync["freshness"]["synced_ms"].is_u64(), "{sync}");
    assert_eq!(s["read"]["error"], false);
    assert!(
        s["read"]["text"]
            .as_str()
            .unwrap()
            .contains("quartermaster")
    );
    for escape in ["read_dotdot", "read_symlink"] {
        assert_eq!(s[escape]["error"], true, "{}", s[escape]);
    }
    assert!(
        s["read_symlink"]["message"]
            .as_str()
            .unwrap()
            .contains("outside the watched roots"),
        "{}",
        s["read_symlink"]
    );
    assert!(
        s["changes"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().ends_with("fresh_note.md")),
        "{}",
        s["changes"]
    );
    let modified = &s["changes"]["modified"][0];
    assert_eq!(
        modified["changed_lines"],
        serde_json::json!([[1, 42]]),
        "{}",
        s["changes"]
    );
    assert_eq!(s["bad_mode"]["error"], true);
    // The session's watcher stopped with the session.
    assert!(common::poll(|| common_socket_gone(&t)));
}

fn common_socket_gone(t: &Tree) -> bool {
    std::os::unix::net::UnixStream::connect(t.index.join("vigil.sock")).is_err()
}

#[test]
fn a_dead_watcher_is_a_clear_error_and_a_restarted_one_is_reached_again() {
    let Some(sdk) = python_sdk() else { return };
    let t = Tree::new(false);
    t.write("log.md", "The harbour is calm.\n");
    let w = t.watch();
    let mut c = client(&t, &sdk, "restart", &["mcp"]);
    let mut stdin = c.stdin.take().unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a line from the client").unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next()["step"], "initialize");
    let before = next();
    assert_eq!(
        (before["error"].clone(), before["hits"].clone()),
        (false.into(), 1.into())
    );
    // The watcher dies in the middle of a call: frozen first, so the call is in flight,
    // then killed.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(w.child.id() as i32, libc::SIGSTOP) };
    writeln!(stdin).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(w); // kill -9
    let dead = next();
    assert_eq!(dead["error"], true, "{dead}");
    assert!(
        dead["message"].as_str().unwrap().contains("watcher"),
        "{dead}"
    );
    assert!(dead["seconds"].as_f64().unwrap() < 30.0, "{dead}");
    let w = t.watch();
    writeln!(stdin).unwrap();
    let after = next();
    assert_eq!(
        (after["error"].clone(), after["hits"].clone()),
        (false.into(), 1.into())
    );
    drop(stdin);
    assert!(c.wait().unwrap().success());
    assert!(w.stop().success());
}

#[test]
fn the_watchers_socket_serves_mcp_over_streamable_http() {
    let Some(sdk) = python_sdk() else { return };
    let t = Tree::new(false);
    t.write("log.md", "The harbour is calm.\n");
    let w = t.watch();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("http")
        .arg(t.index.join("vigil.sock"))
        .env("PYTHONPATH", &sdk)
        .env("TEST_ROOT", &t.root)
        .output()
        .unwrap();
    let s = steps_of(out);
    assert_eq!(s["search"]["error"], false, "{}", s["search"]);
    assert!(s["search"]["hits"][0].as_str().unwrap().ends_with("log.md"));
    assert!(w.stop().success());
}

#[test]
fn concurrent_agents_are_served_and_counted() {
    let Some(sdk) = python_sdk() else { return };
    let t = Tree::new(false);
    t.write("log.md", "The harbour is calm.\n");
    let w = t.watch();
    // Three agents at once, each with its own `vigil mcp` attached to the same watcher.
    let clients: Vec<_> = (0..3)
        .map(|_| client(&t, &sdk, "tools", &["mcp"]))
        .collect();
    for c in clients {
        let s = steps_of(c.wait_with_output().unwrap());
        assert_eq!(s["search_sync"]["error"], false, "{}", s["search_sync"]);
    }
    let (code, body) = vigil::api::client::get(&t.index, "/metrics")
        .unwrap()
        .unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body);
    let searches = text
        .lines()
        .find(|l| l.starts_with("vigil_api_requests_total{endpoint=\"search\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    // Two searches per agent (one without sync, one with).
    assert!(searches >= 3 * 2, "{text}");
    assert!(text.contains("vigil_api_in_flight_max"), "{text}");
    assert!(w.stop().success());
}

/// The MCP Inspector's CLI, pinned (0.14.0: later versions need Node 22), installed with npm.
fn inspector() -> Option<PathBuf> {
    let bin = |dir: &PathBuf| dir.join("node_modules/.bin/mcp-inspector");
    install_once(
        "mcp-inspector-0.14.0",
        |dir| bin(dir).exists(),
        |dir| {
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir)
                .arg("@modelcontextprotocol/inspector@0.14.0")
                .output()
        },
    )
    .map(|dir| bin(&dir))
}

#[test]
fn the_mcp_inspector_cli_lists_and_calls_the_tools() {
    let Some(inspector) = inspector() else { return };
    let t = Tree::new(false);
    t.write("log.md", "The harbour is calm.\n");
    let root = t.root.to_str().unwrap().to_string();
    let run = |extra: &[&str]| -> Value {
        let out = Command::new(&inspector)
            .arg("--cli")
            .arg(common::bin())
            .args(["--no-embed", "mcp", &root])
            .args(extra)
            .env("VIGIL_INDEX", &t.index)
            .env("XDG_DATA_HOME", t.tmp.path().join("data"))
            .env("VIGIL_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "inspector {extra:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let listed = run(&["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{listed}");
    let called = run(&[
        "--method",
        "tools/call",
        "--tool-name",
        "search",
        "--tool-arg",
        "query=harbour",
        "--tool-arg",
        "mode=text",
    ]);
    assert_eq!(called["isError"], false, "{called}");
    let answer: Value =
        serde_json::from_str(called["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(
        answer["hits"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("log.md")
    );
    assert_eq!(answer["freshness"]["watched"], true);
}
