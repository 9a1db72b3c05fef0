//! rank: from two candidate lists to one page of results.
//!
//! 1. **Fusion**: weighted Reciprocal Rank Fusion (Cormack, Clarke and Büttcher, SIGIR 2009,
//!    k = 60): `score = w_sem / (k + rank_sem) + (1 - w_sem) / (k + rank_text)`, where the
//!    semantic weight `w_sem` depends on the query kind ([`semantic_weight`]).
//! 2. **Shaping**, each step scaled by the best fused score (`top`) so that it means the same
//!    for every query (the stack of semble 0.7, `ranking/`; vigil's definitions come from
//!    tree-sitter instead of keyword regexes):
//!    - *definition*: a code chunk that defines a name the query asks for gets
//!      `+ DEFINITION_BOOST × top` (×1.5 when its file is named after it; half for names
//!      inside a natural-language query);
//!    - *demotion*: tests, examples, benches, vendored, generated and minified files are
//!      multiplied by `DEMOTE_FACTOR` (configurable);
//!    - *per-file limit*: at most `per_file` chunks of a file are kept.
//!
//! Each step's measured effect is in docs/ranking.md. Two steps of semble's stack were
//! measured and left out because they lowered NDCG@10 on our dev queries: a file-coherence
//! boost (the best chunk of a file gains with the file's summed score) and per-file
//! saturation (the n-th chunk of a file × 0.5^(n-1)). Both push the right chunk of a large
//! file down when it is not that file's best.

use std::collections::HashMap;

use std::path::Path;

use super::query::{AnalyzedQuery, QueryKind};
use crate::pipeline::context::Lang;

/// RRF constant (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;
/// Added to a chunk that defines a queried name, × the best fused score (semble: 3.0).
pub const DEFINITION_BOOST: f32 = 3.0;
/// Score multiplier for demoted paths (semble: 0.3 for tests, examples, legacy).
pub const DEMOTE_FACTOR: f32 = 0.3;
/// Chunks of one file on a page unless the request says otherwise.
pub const DEFAULT_PER_FILE: usize = 3;

/// Which shaping steps run; all on by default. The quality benchmark turns them off one at a
/// time to measure each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// BM25 over header, path and definitions fields besides the body.
    pub fields: bool,
    /// The proximity bonus for neighbouring query words (text mode only).
    pub proximity: bool,
    /// Fusion weights by query kind (else equal weights).
    pub adaptive_fusion: bool,
    /// Definition boost, and definitions of the queried name added as candidates.
    pub definitions: bool,
    pub demote: bool,
    /// The per-file limit.
    pub per_file: bool,
    /// Static-tier hits count [`STATIC_FUSION`] of a transformer hit in hybrid fusion.
    pub static_weight: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            fields: true,
            proximity: true,
            adaptive_fusion: true,
            definitions: true,
            demote: true,
            per_file: true,
            static_weight: true,
        }
    }
}

/// Weight of the semantic ranking in fusion (the text ranking gets the rest): identifiers
/// and paths lean on words, questions on meaning (semble 0.7: 0.3 and 0.5).
pub fn semantic_weight(kind: QueryKind, features: Features) -> f32 {
    if !features.adaptive_fusion {
        return 0.5;
    }
    match kind {
        QueryKind::Symbol => 0.3,
        QueryKind::Path => 0.2,
        QueryKind::Natural => 0.5,
    }
}

/// A candidate chunk with what shaping needs to know about it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: u64,
    pub path: String,
    /// Names the chunk defines.
    pub defines: Vec<String>,
    /// 1-based rank in each list, if the chunk was in it.
    pub text_rank: Option<u32>,
    pub semantic_rank: Option<u32>,
    /// The score as it stands.
    pub score: f32,
    /// Why the score moved: shown by `--json`.
    pub why: Vec<String>,
}

impl Candidate {
    /// A chunk with no score yet; `path`, `defines` and `is_code` are filled in later.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            path: String::new(),
            defines: Vec::new(),
            text_rank: None,
            semantic_rank: None,
            score: 0.0,
            why: Vec::new(),
        }
    }
}

/// How much a semantic hit ranked by the static tier counts in hybrid fusion, relative to one
/// the transformer ranked. Chosen on the benchmark's dev split from 1, 0.5 and 0.25: whole
/// checkouts 0.623 → 0.634 → 0.645 NDCG@10, source folders 0.672 → 0.671 → 0.670
/// (docs/ranking.md); the static model's ranking is weaker than the transformer's.
pub const STATIC_FUSION: f32 = 0.25;

/// Fuses the two lists (ids best first) into candidates scored by weighted RRF: a chunk
/// scores `(1 - w) / (60 + rank_text) + w × scale(id) / (60 + rank_semantic)`, where
/// `scale` weakens hits the static tier ranked (see [`STATIC_FUSION`]).
pub fn fuse(
    text: &[u64],
    semantic: &[u64],
    w_semantic: f32,
    scale: &dyn Fn(u64) -> f32,
) -> Vec<Candidate> {
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Candidate> = Vec::new();
    for (list, is_text) in [(text, true), (semantic, false)] {
        for (i, &id) in list.iter().enumerate() {
            let weight = if is_text {
                1.0 - w_semantic
            } else {
                w_semantic * scale(id)
            };
            let rank = i as u32 + 1;
            let slot = *by_id.entry(id).or_insert_with(|| {
                out.push(Candidate::new(id));
                out.len() - 1
            });
            let c = &mut out[slot];
            c.score += weight / (RRF_K + rank as f32);
            if is_text {
                c.text_rank = Some(rank);
            } else {
                c.semantic_rank = Some(rank);
            }
        }
    }
    sort(&mut out);
    out
}

