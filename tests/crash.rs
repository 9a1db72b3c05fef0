//! kill -9 at arbitrary moments of indexing: the next run repairs the index to the disk.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use common::Tree;
use serde_json::Value;

const FILES: usize = 1500;

#[test]
fn kill_9_during_index_then_rerun_gives_exactly_the_disk() {
    let t = Tree::new(false);
    for i in 0..FILES {
        t.write(
            &format!("d{}/f{i}.txt", i % 25),
            format!("token{i} shared words about ships\n"),
        );
    }
    let root = t.root.to_str().unwrap().to_string();
    // Kill at increasing delays to land in different phases (open, scan, commits, close).
    for (round, delay_ms) in [5u64, 40, 80, 150, 250, 400].into_iter().enumerate() {
        if round == 3 {
            // Change the disk between crashes too: the repair must follow it.
            for i in 0..50 {
                std::fs::remove_file(t.path(&format!("d{}/f{i}.txt", i % 25))).unwrap();
            }
        }
        let mut child = t
            .cmd()
            .args(["index", &root])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let summary = t.index();
    assert!(summary.contains("0 failed"), "{summary}");

    let status: Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    let expected = (FILES - 50) as u64;
    assert_eq!(status["files_indexed"], expected, "{status}");
    assert_eq!(status["chunks"], expected, "{status}");
    assert_eq!(
        status["text_docs"], expected,
        "text index and store agree: {status}"
    );

    let hits = t.search("ships", &["--mode", "text", "--limit", "5000"]);
    let paths: HashSet<String> = hits
        .iter()
        .map(|h| t.rel(h["path"].as_str().unwrap()))
        .collect();
    assert_eq!(hits.len(), FILES - 50, "one hit per file, no duplicates");
    assert_eq!(paths.len(), FILES - 50);
    assert!(!paths.contains("d0/f0.txt"), "deleted files are gone");
    assert_eq!(
        t.found("token1234", &["--mode", "text"]),
        vec!["d9/f1234.txt"]
    );
}
