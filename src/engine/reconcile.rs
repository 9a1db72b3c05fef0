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
use crate::index::text::TextDoc;
use crate::metrics::Metrics;
use crate::pipeline::chunk::Chunk;
use crate::pipeline::extract::ExtractError;
use crate::pipeline::hash::{ReadError, read_file};
use crate::records::{
    ChangeKind, ChunkRecord, FileRecord, FileState, HistoryRow, Seen, key_display, key_path,
    now_ms, path_key,
};
use crate::scan::{Admission, Found};
use crate::status::Phase;
use crate::store::StoreBatch;

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

    fn count(&mut self, row: &HistoryRow) {
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

/// What reading one file gave.
pub(super) enum Outcome {
    /// Gone between the scan and the read (deleted or renamed away): treated as absent.
    Vanished,
    Content {
        hash: [u8; 32],
        size: u64,
        chunks: Vec<Chunk>,
        /// The static-tier vector of each chunk (empty when that tier does not run).
        static_vectors: Vec<Vec<f32>>,
    },
    Skipped {
        reason: String,
        hash: Option<[u8; 32]>,
    },
    Failed {
        reason: String,
        /// The error may pass by itself: read again later, with backoff.
        transient: bool,
        /// The content's hash when it was read but its text could not be extracted: the
        /// record is then settled until the file changes (or the document limits do).
        hash: Option<[u8; 32]>,
    },
}

/// One batch being assembled: the store changes, the text-index changes and the history.
#[derive(Default)]
pub(super) struct Batch {
    store: StoreBatch,
    /// Paths whose text-index documents are replaced by `docs`.
    text_paths: Vec<Vec<u8>>,
    docs: Vec<TextDoc>,
    /// Chunks added (id, hash) and removed (id), for the vector index.
    added: Vec<(u64, [u8; 32])>,
    removed: Vec<u64>,
    /// Change in the number of files per state (indexed, skipped, failed).
    states: [i64; 3],
    /// Modification times (ns) of the files whose new content this batch makes searchable.
    fresh_mtimes: Vec<i128>,
}

impl Batch {
    /// Counts a file moving from state `old` to `new` (`None`: no record).
    fn restate(&mut self, old: Option<FileState>, new: Option<FileState>) {
        if let Some(s) = old {
            self.states[s as usize] -= 1;
        }
        if let Some(s) = new {
            self.states[s as usize] += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.store.put_files.is_empty()
            && self.store.delete_files.is_empty()
            && self.text_paths.is_empty()
    }
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

    /// Records a file as skipped or failed (dropping its chunks); a history row is written
    /// only when the state or the reason changed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_state(
        &mut self,
        batch: &mut Batch,
        key: Vec<u8>,
        stored: Option<FileRecord>,
        seen: Seen,
        state: FileState,
        reason: String,
        hash: Option<String>,
    ) {
        let news = stored
            .as_ref()
            .is_none_or(|r| r.state != state || r.reason.as_deref() != Some(reason.as_str()));
        let removed = stored
            .as_ref()
            .map(|r| self.drop_chunks(batch, &key, r))
            .unwrap_or(0);
        batch.restate(stored.as_ref().map(|r| r.state), Some(state));
        let record = FileRecord {
            size: seen.size,
            mtime_ns: seen.mtime_ns,
            hash,
            state,
            reason: Some(reason.clone()),
            chunks: Vec::new(),
            etag: seen.etag,
        };
        batch.store.put_files.push((key.clone(), record));
        if news || removed > 0 {
            let kind = if state == FileState::Skipped {
                ChangeKind::Skipped
            } else {
                ChangeKind::Failed
            };
            batch
                .store
                .history
                .push(row(&key, None, kind, 0, removed, 0, 0, Some(reason)));
        }
    }

    /// Removes a path's record and chunks.
    pub(super) fn delete_path(&mut self, batch: &mut Batch, key: Vec<u8>, rec: FileRecord) {
        let removed = self.drop_chunks(batch, &key, &rec);
        batch.restate(Some(rec.state), None);
        batch.store.delete_files.push(key.clone());
        batch
            .store
            .history
            .push(row(&key, None, ChangeKind::Deleted, 0, removed, 0, 0, None));
    }

    /// Stages the removal of a record's chunks; returns how many.
    fn drop_chunks(&mut self, batch: &mut Batch, key: &[u8], rec: &FileRecord) -> u32 {
        if rec.chunks.is_empty() {
            return 0;
        }
        let chunks = self.store.chunks(&rec.chunks).unwrap_or_default();
        for (id, c) in &chunks {
            batch.store.delete_chunks.push((*id, c.hash));
            batch.removed.push(*id);
        }
        batch.text_paths.push(key.to_vec());
        rec.chunks.len() as u32
    }

    pub(super) fn apply_outcome(
        &mut self,
        batch: &mut Batch,
        file: &ToRead,
        outcome: Outcome,
        renamable: &mut HashMap<String, Vec<(Vec<u8>, FileRecord)>>,
    ) -> Result<()> {
        let key = path_key(&file.path);
        let stored = file.stored.clone();
        if !matches!(
            outcome,
            Outcome::Failed {
                transient: true,
                ..
            }
        ) {
            self.retries.clear(&file.path);
        }
        let (hash, size, chunks) = match outcome {
            Outcome::Vanished => {
                if let Some(rec) = stored {
                    self.delete_path(batch, key, rec);
                }
                return Ok(());
            }
            Outcome::Skipped { reason, hash } => {
                let hash = hash.map(hex::encode);
                self.record_state(
                    batch,
                    key,
                    stored,
                    file.seen.clone(),
                    FileState::Skipped,
                    reason,
                    hash,
                );
                return Ok(());
            }
            Outcome::Failed {
                reason,
                transient,
                hash,
            } => {
                if transient {
                    if self.retries.schedule(&file.path, std::time::Instant::now()) {
                        tracing::debug!(path = %file.path.display(), %reason, "transient read error: will retry");
                    } else {
                        tracing::warn!(path = %file.path.display(), %reason, "still failing after {} attempts: giving up until it changes", super::retry::MAX_ATTEMPTS);
                    }
                }
                self.record_state(
                    batch,
                    key,
                    stored,
                    file.seen.clone(),
                    FileState::Failed,
                    reason,
                    hash.map(hex::encode),
                );
                return Ok(());
            }
            Outcome::Content {
                hash,
                size,
                chunks,
                static_vectors,
            } => {
                for (chunk, vector) in chunks.iter().zip(static_vectors) {
                    batch.store.put_static_vectors.push((chunk.hash, vector));
                }
                (hash, size, chunks)
            }
        };
        let hex_hash = hex::encode(hash);
        let mut record = FileRecord {
            size,
            mtime_ns: file.seen.mtime_ns,
            hash: Some(hex_hash.clone()),
            state: FileState::Indexed,
            reason: None,
            chunks: Vec::new(),
            etag: file.seen.etag.clone(),
        };
        if let Some(old) = stored
            .as_ref()
            .filter(|r| r.state == FileState::Indexed && r.hash.as_deref() == Some(&hex_hash))
        {
            record.chunks = old.chunks.clone();
            batch.store.put_files.push((key.clone(), record));
            batch
                .store
                .history
                .push(row(&key, None, ChangeKind::Touched, 0, 0, 0, 0, None));
            return Ok(());
        }
        let mut from = None;
        // The texts the file had, to tell which chunks this change touched.
        let old_texts: std::collections::HashSet<[u8; 32]> = match &stored {
            Some(r) => self
                .store
                .chunks(&r.chunks)?
                .into_iter()
                .map(|(_, c)| c.hash)
                .collect(),
            None => Default::default(),
        };
        let mut removed = stored
            .as_ref()
            .map(|r| self.drop_chunks(batch, &key, r))
            .unwrap_or(0);
        if stored.is_none()
            && let Some(candidates) = renamable.get_mut(&hex_hash)
            && let Some((old_key, old_rec)) = candidates.pop()
        {
            removed += self.drop_chunks(batch, &old_key, &old_rec);
            batch.restate(Some(old_rec.state), None);
            batch.store.delete_files.push(old_key.clone());
            from = Some(old_key);
        }
        let hashes: Vec<[u8; 32]> = chunks.iter().map(|c| c.hash).collect();
        let cached = self
            .store
            .has_vectors(crate::settings::Tier::Transformer, &hashes)?;
        let embedding = self.embeddings_enabled();
        let reused = if embedding {
            cached.iter().filter(|&&c| c).count() as u32
        } else {
            0
        };
        let computed = if embedding {
            cached.len() as u32 - reused
        } else {
            0
        };
        let display = key_display(&key);
        for chunk in &chunks {
            let id = self.next_chunk_id;
            self.next_chunk_id += 1;
            record.chunks.push(id);
            batch.store.put_chunks.push((
                id,
                ChunkRecord {
                    path: display.clone(),
                    hash: chunk.hash,
                    byte_start: chunk.byte_start as u64,
                    byte_end: chunk.byte_end as u64,
                    start_line: chunk.start_line,
                    end_line: chunk.end_line,
                    location: chunk.location,
                },
            ));
            batch.added.push((id, chunk.hash));
            batch.docs.push(TextDoc {
                chunk_id: id,
                path_key: key.clone(),
                path: display.clone(),
                start_line: chunk.start_line,
                end_line: chunk.end_line,
                text: chunk.text.clone(),
                header: chunk.header.clone(),
                defines: chunk.defines.clone(),
            });
        }
        batch.text_paths.push(key.clone());
        batch.restate(stored.as_ref().map(|r| r.state), Some(FileState::Indexed));
        let kind = match (&from, &stored) {
            (Some(_), _) => ChangeKind::Renamed,
            (None, None) => ChangeKind::Created,
            (None, Some(_)) => ChangeKind::Modified,
        };
        let added = chunks.len() as u32;
        batch.fresh_mtimes.push(file.seen.mtime_ns);
        let mut history = row(
            &key,
            from.as_deref(),
            kind,
            added,
            removed,
            computed,
            reused,
            None,
        );
        if kind == ChangeKind::Modified {
            history.changed_lines = changed_lines(&chunks, &old_texts);
        }
        batch.store.history.push(history);
        batch.store.put_files.push((key, record));
        Ok(())
    }

    /// Commits a batch with the protocol (`engine/commit.rs`), then records what it did:
    /// metrics, history fan-out to the dashboard and API, status counters.
    pub(super) fn commit(&mut self, mut batch: Batch, stats: &mut ReconcileStats) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        batch.text_paths.sort();
        batch.text_paths.dedup();
        batch.store.next_chunk_id = self.next_chunk_id;
        let change = super::commit::Change {
            store: &batch.store,
            text_paths: &batch.text_paths,
            docs: &batch.docs,
            added: &batch.added,
            removed: &batch.removed,
        };
        let vectors = self.vectors.clone();
        let static_tier = self.static_tier.clone();
        let graphs = super::commit::Graphs {
            transformer: vectors.as_deref(),
            static_tier: static_tier.as_ref().map(|t| t.vectors.as_ref()),
        };
        let missing = super::commit::apply(&self.store, &self.text, graphs, &change)?;
        // Live edits go ahead of a catch-up (recently changed files first).
        let live = self.live;
        let mut queue = self.embed_queue();
        for hash in missing {
            if live {
                queue.push_front(hash);
            } else {
                queue.push(hash);
            }
        }
        drop(queue);
        Metrics::time(&self.metrics.commit_seconds, started.elapsed());
        if self.live {
            let now_ns = now_ms() as i128 * 1_000_000;
            for mtime in &batch.fresh_mtimes {
                let secs = (now_ns - mtime).max(0) as f64 / 1e9;
                self.metrics.save_to_searchable_seconds.observe(secs);
            }
        }
        for r in &batch.store.history {
            self.metrics.change(r.kind.as_str());
            self.metrics
                .embeddings_reused
                .inc_by(r.embeddings_reused as u64);
            stats.count(r);
            log_change(r);
            for tx in &self.activity {
                let _ = tx.try_send(r.clone());
            }
        }
        let changed = batch.store.history.len() as u64;
        self.status.update(|s| s.files_changed += changed);
        for (count, delta) in self.file_states.iter_mut().zip(batch.states) {
            *count = count.saturating_add_signed(delta);
        }
        self.status.update(|s| s.batches_applied += 1);
        Ok(())
    }

    /// Forgets paths everywhere (records, chunks, text-index documents). Each path that had
    /// a record gets a `deleted` history row with `reason`; a following reconcile indexes
    /// again whatever is still on disk.
    pub fn forget(&mut self, keys: &[Vec<u8>], reason: &str) -> Result<()> {
        let mut batch = Batch::default();
        for key in keys {
            if let Some(rec) = self.store.file(key)? {
                let removed = self.drop_chunks(&mut batch, key, &rec);
                batch.restate(Some(rec.state), None);
                batch.store.delete_files.push(key.clone());
                let why = Some(reason.to_string());
                batch.store.history.push(row(
                    key,
                    None,
                    ChangeKind::Deleted,
                    0,
                    removed,
                    0,
                    0,
                    why,
                ));
            }
            batch.text_paths.push(key.clone());
        }
        self.commit(batch, &mut ReconcileStats::default())
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

/// Turns read (or downloaded) content into an outcome: chunks, or why not. Chunking is
/// skipped when the content hashes to `indexed`.
pub(super) fn content_outcome(
    stages: &Stages,
    path: &Path,
    read: Result<crate::pipeline::hash::FileContent, ReadError>,
    metrics: &Metrics,
    indexed: Option<&str>,
) -> Outcome {
    match read {
        Ok(content) if indexed.is_some_and(|h| h == hex::encode(content.hash)) => {
            Outcome::Content {
                hash: content.hash,
                size: content.size,
                chunks: Vec::new(),
                static_vectors: Vec::new(),
            }
        }
        Ok(content) => {
            let started = Instant::now();
            let chunks = match stages
                .chunker
                .chunk_body(path, &content.body, stages.extract)
            {
                Ok(chunks) => chunks,
                Err(e @ ExtractError::TooMuchText { .. }) => {
                    return Outcome::Skipped {
                        reason: e.to_string(),
                        hash: Some(content.hash),
                    };
                }
                Err(e) => {
                    metrics.error("extract");
                    return Outcome::Failed {
                        reason: e.to_string(),
                        transient: false,
                        hash: Some(content.hash),
                    };
                }
            };
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
                hash: content.hash,
                size: content.size,
                chunks,
                static_vectors,
            }
        }
        Err(ReadError::Binary { hash, .. }) => Outcome::Skipped {
            reason: "binary content".into(),
            hash: Some(hash),
        },
        Err(e @ ReadError::TooLarge { .. }) => Outcome::Skipped {
            reason: e.to_string(),
            hash: None,
        },
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Vanished,
        Err(ReadError::Io(e)) => {
            metrics.error("read");
            Outcome::Failed {
                reason: e.to_string(),
                transient: super::retry::is_transient(&e),
                hash: None,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    key: &[u8],
    from: Option<&[u8]>,
    kind: ChangeKind,
    chunks_added: u32,
    chunks_removed: u32,
    embeddings_computed: u32,
    embeddings_reused: u32,
    reason: Option<String>,
) -> HistoryRow {
    HistoryRow {
        time_ms: now_ms(),
        path: key_display(key),
        from: from.map(key_display),
        kind,
        chunks_added,
        chunks_removed,
        embeddings_computed,
        embeddings_reused,
        reason,
        changed_lines: Vec::new(),
    }
}

/// The line ranges (1-based, inclusive, neighbours merged) of the chunks whose text the file
/// did not have before: where a modification happened, to chunk precision.
fn changed_lines(
    chunks: &[crate::pipeline::chunk::Chunk],
    old_texts: &std::collections::HashSet<[u8; 32]>,
) -> Vec<[u32; 2]> {
    let mut ranges: Vec<[u32; 2]> = Vec::new();
    for c in chunks.iter().filter(|c| !old_texts.contains(&c.hash)) {
        match ranges.last_mut() {
            Some(last) if c.start_line <= last[1] + 1 => last[1] = last[1].max(c.end_line),
            _ => ranges.push([c.start_line, c.end_line]),
        }
    }
    ranges
}

fn log_change(r: &HistoryRow) {
    let path = key_path(r.path.as_bytes());
    tracing::debug!(
        kind = r.kind.as_str(),
        path = %path.display(),
        chunks_added = r.chunks_added,
        chunks_removed = r.chunks_removed,
        reason = r.reason.as_deref().unwrap_or(""),
        "change"
    );
}
