//! search: which chunks answer this query?
//!
//! `text` ranks chunks by BM25 over the code-aware fields of the text index, `semantic` by
//! cosine similarity of embeddings (HNSW kNN), and `hybrid` fuses both. Every mode then goes
//! through the same shaping. The flow of one search:
//!
//! `query::analyze_query` (terms, kind, names) → candidates from each ranking (5 × limit,
//! at least 50, plus the chunks that define a queried name) → `rank::fuse` (weighted RRF) →
//! `--path` filter → `rank::shape` (definition boost, demotion, per-file limit) → hits with snippets, each with its rank in each list and why it moved.

pub mod query;
pub mod rank;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::index::text::{FieldWeights, TextIndex, TextQuery};
use crate::index::vector::VectorIndex;
use crate::model::ModelFiles;
use crate::pipeline::embed::{Embedder, Load};
use crate::pipeline::embed_static::StaticEmbedder;
use crate::pipeline::extract::Location;
use crate::settings::Tier;
use crate::store::Store;

pub use query::{AnalyzedQuery, QueryKind, analyze_query};
pub use rank::{DEFAULT_PER_FILE, Features, RRF_K};

/// Lines of a chunk shown as its snippet.
const SNIPPET_LINES: usize = 6;
/// Candidates taken from each ranking: `CANDIDATES_PER_HIT × limit`, at least
/// [`MIN_CANDIDATES`] (semble 0.7 takes 5 × k).
const CANDIDATES_PER_HIT: usize = 5;
const MIN_CANDIDATES: usize = 50;
/// Definitions of a queried name added as candidates, at most.
const DEFINITION_CANDIDATES: usize = 20;

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
    /// At most this many chunks of one file (default [`DEFAULT_PER_FILE`]).
    #[serde(default)]
    pub per_file: Option<usize>,
    /// Rank tests, examples, benches, vendored, generated and minified files like the rest
    /// (by default they are demoted).
    #[serde(default)]
    pub no_demote: bool,
    /// Before searching, wait until every change made before the call is applied (cookie
    /// sync; only a watcher can).
    #[serde(default)]
    pub sync: bool,
}

impl SearchRequest {
    /// A request with the defaults: no path filter, no text, default per-file limit.
    pub fn new(query: impl Into<String>, mode: Mode, limit: usize) -> Self {
        Self {
            query: query.into(),
            mode,
            limit,
            path: None,
            include_text: false,
            per_file: None,
            no_demote: false,
            sync: false,
        }
    }
}

/// The 1-based rank of a hit in each ranking it was found by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<u32>,
}

/// One matching chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub path: String,
    /// 1-based, inclusive; in a document (PDF, notebook, HTML), lines of its extracted text.
    pub start_line: u32,
    pub end_line: u32,
    /// The 1-based page of a PDF the chunk lies on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The 1-based cell of a notebook the chunk lies in (every cell counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<u32>,
    /// The 1-based paragraph of a Word or OpenDocument file where the chunk starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paragraph: Option<u32>,
    /// The 1-based chapter of an EPUB book the chunk lies in (reading order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter: Option<u32>,
    /// The final ranking score, higher is better: fused RRF (≈ 0.008–0.017 for a chunk found
    /// by one or both lists) after shaping; comparable within one answer only.
    pub score: f32,
    /// The modes whose ranking contained this chunk.
    pub modes: Vec<Mode>,
    /// Its rank in each list before fusion.
    #[serde(default)]
    pub ranks: Ranks,
    /// Which embedding tier's vector ranked it by meaning (`transformer` where the chunk has
    /// one, else `static`), when the semantic ranking found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// What moved its score after fusion (`defines parse_args`, `test ×0.3`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
    /// The definitions enclosing the chunk (`file › class … › def …`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
    /// Up to six lines of the chunk, starting at the first line that contains a query word.
    pub snippet: String,
    /// Line number of the first snippet line.
    pub snippet_line: u32,
    /// The whole chunk, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Hit {
    /// Where in its document the hit lies, for display: " (page 3)", " (cell 5)",
    /// " (paragraph 12)", " (chapter 2)", or "".
    pub fn location_suffix(&self) -> String {
        let named = [
            ("page", self.page),
            ("cell", self.cell),
            ("paragraph", self.paragraph),
            ("chapter", self.chapter),
        ];
        named
            .iter()
            .find_map(|(name, n)| n.map(|n| format!(" ({name} {n})")))
            .unwrap_or_default()
    }
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Why a mode could not be used (e.g. text-only index), if any.
    pub warnings: Vec<String>,
    /// How the query was read: `symbol`, `path` or `natural`.
    #[serde(default)]
    pub query_kind: String,
    /// How current the answer is (set by whoever answers: a watcher, or the CLI itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<crate::status::Freshness>,
    /// Text hashes of the hits ranked by the static tier: the watcher embeds them with the
    /// transformer next (files that appear in results go first). Not sent to clients.
    #[serde(skip)]
    pub static_texts: Vec<[u8; 32]>,
}

