//! Drawing the dashboard from an [`App`]: a pure function of the state, so it can be tested
//! with ratatui's `TestBackend`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Clear, Gauge, List, ListItem, ListState, Paragraph, Sparkline, Wrap,
};

use super::app::{App, Focus, HELP, View};
use crate::records::{ChangeKind, HistoryRow};
use crate::search::Mode;
use crate::status::Phase;

/// Below this size the dashboard asks for a larger terminal instead of drawing.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Styles that respect `NO_COLOR`: without colour, only bold/reverse/underline remain.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
    fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    fn hit(&self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = Theme { color: app.color };
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "vigil: terminal too small ({}×{}); need at least {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let searching =
        app.focus == Focus::Query || !app.results.is_empty() || app.search_error.is_some();
    let [header, middle, search, body, bar] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(3),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, &theme, header);
    let [counters, rates] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(middle);
    draw_counters(frame, app, &theme, counters);
    draw_rates(frame, app, &theme, rates);
    draw_search_box(frame, app, &theme, search);
    match app.view {
        View::Failures => draw_failures(frame, app, &theme, body),
        View::Main if searching => {
            let [results, log] =
                Layout::vertical([Constraint::Percentage(70), Constraint::Percentage(30)])
                    .areas(body);
            let [list, preview] =
                Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .areas(results);
            draw_results(frame, app, &theme, list);
            draw_preview(frame, app, &theme, preview);
            draw_log(frame, app, &theme, log);
        }
        View::Main => draw_log(frame, app, &theme, body),
    }
    frame.render_widget(Paragraph::new(app.key_hints()).style(theme.dim()), bar);
    if app.help {
        draw_help(frame, &theme, area);
    }
}

fn phase_label(app: &App, theme: &Theme) -> Span<'static> {
    let s = &app.status;
    match s.phase {
        Phase::Starting => Span::styled("starting", theme.dim()),
        Phase::Scanning => Span::styled("scanning", theme.fg(Color::Yellow)),
        Phase::Embedding if s.embed_error.is_some() => Span::styled(
            format!(
                "embedding failing, retrying ({} chunks pending)",
                s.embeddings_pending
            ),
            theme.bad(),
        ),
        Phase::Embedding => Span::styled(
            format!(
                "embedding catch-up ({} chunks pending)",
                s.embeddings_pending
            ),
            theme.fg(Color::Yellow),
        ),
        Phase::Watching => Span::styled(
            "watching",
            theme.fg(Color::Green).add_modifier(Modifier::BOLD),
        ),
        Phase::Error => Span::styled("error", theme.bad()),
        Phase::Stopped => Span::styled("stopped", theme.dim()),
    }
}

fn draw_header(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let s = &app.status;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Line::from(vec![
            Span::styled(" vigil ", theme.title()),
            phase_label(app, theme),
            Span::raw(" "),
        ]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [roots, info, gauge] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let model = s.model.clone().unwrap_or_else(|| "text-only".into());
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("roots ", theme.dim()),
            Span::raw(s.roots.join(", ")),
        ])),
        roots,
    );
    let line = Line::from(vec![
        Span::styled("index ", theme.dim()),
        Span::raw(s.index_dir.clone()),
        Span::styled("  model ", theme.dim()),
        Span::raw(model),
    ]);
    frame.render_widget(Paragraph::new(line), info);
    match s.phase {
        Phase::Scanning => {
            let ratio = if s.scan_total == 0 {
                0.0
            } else {
                s.scan_done as f64 / s.scan_total as f64
            };
            let rate = app.files_rate.recent(10);
            let left = s.scan_total.saturating_sub(s.scan_done) as f64;
            let eta = if rate > 0.0 {
                format!("{:.0} s", left / rate)
            } else {
                "-".into()
            };
            let label = format!(
                "{}/{} files  {rate:.0} files/s  ETA {eta}",
                s.scan_done, s.scan_total
            );
            frame.render_widget(
                Gauge::default()
                    .gauge_style(theme.fg(Color::Blue))
                    .ratio(ratio.clamp(0.0, 1.0))
                    .label(label),
                gauge,
            );
        }
        Phase::Error => {
            let msg = s.last_error.clone().unwrap_or_default();
            frame.render_widget(Paragraph::new(Span::styled(msg, theme.bad())), gauge);
        }
        _ => {
            if let Some(line) = remotes_line(s, theme) {
                frame.render_widget(Paragraph::new(line), gauge);
            }
        }
    }
}

