//! config: where things are, resolved once from flags, environment and defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::Cli;
use crate::model;

/// The default index directory: `$XDG_DATA_HOME/vigil/index`.
pub fn default_index_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "vigil")
        .map(|d| d.data_dir().join("index"))
        .unwrap_or_else(|| PathBuf::from(".vigil-index"))
}

/// The index directory of this invocation.
pub fn index_dir(cli: &Cli) -> PathBuf {
    cli.index.clone().unwrap_or_else(default_index_dir)
}

/// The embedding tiers of this invocation: `--embed`, then `embed` in the file, else both.
pub fn embed_tiers(cli: &Cli, file: &ConfigFile) -> EmbedTiers {
    cli.embed
        .map(EmbedTiers::from)
        .or(file.embed)
        .unwrap_or_default()
}

/// The models of this invocation: none with `--no-embed` or `embeddings = false`; else the
/// given (flag, then file) or default model, fetched on first use, and for the static tier
/// its distillation (made on first use, ~20 s).
///
/// Errors: a model cannot be had (the message says why and how to fix it).
pub fn models(cli: &Cli, file: &ConfigFile) -> Result<Models> {
    if cli.no_embed || file.embeddings == Some(false) {
        return Ok(Models::default());
    }
    let tiers = embed_tiers(cli, file);
    let dir = cli.model_dir.as_deref().or(file.model_dir.as_deref());
    let files = model::resolve(dir, true)
        .context("embeddings need a model (or run text-only with --no-embed)")?;
    let static_dir = match tiers {
        EmbedTiers::Transformer => None,
        EmbedTiers::Static => Some(crate::pipeline::distil::ensure(&files)?),
        // Both: without a static model the transformer tier runs alone (and reports its own
        // errors, with retries).
        EmbedTiers::Both => crate::pipeline::distil::ensure(&files)
            .inspect_err(|e| tracing::warn!("no static tier: {e:#}"))
            .ok(),
    };
    Ok(Models {
        transformer: tiers.transformer().then_some(files),
        static_dir,
    })
}

/// Whether an index exists in `dir`.
pub fn index_exists(dir: &Path) -> bool {
    dir.join("index.redb").is_file()
}

pub use crate::settings::{DocumentLimits, EmbedBudget, EmbedTiers, Models, Retention, RootSpec};

/// A size in the config file: bytes, or a string such as "10M".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// The TOML configuration file (`--config FILE`, default `$XDG_CONFIG_HOME/vigil/config.toml`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub roots: Vec<RootSpec>,
    /// ms.
    pub debounce_ms: Option<u64>,
    /// Poll the roots every this many ms instead of using inotify.
    pub poll_ms: Option<u64>,
    pub max_file_size: Option<Size>,
    /// Threads that hash and chunk files.
    pub workers: Option<usize>,
    /// `false` runs text-only.
    pub embeddings: Option<bool>,
    /// Which embedding tiers run: "static", "transformer" or "both" (the default).
    pub embed: Option<EmbedTiers>,
    /// ONNX Runtime threads of the transformer tier [default: `workers`, else one per core].
    pub embed_threads: Option<usize>,
    /// Nice value (0..=19) of a watcher's transformer-tier worker [default: 10].
    pub embed_nice: Option<i32>,
    pub model_dir: Option<PathBuf>,
    /// TCP address of the HTTP API (loopback unless `listen_public`).
    pub listen: Option<std::net::SocketAddr>,
    pub listen_public: Option<bool>,
    /// How object-storage (`s3://`) roots are reached and polled.
    pub s3: Option<S3File>,
    /// How long history and unused embeddings are kept.
    pub retention: Option<RetentionFile>,
    /// Bounds on extracting the text of PDFs, notebooks and HTML pages.
    pub documents: Option<DocumentsFile>,
}

/// `[documents]` in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsFile {
    /// An extraction running longer is stopped and the file recorded as failed, e.g. "30s".
    pub timeout: Option<String>,
    /// Memory an extraction may take, e.g. "1G".
    pub max_memory: Option<Size>,
    /// A document whose extracted text is longer is skipped, e.g. "16M".
    pub max_text_size: Option<Size>,
}

