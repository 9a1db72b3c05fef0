//! server: how does another process ask the running watcher?
//!
//! While `vigil watch` owns an index, it answers on the Unix socket `INDEX_DIR/vigil.sock`
//! (mode 0600): one JSON request line in, one JSON response line out. Each connection gets
//! its own thread and read-only handles, so a query never blocks the watcher. The commands
//! `search`, `status` and `history` try the socket first and open the index directly when
//! nothing answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::records::{FileState, HistoryRow, key_display};
use crate::search::{SearchRequest, SearchResponse, Searcher};
use crate::status::{StatusCell, StatusSnapshot};
use crate::store::Store;

/// Longest request line accepted, bytes.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// A client that sends nothing for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Response {
    Search(SearchResponse),
    Status(StatusSnapshot),
    History { rows: Vec<HistoryRow> },
    Files { files: Vec<FileEntry> },
    Error { message: String },
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
}

impl Backend {
    /// Answers one request (also used directly by the CLI when no watcher runs).
    pub fn answer(&self, request: &Request) -> Response {
        let result = match request {
            Request::Search(req) => self.searcher.search(req).map(Response::Search),
            Request::Status => Ok(Response::Status(self.status.get())),
            Request::Files { state } => self.files(*state).map(|files| Response::Files { files }),
            Request::History { path, limit } => self
                .store
                .history(path.as_deref().map(str::as_bytes), *limit)
                .map(|rows| Response::History { rows }),
        };
        result.unwrap_or_else(|e| Response::Error {
            message: format!("{e:#}"),
        })
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

/// Removes the socket file when the server stops.
pub struct ServerGuard(PathBuf);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the socket (replacing a stale one) and serves on a background thread.
///
/// Errors: the socket cannot be bound (e.g. the index directory is read-only).
pub fn serve(index_dir: &Path, backend: Backend) -> Result<ServerGuard> {
    let path = socket_path(index_dir);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("{}: cannot listen", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot set mode 0600", path.display()))?;
    std::thread::Builder::new()
        .name("vigil-socket".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let backend = backend.clone();
                let _ = std::thread::Builder::new()
                    .name("vigil-client".into())
                    .spawn(move || handle(stream, &backend));
            }
        })?;
    Ok(ServerGuard(path))
}

fn handle(stream: UnixStream, backend: &Backend) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new((&stream).take(MAX_REQUEST_BYTES)).read_line(&mut line);
    let response = match read {
        Ok(_) if !line.ends_with('\n') => Response::Error {
            message: format!("request too long or unterminated (limit {MAX_REQUEST_BYTES} bytes)"),
        },
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => backend.answer(&request),
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        },
        Err(e) => Response::Error {
            message: format!("cannot read request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let _ = (&stream).write_all(&out);
}

/// Asks the watcher that owns `index_dir`. `Ok(None)` when no watcher answers (no socket,
/// or a stale one).
///
/// Errors: the watcher answered with an error, or broke off mid-answer.
pub fn ask(index_dir: &Path, request: &Request) -> Result<Option<Response>> {
    let path = socket_path(index_dir);
    let stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot connect", path.display())),
    };
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .with_context(|| format!("{}: cannot send", path.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .with_context(|| format!("{}: no answer", path.display()))?;
    match serde_json::from_str::<Response>(&answer) {
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(r) => Ok(Some(r)),
        Err(e) => Err(e).with_context(|| format!("{}: malformed answer", path.display())),
    }
}
