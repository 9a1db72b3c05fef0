//! context: where in its file does a chunk sit?
//!
//! A chunk cut from the middle of a long function has lost the function's name and signature.
//! This module finds the definitions of a file (tree-sitter for code, headings for Markdown)
//! so that each chunk can carry:
//! - a *header*: the file name and the chain of definitions enclosing the chunk, e.g.
//!   `argparse.py › class ArgumentParser › def parse_known_args`; embedded and indexed with
//!   the chunk, never shown as its text;
//! - the names it *defines* (definitions whose name lies inside the chunk), for the BM25
//!   definitions field and the definition boost of ranking.

use std::path::Path;

use tree_sitter::{Language, Node, Tree};

/// Longest header kept, in bytes (outer definitions are dropped first): the header shares
/// the model's 256-token window with the chunk.
pub const MAX_HEADER_BYTES: usize = 120;
/// Separator between the parts of a header.
pub const HEADER_SEPARATOR: &str = " › ";

/// The language of a file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Go,
    JavaScript,
    TypeScript,
    Tsx,
    Markdown,
    /// Anything else: prose, config, code without a grammar here.
    Text,
}

impl Lang {
    /// By the extension of `path` (case-insensitive).
    pub fn of(path: &Path) -> Lang {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "go" => Lang::Go,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "md" | "markdown" | "mdx" => Lang::Markdown,
            _ => Lang::Text,
        }
    }

    /// Lower-case name, as stored with each chunk.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Go => "go",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Markdown => "markdown",
            Lang::Text => "text",
        }
    }

    /// Whether this is source code with a grammar (as opposed to notes and other text).
    pub fn is_code(self) -> bool {
        !matches!(self, Lang::Markdown | Lang::Text)
    }

    /// The tree-sitter grammar, for code.
    pub fn grammar(self) -> Option<Language> {
        Some(match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Markdown | Lang::Text => return None,
        })
    }
}

/// One definition (function, class, type, Markdown section) in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// How it reads in a header: `def parse_args`, `class Foo`, `impl Display for Foo`, or a
    /// heading's text.
    pub label: String,
    /// The name it defines (`parse_args`, `Foo`, `res.send`, a heading's text).
    pub name: String,
    /// Byte range of the whole definition, half-open.
    pub start: usize,
    pub end: usize,
    /// Byte offset of its name.
    pub name_at: usize,
}

/// What one chunk knows of its place in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkContext {
    /// File name and enclosing definitions, joined by [`HEADER_SEPARATOR`].
    pub header: String,
    /// Names defined inside the chunk, in file order.
    pub defines: Vec<String>,
}

/// The definitions of a file, ordered by start (outer before inner at the same start).
pub struct Outline {
    defs: Vec<Definition>,
}

impl Outline {
    /// Parses `text` as `lang`; a file that fails to parse (or prose) has an empty outline,
    /// except Markdown, whose outline is its headings.
    pub fn of(lang: Lang, text: &str) -> Outline {
        Self::of_tree(lang, text, super::split::parse(lang, text).as_ref())
    }

    /// The outline of `text` from its syntax tree, already parsed as `lang` (`None`: prose,
    /// or a parse that failed).
    pub fn of_tree(lang: Lang, text: &str, tree: Option<&Tree>) -> Outline {
        let mut defs = match (lang, tree) {
            (Lang::Markdown, _) => markdown_sections(text),
            (_, Some(tree)) => code_definitions(tree, lang, text),
            (_, None) => Vec::new(),
        };
        defs.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        Outline { defs }
    }

    /// The definitions found.
    pub fn definitions(&self) -> &[Definition] {
        &self.defs
    }

    /// The context of the chunk at `start..end` of `text`, in the file called `file_name`.
    pub fn context(&self, file_name: &str, text: &str, start: usize, end: usize) -> ChunkContext {
        let first = start + (text[start..end].len() - text[start..end].trim_start().len());
        let chain: Vec<&str> = self
            .defs
            .iter()
            .filter(|d| d.start <= first && first < d.end)
            .map(|d| d.label.as_str())
            .collect();
        let defines = self
            .defs
            .iter()
            .filter(|d| start <= d.name_at && d.name_at < end)
            .map(|d| d.name.clone())
            .collect();
        ChunkContext {
            header: header(file_name, &chain),
            defines,
        }
    }
}

/// `file › outer › … › inner`, dropping outer definitions past [`MAX_HEADER_BYTES`].
fn header(file_name: &str, chain: &[&str]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut len = file_name.len();
    for label in chain.iter().rev() {
        let add = label.len() + HEADER_SEPARATOR.len();
        if len + add > MAX_HEADER_BYTES {
            break;
        }
        len += add;
        kept.push(label);
    }
    let mut out = String::from(file_name);
    for label in kept.iter().rev() {
        out.push_str(HEADER_SEPARATOR);
        out.push_str(label);
    }
    out
}

