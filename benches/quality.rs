//! Ranking quality on annotated queries over public code bases, pinned by version and fetched
//! through the package registries (PyPI, npm, crates.io, Debian).
//!
//! `cargo bench --bench quality` prints hit@1, hit@5, MRR@10 and NDCG@10 per corpus, layout
//! (`source`: only the main source folder indexed; `whole`: the whole package, tests, docs
//! and examples included) and mode (text, semantic, hybrid), then an ablation table: each
//! ranking feature turned off on its own. Queries: `benches/quality/queries/*.jsonl`
//! (docs/ranking.md describes the format and the held-out split).
//!
//! Scoring follows semble's benchmark: a result covers a target when the path matches and
//! the line ranges overlap; each target counts once, at its first covering result; binary
//! gain; the ideal DCG uses the number of targets. A result spanning more than 200 lines
//! covers nothing. Means are means of per-corpus means.
//!
//! Environment: `QUALITY_SPLIT` = `dev` | `held` | `all` (default `all`);
//! `QUALITY_CORPORA` = comma-separated names (default all); `QUALITY_EMBED=0` for text only;
//! `QUALITY_TIER` = `transformer` (default) | `static`: which embedding tier ranks by meaning;
//! `QUALITY_ABLATE=0` to skip ablations; `QUALITY_LAYOUTS` = `source,whole`;
//! `QUALITY_VERBOSE=1` prints each query's first hits.
//! Corpora and indexes are kept in `target/tmp/quality` between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use vigil::engine::{Engine, EngineConfig};
use vigil::search::{Features, Mode, SearchRequest, Searcher};

/// Where a corpus comes from.
enum Fetch {
    /// A PyPI source distribution.
    Pip(&'static str, &'static str),
    /// An npm package tarball.
    Npm(&'static str, &'static str),
    /// A crate from crates.io.
    Crate(&'static str, &'static str),
    /// A Debian package (binary .deb, version pinned).
    Deb(&'static str, &'static str),
}

struct Corpus {
    name: &'static str,
    fetch: Fetch,
    /// The corpus root inside the unpacked archive; targets are relative to it.
    root: &'static str,
    /// Its main source folders, relative to the root.
    source: &'static [&'static str],
    /// A list of files (relative to the root) that is the source instead of folders.
    files: Option<&'static str>,
    /// Whether a `whole` layout makes sense (else the corpus is its source).
    whole: bool,
}

const CORPORA: &[Corpus] = &[
    Corpus {
        name: "click",
        fetch: Fetch::Pip("click", "8.1.7"),
        root: "click-8.1.7",
        source: &["src/click"],
        files: None,
        whole: true,
    },
    Corpus {
        name: "express",
        fetch: Fetch::Npm("express", "4.21.2"),
        root: "package",
        source: &["lib"],
        files: None,
        whole: true,
    },
    Corpus {
        name: "rxjs",
        fetch: Fetch::Npm("rxjs", "7.8.1"),
        root: "package",
        source: &["src"],
        files: None,
        whole: true,
    },
    Corpus {
        name: "serde_json",
        fetch: Fetch::Crate("serde_json", "1.0.128"),
        root: "serde_json-1.0.128",
        source: &["src"],
        files: None,
        whole: true,
    },
    Corpus {
        name: "pipdocs",
        fetch: Fetch::Pip("pip", "24.2"),
        root: "pip-24.2/docs",
        source: &["html"],
        files: None,
        whole: false,
    },
    Corpus {
        name: "stdlib",
        fetch: Fetch::Deb("libpython3.11-stdlib", "3.11.2-6+deb12u7"),
        root: "usr/lib/python3.11",
        source: &[],
        files: Some("stdlib.files"),
        whole: false,
    },
];

#[derive(Debug, Deserialize)]
struct Target {
    path: String,
    lines: Option<(u32, u32)>,
}

