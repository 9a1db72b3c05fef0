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

/// A running watcher; dropping it stops the watches.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watches: u64,
}

impl Watcher {
    /// Directories under watch when it started (a recursive inotify watch takes one per
    /// directory, ignored ones included).
    pub fn watches(&self) -> u64 {
        self.watches
    }
}

/// Starts recursive watches on `roots`, delivering batches on the returned channel.
///
/// Errors: a root cannot be watched (missing, or the inotify watch limit is reached — the
/// message then names the sysctl to raise).
pub fn start(roots: &[PathBuf], debounce: Duration) -> Result<(Watcher, Receiver<WatchBatch>)> {
    let (tx, rx): (Sender<WatchBatch>, Receiver<WatchBatch>) = crossbeam_channel::unbounded();
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let _ = tx.send(to_batch(result));
    })
    .context("cannot start the file watcher")?;
    for root in roots {
        if !root.exists() {
            // A deleted root is watched again when it comes back (see `service`).
            tracing::warn!(root = %root.display(), "root does not exist (yet): not watched");
            continue;
        }
        debouncer.watch(root, RecursiveMode::Recursive).map_err(|e| {
            let hint = if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                " (the inotify watch limit is reached: raise the sysctl fs.inotify.max_user_watches)"
            } else {
                ""
            };
            anyhow::anyhow!("{}: cannot watch: {e}{hint}", root.display())
        })?;
    }
    let watches = roots
        .iter()
        .filter(|r| r.exists())
        .map(|r| count_dirs(r))
        .sum();
    Ok((
        Watcher {
            _debouncer: debouncer,
            watches,
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
