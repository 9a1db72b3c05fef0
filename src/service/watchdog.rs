//! The systemd watchdog: `WATCHDOG=1` is sent only while the engine shows signs of life.
//!
//! A thread of its own checks the engine's [`Heartbeat`] every half `WatchdogSec`: if the
//! engine is waiting for work, or has made progress since the last check (a file of a
//! reconcile, a published status), systemd hears from vigil. A full reconcile of a big tree
//! therefore keeps the watchdog fed as long as it advances, and an engine stuck on one
//! operation for a whole period stops feeding it, so systemd restarts it as configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};
use sd_notify::NotifyState;

use crate::engine::Heartbeat;

/// Runs until `stop` disconnects. Does nothing when systemd asked for no watchdog.
///
/// Errors: the thread cannot be spawned.
pub fn spawn(heartbeat: Arc<Heartbeat>, stop: Receiver<()>) -> std::io::Result<()> {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("vigil-watchdog".into())
        .spawn(move || feed(&heartbeat, period, &stop))?;
    Ok(())
}

fn feed(heartbeat: &Heartbeat, period: Duration, stop: &Receiver<()>) {
    let tick = crossbeam_channel::tick(period / 2);
    let mut last = heartbeat.read().0;
    let mut stalled_since: Option<Instant> = None;
    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
    loop {
        select! {
            recv(stop) -> _ => return,
            recv(tick) -> _ => {}
        }
        let (beats, idle) = heartbeat.read();
        if idle || beats != last {
            last = beats;
            stalled_since = None;
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        } else if stalled_since.is_none() {
            stalled_since = Some(Instant::now());
            tracing::warn!(
                "the engine has made no progress for {:?}: the systemd watchdog is not fed",
                period / 2
            );
        }
    }
}
