//! `POST /v1/membership`, the bulk membership check, in two forms:
//!
//! - JSON (`application/json`): `{"profiles": [...], "segments": [...]}`, answered as a
//!   profile → segment → bool object;
//! - compact (`text/plain`): one `segment<TAB>profile` pair per line (segment id or
//!   name; `\n` or `\r\n` line ends; a final line end is optional), answered with one
//!   line per pair in the same order, `1` (member) or `0` (not, or unknown profile).
//!   What a trigger system sending thousands of checks wants: no JSON on either side,
//!   two bytes per answer.
//!
//! Both are bounded by [`MAX_BULK_PAIRS`] and the body size limit, and are checked
//! completely (every line, every segment) before anything is answered: a bad line is a
//! 422 naming it, an unknown segment a 404. Batches of up to [`INLINE_PAIRS`] pairs are
//! answered on the async worker; larger ones on the blocking pool, so that a 100,000-pair
//! check cannot stall the lookups sharing that worker.

use crate::engine::Engine;
use crate::http::body::{parse_json, read_body_charged, Accept, BodyCharge};
use crate::http::error::ApiError;
use crate::http::segments::{resolve_segment, SegmentName};
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most profile × segment pairs (JSON) or lines (text) in one bulk check.
pub const MAX_BULK_PAIRS: usize = 100_000;
/// Bulk checks up to this many pairs are answered without a hop to the blocking pool.
pub const INLINE_PAIRS: usize = 1_024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCheck {
    profiles: Vec<String>,
    /// Segment ids (numbers) or names (strings).
    #[schema(value_type = Vec<SegmentName>)]
    segments: Vec<Value>,
}

/// `POST /v1/membership` (JSON form).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkAnswer {
    /// profile → (segment as given → member).
    #[schema(value_type = std::collections::HashMap<String, std::collections::HashMap<String, bool>>)]
    pub results: Map<String, Value>,
    /// Profiles that do not exist (answered false everywhere).
    pub unknown_profiles: Vec<String>,
}

/// Whether the body is the compact form (`text/plain`, any parameters).
fn is_text(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/plain"))
}

/// The handler behind [`crate::http::membership::bulk`].
pub async fn bulk(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let text = is_text(&parts.headers);
    let mut charge = BodyCharge::default();
    let bytes = read_body_charged(
        &parts.headers,
        body,
        if text { Accept::Any } else { Accept::Json },
        state.limits.max_body_bytes,
        &state.body_budget,
        &mut charge,
    )
    .await?;
    if text {
        compact(&state, bytes).await
    } else {
        Ok(Json(json_form(&state, parse_json(&bytes)?).await?).into_response())
    }
}

async fn compact(state: &AppState, bytes: Bytes) -> Result<Response, ApiError> {
    let lines = bytes.iter().filter(|byte| **byte == b'\n').count();
    let answer = if lines <= INLINE_PAIRS {
        answer_lines(&state.engine, &bytes)?
    } else {
        blocking(state, move |engine| answer_lines(engine, &bytes)).await??
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        answer,
    )
        .into_response())
}

fn invalid_line(line: usize, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_line", message).with("line", line)
}

/// Checks every line of a compact body, then answers `1`/`0` per line.
pub fn answer_lines(engine: &Engine, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        ApiError::bad_request(
            "invalid_utf8",
            format!("the body is not UTF-8 (at byte {})", error.valid_up_to()),
        )
    })?;
    // A final line end closes the last line; it does not open an empty one.
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments: HashMap<&str, SegmentId> = HashMap::new();
    let mut pairs: Vec<(SegmentId, &str)> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if number > MAX_BULK_PAIRS {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many",
                format!("more than {MAX_BULK_PAIRS} lines; the limit is {MAX_BULK_PAIRS} pairs per request"),
            ));
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((segment, profile)) = line.split_once('\t') else {
            return Err(invalid_line(
                number,
                format!("line {number}: expected `segment<TAB>profile`"),
            ));
        };
        if segment.is_empty() || profile.is_empty() {
            return Err(invalid_line(
                number,
                format!("line {number}: the segment and the profile must not be empty"),
            ));
        }
        let id = match segments.get(segment) {
            Some(id) => *id,
            None => {
                let id = engine.segment_id(segment).ok_or_else(|| {
                    ApiError::not_found(
                        "segment_not_found",
                        format!("line {number}: no segment with id or name `{segment}`"),
                    )
                    .with("line", number)
                })?;
                segments.insert(segment, id);
                id
            }
        };
        pairs.push((id, profile));
    }
    let mut answer = Vec::with_capacity(pairs.len() * 2);
    for (id, profile) in pairs {
        answer.push(if engine.member_by_id(id, profile) {
            b'1'
        } else {
            b'0'
        });
        answer.push(b'\n');
    }
    Ok(answer)
}

async fn json_form(state: &AppState, body: BulkCheck) -> Result<BulkAnswer, ApiError> {
    let pairs = body.profiles.len().saturating_mul(body.segments.len());
    if pairs > MAX_BULK_PAIRS {
        return Err(ApiError::invalid_field(
            "profiles",
            format!("{pairs} profile x segment pairs; the limit is {MAX_BULK_PAIRS} per request"),
        ));
    }
    let mut segments: Vec<(String, SegmentId)> = Vec::with_capacity(body.segments.len());
    for (index, segment) in body.segments.iter().enumerate() {
        let name = crate::http::segments::segment_reference(segment, index)?;
        let id = resolve_segment(&state.engine, &name)?;
        segments.push((name, id));
    }
    let profiles = body.profiles;
    if pairs <= INLINE_PAIRS {
        return Ok(answer_json(&state.engine, &profiles, &segments));
    }
    blocking(state, move |engine| {
        answer_json(engine, &profiles, &segments)
    })
    .await
}

fn answer_json(
    engine: &Engine,
    profiles: &[String],
    segments: &[(String, SegmentId)],
) -> BulkAnswer {
    let mut results = Map::new();
    let mut unknown = Vec::new();
    let mut held = Vec::new();
    for profile in profiles {
        let mut row = Map::new();
        match engine.resolve(profile) {
            Some(reference) => {
                engine.segments_of_profile(reference, &mut held);
                for (name, id) in segments {
                    row.insert(name.clone(), Value::Bool(held.contains(id)));
                }
            }
            None => {
                unknown.push(profile.clone());
                for (name, _) in segments {
                    row.insert(name.clone(), Value::Bool(false));
                }
            }
        }
        results.insert(profile.clone(), Value::Object(row));
    }
    BulkAnswer {
        results,
        unknown_profiles: unknown,
    }
}
