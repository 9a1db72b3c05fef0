//! The dashboard's state and what each key does. No terminal, no storage: the loop in
//! `tui/mod.rs` feeds it snapshots, activity rows and answers, and carries out its actions.

use std::collections::VecDeque;

use crate::api::FileEntry;
use crate::records::HistoryRow;
use crate::search::{Hit, Mode, SearchRequest};
use crate::status::StatusSnapshot;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Lines kept in the activity log (older ones are dropped).
pub const LOG_LINES: usize = 1000;
/// Samples kept for the throughput sparklines, one per second.
pub const RATE_SAMPLES: usize = 180;
/// Hits asked for per search.
pub const SEARCH_LIMIT: usize = 50;

/// Which part of the screen takes the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The log and results: single-key commands.
    Main,
    /// The query box: keys type.
    Query,
}

/// What the main area shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Main,
    Failures,
}

/// Something the loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    /// The query changed: search again after the debounce.
    QueryChanged,
    /// Load the failures view.
    LoadFailures,
    /// Open a file in `$EDITOR` at a line.
    Open {
        path: String,
        line: u32,
    },
    /// Open a document (PDF, Word, …) with the system's opener: `$EDITOR` cannot show it, and
    /// its line numbers are those of the extracted text.
    OpenWithSystem {
        path: String,
    },
}

/// A per-second rate history for a monotonic counter.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    pub samples: VecDeque<u64>,
    last: Option<u64>,
}

impl Rate {
    /// Records the counter's value at the end of one second.
    pub fn sample(&mut self, counter: u64) {
        let delta = self.last.map(|l| counter.saturating_sub(l)).unwrap_or(0);
        self.last = Some(counter);
        self.samples.push_back(delta);
        while self.samples.len() > RATE_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Whether any sample in the window is non-zero (the sparkline still moves).
    pub fn active(&self) -> bool {
        self.samples.iter().any(|&s| s > 0)
    }

    /// Mean of the last `n` samples (per second), smoothing batchy work such as embedding.
    pub fn recent(&self, n: usize) -> f64 {
        let take = self.samples.len().min(n).max(1);
        self.samples.iter().rev().take(take).sum::<u64>() as f64 / take as f64
    }
}

/// Everything the dashboard shows.
#[derive(Debug, Clone)]
pub struct App {
    pub status: StatusSnapshot,
    /// Newest first.
    pub log: VecDeque<HistoryRow>,
    pub log_scroll: usize,
    pub files_rate: Rate,
    pub embed_rate: Rate,
    pub focus: Focus,
    pub view: View,
    pub query: String,
    pub mode: Mode,
    /// The query the results answer.
    pub results_for: String,
    pub results: Vec<Hit>,
    pub selected: usize,
    pub search_error: Option<String>,
    pub searching: bool,
    pub failures: Vec<FileEntry>,
    pub failures_scroll: usize,
    pub help: bool,
    /// Colours allowed (off with `NO_COLOR`).
    pub color: bool,
}

impl App {
    pub fn new(status: StatusSnapshot, color: bool) -> Self {
        Self {
            status,
            log: VecDeque::new(),
            log_scroll: 0,
            files_rate: Rate::default(),
            embed_rate: Rate::default(),
            focus: Focus::Main,
            view: View::Main,
            query: String::new(),
            mode: Mode::Hybrid,
            results_for: String::new(),
            results: Vec::new(),
            selected: 0,
            search_error: None,
            searching: false,
            failures: Vec::new(),
            failures_scroll: 0,
            help: false,
            color,
        }
    }

    /// Adds an applied change to the top of the log.
    pub fn push_activity(&mut self, row: HistoryRow) {
        self.log.push_front(row);
        self.log.truncate(LOG_LINES);
    }

    /// Samples the throughput counters (call once per second).
    pub fn sample_rates(&mut self) {
        self.files_rate.sample(self.status.files_changed);
        self.embed_rate.sample(self.status.embeddings_computed);
    }

    /// The search to run for the current query, if any.
    pub fn search_request(&self) -> Option<SearchRequest> {
        let query = self.query.trim();
        (!query.is_empty()).then(|| SearchRequest {
            include_text: true,
            ..SearchRequest::new(query, self.mode, SEARCH_LIMIT)
        })
    }

    /// Takes the answer to a search.
    pub fn set_results(&mut self, query: String, result: Result<Vec<Hit>, String>) {
        self.searching = false;
        self.results_for = query;
        match result {
            Ok(hits) => {
                self.results = hits;
                self.search_error = None;
            }
            Err(e) => {
                self.results.clear();
                self.search_error = Some(e);
            }
        }
        self.selected = self.selected.min(self.results.len().saturating_sub(1));
    }

    /// The highlighted hit.
    pub fn selected_hit(&self) -> Option<&Hit> {
        self.results.get(self.selected)
    }

