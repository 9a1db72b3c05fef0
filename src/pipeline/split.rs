//! split: where does code break into pieces that fit the model?
//!
//! Code is split along its syntax tree, parsed once (the same tree gives the chunk contexts,
//! `context::Outline`). Siblings are packed greedily, in file order, while their sizes add up
//! to at most the capacity; a node too big alone starts a new piece and is split among its
//! children, and a leaf too big alone by lines (a line too big alone by characters); so is a
//! node nested deeper than [`MAX_DEPTH`], so hostile nesting cannot exhaust the stack. Each
//! node is measured once and sizes are added, so a file costs one pass however many candidate
//! pieces it has: for the
//! model's tokenizer, counts add up over the pieces because its pre-tokenizer splits at
//! whitespace and punctuation, where syntax nodes begin and end. Pieces are measured whole
//! once more at the end, and one that still overflows is split by lines.
//!
//! The same idea as semble's chunker (siblings packed, big nodes recursed into) and
//! text-splitter's `CodeSplitter` (which this replaces for code: it parsed every file a second
//! time and measured each candidate piece again).

use tree_sitter::{Node, Parser, Tree};

use super::context::Lang;

/// Deepest syntax nesting split by the tree; deeper nodes are split by lines. Real code
/// nests a few dozen levels; each level costs a stack frame.
pub const MAX_DEPTH: usize = 256;

/// Parses `text` as `lang`; `None` for prose or when the grammar cannot be loaded.
pub fn parse(lang: Lang, text: &str) -> Option<Tree> {
    let grammar = lang.grammar()?;
    let mut parser = Parser::new();
    parser.set_language(&grammar).ok()?;
    parser.parse(text, None)
}

/// Byte ranges (half-open, trimmed of surrounding whitespace, none blank) that cover the
/// non-blank text of `tree`'s source `text`, each at most `capacity` by `size`.
pub fn split_code(
    tree: &Tree,
    text: &str,
    capacity: usize,
    size: &dyn Fn(&str) -> usize,
) -> Vec<(usize, usize)> {
    let mut packer = Packer::new(text, capacity, size);
    let covered = packer.children(tree.root_node(), 0, 0);
    if covered < text.len() {
        packer.piece(covered, text.len());
    }
    packer.close();
    let mut out = Vec::with_capacity(packer.out.len());
    for (start, end) in packer.out {
        if size(&text[start..end]) <= capacity {
            out.push((start, end));
        } else {
            // Counts did not add up exactly (rare): measured whole, split by lines.
            out.extend(by_lines(text, start, end, capacity, size));
        }
    }
    out
}

/// Greedy packing of consecutive pieces of a text.
struct Packer<'a> {
    text: &'a str,
    capacity: usize,
    size: &'a dyn Fn(&str) -> usize,
    out: Vec<(usize, usize)>,
    /// The piece being filled: start, end, size.
    open: Option<(usize, usize, usize)>,
}

impl<'a> Packer<'a> {
    fn new(text: &'a str, capacity: usize, size: &'a dyn Fn(&str) -> usize) -> Self {
        Self {
            text,
            capacity,
            size,
            out: Vec::new(),
            open: None,
        }
    }

    /// Packs the children of `node` (at `depth` in the tree), the first one taking the text
    /// from `from`; returns where the covered text ends.
    fn children(&mut self, node: Node<'_>, from: usize, depth: usize) -> usize {
        let mut at = from;
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            let end = child.end_byte().min(self.text.len());
            if end <= at {
                continue;
            }
            let n = (self.size)(&self.text[at..end]);
            if n <= self.capacity {
                self.add(at, end, n);
            } else if child.child_count() > 0 && depth < MAX_DEPTH {
                // A node too big for one piece starts a piece of its own, so a definition's
                // signature leads its first chunk. (Measured in docs/ranking.md against
                // carrying doc comments along and against packing straight on.)
                self.close();
                let covered = self.children(child, at, depth + 1);
                if covered < end {
                    self.piece(covered, end);
                }
            } else {
                self.close();
                self.out
                    .extend(by_lines(self.text, at, end, self.capacity, self.size));
            }
            at = end;
        }
        at
    }

    /// Adds the text `start..end`, measured or not.
    fn piece(&mut self, start: usize, end: usize) {
        let n = (self.size)(&self.text[start..end]);
        if n <= self.capacity {
            self.add(start, end, n);
        } else {
            self.close();
            self.out
                .extend(by_lines(self.text, start, end, self.capacity, self.size));
        }
    }

    /// Appends `start..end` (of size `n`) to the open piece if it fits, else starts a new one.
    fn add(&mut self, start: usize, end: usize, n: usize) {
        match &mut self.open {
            Some((_, e, total)) if *total + n <= self.capacity => {
                *e = end;
                *total += n;
            }
            _ => {
                self.close();
                self.open = Some((start, end, n));
            }
        }
    }

    /// Ends the open piece.
    fn close(&mut self) {
        if let Some((start, end, _)) = self.open.take()
            && let Some(range) = trimmed(self.text, start, end)
        {
            self.out.push(range);
        }
    }
}

