//! `vigil mcp`: the MCP server on stdio, with a watcher for the length of the session when
//! none owns the index.

use super::*;

/// `vigil mcp [ROOTS]`: the MCP server on stdio. When no watcher owns the index and roots are
/// given, a `vigil watch` of them runs for the length of the session.
pub(super) fn mcp(cli: &Cli, paths: &[std::path::PathBuf]) -> Result<()> {
    let index_dir = config::index_dir(cli);
    let owned = if client::get(&index_dir, "/healthz")?.is_none() && !paths.is_empty() {
        Some(SessionWatcher::start(cli, &index_dir, paths)?)
    } else {
        None
    };
    let served = crate::mcp::serve_stdio(index_dir);
    drop(owned);
    served
}

/// A `vigil watch` child for the length of an MCP session: stopped (SIGTERM) when the session
/// ends, and by the kernel if this process dies first.
pub(super) struct SessionWatcher(std::process::Child);

impl SessionWatcher {
    fn start(cli: &Cli, index_dir: &Path, paths: &[std::path::PathBuf]) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().context("cannot find the vigil binary")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--index").arg(index_dir);
        if cli.no_embed {
            cmd.arg("--no-embed");
        }
        if let Some(tiers) = cli.embed {
            let name = match tiers {
                crate::cli::EmbedArg::Static => "static",
                crate::cli::EmbedArg::Transformer => "transformer",
                crate::cli::EmbedArg::Both => "both",
            };
            cmd.arg("--embed").arg(name);
        }
        if let Some(dir) = &cli.model_dir {
            cmd.arg("--model-dir").arg(dir);
        }
        if let Some(file) = &cli.config {
            cmd.arg("--config").arg(file);
        }
        cmd.args(["watch", "--no-tui"]).args(paths);
        // stdout is the MCP channel: the watcher must never write there.
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only this process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .context("cannot start a watcher for the session")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the session's watcher exited ({status}); its log is above");
            }
            if client::get(index_dir, "/healthz")?.is_some() {
                return Ok(Self(child));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the session's watcher did not start within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SessionWatcher {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}
