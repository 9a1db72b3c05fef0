//! search: which chunks answer this query?
//!
//! `text` ranks chunks by BM25 (tantivy), `semantic` by cosine similarity of embeddings (HNSW
//! kNN), and `hybrid` fuses both rankings with Reciprocal Rank Fusion (Cormack, Clarke and
//! Büttcher, SIGIR 2009, k = 60): score = Σ 1 / (k + rank).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::index::text::TextIndex;
use crate::index::vector::VectorIndex;
use crate::model::ModelFiles;
use crate::pipeline::embed::Embedder;
use crate::store::Store;

/// RRF constant (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;
/// Lines of a chunk shown as its snippet.
const SNIPPET_LINES: usize = 6;

/// How to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Hybrid,
    Text,
    Semantic,
}

/// A search as the CLI, the socket and the dashboard ask it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchRequest {
    pub query: String,
    pub mode: Mode,
    pub limit: usize,
    /// Glob on the absolute path; a relative glob matches at any depth (`*.rs`, `src/**`).
    pub path: Option<String>,
    /// Also return each hit's whole chunk text (the dashboard's preview).
    #[serde(default)]
    pub include_text: bool,
}

/// One matching chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: u32,
    pub end_line: u32,
    /// BM25 (text), cosine similarity (semantic) or RRF score (hybrid); higher is better.
    pub score: f32,
    /// The modes whose ranking contained this chunk.
    pub modes: Vec<Mode>,
    /// Up to six lines of the chunk, starting at the first line that contains a query word.
    pub snippet: String,
    /// Line number of the first snippet line.
    pub snippet_line: u32,
    /// The whole chunk, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Why a mode could not be used (e.g. text-only index), if any.
    pub warnings: Vec<String>,
}

/// Answers searches over an index; cheap to share between threads.
#[derive(Clone)]
pub struct Searcher {
    store: Arc<Store>,
    text: Arc<TextIndex>,
    vectors: Option<Arc<VectorIndex>>,
    model: Option<ModelFiles>,
    /// Loaded on the first semantic query; separate from the indexing embedder so a query
    /// never waits behind a batch.
    embedder: Arc<Mutex<Option<Embedder>>>,
}

impl Searcher {
    pub fn new(
        store: Arc<Store>,
        text: Arc<TextIndex>,
        vectors: Option<Arc<VectorIndex>>,
        model: Option<ModelFiles>,
    ) -> Self {
        Self {
            store,
            text,
            vectors,
            model,
            embedder: Arc::new(Mutex::new(None)),
        }
    }

    /// The text index searched.
    pub fn text(&self) -> &TextIndex {
        &self.text
    }

    /// The vector index searched, if any.
    pub fn vectors(&self) -> Option<&VectorIndex> {
        self.vectors.as_deref()
    }

    /// Runs a search.
    ///
    /// Errors: an invalid `--path` glob, `semantic` mode on a text-only index, or an index
    /// failure. In `hybrid` mode a missing model degrades to text with a warning.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        let glob = match &req.path {
            Some(p) => Some(compile_glob(p)?),
            None => None,
        };
        let limit = req.limit.max(1);
        // Fetch more candidates than asked: fusion and the path filter both drop some.
        let depth = if glob.is_some() {
            (limit * 20).max(200)
        } else {
            (limit * 4).max(40)
        };
        let mut warnings = Vec::new();
        let text_ranked = if req.mode != Mode::Semantic {
            self.text
                .search(&req.query, depth)?
                .into_iter()
                .map(|h| (h.chunk_id, h.score))
                .collect()
        } else {
            Vec::new()
        };
        let semantic_ranked = if req.mode != Mode::Text {
            match self.semantic(&req.query, depth) {
                Ok(r) => r,
                Err(e) if req.mode == Mode::Hybrid => {
                    warnings.push(format!("semantic ranking unavailable, text only: {e:#}"));
                    Vec::new()
                }
                Err(e) => return Err(e),
            }
        } else {
            Vec::new()
        };
        let fused = fuse(req.mode, &text_ranked, &semantic_ranked);
        let ids: Vec<u64> = fused.iter().map(|(id, ..)| *id).collect();
        let records: HashMap<u64, _> = self.store.chunks(&ids)?.into_iter().collect();
        let mut hits = Vec::new();
        let mut chosen = Vec::new();
        for (id, score, modes) in fused {
            // A chunk missing from the store is an orphan of an interrupted batch: skip it.
            let Some(rec) = records.get(&id) else {
                continue;
            };
            if glob.as_ref().is_some_and(|g| !g.is_match(&rec.path)) {
                continue;
            }
            chosen.push((id, score, modes, rec.clone()));
            if chosen.len() == limit {
                break;
            }
        }
        let chosen_ids: Vec<u64> = chosen.iter().map(|c| c.0).collect();
        let docs = self.text.docs(&chosen_ids)?;
        for (id, score, modes, rec) in chosen {
            let text = docs.get(&id).map(|d| d.text.as_str()).unwrap_or("");
            let (snippet_line, snippet) = snippet(text, rec.start_line, &req.query);
            hits.push(Hit {
                path: rec.path,
                start_line: rec.start_line,
                end_line: rec.end_line,
                score,
                modes,
                snippet,
                snippet_line,
                text: req.include_text.then(|| text.to_string()),
            });
        }
        Ok(SearchResponse { hits, warnings })
    }

    fn semantic(&self, query: &str, k: usize) -> Result<Vec<(u64, f32)>> {
        let Some(vectors) = &self.vectors else {
            bail!("this index has no embeddings (built text-only, or no model available)");
        };
        let Some(model) = &self.model else {
            bail!("no embedding model available")
        };
        let mut guard = self.embedder.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Embedder::load(model)?);
        }
        let embedder = guard.as_mut().context("embedder loaded above")?;
        let query_vector = embedder
            .embed(&[query])?
            .pop()
            .context("the model returned no vector")?;
        drop(guard);
        Ok(vectors
            .search(&query_vector, k, |_| true)?
            .into_iter()
            .map(|h| (h.chunk_id, h.similarity))
            .collect())
    }
}

