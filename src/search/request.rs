//! What a search asks and what it answers: the request, its hits and the response, as the
//! CLI, the APIs, MCP and the dashboard exchange them (serde).

use serde::{Deserialize, Serialize};

use crate::settings::Tier;

/// How to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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
