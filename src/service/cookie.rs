//! Read-your-writes: watchman's cookie technique. To know that every change made before a
//! moment has been applied, write a uniquely named file (a cookie) in each watched root and
//! wait until the engine has applied the batch that carries it. The watcher hands over events
//! in order (a path settles `debounce` after its last event), so changes made before the
//! cookie are applied in its batch or an earlier one. Cookies are hidden files: never indexed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// File-name prefix of cookies (hidden, so the scanner never admits them).
pub const COOKIE_PREFIX: &str = ".vigil-cookie-";

/// Cookies written and not yet seen applied; shared by the API (writers) and the engine loop.
#[derive(Default)]
pub struct Cookies {
    pending: Mutex<HashSet<PathBuf>>,
    applied: Condvar,
    next: AtomicU64,
    /// One per bucket root: asks its poller to poll now (replaced when pollers restart).
    buckets: Mutex<Vec<crossbeam_channel::Sender<crate::s3::poller::PollNow>>>,
}

impl Cookies {
    /// The engine applied a batch with these paths: cookies among them are seen.
    pub fn note(&self, paths: &[PathBuf]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.len();
        for p in paths {
            pending.remove(p);
        }
        if pending.len() != before {
            self.applied.notify_all();
        }
    }

    /// The engine reconciled these roots in full (a rescan, a poll): every cookie under them
    /// is seen.
    pub fn note_under(&self, roots: &[PathBuf]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.len();
        pending.retain(|c| !roots.iter().any(|r| c.starts_with(r)));
        if pending.len() != before {
            self.applied.notify_all();
        }
    }

    /// The pollers of the bucket roots now running (a sync asks each to poll at once).
    pub fn set_buckets(&self, pollers: Vec<crossbeam_channel::Sender<crate::s3::poller::PollNow>>) {
        *self.buckets.lock().unwrap_or_else(|p| p.into_inner()) = pollers;
    }

    /// Writes a cookie in each root and waits until all are applied, and has every bucket
    /// root polled (a poll that begins after this call, its changes applied), at most
    /// `timeout` in all. Returns how long it took.
    ///
    /// Errors: a root where no cookie can be written (with the reason), a poll that failed,
    /// or the timeout (the watcher is behind or stuck; the answer would not include the
    /// latest changes).
    pub fn sync(&self, roots: &[PathBuf], timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let polls: Vec<_> = self
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|poller| {
                let (reply, done) = crossbeam_channel::bounded(1);
                poller.send(reply).ok().map(|_| done)
            })
            .collect();
        self.sync_folders(roots, timeout)?;
        for done in polls {
            let left = (started + timeout).saturating_duration_since(Instant::now());
            match done.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => bail!("sync: {why}"),
                Err(_) => {
                    bail!("sync timed out after {timeout:?}: a bucket root has not been polled yet")
                }
            }
        }
        Ok(started.elapsed())
    }

    fn sync_folders(&self, roots: &[PathBuf], timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut written = Vec::new();
        for root in roots.iter().filter(|r| r.is_dir()) {
            let cookie = root.join(format!("{COOKIE_PREFIX}{}-{n}", std::process::id()));
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(cookie.clone());
            if let Err(e) = std::fs::write(&cookie, b"") {
                self.forget(&written);
                self.forget(std::slice::from_ref(&cookie));
                return Err(e)
                    .with_context(|| format!("{}: cannot write a sync cookie", root.display()));
            }
            written.push(cookie);
        }
        let deadline = started + timeout;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while written.iter().any(|c| pending.contains(c)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                for c in &written {
                    pending.remove(c);
                }
                drop(pending);
                remove(&written);
                bail!(
                    "sync timed out after {timeout:?}: the watcher has not applied the changes \
                     made before this call (it may be busy with a large reconcile)"
                );
            }
            pending = self
                .applied
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(pending);
        remove(&written);
        Ok(started.elapsed())
    }

    fn forget(&self, cookies: &[PathBuf]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in cookies {
            pending.remove(c);
        }
    }
}

fn remove(cookies: &[PathBuf]) {
    for c in cookies {
        let _ = std::fs::remove_file(c);
    }
}

/// Whether `path` is a cookie.
pub fn is_cookie(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(COOKIE_PREFIX))
}
