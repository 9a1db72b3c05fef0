//! Documents: PDFs, notebooks and HTML pages made by the real tools (fpdf2, nbformat, pinned
//! and installed with pip by the test), found by their words with their page or cell; and
//! hostile documents, each ending as a clear per-file record while the rest is indexed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Tree, install_once};
use serde_json::Value;

/// The pinned generators (tests/documents/requirements.txt), installed once per version of
/// that file (its blake3 names the directory).
fn generators() -> Option<PathBuf> {
    let requirements =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/documents/requirements.txt");
    let pins = blake3::hash(&std::fs::read(&requirements).unwrap()).to_hex();
    install_once(
        &format!("documents-{}", &pins[..12]),
        |dir| {
            ["fpdf", "nbformat", "docx", "odf", "ebooklib"]
                .iter()
                .all(|m| dir.join(m).is_dir())
        },
        |dir| {
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet"])
                .args(["--disable-pip-version-check", "--no-deps", "--target"])
                .arg(dir)
                .arg("-r")
                .arg(&requirements)
                .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
                .output()
        },
    )
}

/// A tree holding every document of tests/documents/make.py; `None` when the generators
/// cannot be installed here (said loudly; a failure on CI).
fn tree_of_documents() -> Option<Tree> {
    let site = generators()?;
    let t = Tree::new(false);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/documents/make.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&t.root)
        .env("PYTHONPATH", site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(t)
}

/// The reason recorded for `name` by its latest history row.
fn reason(t: &Tree, name: &str) -> String {
    t.history()
        .iter()
        .find(|r| t.rel(r["path"].as_str().unwrap()) == name)
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no history row for {name}"))
}

/// The best hit for `query`: its path relative to the root, and the hit.
fn best(t: &Tree, query: &str) -> (String, Value) {
    let hit = t.search(query, &[]).into_iter().next();
    let hit = hit.unwrap_or_else(|| panic!("no hit for {query:?}"));
    (t.rel(hit["path"].as_str().unwrap()), hit)
}

/// A string field of a hit ("" when absent).
fn text<'a>(hit: &'a Value, field: &str) -> &'a str {
    hit[field].as_str().unwrap_or("")
}

#[test]
fn documents_are_found_by_their_words_with_their_page_or_cell() {
    let Some(t) = tree_of_documents() else { return };
    std::fs::remove_dir_all(t.path("hostile")).unwrap();
    t.ok(&["index", t.root.to_str().unwrap(), "--max-file-size", "64M"]);

    let (path, hit) = best(&t, "fresnel lens");
    assert_eq!(
        (path.as_str(), &hit["page"]),
        ("paper.pdf", &2.into()),
        "{hit}"
    );
    assert!(text(&hit, "snippet").contains("fresnel lens"));
    assert_eq!(best(&t, "foghorn").1["page"], 3);

    let (path, hit) = best(&t, "high_water");
    assert_eq!(
        (path.as_str(), &hit["cell"]),
        ("notes.ipynb", &2.into()),
        "{hit}"
    );
    assert!(text(&hit, "context").contains("Tide tables"), "{hit}");
    assert!(
        t.found("outputonlyword", &[]).is_empty(),
        "notebook outputs are left out"
    );
    // A 50 MB output does not stop its notebook: the cells are indexed, the output is not.
    assert_eq!(t.found("puffin", &[]), vec!["big-output.ipynb"]);

    // Word and OpenDocument: the paragraph of the matching line (headings and table rows
    // count), though the chunk starts in the long paragraph before.
    let (path, hit) = best(&t, "windlass");
    assert_eq!(
        (path.as_str(), &hit["paragraph"]),
        ("manual.docx", &4.into()),
        "{hit}"
    );
    assert!(text(&hit, "snippet").starts_with("depth | windlass scope"));
    let (path, hit) = best(&t, "mainsail");
    assert_eq!(
        (path.as_str(), &hit["paragraph"]),
        ("report.odt", &4.into()),
        "{hit}"
    );
    assert!(text(&hit, "snippet").contains("fresh water & dry"));
    assert!(t.found("seams", &[]) == vec!["report.odt"]);

    let (path, hit) = best(&t, "barometer");
    assert_eq!(
        (path.as_str(), &hit["chapter"]),
        ("book.epub", &2.into()),
        "{hit}"
    );
    assert!(text(&hit, "context").contains("Weather"), "{hit}");

    let (path, hit) = best(&t, "visitor pontoon");
    assert_eq!(path, "page.html");
    assert!(text(&hit, "context").contains("Harbour rules"), "{hit}");
    assert!(
        t.found("trackingpixel", &[]).is_empty(),
        "scripts are left out"
    );

    // The human output names the page.
    let out = t.ok(&["search", "fresnel", "--mode", "text"]);
    assert!(
        out.contains("paper.pdf:") && out.contains("(page 2)"),
        "{out}"
    );
    t.assert_verified("documents");

    // A moved document is a rename (same hash, nothing extracted), found at its new path.
    std::fs::create_dir(t.path("archive")).unwrap();
    std::fs::rename(t.path("paper.pdf"), t.path("archive/paper.pdf")).unwrap();
    let summary = t.ok(&["index", t.root.to_str().unwrap(), "--max-file-size", "64M"]);
    assert!(summary.contains("1 renamed"), "{summary}");
    let (path, hit) = best(&t, "fresnel lens");
    assert_eq!(
        (path.as_str(), &hit["page"]),
        ("archive/paper.pdf", &2.into()),
        "{hit}"
    );
    t.assert_verified("documents after a rename");
}

