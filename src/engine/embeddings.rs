//! The engine's embedding side: the model's identity, the embedding queue fed to the worker,
//! the vectors it sends back, and the HNSW graph derived from them.

use anyhow::Result;

use super::{EmbedFailure, EmbedJob, Engine, SharedEmbedQueue, embed_queue};
use crate::index::vector::VectorIndex;
use crate::model::MODEL_DIMS;
use crate::status::Phase;
use crate::store::Store;

impl Engine {
    /// Compares the model's identity with the one that made the cached vectors. When it
    /// changed, they are dropped: every chunk is embedded again in the background while text
    /// search goes on, and the status says so.
    pub(super) fn check_model(&mut self) -> Result<()> {
        let Some(model) = &self.config.model else {
            return Ok(());
        };
        let identity = model.identity()?;
        let stored = self.store.setting("model")?;
        if stored.as_deref() == Some(identity.as_str()) {
            return Ok(());
        }
        let cached = self.store.counts()?.vectors;
        // An index from before identities were recorded: assume its vectors are this model's.
        if stored.is_some() && cached > 0 {
            tracing::warn!(
                before = stored.as_deref().unwrap_or("unrecorded"),
                now = %identity,
                cached,
                "the embedding model changed: its vectors are not comparable with the cached \
                 ones, so every chunk is embedded again in the background (text search works \
                 meanwhile)"
            );
            self.store.clear_vectors()?;
            self.status.update(|s| {
                s.embed_note =
                    Some("the model changed: every chunk is being embedded again".to_string())
            });
        }
        self.store.set_setting("model", &identity)
    }

    /// The vector index: the saved snapshot if it matches the store generation, else rebuilt
    /// from the vectors in redb.
    pub(super) fn load_vectors(&self) -> Result<VectorIndex> {
        let generation = self.store.generation()?;
        if let Some(index) = VectorIndex::load(&self.config.index_dir, MODEL_DIMS, generation) {
            return Ok(index);
        }
        build_vector_index(&self.store)
    }

    pub(super) fn queue_missing_embeddings(&mut self) -> Result<()> {
        let mut hashes = Vec::new();
        self.store.for_each_chunk(|_, c| hashes.push(c.hash))?;
        hashes.sort_unstable();
        hashes.dedup();
        let present = self.store.has_vectors(&hashes)?;
        for (hash, has) in hashes.into_iter().zip(present) {
            if !has {
                self.queue_embedding(hash);
            }
        }
        Ok(())
    }

    pub(super) fn queue_embedding(&mut self, hash: [u8; 32]) {
        self.embed_queue().push(hash);
    }

    pub(super) fn embed_queue(&self) -> std::sync::MutexGuard<'_, embed_queue::EmbedQueue> {
        self.embeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The embedding queue, for readers (`verify`).
    pub fn shared_embed_queue(&self) -> SharedEmbedQueue {
        self.embeds.clone()
    }

    /// Whether embeddings are enabled (a model is configured).
    pub fn embeddings_enabled(&self) -> bool {
        self.config.model.is_some()
    }

    /// Distinct chunk texts waiting for an embedding.
    pub fn embeddings_pending(&self) -> usize {
        self.embed_queue().len()
    }

    /// When the embedding queue, paused after a failure, may run again.
    pub fn embed_resumes_at(&self) -> Option<std::time::Instant> {
        self.embed_queue().paused_until()
    }

