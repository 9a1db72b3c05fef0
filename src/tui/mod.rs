//! tui: is the index alive, and what does it say?
//!
//! The dashboard of `vigil watch` on a terminal (ratatui + crossterm). It never touches
//! storage: it wakes on status-cell changes, reads activity rows from a bounded channel, and
//! sends queries to a worker thread that answers them through the same [`Backend`] as the
//! socket server. It redraws when something changed, at most every 250 ms for engine-driven
//! changes, and sleeps when nothing does.

pub mod app;
pub mod ui;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, select};
use ratatui::crossterm::event::{self, Event};

use crate::api::{Backend, Request, Response};
use crate::records::{FileState, HistoryRow};
use app::{Action, App};

/// Capacity of the engine → dashboard activity channel; rows beyond it are dropped (the log
/// shows a fixed number of lines anyway).
pub const ACTIVITY_CHANNEL: usize = 1024;
/// Engine-driven redraws happen at most this often.
const FRAME: Duration = Duration::from_millis(250);
/// Quiet time after a keystroke before the search runs.
const SEARCH_DEBOUNCE: Duration = Duration::from_millis(150);

/// A request to the query worker, with a sequence number (newer searches supersede older).
type Query = (u64, Request);

/// An answer from the query worker, tagged with the request's sequence number.
enum Answer {
    Search {
        seq: u64,
        query: String,
        result: Result<Vec<crate::search::Hit>, String>,
    },
    Failures(Result<Vec<crate::api::FileEntry>, String>),
}

/// Runs the dashboard until the user quits (`q`, Ctrl-C, or SIGTERM/SIGINT on `signals`).
/// The terminal is restored on return and on panic.
///
/// Errors: the terminal cannot be set up or drawn on.
pub fn run(backend: Backend, activity: Receiver<HistoryRow>, signals: Receiver<i32>) -> Result<()> {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(backend.status.get(), color);
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let paused = Arc::new(AtomicBool::new(false));
    let input = spawn_input(paused.clone())?;
    let status = backend.status.subscribe();
    let (queries, answers) = spawn_query_worker(backend.clone())?;
    let channels = Channels {
        input,
        status,
        activity,
        queries,
        answers,
        signals,
    };
    let result = event_loop(&mut terminal, &mut app, &channels, &paused, &backend);
    ratatui::restore();
    result
}

/// What the dashboard listens to and talks to.
struct Channels {
    input: Receiver<Event>,
    status: Receiver<()>,
    activity: Receiver<HistoryRow>,
    queries: Sender<Query>,
    answers: Receiver<Answer>,
    signals: Receiver<i32>,
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    ch: &Channels,
    paused: &Arc<AtomicBool>,
    backend: &Backend,
) -> Result<()> {
    let (input, status, activity, queries, answers) = (
        &ch.input,
        &ch.status,
        &ch.activity,
        &ch.queries,
        &ch.answers,
    );
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let mut search_due: Option<Instant> = None;
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    let mut seq = 0u64;
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            terminal.draw(|f| ui::draw(f, app))?;
            last_draw = Instant::now();
            dirty = false;
        }
        // Sleep until the next thing that needs time: a pending redraw, a debounced search,
        // or the once-a-second rate sample while the sparklines still move or work runs.
        let busy = app.files_rate.active()
            || app.embed_rate.active()
            || app.status.phase != crate::status::Phase::Watching;
        let mut deadlines = vec![];
        if dirty {
            deadlines.push(last_draw + FRAME);
        }
        if let Some(t) = search_due {
            deadlines.push(t);
        }
        if busy {
            deadlines.push(next_sample);
        }
        let timeout = deadlines
            .iter()
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()));
        let tick = match timeout {
            Some(t) => crossbeam_channel::after(t),
            None => crossbeam_channel::never(),
        };
        select! {
            recv(input) -> ev => {
                let Ok(ev) = ev else { return Ok(()) };
                if let Event::Key(key) = ev {
                    match app.on_key(key) {
                        Action::Quit => return Ok(()),
                        Action::QueryChanged => search_due = Some(Instant::now() + SEARCH_DEBOUNCE),
                        Action::LoadFailures => {
                            let _ = queries.send((0, Request::Files { state: None }));
                        }
                        Action::Open { path, line } => {
                            open_in_editor(terminal, paused, &path, line)?;
                        }
                        Action::OpenWithSystem { path } => {
                            if let Err(e) = opener::open(&path) {
                                app.search_error = Some(format!("cannot open {path}: {e}"));
                            }
                        }
                        Action::None => {}
                    }
                }
                // Input redraws at once: typing must feel immediate.
                terminal.draw(|f| ui::draw(f, app))?;
                last_draw = Instant::now();
                dirty = false;
            }
            recv(status) -> _ => {
                app.status = backend.status.get();
                dirty = true;
            }
            recv(activity) -> row => {
                if let Ok(row) = row {
                    app.push_activity(row);
                    while let Ok(row) = activity.try_recv() {
                        app.push_activity(row);
                    }
                    dirty = true;
                }
            }
            recv(answers) -> answer => {
                match answer {
                    Ok(Answer::Search { seq: s, query, result }) if s == seq => app.set_results(query, result),
                    Ok(Answer::Failures(result)) => {
                        app.failures = result.unwrap_or_default().into_iter().filter(|f| f.state != FileState::Indexed).collect();
                    }
                    _ => {}
                }
                dirty = true;
            }
            recv(ch.signals) -> _ => return Ok(()),
            recv(tick) -> _ => {}
        }
        let now = Instant::now();
        if search_due.is_some_and(|t| t <= now) {
            search_due = None;
            seq += 1;
            match app.search_request() {
                Some(req) => {
                    app.searching = true;
                    let _ = queries.send((seq, Request::Search(req)));
                }
                None => app.set_results(String::new(), Ok(Vec::new())),
            }
            dirty = true;
        }
        if now >= next_sample {
            app.sample_rates();
            next_sample = now + Duration::from_secs(1);
            dirty = true;
        }
    }
}

