//! service: how does a long-running vigil keep the index in step?
//!
//! Runs the engine on its own thread: an initial reconcile, then a loop that applies watcher
//! batches and feeds the embedding worker, until told to stop. Whoever started it (headless
//! main thread, or the dashboard) only talks to it through channels and the status cell.

mod changes;
pub mod cookie;
mod signals;
mod watchdog;

pub use signals::{Signals, signal_channel, supervise_reloads};

use changes::{apply_changes, poll_ticker, reload, rewatch};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sd_notify::NotifyState;

use anyhow::{Result, bail};
use crossbeam_channel::{Receiver, Sender, select};

use std::path::PathBuf;

use crate::config::Settings;
use crate::engine::{EmbedResult, EmbedWorker, Engine, Priority, ReconcileStats};
use crate::records::HistoryRow;
use crate::status::{Phase, StatusCell};
use crate::watch;

/// How often deleted roots are checked for re-creation.
const ROOT_RECHECK: Duration = Duration::from_secs(1);

/// What the engine thread can be told.
pub enum Control {
    /// Stop after the batch in flight (a long reconcile stops between slices).
    Stop,
    /// Apply new settings: roots, globs, size limit, debounce.
    Reload(Box<Settings>),
}

/// A running engine thread.
pub struct Service {
    control: Sender<Control>,
    cancel: Arc<AtomicBool>,
    finished: Receiver<()>,
    handle: JoinHandle<Result<()>>,
}

/// A cloneable handle to send reloads to a running service.
#[derive(Clone)]
pub struct Reloader(Sender<Control>);

impl Reloader {
    /// Asks the engine to apply `settings` after the batch in flight.
    pub fn reload(&self, settings: Settings) {
        let _ = self.0.send(Control::Reload(Box::new(settings)));
    }
}

impl Service {
    /// Disconnects when the engine thread has ended (on its own, after an error).
    pub fn finished(&self) -> &Receiver<()> {
        &self.finished
    }

    /// A handle for reloading the settings.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.control.clone())
    }

    /// Asks the engine to stop after the batch in flight (a long reconcile stops at its next
    /// slice), waits, and returns its result.
    pub fn stop(self) -> Result<()> {
        self.cancel.store(true, Ordering::Release);
        let _ = self.control.send(Control::Stop);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?
    }
}

/// What the API asks of the engine loop: repairs, and sync cookies to note as applied.
pub struct Requests {
    pub repairs: Receiver<crate::engine::Repair>,
    pub cookies: Arc<cookie::Cookies>,
}

/// Starts watching the engine's roots and runs the engine on a thread. Applied changes are
/// also sent to `activity` (dropped when the receiver lags).
///
/// Errors: the watches cannot be set up (see [`watch::start`]).
pub fn start(
    mut engine: Engine,
    debounce: Duration,
    mode: watch::Mode,
    activity: Option<Sender<HistoryRow>>,
    requests: Requests,
) -> Result<Service> {
    let roots = engine.roots();
    // Watch first, so nothing that changes during the initial reconcile is missed.
    let (watcher, changes) = watch::start(&roots, debounce, mode)?;
    let watches = watcher.watches();
    engine.status().update(|s| s.watches_active = watches);
    if let Some(tx) = activity {
        engine.add_activity(tx);
    }
    let cancel = engine.cancel_flag();
    let (control, control_rx) = crossbeam_channel::unbounded();
    let (finished_tx, finished) = crossbeam_channel::bounded::<()>(0);
    // Fed from the start: the initial reconcile of a big tree may outlast WatchdogSec.
    let (_watchdog_stop, watchdog_stopped) = crossbeam_channel::bounded::<()>(0);
    watchdog::spawn(engine.heartbeat(), watchdog_stopped)?;
    let handle = std::thread::Builder::new()
        .name("vigil-engine".into())
        .spawn(move || {
            let _finished = finished_tx;
            let _watchdog = _watchdog_stop;
            let status = engine.status();
            let result = run(
                &mut engine,
                watcher,
                changes,
                &control_rx,
                &requests,
                debounce,
                mode,
            );
            if let Err(e) = &result {
                tracing::error!("{e:#}");
                status.update(|s| s.last_error = Some(format!("{e:#}")));
                engine.publish(Phase::Error);
            }
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
            tracing::info!("stopping: saving the vector index");
            result.and(engine.checkpoint())
        })?;
    Ok(Service {
        control,
        cancel,
        finished,
        handle,
    })
}

