//! Reconcile: make the index equal the disk for some paths, in committed batches.
//!
//! 1. Expand the dirty paths into (disk, stored) pairs: walk directories, judge single files.
//! 2. Classify each pair by metadata alone: unchanged (size and mtime match), to delete,
//!    to record as skipped/failed, or to read.
//! 3. Read, hash and chunk the files to read in parallel (rayon), [`SLICE`] files at a time,
//!    the next slice while the previous one is committed.
//! 4. Turn outcomes into one batch per slice (created / modified / renamed / touched /
//!    skipped / failed / deleted) and commit it with the protocol in docs/ARCHITECTURE.md.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;

use super::Engine;
use super::apply::{Batch, Outcome};
use crate::metrics::Metrics;
use crate::pipeline::hash::{ReadError, read_file};
use crate::pipeline::prepare::{Failure, Prepared, prepare};
use crate::records::{ChangeKind, FileRecord, FileState, HistoryRow, Seen, path_key};
use crate::scan::{Admission, Found};
use crate::status::Phase;

/// Files read, hashed and chunked per committed batch during a reconcile.
const SLICE: usize = 256;

/// Receives reconcile progress (the CLI draws a bar with it).
pub trait Progress: Sync {
    /// Files the reconcile will look at.
    fn set_total(&self, _files: u64) {}
    /// Files looked at, and chunks produced, since the last call.
    fn advance(&self, _files: u64, _chunks: u64) {}
}

impl Progress for () {}

/// Passes progress on, and counts it as a sign of life for the watchdog.
struct Beating<'a> {
    inner: &'a dyn Progress,
    heartbeat: &'a super::Heartbeat,
}

impl Progress for Beating<'_> {
    fn set_total(&self, files: u64) {
        self.inner.set_total(files);
    }
    fn advance(&self, files: u64, chunks: u64) {
        self.heartbeat.beat();
        self.inner.advance(files, chunks);
    }
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileStats {
    pub scanned: u64,
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
    pub renamed: u64,
    pub touched: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub chunks_added: u64,
    pub chunks_removed: u64,
    /// Chunk texts that need a new embedding (queued).
    pub embeddings_computed: u64,
    /// Chunks whose embedding came from the cache.
    pub embeddings_reused: u64,
}

impl ReconcileStats {
    /// Adds the counts of `other` (e.g. of several batches of one run).
    pub fn add(&mut self, other: &ReconcileStats) {
        self.scanned += other.scanned;
        self.added += other.added;
        self.modified += other.modified;
        self.deleted += other.deleted;
        self.renamed += other.renamed;
        self.touched += other.touched;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.chunks_added += other.chunks_added;
        self.chunks_removed += other.chunks_removed;
        self.embeddings_computed += other.embeddings_computed;
        self.embeddings_reused += other.embeddings_reused;
    }

    pub(super) fn count(&mut self, row: &HistoryRow) {
        match row.kind {
            ChangeKind::Created => self.added += 1,
            ChangeKind::Modified => self.modified += 1,
            ChangeKind::Deleted => self.deleted += 1,
            ChangeKind::Renamed => self.renamed += 1,
            ChangeKind::Touched => self.touched += 1,
            ChangeKind::Skipped => self.skipped += 1,
            ChangeKind::Failed => self.failed += 1,
        }
        self.chunks_added += row.chunks_added as u64;
        self.chunks_removed += row.chunks_removed as u64;
        self.embeddings_computed += row.embeddings_computed as u64;
        self.embeddings_reused += row.embeddings_reused as u64;
    }
}

/// Path key → (what the scan found on disk, what the store holds).
type Pairs = BTreeMap<Vec<u8>, (Option<Found>, Option<FileRecord>)>;

/// A file to read, with what the scan saw and what the store believes.
pub(super) struct ToRead {
    pub(super) path: PathBuf,
    pub(super) seen: Seen,
    pub(super) stored: Option<FileRecord>,
}

