//! Capped exponential backoff for transient read errors (a busy or briefly unavailable
//! file). A permanent error (permission denied, …) is recorded once and not retried: the
//! change that fixes it (a chmod) produces an event of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First retry delay; each further one doubles.
pub const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest delay between two retries.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Attempts before giving up (the file stays recorded as failed until it changes).
pub const MAX_ATTEMPTS: u32 = 8;

/// Whether an I/O error may go away by itself.
pub fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        WouldBlock | Interrupted | TimedOut | ResourceBusy | ExecutableFileBusy
    ) {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(
            libc::EBUSY
                | libc::EAGAIN
                | libc::EIO
                | libc::ETXTBSY
                | libc::EINTR
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOLCK
        )
    )
}

/// Paths waiting for another read: attempts so far, and when the next one is due (`None`
/// once handed out, until rescheduled).
#[derive(Debug, Default)]
pub struct Retries {
    due: HashMap<PathBuf, (u32, Option<Instant>)>,
}

impl Retries {
    /// Schedules another attempt for `path`; returns `false` when it has used all attempts.
    pub fn schedule(&mut self, path: &Path, now: Instant) -> bool {
        let attempt = self.due.get(path).map(|(a, _)| a + 1).unwrap_or(1);
        if attempt > MAX_ATTEMPTS {
            self.due.remove(path);
            return false;
        }
        let delay = BASE_DELAY
            .saturating_mul(1 << (attempt - 1).min(20))
            .min(MAX_DELAY);
        self.due
            .insert(path.to_path_buf(), (attempt, Some(now + delay)));
        true
    }

    /// Forgets `path` (it was read, or is gone).
    pub fn clear(&mut self, path: &Path) {
        self.due.remove(path);
    }

    /// When the next retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().filter_map(|(_, t)| *t).min()
    }

    /// The paths due at `now`. They are not due again unless rescheduled (another failure),
    /// so a path that vanished meanwhile is not retried in a loop.
    pub fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (path, (_, due)) in self.due.iter_mut() {
            if due.is_some_and(|t| t <= now) {
                *due = None;
                out.push(path.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_attempts_run_out() {
        let mut r = Retries::default();
        let now = Instant::now();
        let p = Path::new("/x");
        let mut delays = Vec::new();
        while r.schedule(p, now) {
            delays.push(r.next_due().unwrap() - now);
        }
        assert_eq!(delays.len(), MAX_ATTEMPTS as usize);
        assert_eq!(delays[0], BASE_DELAY);
        assert_eq!(delays[1], BASE_DELAY * 2);
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        assert!(r.next_due().is_none(), "given up");
    }

    #[test]
    fn a_due_path_is_handed_out_once() {
        let mut r = Retries::default();
        let now = Instant::now();
        r.schedule(Path::new("/y"), now);
        let later = now + MAX_DELAY;
        assert_eq!(r.take_due(later), vec![PathBuf::from("/y")]);
        assert!(r.take_due(later).is_empty());
        assert!(r.next_due().is_none());
    }

    #[test]
    fn only_errors_that_can_pass_are_transient() {
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::EBUSY
        )));
        assert!(is_transient(&std::io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_transient(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
        assert!(!is_transient(&std::io::Error::from_raw_os_error(
            libc::EISDIR
        )));
    }
}
