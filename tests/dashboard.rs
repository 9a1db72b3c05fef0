//! The dashboard driven as a person would: the real binary in tmux, keys in, screen out.

mod common;

use std::process::Command;

use common::{Tree, poll};

/// A private tmux server for one test.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            common::skip(
                "tmux is not installed (.ci/run installs it); the dashboard end-to-end test did not run",
            );
            return None;
        }
        Some(Self {
            socket: format!("vigil-test-{name}-{}", std::process::id()),
        })
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "main"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let ok = poll(|| {
            last = self.screen();
            cond(&last)
        });
        assert!(ok, "timed out waiting for {what}; screen:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn a_person_searches_watches_a_change_and_quits() {
    let Some(tmux) = Tmux::new("e2e") else { return };
    let t = Tree::new(false);
    t.write(
        "notes/boats.md",
        "# Boats\n\nSailing boats need wind and a good keel.\n",
    );
    t.write("notes/cooking.md", "# Soup\n\nOnions first, then stock.\n");
    let exit_file = t.tmp.path().join("exit");
    let script = format!(
        "VIGIL_INDEX={} {} --no-embed watch {}; echo EXIT=$? > {}; sleep 600",
        quote(t.index.to_str().unwrap()),
        quote(common::bin().to_str().unwrap()),
        quote(t.root.to_str().unwrap()),
        quote(exit_file.to_str().unwrap()),
    );
    tmux.tmux(&[
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]);

    tmux.wait_screen("the dashboard to be idle", |s| {
        s.contains("watching") && s.contains("2 indexed")
    });

    tmux.keys(&["/"]);
    tmux.keys(&["-l", "keel"]);
    tmux.wait_screen("the search result", |s| {
        s.contains("notes/boats.md:1-3") && s.contains("results (1)")
    });
    assert!(
        tmux.screen().contains("Sailing boats need wind"),
        "preview shows the chunk"
    );
    tmux.keys(&["Escape"]);

    t.write("notes/harbour.md", "The harbour master keeps the log.\n");
    tmux.wait_screen("the activity log", |s| {
        s.lines()
            .any(|l| l.contains("created") && l.contains("notes/harbour.md"))
    });

    tmux.keys(&["q"]);
    let exited = poll(|| exit_file.exists());
    assert!(
        exited,
        "the dashboard did not exit; screen:\n{}",
        tmux.screen()
    );
    assert_eq!(
        std::fs::read_to_string(&exit_file).unwrap().trim(),
        "EXIT=0"
    );
    assert_eq!(
        tmux.tmux(&["display", "-p", "-t", "main", "#{alternate_on}"])
            .trim(),
        "0",
        "left the alternate screen"
    );
    assert!(
        !tmux.screen().contains("counters"),
        "terminal restored:\n{}",
        tmux.screen()
    );
    // The work done in the dashboard session was committed.
    assert_eq!(t.found("harbour", &[]), vec!["notes/harbour.md"]);
}
