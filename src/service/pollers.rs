//! The pollers of the object-storage roots, one thread each, seen from the engine loop.

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};

use super::cookie;
use crate::engine::Engine;

/// The pollers of the object-storage roots. Dropping this stops them (at their next wait,
/// or when they next hand the engine a batch).
pub(super) struct Pollers {
    pub(super) batches: Receiver<crate::s3::poller::RemoteBatch>,
    /// Kept so that `batches` never disconnects, also without any poller.
    _batches: Sender<crate::s3::poller::RemoteBatch>,
    /// One message per root whose first poll has ended; kept connected like `batches`.
    pub(super) first_done: Receiver<()>,
    _first_done: Sender<()>,
    /// Roots whose first poll has not ended yet.
    pub(super) awaiting: usize,
    _shutdown: Sender<()>,
}

impl Pollers {
    /// Starts one poller thread per object-storage root; each polls at once, then on its
    /// interval. A root that cannot be set up (e.g. plain http to a remote host, no
    /// credentials) is logged and shown in the status; the others go on.
    ///
    /// Errors: a thread cannot be spawned.
    pub(super) fn start(engine: &Engine, cookies: &cookie::Cookies) -> Result<Self> {
        let (batches_tx, batches) = crossbeam_channel::bounded(1);
        let mut poll_now = Vec::new();
        let (shutdown, shutdown_rx) = crossbeam_channel::bounded::<()>(0);
        let (first_done_tx, first_done) = crossbeam_channel::unbounded();
        let mut awaiting = 0;
        for root in engine.remote_roots() {
            let name = root.to_string_lossy().into_owned();
            let remote = match crate::s3::Remote::connect(&root, engine.s3_options()) {
                Ok(r) => r,
                Err(e) => {
                    let message = crate::s3::redact(&format!("{e:#}"));
                    tracing::error!(root = %name, "cannot poll: {message}");
                    crate::s3::poll::update(&engine.status(), &name, |r| {
                        r.state = crate::status::RemoteState::BackingOff;
                        r.last_error = Some(message);
                    });
                    continue;
                }
            };
            let (now_tx, now_rx) = crossbeam_channel::unbounded();
            poll_now.push(now_tx);
            let ctx = crate::s3::poller::PollerContext {
                store: engine.store(),
                scanner: engine.scanner(),
                metrics: engine.metrics(),
                status: engine.status(),
                batches: batches_tx.clone(),
                shutdown: shutdown_rx.clone(),
                first_done: first_done_tx.clone(),
                poll_now: now_rx,
            };
            crate::s3::poller::spawn(remote, ctx)?;
            awaiting += 1;
        }
        cookies.set_buckets(poll_now);
        Ok(Self {
            batches,
            _batches: batches_tx,
            first_done,
            _first_done: first_done_tx,
            awaiting,
            _shutdown: shutdown,
        })
    }
}
