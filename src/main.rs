//! The `vigil` binary: parse the command line, set up logging, dispatch.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use vigil::cli::{Cli, LogFormat};

fn main() {
    let cli = Cli::parse();
    // A document extractor child: no logging set up, only its exit code and stdout matter.
    if let vigil::cli::Command::ExtractDocument {
        format,
        max_memory,
        max_text,
        max_ms,
    } = &cli.command
    {
        std::process::exit(vigil::pipeline::extract::isolate::child_main(
            format,
            *max_memory,
            *max_text,
            *max_ms,
        ));
    }
    let filter = EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,ort=warn,tantivy=warn"));
    // The dashboard owns the terminal: its logs go to INDEX_DIR/vigil.log instead.
    let log_file = vigil::commands::wants_dashboard(&cli).then(|| {
        let dir = vigil::config::index_dir(&cli);
        let _ = std::fs::create_dir_all(&dir);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("vigil.log"))
    });
    let color = log_file.is_none()
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let writer = match log_file {
        Some(Ok(file)) => BoxMakeWriter::new(std::sync::Mutex::new(file)),
        Some(Err(_)) => BoxMakeWriter::new(std::io::sink),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(color);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Human => logs.init(),
    }
    if let Err(e) = vigil::commands::run(cli) {
        // A reader that stopped reading (`vigil search … | head`) is not an error.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            return;
        }
        eprintln!("vigil: error: {e:#}");
        std::process::exit(1);
    }
}
