//! api: how does another process (or the dashboard) ask the index?
//!
//! [`Backend`] answers [`Request`]s with read-only handles; it serves the dashboard's query
//! worker, the CLI when no process owns the index, and the HTTP API (`http.rs`) that a
//! running `vigil watch` or `vigil index` offers on `INDEX_DIR/vigil.sock` and optionally on
//! TCP. `client.rs` is the CLI's side of that socket.

pub mod client;
pub mod http;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::pipeline::chunk::Chunker;
use crate::records::{FileState, HistoryRow, key_display};
use crate::search::{SearchRequest, SearchResponse, Searcher};
use crate::status::{StatusCell, StatusSnapshot};
use crate::store::Store;

/// A question to the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Search(SearchRequest),
    Status,
    History {
        path: Option<String>,
        limit: usize,
    },
    /// Files with a record, optionally only those in one state (e.g. failed).
    Files {
        state: Option<FileState>,
    },
    /// Compare the index with the disk (reads every file).
    Verify,
    /// Compare, then have the engine forget and re-read every path that differs; answers
    /// with what still differs afterwards. Only the process that owns the index can.
    Repair,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Response {
    Search(SearchResponse),
    Status(Box<StatusSnapshot>),
    History {
        rows: Vec<HistoryRow>,
    },
    Files {
        files: Vec<FileEntry>,
    },
    Verify {
        differences: Vec<crate::verify::Difference>,
    },
    Error {
        message: String,
        /// The request was at fault (an invalid glob, a mode the index cannot serve, a sync
        /// without a watcher), not the index.
        #[serde(default)]
        bad_request: bool,
    },
}

/// The socket path of an index directory.
pub fn socket_path(index_dir: &Path) -> PathBuf {
    index_dir.join("vigil.sock")
}

/// What the server needs to answer.
#[derive(Clone)]
pub struct Backend {
    pub searcher: Searcher,
    pub store: Arc<Store>,
    pub status: StatusCell,
    /// The chunking rules of this index (needed by verify only).
    pub chunker: Option<Arc<Chunker>>,
    pub index_dir: PathBuf,
    /// The running engine's embedding queue (`None` when no process embeds).
    pub embeds: Option<crate::engine::SharedEmbedQueue>,
    /// Where repairs go to the engine (`None`: this process cannot repair).
    pub repairs: Option<crossbeam_channel::Sender<crate::engine::Repair>>,
    /// The watcher's sync cookies (`None`: no watcher here, nothing to sync with).
    pub cookies: Option<Arc<crate::service::cookie::Cookies>>,
}

/// How long a `sync` search waits for the watcher to apply earlier changes.
pub const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a repair through the socket may take before the CLI is told it timed out.
const REPAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

impl Backend {
    /// Answers one request (also used directly by the CLI when no watcher runs).
    pub fn answer(&self, request: &Request) -> Response {
        let result = match request {
            Request::Search(req) => self.search(req).map(Response::Search),
            Request::Status => {
                let mut status = self.status.get();
                crate::status::DiskUsage::measure(&self.index_dir, &self.store).map(|disk| {
                    status.disk = Some(disk);
                    Response::Status(Box::new(status))
                })
            }
            Request::Verify => self
                .verify()
                .map(|differences| Response::Verify { differences }),
            Request::Repair => self
                .repair()
                .map(|differences| Response::Verify { differences }),
            Request::Files { state } => self.files(*state).map(|files| Response::Files { files }),
            Request::History { path, limit } => self
                .store
                .history(path.as_deref().map(str::as_bytes), *limit)
                .map(|rows| Response::History { rows }),
        };
        result.unwrap_or_else(|e| Response::Error {
            message: format!("{e:#}"),
            bad_request: e.chain().any(|c| c.is::<crate::search::QueryError>()),
        })
    }

    /// A search, after a sync when asked, with its freshness.
    fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        let synced_ms = match (&self.cookies, req.sync) {
            (Some(cookies), true) => {
                let roots: Vec<PathBuf> = self
                    .status
                    .get()
                    .roots
                    .iter()
                    .filter(|r| !r.starts_with("s3://"))
                    .map(PathBuf::from)
                    .collect();
                Some(cookies.sync(&roots, SYNC_TIMEOUT)?.as_millis() as u64)
            }
            (None, true) => {
                return Err(crate::search::QueryError(
                    "sync needs a running watcher (`vigil watch`): no process keeps this index \
                     in step"
                        .into(),
                )
                .into());
            }
            _ => None,
        };
        let mut response = self.searcher.search(req)?;
        if let Some(queue) = &self.embeds {
            // What the user is looking at gets its transformer vector first.
            let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            for hash in response.static_texts.iter().rev() {
                queue.promote(*hash);
            }
        }
        let s = self.status.get();
        response.freshness = Some(crate::status::Freshness {
            watched: self.cookies.is_some(),
            applied_ms: s.applied_ms,
            queued_files: s.queue_depth,
            embeddings_pending: s.embeddings_pending,
            synced_ms,
        });
        Ok(response)
    }

    fn verify(&self) -> Result<Vec<crate::verify::Difference>> {
        let Some(chunker) = &self.chunker else {
            anyhow::bail!("verify needs the chunking rules of the index");
        };
        let mut graphs = Vec::new();
        if let Some(v) = self.searcher.vectors() {
            graphs.push((crate::settings::Tier::Transformer, v));
        }
        if let Some(t) = self.searcher.static_tier() {
            graphs.push((crate::settings::Tier::Static, t.vectors.as_ref()));
        }
        crate::verify::verify(
            &self.store,
            self.searcher.text(),
            &graphs,
            &|hash| {
                self.embeds
                    .as_ref()
                    .is_some_and(|q| q.lock().unwrap_or_else(|p| p.into_inner()).contains(hash))
            },
            chunker,
            &self.index_dir,
        )
    }

    /// Verifies, hands the differing paths to the engine (forget, then reconcile), and
    /// verifies again.
    fn repair(&self) -> Result<Vec<crate::verify::Difference>> {
        let Some(repairs) = &self.repairs else {
            anyhow::bail!(
                "this process cannot repair the index (a one-shot `vigil index` owns it); run `vigil verify --repair` when it has finished"
            );
        };
        let differences = self.verify()?;
        if differences.is_empty() {
            return Ok(differences);
        }
        let keys = crate::verify::differing_paths(&differences);
        let (reply, done) = crossbeam_channel::bounded(1);
        repairs
            .send(crate::engine::Repair { keys, reply })
            .map_err(|_| anyhow::anyhow!("the engine has stopped"))?;
        match done.recv_timeout(REPAIR_WAIT) {
            Ok(Ok(())) => self.verify(),
            Ok(Err(message)) => anyhow::bail!("repair failed: {message}"),
            Err(_) => anyhow::bail!("the repair did not finish within {REPAIR_WAIT:?}"),
        }
    }
}

impl Backend {
    fn files(&self, state: Option<FileState>) -> Result<Vec<FileEntry>> {
        Ok(self
            .store
            .all_files()?
            .into_iter()
            .filter(|(_, r)| state.is_none_or(|s| s == r.state))
            .map(|(k, r)| FileEntry {
                path: key_display(&k),
                state: r.state,
                reason: r.reason,
                size: r.size,
            })
            .collect())
    }
}

/// One file as `Request::Files` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub state: FileState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes.
    pub size: u64,
}
