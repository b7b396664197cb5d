//! Membership lookups for trigger systems (read key) and profiles: card, export, erasure.
//!
//! Profiles are addressed by `userId`, or `anon:<anonymousId>` when no userId is known.
//! Lookups answer on the async worker: they take one shard read lock for a copy of the
//! profile's own segment list.

use crate::engine::{Applied, Engine, Mutation};
use crate::http::body::{JsonBody, PathParams};
use crate::http::error::{ApiError, ApiResult};
use crate::http::segments::resolve_segment;
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Most profile × segment pairs in one bulk check.
pub const MAX_BULK_PAIRS: usize = 100_000;
/// Recent events listed on the profile card.
pub const CARD_RECENT_EVENTS: usize = 20;
/// Recent events included in an export.
pub const EXPORT_RECENT_EVENTS: usize = 100_000;

/// One segment in a lookup answer.
#[derive(Debug, Serialize)]
pub struct SegmentEntry {
    pub id: SegmentId,
    pub name: String,
}

#[derive(Debug, Serialize)]
struct SegmentsOf {
    profile: String,
    segments: Vec<SegmentEntry>,
}

impl Engine {
    /// Ids and names of segments under one registry read (ids no longer defined are
    /// skipped): the lookup path takes the lock once, not once per segment.
    pub(crate) fn segment_entries(&self, ids: &[SegmentId]) -> Vec<SegmentEntry> {
        let registry = self.registry.read();
        ids.iter()
            .filter_map(|id| {
                registry.get(*id).map(|definition| SegmentEntry {
                    id: *id,
                    name: definition.name.clone(),
                })
            })
            .collect()
    }
}

pub async fn segments_of(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<impl Serialize>> {
    let engine = &state.engine;
    let Some(reference) = engine.resolve(&profile) else {
        return Err(ApiError::not_found(
            "profile_not_found",
            format!("no profile `{profile}`"),
        ));
    };
    let mut ids = Vec::new();
    engine.segments_of_profile(reference, &mut ids);
    ids.sort_unstable();
    let segments = engine.segment_entries(&ids);
    Ok(Json(SegmentsOf { profile, segments }))
}

pub async fn is_member(
    State(state): State<AppState>,
    PathParams((segment, profile)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = resolve_segment(&state.engine, &segment)?;
    let member = state.engine.is_member(id, &profile)?;
    Ok(Json(
        json!({ "segment_id": id, "profile": profile, "member": member }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkCheck {
    profiles: Vec<String>,
    segments: Vec<Value>,
}

pub async fn bulk(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BulkCheck>,
) -> ApiResult<Json<Value>> {
    let pairs = body.profiles.len().saturating_mul(body.segments.len());
    if pairs > MAX_BULK_PAIRS {
        return Err(ApiError::invalid_field(
            "profiles",
            format!("{pairs} profile x segment pairs; the limit is {MAX_BULK_PAIRS} per request"),
        ));
    }
    let mut segments: Vec<(String, SegmentId)> = Vec::with_capacity(body.segments.len());
    for (index, segment) in body.segments.iter().enumerate() {
        let name = match segment {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => {
                return Err(ApiError::invalid_field(
                    &format!("segments[{index}]"),
                    "segments are ids (numbers) or names (strings)",
                ))
            }
        };
        let id = resolve_segment(&state.engine, &name)?;
        segments.push((name, id));
    }
    let profiles = body.profiles;
    let answer = blocking(&state, move |engine| {
        let mut results = Map::new();
        let mut unknown = Vec::new();
        let mut held = Vec::new();
        for profile in &profiles {
            let mut row = Map::new();
            match engine.resolve(profile) {
                Some(reference) => {
                    engine.segments_of_profile(reference, &mut held);
                    for (name, id) in &segments {
                        row.insert(name.clone(), Value::Bool(held.contains(id)));
                    }
                }
                None => {
                    unknown.push(profile.clone());
                    for (name, _) in &segments {
                        row.insert(name.clone(), Value::Bool(false));
                    }
                }
            }
            results.insert(profile.clone(), Value::Object(row));
        }
        json!({ "results": results, "unknown_profiles": unknown })
    })
    .await?;
    Ok(Json(answer))
}

pub async fn card(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let card = state.engine.profile_card(&profile, CARD_RECENT_EVENTS)?;
    Ok(Json(
        serde_json::to_value(card).map_err(|_| ApiError::internal())?,
    ))
}

pub async fn export(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let card = blocking(&state, move |engine| {
        engine.profile_card(&profile, EXPORT_RECENT_EVENTS)
    })
    .await??;
    Ok(Json(json!({
        "exported_at_ms": state.engine.now_ms(),
        "profile": card,
    })))
}

pub async fn erase(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let mutation = Mutation::EraseProfile {
        external_id: profile,
    };
    let Applied::Removed(changes) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    Ok(Json(json!({
        "erased": true,
        "segments_left": changes.iter().map(|change| change.segment).collect::<Vec<_>>(),
        "suppressed": true,
    })))
}
