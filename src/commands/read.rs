//! The commands that read an index: through the socket of the process that owns it, or, when
//! none answers, by opening it read-only (`engine::Reader`). `verify --repair` writes only
//! through an owner, or by owning the index for the repair.

use super::*;

/// How long a query waits for the index: a watcher starting up, or another short command
/// holding it.
pub(super) const QUERY_WAIT: Duration = Duration::from_secs(10);

/// Answers a request through the running watcher, or by opening the index directly.
pub(super) fn ask(cli: &Cli, request: Request, needs_model: bool) -> Result<Response> {
    let index_dir = config::index_dir(cli);
    let deadline = Instant::now() + QUERY_WAIT;
    let store = loop {
        if let Some(response) = client::ask(&index_dir, &request)? {
            return Ok(response);
        }
        if !config::index_exists(&index_dir) {
            bail!(
                "{}: no index here yet; run `vigil index PATH` or `vigil watch PATH` first",
                index_dir.display()
            );
        }
        // Held by a process that does not answer (an `index` run, or a watcher starting
        // up): ask again until the deadline.
        match Store::open_read_only(&index_dir) {
            Ok(store) => break store,
            Err(e) if e.is::<InUse>() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(match crate::engine::owner_of(&index_dir) {
                    Some(owner) => e.context(format!("held by {owner}")),
                    None => e,
                });
            }
        }
    };
    let purpose = ReadFor {
        status: matches!(request, Request::Status),
        meaning: matches!(&request, Request::Search(r) if r.mode != Mode::Text),
        embeddings: needs_model && !cli.no_embed,
        verify: matches!(request, Request::Verify),
    };
    let file = config_file(cli).map(|f| f.1).unwrap_or_default();
    let model_dir = cli.model_dir.as_deref().or(file.model_dir.as_deref());
    let reader = Reader::open(
        &index_dir,
        Arc::new(store),
        purpose,
        || config::models(cli, &file).unwrap_or_default(),
        model_dir,
    )?;
    let backend = Backend {
        searcher: reader.searcher,
        store: reader.store,
        status: reader.status,
        chunker: reader.chunker,
        index_dir,
        embeds: None,
        repairs: None,
        cookies: None,
    };
    match backend.answer(&request) {
        Response::Error { message, .. } => bail!("{message}"),
        r => Ok(r),
    }
}

pub(super) fn search(cli: &Cli, req: SearchRequest, json: bool, files: bool) -> Result<()> {
    let needs_model = req.mode != Mode::Text;
    let Response::Search(res) = ask(cli, Request::Search(req), needs_model)? else {
        bail!("unexpected answer to a search")
    };
    for w in &res.warnings {
        eprintln!("vigil: {w}");
    }
    if files {
        output::files(&res.hits, json)?;
    } else {
        output::hits(&res.hits, json)?;
    }
    if json && let Some(f) = &res.freshness {
        println!("{}", serde_json::json!({ "freshness": f }));
    }
    Ok(())
}

/// `vigil verify`: prints differences; exits 1 when there are any (after `--repair`, when
/// any remain).
pub(super) fn verify(cli: &Cli, json: bool, repair: bool) -> Result<()> {
    let ask_verify = || -> Result<Vec<crate::verify::Difference>> {
        match ask(cli, Request::Verify, true)? {
            Response::Verify { differences } => Ok(differences),
            _ => bail!("unexpected answer to verify"),
        }
    };
    let index_dir = config::index_dir(cli);
    if repair && let Some(response) = client::ask(&index_dir, &Request::Repair)? {
        // The process that owns the index repairs it (a watcher never has to stop for this).
        let Response::Verify { differences } = response else {
            bail!("unexpected answer to repair")
        };
        return report_differences(&differences, json);
    }
    let mut differences = ask_verify()?;
    if repair && !differences.is_empty() {
        if !json {
            output::differences(&differences, false)?;
            println!("repairing {} differences", differences.len());
        }
        repair_index(cli, &differences)?;
        differences = ask_verify()?;
    }
    report_differences(&differences, json)
}

/// Prints differences; exits 1 when there are any.
pub(super) fn report_differences(
    differences: &[crate::verify::Difference],
    json: bool,
) -> Result<()> {
    output::differences(differences, json)?;
    if !differences.is_empty() {
        if !json {
            eprintln!(
                "vigil: {} differences between the index and the disk",
                differences.len()
            );
        }
        std::process::exit(1);
    }
    if !json {
        println!("the index equals the disk");
    }
    Ok(())
}

/// Forgets every path that differs, then reconciles the stored roots: the differing files are
/// indexed again from disk (embeddings from the cache).
pub(super) fn repair_index(cli: &Cli, differences: &[crate::verify::Difference]) -> Result<()> {
    let index_dir = config::index_dir(cli);
    let store = Store::open_read_only(&index_dir)?;
    let settings =
        crate::engine::stored_settings(&store)?.context("this index was never reconciled")?;
    drop(store);
    let (_, file) = config_file(cli)?;
    let settings = Settings {
        roots: settings.roots,
        max_file_size: settings.max_file_size,
        debounce_ms: crate::watch::DEFAULT_DEBOUNCE_MS,
        poll_ms: None,
        workers: file.workers,
        embed_budget: config::embed_budget(&file),
        listen: None,
        listen_public: false,
        s3: settings.s3,
        retention: config::retention(file.retention.as_ref())?,
        documents: settings.documents,
    };
    let mut engine = open_engine(cli, &file, &settings)?;
    engine.repair_paths(&crate::verify::differing_paths(differences))?;
    let remote_errors = engine.poll_remotes_once(&mut ReconcileStats::default(), |_| {})?;
    if !remote_errors.is_empty() {
        bail!("{}", remote_errors.join("\n"));
    }
    if engine.embeddings_enabled() {
        engine.embed_all(&())?;
    }
    engine.checkpoint()
}

pub(super) fn status(cli: &Cli, json: bool) -> Result<()> {
    let Response::Status(s) = ask(cli, Request::Status, false)? else {
        bail!("unexpected answer to status")
    };
    output::status(&s, json)
}

pub(super) fn history(cli: &Cli, path: Option<&Path>, limit: usize, json: bool) -> Result<()> {
    let path = path.map(|p| {
        if crate::s3::is_remote(p) {
            return p.to_path_buf();
        }
        p.canonicalize()
            .unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf()))
    });
    let request = Request::History {
        path: path.map(|p| p.to_string_lossy().into_owned()),
        limit,
    };
    let Response::History { rows } = ask(cli, request, false)? else {
        bail!("unexpected answer to history")
    };
    output::history(&rows, json)
}
