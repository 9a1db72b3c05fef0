//! isolate: run a document parser in a child process, bounded in time and memory.
//!
//! The parent ([`extract`]) starts `vigil extract-document` (this same binary), writes the
//! document's bytes to its stdin and reads a JSON [`Document`] from its stdout. The child
//! ([`child_main`]) lowers its own limits first (`RLIMIT_AS` to the memory limit,
//! `RLIMIT_CPU` to the time limit, no core dumps), so a parser that allocates without bound
//! fails its allocation, and one that loops is killed by the parent at the deadline. A
//! panic, an abort or a segfault in a parser ends only the child: each is told apart by the
//! exit status and reported as an [`ExtractError`] naming the reason.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Document, DocumentLimits, ExtractError, Format, formats};

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "extract-document";

/// Exit codes of the child besides 0 (a JSON document on stdout).
const EXIT_INVALID: i32 = 2;
const EXIT_TOO_MUCH_TEXT: i32 = 3;
const EXIT_PANIC: i32 = 4;
const EXIT_OUT_OF_MEMORY: i32 = 5;
/// Stack of the parsing thread, in bytes: deeply nested input recurses deeply.
const PARSER_STACK_BYTES: usize = 64 << 20;
/// Most of the child's stderr kept for an error message, in bytes.
const STDERR_BYTES: u64 = 4096;

/// Extracts the text of a `format` document held in `bytes`, in a child process.
///
/// Errors: [`ExtractError::Invalid`] (the parser refused it, with its message),
/// [`ExtractError::TooMuchText`], [`ExtractError::Timeout`] (killed after
/// `limits.time_ms`), [`ExtractError::OutOfMemory`], or [`ExtractError::Crashed`] (the
/// parser panicked or crashed, or the extractor could not be started).
pub fn extract(
    format: Format,
    bytes: &[u8],
    limits: DocumentLimits,
) -> Result<Document, ExtractError> {
    let name = format.name();
    let crashed = |reason: String| ExtractError::Crashed {
        format: name,
        reason,
    };
    let exe = extractor_exe().map_err(crashed)?;
    let mut child = Command::new(&exe)
        .arg(SUBCOMMAND)
        .args(["--format", name])
        .args(["--max-memory", &limits.memory_bytes.to_string()])
        .args(["--max-text", &limits.text_bytes.to_string()])
        .args(["--max-ms", &limits.time_ms.to_string()])
        .env("VIGIL_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crashed(format!("cannot start {}: {e}", exe.display())))?;
    let (mut stdin, stdout, stderr) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    // JSON escaping at most sextuples the text (`\u00XX`); anything longer is not ours.
    let stdout_bytes = limits.text_bytes.saturating_mul(6).saturating_add(1 << 20);
    let (status, out, err) = std::thread::scope(|scope| {
        // A child that stops reading gets EPIPE here, which is not this side's error.
        scope.spawn(move || stdin.write_all(bytes));
        let out = scope.spawn(move || read_bounded(stdout, stdout_bytes));
        let err = scope.spawn(move || read_bounded(stderr, STDERR_BYTES));
        let status = wait_until(&mut child, Duration::from_millis(limits.time_ms));
        let join = |h: std::thread::ScopedJoinHandle<'_, Vec<u8>>| h.join().unwrap_or_default();
        (status, join(out), join(err))
    });
    let message = String::from_utf8_lossy(&err).trim().to_string();
    let out_of_memory = ExtractError::OutOfMemory {
        format: name,
        bytes: limits.memory_bytes,
    };
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Err(ExtractError::Timeout {
                format: name,
                ms: limits.time_ms,
            });
        }
        Err(e) => return Err(crashed(format!("waiting for the extractor: {e}"))),
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => serde_json::from_slice(&out)
            .map_err(|e| crashed(format!("unreadable output of the extractor: {e}"))),
        (Some(EXIT_INVALID), _) => Err(ExtractError::Invalid {
            format: name,
            reason: message,
        }),
        (Some(EXIT_TOO_MUCH_TEXT), _) => Err(ExtractError::TooMuchText {
            limit: limits.text_bytes,
        }),
        (Some(EXIT_PANIC), _) => Err(crashed(format!("the parser panicked: {message}"))),
        // Rust reports a failed allocation on stderr, then aborts.
        (Some(EXIT_OUT_OF_MEMORY), _) => Err(out_of_memory),
        (None, _) if message.contains("memory allocation of") => Err(out_of_memory),
        (_, Some(libc::SIGXCPU)) => Err(ExtractError::Timeout {
            format: name,
            ms: limits.time_ms,
        }),
        (_, Some(signal)) => Err(crashed(format!(
            "killed by signal {signal}{}",
            if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            }
        ))),
        (Some(code), None) => Err(crashed(format!("exit code {code}: {message}"))),
        (None, None) => Err(crashed(message)),
    }
}

