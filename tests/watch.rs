//! `vigil watch --no-tui` following real inotify events, queried from other processes.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::{Tree, wait_for};

#[test]
fn a_running_watcher_follows_every_kind_of_change() {
    let t = Tree::new(false);
    t.write("notes/start.md", "lantern at the start\n");
    t.write(".gitignore", "ignored.txt\n");
    let w = t.watch();
    // Search and history work from another process while the watcher owns the index.
    assert_eq!(t.found("lantern", &[]), vec!["notes/start.md"]);

    // create, in a new subdirectory (recursive watch covers it)
    t.write("fresh/dir/new.txt", "a heron stands in the river\n");
    wait_for("create", || {
        t.found("heron", &[]) == vec!["fresh/dir/new.txt"]
    });

    // modify
    t.write("fresh/dir/new.txt", "a kingfisher dives\n");
    wait_for("modify", || {
        t.found("kingfisher", &[]) == vec!["fresh/dir/new.txt"] && t.found("heron", &[]).is_empty()
    });

    // rename within a directory, then move across directories
    fs::rename(t.path("fresh/dir/new.txt"), t.path("fresh/dir/bird.txt")).unwrap();
    wait_for("rename", || {
        t.found("kingfisher", &[]) == vec!["fresh/dir/bird.txt"]
    });
    fs::rename(t.path("fresh/dir/bird.txt"), t.path("notes/bird.txt")).unwrap();
    wait_for("move", || {
        t.found("kingfisher", &[]) == vec!["notes/bird.txt"]
    });

    // touch without change
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(t.path("notes/bird.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    wait_for("touch", || {
        t.changes().first() == Some(&("touched".into(), "notes/bird.txt".into()))
    });

    // ignored, binary and unreadable-as-vanished files do not stop anything
    t.write("ignored.txt", "kingfisher ignored\n");
    t.write("pic.txt", b"kingfisher\0\0binary");
    wait_for("binary skipped", || {
        t.changes()
            .iter()
            .any(|c| c == &("skipped".into(), "pic.txt".into()))
    });
    assert_eq!(t.found("kingfisher", &[]), vec!["notes/bird.txt"]);

    // delete a file, then a whole directory
    fs::remove_file(t.path("notes/bird.txt")).unwrap();
    wait_for("delete", || t.found("kingfisher", &[]).is_empty());
    fs::remove_dir_all(t.path("notes")).unwrap();
    wait_for("delete dir", || t.found("lantern", &[]).is_empty());

    let kinds: Vec<String> = t.changes().into_iter().map(|c| c.0).collect();
    for k in [
        "created", "modified", "renamed", "touched", "skipped", "deleted",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
    }
    assert!(!t.changes().iter().any(|c| c.1 == "ignored.txt"));
    let status = w.stop();
    assert!(status.success(), "watch exits 0 on SIGTERM: {status}");
}

#[test]
fn a_second_writer_is_refused_while_watch_runs() {
    let t = Tree::new(false);
    t.write("a.txt", "buoy\n");
    let w = t.watch();
    let out = t.run(&["index", t.root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("running vigil process") && err.contains("pid") && err.contains("watch"),
        "{err}"
    );
    let status: serde_json::Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["files_indexed"], 1);
    assert!(w.stop().success());
}

#[test]
fn changes_made_while_stopped_are_reconciled_on_start() {
    let t = Tree::new(false);
    t.write("keep.txt", "anchor\n");
    t.write("gone.txt", "mooring\n");
    let w = t.watch();
    assert!(w.stop().success());
    fs::remove_file(t.path("gone.txt")).unwrap();
    t.write("added.txt", "rudder\n");
    let w = t.watch();
    assert!(t.found("mooring", &[]).is_empty());
    assert_eq!(t.found("rudder", &[]), vec!["added.txt"]);
    assert_eq!(t.found("anchor", &[]), vec!["keep.txt"]);
    assert!(w.stop().success());
}