/// How the polling of object-storage roots goes: the first failing root, else a summary.
fn remotes_line(s: &crate::status::StatusSnapshot, theme: &Theme) -> Option<Line<'static>> {
    if let Some(r) = s.remotes.iter().find(|r| r.last_error.is_some()) {
        let msg = format!(
            "{}: failing ({} in a row), backing off: {}",
            r.root,
            r.failures,
            r.last_error.as_deref().unwrap_or_default()
        );
        return Some(Line::from(Span::styled(msg, theme.bad())));
    }
    if s.remotes.is_empty() {
        return None;
    }
    let objects: u64 = s.remotes.iter().map(|r| r.objects).sum();
    let downloads: u64 = s.remotes.iter().map(|r| r.downloads).sum();
    Some(Line::from(vec![
        Span::styled("polled ", theme.dim()),
        Span::raw(format!(
            "{} bucket root{}  {objects} objects  {downloads} downloaded",
            s.remotes.len(),
            if s.remotes.len() == 1 { "" } else { "s" }
        )),
    ]))
}

fn draw_counters(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let s = &app.status;
    let label = |k: &str| Span::styled(format!("{k:<7}"), theme.dim());
    let failed = if s.files_failed > 0 {
        theme.bad()
    } else {
        Style::default()
    };
    let lines = vec![
        Line::from(vec![
            label("files"),
            Span::raw(format!(
                "{} indexed · {} skipped · ",
                s.files_indexed, s.files_skipped
            )),
            Span::styled(format!("{} failed", s.files_failed), failed),
        ]),
        Line::from(vec![
            label("chunks"),
            Span::raw(if s.static_vectors > 0 {
                format!(
                    "{} · static {} · transformer {} (+{} now, {} pending)",
                    s.chunks,
                    s.static_vectors,
                    s.embeddings_cached,
                    s.embeddings_computed,
                    s.embeddings_pending
                )
            } else {
                format!(
                    "{} · embeddings {} (+{} now)",
                    s.chunks, s.embeddings_cached, s.embeddings_computed
                )
            }),
        ]),
        Line::from(vec![
            label("watch"),
            Span::raw(format!(
                "{} dirs · queue {}",
                s.watches_active, s.queue_depth
            )),
        ]),
        Line::from(vec![
            label("events"),
            Span::raw(format!(
                "{} received · {} batches applied",
                s.events_received, s.batches_applied
            )),
        ]),
    ];
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(" counters ", theme.title()));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_rates(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(" throughput (per second) ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .split(inner);
    let series = [("files", &app.files_rate), ("embedded", &app.embed_rate)];
    for (i, (name, rate)) in series.iter().enumerate() {
        let label = format!("{name} {:.1}/s (10 s mean)", rate.recent(10));
        frame.render_widget(
            Paragraph::new(Span::styled(label, theme.dim())),
            rows[i * 2],
        );
        let width = rows[i * 2 + 1].width as usize;
        let data: Vec<u64> = rate
            .samples
            .iter()
            .rev()
            .take(width)
            .rev()
            .copied()
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(theme.fg(Color::Green)),
            rows[i * 2 + 1],
        );
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Hybrid => "hybrid",
        Mode::Text => "text",
        Mode::Semantic => "semantic",
    }
}

