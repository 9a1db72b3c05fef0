//! s3::poll: what changed in a bucket since the last poll?
//!
//! One poll lists the root's prefix (the client pages through ListObjectsV2, 1000 keys per
//! request) and walks the stored records of the root in the same byte order alongside it: a
//! merge join whose memory is one page of each side, not the bucket. Per object:
//!
//! - same ETag, size and last-modified as stored: nothing (no download);
//! - listed, admitted, not stored or different: downloaded (at most
//!   [`S3Options::downloads`](super::S3Options) at once) and handed to the engine, which
//!   hashes it — an equal blake3 is a `touch` and costs nothing downstream;
//! - stored, not listed (or no longer admitted by the filters): deleted.
//!
//! Changes go to the engine in batches of [`BATCH_OBJECTS`] objects or [`BATCH_BYTES`]; a
//! poll that fails half-way has applied what it had and deletes nothing it did not list past.
//! A download that fails for a reason that may pass (network, 5xx) leaves that object's
//! record as it was — the others go on, the poll reports the failure and backs off — unless
//! [`MAX_FAILED_IN_A_ROW`] fail in a row: then the server is the problem and the poll stops.

use std::collections::VecDeque;
use std::path::PathBuf;

use std::time::Instant;

use anyhow::Result;
use futures::StreamExt;
use object_store::ObjectMeta;
use serde::Serialize;

use super::{Download, Remote};
use crate::metrics::Metrics;
use crate::records::{FileRecord, FileState, Seen, key_display, now_ms};
use crate::scan::Scanner;
use crate::status::{RemoteState, RemoteStatus, StatusCell};
use crate::store::Store;

/// Objects per batch handed to the engine.
pub const BATCH_OBJECTS: usize = 64;
/// Downloaded bytes per batch handed to the engine (64 MiB).
pub const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Stored records read per page of the merge join.
const STORE_PAGE: usize = 1024;
/// Downloads failing in a row (network errors, 5xx) after which a poll gives up: the
/// server, not one object, is the problem.
pub const MAX_FAILED_IN_A_ROW: u32 = 8;

/// One change of one object, for the engine to apply.
pub enum ObjectChange {
    /// New or changed content, downloaded.
    Content {
        key: Vec<u8>,
        seen: Seen,
        bytes: Vec<u8>,
    },
    /// Listed and admitted, but not indexed (e.g. larger than the size limit).
    Skipped {
        key: Vec<u8>,
        seen: Seen,
        reason: String,
    },
    /// This object (only) could not be downloaded, e.g. access denied to it.
    Failed {
        key: Vec<u8>,
        seen: Seen,
        reason: String,
    },
    /// Gone from the listing, or no longer admitted by the filters.
    Deleted { key: Vec<u8> },
}

/// What one poll saw and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollStats {
    /// Objects in the listing (admitted or not).
    pub listed: u64,
    /// Objects whose ETag, size and last-modified matched the store.
    pub unchanged: u64,
    pub downloaded: u64,
    /// Bytes.
    pub downloaded_bytes: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Why a poll stopped.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The object store failed (network, 5xx, throttling, credentials): back off, retry.
    #[error("{0}")]
    Remote(String),
    /// The index failed (or the engine stopped): not retried.
    #[error("{0:#}")]
    Index(anyhow::Error),
    /// `stop` said so: nothing to report, the poll simply ends.
    #[error("stopped")]
    Stopped,
}

/// Applies one batch of changes (the engine, directly or through its thread).
pub type Apply<'a> = dyn FnMut(Vec<ObjectChange>) -> Result<()> + 'a;

/// Says whether the poll must end now (shutdown, or the poller replaced by a reload); it is
/// asked before each listed object and each finished download.
pub type Stop<'a> = dyn Fn() -> bool + 'a;

/// One poll of one root: what it reads (the root, the store, the filters) and where it
/// reports (metrics, status).
pub struct Poll<'a> {
    pub remote: &'a Remote,
    /// Read only: the engine applies the changes.
    pub store: &'a Store,
    pub scanner: &'a Scanner,
    pub metrics: &'a Metrics,
    pub status: &'a StatusCell,
}

