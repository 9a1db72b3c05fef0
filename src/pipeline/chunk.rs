//! chunk: which pieces of this text fit the model?
//!
//! Splits text by structure: code along its syntax tree (`split`, tree-sitter, one parse per
//! file shared with the context), Markdown by sections and anything else by paragraphs,
//! lines and sentences (the `text-splitter` crate). With a tokenizer,
//! every chunk fits in [`MODEL_MAX_TOKENS`] tokens of the model's own tokenizer, special
//! tokens included, because the model silently truncates longer input.
//!
//! Each chunk also carries its [`ChunkContext`] (file name, enclosing definitions, names it
//! defines). What is embedded is [`embedded_text`]: the header line, then the chunk; the
//! chunk's hash is the hash of that text, so a cached embedding is reused exactly when the
//! embedded text is unchanged. Neighbouring pieces smaller than [`MIN_CHUNK_TOKENS`] are
//! merged while they fit, so no chunk is a lone line with no context.

use std::path::Path;

use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use super::context::{ChunkContext, Lang, Outline};
use super::extract::{Document, DocumentLimits, ExtractError, Location};
use super::hash::Body;
use super::hash::text_hash;
use super::split::split_code;
use super::tokens::TokenCounter;

/// Longest input all-MiniLM-L6-v2 reads, in tokens, including `[CLS]` and `[SEP]`
/// (sentence-transformers' `max_seq_length` for this model).
pub const MODEL_MAX_TOKENS: usize = 256;
/// Tokens the tokenizer adds around every input (`[CLS]`, `[SEP]`).
const SPECIAL_TOKENS: usize = 2;
/// Tokens kept free for the header line embedded before each chunk (its bytes are capped at
/// `context::MAX_HEADER_BYTES`; identifiers take about one token per 3–4 bytes).
const HEADER_TOKENS: usize = 32;
/// Chunk size in characters when no tokenizer is available (text-only indexes).
const FALLBACK_CHARS: usize = 1000;
/// Neighbouring pieces are merged while one of them is smaller than this (model tokens),
/// and the merge still fits. A quarter of the window: one-line chunks carry no context.
pub const MIN_CHUNK_TOKENS: usize = 64;
/// The same minimum, in characters, for indexes sized by characters.
const MIN_CHUNK_CHARS: usize = 250;
/// A piece shorter than this many bytes is surely under the token minimum too; longer
/// pieces are measured (at least one byte per token).
const SMALL_BYTES_HINT: usize = MIN_CHUNK_TOKENS;

/// One piece of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    /// blake3 of [`embedded_text`] (header and text): the key of the chunk's embedding.
    pub hash: [u8; 32],
    /// File name and enclosing definitions (see `context`); embedded and indexed, not shown.
    pub header: String,
    /// Names this chunk defines (functions, classes, types, headings), in file order.
    pub defines: Vec<String>,
    /// Byte range in the decoded text, half-open.
    pub byte_start: usize,
    pub byte_end: usize,
    /// 1-based, inclusive.
    pub start_line: u32,
    pub end_line: u32,
    /// Where in a document the chunk lies (page, cell); `None` for plain text.
    pub location: Option<Location>,
}

/// Byte ranges (shifted by `offset`) of the pieces a splitter returned, blank ones left out.
fn byte_ranges(offset: usize, pieces: Vec<(usize, &str)>) -> Vec<(usize, usize)> {
    pieces
        .into_iter()
        .filter(|(_, s)| !s.trim().is_empty())
        .map(|(start, s)| (offset + start, offset + start + s.len()))
        .collect()
}

/// Measures chunk size in model tokens, or in characters when there is no tokenizer.
#[derive(Clone)]
enum Sizer {
    Tokens(TokenCounter),
    Chars,
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Tokens(t) => t.count(chunk),
            Sizer::Chars => chunk.chars().count(),
        }
    }
}

