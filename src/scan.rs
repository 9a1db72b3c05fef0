//! scan: what is on disk now, and which of it do we index?
//!
//! The one place where filtering happens. Directory trees are walked with the `ignore` crate
//! (`.gitignore` — also outside git repositories —, `.ignore`, hidden files skipped), plus
//! vigil's default excludes and the index directory itself. A single path reported by the
//! watcher is judged by the same walker: it is admitted exactly when walking its parent
//! directory (depth 1) yields it and its parent is admitted in turn, up to the root.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::{DirEntry, WalkBuilder};

/// Directory names never entered.
pub const DEFAULT_EXCLUDED_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "dist",
    "build",
    "__pycache__",
    ".venv",
];
/// File-name globs never indexed: editor swap, backup and temp files.
pub const DEFAULT_EXCLUDED_FILES: &[&str] =
    &["*.swp", "*.swo", "*.swx", "*~", ".#*", "*.tmp", "#*#"];
/// Default maximum file size, bytes (10 MiB).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// What the scan found at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A regular file to index (if changed).
    File {
        path: PathBuf,
        size: u64,
        mtime_ns: i128,
    },
    /// A file that passes the filters but is not indexed, with the reason.
    Skipped {
        path: PathBuf,
        size: u64,
        mtime_ns: i128,
        reason: String,
    },
    /// A path that could not be read (e.g. a directory without permission).
    Failed { path: PathBuf, reason: String },
}

impl Found {
    pub fn path(&self) -> &Path {
        match self {
            Found::File { path, .. } | Found::Skipped { path, .. } | Found::Failed { path, .. } => {
                path
            }
        }
    }
}

/// Filtering rules shared by full walks and single-path checks.
#[derive(Clone)]
pub struct Scanner {
    max_file_size: u64,
    /// Canonical index directory: never indexed.
    index_dir: PathBuf,
    excluded_files: GlobSet,
    /// Per-root include/exclude globs, matched on the path relative to the root.
    roots: Vec<RootRules>,
}

#[derive(Clone)]
struct RootRules {
    root: PathBuf,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn glob_set(globs: &[String]) -> Result<Option<GlobSet>, globset::Error> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g)?);
    }
    b.build().map(Some)
}

/// Modification time of `meta`, ns since the Unix epoch.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
}

impl Scanner {
    /// Rules with a size limit in bytes and per-root globs; `index_dir` is excluded wherever
    /// it appears.
    ///
    /// Errors: an invalid include or exclude glob.
    pub fn new(
        max_file_size: u64,
        index_dir: &Path,
        roots: &[crate::settings::RootSpec],
    ) -> anyhow::Result<Self> {
        let mut globs = GlobSetBuilder::new();
        for g in DEFAULT_EXCLUDED_FILES {
            globs.add(Glob::new(g).expect("default globs are valid"));
        }
        let roots = roots
            .iter()
            .map(|r| {
                Ok(RootRules {
                    root: r.path.clone(),
                    include: glob_set(&r.include)?,
                    exclude: glob_set(&r.exclude)?,
                })
            })
            .collect::<Result<Vec<_>, globset::Error>>()?;
        Ok(Self {
            max_file_size,
            index_dir: index_dir
                .canonicalize()
                .unwrap_or_else(|_| index_dir.to_path_buf()),
            excluded_files: globs.build().expect("default globs are valid"),
            roots,
        })
    }

