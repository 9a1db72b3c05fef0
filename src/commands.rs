//! commands: what each subcommand does, wiring config, engine, watcher and server together.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, select};

use crate::cli::{Cli, Command, ModelAction, ScanArgs};
use crate::engine::{Engine, EngineConfig, Progress, ReconcileStats};
use crate::index::text::TextIndex;
use crate::model::{self, MODEL_DIMS, MODEL_NAME};
use crate::output;
use crate::pipeline::embed::{EMBED_BATCH, Embedder};
use crate::search::{Mode, SearchRequest, Searcher};
use crate::server::{self, Backend, Request, Response};
use crate::status::{Phase, StatusCell};
use crate::store::{InUse, Store};
use crate::{config, watch};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Index { scan } => index(&cli, scan),
        Command::Watch {
            scan,
            no_tui: _,
            debounce_ms,
        } => watch(&cli, scan, Duration::from_millis(*debounce_ms)),
        Command::Search {
            query,
            mode,
            limit,
            path,
            json,
        } => {
            // Text-only runs rank by text alone, without a warning about the missing half.
            let mode = if cli.no_embed && *mode == Mode::Hybrid {
                Mode::Text
            } else {
                *mode
            };
            let req = SearchRequest {
                query: query.clone(),
                mode,
                limit: *limit,
                path: path.clone(),
            };
            search(&cli, req, *json)
        }
        Command::Status { json } => status(&cli, *json),
        Command::History { path, limit, json } => history(&cli, path.as_deref(), *limit, *json),
        Command::Model {
            action: ModelAction::Fetch,
        } => {
            let files = model::fetch(&model::default_model_dir())?;
            println!("model fetched and verified: {}", files.dir.display());
            model_info(&files)
        }
        Command::Model {
            action: ModelAction::Info,
        } => {
            let files = model::resolve(cli.model_dir.as_deref(), false)?;
            model_info(&files)
        }
    }
}

fn open_engine(cli: &Cli, scan: &ScanArgs) -> Result<Engine> {
    let index_dir = config::index_dir(cli);
    if let Some(Response::Status(s)) = server::ask(&index_dir, &Request::Status).ok().flatten() {
        let owner = crate::engine::owner_of(&index_dir).unwrap_or_else(|| format!("pid {}", s.pid));
        bail!(
            "{}: the index is owned by a running vigil process ({owner}); it already keeps its roots in step",
            index_dir.display()
        );
    }
    let roots = config::roots(&scan.paths)?;
    let model = config::model(cli)?;
    Engine::open(EngineConfig {
        index_dir,
        roots,
        max_file_size: scan.max_file_size,
        model,
    })
}

fn index(cli: &Cli, scan: &ScanArgs) -> Result<()> {
    let started = Instant::now();
    let mut engine = open_engine(cli, scan)?;
    // Answer searches and status from other terminals while this (possibly long) run lasts.
    let _server = server::serve(&config::index_dir(cli), backend(&engine))?;
    engine.publish(Phase::Scanning);
    let bar = output::ProgressBar::new("indexing", "files");
    let roots = engine.roots().to_vec();
    let stats = engine.reconcile(&roots, &bar)?;
    bar.finish();
    let computed = if engine.embeddings_enabled() {
        embed_all(&mut engine)?
    } else {
        0
    };
    engine.checkpoint()?;
    output::summary(&stats, computed, started.elapsed());
    Ok(())
}

/// Embeds every queued chunk text, in bounded batches, with a progress bar; returns how many.
fn embed_all(engine: &mut Engine) -> Result<u64> {
    let pending = engine.embeddings_pending() as u64;
    if pending == 0 {
        return Ok(0);
    }
    let model = engine_model(engine)?;
    let mut embedder = Embedder::load(&model)?;
    let bar = output::ProgressBar::new("embedding", "chunks");
    bar.set_total(pending);
    let mut done = 0;
    loop {
        let jobs = engine.next_embed_jobs(EMBED_BATCH)?;
        if jobs.is_empty() {
            break;
        }
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        done += jobs.len() as u64;
        bar.advance(jobs.len() as u64, 0);
        engine.apply_embeddings(jobs.into_iter().map(|j| j.hash).zip(vectors).collect())?;
    }
    bar.finish();
    Ok(done)
}

/// What the socket server answers with: read-only handles on the engine's indexes.
fn backend(engine: &Engine) -> Backend {
    Backend {
        searcher: engine.searcher(),
        store: engine.store(),
        status: engine.status(),
    }
}

fn engine_model(engine: &Engine) -> Result<model::ModelFiles> {
    engine
        .model()
        .cloned()
        .context("embeddings are enabled only with a model")
}

