//! Pollers: the one driver of object-storage roots. One `s3::poller` thread per bucket root
//! lists and downloads; the engine applies what each hands over ([`Engine::apply_objects`]).
//! A watcher keeps them running in its loop; `vigil index` runs them until each root has
//! been polled once ([`Engine::poll_remotes_once`]).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use crossbeam_channel::{Receiver, Sender};

use super::{Engine, ReconcileStats};
use crate::s3::poller::{FirstPoll, PollNow, RemoteBatch};

/// How often `poll_remotes_once` looks at the stop flag while it waits for a poller.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How long stopping the pollers waits for their threads. A poller ends at its next wait or
/// object; one stuck in a request to a hung server is left behind after this.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// The pollers of the object-storage roots. Dropping this stops them (at their next wait,
/// or when they next hand the engine a batch) and waits for their threads, so none holds the
/// store when the process exits (redb then finds it closed cleanly).
pub struct Pollers {
    /// Object changes to apply, each answered when applied.
    pub batches: Receiver<RemoteBatch>,
    /// Kept so that `batches` never disconnects, also without any poller.
    _batches: Sender<RemoteBatch>,
    /// One message per root whose first poll has ended; kept connected like `batches`.
    pub first_done: Receiver<FirstPoll>,
    _first_done: Sender<FirstPoll>,
    /// Roots whose first poll has not ended yet.
    pub awaiting: usize,
    /// One per running poller: asks it to poll now (a `sync`).
    pub poll_now: Vec<Sender<PollNow>>,
    /// Roots that could not be set up, with why (redacted): they are not polled.
    pub unreachable: Vec<(String, String)>,
    _shutdown: Sender<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Pollers {
    fn drop(&mut self) {
        // Disconnect both ways: a waiting poller sees the shutdown, one handing over a batch
        // sees the engine gone.
        drop(std::mem::replace(
            &mut self._shutdown,
            crossbeam_channel::bounded(0).0,
        ));
        drop(std::mem::replace(
            &mut self.batches,
            crossbeam_channel::never(),
        ));
        let deadline = Instant::now() + JOIN_WAIT;
        for thread in self.threads.drain(..) {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("a bucket poller is still inside a request; not waiting for it");
            }
        }
    }
}

impl Engine {
    /// Starts one poller thread per object-storage root; each polls at once, then on its
    /// interval. A root that cannot be set up (e.g. plain http to a remote host, no
    /// credentials) is shown in the status and listed in [`Pollers::unreachable`]; the
    /// others go on.
    ///
    /// Errors: a thread cannot be spawned.
    pub fn start_pollers(&self) -> Result<Pollers> {
        let (batches_tx, batches) = crossbeam_channel::bounded(1);
        let (shutdown, shutdown_rx) = crossbeam_channel::bounded::<()>(0);
        let (first_done_tx, first_done) = crossbeam_channel::unbounded();
        let mut pollers = Pollers {
            batches,
            _batches: batches_tx.clone(),
            first_done,
            _first_done: first_done_tx.clone(),
            awaiting: 0,
            poll_now: Vec::new(),
            unreachable: Vec::new(),
            _shutdown: shutdown,
            threads: Vec::new(),
        };
        for root in self.remote_roots() {
            let name = root.to_string_lossy().into_owned();
            let remote = match crate::s3::Remote::connect(&root, self.s3_options()) {
                Ok(r) => r,
                Err(e) => {
                    let message = crate::s3::redact(&format!("{e:#}"));
                    crate::s3::poll::update(&self.status(), &name, |r| {
                        r.state = crate::status::RemoteState::BackingOff;
                        r.last_error = Some(message.clone());
                    });
                    pollers.unreachable.push((name, message));
                    continue;
                }
            };
            let (now_tx, now_rx) = crossbeam_channel::unbounded();
            pollers.poll_now.push(now_tx);
            let ctx = crate::s3::poller::PollerContext {
                store: self.store(),
                scanner: self.scanner(),
                metrics: self.metrics(),
                status: self.status(),
                batches: batches_tx.clone(),
                shutdown: shutdown_rx.clone(),
                first_done: first_done_tx.clone(),
                poll_now: now_rx,
            };
            pollers.threads.push(crate::s3::poller::spawn(remote, ctx)?);
            pollers.awaiting += 1;
        }
        Ok(pollers)
    }

    /// Polls every object-storage root once on the poller threads and applies their changes
    /// on this one (the one-shot `index`). `report` hears each root's first poll as it
    /// ends; what was applied is added to `totals`. A stop request (SIGINT) stops the
    /// pollers at their next object.
    ///
    /// Returns one message per root that could not be polled; the others are indexed
    /// regardless.
    ///
    /// Errors: only failures of the index itself.
    pub fn poll_remotes_once(
        &mut self,
        totals: &mut ReconcileStats,
        mut report: impl FnMut(&FirstPoll),
    ) -> Result<Vec<String>> {
        let mut pollers = self.start_pollers()?;
        let mut errors: Vec<String> = pollers
            .unreachable
            .iter()
            .map(|(_, message)| message.clone())
            .collect();
        while pollers.awaiting > 0 && !self.cancelled() {
            crossbeam_channel::select! {
                recv(pollers.first_done) -> first => {
                    let Ok(first) = first else { bail!("the object-storage pollers stopped") };
                    pollers.awaiting -= 1;
                    match &first.outcome {
                        Ok(polled) => {
                            totals.scanned += polled.listed;
                            totals.unchanged += polled.unchanged;
                        }
                        Err(e) => errors.push(format!("{}: {e}", first.root)),
                    }
                    report(&first);
                }
                recv(pollers.batches) -> batch => {
                    let Ok(batch) = batch else { bail!("the object-storage pollers stopped") };
                    match self.apply_objects(batch.changes) {
                        Ok(stats) => {
                            totals.add(&stats);
                            let _ = batch.reply.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = batch.reply.send(Err(format!("{e:#}")));
                            return Err(e);
                        }
                    }
                }
                default(STOP_CHECK) => {}
            }
        }
        Ok(errors)
    }
}
