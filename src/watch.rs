//! watch: what changed on disk?
//!
//! Recursive native watches (inotify on Linux) through `notify`, debounced and settled by
//! `notify-debouncer-full`, which also pairs the two halves of a rename. The watcher only
//! produces [`WatchBatch`]es of dirty paths; it never reads files or indexes anything.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// Default quiet time before a burst of events is delivered, ms.
pub const DEFAULT_DEBOUNCE_MS: u64 = 300;

/// One debounced delivery of changes.
#[derive(Debug, Default)]
pub struct WatchBatch {
    /// Paths (files or directories) that may differ from the index.
    pub paths: Vec<PathBuf>,
    /// The kernel queue overflowed or the backend asked for a rescan: the roots must be
    /// reconciled in full.
    pub rescan: bool,
    /// Events in this delivery (after debouncing merged them).
    pub events: u64,
    /// The kind of each event: create, modify, remove, rename, access, other, rescan.
    pub kinds: Vec<&'static str>,
    /// Watch errors, with their paths.
    pub errors: Vec<String>,
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// inotify, falling back to polling for roots it cannot cover.
    Native,
    /// Poll every root at this interval (for network filesystems and the like).
    Poll(Duration),
}

/// Polling interval when native watching fails and vigil falls back.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// A running watcher; dropping it stops the watches.
pub struct Watcher {
    _native: Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>,
    /// Keeps the channel open when nothing is watched natively (all roots polled).
    _tx: Sender<WatchBatch>,
    watches: u64,
    polled: Vec<PathBuf>,
    interval: Duration,
}

impl Watcher {
    /// Directories under watch when it started (a recursive inotify watch takes one per
    /// directory, ignored ones included).
    pub fn watches(&self) -> u64 {
        self.watches
    }

    /// Roots watched by polling: the service reconciles them every [`Watcher::interval`].
    /// Polling is vigil's own reconcile (size and ns mtime, then blake3), not notify's
    /// PollWatcher, whose one-second mtime misses a change made in the same second.
    pub fn polled(&self) -> &[PathBuf] {
        &self.polled
    }

    /// How often polled roots are reconciled.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// Starts recursive watches on `roots`, delivering batches on the returned channel. Roots
/// that do not exist are skipped (the service watches them again when they come back). In
/// [`Mode::Native`], a root inotify cannot cover (the watch limit, an unsupported
/// filesystem) is polled every [`FALLBACK_POLL`] instead, with an error that names the cause;
/// in [`Mode::Poll`] every root is polled.
///
/// Errors: the watcher threads cannot start.
pub fn start(
    roots: &[PathBuf],
    debounce: Duration,
    mode: Mode,
) -> Result<(Watcher, Receiver<WatchBatch>)> {
    let (tx, rx): (Sender<WatchBatch>, Receiver<WatchBatch>) = crossbeam_channel::unbounded();
    let existing: Vec<&PathBuf> = roots
        .iter()
        .filter(|r| {
            let ok = r.exists();
            if !ok {
                // A deleted root is watched again when it comes back (see `service`).
                tracing::warn!(root = %r.display(), "root does not exist (yet): not watched");
            }
            ok
        })
        .collect();
    let mut to_poll: Vec<PathBuf> = Vec::new();
    let mut native = None;
    let mut watches = 0;
    match mode {
        Mode::Poll(_) => to_poll = existing.iter().map(|r| r.to_path_buf()).collect(),
        Mode::Native => {
            let sender = tx.clone();
            // The debouncer checks for settled paths once per tick: a path is handed over
            // between `debounce` and `debounce + tick` after its last event. Its default tick
            // (debounce / 4) adds ~37 ms on average at 300 ms; debounce / 10 adds ~15 ms, for
            // a wake-up every 30 ms (benches/latency.rs).
            let tick = tick(debounce);
            let mut debouncer =
                new_debouncer(debounce, Some(tick), move |result: DebounceEventResult| {
                    let _ = sender.send(to_batch(result));
                })
                .context("cannot start the file watcher")?;
            for root in &existing {
                match debouncer.watch(root, RecursiveMode::Recursive) {
                    Ok(()) => watches += count_dirs(root),
                    Err(e) => {
                        let hint = if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                            " (the inotify watch limit is reached: raise the sysctl fs.inotify.max_user_watches)"
                        } else {
                            ""
                        };
                        tracing::error!(
                            "{}: cannot watch natively: {e}{hint}; polling it every {} s instead",
                            root.display(),
                            FALLBACK_POLL.as_secs()
                        );
                        to_poll.push(root.to_path_buf());
                    }
                }
            }
            native = Some(debouncer);
        }
    }
    let interval = match mode {
        Mode::Poll(d) => d,
        Mode::Native => FALLBACK_POLL,
    };
    Ok((
        Watcher {
            _native: native,
            _tx: tx,
            watches,
            polled: to_poll,
            interval,
        },
        rx,
    ))
}

fn kind_name(event: &notify::Event) -> &'static str {
    if event.need_rescan() {
        return "rescan";
    }
    match event.kind {
        EventKind::Create(_) => "create",
        EventKind::Modify(ModifyKind::Name(_)) => "rename",
        EventKind::Modify(_) => "modify",
        EventKind::Remove(_) => "remove",
        EventKind::Access(_) => "access",
        _ => "other",
    }
}

fn count_dirs(root: &std::path::Path) -> u64 {
    ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_dir()))
        .count() as u64
}

/// Whether an event can change what is indexed. Opening or reading a file or directory (as
/// vigil itself does when it hashes or lists) cannot, and must not trigger work.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

fn to_batch(result: DebounceEventResult) -> WatchBatch {
    let mut batch = WatchBatch::default();
    match result {
        Ok(events) => {
            for e in events {
                tracing::trace!(kind = ?e.event.kind, paths = ?e.event.paths, "event");
                batch.events += 1;
                batch.kinds.push(kind_name(&e.event));
                batch.rescan |= e.event.need_rescan();
                if changes_content(&e.event.kind) {
                    batch.paths.extend(e.event.paths.iter().cloned());
                }
            }
        }
        Err(errors) => {
            for e in errors {
                batch.rescan |= matches!(e.kind, notify::ErrorKind::MaxFilesWatch);
                batch.errors.push(format!("{e} ({:?})", e.paths));
            }
        }
    }
    batch
}

/// How often the debouncer looks for settled paths: a path is handed over between `debounce`
/// and `debounce` + this after its last event.
pub fn tick(debounce: Duration) -> Duration {
    (debounce / 10).max(Duration::from_millis(5)).min(debounce)
}
