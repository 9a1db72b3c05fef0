//! The embedding worker: the thread that owns the indexing model.

use std::time::Duration;

use anyhow::Result;
use crossbeam_channel::Receiver;

use crate::engine::Engine;
use crate::pipeline::embed::Embedder;

/// After this long without embedding work, the indexing model is unloaded (reloading takes
/// ~0.3 s; it holds ~100 MB).
const EMBED_IDLE: Duration = Duration::from_secs(30);

/// What the embedding worker sends back for one batch: its texts' hashes, and their vectors
/// or why there are none.
pub(super) type EmbedResult = (
    Vec<[u8; 32]>,
    std::result::Result<Vec<Vec<f32>>, crate::engine::EmbedFailure>,
);

/// The thread that owns the indexing embedder; the engine feeds it one batch at a time.
/// The model is loaded on the first batch (so a watcher is ready without waiting for it),
/// and loaded again on the next batch if that failed.
pub(super) struct EmbedWorker {
    pub(super) jobs: crossbeam_channel::Sender<Vec<crate::engine::EmbedJob>>,
    pub(super) done: Receiver<EmbedResult>,
    /// Joined on drop: a process must not exit while this thread is inside ONNX Runtime
    /// (its C++ statics are destroyed at exit, under a running session: a crash).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbedWorker {
    /// Closes both channels, so the thread ends after the batch it is on (at most one batch,
    /// ~1 s), and waits for it.
    fn drop(&mut self) {
        drop(std::mem::replace(
            &mut self.jobs,
            crossbeam_channel::bounded(0).0,
        ));
        drop(std::mem::replace(
            &mut self.done,
            crossbeam_channel::bounded(0).1,
        ));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl EmbedWorker {
    pub(super) fn start(engine: &Engine) -> Result<Option<Self>> {
        let Some(model) = engine.model().cloned() else {
            return Ok(None);
        };
        let metrics = engine.metrics();
        let budget = engine.embed_budget();
        let (jobs, job_rx) = crossbeam_channel::bounded::<Vec<crate::engine::EmbedJob>>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("vigil-embed".into())
            .spawn(move || {
                // Background work yields to the rest of the machine; ONNX Runtime's threads,
                // created by this one when the model loads, inherit its nice value.
                // SAFETY: setpriority on this thread's own id.
                let set = unsafe {
                    libc::setpriority(
                        libc::PRIO_PROCESS,
                        libc::gettid() as libc::id_t,
                        budget.nice,
                    )
                };
                if set != 0 {
                    tracing::warn!(
                        nice = budget.nice,
                        "cannot lower the embed worker's priority: {}",
                        std::io::Error::last_os_error()
                    );
                }
                let mut embedder: Option<Embedder> = None;
                loop {
                    let batch = match job_rx.recv_timeout(EMBED_IDLE) {
                        Ok(batch) => batch,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            // Caught up: give the model's memory back until more work comes.
                            if embedder.take().is_some() {
                                crate::pipeline::embed::give_back_free_memory();
                                tracing::debug!("embedding queue idle: indexing model unloaded");
                            }
                            continue;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    };
                    let hashes: Vec<[u8; 32]> = batch.iter().map(|j| j.hash).collect();
                    if embedder.is_none() {
                        match Embedder::load_with(
                            &model,
                            crate::pipeline::embed::Load::Indexing,
                            budget.threads,
                        ) {
                            Ok(e) => embedder = Some(e),
                            Err(e) => {
                                let why = crate::engine::EmbedFailure::Model(format!("{e:#}"));
                                if done_tx.send((hashes, Err(why))).is_err() {
                                    break;
                                }
                                continue;
                            }
                        }
                    }
                    let Some(model) = embedder.as_mut() else {
                        continue;
                    };
                    let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
                    let started = std::time::Instant::now();
                    let result = model
                        .embed(&texts)
                        .map_err(|e| crate::engine::EmbedFailure::Batch(format!("{e:#}")));
                    crate::metrics::Metrics::time(&metrics.embed_seconds, started.elapsed());
                    if done_tx.send((hashes, result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Some(Self {
            jobs,
            done,
            thread: Some(thread),
        }))
    }
}
