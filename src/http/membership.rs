//! Membership lookups for trigger systems (read key) and profiles: card, export, erasure.
//!
//! Profiles are addressed by `userId`, or `anon:<anonymousId>` when no userId is known.
//! Lookups answer on the async worker that parsed the request (no task hop): borrowed
//! path parameters, one registry read, one shard read, and the JSON answer written
//! straight into the response body (no `serde_json::Value`, no per-field strings).
//! `tests/lookup_allocations.rs` counts what is left per request.

use crate::engine::lookup::{write_json_string, write_number};
use crate::engine::ProfileCard;
use crate::engine::{Applied, Mutation};
use crate::http::body::PathParams;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::membership_text::{BulkAnswer, BulkCheck};
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Recent events listed on the profile card.
pub const CARD_RECENT_EVENTS: usize = 20;
/// Recent events included in an export.
pub const EXPORT_RECENT_EVENTS: usize = 100_000;

/// One segment in a lookup answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentEntry {
    pub id: SegmentId,
    pub name: String,
}

/// `GET /v1/profiles/{id}/segments` (the schema; the handler writes the same shape
/// directly, checked by the unit test below).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct SegmentsOf {
    profile: String,
    segments: Vec<SegmentEntry>,
}

/// `GET /v1/segments/{id}/members/{profile}` (the schema; written directly by
/// [`write_membership`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Membership {
    pub segment_id: SegmentId,
    pub profile: String,
    pub member: bool,
}

/// A finished JSON body as a response.
pub(crate) fn json_response(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The route's path parameters, borrowed (undecodable ones are 400 `bad_path`).
fn path_params(
    params: &Result<RawPathParams, RawPathParamsRejection>,
) -> Result<&RawPathParams, ApiError> {
    params.as_ref().map_err(|rejection| {
        ApiError::bad_request(
            "bad_path",
            format!("bad path parameter: {}", rejection.body_text()),
        )
    })
}

fn segment_not_found(segment: &str) -> ApiError {
    ApiError::not_found(
        "segment_not_found",
        format!("no segment with id or name `{segment}`"),
    )
}

fn write_membership(out: &mut Vec<u8>, id: SegmentId, profile: &str, member: bool) {
    out.extend_from_slice(b"{\"segment_id\":");
    write_number(out, u64::from(id.0));
    out.extend_from_slice(b",\"profile\":");
    write_json_string(out, profile);
    out.extend_from_slice(if member {
        b",\"member\":true}"
    } else {
        b",\"member\":false}"
    });
}

/// Segments the profile is in.
#[utoipa::path(get, path = "/v1/profiles/{id}/segments", operation_id = "profileSegments", tag = "membership",
    params(("id" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "The profile's segments, by id", body = SegmentsOf),
        (status = "default", description = "Error (404 `profile_not_found`)", body = ErrorBody),
    ))]
pub async fn segments_of(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Response, ApiError> {
    let params = path_params(&params)?;
    let profile = params.iter().next().map_or("", |(_, value)| value);
    let mut out = Vec::with_capacity(64 + 2 * profile.len());
    out.extend_from_slice(b"{\"profile\":");
    write_json_string(&mut out, profile);
    out.extend_from_slice(b",\"segments\":");
    if !state.engine.write_segments_of_json(profile, &mut out) {
        return Err(ApiError::not_found(
            "profile_not_found",
            format!("no profile `{profile}`"),
        ));
    }
    out.push(b'}');
    Ok(json_response(out))
}

/// Is the profile a member?
#[utoipa::path(get, path = "/v1/segments/{id}/members/{profile}", operation_id = "isMember", tag = "membership",
    params(("id" = String, Path, description = "Segment id or name"),
           ("profile" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "Membership now", body = Membership),
        (status = "default", description = "Error (404 `segment_not_found`)", body = ErrorBody),
    ))]
