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