#[derive(Debug, Deserialize)]
struct QuerySpec {
    id: String,
    query: String,
    kind: String,
    split: String,
    targets: Vec<Target>,
}

/// (layout, mode, index of the ablation) of the summary table.
type Row = (String, String, usize);

/// Longest result that may cover a target, in lines.
const MAX_HIT_LINES: u32 = 200;
const K: usize = 10;

#[derive(Debug, Default, Clone, Copy)]
struct Scores {
    n: usize,
    hit1: f64,
    hit5: f64,
    mrr: f64,
    ndcg: f64,
}

impl Scores {
    fn add(&mut self, o: &Scores) {
        self.n += o.n;
        self.hit1 += o.hit1;
        self.hit5 += o.hit5;
        self.mrr += o.mrr;
        self.ndcg += o.ndcg;
    }
    fn mean(&self) -> Scores {
        let n = self.n.max(1) as f64;
        Scores {
            n: self.n,
            hit1: self.hit1 / n,
            hit5: self.hit5 / n,
            mrr: self.mrr / n,
            ndcg: self.ndcg / n,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn run(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "{:?} failed: {}",
                cmd,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("{cmd:?}: {e}");
            false
        }
    }
}

/// Downloads and unpacks a corpus once; returns its root.
fn fetch(c: &Corpus, base: &Path) -> Option<PathBuf> {
    let dir = base.join("corpora").join(c.name);
    let root = dir.join(c.root);
    if dir.join(".done").exists() {
        return Some(root);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let dl = dir.join("download");
    std::fs::create_dir_all(&dl).ok()?;
    let ok = match c.fetch {
        Fetch::Pip(p, v) => run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
            ])
            .arg(&dl)
            .arg(format!("{p}=={v}"))),
        Fetch::Npm(p, v) => run(Command::new("npm")
            .args(["pack", "--silent", &format!("{p}@{v}")])
            .current_dir(&dl)),
        Fetch::Crate(p, v) => run(Command::new("curl")
            .args(["-sfL", "-o"])
            .arg(dl.join(format!("{p}-{v}.crate")))
            .arg(format!("https://static.crates.io/crates/{p}/{p}-{v}.crate"))),
        Fetch::Deb(p, v) => {
            run(Command::new("apt-get")
                .args(["download", &format!("{p}={v}")])
                .current_dir(&dl))
                || run(Command::new("apt-get")
                    .args(["download", p])
                    .current_dir(&dl))
        }
    };
    if !ok {
        return None;
    }
    for entry in std::fs::read_dir(&dl).ok()?.flatten() {
        let f = entry.path();
        let name = f.file_name()?.to_string_lossy().into_owned();
        let ok = if name.ends_with(".deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(&f).arg(&dir))
        } else {
            run(Command::new("tar").arg("xzf").arg(&f).arg("-C").arg(&dir))
        };
        if !ok {
            return None;
        }
    }
    std::fs::write(dir.join(".done"), "").ok()?;
    Some(root)
}

/// The roots to index for a layout. A file list is copied into a staging folder (same
/// relative paths), which then stands for the corpus root.
fn roots(c: &Corpus, root: &Path, layout: &str, base: &Path) -> (PathBuf, Vec<PathBuf>) {
    if let Some(list) = c.files {
        let staging = base.join("staging").join(c.name);
        if !staging.exists() {
            let list = std::fs::read_to_string(queries_dir().join(list)).unwrap();
            for rel in list.lines().filter(|l| !l.trim().is_empty()) {
                let to = staging.join(rel.trim());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(root.join(rel.trim()), &to).unwrap();
            }
        }
        return (staging.clone(), vec![staging]);
    }
    if layout == "whole" {
        return (root.to_path_buf(), vec![root.to_path_buf()]);
    }
    (
        root.to_path_buf(),
        c.source.iter().map(|s| root.join(s)).collect(),
    )
}

fn queries_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/quality/queries")
}

