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
    // The exact word first (its parts `token` and `1234` match other files further down),
    // and the file once.
    let found = t.found("token1234", &["--mode", "text", "--limit", "100"]);
    assert_eq!(found[0], "d9/f1234.txt");
    assert_eq!(found.iter().filter(|p| *p == "d9/f1234.txt").count(), 1);
}

#[test]
fn twenty_kill_9s_during_indexing_and_watching_then_verify_is_clean() {
    let t = Tree::new(false);
    for i in 0..600 {
        t.write(
            &format!("d{}/f{i}.txt", i % 12),
            format!("token{i} words about boats\n"),
        );
    }
    let root = t.root.to_str().unwrap().to_string();
    for round in 0..20u64 {
        // Alternate: kill an `index` run, or a `watch` busy applying changes.
        let args: Vec<&str> = if round % 2 == 0 {
            vec!["index", &root]
        } else {
            vec!["watch", &root, "--no-tui", "--debounce-ms", "20"]
        };
        let mut child = t
            .cmd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for i in 0..40u64 {
            let n = (round * 40 + i) % 600;
            let path = t.path(&format!("d{}/f{n}.txt", n % 12));
            match i % 4 {
                0 => {
                    std::fs::write(&path, format!("token{n} rewritten in round {round}\n")).unwrap()
                }
                1 => {
                    let _ = std::fs::remove_file(&path);
                }
                2 => {
                    let _ = std::fs::rename(&path, path.with_extension("md"));
                }
                _ => std::fs::write(
                    t.path(&format!("new/r{round}-{i}.txt")).as_path(),
                    "fresh\n",
                )
                .unwrap_or_else(|_| {
                    std::fs::create_dir_all(t.path("new")).unwrap();
                    std::fs::write(t.path(&format!("new/r{round}-{i}.txt")), "fresh\n").unwrap()
                }),
            }
        }
        std::thread::sleep(Duration::from_millis(30 + round * 17 % 200));
        let _ = child.kill();
        let _ = child.wait();
        // The restart opens redb and tantivy without errors and repairs to the disk.
        t.index();
        t.assert_verified(&format!("round {round}"));
    }
}

/// Distinct sentences, so every note needs its own embedding.
fn note(i: usize, round: usize) -> String {
    const SUBJECTS: [&str; 6] = [
        "The ferry",
        "A lighthouse keeper",
        "The harbour crane",
        "Our tugboat",
        "The pilot",
        "A fishing crew",
    ];
    const VERBS: [&str; 5] = ["waits for", "signals to", "repairs", "tows", "logs"];
    format!(
        "Note {i} (revision {round}): {} {} vessel number {} near pier {}.\n",
        SUBJECTS[i % 6],
        VERBS[(i / 6 + round) % 5],
        i * 7 + round,
        i % 13
    )
}

#[test]
fn kill_9_while_embeddings_are_applied_and_saved_then_every_chunk_gets_its_vector() {
    let t = Tree::new(true);
    for i in 0..240 {
        t.write(&format!("d{}/n{i}.md", i % 6), note(i, 0));
    }
    let root = t.root.to_str().unwrap().to_string();
    for round in 0..8usize {
        // New texts each round, so the watcher has embeddings to compute when it is killed.
        for k in 0..40 {
            let i = (round * 40 + k) % 240;
            t.write(&format!("d{}/n{i}.md", i % 6), note(i, round + 1));
        }
        let mut child = t
            .cmd()
            .args(["watch", &root, "--no-tui", "--debounce-ms", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until vectors are being applied.
        common::wait_for("embeddings to be applied", || {
            serde_json::from_slice::<Value>(&t.run(&["status", "--json"]).stdout)
                .is_ok_and(|s| s["embeddings_computed"].as_u64().unwrap_or(0) > 0)
        });
        if round % 2 == 1 {
            // A stop saves the HNSW snapshot: kill in the middle of that.
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(round as u64 * 2));
        } else {
            std::thread::sleep(Duration::from_millis(round as u64 * 40));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The next run repairs, and embeds whatever was lost with the process.
        t.index();
        let status: Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
        assert_eq!(status["embeddings_pending"], 0, "round {round}: {status}");
        assert_eq!(status["chunks"], 240, "round {round}: {status}");
        // verify: no chunk without its vector, no vector without its chunk.
        t.assert_verified(&format!("round {round}"));
    }
    let found = t.found(
        "a boat towed by another boat",
        &["--mode", "semantic", "--limit", "20"],
    );
    assert!(found.iter().any(|p| p.contains("/n")), "{found:?}");
}