fn watch(cli: &Cli, scan: &ScanArgs, debounce: Duration) -> Result<()> {
    let mut engine = open_engine(cli, scan)?;
    let status = engine.status();
    let _server = server::serve(&config::index_dir(cli), backend(&engine))?;
    let signals = signal_channel()?;
    let roots = engine.roots().to_vec();
    // Watch first, so nothing that changes during the initial reconcile is missed.
    let (_watcher, changes) = watch::start(&roots, debounce)?;
    tracing::info!(roots = ?roots, "watching; initial reconcile");
    engine.publish(Phase::Scanning);
    let stats = engine.reconcile(&roots, &())?;
    log_batch("initial reconcile", &stats);
    let embed = EmbedWorker::start(&engine)?;
    engine.publish(if engine.embeddings_pending() > 0 {
        Phase::Embedding
    } else {
        Phase::Watching
    });
    let mut in_flight = false;
    loop {
        if let Some(worker) = &embed
            && !in_flight
            && engine.embeddings_pending() > 0
        {
            let jobs = engine.next_embed_jobs(EMBED_BATCH)?;
            in_flight = !jobs.is_empty() && worker.jobs.send(jobs).is_ok();
        }
        let done = embed
            .as_ref()
            .map(|w| w.done.clone())
            .unwrap_or_else(crossbeam_channel::never);
        select! {
            recv(changes) -> batch => {
                let Ok(first) = batch else { bail!("the file watcher stopped") };
                apply_changes(&mut engine, &status, first, &changes, &roots)?;
            }
            recv(done) -> result => {
                in_flight = false;
                match result {
                    Ok(Ok(vectors)) => engine.apply_embeddings(vectors)?,
                    Ok(Err(e)) => tracing::error!("embedding failed: {e:#}"),
                    Err(_) => bail!("the embedding worker stopped"),
                }
            }
            recv(signals) -> _ => break,
        }
    }
    tracing::info!("stopping: saving the vector index");
    engine.checkpoint()?;
    Ok(())
}

/// Applies one watcher delivery (plus any already queued behind it) as one reconcile.
fn apply_changes(
    engine: &mut Engine,
    status: &StatusCell,
    first: watch::WatchBatch,
    changes: &Receiver<watch::WatchBatch>,
    roots: &[std::path::PathBuf],
) -> Result<()> {
    let mut paths = first.paths;
    let mut rescan = first.rescan;
    let mut events = first.events;
    for e in first.errors {
        tracing::warn!("watch error: {e}");
    }
    while let Ok(more) = changes.try_recv() {
        paths.extend(more.paths);
        rescan |= more.rescan;
        events += more.events;
        for e in more.errors {
            tracing::warn!("watch error: {e}");
        }
    }
    status.update(|s| s.events_received += events);
    if rescan {
        tracing::warn!(
            "the watcher lost events (queue overflow or rescan request): reconciling the roots"
        );
        paths = roots.to_vec();
    }
    if paths.is_empty() {
        return Ok(());
    }
    let stats = engine.reconcile(&paths, &())?;
    log_batch("applied batch", &stats);
    engine.publish(if engine.embeddings_pending() > 0 {
        Phase::Embedding
    } else {
        Phase::Watching
    });
    Ok(())
}

fn log_batch(what: &str, s: &ReconcileStats) {
    let changed = s.added + s.modified + s.deleted + s.renamed + s.touched + s.skipped + s.failed;
    if changed == 0 {
        tracing::debug!(scanned = s.scanned, "{what}: nothing changed");
        return;
    }
    tracing::info!(
        created = s.added,
        modified = s.modified,
        deleted = s.deleted,
        renamed = s.renamed,
        touched = s.touched,
        skipped = s.skipped,
        failed = s.failed,
        chunks_added = s.chunks_added,
        chunks_removed = s.chunks_removed,
        embeddings_queued = s.embeddings_computed,
        embeddings_reused = s.embeddings_reused,
        "{what}"
    );
}

type EmbedResult = Result<Vec<([u8; 32], Vec<f32>)>>;

/// The thread that owns the indexing embedder; the engine feeds it one batch at a time.
struct EmbedWorker {
    jobs: crossbeam_channel::Sender<Vec<crate::engine::EmbedJob>>,
    done: Receiver<EmbedResult>,
}

