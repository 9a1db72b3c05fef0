//! commands: what each subcommand does, wiring config, engine, watcher and server together.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::select;

use crate::api::http::{self, ListenConfig};
use crate::api::{Backend, Request, Response, client};
use crate::cli::{Cli, Command, ConfigAction, ModelAction};
use crate::config::{ConfigFile, Overrides, Settings};
use crate::engine::{Engine, EngineConfig, ReadFor, Reader, ReconcileStats};
use crate::model::{self, MODEL_DIMS, MODEL_NAME};
use crate::output;
use crate::search::{Mode, SearchRequest};
use crate::status::Phase;
use crate::store::{InUse, Store};
use crate::{config, service};

mod mcp;
mod owner;
mod read;

use mcp::mcp;
use owner::{index, watch};
use read::{history, search, status, verify};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Index { scan } => index(&cli, &scan_overrides(scan)),
        Command::Watch {
            scan,
            no_tui,
            debounce_ms,
            poll,
            poll_interval,
            listen,
            listen_public,
        } => {
            let flags = Overrides {
                debounce_ms: *debounce_ms,
                poll_ms: *poll,
                poll_interval_ms: *poll_interval,
                listen: *listen,
                listen_public: *listen_public,
                ..scan_overrides(scan)
            };
            watch(&cli, &flags, *no_tui)
        }
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let parsed = config::load_file(file)?;
            let settings = config::settings(&parsed, &Overrides::default())?;
            println!("{}: valid", file.display());
            println!("{settings:#?}");
            Ok(())
        }
        Command::Search {
            query,
            mode,
            limit,
            path,
            per_file,
            files,
            no_demote,
            sync,
            json,
        } => {
            // Text-only runs rank by text alone, without a warning about the missing half.
            let mode = match Mode::from(*mode) {
                Mode::Hybrid if cli.no_embed => Mode::Text,
                mode => mode,
            };
            let req = SearchRequest {
                query: query.clone(),
                mode,
                limit: *limit,
                path: path.clone(),
                include_text: false,
                // One chunk per file: each hit is a file, ranked by its best chunk.
                per_file: if *files {
                    Some(1)
                } else {
                    per_file.map(|n| n as usize)
                },
                no_demote: *no_demote,
                sync: *sync,
            };
            search(&cli, req, *json, *files)
        }
        Command::Status { json } => status(&cli, *json),
        Command::Mcp { paths } => mcp(&cli, paths),
        Command::Verify { json, repair } => verify(&cli, *json, *repair),
        Command::History { path, limit, json } => history(&cli, path.as_deref(), *limit, *json),
        Command::Model {
            action: ModelAction::Fetch,
        } => {
            let files = model::fetch(&model::default_model_dir())?;
            println!("model fetched and verified: {}", files.dir.display());
            let started = Instant::now();
            let dir = crate::pipeline::distil::distil(&files)?;
            println!(
                "static model distilled from it in {:.1} s: {}",
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            model_info(&files)
        }
        Command::Model {
            action: ModelAction::Info,
        } => {
            let files = model::resolve(cli.model_dir.as_deref(), false)?;
            model_info(&files)
        }
        Command::ExtractDocument { .. } => {
            anyhow::bail!("extract-document is run by vigil itself, from main")
        }
    }
}

/// The flags `index` and `watch` share.
fn scan_overrides(scan: &crate::cli::ScanArgs) -> Overrides {
    Overrides {
        paths: scan.paths.clone(),
        max_file_size: scan.max_file_size,
        s3_endpoint: scan.s3_endpoint.clone(),
        s3_region: scan.s3_region.clone(),
        s3_allow_http: scan.s3_allow_http,
        s3_downloads: scan.s3_downloads.map(usize::from),
        ..Default::default()
    }
}

/// The configuration file of this invocation (`--config`, else the default one if it exists).
///
/// Errors: the file is invalid (its path and the reason).
fn config_file(cli: &Cli) -> Result<(Option<std::path::PathBuf>, ConfigFile)> {
    match cli.config.clone().or_else(config::default_config_file) {
        Some(path) => Ok((Some(path.clone()), config::load_file(&path)?)),
        None => Ok((None, ConfigFile::default())),
    }
}

fn open_engine(cli: &Cli, file: &ConfigFile, settings: &Settings) -> Result<Engine> {
    let index_dir = config::index_dir(cli);
    if let Some(Response::Status(s)) = client::ask(&index_dir, &Request::Status).ok().flatten() {
        let owner = crate::engine::owner_of(&index_dir).unwrap_or_else(|| format!("pid {}", s.pid));
        bail!(
            "{}: the index is owned by a running vigil process ({owner}); it already keeps its roots in step",
            index_dir.display()
        );
    }
    if let Some(workers) = settings.workers {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build_global();
    }
    let models = config::models(cli, file)?;
    Engine::open(EngineConfig {
        index_dir,
        roots: settings.roots.clone(),
        max_file_size: settings.max_file_size,
        model: models.transformer,
        static_model: models.static_dir,
        s3: settings.s3.clone(),
        retention: settings.retention,
        embed_budget: settings.embed_budget,
        documents: settings.documents,
    })
}

/// Whether this command line opens the dashboard: `watch` on a terminal without `--no-tui`.
pub fn wants_dashboard(cli: &Cli) -> bool {
    matches!(cli.command, Command::Watch { no_tui, .. } if wants_dashboard_on(no_tui))
}

fn wants_dashboard_on(no_tui: bool) -> bool {
    !no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

fn model_info(files: &model::ModelFiles) -> Result<()> {
    println!("model:      {MODEL_NAME}");
    println!("dimensions: {MODEL_DIMS}");
    println!("directory:  {}", files.dir.display());
    for (path, sum) in model::checksums(files) {
        match sum {
            Ok(sum) => println!("  {sum}  {}", path.display()),
            Err(e) => println!("  error: {e:#}"),
        }
    }
    let static_dir = crate::pipeline::distil::static_dir(files);
    if crate::pipeline::distil::is_complete(&static_dir) {
        let model = crate::pipeline::embed_static::StaticEmbedder::load(&static_dir)?;
        println!("static:     {}", model.identity());
        println!("            {}", static_dir.display());
    } else {
        println!("static:     not distilled yet (`vigil model fetch`, or first use)");
    }
    Ok(())
}