impl Poll<'_> {
    /// Lists the root, diffs it against the store, downloads what changed, and hands the
    /// changes to `apply` in batches. Updates the root's entry in the status and the metrics.
    ///
    /// Errors: [`PollError::Remote`] when listing or a download fails for a reason that is
    /// not the object's own (the message is redacted: no credentials); [`PollError::Index`]
    /// when `apply` fails; [`PollError::Stopped`] when `stop` says so (status and metrics
    /// untouched).
    pub fn run(&self, apply: &mut Apply<'_>, stop: &Stop<'_>) -> Result<PollStats, PollError> {
        let (remote, metrics, status) = (self.remote, self.metrics, self.status);
        let root = key_display(remote.root.as_os_str().as_encoded_bytes());
        update(status, &root, |r| r.state = RemoteState::Polling);
        let started = Instant::now();
        let result = remote.block_on(self.list_and_apply(apply, stop));
        Metrics::time(&metrics.s3_poll_seconds, started.elapsed());
        match &result {
            Ok(stats) => {
                metrics.s3_poll("ok");
                let changed = stats.downloaded + stats.deleted + stats.skipped + stats.failed;
                if changed > 0 {
                    tracing::info!(root = %root, listed = stats.listed, unchanged = stats.unchanged, downloaded = stats.downloaded, bytes = stats.downloaded_bytes, deleted = stats.deleted, skipped = stats.skipped, failed = stats.failed, "polled");
                } else {
                    tracing::debug!(root = %root, listed = stats.listed, "polled: nothing changed");
                }
                update(status, &root, |r| {
                    r.state = RemoteState::Idle;
                    r.polls += 1;
                    r.failures = 0;
                    r.last_ok_ms = Some(now_ms());
                    r.last_error = None;
                    r.objects = stats.listed;
                    r.downloads += stats.downloaded;
                });
            }
            Err(PollError::Stopped) => {}
            Err(e) => {
                metrics.s3_poll("error");
                metrics.error("s3");
                let message = e.to_string();
                update(status, &root, |r| {
                    r.state = RemoteState::BackingOff;
                    r.polls += 1;
                    r.failures += 1;
                    r.last_error = Some(message.clone());
                });
            }
        }
        result
    }

    async fn list_and_apply(
        &self,
        apply: &mut Apply<'_>,
        stop: &Stop<'_>,
    ) -> Result<PollStats, PollError> {
        let (remote, scanner, metrics) = (self.remote, self.scanner, self.metrics);
        let mut stats = PollStats::default();
        let limit = scanner.max_file_size();
        let root_key = remote.root.as_os_str().as_encoded_bytes().to_vec();
        let mut stored = StoredCursor::new(self.store, root_key);
        let mut listing = super::Listing::new(remote);
        let mut pending = Pending::default();
        let mut last: Option<Vec<u8>> = None;
        while let Some(item) = listing.next().await {
            if stop() {
                return Err(PollError::Stopped);
            }
            let meta = item.map_err(PollError::Remote)?;
            stats.listed += 1;
            metrics.s3_objects_listed.inc();
            let key = remote.url.object_key(meta.location.as_ref());
            // Stored records before this key were not listed: deleted.
            while let Some(k) = stored.next_before(&key, last.as_deref())? {
                pending.changes.push(ObjectChange::Deleted { key: k });
                stats.deleted += 1;
                if pending.full() {
                    pending.flush(self, &mut stats, apply, stop).await?;
                }
            }
            let record = stored.take_equal(&key, last.as_deref())?;
            last = Some(key.clone());
            let path = PathBuf::from(key_display(&key));
            if !scanner.admits_object(&remote.root, &path) {
                if record.is_some() {
                    pending.changes.push(ObjectChange::Deleted { key });
                    stats.deleted += 1;
                }
                continue;
            }
            let seen = seen(&meta);
            if record.as_ref().is_some_and(|r| unchanged(r, &seen, limit)) {
                stats.unchanged += 1;
                continue;
            }
            if seen.size > limit {
                let reason = format!(
                    "larger than the size limit ({} bytes > {limit} bytes)",
                    seen.size
                );
                pending
                    .changes
                    .push(ObjectChange::Skipped { key, seen, reason });
                stats.skipped += 1;
            } else {
                pending.bytes += seen.size;
                pending.fetch.push((key, meta));
            }
            if pending.full() {
                pending.flush(self, &mut stats, apply, stop).await?;
            }
        }
        // Every stored key sorts before 0xFF (keys start with "s3://"): the rest are deleted.
        while let Some(k) = stored.next_before(&[0xFF], last.as_deref())? {
            pending.changes.push(ObjectChange::Deleted { key: k });
            stats.deleted += 1;
            if pending.full() {
                pending.flush(self, &mut stats, apply, stop).await?;
            }
        }
        pending.flush(self, &mut stats, apply, stop).await?;
        match pending.first_error {
            // Everything else is applied; the failed objects keep their indexed content and are
            // downloaded again by the next poll, after a backoff.
            Some(e) => Err(PollError::Remote(format!(
                "{} objects could not be downloaded (they keep their indexed content), e.g.: {e}",
                pending.failed
            ))),
            None => Ok(stats),
        }
    }
}

