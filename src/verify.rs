//! verify: does the index equal the disk, right now?
//!
//! Walks the stored roots with the stored filters, reads and hashes every file, judges it as
//! the engine does (`pipeline::prepare`), and compares with the store, the text index, the
//! vector index and the history. Every difference is reported by path and kind.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::engine::stored_settings;
use crate::index::text::TextIndex;
use crate::index::vector::VectorIndex;
use crate::pipeline::chunk::Chunker;
use crate::pipeline::extract::DocumentLimits;
use crate::pipeline::hash::{FileContent, ReadError, decode, read_file};
use crate::pipeline::prepare::{Prepared, prepare};
use crate::records::{ChangeKind, FileRecord, FileState, key_display, path_key};
use crate::s3::Download;
use crate::scan::{Found, Scanner};
use crate::settings::Tier;
use crate::store::Store;

/// What kind of disagreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On disk (and admitted), but not in the index as it should be.
    Missing,
    /// In the index, but different on disk or gone from it.
    Stale,
    /// A chunk in one index that the others do not know.
    OrphanChunk,
    /// A vector in the HNSW graph without its chunk, or a chunk missing its vector.
    OrphanVector,
    /// The history does not explain the current record.
    HistoryGap,
    /// A chunk without an embedding that nothing is computing (a lost embedding batch).
    NoEmbedding,
}

/// One difference between the index and the disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DiffKind,
    pub path: String,
    pub detail: String,
}

