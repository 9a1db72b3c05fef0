//! commands: what each subcommand does, wiring config, engine, watcher and server together.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::select;

use crate::api::http::{self, ListenConfig};
use crate::api::{Backend, Request, Response, client};
use crate::cli::{Cli, Command, ConfigAction, ModelAction};
use crate::config::{ConfigFile, Overrides, Settings};
use crate::engine::{Engine, EngineConfig, Progress, ReconcileStats};
use crate::index::text::TextIndex;
use crate::index::vector::VectorIndex;
use crate::model::{self, MODEL_DIMS, MODEL_NAME};
use crate::output;
use crate::pipeline::embed::{EMBED_WINDOW, Embedder};
use crate::search::{Mode, SearchRequest, Searcher};
use crate::settings::Tier;
use crate::status::{Phase, StatusCell};
use crate::store::{InUse, Store};
use crate::{config, service};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Index { scan } => index(&cli, &scan_overrides(scan)),
        Command::Watch {
            scan,
            no_tui,
            debounce_ms,
            poll,
            poll_interval,
            listen,
            listen_public,
        } => {
            let flags = Overrides {
                debounce_ms: *debounce_ms,
                poll_ms: *poll,
                poll_interval_ms: *poll_interval,
                listen: *listen,
                listen_public: *listen_public,
                ..scan_overrides(scan)
            };
            watch(&cli, &flags, *no_tui)
        }
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let parsed = config::load_file(file)?;
            let settings = config::settings(&parsed, &Overrides::default())?;
            println!("{}: valid", file.display());
            println!("{settings:#?}");
            Ok(())
        }
        Command::Search {
            query,
            mode,
            limit,
            path,
            per_file,
            files,
            no_demote,
            sync,
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
                include_text: false,
                // One chunk per file: each hit is a file, ranked by its best chunk.
                per_file: if *files {
                    Some(1)
                } else {
                    per_file.map(|n| n as usize)
                },
                no_demote: *no_demote,
                sync: *sync,
            };
            search(&cli, req, *json, *files)
        }
        Command::Status { json } => status(&cli, *json),
        Command::Mcp { paths } => mcp(&cli, paths),
        Command::Verify { json, repair } => verify(&cli, *json, *repair),
        Command::History { path, limit, json } => history(&cli, path.as_deref(), *limit, *json),
        Command::Model {
            action: ModelAction::Fetch,
        } => {
            let files = model::fetch(&model::default_model_dir())?;
            println!("model fetched and verified: {}", files.dir.display());
            let started = Instant::now();
            let dir = crate::pipeline::distil::distil(&files)?;
            println!(
                "static model distilled from it in {:.1} s: {}",
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            model_info(&files)
        }
        Command::Model {
            action: ModelAction::Info,
        } => {
            let files = model::resolve(cli.model_dir.as_deref(), false)?;
            model_info(&files)
        }
        Command::ExtractDocument { .. } => {
            anyhow::bail!("extract-document is run by vigil itself, from main")
        }
    }
}

/// The flags `index` and `watch` share.
fn scan_overrides(scan: &crate::cli::ScanArgs) -> Overrides {
    Overrides {
        paths: scan.paths.clone(),
        max_file_size: scan.max_file_size,
        s3_endpoint: scan.s3_endpoint.clone(),
        s3_region: scan.s3_region.clone(),
        s3_allow_http: scan.s3_allow_http,
        s3_downloads: scan.s3_downloads.map(usize::from),
        ..Default::default()
    }
}

/// The configuration file of this invocation (`--config`, else the default one if it exists).
///
/// Errors: the file is invalid (its path and the reason).
fn config_file(cli: &Cli) -> Result<(Option<std::path::PathBuf>, ConfigFile)> {
    match cli.config.clone().or_else(config::default_config_file) {
        Some(path) => Ok((Some(path.clone()), config::load_file(&path)?)),
        None => Ok((None, ConfigFile::default())),
    }
}

