//! mcp: how does a coding agent ask?
//!
//! A Model Context Protocol server (the official Rust SDK, `rmcp`) over stdio. Every tool call
//! goes to the watcher that owns the index, through its Unix socket, as a fresh connection:
//! a watcher that restarts is reached again on the next call, and a missing or stuck one is a
//! clear tool error within [`CALL_TIMEOUT`], never a hang. It never opens the index itself.
//!
//! Tools: `search` (with freshness, and `sync` for read-your-writes), `status`, `changes`
//! (what changed lately, from the history) and `read` (lines of a file inside a watched root;
//! paths that escape are refused). Their input schemas are plain JSON Schema objects with
//! no `format` keywords and no nullable type lists, which strict clients accept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

use crate::api::{Request, Response, client};
use crate::search::{Mode, SearchRequest};

/// Longest a tool call waits for the watcher (a `sync` waits up to 10 s of this).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most lines `read` returns at once.
pub const MAX_READ_LINES: usize = 2000;
/// Most bytes of a file `read` looks at.
pub const MAX_READ_BYTES: u64 = 4 * 1024 * 1024;

/// Arguments of `search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// Words, an identifier (parseConfig, Sinatra::Base), a path, or a question.
    pub query: String,
    /// "hybrid" (words and meaning, the default), "text" (BM25 only) or "semantic".
    #[serde(default)]
    pub mode: Option<String>,
    /// Maximum number of hits, 1-100 (default 10).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only paths matching this glob; a relative glob matches at any depth ("*.rs", "src/**").
    #[serde(default)]
    pub path: Option<String>,
    /// At most this many chunks of one file (default 3).
    #[serde(default)]
    pub per_file: Option<u32>,
    /// First wait until every change made before this call is applied (read-your-writes).
    #[serde(default)]
    pub sync: Option<bool>,
}

/// Arguments of `changes`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ChangesArgs {
    /// Only changes of the last this many minutes (default 60).
    #[serde(default)]
    pub minutes: Option<u32>,
    /// Only changes at or after this time, in ms since the Unix epoch (overrides minutes).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only this file, or files below this directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Maximum number of changes, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Arguments of `read`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadArgs {
    /// A file inside a watched root: absolute, or relative to a root.
    pub path: String,
    /// First line, 1-based (default 1).
    #[serde(default)]
    pub start_line: Option<u32>,
    /// Last line, inclusive (default: start_line + 199).
    #[serde(default)]
    pub end_line: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoArgs {}

