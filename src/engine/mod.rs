//! engine: the one owner of storage.
//!
//! Applies batches of changes to redb, tantivy and the HNSW index in the order of the commit
//! protocol (docs/ARCHITECTURE.md), keeps the queue of chunk texts waiting for an embedding,
//! and publishes [`StatusSnapshot`]s. It never knows whether the CLI, the socket server or a
//! dashboard is asking.

mod commit;
pub mod embed_queue;
mod embeddings;
mod objects;
mod reconcile;
mod retention;
pub mod retry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

pub use embed_queue::EmbedFailure;
pub use embeddings::build_vector_index;
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

/// How long a writer waits for another process (e.g. a `vigil status` reading the index
/// directly) to release the index.
const OPEN_WAIT: Duration = Duration::from_secs(10);

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

/// `index_dir/vigil.pid`: names the process that owns the index, for error messages.
struct PidFile(PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The roots and filters the index was last reconciled with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredSettings {
    pub roots: Vec<RootSpec>,
    /// Bytes.
    pub max_file_size: u64,
    #[serde(default)]
    pub s3: crate::s3::S3Options,
    /// Bounds on extracting documents, so `verify` extracts them as the index did.
    #[serde(default)]
    pub documents: crate::settings::DocumentLimits,
}

/// Reads the stored settings of an index (`None` for an index never reconciled).
pub fn stored_settings(store: &Store) -> Result<Option<StoredSettings>> {
    match store.setting("settings")? {
        Some(json) => Ok(Some(
            serde_json::from_str(&json).context("corrupt settings in the index")?,
        )),
        None => Ok(None),
    }
}

/// Reads who owns the index, for "in use" messages.
pub fn owner_of(index_dir: &Path) -> Option<String> {
    std::fs::read_to_string(index_dir.join("vigil.pid"))
        .ok()
        .map(|s| s.trim().to_string())
}

impl Engine {
    /// Opens (or creates) the index for writing, repairs an interrupted batch, and loads or
    /// rebuilds the vector index.
    ///
    /// Errors: another process holds the index (named in the message), the index is of
    /// another schema version, or its files cannot be opened.
    pub fn open(config: EngineConfig) -> Result<Self> {
        let dir = &config.index_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the index directory", dir.display()))?;
        let store = Store::open(dir, OPEN_WAIT).map_err(|e| match owner_of(dir) {
            Some(owner) => e.context(format!("held by {owner}")),
            None => e,
        })?;
        let pid_path = dir.join("vigil.pid");
        let args: Vec<String> = std::env::args().collect();
        std::fs::write(
            &pid_path,
            format!("pid {} ({})\n", std::process::id(), args.join(" ")),
        )
        .with_context(|| format!("{}: cannot write", pid_path.display()))?;
        let pid_file = PidFile(pid_path);
        let text = TextIndex::open(&dir.join("text"), true)?;
        // Chunks are sized in the models' tokens (both tiers share the tokenizer).
        let tokenizer_path = match (&config.model, &config.static_model) {
            (Some(m), _) => Some(m.tokenizer()),
            (None, Some(dir)) => Some(dir.join("tokenizer.json")),
            (None, None) => None,
        };
        let tokenizer = match tokenizer_path {
            Some(path) => Some(tokenizers::Tokenizer::from_file(&path).map_err(|e| {
                anyhow::anyhow!("{}: cannot load the tokenizer: {e}", path.display())
            })?),
            None => None,
        };
        let chunker = Chunker::new(tokenizer);
        let store = Arc::new(store);
        let mut engine = Self {
            scanner: Scanner::new(config.max_file_size, dir, &config.roots)?,
            next_chunk_id: store.next_chunk_id()?,
            store,
            text: Arc::new(text),
            vectors: None,
            static_tier: None,
            chunker: Arc::new(chunker),
            embeds: SharedEmbedQueue::default(),
            status: StatusCell::default(),
            file_states: [0; 3],
            metrics: Arc::new(Metrics::new()),
            retries: retry::Retries::default(),
            cancel: Arc::default(),
            live: false,
            activity: Vec::new(),
            query: crate::search::QueryEmbedder::new(
                config.model.clone(),
                crate::pipeline::embed::Load::Query,
            ),
            heartbeat: Arc::default(),
            _pid_file: pid_file,
            config,
        };
        engine.repair()?;
        engine.extract_again_on_new_limits()?;
        engine.save_settings()?;
        engine.file_states = count_states(&engine.store)?;
        if let Some(dir) = engine.config.static_model.clone() {
            engine.open_static_tier(&dir)?;
        }
        if engine.config.model.is_some() {
            engine.check_model()?;
            engine.vectors = Some(Arc::new(
                engine.load_vectors(crate::settings::Tier::Transformer)?,
            ));
            engine.queue_missing_embeddings()?;
        }
        engine.publish(Phase::Starting);
        Ok(engine)
    }

    /// Step 0 of the commit protocol: a batch interrupted between its intent and its redb
    /// commit left paths in `pending`. Forget those paths everywhere (tantivy docs, records,
    /// chunks); the next reconcile indexes them again from the disk, reusing cached
    /// embeddings. Also forgets everything when the chunking rules changed.
    fn repair(&mut self) -> Result<()> {
        let pending = self.store.pending()?;
        // An index built by an older vigil: other chunking rules, or a text index of another
        // schema (emptied on open). Everything is chunked and indexed again; embeddings are
        // reused wherever the embedded text is unchanged.
        let chunker_changed = self.store.setting("chunker")?.as_deref()
            != Some(self.chunker.fingerprint())
            || self.text.recreated();
        let forget: Vec<Vec<u8>> = if chunker_changed {
            // Every file, and the paths of an interrupted batch that have no record yet.
            let mut keys: Vec<Vec<u8>> = self
                .store
                .all_files()?
                .into_iter()
                .map(|(k, _)| k)
                .chain(pending)
                .collect();
            keys.sort();
            keys.dedup();
            keys
        } else {
            pending
        };
        if !forget.is_empty() {
            if chunker_changed && self.store.setting("chunker")?.is_some() {
                tracing::warn!(
                    files = forget.len(),
                    "this index was built by an older vigil: every file is chunked and \
                     indexed again (cached embeddings are reused where the text is unchanged)"
                );
            } else {
                tracing::info!(
                    paths = forget.len(),
                    "repairing paths of an interrupted batch"
                );
            }
            let why = if chunker_changed {
                "re-chunking: the chunking rules changed"
            } else {
                "repair: interrupted batch"
            };
            self.forget(&forget, why)?;
        }
        if chunker_changed {
            self.store
                .set_setting("chunker", self.chunker.fingerprint())?;
        }
        Ok(())
    }

    /// When the document limits differ from those the index was built with, forgets every
    /// document (PDF, notebook, …), so the next reconcile extracts them again under the new
    /// limits: a raised timeout may now be enough, a lowered one may now be too short, and
    /// the index stays what `verify` expects under the limits in force.
    fn extract_again_on_new_limits(&mut self) -> Result<()> {
        let Some(stored) = stored_settings(&self.store)? else {
            return Ok(());
        };
        if stored.documents == self.config.documents {
            return Ok(());
        }
        let documents: Vec<Vec<u8>> = self
            .store
            .all_files()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| crate::pipeline::extract::Format::of(&key_path(k)).is_some())
            .collect();
        if !documents.is_empty() {
            tracing::info!(
                documents = documents.len(),
                "document limits changed: extracting every document again"
            );
            self.forget(&documents, "document limits changed")?;
        }
        Ok(())
    }

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
            s.files_indexed = indexed;
            s.files_skipped = skipped;
            s.files_failed = failed;
            s.chunks = counts.chunks;
            s.text_docs = text_docs;
            s.embeddings_cached = counts.vectors;
            s.static_vectors = counts.static_vectors;
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

    /// Records the roots and filters in the store, so `vigil verify` can judge the disk by
    /// the same rules without being told them again.
    fn save_settings(&self) -> Result<()> {
        let settings = StoredSettings {
            roots: self.config.roots.clone(),
            max_file_size: self.config.max_file_size,
            s3: self.config.s3.clone(),
            documents: self.config.documents,
        };
        self.store
            .set_setting("settings", &serde_json::to_string(&settings)?)
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

/// Files per state: indexed, skipped, failed.
pub fn count_states(store: &Store) -> Result<[u64; 3]> {
    let mut counts = [0u64; 3];
    for (_, r) in store.all_files()? {
        counts[r.state as usize] += 1;
    }
    Ok(counts)
}
