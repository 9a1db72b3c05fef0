//! The query embedder: the one transformer model per process that turns queries into
//! vectors, shared by every surface and loaded once (or on a thread while a search starts).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::QueryError;
use crate::model::ModelFiles;
use crate::pipeline::embed::{Embedder, Load};

/// The model that turns queries into vectors: one per process, shared by every surface (CLI,
/// socket and TCP API, dashboard), loaded once. Separate from the indexing embedder, so a
/// query never waits behind a batch.
#[derive(Clone)]
pub struct QueryEmbedder {
    model: Option<ModelFiles>,
    how: Load,
    loaded: Arc<Mutex<Option<Embedder>>>,
    /// A load started by [`Self::load_in_background`]; joined when the last clone drops,
    /// so a process never exits while ONNX Runtime is half-way through loading.
    loading: Arc<Loading>,
}

#[derive(Default)]
struct Loading(Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Loading {
    fn drop(&mut self) {
        let handle = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl QueryEmbedder {
    /// A query embedder for `model` (`None`: text-only), loaded on first use or by
    /// [`Self::warm_up`].
    pub fn new(model: Option<ModelFiles>, how: Load) -> Self {
        Self {
            model,
            how,
            loaded: Arc::default(),
            loading: Arc::default(),
        }
    }

    /// Starts loading the model on another thread and returns at once, so a one-query
    /// process opens its index and runs the text search meanwhile; [`Self::embed`] then
    /// waits for the load instead of starting one. A failed load is not kept: `embed`
    /// tries again and reports the error.
    pub fn load_in_background(&self) {
        let Some(model) = self.model.clone() else {
            return;
        };
        let (how, loaded) = (self.how, self.loaded.clone());
        let mut slot = self.loading.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        // The lock on `loaded` is taken before this returns, so `embed` waits for this load.
        let (started, wait) = std::sync::mpsc::channel::<()>();
        *slot = Some(std::thread::spawn(move || {
            let mut guard = loaded.lock().unwrap_or_else(|p| p.into_inner());
            let _ = started.send(());
            if guard.is_none() {
                match Embedder::load_for(&model, how) {
                    Ok(e) => *guard = Some(e),
                    Err(e) => tracing::debug!("loading the query model: {e:#}"),
                }
            }
        }));
        let _ = wait.recv();
    }

    /// Loads the model now, so the first query does not wait for it (~0.3 s).
    ///
    /// Errors: as [`Embedder::load`].
    pub fn warm_up(&self) -> Result<()> {
        self.with(|_| Ok(()))
    }

    /// The vector of one query (dims of the model, L2-normalised).
    ///
    /// Errors: no model; the model cannot be loaded or run.
    pub fn embed(&self, query: &str) -> Result<Vec<f32>> {
        self.with(|e| {
            e.embed(&[query])?
                .pop()
                .context("the model returned no vector")
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Embedder) -> Result<T>) -> Result<T> {
        let Some(model) = &self.model else {
            return Err(QueryError("no embedding model available".into()).into());
        };
        let mut guard = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Embedder::load_for(model, self.how)?);
        }
        f(guard.as_mut().context("embedder loaded above")?)
    }
}