fn open_engine(cli: &Cli, file: &ConfigFile, settings: &Settings) -> Result<Engine> {
    let index_dir = config::index_dir(cli);
    if let Some(Response::Status(s)) = client::ask(&index_dir, &Request::Status).ok().flatten() {
        let owner = crate::engine::owner_of(&index_dir).unwrap_or_else(|| format!("pid {}", s.pid));
        bail!(
            "{}: the index is owned by a running vigil process ({owner}); it already keeps its roots in step",
            index_dir.display()
        );
    }
    if let Some(workers) = settings.workers {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build_global();
    }
    let models = config::models(cli, file)?;
    Engine::open(EngineConfig {
        index_dir,
        roots: settings.roots.clone(),
        max_file_size: settings.max_file_size,
        model: models.transformer,
        static_model: models.static_dir,
        s3: settings.s3.clone(),
        retention: settings.retention,
        embed_budget: settings.embed_budget,
        documents: settings.documents,
    })
}

fn index(cli: &Cli, flags: &Overrides) -> Result<()> {
    let started = Instant::now();
    let (_, file) = config_file(cli)?;
    let settings = config::settings(&file, flags)?;
    let mut engine = open_engine(cli, &file, &settings)?;
    // Answer searches and status from other terminals while this (possibly long) run lasts.
    let _api = http::serve(
        &config::index_dir(cli),
        backend(&engine, None),
        engine.metrics(),
        &ListenConfig::default(),
        None,
    )?;
    engine.publish(Phase::Scanning);
    let bar = output::ProgressBar::new("indexing", "files");
    let roots = engine.roots();
    let mut stats = engine.reconcile(&roots, &bar)?;
    bar.finish();
    let remote_errors = index_remotes(&mut engine, &mut stats)?;
    if engine.static_tier_enabled() {
        // Hybrid search covers every chunk from here; the transformer tier refines it.
        engine.checkpoint()?;
        let pending = engine.embeddings_pending();
        eprintln!(
            "hybrid search ready after {:.1} s: every chunk has a static vector{}",
            started.elapsed().as_secs_f64(),
            if pending > 0 {
                format!(
                    "; the transformer tier now embeds {pending} texts (interrupt at any time: \
                     the next `index` or `watch` resumes)"
                )
            } else {
                String::new()
            }
        );
    }
    let computed = if engine.embeddings_enabled() {
        embed_all(&mut engine)?
    } else {
        0
    };
    engine.collect_garbage()?;
    engine.checkpoint()?;
    output::summary(&stats, computed, started.elapsed());
    if !remote_errors.is_empty() {
        bail!("{}", remote_errors.join("\n"));
    }
    Ok(())
}

/// Polls every object-storage root once (the one-shot `index`), printing what each did.
/// Returns one message per root that failed; the others are indexed regardless.
///
/// Errors: only failures of the index itself.
fn index_remotes(engine: &mut Engine, totals: &mut ReconcileStats) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    for root in engine.remote_roots() {
        let name = root.to_string_lossy().into_owned();
        let remote = match crate::s3::Remote::connect(&root, engine.s3_options()) {
            Ok(r) => r,
            Err(e) => {
                errors.push(crate::s3::redact(&format!("{e:#}")));
                continue;
            }
        };
        match engine.poll_now(&remote, totals) {
            Ok(s) => eprintln!(
                "{name}: {} objects listed, {} unchanged, {} downloaded ({}), {} deleted, {} skipped, {} failed",
                s.listed,
                s.unchanged,
                s.downloaded,
                output::bytes(s.downloaded_bytes),
                s.deleted,
                s.skipped,
                s.failed
            ),
            Err(crate::s3::poll::PollError::Remote(e)) => errors.push(format!("{name}: {e}")),
            Err(crate::s3::poll::PollError::Index(e)) => return Err(e),
            Err(crate::s3::poll::PollError::Stopped) => errors.push(format!("{name}: stopped")),
        }
    }
    Ok(errors)
}

