//! The commit protocol (crash safety, docs/ARCHITECTURE.md): every batch goes to the indexes in
//! four steps, in this order, each durable before the next:
//!
//! 1. **intent**: the batch's paths go into redb's `pending` table;
//! 2. **text**: tantivy replaces every document of those paths and commits;
//! 3. **truth**: one redb transaction writes records, chunks and history and clears the intent;
//! 4. **vectors**: the in-memory HNSW graphs (one per embedding tier) drop removed chunks and
//!    add new ones whose text has a vector of that tier (static vectors were written in
//!    step 3, with the chunks).
//!
//! A crash between 1 and 3 leaves the paths in `pending`; the next `Engine::open` forgets them
//! everywhere and the reconcile that follows indexes them again. So redb never names a chunk
//! tantivy lacks, and a replayed batch gives the same indexes (replace-by-path).

use anyhow::Result;

use crate::index::text::{TextDoc, TextIndex};
use crate::index::vector::VectorIndex;
use crate::settings::Tier;
use crate::store::{Store, StoreBatch};

/// The HNSW graphs a commit keeps in step, `None` where a tier does not run.
#[derive(Clone, Copy, Default)]
pub(super) struct Graphs<'a> {
    pub transformer: Option<&'a VectorIndex>,
    pub static_tier: Option<&'a VectorIndex>,
}

/// What one batch changes in the indexes.
pub(super) struct Change<'a> {
    pub store: &'a StoreBatch,
    /// Paths whose text documents are all replaced by `docs` (sorted, distinct).
    pub text_paths: &'a [Vec<u8>],
    pub docs: &'a [TextDoc],
    /// Chunks added (id, text hash) and removed (id), for the vector index.
    pub added: &'a [(u64, [u8; 32])],
    pub removed: &'a [u64],
}

/// Applies `change` in the four steps. Returns the text hashes of added chunks that have no
/// cached transformer vector (to be embedded).
///
/// Errors: any step failing; the steps before it stay applied, which the protocol allows.
pub(super) fn apply(
    store: &Store,
    text: &TextIndex,
    graphs: Graphs,
    change: &Change,
) -> Result<Vec<[u8; 32]>> {
    if !change.text_paths.is_empty() {
        intent(store, change)?;
        text_step(text, change)?;
    }
    truth(store, change)?;
    if let Some(index) = graphs.static_tier {
        // Every new text got its static vector in the pipeline; one that did not (a model
        // error) is filled on the next open.
        vectors_step(store, Tier::Static, index, change)?;
    }
    match graphs.transformer {
        Some(index) => vectors_step(store, Tier::Transformer, index, change),
        None => Ok(Vec::new()),
    }
}

/// Step 1.
fn intent(store: &Store, change: &Change) -> Result<()> {
    store.mark_pending(change.text_paths)
}

/// Step 2.
fn text_step(text: &TextIndex, change: &Change) -> Result<()> {
    text.replace(change.text_paths, change.docs)?;
    text.commit()
}

/// Step 3.
fn truth(store: &Store, change: &Change) -> Result<()> {
    store.apply(change.store, change.text_paths).map(|_| ())
}