/// Splits file texts into [`Chunk`]s; cheap to share between threads.
pub struct Chunker {
    sizer: Sizer,
    capacity: usize,
    min_size: usize,
    text: TextSplitter<Sizer>,
    markdown: MarkdownSplitter<Sizer>,
    fingerprint: String,
}

impl Chunker {
    /// A chunker sized by `tokenizer` (chunk ≤ 222 tokens, so header + chunk + special
    /// tokens fit the model's 256), or by characters (≤ 1000) when `None`.
    pub fn new(tokenizer: Option<Tokenizer>) -> Self {
        let (sizer, capacity, min_size, fingerprint) = match tokenizer.map(untruncated) {
            Some(t) => {
                let capacity = MODEL_MAX_TOKENS - SPECIAL_TOKENS - HEADER_TOKENS;
                (
                    Sizer::Tokens(TokenCounter::new(t)),
                    capacity,
                    MIN_CHUNK_TOKENS,
                    format!("tokens:{capacity}-min{MIN_CHUNK_TOKENS}"),
                )
            }
            None => (
                Sizer::Chars,
                FALLBACK_CHARS,
                MIN_CHUNK_CHARS,
                format!("chars:{FALLBACK_CHARS}-min{MIN_CHUNK_CHARS}"),
            ),
        };
        let config = || ChunkConfig::new(capacity).with_sizer(sizer.clone());
        Self {
            text: TextSplitter::new(config()),
            markdown: MarkdownSplitter::new(config()),
            fingerprint: format!("text-splitter-0.33/syntax-1/{fingerprint}/context-2/documents-1"),
            sizer,
            capacity,
            min_size,
        }
    }

    /// Identifies the chunking rules; when it changes, every file must be chunked again.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Splits `text`, choosing the splitter by the extension of `path`; each chunk gets its
    /// context (the header names the file by its name only, so a moved file keeps its
    /// embeddings).
    pub fn chunk(&self, path: &Path, text: &str) -> Vec<Chunk> {
        let lang = Lang::of(path);
        let tree = super::split::parse(lang, text);
        let ranges = match &tree {
            Some(tree) => split_code(tree, text, self.capacity, &|piece| self.sizer.size(piece)),
            None if lang == Lang::Markdown => {
                byte_ranges(0, self.markdown.chunk_indices(text).collect())
            }
            None => byte_ranges(0, self.text.chunk_indices(text).collect()),
        };
        let ranges = self.merge_small(text, ranges);
        let outline = Outline::of_tree(lang, text, tree.as_ref());
        self.build(path, &outline, text, ranges.into_iter().map(|r| (r, None)))
    }

    /// The chunks of a file's content: text as [`Chunker::chunk`] splits it; a document's
    /// text extracted in a child process first (bounded by `limits`), then split by
    /// [`Chunker::chunk_document`].
    ///
    /// Errors: the document's [`ExtractError`].
    pub fn chunk_body(
        &self,
        path: &Path,
        body: &Body,
        limits: DocumentLimits,
    ) -> Result<Vec<Chunk>, ExtractError> {
        match body {
            Body::Text(text) => Ok(self.chunk(path, text)),
            Body::Document(format, bytes) => {
                let doc = super::extract::isolate::extract(*format, bytes, limits)?;
                Ok(self.chunk_document(path, &doc))
            }
        }
    }

    /// Splits the text extracted from a document as Markdown, each part (page, cell) on its
    /// own, so that no chunk spans two parts and each carries its part's location; flowing
    /// text (paragraphs) as a whole, each chunk located where it starts.
    pub fn chunk_document(&self, path: &Path, doc: &Document) -> Vec<Chunk> {
        let text = doc.text.as_str();
        let mut located = Vec::new();
        for (range, location) in doc.sections() {
            let pieces = self.markdown.chunk_indices(&text[range.clone()]).collect();
            let ranges = self.merge_small(text, byte_ranges(range.start, pieces));
            located.extend(
                ranges
                    .into_iter()
                    .map(|r| (r, location.or_else(|| doc.location_at(r.0)))),
            );
        }
        let outline = Outline::of(Lang::Markdown, text);
        self.build(path, &outline, text, located.into_iter())
    }