impl EmbedWorker {
    fn start(engine: &Engine) -> Result<Option<Self>> {
        let Some(model) = engine.model().cloned() else {
            return Ok(None);
        };
        let mut embedder = Embedder::load(&model)?;
        let (jobs, job_rx) = crossbeam_channel::bounded::<Vec<crate::engine::EmbedJob>>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("vigil-embed".into())
            .spawn(move || {
                for batch in job_rx {
                    let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
                    let result = embedder
                        .embed(&texts)
                        .map(|vectors| batch.iter().map(|j| j.hash).zip(vectors).collect());
                    if done_tx.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Some(Self { jobs, done }))
    }
}

/// A channel that receives SIGINT and SIGTERM.
fn signal_channel() -> Result<Receiver<i32>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    let (tx, rx) = crossbeam_channel::bounded(4);
    std::thread::Builder::new()
        .name("vigil-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// How long a query waits for the index: a watcher starting up, or another short command
/// holding it.
const QUERY_WAIT: Duration = Duration::from_secs(10);

/// Answers a request through the running watcher, or by opening the index directly.
fn ask(cli: &Cli, request: Request, needs_model: bool) -> Result<Response> {
    let index_dir = config::index_dir(cli);
    let deadline = Instant::now() + QUERY_WAIT;
    let store = loop {
        if let Some(response) = server::ask(&index_dir, &request)? {
            return Ok(response);
        }
        if !config::index_exists(&index_dir) {
            bail!(
                "{}: no index here yet; run `vigil index PATH` or `vigil watch PATH` first",
                index_dir.display()
            );
        }
        // Held by a process that does not answer (an `index` run, a watcher starting up, or
        // another query): ask again until the deadline.
        match Store::open(&index_dir, Duration::ZERO) {
            Ok(store) => break store,
            Err(e) if e.is::<InUse>() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(match crate::engine::owner_of(&index_dir) {
                    Some(owner) => e.context(format!("held by {owner}")),
                    None => e,
                });
            }
        }
    };
    let backend = direct_backend(cli, &index_dir, Arc::new(store), needs_model)?;
    match backend.answer(&request) {
        Response::Error { message } => bail!("{message}"),
        r => Ok(r),
    }
}

/// Read handles on an index no process is watching.
fn direct_backend(
    cli: &Cli,
    index_dir: &Path,
    store: Arc<Store>,
    needs_model: bool,
) -> Result<Backend> {
    let text = Arc::new(TextIndex::open(&index_dir.join("text"), false)?);
    let (vectors, model) = if needs_model && !cli.no_embed && store.counts()?.vectors > 0 {
        let generation = store.generation()?;
        let vectors =
            match crate::index::vector::VectorIndex::load(index_dir, MODEL_DIMS, generation) {
                Some(v) => v,
                None => crate::engine::build_vector_index(&store)?,
            };
        (Some(Arc::new(vectors)), config::model(cli).ok().flatten())
    } else {
        (None, None)
    };
    let status = StatusCell::default();
    let text_docs = text.num_docs();
    let [indexed, skipped, failed] = crate::engine::count_states(&store)?;
    let counts = store.counts()?;
    status.update(|s| {
        s.phase = Phase::Stopped;
        s.index_dir = index_dir.display().to_string();
        s.files_indexed = indexed;
        s.files_skipped = skipped;
        s.files_failed = failed;
        s.chunks = counts.chunks;
        s.text_docs = text_docs;
        s.embeddings_cached = counts.vectors;
    });
    let searcher = Searcher::new(store.clone(), text, vectors, model);
    Ok(Backend {
        searcher,
        store,
        status,
    })
}

fn search(cli: &Cli, req: SearchRequest, json: bool) -> Result<()> {
    let needs_model = req.mode != Mode::Text;
    let Response::Search(res) = ask(cli, Request::Search(req), needs_model)? else {
        bail!("unexpected answer to a search")
    };
    for w in &res.warnings {
        eprintln!("vigil: {w}");
    }
    output::hits(&res.hits, json)
}

fn status(cli: &Cli, json: bool) -> Result<()> {
    let Response::Status(s) = ask(cli, Request::Status, false)? else {
        bail!("unexpected answer to status")
    };
    output::status(&s, json)
}

fn history(cli: &Cli, path: Option<&Path>, limit: usize, json: bool) -> Result<()> {
    let path = match path {
        Some(p) => Some(
            p.canonicalize()
                .unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf())),
        ),
        None => None,
    };
    let request = Request::History {
        path: path.map(|p| p.to_string_lossy().into_owned()),
        limit,
    };
    let Response::History { rows } = ask(cli, request, false)? else {
        bail!("unexpected answer to history")
    };
    output::history(&rows, json)
}

fn model_info(files: &model::ModelFiles) -> Result<()> {
    println!("model:      {MODEL_NAME}");
    println!("dimensions: {MODEL_DIMS}");
    println!("directory:  {}", files.dir.display());
    for (path, sum) in model::checksums(files) {
        match sum {
            Ok(sum) => println!("  {sum}  {}", path.display()),
            Err(e) => println!("  error: {e:#}"),
        }
    }
    Ok(())
}

/// Whether standard error is a terminal (progress bars are drawn only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