/// A search the index cannot answer as asked (an invalid glob, a search by meaning without
/// embeddings): for the asker to change, not a failure of the index. The HTTP API answers it
/// with 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// The static embedding tier as search uses it: its model (for queries) and its HNSW graph.
#[derive(Clone)]
pub struct StaticTier {
    pub model: Arc<StaticEmbedder>,
    pub vectors: Arc<VectorIndex>,
}

/// Answers searches over an index; cheap to share between threads.
#[derive(Clone)]
pub struct Searcher {
    store: Arc<Store>,
    text: Arc<TextIndex>,
    /// Transformer-tier graph.
    vectors: Option<Arc<VectorIndex>>,
    static_tier: Option<StaticTier>,
    query: QueryEmbedder,
    features: Features,
    weights: FieldWeights,
}

/// The model that turns queries into vectors: one per process, shared by every surface (CLI,
/// socket and TCP API, dashboard), loaded once. Separate from the indexing embedder, so a
/// query never waits behind a batch.
#[derive(Clone)]
pub struct QueryEmbedder {
    model: Option<ModelFiles>,
    how: Load,
    loaded: Arc<Mutex<Option<Embedder>>>,
    /// A load started by [`Self::load_in_background`]; joined when the last clone drops,
    /// so a process never exits while ONNX Runtime is half-way through loading.
    loading: Arc<Loading>,
}

