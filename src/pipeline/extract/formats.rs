//! formats: the parsers. Only the extractor process calls them (see `isolate`), because a
//! hostile document may make a parser spin, allocate without bound or crash.

use serde::Deserialize;

use super::{Document, Format, Location};

/// Width html2text wraps lines at, in columns: wide, so paragraphs stay whole lines.
const HTML_WIDTH: usize = 400;

/// Extracts the text of `bytes` as `format`.
///
/// Errors: the parser's own message (a broken or encrypted PDF, JSON that is not an
/// nbformat 4 notebook, …).
pub fn extract(format: Format, bytes: &[u8]) -> Result<Document, String> {
    match format {
        Format::Pdf => pdf(bytes),
        Format::Notebook => notebook(bytes),
        Format::Html => html(bytes),
    }
}

/// One part per page that has text (`pdf-extract`), located by its 1-based page number.
fn pdf(bytes: &[u8]) -> Result<Document, String> {
    let pages = pdf_extract::extract_text_from_mem_by_pages(bytes).map_err(|e| e.to_string())?;
    let mut doc = Document::default();
    for (i, page) in pages.iter().enumerate() {
        let page = tidy(page);
        if !page.is_empty() {
            doc.push(Some(Location::Page(i as u32 + 1)), &page);
        }
    }
    Ok(doc)
}

/// Trims each line's trailing blanks and keeps at most one empty line in a row: PDF text
/// layers are full of both.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// The parts of an nbformat 4 notebook that are read; outputs and metadata are skipped.
#[derive(Deserialize)]
struct Notebook {
    cells: Vec<Cell>,
    #[serde(default)]
    metadata: NotebookMetadata,
}

#[derive(Deserialize)]
struct Cell {
    cell_type: String,
    #[serde(default)]
    source: Source,
}

/// A cell's source: one string, or a list of lines (each ending with its newline).
#[derive(Deserialize)]
#[serde(untagged)]
enum Source {
    One(String),
    Lines(Vec<String>),
}

impl Default for Source {
    fn default() -> Self {
        Source::One(String::new())
    }
}

impl Source {
    fn text(&self) -> String {
        match self {
            Source::One(s) => s.clone(),
            Source::Lines(lines) => lines.concat(),
        }
    }
}

#[derive(Deserialize, Default)]
struct NotebookMetadata {
    language_info: Option<Named>,
    kernelspec: Option<Kernelspec>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Kernelspec {
    language: Option<String>,
}

/// One part per non-empty cell, located by its 1-based index among all cells: markdown and
/// raw cells as they are, code cells fenced with the kernel's language.
fn notebook(bytes: &[u8]) -> Result<Document, String> {
    let nb: Notebook =
        serde_json::from_slice(bytes).map_err(|e| format!("not an nbformat 4 notebook: {e}"))?;
    let language = nb
        .metadata
        .language_info
        .and_then(|l| l.name)
        .or_else(|| nb.metadata.kernelspec.and_then(|k| k.language))
        .unwrap_or_default();
    let mut doc = Document::default();
    for (i, cell) in nb.cells.iter().enumerate() {
        let source = cell.source.text();
        let source = source.trim_end();
        if source.trim().is_empty() {
            continue;
        }
        let text = match cell.cell_type.as_str() {
            "code" => format!("```{language}\n{source}\n```"),
            _ => source.to_string(),
        };
        doc.push(Some(Location::Cell(i as u32 + 1)), &text);
    }
    Ok(doc)
}

/// The page's text with headings as Markdown `#` lines (`html2text`); scripts and styles
/// are left out. One part, no location: the headings locate a hit.
fn html(bytes: &[u8]) -> Result<Document, String> {
    let text = html2text::config::plain_no_decorate()
        .string_from_read(bytes, HTML_WIDTH)
        .map_err(|e| e.to_string())?;
    let mut doc = Document::default();
    doc.push(None, &tidy(&text));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notebook_cells_become_parts_and_outputs_are_left_out() {
        let nb = serde_json::json!({
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"language_info": {"name": "python"}},
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "Some prose."]},
                {"cell_type": "code", "metadata": {}, "source": "", "outputs": [], "execution_count": null},
                {"cell_type": "code", "metadata": {}, "source": "def f():\n    return 1\n",
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": "SECRET OUTPUT"}],
                 "execution_count": 1}
            ]
        });
        let doc = extract(Format::Notebook, nb.to_string().as_bytes()).unwrap();
        assert_eq!(
            doc.text,
            "# Title\nSome prose.\n\n```python\ndef f():\n    return 1\n```"
        );
        let code = doc.text.find("```python").unwrap();
        assert_eq!(
            doc.parts,
            vec![(0, Location::Cell(1)), (code, Location::Cell(3))]
        );
        assert!(!doc.text.contains("SECRET"));
    }

    #[test]
    fn html_keeps_headings_and_drops_markup() {
        let page = b"<html><head><style>p{}</style><script>var x=1;</script></head>\
            <body><h1>Install</h1><p>Run <b>make</b>.</p><h2>Linux</h2><p>apt</p></body></html>";
        let doc = extract(Format::Html, page).unwrap();
        assert!(doc.text.contains("# Install"), "{}", doc.text);
        assert!(doc.text.contains("## Linux"), "{}", doc.text);
        assert!(doc.text.contains("Run make."), "{}", doc.text);
        assert!(!doc.text.contains("var x"), "{}", doc.text);
        assert!(!doc.text.contains('<'), "{}", doc.text);
    }

    #[test]
    fn not_a_pdf_is_a_clear_error() {
        let err = extract(Format::Pdf, b"%PDF-1.4 truncated").unwrap_err();
        assert!(!err.is_empty());
        let err = extract(Format::Notebook, b"{\"worksheets\": []}").unwrap_err();
        assert!(err.contains("not an nbformat 4 notebook"), "{err}");
    }
}
