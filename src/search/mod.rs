//! search: which chunks answer this query?
//!
//! `text` ranks chunks by BM25 over the code-aware fields of the text index, `semantic` by
//! cosine similarity of embeddings (HNSW kNN), and `hybrid` fuses both. Every mode then goes
//! through the same shaping. The flow of one search:
//!
//! `query::analyze_query` (terms, kind, names) → candidates from each ranking (5 × limit,
//! at least 50, plus the chunks that define a queried name) → `rank::fuse` (weighted RRF) →
//! `--path` filter → `rank::shape` (definition boost, demotion, per-file limit) → hits with snippets, each with its rank in each list and why it moved.

mod demote;
mod embedder;
pub mod query;
pub mod rank;
mod request;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use globset::{GlobBuilder, GlobMatcher};

use crate::index::text::{FieldWeights, TextIndex, TextQuery};
use crate::index::vector::VectorIndex;
use crate::pipeline::embed_static::StaticEmbedder;
use crate::pipeline::extract::Location;
use crate::settings::Tier;
use crate::store::Store;

pub use demote::demotion;
pub use embedder::QueryEmbedder;
pub use query::{AnalyzedQuery, QueryKind, analyze_query};
pub use rank::{DEFAULT_PER_FILE, Features, RRF_K};
pub use request::{Hit, Mode, QueryError, Ranks, SearchRequest, SearchResponse};

/// Lines of a chunk shown as its snippet.
const SNIPPET_LINES: usize = 6;
/// Candidates taken from each ranking: `CANDIDATES_PER_HIT × limit`, at least
/// [`MIN_CANDIDATES`] (semble 0.7 takes 5 × k).
const CANDIDATES_PER_HIT: usize = 5;
const MIN_CANDIDATES: usize = 50;
/// Definitions of a queried name added as candidates, at most.
const DEFINITION_CANDIDATES: usize = 20;

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
