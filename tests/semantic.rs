//! Search by meaning with the real all-MiniLM-L6-v2 model and ONNX Runtime.

mod common;

use std::fs;

use common::{Tree, wait_for};

const CAT: &str = "The cat sits on the mat and purrs in the afternoon sun.\n";
const TAX: &str = "Quarterly tax filing deadline: submit the forms before the end of the month.\n";

#[test]
fn semantic_search_finds_meaning_not_words_and_the_cache_prevents_re_embedding() {
    let t = Tree::new(true);
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    let summary = t.index();
    assert!(summary.contains("embeddings: 2 computed"), "{summary}");

    // No word in common with the cat sentence.
    let hits = t.search("a feline resting on a rug", &["--mode", "semantic"]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "pets.md");
    assert!(hits[0]["score"].as_f64().unwrap() > hits[1]["score"].as_f64().unwrap());
    assert_eq!(hits[0]["modes"][0], "semantic");

    // Hybrid: found by both rankings, fused.
    let hits = t.search("tax deadline", &[]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "finance.md");
    let modes: Vec<&str> = hits[0]["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(modes, vec!["text", "semantic"]);

    // A move to another folder and a copy reuse the cached embeddings (the embedded header
    // names the file by its name, so only a new name means a new embedding).
    fs::create_dir(t.path("archive")).unwrap();
    fs::rename(t.path("pets.md"), t.path("archive/pets.md")).unwrap();
    fs::create_dir(t.path("backup")).unwrap();
    fs::write(t.path("backup/finance.md"), TAX).unwrap();
    let summary = t.index();
    assert!(
        summary.contains("embeddings: 0 computed, 2 reused"),
        "{summary}"
    );
    let rows = t.history();
    let renamed = rows
        .iter()
        .find(|r| r["kind"] == "renamed")
        .expect("renamed row");
    assert_eq!(renamed["embeddings_computed"], 0);
    assert_eq!(renamed["embeddings_reused"], 1);
    assert_eq!(
        t.found(
            "a feline resting on a rug",
            &["--mode", "semantic", "--limit", "1"]
        ),
        vec!["archive/pets.md"]
    );

    // Semantic search with a text-only CLI call is an error, not a silent text search.
    let out = t
        .cmd()
        .args(["--no-embed", "search", "cat", "--mode", "semantic"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn every_chunk_fits_the_models_256_token_window() {
    let model = common::model_dir();
    let tokenizer = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    let chunker = vigil::pipeline::chunk::Chunker::new(Some(tokenizer.clone()));
    let prose: String = (0..400)
        .map(|i| format!("Sentence number {i} talks about harbours, lighthouses and the sea. "))
        .collect();
    let code: String = (0..120)
        .map(|i| format!("fn function_{i}(x: u64) -> u64 {{\n    let y = x * {i} + 7;\n    y.rotate_left(3)\n}}\n\n"))
        .collect();
    for (name, text) in [
        ("notes.txt", prose.as_str()),
        ("lib.rs", code.as_str()),
        ("doc.md", prose.as_str()),
    ] {
        let chunks = chunker.chunk(std::path::Path::new(name), text);
        assert!(chunks.len() > 3, "{name}: {} chunks", chunks.len());
        for c in &chunks {
            let tokens = tokenizer.encode(c.text.as_str(), true).unwrap().len();
            assert!(
                tokens <= 256,
                "{name}: chunk of {tokens} tokens at lines {}-{}",
                c.start_line,
                c.end_line
            );
            assert_eq!(&text[c.byte_start..c.byte_end], c.text);
        }
    }
}

#[test]
fn token_counts_added_up_by_words_are_the_tokenizers_own() {
    use vigil::pipeline::tokens::TokenCounter;
    let model = common::model_dir();
    let tokenizer = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    let mut plain = tokenizer.clone();
    plain.with_padding(None);
    plain.with_truncation(None).unwrap();
    let counter = TokenCounter::new(plain.clone());
    assert!(
        counter.counts_by_words(),
        "MiniLM's tokenizer splits at whitespace first"
    );
    let truth = |s: &str| plain.encode(s, false).unwrap().len();

    // Real text: this crate's sources and docs, whole and cut at arbitrary char boundaries
    // (as text-splitter measures candidates), plus text a normaliser treats specially:
    // accents, CJK, control characters that are whitespace, special tokens, long words.
    let mut texts: Vec<String> = Vec::new();
    for dir in ["src", "src/pipeline", "docs"] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                texts.push(fs::read_to_string(&path).unwrap());
            }
        }
    }
    texts.push(
        "Café naïve Ünïcödé 東京タワー 中文字符\u{0301}e\na\x0bb a\x0cb a\u{85}b x\u{a0}y \
         [CLS] [SEP]foo[MASK] \u{200b}zero\u{feff}width \x00nul \u{fffd} emoji 🦀🦀 \
         tab\tand\r\nnewline e\u{301}\u{301} x"
            .to_string()
            + &"a".repeat(150)
            + " "
            + &"verylongidentifier_".repeat(10),
    );
    let mut checked = 0;
    for text in &texts {
        assert_eq!(
            counter.count(text),
            truth(text),
            "whole text of {} bytes",
            text.len()
        );
        let cuts: Vec<usize> = (0..text.len())
            .step_by(97)
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for w in cuts.windows(3) {
            let piece = &text[w[0]..w[2]];
            assert_eq!(counter.count(piece), truth(piece), "{piece:?}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked} pieces checked");
}

#[test]
fn a_watched_file_becomes_searchable_by_meaning() {
    let t = Tree::new(true);
    t.write("finance.md", TAX);
    let w = t.watch();
    t.write("pets.md", CAT);
    wait_for("the new file to be embedded", || {
        t.found(
            "a feline resting on a rug",
            &["--mode", "semantic", "--limit", "1"],
        ) == vec!["pets.md"]
    });
    // Stopped while the transformer tier may still be loading or embedding: a clean exit.
    let status = w.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_model_that_fails_to_load_loses_no_embedding_and_they_arrive_once_it_is_mended() {
    let mut t = Tree::new(true);
    let model = t.broken_model();
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    let w = t.watch();

    // Text search is live; the status says embedding fails and why; nothing is lost.
    assert_eq!(t.found("purrs", &["--mode", "text"]), vec!["pets.md"]);
    let mut last = serde_json::Value::Null;
    let failing = common::poll(|| {
        last = t.status();
        last["embed_error"]
            .as_str()
            .is_some_and(|e| e.contains("model.onnx"))
            && last["embeddings_pending"] == 2
    });
    assert!(failing, "status: {last}");
    // Waiting chunks are not differences: verify finds none.
    t.assert_verified("while the model is broken");

    // Mend the model: the same texts are embedded on the next attempt (backoff ≤ 60 s).
    model.mend();
    wait_for("the queued texts to be embedded", || {
        let s = t.status();
        s["embeddings_pending"] == 0 && s["embed_error"].is_null()
    });
    assert_eq!(
        t.found(
            "a feline resting on a rug",
            &["--mode", "semantic", "--limit", "1"]
        ),
        vec!["pets.md"]
    );
    t.assert_verified("after the model was mended");
    assert!(w.stop().success());
}

#[test]
fn verify_reports_chunks_that_lost_their_embedding() {
    // Chunks without vectors that no process is computing: here a text-only run added
    // a file to an index built with embeddings.
    let t = Tree::new(true);
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    t.index();
    t.write(
        "notes.md",
        "Lighthouses guide ships along the rocky northern coast.\n",
    );
    // `--no-embed` indexes text only: notes.md has no embedding.
    let out = t
        .cmd()
        .arg("--no-embed")
        .args(["index", t.root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = t.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let diffs = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(
        diffs.iter().any(
            |d| d["kind"] == "no_embedding" && t.rel(d["path"].as_str().unwrap()) == "notes.md"
        ),
        "{diffs:?}"
    );
    // Repair embeds it.
    t.ok(&["verify", "--repair"]);
    assert_eq!(
        t.found(
            "beacons for boats near the shore",
            &["--mode", "semantic", "--limit", "1"]
        ),
        vec!["notes.md"]
    );
}

#[test]
fn another_model_never_reuses_the_old_models_vectors() {
    let mut t = Tree::new(true);
    let model = t.own_model(&["tokenizer.json"]);
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    assert!(t.index().contains("embeddings: 2 computed"));
    assert!(
        t.index().contains("embeddings: 0 computed"),
        "unchanged model: cache reused"
    );

    // Another tokenizer file means another model: cached vectors are not comparable.
    let mut tokenizer = fs::read(model.join("tokenizer.json")).unwrap();
    tokenizer.extend_from_slice(b"\n");
    fs::write(model.join("tokenizer.json"), tokenizer).unwrap();
    let out = t.run(&["index", t.root.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("embeddings: 2 computed"),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("the embedding model changed"), "{stderr}");
    assert_eq!(t.status()["embeddings_cached"], 2, "old vectors are gone");
    assert_eq!(
        t.found(
            "a feline resting on a rug",
            &["--mode", "semantic", "--limit", "1"]
        ),
        vec!["pets.md"]
    );
    t.assert_verified("after re-embedding");
}
