//! The change feed for trigger systems (read key): long-poll by sequence and Server-Sent
//! Events that resume from `Last-Event-ID`.
//!
//! A reader passes the sequence of the last change it processed (`after`); it gets every
//! later change still retained, or — when retention already dropped one it has not seen —
//! a `fell_behind` answer (410 for long-poll, a `fell_behind` event for SSE) naming the
//! oldest sequence still available, never a silent gap.

use crate::changes::{Change, FellBehind, ReadResult};
use crate::http::body::QueryParams;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::segments::resolve_segment;
use crate::http::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest long-poll wait; below the request timeout so a poll always answers itself.
pub const MAX_WAIT_MS: u64 = 25_000;
/// Most changes per long-poll answer.
pub const MAX_CHANGES_PER_READ: usize = 10_000;
/// Changes read from the log per step of an SSE stream (bounds its buffer).
pub const SSE_READ_BATCH: usize = 1_000;
/// Seconds between SSE keep-alive comments.
pub const SSE_KEEP_ALIVE_S: u64 = 15;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// Sequence of the last change processed (`next_after` of the previous answer); 0
    /// for the start of the log.
    #[serde(default)]
    #[param(required = false)]
    after: u64,
    /// Only changes of this segment (id or name).
    #[serde(default)]
    segment: Option<String>,
    /// Most changes per answer, 1 to 10000 (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Wait up to this long (at most 25000 ms) for a change when there is none yet.
    #[serde(default)]
    #[param(required = false, maximum = 25000)]
    wait_ms: u64,
}

/// `GET /v1/changes`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangesPage {
    /// Oldest first.
    pub changes: Vec<Change>,
    /// The newest sequence assigned so far.
    pub head: u64,
    /// Pass as `after` on the next poll.
    pub next_after: u64,
}

pub(crate) fn fell_behind_error(behind: FellBehind, head: u64) -> ApiError {
    ApiError::new(StatusCode::GONE, "fell_behind", behind.to_string())
        .with("requested_after", behind.requested_after)
        .with("oldest_available", behind.oldest_available)
        .with("head", head)
}

fn answer(result: ReadResult) -> Json<ChangesPage> {
    Json(ChangesPage {
        changes: result.changes,
        head: result.head,
        next_after: result.next_after,
    })
}

/// Membership changes after a sequence (long-poll with wait_ms).
#[utoipa::path(get, path = "/v1/changes", operation_id = "pollChanges", tag = "changes",
    params(PollQuery),
    responses(
        (status = 200, description = "Changes after `after` (empty when `wait_ms` passed without one)", body = ChangesPage),
        (status = 410, description = "`fell_behind`: retention dropped changes after `after`; `oldest_available` says where to resume", body = ErrorBody),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn long_poll(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PollQuery>,
) -> ApiResult<Json<ChangesPage>> {
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_CHANGES_PER_READ {
        return Err(ApiError::invalid_parameter(
            "limit",
            format!("limit must be 1 to {MAX_CHANGES_PER_READ}"),
        ));
    }
    if query.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid_parameter(
            "wait_ms",
            format!("wait_ms is at most {MAX_WAIT_MS}"),
        ));
    }
    let segment = match &query.segment {
        Some(segment) => Some(resolve_segment(&state.engine, segment)?.0),
        None => None,
    };
    let log = state.engine.changes();
    let deadline = Instant::now() + Duration::from_millis(query.wait_ms);
    let mut after = query.after;
    loop {
        let result = log
            .read(after, segment, limit)
            .map_err(|behind| fell_behind_error(behind, log.head()))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !result.changes.is_empty() || remaining.is_zero() {
            return Ok(answer(result));
        }
        // Nothing for this reader yet: skip what was examined and wait for more (or
        // answer at once when the server starts shutting down, so draining is quick).
        after = result.next_after;
        let mut shutdown = state.shutdown_signal();
        let arrived = tokio::select! {
            arrived = log.wait_async(result.head, remaining) => arrived,
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        };
        if !arrived {
            return Ok(answer(
                log.read(after, segment, limit)
                    .map_err(|behind| fell_behind_error(behind, log.head()))?,
            ));
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this sequence (`Last-Event-ID` wins); the current head when absent.
    #[serde(default)]
    after: Option<u64>,
    /// Only changes of this segment (id or name).
    #[serde(default)]
    segment: Option<String>,
}

/// What an SSE stream carries between steps.
struct StreamState {
    state: AppState,
    after: u64,
    segment: Option<u32>,
    buffer: VecDeque<Event>,
    head: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    finished: bool,
    _slot: StreamSlot,
}

/// Holds one of the bounded SSE slots, the active-stream gauge and the stream's entry in
/// the lag figures while a stream lives.
struct StreamSlot {
    state: AppState,
    stream: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.state
            .metrics
            .sse_streams_active
            .fetch_sub(1, Ordering::Relaxed);
        self.state.metrics.sse_closed(self.stream);
    }
}

