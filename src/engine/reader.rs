//! Reader: an index opened for reading by a process that does not own it (a `vigil search`,
//! `status` or `verify` when no watcher answers). redb is opened read-only, so a reader never
//! blocks a watcher that starts meanwhile.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::index::text::TextIndex;
use crate::index::vector::VectorIndex;
use crate::model::MODEL_DIMS;
use crate::pipeline::chunk::Chunker;
use crate::search::{QueryEmbedder, Searcher, StaticTier};
use crate::settings::{Models, Tier};
use crate::status::{Phase, StatusCell};
use crate::store::Store;

/// What a reader is opened for: it loads only what that needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFor {
    /// Status counters (`vigil status`).
    pub status: bool,
    /// A search by meaning (semantic or hybrid): the query model starts loading at once.
    pub meaning: bool,
    /// Vectors and models may be used at all (`false` with `--no-embed`).
    pub embeddings: bool,
    /// `verify`: the chunker the index was built with.
    pub verify: bool,
}

/// Read-only handles on an index.
pub struct Reader {
    pub store: Arc<Store>,
    pub searcher: Searcher,
    /// Counters as of opening (filled when [`ReadFor::status`]).
    pub status: StatusCell,
    /// The index's own chunker (when [`ReadFor::verify`]).
    pub chunker: Option<Arc<Chunker>>,
}

impl Reader {
    /// Opens the text index, and the vector graphs and models a search by meaning needs:
    /// `models` is asked only when the index holds vectors; `model_dir` (the configured
    /// model) gives `verify` the tokenizer of a token-chunked index.
    ///
    /// Errors: an index file cannot be opened, a graph cannot be rebuilt, or a model the
    /// index needs cannot be loaded.
    pub fn open(
        index_dir: &Path,
        store: Arc<Store>,
        purpose: ReadFor,
        models: impl FnOnce() -> Models,
        model_dir: Option<&Path>,
    ) -> Result<Self> {
        let text = Arc::new(TextIndex::open(&index_dir.join("text"), false)?);
        let counts = store.counts()?;
        let models = if purpose.embeddings && (counts.vectors > 0 || counts.static_vectors > 0) {
            models()
        } else {
            Models::default()
        };
        let model = models.transformer.filter(|_| counts.vectors > 0);
        let has_model = model.is_some();
        let query = QueryEmbedder::new(model, crate::pipeline::embed::Load::OneQuery);
        if purpose.meaning {
            // The model loads (~0.1 s) while the graphs load and the text search runs.
            query.load_in_background();
        }
        let vectors = if has_model {
            Some(Arc::new(saved_graph(&store, index_dir, Tier::Transformer)?))
        } else {
            None
        };
        // The static tier is searched only for chunks the transformer has not embedded yet:
        // when its graph holds every chunk, the static model (~0.15 s to load) is not needed.
        let caught_up = vectors
            .as_ref()
            .is_some_and(|v| v.len() as u64 >= counts.chunks);
        let static_tier = match &models.static_dir {
            Some(dir) if counts.static_vectors > 0 && !caught_up => Some(StaticTier {
                model: Arc::new(crate::pipeline::embed_static::StaticEmbedder::load(dir)?),
                vectors: Arc::new(saved_graph(&store, index_dir, Tier::Static)?),
            }),
            _ => None,
        };
        let status = StatusCell::default();
        if purpose.status {
            let text_docs = text.num_docs();
            let files = super::count_states(&store)?;
            status.update(|s| {
                s.phase = Phase::Stopped;
                s.index_dir = index_dir.display().to_string();
                super::set_counts(s, files, &counts, text_docs);
            });
        }
        let searcher =
            Searcher::new(store.clone(), text, vectors, query).with_static_tier(static_tier);
        let chunker = if purpose.verify {
            Some(Arc::new(chunker_of(&store, model_dir)?))
        } else {
            None
        };
        Ok(Self {
            store,
            searcher,
            status,
            chunker,
        })
    }
}

/// The HNSW graph of `tier`: the saved snapshot when it is current, else rebuilt from redb
/// and saved for the next reader (the snapshot is a cache; its generation tag keeps a stale
/// one from ever being loaded).
///
/// Errors: the store cannot be read.
fn saved_graph(store: &Store, index_dir: &Path, tier: Tier) -> Result<VectorIndex> {
    let generation = store.generation()?;
    if let Some(v) = VectorIndex::load(index_dir, tier, MODEL_DIMS, generation) {
        return Ok(v);
    }
    let v = super::build_vector_index(store, tier)?;
    if let Err(e) = v.save(index_dir, tier, generation) {
        tracing::debug!("cannot save the vector index: {e:#}");
    }
    Ok(v)
}

/// The chunker an index was built with (from its stored fingerprint): sized in the model's
/// tokens when it was chunked with a tokenizer, else in characters.
///
/// Errors: the index was chunked by tokens and the model (`model_dir`, or the default one)
/// cannot be had.
fn chunker_of(store: &Store, model_dir: Option<&Path>) -> Result<Chunker> {
    let uses_tokens = store
        .setting("chunker")?
        .is_some_and(|f| f.contains("tokens"));
    let tokenizer = if uses_tokens {
        let model = crate::model::resolve(model_dir, true)
            .context("this index was chunked with the model's tokenizer")?;
        Some(
            tokenizers::Tokenizer::from_file(model.tokenizer())
                .map_err(|e| anyhow::anyhow!("{}: {e}", model.tokenizer().display()))?,
        )
    } else {
        None
    };
    Ok(Chunker::new(tokenizer))
}