/// The distinct paths (index keys) the differences are about, sorted: what a repair forgets.
pub fn differing_paths(differences: &[Difference]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = differences
        .iter()
        .filter(|d| !d.path.is_empty())
        .map(|d| d.path.as_bytes().to_vec())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn diff(kind: DiffKind, path: impl Into<String>, detail: impl Into<String>) -> Difference {
    Difference {
        kind,
        path: path.into(),
        detail: detail.into(),
    }
}

/// What the disk says a file should be recorded as.
enum Expected {
    Indexed {
        hash: String,
        chunk_hashes: Vec<[u8; 32]>,
    },
    Skipped(String),
    Failed(String),
}

fn expected(
    found: &Found,
    chunker: &Chunker,
    limit: u64,
    documents: DocumentLimits,
) -> Option<Expected> {
    Some(match found {
        Found::File { path, .. } => {
            return expected_content(path, read_file(path, limit), chunker, documents);
        }
        Found::Skipped { reason, .. } => Expected::Skipped(reason.clone()),
        Found::Failed { reason, .. } => Expected::Failed(reason.clone()),
    })
}

/// What read (or downloaded) content should be recorded as (the engine's own judgement,
/// [`prepare`]); `None` when it vanished.
fn expected_content(
    path: &Path,
    read: Result<FileContent, ReadError>,
    chunker: &Chunker,
    documents: DocumentLimits,
) -> Option<Expected> {
    Some(match prepare(path, read, chunker, documents, None) {
        Prepared::Vanished => return None,
        Prepared::Chunked { hash, chunks, .. } => Expected::Indexed {
            hash: hex::encode(hash),
            chunk_hashes: chunks.iter().map(|ch| ch.hash).collect(),
        },
        // Not asked for: `indexed` is `None`.
        Prepared::Unchanged { hash, .. } => Expected::Indexed {
            hash: hex::encode(hash),
            chunk_hashes: Vec::new(),
        },
        Prepared::Skipped { reason, .. } => Expected::Skipped(reason),
        Prepared::Failed { reason, .. } => Expected::Failed(reason),
    })
}

/// Lists an object-storage root and downloads every admitted object, comparing each with
/// its record like a file on disk.
///
/// Errors: the root cannot be reached or listed (redacted), or the index cannot be read.
#[allow(clippy::too_many_arguments)]
fn verify_remote(
    out: &mut Vec<Difference>,
    on_disk: &mut HashSet<Vec<u8>>,
    store: &Store,
    records: &HashMap<Vec<u8>, FileRecord>,
    root: &Path,
    options: &crate::s3::S3Options,
    scanner: &Scanner,
    chunker: &Chunker,
    documents: DocumentLimits,
) -> Result<()> {
    use futures::StreamExt;
    let remote = crate::s3::Remote::connect(root, options)?;
    let limit = scanner.max_file_size();
    let name = root.display();
    // Downloads `meta` (never more than the limit) and says what its record should be;
    // `None` when it vanished since the listing.
    let expect = |path: std::path::PathBuf, meta: object_store::ObjectMeta| {
        let remote = &remote;
        async move {
            if meta.size > limit {
                return Some(Expected::Skipped(format!(
                    "larger than the size limit ({} bytes > {limit} bytes)",
                    meta.size
                )));
            }
            match remote.download(&meta).await {
                Download::Bytes { bytes, .. } => {
                    expected_content(&path, decode(&path, bytes, limit), chunker, documents)
                }
                Download::Vanished => None,
                Download::Refused(reason) | Download::Failed(reason) => {
                    Some(Expected::Failed(reason))
                }
            }
        }
    };
    remote.block_on(async {
        let mut listing = crate::s3::Listing::new(&remote);
        let mut batch = Vec::new();
        loop {
            let item = listing.next().await;
            let done = item.is_none();
            if let Some(meta) = item {
                let meta = meta.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                let key = remote.url.object_key(meta.location.as_ref());
                let path = std::path::PathBuf::from(key_display(&key));
                if scanner.admits_object(&remote.root, &path) {
                    on_disk.insert(key.clone());
                    batch.push((key, path, meta));
                }
            }
            if batch.len() >= crate::s3::poll::BATCH_OBJECTS || (done && !batch.is_empty()) {
                // Downloaded like a poll does: a few at a time, in listing order.
                let expected: Vec<(Vec<u8>, Option<Expected>)> =
                    futures::stream::iter(std::mem::take(&mut batch))
                        .map(|(key, path, meta)| async { (key, expect(path, meta).await) })
                        .buffered(options.downloads.max(1))
                        .collect()
                        .await;
                for (key, expect) in expected {
                    if let Some(expect) = expect {
                        compare(out, store, &key, records.get(&key), &expect)?;
                    }
                }
            }
            if done {
                return Ok(());
            }
        }
    })
}

/// Compares the index with the disk.
///
/// Errors: only failures to read the index itself; unreadable files are compared as
/// `failed` records.
pub fn verify(
    store: &Store,
    text: &TextIndex,
    graphs: &[(Tier, &VectorIndex)],
    waiting: &dyn Fn(&[u8; 32]) -> bool,
    chunker: &Chunker,
    index_dir: &Path,
) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    let Some(settings) = stored_settings(store)? else {
        return Ok(out);
    };
    let scanner = Scanner::new(settings.max_file_size, index_dir, &settings.roots)?;
    let records: HashMap<Vec<u8>, FileRecord> = store.all_files()?.into_iter().collect();
    let mut on_disk = HashSet::new();
    for root in &settings.roots {
        if crate::s3::is_remote(&root.path) {
            verify_remote(
                &mut out,
                &mut on_disk,
                store,
                &records,
                &root.path,
                &settings.s3,
                &scanner,
                chunker,
                settings.documents,
            )?;
            continue;
        }
        let found = if root.path.is_dir() {
            scanner.walk(&root.path)
        } else {
            Vec::new()
        };
        for f in found {
            let key = path_key(f.path());
            on_disk.insert(key.clone());
            let documents = settings.documents;
            let Some(expect) = expected(&f, chunker, settings.max_file_size, documents) else {
                continue;
            };
            compare(&mut out, store, &key, records.get(&key), &expect)?;
        }
    }
    for (key, rec) in &records {
        if !on_disk.contains(key) {
            out.push(diff(
                DiffKind::Stale,
                key_display(key),
                format!(
                    "recorded as {:?} but not on disk (or no longer admitted)",
                    rec.state
                ),
            ));
        }
    }
    check_chunks(&mut out, store, text, graphs, waiting, &records)?;
    check_history(&mut out, store, &records)?;
    out.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then((a.kind as u8).cmp(&(b.kind as u8)))
    });
    Ok(out)
}