#[derive(Default)]
struct Loading(Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Loading {
    fn drop(&mut self) {
        let handle = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl QueryEmbedder {
    /// A query embedder for `model` (`None`: text-only), loaded on first use or by
    /// [`Self::warm_up`].
    pub fn new(model: Option<ModelFiles>, how: Load) -> Self {
        Self {
            model,
            how,
            loaded: Arc::default(),
            loading: Arc::default(),
        }
    }

    /// Starts loading the model on another thread and returns at once, so a one-query
    /// process opens its index and runs the text search meanwhile; [`Self::embed`] then
    /// waits for the load instead of starting one. A failed load is not kept: `embed`
    /// tries again and reports the error.
    pub fn load_in_background(&self) {
        let Some(model) = self.model.clone() else {
            return;
        };
        let (how, loaded) = (self.how, self.loaded.clone());
        let mut slot = self.loading.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        // The lock on `loaded` is taken before this returns, so `embed` waits for this load.
        let (started, wait) = std::sync::mpsc::channel::<()>();
        *slot = Some(std::thread::spawn(move || {
            let mut guard = loaded.lock().unwrap_or_else(|p| p.into_inner());
            let _ = started.send(());
            if guard.is_none() {
                match Embedder::load_for(&model, how) {
                    Ok(e) => *guard = Some(e),
                    Err(e) => tracing::debug!("loading the query model: {e:#}"),
                }
            }
        }));
        let _ = wait.recv();
    }

    /// Loads the model now, so the first query does not wait for it (~0.3 s).
    ///
    /// Errors: as [`Embedder::load`].
    pub fn warm_up(&self) -> Result<()> {
        self.with(|_| Ok(()))
    }

    /// The vector of one query (dims of the model, L2-normalised).
    ///
    /// Errors: no model; the model cannot be loaded or run.
    pub fn embed(&self, query: &str) -> Result<Vec<f32>> {
        self.with(|e| {
            e.embed(&[query])?
                .pop()
                .context("the model returned no vector")
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Embedder) -> Result<T>) -> Result<T> {
        let Some(model) = &self.model else {
            return Err(QueryError("no embedding model available".into()).into());
        };
        let mut guard = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Embedder::load_for(model, self.how)?);
        }
        f(guard.as_mut().context("embedder loaded above")?)
    }
}

impl Searcher {
    pub fn new(
        store: Arc<Store>,
        text: Arc<TextIndex>,
        vectors: Option<Arc<VectorIndex>>,
        query: QueryEmbedder,
    ) -> Self {
        Self {
            store,
            text,
            vectors,
            static_tier: None,
            query,
            features: Features::default(),
            weights: FieldWeights::default(),
        }
    }

    /// The same searcher with a static tier (searched where the transformer has no vector).
    pub fn with_static_tier(mut self, tier: Option<StaticTier>) -> Self {
        self.static_tier = tier;
        self
    }

    /// The same searcher with some ranking steps turned off (for measuring them).
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The same searcher with other BM25 field weights (for measuring them).
    pub fn with_weights(mut self, weights: FieldWeights) -> Self {
        self.weights = weights;
        self
    }

    /// The text index searched.
    pub fn text(&self) -> &TextIndex {
        &self.text
    }

    /// The transformer-tier vector index searched, if any.
    pub fn vectors(&self) -> Option<&VectorIndex> {
        self.vectors.as_deref()
    }

    /// The static tier searched, if any.
    pub fn static_tier(&self) -> Option<&StaticTier> {
        self.static_tier.as_ref()
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
        let per_file = req.per_file.unwrap_or(DEFAULT_PER_FILE).max(1);
        // Fetch more candidates than asked: shaping reorders, the path filter drops some.
        let depth = if glob.is_some() {
            (limit * 20).max(200)
        } else {
            (limit * CANDIDATES_PER_HIT).max(MIN_CANDIDATES)
        };
        let query = analyze_query(&req.query);
        let mut warnings = Vec::new();
        let mut text_ranked: Vec<u64> = Vec::new();
        if req.mode != Mode::Semantic {
            let mut weights = self.weights;
            if !self.features.fields {
                (weights.header, weights.path, weights.defs) = (0.0, 0.0, 0.0);
            }
            // Measured: proximity lifts text ranking (+0.006 to +0.023 NDCG@10) but lowers
            // hybrid (−0.009 to −0.012), where meaning already rewards words that belong
            // together; so it shapes the text mode only (docs/ranking.md).
            if !self.features.proximity || req.mode != Mode::Text {
                weights.proximity = 0.0;
            }
            let tq = TextQuery {
                terms: query.terms.clone(),
                pairs: query.pairs.clone(),
                weights,
            };
            text_ranked = self
                .text
                .search(&tq, depth)?
                .iter()
                .map(|h| h.chunk_id)
                .collect();
        }
        let semantic_tiers = if req.mode != Mode::Text {
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
        let semantic_ranked: Vec<u64> = semantic_tiers.iter().map(|(id, _)| *id).collect();
        let tiers: HashMap<u64, Tier> = semantic_tiers.into_iter().collect();
        let w_semantic = match req.mode {
            Mode::Hybrid => rank::semantic_weight(query.kind, self.features),
            Mode::Text => 0.0,
            Mode::Semantic => 1.0,
        };
        let static_fusion = if req.mode == Mode::Hybrid && self.features.static_weight {
            rank::STATIC_FUSION
        } else {
            1.0
        };
        let scale = |id: u64| match tiers.get(&id) {
            Some(Tier::Static) => static_fusion,
            _ => 1.0,
        };
        let mut cands = rank::fuse(&text_ranked, &semantic_ranked, w_semantic, &scale);
        if self.features.definitions {
            // Definitions of the queried name join the candidates even if neither list
            // found them (a lone exact definition must not be lost below mediocre chunks).
            for name in &query.names {
                for h in self.text.defining(name, DEFINITION_CANDIDATES)? {
                    if !cands.iter().any(|c| c.id == h.chunk_id) {
                        cands.push(rank::Candidate::new(h.chunk_id));
                    }
                }
            }
        }
        let ids: Vec<u64> = cands.iter().map(|c| c.id).collect();
        let records: HashMap<u64, _> = self.store.chunks(&ids)?.into_iter().collect();
        // The names candidates define matter only when the query asks for a name.
        let mut defines: HashMap<u64, Vec<String>> = HashMap::new();
        if self.features.definitions && !query.names.is_empty() {
            for (id, doc) in self.text.docs(&ids)? {
                defines.insert(id, doc.defines);
            }
        }
        // A chunk missing from the store is an orphan of an interrupted batch: skip it.
        cands.retain_mut(|c| {
            let Some(rec) = records.get(&c.id) else {
                return false;
            };
            if glob.as_ref().is_some_and(|g| !g.is_match(&rec.path)) {
                return false;
            }
            c.path = rec.path.clone();
            c.defines = defines.remove(&c.id).unwrap_or_default();
            true
        });
        let mut features = self.features;
        features.demote &= !req.no_demote;
        rank::shape(&mut cands, &query, features, &demotion, per_file);
        cands.truncate(limit);
        let chosen: Vec<u64> = cands.iter().map(|c| c.id).collect();
        let mut docs = self.text.docs(&chosen)?;
        let mut hits = Vec::with_capacity(cands.len());
        let mut static_texts = Vec::new();
        for c in cands {
            let rec = &records[&c.id];
            if tiers.get(&c.id) == Some(&Tier::Static) {
                static_texts.push(rec.hash);
            }
            let doc = docs.remove(&c.id).unwrap_or_default();
            let (snippet_line, snippet) = snippet(&doc.text, rec.start_line, &req.query);
            let mut modes = Vec::new();
            if c.text_rank.is_some() {
                modes.push(Mode::Text);
            }
            if c.semantic_rank.is_some() {
                modes.push(Mode::Semantic);
            }
            let (mut page, mut cell, mut paragraph, mut chapter) = (None, None, None, None);
            // Located at the snippet: in flowing text the paragraph may be past the chunk's
            // first.
            let at = snippet_line.saturating_sub(rec.start_line) as usize;
            match rec.location.map(|l| l.at_line(&doc.text, at)) {
                Some(Location::Page(n)) => page = Some(n),
                Some(Location::Cell(n)) => cell = Some(n),
                Some(Location::Paragraph(n)) => paragraph = Some(n),
                Some(Location::Chapter(n)) => chapter = Some(n),
                None => {}
            }
            hits.push(Hit {
                path: rec.path.clone(),
                start_line: rec.start_line,
                end_line: rec.end_line,
                page,
                cell,
                paragraph,
                chapter,
                score: c.score,
                modes,
                ranks: Ranks {
                    text: c.text_rank,
                    semantic: c.semantic_rank,
                },
                tier: tiers.get(&c.id).copied(),
                why: c.why,
                context: doc.header,
                snippet,
                snippet_line,
                text: req.include_text.then_some(doc.text),
            });
        }
        Ok(SearchResponse {
            hits,
            warnings,
            query_kind: query.kind.name().to_string(),
            freshness: None,
            static_texts,
        })
    }

    /// The `k` chunks closest in meaning, with the tier that ranked each. Each chunk is
    /// ranked by its transformer vector where it has one, else by its static vector: the two
    /// lists (the static one holds only chunks the transformer has not embedded yet) are
    /// merged by estimated rank over the whole index, `rank / coverage`, so a tier covering
    /// a tenth of the chunks puts its first hit about tenth. With one tier, that tier's list.
    fn semantic(&self, query: &str, k: usize) -> Result<Vec<(u64, Tier)>> {
        let transformer = self.vectors.as_deref().filter(|v| !v.is_empty());
        let static_tier = self.static_tier.as_ref().filter(|t| !t.vectors.is_empty());
        if transformer.is_none() && static_tier.is_none() {
            return Err(QueryError(
                "this index has no embeddings (built text-only, no model available, or not \
                 embedded yet)"
                    .into(),
            )
            .into());
        }
        let mut by_transformer = Vec::new();
        if let Some(vectors) = transformer {
            match self.query.embed(query) {
                Ok(v) => by_transformer = vectors.search(&v, k, |_| true)?,
                // The static tier still answers.
                Err(e) if static_tier.is_some() => {
                    tracing::debug!("transformer query embedding failed: {e:#}")
                }
                Err(e) => return Err(e),
            }
        }
        let mut by_static = Vec::new();
        if let Some(tier) = static_tier {
            let v = tier.model.embed(query);
            by_static = tier
                .vectors
                .search(&v, k, |id| transformer.is_none_or(|t| !t.contains(id)))?;
        }
        let n_transformer = transformer.map_or(0, |t| t.len()) as f64;
        let n_static = static_tier.map_or(0, |t| t.vectors.len()) as f64;
        let total = n_transformer.max(n_static).max(1.0);
        let coverage_t = (n_transformer / total).max(1e-9);
        let coverage_s = ((total - n_transformer) / total).max(1e-9);
        let mut merged: Vec<(f64, u64, Tier)> = by_transformer
            .iter()
            .enumerate()
            .map(|(r, h)| ((r + 1) as f64 / coverage_t, h.chunk_id, Tier::Transformer))
            .chain(
                by_static
                    .iter()
                    .enumerate()
                    .map(|(r, h)| ((r + 1) as f64 / coverage_s, h.chunk_id, Tier::Static)),
            )
            .collect();
        merged.sort_by(|a, b| a.0.total_cmp(&b.0));
        merged.truncate(k);
        Ok(merged.into_iter().map(|(_, id, tier)| (id, tier)).collect())
    }
}

/// Directory names whose files are demoted, and why.
const DEMOTED_DIRS: &[(&str, &str)] = &[
    ("test", "test"),
    ("tests", "test"),
    ("__tests__", "test"),
    ("spec", "test"),
    ("specs", "test"),
    ("testing", "test"),
    ("testdata", "test"),
    ("example", "example"),
    ("examples", "example"),
    ("demo", "example"),
    ("demos", "example"),
    ("docs_src", "example"),
    ("bench", "bench"),
    ("benches", "bench"),
    ("benchmarks", "bench"),
    ("vendor", "vendored"),
    ("vendored", "vendored"),
    ("_vendor", "vendored"),
    ("third_party", "vendored"),
    ("node_modules", "vendored"),
];

/// Why a path is demoted (test, example, bench, vendored, generated, minified), if it is.
/// Judged by directory names and file-name conventions of the common languages.
pub fn demotion(path: &str) -> Option<&'static str> {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or(path);
    for dir in parts {
        if let Some((_, why)) = DEMOTED_DIRS.iter().find(|(d, _)| *d == dir) {
            return Some(why);
        }
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or(&lower);
    if stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || lower.contains(".test.")
        || lower.contains(".spec.")
        || stem == "conftest"
        || stem == "tests"
    {
        return Some("test");
    }
    if lower.contains(".min.") {
        return Some("minified");
    }
    if lower.ends_with(".d.ts")
        || lower.ends_with("_pb2.py")
        || lower.ends_with(".pb.go")
        || lower.contains(".generated.")
        || lower.contains("_generated.")
    {
        return Some("generated");
    }
    None
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
        .map_err(|e| QueryError(format!("invalid --path glob {pattern:?}: {e}")))?
        .compile_matcher())
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
    fn tests_examples_and_generated_files_are_demoted() {
        assert_eq!(demotion("/p/tests/test_core.py"), Some("test"));
        assert_eq!(demotion("/p/src/core_test.go"), Some("test"));
        assert_eq!(demotion("/p/src/app.spec.ts"), Some("test"));
        assert_eq!(demotion("/p/examples/basic.rs"), Some("example"));
        assert_eq!(demotion("/p/dist/app.min.js"), Some("minified"));
        assert_eq!(demotion("/p/types/index.d.ts"), Some("generated"));
        assert_eq!(demotion("/p/src/testing_utils.py"), None);
        assert_eq!(demotion("/p/src/core.py"), None);
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
