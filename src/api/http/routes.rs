//! The endpoints: each turns its query string into a [`Request`], has the backend answer it
//! on a blocking thread, and turns the answer (or a typed error) into JSON.

use super::*;

pub(super) async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /healthz /readyz /status /search /history /files /events /metrics /verify",
    )
}

pub(super) async fn method_not_allowed() -> HttpResponse {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "only GET is supported (and POST for /repair on the socket)",
    )
}

pub(super) async fn healthz() -> HttpResponse {
    Json(serde_json::json!({ "ok": true })).into_response()
}

pub(super) async fn readyz(State(s): State<AppState>) -> HttpResponse {
    let status = s.backend.status.get();
    if status.ready {
        Json(serde_json::json!({ "ready": true, "phase": status.phase })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "phase": status.phase })),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusParams {
    disk: Option<u8>,
}

/// The status snapshot; with `disk=1` also the disk used by each part (measured now).
pub(super) async fn status(
    State(s): State<AppState>,
    params: Result<Query<StatusParams>, QueryRejection>,
) -> HttpResponse {
    match params {
        Ok(Query(StatusParams { disk: Some(1) })) => answer(s, Request::Status).await,
        Ok(_) => Json(s.backend.status.get()).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

/// Runs a backend request on a blocking thread and turns the answer into HTTP.
pub(super) async fn answer(s: AppState, request: Request) -> HttpResponse {
    let backend = s.backend.clone();
    let endpoint = match &request {
        Request::Search(_) => "search",
        Request::Status => "status",
        Request::History { .. } => "history",
        Request::Files { .. } => "files",
        Request::Verify => "verify",
        Request::Repair => "repair",
    };
    s.metrics
        .api_requests
        .get_or_create(&crate::metrics::Endpoint {
            endpoint: endpoint.into(),
        })
        .inc();
    let now = s.metrics.api_in_flight.inc() + 1;
    if now > s.metrics.api_in_flight_max.get() {
        s.metrics.api_in_flight_max.set(now);
    }
    let answered = tokio::task::spawn_blocking(move || backend.answer(&request)).await;
    s.metrics.api_in_flight.dec();
    match answered {
        Ok(Response::Error {
            message,
            bad_request,
        }) => {
            s.metrics.error("api");
            let status = if bad_request {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            error(status, message)
        }
        Ok(Response::Search(r)) => Json(r).into_response(),
        Ok(Response::Status(r)) => Json(*r).into_response(),
        Ok(Response::History { rows }) => Json(serde_json::json!({ "rows": rows })).into_response(),
        Ok(Response::Files { files }) => {
            Json(serde_json::json!({ "files": files })).into_response()
        }
        Ok(Response::Verify { differences }) => {
            Json(serde_json::json!({ "differences": differences })).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query failed: {e}"),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SearchParams {
    q: Option<String>,
    mode: Option<String>,
    limit: Option<usize>,
    path: Option<String>,
    #[serde(default)]
    text: bool,
    per_file: Option<usize>,
    demote: Option<u8>,
    sync: Option<u8>,
}

pub(super) async fn search(
    State(s): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> HttpResponse {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(query) = p.q.filter(|q| !q.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing query: /search?q=WORDS");
    };
    let mode = match p.mode.as_deref() {
        None | Some("hybrid") => Mode::Hybrid,
        Some("text") => Mode::Text,
        Some("semantic") => Mode::Semantic,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown mode {other:?}: hybrid, text or semantic"),
            );
        }
    };
    let limit = p.limit.unwrap_or(10);
    if limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={MAX_LIMIT}"),
        );
    }
    answer(
        s,
        Request::Search(SearchRequest {
            query,
            mode,
            limit,
            path: p.path,
            include_text: p.text,
            per_file: p.per_file.filter(|&n| n > 0),
            no_demote: p.demote == Some(0),
            sync: p.sync == Some(1),
        }),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryParams {
    path: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn history(
    State(s): State<AppState>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> HttpResponse {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = p.limit.unwrap_or(20);
    if limit == 0 || limit > 100_000 {
        return error(StatusCode::BAD_REQUEST, "limit must be 1..=100000");
    }
    answer(
        s,
        Request::History {
            path: p.path,
            limit,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct FilesParams {
    state: Option<FileState>,
}

pub(super) async fn files(
    State(s): State<AppState>,
    params: Result<Query<FilesParams>, QueryRejection>,
) -> HttpResponse {
    match params {
        Ok(Query(p)) => answer(s, Request::Files { state: p.state }).await,
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("{}; state is indexed, skipped or failed", e.body_text()),
        ),
    }
}

/// Server-sent events: first a `state` event with the current phase (sent once the
/// subscription is in place, so a client knows that every later change will reach it), then
/// `change` and `state` events as they happen.
pub(super) async fn events(State(s): State<AppState>) -> HttpResponse {
    let receiver = s.events.subscribe();
    let now = s.backend.status.get();
    let current = Event::default()
        .event("state")
        .json_data(serde_json::json!({ "phase": now.phase, "ready": now.ready }))
        .unwrap_or_else(|_| Event::default().comment("unencodable"));
    let first = tokio_stream::once(Ok::<_, std::convert::Infallible>(current));
    let stream = BroadcastStream::new(receiver).map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(e) => Event::default()
                .event(e.event)
                .json_data(&e.data)
                .unwrap_or_else(|_| Event::default().comment("unencodable")),
            Err(_) => Event::default()
                .event("lagged")
                .data("events were dropped for this slow subscriber"),
        })
    });
    Sse::new(first.chain(stream))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

pub(super) async fn verify(State(s): State<AppState>) -> HttpResponse {
    answer(s, Request::Verify).await
}

pub(super) async fn repair(State(s): State<AppState>) -> HttpResponse {
    answer(s, Request::Repair).await
}

pub(super) async fn metrics(State(s): State<AppState>) -> HttpResponse {
    let status = s.backend.status.get();
    s.metrics.watches_active.set(status.watches_active as i64);
    s.metrics.queue_depth.set(status.queue_depth as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