fn draw_search_box(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = app.focus == Focus::Query;
    let title = format!(" search [{}] ", mode_name(app.mode));
    let border = if focused {
        theme.fg(Color::Yellow)
    } else {
        Style::default()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(title, theme.title()));
    let mut spans = vec![Span::raw("> "), Span::raw(app.query.clone())];
    if focused {
        spans.push(Span::styled("█", theme.dim()));
    } else if app.query.is_empty() {
        spans.push(Span::styled("press / to search", theme.dim()));
    }
    if app.searching {
        spans.push(Span::styled("  searching…", theme.dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).block(block), area);
}

fn draw_results(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let title = format!(" results ({}) ", app.results.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.title()));
    if let Some(e) = &app.search_error {
        frame.render_widget(
            Paragraph::new(Span::styled(e.clone(), theme.bad()))
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let items: Vec<ListItem> = app
        .results
        .iter()
        .map(|h| {
            let modes: Vec<&str> = h.modes.iter().map(|m| mode_name(*m)).collect();
            ListItem::new(vec![
                Line::from(Span::raw(format!(
                    "{}:{}-{}{}",
                    short_path(&h.path, &app.status.roots),
                    h.start_line,
                    h.end_line,
                    h.location_suffix()
                ))),
                Line::from(Span::styled(
                    format!("  {:.4}  {}", h.score, modes.join("+")),
                    theme.dim(),
                )),
            ])
        })
        .collect();
    let mut state =
        ListState::default().with_selected((!app.results.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block)
            .highlight_style(theme.selected()),
        area,
        &mut state,
    );
}

/// A path relative to the root containing it, for narrow panes.
fn short_path(path: &str, roots: &[String]) -> String {
    roots
        .iter()
        .filter_map(|r| {
            path.strip_prefix(r.as_str())
                .map(|rest| rest.trim_start_matches('/'))
        })
        .min_by_key(|rest| rest.len())
        .map(str::to_string)
        .unwrap_or_else(|| path.to_string())
}

fn draw_preview(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(" preview ", theme.title()));
    let Some(hit) = app.selected_hit() else {
        frame.render_widget(block, area);
        return;
    };
    let text = hit.text.clone().unwrap_or_else(|| hit.snippet.clone());
    let words: Vec<String> = app
        .results_for
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    let first = if hit.text.is_some() {
        hit.start_line
    } else {
        hit.snippet_line
    };
    let skip = hit.snippet_line.saturating_sub(first) as usize;
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .skip(skip.saturating_sub(1))
        .map(|(i, l)| {
            let mut spans = vec![Span::styled(
                format!("{:>5} ", first as usize + i),
                theme.dim(),
            )];
            spans.extend(highlight(l, &words, theme));
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Splits a line into spans, highlighting case-insensitive occurrences of `words`.
fn highlight(line: &str, words: &[String], theme: &Theme) -> Vec<Span<'static>> {
    let lower = line.to_lowercase();
    if lower.len() != line.len() || words.is_empty() {
        return vec![Span::raw(line.to_string())];
    }
    let mut marks = vec![false; line.len()];
    for w in words {
        for (start, _) in lower.match_indices(w.as_str()) {
            marks[start..start + w.len()]
                .iter_mut()
                .for_each(|m| *m = true);
        }
    }
    let mut spans = Vec::new();
    let mut start = 0;
    for i in 1..=line.len() {
        if i == line.len() || (marks[i] != marks[start] && line.is_char_boundary(i)) {
            let piece = line[start..i].to_string();
            spans.push(if marks[start] {
                Span::styled(piece, theme.hit())
            } else {
                Span::raw(piece)
            });
            start = i;
        }
    }
    spans
}

fn kind_style(kind: ChangeKind, theme: &Theme) -> Style {
    match kind {
        ChangeKind::Failed => theme.bad(),
        ChangeKind::Skipped => theme.fg(Color::Yellow),
        ChangeKind::Deleted => theme.fg(Color::Magenta),
        ChangeKind::Created => theme.fg(Color::Green),
        _ => Style::default(),
    }
}

fn log_line(r: &HistoryRow, roots: &[String], theme: &Theme) -> Line<'static> {
    let secs = r.time_ms / 1000;
    let time = format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
    let path = match &r.from {
        Some(from) => format!(
            "{} → {}",
            short_path(from, roots),
            short_path(&r.path, roots)
        ),
        None => short_path(&r.path, roots),
    };
    let mut spans = vec![
        Span::styled(format!("{time} "), theme.dim()),
        Span::styled(
            format!("{:<8} ", r.kind.as_str()),
            kind_style(r.kind, theme),
        ),
        Span::raw(path),
        Span::styled(
            format!("  +{} -{}", r.chunks_added, r.chunks_removed),
            theme.dim(),
        ),
    ];
    if let Some(reason) = &r.reason {
        spans.push(Span::styled(
            format!("  {reason}"),
            kind_style(r.kind, theme),
        ));
    }
    Line::from(spans)
}

fn draw_log(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let title = format!(" activity ({} shown, newest first) ", app.log.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.title()));
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(app.log_scroll)
        .take(area.height as usize)
        .map(|r| log_line(r, &app.status.roots, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_failures(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let title = format!(" failed and skipped files ({}) ", app.failures.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.title()));
    let lines: Vec<Line> = if app.failures.is_empty() {
        vec![Line::from(Span::styled(
            "none: every file was indexed",
            theme.dim(),
        ))]
    } else {
        app.failures
            .iter()
            .skip(app.failures_scroll)
            .map(|f| {
                let style = if f.state == crate::records::FileState::Failed {
                    theme.bad()
                } else {
                    theme.fg(Color::Yellow)
                };
                Line::from(vec![
                    Span::styled(
                        format!("{:<8}", format!("{:?}", f.state).to_lowercase()),
                        style,
                    ),
                    Span::raw(short_path(&f.path, &app.status.roots)),
                    Span::styled(format!("  {}", f.reason.clone().unwrap_or_default()), style),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_help(frame: &mut Frame, theme: &Theme, area: Rect) {
    let width = area.width.min(84);
    let height = (HELP.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<12}"), theme.title()),
                Span::raw(*v),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(" keys ", theme.title()));
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::app::Action;
    use super::*;
    use crate::api::FileEntry;
    use crate::records::FileState;
    use crate::search::Hit;
    use crate::status::StatusSnapshot;

    /// 12:00:00 UTC on a fixed day, so snapshots do not depend on the clock.
    const NOON: u64 = 1_763_726_400_000;

    fn status(phase: Phase) -> StatusSnapshot {
        StatusSnapshot {
            phase,
            ready: true,
            roots: vec!["/home/ada/notes".into()],
            index_dir: "/home/ada/.local/share/vigil/index".into(),
            model: Some("all-MiniLM-L6-v2".into()),
            files_indexed: 1204,
            files_skipped: 3,
            files_failed: 1,
            chunks: 5310,
            text_docs: 5310,
            embeddings_cached: 4800,
            embeddings_computed: 310,
            embeddings_pending: 510,
            scan_done: 800,
            scan_total: 1208,
            events_received: 92,
            batches_applied: 14,
            watches_active: 57,
            queue_depth: 0,
            files_changed: 1300,
            last_error: None,
            remotes: Vec::new(),
            pid: 4242,
            ..StatusSnapshot::default()
        }
    }

    fn row(kind: ChangeKind, path: &str, reason: Option<&str>, secs: u64) -> HistoryRow {
        HistoryRow {
            time_ms: NOON + secs * 1000,
            path: format!("/home/ada/notes/{path}"),
            from: None,
            kind,
            chunks_added: 3,
            chunks_removed: 1,
            embeddings_computed: 2,
            embeddings_reused: 1,
            reason: reason.map(str::to_string),
            changed_lines: Vec::new(),
        }
    }

    fn app(phase: Phase) -> App {
        let mut app = App::new(status(phase), false);
        for (i, counter) in [0u64, 40, 95, 180, 260, 300].into_iter().enumerate() {
            app.status.files_changed = counter;
            app.status.embeddings_computed = counter / 2;
            app.sample_rates();
            let _ = i;
        }
        app.push_activity(row(ChangeKind::Created, "ideas/boats.md", None, 1));
        app.push_activity(row(ChangeKind::Modified, "journal/2026-11.md", None, 2));
        app.push_activity(row(
            ChangeKind::Failed,
            "private/diary.md",
            Some("Permission denied (os error 13)"),
            3,
        ));
        app
    }

    fn render(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        terminal.backend().to_string()
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn scanning_shows_a_gauge() {
        insta::assert_snapshot!(render(&app(Phase::Scanning), 80, 24));
    }

    #[test]
    fn idle_shows_counters_rates_and_activity() {
        insta::assert_snapshot!(render(&app(Phase::Watching), 80, 24));
    }

    #[test]
    fn a_failing_bucket_root_shows_in_the_header() {
        let mut app = app(Phase::Watching);
        app.status.remotes = vec![crate::status::RemoteStatus {
            root: "s3://team-notes/handbook".into(),
            state: crate::status::RemoteState::BackingOff,
            polls: 9,
            failures: 3,
            last_error: Some("SignatureDoesNotMatch: check AWS_SECRET_ACCESS_KEY".into()),
            objects: 120,
            ..Default::default()
        }];
        let screen = render(&app, 100, 24);
        assert!(
            screen.contains("s3://team-notes/handbook: failing (3 in a row)"),
            "{screen}"
        );
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn search_results_show_path_score_modes_and_a_highlighted_preview() {
        let mut app = app(Phase::Watching);
        app.on_key(key(KeyCode::Char('/')));
        for c in "sailing boats".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        let hit = |path: &str, score: f32, modes: Vec<Mode>| Hit {
            path: format!("/home/ada/notes/{path}"),
            start_line: 10,
            end_line: 14,
            page: None,
            cell: None,
            paragraph: None,
            chapter: None,
            score,
            modes,
            ranks: Default::default(),
            tier: None,
            why: Vec::new(),
            context: String::new(),
            snippet: "Sailing boats need wind.".into(),
            snippet_line: 11,
            text: Some(
                "# Boats\nSailing boats need wind.\nRowing boats need arms.\n\nSee also: harbours."
                    .into(),
            ),
        };
        app.set_results(
            "sailing boats".into(),
            Ok(vec![
                hit("ideas/boats.md", 0.0325, vec![Mode::Text, Mode::Semantic]),
                hit("journal/2026-11.md", 0.0161, vec![Mode::Semantic]),
            ]),
        );
        insta::assert_snapshot!(render(&app, 100, 30));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Open {
                path: "/home/ada/notes/ideas/boats.md".into(),
                line: 11
            }
        );
    }

    /// A text hit on one line `line` of `path`, found by its word `x`.
    fn line_hit(path: &str, line: u32) -> Hit {
        Hit {
            path: path.into(),
            start_line: line,
            end_line: line,
            page: None,
            cell: None,
            paragraph: None,
            chapter: None,
            score: 1.0,
            modes: vec![Mode::Text],
            ranks: Default::default(),
            tier: None,
            why: Vec::new(),
            context: String::new(),
            snippet: "x".into(),
            snippet_line: line,
            text: None,
        }
    }

    #[test]
    fn a_document_hit_is_opened_with_the_system_opener() {
        let mut app = app(Phase::Watching);
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('x')));
        app.set_results(
            "x".into(),
            Ok(vec![Hit {
                page: Some(2),
                ..line_hit("/home/ada/notes/paper.pdf", 3)
            }]),
        );
        assert!(render(&app, 100, 30).contains("paper.pdf:3-3 (page 2)"));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::OpenWithSystem {
                path: "/home/ada/notes/paper.pdf".into()
            }
        );
    }

    #[test]
    fn an_object_hit_is_not_opened_in_an_editor() {
        let mut app = app(Phase::Watching);
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('x')));
        app.set_results("x".into(), Ok(vec![line_hit("s3://kb/docs/x.md", 1)]));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::None);
        assert!(render(&app, 100, 30).contains("no local file to open"));
    }

    #[test]
    fn help_popup_lists_every_key() {
        let mut app = app(Phase::Watching);
        app.on_key(key(KeyCode::Char('?')));
        let screen = render(&app, 80, 24);
        for (k, _) in HELP {
            assert!(screen.contains(k), "help lacks {k}");
        }
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn failures_view_lists_reasons() {
        let mut app = app(Phase::Watching);
        assert_eq!(app.on_key(key(KeyCode::Char('f'))), Action::LoadFailures);
        app.failures = vec![
            FileEntry {
                path: "/home/ada/notes/private/diary.md".into(),
                state: FileState::Failed,
                reason: Some("Permission denied (os error 13)".into()),
                size: 0,
            },
            FileEntry {
                path: "/home/ada/notes/scans/receipt.pdf".into(),
                state: FileState::Skipped,
                reason: Some("binary content".into()),
                size: 81920,
            },
        ];
        insta::assert_snapshot!(render(&app, 80, 24));
    }

    #[test]
    fn a_tiny_terminal_gets_a_message_not_garbage() {
        insta::assert_snapshot!(render(&app(Phase::Watching), 40, 10));
    }

    #[test]
    fn the_log_keeps_a_fixed_number_of_lines() {
        let mut app = app(Phase::Watching);
        for i in 0..(super::super::app::LOG_LINES as u64 + 500) {
            app.push_activity(row(ChangeKind::Modified, "a.md", None, i));
        }
        assert_eq!(app.log.len(), super::super::app::LOG_LINES);
    }
}
