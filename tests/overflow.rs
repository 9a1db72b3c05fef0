//! Kernel queue overflow: with a tiny `fs.inotify.max_queued_events`, a burst loses events;
//! the watcher must notice (notify flags a rescan) and reconcile, so `verify` is clean.
//! Its own test binary, so no other watcher starts while the sysctl is lowered.

mod common;

use std::fs;

use common::Tree;
use serde_json::Value;

const SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Restores the sysctl on drop.
struct Lowered(String);

impl Drop for Lowered {
    fn drop(&mut self) {
        let _ = fs::write(SYSCTL, &self.0);
    }
}

#[test]
fn a_queue_overflow_triggers_a_rescan_and_no_drift() {
    let t = Tree::new(false);
    t.write("start.txt", "beginning\n");
    let Ok(old) = fs::read_to_string(SYSCTL) else {
        eprintln!("SKIPPED: {SYSCTL} is not readable here");
        return;
    };
    if fs::write(SYSCTL, "32").is_err() {
        eprintln!("SKIPPED: cannot lower {SYSCTL} (needs root and a writable /proc/sys)");
        return;
    }
    let guard = Lowered(old.trim().to_string());
    // The limit is read when an inotify instance is created: start the watcher now...
    let w = t.watch();
    // ...and restore it for everyone else at once.
    drop(guard);
    for i in 0..400 {
        t.write(&format!("burst/d{}/f{i}.txt", i % 8), format!("wave {i}\n"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = t.run(&["verify", "--json"]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still drifting after the overflow:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let metrics = common::json_lines(&t.ok(&["status", "--json"]));
    let status: &Value = &metrics[0];
    assert_eq!(status["files_indexed"], 401, "{status}");
    let log = fs::read_to_string(&w.log).unwrap_or_default();
    assert!(
        log.contains("lost events"),
        "the overflow was not noticed:\n{log}"
    );
    assert!(w.stop().success());
}