impl Engine {
    /// Makes the index equal the disk at `targets` (files or directories, inside the roots),
    /// committing every [`SLICE`] files. One unreadable file is recorded as failed and never
    /// stops the others.
    ///
    /// Errors: only failures of the index itself (redb, tantivy, HNSW), never of a file.
    pub fn reconcile(
        &mut self,
        targets: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<ReconcileStats> {
        let heartbeat = self.heartbeat();
        let progress = &Beating {
            inner: progress,
            heartbeat: &heartbeat,
        };
        heartbeat.beat();
        let mut stats = ReconcileStats::default();
        let items = self.expand(targets)?;
        heartbeat.beat();
        progress.set_total(items.len() as u64);
        self.status.update(|s| {
            s.scan_done = 0;
            s.scan_total = items.len() as u64;
        });
        let mut to_read = Vec::new();
        let mut deleted: Vec<(Vec<u8>, FileRecord)> = Vec::new();
        let mut last = Batch::default();
        for (key, (disk, stored)) in items {
            stats.scanned += u64::from(disk.is_some());
            match (disk, stored) {
                (None, Some(rec)) => deleted.push((key, rec)),
                (None, None) => {}
                (
                    Some(Found::File {
                        path,
                        size,
                        mtime_ns,
                    }),
                    stored,
                ) => {
                    // Same size and mtime: not read. A record with a hash is settled: indexed
                    // files, binary files and documents whose text could not be extracted.
                    let unchanged = stored.as_ref().is_some_and(|r| {
                        r.hash.is_some() && r.size == size && r.mtime_ns == mtime_ns
                    });
                    if unchanged {
                        stats.unchanged += 1;
                        progress.advance(1, 0);
                    } else {
                        to_read.push(ToRead {
                            path,
                            seen: local(size, mtime_ns),
                            stored,
                        });
                    }
                }
                (
                    Some(Found::Skipped {
                        size,
                        mtime_ns,
                        reason,
                        ..
                    }),
                    stored,
                ) => {
                    let seen = local(size, mtime_ns);
                    self.record_state(
                        &mut last,
                        key,
                        stored,
                        seen,
                        FileState::Skipped,
                        reason,
                        None,
                    );
                    progress.advance(1, 0);
                }
                (Some(Found::Failed { reason, .. }), stored) => {
                    self.record_state(
                        &mut last,
                        key,
                        stored,
                        local(0, 0),
                        FileState::Failed,
                        reason,
                        None,
                    );
                    progress.advance(1, 0);
                }
            }
        }
        // Deleted records by content hash, so a created file with the same content is a rename.
        let mut renamable: HashMap<String, Vec<(Vec<u8>, FileRecord)>> = HashMap::new();
        for (key, rec) in deleted {
            match rec.hash.clone() {
                Some(h) if rec.state == FileState::Indexed => {
                    renamable.entry(h).or_default().push((key, rec))
                }
                _ => self.delete_path(&mut last, key, rec),
            }
        }
        // Slices are pipelined: while the engine thread applies and commits one slice, a
        // second thread has the rayon workers read, hash and chunk the next, so commits
        // (tantivy, redb, HNSW inserts) no longer leave the workers idle.
        let limit = self.scanner.max_file_size();
        let metrics = self.metrics.clone();
        let read_slice = |stages: Stages, slice: &[ToRead]| -> Vec<Outcome> {
            slice
                .par_iter()
                .map(|f| {
                    let indexed = f
                        .stored
                        .as_ref()
                        .filter(|r| r.state == FileState::Indexed)
                        .and_then(|r| r.hash.as_deref());
                    let outcome = read_outcome(&stages, &f.path, limit, &metrics, indexed);
                    let chunks = match &outcome {
                        Outcome::Content { chunks, .. } => chunks.len() as u64,
                        _ => 0,
                    };
                    progress.advance(1, chunks);
                    outcome
                })
                .collect()
        };
        let slices: Vec<&[ToRead]> = to_read.chunks(SLICE).collect();
        let mut done = 0u64;
        let mut ready = slices.first().map(|s| read_slice(self.stages(), s));
        for (i, slice) in slices.iter().enumerate() {
            let Some(outcomes) = ready.take() else { break };
            if self.cancelled() {
                tracing::info!(
                    left = to_read.len() as u64 - done,
                    "reconcile interrupted by a stop; the rest is done on the next start"
                );
                break;
            }
            let next = slices.get(i + 1).map(|s| (self.stages(), *s));
            let committed = std::thread::scope(|scope| {
                let reader = next.map(|(stages, s)| {
                    let read_slice = &read_slice;
                    scope.spawn(move || read_slice(stages, s))
                });
                let mut batch = Batch::default();
                let applied = slice
                    .iter()
                    .zip(outcomes)
                    .try_for_each(|(file, outcome)| {
                        self.apply_outcome(&mut batch, file, outcome, &mut renamable)
                    })
                    .and_then(|()| self.commit(batch, &mut stats));
                ready = reader.map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                applied
            });
            committed?;
            done += slice.len() as u64;
            self.status.update(|s| s.scan_done = done);
            self.publish(Phase::Scanning);
        }
        for (key, rec) in renamable.into_values().flatten() {
            self.delete_path(&mut last, key, rec);
        }
        self.commit(last, &mut stats)?;
        self.status.update(|s| s.scan_done = s.scan_total);
        Ok(stats)
    }

    /// Pairs every path under `targets` with what is on disk and what the store holds.
    fn expand(&self, targets: &[PathBuf]) -> Result<Pairs> {
        let mut targets: Vec<PathBuf> = targets
            .iter()
            .map(|t| match t.file_name().and_then(|n| n.to_str()) {
                // A changed ignore file changes what is admitted below its directory.
                Some(".gitignore" | ".ignore") => t
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| t.clone()),
                _ => t.clone(),
            })
            .collect();
        targets.sort();
        targets.dedup();
        let mut pruned: Vec<PathBuf> = Vec::new();
        for t in targets {
            if !pruned.last().is_some_and(|p| t.starts_with(p)) {
                pruned.push(t);
            }
        }
        let mut admission = Admission::new(&self.scanner);
        let mut items = Pairs::new();
        let covered = |p: &Path, targets: &[PathBuf]| targets.iter().any(|t| p.starts_with(t));
        // Events are hints: a debouncer can merge away the removal of a file renamed and
        // changed again within one window. So the directory of every changed path is swept
        // too (its direct children against the store), and subdirectories that appeared or
        // vanished there become targets of their own.
        let mut extra = Vec::new();
        let mut swept = std::collections::BTreeSet::new();
        for target in &pruned {
            let Some(parent) = target.parent() else {
                continue;
            };
            let Some(root) = self.root_of(parent) else {
                continue;
            };
            if covered(parent, &pruned)
                || self.scanner.is_index_path(parent)
                || !swept.insert(parent.to_path_buf())
            {
                continue;
            }
            let (files, dirs) = admission.children(&root, parent);
            let (records, stored_dirs) = self.store.children(&path_key(parent))?;
            for f in files {
                let key = path_key(f.path());
                items.entry(key).or_default().0 = Some(f);
            }
            for (key, rec) in records {
                items.entry(key).or_default().1 = Some(rec);
            }
            let on_disk: std::collections::HashSet<Vec<u8>> =
                dirs.iter().map(|d| d.as_encoded_bytes().to_vec()).collect();
            let in_store: std::collections::HashSet<Vec<u8>> = stored_dirs.into_iter().collect();
            for name in on_disk.symmetric_difference(&in_store) {
                let dir = parent.join(crate::records::key_path(name));
                if !covered(&dir, &pruned) {
                    extra.push(dir);
                }
            }
        }
        for target in pruned
            .iter()
            .chain(&extra)
            .filter(|t| !self.scanner.is_index_path(t))
        {
            let Some(root) = self.root_of(target) else {
                continue;
            };
            let root = &root;
            let is_dir = std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir());
            let found: Vec<Found> = if is_dir {
                if admission.admits(root, target) {
                    self.scanner.walk(target)
                } else {
                    Vec::new()
                }
            } else {
                admission.found(root, target).into_iter().collect()
            };
            for f in found {
                let key = path_key(f.path());
                items.entry(key).or_default().0 = Some(f);
            }
            for (key, rec) in self.store.files_under(&path_key(target))? {
                items.entry(key).or_default().1 = Some(rec);
            }
        }
        Ok(items)
    }

    /// The root that contains `path` (the deepest, if roots nest).
    fn root_of(&self, path: &Path) -> Option<PathBuf> {
        self.config
            .roots
            .iter()
            .map(|r| &r.path)
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.as_os_str().len())
            .cloned()
    }
}