/// Embeds every queued chunk text, in bounded batches, with a progress bar; returns how many.
/// A batch the model fails on is retried text by text (the queue's backoff), so one text the
/// model cannot take is set aside and the rest are embedded.
///
/// Errors: the model cannot be loaded (the text index is complete; the next `index` or
/// `watch` embeds what is missing), or the index cannot be written.
fn embed_all(engine: &mut Engine) -> Result<u64> {
    let pending = engine.embeddings_pending() as u64;
    if pending == 0 {
        return Ok(0);
    }
    let model = engine_model(engine)?;
    let mut embedder = Embedder::load_with(
        &model,
        crate::pipeline::embed::Load::Indexing,
        engine.embed_budget().threads,
    )
    .context("the text index is complete; chunks get their embeddings when the model loads")?;
    let bar = output::ProgressBar::new("embedding", "chunks");
    bar.set_total(pending);
    let mut done = 0;
    loop {
        let jobs = engine.next_embed_jobs(EMBED_WINDOW)?;
        if jobs.is_empty() {
            match engine.embed_resumes_at() {
                Some(t) => {
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                    continue;
                }
                None => break,
            }
        }
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        let hashes: Vec<[u8; 32]> = jobs.iter().map(|j| j.hash).collect();
        match embedder.embed(&texts) {
            Ok(vectors) => {
                done += jobs.len() as u64;
                bar.advance(jobs.len() as u64, 0);
                engine.apply_embeddings(hashes.into_iter().zip(vectors).collect())?;
            }
            Err(e) => engine.embeddings_failed(
                &hashes,
                &crate::engine::EmbedFailure::Batch(format!("{e:#}")),
            ),
        }
    }
    bar.finish();
    Ok(done)
}

/// What the socket server answers with: read-only handles on the engine's indexes, and for a
/// watcher, the channels to repair and sync through.
fn backend(engine: &Engine, watcher: Option<&WatcherLinks>) -> Backend {
    Backend {
        chunker: Some(engine.chunker()),
        index_dir: engine.index_dir().to_path_buf(),
        searcher: engine.searcher(),
        store: engine.store(),
        status: engine.status(),
        embeds: Some(engine.shared_embed_queue()),
        repairs: watcher.map(|w| w.repairs.clone()),
        cookies: watcher.map(|w| w.cookies.clone()),
    }
}

/// What a watcher's API needs from its engine loop: a way to hand it repairs, and the sync
/// cookies it notes.
struct WatcherLinks {
    repairs: crossbeam_channel::Sender<crate::engine::Repair>,
    cookies: Arc<crate::service::cookie::Cookies>,
}

fn engine_model(engine: &Engine) -> Result<model::ModelFiles> {
    engine
        .model()
        .cloned()
        .context("embeddings are enabled only with a model")
}

/// Whether this command line opens the dashboard: `watch` on a terminal without `--no-tui`.
pub fn wants_dashboard(cli: &Cli) -> bool {
    matches!(cli.command, Command::Watch { no_tui, .. } if wants_dashboard_on(no_tui))
}

