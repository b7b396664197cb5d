//! The one error shape of the HTTP API: `{"error": {"code", "message", ...details}}`.
//!
//! Client mistakes get a 4xx with a stable code and a message that says what to change;
//! internal failures get a generic 500 (details go to the log, never to the client).

use crate::engine::EngineError;
use crate::ingest::MessageError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The error code of a rejected request, attached to the response so the metrics
/// middleware can count rejections by code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// A request that could not be served.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields beside `code` and `message` (e.g. `path` of a bad field).
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A well-formed request whose content is wrong (422), naming the field.
    pub fn invalid_field(path: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with("path", path)
    }

    /// A query or path parameter that is out of range or malformed.
    pub fn invalid_parameter(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            message,
        )
        .with("parameter", name)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// Something went wrong inside segd; the client learns nothing more.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has details",
        )
    }

    /// Load shedding: too many requests in flight.
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message));
        for (key, value) in self.details {
            error.insert(key, value);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status.as_u16() == 429 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let status = match &error {
            EngineError::SegmentNotFound(_) | EngineError::ProfileNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            EngineError::DuplicateSegmentName(_)
            | EngineError::WrongSegmentKind(..)
            | EngineError::SegmentInUse { .. } => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let message = error.to_string();
        let mut api = ApiError::new(status, error.code(), message.clone());
        if let EngineError::Parse(_) = &error {
            if let Some((line, column)) = rule_position(&message) {
                api = api.with("line", line).with("column", column);
            }
        }
        api
    }
}

/// The position of a rule syntax error, read from the parser's message, which starts
/// with `line <n>, column <m>: ` (both 1-based).
fn rule_position(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let (column, _) = rest.split_once(':')?;
    Some((line.trim().parse().ok()?, column.trim().parse().ok()?))
}

impl From<MessageError> for ApiError {
    fn from(error: MessageError) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
            error.to_string(),
        )
        .with("path", error.path)
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// The error body every rejection has (what [`ApiError`]'s `IntoResponse` writes); its
/// schema in `/openapi.json`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `code` and `message`, plus details some codes carry (`path` of a bad field,
/// `parameter`, `line`/`column` of a rule syntax error, `oldest_available` of
/// `fell_behind`, ...).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_field`, `segment_not_found`.
    pub code: String,
    /// What went wrong and what to change.
    pub message: String,
    /// The failing field of a body (`batch[3].userId`, `rule.conditions[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The failing query or path parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::rule_position;

    #[test]
    fn reads_the_position_of_rule_syntax_errors() {
        assert_eq!(
            rule_position("line 2, column 17: expected a value after `=`"),
            Some((2, 17))
        );
        assert_eq!(rule_position("parse error"), None);
        assert_eq!(rule_position("line x, column 1: y"), None);
    }
}