/// What the disk says of a local file: size and mtime, no ETag.
fn local(size: u64, mtime_ns: i128) -> Seen {
    Seen {
        size,
        mtime_ns,
        etag: None,
    }
}

/// The pipeline stages a worker runs on a file's content: chunking, and the static tier's
/// embedding when it runs. Cheap to clone (shared).
#[derive(Clone)]
pub(super) struct Stages {
    pub chunker: std::sync::Arc<crate::pipeline::chunk::Chunker>,
    pub static_model: Option<std::sync::Arc<crate::pipeline::embed_static::StaticEmbedder>>,
    /// Bounds on extracting a document's text.
    pub extract: crate::settings::DocumentLimits,
}

impl Engine {
    /// The stages workers run (see [`Stages`]).
    pub(super) fn stages(&self) -> Stages {
        Stages {
            chunker: self.chunker.clone(),
            static_model: self.static_model(),
            extract: self.config.documents,
        }
    }
}

/// Reads, hashes and chunks one file. When the content hashes to `indexed` (the hash of the
/// content already indexed: a `touch`), chunking is skipped: the stored chunks stay.
fn read_outcome(
    stages: &Stages,
    path: &Path,
    limit: u64,
    metrics: &Metrics,
    indexed: Option<&str>,
) -> Outcome {
    let started = Instant::now();
    let read = read_file(path, limit);
    Metrics::time(&metrics.hash_seconds, started.elapsed());
    content_outcome(stages, path, read, metrics, indexed)
}

