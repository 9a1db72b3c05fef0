//! Hostile input: odd files, odd names, odd links. Each must be handled with a clear record
//! and never stop, block or corrupt anything.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use common::{Tree, wait_for};

fn verify_clean(t: &Tree) {
    t.assert_verified("hostile input");
}

#[test]
fn empty_sparse_invalid_utf8_utf16_and_disguised_binary_files() {
    let t = Tree::new(false);
    t.write("empty.txt", "");
    let sparse = fs::File::create(t.path("huge.txt")).unwrap();
    sparse.set_len(5 * 1024 * 1024 * 1024).unwrap();
    t.write(
        "latin1.txt",
        b"caf\xe9 cr\xe8me br\xfbl\xe9e with meringue\n",
    );
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "umbrella stand in the hall\n".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    t.write("wide.txt", utf16);
    t.write("photo.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR meringue");
    let started = Instant::now();
    let summary = t.index();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the sparse file was not read"
    );
    assert!(summary.contains("0 failed"), "{summary}");
    assert_eq!(t.found("meringue", &[]), vec!["latin1.txt"]);
    assert_eq!(t.found("umbrella", &[]), vec!["wide.txt"]);
    let rows = t.history();
    let reason = |name: &str| {
        rows.iter()
            .find(|r| t.rel(r["path"].as_str().unwrap()) == name)
            .map(|r| r["reason"].as_str().unwrap_or("").to_string())
    };
    assert!(reason("huge.txt").unwrap().contains("size limit"));
    assert_eq!(reason("photo.md").unwrap(), "binary content");
    verify_clean(&t);
}

#[test]
fn names_with_newlines_spaces_non_utf8_bytes_and_long_paths() {
    let t = Tree::new(false);
    t.write("with space/and\nnewline.txt", "periscope one\n");
    let odd = t.root.join(OsStr::from_bytes(b"bad-\xff\xfe-name.txt"));
    fs::write(&odd, "periscope two\n").unwrap();
    let mut deep = String::new();
    for i in 0..14 {
        deep.push_str(&format!("{}{i}/", "d".repeat(200)));
    }
    deep.push_str(&format!("{}.txt", "f".repeat(240)));
    t.write(&deep, "periscope three\n");
    let summary = t.index();
    assert!(
        summary.contains("3 added") && summary.contains("0 failed"),
        "{summary}"
    );
    assert_eq!(t.found("periscope", &[]).len(), 3);
    verify_clean(&t);
    // Renaming the non-UTF-8 file is followed exactly (keys are raw bytes).
    fs::rename(&odd, t.root.join(OsStr::from_bytes(b"still-\xff.txt"))).unwrap();
    let summary = t.index();
    assert!(summary.contains("1 renamed"), "{summary}");
    verify_clean(&t);
}

#[test]
fn symlinks_are_not_followed_and_never_escape_the_root() {
    let t = Tree::new(false);
    let outside = t.tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "zeppelin outside\n").unwrap();
    t.write("inside.txt", "zeppelin inside\n");
    std::os::unix::fs::symlink(&outside, t.path("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), t.path("secret-link.txt")).unwrap();
    std::os::unix::fs::symlink("loop-b", t.path("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", t.path("loop-b")).unwrap();
    fs::create_dir(t.path("cycle")).unwrap();
    std::os::unix::fs::symlink(&t.root, t.path("cycle/up")).unwrap();
    let summary = t.index();
    assert!(summary.contains("0 failed"), "{summary}");
    assert_eq!(t.found("zeppelin", &[]), vec!["inside.txt"]);
    verify_clean(&t);
}

#[test]
fn fifos_and_devices_are_skipped_without_blocking() {
    let t = Tree::new(false);
    t.write("a.txt", "gramophone\n");
    let fifo = t.path("pipe.txt");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // A character device (/dev/zero's numbers: reading it would never end), where allowed.
    let device = std::process::Command::new("mknod")
        .arg(t.path("zero.txt"))
        .args(["c", "1", "5"])
        .status();
    let devices = u64::from(device.is_ok_and(|s| s.success()));
    let started = Instant::now();
    let summary = t.index();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        summary.contains(&format!("{} skipped", 1 + devices)),
        "{summary}"
    );
    assert_eq!(t.found("gramophone", &[]), vec!["a.txt"]);
    verify_clean(&t);
    // And while watching: a FIFO created later does not block the watcher.
    let w = t.watch();
    let fifo2 = t.path("pipe2.txt");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo2)
            .status()
            .unwrap()
            .success()
    );
    t.write("b.txt", "phonograph\n");
    wait_for("the file after the fifo", || {
        t.found("phonograph", &[]) == vec!["b.txt"]
    });
    assert!(w.stop().success());
}

