//! What the engine loop does with the file watcher: apply its debounced batches, watch the
//! roots again after a reload or a re-created root, and tick for polled roots.

use super::*;

/// Applies new settings: the engine's roots and filters, then new watches, then a reconcile
/// of every root so that added roots are indexed and changed filters take effect.
pub(super) fn reload(
    engine: &mut Engine,
    old: watch::Watcher,
    old_changes: Receiver<watch::WatchBatch>,
    settings: Settings,
) -> Result<(watch::Watcher, Receiver<watch::WatchBatch>)> {
    tracing::info!(roots = ?settings.roots.iter().map(|r| &r.path).collect::<Vec<_>>(), "reloading the configuration");
    engine.reconfigure(&settings.roots, settings.max_file_size, &settings.s3)?;
    engine.set_retention(settings.retention);
    let remotes: Vec<String> = engine
        .remote_roots()
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    engine
        .status()
        .update(|s| s.remotes.retain(|r| remotes.contains(&r.root)));
    let roots = engine.roots();
    let debounce = Duration::from_millis(settings.debounce_ms);
    let (watcher, changes) = rewatch(engine, old, old_changes, debounce, settings.watch_mode());
    engine.publish(Phase::Scanning);
    let stats = engine.reconcile(&roots, &())?;
    log_batch("reconcile after reload", &stats);
    engine.publish(settled(engine));
    Ok((watcher, changes))
}

/// Ticks at the polling interval when some roots are polled; never otherwise.
pub(super) fn poll_ticker(watcher: &watch::Watcher) -> Receiver<std::time::Instant> {
    if watcher.polled().is_empty() {
        crossbeam_channel::never()
    } else {
        crossbeam_channel::tick(watcher.interval())
    }
}

/// New watches on the engine's current roots (the old ones stay if that fails).
pub(super) fn rewatch(
    engine: &Engine,
    old: watch::Watcher,
    old_changes: Receiver<watch::WatchBatch>,
    debounce: Duration,
    mode: watch::Mode,
) -> (watch::Watcher, Receiver<watch::WatchBatch>) {
    let (watcher, changes) = match watch::start(&engine.roots(), debounce, mode) {
        Ok(w) => {
            drop(old);
            w
        }
        Err(e) => {
            tracing::error!("cannot watch the roots, keeping the old watches: {e:#}");
            (old, old_changes)
        }
    };
    let watches = watcher.watches();
    engine.status().update(|s| s.watches_active = watches);
    (watcher, changes)
}

/// Applies one watcher delivery (plus any already queued behind it) as one reconcile.
pub(super) fn apply_changes(
    engine: &mut Engine,
    status: &StatusCell,
    cookies: &cookie::Cookies,
    first: watch::WatchBatch,
    changes: &Receiver<watch::WatchBatch>,
    debounce: Duration,
) -> Result<Vec<PathBuf>> {
    // A change is handed over at most `debounce` + one tick after its last event: once this
    // batch is applied, everything that changed before `settled_before` is in.
    let settled_before = crate::records::now_ms()
        .saturating_sub((debounce + watch::tick(debounce)).as_millis() as u64);
    let roots = engine.roots();
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
        paths = roots.clone();
    }
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // A cookie alone needs no reconcile (it is never indexed).
    if !rescan && paths.iter().all(|p| cookie::is_cookie(p)) {
        cookies.note(&paths);
        status.update(|s| s.applied_ms = s.applied_ms.max(settled_before));
        return Ok(Vec::new());
    }
    // An event on a root itself means its watch is gone (deleted, moved away).
    let dead_roots: Vec<PathBuf> = roots
        .iter()
        .filter(|r| paths.contains(r))
        .cloned()
        .collect();
    let stats = engine.reconcile(&paths, &())?;
    if rescan {
        cookies.note_under(&roots);
    } else {
        cookies.note(&paths);
    }
    let waiting = changes.len() as u64;
    status.update(|s| {
        s.queue_depth = waiting;
        s.applied_ms = s.applied_ms.max(settled_before);
    });
    log_batch("applied batch", &stats);
    engine.publish(settled(engine));
    Ok(dead_roots)
}