/// Sets fields of `root`'s entry in the status, creating it if needed.
pub fn update(status: &StatusCell, root: &str, f: impl FnOnce(&mut RemoteStatus)) {
    status.update(|s| {
        let i = match s.remotes.iter().position(|r| r.root == root) {
            Some(i) => i,
            None => {
                s.remotes.push(RemoteStatus {
                    root: root.to_string(),
                    ..Default::default()
                });
                s.remotes.len() - 1
            }
        };
        f(&mut s.remotes[i]);
    });
}

/// Changes and downloads waiting to be handed to the engine.
#[derive(Default)]
struct Pending {
    changes: Vec<ObjectChange>,
    fetch: Vec<(Vec<u8>, ObjectMeta)>,
    /// Listed bytes of `fetch`.
    bytes: u64,
    /// Downloads that failed for reasons that may pass (network, 5xx): in total, in a row,
    /// and the first reason.
    failed: u64,
    failed_in_a_row: u32,
    first_error: Option<String>,
}

impl Pending {
    fn full(&self) -> bool {
        self.changes.len() + self.fetch.len() >= BATCH_OBJECTS || self.bytes >= BATCH_BYTES
    }

    /// Downloads what is to fetch (bounded concurrency) and applies everything pending.
    async fn flush(
        &mut self,
        poll: &Poll<'_>,
        stats: &mut PollStats,
        apply: &mut Apply<'_>,
        stop: &Stop<'_>,
    ) -> Result<(), PollError> {
        let fetch = std::mem::take(&mut self.fetch);
        self.bytes = 0;
        let (remote, metrics) = (poll.remote, poll.metrics);
        let mut downloads = futures::stream::iter(fetch)
            .map(|(key, meta)| async move {
                match remote.download(&meta).await {
                    Download::Bytes { meta, bytes } => Ok(ObjectChange::Content {
                        key,
                        seen: seen(&meta),
                        bytes,
                    }),
                    Download::Vanished => Ok(ObjectChange::Deleted { key }),
                    // This object's own problem: recorded as failed, the others go on.
                    Download::Refused(reason) => Ok(ObjectChange::Failed {
                        key,
                        seen: seen(&meta),
                        reason,
                    }),
                    Download::Failed(e) => Err(e),
                }
            })
            .buffer_unordered(remote.options.downloads.max(1));
        let mut result = Ok(());
        while let Some(outcome) = downloads.next().await {
            if stop() {
                return Err(PollError::Stopped);
            }
            let change = match outcome {
                Ok(change) => {
                    self.failed_in_a_row = 0;
                    change
                }
                // One object's failure does not stop the others; many in a row stop the poll.
                Err(e) => {
                    stats.failed += 1;
                    self.failed += 1;
                    self.failed_in_a_row += 1;
                    if self.failed_in_a_row >= MAX_FAILED_IN_A_ROW {
                        result = Err(PollError::Remote(e));
                        break;
                    }
                    self.first_error.get_or_insert(e);
                    continue;
                }
            };
            match &change {
                ObjectChange::Content { bytes, .. } => {
                    stats.downloaded += 1;
                    stats.downloaded_bytes += bytes.len() as u64;
                    metrics.s3_downloads.inc();
                    metrics.s3_download_bytes.inc_by(bytes.len() as u64);
                }
                ObjectChange::Deleted { .. } => stats.deleted += 1,
                ObjectChange::Failed { .. } => stats.failed += 1,
                ObjectChange::Skipped { .. } => stats.skipped += 1,
            }
            self.changes.push(change);
        }
        drop(downloads);
        let changes = std::mem::take(&mut self.changes);
        if !changes.is_empty() {
            apply(changes).map_err(PollError::Index)?;
        }
        result
    }
}