/// The `[documents]` table over the defaults.
///
/// Errors: a duration or size that does not parse (named by key), or a zero.
pub fn documents(file: Option<&DocumentsFile>) -> Result<DocumentLimits> {
    let mut d = DocumentLimits::default();
    let Some(file) = file else { return Ok(d) };
    if let Some(text) = &file.timeout {
        let t = humantime::parse_duration(text)
            .map_err(|e| anyhow::anyhow!("documents.timeout = {text:?}: {e}"))?;
        d.time_ms = t.as_millis() as u64;
    }
    if let Some(size) = &file.max_memory {
        d.memory_bytes = size_bytes("documents.max_memory", size)?;
    }
    if let Some(size) = &file.max_text_size {
        d.text_bytes = size_bytes("documents.max_text_size", size)?;
    }
    if d.time_ms == 0 || d.memory_bytes == 0 || d.text_bytes == 0 {
        anyhow::bail!("[documents]: timeout, max_memory and max_text_size must not be 0");
    }
    Ok(d)
}

/// `[retention]` in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    /// History rows older than this are removed, e.g. "90d".
    pub history_max_age: Option<String>,
    /// At most this many history rows are kept (the newest).
    pub history_max_rows: Option<u64>,
    /// An embedding no chunk uses any more is kept this long, so that a revert reuses it,
    /// e.g. "24h".
    pub unused_embeddings: Option<String>,
}

/// The `[retention]` table over the defaults.
///
/// Errors: a duration that does not parse (named by key).
pub fn retention(file: Option<&RetentionFile>) -> Result<Retention> {
    let mut r = Retention::default();
    let Some(file) = file else { return Ok(r) };
    let duration = |key: &str, text: &str| {
        humantime::parse_duration(text)
            .map_err(|e| anyhow::anyhow!("retention.{key} = {text:?}: {e}"))
    };
    if let Some(t) = &file.history_max_age {
        r.history_max_age = duration("history_max_age", t)?;
    }
    if let Some(n) = file.history_max_rows {
        r.history_max_rows = n;
    }
    if let Some(t) = &file.unused_embeddings {
        r.unused_embeddings = duration("unused_embeddings", t)?;
    }
    Ok(r)
}

/// `[s3]` in the configuration file. Credentials are never read from here: they come from
/// the standard AWS environment variables.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// Endpoint URL of an S3-compatible service (MinIO, Ceph, R2…); path-style addressing.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain http to a host that is not loopback.
    pub allow_http: Option<bool>,
    /// Time between polls, e.g. "30s", "5m".
    pub poll_interval: Option<String>,
    /// Objects downloaded at once, per root.
    pub downloads: Option<usize>,
}

fn poll_interval_ms(text: &str) -> Result<u64> {
    let d = humantime::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("poll_interval = {text:?}: {e}"))?;
    Ok(d.as_millis() as u64)
}

/// The default configuration file, if the user has one.
pub fn default_config_file() -> Option<PathBuf> {
    let path = directories::ProjectDirs::from("", "", "vigil")?
        .config_dir()
        .join("config.toml");
    path.is_file().then_some(path)
}

/// Reads and validates a configuration file.
///
/// Errors: unreadable, not TOML, unknown keys, an invalid glob or size, a root that does not
/// exist, or workers out of 1..=256; every message names the file and the key.
pub fn load_file(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let file: ConfigFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    validate(&file).with_context(|| format!("{}: invalid configuration", path.display()))?;
    Ok(file)
}

fn validate(file: &ConfigFile) -> Result<()> {
    for root in &file.roots {
        if crate::s3::is_remote(&root.path) {
            crate::s3::S3Url::parse(&root.path.to_string_lossy())?;
        } else {
            root.path
                .canonicalize()
                .with_context(|| format!("root {}", root.path.display()))?;
        }
        for g in root.include.iter().chain(&root.exclude) {
            globset::Glob::new(g)
                .with_context(|| format!("root {}: glob {g:?}", root.path.display()))?;
        }
    }
    if let Some(size) = &file.max_file_size {
        size_bytes("max_file_size", size)?;
    }
    retention(file.retention.as_ref())?;
    documents(file.documents.as_ref())?;
    if let Some(s3) = &file.s3 {
        if let Some(text) = &s3.poll_interval {
            poll_interval_ms(text)?;
        }
        if s3.downloads == Some(0) {
            anyhow::bail!("[s3] downloads = 0: must be at least 1");
        }
    }
    if let Some(w) = file.workers
        && !(1..=256).contains(&w)
    {
        anyhow::bail!("workers = {w}: must be 1..=256");
    }
    if let Some(t) = file.embed_threads
        && !(1..=256).contains(&t)
    {
        anyhow::bail!("embed_threads = {t}: must be 1..=256");
    }
    if let Some(n) = file.embed_nice
        && !(0..=19).contains(&n)
    {
        anyhow::bail!("embed_nice = {n}: must be 0..=19");
    }
    if let Some(addr) = file.listen
        && !addr.ip().is_loopback()
        && file.listen_public != Some(true)
    {
        anyhow::bail!(
            "listen = {addr}: not loopback; set listen_public = true (and VIGIL_API_TOKEN)"
        );
    }
    Ok(())
}

