//! Shared helpers: a temporary tree, an index beside it, and the real `vigil` binary.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil"))
}

/// The real model, fetched once per machine (serialised across test processes by a lock).
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_TEST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let dir = cache.join("vigil").join("all-MiniLM-L6-v2");
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.with_extension("lock")).unwrap();
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    // `model fetch` also distils the static model (`static/`), which the default tiers use.
    if !dir.join("model.onnx").is_file()
        || !dir.join("tokenizer.json").is_file()
        || !dir.join("static/model.safetensors").is_file()
    {
        let out = Command::new(bin())
            .args(["model", "fetch"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "model fetch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// A temporary tree (`root/`) with its own index (`index/`) and XDG directories.
pub struct Tree {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub index: PathBuf,
    /// Use the real model (else `--no-embed`).
    pub embed: bool,
    /// Run vigil as an unprivileged user when the tests run as root (permission tests).
    pub unprivileged: bool,
    /// Extra environment of every `vigil` command (e.g. AWS credentials).
    pub env: Vec<(String, String)>,
}

impl Tree {
    pub fn new(embed: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let index = tmp.path().join("index");
        Self {
            tmp,
            root,
            index,
            embed,
            unprivileged: false,
            env: Vec::new(),
        }
    }

    /// A text-only tree whose vigil runs as user `nobody` when the tests run as root, so
    /// that file permissions apply to it.
    pub fn unprivileged() -> Self {
        let mut t = Self::new(false);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            t.unprivileged = true;
            for p in [t.tmp.path(), &t.root] {
                fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
            }
        }
        t
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    /// A `vigil` command on this tree's index.
    pub fn cmd(&self) -> Command {
        let mut c = if self.unprivileged {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(bin());
            c
        } else {
            Command::new(bin())
        };
        c.env("VIGIL_INDEX", &self.index)
            .env("XDG_DATA_HOME", self.tmp.path().join("data"))
            .env(
                "VIGIL_LOG",
                std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        if self.embed {
            c.env("VIGIL_MODEL_DIR", model_dir());
        } else {
            c.arg("--no-embed");
            c.env_remove("VIGIL_MODEL_DIR");
        }
        // Last, so a test can point at another model.
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `vigil ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vigil {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// `vigil index ROOT`; returns the summary.
    pub fn index(&self) -> String {
        let root = self.root.to_str().unwrap().to_string();
        self.ok(&["index", &root])
    }

    /// `vigil search QUERY --json [extra]` → hits.
    pub fn search(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["search", query, "--json"];
        args.extend_from_slice(extra);
        let mut lines = json_lines(&self.ok(&args));
        let last = lines.pop().expect("the freshness line");
        assert!(last.get("freshness").is_some(), "last line: {last}");
        lines
    }

    /// Paths of the hits for `query`, relative to the root.
    pub fn found(&self, query: &str, extra: &[&str]) -> Vec<String> {
        self.search(query, extra)
            .iter()
            .map(|h| self.rel(h["path"].as_str().unwrap()))
            .collect()
    }

    pub fn rel(&self, abs: &str) -> String {
        Path::new(abs)
            .strip_prefix(&self.root)
            .map(|p| p.display().to_string())
            .unwrap_or(abs.to_string())
    }

    /// Asserts that `vigil verify` finds the index equal to the disk.
    pub fn assert_verified(&self, context: &str) {
        let out = self.run(&["verify", "--json"]);
        assert!(
            out.status.success(),
            "{context}: verify found differences:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `vigil history --json` → rows, newest first.
    pub fn history(&self) -> Vec<Value> {
        json_lines(&self.ok(&["history", "--json", "--limit", "1000"]))
    }

    /// (kind, relative path) of every history row, newest first.
    pub fn changes(&self) -> Vec<(String, String)> {
        self.history()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    self.rel(r["path"].as_str().unwrap()),
                )
            })
            .collect()
    }

    /// Starts `vigil watch ROOT --no-tui` and waits until its initial reconcile is done.
    pub fn watch(&self) -> Watcher {
        self.watch_with(&[])
    }

    /// Like [`Tree::watch`], with extra arguments to `watch`.
    pub fn watch_with(&self, extra: &[&str]) -> Watcher {
        let root = self.root.to_str().unwrap().to_string();
        let mut args = vec![root.as_str()];
        args.extend_from_slice(extra);
        self.watch_args(&args)
    }

    /// Starts `vigil watch --no-tui --debounce-ms 100 ARGS` and waits until its initial
    /// reconcile is done.
    pub fn watch_args(&self, args: &[&str]) -> Watcher {
        let w = self.spawn_watch(args);
        self.wait_watching(&w);
        w
    }

    /// Starts `vigil watch --no-tui --debounce-ms 100 ARGS` without waiting.
    pub fn spawn_watch(&self, args: &[&str]) -> Watcher {
        let log = self.tmp.path().join("watch.log");
        let child = self
            .cmd()
            .args(["watch", "--no-tui", "--debounce-ms", "100"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Watcher { child, log }
    }

    /// `vigil status --json` (asserting success).
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// A copy of the real model in this tree's temporary directory, used by every `vigil`
    /// command from now on, so a test can break and mend it. Files are symlinked except
    /// the ones named in `copied`.
    pub fn own_model(&mut self, copied: &[&str]) -> PathBuf {
        let real = model_dir();
        let dir = self.tmp.path().join("model");
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&real).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let to = dir.join(&name);
            if copied.iter().any(|c| name == std::ffi::OsStr::new(c)) {
                fs::copy(entry.path(), &to).unwrap();
            } else {
                std::os::unix::fs::symlink(entry.path(), &to).unwrap();
            }
        }
        self.env
            .push(("VIGIL_MODEL_DIR".into(), dir.to_str().unwrap().into()));
        dir
    }

    /// Like [`Tree::own_model`], with a `model.onnx` that cannot be loaded until
    /// [`BrokenModel::mend`].
    pub fn broken_model(&mut self) -> BrokenModel {
        let dir = self.own_model(&["model.onnx"]);
        let good = fs::read(dir.join("model.onnx")).unwrap();
        fs::write(dir.join("model.onnx"), b"not an ONNX model").unwrap();
        BrokenModel { dir, good }
    }

    /// Waits until the watcher's initial reconcile is done.
    pub fn wait_watching(&self, w: &Watcher) {
        let mut last = String::new();
        let ready = poll(|| {
            let out = self.run(&["status", "--json"]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout)
                    .is_ok_and(|s| matches!(s["phase"].as_str(), Some("watching" | "embedding")))
        });
        if !ready {
            w.log_on_failure(false);
            panic!("the watcher did not finish its initial reconcile; last status: {last}");
        }
    }
}

/// A running `vigil watch`.
pub struct Watcher {
    pub child: Child,
    pub log: PathBuf,
}

impl Watcher {
    /// Sends SIGTERM and returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        self.log_on_failure(status.success());
        status
    }

    pub fn log_on_failure(&self, ok: bool) {
        if !ok {
            eprintln!(
                "--- watch log ---\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `cond` every 100 ms for up to 60 s (a generous deadline on a loaded 2-core CI
/// machine: this waits for an event to be applied, it does not measure speed).
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    assert!(poll(cond), "timed out waiting for {what}");
}

/// Polls `cond` like [`wait_for`]; returns whether it became true.
pub fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A test whose precondition is missing here (root, tmux, a mount): says so loudly, and
/// fails when `CI` is set, where `.ci/run` installs every precondition.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("precondition missing on CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A tree's own model whose ONNX file is broken (see [`Tree::broken_model`]).
pub struct BrokenModel {
    pub dir: PathBuf,
    good: Vec<u8>,
}

impl BrokenModel {
    /// Puts the real `model.onnx` back, atomically (a rename).
    pub fn mend(&self) {
        fs::write(self.dir.join("model.onnx.new"), &self.good).unwrap();
        fs::rename(self.dir.join("model.onnx.new"), self.dir.join("model.onnx")).unwrap();
    }
}

/// Runs `install` once per target directory for `name` (serialised across test processes by
/// a lock), unless `ready` already holds; `None` (after saying why, loudly) when it fails.
pub fn install_once(
    name: &str,
    ready: impl Fn(&PathBuf) -> bool,
    install: impl FnOnce(&PathBuf) -> std::io::Result<std::process::Output>,
) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    assert_eq!(
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if ready(&dir) {
        return Some(dir);
    }
    match install(&dir) {
        Ok(o) if o.status.success() && ready(&dir) => Some(dir),
        Ok(o) => {
            skip(&format!(
                "cannot install {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            None
        }
        Err(e) => {
            skip(&format!("cannot run the installer of {name}: {e}"));
            None
        }
    }
}
