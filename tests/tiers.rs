//! The two embedding tiers: a static model distilled from all-MiniLM-L6-v2 (every chunk gets
//! a vector as it is indexed) and the transformer itself (in the background).

mod common;

use std::fs;

use common::{Tree, wait_for};
use vigil::pipeline::embed_static::StaticEmbedder;

const CAT: &str = "The cat sits on the mat and purrs in the afternoon sun.\n";
const TAX: &str = "Quarterly tax filing deadline: submit the forms before the end of the month.\n";

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn the_distilled_static_model_is_the_mean_of_its_token_rows_and_carries_meaning() {
    let dir = common::model_dir().join("static");
    let model = StaticEmbedder::load(&dir).unwrap();

    // model2vec-rs tokenises like the transformer's own tokenizer: its vector is the
    // normalised mean of the table rows of the tokenizer's ids.
    let bytes = fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let table = tensors.tensor("embeddings").unwrap();
    assert_eq!(table.shape(), &[30522, 384]);
    let rows: Vec<f32> = table
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    for text in [
        CAT,
        "fn parse_config(path: &Path) -> Result<Config>",
        "naïve café",
    ] {
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        let mut mean = vec![0f32; 384];
        for id in &ids {
            for (m, r) in mean.iter_mut().zip(&rows[*id as usize * 384..][..384]) {
                *m += r;
            }
        }
        let got = model.embed(text);
        assert!(
            cosine(&mean, &got) > 0.9999,
            "{text}: {}",
            cosine(&mean, &got)
        );
    }

    // Meaning, not words.
    let query = model.embed("a feline resting on a rug");
    assert!(cosine(&query, &model.embed(CAT)) > cosine(&query, &model.embed(TAX)) + 0.05);
}

#[test]
fn the_static_tier_alone_gives_every_chunk_a_vector_as_it_is_indexed() {
    let mut t = Tree::new(true);
    t.env.push(("VIGIL_EMBED".into(), "static".into()));
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    let summary = t.index();
    assert!(summary.contains("embeddings: 0 computed"), "{summary}");
    let s = t.status();
    assert_eq!(s["static_vectors"], 2, "{s}");
    assert_eq!(s["embeddings_cached"], 0, "{s}");

    let hits = t.search("a feline resting on a rug", &["--mode", "semantic"]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "pets.md");
    assert_eq!(hits[0]["tier"], "static");
    t.assert_verified("static tier only");

    // An edit re-embeds the file's new text in the same pass; the old vector goes with it.
    t.write("pets.md", "Dogs fetch sticks in the park.\n");
    t.index();
    assert_eq!(
        t.found(
            "a puppy chasing a branch",
            &["--mode", "semantic", "--limit", "1"]
        ),
        vec!["pets.md"]
    );
    t.assert_verified("after an edit");
}

#[test]
fn with_both_tiers_search_uses_static_vectors_until_the_transformer_catches_up() {
    let mut t = Tree::new(true);
    // A transformer that cannot load: only the static tier can answer.
    let model = t.broken_model();
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    let w = t.watch();

    let hits = t.search("a feline resting on a rug", &["--mode", "semantic"]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "pets.md");
    assert_eq!(hits[0]["tier"], "static", "{:?}", hits[0]);
    let s = t.status();
    assert_eq!(s["static_vectors"], 2, "{s}");
    assert_eq!(s["embeddings_pending"], 2, "{s}");

    // The transformer arrives: the same search now ranks by its vectors.
    model.mend();
    wait_for("the transformer tier to catch up", || {
        t.status()["embeddings_pending"] == 0
    });
    let hits = t.search("a feline resting on a rug", &["--mode", "semantic"]);
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "pets.md");
    assert_eq!(hits[0]["tier"], "transformer", "{:?}", hits[0]);
    t.assert_verified("both tiers complete");
    assert!(w.stop().success());
}

#[test]
fn an_index_from_before_the_static_tier_gets_static_vectors_on_open() {
    let mut t = Tree::new(true);
    t.env.push(("VIGIL_EMBED".into(), "transformer".into()));
    t.write("pets.md", CAT);
    t.write("finance.md", TAX);
    t.index();
    assert_eq!(t.status()["static_vectors"], 0);

    t.env.retain(|(k, _)| k != "VIGIL_EMBED");
    let summary = t.index();
    assert!(
        summary.contains("embeddings: 0 computed"),
        "cached: {summary}"
    );
    assert_eq!(t.status()["static_vectors"], 2);
    t.assert_verified("after the static tier was added");
}

/// (thread name, nice value) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head
            .split_once('(')
            .map(|(_, n)| n)
            .unwrap_or("")
            .to_string();
        // Fields after the name start at field 3 (state); nice is field 19.
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((name, nice));
    }
    out
}

#[test]
fn the_transformer_catch_up_runs_at_the_configured_nice_value_with_its_onnx_threads() {
    let mut t = Tree::new(true);
    let config = t.tmp.path().join("vigil.toml");
    fs::write(&config, "embed_nice = 15\nembed_threads = 2\n").unwrap();
    t.env
        .push(("VIGIL_CONFIG".into(), config.to_str().unwrap().into()));
    t.write("pets.md", CAT);
    let w = t.watch();
    t.write("finance.md", TAX);
    // While the indexing model is loaded (it is unloaded after 30 s idle), its threads exist.
    wait_for("the edit to be embedded", || {
        let s = t.status();
        s["embeddings_pending"] == 0 && s["embeddings_computed"].as_u64() >= Some(2)
    });
    let all = threads(w.child.id());
    let embed: Vec<_> = all.iter().filter(|(n, _)| n == "vigil-embed").collect();
    assert!(
        embed.len() >= 2,
        "the worker and ONNX Runtime's threads it started: {all:?}"
    );
    assert!(embed.iter().all(|(_, nice)| *nice == 15), "{all:?}");
    assert!(
        all.iter().any(|(n, nice)| n != "vigil-embed" && *nice == 0),
        "the rest runs at normal priority: {all:?}"
    );
    assert!(w.stop().success());
}

#[test]
fn a_file_found_through_its_static_vector_gets_its_transformer_vector_first() {
    let mut t = Tree::new(true);
    // The transformer cannot load yet: 100 texts wait for it, every one with a static vector.
    let model = t.broken_model();
    for n in 0..99 {
        t.write(
            &format!("notes/n{n:03}.md"),
            format!(
                "Inventory line {n}: {} crates of bolts shipped to depot {n}.\n",
                n * 7
            ),
        );
    }
    // Last in the queue.
    t.write("notes/zz-pets.md", CAT);
    let w = t.watch();
    wait_for("every text to wait for the transformer", || {
        let s = t.status();
        s["static_vectors"] == 100 && s["embeddings_pending"] == 100
    });
    let hits = t.search(
        "a feline resting on a rug",
        &["--mode", "semantic", "--limit", "1"],
    );
    assert_eq!(hits[0]["tier"], "static");

    // The transformer arrives: texts go 64 at a time, and the one the search showed is in
    // the first window although it was queued last.
    model.mend();
    wait_for("the first window of texts to be embedded", || {
        t.status()["embeddings_cached"].as_u64() >= Some(64)
    });
    let cached = t.status()["embeddings_cached"].as_u64().unwrap();
    let hits = t.search(
        "a feline resting on a rug",
        &["--mode", "semantic", "--limit", "1"],
    );
    assert_eq!(t.rel(hits[0]["path"].as_str().unwrap()), "notes/zz-pets.md");
    if cached < 100 {
        assert_eq!(hits[0]["tier"], "transformer", "{cached} of 100 embedded");
    }
    assert!(w.stop().success());
}
