//! distil: a static embedding model made from the transformer vigil already has.
//!
//! Method: model2vec (MinishLab, "Model2Vec: distill a small fast model from any sentence
//! transformer", 2024), as measured for this model in docs/embeddings.md:
//!
//! 1. every vocabulary token except `[PAD]` and the `[unused…]` placeholders goes through the
//!    transformer alone, as `[CLS] token [SEP]`, and its output at the token's position is
//!    kept (better than the mean of the three positions: NDCG@10 0.606 vs 0.583);
//! 2. each vector is scaled by an SIF weight `a / (a + p)`, `a` = 1e-4 (model2vec's default;
//!    the biggest lever, +0.09), where `p` is the token's probability under Zipf's law on
//!    its vocabulary rank (model2vec: rank `r` from 2, `p ∝ 1/r`); the WordPiece
//!    vocabulary is roughly ordered by frequency;
//! 3. no PCA: it cost 0.01 there.
//!
//! A text's vector is then the L2-normalised mean of its tokens' rows (the `model2vec-rs`
//! crate does that: `pipeline::embed_static`). The result is written in model2vec's layout
//! (`model.safetensors` with an `embeddings` tensor of vocabulary × 384 f32, `tokenizer.json`,
//! `config.json`) in `static/` of the model directory. ~19 s on two cores (measured, release
//! build), once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::model::{MODEL_DIMS, ModelFiles};

/// Tokens per ONNX call: sequences of 3, so memory stays small (1,024 × 3 × 384 f32).
const BATCH: usize = 1024;
/// The SIF coefficient `a` (model2vec's default).
const SIF_A: f64 = 1e-4;

/// The files of a static model in model2vec's layout.
pub const STATIC_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Where the static model of `files` lives: `static/` in the model directory.
pub fn static_dir(files: &ModelFiles) -> PathBuf {
    files.dir.join("static")
}

/// Whether `dir` holds a complete static model.
pub fn is_complete(dir: &Path) -> bool {
    STATIC_FILES.iter().all(|n| dir.join(n).is_file())
}

/// The static model of `files`, distilled first if it is not there yet (printing a line on
/// stderr, since it takes ~20 s).
///
/// Errors: as [`distil`].
pub fn ensure(files: &ModelFiles) -> Result<PathBuf> {
    let dir = static_dir(files);
    if is_complete(&dir) {
        return Ok(dir);
    }
    // One process distils; others starting at the same time wait for it.
    let lock_path = files.dir.join(".static.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("{}: cannot create", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        bail!("{}: cannot lock", lock_path.display());
    }
    if !is_complete(&dir) {
        eprintln!(
            "vigil: distilling the static embedding model from {} (once, ~20 s)",
            files.onnx().display()
        );
        distil(files)?;
    }
    Ok(dir)
}

