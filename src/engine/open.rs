//! Open: the index opened for writing — created or checked, an interrupted batch repaired,
//! the vector graphs loaded or rebuilt, and everything re-chunked when the chunker or the
//! document limits changed. Also who owns an index, and the settings it was built with.

use super::*;

/// How long a writer waits for another process (e.g. a `vigil status` reading the index
/// directly) to release the index.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// `index_dir/vigil.pid`: names the process that owns the index, for error messages.
pub(super) struct PidFile(pub(super) PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The roots and filters the index was last reconciled with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredSettings {
    pub roots: Vec<RootSpec>,
    /// Bytes.
    pub max_file_size: u64,
    #[serde(default)]
    pub s3: crate::s3::S3Options,
    /// Bounds on extracting documents, so `verify` extracts them as the index did.
    #[serde(default)]
    pub documents: crate::settings::DocumentLimits,
}

/// Reads the stored settings of an index (`None` for an index never reconciled).
pub fn stored_settings(store: &Store) -> Result<Option<StoredSettings>> {
    match store.setting("settings")? {
        Some(json) => Ok(Some(
            serde_json::from_str(&json).context("corrupt settings in the index")?,
        )),
        None => Ok(None),
    }
}

/// Reads who owns the index, for "in use" messages.
pub fn owner_of(index_dir: &Path) -> Option<String> {
    std::fs::read_to_string(index_dir.join("vigil.pid"))
        .ok()
        .map(|s| s.trim().to_string())
}

impl Engine {
    /// Opens (or creates) the index for writing, repairs an interrupted batch, and loads or
    /// rebuilds the vector index.
    ///
    /// Errors: another process holds the index (named in the message), the index is of
    /// another schema version, or its files cannot be opened.
    pub fn open(config: EngineConfig) -> Result<Self> {
        let dir = &config.index_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the index directory", dir.display()))?;
        let store = Store::open(dir, OPEN_WAIT).map_err(|e| match owner_of(dir) {
            Some(owner) => e.context(format!("held by {owner}")),
            None => e,
        })?;
        let pid_path = dir.join("vigil.pid");
        let args: Vec<String> = std::env::args().collect();
        std::fs::write(
            &pid_path,
            format!("pid {} ({})\n", std::process::id(), args.join(" ")),
        )
        .with_context(|| format!("{}: cannot write", pid_path.display()))?;
        let pid_file = PidFile(pid_path);
        let text = TextIndex::open(&dir.join("text"), true)?;
        // Chunks are sized in the models' tokens (both tiers share the tokenizer).
        let tokenizer_path = match (&config.model, &config.static_model) {
            (Some(m), _) => Some(m.tokenizer()),
            (None, Some(dir)) => Some(dir.join("tokenizer.json")),
            (None, None) => None,
        };
        let tokenizer = match tokenizer_path {
            Some(path) => Some(tokenizers::Tokenizer::from_file(&path).map_err(|e| {
                anyhow::anyhow!("{}: cannot load the tokenizer: {e}", path.display())
            })?),
            None => None,
        };
        let chunker = Chunker::new(tokenizer);
        let store = Arc::new(store);
        let mut engine = Self {
            scanner: Scanner::new(config.max_file_size, dir, &config.roots)?,
            next_chunk_id: store.next_chunk_id()?,
            store,
            text: Arc::new(text),
            vectors: None,
            static_tier: None,
            chunker: Arc::new(chunker),
            embeds: SharedEmbedQueue::default(),
            status: StatusCell::default(),
            file_states: [0; 3],
            metrics: Arc::new(Metrics::new()),
            retries: retry::Retries::default(),
            cancel: Arc::default(),
            live: false,
            activity: Vec::new(),
            query: crate::search::QueryEmbedder::new(
                config.model.clone(),
                crate::pipeline::embed::Load::Query,
            ),
            heartbeat: Arc::default(),
            _pid_file: pid_file,
            config,
        };
        engine.repair()?;
        engine.extract_again_on_new_limits()?;
        engine.save_settings()?;
        engine.file_states = count_states(&engine.store)?;
        if let Some(dir) = engine.config.static_model.clone() {
            engine.open_static_tier(&dir)?;
        }
        if engine.config.model.is_some() {
            engine.check_model()?;
            engine.vectors = Some(Arc::new(
                engine.load_vectors(crate::settings::Tier::Transformer)?,
            ));
            engine.queue_missing_embeddings()?;
        }
        engine.publish(Phase::Starting);
        Ok(engine)
    }

    /// Step 0 of the commit protocol: a batch interrupted between its intent and its redb
    /// commit left paths in `pending`. Forget those paths everywhere (tantivy docs, records,
    /// chunks); the next reconcile indexes them again from the disk, reusing cached
    /// embeddings. Also forgets everything when the chunking rules changed.
    pub(super) fn repair(&mut self) -> Result<()> {
        let pending = self.store.pending()?;
        // An index built by an older vigil: other chunking rules, or a text index of another
        // schema (emptied on open). Everything is chunked and indexed again; embeddings are
        // reused wherever the embedded text is unchanged.
        let chunker_changed = self.store.setting("chunker")?.as_deref()
            != Some(self.chunker.fingerprint())
            || self.text.recreated();
        let forget: Vec<Vec<u8>> = if chunker_changed {
            // Every file, and the paths of an interrupted batch that have no record yet.
            let mut keys: Vec<Vec<u8>> = self
                .store
                .all_files()?
                .into_iter()
                .map(|(k, _)| k)
                .chain(pending)
                .collect();
            keys.sort();
            keys.dedup();
            keys
        } else {
            pending
        };
        if !forget.is_empty() {
            if chunker_changed && self.store.setting("chunker")?.is_some() {
                tracing::warn!(
                    files = forget.len(),
                    "this index was built by an older vigil: every file is chunked and \
                     indexed again (cached embeddings are reused where the text is unchanged)"
                );
            } else {
                tracing::info!(
                    paths = forget.len(),
                    "repairing paths of an interrupted batch"
                );
            }
            let why = if chunker_changed {
                "re-chunking: the chunking rules changed"
            } else {
                "repair: interrupted batch"
            };
            self.forget(&forget, why)?;
        }
        if chunker_changed {
            self.store
                .set_setting("chunker", self.chunker.fingerprint())?;
        }
        Ok(())
    }

    /// When the document limits differ from those the index was built with, forgets every
    /// document (PDF, notebook, …), so the next reconcile extracts them again under the new
    /// limits: a raised timeout may now be enough, a lowered one may now be too short, and
    /// the index stays what `verify` expects under the limits in force.
    pub(super) fn extract_again_on_new_limits(&mut self) -> Result<()> {
        let Some(stored) = stored_settings(&self.store)? else {
            return Ok(());
        };
        if stored.documents == self.config.documents {
            return Ok(());
        }
        let documents: Vec<Vec<u8>> = self
            .store
            .all_files()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| crate::pipeline::extract::Format::of(&key_path(k)).is_some())
            .collect();
        if !documents.is_empty() {
            tracing::info!(
                documents = documents.len(),
                "document limits changed: extracting every document again"
            );
            self.forget(&documents, "document limits changed")?;
        }
        Ok(())
    }

    /// Records the roots and filters in the store, so `vigil verify` can judge the disk by
    /// the same rules without being told them again.
    pub(super) fn save_settings(&self) -> Result<()> {
        let settings = StoredSettings {
            roots: self.config.roots.clone(),
            max_file_size: self.config.max_file_size,
            s3: self.config.s3.clone(),
            documents: self.config.documents,
        };
        self.store
            .set_setting("settings", &serde_json::to_string(&settings)?)
    }
}
