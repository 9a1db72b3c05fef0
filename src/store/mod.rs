//! store: what do we believe is on disk?
//!
//! redb holds the truth of the index: one record per file, chunk metadata, embedding vectors
//! keyed by the blake3 hash of the chunk text, the sync history and a schema version. The
//! derived indexes (tantivy, HNSW) can always be rebuilt from what is here.
//!
//! Only the engine writes; any thread may read through [`Store::begin_read`]-based methods,
//! which see a consistent MVCC snapshot and never block the writer.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::records::{ChunkRecord, FileRecord, HistoryRow};
use crate::settings::Tier;

mod upkeep;
mod vectors;

pub use upkeep::{StoreCounts, TableBytes};
use vectors::encode;
pub use vectors::{decode_vector, encode_vector};

/// Bump when the layout of any table changes; an index of another version is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// path bytes → JSON [`FileRecord`].
const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("files");
/// chunk id → JSON [`ChunkRecord`].
const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunks");
/// blake3 of chunk text → chunk ids that have this text.
const CHUNKS_BY_HASH: MultimapTableDefinition<&[u8; 32], u64> =
    MultimapTableDefinition::new("chunks_by_hash");
/// blake3 of chunk text → little-endian f32 × dims.
const VECTORS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("vectors");
/// Text hash → static-model embedding (little-endian f16 × dims); see `pipeline::embed_static`.
const STATIC_VECTORS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("static_vectors");

/// sequence number → JSON [`HistoryRow`].
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// blake3 of chunk text → when (ms since the epoch) garbage collection first saw its
/// embedding unused by any chunk.
const UNUSED_VECTORS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("unused_vectors");
/// Paths whose derived-index update may be in flight (write-ahead intent, see ARCHITECTURE.md).
const PENDING: TableDefinition<&[u8], ()> = TableDefinition::new("pending");
/// Counters and settings: schema_version, generation, next_chunk_id, next_history_seq.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// String settings, e.g. the chunker fingerprint.
const META_STR: TableDefinition<&str, &str> = TableDefinition::new("meta_str");

const GENERATION: &str = "generation";
const NEXT_CHUNK_ID: &str = "next_chunk_id";
const NEXT_HISTORY_SEQ: &str = "next_history_seq";

/// The redb database of one index directory.
pub struct Store {
    /// Read-locked by every transaction start; write-locked only to compact the file.
    db: std::sync::RwLock<Db>,
    /// The database file.
    path: std::path::PathBuf,
}

/// The database, opened for writing (the engine) or read-only (a CLI query on an index no
/// process is watching).
enum Db {
    Writable(Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

/// The records directly in a directory, and the names of its subdirectories with records.
pub type Children = (Vec<(Vec<u8>, FileRecord)>, Vec<Vec<u8>>);

/// The index file is held by another process.
#[derive(Debug, thiserror::Error)]
#[error("{}: the index is open in another vigil process", .0.display())]
pub struct InUse(pub std::path::PathBuf);

/// Everything one batch changes, applied in a single redb write transaction.
#[derive(Default)]
pub struct StoreBatch {
    /// Files to (re)write: path bytes and the new record.
    pub put_files: Vec<(Vec<u8>, FileRecord)>,
    /// Files whose record is removed.
    pub delete_files: Vec<Vec<u8>>,
    /// New chunks.
    pub put_chunks: Vec<(u64, ChunkRecord)>,
    /// Chunks removed (id and text hash).
    pub delete_chunks: Vec<(u64, [u8; 32])>,
    /// History rows to append, in order.
    pub history: Vec<HistoryRow>,
    /// Static-tier vectors of new chunk texts (written with the chunks that use them).
    pub put_static_vectors: Vec<([u8; 32], Vec<f32>)>,
    /// Value of `next_chunk_id` after this batch.
    pub next_chunk_id: u64,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialise")
}

fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("corrupt {what} record in the index"))
}

