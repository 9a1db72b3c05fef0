//! The embedding worker: the thread that owns the indexing model, and the one driver of the
//! transformer tier. A watcher feeds it from its engine loop ([`EmbedWorker::feed`],
//! [`EmbedWorker::settle`]); `vigil index` runs it to the end ([`Engine::embed_all`]).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use crossbeam_channel::Receiver;

use super::{EmbedFailure, EmbedJob, Engine, Progress};
use crate::pipeline::embed::{EMBED_WINDOW, Embedder};

/// After this long without embedding work, the indexing model is unloaded (reloading takes
/// ~0.3 s; it holds ~100 MB).
const EMBED_IDLE: Duration = Duration::from_secs(30);

/// What the embedding worker sends back for one batch: its texts' hashes, and their vectors
/// or why there are none.
pub type EmbedResult = (
    Vec<[u8; 32]>,
    std::result::Result<Vec<Vec<f32>>, EmbedFailure>,
);

/// How the worker's thread shares the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A watcher's catch-up: the thread (and ONNX Runtime's threads, which inherit it) runs
    /// at the configured `embed_nice`.
    Background,
    /// `vigil index`, which a user waits for: the thread keeps the process's priority.
    Foreground,
}

/// The thread that owns the indexing embedder; the engine feeds it one batch at a time.
/// The model is loaded on the first batch (so a watcher is ready without waiting for it),
/// and loaded again on the next batch if that failed.
pub struct EmbedWorker {
    jobs: crossbeam_channel::Sender<Vec<EmbedJob>>,
    done: Receiver<EmbedResult>,
    /// A window was handed over and its result has not been settled yet.
    busy: bool,
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
    /// Starts the worker thread when the transformer tier runs (`None` otherwise). The model
    /// is loaded by the thread on its first window.
    ///
    /// Errors: the thread cannot be spawned.
    pub fn start(engine: &Engine, priority: Priority) -> Result<Option<Self>> {
        let Some(model) = engine.model().cloned() else {
            return Ok(None);
        };
        let metrics = engine.metrics();
        let budget = engine.embed_budget();
        let (jobs, job_rx) = crossbeam_channel::bounded::<Vec<EmbedJob>>(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("vigil-embed".into())
            .spawn(move || {
                if priority == Priority::Background {
                    lower_priority(budget.nice);
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
                                let why = EmbedFailure::Model(format!("{e:#}"));
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
                    let started = Instant::now();
                    let result = model
                        .embed(&texts)
                        .map_err(|e| EmbedFailure::Batch(format!("{e:#}")));
                    crate::metrics::Metrics::time(&metrics.embed_seconds, started.elapsed());
                    if done_tx.send((hashes, result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Some(Self {
            jobs,
            done,
            busy: false,
            thread: Some(thread),
        }))
    }

    /// Hands the worker the next window of queued texts (at most [`EMBED_WINDOW`]) when it
    /// is idle and embedding is not paused after a failure.
    ///
    /// Errors: the embedding queue cannot be read from the store.
    pub fn feed(&mut self, engine: &mut Engine) -> Result<()> {
        if self.busy || engine.embeddings_pending() == 0 {
            return Ok(());
        }
        let jobs = engine.next_embed_jobs(EMBED_WINDOW)?;
        self.busy = !jobs.is_empty() && self.jobs.send(jobs).is_ok();
        Ok(())
    }

    /// Whether a window is being embedded.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Where the result of the window being embedded arrives; pass it to [`Self::settle`].
    pub fn results(&self) -> Receiver<EmbedResult> {
        self.done.clone()
    }

    /// Applies a window's vectors to the index, or hands its texts back to the queue (with
    /// backoff) when the model failed.
    ///
    /// Errors: the index cannot be written.
    pub fn settle(&mut self, engine: &mut Engine, (hashes, result): EmbedResult) -> Result<()> {
        self.busy = false;
        match result {
            Ok(vectors) => engine.apply_embeddings(hashes.into_iter().zip(vectors).collect()),
            Err(why) => {
                engine.embeddings_failed(&hashes, &why);
                Ok(())
            }
        }
    }
}

/// Lowers the calling thread's priority to `nice`; ONNX Runtime's threads, created by this
/// one when the model loads, inherit it. A failure is logged: embedding goes on.
fn lower_priority(nice: i32) {
    // SAFETY: setpriority on this thread's own id.
    let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if set != 0 {
        tracing::warn!(
            nice,
            "cannot lower the embed worker's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Engine {
    /// Embeds every queued chunk text with the transformer tier, window by window, and
    /// returns how many were embedded; `progress` counts texts. A window the model fails on
    /// is retried text by text (the queue's backoff), so one text the model cannot take is
    /// set aside and the rest are embedded.
    ///
    /// Errors: the model cannot be loaded (the text index is complete; the next `index` or
    /// `watch` embeds what is missing), or the index cannot be written.
    pub fn embed_all(&mut self, progress: &dyn Progress) -> Result<u64> {
        let pending = self.embeddings_pending() as u64;
        if pending == 0 {
            return Ok(0);
        }
        let Some(mut worker) = EmbedWorker::start(self, Priority::Foreground)? else {
            return Ok(0);
        };
        progress.set_total(pending);
        let mut done = 0;
        loop {
            worker.feed(self)?;
            if !worker.is_busy() {
                match self.embed_resumes_at() {
                    Some(t) => {
                        std::thread::sleep(t.saturating_duration_since(Instant::now()));
                        continue;
                    }
                    None => break,
                }
            }
            let Ok(result) = worker.done.recv() else {
                bail!("the embedding worker stopped");
            };
            let texts = result.0.len() as u64;
            let model_failed = match &result.1 {
                Err(failure @ EmbedFailure::Model(_)) => Some(failure.to_string()),
                Err(EmbedFailure::Batch(_)) => None,
                Ok(_) => {
                    done += texts;
                    progress.advance(texts, 0);
                    None
                }
            };
            worker.settle(self, result)?;
            if let Some(why) = model_failed {
                bail!(
                    "{why}; the text index is complete; chunks get their embeddings when the \
                     model loads"
                );
            }
        }
        Ok(done)
    }
}
