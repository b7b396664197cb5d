//! Segment-spec ingest: `identify`, `track`, `page`, `screen`, `group`, `alias`, `batch`,
//! with and without the `/v1` prefix, answered `200 {"success": true}` as the Segment
//! and RudderStack SDKs expect.
//!
//! Stages: body (size, gzip, JSON) → [`parse_message_body`]/[`parse_batch_body`] (every message
//! validated, errors name the field, e.g. `batch[3].userId`) → `Engine::apply_batch`
//! (on the write path's thread: the whole batch is prepared against the schema as it will
//! stand after it before any of it is applied; `messageId`s de-duplicated, messages for
//! erased profiles dropped).

use crate::engine::Mutation;
use crate::http::auth::Scope;
use crate::http::body::IngestBody;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::{route, AppState, Route};
use crate::ingest::body::{parse_batch_body, parse_message_body};
use axum::extract::State;
use axum::http::Method;
use axum::routing::post;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The answer to every accepted ingest request (what the SDKs expect).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAccepted {
    pub success: bool,
}

/// A Segment-spec message as ingest reads it (`crate::ingest`); other fields are ignored.
/// Documentation only: the body is parsed by a streaming reader, not into this type.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMessage {
    /// `identify`, `track`, `page`, `screen`, `group` or `alias`; required inside a
    /// batch, optional (must match) on a single-message endpoint.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// The profile's id (string or number); this or `anonymousId` is required.
    #[schema(value_type = Option<Value>)]
    pub user_id: Option<Value>,
    #[schema(value_type = Option<Value>)]
    pub anonymous_id: Option<Value>,
    /// De-duplication key: a repeated `messageId` is applied once.
    pub message_id: Option<String>,
    /// ISO 8601 event time (else `originalTimestamp`, else the time received).
    pub timestamp: Option<String>,
    /// identify/group: traits to set.
    #[schema(value_type = Option<Object>)]
    pub traits: Option<Value>,
    /// track: the event name.
    pub event: Option<String>,
    /// track/page/screen: event properties.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
    /// page/screen: the page or screen name.
    pub name: Option<String>,
    /// group: the group's id.
    #[schema(value_type = Option<Value>)]
    pub group_id: Option<Value>,
    /// alias: the id merged into `userId`.
    #[schema(value_type = Option<Value>)]
    pub previous_id: Option<Value>,
    /// SDK context (`context.campaign` becomes `utm_*` properties of page/screen).
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// The write key, when the request has no `Authorization` header (`sendBeacon`).
    pub write_key: Option<String>,
}

/// A batch of messages, validated whole before any is applied.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentBatch {
    pub batch: Vec<SegmentMessage>,
    /// The write key, when the request has no `Authorization` header (analytics.js
    /// `sendBeacon`).
    pub write_key: Option<String>,
    pub sent_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// One ingest endpoint, documented and routed under `/v1/<kind>` and `/<kind>`.
macro_rules! ingest_endpoint {
    ($kind:tt, $body:ident, $summary:tt,
     $prefixed:ident, $prefixed_path:tt, $prefixed_op:tt,
     $bare:ident, $bare_path:tt, $bare_op:tt) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $prefixed_path, operation_id = $prefixed_op, tag = "ingest",
            description = INGEST_DESCRIPTION,
            params(("Content-Encoding" = Option<String>, Header,
                description = "`gzip` for a gzip-compressed body (also detected by its magic bytes)")),
            request_body(description = "JSON; sent as application/json, text/plain (analytics.js, sendBeacon), \
                application/x-www-form-urlencoded (rudder-sdk-node) or no content type",
                content(($body = "application/json"), ($body = "text/plain"),
                        ($body = "application/x-www-form-urlencoded"))),
            responses(
                (status = 200, description = "Applied (or a duplicate `messageId`, applied once)", body = IngestAccepted),
                (status = "default", description = "Error: 422 `invalid_message` names the field (`batch[3].userId`)", body = ErrorBody),
            ))]
        pub async fn $prefixed(State(state): State<AppState>, body: IngestBody) -> ApiResult<Json<IngestAccepted>> {
            accept(&state, &body.bytes, $kind).await
        }

        #[doc = $summary]
        #[utoipa::path(post, path = $bare_path, operation_id = $bare_op, tag = "ingest",
            description = INGEST_DESCRIPTION,
            params(("Content-Encoding" = Option<String>, Header,
                description = "`gzip` for a gzip-compressed body (also detected by its magic bytes)")),
            request_body(description = "The same as under `/v1`",
                content(($body = "application/json"), ($body = "text/plain"),
                        ($body = "application/x-www-form-urlencoded"))),
            responses(
                (status = 200, description = "Applied", body = IngestAccepted),
                (status = "default", description = "Error", body = ErrorBody),
            ))]
        pub async fn $bare(State(state): State<AppState>, body: IngestBody) -> ApiResult<Json<IngestAccepted>> {
            accept(&state, &body.bytes, $kind).await
        }
    };
}

