//! engine: the one owner of storage.
//!
//! Applies batches of changes to redb, tantivy and the HNSW index in the order of the commit
//! protocol (docs/ARCHITECTURE.md), keeps the queue of chunk texts waiting for an embedding,
//! and publishes [`StatusSnapshot`]s. It never knows whether the CLI, the socket server or a
//! dashboard is asking.

mod apply;
mod commit;
pub mod embed_queue;
mod embed_worker;
mod embeddings;
mod objects;
mod open;
mod pollers;
mod reader;
mod reconcile;
mod retention;
pub mod retry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

pub use embed_queue::EmbedFailure;
pub use embed_worker::{EmbedResult, EmbedWorker, Priority};
pub use embeddings::build_vector_index;
use open::PidFile;
pub use open::{StoredSettings, owner_of, stored_settings};
pub use pollers::Pollers;
pub use reader::{ReadFor, Reader};
pub use reconcile::{Progress, ReconcileStats};
pub use retention::{GC_INTERVAL, GcStats};

/// The embedding queue, shared read-only with `verify` (which must tell a chunk waiting for
/// its vector from one that lost it).
pub type SharedEmbedQueue = Arc<std::sync::Mutex<embed_queue::EmbedQueue>>;

use crate::index::text::TextIndex;
use crate::index::vector::VectorIndex;
use crate::metrics::Metrics;
use crate::model::{MODEL_NAME, ModelFiles};
use crate::pipeline::chunk::Chunker;
use crate::records::{key_display, key_path};
use crate::scan::Scanner;
use crate::search::Searcher;
use crate::settings::RootSpec;
use crate::status::{Phase, StatusCell, StatusSnapshot};
use crate::store::Store;

/// What the engine needs to open an index.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub index_dir: PathBuf,
    /// Canonical root directories (or files), with their globs.
    pub roots: Vec<RootSpec>,
    /// Bytes.
    pub max_file_size: u64,
    /// The transformer model, or `None` when its tier does not run.
    pub model: Option<ModelFiles>,
    /// The static model's directory (`pipeline::distil`), or `None` when its tier does not
    /// run. Both `None`: text-only.
    pub static_model: Option<PathBuf>,
    /// How `s3://` roots are reached (stored, so `verify` can list them again).
    pub s3: crate::s3::S3Options,
    /// How long history and unused embeddings are kept.
    pub retention: crate::settings::Retention,
    /// CPU the transformer tier may take.
    pub embed_budget: crate::settings::EmbedBudget,
    /// Bounds on extracting the text of a document (PDF, notebook, HTML).
    pub documents: crate::settings::DocumentLimits,
}

/// Signs of life of the engine thread, for the systemd watchdog: a counter bumped as work
/// progresses (every file of a reconcile, every published status), and whether the engine is
/// waiting for work (idle is alive too).
#[derive(Debug, Default)]
pub struct Heartbeat {
    beats: std::sync::atomic::AtomicU64,
    idle: std::sync::atomic::AtomicBool,
}

