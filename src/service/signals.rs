//! Signals and configuration reloads: what turns SIGINT/SIGTERM/SIGHUP and edits of the
//! configuration file into requests to the service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, select};

use super::Reloader;
use crate::config::{Overrides, Settings};

/// Signals a service reacts to.
pub struct Signals {
    /// SIGINT and SIGTERM: stop (a second one exits at once).
    pub stop: Receiver<i32>,
    /// SIGHUP: reload the configuration.
    pub hangup: Receiver<()>,
}

/// Installs the handlers and returns their channels.
///
/// Errors: the handlers cannot be installed.
pub fn signal_channel() -> Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    let (stop_tx, stop) = crossbeam_channel::bounded(4);
    let (hup_tx, hangup) = crossbeam_channel::bounded(4);
    std::thread::Builder::new()
        .name("vigil-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    // A reload already pending covers this one.
                    let _ = hup_tx.try_send(());
                } else if stop_tx.send(sig).is_err() {
                    break;
                }
            }
        })?;
    Ok(Signals { stop, hangup })
}

/// Reloads the configuration on SIGHUP and whenever the configuration file changes, on a
/// thread. An invalid file is rejected with its reason and the settings in force stay.
///
/// Errors: the configuration file's directory cannot be watched.
pub fn supervise_reloads(
    reloader: Reloader,
    config: Option<PathBuf>,
    flags: Overrides,
    mut current: Settings,
    hangup: Receiver<()>,
) -> Result<()> {
    let (file_tx, file_changed) = crossbeam_channel::unbounded::<()>();
    let watcher = match &config {
        Some(path) => {
            let dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let name = path.file_name().map(|n| n.to_os_string());
            let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(e) = res
                    && !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
                {
                    let _ = file_tx.send(());
                }
            })
            .context("cannot watch the configuration file")?;
            notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("{}: cannot watch", dir.display()))?;
            Some(w)
        }
        None => None,
    };
    std::thread::Builder::new().name("vigil-reload".into()).spawn(move || {
        let _watcher = watcher;
        loop {
            select! {
                recv(hangup) -> r => { if r.is_err() { return } tracing::info!("SIGHUP: reloading the configuration"); }
                recv(file_changed) -> r => {
                    if r.is_err() { return }
                    // Editors save in several steps: let the file settle.
                    std::thread::sleep(Duration::from_millis(200));
                    while file_changed.try_recv().is_ok() {}
                    tracing::info!("the configuration file changed: reloading");
                }
            }
            let file = match &config {
                Some(path) => match crate::config::load_file(path) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!("configuration rejected, the current one stays in force: {e:#}");
                        continue;
                    }
                },
                None => crate::config::ConfigFile::default(),
            };
            match crate::config::settings(&file, &flags) {
                Ok(next) if next == current => tracing::info!("configuration unchanged"),
                Ok(next) => {
                    if next.listen != current.listen || next.workers != current.workers {
                        tracing::warn!("listen address and workers change only on restart");
                    }
                    current = next.clone();
                    reloader.reload(next);
                }
                Err(e) => tracing::error!("configuration rejected, the current one stays in force: {e:#}"),
            }
        }
    })?;
    Ok(())
}