#[test]
fn a_directory_without_permission_is_recorded_and_the_rest_proceeds() {
    let t = Tree::unprivileged();
    t.write("open/a.txt", "marmalade open\n");
    t.write("closed/b.txt", "marmalade closed\n");
    fs::set_permissions(
        t.path("closed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let summary = t.index();
    assert!(summary.contains("1 failed"), "{summary}");
    assert_eq!(t.found("marmalade", &[]), vec!["open/a.txt"]);
    let failed = t
        .history()
        .into_iter()
        .find(|r| r["kind"] == "failed")
        .unwrap();
    assert!(
        t.rel(failed["path"].as_str().unwrap())
            .starts_with("closed"),
        "{failed}"
    );
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{failed}"
    );
    fs::set_permissions(
        t.path("closed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    t.index();
    assert_eq!(t.found("marmalade", &[]).len(), 2);
}

#[test]
fn files_deleted_truncated_or_growing_while_indexed_are_not_failures() {
    let t = Tree::new(false);
    for i in 0..300 {
        t.write(&format!("f{i}.txt"), format!("kettle {i}\n"));
    }
    let root = t.root.to_str().unwrap().to_string();
    let mut child = t
        .cmd()
        .args(["index", &root])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..300 {
        if i % 4 == 0 {
            let _ = fs::remove_file(t.path(&format!("f{i}.txt")));
        } else if i % 4 == 3 {
            let _ = fs::OpenOptions::new()
                .write(true)
                .open(t.path(&format!("f{i}.txt")))
                .and_then(|f| f.set_len(2));
        } else if i % 4 == 1 {
            let _ = fs::write(
                t.path(&format!("f{i}.txt")),
                format!("kettle {i} {}\n", "grows ".repeat(50)),
            );
        }
    }
    assert!(child.wait().unwrap().success());
    t.index();
    verify_clean(&t);
    let out = String::from_utf8(t.run(&["status", "--json"]).stdout).unwrap();
    assert!(out.contains("\"files_failed\":0"), "{out}");
}

#[test]
fn a_full_disk_gives_a_clear_error_and_nothing_corrupt() {
    let mut t = Tree::new(false);
    let mnt = t.tmp.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        common::skip("cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    for i in 0..800 {
        let words: String = (0..400)
            .map(|j| format!("w{}x{} ", i * 7 + j, j * 13))
            .collect();
        t.write(&format!("d{}/f{i}.txt", i % 10), words);
    }
    t.index = mnt.join("index");
    let root = t.root.to_str().unwrap().to_string();
    let out = t.run(&["index", &root]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the index should not fit in 1 MB"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    // More room: the next run repairs and completes, and the index equals the disk.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    t.index();
    verify_clean(&t);
}

#[test]
fn a_root_deleted_and_recreated_while_watching_is_indexed_again() {
    let t = Tree::new(false);
    t.write("a.txt", "albatross\n");
    let w = t.watch();
    fs::remove_dir_all(&t.root).unwrap();
    wait_for("the root's files to leave the index", || {
        t.found("albatross", &[]).is_empty()
    });
    fs::create_dir_all(&t.root).unwrap();
    t.write("b.txt", "pelican\n");
    wait_for("the re-created root to be watched again", || {
        t.found("pelican", &[]) == vec!["b.txt"]
    });
    t.write("c.txt", "cormorant\n");
    wait_for("later changes too", || {
        t.found("cormorant", &[]) == vec!["c.txt"]
    });
    assert!(w.stop().success());
}