/// Membership changes as Server-Sent Events (resumes from Last-Event-ID).
#[utoipa::path(get, path = "/v1/changes/stream", operation_id = "streamChanges", tag = "changes",
    params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Sequence of the last change received (a resuming client)")),
    responses(
        (status = 200, description = "`change` events (data: a Change as JSON, id: its sequence); a `fell_behind` event ends the stream when retention dropped changes not yet sent",
            content_type = "text/event-stream", body = String),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
/// `GET /v1/changes/stream`: starts after `Last-Event-ID` (a resuming client), else
/// after `?after=`, else at the current head (only new changes).
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<StreamQuery>,
) -> ApiResult<Response> {
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_last_event_id",
                        "Last-Event-ID must be the sequence number of the last change received",
                    )
                })?,
        ),
        None => None,
    };
    let segment = match &query.segment {
        Some(segment) => Some(resolve_segment(&state.engine, segment)?.0),
        None => None,
    };
    let log = state.engine.changes();
    let after = last_event_id.or(query.after).unwrap_or_else(|| log.head());
    let Ok(permit) = state.sse_slots.clone().try_acquire_owned() else {
        return Err(ApiError::overloaded(format!(
            "{} change streams are open, the limit; use long-poll or retry later",
            state.limits.max_sse_streams
        )));
    };
    // Refuse up front rather than open a stream that can only say it fell behind.
    log.read(after, segment, 1)
        .map_err(|behind| fell_behind_error(behind, log.head()))?;
    state
        .metrics
        .sse_streams_active
        .fetch_add(1, Ordering::Relaxed);
    let initial = StreamState {
        head: log.subscribe(),
        shutdown: state.shutdown_signal(),
        after,
        segment,
        buffer: VecDeque::new(),
        finished: false,
        _slot: StreamSlot {
            stream: state.metrics.sse_opened(after),
            state: state.clone(),
            _permit: permit,
        },
        state,
    };
    let events = futures_util::stream::unfold(initial, |mut stream| async move {
        loop {
            if let Some(event) = stream.buffer.pop_front() {
                return Some((Ok::<Event, std::convert::Infallible>(event), stream));
            }
            if stream.finished || *stream.shutdown.borrow() {
                return None;
            }
            let log = stream.state.engine.changes();
            match log.read(stream.after, stream.segment, SSE_READ_BATCH) {
                Ok(result) => {
                    stream.after = result.next_after;
                    // Counted as sent once read into the buffer (≤ one batch early).
                    stream
                        .state
                        .metrics
                        .sse_sent_through(stream._slot.stream, result.next_after);
                    for change in &result.changes {
                        let data = serde_json::to_string(change).unwrap_or_default();
                        stream.buffer.push_back(
                            Event::default()
                                .id(change.sequence.to_string())
                                .event("change")
                                .data(data),
                        );
                    }
                    if !stream.buffer.is_empty() {
                        continue;
                    }
                    let after = stream.after;
                    tokio::select! {
                        changed = stream.head.wait_for(|head| *head > after) => {
                            if changed.is_err() { return None; }
                        }
                        _ = stream.shutdown.changed() => return None,
                    }
                }
                Err(behind) => {
                    let data = json!({
                        "requested_after": behind.requested_after,
                        "oldest_available": behind.oldest_available,
                        "message": behind.to_string(),
                    });
                    stream
                        .buffer
                        .push_back(Event::default().event("fell_behind").data(data.to_string()));
                    stream.finished = true;
                }
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(SSE_KEEP_ALIVE_S)))
        .into_response())
}
