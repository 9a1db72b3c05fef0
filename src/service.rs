//! service: how does a long-running vigil keep the index in step?
//!
//! Runs the engine on its own thread: an initial reconcile, then a loop that applies watcher
//! batches and feeds the embedding worker, until told to stop. Whoever started it (headless
//! main thread, or the dashboard) only talks to it through channels and the status cell.

use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, Sender, select};

use crate::engine::{Engine, ReconcileStats};
use crate::pipeline::embed::{EMBED_BATCH, Embedder};
use crate::records::HistoryRow;
use crate::status::{Phase, StatusCell};
use crate::watch;

/// A running engine thread.
pub struct Service {
    stop: Sender<()>,
    finished: Receiver<()>,
    handle: JoinHandle<Result<()>>,
}

impl Service {
    /// Disconnects when the engine thread has ended (on its own, after an error).
    pub fn finished(&self) -> &Receiver<()> {
        &self.finished
    }

    /// Asks the engine to stop after the batch in flight, waits, and returns its result.
    pub fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?
    }
}

/// Starts watching the engine's roots and runs the engine on a thread. Applied changes are
/// also sent to `activity` (dropped when the receiver lags).
///
/// Errors: the watches cannot be set up (see [`watch::start`]).
pub fn start(
    mut engine: Engine,
    debounce: Duration,
    activity: Option<Sender<HistoryRow>>,
) -> Result<Service> {
    let roots = engine.roots().to_vec();
    // Watch first, so nothing that changes during the initial reconcile is missed.
    let (watcher, changes) = watch::start(&roots, debounce)?;
    let watches = watcher.watches();
    engine.status().update(|s| s.watches_active = watches);
    if let Some(tx) = activity {
        engine.add_activity(tx);
    }
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    let (finished_tx, finished) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("vigil-engine".into())
        .spawn(move || {
            let _finished = finished_tx;
            let _watcher = watcher;
            let status = engine.status();
            let result = run(&mut engine, &changes, &stop_rx);
            if let Err(e) = &result {
                tracing::error!("{e:#}");
                status.update(|s| s.last_error = Some(format!("{e:#}")));
                engine.publish(Phase::Error);
            }
            tracing::info!("stopping: saving the vector index");
            result.and(engine.checkpoint())
        })?;
    Ok(Service {
        stop,
        finished,
        handle,
    })
}

fn run(
    engine: &mut Engine,
    changes: &Receiver<watch::WatchBatch>,
    stop: &Receiver<()>,
) -> Result<()> {
    let roots = engine.roots().to_vec();
    let status = engine.status();
    tracing::info!(roots = ?roots, "watching; initial reconcile");
    engine.publish(Phase::Scanning);
    let stats = engine.reconcile(&roots, &())?;
    log_batch("initial reconcile", &stats);
    engine.set_live();
    let embed = EmbedWorker::start(engine)?;
    engine.publish(settled(engine));
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
                apply_changes(engine, &status, first, changes, &roots)?;
            }
            recv(done) -> result => {
                in_flight = false;
                match result {
                    Ok(Ok(vectors)) => engine.apply_embeddings(vectors)?,
                    Ok(Err(e)) => {
                        tracing::error!("embedding failed: {e:#}");
                        engine.metrics().error("embed");
                    }
                    Err(_) => bail!("the embedding worker stopped"),
                }
            }
            recv(stop) -> _ => return Ok(()),
        }
    }
}

/// The phase after a batch: catching up on embeddings, or watching.
fn settled(engine: &Engine) -> Phase {
    if engine.embeddings_pending() > 0 {
        Phase::Embedding
    } else {
        Phase::Watching
    }
}

/// Applies one watcher delivery (plus any already queued behind it) as one reconcile.
fn apply_changes(
    engine: &mut Engine,
    status: &StatusCell,
    first: watch::WatchBatch,
    changes: &Receiver<watch::WatchBatch>,
    roots: &[std::path::PathBuf],
) -> Result<()> {
    let metrics = engine.metrics();
    let mut paths = first.paths;
    metrics.debounced_batches.inc();
    first.kinds.iter().for_each(|k| metrics.event(k));
    let mut rescan = first.rescan;
    let mut events = first.events;
    for e in first.errors {
        tracing::warn!("watch error: {e}");
        metrics.error("watch");
    }
    while let Ok(more) = changes.try_recv() {
        paths.extend(more.paths);
        metrics.debounced_batches.inc();
        more.kinds.iter().for_each(|k| metrics.event(k));
        rescan |= more.rescan;
        events += more.events;
        for e in more.errors {
            tracing::warn!("watch error: {e}");
        }
    }
    let depth = paths.len() as u64;
    status.update(|s| {
        s.events_received += events;
        s.queue_depth = depth;
    });
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
    let waiting = changes.len() as u64;
    status.update(|s| s.queue_depth = waiting);
    log_batch("applied batch", &stats);
    engine.publish(settled(engine));
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
        let metrics = engine.metrics();
        let (jobs, job_rx) = crossbeam_channel::bounded::<Vec<crate::engine::EmbedJob>>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("vigil-embed".into())
            .spawn(move || {
                for batch in job_rx {
                    let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
                    let started = std::time::Instant::now();
                    let result = embedder
                        .embed(&texts)
                        .map(|vectors| batch.iter().map(|j| j.hash).zip(vectors).collect());
                    crate::metrics::Metrics::time(&metrics.embed_seconds, started.elapsed());
                    if done_tx.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Some(Self { jobs, done }))
    }
}

/// A channel that receives SIGINT and SIGTERM.
pub fn signal_channel() -> Result<Receiver<i32>> {
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