/// The MCP server of one index directory.
#[derive(Clone)]
pub struct VigilMcp {
    index_dir: Arc<PathBuf>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl VigilMcp {
    /// A server that asks the watcher of `index_dir`.
    pub fn new(index_dir: PathBuf) -> Self {
        let mut router = ToolRouter::new();
        for mut route in Self::tool_router() {
            let schema = serde_json::Value::Object((*route.attr.input_schema).clone());
            if let serde_json::Value::Object(clean) = strict_schema(schema) {
                route.attr.input_schema = Arc::new(clean);
            }
            router.add_route(route);
        }
        Self {
            index_dir: Arc::new(index_dir),
            tool_router: router,
        }
    }

    #[tool(
        description = "Search the watched code and notes by words and by meaning (BM25 + embeddings, fused). Returns hits (path, lines, score, snippet) and freshness: the time up to which disk changes are applied, files still queued, chunks still waiting for an embedding. Set sync=true to first wait until every change made before this call is searchable."
    )]
    async fn search(&self, Parameters(args): Parameters<SearchArgs>) -> CallToolResult {
        let mode = match args.mode.as_deref() {
            None | Some("hybrid") => Mode::Hybrid,
            Some("text") => Mode::Text,
            Some("semantic") => Mode::Semantic,
            Some(other) => {
                return failure(format!(
                    "unknown mode {other:?}: use hybrid, text or semantic"
                ));
            }
        };
        let limit = args.limit.unwrap_or(10).clamp(1, 100) as usize;
        let mut req = SearchRequest::new(args.query, mode, limit);
        req.path = args.path;
        req.per_file = args.per_file.map(|n| n.max(1) as usize);
        req.sync = args.sync.unwrap_or(false);
        match self.ask(Request::Search(req)).await {
            Ok(Response::Search(res)) => json(&res),
            Ok(_) => failure("unexpected answer from the watcher".into()),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "What the index holds and what the watcher is doing: roots, files indexed/skipped/failed, chunks, embeddings pending and failing, the time up to which changes are applied, errors."
    )]
    async fn status(&self, Parameters(_): Parameters<NoArgs>) -> CallToolResult {
        match self.ask(Request::Status).await {
            Ok(Response::Status(s)) => json(&s),
            Ok(_) => failure("unexpected answer from the watcher".into()),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "What changed on disk lately, newest first: one row per applied change with the file, the kind (created, modified, deleted, renamed, touched, skipped, failed), the time in ms, and chunks added and removed."
    )]
    async fn changes(&self, Parameters(args): Parameters<ChangesArgs>) -> CallToolResult {
        let limit = args.limit.unwrap_or(100).clamp(1, 1000) as usize;
        let since = args.since_ms.unwrap_or_else(|| {
            let minutes = u64::from(args.minutes.unwrap_or(60));
            crate::records::now_ms().saturating_sub(minutes * 60_000)
        });
        let request = Request::History {
            path: args.path,
            limit,
        };
        match self.ask(request).await {
            Ok(Response::History { rows }) => {
                let rows: Vec<_> = rows.into_iter().filter(|r| r.time_ms >= since).collect();
                json(&serde_json::json!({ "since_ms": since, "changes": rows }))
            }
            Ok(_) => failure("unexpected answer from the watcher".into()),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Read lines of a file inside a watched root (at most 2000 lines at once). Paths outside the roots, through '..' or symbolic links, are refused."
    )]
    async fn read(&self, Parameters(args): Parameters<ReadArgs>) -> CallToolResult {
        let roots = match self.ask(Request::Status).await {
            Ok(Response::Status(s)) => s
                .roots
                .iter()
                .filter(|r| !r.starts_with("s3://"))
                .map(PathBuf::from)
                .collect::<Vec<_>>(),
            Ok(_) => return failure("unexpected answer from the watcher".into()),
            Err(e) => return failure(e),
        };
        let result = tokio::task::spawn_blocking(move || read_lines(&roots, &args)).await;
        match result {
            Ok(Ok(v)) => json(&v),
            Ok(Err(e)) => failure(format!("{e:#}")),
            Err(e) => failure(format!("read failed: {e}")),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for VigilMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(
                "vigil",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "vigil keeps a live search index of the watched folders: answers reflect the disk \
             as of the freshness they carry. Use `search` to find code and notes (sync=true \
             after you edit files), `read` to see lines, `changes` for what changed lately.",
            )
    }
}

impl VigilMcp {
    /// Asks the watcher, on a blocking thread, with [`CALL_TIMEOUT`].
    async fn ask(&self, request: Request) -> Result<Response, String> {
        let index_dir = self.index_dir.clone();
        let asked = tokio::task::spawn_blocking(move || ask_watcher(&index_dir, &request));
        match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), asked).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the call failed: {e}")),
            Err(_) => Err(format!(
                "the watcher did not answer within {CALL_TIMEOUT:?} (busy or stuck)"
            )),
        }
    }
}

fn ask_watcher(index_dir: &Path, request: &Request) -> Result<Response, String> {
    match client::ask_within(index_dir, request, CALL_TIMEOUT) {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(format!(
            "no vigil watcher owns the index {} (not started, or it stopped): run `vigil watch \
             ROOTS`, or give the roots to `vigil mcp ROOTS`",
            index_dir.display()
        )),
        Err(e) => {
            let broke = e
                .chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some());
            Err(if broke {
                format!(
                    "the watcher stopped answering during the call ({e:#}); call again once \
                     it runs (`vigil status`)"
                )
            } else {
                format!("{e:#}")
            })
        }
    }
}