/// Waits for `child` up to `limit`; kills and reaps it when the time is up (`Ok(None)`).
fn wait_until(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Reads up to `limit` bytes, then drains the rest so the writer never blocks.
fn read_bounded(mut from: impl Read, limit: u64) -> Vec<u8> {
    let mut kept = Vec::new();
    let _ = from.by_ref().take(limit).read_to_end(&mut kept);
    let _ = std::io::copy(&mut from, &mut std::io::sink());
    kept
}

/// The binary that runs [`SUBCOMMAND`]: `$VIGIL_EXTRACTOR`, else this process when it is
/// `vigil`, else a `vigil` beside it or one directory up (test and bench harnesses run from
/// `target/<profile>/deps`).
fn extractor_exe() -> Result<PathBuf, String> {
    if let Some(exe) = std::env::var_os("VIGIL_EXTRACTOR") {
        return Ok(exe.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if exe.file_stem().is_some_and(|s| s == "vigil") {
        return Ok(exe);
    }
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("vigil"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "no vigil binary beside {} to extract documents with; set VIGIL_EXTRACTOR",
                exe.display()
            )
        })
}

/// The child's side: lowers its limits, reads the document from stdin, parses it on a
/// thread with a large stack and writes the JSON [`Document`] to stdout. Returns the exit
/// code (see the `EXIT_*` constants).
pub fn child_main(format: &str, memory_bytes: u64, text_bytes: u64, time_ms: u64) -> i32 {
    let Some(format) = Format::from_name(format) else {
        eprintln!("unknown document format {format:?}");
        return EXIT_INVALID;
    };
    let cpu_seconds = time_ms.div_ceil(1000) + 1;
    let limited = rlimit::Resource::AS
        .set(memory_bytes, memory_bytes)
        .and_then(|()| rlimit::Resource::CPU.set(cpu_seconds, cpu_seconds + 1))
        .and_then(|()| rlimit::Resource::CORE.set(0, 0));
    if let Err(e) = limited {
        eprintln!("cannot limit the extractor: {e}");
        return EXIT_PANIC;
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the document: {e}");
        return match e.kind() {
            std::io::ErrorKind::OutOfMemory => EXIT_OUT_OF_MEMORY,
            _ => EXIT_INVALID,
        };
    }
    // The panic's message is reported from its payload; the default hook would add a
    // backtrace hint to stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::thread::Builder::new()
        .stack_size(PARSER_STACK_BYTES)
        .spawn(move || formats::extract(format, &bytes))
        .map(|h| h.join());
    match parsed {
        Ok(Ok(Ok(doc))) if doc.text.len() as u64 > text_bytes => EXIT_TOO_MUCH_TEXT,
        Ok(Ok(Ok(doc))) => match serde_json::to_writer(std::io::stdout().lock(), &doc) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing the text: {e}");
                EXIT_PANIC
            }
        },
        Ok(Ok(Err(reason))) => {
            eprintln!("{reason}");
            EXIT_INVALID
        }
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            eprintln!("{message}");
            EXIT_PANIC
        }
        // Its stack cannot be mapped within the memory limit.
        Err(e) => {
            eprintln!("cannot start the parser thread: {e}");
            EXIT_OUT_OF_MEMORY
        }
    }
}
