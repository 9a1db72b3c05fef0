//! index/text: which chunks contain these words?
//!
//! A tantivy BM25 index with one document per chunk. Every update replaces all documents of
//! a path (delete by the path's term, then add), so applying the same update twice gives the
//! same index: the property the crash-recovery protocol relies on.
//!
//! Fields, all analyzed with the code-aware analyzer (`index::analyzer`): `body` (the chunk
//! text), `header` (file name and enclosing definitions), `path_terms` (the last
//! [`PATH_PARTS`] components of the path, with the file stem twice) and `defs` (names the
//! chunk defines); `defs_exact` holds those names whole and lower-cased, for exact lookups.
//! Queries are built from analyzed terms ([`TextQuery`]), never parsed: every input is words.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, Term, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use super::analyzer::{CODE_ANALYZER, code_analyzer};

/// Memory budget of the tantivy writer, bytes.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;
/// Path components indexed in `path_terms` (file name and its three parent directories).
pub const PATH_PARTS: usize = 4;

/// BM25 weight of each field in a query (tantivy multiplies each field's BM25 score).
/// Chosen on the benchmark's dev queries (docs/ranking.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldWeights {
    pub body: f32,
    pub header: f32,
    pub path: f32,
    pub defs: f32,
    /// Weight of each proximity pair's BM25 score.
    pub proximity: f32,
}

impl Default for FieldWeights {
    fn default() -> Self {
        Self {
            body: 1.0,
            header: 0.5,
            path: 0.5,
            defs: 1.0,
            proximity: 1.0,
        }
    }
}

/// A BM25 query: analyzed terms (see `analyzer::analyze`), OR-ed over the weighted fields,
/// plus a proximity bonus for each pair of neighbouring query words found within
/// [`PROXIMITY_SLOP`] positions of each other in the body.
#[derive(Debug, Clone, Default)]
pub struct TextQuery {
    pub terms: Vec<String>,
    /// Analyzed terms of neighbouring query words.
    pub pairs: Vec<(String, String)>,
    pub weights: FieldWeights,
}

/// How far apart (in positions) two query words may be for the proximity bonus.
pub const PROXIMITY_SLOP: u32 = 3;

/// A chunk as the text index stores it.
#[derive(Debug, Clone, Default)]
pub struct TextDoc {
    pub chunk_id: u64,
    /// Raw path bytes: the term that deletes all chunks of a path.
    pub path_key: Vec<u8>,
    /// Path for display.
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
    /// File name and enclosing definitions (`pipeline::context`).
    pub header: String,
    /// Names the chunk defines.
    pub defines: Vec<String>,
}

/// A BM25 hit.
#[derive(Debug, Clone, Copy)]
pub struct TextHit {
    pub chunk_id: u64,
    pub score: f32,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    path_key: Field,
    path: Field,
    start_line: Field,
    end_line: Field,
    body: Field,
    header: Field,
    path_terms: Field,
    defs: Field,
    defs_exact: Field,
}

/// The full-text index of one index directory.
pub struct TextIndex {
    reader: IndexReader,
    /// Present when opened writable; only the engine writes.
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
    /// The directory held an index of another schema (an older vigil) and was emptied.
    recreated: bool,
}

fn schema() -> (Schema, Fields) {
    let analyzed = |stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(CODE_ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored { o.set_stored() } else { o }
    };
    let mut b = Schema::builder();
    let fields = Fields {
        // FAST: ranking reads the ids of its candidates from the column, not the doc store.
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        path_key: b.add_bytes_field("path_key", INDEXED),
        path: b.add_text_field("path", STORED),
        start_line: b.add_u64_field("start_line", STORED),
        end_line: b.add_u64_field("end_line", STORED),
        body: b.add_text_field("body", analyzed(true)),
        header: b.add_text_field("header", analyzed(true)),
        path_terms: b.add_text_field("path_terms", analyzed(false)),
        defs: b.add_text_field("defs", analyzed(true)),
        defs_exact: b.add_text_field("defs_exact", STRING),
    };
    (b.build(), fields)
}

