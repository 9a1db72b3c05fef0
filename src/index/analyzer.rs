//! analyzer: how text becomes BM25 terms, for code and prose alike.
//!
//! Words are runs of letters, digits and `_` (a `-` between two letters joins kebab-case
//! words). A compound identifier is indexed whole and split into its parts, so `parseConfigFile`
//! is found by `parseConfigFile`, `config` and `parse config`:
//!
//! `parseHTTPHeader_v2` → `parsehttpheader_v2` (whole), `parse`, `http`, `header`, `v`, `2`.
//!
//! Parts split at `_` and `-`, lower→upper humps (`parseConfig`), the end of an acronym
//! (`HTTPServer` → `http server`) and letter↔digit boundaries (`utf8` → `utf 8`). Then every
//! term is lower-cased and stemmed with the English Snowball stemmer (tantivy's `Stemmer`),
//! so `parsing`, `parses` and `parse` meet. The whole form takes the position of its first
//! part, so phrase and proximity queries see the parts in order. Terms longer than
//! [`MAX_TERM_BYTES`] (minified code, base64) are dropped.
//!
//! The same analyzer runs on documents and on queries ([`analyze`]), so a query can never
//! hold syntax: every input is words.

use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Name under which the analyzer is registered with tantivy.
pub const CODE_ANALYZER: &str = "vigil_code";
/// Longest term kept, in bytes; longer runs are noise (minified code, hashes, base64).
pub const MAX_TERM_BYTES: usize = 64;

/// The analyzer: [`CodeTokenizer`] → lower-case → drop terms over [`MAX_TERM_BYTES`] →
/// English stemming.
pub fn code_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(CodeTokenizer)
        .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The distinct terms of `text` as the index stores them, in order of first appearance.
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = code_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out: Vec<String> = Vec::new();
    while let Some(t) = stream.next() {
        if !out.iter().any(|o| o == &t.text) {
            out.push(t.text.clone());
        }
    }
    out
}

/// Splits text into words, and compound identifiers into their parts (see the module docs).
#[derive(Clone, Copy, Default)]
pub struct CodeTokenizer;

/// The tokens of one text, computed up front (a chunk is at most a few KiB).
pub struct CodeTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream {
        CodeTokenStream {
            tokens: tokens(text),
            next: 0,
        }
    }
}

impl TokenStream for CodeTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every token of `text`: for each word, its parts, preceded by the whole word when it has
/// more than one part.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut position = 0;
    for (start, word) in words(text) {
        let parts = parts(word);
        if parts.len() > 1 {
            let trimmed = word.trim_matches(|c| c == '_' || c == '-');
            let offset = start + (word.len() - word.trim_start_matches(['_', '-']).len());
            out.push(Token {
                offset_from: offset,
                offset_to: offset + trimmed.len(),
                position,
                text: trimmed.to_string(),
                position_length: parts.len(),
            });
        }
        for (i, (from, part)) in parts.iter().enumerate() {
            out.push(Token {
                offset_from: start + from,
                offset_to: start + from + part.len(),
                position: position + i,
                text: part.to_string(),
                position_length: 1,
            });
        }
        position += parts.len().max(1);
    }
    out
}

/// Words of `text` with their byte offsets: runs of letters, digits and `_`, where a `-`
/// between two letters continues the word (kebab-case).
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        let joins_kebab = c == '-'
            && start.is_some()
            && prev.is_some_and(|p| p.is_alphabetic())
            && chars.peek().is_some_and(|&(_, n)| n.is_alphabetic());
        if is_word_char(c) || joins_kebab {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s, &text[s..i]));
        }
        prev = Some(c);
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Lower,
    Upper,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii_digit() {
        Class::Digit
    } else if c.is_uppercase() {
        Class::Upper
    } else if c.is_lowercase() {
        Class::Lower
    } else {
        Class::Other
    }
}

/// The parts of one word, with byte offsets in the word: split at `_`/`-`, camel humps,
/// acronym ends and letter↔digit boundaries.
fn parts(word: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (seg_start, seg) in split_keep_offsets(word, |c| c == '_' || c == '-') {
        let chars: Vec<(usize, char)> = seg.char_indices().collect();
        let mut from = 0;
        for k in 1..chars.len() {
            let (a, b) = (class(chars[k - 1].1), class(chars[k].1));
            let next_lower = chars.get(k + 1).is_some_and(|&(_, c)| c.is_lowercase());
            let boundary = (a == Class::Lower && b == Class::Upper)
                || (a == Class::Upper && b == Class::Upper && next_lower)
                || ((a == Class::Digit) != (b == Class::Digit)
                    && a != Class::Other
                    && b != Class::Other);
            if boundary {
                let at = chars[k].0;
                out.push((seg_start + from, &seg[from..at]));
                from = at;
            }
        }
        out.push((seg_start + from, &seg[from..]));
    }
    out
}

/// Non-empty pieces of `s` between separator characters, with their byte offsets.
fn split_keep_offsets(s: &str, sep: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if sep(c) {
            if i > start {
                out.push((start, &s[start..i]));
            }
            start = i + c.len_utf8();
        }
    }
    if start < s.len() {
        out.push((start, &s[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn compound_identifiers_are_kept_whole_and_split() {
        assert_eq!(
            raw("parseConfigFile"),
            ["parseConfigFile", "parse", "Config", "File"]
        );
        assert_eq!(raw("HTTPServer"), ["HTTPServer", "HTTP", "Server"]);
        assert_eq!(
            raw("__parse_known_args"),
            ["parse_known_args", "parse", "known", "args"]
        );
        assert_eq!(raw("utf8"), ["utf8", "utf", "8"]);
        assert_eq!(
            raw("no-build-isolation"),
            ["no-build-isolation", "no", "build", "isolation"]
        );
        assert_eq!(raw("plain words"), ["plain", "words"]);
    }

    #[test]
    fn query_syntax_is_just_separators() {
        assert_eq!(raw("Sinatra::Base"), ["Sinatra", "Base"]);
        assert_eq!(raw("a - b +c \"d\" (e)"), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn offsets_and_positions_point_at_the_text() {
        let text = "let parseConfig = x;";
        let toks = tokens(text);
        for t in &toks {
            assert_eq!(&text[t.offset_from..t.offset_to], t.text);
        }
        let positions: Vec<usize> = toks.iter().map(|t| t.position).collect();
        assert_eq!(positions, [0, 1, 1, 2, 3]);
    }

    #[test]
    fn analysis_lowercases_and_stems() {
        assert_eq!(analyze("Parsing parses"), ["pars"]);
        assert_eq!(analyze("parseConfig"), ["parseconfig", "pars", "config"]);
        let long = "a".repeat(MAX_TERM_BYTES + 1);
        assert!(analyze(&long).is_empty());
    }
}