    /// The next up-to-`max` chunk texts to embed (none while paused after a failure, one at
    /// a time while texts of a failed batch are retried). Texts are read back from the text
    /// index; hashes whose chunks have all gone since are dropped.
    pub fn next_embed_jobs(&mut self, max: usize) -> Result<Vec<EmbedJob>> {
        let mut jobs = Vec::new();
        loop {
            let hashes = self
                .embed_queue()
                .take(max - jobs.len(), std::time::Instant::now());
            if hashes.is_empty() {
                break;
            }
            for hash in hashes {
                let ids = self.store.chunk_ids_with_hash(&hash)?;
                let docs = self.text.docs(&ids[..ids.len().min(1)])?;
                let text = docs
                    .into_values()
                    .next()
                    .map(|doc| crate::pipeline::chunk::embedded_text(&doc.header, &doc.text));
                match text {
                    Some(text) if crate::pipeline::hash::text_hash(&text) == hash => {
                        jobs.push(EmbedJob { hash, text })
                    }
                    _ => self.embed_queue().dropped(&hash),
                }
            }
            // A retried text goes alone; so does anything after it.
            if jobs.len() >= max || !jobs.is_empty() {
                break;
            }
        }
        Ok(jobs)
    }

    /// Puts the texts of a failed batch back in the queue (never dropped) and pauses
    /// embedding on backoff; see [`embed_queue`]. Text search is not affected.
    pub fn embeddings_failed(&mut self, hashes: &[[u8; 32]], why: &EmbedFailure) {
        let set_aside = self
            .embed_queue()
            .failed(hashes, why, std::time::Instant::now());
        tracing::error!(
            texts = hashes.len(),
            "embedding failed, will try again: {why}"
        );
        self.metrics.error("embed");
        for hash in set_aside {
            let paths: Vec<String> = self
                .store
                .chunk_ids_with_hash(&hash)
                .and_then(|ids| self.store.chunks(&ids))
                .map(|cs| {
                    cs.into_iter()
                        .map(|(_, c)| format!("{}:{}-{}", c.path, c.start_line, c.end_line))
                        .collect()
                })
                .unwrap_or_default();
            tracing::error!(chunks = ?paths, "this text failed {} times on its own and is set aside until it changes or vigil restarts: {why}", embed_queue::MAX_TEXT_ATTEMPTS);
        }
        self.publish(Phase::Embedding);
    }

    /// Stores computed embeddings (one redb transaction) and adds them to the vector index
    /// for every chunk that has that text.
    pub fn apply_embeddings(&mut self, vectors: Vec<([u8; 32], Vec<f32>)>) -> Result<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        self.store.put_vectors(&vectors)?;
        self.embed_queue()
            .succeeded(vectors.iter().map(|(h, _)| *h));
        if let Some(index) = &self.vectors {
            for (hash, vector) in &vectors {
                for id in self.store.chunk_ids_with_hash(hash)? {
                    index.add(id, vector)?;
                }
            }
        }
        let n = vectors.len() as u64;
        self.metrics.embeddings_computed.inc_by(n);
        self.status.update(|s| s.embeddings_computed += n);
        if self.embed_queue().is_empty() {
            self.status.update(|s| s.embed_note = None);
        }
        self.publish(if self.embed_queue().is_empty() {
            Phase::Watching
        } else {
            Phase::Embedding
        });
        Ok(())
    }

    /// Saves the vector-index snapshot so the next start (or a CLI search) need not rebuild it.
    pub fn checkpoint(&self) -> Result<()> {
        if let Some(index) = &self.vectors {
            index.save(&self.config.index_dir, self.store.generation()?)?;
        }
        Ok(())
    }
}

/// Builds the HNSW index from every chunk whose text has a cached vector.
pub fn build_vector_index(store: &Store) -> Result<VectorIndex> {
    let index = VectorIndex::new(MODEL_DIMS)?;
    let mut by_hash: std::collections::HashMap<[u8; 32], Vec<u64>> =
        std::collections::HashMap::new();
    store.for_each_chunk(|id, c| by_hash.entry(c.hash).or_default().push(id))?;
    let mut result = Ok(());
    store.for_each_vector(|hash, vector| {
        if let Some(ids) = by_hash.get(hash) {
            for &id in ids {
                if result.is_ok() {
                    result = index.add(id, &vector);
                }
            }
        }
    })?;
    result?;
    Ok(index)
}