    /// Chunks of `text` at these byte ranges, each with its context and location.
    fn build(
        &self,
        path: &Path,
        outline: &Outline,
        text: &str,
        ranges: impl Iterator<Item = ((usize, usize), Option<Location>)>,
    ) -> Vec<Chunk> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines = LineIndex::new(text);
        ranges
            .map(|((start, end), location)| {
                let body = &text[start..end];
                let ChunkContext { header, defines } =
                    outline.context(&file_name, text, start, end);
                Chunk {
                    text: body.to_string(),
                    hash: text_hash(&embedded_text(&header, body)),
                    header,
                    defines,
                    byte_start: start,
                    byte_end: end,
                    start_line: lines.line_of(start),
                    end_line: lines.line_of(end.saturating_sub(1).max(start)),
                    location,
                }
            })
            .collect()
    }

    /// Joins neighbouring byte ranges while one of the two is under the minimum size and the
    /// joined text (with what lies between them) fits the capacity.
    fn merge_small(&self, text: &str, ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        let mut last_small = false;
        for (start, end) in ranges {
            let small = self.is_small(&text[start..end]);
            if let Some(prev) = out.last_mut()
                && (small || last_small)
            {
                let merged = self.sizer.size(&text[prev.0..end]);
                if merged <= self.capacity {
                    prev.1 = end;
                    last_small = merged < self.min_size;
                    continue;
                }
            }
            out.push((start, end));
            last_small = small;
        }
        out
    }

    fn is_small(&self, piece: &str) -> bool {
        match self.sizer {
            Sizer::Chars => piece.chars().count() < self.min_size,
            Sizer::Tokens(_) => {
                piece.len() < SMALL_BYTES_HINT || self.sizer.size(piece) < self.min_size
            }
        }
    }
}

/// The text that is embedded for a chunk: its header line, then its text.
pub fn embedded_text(header: &str, text: &str) -> String {
    if header.is_empty() {
        text.to_string()
    } else {
        format!("{header}\n{text}")
    }
}

/// The tokenizer without its configured truncation and padding: tokenizer.json files often
/// truncate (all-MiniLM-L6-v2's at 128 tokens), which would make every text look small.
fn untruncated(mut tokenizer: Tokenizer) -> Tokenizer {
    tokenizer.with_padding(None);
    // Removing truncation cannot fail (only invalid truncation parameters can).
    let _ = tokenizer.with_truncation(None);
    tokenizer
}

/// Byte offset → 1-based line number.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        Self {
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }

    fn line_of(&self, offset: usize) -> u32 {
        (self.newlines.partition_point(|&nl| nl < offset) + 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_are_one_based_and_inclusive() {
        let chunker = Chunker::new(None);
        let text = "alpha\n\nbeta gamma\ndelta\n";
        let chunks = chunker.chunk(Path::new("a.txt"), text);
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].start_line, chunks[0].end_line), (1, 4));
        assert_eq!(
            &text[chunks[0].byte_start..chunks[0].byte_end],
            chunks[0].text
        );
    }

    #[test]
    fn long_text_is_split_and_ranges_point_at_the_text() {
        let chunker = Chunker::new(None);
        let para = "word ".repeat(150);
        let text = format!("{para}\n\n{para}\n\n{para}\n");
        let chunks = chunker.chunk(Path::new("notes.txt"), &text);
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.text.chars().count() <= FALLBACK_CHARS);
            assert_eq!(&text[c.byte_start..c.byte_end], c.text);
        }
        assert_eq!(chunks[0].start_line, 1);
        assert_eq!(chunks.last().unwrap().end_line, 5);
    }
}
