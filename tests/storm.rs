//! Event storms: thousands of random file-system operations while `watch` runs, then
//! `verify` must find the index equal to the disk. The short storm runs in the suite; the
//! long one is a soak: `cargo test --test storm -- --ignored`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Tree;
use serde_json::Value;

const WORDS: &[&str] = &[
    "harbour", "keel", "lantern", "compass", "anchor", "tide", "gull", "rope", "mast", "sail",
    "storm", "reef", "chart", "buoy", "dock", "hull",
];

struct Storm<'a> {
    t: &'a Tree,
    rng: fastrand::Rng,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    ops: u64,
}

impl<'a> Storm<'a> {
    fn new(t: &'a Tree, seed: u64) -> Self {
        Self {
            t,
            rng: fastrand::Rng::with_seed(seed),
            files: Vec::new(),
            dirs: vec![t.root.clone()],
            ops: 0,
        }
    }

    fn text(&mut self) -> String {
        let n = self.rng.usize(1..60);
        let mut s = String::new();
        for i in 0..n {
            s.push_str(WORDS[self.rng.usize(..WORDS.len())]);
            s.push(if i % 9 == 8 { '\n' } else { ' ' });
        }
        s.push('\n');
        s
    }

    fn pick_dir(&mut self) -> PathBuf {
        self.dirs.retain(|d| d.is_dir());
        if self.dirs.is_empty() {
            self.dirs.push(self.t.root.clone());
        }
        self.dirs[self.rng.usize(..self.dirs.len())].clone()
    }

    fn pick_file(&mut self) -> Option<PathBuf> {
        self.files.retain(|f| f.is_file());
        (!self.files.is_empty()).then(|| self.files[self.rng.usize(..self.files.len())].clone())
    }

    fn new_name(&mut self, dir: &Path) -> PathBuf {
        dir.join(format!(
            "f{}.{}",
            self.rng.u32(..1_000_000),
            ["txt", "md", "rs"][self.rng.usize(..3)]
        ))
    }

