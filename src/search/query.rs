//! query: what kind of question is this?
//!
//! A query that looks like an identifier or a path (`HTTPException`, `parse_args`,
//! `Context.invoke`, `Sinatra::Base`, `src/engine`) is a *symbol* or *path* lookup: it leans
//! on BM25 and the definitions field. Anything else is *natural language* and leans on
//! meaning. The rule follows semble 0.7 (`ranking/boosting.py`): one token with no space
//! that is namespace-qualified, starts with `_` or an upper-case letter, or has an upper-case
//! letter or `_` after its first character. A plain lower-case word is natural language.

use crate::index::analyzer::analyze;

/// The type of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// An identifier, possibly qualified (`a::b`, `a.b`, `a->b`).
    Symbol,
    /// A path or file name (`src/engine`, `config.toml`).
    Path,
    /// Words and questions.
    Natural,
}

impl QueryKind {
    /// Lower-case name, as `--json` shows it.
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Symbol => "symbol",
            QueryKind::Path => "path",
            QueryKind::Natural => "natural",
        }
    }
}

/// English words that say nothing about code ("how does the ... work").
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "code", "do", "does", "for", "from",
    "get", "how", "i", "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "what",
    "when", "where", "which", "who", "why", "with", "work", "works", "you", "your",
];

/// A query, analyzed once.
#[derive(Debug, Clone)]
pub struct AnalyzedQuery {
    pub kind: QueryKind,
    /// BM25 terms (the index's analyzer).
    pub terms: Vec<String>,
    /// Identifiers whose definitions the query asks for: the last segment of a qualified
    /// symbol, or the camelCase/snake_case words inside a natural-language query.
    pub names: Vec<String>,
    /// Lower-case content words (no stop words, longer than 2 characters).
    pub keywords: Vec<String>,
    /// Analyzed terms of neighbouring content words (each a single term), for the proximity
    /// bonus.
    pub pairs: Vec<(String, String)>,
}

/// Analyzes `query`.
pub fn analyze_query(query: &str) -> AnalyzedQuery {
    let trimmed = query.trim();
    let kind = classify(trimmed);
    let names = match kind {
        QueryKind::Symbol => last_segment(trimmed).into_iter().collect(),
        QueryKind::Path => Vec::new(),
        QueryKind::Natural => trimmed
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'))
            .filter(|w| is_compound_identifier(w))
            .map(|w| last_segment(w).unwrap_or_else(|| w.to_string()))
            .collect(),
    };
    let keywords: Vec<String> = trimmed
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 2 && !STOP_WORDS.contains(&w.as_str()))
        .collect();
    let single: Vec<Option<String>> = keywords
        .iter()
        .map(|w| match analyze(w).as_slice() {
            [t] => Some(t.clone()),
            _ => None,
        })
        .collect();
    let pairs = single
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
            _ => None,
        })
        .collect();
    AnalyzedQuery {
        kind,
        terms: analyze(trimmed),
        names,
        keywords,
        pairs,
    }
}

fn classify(q: &str) -> QueryKind {
    if q.is_empty() || q.contains(char::is_whitespace) {
        return QueryKind::Natural;
    }
    let has_ext = q
        .rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && is_file_extension(ext));
    if q.contains('/') || has_ext {
        return QueryKind::Path;
    }
    let qualified = q.contains("::") || q.contains("->") || q.contains('.') || q.contains('\\');
    let identifier_chars = q
        .chars()
        .all(|c| c.is_alphanumeric() || "_:.->\\$#!".contains(c));
    if !identifier_chars {
        return QueryKind::Natural;
    }
    let first = q.chars().next().unwrap_or(' ');
    let inner_upper_or_underscore = q.chars().skip(1).any(|c| c.is_uppercase() || c == '_');
    if qualified || first == '_' || first.is_uppercase() || inner_upper_or_underscore {
        QueryKind::Symbol
    } else {
        QueryKind::Natural
    }
}

/// Extensions that make a dotted word a file name rather than `object.member`.
fn is_file_extension(ext: &str) -> bool {
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "rs" | "py"
            | "go"
            | "js"
            | "ts"
            | "tsx"
            | "jsx"
            | "mjs"
            | "cjs"
            | "md"
            | "txt"
            | "toml"
            | "json"
            | "yaml"
            | "yml"
            | "c"
            | "h"
            | "cpp"
            | "hpp"
            | "java"
            | "rb"
            | "sh"
            | "html"
            | "css"
            | "rst"
            | "cfg"
            | "ini"
            | "lock"
            | "sql"
    )
}

/// `parse_args`, `parseArgs`, `HTTPServer`: a word that is clearly an identifier.
fn is_compound_identifier(w: &str) -> bool {
    let mut chars = w.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || first == '_')
        && w.len() > 2
        && w.chars().all(|c| c.is_alphanumeric() || c == '_')
        && (w.contains('_') || w.chars().skip(1).any(char::is_uppercase))
}

/// The last identifier of a qualified name: `Sinatra::Base` → `Base`, `a.b()` → `b`.
fn last_segment(q: &str) -> Option<String> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .rfind(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_paths_are_recognised() {
        for q in [
            "HTTPException",
            "parse_args",
            "Context.invoke",
            "Sinatra::Base",
            "_private",
        ] {
            assert_eq!(classify(q), QueryKind::Symbol, "{q}");
        }
        for q in ["src/engine", "config.toml", "core.py"] {
            assert_eq!(classify(q), QueryKind::Path, "{q}");
        }
        for q in [
            "parse",
            "how are options parsed",
            "what does parseArgs do",
            "",
        ] {
            assert_eq!(classify(q), QueryKind::Natural, "{q}");
        }
    }

    #[test]
    fn names_are_the_identifiers_asked_for() {
        assert_eq!(analyze_query("Sinatra::Base").names, ["Base"]);
        assert_eq!(
            analyze_query("where is parseConfig called").names,
            ["parseConfig"]
        );
        assert!(analyze_query("how are options parsed").names.is_empty());
        let q = analyze_query("how does the watcher debounce events");
        assert_eq!(q.keywords, ["watcher", "debounce", "events"]);
        assert_eq!(
            q.pairs,
            [
                ("watcher".into(), "debounc".into()),
                ("debounc".into(), "event".into())
            ]
        );
    }

    #[test]
    fn any_input_gives_terms_and_never_syntax() {
        assert_eq!(analyze_query("Rack::Response").terms, ["rack", "respons"]);
        assert_eq!(
            analyze_query("\"unclosed (paren +").terms,
            ["unclos", "paren"]
        );
    }
}
