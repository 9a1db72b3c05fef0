//! The HTTP/1.1 JSON API (axum on its own tokio runtime).
//!
//! Always on the Unix socket `INDEX_DIR/vigil.sock` (mode 0600); optionally on TCP. A TCP
//! address must be loopback unless `--listen-public` is given, and then every TCP request
//! needs `Authorization: Bearer $VIGIL_API_TOKEN`. Handlers answer from read-only handles on
//! blocking threads, so neither a slow query nor a slow client can hold up the watcher.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::{Backend, Request, Response, socket_path};
use crate::metrics::Metrics;
use crate::records::{FileState, HistoryRow};
use crate::search::{Mode, SearchRequest};

mod routes;

use routes::*;

/// Longest accepted request target (path and query), bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest accepted request body, bytes (no endpoint takes one).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Most hits one search may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Capacity of the event fan-out; a subscriber that lags further loses events (and is told).
const EVENT_BUFFER: usize = 1024;

/// One Server-Sent Event: `change` (an applied change) or `state` (a phase change).
#[derive(Debug, Clone, Serialize)]
pub struct ApiEvent {
    pub event: &'static str,
    pub data: serde_json::Value,
}

/// Where to listen besides the Unix socket.
#[derive(Debug, Clone, Default)]
pub struct ListenConfig {
    pub tcp: Option<SocketAddr>,
    /// Allow a non-loopback TCP address (requires `token`).
    pub public: bool,
    pub token: Option<String>,
}

impl ListenConfig {
    /// Checks the loopback and token rules.
    ///
    /// Errors: a non-loopback address without `--listen-public`, or public without a token.
    pub fn validate(&self) -> Result<()> {
        if let Some(addr) = self.tcp {
            if !addr.ip().is_loopback() && !self.public {
                bail!(
                    "--listen {addr}: not a loopback address; add --listen-public (and set VIGIL_API_TOKEN) to listen beyond this machine"
                );
            }
            if self.public && self.token.as_deref().is_none_or(str::is_empty) {
                bail!("--listen-public needs a token in VIGIL_API_TOKEN");
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AppState {
    backend: Backend,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<ApiEvent>,
}

/// The running API; dropping it stops the server and removes the socket file.
pub struct ApiServer {
    socket: PathBuf,
    events: broadcast::Sender<ApiEvent>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The TCP address actually bound (port 0 resolved), if any.
    pub tcp: Option<SocketAddr>,
}

impl ApiServer {
    /// A sender for events to push to `/events` subscribers.
    pub fn events(&self) -> broadcast::Sender<ApiEvent> {
        self.events.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Starts the API on the index's Unix socket (replacing a stale one) and, if configured, on
/// TCP.
///
/// Errors: an invalid listen configuration, or a socket that cannot be bound.
pub fn serve(
    index_dir: &Path,
    backend: Backend,
    metrics: Arc<Metrics>,
    listen: &ListenConfig,
    socket_extra: Option<Router>,
) -> Result<ApiServer> {
    listen.validate()?;
    let socket = socket_path(index_dir);
    let _ = std::fs::remove_file(&socket);
    let unix = std::os::unix::net::UnixListener::bind(&socket)
        .with_context(|| format!("{}: cannot listen", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot set mode 0600", socket.display()))?;
    unix.set_nonblocking(true)?;
    let tcp = match listen.tcp {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("--listen {addr}: cannot bind"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let state = AppState {
        backend,
        metrics,
        events: events.clone(),
    };
    // Only the owner's socket may repair, and serves the extra routes (MCP).
    let local = match socket_extra {
        Some(extra) => router(state.clone(), true).merge(extra),
        None => router(state.clone(), true),
    };
    let remote = match (&listen.token, listen.public) {
        (Some(token), true) => router(state, false).layer(middleware::from_fn_with_state(
            Arc::new(token.clone()),
            require_token,
        )),
        _ => router(state, false),
    };
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigil-api")
        .enable_all()
        .build()
        .context("cannot start the API runtime")?;
    let thread = std::thread::Builder::new()
        .name("vigil-api-main".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (stop_tx, _) = broadcast::channel::<()>(1);
                let mut servers = Vec::new();
                if let Ok(listener) = tokio::net::UnixListener::from_std(unix) {
                    let mut rx = stop_tx.subscribe();
                    servers.push(tokio::spawn(async move {
                        let _ = axum::serve(listener, local)
                            .with_graceful_shutdown(async move {
                                let _ = rx.recv().await;
                            })
                            .await;
                    }));
                }
                if let Some(tcp) = tcp.and_then(|l| tokio::net::TcpListener::from_std(l).ok()) {
                    let mut rx = stop_tx.subscribe();
                    servers.push(tokio::spawn(async move {
                        let _ = axum::serve(tcp, remote)
                            .with_graceful_shutdown(async move {
                                let _ = rx.recv().await;
                            })
                            .await;
                    }));
                }
                let _ = stop.await;
                let _ = stop_tx.send(());
                // Open SSE streams never end by themselves: give the rest a moment, then go.
                let _ = tokio::time::timeout(Duration::from_secs(1), futures_join(servers)).await;
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
    Ok(ApiServer {
        socket,
        events,
        shutdown: Some(shutdown),
        thread: Some(thread),
        tcp: tcp_addr,
    })
}

/// Forwards applied changes and phase changes to SSE subscribers, on a thread.
pub fn bridge(
    events: broadcast::Sender<ApiEvent>,
    rows: crossbeam_channel::Receiver<HistoryRow>,
    status: crate::status::StatusCell,
) -> Result<()> {
    let wake = status.subscribe();
    std::thread::Builder::new()
        .name("vigil-api-events".into())
        .spawn(move || {
            let mut phase = status.get().phase;
            loop {
                crossbeam_channel::select! {
                    recv(rows) -> row => {
                        let Ok(row) = row else { return };
                        let data = serde_json::to_value(&row).unwrap_or_default();
                        let _ = events.send(ApiEvent { event: "change", data });
                    }
                    recv(wake) -> w => {
                        if w.is_err() { return }
                        let now = status.get();
                        if now.phase != phase {
                            phase = now.phase;
                            let data = serde_json::json!({ "phase": phase, "ready": now.ready });
                            let _ = events.send(ApiEvent { event: "state", data });
                        }
                    }
                }
            }
        })?;
    Ok(())
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// The routes; `/repair` (POST) only with `repair`, for the Unix socket.
fn router(state: AppState, repair: bool) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/search", get(search))
        .route("/history", get(history))
        .route("/files", get(files))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/verify", get(verify));
    let routes = if repair {
        routes.route("/repair", axum::routing::post(self::repair))
    } else {
        routes
    };
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limits))
        .with_state(state)
}

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn limits(req: HttpRequest, next: Next) -> HttpResponse {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target > MAX_URI_BYTES {
        return error(
            StatusCode::URI_TOO_LONG,
            format!("request target over {MAX_URI_BYTES} bytes"),
        );
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > MAX_BODY_BYTES)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
    {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies over {MAX_BODY_BYTES} bytes (or chunked) are refused"),
        );
    }
    next.run(req).await
}

async fn require_token(
    State(token): State<Arc<String>>,
    req: HttpRequest,
    next: Next,
) -> HttpResponse {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    next.run(req).await
}
