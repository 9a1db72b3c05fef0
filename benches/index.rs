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
        embed_budget: Default::default(),
        documents: Default::default(),
        index_dir: tmp.path().join("index"),
        roots: vec![vigil::config::RootSpec::plain(root.clone())],
        max_file_size: 10 * 1024 * 1024,
        model: None,
        static_model: None,
        s3: Default::default(),
    };
    let mut engine = Engine::open(config.clone()).unwrap();
    let t = Instant::now();
    let stats = engine.reconcile(std::slice::from_ref(&root), &()).unwrap();
    let d = t.elapsed();
    let cold_text = d;
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
    let queries: [&str; 10] = [
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
    chunk_one_file(&root, None);

    if std::env::var("VIGIL_BENCH_EMBED").as_deref() == Ok("0") {
        return;
    }
    let Ok(model) = vigil::model::resolve(None, true) else {
        eprintln!("embedding figures skipped: no model (run `vigil model fetch`)");
        return;
    };

    // Chunking code by model tokens: text-splitter's code splitter (what vigil used before,
    // parsing once more for the context) against vigil's own syntax splitter over the one parse
    // it shares with the context; both count tokens by words.
    {
        use text_splitter::{ChunkConfig, CodeSplitter};
        use vigil::pipeline::context::{Lang, Outline};
        let mut tokenizer = tokenizers::Tokenizer::from_file(model.tokenizer()).unwrap();
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).unwrap();
        let counter = vigil::pipeline::tokens::TokenCounter::new(tokenizer);
        let mut paths: Vec<std::path::PathBuf> = ignore::WalkBuilder::new(&root)
            .build()
            .flatten()
            .map(|e| e.into_path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        paths.sort();
        paths.truncate(150);
        let texts: Vec<String> = paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        let mib = texts.iter().map(String::len).sum::<usize>() as f64 / 1048576.0;
        let grammar = Lang::Rust.grammar().unwrap();
        let before =
            CodeSplitter::new(grammar, ChunkConfig::new(222).with_sizer(counter.clone())).unwrap();
        let t = Instant::now();
        let old: usize = texts
            .iter()
            .map(|text| {
                let outline = Outline::of(Lang::Rust, text);
                std::hint::black_box(outline.definitions().len());
                before.chunk_indices(text).count()
            })
            .sum();
        let d_old = t.elapsed();
        let t = Instant::now();
        let new: usize = texts
            .iter()
            .map(|text| {
                let tree = vigil::pipeline::split::parse(Lang::Rust, text).unwrap();
                let outline = Outline::of_tree(Lang::Rust, text, Some(&tree));
                std::hint::black_box(outline.definitions().len());
                vigil::pipeline::split::split_code(&tree, text, 222, &|p| counter.count(p)).len()
            })
            .sum();
        let d_new = t.elapsed();
        println!(
            "chunking code by model tokens, with the context's outline ({} Rust files, {mib:.1} MiB): text-splitter {:.2} MiB/s ({old} chunks), vigil's syntax splitter {:.2} MiB/s ({new} chunks), {:.1}x",
            texts.len(),
            mib / d_old.as_secs_f64(),
            mib / d_new.as_secs_f64(),
            d_old.as_secs_f64() / d_new.as_secs_f64()
        );
    }

    chunk_one_file(
        &root,
        Some(tokenizers::Tokenizer::from_file(model.tokenizer()).unwrap()),
    );

    // The static tier: the same cold index, every chunk also given a static vector.
    let static_dir = vigil::pipeline::distil::ensure(&model).unwrap();
    let mut engine = Engine::open(EngineConfig {
        index_dir: tmp.path().join("index-static"),
        static_model: Some(static_dir.clone()),
        ..config.clone()
    })
    .unwrap();
    let t = Instant::now();
    let stats = engine.reconcile(std::slice::from_ref(&root), &()).unwrap();
    engine.checkpoint().unwrap();
    let d = t.elapsed();
    println!(
        "cold text + static-tier index: {:.2} s, {:.0} chunks/s, {:.2}x the text-only time ({} chunks, snapshot saved)",
        d.as_secs_f64(),
        per_sec(stats.chunks_added, d),
        d.as_secs_f64() / cold_text.as_secs_f64(),
        stats.chunks_added
    );
    let searcher = engine.searcher();
    let mut times = Vec::new();
    for _ in 0..5 {
        for q in queries {
            let req = SearchRequest::new(q.to_string(), Mode::Hybrid, 10);
            let t = Instant::now();
            searcher.search(&req).unwrap();
            times.push(t.elapsed());
        }
    }
    times.sort();
    println!(
        "hybrid search, static tier: p50 {:.2} ms, p95 {:.2} ms over {} queries",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        times.len()
    );
    drop(searcher);
    drop(engine);

    let mut embedder = vigil::pipeline::embed::Embedder::load(&model).unwrap();
    let chunker = vigil::pipeline::chunk::Chunker::new(Some(
        tokenizers::Tokenizer::from_file(model.tokenizer()).unwrap(),
    ));
    // Real chunk texts as the pipeline embeds them (header and text), from the corpus's
    // files in path order: code of all lengths.
    let mut paths: Vec<std::path::PathBuf> = ignore::WalkBuilder::new(&root)
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .collect();
    paths.sort();
    let mut owned: Vec<String> = Vec::new();
    for path in paths.iter().step_by(7) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for c in chunker.chunk(path, &text) {
            owned.push(vigil::pipeline::chunk::embedded_text(&c.header, &c.text));
        }
        if owned.len() >= 192 {
            break;
        }
    }
    owned.truncate(192);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    // Before: batches of 16 in queue order. Now: a window of 64 sorted by length.
    let t = Instant::now();
    for batch in texts.chunks(vigil::pipeline::embed::EMBED_BATCH) {
        embedder.embed(batch).unwrap();
    }
    let fifo = t.elapsed();
    let t = Instant::now();
    let mut vectors = Vec::new();
    for window in texts.chunks(vigil::pipeline::embed::EMBED_WINDOW) {
        vectors.extend(embedder.embed(window).unwrap());
    }
    let d = t.elapsed();
    println!(
        "embedding, transformer: {:.1} chunks/s in queue order, {:.1} chunks/s sorted by length in windows of {} ({} code chunks, batch {})",
        per_sec(texts.len() as u64, fifo),
        per_sec(vectors.len() as u64, d),
        vigil::pipeline::embed::EMBED_WINDOW,
        vectors.len(),
        vigil::pipeline::embed::EMBED_BATCH
    );
    let model = vigil::pipeline::embed_static::StaticEmbedder::load(&static_dir).unwrap();
    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..20 {
        for text in &texts {
            std::hint::black_box(model.embed(text));
            n += 1;
        }
    }
    let d = t.elapsed();
    println!(
        "embedding, static: {:.0} chunks/s on one thread (the same chunks, 20 times)",
        per_sec(n, d)
    );
}

/// Time to chunk one long file, the part of save-to-searchable spent splitting (median of 9).
fn chunk_one_file(root: &Path, tokenizer: Option<tokenizers::Tokenizer>) {
    let path = root.join("redb-4.5.0/src/tree_store/btree_base.rs");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let sized = if tokenizer.is_some() {
        "model tokens"
    } else {
        "characters"
    };
    let chunker = vigil::pipeline::chunk::Chunker::new(tokenizer);
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(chunker.chunk(&path, &text));
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "chunking one file by {sized} (redb btree_base.rs, {} lines): {:.1} ms median of 9",
        text.lines().count(),
        times[4].as_secs_f64() * 1e3
    );
}