const INGEST_DESCRIPTION: &str = "Write key: HTTP Basic with the write key as the username and an \
empty password, or (no `Authorization` header) `writeKey` in the body. Bodies up to the body \
limit, before and after gzip.";

ingest_endpoint!(
    "identify",
    SegmentMessage,
    "Segment identify: set traits on a profile",
    identify,
    "/v1/identify",
    "identify",
    identify_bare,
    "/identify",
    "identifyUnprefixed"
);
ingest_endpoint!(
    "track",
    SegmentMessage,
    "Segment track: record an event",
    track,
    "/v1/track",
    "track",
    track_bare,
    "/track",
    "trackUnprefixed"
);
ingest_endpoint!(
    "page",
    SegmentMessage,
    "Segment page view (an event named `page`)",
    page,
    "/v1/page",
    "page",
    page_bare,
    "/page",
    "pageUnprefixed"
);
ingest_endpoint!(
    "screen",
    SegmentMessage,
    "Segment screen view (an event named `screen`)",
    screen,
    "/v1/screen",
    "screen",
    screen_bare,
    "/screen",
    "screenUnprefixed"
);
ingest_endpoint!(
    "group",
    SegmentMessage,
    "Segment group: traits under `group.`",
    group,
    "/v1/group",
    "group",
    group_bare,
    "/group",
    "groupUnprefixed"
);
ingest_endpoint!(
    "alias",
    SegmentMessage,
    "Segment alias: merge previousId into userId",
    alias,
    "/v1/alias",
    "alias",
    alias_bare,
    "/alias",
    "aliasUnprefixed"
);
ingest_endpoint!(
    "batch",
    SegmentBatch,
    "Segment batch: many messages, validated whole before any is applied",
    batch,
    "/v1/batch",
    "batch",
    batch_bare,
    "/batch",
    "batchUnprefixed"
);
ingest_endpoint!(
    "b",
    SegmentBatch,
    "analytics.js batching endpoint: the same as batch (writeKey may be in the body)",
    beacon_batch,
    "/v1/b",
    "beaconBatch",
    beacon_batch_bare,
    "/b",
    "beaconBatchUnprefixed"
);

/// The ingest routes (write scope), `/v1/<kind>` and `/<kind>`.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::POST,
            "/v1/identify",
            Scope::Write,
            "Segment identify",
            post(identify),
        ),
        route(
            Method::POST,
            "/identify",
            Scope::Write,
            "Segment identify",
            post(identify_bare),
        ),
        route(
            Method::POST,
            "/v1/track",
            Scope::Write,
            "Segment track",
            post(track),
        ),
        route(
            Method::POST,
            "/track",
            Scope::Write,
            "Segment track",
            post(track_bare),
        ),
        route(
            Method::POST,
            "/v1/page",
            Scope::Write,
            "Segment page",
            post(page),
        ),
        route(
            Method::POST,
            "/page",
            Scope::Write,
            "Segment page",
            post(page_bare),
        ),
        route(
            Method::POST,
            "/v1/screen",
            Scope::Write,
            "Segment screen",
            post(screen),
        ),
        route(
            Method::POST,
            "/screen",
            Scope::Write,
            "Segment screen",
            post(screen_bare),
        ),
        route(
            Method::POST,
            "/v1/group",
            Scope::Write,
            "Segment group",
            post(group),
        ),
        route(
            Method::POST,
            "/group",
            Scope::Write,
            "Segment group",
            post(group_bare),
        ),
        route(
            Method::POST,
            "/v1/alias",
            Scope::Write,
            "Segment alias",
            post(alias),
        ),
        route(
            Method::POST,
            "/alias",
            Scope::Write,
            "Segment alias",
            post(alias_bare),
        ),
        route(
            Method::POST,
            "/v1/batch",
            Scope::Write,
            "Segment batch",
            post(batch),
        ),
        route(
            Method::POST,
            "/batch",
            Scope::Write,
            "Segment batch",
            post(batch_bare),
        ),
        route(
            Method::POST,
            "/v1/b",
            Scope::Write,
            "analytics.js batch",
            post(beacon_batch),
        ),
        route(
            Method::POST,
            "/b",
            Scope::Write,
            "analytics.js batch",
            post(beacon_batch_bare),
        ),
    ]
}

async fn accept(state: &AppState, body: &[u8], kind: &str) -> ApiResult<Json<IngestAccepted>> {
    // Limits are checked while parsing (see `ingest::body`), not after building a tree.
    let messages = if kind == "batch" || kind == "b" {
        parse_batch_body(body)?
    } else {
        vec![parse_message_body(body, kind)?]
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
    Ok(Json(IngestAccepted { success: true }))
}
