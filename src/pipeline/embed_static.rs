//! embed_static: what does this text mean, as a vector, at the speed of a table lookup?
//!
//! A static model (one vector per vocabulary token, `pipeline::distil`) run by the
//! `model2vec-rs` crate: a text's vector is the L2-normalised mean of its tokens' rows, over
//! the whole text (no 256-token window). [`crate::model::MODEL_DIMS`] dimensions, so it
//! shares the transformer's shapes but not its vector space: the two tiers are searched
//! apart (docs/embeddings.md).

use std::path::Path;

use anyhow::{Context, Result, anyhow};

/// A loaded static model; cheap to share between threads (`&self` everywhere).
pub struct StaticEmbedder {
    model: model2vec_rs::model::StaticModel,
    identity: String,
}

impl StaticEmbedder {
    /// Loads the static model in `dir` (model2vec's layout). ~45 MB read, ~0.1 s.
    ///
    /// Errors: a file is missing or not a model2vec model (the message names the directory).
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))
        };
        let weights = read("model.safetensors")?;
        let identity = format!(
            "static mean of token vectors, {} dims; model.safetensors {}",
            crate::model::MODEL_DIMS,
            &blake3::hash(&weights).to_hex()[..16]
        );
        let model = model2vec_rs::model::StaticModel::from_bytes(
            read("tokenizer.json")?,
            weights,
            read("config.json")?,
            None,
        )
        .map_err(|e| anyhow!("{}: cannot load the static model: {e:#}", dir.display()))?;
        if model.dim() != crate::model::MODEL_DIMS {
            anyhow::bail!(
                "{}: a static model of {} dims, vigil needs {}",
                dir.display(),
                model.dim(),
                crate::model::MODEL_DIMS
            );
        }
        Ok(Self { model, identity })
    }

    /// What decides the vector space (the hash of the token table), recorded in the index.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The vector of a whole text (no token limit), L2-normalised; ~0.25 ms for a chunk of
    /// 200 tokens. A text with no known token gives the zero vector.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        self.model
            .encode_with_args(&[text.to_string()], None, 1)
            .pop()
            .unwrap_or_else(|| vec![0.0; crate::model::MODEL_DIMS])
    }
}
