//! The benches' corpus: the Rust sources of some of vigil's own dependencies, read from the
//! cargo registry (present wherever vigil was built).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

/// Crates whose sources form the corpus (versions pinned by Cargo.lock).
pub const CORPUS: &[&str] = &[
    "tantivy-0.27.0",
    "redb-4.5.0",
    "notify-8.2.1",
    "text-splitter-0.33.1",
    "ignore-0.4.34",
];

/// The registry's source directory that holds the corpus crates.
pub fn registry_src() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    })?);
    let src = home.join("registry").join("src");
    std::fs::read_dir(src)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(CORPUS[0]).is_dir())
}

/// Every file of the corpus: (path relative to the registry, content).
pub fn corpus_files() -> Option<Vec<(String, Vec<u8>)>> {
    let src = registry_src()?;
    let mut out = Vec::new();
    for krate in CORPUS {
        for entry in ignore::WalkBuilder::new(src.join(krate))
            .standard_filters(false)
            .build()
            .flatten()
        {
            if entry.file_type().is_some_and(|t| t.is_file()) {
                let rel = entry.path().strip_prefix(&src).unwrap();
                out.push((rel.display().to_string(), std::fs::read(entry.path()).ok()?));
            }
        }
    }
    Some(out)
}

/// Items per second.
pub fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}
