//! `POST /console/api/rule`: the bridge between the console's two rule views. Text in →
//! the normalized AST and its canonical text; AST in → the same. The rule is also
//! checked against the current schema and segments (no evaluation), so the editor can
//! underline type errors without counting.

use crate::engine::{EngineError, RuleInput};
use crate::http::body::JsonBody;
use crate::http::console::spans::rule_error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::openapi::RuleSchema;
use crate::http::{blocking, AppState};
use crate::segment::ast::Rule;
use crate::segment::printer::print_rule;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// Rule text (a string) or the JSON AST (an object).
    #[schema(value_type = RuleSchema)]
    rule: Value,
}

/// A checked rule in both forms.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckedRule {
    /// Canonical rule text.
    pub text: String,
    /// The JSON AST.
    #[schema(value_type = Object)]
    pub ast: Rule,
}

/// Check a rule; text in, AST and canonical text out (and the reverse).
#[utoipa::path(post, path = "/console/api/rule", operation_id = "checkRule", tag = "console",
    request_body = RuleRequest,
    responses(
        (status = 200, description = "The rule compiles against the current schema", body = CheckedRule),
        (status = "default", description = "Error (422 with `line`/`column`/`span` for rule errors)", body = ErrorBody),
    ))]
pub async fn check_rule(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RuleRequest>,
) -> ApiResult<Json<CheckedRule>> {
    let (input, text) = match body.rule {
        Value::String(text) => (RuleInput::Text(text.clone()), Some(text)),
        value @ Value::Object(_) => {
            let rule = serde_path_to_error::deserialize::<_, Rule>(value).map_err(|error| {
                let path = format!("rule.{}", error.path());
                ApiError::invalid_field(&path, format!("{path}: {}", error.into_inner()))
            })?;
            (RuleInput::Ast(rule), None)
        }
        _ => {
            return Err(ApiError::invalid_field(
                "rule",
                "rule must be rule text (a string) or the JSON AST (an object)",
            ))
        }
    };
    let checked = blocking(
        &state,
        move |engine| -> Result<Rule, (Option<String>, EngineError)> {
            let rule = input.into_rule().map_err(|error| (text.clone(), error))?;
            engine
                .compile_rule(&rule)
                .map_err(|error| (text.clone(), error))?;
            Ok(rule)
        },
    )
    .await?;
    match checked {
        Ok(rule) => Ok(Json(CheckedRule {
            text: print_rule(&rule),
            ast: rule,
        })),
        Err((text, error)) => Err(rule_error(text.as_deref(), error)),
    }
}
