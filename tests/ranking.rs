//! Ranking as a user sees it: identifiers find their definitions, parts of identifiers find
//! the whole, file names find files, tests and single files do not crowd out the code.
//! Text-only indexes (BM25 and shaping), so these run without the model.

mod common;

use common::Tree;

/// A module that defines `load_config` once and a caller that uses it many times.
fn config_tree() -> Tree {
    let t = Tree::new(false);
    t.write(
        "src/settings.py",
        "import os\n\n\ndef load_config(path):\n    \"\"\"Reads the settings file.\"\"\"\n    with open(path) as f:\n        return parse(f.read())\n\n\ndef parse(text):\n    return dict(line.split('=') for line in text.splitlines())\n",
    );
    t.write(
        "src/app.py",
        "from settings import load_config\n\n\ndef main():\n    cfg = load_config('a.ini')\n    again = load_config('b.ini')\n    # load_config is called twice: load_config merges\n    return load_config('c.ini') or cfg or again\n",
    );
    t.write(
        "tests/test_settings.py",
        "from settings import load_config\n\n\ndef test_load_config(tmp_path):\n    p = tmp_path / 'x.ini'\n    p.write_text('a=1')\n    assert load_config(p) == {'a': '1'}\n    assert load_config(p)['a'] == '1'\n    assert load_config(p) is not None\n",
    );
    t.index();
    t
}

#[test]
fn an_identifier_finds_its_definition_first() {
    let t = config_tree();
    let hits = t.search("load_config", &[]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "src/settings.py");
    let why: Vec<&str> = hits[0]["why"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(why.contains(&"defines load_config"), "{hits:?}");
    assert_eq!(hits[0]["context"], "settings.py");
    assert!(hits[0]["ranks"]["text"].as_u64().is_some(), "{hits:?}");
}

#[test]
fn a_test_file_does_not_outrank_the_code_it_tests() {
    let t = config_tree();
    let found = t.found("load config settings file", &[]);
    let test_at = found.iter().position(|p| p.starts_with("tests/")).unwrap();
    let code_at = found.iter().position(|p| p == "src/settings.py").unwrap();
    assert!(code_at < test_at, "{found:?}");
    // Asked not to demote, the test file (most mentions) may come first again.
    let plain = t.search("load_config", &["--no-demote", "--mode", "text"]);
    assert!(plain.iter().all(|h| {
        h["why"]
            .as_array()
            .is_none_or(|w| w.iter().all(|r| !r.as_str().unwrap().starts_with("test")))
    }));
}

#[test]
fn a_camel_case_part_finds_the_whole_identifier() {
    let t = Tree::new(false);
    t.write(
        "src/loader.ts",
        "export function parseConfigFile(path: string): Settings {\n  return JSON.parse(readFileSync(path, 'utf8'));\n}\n",
    );
    t.write("src/other.ts", "export const unrelated = 1;\n");
    t.index();
    assert_eq!(t.found("config", &[])[0], "src/loader.ts");
    assert_eq!(t.found("parse config file", &[])[0], "src/loader.ts");
    assert_eq!(t.found("parseConfigFile", &[])[0], "src/loader.ts");
    // Stemming: "parsing" meets "parse".
    assert_eq!(t.found("parsing configs", &[])[0], "src/loader.ts");
}

#[test]
fn a_file_name_finds_the_file() {
    let t = Tree::new(false);
    t.write(
        "src/reconcile.rs",
        "pub fn apply(batch: &Batch) -> usize {\n    batch.paths.len()\n}\n",
    );
    t.write(
        "src/notes.md",
        "# Notes\n\nWe apply each batch after the debounce.\n",
    );
    t.index();
    assert_eq!(t.found("reconcile", &[])[0], "src/reconcile.rs");
    assert_eq!(t.found("reconcile.rs", &[])[0], "src/reconcile.rs");
}

#[test]
fn one_file_does_not_fill_the_page() {
    let t = Tree::new(false);
    let mut big = String::new();
    for i in 0..12 {
        big.push_str(&format!(
            "## Harbour {i}\n\n{}\n\n",
            "The harbour master logs every ferry that docks at the harbour. ".repeat(12)
        ));
    }
    t.write("big.md", &big);
    t.write("small.md", "# Ferry\n\nOne ferry crossing, one harbour.\n");
    t.index();
    let found = t.found("harbour ferry", &["--limit", "10"]);
    assert_eq!(
        found.iter().filter(|p| *p == "big.md").count(),
        3,
        "{found:?}"
    );
    assert!(found.contains(&"small.md".to_string()), "{found:?}");
    let found = t.found("harbour ferry", &["--limit", "10", "--per-file", "5"]);
    assert_eq!(
        found.iter().filter(|p| *p == "big.md").count(),
        5,
        "{found:?}"
    );
    // --files: one line per file, best first.
    let out = t.ok(&["search", "harbour ferry", "--files"]);
    let lines: Vec<String> = out.lines().map(|l| t.rel(l)).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.contains(&"big.md".to_string()) && lines.contains(&"small.md".to_string()));
}

#[test]
fn any_input_is_searchable_as_words() {
    let t = Tree::new(false);
    t.write(
        "lib/sinatra/base.rb",
        "module Sinatra\n  class Base\n    def call(env)\n      dup.call!(env)\n    end\n  end\nend\n",
    );
    t.index();
    assert_eq!(t.found("Sinatra::Base", &[])[0], "lib/sinatra/base.rb");
    for odd in ["\"unclosed", "a AND (b", "+-:: ~*", "path:/x [1 TO 2]"] {
        let out = t.run(&["search", odd, "--json"]);
        assert!(
            out.status.success(),
            "{odd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_index_from_an_older_vigil_is_rechunked_on_open_with_a_message() {
    let t = config_tree();
    let before: serde_json::Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    // What an older vigil left behind: chunks cut by other rules.
    {
        let store = vigil::store::Store::open(&t.index, std::time::Duration::from_secs(5)).unwrap();
        store
            .set_setting("chunker", "text-splitter-0.33/chars:1000")
            .unwrap();
    }
    let root = t.root.to_str().unwrap().to_string();
    let out = t.run(&["index", &root]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("built by an older vigil") && stderr.contains("indexed again"),
        "{stderr}"
    );
    let after: serde_json::Value = serde_json::from_str(&t.ok(&["status", "--json"])).unwrap();
    assert_eq!(after["chunks"], before["chunks"]);
    assert_eq!(after["files_indexed"], before["files_indexed"]);
    assert_eq!(t.found("load_config", &[])[0], "src/settings.py");
    t.assert_verified("after the upgrade");
    // The next run has nothing to redo.
    let out = t.run(&["index", &root]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("older vigil"));
}