fn wants_dashboard_on(no_tui: bool) -> bool {
    !no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

fn watch(cli: &Cli, flags: &Overrides, no_tui: bool) -> Result<()> {
    let (config_path, file) = config_file(cli)?;
    let settings = config::settings(&file, flags)?;
    let listen = ListenConfig {
        tcp: settings.listen,
        public: settings.listen_public,
        token: std::env::var("VIGIL_API_TOKEN").ok(),
    };
    listen.validate()?;
    let mut engine = open_engine(cli, &file, &settings)?;
    let (repair_tx, repair_rx) = crossbeam_channel::unbounded();
    let links = WatcherLinks {
        repairs: repair_tx,
        cookies: Arc::default(),
    };
    let api = http::serve(
        &config::index_dir(cli),
        backend(&engine, Some(&links)),
        engine.metrics(),
        &listen,
        Some(crate::mcp::streamable_http(config::index_dir(cli))),
    )?;
    if let Some(addr) = api.tcp {
        tracing::info!(
            "HTTP API on http://{addr} and {}",
            crate::api::socket_path(&config::index_dir(cli)).display()
        );
    }
    let (api_tx, api_rows) = crossbeam_channel::bounded(crate::tui::ACTIVITY_CHANNEL);
    engine.add_activity(api_tx);
    http::bridge(api.events(), api_rows, engine.status())?;
    let debounce = Duration::from_millis(settings.debounce_ms);
    let signals = service::signal_channel()?;
    let dashboard = wants_dashboard_on(no_tui).then(|| {
        let (tx, rx) = crossbeam_channel::bounded(crate::tui::ACTIVITY_CHANNEL);
        (backend(&engine, Some(&links)), tx, rx)
    });
    if engine.embeddings_enabled() {
        // The first search by meaning should not wait for the model.
        let query = engine.query_embedder();
        std::thread::Builder::new()
            .name("vigil-warm-up".into())
            .spawn(move || {
                if let Err(e) = query.warm_up() {
                    tracing::warn!("the query model cannot be loaded yet: {e:#}");
                }
            })?;
    }
    let service = service::start(
        engine,
        debounce,
        settings.watch_mode(),
        dashboard.as_ref().map(|d| d.1.clone()),
        service::Requests {
            repairs: repair_rx,
            cookies: links.cookies.clone(),
        },
    )?;
    service::supervise_reloads(
        service.reloader(),
        config_path,
        flags.clone(),
        settings,
        signals.hangup,
    )?;
    if let Some((backend, _, activity)) = dashboard {
        let result = crate::tui::run(backend, activity, signals.stop);
        return result.and(service.stop());
    }
    select! {
        recv(signals.stop) -> _ => {
            tracing::info!("signal received: stopping (a second signal exits at once)");
            let stop = signals.stop.clone();
            std::thread::spawn(move || {
                if stop.recv().is_ok() {
                    eprintln!("vigil: second signal: exiting at once (the index stays recoverable)");
                    std::process::exit(130);
                }
            });
        }
        recv(service.finished()) -> _ => {}
    }
    service.stop()
}

/// How long a query waits for the index: a watcher starting up, or another short command
/// holding it.
const QUERY_WAIT: Duration = Duration::from_secs(10);

/// Answers a request through the running watcher, or by opening the index directly.
fn ask(cli: &Cli, request: Request, needs_model: bool) -> Result<Response> {
    let index_dir = config::index_dir(cli);
    let deadline = Instant::now() + QUERY_WAIT;
    let store = loop {
        if let Some(response) = client::ask(&index_dir, &request)? {
            return Ok(response);
        }
        if !config::index_exists(&index_dir) {
            bail!(
                "{}: no index here yet; run `vigil index PATH` or `vigil watch PATH` first",
                index_dir.display()
            );
        }
        // Held by a process that does not answer (an `index` run, or a watcher starting
        // up): ask again until the deadline.
        match Store::open_read_only(&index_dir) {
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
    let backend = direct_backend(cli, &index_dir, Arc::new(store), &request, needs_model)?;
    match backend.answer(&request) {
        Response::Error { message, .. } => bail!("{message}"),
        r => Ok(r),
    }
}

/// Read-only handles on an index no process is watching, with only what `request` needs:
/// the status counters for `status`, the vector index and model for a search by meaning and
/// for `verify`, the chunker for `verify`.
fn direct_backend(
    cli: &Cli,
    index_dir: &Path,
    store: Arc<Store>,
    request: &Request,
    needs_model: bool,
) -> Result<Backend> {
    let text = Arc::new(TextIndex::open(&index_dir.join("text"), false)?);
    let counts = store.counts()?;
    let wanted = needs_model && !cli.no_embed;
    let models = if wanted && (counts.vectors > 0 || counts.static_vectors > 0) {
        config::models(cli, &config_file(cli).map(|f| f.1).unwrap_or_default()).unwrap_or_default()
    } else {
        config::Models::default()
    };
    let model = models.transformer.filter(|_| counts.vectors > 0);
    let has_model = model.is_some();
    let query = crate::search::QueryEmbedder::new(model, crate::pipeline::embed::Load::OneQuery);
    if matches!(request, Request::Search(r) if r.mode != Mode::Text) {
        // The model loads (~0.1 s) while the graphs load and the text search runs.
        query.load_in_background();
    }
    let vectors = if has_model {
        Some(Arc::new(saved_graph(&store, index_dir, Tier::Transformer)?))
    } else {
        None
    };
    // The static tier is searched only for chunks the transformer has not embedded yet:
    // when its graph holds every chunk, the static model (~0.15 s to load) is not needed.
    let caught_up = vectors
        .as_ref()
        .is_some_and(|v| v.len() as u64 >= counts.chunks);
    let static_tier = match &models.static_dir {
        Some(dir) if counts.static_vectors > 0 && !caught_up => Some(crate::search::StaticTier {
            model: Arc::new(crate::pipeline::embed_static::StaticEmbedder::load(dir)?),
            vectors: Arc::new(saved_graph(&store, index_dir, Tier::Static)?),
        }),
        _ => None,
    };
    let status = StatusCell::default();
    if matches!(request, Request::Status) {
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
            s.static_vectors = counts.static_vectors;
        });
    }
    let searcher = Searcher::new(store.clone(), text, vectors, query).with_static_tier(static_tier);
    let chunker = if matches!(request, Request::Verify) {
        Some(Arc::new(chunker_of(cli, &store)?))
    } else {
        None
    };
    Ok(Backend {
        searcher,
        store,
        status,
        chunker,
        index_dir: index_dir.to_path_buf(),
        embeds: None,
        repairs: None,
        cookies: None,
    })
}

/// The HNSW graph of `tier`: the saved snapshot when it is current, else rebuilt from redb
/// and saved for the next query (the snapshot is a cache; its generation tag keeps a stale
/// one from ever being loaded).
fn saved_graph(store: &Store, index_dir: &Path, tier: Tier) -> Result<VectorIndex> {
    let generation = store.generation()?;
    if let Some(v) = VectorIndex::load(index_dir, tier, MODEL_DIMS, generation) {
        return Ok(v);
    }
    let v = crate::engine::build_vector_index(store, tier)?;
    if let Err(e) = v.save(index_dir, tier, generation) {
        tracing::debug!("cannot save the vector index: {e:#}");
    }
    Ok(v)
}

/// The chunker an index was built with (from its stored fingerprint), for verify.
fn chunker_of(cli: &Cli, store: &Store) -> Result<crate::pipeline::chunk::Chunker> {
    let uses_tokens = store
        .setting("chunker")?
        .is_some_and(|f| f.contains("tokens"));
    let tokenizer = if uses_tokens {
        let file = config_file(cli).map(|f| f.1).unwrap_or_default();
        let dir = cli.model_dir.as_deref().or(file.model_dir.as_deref());
        let model = model::resolve(dir, true)
            .context("this index was chunked with the model's tokenizer")?;
        Some(
            tokenizers::Tokenizer::from_file(model.tokenizer())
                .map_err(|e| anyhow::anyhow!("{}: {e}", model.tokenizer().display()))?,
        )
    } else {
        None
    };
    Ok(crate::pipeline::chunk::Chunker::new(tokenizer))
}

fn search(cli: &Cli, req: SearchRequest, json: bool, files: bool) -> Result<()> {
    let needs_model = req.mode != Mode::Text;
    let Response::Search(res) = ask(cli, Request::Search(req), needs_model)? else {
        bail!("unexpected answer to a search")
    };
    for w in &res.warnings {
        eprintln!("vigil: {w}");
    }
    if files {
        output::files(&res.hits, json)?;
    } else {
        output::hits(&res.hits, json)?;
    }
    if json && let Some(f) = &res.freshness {
        println!("{}", serde_json::json!({ "freshness": f }));
    }
    Ok(())
}

/// `vigil verify`: prints differences; exits 1 when there are any (after `--repair`, when
/// any remain).
fn verify(cli: &Cli, json: bool, repair: bool) -> Result<()> {
    let ask_verify = || -> Result<Vec<crate::verify::Difference>> {
        match ask(cli, Request::Verify, true)? {
            Response::Verify { differences } => Ok(differences),
            _ => bail!("unexpected answer to verify"),
        }
    };
    let index_dir = config::index_dir(cli);
    if repair && let Some(response) = client::ask(&index_dir, &Request::Repair)? {
        // The process that owns the index repairs it (a watcher never has to stop for this).
        let Response::Verify { differences } = response else {
            bail!("unexpected answer to repair")
        };
        return report_differences(&differences, json);
    }
    let mut differences = ask_verify()?;
    if repair && !differences.is_empty() {
        if !json {
            output::differences(&differences, false)?;
            println!("repairing {} differences", differences.len());
        }
        repair_index(cli, &differences)?;
        differences = ask_verify()?;
    }
    report_differences(&differences, json)
}

/// Prints differences; exits 1 when there are any.
fn report_differences(differences: &[crate::verify::Difference], json: bool) -> Result<()> {
    output::differences(differences, json)?;
    if !differences.is_empty() {
        if !json {
            eprintln!(
                "vigil: {} differences between the index and the disk",
                differences.len()
            );
        }
        std::process::exit(1);
    }
    if !json {
        println!("the index equals the disk");
    }
    Ok(())
}

/// Forgets every path that differs, then reconciles the stored roots: the differing files are
/// indexed again from disk (embeddings from the cache).
fn repair_index(cli: &Cli, differences: &[crate::verify::Difference]) -> Result<()> {
    let index_dir = config::index_dir(cli);
    let store = Store::open_read_only(&index_dir)?;
    let settings =
        crate::engine::stored_settings(&store)?.context("this index was never reconciled")?;
    drop(store);
    let (_, file) = config_file(cli)?;
    let settings = Settings {
        roots: settings.roots,
        max_file_size: settings.max_file_size,
        debounce_ms: crate::watch::DEFAULT_DEBOUNCE_MS,
        poll_ms: None,
        workers: file.workers,
        embed_budget: config::embed_budget(&file),
        listen: None,
        listen_public: false,
        s3: settings.s3,
        retention: config::retention(file.retention.as_ref())?,
        documents: settings.documents,
    };
    let mut engine = open_engine(cli, &file, &settings)?;
    engine.repair_paths(&crate::verify::differing_paths(differences))?;
    let remote_errors = index_remotes(&mut engine, &mut ReconcileStats::default())?;
    if !remote_errors.is_empty() {
        bail!("{}", remote_errors.join("\n"));
    }
    if engine.embeddings_enabled() {
        embed_all(&mut engine)?;
    }
    engine.checkpoint()
}

/// `vigil mcp [ROOTS]`: the MCP server on stdio. When no watcher owns the index and roots are
/// given, a `vigil watch` of them runs for the length of the session.
fn mcp(cli: &Cli, paths: &[std::path::PathBuf]) -> Result<()> {
    let index_dir = config::index_dir(cli);
    let owned = if client::get(&index_dir, "/healthz")?.is_none() && !paths.is_empty() {
        Some(SessionWatcher::start(cli, &index_dir, paths)?)
    } else {
        None
    };
    let served = crate::mcp::serve_stdio(index_dir);
    drop(owned);
    served
}

/// A `vigil watch` child for the length of an MCP session: stopped (SIGTERM) when the session
/// ends, and by the kernel if this process dies first.
struct SessionWatcher(std::process::Child);

impl SessionWatcher {
    fn start(cli: &Cli, index_dir: &Path, paths: &[std::path::PathBuf]) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().context("cannot find the vigil binary")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--index").arg(index_dir);
        if cli.no_embed {
            cmd.arg("--no-embed");
        }
        if let Some(tiers) = cli.embed {
            let name = match tiers {
                crate::cli::EmbedArg::Static => "static",
                crate::cli::EmbedArg::Transformer => "transformer",
                crate::cli::EmbedArg::Both => "both",
            };
            cmd.arg("--embed").arg(name);
        }
        if let Some(dir) = &cli.model_dir {
            cmd.arg("--model-dir").arg(dir);
        }
        if let Some(file) = &cli.config {
            cmd.arg("--config").arg(file);
        }
        cmd.args(["watch", "--no-tui"]).args(paths);
        // stdout is the MCP channel: the watcher must never write there.
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only this process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .context("cannot start a watcher for the session")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the session's watcher exited ({status}); its log is above");
            }
            if client::get(index_dir, "/healthz")?.is_some() {
                return Ok(Self(child));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the session's watcher did not start within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SessionWatcher {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn status(cli: &Cli, json: bool) -> Result<()> {
    let Response::Status(s) = ask(cli, Request::Status, false)? else {
        bail!("unexpected answer to status")
    };
    output::status(&s, json)
}

fn history(cli: &Cli, path: Option<&Path>, limit: usize, json: bool) -> Result<()> {
    let path = path.map(|p| {
        if crate::s3::is_remote(p) {
            return p.to_path_buf();
        }
        p.canonicalize()
            .unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf()))
    });
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
    let static_dir = crate::pipeline::distil::static_dir(files);
    if crate::pipeline::distil::is_complete(&static_dir) {
        let model = crate::pipeline::embed_static::StaticEmbedder::load(&static_dir)?;
        println!("static:     {}", model.identity());
        println!("            {}", static_dir.display());
    } else {
        println!("static:     not distilled yet (`vigil model fetch`, or first use)");
    }
    Ok(())
}
