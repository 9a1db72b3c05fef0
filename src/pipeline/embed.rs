//! embed: what does this text mean, as a vector?
//!
//! Wraps `fastembed` with a user-defined all-MiniLM-L6-v2 ONNX model and mean pooling,
//! on an ONNX Runtime library loaded at run time (`ort` load-dynamic). Vectors have
//! [`crate::model::MODEL_DIMS`] dimensions and are L2-normalised, so cosine = dot product.

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use crate::model::{MODEL_DIMS, ModelFiles};

/// Chunks per ONNX call. One call keeps every token-level output of its batch alive, so this
/// bounds memory: ~0.6-1.1 GB at 32 (measured, see docs/embeddings.md).
pub const EMBED_BATCH: usize = 16;

/// Chunk texts handed to [`Embedder::embed`] at once: sorted by length there and cut into
/// batches of [`EMBED_BATCH`], so a batch pads its texts to a similar length.
pub const EMBED_WINDOW: usize = 4 * EMBED_BATCH;

/// ONNX Runtime can be loaded once per process.
static ORT_ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// The process's ONNX Runtime environment, loaded from `files.ort_lib` on first use.
///
/// Errors: the library cannot be loaded (named in the message).
pub fn environment(files: &ModelFiles) -> Result<ort::environment::Environment> {
    ORT_ENV
        .get_or_init(|| {
            let builder = ort::init_from(&files.ort_lib).map_err(|e| e.to_string())?;
            builder
                .with_name("vigil")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow!("{}: cannot load ONNX Runtime: {e}", files.ort_lib.display()))
}

/// Returns the heap's free pages to the system. Loading a model leaves ~100 MB of freed
/// temporaries (the file bytes, the graph before optimisation) that glibc keeps otherwise.
pub fn give_back_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A loaded embedding model.
pub struct Embedder {
    model: TextEmbedding,
}

/// How a model is loaded, by what it will do. Measured on this 2-core machine with the int8
/// all-MiniLM-L6-v2 (docs/embeddings.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Batches of chunks: every graph optimisation, including constant folding (which turns
    /// the int8 weights into f32 once, ~0.3 s at load), and ONNX Runtime's memory arena,
    /// which keeps activation buffers between batches.
    Indexing,
    /// Queries in a long-lived process: constant folding (~4 ms per query), no arena, so
    /// nothing but the weights stays allocated between queries.
    Query,
    /// The one query of a CLI process: no constant folding (~50 ms to load instead of
    /// ~300 ms, ~20 ms per query, the same vectors: cosine 1.0000 on 64 code chunks).
    OneQuery,
}

impl Embedder {
    /// Loads the model for indexing (see [`Load::Indexing`]).
    ///
    /// Errors: the ONNX Runtime library cannot be loaded (missing, older than 1.24), or the
    /// model files cannot be read or parsed; the message names the file.
    pub fn load(files: &ModelFiles) -> Result<Self> {
        Self::load_for(files, Load::Indexing)
    }

    /// Loads the model, optimised for `how` it will be used. Errors as [`Self::load`].
    pub fn load_for(files: &ModelFiles, how: Load) -> Result<Self> {
        Self::load_with(files, how, None)
    }

    /// Like [`Self::load_for`], with ONNX Runtime using `threads` threads per call (`None`:
    /// one per core). Errors as [`Self::load`].
    pub fn load_with(files: &ModelFiles, how: Load, threads: Option<usize>) -> Result<Self> {
        let env = environment(files)?;
        let read = |name: &str| {
            let p = files.dir.join(name);
            std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))
        };
        let onnx = read("model.onnx")?;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let model =
            UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
        let mut options = InitOptionsUserDefined::new()
            .with_environment(env)
            .with_execution_providers(vec![
                ort::ep::CPU::default()
                    .with_arena_allocator(how == Load::Indexing)
                    .build(),
            ])
            .with_max_length(crate::pipeline::chunk::MODEL_MAX_TOKENS);
        if let Some(n) = threads {
            options = options.with_intra_threads(n.max(1));
        }
        if how == Load::OneQuery {
            // ONNX Runtime's constant folding dequantises every weight at load time (~250 ms
            // of a ~300 ms load); without it the weights are dequantised per run instead.
            options = options.with_session_config(
                "optimization.disable_specified_optimizers",
                "ConstantFolding",
            );
        }
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| anyhow!("{}: cannot load the model: {e}", files.onnx().display()))?;
        give_back_free_memory();
        Ok(Self { model })
    }

    /// Embedding dimensions.
    pub fn dims(&self) -> usize {
        MODEL_DIMS
    }

    /// Embeds texts, [`EMBED_BATCH`] at a time, shortest first: each ONNX call pads its
    /// texts to its longest, so texts of similar length go together. One vector of
    /// [`Self::dims`] per text, in the order given.
    ///
    /// Errors: the model fails on a batch (no vector of this call is returned).
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(EMBED_BATCH) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let vectors = self
                .model
                .embed(batch_texts, Some(EMBED_BATCH))
                .map_err(|e| anyhow!("embedding failed: {e}"))?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