    fn step(&mut self) {
        self.ops += 1;
        match self.rng.u8(..100) {
            0..=24 => {
                let dir = self.pick_dir();
                let path = self.new_name(&dir);
                let text = self.text();
                fs::write(&path, text).unwrap();
                self.files.push(path);
            }
            25..=34 => {
                if let Some(f) = self.pick_file() {
                    let text = self.text();
                    let _ = fs::OpenOptions::new()
                        .append(true)
                        .open(&f)
                        .and_then(|mut h| std::io::Write::write_all(&mut h, text.as_bytes()));
                }
            }
            35..=39 => {
                if let Some(f) = self.pick_file() {
                    let _ = fs::OpenOptions::new()
                        .write(true)
                        .open(&f)
                        .and_then(|h| h.set_len(self.rng.u64(0..20)));
                }
            }
            40..=49 => {
                if let Some(f) = self.pick_file() {
                    let text = self.text();
                    let _ = fs::write(&f, text);
                }
            }
            50..=59 => {
                if let Some(f) = self.pick_file() {
                    let _ = fs::remove_file(&f);
                }
            }
            60..=69 => {
                // rename within or across directories
                if let Some(f) = self.pick_file() {
                    let dir = if self.rng.bool() {
                        f.parent().unwrap().to_path_buf()
                    } else {
                        self.pick_dir()
                    };
                    let to = self.new_name(&dir);
                    if fs::rename(&f, &to).is_ok() {
                        self.files.push(to);
                    }
                }
            }
            70..=76 => {
                // a new directory with files in it
                let parent = self.pick_dir();
                let dir = parent.join(format!("d{}", self.rng.u32(..1_000_000)));
                if fs::create_dir(&dir).is_ok() {
                    for _ in 0..self.rng.usize(1..6) {
                        let p = self.new_name(&dir);
                        let text = self.text();
                        fs::write(&p, text).unwrap();
                        self.files.push(p);
                    }
                    self.dirs.push(dir);
                }
            }
            77..=81 => {
                // rename a whole subtree
                let dir = self.pick_dir();
                if dir != self.t.root {
                    let to = self
                        .pick_dir()
                        .join(format!("m{}", self.rng.u32(..1_000_000)));
                    if !to.starts_with(&dir) && fs::rename(&dir, &to).is_ok() {
                        self.dirs.push(to);
                        self.files.clear();
                        self.rescan_files();
                    }
                }
            }
            82..=84 => {
                // delete a whole subtree
                let dir = self.pick_dir();
                if dir != self.t.root {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
            85..=92 => {
                // git checkout: many files rewritten at once
                for _ in 0..self.rng.usize(5..30) {
                    if let Some(f) = self.pick_file() {
                        let text = self.text();
                        let _ = fs::write(&f, text);
                    }
                }
            }
            _ => {
                // editor atomic save: write a temp file, rename it over the original
                if let Some(f) = self.pick_file() {
                    let tmp = f.with_extension("vigil-save");
                    let text = self.text();
                    fs::write(&tmp, text).unwrap();
                    let _ = fs::rename(&tmp, &f);
                }
            }
        }
    }

    fn rescan_files(&mut self) {
        for e in ignore::WalkBuilder::new(&self.t.root)
            .standard_filters(false)
            .build()
            .flatten()
        {
            if e.file_type().is_some_and(|t| t.is_file()) {
                self.files.push(e.path().to_path_buf());
            } else if e.file_type().is_some_and(|t| t.is_dir()) {
                self.dirs.push(e.path().to_path_buf());
            }
        }
        self.dirs.sort();
        self.dirs.dedup();
    }
}

/// Waits until the watcher has applied everything: no queued paths and no new batch for 2 s.
fn wait_for_quiet(t: &Tree) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (u64::MAX, Instant::now());
    while Instant::now() < deadline {
        let s: Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
        let batches = s["batches_applied"].as_u64().unwrap();
        if batches != last.0 || s["queue_depth"].as_u64() != Some(0) {
            last = (batches, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the watcher never went quiet");
}

fn storm(ops: u64, seed: u64, watch_args: &[&str]) {
    storm_with(Tree::new(false), ops, seed, watch_args)
}

fn storm_with(t: Tree, ops: u64, seed: u64, watch_args: &[&str]) {
    t.write("seed.txt", "calm water\n");
    let w = t.watch_with(watch_args);
    let mut storm = Storm::new(&t, seed);
    while storm.ops < ops {
        storm.step();
        if storm.ops.is_multiple_of(200) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    wait_for_quiet(&t);
    if t.embed {
        let mut last = Value::Null;
        let done = common::poll(|| {
            last = t.status();
            last["embeddings_pending"] == 0
        });
        w.log_on_failure(done);
        assert!(done, "embeddings still pending: {last}");
    }
    let out = t.run(&["verify", "--json"]);
    let report = String::from_utf8_lossy(&out.stdout);
    w.log_on_failure(out.status.success());
    assert!(
        out.status.success(),
        "{ops} operations (seed {seed}): differences while watching:\n{report}"
    );
    assert!(w.stop().success());
    let out = t.run(&["verify", "--json"]);
    assert!(
        out.status.success(),
        "differences after stopping:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("storm: {ops} operations applied (seed {seed}); verify found 0 differences");
}

#[test]
fn a_storm_of_random_operations_leaves_no_drift() {
    storm(1500, 7, &[]);
}

#[test]
fn a_storm_with_embeddings_leaves_no_chunk_without_its_vector() {
    // verify also compares every chunk with its embedding and the HNSW graph.
    storm_with(Tree::new(true), 500, 5, &[]);
}

#[test]
fn a_storm_under_the_polling_backend_leaves_no_drift() {
    storm(600, 11, &["--poll", "100"]);
}

#[test]
#[ignore = "soak: minutes; run with --ignored"]
fn a_long_storm_leaves_no_drift() {
    for seed in 1..=5 {
        storm(10_000, seed, &[]);
    }
}
