//! Bounded storage: history older or more than the retention allows is removed, embeddings
//! no chunk has used for the grace period are removed, and the redb file is compacted when
//! that freed at least half of it.

use std::time::Duration;

use anyhow::Result;

use super::Engine;

/// How often a long-running vigil collects garbage.
pub const GC_INTERVAL: Duration = Duration::from_secs(3600);

/// What one garbage collection did.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcStats {
    pub history_removed: u64,
    /// Unused embeddings still inside their grace period.
    pub embeddings_unused: u64,
    pub embeddings_removed: u64,
    /// Whether the redb file was compacted.
    pub compacted: bool,
}

impl Engine {
    /// Retention settings for the next collections.
    pub fn set_retention(&mut self, retention: crate::settings::Retention) {
        self.config.retention = retention;
    }

    /// Applies the retention settings (see [`crate::settings::Retention`]) once.
    ///
    /// Errors: the store cannot be written.
    pub fn collect_garbage(&mut self) -> Result<GcStats> {
        let retention = self.config.retention;
        let now = crate::records::now_ms();
        let history_removed = self.store.prune_history(
            now.saturating_sub(retention.history_max_age.as_millis() as u64),
            retention.history_max_rows,
        )?;
        let (embeddings_unused, embeddings_removed) = self
            .store
            .collect_unused_vectors(now, retention.unused_embeddings.as_millis() as u64)?;
        let compacted = if history_removed + embeddings_removed > 0 {
            self.store.compact_if_worthwhile()?
        } else {
            false
        };
        let stats = GcStats {
            history_removed,
            embeddings_unused,
            embeddings_removed,
            compacted,
        };
        if history_removed + embeddings_removed > 0 {
            tracing::info!(
                history_removed,
                embeddings_removed,
                embeddings_unused,
                compacted,
                "garbage collected"
            );
            self.publish(self.status.get().phase);
        }
        Ok(stats)
    }
}