/// Whether a stored record still describes a listed object: same ETag, size and
/// last-modified, and nothing to retry (failed) or re-judge (skipped by a size limit that
/// no longer excludes it).
fn unchanged(rec: &FileRecord, seen: &Seen, limit: u64) -> bool {
    let same = rec.etag == seen.etag && rec.size == seen.size && rec.mtime_ns == seen.mtime_ns;
    same && match rec.state {
        FileState::Indexed => true,
        FileState::Skipped => rec.hash.is_some() || seen.size > limit,
        FileState::Failed => false,
    }
}

fn seen(meta: &ObjectMeta) -> Seen {
    Seen {
        size: meta.size,
        mtime_ns: meta
            .last_modified
            .timestamp_nanos_opt()
            .map(i128::from)
            .unwrap_or(meta.last_modified.timestamp() as i128 * 1_000_000_000),
        etag: meta.e_tag.clone(),
    }
}

/// The stored records of one root, read a page at a time in key order.
struct StoredCursor<'a> {
    store: &'a Store,
    root: Vec<u8>,
    page: VecDeque<(Vec<u8>, FileRecord)>,
    /// The last key read from the store.
    read_upto: Option<Vec<u8>>,
    exhausted: bool,
}

impl<'a> StoredCursor<'a> {
    fn new(store: &'a Store, root: Vec<u8>) -> Self {
        Self {
            store,
            root,
            page: VecDeque::new(),
            read_upto: None,
            exhausted: false,
        }
    }

    /// The next stored record, reading a page when needed. Records at or before `floor`
    /// (the last listed key) are skipped: the engine may have just written them.
    fn peek(&mut self, floor: Option<&[u8]>) -> Result<Option<&(Vec<u8>, FileRecord)>, PollError> {
        while let Some((k, _)) = self.page.front() {
            if floor.is_some_and(|f| k.as_slice() <= f) {
                self.page.pop_front();
            } else {
                break;
            }
        }
        if self.page.is_empty() && !self.exhausted {
            let after = match (self.read_upto.as_deref(), floor) {
                (Some(a), Some(f)) => Some(a.max(f)),
                (a, f) => a.or(f),
            };
            let page = self
                .store
                .files_page(&self.root, after, STORE_PAGE)
                .map_err(PollError::Index)?;
            self.exhausted = page.len() < STORE_PAGE;
            if let Some((k, _)) = page.last() {
                self.read_upto = Some(k.clone());
            }
            self.page.extend(page);
        }
        Ok(self.page.front())
    }

    /// The next stored key sorting before `key`, if any (consumed).
    fn next_before(
        &mut self,
        key: &[u8],
        floor: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, PollError> {
        let before = self.peek(floor)?.is_some_and(|(k, _)| k.as_slice() < key);
        Ok(if before {
            self.page.pop_front().map(|(k, _)| k)
        } else {
            None
        })
    }

    /// The stored record of exactly `key`, if any (consumed).
    fn take_equal(
        &mut self,
        key: &[u8],
        floor: Option<&[u8]>,
    ) -> Result<Option<FileRecord>, PollError> {
        let equal = self.peek(floor)?.is_some_and(|(k, _)| k.as_slice() == key);
        Ok(if equal {
            self.page.pop_front().map(|(_, r)| r)
        } else {
            None
        })
    }
}