fn run(
    engine: &mut Engine,
    mut watcher: watch::Watcher,
    mut changes: Receiver<watch::WatchBatch>,
    control: &Receiver<Control>,
    requests: &Requests,
    mut debounce: Duration,
    mut mode: watch::Mode,
) -> Result<()> {
    let (repairs, cookies) = (&requests.repairs, &*requests.cookies);
    let status = engine.status();
    tracing::info!(roots = ?engine.roots(), buckets = ?engine.remote_roots(), "watching; initial reconcile");
    engine.publish(Phase::Scanning);
    let _ = sd_notify::notify(&[NotifyState::Status("initial reconcile")]);
    let started = crate::records::now_ms();
    let stats = engine.reconcile(&engine.roots(), &())?;
    status.update(|s| s.applied_ms = started);
    log_batch("initial reconcile", &stats);
    if engine.cancelled() {
        return Ok(());
    }
    // Buckets are polled on their own threads: a slow or unreachable one never holds up the
    // folders. The initial reconcile (and READY=1) ends when each has been polled once.
    let mut pollers = start_pollers(engine, cookies)?;
    let mut embed = EmbedWorker::start(engine, Priority::Background)?;
    let heartbeat = engine.heartbeat();
    engine.collect_garbage()?;
    let gc_tick = crossbeam_channel::tick(crate::engine::GC_INTERVAL);
    let mut poll_tick = poll_ticker(&watcher);
    // Roots whose watch died (the root itself was deleted or moved): checked once a second,
    // watched again when they exist. A root re-created before the check is caught too.
    let mut unwatched: Vec<PathBuf> = Vec::new();
    loop {
        if !engine.is_live() && pollers.awaiting == 0 {
            engine.set_live();
            engine.publish(settled(engine));
            notify_ready(engine);
        }
        for root in engine.roots() {
            if !root.exists() && !unwatched.contains(&root) {
                unwatched.push(root);
            }
        }
        let missing = unwatched.clone();
        let retry = match engine.next_retry() {
            Some(t) => crossbeam_channel::at(t),
            None => crossbeam_channel::never(),
        };
        let recheck = if missing.is_empty() {
            crossbeam_channel::never()
        } else {
            crossbeam_channel::after(ROOT_RECHECK)
        };
        if let Some(worker) = &mut embed {
            worker.feed(engine)?;
        }
        // Embedding paused after a failure: wake when it may run again.
        let embed_resume = match (&embed, engine.embed_resumes_at()) {
            (Some(worker), Some(t)) if !worker.is_busy() => crossbeam_channel::at(t),
            _ => crossbeam_channel::never(),
        };
        let done = embed
            .as_ref()
            .map(EmbedWorker::results)
            .unwrap_or_else(crossbeam_channel::never);
        // Idle while waiting: the watchdog is fed whatever the wait; once awake, only while
        // the work advances.
        heartbeat.set_idle(true);
        let wake = select! {
            recv(pollers.first_done) -> _ => Wake::PolledOnce,
            recv(pollers.batches) -> batch => Wake::Objects(batch.ok()),
            recv(changes) -> batch => Wake::Changes(batch.ok()),
            recv(done) -> result => Wake::Embedded(result.ok()),
            recv(embed_resume) -> _ => Wake::EmbedResume,
            recv(control) -> msg => Wake::Control(msg.ok()),
            recv(repairs) -> repair => Wake::Repair(repair.ok()),
            recv(gc_tick) -> _ => Wake::Collect,
            recv(retry) -> _ => Wake::Retry,
            recv(poll_tick) -> _ => Wake::Poll,
            recv(recheck) -> _ => Wake::RecheckRoots,
        };
        heartbeat.set_idle(false);
        match wake {
            Wake::PolledOnce => pollers.awaiting = pollers.awaiting.saturating_sub(1),
            Wake::Objects(None) => bail!("the object-storage pollers stopped"),
            Wake::Objects(Some(batch)) => {
                match engine.apply_objects(batch.changes) {
                    Ok(stats) => {
                        let _ = batch.reply.send(Ok(()));
                        log_batch("applied objects", &stats);
                        engine.publish(settled(engine));
                    }
                    Err(e) => {
                        let _ = batch.reply.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                }
                notify_status(engine);
            }
            Wake::Changes(None) => bail!("the file watcher stopped"),
            Wake::Changes(Some(first)) => {
                for root in apply_changes(engine, &status, cookies, first, &changes, debounce)? {
                    if !unwatched.contains(&root) {
                        unwatched.push(root);
                    }
                }
                notify_status(engine);
            }
            Wake::Embedded(None) => bail!("the embedding worker stopped"),
            Wake::Embedded(Some(result)) => {
                if let Some(worker) = &mut embed {
                    worker.settle(engine, result)?;
                }
                notify_status(engine);
            }
            Wake::EmbedResume => {}
            Wake::Control(Some(Control::Reload(settings))) => {
                let _ = sd_notify::notify(&[NotifyState::Reloading]);
                debounce = Duration::from_millis(settings.debounce_ms);
                mode = settings.watch_mode();
                drop(pollers);
                (watcher, changes) = reload(engine, watcher, changes, *settings)?;
                pollers = start_pollers(engine, cookies)?;
                poll_tick = poll_ticker(&watcher);
                if engine.is_live() {
                    notify_ready(engine);
                }
            }
            Wake::Control(_) => return Ok(()),
            Wake::Repair(None) => {}
            Wake::Repair(Some(repair)) => {
                match engine.repair_paths(&repair.keys) {
                    Ok(stats) => {
                        log_batch("verify --repair", &stats);
                        let _ = repair.reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = repair.reply.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                }
                engine.publish(settled(engine));
            }
            Wake::Collect => {
                engine.collect_garbage()?;
            }
            Wake::Retry => {
                let due = engine.due_retries();
                let stats = engine.reconcile(&due, &())?;
                log_batch("retried", &stats);
            }
            Wake::Poll => {
                let polled = watcher.polled().to_vec();
                let started = crate::records::now_ms();
                let stats = engine.reconcile(&polled, &())?;
                cookies.note_under(&polled);
                if watcher.watches() == 0 {
                    // Everything is polled: what changed before this poll began is in.
                    status.update(|s| s.applied_ms = s.applied_ms.max(started));
                }
                log_batch("polled", &stats);
                engine.publish(settled(engine));
            }
            Wake::RecheckRoots => {
                let back: Vec<PathBuf> = missing.iter().filter(|r| r.is_dir()).cloned().collect();
                unwatched.retain(|r| !back.contains(r));
                if !back.is_empty() {
                    tracing::info!(roots = ?back, "deleted roots are back: watching and reconciling them");
                    (watcher, changes) = rewatch(engine, watcher, changes, debounce, mode);
                    poll_tick = poll_ticker(&watcher);
                    let stats = engine.reconcile(&back, &())?;
                    log_batch("reconcile of re-created roots", &stats);
                    engine.publish(settled(engine));
                }
            }
        }
    }
}

/// What woke the engine loop (`None`: that channel disconnected).
enum Wake {
    /// A bucket root finished its first poll.
    PolledOnce,
    Objects(Option<crate::s3::poller::RemoteBatch>),
    Changes(Option<watch::WatchBatch>),
    Embedded(Option<EmbedResult>),
    /// Embedding, paused after a failure, may run again.
    EmbedResume,
    Control(Option<Control>),
    Repair(Option<crate::engine::Repair>),
    /// Time for garbage collection.
    Collect,
    /// Transient read failures are due.
    Retry,
    /// Polled roots are due.
    Poll,
    /// Check whether deleted roots are back.
    RecheckRoots,
}

/// Starts the bucket roots' pollers (logging the roots that cannot be polled) and lets a
/// sync reach them.
///
/// Errors: a poller thread cannot be spawned.
fn start_pollers(engine: &Engine, cookies: &cookie::Cookies) -> Result<crate::engine::Pollers> {
    let pollers = engine.start_pollers()?;
    for (root, message) in &pollers.unreachable {
        tracing::error!(root = %root, "cannot poll: {message}");
    }
    cookies.set_buckets(pollers.poll_now.clone());
    Ok(pollers)
}

fn notify_ready(engine: &Engine) {
    let _ = sd_notify::notify(&[NotifyState::Ready]);
    notify_status(engine);
}

fn notify_status(engine: &Engine) {
    let s = engine.snapshot();
    let mut line = format!(
        "{:?}: {} files, {} chunks, {} embeddings pending",
        s.phase, s.files_indexed, s.chunks, s.embeddings_pending
    );
    let failing = s.remotes.iter().filter(|r| r.last_error.is_some()).count();
    if failing > 0 {
        line += &format!(", {failing} bucket roots failing to poll");
    }
    let _ = sd_notify::notify(&[NotifyState::Status(&line)]);
}

/// The phase after a batch: still in the initial reconcile (buckets not polled once yet),
/// catching up on embeddings, or watching.
fn settled(engine: &Engine) -> Phase {
    if !engine.is_live() {
        Phase::Scanning
    } else if engine.embeddings_pending() > 0 {
        Phase::Embedding
    } else {
        Phase::Watching
    }
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
