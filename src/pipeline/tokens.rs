//! tokens: how many model tokens is this text, fast?
//!
//! The chunker asks for the token count of many overlapping candidate texts per file
//! (text-splitter measures each candidate split), and running the whole Hugging Face
//! pipeline (normalise, pre-tokenise, WordPiece, build an `Encoding`) for each of them was
//! most of the cost of a model-sized index (measured in `benches/index.rs`).
//!
//! For tokenizers that split at whitespace before anything else (BERT's pre-tokenizer,
//! `WhitespaceSplit`) and whose normaliser works character by character (BERT's, lowercase,
//! NFD, accent stripping), the count of a text is the sum of the counts of its whitespace-separated
//! words. [`TokenCounter`] counts each distinct word once with the real tokenizer and
//! remembers it, so the result is exactly the tokenizer's count (tested on real files in
//! `tests`), at the price of a hash lookup per word. Any other tokenizer is run whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokenizers::Tokenizer;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;

/// Words longer than this many bytes are counted each time rather than remembered (hashes,
/// base64 blobs: rarely repeated, and they would fill the cache).
const MAX_CACHED_WORD_BYTES: usize = 48;
/// The per-thread cache is emptied when it holds this many words (~10 MB at most).
const MAX_CACHED_WORDS: usize = 200_000;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Token counts of words, per thread, for the counter whose id is first.
    static WORDS: RefCell<(u64, HashMap<Box<str>, u32>)> = RefCell::new((0, HashMap::new()));
}

/// Counts the tokens a tokenizer makes of a text (special tokens not included), exactly as
/// `Tokenizer::encode(text, false)` would.
#[derive(Clone)]
pub struct TokenCounter {
    tokenizer: Arc<Tokenizer>,
    /// Whether counts add up over whitespace-separated words (see the module docs).
    by_words: bool,
    id: u64,
}

impl TokenCounter {
    /// A counter for `tokenizer`, which should have no truncation or padding set (they would
    /// change the counts).
    pub fn new(tokenizer: Tokenizer) -> Self {
        Self {
            by_words: splits_at_whitespace(&tokenizer),
            tokenizer: Arc::new(tokenizer),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether this counter adds up word counts (`false`: runs the tokenizer on whole texts).
    pub fn counts_by_words(&self) -> bool {
        self.by_words
    }

    /// Tokens in `text`, without the tokens added around every input.
    pub fn count(&self, text: &str) -> usize {
        if !self.by_words {
            return self.encode(text);
        }
        WORDS.with_borrow_mut(|(owner, words)| {
            if *owner != self.id || words.len() >= MAX_CACHED_WORDS {
                *owner = self.id;
                words.clear();
            }
            text.split(is_separator)
                .filter(|word| !word.is_empty())
                .map(|word| {
                    if word.len() > MAX_CACHED_WORD_BYTES {
                        return self.encode(word);
                    }
                    if let Some(&n) = words.get(word) {
                        return n as usize;
                    }
                    let n = self.encode(word);
                    words.insert(word.into(), n as u32);
                    n
                })
                .sum()
        })
    }

    fn encode(&self, text: &str) -> usize {
        // A WordPiece or BPE model fails only on text its vocabulary cannot express at all
        // (no [UNK]); such text is counted by bytes, which overestimates and so stays safe.
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .unwrap_or(text.len())
    }
}

/// Where a text may be cut into words without changing its count: whitespace that every
/// normaliser keeps as whitespace. BERT's normaliser deletes control characters, among them
/// some that are whitespace (U+000B, U+000C, U+0085), so `a\x0cb` is one word to it; such
/// characters stay inside a word, and the tokenizer sees them there.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r') || (c.is_whitespace() && !c.is_control())
}

/// Whether `tokenizer`'s count of a text is the sum of the counts of its whitespace-separated
/// words: its pre-tokenizer splits at whitespace first, its normaliser works character by
/// character, and no added token spans or strips whitespace.
fn splits_at_whitespace(tokenizer: &Tokenizer) -> bool {
    let pre = matches!(
        tokenizer.get_pre_tokenizer(),
        Some(PreTokenizerWrapper::BertPreTokenizer(_) | PreTokenizerWrapper::WhitespaceSplit(_))
    );
    let normalizer = matches!(
        tokenizer.get_normalizer(),
        None | Some(
            NormalizerWrapper::BertNormalizer(_)
                | NormalizerWrapper::Lowercase(_)
                | NormalizerWrapper::NFD(_)
                | NormalizerWrapper::StripAccents(_)
        )
    );
    let added = tokenizer
        .get_added_tokens_decoder()
        .values()
        .all(|t| !t.lstrip && !t.rstrip && !t.content.chars().any(char::is_whitespace));
    pre && normalizer && added
}

impl text_splitter::ChunkSizer for TokenCounter {
    fn size(&self, chunk: &str) -> usize {
        self.count(chunk)
    }
}