/// The text of the `path_terms` field: the last [`PATH_PARTS`] components, the file stem
/// repeated (a file named like the query is a strong hint).
pub fn path_terms(path: &str) -> String {
    let parts: Vec<&str> = path.rsplit('/').take(PATH_PARTS).collect();
    let stem = parts
        .first()
        .map(|n| n.rsplit_once('.').map_or(*n, |(s, _)| s))
        .unwrap_or("");
    let mut out: Vec<&str> = parts.into_iter().rev().collect();
    out.push(stem);
    out.join(" ")
}

impl TextIndex {
    /// Opens or creates the index in `dir`; `writable` takes tantivy's writer lock. A
    /// writable open of an index with another schema (built by an older vigil) empties the
    /// directory and starts afresh ([`Self::recreated`] says so); the caller re-indexes.
    ///
    /// Errors: the directory cannot be created, the index is corrupt, (writable) another
    /// process holds the writer lock, or (read-only) the index has another schema.
    pub fn open(dir: &Path, writable: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let (schema, fields) = schema();
        let open = || -> Result<Index> {
            let mmap = tantivy::directory::MmapDirectory::open(dir)
                .with_context(|| format!("{}: cannot open the text index", dir.display()))?;
            Index::open_or_create(mmap, schema.clone())
                .with_context(|| format!("{}: cannot open the text index", dir.display()))
        };
        let mut recreated = false;
        let index = match open() {
            Ok(index) => index,
            Err(e) if is_schema_mismatch(&e) && writable => {
                tracing::warn!(
                    dir = %dir.display(),
                    "the text index was built by an older vigil: rebuilding it"
                );
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("{}: cannot remove", dir.display()))?;
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("{}: cannot create", dir.display()))?;
                recreated = true;
                open()?
            }
            Err(e) if is_schema_mismatch(&e) => {
                return Err(e.context(
                    "this index was built by an older vigil: run `vigil index` or `vigil watch` \
                     once to rebuild it",
                ));
            }
            Err(e) => return Err(e),
        };
        index.tokenizers().register(CODE_ANALYZER, code_analyzer());
        let writer = if writable {
            Some(Mutex::new(
                index
                    .writer_with_num_threads(1, WRITER_HEAP_BYTES)
                    .with_context(|| format!("{}: cannot lock the text index", dir.display()))?,
            ))
        } else {
            None
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            writer,
            fields,
            recreated,
        })
    }

    /// Whether [`Self::open`] found an index of another schema and emptied it.
    pub fn recreated(&self) -> bool {
        self.recreated
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        let writer = self.writer.as_ref().expect("text index opened read-only");
        writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stages the replacement of every chunk of `paths` by `docs` (visible after [`Self::commit`]).
    pub fn replace(&self, paths: &[Vec<u8>], docs: &[TextDoc]) -> Result<()> {
        let f = self.fields;
        let writer = self.writer();
        for p in paths {
            writer.delete_term(Term::from_field_bytes(f.path_key, p));
        }
        for d in docs {
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.id, d.chunk_id);
            doc.add_bytes(f.path_key, d.path_key.as_slice());
            doc.add_text(f.path, &d.path);
            doc.add_u64(f.start_line, d.start_line as u64);
            doc.add_u64(f.end_line, d.end_line as u64);
            doc.add_text(f.body, &d.text);
            doc.add_text(f.header, &d.header);
            doc.add_text(f.path_terms, path_terms(&d.path));
            doc.add_text(f.defs, d.defines.join("\n"));
            for name in &d.defines {
                doc.add_text(f.defs_exact, name.to_lowercase());
            }
            writer.add_document(doc)?;
        }
        Ok(())
    }

    /// Commits staged changes durably and makes them visible to searches. (No payload: what
    /// a crash between this commit and redb's leaves behind is found through the store's
    /// `pending` table, see docs/ARCHITECTURE.md.)
    pub fn commit(&self) -> Result<()> {
        let mut writer = self.writer();
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 top `limit` chunks: each term of `query` OR-ed over the fields, each field's
    /// score multiplied by its weight. No terms, no hits.
    pub fn search(&self, query: &TextQuery, limit: usize) -> Result<Vec<TextHit>> {
        let f = self.fields;
        let w = query.weights;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &query.terms {
            for (field, weight) in [
                (f.body, w.body),
                (f.header, w.header),
                (f.path_terms, w.path),
                (f.defs, w.defs),
            ] {
                if weight > 0.0 {
                    let q = TermQuery::new(
                        Term::from_field_text(field, term),
                        IndexRecordOption::WithFreqs,
                    );
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(q), weight)),
                    ));
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let mut hits = self.top(&BooleanQuery::new(clauses), limit)?;
        if w.proximity > 0.0 && !query.pairs.is_empty() {
            // Each pair is its own search, added to the BM25 scores by chunk id: a phrase
            // query inside a boolean union can be asked to seek backwards (tantivy #2811),
            // which panics in debug builds.
            let mut scores: HashMap<u64, f32> =
                hits.iter().map(|h| (h.chunk_id, h.score)).collect();
            for (a, b) in &query.pairs {
                let q = PhraseQuery::new_with_offset_and_slop(
                    vec![
                        (0, Term::from_field_text(f.body, a)),
                        (1, Term::from_field_text(f.body, b)),
                    ],
                    PROXIMITY_SLOP,
                );
                for h in self.top(&q, limit)? {
                    *scores.entry(h.chunk_id).or_insert(0.0) += w.proximity * h.score;
                }
            }
            hits = scores
                .into_iter()
                .map(|(chunk_id, score)| TextHit { chunk_id, score })
                .collect();
            hits.sort_by(|x, y| {
                y.score
                    .total_cmp(&x.score)
                    .then(x.chunk_id.cmp(&y.chunk_id))
            });
            hits.truncate(limit);
        }
        Ok(hits)
    }

    /// Chunks that define `name` (compared whole, case-insensitively), best BM25 first.
    pub fn defining(&self, name: &str, limit: usize) -> Result<Vec<TextHit>> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.defs_exact, &name.to_lowercase()),
            IndexRecordOption::WithFreqs,
        );
        self.top(&q, limit)
    }

    fn top(&self, query: &dyn Query, limit: usize) -> Result<Vec<TextHit>> {
        let searcher = self.reader.searcher();
        let top = searcher.search(query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        let mut columns = HashMap::new();
        for (score, addr) in top {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("id")?,
                ),
            };
            if let Some(id) = column.first(addr.doc_id) {
                hits.push(TextHit {
                    chunk_id: id,
                    score,
                });
            }
        }
        Ok(hits)
    }

    /// The stored documents of these chunk ids (missing ids are left out).
    pub fn docs(&self, ids: &[u64]) -> Result<HashMap<u64, TextDoc>> {
        let searcher = self.reader.searcher();
        let f = self.fields;
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            let query = TermQuery::new(Term::from_field_u64(f.id, id), IndexRecordOption::Basic);
            let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
            let Some((_, addr)) = top.into_iter().next() else {
                continue;
            };
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let num = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default() as u32
            };
            let defs = text(f.defs);
            out.insert(
                id,
                TextDoc {
                    chunk_id: id,
                    path_key: Vec::new(),
                    path: text(f.path),
                    start_line: num(f.start_line),
                    end_line: num(f.end_line),
                    text: text(f.body),
                    header: text(f.header),
                    defines: defs.lines().map(str::to_string).collect(),
                },
            );
        }
        Ok(out)
    }

    /// Every chunk document: (chunk id, display path). For `vigil verify`.
    pub fn all_docs(&self) -> Result<Vec<(u64, String)>> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(
            &tantivy::query::AllQuery,
            &tantivy::collector::DocSetCollector,
        )?;
        let mut out = Vec::with_capacity(addresses.len());
        for addr in addresses {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let id = doc
                .get_first(self.fields.id)
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::MAX);
            let path = doc
                .get_first(self.fields.path)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            out.push((id, path));
        }
        Ok(out)
    }

    /// Number of chunk documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Reloads the reader to see commits made by another handle.
    pub fn reload(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }
}

/// Whether opening failed because the stored schema differs from this vigil's.
fn is_schema_mismatch(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<tantivy::TantivyError>(),
            Some(tantivy::TantivyError::SchemaError(_))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_terms_keep_the_tail_and_repeat_the_stem() {
        assert_eq!(
            path_terms("/home/u/proj/src/click/core.py"),
            "proj src click core.py core"
        );
        assert_eq!(path_terms("README"), "README README");
    }
}