#[test]
fn a_running_watcher_records_oversized_and_unreadable_files_and_goes_on() {
    let t = Tree::unprivileged();
    t.write("a.txt", "compass rose\n");
    let w = t.watch_with(&["--max-file-size", "1K"]);
    t.write("big.txt", format!("compass {}\n", "x".repeat(2000)));
    let locked = t.path("locked.txt");
    fs::write(&locked, "compass locked\n").unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    t.write("b.txt", "compass needle\n");
    wait_for("skip and failure", || {
        let c = t.changes();
        c.contains(&("skipped".into(), "big.txt".into()))
            && c.contains(&("failed".into(), "locked.txt".into()))
    });
    wait_for("the readable file", || t.found("compass", &[]).len() == 2);
    let rows = t.history();
    let failed = rows.iter().find(|r| r["kind"] == "failed").unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{failed}"
    );
    let skipped = rows.iter().find(|r| r["kind"] == "skipped").unwrap();
    assert!(
        skipped["reason"].as_str().unwrap().contains("size limit"),
        "{skipped}"
    );
    let status: serde_json::Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        (
            status["files_skipped"].as_u64(),
            status["files_failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(w.stop().success());
}

#[test]
fn renaming_a_directory_moves_its_files_as_renames() {
    let t = Tree::new(false);
    t.write("old/one.txt", "sextant\n");
    t.write("old/deep/two.txt", "astrolabe\n");
    let w = t.watch();
    fs::rename(t.path("old"), t.path("new")).unwrap();
    wait_for("the directory rename", || {
        t.found("sextant", &[]) == vec!["new/one.txt"]
            && t.found("astrolabe", &[]) == vec!["new/deep/two.txt"]
    });
    let renamed: Vec<String> = t
        .history()
        .iter()
        .filter(|r| r["kind"] == "renamed")
        .map(|r| t.rel(r["path"].as_str().unwrap()))
        .collect();
    assert_eq!(renamed.len(), 2, "{renamed:?}");
    assert!(w.stop().success());
}

#[test]
fn the_polling_backend_follows_changes_too() {
    let t = Tree::new(false);
    t.write("notes/a.md", "sextant in a drawer\n");
    let w = t.watch_with(&["--poll", "150"]);
    t.write("notes/b.md", "a barometer on the wall\n");
    wait_for("create (polled)", || {
        t.found("barometer", &[]) == vec!["notes/b.md"]
    });
    t.write("notes/b.md", "a chronometer on the wall, longer now\n");
    wait_for("modify (polled)", || {
        t.found("chronometer", &[]) == vec!["notes/b.md"]
    });
    fs::rename(t.path("notes/a.md"), t.path("drawer.md")).unwrap();
    wait_for("rename (polled)", || {
        t.found("sextant", &[]) == vec!["drawer.md"]
    });
    fs::remove_file(t.path("notes/b.md")).unwrap();
    wait_for("delete (polled)", || t.found("chronometer", &[]).is_empty());
    t.assert_verified("polling");
    assert!(w.stop().success());
}

#[test]
fn verify_repair_fixes_a_real_difference_through_the_running_watcher() {
    // An edit that keeps size and mtime, made while nothing watched: the watcher's start-up
    // reconcile trusts size+mtime and keeps the old content. verify finds it; --repair has
    // the watcher re-read it, without stopping the watcher.
    let t = Tree::new(false);
    let path = t.write("log.md", "the ferry leaves at noon\n");
    t.index();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "the barge leaves at noon\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let w = t.watch();
    let out = t.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "the difference is seen");

    let out = t.run(&["verify", "--repair"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.found("barge", &["--mode", "text"]), vec!["log.md"]);
    assert!(t.found("ferry", &["--mode", "text"]).is_empty());
    t.assert_verified("after the repair");
    assert!(
        w.child.id() > 0 && t.status()["pid"] == w.child.id(),
        "the same watcher still owns the index"
    );
    assert!(w.stop().success());
}

#[test]
fn search_with_sync_sees_a_write_made_just_before_it() {
    let t = Tree::new(false);
    t.write("a.md", "nothing to see\n");
    let w = t.watch();
    for (round, word) in ["lighthouse", "anchor", "ferry", "beacon", "harbour"]
        .into_iter()
        .enumerate()
    {
        let name = format!("fresh{round}.md");
        let written = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        t.write(&name, format!("{word} keeper\n"));
        // No sleep: without sync the answer says how current it is, and it is older than
        // the write (the debounce alone is 100 ms).
        let out = t.ok(&["search", word, "--mode", "text", "--json"]);
        let lines = common::json_lines(&out);
        let freshness = &lines.last().unwrap()["freshness"];
        assert_eq!(freshness["watched"], true);
        assert!(
            freshness["applied_ms"].as_u64().unwrap() < written,
            "{freshness}"
        );
        // With sync it is found, every time.
        assert_eq!(
            t.found(word, &["--mode", "text", "--sync"]),
            vec![name.clone()]
        );
    }
    // Nothing of the cookies stays behind or gets indexed.
    assert!(std::fs::read_dir(&t.root).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".vigil-cookie")
    }));
    t.assert_verified("after syncs");
    assert!(w.stop().success());
}
