//! output: how results look on a terminal and in JSON.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use crate::engine::{Progress, ReconcileStats};
use crate::records::HistoryRow;
use crate::search::{Hit, Mode};
use crate::status::StatusSnapshot;

/// An `indicatif` bar on standard error, drawn only when it is a terminal.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
}

impl ProgressBar {
    /// A bar for `what` (e.g. "indexing"), counting `unit`s.
    pub fn new(what: &str, unit: &str) -> Self {
        let bar = if stderr_is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        let template = format!(
            "{what:>10} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for ProgressBar {
    fn set_total(&self, files: u64) {
        self.bar.set_length(files);
    }

    fn advance(&self, files: u64, chunks: u64) {
        self.bar.inc(files);
        if chunks > 0 {
            let seen = self
                .bar
                .message()
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            self.bar.set_message(format!("{} chunks", seen + chunks));
        }
    }
}

/// The end-of-`index` summary.
pub fn summary(s: &ReconcileStats, embedded: u64, elapsed: Duration) {
    println!(
        "files:      {} scanned, {} added, {} modified, {} deleted, {} renamed, {} touched, {} unchanged, {} skipped, {} failed",
        s.scanned,
        s.added,
        s.modified,
        s.deleted,
        s.renamed,
        s.touched,
        s.unchanged,
        s.skipped,
        s.failed
    );
    println!(
        "chunks:     {} added, {} removed",
        s.chunks_added, s.chunks_removed
    );
    println!(
        "embeddings: {embedded} computed, {} reused",
        s.embeddings_reused
    );
    println!("elapsed:    {:.2} s", elapsed.as_secs_f64());
}

fn modes(m: &[Mode]) -> String {
    m.iter()
        .map(|m| match m {
            Mode::Text => "text",
            Mode::Semantic => "semantic",
            Mode::Hybrid => "hybrid",
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Prints hits grep-style (`path:start-end  score  [modes]` then the snippet) or as JSON lines.
pub fn hits(hits: &[Hit], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for h in hits {
        if json {
            serde_json::to_writer(&mut out, h)?;
            writeln!(out)?;
            continue;
        }
        writeln!(
            out,
            "{}:{}-{}{}  {:.4}  [{}]",
            h.path,
            h.start_line,
            h.end_line,
            h.location_suffix(),
            h.score,
            modes(&h.modes)
        )?;
        for (i, line) in h.snippet.lines().enumerate() {
            writeln!(out, "{:>6}  {line}", h.snippet_line as usize + i)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Prints the files of `hits` (one hit per file, best first): paths, or JSON lines with the
/// best chunk's score and lines.
pub fn files(hits: &[Hit], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for h in hits {
        if json {
            let v = serde_json::json!({
                "path": h.path,
                "score": h.score,
                "start_line": h.start_line,
                "end_line": h.end_line,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{}", h.path)?;
        }
    }
    Ok(())
}

/// Prints the status.
pub fn status(s: &StatusSnapshot, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
        return Ok(());
    }
    let phase = serde_json::to_value(s.phase)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "state:       {phase}{}",
        if s.pid > 0 {
            format!(" (pid {})", s.pid)
        } else {
            String::new()
        }
    );
    println!("index:       {}", s.index_dir);
    if !s.roots.is_empty() {
        println!("roots:       {}", s.roots.join(", "));
    }
    println!("model:       {}", s.model.as_deref().unwrap_or("text-only"));
    println!(
        "files:       {} indexed, {} skipped, {} failed",
        s.files_indexed, s.files_skipped, s.files_failed
    );
    println!("chunks:      {}", s.chunks);
    if s.static_vectors > 0 {
        println!(
            "static:      {} chunk texts embedded (made as files are indexed)",
            s.static_vectors
        );
    }
    println!(
        "embeddings:  {} cached, {} computed by this process, {} pending",
        s.embeddings_cached, s.embeddings_computed, s.embeddings_pending
    );
    if let Some(note) = &s.embed_note {
        println!("             {note}");
    }
    if s.embeddings_failing > 0 || s.embed_error.is_some() {
        println!(
            "             {} failing (retried with backoff): {}",
            s.embeddings_failing,
            s.embed_error
                .as_deref()
                .unwrap_or("set aside after repeated failures")
        );
    }
    if let Some(d) = &s.disk {
        let t = &d.store_tables;
        println!(
            "disk:        {} in all: store {} (files {}, chunks {}, embeddings {}, static vectors {}, history {}), text {}, vector snapshots {}",
            bytes(d.total),
            bytes(d.store_file),
            bytes(t.files),
            bytes(t.chunks),
            bytes(t.vectors),
            bytes(t.static_vectors),
            bytes(t.history),
            bytes(d.text),
            bytes(d.vectors_snapshot)
        );
    }
    if s.phase == crate::status::Phase::Scanning {
        println!("scan:        {}/{} files", s.scan_done, s.scan_total);
    }
    for r in &s.remotes {
        println!("{}", remote_line(r));
    }
    if let Some(e) = &s.last_error {
        println!("last error:  {e}");
    }
    Ok(())
}

/// One line about the polling of an object-storage root.
pub fn remote_line(r: &crate::status::RemoteStatus) -> String {
    let now = crate::records::now_ms();
    let ago = |ms: u64| {
        humantime::format_duration(std::time::Duration::from_secs(
            now.saturating_sub(ms) / 1000,
        ))
    };
    let mut line = format!(
        "polling:     {} — {} objects, {} downloaded",
        r.root, r.objects, r.downloads
    );
    match (&r.last_error, r.last_ok_ms) {
        (Some(e), _) => line += &format!(", failing ({} in a row): {e}", r.failures),
        (None, Some(ok)) => line += &format!(", last poll {} ago", ago(ok)),
        (None, None) => line += ", not polled yet",
    }
    if let Some(next) = r.next_poll_ms
        && next > now
    {
        line += &format!(
            ", next in {}",
            humantime::format_duration(std::time::Duration::from_secs((next - now).div_ceil(1000)))
        );
    }
    line
}

/// A byte count for people: "1.50 MiB".
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Prints history rows, newest first.
pub fn history(rows: &[HistoryRow], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for r in rows {
        if json {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
            continue;
        }
        let time = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(r.time_ms),
        );
        let path = match &r.from {
            Some(from) => format!("{from} -> {}", r.path),
            None => r.path.clone(),
        };
        write!(
            out,
            "{time}  {:<8}  {path}  +{} -{}",
            r.kind.as_str(),
            r.chunks_added,
            r.chunks_removed
        )?;
        if r.embeddings_computed + r.embeddings_reused > 0 {
            write!(
                out,
                "  (embeddings: {} new, {} reused)",
                r.embeddings_computed, r.embeddings_reused
            )?;
        }
        if let Some(reason) = &r.reason {
            write!(out, "  ({reason})")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Prints verify differences: `kind  path  detail`, or JSON lines.
pub fn differences(diffs: &[crate::verify::Difference], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for d in diffs {
        if json {
            serde_json::to_writer(&mut out, d)?;
            writeln!(out)?;
        } else {
            let kind = serde_json::to_value(d.kind)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            writeln!(out, "{kind:<13} {}  ({})", d.path, d.detail)?;
        }
    }
    Ok(())
}

/// Whether stderr is a terminal (progress bars and colours only then).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
