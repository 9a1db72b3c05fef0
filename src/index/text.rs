//! index/text: which chunks contain these words?
//!
//! A tantivy BM25 index with one document per chunk. Every update replaces all documents of
//! a path (delete by the path's term, then add), so applying the same update twice gives the
//! same index: the property the crash-recovery protocol relies on. Each commit carries the
//! store generation it belongs to as its payload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tantivy::collector::TopDocs;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{Field, INDEXED, IndexRecordOption, STORED, Schema, TEXT, Term, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, doc};

/// Memory budget of the tantivy writer, bytes.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

/// A chunk as the text index stores it.
#[derive(Debug, Clone)]
pub struct TextDoc {
    pub chunk_id: u64,
    /// Raw path bytes: the term that deletes all chunks of a path.
    pub path_key: Vec<u8>,
    /// Path for display.
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
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
}

/// The full-text index of one index directory.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    /// Present when opened writable; only the engine writes.
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED),
        path_key: b.add_bytes_field("path_key", INDEXED),
        path: b.add_text_field("path", STORED),
        start_line: b.add_u64_field("start_line", STORED),
        end_line: b.add_u64_field("end_line", STORED),
        body: b.add_text_field("body", TEXT | STORED),
    };
    (b.build(), fields)
}

impl TextIndex {
    /// Opens or creates the index in `dir`; `writable` takes tantivy's writer lock.
    ///
    /// Errors: the directory cannot be created, the index is corrupt, or (writable) another
    /// process holds the writer lock.
    pub fn open(dir: &Path, writable: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let (schema, fields) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .with_context(|| format!("{}: cannot open the text index", dir.display()))?;
        let index = Index::open_or_create(mmap, schema)
            .with_context(|| format!("{}: cannot open the text index", dir.display()))?;
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
            index,
            reader,
            writer,
            fields,
        })
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
            writer.add_document(doc!(
                f.id => d.chunk_id,
                f.path_key => d.path_key.as_slice(),
                f.path => d.path.as_str(),
                f.start_line => d.start_line as u64,
                f.end_line => d.end_line as u64,
                f.body => d.text.as_str(),
            ))?;
        }
        Ok(())
    }

    /// Commits staged changes durably, tagged with the store `generation`, and makes them
    /// visible to searches.
    pub fn commit(&self, generation: u64) -> Result<()> {
        let mut writer = self.writer();
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&generation.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 top `limit` chunks for a free-text query. Query syntax errors are forgiven
    /// (tantivy's lenient parser): words are OR-ed, `"..."` is a phrase, `+word` required.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<TextHit>> {
        let searcher = self.reader.searcher();
        let parser = QueryParser::for_index(&self.index, vec![self.fields.body]);
        let (query, _errors) = parser.parse_query_lenient(query);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_u64()) {
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
            out.insert(
                id,
                TextDoc {
                    chunk_id: id,
                    path_key: Vec::new(),
                    path: text(f.path),
                    start_line: num(f.start_line),
                    end_line: num(f.end_line),
                    text: text(f.body),
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

    /// The store generation of the last commit, from the commit payload.
    pub fn committed_generation(&self) -> Result<Option<u64>> {
        Ok(self
            .index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok()))
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