/// A label keyword per definition node kind, per grammar.
fn keyword(lang: Lang, kind: &str) -> Option<&'static str> {
    Some(match (lang, kind) {
        (Lang::Rust, "function_item" | "function_signature_item") => "fn",
        (Lang::Rust, "struct_item") => "struct",
        (Lang::Rust, "enum_item") => "enum",
        (Lang::Rust, "union_item") => "union",
        (Lang::Rust, "trait_item") => "trait",
        (Lang::Rust, "impl_item") => "impl",
        (Lang::Rust, "mod_item") => "mod",
        (Lang::Rust, "macro_definition") => "macro_rules!",
        (Lang::Rust, "const_item") => "const",
        (Lang::Rust, "static_item") => "static",
        (Lang::Rust, "type_item") => "type",
        (Lang::Python, "function_definition") => "def",
        (Lang::Python, "class_definition") => "class",
        (Lang::Go, "function_declaration" | "method_declaration") => "func",
        (Lang::Go, "type_spec") => "type",
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "function_declaration" | "generator_function_declaration",
        ) => "function",
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "class_declaration" | "abstract_class_declaration",
        ) => "class",
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "method_definition") => "method",
        (Lang::TypeScript | Lang::Tsx, "interface_declaration") => "interface",
        (Lang::TypeScript | Lang::Tsx, "type_alias_declaration") => "type",
        (Lang::TypeScript | Lang::Tsx, "enum_declaration") => "enum",
        // `const f = () => …`, `exports.f = function () …`, `{ f: function () … }`: only
        // when the value is a function (decided in `js_function_name`).
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "variable_declarator" | "assignment_expression" | "pair" | "public_field_definition",
        ) => "function",
        _ => return None,
    })
}

/// The name node of a definition, or `None` when the node is not a definition after all.
fn name_node<'t>(lang: Lang, node: Node<'t>) -> Option<Node<'t>> {
    match node.kind() {
        "impl_item" => node.child_by_field_name("type"),
        "variable_declarator" | "assignment_expression" | "pair" | "public_field_definition" => {
            let value = node
                .child_by_field_name("value")
                .or_else(|| node.child_by_field_name("right"))?;
            let is_function = matches!(
                value.kind(),
                "arrow_function" | "function_expression" | "function" | "generator_function"
            );
            if !is_function {
                return None;
            }
            node.child_by_field_name("name")
                .or_else(|| node.child_by_field_name("left"))
                .or_else(|| node.child_by_field_name("key"))
        }
        _ if lang == Lang::Go && node.kind() == "type_spec" => node.child_by_field_name("name"),
        _ => node.child_by_field_name("name"),
    }
}

fn code_definitions(tree: &Tree, lang: Lang, text: &str) -> Vec<Definition> {
    let src = text.as_bytes();
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let mut descend = true;
    loop {
        let node = cursor.node();
        if descend
            && let Some(kw) = keyword(lang, node.kind())
            && let Some(name) = name_node(lang, node)
            && let Ok(name_text) = name.utf8_text(src)
        {
            let name_text: String = name_text.split_whitespace().collect::<Vec<_>>().join(" ");
            let label = match node.kind() {
                "impl_item" => match node
                    .child_by_field_name("trait")
                    .and_then(|t| t.utf8_text(src).ok())
                {
                    Some(tr) => format!("impl {tr} for {name_text}"),
                    None => format!("impl {name_text}"),
                },
                "method_definition" => name_text.clone(),
                _ => format!("{kw} {name_text}"),
            };
            // Definitions span their decorators/doc comments when the grammar wraps them.
            let outer = match node.parent() {
                Some(p) if p.kind() == "decorated_definition" => p,
                _ => node,
            };
            // A typing stub (`@overload def f(x: int) -> int: ...`) is not where `f` is
            // defined; TypeScript overload signatures are left out by `keyword`.
            let overload_stub = outer.kind() == "decorated_definition"
                && outer
                    .named_children(&mut outer.walk())
                    .filter(|d| d.kind() == "decorator")
                    .any(|d| {
                        d.utf8_text(src)
                            .is_ok_and(|t| t.trim_end().ends_with("overload"))
                    });
            if !overload_stub {
                out.push(Definition {
                    label,
                    name: name_text,
                    start: outer.start_byte(),
                    end: outer.end_byte(),
                    name_at: name.start_byte(),
                });
            }
        }
        if descend && cursor.goto_first_child() {
            continue;
        }
        if cursor.goto_next_sibling() {
            descend = true;
            continue;
        }
        loop {
            if !cursor.goto_parent() {
                return out;
            }
            if cursor.goto_next_sibling() {
                descend = true;
                break;
            }
        }
    }
}