/// Distils the static model of `files` into [`static_dir`], replacing any there. Written in
/// a temporary directory and renamed into place, so a crash leaves no half model.
///
/// Errors: ONNX Runtime or the model cannot be loaded or run, the tokenizer cannot be read,
/// or the directory cannot be written (each names its path).
pub fn distil(files: &ModelFiles) -> Result<PathBuf> {
    let tokenizer_path = files.tokenizer();
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        anyhow!(
            "{}: cannot load the tokenizer: {e}",
            tokenizer_path.display()
        )
    })?;
    let vocab = tokenizer.get_vocab_size(true);
    let special = |t: &str| {
        tokenizer
            .token_to_id(t)
            .with_context(|| format!("{}: no {t} token", tokenizer_path.display()))
    };
    let (cls, sep, pad) = (special("[CLS]")?, special("[SEP]")?, special("[PAD]")?);
    let ids: Vec<u32> = (0..vocab as u32)
        .filter(|&id| {
            id != pad
                && tokenizer
                    .id_to_token(id)
                    .is_some_and(|t| !t.starts_with("[unused"))
        })
        .collect();

    let env = crate::pipeline::embed::environment(files)?;
    let onnx = files.onnx();
    let cannot_load =
        |e: &dyn std::fmt::Display| anyhow!("{}: cannot load the model: {e}", onnx.display());
    let mut session = ort::session::Session::builder(&env)
        .map_err(|e| cannot_load(&e))?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)
        .map_err(|e| cannot_load(&e))?
        .commit_from_file(&onnx)
        .map_err(|e| cannot_load(&e))?;

    let mut table = vec![0f32; vocab * MODEL_DIMS];
    for batch in ids.chunks(BATCH) {
        let n = batch.len();
        let input_ids: Vec<i64> = batch
            .iter()
            .flat_map(|&id| [cls as i64, id as i64, sep as i64])
            .collect();
        let tensor = |v: Vec<i64>| ort::value::Tensor::from_array(([n, 3], v));
        let inputs = ort::inputs![
            "input_ids" => tensor(input_ids)?,
            "attention_mask" => tensor(vec![1; n * 3])?,
            "token_type_ids" => tensor(vec![0; n * 3])?,
        ];
        let outputs = session
            .run(inputs)
            .map_err(|e| anyhow!("{}: distillation run failed: {e}", onnx.display()))?;
        let (shape, data) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow!("{}: unexpected output: {e}", onnx.display()))?;
        if shape.len() != 3 || shape[2] as usize != MODEL_DIMS {
            bail!(
                "{}: output shape {shape:?}, expected [n, 3, {MODEL_DIMS}]",
                onnx.display()
            );
        }
        for (i, &id) in batch.iter().enumerate() {
            // Position 1 of `[CLS] token [SEP]`.
            let from = (i * 3 + 1) * MODEL_DIMS;
            let to = id as usize * MODEL_DIMS;
            table[to..to + MODEL_DIMS].copy_from_slice(&data[from..from + MODEL_DIMS]);
        }
    }

    // SIF weights from Zipf on vocabulary rank (ranks of the distilled ids, from 2).
    let harmonic: f64 = (0..ids.len()).map(|r| 1.0 / (r as f64 + 2.0)).sum();
    for (r, &id) in ids.iter().enumerate() {
        let p = 1.0 / (r as f64 + 2.0) / harmonic;
        let weight = (SIF_A / (SIF_A + p)) as f32;
        let row = &mut table[id as usize * MODEL_DIMS..(id as usize + 1) * MODEL_DIMS];
        for x in row {
            *x *= weight;
        }
    }

    write(files, &table, vocab)
}

fn write(files: &ModelFiles, table: &[f32], vocab: usize) -> Result<PathBuf> {
    let dir = static_dir(files);
    let tmp = tempfile::Builder::new()
        .prefix(".static-")
        .tempdir_in(&files.dir)
        .with_context(|| format!("{}: cannot create a folder", files.dir.display()))?;
    let bytes: Vec<u8> = table.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![vocab, MODEL_DIMS],
        &bytes,
    )
    .map_err(|e| anyhow!("static model: {e}"))?;
    let safetensors_path = tmp.path().join("model.safetensors");
    safetensors::serialize_to_file([("embeddings", view)], &None, &safetensors_path)
        .map_err(|e| anyhow!("{}: cannot write: {e}", safetensors_path.display()))?;
    std::fs::copy(files.tokenizer(), tmp.path().join("tokenizer.json"))
        .with_context(|| format!("{}: cannot copy", files.tokenizer().display()))?;
    let config = serde_json::json!({
        "model_type": "model2vec",
        "normalize": true,
        "hidden_dim": MODEL_DIMS,
        "apply_pca": null,
        "apply_zipf": true,
        "sif_coefficient": SIF_A,
        "distilled_from": crate::model::MODEL_NAME,
    });
    std::fs::write(tmp.path().join("config.json"), config.to_string())
        .with_context(|| format!("{}: cannot write", tmp.path().display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &dir).with_context(|| format!("{}: cannot write", dir.display()))?;
    Ok(dir)
}
