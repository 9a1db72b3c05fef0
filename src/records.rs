//! Plain values passed between stages and stored in redb: file records, chunk records,
//! history rows. No behaviour beyond small helpers.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What vigil knows about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Size in bytes when last seen.
    pub size: u64,
    /// Modification time when last seen, ns since the Unix epoch.
    pub mtime_ns: i128,
    /// blake3 of the content, hex; absent for skipped and failed files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub state: FileState,
    /// Why the file is skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ids of this file's chunks, in file order.
    #[serde(default)]
    pub chunks: Vec<u64>,
    /// For objects in object storage: the ETag of the version indexed (compared on every
    /// poll, so an unchanged object costs no download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// What a listing (a directory walk or an object-storage listing) saw of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Bytes.
    pub size: u64,
    /// Modification time (last-modified for objects), ns since the Unix epoch.
    pub mtime_ns: i128,
    /// ETag of an object; `None` for local files.
    pub etag: Option<String>,
}

/// Whether a file's content is in the index. The discriminants index per-state counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Indexed = 0,
    Skipped = 1,
    Failed = 2,
}

/// One chunk of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Path of the file, for display (lossy UTF-8).
    pub path: String,
    /// blake3 of the chunk text: the key of its embedding.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// Byte range in the file's text (a document's extracted text), half-open.
    pub byte_start: u64,
    pub byte_end: u64,
    /// Line range, 1-based, inclusive.
    pub start_line: u32,
    pub end_line: u32,
    /// Where in a document the chunk lies (page, cell); absent for plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::pipeline::extract::Location>,
}

/// What happened to a path in one applied change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    Renamed,
    Touched,
    Skipped,
    Failed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Touched => "touched",
            ChangeKind::Skipped => "skipped",
            ChangeKind::Failed => "failed",
        }
    }
}

/// One row of the sync history: one applied change to one path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// When the change was committed, ms since the Unix epoch.
    pub time_ms: u64,
    pub path: String,
    /// For renames, the old path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub kind: ChangeKind,
    pub chunks_added: u32,
    pub chunks_removed: u32,
    /// Chunks whose text had no cached embedding, queued to be embedded.
    pub embeddings_computed: u32,
    /// Chunks whose embedding came from the cache (same text seen before, anywhere).
    pub embeddings_reused: u32,
    /// For skipped and failed changes, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For modifications: the line ranges (1-based, inclusive) of the chunks whose text is
    /// new, i.e. where the file changed, to chunk precision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_lines: Vec<[u32; 2]>,
}

impl HistoryRow {
    /// Whether this row is about `path` or something below it (either side of a rename).
    pub fn concerns(&self, path: &[u8]) -> bool {
        let p = String::from_utf8_lossy(path);
        let under = |s: &str| {
            s == p || (s.starts_with(p.as_ref()) && s.as_bytes().get(p.len()) == Some(&b'/'))
        };
        under(&self.path) || self.from.as_deref().is_some_and(under)
    }
}

/// The key of a path in the store: its raw bytes (non-UTF-8 names are kept exactly).
pub fn path_key(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

/// The path of a store key.
pub fn key_path(key: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(key))
}

/// A key for display (lossy UTF-8).
pub fn key_display(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Lowercase hex of a blake3 hash.
pub fn hash_hex(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <&str>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Current time in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
