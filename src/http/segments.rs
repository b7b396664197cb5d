//! Segment management (admin key): create, list, get, update, delete, preview, members
//! (pages and NDJSON export), static edits, set-algebra counts, explain.
//!
//! Segments are addressed by numeric id or by name. Whole-population work runs on the
//! blocking pool so lookups keep flowing.

use crate::engine::{
    Applied, Engine, MembersPage, Mutation, RuleInput, SegmentSummary, SetExpression, StaticEdit,
    MAX_PAGE_SIZE,
};
use crate::explain::Explanation;
use crate::http::body::{JsonBody, PathParams, QueryParams};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::openapi::RuleSchema;
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use crate::segment::ast::Rule;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Longest segment description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4_096;
/// Most sample members a preview returns.
pub const MAX_PREVIEW_SAMPLE: usize = 1_000;
/// Members per page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 1_000;
/// Most profile ids listed back in a diff or in `unknown_profiles`.
pub const MAX_LISTED_IDS: usize = 100;

/// The text of a segment reference in a JSON list (`segments[index]`): an id as a
/// number or an id or name as a string.
pub fn segment_reference(value: &serde_json::Value, index: usize) -> Result<String, ApiError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Number(number) => Ok(number.to_string()),
        _ => Err(ApiError::invalid_field(
            &format!("segments[{index}]"),
            "segments are ids (numbers) or names (strings)",
        )),
    }
}

/// Finds a segment by id or name.
pub fn resolve_segment(engine: &Engine, id_or_name: &str) -> Result<SegmentId, ApiError> {
    engine.segment_id(id_or_name).ok_or_else(|| {
        ApiError::not_found(
            "segment_not_found",
            format!("no segment with id or name `{id_or_name}`"),
        )
    })
}

/// A rule from a request body: a string is rule text, an object the JSON AST.
fn rule_input(value: Value) -> Result<RuleInput, ApiError> {
    match value {
        Value::String(text) => Ok(RuleInput::Text(text)),
        Value::Object(_) => {
            let rule = serde_path_to_error::deserialize::<_, Rule>(value).map_err(|error| {
                let path = format!("rule.{}", error.path());
                ApiError::invalid_field(&path, format!("{path}: {}", error.into_inner()))
            })?;
            check_ast_size(&rule)?;
            Ok(RuleInput::Ast(rule))
        }
        _ => Err(ApiError::invalid_field(
            "rule",
            "rule must be rule text (a string) or the JSON AST (an object with a \"kind\")",
        )),
    }
}