/// A size in bytes; `key` names it in the error.
fn size_bytes(key: &str, size: &Size) -> Result<u64> {
    match size {
        Size::Bytes(n) => Ok(*n),
        Size::Text(s) => crate::cli::parse_size(s).map_err(|e| anyhow::anyhow!("{key}: {e}")),
    }
}

/// What a run of `index` or `watch` uses, after merging flags over the file over defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Canonical roots.
    pub roots: Vec<RootSpec>,
    pub debounce_ms: u64,
    /// Polling interval (ms) instead of inotify, if any.
    pub poll_ms: Option<u64>,
    /// Bytes.
    pub max_file_size: u64,
    pub workers: Option<usize>,
    /// CPU the transformer tier may take.
    pub embed_budget: EmbedBudget,
    pub listen: Option<std::net::SocketAddr>,
    pub listen_public: bool,
    /// How object-storage roots are reached and polled.
    pub s3: crate::s3::S3Options,
    pub retention: Retention,
    /// Bounds on extracting documents.
    pub documents: DocumentLimits,
}

impl Settings {
    /// How the watcher notices changes.
    pub fn watch_mode(&self) -> crate::watch::Mode {
        match self.poll_ms {
            Some(ms) => crate::watch::Mode::Poll(std::time::Duration::from_millis(ms.max(10))),
            None => crate::watch::Mode::Native,
        }
    }
}

/// Flag values that override the file (`None`: not given on the command line).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub paths: Vec<PathBuf>,
    pub max_file_size: Option<u64>,
    pub debounce_ms: Option<u64>,
    pub poll_ms: Option<u64>,
    pub listen: Option<std::net::SocketAddr>,
    pub listen_public: bool,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_allow_http: bool,
    pub s3_downloads: Option<usize>,
    /// ms.
    pub poll_interval_ms: Option<u64>,
}

/// The transformer tier's CPU budget from the file: `embed_threads`, else `workers`, else
/// one thread per core; `embed_nice`, else 10.
pub fn embed_budget(file: &ConfigFile) -> EmbedBudget {
    EmbedBudget {
        threads: file.embed_threads.or(file.workers),
        nice: file.embed_nice.unwrap_or(EmbedBudget::default().nice),
    }
}

