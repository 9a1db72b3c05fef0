//! prepare: what a file's read (or downloaded) content becomes on its way to the index —
//! its chunks, or why it is skipped or failed. The one home of that judgement: a reconcile,
//! an object poll and `verify` all ask it, so they cannot disagree.

use std::path::Path;

use super::chunk::{Chunk, Chunker};
use super::extract::ExtractError;
use super::hash::{FileContent, ReadError};
use crate::settings::DocumentLimits;

/// What one file's content becomes.
#[derive(Debug)]
pub enum Prepared {
    /// Gone between the scan (or listing) and the read: treated as absent.
    Vanished,
    /// The content hashes to what is already indexed (a `touch`): not chunked again.
    Unchanged { hash: [u8; 32], size: u64 },
    /// Chunks to index. `size` in bytes.
    Chunked {
        hash: [u8; 32],
        size: u64,
        chunks: Vec<Chunk>,
    },
    /// Not indexed, by rule: binary, over a size limit, or too much extracted text. The hash
    /// is known when the content was read whole.
    Skipped {
        reason: String,
        hash: Option<[u8; 32]>,
    },
    /// Not indexed because something broke.
    Failed {
        reason: String,
        cause: Failure,
        /// Known when the content was read but its text could not be extracted.
        hash: Option<[u8; 32]>,
    },
}

/// Which stage failed.
#[derive(Debug)]
pub enum Failure {
    /// Opening or reading the file; the error tells whether it may pass by itself.
    Read(std::io::Error),
    /// Extracting a document's text (the content itself is at fault).
    Extract,
}

/// Judges read content: chunks it with `chunker` (documents extracted within `documents`),
/// unless it hashes to `indexed` (the hex hash of what is already indexed).
pub fn prepare(
    path: &Path,
    read: Result<FileContent, ReadError>,
    chunker: &Chunker,
    documents: DocumentLimits,
    indexed: Option<&str>,
) -> Prepared {
    match read {
        Ok(content) if indexed.is_some_and(|h| h == hex::encode(content.hash)) => {
            Prepared::Unchanged {
                hash: content.hash,
                size: content.size,
            }
        }
        Ok(content) => match chunker.chunk_body(path, &content.body, documents) {
            Ok(chunks) => Prepared::Chunked {
                hash: content.hash,
                size: content.size,
                chunks,
            },
            Err(e @ ExtractError::TooMuchText { .. }) => Prepared::Skipped {
                reason: e.to_string(),
                hash: Some(content.hash),
            },
            Err(e) => Prepared::Failed {
                reason: e.to_string(),
                cause: Failure::Extract,
                hash: Some(content.hash),
            },
        },
        Err(ReadError::Binary { hash, .. }) => Prepared::Skipped {
            reason: "binary content".into(),
            hash: Some(hash),
        },
        Err(e @ ReadError::TooLarge { .. }) => Prepared::Skipped {
            reason: e.to_string(),
            hash: None,
        },
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Prepared::Vanished,
        Err(ReadError::Io(e)) => Prepared::Failed {
            reason: e.to_string(),
            cause: Failure::Read(e),
            hash: None,
        },
    }
}