/// Compiles a `--path` glob; a relative glob may match at any depth.
///
/// Errors: the glob is malformed (the message quotes it).
pub fn compile_glob(pattern: &str) -> Result<GlobMatcher> {
    let full = if pattern.starts_with('/') || pattern.starts_with("**") {
        pattern.to_string()
    } else {
        format!("**/{pattern}")
    };
    Ok(GlobBuilder::new(&full)
        .literal_separator(true)
        .build()
        .with_context(|| format!("invalid --path glob {pattern:?}"))?
        .compile_matcher())
}

/// Orders candidates: by score within one mode, by RRF across both in hybrid.
fn fuse(mode: Mode, text: &[(u64, f32)], semantic: &[(u64, f32)]) -> Vec<(u64, f32, Vec<Mode>)> {
    let mut by_id: HashMap<u64, (f32, Vec<Mode>)> = HashMap::new();
    for (ranking, which) in [(text, Mode::Text), (semantic, Mode::Semantic)] {
        for (rank, &(id, score)) in ranking.iter().enumerate() {
            let entry = by_id.entry(id).or_insert((0.0, Vec::new()));
            entry.0 += match mode {
                Mode::Hybrid => 1.0 / (RRF_K + rank as f32 + 1.0),
                _ => score,
            };
            entry.1.push(which);
        }
    }
    let mut fused: Vec<(u64, f32, Vec<Mode>)> =
        by_id.into_iter().map(|(id, (s, m))| (id, s, m)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// Up to [`SNIPPET_LINES`] lines of `text`, from the first line containing a query word
/// (case-insensitive); returns the 1-based line number of its first line too.
fn snippet(text: &str, start_line: u32, query: &str) -> (u32, String) {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| {
            let l = l.to_lowercase();
            words.iter().any(|w| l.contains(w.as_str()))
        })
        .unwrap_or(0);
    let shown = lines[first.min(lines.len())..]
        .iter()
        .take(SNIPPET_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    (start_line + first as u32, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_prefers_chunks_found_by_both_rankings() {
        let text = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let semantic = [(3, 0.9), (4, 0.8)];
        let fused = fuse(Mode::Hybrid, &text, &semantic);
        assert_eq!(fused[0].0, 3);
        assert_eq!(fused[0].2, vec![Mode::Text, Mode::Semantic]);
        let expected = 1.0 / 63.0 + 1.0 / 61.0;
        assert!((fused[0].1 - expected).abs() < 1e-6);
    }

    #[test]
    fn relative_globs_match_at_any_depth() {
        assert!(compile_glob("*.rs").unwrap().is_match("/a/b/c.rs"));
        assert!(compile_glob("src/**").unwrap().is_match("/x/src/y/z.md"));
        assert!(!compile_glob("src/*.rs").unwrap().is_match("/x/src/y/z.rs"));
        assert!(compile_glob("[").is_err());
    }

    #[test]
    fn snippet_starts_at_first_matching_line() {
        let (line, s) = snippet("a\nb\nthe Needle\nc", 10, "needle");
        assert_eq!(line, 12);
        assert!(s.starts_with("the Needle"));
    }
}