impl Heartbeat {
    /// Records progress.
    pub fn beat(&self) {
        self.beats
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks the engine as waiting for work (`true`) or working (`false`).
    pub fn set_idle(&self, idle: bool) {
        self.beat();
        self.idle.store(idle, std::sync::atomic::Ordering::Release);
    }

    /// The progress counter and whether the engine is idle.
    pub fn read(&self) -> (u64, bool) {
        (
            self.beats.load(std::sync::atomic::Ordering::Relaxed),
            self.idle.load(std::sync::atomic::Ordering::Acquire),
        )
    }
}

/// A request to repair paths that differ from the disk (from `verify --repair` through the
/// socket): forget them, then reconcile. The reply says whether that worked.
pub struct Repair {
    pub keys: Vec<Vec<u8>>,
    pub reply: crossbeam_channel::Sender<std::result::Result<(), String>>,
}

/// One chunk text waiting for its embedding.
pub struct EmbedJob {
    pub hash: [u8; 32],
    pub text: String,
}

/// The writer of one index directory.
pub struct Engine {
    config: EngineConfig,
    store: Arc<Store>,
    text: Arc<TextIndex>,
    /// Transformer-tier HNSW graph.
    vectors: Option<Arc<VectorIndex>>,
    /// The static tier: its model and HNSW graph.
    static_tier: Option<crate::search::StaticTier>,
    chunker: Arc<Chunker>,
    scanner: Scanner,
    next_chunk_id: u64,
    /// Distinct chunk-text hashes without a cached embedding, oldest first.
    embeds: SharedEmbedQueue,
    status: StatusCell,
    /// Files per state: indexed, skipped, failed (indexed by `FileState as usize`).
    file_states: [u64; 3],
    /// Shared Prometheus metrics.
    metrics: Arc<Metrics>,
    /// Files whose last read failed transiently, with their backoff.
    retries: retry::Retries,
    /// Set to stop a long reconcile at its next slice (shutdown).
    cancel: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the initial reconcile is done: changes are then live edits, and their
    /// save-to-searchable latency is measured.
    live: bool,
    /// Where applied changes are also sent (the dashboard's activity log).
    activity: Vec<crossbeam_channel::Sender<crate::records::HistoryRow>>,
    /// Shared by every searcher this engine hands out.
    query: crate::search::QueryEmbedder,
    heartbeat: Arc<Heartbeat>,
    _pid_file: PidFile,
}

impl Engine {
    /// The metrics this engine records into.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Whether the initial reconcile is done.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Marks the initial reconcile as done: from now on changes are live edits.
    pub fn set_live(&mut self) {
        self.live = true;
        self.status.update(|s| s.ready = true);
    }

    /// Also sends every applied change to `tx`; rows are dropped when the receiver lags.
    pub fn add_activity(&mut self, tx: crossbeam_channel::Sender<crate::records::HistoryRow>) {
        self.activity.push(tx);
    }

    /// The model, when embeddings are enabled.
    pub fn model(&self) -> Option<&ModelFiles> {
        self.config.model.as_ref()
    }

    /// CPU the transformer tier may take.
    pub fn embed_budget(&self) -> crate::settings::EmbedBudget {
        self.config.embed_budget
    }

    /// The shared status cell (the engine writes, others read).
    pub fn status(&self) -> StatusCell {
        self.status.clone()
    }

    /// The engine's signs of life (for the watchdog).
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    /// Recomputes the counters from the store and publishes a snapshot in `phase`.
    pub fn publish(&self, phase: Phase) {
        self.heartbeat.beat();
        let counts = self.store.counts().unwrap_or_default();
        let [indexed, skipped, failed] = self.file_states;
        let config = &self.config;
        let (pending, failing, embed_error) = {
            let q = self.embed_queue();
            (
                q.len() as u64,
                q.failing() as u64,
                q.last_error().map(str::to_string),
            )
        };
        let text_docs = self.text.num_docs();
        self.metrics.files.set(indexed as i64);
        self.metrics.chunks.set(counts.chunks as i64);
        self.status.update(|s| {
            s.phase = phase;
            s.roots = config
                .roots
                .iter()
                .map(|r| key_display(crate::records::path_key(&r.path).as_slice()))
                .collect();
            s.index_dir = config.index_dir.display().to_string();
            s.model = match (&config.model, &config.static_model) {
                (Some(_), Some(_)) => Some(format!("{MODEL_NAME} + its static distillation")),
                (Some(_), None) => Some(MODEL_NAME.to_string()),
                (None, Some(_)) => Some(format!("static distillation of {MODEL_NAME}")),
                (None, None) => None,
            };
            set_counts(s, [indexed, skipped, failed], &counts, text_docs);
            s.embeddings_pending = pending;
            s.embeddings_failing = failing;
            s.embed_error = embed_error;
            s.pid = std::process::id();
        });
    }

    /// A snapshot of the current status.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.status.get()
    }

    /// The query embedder every searcher of this process shares.
    pub fn query_embedder(&self) -> crate::search::QueryEmbedder {
        self.query.clone()
    }

    /// A searcher over this engine's indexes, safe to use from other threads.
    pub fn searcher(&self) -> Searcher {
        Searcher::new(
            self.store.clone(),
            self.text.clone(),
            self.vectors.clone(),
            self.query.clone(),
        )
        .with_static_tier(self.static_tier.clone())
    }

