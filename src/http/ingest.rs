//! Segment-spec ingest: `identify`, `track`, `page`, `screen`, `group`, `alias`, `batch`,
//! with and without the `/v1` prefix, answered `200 {"success": true}` as the Segment
//! and RudderStack SDKs expect.
//!
//! Stages: body (size, gzip, JSON) → [`parse_message`]/[`parse_batch`] (every message
//! validated, errors name the field, e.g. `batch[3].userId`) → `Engine::apply_batch`
//! (on the write path's thread: the whole batch is prepared against the schema as it will
//! stand after it before any of it is applied; `messageId`s de-duplicated, messages for
//! erased profiles dropped).

use crate::http::body::IngestBody;
use crate::http::error::ApiResult;
use crate::http::AppState;
use crate::engine::Mutation;
use crate::ingest::{parse_batch, parse_message};
use axum::extract::State;
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Ingest endpoints: message type (or `batch`) and summary.
pub const MESSAGE_ROUTES: [(&str, &str); 7] = [
    ("identify", "Segment identify: set traits on a profile"),
    ("track", "Segment track: record an event"),
    ("page", "Segment page view (an event named `page`)"),
    ("screen", "Segment screen view (an event named `screen`)"),
    ("group", "Segment group: traits under `group.`"),
    ("alias", "Segment alias: merge previousId into userId"),
    (
        "batch",
        "Segment batch: many messages, validated whole before any is applied",
    ),
];

/// The path of an ingest endpoint, with or without the `/v1` prefix.
pub fn route_path(kind: &str, prefixed: bool) -> &'static str {
    match (kind, prefixed) {
        ("identify", true) => "/v1/identify",
        ("identify", false) => "/identify",
        ("track", true) => "/v1/track",
        ("track", false) => "/track",
        ("page", true) => "/v1/page",
        ("page", false) => "/page",
        ("screen", true) => "/v1/screen",
        ("screen", false) => "/screen",
        ("group", true) => "/v1/group",
        ("group", false) => "/group",
        ("alias", true) => "/v1/alias",
        ("alias", false) => "/alias",
        (_, true) => "/v1/batch",
        (_, false) => "/batch",
    }
}

/// The handler of one ingest endpoint.
pub fn handler_for(kind: &'static str) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, IngestBody(body): IngestBody| async move {
            accept(&state, &body, kind).await
        },
    )
}

async fn accept(state: &AppState, body: &Value, kind: &str) -> ApiResult<Json<Value>> {
    let messages = if kind == "batch" {
        parse_batch(body)?
    } else {
        vec![parse_message(body, Some(kind), "")?]
    };
    let started = Instant::now();
    // Applied by the write path's thread; this worker only waits for the answer.
    state.write(Mutation::Messages(messages)).await?;
    state
        .metrics
        .ingest_apply
        .observe_us(started.elapsed().as_micros() as u64);
    state
        .metrics
        .ingest_requests
        .fetch_add(1, Ordering::Relaxed);
    Ok(Json(json!({ "success": true })))
}
