//! Upkeep: what keeps the store bounded — history retention, compaction, and the bytes each
//! part takes on disk.

use anyhow::Result;

use super::*;

impl Store {
    /// Removes history rows older than `min_time_ms`, and the oldest rows beyond `max_rows`.
    /// Returns how many were removed.
    pub fn prune_history(&self, min_time_ms: u64, max_rows: u64) -> Result<u64> {
        let tx = self.begin_write()?;
        let mut removed = 0;
        {
            let mut history = tx.open_table(HISTORY)?;
            let excess = history.len()?.saturating_sub(max_rows);
            let mut doomed = Vec::new();
            for item in history.iter()? {
                let (k, v) = item?;
                let old = (doomed.len() as u64) < excess
                    || from_json::<HistoryRow>(v.value(), "history")?.time_ms < min_time_ms;
                if !old {
                    // Rows are in time order: the rest are newer.
                    break;
                }
                doomed.push(k.value());
            }
            for seq in doomed {
                history.remove(&seq)?;
                removed += 1;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Compacts the file when at least half of it is free pages (after garbage collection),
    /// so the index gives disk space back (files under 512 KiB are left alone: redb's own
    /// floor is about that). Waits for readers to finish their call; returns
    /// whether it compacted (`false` when little is free, or a reader holds a transaction).
    pub fn compact_if_worthwhile(&self) -> Result<bool> {
        let (stored, allocated) = {
            let tx = self.begin_write()?;
            let stats = tx.stats()?;
            let allocated = stats.allocated_pages() * stats.page_size() as u64;
            let stored = stats.stored_bytes() + stats.metadata_bytes();
            tx.abort()?;
            (stored, allocated)
        };
        // The file keeps the space freed inside it: that is what compaction gives back.
        let file = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let total = allocated.max(file);
        tracing::debug!(stored, total, "store compaction check");
        if total < 512 << 10 || stored * 2 > total {
            return Ok(false);
        }
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        let Db::Writable(db) = &mut *db else {
            return Ok(false);
        };
        match db.compact() {
            Ok(done) => Ok(done),
            Err(redb::CompactionError::TransactionInProgress) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes of live data per table (keys, values and their share of tree pages).
    pub fn table_bytes(&self) -> Result<TableBytes> {
        let tx = self.begin_read()?;
        Ok(TableBytes {
            files: tx.open_table(FILES)?.stats()?.stored_bytes(),
            chunks: tx.open_table(CHUNKS)?.stats()?.stored_bytes()
                + tx.open_multimap_table(CHUNKS_BY_HASH)?
                    .stats()?
                    .stored_bytes(),
            vectors: tx.open_table(VECTORS)?.stats()?.stored_bytes(),
            static_vectors: tx.open_table(STATIC_VECTORS)?.stats()?.stored_bytes(),
            history: tx.open_table(HISTORY)?.stats()?.stored_bytes(),
        })
    }
}

/// Figures about the store, cheap to compute (table lengths).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreCounts {
    pub files: u64,
    pub chunks: u64,
    /// Transformer-tier vectors.
    pub vectors: u64,
    /// Static-tier vectors.
    #[serde(default)]
    pub static_vectors: u64,
    pub history: u64,
}

/// Bytes of live data per table, as [`Store::table_bytes`] measures them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableBytes {
    pub files: u64,
    pub chunks: u64,
    pub vectors: u64,
    #[serde(default)]
    pub static_vectors: u64,
    pub history: u64,
}

impl Store {
    /// Table sizes.
    pub fn counts(&self) -> Result<StoreCounts> {
        let tx = self.begin_read()?;
        Ok(StoreCounts {
            files: tx.open_table(FILES)?.len()?,
            chunks: tx.open_table(CHUNKS)?.len()?,
            vectors: tx.open_table(VECTORS)?.len()?,
            static_vectors: tx.open_table(STATIC_VECTORS)?.len()?,
            history: tx.open_table(HISTORY)?.len()?,
        })
    }
}