/// Step 4, for one tier. Returns the hashes of added chunks without a vector of `tier`.
fn vectors_step(
    store: &Store,
    tier: Tier,
    index: &VectorIndex,
    change: &Change,
) -> Result<Vec<[u8; 32]>> {
    let mut missing = Vec::new();
    for id in change.removed {
        index.remove(*id)?;
    }
    let hashes: Vec<[u8; 32]> = change.added.iter().map(|(_, h)| *h).collect();
    let vectors = store.vectors(tier, &hashes)?;
    let mut found: Vec<(u64, &[f32])> = Vec::with_capacity(vectors.len());
    for ((id, hash), vector) in change.added.iter().zip(&vectors) {
        match vector {
            Some(v) => found.push((*id, v)),
            None => missing.push(*hash),
        }
    }
    index.add_many(&found)?;
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ChunkRecord, FileRecord, FileState};

    const DIMS: usize = 4;

    fn graphs(vectors: &VectorIndex) -> Graphs<'_> {
        Graphs {
            transformer: Some(vectors),
            static_tier: None,
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        text: TextIndex,
        vectors: VectorIndex,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), std::time::Duration::ZERO).unwrap();
        let text = TextIndex::open(&dir.path().join("text"), true).unwrap();
        Fixture {
            dir,
            store,
            text,
            vectors: VectorIndex::new(DIMS).unwrap(),
        }
    }

    /// One file `path` with chunks `ids`, each of its own text.
    struct Batch {
        store: StoreBatch,
        text_paths: Vec<Vec<u8>>,
        docs: Vec<TextDoc>,
        added: Vec<(u64, [u8; 32])>,
    }

    fn file(path: &str, ids: &[u64], words: &str) -> Batch {
        let key = path.as_bytes().to_vec();
        let mut store = StoreBatch::default();
        let mut docs = Vec::new();
        let mut added = Vec::new();
        for &id in ids {
            let hash = [id as u8; 32];
            store.put_chunks.push((
                id,
                ChunkRecord {
                    path: path.into(),
                    hash,
                    byte_start: 0,
                    byte_end: 1,
                    start_line: 1,
                    end_line: 1,
                    location: None,
                },
            ));
            docs.push(TextDoc {
                chunk_id: id,
                path_key: key.clone(),
                path: path.into(),
                text: format!("{words} {id}"),
                ..TextDoc::default()
            });
            added.push((id, hash));
        }
        store.put_files.push((
            key.clone(),
            FileRecord {
                size: 1,
                mtime_ns: 0,
                hash: Some("h".into()),
                state: FileState::Indexed,
                reason: None,
                chunks: ids.to_vec(),
                etag: None,
            },
        ));
        store.next_chunk_id = ids.iter().max().map_or(0, |m| m + 1);
        Batch {
            store,
            text_paths: vec![key],
            docs,
            added,
        }
    }

    fn change(b: &Batch) -> Change<'_> {
        Change {
            store: &b.store,
            text_paths: &b.text_paths,
            docs: &b.docs,
            added: &b.added,
            removed: &[],
        }
    }

    #[test]
    fn a_committed_batch_leaves_no_intent_and_the_indexes_agree() {
        let f = fixture();
        f.store
            .put_vectors(Tier::Transformer, &[([1; 32], vec![1.0, 0.0, 0.0, 0.0])])
            .unwrap();
        let b = file("/r/a.md", &[1, 2], "harbour");
        let missing = apply(&f.store, &f.text, graphs(&f.vectors), &change(&b)).unwrap();
        assert!(f.store.pending().unwrap().is_empty());
        assert_eq!(f.text.docs(&[1, 2]).unwrap().len(), 2);
        assert_eq!(f.store.chunks(&[1, 2]).unwrap().len(), 2);
        // The cached vector went into the graph; the other text is to be embedded.
        assert!(f.vectors.contains(1) && !f.vectors.contains(2));
        assert_eq!(missing, vec![[2; 32]]);
    }

    #[test]
    fn a_crash_after_the_text_step_leaves_the_intent_and_the_next_open_forgets_the_path() {
        let f = fixture();
        let b = file("/r/a.md", &[7], "lighthouse");
        let c = change(&b);
        intent(&f.store, &c).unwrap();
        text_step(&f.text, &c).unwrap();
        // … crash before the truth step: tantivy has a document redb does not know.
        assert_eq!(f.store.pending().unwrap(), vec![b"/r/a.md".to_vec()]);
        assert_eq!(f.text.docs(&[7]).unwrap().len(), 1);
        assert!(f.store.chunks(&[7]).unwrap().is_empty());
        let dir = f.dir.path().to_path_buf();
        drop((f.store, f.text));
        let engine = crate::engine::Engine::open(crate::engine::EngineConfig {
            index_dir: dir.clone(),
            roots: Vec::new(),
            max_file_size: 1 << 20,
            model: None,
            static_model: None,
            s3: Default::default(),
            retention: Default::default(),
            embed_budget: Default::default(),
            documents: Default::default(),
        })
        .unwrap();
        assert!(engine.store().pending().unwrap().is_empty());
        assert_eq!(engine.searcher().text().docs(&[7]).unwrap().len(), 0);
        drop(engine);
        let _keep = f.dir;
    }

    #[test]
    fn replaying_a_batch_gives_the_same_indexes() {
        let f = fixture();
        let b = file("/r/a.md", &[3, 4], "ferry");
        apply(&f.store, &f.text, graphs(&f.vectors), &change(&b)).unwrap();
        apply(&f.store, &f.text, graphs(&f.vectors), &change(&b)).unwrap();
        assert_eq!(f.text.num_docs(), 2, "replace-by-path: no duplicates");
        assert_eq!(f.store.counts().unwrap().chunks, 2);
        // A later batch of the same path replaces its documents.
        let newer = file("/r/a.md", &[5], "barge");
        apply(&f.store, &f.text, Graphs::default(), &change(&newer)).unwrap();
        let docs = f.text.docs(&[3, 4, 5]).unwrap();
        assert_eq!(docs.keys().copied().collect::<Vec<_>>(), vec![5]);
    }
}