/// `start..end` without the whitespace around it; `None` when blank.
fn trimmed(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let piece = &text[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    (lead < piece.len()).then_some((start + lead, end - trail))
}

/// `start..end` in pieces of whole lines packed up to `capacity`; a line too big alone is cut
/// at character boundaries into pieces of `capacity` characters (a model token spans at least
/// one character, so such a piece never has more tokens than characters).
fn by_lines(
    text: &str,
    start: usize,
    end: usize,
    capacity: usize,
    size: &dyn Fn(&str) -> usize,
) -> Vec<(usize, usize)> {
    let mut packer = Packer::new(text, capacity, size);
    let mut at = start;
    while at < end {
        let line_end = text[at..end].find('\n').map_or(end, |i| at + i + 1);
        let n = size(&text[at..line_end]);
        if n <= capacity {
            packer.add(at, line_end, n);
        } else {
            packer.close();
            let mut bounds: Vec<usize> = text[at..line_end]
                .char_indices()
                .map(|(i, _)| at + i)
                .step_by(capacity.max(1))
                .collect();
            bounds.push(line_end);
            for pair in bounds.windows(2) {
                if let Some(range) = trimmed(text, pair[0], pair[1]) {
                    packer.out.push(range);
                }
            }
        }
        at = line_end;
    }
    packer.close();
    packer.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    fn pieces(lang: Lang, text: &str, capacity: usize) -> Vec<&str> {
        let tree = parse(lang, text).unwrap();
        split_code(&tree, text, capacity, &chars)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn small_definitions_are_packed_together_and_big_ones_split_inside() {
        let small = "def a():\n    return 1\n\n\ndef b():\n    return 2\n";
        let body: String = (0..30).map(|i| format!("    x{i} = {i}\n")).collect();
        let text = format!("{small}\n\ndef big():\n{body}");
        let got = pieces(Lang::Python, &text, 120);
        assert_eq!(got[0], small.trim_end(), "{got:#?}");
        assert!(got.len() >= 4, "{got:#?}");
        for p in &got {
            assert!(chars(p) <= 120, "{p:?}");
            assert_eq!(p.trim(), *p);
        }
        // Nothing but whitespace is lost, in order.
        let joined: String = got.concat().split_whitespace().collect();
        let all: String = text.split_whitespace().collect();
        assert_eq!(joined, all);
    }

    #[test]
    fn a_big_definition_starts_a_chunk_with_its_signature() {
        let small = "const a = 1;\n";
        let body: String = (0..20).map(|i| format!("  x += {i};\n")).collect();
        let text = format!("{small}function sum() {{\n{body}}}\n");
        let got = pieces(Lang::JavaScript, &text, 120);
        assert_eq!(got[0], small.trim_end(), "{got:#?}");
        assert!(got[1].starts_with("function sum()"), "{got:#?}");
    }

    #[test]
    fn a_long_line_is_cut_within_capacity() {
        let text = format!("let s = \"{}\";\n", "x".repeat(500));
        let got = pieces(Lang::JavaScript, &text, 100);
        assert!(got.len() >= 5, "{got:#?}");
        assert!(got.iter().all(|p| chars(p) <= 100));
    }

    #[test]
    fn hostile_nesting_is_split_by_lines_without_exhausting_the_stack() {
        let depth = 100_000;
        let text = format!("x = {}1{};\n", "[\n".repeat(depth), "]".repeat(depth));
        let tree = parse(Lang::JavaScript, &text).unwrap();
        // A small stack, as rayon's workers have: recursion per level would overflow it.
        let got = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || split_code(&tree, &text, 200, &chars).len())
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(got > 100, "{got} pieces");
    }

    #[test]
    fn a_file_that_fits_is_one_piece() {
        let text = "fn main() {\n    println!(\"hi\");\n}\n";
        assert_eq!(pieces(Lang::Rust, text, 1000), [text.trim_end()]);
    }
}
