//! Indexing and search throughput on a real corpus: the Rust sources of some of vigil's own
//! dependencies, copied from the cargo registry (present wherever vigil was built).
//!
//! Run with `cargo bench --bench index` (or `just bench`); set `VIGIL_BENCH_EMBED=0` to skip
//! the embedding figures. Prints one line per figure, with units.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{CORPUS, per_sec, registry_src};
use vigil::engine::{Engine, EngineConfig};
use vigil::search::{Mode, SearchRequest};

fn copy_tree(from: &Path, to: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in ignore::WalkBuilder::new(from)
        .standard_filters(false)
        .build()
        .flatten()
    {
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            std::fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_some_and(|t| t.is_file()) {
            bytes += std::fs::copy(entry.path(), &target).unwrap();
            files += 1;
        }
    }
    (files, bytes)
}

fn main() {
    let Some(src) = registry_src() else {
        eprintln!(
            "bench skipped: no cargo registry sources with {} found",
            CORPUS[0]
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("corpus");
    let (mut files, mut bytes) = (0, 0);
    for krate in CORPUS {
        if src.join(krate).is_dir() {
            let (f, b) = copy_tree(&src.join(krate), &root.join(krate));
            files += f;
            bytes += b;
        }
    }
    let root = root.canonicalize().unwrap();
    println!(
        "corpus: {files} files, {:.1} MiB ({})",
        bytes as f64 / 1048576.0,
        CORPUS.join(", ")
    );

    let config = EngineConfig {
        retention: Default::default(),
        index_dir: tmp.path().join("index"),
        roots: vec![vigil::config::RootSpec::plain(root.clone())],
        max_file_size: 10 * 1024 * 1024,
        model: None,
        s3: Default::default(),
    };
    let mut engine = Engine::open(config.clone()).unwrap();
    let t = Instant::now();
    let stats = engine.reconcile(std::slice::from_ref(&root), &()).unwrap();
    let d = t.elapsed();
    println!(
        "cold text index: {:.2} s, {:.0} files/s, {:.0} chunks/s, {:.1} MiB/s ({} chunks)",
        d.as_secs_f64(),
        per_sec(stats.scanned, d),
        per_sec(stats.chunks_added, d),
        per_sec(bytes, d) / 1048576.0,
        stats.chunks_added
    );

    let t = Instant::now();
    let stats = engine.reconcile(std::slice::from_ref(&root), &()).unwrap();
    let d = t.elapsed();
    println!(
        "no-op reconcile: {:.1} ms, {:.0} files/s ({} unchanged)",
        d.as_secs_f64() * 1e3,
        per_sec(stats.scanned, d),
        stats.unchanged
    );

    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    for entry in ignore::WalkBuilder::new(&root).build().flatten() {
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let f = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap();
            f.set_modified(later).unwrap();
        }
    }
    let t = Instant::now();
    let stats = engine.reconcile(std::slice::from_ref(&root), &()).unwrap();
    let d = t.elapsed();
    println!(
        "touch-all reconcile (hash, no re-chunk): {:.2} s, {:.1} MiB/s ({} touched)",
        d.as_secs_f64(),
        per_sec(bytes, d) / 1048576.0,
        stats.touched
    );

    let searcher = engine.searcher();
    let queries = [
        "commit transaction",
        "segment merge policy",
        "inotify watch descriptor",
        "markdown heading",
        "fn open",
        "b-tree page",
        "tokenizer",
        "debounce",
        "gitignore glob",
        "file lock",
    ];
    let mut times = Vec::new();
    let mut hits = 0usize;
    for _ in 0..5 {
        for q in queries {
            let req = SearchRequest::new(q.to_string(), Mode::Text, 10);
            let t = Instant::now();
            let res = searcher.search(&req).unwrap();
            times.push(t.elapsed());
            hits += res.hits.len();
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "text search: p50 {:.2} ms, p95 {:.2} ms over {} queries (limit 10, {hits} hits)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        times.len()
    );
    drop(searcher);
    drop(engine);

    if std::env::var("VIGIL_BENCH_EMBED").as_deref() == Ok("0") {
        return;
    }
    let Ok(model) = vigil::model::resolve(None, true) else {
        eprintln!("embedding figures skipped: no model (run `vigil model fetch`)");
        return;
    };
    let mut embedder = vigil::pipeline::embed::Embedder::load(&model).unwrap();
    let chunker = vigil::pipeline::chunk::Chunker::new(Some(
        tokenizers::Tokenizer::from_file(model.tokenizer()).unwrap(),
    ));
    let text = std::fs::read_to_string(root.join("tantivy-0.27.0/ARCHITECTURE.md"))
        .unwrap_or_else(|_| "lorem ipsum ".repeat(5000));
    let chunks = chunker.chunk(Path::new("ARCHITECTURE.md"), &text);
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).take(128).collect();
    let t = Instant::now();
    let vectors = embedder.embed(&texts).unwrap();
    let d = t.elapsed();
    println!(
        "embedding: {:.1} chunks/s ({} chunks of ≤256 tokens, batch {})",
        per_sec(vectors.len() as u64, d),
        vectors.len(),
        vigil::pipeline::embed::EMBED_BATCH
    );
}
