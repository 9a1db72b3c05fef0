//! s3::poller: when does a bucket root get polled?
//!
//! One thread per root runs [`Poll`]s back to back — never two at once — with the polling
//! interval between the end of one and the start of the next, or an exponential backoff with
//! jitter after failures. Changes go to the engine thread as [`RemoteBatch`]es, each answered
//! before the poll goes on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::Remote;
use super::poll::{ObjectChange, Poll, PollError, PollStats, update};
use crate::metrics::Metrics;
use crate::records::{key_display, now_ms};
use crate::scan::Scanner;
use crate::status::StatusCell;
use crate::store::Store;

/// Longest wait between polls of a failing root (10 min), unless the interval is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The wait before the next poll after `failures` failed polls in a row: the interval when
/// healthy; else exponential backoff with "equal jitter" (AWS Architecture Blog,
/// "Exponential Backoff and Jitter", 2015): a random time between half and all of
/// `interval × 2^failures`, capped at 10 min (or the interval, if longer).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let cap = MAX_BACKOFF.max(interval);
    let full = interval.saturating_mul(1u32 << failures.min(16)).min(cap);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

/// A batch of object changes sent to the engine thread, with where to answer.
pub struct RemoteBatch {
    pub changes: Vec<ObjectChange>,
    pub reply: crossbeam_channel::Sender<Result<(), String>>,
}

/// What a poller thread needs besides its root.
pub struct PollerContext {
    pub store: Arc<Store>,
    pub scanner: Scanner,
    pub metrics: Arc<Metrics>,
    pub status: StatusCell,
    /// Where batches go (the engine thread's loop).
    pub batches: crossbeam_channel::Sender<RemoteBatch>,
    /// Disconnected when the poller must stop.
    pub shutdown: crossbeam_channel::Receiver<()>,
    /// Told once, when the first poll has ended (well or not): the initial reconcile of
    /// this root is over.
    pub first_done: crossbeam_channel::Sender<FirstPoll>,
    /// Requests to poll now (a `sync`); each is answered when a poll that began after it has
    /// ended: `Ok`, or why the poll failed.
    pub poll_now: crossbeam_channel::Receiver<PollNow>,
}

/// How a root's first poll ended.
#[derive(Debug)]
pub struct FirstPoll {
    /// The root, as `s3://bucket/prefix`.
    pub root: String,
    /// What the poll did, or why it failed (redacted).
    pub outcome: std::result::Result<PollStats, String>,
}

/// A request to poll now, answered when a poll that began after it has ended.
pub type PollNow = crossbeam_channel::Sender<std::result::Result<(), String>>;

/// Polls `remote` on a thread until shut down: the first poll at once, then one poll at a
/// time (polls never overlap), each [`next_delay`] after the end of the last.
///
/// Errors: the thread cannot be spawned.
pub fn spawn(remote: Remote, ctx: PollerContext) -> Result<std::thread::JoinHandle<()>> {
    let handle = std::thread::Builder::new()
        .name("vigil-s3-poll".into())
        .spawn(move || {
            let root = key_display(remote.root.as_os_str().as_encoded_bytes());
            let interval = Duration::from_millis(remote.options.poll_interval_ms.max(10));
            let mut failures = 0;
            let mut first = true;
            let mut asked: Vec<PollNow> = Vec::new();
            loop {
                let delay = if first || !asked.is_empty() {
                    Duration::ZERO
                } else {
                    next_delay(interval, failures)
                };
                update(&ctx.status, &root, |r| {
                    r.next_poll_ms = Some(now_ms() + delay.as_millis() as u64)
                });
                crossbeam_channel::select! {
                    recv(ctx.shutdown) -> _ => return,
                    recv(ctx.poll_now) -> request => asked.extend(request.ok()),
                    default(delay) => {}
                }
                asked.extend(ctx.poll_now.try_iter());
                let answering = std::mem::take(&mut asked);
                let mut apply = |changes: Vec<ObjectChange>| -> Result<()> {
                    let (reply, answer) = crossbeam_channel::bounded(1);
                    ctx.batches
                        .send(RemoteBatch { changes, reply })
                        .map_err(|_| anyhow::anyhow!("the engine stopped"))?;
                    answer
                        .recv()
                        .map_err(|_| anyhow::anyhow!("the engine stopped"))?
                        .map_err(anyhow::Error::msg)
                };
                let stop = || {
                    matches!(
                        ctx.shutdown.try_recv(),
                        Err(crossbeam_channel::TryRecvError::Disconnected)
                    )
                };
                let poll = Poll {
                    remote: &remote,
                    store: &ctx.store,
                    scanner: &ctx.scanner,
                    metrics: &ctx.metrics,
                    status: &ctx.status,
                };
                let outcome = match poll.run(&mut apply, &stop) {
                    Ok(stats) => {
                        failures = 0;
                        for reply in answering {
                            let _ = reply.send(Ok(()));
                        }
                        Ok(stats)
                    }
                    Err(PollError::Remote(e)) => {
                        failures += 1;
                        tracing::warn!(root = %root, failures, "poll failed, backing off: {e}");
                        for reply in answering {
                            let _ = reply.send(Err(format!("{root}: the poll failed: {e}")));
                        }
                        Err(e)
                    }
                    Err(PollError::Stopped) => return,
                    Err(PollError::Index(e)) => {
                        tracing::debug!(root = %root, "poller stops: {e:#}");
                        return;
                    }
                };
                if first {
                    first = false;
                    let _ = ctx.first_done.send(FirstPoll {
                        root: root.clone(),
                        outcome,
                    });
                }
            }
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let i = Duration::from_secs(30);
        assert_eq!(next_delay(i, 0), i);
        for _ in 0..50 {
            let d = next_delay(i, 1);
            assert!(
                d >= Duration::from_secs(30) && d <= Duration::from_secs(60),
                "{d:?}"
            );
            let d = next_delay(i, 12);
            assert!(d >= Duration::from_secs(300) && d <= MAX_BACKOFF, "{d:?}");
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| next_delay(i, 3)).collect();
        assert!(spread.len() > 1, "no jitter");
    }
}