#[test]
fn an_extractor_that_crashes_fails_only_its_document() {
    let Some(mut t) = tree_of_documents() else {
        return;
    };
    std::fs::remove_dir_all(t.path("hostile")).unwrap();
    // A parser crash cannot be caused on demand by a document: an extractor that dies of
    // SIGSEGV stands in for one (the signal a memory bug inside a parser raises).
    let crasher = t.tmp.path().join("crashing-extractor");
    std::fs::write(&crasher, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
    std::fs::set_permissions(
        &crasher,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    t.env
        .push(("VIGIL_EXTRACTOR".into(), crasher.to_str().unwrap().into()));
    t.index();
    let why = reason(&t, "paper.pdf");
    assert_eq!(why, "the pdf extractor failed: killed by signal 11");
    assert_eq!(t.found("barnacles", &[]), vec!["plain.txt"]);
}

#[test]
fn hostile_documents_end_as_per_file_records_and_the_rest_is_indexed() {
    let Some(t) = tree_of_documents() else { return };
    // Deep HTML keeps html2text busy for longer than 30 s (the default limit): 10 s is enough
    // to show the limit at work and keeps the test short.
    let config = t.tmp.path().join("config.toml");
    std::fs::write(&config, "[documents]\ntimeout = \"10s\"\n").unwrap();
    t.ok(&[
        "--config",
        config.to_str().unwrap(),
        "index",
        t.root.to_str().unwrap(),
    ]);
    // The good ones are all there.
    assert_eq!(t.found("barnacles", &[]), vec!["plain.txt"]);
    assert_eq!(t.found("fresnel", &[]), vec!["paper.pdf"]);
    // Broken and encrypted PDFs: failed, with the parser's reason.
    for name in ["hostile/encrypted.pdf", "hostile/truncated.pdf"] {
        let why = reason(&t, name);
        assert!(why.starts_with("cannot extract pdf"), "{name}: {why}");
    }
    assert!(t.found("cormorant", &[]).is_empty());
    // Over the file size limit (10 MiB by default): skipped before any parsing.
    assert!(reason(&t, "big-output.ipynb").contains("size limit"));
    // A Word zip bomb (1 GiB inflated) fails within the memory limit.
    let why = reason(&t, "hostile/bomb.docx");
    assert!(why.contains("docx"), "{why}");
    // 10,000 objects on a page and HTML nested 100,000 deep: a bounded result either way,
    // found or recorded with a reason.
    let bounded = [
        ("hostile/crowded.pdf", "pelican"),
        ("hostile/nested.html", "kittiwake"),
    ];
    for (name, word) in bounded {
        let found = t.found(word, &[]);
        assert!(
            found == vec![name.to_string()] || !reason(&t, name).is_empty(),
            "{name}: neither found nor explained"
        );
    }
    t.assert_verified("hostile documents");

    let status = t.status();
    assert!(status["files_failed"].as_u64().unwrap() >= 2, "{status}");
}

#[test]
fn the_time_and_memory_limits_stop_an_extraction_with_a_reason() {
    let Some(t) = tree_of_documents() else { return };
    // HTML nested 100,000 deep keeps html2text busy for longer than 30 s: stopped at 2 s.
    // The Word manual's text (over 2,000 bytes) is over a 1 KiB text limit.
    let config = t.tmp.path().join("config.toml");
    std::fs::write(
        &config,
        "[documents]\ntimeout = \"2s\"\nmax_text_size = \"1K\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    t.ok(&["--config", config, "index", t.root.to_str().unwrap()]);
    let why = reason(&t, "hostile/nested.html");
    assert_eq!(why, "extracting html took longer than 2000 ms; stopped");
    let why = reason(&t, "manual.docx");
    assert_eq!(why, "extracted text larger than the limit (1024 bytes)");
    assert_eq!(t.found("barnacles", &[]), vec!["plain.txt"]);
    assert_eq!(t.found("fresnel", &[]), vec!["paper.pdf"]);

    // New limits: what failed is extracted again. The 50 MB notebook, admitted by the file
    // size limit, cannot be held in 16 MiB.
    std::fs::remove_file(t.path("hostile/nested.html")).unwrap();
    std::fs::write(
        config,
        "[documents]\ntimeout = \"20s\"\nmax_memory = \"16M\"\n",
    )
    .unwrap();
    t.ok(&[
        "--config",
        config,
        "index",
        t.root.to_str().unwrap(),
        "--max-file-size",
        "64M",
    ]);
    let why = reason(&t, "big-output.ipynb");
    assert!(
        why.contains("needed more than 16777216 bytes of memory"),
        "{why}"
    );
    t.assert_verified("limits");
}