/// A JSON AST is held to the text limit: its canonical text (what it prints as, and
/// what a text rule for it would be) may be at most `MAX_RULE_TEXT_BYTES` long, so
/// JSON rules cannot grow segment definitions (and snapshots) beyond text rules.
/// Depth and condition count are checked when the rule compiles, for both forms.
fn check_ast_size(rule: &Rule) -> Result<(), ApiError> {
    use crate::segment::limits::MAX_RULE_TEXT_BYTES;
    // Printing recurses, but serde_json's recursion limit already bounds the depth.
    let printed = crate::segment::printer::print_rule(rule).len();
    if printed > MAX_RULE_TEXT_BYTES {
        return Err(ApiError::invalid_field(
            "rule",
            format!(
                "rule is {printed} bytes as text; the limit is {MAX_RULE_TEXT_BYTES} (as for text rules)"
            ),
        ));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::invalid_field(
            "description",
            format!("description is longer than {MAX_DESCRIPTION_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn millis(started: Instant) -> f64 {
    (started.elapsed().as_micros() as f64) / 1_000.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSegment {
    name: String,
    /// Rule text (a string) or the JSON AST (an object); absent for a static segment.
    #[serde(default)]
    #[schema(value_type = Option<RuleSchema>)]
    rule: Option<Value>,
    /// A hand-maintained list (no rule).
    #[serde(default, rename = "static")]
    is_static: bool,
    #[serde(default)]
    description: String,
    /// Record every initial member in the change log (cause `initial`).
    #[serde(default)]
    emit_initial: bool,
}

/// Create a segment (rule as text or JSON AST, or static).
#[utoipa::path(post, path = "/v1/segments", operation_id = "createSegment", tag = "segments",
    request_body = CreateSegment,
    responses(
        (status = 201, description = "Created, with its initial member count", body = SegmentSummary),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateSegment>,
) -> ApiResult<Response> {
    check_description(&body.description)?;
    let rule = match (body.rule, body.is_static) {
        (Some(_), true) => {
            return Err(ApiError::invalid_field(
                "static",
                "a segment is either static or has a rule, not both",
            ))
        }
        (None, false) => {
            return Err(ApiError::invalid_field(
                "rule",
                "rule is required (or send \"static\": true for a hand-maintained list)",
            ))
        }
        (Some(rule), false) => Some(rule_input(rule)?),
        (None, true) => None,
    };
    let mutation = Mutation::CreateSegment {
        name: body.name,
        description: body.description,
        rule: rule.map(RuleInput::into_rule).transpose()?,
        emit_initial: body.emit_initial,
    };
    let Applied::Segment(mut summary) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    if let Some(cluster) = &state.cluster {
        summary.count = crate::cluster::fanout::count(cluster, summary.id).await?;
    }
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

/// `GET /v1/segments`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentSummary>,
}

/// List segments with member counts.
#[utoipa::path(get, path = "/v1/segments", operation_id = "listSegments", tag = "segments",
    responses(
        (status = 200, description = "Every segment", body = SegmentList),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<SegmentList>> {
    let mut segments = blocking(&state, |engine| engine.list_segments()).await?;
    if let Some(cluster) = &state.cluster {
        for summary in &mut segments {
            summary.count = crate::cluster::fanout::count(cluster, summary.id).await?;
        }
    }
    Ok(Json(SegmentList { segments }))
}

/// Get a segment.
#[utoipa::path(get, path = "/v1/segments/{id}", operation_id = "getSegment", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    responses(
        (status = 200, description = "The segment", body = SegmentSummary),
        (status = "default", description = "Error (404 `segment_not_found`)", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SegmentSummary>> {
    let id = resolve_segment(&state.engine, &id)?;
    let mut summary = state.engine.segment_summary(id)?;
    if let Some(cluster) = &state.cluster {
        summary.count = crate::cluster::fanout::count(cluster, id).await?;
    }
    Ok(Json(summary))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSegment {
    /// Rule text (a string) or the JSON AST (an object).
    #[schema(value_type = RuleSchema)]
    rule: Value,
    #[serde(default)]
    description: Option<String>,
}

/// What a rule edit changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleDiff {
    pub entered: usize,
    pub exited: usize,
    /// At most 100 profile ids.
    pub entered_sample: Vec<String>,
    pub exited_sample: Vec<String>,
    /// Changes of segments that reference this one.
    pub dependent_changes: usize,
}

/// `PUT /v1/segments/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatedSegment {
    pub segment: SegmentSummary,
    pub diff: RuleDiff,
}

/// Replace a segment's rule (new version; the diff is recorded).
#[utoipa::path(put, path = "/v1/segments/{id}", operation_id = "updateSegment", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    request_body = UpdateSegment,
    responses(
        (status = 200, description = "The new version and its membership diff", body = UpdatedSegment),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateSegment>,
) -> ApiResult<Json<UpdatedSegment>> {
    let id = resolve_segment(&state.engine, &id)?;
    if let Some(description) = &body.description {
        check_description(description)?;
    }
    let rule = rule_input(body.rule)?;
    let mutation = Mutation::UpdateSegment {
        id,
        rule: rule.into_rule()?,
        description: body.description,
    };
    let Applied::Updated(summary, changes) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    let own: Vec<_> = changes
        .iter()
        .filter(|change| change.segment == id)
        .collect();
    let listed = |entered: bool| -> Vec<&str> {
        own.iter()
            .filter(|change| change.entered == entered)
            .take(MAX_LISTED_IDS)
            .map(|change| &*change.profile_id)
            .collect()
    };
    let diff = RuleDiff {
        entered: own.iter().filter(|change| change.entered).count(),
        exited: own.iter().filter(|change| !change.entered).count(),
        entered_sample: listed(true).into_iter().map(str::to_string).collect(),
        exited_sample: listed(false).into_iter().map(str::to_string).collect(),
        dependent_changes: changes.len() - own.len(),
    };
    Ok(Json(UpdatedSegment {
        segment: summary,
        diff,
    }))
}

/// `DELETE /v1/segments/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedSegment {
    pub deleted: bool,
    pub id: SegmentId,
}

/// Delete a segment.
#[utoipa::path(delete, path = "/v1/segments/{id}", operation_id = "deleteSegment", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    responses(
        (status = 200, description = "Deleted", body = DeletedSegment),
        (status = "default", description = "Error (409 `segment_in_use` when another segment references it)", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<DeletedSegment>> {
    let id = resolve_segment(&state.engine, &id)?;
    state.write(Mutation::DeleteSegment { id }).await?;
    Ok(Json(DeletedSegment { deleted: true, id }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Rule text (a string) or the JSON AST (an object).
    #[schema(value_type = RuleSchema)]
    rule: Value,
    /// Sample members returned (default 10, at most 1000).
    #[serde(default)]
    #[schema(maximum = 1000)]
    sample_size: Option<usize>,
}

/// `POST /v1/segments/preview`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewAnswer {
    pub count: u64,
    pub sample: Vec<String>,
    pub took_ms: f64,
}

/// Count and sample a rule without saving it.
#[utoipa::path(post, path = "/v1/segments/preview", operation_id = "previewSegment", tag = "segments",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "Members the rule would have now", body = PreviewAnswer),
        (status = "default", description = "Error (422 with `line`/`column` for rule syntax errors)", body = ErrorBody),
    ))]
pub async fn preview(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PreviewRequest>,
) -> ApiResult<Json<PreviewAnswer>> {
    let sample_size = body.sample_size.unwrap_or(10);
    if sample_size > MAX_PREVIEW_SAMPLE {
        return Err(ApiError::invalid_field(
            "sample_size",
            format!("sample_size is at most {MAX_PREVIEW_SAMPLE}"),
        ));
    }
    let rule = rule_input(body.rule)?;
    let text = match &rule {
        RuleInput::Text(text) => Some(text.clone()),
        RuleInput::Ast(_) => None,
    };
    let preview = blocking(&state, move |engine| engine.preview(rule, sample_size))
        .await?
        .map_err(|error| crate::http::console::spans::rule_error(text.as_deref(), error))?;
    Ok(Json(PreviewAnswer {
        count: preview.count,
        sample: preview.sample,
        took_ms: preview.took_us as f64 / 1_000.0,
    }))
}

/// A set expression over stored segments, each named by id or name:
/// `{"segment": 3}`, `{"and": [..]}`, `{"or": [..]}`, `{"and_not": [left, right]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(no_recursion)]
pub enum CountExpression {
    Segment(SegmentName),
    And(Vec<CountExpression>),
    Or(Vec<CountExpression>),
    /// `[left, right]`, two expressions: members of left not in right.
    #[schema(value_type = Object)]
    AndNot(Box<CountExpression>, Box<CountExpression>),
}

/// A segment's id (a number) or name (a string).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SegmentName {
    Id(u32),
    Name(String),
}

fn resolve_expression(
    engine: &Engine,
    expression: CountExpression,
) -> Result<SetExpression, ApiError> {
    Ok(match expression {
        CountExpression::Segment(SegmentName::Id(id)) => {
            SetExpression::Segment(resolve_segment(engine, &id.to_string())?)
        }
        CountExpression::Segment(SegmentName::Name(name)) => {
            SetExpression::Segment(resolve_segment(engine, &name)?)
        }
        CountExpression::And(parts) => SetExpression::And(
            parts
                .into_iter()
                .map(|part| resolve_expression(engine, part))
                .collect::<Result<_, _>>()?,
        ),
        CountExpression::Or(parts) => SetExpression::Or(
            parts
                .into_iter()
                .map(|part| resolve_expression(engine, part))
                .collect::<Result<_, _>>()?,
        ),
        CountExpression::AndNot(left, right) => SetExpression::AndNot(
            Box::new(resolve_expression(engine, *left)?),
            Box::new(resolve_expression(engine, *right)?),
        ),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    expression: CountExpression,
}

/// `POST /v1/segments/count`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountAnswer {
    pub count: u64,
    pub took_ms: f64,
}

/// Count a set expression (and, or, and_not) over segments.
#[utoipa::path(post, path = "/v1/segments/count", operation_id = "countSegments", tag = "segments",
    request_body = CountRequest,
    responses(
        (status = 200, description = "Profiles the expression matches", body = CountAnswer),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn count(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CountRequest>,
) -> ApiResult<Json<CountAnswer>> {
    let started = Instant::now();
    let expression = resolve_expression(&state.engine, body.expression)?;
    let count = blocking(&state, move |engine| engine.count_expression(&expression)).await??;
    Ok(Json(CountAnswer {
        count,
        took_ms: millis(started),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page; absent for the first.
    #[serde(default)]
    cursor: Option<String>,
    /// Members per page, 1 to 10000 (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// A page of members (cursor, limit).
#[utoipa::path(get, path = "/v1/segments/{id}/members", operation_id = "listMembers", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name"), PageQuery),
    responses(
        (status = 200, description = "Members in id order", body = MembersPage),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn members_page(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<MembersPage>> {
    let id = resolve_segment(&state.engine, &id)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(ApiError::invalid_parameter(
            "limit",
            format!("limit must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let page = blocking(&state, move |engine| {
        engine.members(id, query.cursor.as_deref(), limit)
    })
    .await??;
    Ok(Json(page))
}

/// All members, streamed as NDJSON.
#[utoipa::path(get, path = "/v1/segments/{id}/members.ndjson", operation_id = "exportMembers", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    responses(
        (status = 200, description = "One `{\"id\": \"<profile>\"}` per line",
            content_type = "application/x-ndjson", body = String),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
/// Streams every member as one JSON object per line, a page at a time, so memory stays
/// bounded whatever the segment's size.
pub async fn members_ndjson(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let id = resolve_segment(&state.engine, &id)?;
    let engine = state.engine.clone();
    // (cursor of the next page, finished)
    let stream = futures_util::stream::unfold(
        (Some(String::new()), engine),
        move |(cursor, engine): (Option<String>, Arc<Engine>)| async move {
            let cursor = cursor?;
            let worker = engine.clone();
            let page = tokio::task::spawn_blocking(move || {
                worker.members(id, Some(&cursor), MAX_PAGE_SIZE)
            })
            .await;
            match page {
                Ok(Ok(page)) => {
                    let mut text = String::with_capacity(page.members.len() * 24);
                    for member in &page.members {
                        text.push_str(&json!({ "id": member }).to_string());
                        text.push('\n');
                    }
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(text)),
                        (page.next_cursor, engine),
                    ))
                }
                // The segment went away mid-stream: end the body with an error.
                _ => Some((
                    Err(std::io::Error::other("segment no longer readable")),
                    (None, engine),
                )),
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize, Clone, Copy, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddMode {
    #[default]
    Add,
    Replace,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticAdd {
    profiles: Vec<String>,
    #[serde(default)]
    mode: AddMode,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticRemove {
    profiles: Vec<String>,
}

/// What a static segment edit changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaticEditAnswer {
    pub entered: usize,
    pub exited: usize,
    /// Members now.
    pub count: u64,
    pub unknown_profiles_count: usize,
    /// Profiles named that do not exist (at most 100 listed).
    pub unknown_profiles: Vec<String>,
}

async fn static_edit(
    state: &AppState,
    id: String,
    edit: StaticEdit,
    profiles: Vec<String>,
) -> ApiResult<Json<StaticEditAnswer>> {
    let id = resolve_segment(&state.engine, &id)?;
    let mutation = Mutation::EditStatic { id, edit, profiles };
    let Applied::StaticEdited(changes, unknown) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    let own = changes.iter().filter(|change| change.segment == id);
    let entered = own.clone().filter(|change| change.entered).count();
    let exited = own.filter(|change| !change.entered).count();
    Ok(Json(StaticEditAnswer {
        entered,
        exited,
        count: state.engine.count(id),
        unknown_profiles_count: unknown.len(),
        unknown_profiles: unknown.iter().take(MAX_LISTED_IDS).cloned().collect(),
    }))
}

/// Add to or replace a static segment's members.
#[utoipa::path(post, path = "/v1/segments/{id}/members", operation_id = "addStaticMembers", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    request_body = StaticAdd,
    responses(
        (status = 200, description = "Edited", body = StaticEditAnswer),
        (status = "default", description = "Error (409 `wrong_segment_kind` for a rule segment)", body = ErrorBody),
    ))]
pub async fn static_add(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<StaticAdd>,
) -> ApiResult<Json<StaticEditAnswer>> {
    let edit = match body.mode {
        AddMode::Add => StaticEdit::Add,
        AddMode::Replace => StaticEdit::Replace,
    };
    static_edit(&state, id, edit, body.profiles).await
}

/// Remove members from a static segment.
#[utoipa::path(delete, path = "/v1/segments/{id}/members", operation_id = "removeStaticMembers", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name")),
    request_body = StaticRemove,
    responses(
        (status = 200, description = "Edited", body = StaticEditAnswer),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn static_remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<StaticRemove>,
) -> ApiResult<Json<StaticEditAnswer>> {
    static_edit(&state, id, StaticEdit::Remove, body.profiles).await
}

/// Why a profile is or is not a member, condition by condition.
#[utoipa::path(get, path = "/v1/segments/{id}/explain/{profile}", operation_id = "explainMembership", tag = "segments",
    params(("id" = String, Path, description = "Segment id or name"),
           ("profile" = String, Path, description = "userId, or `anon:<anonymousId>`")),
    responses(
        (status = 200, description = "The rule evaluated node by node", body = Explanation),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn explain(
    State(state): State<AppState>,
    PathParams((id, profile)): PathParams<(String, String)>,
) -> ApiResult<Json<Explanation>> {
    let id = resolve_segment(&state.engine, &id)?;
    let explanation = blocking(&state, move |engine| engine.explain(id, &profile)).await??;
    Ok(Json(explanation))
}
