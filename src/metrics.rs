//! metrics: how is vigil performing, in Prometheus terms?
//!
//! Counters, gauges and histograms registered with `prometheus-client` and rendered in the
//! OpenMetrics text format at `GET /metrics`. The engine, the service loop and the watcher
//! record into one shared [`Metrics`]; durations are in seconds.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A `kind` label (event kind, change kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

/// A `stage` label (read, embed, commit, watch).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    pub stage: String,
}

/// An `outcome` label (ok, error).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

/// Every metric vigil exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub events_received: Family<Kind, Counter>,
    pub debounced_batches: Counter,
    pub changes_applied: Family<Kind, Counter>,
    pub errors: Family<Stage, Counter>,
    pub watches_active: Gauge,
    pub queue_depth: Gauge,
    pub files: Gauge,
    pub chunks: Gauge,
    pub embeddings_computed: Counter,
    pub embeddings_reused: Counter,
    pub hash_seconds: Histogram,
    pub chunk_seconds: Histogram,
    pub embed_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub save_to_searchable_seconds: Histogram,
    /// Polls of object-storage roots, by outcome (`ok`, `error`).
    pub s3_polls: Family<Outcome, Counter>,
    /// Objects listed by polls of object-storage roots.
    pub s3_objects_listed: Counter,
    /// Objects downloaded (new or changed ETag), and their bytes.
    pub s3_downloads: Counter,
    pub s3_download_bytes: Counter,
    pub s3_poll_seconds: Histogram,
    /// API requests answered (socket, TCP, MCP through the socket), by endpoint.
    pub api_requests: Family<Endpoint, Counter>,
    /// API requests being answered right now (concurrent agents show here).
    pub api_in_flight: Gauge,
    /// The most answered at once since the start.
    pub api_in_flight_max: Gauge,
}

/// Label: an API endpoint (`search`, `status`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Endpoint {
    pub endpoint: String,
}

/// 100 µs … ~52 s in 20 factor-2 buckets.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self {
            registry: Mutex::new(Registry::with_prefix("vigil")),
            events_received: Family::default(),
            debounced_batches: Counter::default(),
            changes_applied: Family::default(),
            errors: Family::default(),
            watches_active: Gauge::default(),
            queue_depth: Gauge::default(),
            files: Gauge::default(),
            chunks: Gauge::default(),
            embeddings_computed: Counter::default(),
            embeddings_reused: Counter::default(),
            hash_seconds: seconds_histogram(),
            chunk_seconds: seconds_histogram(),
            embed_seconds: seconds_histogram(),
            commit_seconds: seconds_histogram(),
            save_to_searchable_seconds: seconds_histogram(),
            s3_polls: Family::default(),
            s3_objects_listed: Counter::default(),
            s3_downloads: Counter::default(),
            s3_download_bytes: Counter::default(),
            s3_poll_seconds: seconds_histogram(),
            api_requests: Family::default(),
            api_in_flight: Gauge::default(),
            api_in_flight_max: Gauge::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "events_received",
                "File-system events delivered by the debouncer, by kind",
                m.events_received.clone(),
            );
            r.register(
                "debounced_batches",
                "Debounced deliveries of events",
                m.debounced_batches.clone(),
            );
            r.register(
                "changes_applied",
                "Changes applied to the index, by kind",
                m.changes_applied.clone(),
            );
            r.register("errors", "Errors, by stage", m.errors.clone());
            r.register(
                "watches_active",
                "Directories under watch",
                m.watches_active.clone(),
            );
            r.register(
                "queue_depth",
                "Changed paths waiting to be applied",
                m.queue_depth.clone(),
            );
            r.register("files", "Files indexed", m.files.clone());
            r.register(
                "api_requests",
                "API requests answered, by endpoint",
                m.api_requests.clone(),
            );
            r.register(
                "api_in_flight",
                "API requests being answered now",
                m.api_in_flight.clone(),
            );
            r.register(
                "api_in_flight_max",
                "Most API requests answered at once since the start",
                m.api_in_flight_max.clone(),
            );
            r.register(
                "s3_polls",
                "Polls of object-storage roots, by outcome",
                m.s3_polls.clone(),
            );
            r.register(
                "s3_objects_listed",
                "Objects listed by polls of object-storage roots",
                m.s3_objects_listed.clone(),
            );
            r.register(
                "s3_downloads",
                "Objects downloaded from object storage (new or changed ETag)",
                m.s3_downloads.clone(),
            );
            r.register(
                "s3_download_bytes",
                "Bytes downloaded from object storage",
                m.s3_download_bytes.clone(),
            );
            r.register(
                "s3_poll_duration_seconds",
                "Time of one poll of an object-storage root (listing, downloads, commits)",
                m.s3_poll_seconds.clone(),
            );
            r.register("chunks", "Chunks in the index", m.chunks.clone());
            r.register(
                "embeddings_computed",
                "Chunk embeddings computed",
                m.embeddings_computed.clone(),
            );
            r.register(
                "embeddings_reused",
                "Chunk embeddings reused from the cache",
                m.embeddings_reused.clone(),
            );
            r.register(
                "hash_duration_seconds",
                "Time to read and hash one file",
                m.hash_seconds.clone(),
            );
            r.register(
                "chunk_duration_seconds",
                "Time to chunk one file",
                m.chunk_seconds.clone(),
            );
            r.register(
                "embed_duration_seconds",
                "Time to embed one batch of chunks",
                m.embed_seconds.clone(),
            );
            r.register(
                "commit_duration_seconds",
                "Time to commit one batch (redb and tantivy)",
                m.commit_seconds.clone(),
            );
            r.register(
                "save_to_searchable_seconds",
                "From a file's modification time to its change being searchable (watch mode)",
                m.save_to_searchable_seconds.clone(),
            );
        }
        m
    }

    /// Counts one event of `kind`.
    pub fn event(&self, kind: &str) {
        self.events_received
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts one applied change of `kind`.
    pub fn change(&self, kind: &str) {
        self.changes_applied
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts one error in `stage`.
    pub fn s3_poll(&self, outcome: &str) {
        self.s3_polls
            .get_or_create(&Outcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn error(&self, stage: &str) {
        self.errors
            .get_or_create(&Stage {
                stage: stage.to_string(),
            })
            .inc();
    }

    /// Records a duration in a histogram.
    pub fn time(histogram: &Histogram, d: Duration) {
        histogram.observe(d.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.change("created");
        m.change("created");
        m.error("read");
        Metrics::time(&m.commit_seconds, Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains("vigil_changes_applied_total{kind=\"created\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("vigil_errors_total{stage=\"read\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigil_commit_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