    /// Whether the root's include/exclude globs leave out this entry.
    fn excluded_by_root(&self, path: &Path, is_dir: bool) -> bool {
        let Some(rules) = self
            .roots
            .iter()
            .filter(|r| path.starts_with(&r.root))
            .max_by_key(|r| r.root.as_os_str().len())
        else {
            return false;
        };
        let Ok(rel) = path.strip_prefix(&rules.root) else {
            return false;
        };
        if rules.exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
            return true;
        }
        !is_dir && rules.include.as_ref().is_some_and(|g| !g.is_match(rel))
    }

    /// Whether an object under an object-storage root passes the filters a walked file
    /// would: no hidden segment, no default-excluded directory or file name, and the root's
    /// include/exclude globs (on the key relative to the root, and on each of its
    /// "directories").
    pub fn admits_object(&self, root: &Path, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(root) else {
            return false;
        };
        let names: Vec<&std::ffi::OsStr> = rel.iter().collect();
        let mut sub = root.to_path_buf();
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let text = name.to_string_lossy();
            sub.push(name);
            let excluded = text.starts_with('.')
                || if last {
                    self.excluded_files.is_match(text.as_ref())
                } else {
                    DEFAULT_EXCLUDED_DIRS.contains(&text.as_ref())
                };
            if excluded || self.excluded_by_root(&sub, !last) {
                return false;
            }
        }
        !names.is_empty()
    }

    /// Whether `path` is the index directory or inside it (never indexed; its own writes
    /// must not make work).
    pub fn is_index_path(&self, path: &Path) -> bool {
        path.starts_with(&self.index_dir)
    }

    /// Largest file indexed, bytes.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    fn excluded(&self, entry: &DirEntry) -> bool {
        let name = entry.file_name().to_string_lossy();
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        let by_name = if is_dir {
            DEFAULT_EXCLUDED_DIRS.contains(&name.as_ref()) || entry.path() == self.index_dir
        } else {
            self.excluded_files.is_match(name.as_ref())
        };
        by_name || self.excluded_by_root(entry.path(), is_dir)
    }

    fn walker(&self, dir: &Path, max_depth: Option<usize>) -> WalkBuilder {
        let mut b = WalkBuilder::new(dir);
        b.standard_filters(true)
            .require_git(false)
            .follow_links(false)
            .max_depth(max_depth);
        let this = self.clone();
        b.filter_entry(move |e| e.depth() == 0 || !this.excluded(e));
        b
    }

    /// Every admitted file below `dir` (which must itself be admitted), in walk order.
    pub fn walk(&self, dir: &Path) -> Vec<Found> {
        let mut out = Vec::new();
        for result in self.walker(dir, None).build() {
            match result {
                Ok(entry) => {
                    if let Some(found) = self.judge(&entry) {
                        out.push(found);
                    }
                }
                // A directory that vanished mid-walk is absent, not failed.
                Err(err)
                    if err
                        .io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) => {}
                Err(err) => out.push(walk_error(dir, err)),
            }
        }
        out
    }

    /// Classifies one walked entry; `None` for directories and symlinks (not followed).
    fn judge(&self, entry: &DirEntry) -> Option<Found> {
        let file_type = entry.file_type()?;
        if file_type.is_dir() || file_type.is_symlink() {
            return None;
        }
        let path = entry.path().to_path_buf();
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Gone since it was listed: absent, not failed.
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                return None;
            }
            Err(e) => {
                return Some(Found::Failed {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let (size, mtime_ns) = (meta.len(), mtime_ns(&meta));
        if !file_type.is_file() {
            let reason = "not a regular file (FIFO, socket or device)".to_string();
            return Some(Found::Skipped {
                path,
                size: 0,
                mtime_ns,
                reason,
            });
        }
        if size > self.max_file_size {
            let reason = format!(
                "larger than the size limit ({size} bytes > {} bytes)",
                self.max_file_size
            );
            return Some(Found::Skipped {
                path,
                size,
                mtime_ns,
                reason,
            });
        }
        Some(Found::File {
            path,
            size,
            mtime_ns,
        })
    }
}

fn walk_error(dir: &Path, err: ignore::Error) -> Found {
    fn path_of(err: &ignore::Error) -> Option<PathBuf> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path.clone()),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                path_of(err)
            }
            _ => None,
        }
    }
    let path = path_of(&err).unwrap_or_else(|| dir.to_path_buf());
    let reason = match err.io_error() {
        Some(io) => io.to_string(),
        None => err.to_string(),
    };
    Found::Failed { path, reason }
}

/// Judges single paths reported by the watcher, with the same rules as [`Scanner::walk`].
/// Directory listings are cached for the life of one batch.
pub struct Admission<'a> {
    scanner: &'a Scanner,
    /// dir → (names the walker admits in it, what it found for files there).
    listings: HashMap<PathBuf, HashMap<OsString, Option<Found>>>,
}

impl<'a> Admission<'a> {
    pub fn new(scanner: &'a Scanner) -> Self {
        Self {
            scanner,
            listings: HashMap::new(),
        }
    }

    fn listing(&mut self, dir: &Path) -> &HashMap<OsString, Option<Found>> {
        let scanner = self.scanner;
        self.listings.entry(dir.to_path_buf()).or_insert_with(|| {
            let mut names = HashMap::new();
            for entry in scanner.walker(dir, Some(1)).build().flatten() {
                if entry.depth() == 1 {
                    names.insert(entry.file_name().to_os_string(), scanner.judge(&entry));
                }
            }
            names
        })
    }

    /// Whether `path` (inside `root`) is admitted by the filters: itself and every directory
    /// between it and the root. The root is always admitted.
    pub fn admits(&mut self, root: &Path, path: &Path) -> bool {
        if path == root {
            return true;
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        if !path.starts_with(root)
            || DEFAULT_EXCLUDED_DIRS.iter().any(|d| {
                path.strip_prefix(root)
                    .is_ok_and(|rel| rel.iter().any(|c| c == *d))
            })
        {
            return false;
        }
        self.admits(root, parent) && self.listing(parent).contains_key(name)
    }

    /// The admitted entries directly in directory `dir` (inside `root`): files with what the
    /// scan finds for them, and the names of admitted subdirectories. Empty when `dir` itself
    /// is not admitted.
    pub fn children(&mut self, root: &Path, dir: &Path) -> (Vec<Found>, Vec<OsString>) {
        if !self.admits(root, dir) {
            return (Vec::new(), Vec::new());
        }
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for (name, found) in self.listing(dir) {
            match found {
                Some(f) => files.push(f.clone()),
                None if std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_dir()) => {
                    dirs.push(name.clone())
                }
                None => {}
            }
        }
        (files, dirs)
    }

    /// What the scan finds at `path` if it is an admitted file (`None` for directories,
    /// symlinks, vanished or excluded paths).
    pub fn found(&mut self, root: &Path, path: &Path) -> Option<Found> {
        if !self.admits(root, path) {
            return None;
        }
        let (parent, name) = (path.parent()?, path.file_name()?);
        self.listing(parent).get(name).cloned().flatten()
    }
}
