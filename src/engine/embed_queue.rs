//! The queue of chunk texts waiting for an embedding, and what happens when embedding fails.
//!
//! A failed batch is never dropped: its texts go back to the front of the queue and the
//! queue pauses on capped exponential backoff. Two kinds of failure are told apart:
//! - the model cannot be loaded (a missing or corrupt file, an ONNX Runtime that will not
//!   load): nothing is wrong with the texts, so they wait, however long, until it loads;
//! - the model ran and failed on a batch: its texts are then tried one at a time, so that
//!   one text the model cannot take never holds the others back. A text that fails
//!   [`MAX_TEXT_ATTEMPTS`] times on its own is set aside (counted, logged with its reason)
//!   until the next start or until the text changes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// First pause after a failure; each further consecutive failure doubles it.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// Longest pause between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Attempts of one text on its own before it is set aside.
pub const MAX_TEXT_ATTEMPTS: u32 = 4;

/// Why a batch of texts got no vectors.
#[derive(Debug, Clone)]
pub enum EmbedFailure {
    /// The model could not be loaded; the texts are not at fault.
    Model(String),
    /// The model failed on this batch.
    Batch(String),
}

impl std::fmt::Display for EmbedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Model(m) => write!(f, "the model cannot be loaded: {m}"),
            Self::Batch(m) => write!(f, "{m}"),
        }
    }
}

/// Distinct chunk-text hashes without an embedding, oldest first, with the failure state.
#[derive(Debug, Default)]
pub struct EmbedQueue {
    queue: VecDeque<[u8; 32]>,
    queued: HashSet<[u8; 32]>,
    /// Taken by [`EmbedQueue::take`], not yet reported back.
    in_flight: HashSet<[u8; 32]>,
    /// Failed attempts per text (texts that failed in a batch are retried alone).
    attempts: HashMap<[u8; 32], u32>,
    /// Texts set aside after [`MAX_TEXT_ATTEMPTS`].
    set_aside: HashSet<[u8; 32]>,
    /// Consecutive failed batches, and when the queue may run again.
    failures: u32,
    paused_until: Option<Instant>,
    last_error: Option<String>,
}

impl EmbedQueue {
    /// Queues a text unless it is queued already or was set aside.
    pub fn push(&mut self, hash: [u8; 32]) {
        if !self.set_aside.contains(&hash) && self.queued.insert(hash) {
            self.queue.push_back(hash);
        }
    }

    /// Queues a text ahead of the others (a live edit: what the user is working on now is
    /// embedded first), or moves it there if it was queued already; unless it was set aside.
    pub fn push_front(&mut self, hash: [u8; 32]) {
        if self.set_aside.contains(&hash) {
            return;
        }
        if self.queued.insert(hash) {
            self.queue.push_front(hash);
        } else {
            self.promote(hash);
        }
    }

    /// Moves a queued text to the front (it appeared in search results); a text not queued
    /// (embedded, in flight, set aside, or no transformer tier) is left alone.
    pub fn promote(&mut self, hash: [u8; 32]) {
        if self.queued.contains(&hash)
            && let Some(at) = self.queue.iter().position(|h| *h == hash)
        {
            self.queue.remove(at);
            self.queue.push_front(hash);
        }
    }

    /// Texts waiting (including those waiting for a retry), not counting those set aside.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Texts waiting after a failure: retried, or set aside.
    pub fn failing(&self) -> usize {
        self.attempts.len() + self.set_aside.len()
    }

