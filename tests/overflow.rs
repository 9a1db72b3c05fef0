//! Kernel limits: with a tiny `fs.inotify.max_queued_events`, a burst loses events and the
//! watcher must notice (notify flags a rescan) and reconcile; with a tiny
//! `fs.inotify.max_user_watches`, native watching fails and vigil must say so and poll.
//! Its own test binary, its tests serialised, so no other watcher runs while a sysctl is low.

mod common;

use std::fs;

use common::Tree;
use serde_json::Value;

const SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";
const WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// One test at a time in this binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Lowers a sysctl, restoring it on drop; `None` (with a SKIPPED message) where it cannot.
struct Lowered(&'static str, String);

impl Lowered {
    fn new(path: &'static str, value: &str) -> Option<Self> {
        let Ok(old) = fs::read_to_string(path) else {
            common::skip(&format!("cannot read {path}"));
            return None;
        };
        if fs::write(path, value).is_err() {
            common::skip(&format!(
                "cannot lower {path} (needs root and a writable /proc/sys)"
            ));
            return None;
        }
        Some(Self(path, old.trim().to_string()))
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        let _ = fs::write(self.0, &self.1);
    }
}

#[test]
fn a_queue_overflow_triggers_a_rescan_and_no_drift() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = Tree::new(false);
    t.write("start.txt", "beginning\n");
    let Some(guard) = Lowered::new(SYSCTL, "32") else {
        return;
    };
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

#[test]
fn hitting_the_watch_limit_names_the_sysctl_and_falls_back_to_polling() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = Tree::new(false);
    for i in 0..40 {
        t.write(&format!("d{i}/a.txt"), format!("lighthouse {i}\n"));
    }
    let w = {
        let Some(_low) = Lowered::new(WATCHES, "8") else {
            return;
        };
        t.watch()
    };
    let log = fs::read_to_string(&w.log).unwrap_or_default();
    assert!(
        log.contains("fs.inotify.max_user_watches") && log.contains("polling"),
        "{log}"
    );
    t.write("d3/new.txt", "foghorn\n");
    common::wait_for("the polled change", || {
        t.found("foghorn", &[]) == vec!["d3/new.txt"]
    });
    t.assert_verified("after falling back to polling");
    assert!(w.stop().success());
}
