//! settings: what the user asked for, as plain values.
//!
//! The lowest layer of configuration: no parsing, no files, no command line. `config` fills
//! these from flags and the configuration file; `scan` and `engine` take them as they are.

use std::path::PathBuf;

/// One watched tree, with optional globs relative to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    pub path: PathBuf,
    /// Only files matching one of these globs are indexed (all when empty).
    #[serde(default)]
    pub include: Vec<String>,
    /// Files and directories matching one of these globs are never indexed.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl RootSpec {
    /// A root with no globs.
    pub fn plain(path: PathBuf) -> Self {
        Self {
            path,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

/// How long history and unused embeddings are kept (see `engine::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub history_max_age: std::time::Duration,
    pub history_max_rows: u64,
    pub unused_embeddings: std::time::Duration,
}

impl Default for Retention {
    /// 90 days and 1,000,000 rows of history; unused embeddings for 24 hours.
    fn default() -> Self {
        Self {
            history_max_age: std::time::Duration::from_secs(90 * 24 * 3600),
            history_max_rows: 1_000_000,
            unused_embeddings: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// Which embedding tiers run (`--embed`, `embed = "…"` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedTiers {
    /// Only the static model: every chunk gets a vector at about text-indexing speed.
    Static,
    /// Only the transformer (all-MiniLM-L6-v2): better vectors, ~20 chunks/s on two cores.
    Transformer,
    /// Static vectors at once, transformer vectors in the background; search uses the
    /// transformer's where they exist.
    #[default]
    Both,
}

impl EmbedTiers {
    /// Whether the static tier runs.
    pub fn static_tier(self) -> bool {
        matches!(self, Self::Static | Self::Both)
    }

    /// Whether the transformer tier runs.
    pub fn transformer(self) -> bool {
        matches!(self, Self::Transformer | Self::Both)
    }
}

/// One embedding tier. Their vectors live apart: the two models' vector spaces differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Static,
    Transformer,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Transformer => "transformer",
        }
    }
}

/// How much CPU the transformer tier may take in the background (a watcher's embed worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedBudget {
    /// ONNX Runtime's threads per batch (`None`: one per core).
    pub threads: Option<usize>,
    /// The embed worker's nice value (0 = normal priority, 19 = lowest); its ONNX threads
    /// inherit it.
    pub nice: i32,
}

impl Default for EmbedBudget {
    /// All cores, at nice 10: the catch-up yields to whatever else the machine does.
    fn default() -> Self {
        Self {
            threads: None,
            nice: 10,
        }
    }
}

/// Bounds on extracting the text of one document (`pipeline::extract`), in a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DocumentLimits {
    /// Wall-clock time before the extractor is killed, in milliseconds.
    pub time_ms: u64,
    /// Address space of the extractor process, in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Longest extracted text kept, in bytes; a document with more is skipped with a reason.
    pub text_bytes: u64,
}

impl Default for DocumentLimits {
    /// 30 s, 1 GiB, 16 MiB.
    fn default() -> Self {
        Self {
            time_ms: 30_000,
            memory_bytes: 1 << 30,
            text_bytes: 16 << 20,
        }
    }
}

/// The models an invocation uses, by tier (`None`: the tier does not run).
#[derive(Debug, Clone, Default)]
pub struct Models {
    /// The transformer, when its tier runs.
    pub transformer: Option<crate::model::ModelFiles>,
    /// The static model's directory, when its tier runs.
    pub static_dir: Option<std::path::PathBuf>,
}