fn load_queries(name: &str, split: &str) -> Vec<QuerySpec> {
    let path = queries_dir().join(format!("{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<QuerySpec>(l).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .filter(|q| split == "all" || q.split == split)
        .collect()
}

/// Scores one ranked list against the targets.
fn score(hits: &[(String, u32, u32)], targets: &[Target]) -> Scores {
    let mut found = vec![false; targets.len()];
    let mut dcg = 0.0;
    let mut first: Option<usize> = None;
    for (rank, (path, start, end)) in hits.iter().take(K).enumerate() {
        if end - start + 1 > MAX_HIT_LINES {
            continue;
        }
        for (t, target) in targets.iter().enumerate() {
            let overlaps = target.lines.is_none_or(|(a, b)| *start <= b && a <= *end);
            if !found[t] && path == &target.path && overlaps {
                found[t] = true;
                dcg += 1.0 / ((rank + 2) as f64).log2();
                first.get_or_insert(rank);
            }
        }
    }
    let ideal: f64 = (0..targets.len().min(K))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    Scores {
        n: 1,
        hit1: (first == Some(0)) as u8 as f64,
        hit5: first.is_some_and(|r| r < 5) as u8 as f64,
        mrr: first.map_or(0.0, |r| 1.0 / (r + 1) as f64),
        ndcg: dcg / ideal,
    }
}

fn evaluate(
    searcher: &Searcher,
    corpus_root: &Path,
    queries: &[QuerySpec],
    mode: Mode,
    verbose: bool,
    times: &mut Vec<std::time::Duration>,
) -> (Scores, BTreeMap<String, Scores>) {
    let mut total = Scores::default();
    let mut by_kind: BTreeMap<String, Scores> = BTreeMap::new();
    let prefix = format!("{}/", corpus_root.display());
    for q in queries {
        let started = std::time::Instant::now();
        let res = searcher
            .search(&SearchRequest::new(q.query.clone(), mode, K))
            .unwrap();
        times.push(started.elapsed());
        let hits: Vec<(String, u32, u32)> = res
            .hits
            .iter()
            .map(|h| {
                let rel = h.path.strip_prefix(&prefix).unwrap_or(&h.path).to_string();
                (rel, h.start_line, h.end_line)
            })
            .collect();
        let s = score(&hits, &q.targets);
        if verbose && s.hit1 < 1.0 {
            let t = &q.targets[0];
            println!(
                "  miss {} [{}] {:?} → want {}:{:?}",
                q.id, q.kind, q.query, t.path, t.lines
            );
            for (p, a, b) in hits.iter().take(3) {
                println!("      {p}:{a}-{b}");
            }
        }
        total.add(&s);
        by_kind.entry(q.kind.clone()).or_default().add(&s);
    }
    (total, by_kind)
}

fn open_index(
    c: &Corpus,
    layout: &str,
    roots: &[PathBuf],
    model: Option<&vigil::model::ModelFiles>,
    static_dir: Option<&Path>,
    base: &Path,
) -> Engine {
    let embed = match (model, static_dir) {
        (Some(_), _) => "embed",
        (None, Some(_)) => "static",
        (None, None) => "text",
    };
    let config = EngineConfig {
        retention: Default::default(),
        embed_budget: Default::default(),
        documents: Default::default(),
        index_dir: base
            .join("index")
            .join(format!("{}-{layout}-{embed}", c.name)),
        roots: roots
            .iter()
            .map(|r| vigil::config::RootSpec::plain(r.clone()))
            .collect(),
        max_file_size: 10 * 1024 * 1024,
        model: model.cloned(),
        static_model: static_dir.map(Path::to_path_buf),
        s3: Default::default(),
    };
    let mut engine = Engine::open(config).unwrap();
    engine.reconcile(roots, &()).unwrap();
    if let Some(model) = model {
        let pending = engine.embeddings_pending();
        if pending > 0 {
            eprintln!("{} {layout}: embedding {pending} chunks", c.name);
            let mut embedder = vigil::pipeline::embed::Embedder::load(model).unwrap();
            loop {
                let jobs = engine
                    .next_embed_jobs(vigil::pipeline::embed::EMBED_WINDOW)
                    .unwrap();
                if jobs.is_empty() {
                    break;
                }
                let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
                let vectors = embedder.embed(&texts).unwrap();
                engine
                    .apply_embeddings(jobs.into_iter().map(|j| j.hash).zip(vectors).collect())
                    .unwrap();
            }
        }
    }
    engine
}

fn fmt(s: &Scores) -> String {
    format!(
        "{:>4}  {:.3}  {:.3}  {:.3}  {:.3}",
        s.n, s.hit1, s.hit5, s.mrr, s.ndcg
    )
}

fn main() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("quality");
    let split = env("QUALITY_SPLIT").unwrap_or_else(|| "all".into());
    let only: Option<Vec<String>> =
        env("QUALITY_CORPORA").map(|v| v.split(',').map(str::to_string).collect());
    let layouts: Vec<String> = env("QUALITY_LAYOUTS")
        .unwrap_or_else(|| "source,whole".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let verbose = env("QUALITY_VERBOSE").as_deref() == Some("1");
    let ablate = env("QUALITY_ABLATE").as_deref() != Some("0");
    let model = if env("QUALITY_EMBED").as_deref() == Some("0") {
        None
    } else {
        match vigil::model::resolve(None, true) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("semantic and hybrid skipped: no model ({e:#})");
                None
            }
        }
    };
    // The static tier alone: its vectors rank by meaning (the transformer's are not made).
    let (model, static_dir) = match (model, env("QUALITY_TIER").as_deref()) {
        (Some(m), Some("static")) => {
            let dir = vigil::pipeline::distil::ensure(&m).unwrap();
            println!("tier: static ({})", dir.display());
            (None, Some(dir))
        }
        (m, _) => (m, None),
    };
    let modes: Vec<Mode> = if model.is_some() || static_dir.is_some() {
        vec![Mode::Text, Mode::Semantic, Mode::Hybrid]
    } else {
        vec![Mode::Text]
    };
    let ablations: Vec<(&str, Features)> = {
        let all = Features::default();
        let mut v = vec![("all features", all)];
        if ablate {
            v.extend([
                (
                    "- fields",
                    Features {
                        fields: false,
                        ..all
                    },
                ),
                (
                    "- proximity",
                    Features {
                        proximity: false,
                        ..all
                    },
                ),
                (
                    "- adaptive fusion",
                    Features {
                        adaptive_fusion: false,
                        ..all
                    },
                ),
                (
                    "- definitions",
                    Features {
                        definitions: false,
                        ..all
                    },
                ),
                (
                    "- demotion",
                    Features {
                        demote: false,
                        ..all
                    },
                ),
                (
                    "- per-file limit",
                    Features {
                        per_file: false,
                        ..all
                    },
                ),
                (
                    "- static-tier weight",
                    Features {
                        static_weight: false,
                        ..all
                    },
                ),
                (
                    "none (plain)",
                    Features {
                        fields: false,
                        proximity: false,
                        adaptive_fusion: false,
                        definitions: false,
                        demote: false,
                        per_file: false,
                        static_weight: false,
                    },
                ),
            ]);
        }
        v
    };
    println!("split: {split}; k = {K}; columns: queries hit@1 hit@5 MRR@10 NDCG@10");
    // (layout, mode, ablation) → per-corpus means.
    let mut table: BTreeMap<Row, Vec<(&str, Scores)>> = BTreeMap::new();
    let mut kinds: BTreeMap<(String, String), Scores> = BTreeMap::new();
    let mut latency: BTreeMap<String, Vec<std::time::Duration>> = BTreeMap::new();
    for c in CORPORA {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == c.name))
        {
            continue;
        }
        let queries = load_queries(c.name, &split);
        if queries.is_empty() {
            continue;
        }
        let Some(root) = fetch(c, &base) else {
            eprintln!("corpus {} skipped: could not fetch it", c.name);
            continue;
        };
        for layout in &layouts {
            if layout == "whole" && !c.whole {
                continue;
            }
            let (corpus_root, roots) = roots(c, &root, layout, &base);
            let engine = open_index(
                c,
                layout,
                &roots,
                model.as_ref(),
                static_dir.as_deref(),
                &base,
            );
            for mode in &modes {
                for (i, (name, features)) in ablations.iter().enumerate() {
                    // Steps that do not apply to this mode.
                    let idle = (*mode == Mode::Semantic && name.contains("fields"))
                        || (*mode != Mode::Text && name.contains("proximity"));
                    if i > 0 && idle {
                        continue;
                    }
                    let searcher = engine.searcher().with_features(*features);
                    let mut times = Vec::new();
                    let (s, by_kind) = evaluate(
                        &searcher,
                        &corpus_root,
                        &queries,
                        *mode,
                        verbose && i == 0,
                        &mut times,
                    );
                    if i == 0 {
                        latency
                            .entry(format!("{mode:?}").to_lowercase())
                            .or_default()
                            .extend(times);
                    }
                    let s = s.mean();
                    if i == 0 {
                        println!(
                            "{:<11} {:<6} {:<9} {}",
                            c.name,
                            layout,
                            format!("{mode:?}").to_lowercase(),
                            fmt(&s)
                        );
                        for (k, v) in by_kind {
                            kinds
                                .entry((format!("{layout} {mode:?}"), k))
                                .or_default()
                                .add(&v);
                        }
                    }
                    table
                        .entry((layout.clone(), format!("{mode:?}").to_lowercase(), i))
                        .or_default()
                        .push((c.name, s));
                }
            }
        }
    }
    let mean = |scores: &[&Scores]| {
        let n = scores.len().max(1) as f64;
        Scores {
            n: scores.iter().map(|s| s.n).sum(),
            hit1: scores.iter().map(|s| s.hit1).sum::<f64>() / n,
            hit5: scores.iter().map(|s| s.hit5).sum::<f64>() / n,
            mrr: scores.iter().map(|s| s.mrr).sum::<f64>() / n,
            ndcg: scores.iter().map(|s| s.ndcg).sum::<f64>() / n,
        }
    };
    println!("\nmean of per-corpus means:");
    for ((layout, mode, i), scores) in &table {
        let all: Vec<&Scores> = scores.iter().map(|(_, s)| s).collect();
        println!(
            "{layout:<6} {mode:<9} {:<18} {} ({} corpora)",
            ablations[*i].0,
            fmt(&mean(&all)),
            scores.len()
        );
    }
    println!("\nsource vs whole on the corpora that have both (all features):");
    for ((layout, mode, i), scores) in &table {
        if layout != "whole" || *i != 0 {
            continue;
        }
        let names: Vec<&str> = scores.iter().map(|(n, _)| *n).collect();
        let whole: Vec<&Scores> = scores.iter().map(|(_, s)| s).collect();
        let source: Vec<&Scores> = table
            .get(&("source".to_string(), mode.clone(), 0))
            .map(|v| {
                v.iter()
                    .filter(|(n, _)| names.contains(n))
                    .map(|(_, s)| s)
                    .collect()
            })
            .unwrap_or_default();
        println!("source {mode:<9} {}", fmt(&mean(&source)));
        println!("whole  {mode:<9} {}", fmt(&mean(&whole)));
    }
    println!("\nsearch latency, all features (the first semantic query loads the model):");
    for (mode, mut times) in latency {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "{mode:<9} p50 {:.2} ms, p95 {:.2} ms ({} queries)",
            at(0.5),
            at(0.95),
            times.len()
        );
    }
    println!("\nby query kind (all corpora pooled):");
    for ((what, kind), s) in kinds {
        println!("{what:<16} {kind:<10} {}", fmt(&s.mean()));
    }
}
