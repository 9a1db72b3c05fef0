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
        Format::Docx => docx(bytes),
        Format::Odt => odt(bytes),
        Format::Epub => epub(bytes),
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
    let mut doc = Document::default();
    doc.push(None, &html_text(bytes)?);
    Ok(doc)
}

/// The text of an HTML (or XHTML) page, headings as `#` lines.
fn html_text(bytes: &[u8]) -> Result<String, String> {
    let text = html2text::config::plain_no_decorate()
        .string_from_read(bytes, HTML_WIDTH)
        .map_err(|e| e.to_string())?;
    Ok(tidy(&text))
}

/// One part per chapter of the spine with text (`epub`), located by its 1-based index in
/// reading order.
fn epub(bytes: &[u8]) -> Result<Document, String> {
    let mut book = epub::doc::EpubDoc::from_reader(std::io::Cursor::new(bytes.to_vec()))
        .map_err(|e| format!("not an EPUB book: {e}"))?;
    let mut doc = Document::default();
    for chapter in 0..book.get_num_chapters() {
        if !book.set_current_chapter(chapter) {
            continue;
        }
        let Some((xhtml, _mime)) = book.get_current_str() else {
            continue;
        };
        let text = html_text(xhtml.as_bytes())?;
        if !text.is_empty() {
            doc.push(Some(Location::Chapter(chapter as u32 + 1)), &text);
        }
    }
    Ok(doc)
}

/// Largest `content.xml` of an OpenDocument file read, in bytes (a zip bomb stops here).
const ODT_CONTENT_BYTES: u64 = 256 << 20;

/// The Markdown prefix of a heading of `level` (1-based, at most 6 `#`).
fn heading(level: usize) -> String {
    format!("{} ", "#".repeat(level.clamp(1, 6)))
}

/// The heading level of a Word paragraph style (`Heading1`…`Heading9`, `Title`), if any.
fn docx_heading_level(style: &str) -> Option<usize> {
    let style = style.to_ascii_lowercase().replace(' ', "");
    if style == "title" {
        return Some(1);
    }
    style.strip_prefix("heading")?.parse().ok()
}

/// Word: one part per paragraph with text (headings by style become `#` lines) and per
/// table row (cells joined by ` | `), located by its 1-based index; split as flowing text.
fn docx(bytes: &[u8]) -> Result<Document, String> {
    use docx_rs::{DocumentChild, TableCellContent, TableChild, TableRowChild};
    let docx = docx_rs::read_docx(bytes).map_err(|e| format!("not a Word document: {e}"))?;
    let mut doc = Document {
        flowing: true,
        ..Document::default()
    };
    for child in &docx.document.children {
        match child {
            DocumentChild::Paragraph(p) => {
                let text = p.raw_text();
                if text.trim().is_empty() {
                    continue;
                }
                let style = p.property.style.as_ref().map(|s| s.val.as_str());
                let prefix = style
                    .and_then(docx_heading_level)
                    .map(heading)
                    .unwrap_or_default();
                doc.push_paragraph(&format!("{prefix}{}", text.trim()));
            }
            DocumentChild::Table(table) => {
                for TableChild::TableRow(row) in &table.rows {
                    let cells: Vec<String> = row
                        .cells
                        .iter()
                        .map(|TableRowChild::TableCell(cell)| {
                            let texts: Vec<String> = cell
                                .children
                                .iter()
                                .filter_map(|c| match c {
                                    TableCellContent::Paragraph(p) => Some(p.raw_text()),
                                    _ => None,
                                })
                                .collect();
                            texts.join(" ").trim().to_string()
                        })
                        .collect();
                    if cells.iter().any(|c| !c.is_empty()) {
                        doc.push_paragraph(&cells.join(" | "));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(doc)
}

/// OpenDocument text: one part per `text:h` (a `#` line of its outline level) and `text:p`
/// with text in `content.xml`, located by its 1-based index; split as flowing text.
fn odt(bytes: &[u8]) -> Result<Document, String> {
    use quick_xml::events::Event;
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not an OpenDocument file: {e}"))?;
    let mut xml = String::new();
    zip.by_name("content.xml")
        .map_err(|e| format!("not an OpenDocument file: content.xml: {e}"))?
        .take(ODT_CONTENT_BYTES)
        .read_to_string(&mut xml)
        .map_err(|e| format!("content.xml: {e}"))?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut doc = Document {
        flowing: true,
        ..Document::default()
    };
    // The paragraph being read: its heading prefix and text, and how deep inside it we are.
    let (mut depth, mut text) = (0usize, String::new());
    let bad = |e: &dyn std::fmt::Display| format!("content.xml: {e}");
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) if matches!(e.name().as_ref(), b"text:h" | b"text:p") => {
                if depth == 0 {
                    text.clear();
                    if e.name().as_ref() == b"text:h" {
                        let level = e
                            .try_get_attribute("text:outline-level")
                            .ok()
                            .flatten()
                            .and_then(|a| std::str::from_utf8(&a.value).ok()?.parse().ok())
                            .unwrap_or(1);
                        text.push_str(&heading(level));
                    }
                }
                depth += 1;
            }
            Event::End(e) if matches!(e.name().as_ref(), b"text:h" | b"text:p") && depth > 0 => {
                depth -= 1;
                if depth == 0 && !text.trim_start_matches('#').trim().is_empty() {
                    doc.push_paragraph(&text);
                }
            }
            Event::Empty(e) if depth > 0 => match e.name().as_ref() {
                b"text:s" | b"text:tab" => text.push(' '),
                b"text:line-break" => text.push('\n'),
                _ => {}
            },
            Event::Text(t) if depth > 0 => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) if depth > 0 => {
                let name = r.decode().map_err(|e| bad(&e))?;
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(&e))? {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_xml_entity(&name) {
                    text.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
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