pub async fn is_member(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Response, ApiError> {
    let params = path_params(&params)?;
    let mut values = params.iter().map(|(_, value)| value);
    let (segment, profile) = (
        values.next().unwrap_or_default(),
        values.next().unwrap_or_default(),
    );
    let (id, member) = state
        .engine
        .lookup_member(segment, profile)
        .ok_or_else(|| segment_not_found(segment))?;
    let mut out = Vec::with_capacity(64 + 2 * profile.len());
    write_membership(&mut out, id, profile, member);
    Ok(json_response(out))
}

/// Bulk membership check: profiles × segments as JSON, or `segment<TAB>profile` lines
/// as `text/plain` answered `1`/`0` per line (see [`crate::http::membership_text`]).
#[utoipa::path(post, path = "/v1/membership", operation_id = "bulkMembership", tag = "membership",
    request_body(description = "JSON (`application/json`), or `text/plain` with one `segment<TAB>profile` pair per line (segment id or name; `\\n` or `\\r\\n` line ends)",
        content((BulkCheck = "application/json"), (String = "text/plain"))),
    responses(
        (status = 200, description = "Every pair: JSON for a JSON request; for `text/plain`, one line per pair in order, `1` (member) or `0`",
            content((BulkAnswer = "application/json"), (String = "text/plain"))),
        (status = "default", description = "Error (404 `segment_not_found`; 422 `invalid_field` or `invalid_line` with the line number; 413 `body_too_large`)", body = ErrorBody),
    ))]
pub async fn bulk(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    crate::http::membership_text::bulk(state, request).await
}

/// The profile card.
#[utoipa::path(get, path = "/v1/profiles/{id}", operation_id = "getProfile", tag = "profiles",
    params(("id" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "Traits, segments, event summaries and the 20 most recent events", body = ProfileCard),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn card(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<ProfileCard>> {
    Ok(Json(
        state.engine.profile_card(&profile, CARD_RECENT_EVENTS)?,
    ))
}

/// `GET /v1/profiles/{id}/export`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileExport {
    pub exported_at_ms: i64,
    pub profile: ProfileCard,
}

/// Everything held about a profile.
#[utoipa::path(get, path = "/v1/profiles/{id}/export", operation_id = "exportProfile", tag = "profiles",
    params(("id" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "The card with every retained event", body = ProfileExport),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<ProfileExport>> {
    let card = blocking(&state, move |engine| {
        engine.profile_card(&profile, EXPORT_RECENT_EVENTS)
    })
    .await??;
    Ok(Json(ProfileExport {
        exported_at_ms: state.engine.now_ms(),
        profile: card,
    }))
}

/// `DELETE /v1/profiles/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub erased: bool,
    /// Segments the profile left.
    pub segments_left: Vec<SegmentId>,
    /// Its identifiers are suppressed: later messages naming them are dropped.
    pub suppressed: bool,
}

/// Erase a profile and suppress its identifiers.
#[utoipa::path(delete, path = "/v1/profiles/{id}", operation_id = "eraseProfile", tag = "profiles",
    params(("id" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn erase(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<Erased>> {
    let mutation = Mutation::EraseProfile {
        external_id: profile,
    };
    let Applied::Removed(changes) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    Ok(Json(Erased {
        erased: true,
        segments_left: changes.iter().map(|change| change.segment).collect(),
        suppressed: true,
    }))
}

#[cfg(test)]
mod tests {
    //! The hand-written lookup answers are exactly what serde writes for their schema types.
    use super::*;

    #[test]
    fn written_membership_equals_the_schema_type() {
        for (profile, member) in [("u1", true), ("anon:dé\"v\\1\n", false)] {
            let mut out = Vec::new();
            write_membership(&mut out, SegmentId(42), profile, member);
            let expected = serde_json::to_vec(&Membership {
                segment_id: SegmentId(42),
                profile: profile.into(),
                member,
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
        let shape = serde_json::to_value(SegmentsOf {
            profile: "u1".into(),
            segments: vec![SegmentEntry {
                id: SegmentId(3),
                name: "a \"b\"".into(),
            }],
        })
        .unwrap();
        assert_eq!(
            shape,
            serde_json::json!({"profile": "u1", "segments": [{"id": 3, "name": "a \"b\""}]})
        );
    }
}