impl Store {
    /// Opens or creates `dir/index.redb`, waiting up to `wait` while another process holds
    /// it (redb takes an exclusive file lock; short-lived readers release it quickly).
    ///
    /// Errors: [`InUse`] when still held after `wait`; the file is not a redb file; or its
    /// schema version differs from [`SCHEMA_VERSION`].
    pub fn open(dir: &Path, wait: Duration) -> Result<Self> {
        let path = dir.join("index.redb");
        if !path.exists() {
            create_atomically(&path)?;
        }
        let deadline = Instant::now() + wait;
        let db = loop {
            match Database::create(&path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(InUse(path).into()),
                Err(other) => {
                    return Err(anyhow::Error::new(other)
                        .context(format!("{}: cannot open", path.display())));
                }
            }
        };
        let store = Self {
            db: Db::Writable(db).into(),
            path: path.clone(),
        };
        store.init_schema(&path)?;
        Ok(store)
    }

    /// Opens `dir/index.redb` read-only: no write transaction, nothing on disk changes. It
    /// shares the file with other readers and keeps a writer out only while it is open
    /// (writers wait for it, see [`Store::open`]).
    ///
    /// Errors: [`InUse`] when a writer holds the file; no index there; a file of another
    /// schema version.
    pub fn open_read_only(dir: &Path) -> Result<Self> {
        let path = dir.join("index.redb");
        let db = match redb::ReadOnlyDatabase::open(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(InUse(path).into()),
            Err(other) => {
                return Err(
                    anyhow::Error::new(other).context(format!("{}: cannot open", path.display()))
                );
            }
        };
        let store = Self {
            db: Db::ReadOnly(db).into(),
            path: path.clone(),
        };
        let version = store.meta("schema_version")?;
        if version != SCHEMA_VERSION {
            bail!(
                "{}: index schema version {version}, this vigil reads version {SCHEMA_VERSION}; \
                 delete the index directory to rebuild it",
                path.display()
            );
        }
        Ok(store)
    }

