//! chunk: which pieces of this text fit the model?
//!
//! Splits text by structure with the `text-splitter` crate: code by syntax (tree-sitter),
//! Markdown by sections, anything else by paragraphs, lines and sentences. With a tokenizer,
//! every chunk fits in [`MODEL_MAX_TOKENS`] tokens of the model's own tokenizer, special
//! tokens included, because the model silently truncates longer input.

use std::path::Path;
use std::sync::Arc;

use text_splitter::{ChunkConfig, ChunkSizer, CodeSplitter, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use super::hash::text_hash;

/// Longest input all-MiniLM-L6-v2 reads, in tokens, including `[CLS]` and `[SEP]`
/// (sentence-transformers' `max_seq_length` for this model).
pub const MODEL_MAX_TOKENS: usize = 256;
/// Tokens the tokenizer adds around every input (`[CLS]`, `[SEP]`).
const SPECIAL_TOKENS: usize = 2;
/// Chunk size in characters when no tokenizer is available (text-only indexes).
const FALLBACK_CHARS: usize = 1000;

/// One piece of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    /// blake3 of `text`.
    pub hash: [u8; 32],
    /// Byte range in the decoded text, half-open.
    pub byte_start: usize,
    pub byte_end: usize,
    /// 1-based, inclusive.
    pub start_line: u32,
    pub end_line: u32,
}

/// Measures chunk size in model tokens, or in characters when there is no tokenizer.
#[derive(Clone)]
enum Sizer {
    Tokens(Arc<Tokenizer>),
    Chars,
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Tokens(t) => t.as_ref().size(chunk),
            Sizer::Chars => chunk.chars().count(),
        }
    }
}

/// Splits file texts into [`Chunk`]s; cheap to share between threads.
pub struct Chunker {
    text: TextSplitter<Sizer>,
    markdown: MarkdownSplitter<Sizer>,
    code: Vec<(&'static [&'static str], CodeSplitter<Sizer>)>,
    fingerprint: String,
}

impl Chunker {
    /// A chunker sized by `tokenizer` (chunks ≤ 256 tokens with special tokens), or by
    /// characters (≤ 1000) when `None`.
    pub fn new(tokenizer: Option<Tokenizer>) -> Self {
        let (sizer, capacity, fingerprint) = match tokenizer.map(untruncated) {
            Some(t) => (
                Sizer::Tokens(Arc::new(t)),
                MODEL_MAX_TOKENS - SPECIAL_TOKENS,
                format!("tokens:{}", MODEL_MAX_TOKENS - SPECIAL_TOKENS),
            ),
            None => (
                Sizer::Chars,
                FALLBACK_CHARS,
                format!("chars:{FALLBACK_CHARS}"),
            ),
        };
        let config = || ChunkConfig::new(capacity).with_sizer(sizer.clone());
        let languages: Vec<(&'static [&'static str], tree_sitter_language::LanguageFn)> = vec![
            (&["rs"], tree_sitter_rust::LANGUAGE),
            (&["py", "pyi"], tree_sitter_python::LANGUAGE),
            (&["go"], tree_sitter_go::LANGUAGE),
            (
                &["js", "mjs", "cjs", "jsx"],
                tree_sitter_javascript::LANGUAGE,
            ),
            (
                &["ts", "mts", "cts"],
                tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
            ),
            (&["tsx"], tree_sitter_typescript::LANGUAGE_TSX),
        ];
        let code = languages
            .into_iter()
            .map(|(exts, lang)| {
                let splitter = CodeSplitter::new(lang, config())
                    .expect("bundled tree-sitter grammars match the tree-sitter version");
                (exts, splitter)
            })
            .collect();
        Self {
            text: TextSplitter::new(config()),
            markdown: MarkdownSplitter::new(config()),
            code,
            fingerprint: format!("text-splitter-0.33/{fingerprint}"),
        }
    }

    /// Identifies the chunking rules; when it changes, every file must be chunked again.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Splits `text`, choosing the splitter by the extension of `path`.
    pub fn chunk(&self, path: &Path, text: &str) -> Vec<Chunk> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        let pieces: Vec<(usize, &str)> = if matches!(ext.as_str(), "md" | "markdown" | "mdx") {
            self.markdown.chunk_indices(text).collect()
        } else if let Some((_, code)) = self
            .code
            .iter()
            .find(|(exts, _)| exts.contains(&ext.as_str()))
        {
            code.chunk_indices(text).collect()
        } else {
            self.text.chunk_indices(text).collect()
        };
        let lines = LineIndex::new(text);
        pieces
            .into_iter()
            .filter(|(_, s)| !s.trim().is_empty())
            .map(|(start, s)| {
                let end = start + s.len();
                Chunk {
                    text: s.to_string(),
                    hash: text_hash(s),
                    byte_start: start,
                    byte_end: end,
                    start_line: lines.line_of(start),
                    end_line: lines.line_of(end.saturating_sub(1).max(start)),
                }
            })
            .collect()
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
