//! Membership lookups for trigger systems (read key) and profiles: card, export, erasure.
//!
//! Profiles are addressed by `userId`, or `anon:<anonymousId>` when no userId is known.
//! Lookups answer on the async worker: they take one shard read lock for a copy of the
//! profile's own segment list.

use crate::engine::ProfileCard;
use crate::engine::{Applied, Engine, Mutation};
use crate::http::body::{JsonBody, PathParams};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::segments::resolve_segment;
use crate::http::segments::SegmentName;
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most profile × segment pairs in one bulk check.
pub const MAX_BULK_PAIRS: usize = 100_000;
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

/// `GET /v1/profiles/{id}/segments`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentsOf {
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

/// Segments the profile is in.
#[utoipa::path(get, path = "/v1/profiles/{id}/segments", operation_id = "profileSegments", tag = "membership",
    params(("id" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "The profile's segments, by id", body = SegmentsOf),
        (status = "default", description = "Error (404 `profile_not_found`)", body = ErrorBody),
    ))]
pub async fn segments_of(
    State(state): State<AppState>,
    PathParams(profile): PathParams<String>,
) -> ApiResult<Json<SegmentsOf>> {
    let engine = &state.engine;
    if let Some(cluster) = &state.cluster {
        let ids = crate::cluster::fanout::segments_of(cluster, &profile).await?;
        let segments = engine.segment_entries(&ids);
        return Ok(Json(SegmentsOf { profile, segments }));
    }
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

/// `GET /v1/segments/{id}/members/{profile}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub segment_id: SegmentId,
    pub profile: String,
    pub member: bool,
}

/// Is the profile a member?
#[utoipa::path(get, path = "/v1/segments/{id}/members/{profile}", operation_id = "isMember", tag = "membership",
    params(("id" = String, Path, description = "Segment id or name"),
           ("profile" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "Membership now", body = Membership),
        (status = "default", description = "Error (404 `segment_not_found`, `profile_not_found`)", body = ErrorBody),
    ))]
pub async fn is_member(
    State(state): State<AppState>,
    PathParams((segment, profile)): PathParams<(String, String)>,
) -> ApiResult<Json<Membership>> {
    let id = resolve_segment(&state.engine, &segment)?;
    let member = match &state.cluster {
        Some(cluster) => crate::cluster::fanout::is_member(cluster, id, &profile).await?,
        None => state.engine.is_member(id, &profile)?,
    };
    Ok(Json(Membership {
        segment_id: id,
        profile,
        member,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCheck {
    profiles: Vec<String>,
    /// Segment ids (numbers) or names (strings).
    #[schema(value_type = Vec<SegmentName>)]
    segments: Vec<Value>,
}

/// `POST /v1/membership`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkAnswer {
    /// profile → (segment as given → member).
    #[schema(value_type = std::collections::HashMap<String, std::collections::HashMap<String, bool>>)]
    pub results: Map<String, Value>,
    /// Profiles that do not exist (answered false everywhere).
    pub unknown_profiles: Vec<String>,
}

/// Bulk membership check of profiles x segments.
#[utoipa::path(post, path = "/v1/membership", operation_id = "bulkMembership", tag = "membership",
    request_body = BulkCheck,
    responses(
        (status = 200, description = "Every pair", body = BulkAnswer),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn bulk(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BulkCheck>,
) -> ApiResult<Json<BulkAnswer>> {
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
        BulkAnswer {
            results,
            unknown_profiles: unknown,
        }
    })
    .await?;
    Ok(Json(answer))
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