/// Reads terminal events on a thread. It polls (every 250 ms) instead of blocking so it can
/// stand aside while `$EDITOR` owns the terminal.
fn spawn_input(paused: Arc<AtomicBool>) -> Result<Receiver<Event>> {
    let (tx, rx) = crossbeam_channel::bounded(64);
    std::thread::Builder::new()
        .name("vigil-tui-input".into())
        .spawn(move || {
            loop {
                if paused.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                match event::poll(Duration::from_millis(250)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(rx)
}

/// Answers queries on a thread so a slow search never freezes the screen; only the newest
/// waiting search is run.
fn spawn_query_worker(backend: Backend) -> Result<(Sender<Query>, Receiver<Answer>)> {
    let (tx, rx) = crossbeam_channel::unbounded::<Query>();
    let (answer_tx, answers) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("vigil-tui-query".into())
        .spawn(move || {
            while let Ok(mut next) = rx.recv() {
                // Skip searches already superseded by newer keystrokes.
                while let Ok(newer) = rx.try_recv() {
                    if matches!(next.1, Request::Files { .. }) {
                        let _ = answer_tx.send(answer(&backend, next));
                    }
                    next = newer;
                }
                if answer_tx.send(answer(&backend, next)).is_err() {
                    return;
                }
            }
        })?;
    Ok((tx, answers))
}

fn answer(backend: &Backend, (seq, request): Query) -> Answer {
    let query = match &request {
        Request::Search(r) => Some(r.query.clone()),
        _ => None,
    };
    match (backend.answer(&request), query) {
        (Response::Search(res), Some(query)) => Answer::Search {
            seq,
            query,
            result: Ok(res.hits),
        },
        (Response::Error { message, .. }, Some(query)) => Answer::Search {
            seq,
            query,
            result: Err(message),
        },
        (Response::Files { files }, _) => Answer::Failures(Ok(files)),
        (Response::Error { message, .. }, None) => Answer::Failures(Err(message)),
        _ => Answer::Failures(Err("unexpected answer".into())),
    }
}

/// Leaves the dashboard, runs `$EDITOR +LINE PATH`, and comes back.
fn open_in_editor(
    terminal: &mut ratatui::DefaultTerminal,
    paused: &Arc<AtomicBool>,
    path: &str,
    line: u32,
) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi").to_string();
    let args: Vec<String> = parts.map(str::to_string).collect();
    paused.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_millis(300)); // let the input thread leave its poll
    ratatui::restore();
    let status = std::process::Command::new(&program)
        .args(&args)
        .arg(format!("+{line}"))
        .arg(path)
        .status();
    *terminal = ratatui::try_init().context("cannot set up the terminal again")?;
    terminal.clear()?;
    paused.store(false, Ordering::Release);
    if let Err(e) = status {
        tracing::warn!("cannot run the editor {program:?}: {e}");
    }
    Ok(())
}