    /// The reason of the last failure, while the queue has not recovered from it.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether `hash` waits for an embedding: queued, being embedded, or set aside after
    /// failures (reported by `status`, not lost).
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.queued.contains(hash) || self.in_flight.contains(hash) || self.set_aside.contains(hash)
    }

    /// When a paused queue may run again (`None`: it is not paused).
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Up to `max` texts to embed now: none while paused; a single one while texts that
    /// failed in a batch are being retried alone.
    pub fn take(&mut self, max: usize, now: Instant) -> Vec<[u8; 32]> {
        if self.paused_until.is_some_and(|t| t > now) {
            return Vec::new();
        }
        self.paused_until = None;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&hash) = self.queue.front() else {
                break;
            };
            let retried = self.attempts.contains_key(&hash);
            if retried && !out.is_empty() {
                break;
            }
            self.queue.pop_front();
            self.queued.remove(&hash);
            self.in_flight.insert(hash);
            out.push(hash);
            if retried {
                break;
            }
        }
        out
    }

    /// Records that `hashes` got their vectors: the failure streak is over.
    pub fn succeeded(&mut self, hashes: impl IntoIterator<Item = [u8; 32]>) {
        for h in hashes {
            self.attempts.remove(&h);
            self.in_flight.remove(&h);
        }
        self.failures = 0;
        self.paused_until = None;
        if self.attempts.is_empty() {
            self.last_error = None;
        }
    }

    /// Puts a failed batch back at the front of the queue and pauses the queue. Returns the
    /// texts set aside by this failure.
    pub fn failed(
        &mut self,
        hashes: &[[u8; 32]],
        why: &EmbedFailure,
        now: Instant,
    ) -> Vec<[u8; 32]> {
        self.failures += 1;
        let delay = BASE_DELAY
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_DELAY);
        self.paused_until = Some(now + delay);
        self.last_error = Some(why.to_string());
        let mut set_aside = Vec::new();
        for hash in hashes.iter().rev() {
            self.in_flight.remove(hash);
            if let EmbedFailure::Batch(_) = why {
                let n = self.attempts.entry(*hash).or_insert(0);
                // A text counts an attempt only when it was tried alone.
                if hashes.len() == 1 {
                    *n += 1;
                }
                if *n >= MAX_TEXT_ATTEMPTS {
                    self.attempts.remove(hash);
                    self.set_aside.insert(*hash);
                    set_aside.push(*hash);
                    // The others are not to blame: no pause for them.
                    self.failures = 0;
                    self.paused_until = None;
                    continue;
                }
            }
            if self.queued.insert(*hash) {
                self.queue.push_front(*hash);
            }
        }
        set_aside
    }

    /// Forgets a text taken for embedding that no chunk has any more.
    pub fn dropped(&mut self, hash: &[u8; 32]) {
        self.in_flight.remove(hash);
        self.attempts.remove(hash);
    }

    /// Forgets everything (the model changed: every text is queued again by the caller).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn a_live_edit_goes_ahead_of_the_catch_up_once() {
        let mut q = EmbedQueue::default();
        for n in 0..3 {
            q.push(h(n));
        }
        q.push_front(h(9));
        q.push_front(h(2));
        assert_eq!(
            q.len(),
            5 - 1,
            "a queued text moves, it is not queued twice"
        );
        assert_eq!(q.take(16, Instant::now()), vec![h(2), h(9), h(0), h(1)]);
    }

    #[test]
    fn a_text_found_by_search_is_embedded_next_but_never_queued_by_it() {
        let mut q = EmbedQueue::default();
        for n in 0..3 {
            q.push(h(n));
        }
        q.promote(h(2));
        q.promote(h(7));
        assert_eq!(q.len(), 3, "a text not queued stays out");
        assert_eq!(q.take(16, Instant::now()), vec![h(2), h(0), h(1)]);
    }

    #[test]
    fn a_failed_batch_comes_back_after_a_pause_that_doubles() {
        let mut q = EmbedQueue::default();
        for n in 0..4 {
            q.push(h(n));
        }
        let now = Instant::now();
        let batch = q.take(16, now);
        assert_eq!(batch.len(), 4);
        q.failed(&batch, &EmbedFailure::Model("gone".into()), now);
        assert_eq!(q.len(), 4, "nothing is dropped");
        assert!(q.take(16, now).is_empty(), "paused");
        assert_eq!(q.paused_until(), Some(now + BASE_DELAY));
        let later = now + BASE_DELAY;
        let again = q.take(16, later);
        assert_eq!(
            again, batch,
            "same texts, same order, all at once (model failure)"
        );
        q.failed(&again, &EmbedFailure::Model("gone".into()), later);
        assert_eq!(q.paused_until(), Some(later + BASE_DELAY * 2));
        assert!(q.last_error().unwrap().contains("cannot be loaded"));
        let last = q.take(16, later + BASE_DELAY * 2);
        q.succeeded(last);
        assert!(q.is_empty() && q.last_error().is_none() && q.failing() == 0);
    }

    #[test]
    fn one_bad_text_is_isolated_and_set_aside_without_holding_the_others() {
        let mut q = EmbedQueue::default();
        for n in 0..3 {
            q.push(h(n));
        }
        let mut now = Instant::now();
        let batch = q.take(16, now);
        q.failed(&batch, &EmbedFailure::Batch("bad input".into()), now);
        // Retried one at a time.
        now += MAX_DELAY;
        let mut embedded = Vec::new();
        let mut set_aside = Vec::new();
        for _ in 0..20 {
            let one = q.take(16, now);
            if one.is_empty() {
                break;
            }
            assert_eq!(one.len(), 1);
            if one[0] == h(1) {
                set_aside.extend(q.failed(&one, &EmbedFailure::Batch("bad".into()), now));
            } else {
                q.succeeded(one.clone());
                embedded.extend(one);
            }
            now += MAX_DELAY;
        }
        assert_eq!(embedded, vec![h(0), h(2)]);
        assert_eq!(set_aside, vec![h(1)]);
        assert!(q.is_empty());
        assert_eq!(q.failing(), 1);
        q.push(h(1));
        assert!(q.is_empty(), "a text set aside is not queued again");
    }
}
