//! extract: what text is inside this document?
//!
//! PDF, Jupyter notebooks, HTML, Word, OpenDocument and EPUB files are not plain text: their words are turned into Markdown-ish
//! text first, which is then chunked like a Markdown file. Each part of that text remembers
//! where it came from ([`Location`]: a page, a notebook cell, a paragraph), so a hit can say
//! "page 3".
//!
//! Parsers of hostile input run in a child process ([`isolate`]): a time limit, a memory
//! limit and a crash inside a parser end as a per-file error, never as a stopped indexer.
//! [`formats`] holds the parsers themselves, which only the child calls.

pub mod formats;
pub mod isolate;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::settings::DocumentLimits;

/// A document format vigil extracts text from, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PDF text layer, page by page (`pdf-extract`); scanned pages without text give nothing.
    Pdf,
    /// Jupyter notebook (nbformat 4): markdown and code cells, outputs left out.
    Notebook,
    /// HTML page as text, headings kept as Markdown headings (`html2text`).
    Html,
    /// Word document: paragraphs and tables, headings by their style (`docx-rs`).
    Docx,
    /// OpenDocument text: paragraphs and headings of `content.xml` (`zip`, `quick-xml`).
    Odt,
    /// EPUB book: each chapter of the spine as HTML text (`epub`, `html2text`).
    Epub,
}

impl Format {
    /// The format of `path` by its extension (case-insensitive), `None` for anything else.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "pdf" => Format::Pdf,
            "ipynb" => Format::Notebook,
            "html" | "htm" | "xhtml" => Format::Html,
            "docx" => Format::Docx,
            "odt" => Format::Odt,
            "epub" => Format::Epub,
            _ => return None,
        })
    }

    const ALL: [Format; 6] = [
        Format::Pdf,
        Format::Notebook,
        Format::Html,
        Format::Docx,
        Format::Odt,
        Format::Epub,
    ];

    /// The name used on the extractor's command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Notebook => "notebook",
            Format::Html => "html",
            Format::Docx => "docx",
            Format::Odt => "odt",
            Format::Epub => "epub",
        }
    }

    /// The format called `name` (see [`Format::name`]).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Where a part of the extracted text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// 1-based page of a PDF.
    Page(u32),
    /// 1-based cell of a notebook, counting every cell (markdown, code and raw).
    Cell(u32),
    /// 1-based paragraph of a Word or OpenDocument file, counting those with text (headings
    /// and table rows count).
    Paragraph(u32),
    /// 1-based chapter of an EPUB book, in reading order (every spine item counted).
    Chapter(u32),
}

impl Location {
    /// The location of line `line` (0-based) of a chunk whose first line is at `self`:
    /// a paragraph advances by one per blank line before it (paragraphs are separated by
    /// exactly one, see [`Document::push_paragraph`]); a page, cell or chapter holds the whole
    /// chunk.
    pub fn at_line(self, chunk: &str, line: usize) -> Location {
        match self {
            Location::Paragraph(n) => {
                let blanks = chunk.lines().take(line).filter(|l| l.is_empty()).count();
                Location::Paragraph(n + blanks as u32)
            }
            other => other,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Page(n) => write!(f, "page {n}"),
            Location::Cell(n) => write!(f, "cell {n}"),
            Location::Paragraph(n) => write!(f, "paragraph {n}"),
            Location::Chapter(n) => write!(f, "chapter {n}"),
        }
    }
}

/// The text of a document and where each of its parts came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Markdown-ish text: headings as `#` lines, code cells fenced.
    pub text: String,
    /// Parts of `text`: (byte offset where the part starts, where it came from), in order.
    /// Each part runs to the next one's start; text before the first part has no location.
    pub parts: Vec<(usize, Location)>,
    /// Whether parts only locate text (paragraphs) and the text is split as one whole;
    /// otherwise (pages, cells) each part is split on its own.
    #[serde(default)]
    pub flowing: bool,
}