fn compare(
    out: &mut Vec<Difference>,
    store: &Store,
    key: &[u8],
    rec: Option<&FileRecord>,
    expect: &Expected,
) -> Result<()> {
    let path = key_display(key);
    let Some(rec) = rec else {
        out.push(diff(DiffKind::Missing, path, "on disk, not in the index"));
        return Ok(());
    };
    match expect {
        Expected::Indexed { hash, chunk_hashes } => {
            if rec.state != FileState::Indexed {
                out.push(diff(
                    DiffKind::Missing,
                    path,
                    format!("readable text, but recorded as {:?}", rec.state),
                ));
            } else if rec.hash.as_deref() != Some(hash.as_str()) {
                out.push(diff(
                    DiffKind::Stale,
                    path,
                    "content differs from the indexed content",
                ));
            } else {
                let stored: Vec<[u8; 32]> = store
                    .chunks(&rec.chunks)?
                    .into_iter()
                    .map(|(_, c)| c.hash)
                    .collect();
                if &stored != chunk_hashes {
                    out.push(diff(
                        DiffKind::Stale,
                        path,
                        format!(
                            "{} chunks indexed, {} expected",
                            stored.len(),
                            chunk_hashes.len()
                        ),
                    ));
                }
            }
        }
        Expected::Skipped(reason) if rec.state != FileState::Skipped => {
            out.push(diff(
                DiffKind::Stale,
                path,
                format!("should be skipped ({reason}), recorded as {:?}", rec.state),
            ));
        }
        Expected::Failed(reason) if rec.state != FileState::Failed => {
            out.push(diff(
                DiffKind::Stale,
                path,
                format!("unreadable ({reason}), recorded as {:?}", rec.state),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn check_chunks(
    out: &mut Vec<Difference>,
    store: &Store,
    text: &TextIndex,
    graphs: &[(Tier, &VectorIndex)],
    waiting: &dyn Fn(&[u8; 32]) -> bool,
    records: &HashMap<Vec<u8>, FileRecord>,
) -> Result<()> {
    let mut owned: HashMap<u64, String> = HashMap::new();
    for (key, rec) in records {
        for id in &rec.chunks {
            owned.insert(*id, key_display(key));
        }
    }
    let mut stored = HashMap::new();
    store.for_each_chunk(|id, c| {
        stored.insert(id, c);
    })?;
    for (id, c) in &stored {
        if !owned.contains_key(id) {
            out.push(diff(
                DiffKind::OrphanChunk,
                c.path.clone(),
                format!("chunk {id} in the store, owned by no file record"),
            ));
        }
    }
    for (id, path) in &owned {
        if !stored.contains_key(id) {
            out.push(diff(
                DiffKind::OrphanChunk,
                path.clone(),
                format!("file record lists chunk {id}, which the store lacks"),
            ));
        }
    }
    let docs = text.all_docs()?;
    let mut in_text = HashSet::new();
    for (id, path) in docs {
        if !in_text.insert(id) {
            out.push(diff(
                DiffKind::OrphanChunk,
                path.clone(),
                format!("chunk {id} is in the text index twice"),
            ));
        }
        if !stored.contains_key(&id) {
            out.push(diff(
                DiffKind::OrphanChunk,
                path,
                format!("chunk {id} in the text index, not in the store"),
            ));
        }
    }
    for (id, c) in &stored {
        if !in_text.contains(id) {
            out.push(diff(
                DiffKind::OrphanChunk,
                c.path.clone(),
                format!("chunk {id} in the store, not in the text index"),
            ));
        }
    }
    for &(tier, vectors) in graphs {
        let mut expected = 0usize;
        for (id, c) in &stored {
            if store.vector(tier, &c.hash)?.is_some() {
                expected += 1;
                if !vectors.contains(*id) {
                    out.push(diff(
                        DiffKind::OrphanVector,
                        c.path.clone(),
                        format!(
                            "chunk {id} has a {} embedding but no vector in its HNSW graph",
                            tier.name()
                        ),
                    ));
                }
            } else if tier == Tier::Static || !waiting(&c.hash) {
                out.push(diff(
                    DiffKind::NoEmbedding,
                    c.path.clone(),
                    format!(
                        "chunk {id} (lines {}-{}) has no {} embedding and none is being computed",
                        c.start_line,
                        c.end_line,
                        tier.name()
                    ),
                ));
            }
        }
        if vectors.len() > expected {
            out.push(diff(
                DiffKind::OrphanVector,
                "",
                format!(
                    "{} vectors in the {} HNSW graph belong to no chunk",
                    vectors.len() - expected,
                    tier.name()
                ),
            ));
        }
    }
    Ok(())
}

fn check_history(
    out: &mut Vec<Difference>,
    store: &Store,
    records: &HashMap<Vec<u8>, FileRecord>,
) -> Result<()> {
    let mut latest: HashMap<String, ChangeKind> = HashMap::new();
    for row in store.history(None, usize::MAX)? {
        latest.entry(row.path.clone()).or_insert(row.kind);
        if let Some(from) = &row.from {
            latest.entry(from.clone()).or_insert(ChangeKind::Deleted);
        }
    }
    let mut recorded = HashSet::new();
    for (key, rec) in records {
        let path = key_display(key);
        recorded.insert(path.clone());
        match latest.get(&path) {
            None => out.push(diff(
                DiffKind::HistoryGap,
                path,
                format!("recorded as {:?} with no history row", rec.state),
            )),
            Some(ChangeKind::Deleted) => out.push(diff(
                DiffKind::HistoryGap,
                path,
                "recorded, but the last history row says deleted",
            )),
            Some(_) => {}
        }
    }
    for (path, kind) in latest {
        if kind != ChangeKind::Deleted && !recorded.contains(&path) {
            out.push(diff(
                DiffKind::HistoryGap,
                path,
                format!(
                    "last history row says {} but there is no record",
                    kind.as_str()
                ),
            ));
        }
    }
    Ok(())
}
