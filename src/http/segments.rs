//! Segment management (admin key): create, list, get, update, delete, preview, members
//! (pages and NDJSON export), static edits, set-algebra counts, explain.
//!
//! Segments are addressed by numeric id or by name. Whole-population work runs on the
//! blocking pool so lookups keep flowing.

use crate::engine::{
    Applied, Engine, Mutation, RuleInput, SetExpression, StaticEdit, MAX_PAGE_SIZE,
};
use crate::http::body::{JsonBody, PathParams, QueryParams};
use crate::http::error::{ApiError, ApiResult};
use crate::http::{blocking, AppState};
use crate::ids::SegmentId;
use crate::segment::ast::Rule;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSegment {
    name: String,
    #[serde(default)]
    rule: Option<Value>,
    #[serde(default, rename = "static")]
    is_static: bool,
    #[serde(default)]
    description: String,
    /// Record every initial member in the change log (cause `initial`).
    #[serde(default)]
    emit_initial: bool,
}

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
    let Applied::Segment(summary) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let segments = blocking(&state, |engine| engine.list_segments()).await?;
    Ok(Json(json!({ "segments": segments })))
}

pub async fn get_one(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let id = resolve_segment(&state.engine, &id)?;
    let summary = state.engine.segment_summary(id)?;
    Ok(Json(
        serde_json::to_value(summary).map_err(|_| ApiError::internal())?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSegment {
    rule: Value,
    #[serde(default)]
    description: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateSegment>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "segment": summary,
        "diff": {
            "entered": own.iter().filter(|change| change.entered).count(),
            "exited": own.iter().filter(|change| !change.entered).count(),
            "entered_sample": listed(true),
            "exited_sample": listed(false),
            "dependent_changes": changes.len() - own.len(),
        }
    })))
}

pub async fn remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let id = resolve_segment(&state.engine, &id)?;
    state.write(Mutation::DeleteSegment { id }).await?;
    Ok(Json(json!({ "deleted": true, "id": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    rule: Value,
    #[serde(default)]
    sample_size: Option<usize>,
}

pub async fn preview(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PreviewRequest>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "count": preview.count,
        "sample": preview.sample,
        "took_ms": preview.took_us as f64 / 1_000.0,
    })))
}

/// A set expression over stored segments, each named by id or name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CountExpression {
    Segment(SegmentName),
    And(Vec<CountExpression>),
    Or(Vec<CountExpression>),
    AndNot(Box<CountExpression>, Box<CountExpression>),
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    expression: CountExpression,
}

pub async fn count(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CountRequest>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let expression = resolve_expression(&state.engine, body.expression)?;
    let count = blocking(&state, move |engine| engine.count_expression(&expression)).await??;
    Ok(Json(json!({ "count": count, "took_ms": millis(started) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn members_page(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "members": page.members,
        "next_cursor": page.next_cursor,
    })))
}

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

#[derive(Debug, Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddMode {
    #[default]
    Add,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAdd {
    profiles: Vec<String>,
    #[serde(default)]
    mode: AddMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRemove {
    profiles: Vec<String>,
}

async fn static_edit(
    state: &AppState,
    id: String,
    edit: StaticEdit,
    profiles: Vec<String>,
) -> ApiResult<Json<Value>> {
    let id = resolve_segment(&state.engine, &id)?;
    let mutation = Mutation::EditStatic { id, edit, profiles };
    let Applied::StaticEdited(changes, unknown) = state.write(mutation).await? else {
        return Err(ApiError::internal());
    };
    let own = changes.iter().filter(|change| change.segment == id);
    let entered = own.clone().filter(|change| change.entered).count();
    let exited = own.filter(|change| !change.entered).count();
    Ok(Json(json!({
        "entered": entered,
        "exited": exited,
        "count": state.engine.count(id),
        "unknown_profiles_count": unknown.len(),
        "unknown_profiles": unknown.iter().take(MAX_LISTED_IDS).collect::<Vec<_>>(),
    })))
}

pub async fn static_add(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<StaticAdd>,
) -> ApiResult<Json<Value>> {
    let edit = match body.mode {
        AddMode::Add => StaticEdit::Add,
        AddMode::Replace => StaticEdit::Replace,
    };
    static_edit(&state, id, edit, body.profiles).await
}

pub async fn static_remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<StaticRemove>,
) -> ApiResult<Json<Value>> {
    static_edit(&state, id, StaticEdit::Remove, body.profiles).await
}

pub async fn explain(
    State(state): State<AppState>,
    PathParams((id, profile)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = resolve_segment(&state.engine, &id)?;
    let explanation = blocking(&state, move |engine| engine.explain(id, &profile)).await??;
    Ok(Json(
        serde_json::to_value(explanation).map_err(|_| ApiError::internal())?,
    ))
}
