//! Objects: apply changes polled from object-storage roots (see `s3::poll`).
//!
//! The same steps as a reconcile, with downloaded bytes in place of file reads: hash and
//! chunk in parallel, pair deletions with new content by hash (renames), then one batch
//! committed with the protocol in docs/ARCHITECTURE.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use rayon::prelude::*;

use super::Engine;
use super::apply::{Batch, Outcome};
use super::reconcile::{ReconcileStats, ToRead, content_outcome};
use crate::metrics::Metrics;
use crate::pipeline::hash::decode;
use crate::records::{FileRecord, FileState, key_display};
use crate::s3::poll::ObjectChange;

impl Engine {
    /// Applies one batch of object changes as one committed batch. A broken object is
    /// recorded as skipped or failed and never stops the others.
    ///
    /// Errors: only failures of the index itself (redb, tantivy, HNSW).
    pub fn apply_objects(&mut self, changes: Vec<ObjectChange>) -> Result<ReconcileStats> {
        let mut stats = ReconcileStats::default();
        let mut batch = Batch::default();
        let mut renamable: HashMap<String, Vec<(Vec<u8>, FileRecord)>> = HashMap::new();
        let mut contents = Vec::new();
        for change in changes {
            match change {
                ObjectChange::Deleted { key } => {
                    let Some(rec) = self.store.file(&key)? else {
                        continue;
                    };
                    match rec.hash.clone() {
                        Some(h) if rec.state == FileState::Indexed => {
                            renamable.entry(h).or_default().push((key, rec))
                        }
                        _ => self.delete_path(&mut batch, key, rec),
                    }
                }
                ObjectChange::Skipped { key, seen, reason } => {
                    let stored = self.store.file(&key)?;
                    let state = FileState::Skipped;
                    self.record_state(&mut batch, key, stored, seen, state, reason, None);
                }
                ObjectChange::Failed { key, seen, reason } => {
                    let stored = self.store.file(&key)?;
                    let state = FileState::Failed;
                    self.record_state(&mut batch, key, stored, seen, state, reason, None);
                }
                ObjectChange::Content { key, seen, bytes } => {
                    let stored = self.store.file(&key)?;
                    let path = PathBuf::from(key_display(&key));
                    contents.push((ToRead { path, seen, stored }, bytes));
                }
            }
        }
        let stages = self.stages();
        let limit = self.scanner.max_file_size();
        let metrics = self.metrics.clone();
        let outcomes: Vec<Outcome> = contents
            .par_iter()
            .map(|(object, bytes)| {
                let indexed = object
                    .stored
                    .as_ref()
                    .filter(|r| r.state == FileState::Indexed)
                    .and_then(|r| r.hash.as_deref());
                let started = Instant::now();
                let content = decode(&object.path, bytes.to_vec(), limit);
                Metrics::time(&metrics.hash_seconds, started.elapsed());
                content_outcome(&stages, &object.path, content, &metrics, indexed)
            })
            .collect();
        for ((object, _), outcome) in contents.iter().zip(outcomes) {
            self.apply_outcome(&mut batch, object, outcome, &mut renamable)?;
        }
        for (key, rec) in renamable.into_values().flatten() {
            self.delete_path(&mut batch, key, rec);
        }
        self.commit(batch, &mut stats)?;
        Ok(stats)
    }
}
