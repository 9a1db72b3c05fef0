//! The engine's embedding side: the model's identity, the embedding queue fed to the worker,
//! the vectors it sends back, and the HNSW graph derived from them.

use anyhow::Result;

use std::sync::Arc;

use rayon::prelude::*;

use super::{EmbedFailure, EmbedJob, Engine, SharedEmbedQueue, embed_queue};
use crate::index::vector::VectorIndex;
use crate::model::MODEL_DIMS;
use crate::pipeline::embed_static::StaticEmbedder;
use crate::search::StaticTier;
use crate::settings::Tier;
use crate::status::Phase;
use crate::store::Store;

/// Chunk texts embedded by the static model per redb transaction when an index gets its
/// static tier (an older index, or `--embed` changed).
const STATIC_FILL_BATCH: usize = 4096;

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
            self.store.clear_vectors(Tier::Transformer)?;
            self.status.update(|s| {
                s.embed_note =
                    Some("the model changed: every chunk is being embedded again".to_string())
            });
        }
        self.store.set_setting("model", &identity)
    }

    /// The vector index of `tier`: the saved snapshot if it matches the store generation,
    /// else rebuilt from the vectors in redb.
    pub(super) fn load_vectors(&self, tier: Tier) -> Result<VectorIndex> {
        let generation = self.store.generation()?;
        if let Some(index) = VectorIndex::load(&self.config.index_dir, tier, MODEL_DIMS, generation)
        {
            return Ok(index);
        }
        build_vector_index(&self.store, tier)
    }

    /// Loads the static model, drops static vectors another static model made, loads or
    /// rebuilds the static HNSW graph, and embeds every chunk text that has no static vector
    /// yet (an index from before the static tier: ~4,000 chunks/s on two cores).
    ///
    /// Errors: the model cannot be loaded, or the index cannot be read or written.
    pub(super) fn open_static_tier(&mut self, dir: &std::path::Path) -> Result<()> {
        let model = Arc::new(StaticEmbedder::load(dir)?);
        let stored = self.store.setting("static_model")?;
        if stored.as_deref() != Some(model.identity()) {
            if stored.is_some() {
                tracing::warn!(
                    before = stored.as_deref().unwrap_or_default(),
                    now = model.identity(),
                    "the static model changed: its vectors are made again"
                );
            }
            self.store.clear_vectors(Tier::Static)?;
            self.store.set_setting("static_model", model.identity())?;
        }
        let index = Arc::new(self.load_vectors(Tier::Static)?);
        self.static_tier = Some(StaticTier {
            model: model.clone(),
            vectors: index.clone(),
        });
        self.fill_static_vectors(&model, &index)
    }

    fn fill_static_vectors(&mut self, model: &StaticEmbedder, index: &VectorIndex) -> Result<()> {
        let mut by_hash: std::collections::HashMap<[u8; 32], u64> = Default::default();
        self.store.for_each_chunk(|id, c| {
            by_hash.entry(c.hash).or_insert(id);
        })?;
        let mut hashes: Vec<[u8; 32]> = by_hash.keys().copied().collect();
        hashes.sort_unstable();
        let present = self.store.has_vectors(Tier::Static, &hashes)?;
        let missing: Vec<[u8; 32]> = hashes
            .into_iter()
            .zip(present)
            .filter(|(_, has)| !has)
            .map(|(h, _)| h)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(
            texts = missing.len(),
            "giving every chunk a static vector (once)"
        );
        let started = std::time::Instant::now();
        for slice in missing.chunks(STATIC_FILL_BATCH) {
            self.heartbeat.beat();
            let ids: Vec<u64> = slice.iter().map(|h| by_hash[h]).collect();
            let docs = self.text.docs(&ids)?;
            let vectors: Vec<([u8; 32], Vec<f32>)> = slice
                .par_iter()
                .zip(ids.par_iter())
                .filter_map(|(hash, id)| {
                    let doc = docs.get(id)?;
                    let text = crate::pipeline::chunk::embedded_text(&doc.header, &doc.text);
                    Some((*hash, model.embed(&text)))
                })
                .collect();
            self.store.put_vectors(Tier::Static, &vectors)?;
            let mut items = Vec::new();
            for (hash, vector) in &vectors {
                for id in self.store.chunk_ids_with_hash(hash)? {
                    items.push((id, vector.as_slice()));
                }
            }
            index.add_many(&items)?;
        }
        tracing::info!(
            texts = missing.len(),
            seconds = started.elapsed().as_secs_f64(),
            "static vectors made"
        );
        Ok(())
    }

    /// Whether the static tier runs.
    pub fn static_tier_enabled(&self) -> bool {
        self.static_tier.is_some()
    }

    /// The static model, when its tier runs (the pipeline embeds new chunks with it).
    pub(super) fn static_model(&self) -> Option<Arc<StaticEmbedder>> {
        self.static_tier.as_ref().map(|t| t.model.clone())
    }

    pub(super) fn queue_missing_embeddings(&mut self) -> Result<()> {
        let mut hashes = Vec::new();
        self.store.for_each_chunk(|_, c| hashes.push(c.hash))?;
        hashes.sort_unstable();
        hashes.dedup();
        let present = self.store.has_vectors(Tier::Transformer, &hashes)?;
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
        let mut dropped = false;
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
                    _ => {
                        self.embed_queue().dropped(&hash);
                        dropped = true;
                    }
                }
            }
            // A retried text goes alone; so does anything after it.
            if jobs.len() >= max || !jobs.is_empty() {
                break;
            }
        }
        if dropped && jobs.is_empty() {
            // Nothing will be applied: the status must still stop counting what was dropped.
            let phase = match self.status.get().phase {
                Phase::Embedding if self.embed_queue().is_empty() => Phase::Watching,
                phase => phase,
            };
            self.publish(phase);
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
        self.store.put_vectors(Tier::Transformer, &vectors)?;
        self.embed_queue()
            .succeeded(vectors.iter().map(|(h, _)| *h));
        if let Some(index) = &self.vectors {
            let mut items = Vec::new();
            for (hash, vector) in &vectors {
                for id in self.store.chunk_ids_with_hash(hash)? {
                    items.push((id, vector.as_slice()));
                }
            }
            index.add_many(&items)?;
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

    /// Saves the vector-index snapshots so the next start (or a CLI search) need not rebuild
    /// them.
    pub fn checkpoint(&self) -> Result<()> {
        let generation = self.store.generation()?;
        if let Some(index) = &self.vectors {
            index.save(&self.config.index_dir, Tier::Transformer, generation)?;
        }
        if let Some(tier) = &self.static_tier {
            tier.vectors
                .save(&self.config.index_dir, Tier::Static, generation)?;
        }
        Ok(())
    }
}

/// Builds the HNSW index of `tier` from every chunk whose text has a cached vector.
pub fn build_vector_index(store: &Store, tier: Tier) -> Result<VectorIndex> {
    let index = VectorIndex::for_tier(MODEL_DIMS, tier)?;
    let mut by_hash: std::collections::HashMap<[u8; 32], Vec<u64>> =
        std::collections::HashMap::new();
    store.for_each_chunk(|id, c| by_hash.entry(c.hash).or_default().push(id))?;
    // Added a batch at a time, in parallel, so memory holds one batch of vectors.
    const BATCH: usize = 4096;
    let mut batch: Vec<(u64, Vec<f32>)> = Vec::with_capacity(BATCH);
    let mut result = Ok(());
    let mut flush = |batch: &mut Vec<(u64, Vec<f32>)>| {
        let items: Vec<(u64, &[f32])> = batch.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        if result.is_ok() {
            result = index.add_many(&items);
        }
        batch.clear();
    };
    store.for_each_vector(tier, |hash, vector| {
        if let Some(ids) = by_hash.get(hash) {
            for &id in ids {
                batch.push((id, vector.clone()));
            }
            if batch.len() >= BATCH {
                flush(&mut batch);
            }
        }
    })?;
    flush(&mut batch);
    result?;
    Ok(index)
}