    /// The chunking rules in force.
    pub fn chunker(&self) -> Arc<Chunker> {
        self.chunker.clone()
    }

    /// The index directory.
    pub fn index_dir(&self) -> &Path {
        &self.config.index_dir
    }

    /// The store, for read-only use by other threads (history queries).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The configured local roots (directories or files), the ones watched and walked.
    pub fn roots(&self) -> Vec<PathBuf> {
        self.config
            .roots
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| !crate::s3::is_remote(p))
            .collect()
    }

    /// The configured object-storage roots (`s3://bucket/prefix`), the ones polled.
    pub fn remote_roots(&self) -> Vec<PathBuf> {
        self.config
            .roots
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| crate::s3::is_remote(p))
            .collect()
    }

    /// How object-storage roots are reached and polled.
    pub fn s3_options(&self) -> &crate::s3::S3Options {
        &self.config.s3
    }

    /// The filters in force (for pollers of object-storage roots, which judge keys by them).
    pub fn scanner(&self) -> Scanner {
        self.scanner.clone()
    }

    /// Forgets the given paths, then reconciles the local roots, so that they are read from
    /// the disk again (embeddings come from the cache). Bucket objects are downloaded again at
    /// their root's next poll.
    ///
    /// Errors: the index cannot be written.
    pub fn repair_paths(&mut self, keys: &[Vec<u8>]) -> Result<ReconcileStats> {
        tracing::info!(
            paths = keys.len(),
            "verify --repair: forgetting and reconciling"
        );
        self.forget(keys, "verify --repair")?;
        let roots = self.roots();
        self.reconcile(&roots, &())
    }

    /// When the next transient failure is due for another read.
    pub fn next_retry(&self) -> Option<std::time::Instant> {
        self.retries.next_due()
    }

    /// The paths whose retry is due now.
    pub fn due_retries(&mut self) -> Vec<PathBuf> {
        self.retries.take_due(std::time::Instant::now())
    }

    /// The flag that stops a running reconcile at its next slice.
    pub fn cancel_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.cancel.clone()
    }

    /// Whether a stop was requested.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Applies new roots and filters. Records under roots that are no longer watched are
    /// forgotten; the caller reconciles the roots afterwards.
    ///
    /// Errors: an invalid glob (nothing is changed then), or an index failure.
    pub fn reconfigure(
        &mut self,
        roots: &[RootSpec],
        max_file_size: u64,
        s3: &crate::s3::S3Options,
    ) -> Result<()> {
        let scanner = Scanner::new(max_file_size, &self.config.index_dir, roots)?;
        let removed: Vec<PathBuf> = self
            .config
            .roots
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| !roots.iter().any(|r| &r.path == p))
            .collect();
        self.scanner = scanner;
        self.config.roots = roots.to_vec();
        self.config.max_file_size = max_file_size;
        self.config.s3 = s3.clone();
        self.save_settings()?;
        for root in removed {
            let keys: Vec<Vec<u8>> = self
                .store
                .files_under(&crate::records::path_key(&root))?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            tracing::info!(root = %root.display(), files = keys.len(), "root removed: forgetting its files");
            self.forget(&keys, "root removed from the configuration")?;
        }
        Ok(())
    }
}

/// Writes an index's counters into a status snapshot: files per state (indexed, skipped,
/// failed), chunks, text documents, and vectors of each tier.
fn set_counts(
    s: &mut StatusSnapshot,
    [indexed, skipped, failed]: [u64; 3],
    counts: &crate::store::StoreCounts,
    text_docs: u64,
) {
    s.files_indexed = indexed;
    s.files_skipped = skipped;
    s.files_failed = failed;
    s.chunks = counts.chunks;
    s.text_docs = text_docs;
    s.embeddings_cached = counts.vectors;
    s.static_vectors = counts.static_vectors;
}

/// Files per state: indexed, skipped, failed.
pub fn count_states(store: &Store) -> Result<[u64; 3]> {
    let mut counts = [0u64; 3];
    for (_, r) in store.all_files()? {
        counts[r.state as usize] += 1;
    }
    Ok(counts)
}