impl Document {
    /// Appends one part, separated from the previous by a blank line.
    pub fn push(&mut self, location: Option<Location>, text: &str) {
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        if let Some(location) = location {
            self.parts.push((self.text.len(), location));
        }
        self.text.push_str(text);
    }

    /// Appends a paragraph of flowing text, located by its 1-based index among the
    /// paragraphs pushed so far. Its blank lines are dropped, so that in the text one blank
    /// line always separates two paragraphs (what [`Location::at_line`] counts on). A
    /// paragraph with no text is left out.
    pub fn push_paragraph(&mut self, text: &str) {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.is_empty() {
            return;
        }
        let n = self.parts.len() as u32 + 1;
        self.push(Some(Location::Paragraph(n)), &lines.join("\n"));
    }

    /// The byte ranges to split on their own, each with its location: the parts, and the
    /// text before the first (no location); for flowing text, the whole text. Empty ranges
    /// are left out.
    pub fn sections(&self) -> Vec<(std::ops::Range<usize>, Option<Location>)> {
        if self.flowing {
            return vec![(0..self.text.len(), None)];
        }
        let mut out = Vec::with_capacity(self.parts.len() + 1);
        let first = self.parts.first().map_or(self.text.len(), |p| p.0);
        out.push((0..first, None));
        for (i, &(start, location)) in self.parts.iter().enumerate() {
            let end = self.parts.get(i + 1).map_or(self.text.len(), |p| p.0);
            out.push((start..end, Some(location)));
        }
        out.retain(|(r, _)| !r.is_empty());
        out
    }

    /// The location of the text at byte `offset`: that of the last part starting at or
    /// before it.
    pub fn location_at(&self, offset: usize) -> Option<Location> {
        let i = self.parts.partition_point(|&(start, _)| start <= offset);
        i.checked_sub(1).map(|i| self.parts[i].1)
    }
}

/// Why a document gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The parser refused the document (broken, encrypted, not that format): its message.
    #[error("cannot extract {format}: {reason}")]
    Invalid {
        format: &'static str,
        reason: String,
    },
    /// The extracted text is longer than [`DocumentLimits::text_bytes`].
    #[error("extracted text larger than the limit ({limit} bytes)")]
    TooMuchText { limit: u64 },
    /// The extractor ran past [`DocumentLimits::time_ms`] and was killed.
    #[error("extracting {format} took longer than {ms} ms; stopped")]
    Timeout { format: &'static str, ms: u64 },
    /// The extractor needed more than [`DocumentLimits::memory_bytes`].
    #[error("extracting {format} needed more than {bytes} bytes of memory; stopped")]
    OutOfMemory { format: &'static str, bytes: u64 },
    /// The extractor process died (a crash inside a parser) or could not be run.
    #[error("the {format} extractor failed: {reason}")]
    Crashed {
        format: &'static str,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paragraph_is_found_at_a_line_of_its_chunk() {
        let mut doc = Document {
            flowing: true,
            ..Document::default()
        };
        doc.push_paragraph("# Anchoring");
        doc.push_paragraph("first line\n\n\nsecond line of the same paragraph");
        doc.push_paragraph("   ");
        doc.push_paragraph("depth | scope");
        assert_eq!(
            doc.text,
            "# Anchoring\n\nfirst line\nsecond line of the same paragraph\n\ndepth | scope"
        );
        assert_eq!(doc.location_at(0), Some(Location::Paragraph(1)));
        // A chunk starting in paragraph 2, at its second line.
        let start = doc.text.find("second").unwrap();
        let chunk = &doc.text[start..];
        let first = doc.location_at(start).unwrap();
        assert_eq!(first, Location::Paragraph(2));
        assert_eq!(first.at_line(chunk, 0), Location::Paragraph(2));
        assert_eq!(first.at_line(chunk, 2), Location::Paragraph(3));
        // Pages hold the whole chunk.
        assert_eq!(Location::Page(4).at_line("a\n\nb", 2), Location::Page(4));
    }
}
