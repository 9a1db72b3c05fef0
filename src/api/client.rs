//! The CLI's side of the API: one HTTP/1.1 GET over the index's Unix socket, the response
//! parsed with `httparse`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{FileEntry, Request, Response, socket_path};
use crate::records::HistoryRow;
use crate::search::Mode;

/// Largest response read, bytes.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// `GET target` on the socket of `index_dir`: `Ok(None)` when nothing listens there.
///
/// Errors: the connection breaks or the answer is not HTTP.
pub fn get(index_dir: &Path, target: &str) -> Result<Option<(u16, Vec<u8>)>> {
    call(index_dir, "GET", target, Duration::from_secs(120))
}

/// `METHOD target` (no body) on the socket of `index_dir`, waiting up to `wait` for the
/// answer: `Ok(None)` when nothing listens there.
///
/// Errors: the connection breaks, the answer is late or not HTTP.
pub fn call(
    index_dir: &Path,
    method: &str,
    target: &str,
    wait: Duration,
) -> Result<Option<(u16, Vec<u8>)>> {
    let path = socket_path(index_dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot connect", path.display())),
    };
    stream.set_read_timeout(Some(wait))?;
    write!(stream, "{method} {target} HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n")
        .with_context(|| format!("{}: cannot send", path.display()))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .with_context(|| format!("{}: no answer", path.display()))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response
        .parse(&raw)
        .with_context(|| format!("{}: not an HTTP answer", path.display()))?
    {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("{}: incomplete HTTP answer", path.display()),
    };
    let code = response.code.unwrap_or(0);
    Ok(Some((code, raw[head..].to_vec())))
}

fn encode(pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The URL of a request.
pub fn target(request: &Request) -> String {
    match request {
        Request::Status => "/status?disk=1".into(),
        Request::Search(r) => {
            let mode = match r.mode {
                Mode::Hybrid => "hybrid",
                Mode::Text => "text",
                Mode::Semantic => "semantic",
            };
            let mut pairs = vec![
                ("q", r.query.clone()),
                ("mode", mode.into()),
                ("limit", r.limit.to_string()),
            ];
            if let Some(p) = &r.path {
                pairs.push(("path", p.clone()));
            }
            if let Some(n) = r.per_file {
                pairs.push(("per_file", n.to_string()));
            }
            if r.no_demote {
                pairs.push(("demote", "0".into()));
            }
            if r.sync {
                pairs.push(("sync", "1".into()));
            }
            format!("/search?{}", encode(&pairs))
        }
        Request::History { path, limit } => {
            let mut pairs = vec![("limit", limit.to_string())];
            if let Some(p) = path {
                pairs.push(("path", p.clone()));
            }
            format!("/history?{}", encode(&pairs))
        }
        Request::Verify => "/verify".into(),
        Request::Repair => "/repair".into(),
        Request::Files { state } => match state {
            Some(s) => format!(
                "/files?state={}",
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            None => "/files".into(),
        },
    }
}

/// Asks the process that owns `index_dir`. `Ok(None)` when none answers.
///
/// Errors: the API answered with an error (its message), or broke off.
pub fn ask(index_dir: &Path, request: &Request) -> Result<Option<Response>> {
    let wait = match request {
        Request::Repair => Duration::from_secs(3600),
        _ => Duration::from_secs(120),
    };
    ask_within(index_dir, request, wait)
}

/// Like [`ask`], waiting at most `wait` for the answer.
///
/// Errors: as [`ask`], and the answer is late.
pub fn ask_within(index_dir: &Path, request: &Request, wait: Duration) -> Result<Option<Response>> {
    let answer = match request {
        Request::Repair => call(index_dir, "POST", "/repair", wait)?,
        _ => call(index_dir, "GET", &target(request), wait)?,
    };
    let Some((code, body)) = answer else {
        return Ok(None);
    };
    if !(200..300).contains(&code) {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{message}");
    }
    let malformed = || format!("{}: malformed answer", socket_path(index_dir).display());
    #[derive(serde::Deserialize)]
    struct Rows {
        rows: Vec<HistoryRow>,
    }
    #[derive(serde::Deserialize)]
    struct Files {
        files: Vec<FileEntry>,
    }
    #[derive(serde::Deserialize)]
    struct Differences {
        differences: Vec<crate::verify::Difference>,
    }
    Ok(Some(match request {
        Request::Verify | Request::Repair => Response::Verify {
            differences: serde_json::from_slice::<Differences>(&body)
                .with_context(malformed)?
                .differences,
        },
        Request::Status => Response::Status(Box::new(
            serde_json::from_slice(&body).with_context(malformed)?,
        )),
        Request::Search(_) => {
            Response::Search(serde_json::from_slice(&body).with_context(malformed)?)
        }
        Request::History { .. } => Response::History {
            rows: serde_json::from_slice::<Rows>(&body)
                .with_context(malformed)?
                .rows,
        },
        Request::Files { .. } => Response::Files {
            files: serde_json::from_slice::<Files>(&body)
                .with_context(malformed)?
                .files,
        },
    }))
}