    fn cycle_mode(&mut self) -> Action {
        self.mode = match self.mode {
            Mode::Hybrid => Mode::Text,
            Mode::Text => Mode::Semantic,
            Mode::Semantic => Mode::Hybrid,
        };
        if self.query.trim().is_empty() {
            Action::None
        } else {
            Action::QueryChanged
        }
    }

    fn open_selected(&mut self) -> Action {
        match self.selected_hit() {
            Some(h) if h.path.starts_with(crate::s3::SCHEME) => {
                self.search_error = Some(format!(
                    "{} is an object in a bucket: there is no local file to open",
                    h.path
                ));
                Action::None
            }
            Some(h)
                if crate::pipeline::extract::Format::of(std::path::Path::new(&h.path))
                    .is_some() =>
            {
                Action::OpenWithSystem {
                    path: h.path.clone(),
                }
            }
            Some(h) => Action::Open {
                path: h.path.clone(),
                line: h.snippet_line.max(h.start_line),
            },
            None => Action::None,
        }
    }

    fn move_selection(&mut self, down: bool) {
        if self.view == View::Failures {
            self.failures_scroll = step(self.failures_scroll, down, self.failures.len());
        } else if !self.results.is_empty() {
            self.selected = step(self.selected, down, self.results.len());
        } else {
            self.log_scroll = step(self.log_scroll, down, self.log.len());
        }
    }

    /// Applies one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.help {
            self.help = false;
            return Action::None;
        }
        match self.focus {
            Focus::Query => self.on_query_key(key),
            Focus::Main => self.on_main_key(key),
        }
    }

    fn on_query_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Esc => {
                self.focus = Focus::Main;
                Action::None
            }
            KeyCode::Tab => self.cycle_mode(),
            KeyCode::Enter => self.open_selected(),
            KeyCode::Down => {
                self.move_selection(true);
                Action::None
            }
            KeyCode::Up => {
                self.move_selection(false);
                Action::None
            }
            KeyCode::Backspace => {
                self.query.pop();
                self.selected = 0;
                Action::QueryChanged
            }
            KeyCode::Char(c) => {
                self.query.push(c);
                self.selected = 0;
                Action::QueryChanged
            }
            _ => Action::None,
        }
    }

    fn on_main_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('/') => {
                self.focus = Focus::Query;
                self.view = View::Main;
                Action::None
            }
            KeyCode::Char('?') => {
                self.help = true;
                Action::None
            }
            KeyCode::Char('f') => {
                if self.view == View::Failures {
                    self.view = View::Main;
                    Action::None
                } else {
                    self.view = View::Failures;
                    self.failures_scroll = 0;
                    Action::LoadFailures
                }
            }
            KeyCode::Tab => self.cycle_mode(),
            KeyCode::Esc => {
                if self.view == View::Failures {
                    self.view = View::Main;
                } else {
                    self.query.clear();
                    self.results.clear();
                    self.results_for.clear();
                    self.search_error = None;
                }
                Action::None
            }
            KeyCode::Enter => self.open_selected(),
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_selection(true);
                Action::None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_selection(false);
                Action::None
            }
            KeyCode::PageDown => {
                self.log_scroll = (self.log_scroll + 10).min(self.log.len().saturating_sub(1));
                Action::None
            }
            KeyCode::PageUp => {
                self.log_scroll = self.log_scroll.saturating_sub(10);
                Action::None
            }
            _ => Action::None,
        }
    }

    /// The keys that apply now, for the bottom bar.
    pub fn key_hints(&self) -> &'static str {
        if self.help {
            return "any key: close help";
        }
        match (self.focus, self.view) {
            (Focus::Query, _) => {
                "type to search  Tab: mode  ↑↓: select  Enter: open  Esc: leave box"
            }
            (Focus::Main, View::Failures) => "↑↓: scroll  f/Esc: back  ?: help  q: quit",
            (Focus::Main, View::Main) if !self.results.is_empty() => {
                "/: search  ↑↓: select  Enter: open  Tab: mode  Esc: clear  f: failures  ?: help  q: quit"
            }
            (Focus::Main, View::Main) => {
                "/: search  Tab: mode  ↑↓ PgUp PgDn: log  f: failures  ?: help  q: quit"
            }
        }
    }
}

fn step(i: usize, down: bool, len: usize) -> usize {
    if down {
        (i + 1).min(len.saturating_sub(1))
    } else {
        i.saturating_sub(1)
    }
}

/// Every key, for the help popup.
pub const HELP: &[(&str, &str)] = &[
    ("/", "focus the search box"),
    ("Tab", "cycle hybrid / text / semantic"),
    ("↑ ↓  j k", "select a result (or scroll the log)"),
    (
        "Enter",
        "open the result in $EDITOR at its line (documents: xdg-open)",
    ),
    (
        "Esc",
        "leave the search box / clear results / close the failures view",
    ),
    ("PgUp PgDn", "scroll the activity log"),
    (
        "f",
        "failures view: files that failed or were skipped, with reasons",
    ),
    ("?", "this help"),
    ("q  Ctrl-C", "quit (pending work is committed)"),
];
