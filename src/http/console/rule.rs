//! `POST /console/api/rule`: the bridge between the console's two rule views. Text in →
//! the normalized AST and its canonical text; AST in → the same. The rule is also
//! checked against the current schema and segments (no evaluation), so the editor can
//! underline type errors without counting.

use crate::engine::{EngineError, RuleInput};
use crate::http::body::JsonBody;
use crate::http::console::spans::rule_error;
use crate::http::error::{ApiError, ApiResult};
use crate::http::{blocking, AppState};
use crate::segment::ast::Rule;
use crate::segment::printer::print_rule;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    rule: Value,
}

pub async fn check_rule(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RuleRequest>,
) -> ApiResult<Json<Value>> {
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
        Ok(rule) => Ok(Json(json!({ "text": print_rule(&rule), "ast": rule }))),
        Err((text, error)) => Err(rule_error(text.as_deref(), error)),
    }
}
