//! The commands that own the index while they run: `index` (once) and `watch` (until
//! stopped), with the socket API answering other terminals meanwhile.

use super::*;

pub(super) fn index(cli: &Cli, flags: &Overrides) -> Result<()> {
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
    let remote_errors = engine.poll_remotes_once(&mut stats, |first| {
        if let Ok(s) = &first.outcome {
            eprintln!(
                "{}: {} objects listed, {} unchanged, {} downloaded ({}), {} deleted, {} skipped, {} failed",
                first.root,
                s.listed,
                s.unchanged,
                s.downloaded,
                output::bytes(s.downloaded_bytes),
                s.deleted,
                s.skipped,
                s.failed
            );
        }
    })?;
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
        let bar = output::ProgressBar::new("embedding", "chunks");
        let computed = engine.embed_all(&bar);
        bar.finish();
        computed?
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

/// What the socket server answers with: read-only handles on the engine's indexes, and for a
/// watcher, the channels to repair and sync through.
pub(super) fn backend(engine: &Engine, watcher: Option<&WatcherLinks>) -> Backend {
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
pub(super) struct WatcherLinks {
    repairs: crossbeam_channel::Sender<crate::engine::Repair>,
    cookies: Arc<crate::service::cookie::Cookies>,
}

pub(super) fn watch(cli: &Cli, flags: &Overrides, no_tui: bool) -> Result<()> {
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
