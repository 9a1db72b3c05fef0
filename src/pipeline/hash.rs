//! hash: what is in this file, and has it changed?
//!
//! Reads a whole file (bounded by the size limit), detects binary content, decodes text and
//! fingerprints the raw bytes with blake3. Documents (PDF, notebooks, HTML: see `extract`)
//! are kept as bytes: their text is extracted only when their hash is new.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::extract::Format;

/// The content of a file, read once.
#[derive(Debug)]
pub struct FileContent {
    /// blake3 of the raw bytes.
    pub hash: [u8; 32],
    /// Size in bytes actually read.
    pub size: u64,
    pub body: Body,
}

/// What a file holds.
#[derive(Debug)]
pub enum Body {
    /// Text: UTF-8 decoded lossily; UTF-16 with a byte-order mark is decoded as UTF-16.
    Text(String),
    /// A document whose text must be extracted (`extract`), with its raw bytes.
    Document(Format, Vec<u8>),
}

/// Why a file's content is not indexed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The content is not text (e.g. contains NUL bytes). The hash is still reported so a
    /// later `touch` costs nothing.
    #[error("binary content")]
    Binary { hash: [u8; 32], size: u64 },
    /// The file grew past the size limit while being read.
    #[error("larger than the size limit ({size} bytes > {limit} bytes)")]
    TooLarge { size: u64, limit: u64 },
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How many leading bytes decide whether content is binary (as git and ripgrep do).
const SNIFF_BYTES: usize = 8 * 1024;

/// Reads and hashes `path`, reading at most `limit` bytes.
///
/// The file is opened with `O_NONBLOCK | O_NOFOLLOW`, so a FIFO swapped in after the scan
/// cannot block and a symlink is never followed.
///
/// Errors: [`ReadError::Binary`], [`ReadError::TooLarge`], or the I/O error of open/read.
pub fn read_file(path: &Path, limit: u64) -> Result<FileContent, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file").into());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    decode(path, bytes, limit)
}

/// Hashes and decodes content already in memory (e.g. a downloaded object) of the file at
/// `path` (whose extension says whether it is a document), with the same rules as
/// [`read_file`].
///
/// Errors: [`ReadError::Binary`] or [`ReadError::TooLarge`] (more than `limit` bytes).
pub fn decode(path: &Path, bytes: Vec<u8>, limit: u64) -> Result<FileContent, ReadError> {
    let size = bytes.len() as u64;
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    let hash = *blake3::hash(&bytes).as_bytes();
    if let Some(format) = Format::of(path) {
        return Ok(FileContent {
            hash,
            size,
            body: Body::Document(format, bytes),
        });
    }
    let sniff = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let text = match content_inspector::inspect(sniff) {
        content_inspector::ContentType::BINARY => return Err(ReadError::Binary { hash, size }),
        content_inspector::ContentType::UTF_16LE => decode_utf16(&bytes[2..], u16::from_le_bytes),
        content_inspector::ContentType::UTF_16BE => decode_utf16(&bytes[2..], u16::from_be_bytes),
        _ => String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    };
    Ok(FileContent {
        hash,
        size,
        body: Body::Text(text),
    })
}

fn decode_utf16(bytes: &[u8], word: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|b| word([b[0], b[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// blake3 of a chunk text: the key of its embedding in the cache.
pub fn text_hash(text: &str) -> [u8; 32] {
    *blake3::hash(text.as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_text_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("a.txt");
        std::fs::write(&bin, b"abc\0def").unwrap();
        assert!(matches!(
            read_file(&bin, 100),
            Err(ReadError::Binary { .. })
        ));
        let txt = dir.path().join("b.txt");
        std::fs::write(&txt, b"caf\xe9 ok").unwrap();
        let c = read_file(&txt, 100).unwrap();
        assert!(matches!(c.body, Body::Text(t) if t == "caf\u{FFFD} ok"));
        assert!(matches!(
            read_file(&txt, 3),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn documents_are_kept_as_bytes_whatever_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("paper.PDF");
        let bytes = b"%PDF-1.4\0\x01binary";
        std::fs::write(&pdf, bytes).unwrap();
        let c = read_file(&pdf, 100).unwrap();
        assert!(matches!(c.body, Body::Document(Format::Pdf, ref b) if b == bytes));
        assert_eq!(c.hash, *blake3::hash(bytes).as_bytes());
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u16.txt");
        let mut bytes = vec![0xFF, 0xFE];
        for u in "hello world".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(&p, &bytes).unwrap();
        let c = read_file(&p, 1000).unwrap();
        assert!(matches!(c.body, Body::Text(t) if t == "hello world"));
    }
}
