//! config: where things are, resolved once from flags, environment and defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::Cli;
use crate::model::{self, ModelFiles};

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

/// The model of this invocation: `None` with `--no-embed`; else the given or default model,
/// fetched on first use.
///
/// Errors: the model cannot be had (the message says why and how to fix it).
pub fn model(cli: &Cli) -> Result<Option<ModelFiles>> {
    if cli.no_embed {
        return Ok(None);
    }
    model::resolve(cli.model_dir.as_deref(), true)
        .map(Some)
        .context("embeddings need a model (or run text-only with --no-embed)")
}

/// Canonical, existing roots.
///
/// Errors: a path does not exist or cannot be resolved (named, with the reason).
pub fn roots(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    for p in paths {
        let root = p
            .canonicalize()
            .with_context(|| format!("{}: cannot index", p.display()))?;
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    Ok(roots)
}

/// Whether an index exists in `dir`.
pub fn index_exists(dir: &Path) -> bool {
    dir.join("index.redb").is_file()
}