/// Merges flags over the file over defaults.
///
/// Errors: no roots at all, or a root that cannot be resolved (named, with the reason).
pub fn settings(file: &ConfigFile, flags: &Overrides) -> Result<Settings> {
    let specs: Vec<RootSpec> = if flags.paths.is_empty() {
        file.roots.clone()
    } else {
        flags.paths.iter().cloned().map(RootSpec::plain).collect()
    };
    if specs.is_empty() {
        anyhow::bail!(
            "no roots: give PATHs on the command line or [[roots]] in the configuration file"
        );
    }
    let mut roots: Vec<RootSpec> = Vec::new();
    for spec in specs {
        let path = if crate::s3::is_remote(&spec.path) {
            crate::s3::S3Url::parse(&spec.path.to_string_lossy())?.root()
        } else {
            spec.path
                .canonicalize()
                .with_context(|| format!("{}: cannot index", spec.path.display()))?
        };
        if !roots.iter().any(|r| r.path == path) {
            roots.push(RootSpec { path, ..spec });
        }
    }
    let file_size = file
        .max_file_size
        .as_ref()
        .map(|s| size_bytes("max_file_size", s))
        .transpose()?;
    let s3_file = file.s3.clone().unwrap_or_default();
    let file_interval = s3_file
        .poll_interval
        .as_deref()
        .map(poll_interval_ms)
        .transpose()?;
    let s3 = crate::s3::S3Options {
        endpoint: flags.s3_endpoint.clone().or(s3_file.endpoint),
        region: flags.s3_region.clone().or(s3_file.region),
        allow_http: flags.s3_allow_http || s3_file.allow_http == Some(true),
        poll_interval_ms: flags
            .poll_interval_ms
            .or(file_interval)
            .unwrap_or(crate::s3::DEFAULT_POLL_INTERVAL.as_millis() as u64),
        downloads: flags
            .s3_downloads
            .or(s3_file.downloads)
            .unwrap_or(crate::s3::DEFAULT_DOWNLOADS)
            .max(1),
    };
    Ok(Settings {
        roots,
        debounce_ms: flags
            .debounce_ms
            .or(file.debounce_ms)
            .unwrap_or(crate::watch::DEFAULT_DEBOUNCE_MS),
        poll_ms: flags.poll_ms.or(file.poll_ms),
        max_file_size: flags
            .max_file_size
            .or(file_size)
            .unwrap_or(crate::scan::DEFAULT_MAX_FILE_SIZE),
        workers: file.workers,
        embed_budget: embed_budget(file),
        listen: flags.listen.or(file.listen),
        listen_public: flags.listen_public || file.listen_public == Some(true),
        s3,
        retention: retention(file.retention.as_ref())?,
        documents: documents(file.documents.as_ref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_parses_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("notes");
        std::fs::create_dir(&root).unwrap();
        let text = format!(
            "debounce_ms = 50\nmax_file_size = \"2M\"\nworkers = 2\nembeddings = false\n\n[[roots]]\npath = {:?}\ninclude = [\"**/*.md\"]\nexclude = [\"drafts/**\"]\n",
            root.display().to_string()
        );
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, text).unwrap();
        let file = load_file(&path).unwrap();
        let s = settings(&file, &Overrides::default()).unwrap();
        assert_eq!((s.debounce_ms, s.max_file_size), (50, 2 * 1024 * 1024));
        assert_eq!(s.roots[0].include, vec!["**/*.md"]);
        let s = settings(
            &file,
            &Overrides {
                max_file_size: Some(10),
                debounce_ms: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((s.debounce_ms, s.max_file_size), (7, 10));
    }

    #[test]
    fn bucket_roots_and_the_s3_table_parse_and_flags_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(
            &path,
            "[[roots]]\npath = \"s3://kb/docs/\"\ninclude = [\"**/*.md\"]\n\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\npoll_interval = \"2m\"\ndownloads = 8\n",
        )
        .unwrap();
        let file = load_file(&path).unwrap();
        let s = settings(&file, &Overrides::default()).unwrap();
        assert_eq!(s.roots[0].path, PathBuf::from("s3://kb/docs"));
        assert_eq!((s.s3.poll_interval_ms, s.s3.downloads), (120_000, 8));
        assert_eq!(s.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let flags = Overrides {
            poll_interval_ms: Some(500),
            s3_endpoint: Some("https://s3.example.com".into()),
            ..Default::default()
        };
        let s = settings(&file, &flags).unwrap();
        assert_eq!(s.s3.poll_interval_ms, 500);
        assert_eq!(s.s3.endpoint.as_deref(), Some("https://s3.example.com"));
        for (text, expect) in [
            (
                "[[roots]]\npath = \"s3://Bad_Name\"\n",
                "invalid bucket name",
            ),
            ("[s3]\npoll_interval = \"often\"\n", "poll_interval"),
            ("[s3]\ndownloads = 0\n", "downloads"),
            ("[s3]\nsecret = \"x\"\n", "unknown field"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", load_file(&path).unwrap_err());
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn bad_config_files_are_rejected_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        for (text, expect) in [
            ("debounce = 5\n", "unknown field"),
            ("[[roots]]\npath = \"/no/such/dir\"\n", "/no/such/dir"),
            ("workers = 0\n", "workers"),
            ("max_file_size = \"ten\"\n", "max_file_size"),
            ("listen = \"0.0.0.0:7000\"\n", "not loopback"),
            (
                "[retention]\nhistory_max_age = \"soon\"\n",
                "history_max_age",
            ),
            ("[documents]\ntimeout = \"soon\"\n", "documents.timeout"),
            (
                "[documents]\nmax_memory = \"lots\"\n",
                "documents.max_memory",
            ),
            ("[documents]\nmax_text_size = 0\n", "must not be 0"),
            ("[documents]\npages = 3\n", "unknown field"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", load_file(&path).unwrap_err());
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }
}
