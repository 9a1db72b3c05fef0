//! status: how is the index doing right now?
//!
//! Plain snapshots the engine publishes after every batch; the CLI, the socket server (and
//! later the dashboard) read them and never touch storage to answer "how are things".

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// What the engine is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Starting,
    /// Initial (or requested) reconcile of the roots.
    Scanning,
    /// Files are indexed by text; embeddings are catching up.
    Embedding,
    /// Idle, following changes.
    Watching,
    /// Stopped after an error.
    Error,
    /// No process is watching this index (answered by opening it directly).
    Stopped,
}

/// What the poller of an object-storage root is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    /// Waiting for the next poll.
    #[default]
    Idle,
    /// Listing or downloading.
    Polling,
    /// The last poll failed; the next one comes after an exponential backoff.
    BackingOff,
}

/// The polling of one object-storage root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// `s3://bucket/prefix`.
    pub root: String,
    pub state: RemoteState,
    /// Polls done by this process, and failed polls in a row.
    pub polls: u64,
    pub failures: u32,
    /// When the last poll succeeded, ms since the Unix epoch.
    pub last_ok_ms: Option<u64>,
    /// Why the last poll failed (credentials are never included).
    pub last_error: Option<String>,
    /// When the next poll starts, ms since the Unix epoch.
    pub next_poll_ms: Option<u64>,
    /// Objects in the last successful listing.
    pub objects: u64,
    /// Objects downloaded by this process.
    pub downloads: u64,
}

/// Counters and state of one index, as of the last applied batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub phase: Phase,
    /// The initial reconcile is done (what `/readyz` reports).
    pub ready: bool,
    pub roots: Vec<String>,
    pub index_dir: String,
    /// Model name, or `None` when running text-only.
    pub model: Option<String>,
    /// Files with a record, by state.
    pub files_indexed: u64,
    pub files_skipped: u64,
    pub files_failed: u64,
    /// Chunks in the index (store).
    pub chunks: u64,
    /// Chunk documents in the text index; equals `chunks` when the two agree.
    pub text_docs: u64,
    /// Distinct chunk texts with a cached (transformer-tier) embedding.
    pub embeddings_cached: u64,
    /// Distinct chunk texts with a static-tier vector.
    #[serde(default)]
    pub static_vectors: u64,
    /// Embeddings computed by this process.
    pub embeddings_computed: u64,
    /// Distinct chunk texts waiting for an embedding.
    pub embeddings_pending: u64,
    /// Chunk texts whose embedding failed: waiting for a retry, or set aside.
    #[serde(default)]
    pub embeddings_failing: u64,
    /// Why embedding last failed, until it recovers.
    #[serde(default)]
    pub embed_error: Option<String>,
    /// What the embedding catch-up is for, when it is not routine (e.g. the model changed).
    #[serde(default)]
    pub embed_note: Option<String>,
    /// Scan progress of the current reconcile: files done / total.
    pub scan_done: u64,
    pub scan_total: u64,
    /// File-system events received (after debouncing merged them) and batches applied by
    /// this process.
    pub events_received: u64,
    pub batches_applied: u64,
    /// Directories under inotify watch.
    pub watches_active: u64,
    /// Changed paths waiting to be applied.
    pub queue_depth: u64,
    /// Every change made before this time (ms since the epoch) is applied (0: not yet). Later
    /// ones may still be settling in the debouncer (`debounce` + one tick); `sync` waits for
    /// them.
    #[serde(default)]
    pub applied_ms: u64,
    /// Files created, modified, deleted, renamed, touched, skipped or failed by this process.
    pub files_changed: u64,
    /// The last error, if the engine stopped or a batch failed.
    pub last_error: Option<String>,
    /// Object-storage roots and how their polling goes.
    #[serde(default)]
    pub remotes: Vec<RemoteStatus>,
    /// Process id of the process that owns the index.
    pub pid: u32,
    /// Disk usage, measured when `status` is asked (not kept up to date otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskUsage>,
}

/// How current an answer is, sent with every search answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// A watcher keeps this index in step with the disk (`false`: the answer comes from an
    /// index no process watches, as of its last run).
    pub watched: bool,
    /// Every change made before this time (ms since the epoch) is applied.
    pub applied_ms: u64,
    /// Changed paths handed over and not yet applied.
    pub queued_files: u64,
    /// Chunk texts still waiting for an embedding (found by words, not yet by meaning).
    pub embeddings_pending: u64,
    /// With `sync`: ms spent waiting until every change made before the call was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_ms: Option<u64>,
}

/// Bytes the index takes on disk, by part.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Bytes of all files in the index directory.
    pub total: u64,
    /// `index.redb`: the file, and the live data of its tables.
    pub store_file: u64,
    pub store_tables: crate::store::TableBytes,
    /// The tantivy directory.
    pub text: u64,
    /// The HNSW snapshots (both tiers).
    pub vectors_snapshot: u64,
}

impl DiskUsage {
    /// Measures the index in `dir` (walks the directory; reads table statistics).
    ///
    /// Errors: the store's statistics cannot be read.
    pub fn measure(dir: &std::path::Path, store: &crate::store::Store) -> anyhow::Result<Self> {
        fn tree_bytes(p: &std::path::Path) -> u64 {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => std::fs::read_dir(p)
                    .map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum())
                    .unwrap_or(0),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            }
        }
        Ok(Self {
            total: tree_bytes(dir),
            store_file: tree_bytes(&dir.join("index.redb")),
            store_tables: store.table_bytes()?,
            text: tree_bytes(&dir.join("text")),
            vectors_snapshot: [
                crate::settings::Tier::Transformer,
                crate::settings::Tier::Static,
            ]
            .into_iter()
            .map(|t| crate::index::vector::VectorIndex::snapshot_bytes(dir, t))
            .sum(),
        })
    }
}

/// A snapshot cell shared between the engine (writer) and readers. Readers that want to
/// know when it changes [`StatusCell::subscribe`].
#[derive(Clone, Default)]
pub struct StatusCell(Arc<Inner>);

#[derive(Default)]
struct Inner {
    snapshot: Mutex<StatusSnapshot>,
    subscribers: Mutex<Vec<crossbeam_channel::Sender<()>>>,
}

impl StatusCell {
    /// A copy of the current snapshot.
    pub fn get(&self) -> StatusSnapshot {
        self.0
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the snapshot in place and wakes subscribers.
    pub fn update(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        f(&mut self.0.snapshot.lock().unwrap_or_else(|p| p.into_inner()));
        let subscribers = self.0.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for s in subscribers.iter() {
            // Capacity 1: a pending wake-up already covers this change.
            let _ = s.try_send(());
        }
    }

    /// A channel that receives a wake-up (coalesced) after every change.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.0
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }
}