    fn init_schema(&self, path: &Path) -> Result<()> {
        let tx = self.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let version = meta.get("schema_version")?.map(|v| v.value());
            match version {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) => bail!(
                    "{}: index schema version {v}, this vigil reads version {SCHEMA_VERSION}; \
                     delete the index directory to rebuild it",
                    path.display()
                ),
            }
            tx.open_table(FILES)?;
            tx.open_table(CHUNKS)?;
            tx.open_multimap_table(CHUNKS_BY_HASH)?;
            tx.open_table(VECTORS)?;
            tx.open_table(STATIC_VECTORS)?;
            tx.open_table(HISTORY)?;
            tx.open_table(PENDING)?;
            tx.open_table(META_STR)?;
            tx.open_table(UNUSED_VECTORS)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        Ok(match &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            Db::Writable(db) => db.begin_read()?,
            Db::ReadOnly(db) => db.begin_read()?,
        })
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction> {
        match &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            Db::Writable(db) => Ok(db.begin_write()?),
            Db::ReadOnly(_) => bail!("the index is open read-only"),
        }
    }

    fn meta(&self, key: &str) -> Result<u64> {
        let tx = self.begin_read()?;
        Ok(tx
            .open_table(META)?
            .get(key)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// The generation: incremented by every write that changes chunks or vectors. The HNSW
    /// snapshot on disk records the generation it was built at.
    pub fn generation(&self) -> Result<u64> {
        self.meta(GENERATION)
    }

    /// The next free chunk id.
    pub fn next_chunk_id(&self) -> Result<u64> {
        self.meta(NEXT_CHUNK_ID)
    }

    /// A string setting (e.g. `chunker`), if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        let tx = self.begin_read()?;
        Ok(tx
            .open_table(META_STR)?
            .get(key)?
            .map(|v| v.value().to_string()))
    }

    /// Sets a string setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let tx = self.begin_write()?;
        tx.open_table(META_STR)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// The record of one file.
    pub fn file(&self, path: &[u8]) -> Result<Option<FileRecord>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(FILES)?;
        match table.get(path)? {
            Some(v) => Ok(Some(from_json(v.value(), "file")?)),
            None => Ok(None),
        }
    }

    /// Records at `prefix` itself or below it (`prefix/…`), sorted by path.
    pub fn files_under(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, FileRecord)>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(FILES)?;
        let mut out = Vec::new();
        if let Some(v) = table.get(prefix)? {
            out.push((prefix.to_vec(), from_json(v.value(), "file")?));
        }
        let mut start = prefix.to_vec();
        start.push(b'/');
        let mut end = prefix.to_vec();
        end.push(b'/' + 1);
        for item in table.range(start.as_slice()..end.as_slice())? {
            let (k, v) = item?;
            out.push((k.value().to_vec(), from_json(v.value(), "file")?));
        }
        Ok(out)
    }

    /// Up to `limit` records below `prefix/` whose keys sort after `after` (from the first
    /// when `None`), in key order: a page of a stream that needs no memory beyond the page.
    pub fn files_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, FileRecord)>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(FILES)?;
        let mut start = prefix.to_vec();
        start.push(b'/');
        if let Some(after) = after {
            start = [after, &[0u8]].concat();
        }
        let mut end = prefix.to_vec();
        end.push(b'/' + 1);
        let mut out = Vec::new();
        for item in table.range(start.as_slice()..end.as_slice())?.take(limit) {
            let (k, v) = item?;
            out.push((k.value().to_vec(), from_json(v.value(), "file")?));
        }
        Ok(out)
    }

    /// What the store holds directly in directory `dir`: the records of its files, and the
    /// names of its subdirectories that hold records. Seeks past each subdirectory, so the
    /// cost grows with the number of children, not with the size of the subtree.
    pub fn children(&self, dir: &[u8]) -> Result<Children> {
        let tx = self.begin_read()?;
        let table = tx.open_table(FILES)?;
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        let mut end = dir.to_vec();
        end.push(b'/' + 1);
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        let mut start = prefix.clone();
        loop {
            let Some(item) = table.range(start.as_slice()..end.as_slice())?.next() else {
                break;
            };
            let (k, v) = item?;
            let key = k.value().to_vec();
            let rest = &key[prefix.len()..];
            match rest.iter().position(|&b| b == b'/') {
                None => {
                    files.push((key.clone(), from_json(v.value(), "file")?));
                    start = key;
                    start.push(0);
                }
                Some(slash) => {
                    let name = rest[..slash].to_vec();
                    start = [prefix.as_slice(), name.as_slice(), &[b'/' + 1]].concat();
                    dirs.push(name);
                }
            }
        }
        Ok((files, dirs))
    }

    /// Every file record, sorted by path.
    pub fn all_files(&self) -> Result<Vec<(Vec<u8>, FileRecord)>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(FILES)?;
        table
            .iter()?
            .map(|item| {
                let (k, v) = item?;
                Ok((k.value().to_vec(), from_json(v.value(), "file")?))
            })
            .collect()
    }

    /// Chunk metadata by id; missing ids are left out.
    pub fn chunks(&self, ids: &[u64]) -> Result<Vec<(u64, ChunkRecord)>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(CHUNKS)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(v) = table.get(id)? {
                out.push((id, from_json(v.value(), "chunk")?));
            }
        }
        Ok(out)
    }

    /// Calls `f(id, record)` for every chunk, in id order.
    pub fn for_each_chunk(&self, mut f: impl FnMut(u64, ChunkRecord)) -> Result<()> {
        let tx = self.begin_read()?;
        for item in tx.open_table(CHUNKS)?.iter()? {
            let (k, v) = item?;
            f(k.value(), from_json(v.value(), "chunk")?);
        }
        Ok(())
    }

    /// Ids of the chunks whose text hashes to `hash`.
    pub fn chunk_ids_with_hash(&self, hash: &[u8; 32]) -> Result<Vec<u64>> {
        let tx = self.begin_read()?;
        let table = tx.open_multimap_table(CHUNKS_BY_HASH)?;
        table.get(hash)?.map(|v| Ok(v?.value())).collect()
    }

    /// Paths left in the write-ahead intent table by an interrupted batch.
    pub fn pending(&self) -> Result<Vec<Vec<u8>>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(PENDING)?;
        table
            .iter()?
            .map(|item| Ok(item?.0.value().to_vec()))
            .collect()
    }

    /// Records the intent to change these paths in the derived indexes (step 1 of the commit
    /// protocol). Durable before the derived indexes are touched.
    pub fn mark_pending(&self, paths: &[Vec<u8>]) -> Result<()> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(PENDING)?;
            for p in paths {
                table.insert(p.as_slice(), ())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies one batch atomically and clears the intent of `pending` paths (step 3 of the
    /// commit protocol). Returns the new generation.
    pub fn apply(&self, batch: &StoreBatch, pending: &[Vec<u8>]) -> Result<u64> {
        let tx = self.begin_write()?;
        let generation;
        {
            let mut files = tx.open_table(FILES)?;
            let mut chunks = tx.open_table(CHUNKS)?;
            let mut by_hash = tx.open_multimap_table(CHUNKS_BY_HASH)?;
            let mut history = tx.open_table(HISTORY)?;
            let mut meta = tx.open_table(META)?;
            for path in &batch.delete_files {
                files.remove(path.as_slice())?;
            }
            for (path, record) in &batch.put_files {
                files.insert(path.as_slice(), to_json(record).as_slice())?;
            }
            for (id, hash) in &batch.delete_chunks {
                chunks.remove(id)?;
                by_hash.remove(hash, id)?;
            }
            for (id, record) in &batch.put_chunks {
                chunks.insert(id, to_json(record).as_slice())?;
                by_hash.insert(&record.hash, id)?;
            }
            if !batch.put_static_vectors.is_empty() {
                let mut statics = tx.open_table(STATIC_VECTORS)?;
                for (hash, vector) in &batch.put_static_vectors {
                    // A text seen before keeps its vector (no rewrite of an unchanged page).
                    if statics.get(hash)?.is_none() {
                        statics.insert(hash, encode(Tier::Static, vector).as_slice())?;
                    }
                }
            }
            let mut seq = meta.get(NEXT_HISTORY_SEQ)?.map(|v| v.value()).unwrap_or(0);
            for row in &batch.history {
                history.insert(seq, to_json(row).as_slice())?;
                seq += 1;
            }
            meta.insert(NEXT_HISTORY_SEQ, seq)?;
            let next = meta.get(NEXT_CHUNK_ID)?.map(|v| v.value()).unwrap_or(0);
            meta.insert(NEXT_CHUNK_ID, next.max(batch.next_chunk_id))?;
            generation = bump(&mut meta, GENERATION, 1)?;
            let mut pend = tx.open_table(PENDING)?;
            for p in pending {
                pend.remove(p.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(generation)
    }

    /// History rows, newest first; with `path`, only rows about it or below it.
    pub fn history(&self, path: Option<&[u8]>, limit: usize) -> Result<Vec<HistoryRow>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(HISTORY)?;
        let mut out = Vec::new();
        for item in table.iter()?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let row: HistoryRow = from_json(v.value(), "history")?;
            if path.is_none_or(|p| row.concerns(p)) {
                out.push(row);
            }
        }
        Ok(out)
    }
}

/// Creates a new database beside `path` and links it into place, so a crash during
/// creation never leaves a half-written `index.redb`.
fn create_atomically(path: &Path) -> Result<()> {
    let partial = path.with_extension(format!("redb.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let db = Database::create(&partial)
        .with_context(|| format!("{}: cannot create", partial.display()))?;
    let store = Store {
        db: Db::Writable(db).into(),
        path: path.to_path_buf(),
    };
    store.init_schema(&partial)?;
    drop(store);
    // A hard link never replaces: if another process created the index meanwhile, keep it.
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("{}: cannot create", path.display()))
        }
        _ => Ok(()),
    }
}

fn bump(meta: &mut redb::Table<&str, u64>, key: &str, by: u64) -> Result<u64> {
    let value = meta.get(key)?.map(|v| v.value()).unwrap_or(0) + by;
    meta.insert(key, value)?;
    Ok(value)
}