/// The lines `args` asks for, if the file lies inside one of `roots` once every symbolic link
/// and `..` is resolved.
fn read_lines(roots: &[PathBuf], args: &ReadArgs) -> anyhow::Result<serde_json::Value> {
    use anyhow::{Context, bail};
    let asked = Path::new(&args.path);
    let candidates: Vec<PathBuf> = if asked.is_absolute() {
        vec![asked.to_path_buf()]
    } else {
        roots.iter().map(|r| r.join(asked)).collect()
    };
    let Some(found) = candidates.iter().find(|c| c.exists()) else {
        bail!("{}: no such file in the watched roots", args.path);
    };
    let real = found
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", found.display()))?;
    let inside = roots.iter().any(|r| {
        r.canonicalize()
            .map(|r| real.starts_with(&r))
            .unwrap_or(false)
    });
    if !inside {
        bail!(
            "{}: refused: it resolves to {}, outside the watched roots",
            args.path,
            real.display()
        );
    }
    if !real.is_file() {
        bail!("{}: not a file", real.display());
    }
    let size = real.metadata()?.len();
    if size > MAX_READ_BYTES {
        bail!(
            "{}: {size} bytes, over the {MAX_READ_BYTES}-byte limit of read",
            real.display()
        );
    }
    let bytes = std::fs::read(&real).with_context(|| format!("{}: cannot read", real.display()))?;
    // A document is read as its extracted text: the lines hits refer to.
    let text = match crate::pipeline::extract::Format::of(&real) {
        Some(format) => {
            let limits = crate::settings::DocumentLimits::default();
            crate::pipeline::extract::isolate::extract(format, &bytes, limits)
                .map_err(|e| anyhow::anyhow!("{}: {e}", real.display()))?
                .text
                .into()
        }
        None => String::from_utf8_lossy(&bytes),
    };
    let total = text.lines().count();
    let start = args.start_line.unwrap_or(1).max(1) as usize;
    let end = args
        .end_line
        .map(|e| e as usize)
        .unwrap_or(start + 199)
        .min(start + MAX_READ_LINES - 1)
        .min(total);
    let lines: Vec<&str> = text
        .lines()
        .skip(start - 1)
        .take(end.saturating_sub(start) + 1)
        .collect();
    Ok(serde_json::json!({
        "path": real.display().to_string(),
        "start_line": start,
        "end_line": end,
        "total_lines": total,
        "text": lines.join("\n"),
    }))
}

fn json(value: &impl serde::Serialize) -> CallToolResult {
    match serde_json::to_string_pretty(value) {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(e) => failure(format!("cannot encode the answer: {e}")),
    }
}

fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// A JSON Schema that strict clients accept: no `$schema`, no `format`, no `default: null`,
/// and an optional field typed by its value type alone (`["integer", "null"]` → `"integer"`;
/// absent means the default).
pub fn strict_schema(schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match schema {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, v)| {
                    k != "$schema" && k != "format" && !(k == "default" && v.is_null())
                })
                .map(|(k, v)| match (k.as_str(), v) {
                    ("type", Value::Array(types)) => {
                        let kept: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                        let v = if kept.len() == 1 {
                            kept.into_iter().next().unwrap_or(Value::Null)
                        } else {
                            Value::Array(kept)
                        };
                        (k, v)
                    }
                    (_, v) => (k, strict_schema(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strict_schema).collect()),
        other => other,
    }
}

/// MCP's streamable-HTTP transport at `/mcp`, for clients that prefer it to stdio: the same
/// server as `vigil mcp`, asking the watcher through its socket. The watcher mounts it on its
/// Unix socket only.
pub fn streamable_http(index_dir: PathBuf) -> axum::Router {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service: StreamableHttpService<
        VigilMcp,
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    > = StreamableHttpService::new(
        move || Ok(VigilMcp::new(index_dir.clone())),
        Default::default(),
        // The socket's clients name any host (curl sends `localhost`, vigil's own `vigil`).
        StreamableHttpServerConfig::default().with_allowed_hosts([
            "vigil",
            "localhost",
            "127.0.0.1",
            "::1",
        ]),
    );
    axum::Router::new().route_service("/mcp", service)
}

/// Serves MCP on stdin/stdout until the client closes it.
///
/// Errors: the runtime cannot start, or the protocol breaks.
pub fn serve_stdio(index_dir: PathBuf) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigil-mcp")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let service = VigilMcp::new(index_dir)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| anyhow::anyhow!("MCP initialisation failed: {e}"))?;
        service
            .waiting()
            .await
            .map_err(|e| anyhow::anyhow!("MCP session ended with an error: {e}"))?;
        Ok(())
    })
}