/// Applies the shaping steps in order and sorts; `top` is the best fused score.
pub fn shape(
    cands: &mut Vec<Candidate>,
    query: &AnalyzedQuery,
    features: Features,
    demote: &dyn Fn(&str) -> Option<&'static str>,
    per_file: usize,
) {
    let top = cands.iter().map(|c| c.score).fold(0.0f32, f32::max);
    let top = if top > 0.0 { top } else { 1.0 / RRF_K };
    if features.definitions && !query.names.is_empty() {
        let strength = if query.kind == QueryKind::Symbol {
            1.0
        } else {
            0.5
        };
        // Code only: a Markdown heading that happens to be the name is not its definition.
        for c in cands
            .iter_mut()
            .filter(|c| Lang::of(Path::new(&c.path)).is_code())
        {
            let Some(name) = query
                .names
                .iter()
                .find(|n| c.defines.iter().any(|d| defines_name(d, n)))
            else {
                continue;
            };
            let named_file = file_stem(&c.path).eq_ignore_ascii_case(name)
                || file_stem(&c.path)
                    .replace('_', "")
                    .eq_ignore_ascii_case(name);
            let factor = if named_file { 1.5 } else { 1.0 };
            c.score += DEFINITION_BOOST * strength * factor * top;
            c.why.push(format!("defines {name}"));
        }
    }
    if features.demote {
        for c in cands.iter_mut() {
            if let Some(reason) = demote(&c.path) {
                c.score *= DEMOTE_FACTOR;
                c.why.push(format!("{reason} ×{DEMOTE_FACTOR}"));
            }
        }
    }
    sort(cands);
    if features.per_file {
        limit_per_file(cands, per_file);
    }
}

/// Whether a defined name (`res.send`, `parse_args`, `impl Foo`'s `Foo`) is `name`.
fn defines_name(defined: &str, name: &str) -> bool {
    defined.eq_ignore_ascii_case(name)
        || defined
            .rsplit(['.', ':'])
            .next()
            .is_some_and(|last| last.eq_ignore_ascii_case(name))
}

/// The file name without its extension.
pub fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split('.').next().unwrap_or(name)
}

/// Keeps at most `per_file` chunks of each file (the best ones: `cands` is sorted).
fn limit_per_file(cands: &mut Vec<Candidate>, per_file: usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    cands.retain(|c| {
        let n = seen.entry(c.path.clone()).or_insert(0);
        *n += 1;
        *n <= per_file
    });
}

fn sort(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::analyze_query;

    fn cand(id: u64, path: &str, defines: &[&str], score: f32) -> Candidate {
        Candidate {
            path: path.into(),
            defines: defines.iter().map(|s| s.to_string()).collect(),
            score,
            ..Candidate::new(id)
        }
    }

    #[test]
    fn rrf_prefers_chunks_found_by_both_rankings() {
        let fused = fuse(&[1, 2, 3], &[3, 4], 0.5, &|_| 1.0);
        assert_eq!(fused[0].id, 3);
        assert_eq!(
            (fused[0].text_rank, fused[0].semantic_rank),
            (Some(3), Some(1))
        );
        let expected = 0.5 / 63.0 + 0.5 / 61.0;
        assert!((fused[0].score - expected).abs() < 1e-6);
    }

    #[test]
    fn a_definition_outranks_its_uses_and_tests_sink() {
        let q = analyze_query("parse_args");
        let mut c = vec![
            cand(1, "/p/tests/test_cli.py", &["test_parse_args"], 0.03),
            cand(2, "/p/src/cli.py", &["main"], 0.02),
            cand(
                3,
                "/p/src/argparse.py",
                &["ArgumentParser", "parse_args"],
                0.01,
            ),
        ];
        let demote = |p: &str| p.contains("/tests/").then_some("test");
        shape(&mut c, &q, Features::default(), &demote, 3);
        assert_eq!(c[0].id, 3);
        assert_eq!(c.last().unwrap().id, 1);
        assert!(c[0].why.iter().any(|w| w == "defines parse_args"));
    }

    #[test]
    fn one_file_cannot_fill_the_page() {
        let q = analyze_query("walk the tree");
        let mut c: Vec<Candidate> = (0..6)
            .map(|i| cand(i, "/a.rs", &[], 1.0 - i as f32 * 0.01))
            .collect();
        c.push(cand(9, "/b.rs", &[], 0.5));
        shape(&mut c, &q, Features::default(), &|_| None, 2);
        let from_a = c.iter().filter(|x| x.path == "/a.rs").count();
        assert_eq!(from_a, 2);
        assert_eq!(c[2].id, 9, "the other file comes next: {c:?}");
    }
}
