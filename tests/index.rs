//! `vigil index` on real trees: every kind of change is seen through `search` and `history`.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::Tree;

#[test]
fn create_modify_delete_are_searchable_and_recorded() {
    let t = Tree::new(false);
    t.write(
        "notes/fox.md",
        "# Animals\n\nThe quick brown fox jumps over the lazy dog.\n",
    );
    t.write(
        "src/lib.rs",
        "/// Adds numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    );
    let summary = t.index();
    assert!(summary.contains("2 added"), "{summary}");

    let hits = t.search("fox", &[]);
    assert_eq!(hits.len(), 1);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "notes/fox.md");
    assert_eq!(hits[0]["start_line"], 1);
    assert_eq!(hits[0]["end_line"], 3);
    assert!(
        hits[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("quick brown fox")
    );
    assert_eq!(hits[0]["modes"][0], "text");

    t.write("notes/fox.md", "# Animals\n\nA zebra grazes.\n");
    let summary = t.index();
    assert!(summary.contains("1 modified"), "{summary}");
    // The old words are gone (`fox` alone still finds the file by its name).
    assert!(t.found("quick brown", &[]).is_empty());
    assert_eq!(t.found("zebra", &[]), vec!["notes/fox.md"]);

    fs::remove_file(t.path("notes/fox.md")).unwrap();
    let summary = t.index();
    assert!(summary.contains("1 deleted"), "{summary}");
    assert!(t.found("zebra", &[]).is_empty());

    let changes = t.changes();
    assert_eq!(changes[0], ("deleted".into(), "notes/fox.md".into()));
    assert_eq!(changes[1], ("modified".into(), "notes/fox.md".into()));
    assert!(changes.contains(&("created".into(), "src/lib.rs".into())));
    let only_fox =
        common::json_lines(&t.ok(&["history", t.path("notes").to_str().unwrap(), "--json"]));
    assert_eq!(only_fox.len(), 3, "history PATH filters: {only_fox:?}");
}

#[test]
fn unchanged_files_are_not_read_and_touch_costs_nothing() {
    let t = Tree::new(false);
    let p = t.write("a.txt", "alpha beta gamma\n");
    t.index();
    let summary = t.index();
    assert!(summary.contains("1 unchanged"), "{summary}");

    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let summary = t.index();
    assert!(summary.contains("1 touched"), "{summary}");
    assert!(
        summary.contains("chunks:     0 added, 0 removed"),
        "{summary}"
    );
    assert_eq!(t.changes()[0], ("touched".into(), "a.txt".into()));
    assert_eq!(t.found("gamma", &[]), vec!["a.txt"]);
}

#[test]
fn rename_and_move_between_directories_keep_content_searchable() {
    let t = Tree::new(false);
    t.write("one/report.md", "quarterly revenue figures\n");
    t.index();
    fs::create_dir_all(t.path("two")).unwrap();
    fs::rename(t.path("one/report.md"), t.path("two/summary.md")).unwrap();
    let summary = t.index();
    assert!(summary.contains("1 renamed"), "{summary}");
    assert_eq!(t.found("revenue", &[]), vec!["two/summary.md"]);
    let row = &t.history()[0];
    assert_eq!(row["kind"], "renamed");
    assert_eq!(t.rel(row["from"].as_str().unwrap()), "one/report.md");
    assert_eq!(t.rel(row["path"].as_str().unwrap()), "two/summary.md");
}

#[test]
fn ignored_binary_and_oversized_files_are_not_indexed() {
    let t = Tree::new(false);
    t.write(".gitignore", "secret.txt\n");
    t.write("secret.txt", "needle in the ignored file\n");
    t.write("node_modules/pkg/index.js", "needle in node_modules\n");
    t.write(".hidden/notes.txt", "needle in a hidden dir\n");
    t.write("draft.txt~", "needle in a backup file\n");
    t.write("image.txt", b"needle\0\x01\x02binary");
    t.write("big.txt", format!("needle {}\n", "x".repeat(4096)));
    t.write("ok.txt", "needle where it belongs\n");
    let root = t.root.to_str().unwrap().to_string();
    let summary = t.ok(&["index", &root, "--max-file-size", "1K"]);
    assert!(summary.contains("2 skipped"), "{summary}");
    assert_eq!(t.found("needle", &[]), vec!["ok.txt"]);

    let rows = t.history();
    let reason = |name: &str| {
        rows.iter()
            .find(|r| t.rel(r["path"].as_str().unwrap()) == name)
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    r["reason"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    assert_eq!(
        reason("image.txt").unwrap(),
        ("skipped".into(), "binary content".into())
    );
    let (kind, why) = reason("big.txt").unwrap();
    assert_eq!(kind, "skipped");
    assert!(why.contains("size limit"), "{why}");
    assert!(reason("secret.txt").is_none() && reason("draft.txt~").is_none());

    // Un-ignoring a file makes it appear.
    t.write(".gitignore", "\n");
    t.index();
    assert!(t.found("needle", &[]).contains(&"secret.txt".to_string()));
}

#[test]
fn the_index_directory_is_never_indexed() {
    let t = Tree::new(false);
    t.write("a.txt", "lighthouse keeper\n");
    let inside = t.path(".vigil-index-inside");
    let root = t.root.to_str().unwrap().to_string();
    let out = t
        .cmd()
        .env("VIGIL_INDEX", &inside)
        .args(["index", &root])
        .output()
        .unwrap();
    assert!(out.status.success());
    let again = t
        .cmd()
        .env("VIGIL_INDEX", &inside)
        .args(["index", &root])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(summary.contains("1 scanned"), "{summary}");
}

#[test]
fn an_unreadable_file_is_recorded_with_its_reason_and_others_proceed() {
    let t = Tree::unprivileged();
    t.write("good.txt", "harbour pilot\n");
    let bad = t.write("bad.txt", "harbour secret\n");
    fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let summary = t.index();
    assert!(summary.contains("1 failed"), "{summary}");
    assert_eq!(t.found("harbour", &[]), vec!["good.txt"]);
    let row = t
        .history()
        .into_iter()
        .find(|r| r["kind"] == "failed")
        .expect("a failed row");
    assert_eq!(t.rel(row["path"].as_str().unwrap()), "bad.txt");
    assert!(
        row["reason"].as_str().unwrap().contains("ermission denied"),
        "{row}"
    );

    // Readable again: indexed on the next run.
    fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    t.index();
    assert_eq!(t.found("harbour", &[]).len(), 2);
}

#[test]
fn search_output_is_grep_like_and_filters_by_path() {
    let t = Tree::new(false);
    t.write(
        "src/main.rs",
        "fn main() {\n    println!(\"compass\");\n}\n",
    );
    t.write("docs/guide.md", "# Guide\n\nUse the compass.\n");
    t.index();
    assert_eq!(t.found("compass", &["--path", "*.rs"]), vec!["src/main.rs"]);
    assert_eq!(
        t.found("compass", &["--path", "docs/**"]),
        vec!["docs/guide.md"]
    );
    let plain = t.ok(&["search", "compass", "--path", "*.rs"]);
    let first = plain.lines().next().unwrap();
    let expected = format!("{}:1-3  ", t.path("src/main.rs").display());
    assert!(first.starts_with(&expected), "{first}");
    assert!(plain.contains("println!(\"compass\")"), "{plain}");
}

#[test]
fn errors_name_the_path_and_exit_codes_follow_the_contract() {
    let t = Tree::new(false);
    let missing = t.path("nope");
    let out = t.run(&["index", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("No such file"),
        "{err}"
    );

    let out = t.run(&["search"]);
    assert_eq!(out.status.code(), Some(2), "usage error");

    let out = t.run(&["search", "anything"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no index here yet"));
}

#[test]
fn queries_on_an_unwatched_index_only_read_it() {
    // search, status and verify on an index no process watches open it read-only: not a
    // byte of it changes, and a watcher starting meanwhile is kept out only for the query.
    let t = Tree::new(false);
    t.write(
        "notes/harbour.md",
        "The harbour master logs every ship at dawn.\n",
    );
    t.index();
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = walk(&t.index)
            .into_iter()
            .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    assert_eq!(t.found("harbour", &[]), vec!["notes/harbour.md"]);
    assert_eq!(t.status()["files_indexed"], 1);
    t.assert_verified("unwatched index");
    assert!(before == snapshot(), "a query changed the index");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
