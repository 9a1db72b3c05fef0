//! Save-to-searchable latency of a running watcher: one line of a 2,562-line Rust file (from
//! the cargo registry: redb's `btree_base.rs`) is edited, and the time from the file's mtime to
//! the commit that makes it searchable is read from the watcher's own
//! `vigil_save_to_searchable_seconds` histogram (the delta of its `_sum` per edit).
//!
//! Run with `cargo bench --bench latency` (release build of `vigil`; text-only, so the figure
//! is the text index's). `LATENCY_DEBOUNCE_MS` (default 300) sets `--debounce-ms`,
//! `LATENCY_EDITS` (default 9) the number of edits.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const FILE: &str = "redb-4.5.0/src/tree_store/btree_base.rs";

fn metric(index: &Path, name: &str) -> Option<f64> {
    let (_, body) = vigil::api::client::get(index, "/metrics").ok()??;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn main() {
    let Some(src) = common::registry_src() else {
        eprintln!("bench skipped: no cargo registry sources with {FILE}");
        return;
    };
    let debounce: u64 = std::env::var("LATENCY_DEBOUNCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let edits: usize = std::env::var("LATENCY_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let original = std::fs::read_to_string(src.join(FILE)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let index = tmp.path().join("index");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("btree_base.rs");
    std::fs::write(&file, &original).unwrap();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--no-embed", "--index"])
        .arg(&index)
        .args(["watch", "--no-tui", "--debounce-ms", &debounce.to_string()])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while vigil::api::client::get(&index, "/readyz")
        .ok()
        .flatten()
        .is_none_or(|(code, _)| code != 200)
    {
        assert!(Instant::now() < deadline, "the watcher never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let count = "vigil_save_to_searchable_seconds_count";
    let sum = "vigil_save_to_searchable_seconds_sum";
    let lines: Vec<&str> = original.lines().collect();
    let mut figures = Vec::new();
    let stages = [
        "vigil_hash_duration_seconds_sum",
        "vigil_chunk_duration_seconds_sum",
        "vigil_commit_duration_seconds_sum",
    ];
    let mut stage_ms = [0.0f64; 3];
    for edit in 0..edits {
        let stage_before: Vec<f64> = stages
            .iter()
            .map(|m| metric(&index, m).unwrap_or(0.0))
            .collect();
        let before = (
            metric(&index, count).unwrap_or(0.0),
            metric(&index, sum).unwrap_or(0.0),
        );
        let mut edited = lines.clone();
        let marker = format!("// edit {edit}");
        edited[1200] = &marker;
        std::fs::write(&file, edited.join("\n")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let after = loop {
            let now = (
                metric(&index, count).unwrap_or(0.0),
                metric(&index, sum).unwrap_or(0.0),
            );
            if now.0 > before.0 {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "edit {edit} never became searchable"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        figures.push((after.1 - before.1) / (after.0 - before.0) * 1000.0);
        for (i, m) in stages.iter().enumerate() {
            stage_ms[i] +=
                (metric(&index, m).unwrap_or(0.0) - stage_before[i]) * 1000.0 / edits as f64;
        }
        // Let the debouncer forget this edit before the next one.
        std::thread::sleep(Duration::from_millis(debounce + 200));
    }
    println!(
        "per edit, mean: read+hash {:.0} ms, chunk {:.0} ms, commit {:.0} ms",
        stage_ms[0], stage_ms[1], stage_ms[2]
    );
    unsafe { libc::kill(watcher.id() as i32, libc::SIGTERM) };
    let _ = watcher.wait();
    let mut sorted = figures.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "save-to-searchable, one line of a {}-line file, debounce {debounce} ms: p50 {:.0} ms, min {:.0} ms, max {:.0} ms over {edits} edits ({})",
        lines.len(),
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
        figures
            .iter()
            .map(|f| format!("{f:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