/// Turns read (or downloaded) content into an outcome: chunks and their static vectors, or
/// why not (see [`prepare`]). Chunking is skipped when the content hashes to `indexed`.
pub(super) fn content_outcome(
    stages: &Stages,
    path: &Path,
    read: Result<crate::pipeline::hash::FileContent, ReadError>,
    metrics: &Metrics,
    indexed: Option<&str>,
) -> Outcome {
    let started = Instant::now();
    match prepare(path, read, &stages.chunker, stages.extract, indexed) {
        Prepared::Vanished => Outcome::Vanished,
        Prepared::Unchanged { hash, size } => Outcome::Content {
            hash,
            size,
            chunks: Vec::new(),
            static_vectors: Vec::new(),
        },
        Prepared::Chunked { hash, size, chunks } => {
            Metrics::time(&metrics.chunk_seconds, started.elapsed());
            let static_vectors = match &stages.static_model {
                Some(model) => chunks
                    .iter()
                    .map(|c| {
                        model.embed(&crate::pipeline::chunk::embedded_text(&c.header, &c.text))
                    })
                    .collect(),
                None => Vec::new(),
            };
            Outcome::Content {
                hash,
                size,
                chunks,
                static_vectors,
            }
        }
        Prepared::Skipped { reason, hash } => Outcome::Skipped { reason, hash },
        Prepared::Failed {
            reason,
            cause,
            hash,
        } => {
            let transient = match cause {
                Failure::Read(e) => {
                    metrics.error("read");
                    super::retry::is_transient(&e)
                }
                Failure::Extract => {
                    metrics.error("extract");
                    false
                }
            };
            Outcome::Failed {
                reason,
                transient,
                hash,
            }
        }
    }
}
