//! Apply: turn the outcomes of reading files (or objects) into one batch of store, text-index
//! and vector changes with its history rows, and commit it with the protocol in
//! `engine/commit.rs` (docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;

use super::Engine;
use super::reconcile::{ReconcileStats, ToRead};
use crate::index::text::TextDoc;
use crate::metrics::Metrics;
use crate::pipeline::chunk::Chunk;
use crate::records::{
    ChangeKind, ChunkRecord, FileRecord, FileState, HistoryRow, Seen, key_display, key_path,
    now_ms, path_key,
};
use crate::store::StoreBatch;

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
    pub(super) store: StoreBatch,
    /// Paths whose text-index documents are replaced by `docs`.
    pub(super) text_paths: Vec<Vec<u8>>,
    pub(super) docs: Vec<TextDoc>,
    /// Chunks added (id, hash) and removed (id), for the vector index.
    pub(super) added: Vec<(u64, [u8; 32])>,
    pub(super) removed: Vec<u64>,
    /// Change in the number of files per state (indexed, skipped, failed).
    pub(super) states: [i64; 3],
    /// Modification times (ns) of the files whose new content this batch makes searchable.
    pub(super) fresh_mtimes: Vec<i128>,
}

impl Batch {
    /// Counts a file moving from state `old` to `new` (`None`: no record).
    pub(super) fn restate(&mut self, old: Option<FileState>, new: Option<FileState>) {
        if let Some(s) = old {
            self.states[s as usize] -= 1;
        }
        if let Some(s) = new {
            self.states[s as usize] += 1;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.store.put_files.is_empty()
            && self.store.delete_files.is_empty()
            && self.text_paths.is_empty()
    }
}

impl Engine {
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
    pub(super) fn drop_chunks(&mut self, batch: &mut Batch, key: &[u8], rec: &FileRecord) -> u32 {
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