/// Markdown sections: each heading spans to the next heading of the same or a higher level.
fn markdown_sections(text: &str) -> Vec<Definition> {
    use pulldown_cmark::{Event, Parser as Md, Tag, TagEnd};
    let mut headings: Vec<(usize, usize, String)> = Vec::new(); // (level, start, text)
    let mut current: Option<(usize, usize, String)> = None;
    for (event, range) in Md::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((level as usize, range.start, String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, s)) = current.as_mut() {
                    s.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = current.take() {
                    headings.push(h);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(headings.len());
    for (i, (level, start, title)) in headings.iter().enumerate() {
        let end = headings[i + 1..]
            .iter()
            .find(|(l, ..)| l <= level)
            .map(|(_, s, _)| *s)
            .unwrap_or(text.len());
        let title = title.trim().to_string();
        out.push(Definition {
            label: title.clone(),
            name: title,
            start: *start,
            end,
            name_at: *start,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(lang: Lang, text: &str) -> Vec<String> {
        Outline::of(lang, text)
            .definitions()
            .iter()
            .map(|d| d.label.clone())
            .collect()
    }

    #[test]
    fn python_methods_carry_their_class() {
        let text = "import os\n\nclass Parser:\n    def parse_known_args(self, args):\n        x = 1\n        return x\n";
        let outline = Outline::of(Lang::Python, text);
        let at = text.find("return").unwrap();
        let ctx = outline.context("argparse.py", text, at, text.len());
        assert_eq!(
            ctx.header,
            "argparse.py › class Parser › def parse_known_args"
        );
        assert!(ctx.defines.is_empty());
        let whole = outline.context("argparse.py", text, 0, text.len());
        assert_eq!(whole.header, "argparse.py");
        assert_eq!(whole.defines, ["Parser", "parse_known_args"]);
    }

    #[test]
    fn rust_impls_and_functions() {
        let text = "impl fmt::Display for Value {\n    fn fmt(&self) {}\n}\npub fn from_str() {}\nmacro_rules! json { () => {} }\n";
        assert_eq!(
            labels(Lang::Rust, text),
            [
                "impl fmt::Display for Value",
                "fn fmt",
                "fn from_str",
                "macro_rules! json"
            ]
        );
    }

    #[test]
    fn javascript_function_values_are_definitions() {
        let text = "res.send = function send(body) { return 1 };\nconst add = (a, b) => a + b;\nconst n = 3;\nclass A { run() {} }\n";
        assert_eq!(
            labels(Lang::JavaScript, text),
            ["function res.send", "function add", "class A", "run"]
        );
    }

    #[test]
    fn go_and_typescript() {
        let go = "package x\nfunc (r *Router) Handle(p string) {}\ntype Router struct{}\n";
        assert_eq!(labels(Lang::Go, go), ["func Handle", "type Router"]);
        let ts =
            "export interface Opts { a: number }\nexport function map<T>(x: T): T { return x }\n";
        assert_eq!(
            labels(Lang::TypeScript, ts),
            ["interface Opts", "function map"]
        );
    }

    #[test]
    fn markdown_headings_nest() {
        let text = "# Guide\nintro\n## Install\nsteps\n## Use\nmore\n";
        let outline = Outline::of(Lang::Markdown, text);
        let at = text.find("steps").unwrap();
        let ctx = outline.context("guide.md", text, at, at + 5);
        assert_eq!(ctx.header, "guide.md › Guide › Install");
    }

    #[test]
    fn long_chains_keep_the_innermost() {
        let chain = [
            "class ".to_string() + &"A".repeat(120),
            "def b".into(),
            "def c".into(),
        ];
        let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
        let h = header("f.py", &chain);
        assert_eq!(h, "f.py › def b › def c");
        assert!(h.len() <= MAX_HEADER_BYTES);
    }

    #[test]
    fn overload_stubs_are_not_definitions() {
        let py = "import typing\nclass C:\n    @typing.overload\n    def f(self, x: int) -> int: ...\n    @overload\n    def f(self, x: str) -> str: ...\n    def f(self, x):\n        return x\n";
        let outline = Outline::of(Lang::Python, py);
        let fs: Vec<usize> = outline
            .definitions()
            .iter()
            .filter(|d| d.name == "f")
            .map(|d| d.name_at)
            .collect();
        assert_eq!(fs, [py.rfind("def f").unwrap() + 4]);
        let ts = "export function map(x: number): number;\nexport function map(x: string): string;\nexport function map(x: any) { return x }\n";
        assert_eq!(labels(Lang::TypeScript, ts), ["function map"]);
        assert_eq!(
            Outline::of(Lang::TypeScript, ts).definitions()[0].name_at,
            ts.rfind("map(x: any)").unwrap()
        );
    }
}
