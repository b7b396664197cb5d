//! Request extractors that answer in the API's JSON error shape instead of axum's plain
//! text: bodies (content type, size limit also for chunked and gzip bodies, JSON syntax vs
//! field errors), query strings and path parameters.
//!
//! Stages: raw bytes (bounded by `max_body_bytes` whatever the framing) → decoded bytes
//! (gzip inflated, again bounded by `max_body_bytes`, so a gzip bomb stops at the limit)
//! → JSON value or typed struct (serde_path_to_error names the failing field).

use crate::http::auth::KeyInBody;
use crate::http::error::ApiError;
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default largest request body, before and after decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Which content types a body may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` (or `application/*+json`).
    Json,
    /// Anything, or no `Content-Type` at all: ingest. The Segment and RudderStack SDKs
    /// send JSON as `text/plain` (analytics.js, `sendBeacon`) or
    /// `application/x-www-form-urlencoded` (rudder-sdk-node), and their servers accept it.
    Any,
}

fn content_type_ok(headers: &HeaderMap, accept: Accept) -> bool {
    if accept == Accept::Any {
        return true;
    }
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The bytes of request bodies held at once, across all requests: each request takes
/// what it reads (as sent, then decoded) and gives it back when its body is dropped.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

/// Bytes a request holds of the [`BodyBudget`] (returned on drop).
#[derive(Debug, Default)]
pub struct BodyCharge {
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(capacity_bytes: usize) -> BodyBudget {
        let capacity = capacity_bytes.clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Bytes currently held by requests.
    pub fn in_use(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Adds `bytes` to a request's charge, or sheds the request when the budget is spent.
    fn charge(&self, charge: &mut BodyCharge, bytes: usize) -> Result<(), ApiError> {
        if bytes == 0 {
            return Ok(());
        }
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.semaphore.clone().try_acquire_many_owned(bytes).ok())
            .ok_or_else(|| {
                ApiError::overloaded(format!(
                    "request bodies in flight exceed {} bytes; retry after a second",
                    self.capacity
                ))
            })?;
        match &mut charge.permit {
            Some(held) => held.merge(permit),
            None => charge.permit = Some(permit),
        }
        Ok(())
    }
}

/// The gzip magic bytes: a JSON body never starts with them, so a gzip body sent without
/// `Content-Encoding` (some SDK versions and proxies do) is still recognised.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body {what} exceeds the limit of {limit} bytes — send smaller batches"),
    )
    .with("limit_bytes", limit as u64)
}

/// Reads and decodes a body: content type checked, size bounded before and after gzip.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    accept: Accept,
    max_body_bytes: usize,
) -> Result<Bytes, ApiError> {
    let unlimited = BodyBudget::new(Semaphore::MAX_PERMITS);
    let mut charge = BodyCharge::default();
    read_body_charged(
        headers,
        body,
        accept,
        max_body_bytes,
        &unlimited,
        &mut charge,
    )
    .await
}

/// [`read_body`], charging every byte held (as sent and decoded) to `budget`.
pub async fn read_body_charged(
    headers: &HeaderMap,
    mut body: Body,
    accept: Accept,
    max_body_bytes: usize,
    budget: &BodyBudget,
    charge: &mut BodyCharge,
) -> Result<Bytes, ApiError> {
    if !content_type_ok(headers, accept) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body_bytes as u64) {
        return Err(too_large(max_body_bytes, "(Content-Length)"));
    }
    // Counted as frames arrive, so chunked bodies stop at the limit too, and charged to
    // the budget as they are held.
    let mut raw = Vec::with_capacity(declared.unwrap_or(0).min(max_body_bytes as u64) as usize);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::bad_request(
                "body_read_failed",
                "the request body could not be read completely",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if raw.len() + data.len() > max_body_bytes {
            return Err(too_large(max_body_bytes, "(as sent)"));
        }
        budget.charge(charge, data.len())?;
        raw.extend_from_slice(&data);
    }
    let raw = Bytes::from(raw);
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let unlabelled_gzip = accept == Accept::Any && raw.starts_with(&GZIP_MAGIC);
    match encoding.as_deref() {
        None | Some("") | Some("identity") if !unlabelled_gzip => Ok(raw),
        None | Some("") | Some("identity") | Some("gzip") | Some("x-gzip") => {
            let mut decoded = Vec::new();
            let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let read = decoder.read(&mut chunk).map_err(|_| {
                    ApiError::bad_request(
                        "bad_gzip",
                        "the body is labelled or starts like gzip but is not valid gzip",
                    )
                })?;
                if read == 0 {
                    break;
                }
                if decoded.len() + read > max_body_bytes {
                    return Err(too_large(max_body_bytes, "after gzip decompression"));
                }
                budget.charge(charge, read)?;
                decoded.extend_from_slice(&chunk[..read]);
            }
            Ok(Bytes::from(decoded))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("`Content-Encoding: {other}` is not supported; use gzip or none"),
        )),
    }
}

/// Parses JSON into `T`: syntax errors are 400 `malformed_json`, type and field errors
/// 422 `invalid_field` with the path of the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        json_error(inner, &path)
    })?;
    deserializer.end().map_err(|error| json_error(error, "."))?;
    Ok(value)
}

fn json_error(error: serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => ApiError::invalid_field(path, format!("{path}: {error}")),
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        ),
    }
}

/// A JSON body of type `T` (admin and read endpoints: `application/json` only).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let mut charge = BodyCharge::default();
        let bytes = read_body_charged(
            &parts.headers,
            body,
            Accept::Json,
            state.limits.max_body_bytes,
            &state.body_budget,
            &mut charge,
        )
        .await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// An ingest body's bytes (any or no content type; gzip by header or magic bytes,
/// inflated), still charged to the body budget while held; parse with
/// [`crate::ingest::body`].
#[derive(Debug)]
pub struct IngestBody {
    pub bytes: Bytes,
    pub charge: BodyCharge,
}

impl FromRequest<AppState> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let mut charge = BodyCharge::default();
        let bytes = read_body_charged(
            &parts.headers,
            body,
            Accept::Any,
            state.limits.max_body_bytes,
            &state.body_budget,
            &mut charge,
        )
        .await?;
        // No Authorization header (sendBeacon cannot set one): the write key is the
        // body's `writeKey`, checked like a Basic username.
        if parts.extensions.get::<KeyInBody>().is_some() {
            state.keys.check_body_key(&bytes)?;
        }
        Ok(IngestBody { bytes, charge })
    }
}

impl From<crate::ingest::body::BodyError> for ApiError {
    fn from(error: crate::ingest::body::BodyError) -> ApiError {
        match error {
            crate::ingest::body::BodyError::Syntax(error) => json_error(error, "."),
            crate::ingest::body::BodyError::Message(error) => error.into(),
        }
    }
}

/// Query parameters of type `T`; bad ones are 422 `invalid_parameter`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|query| QueryParams(query.0))
            .map_err(|rejection| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_parameter",
                    format!("bad query string: {}", rejection.body_text()),
                )
            })
    }
}

/// Path parameters of type `T`; undecodable ones are 400 `bad_path`.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| PathParams(path.0))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "bad_path",
                    format!("bad path parameter: {}", rejection.body_text()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    //! The body budget: bytes held across requests are bounded and given back on drop.
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn the_budget_sheds_beyond_its_capacity_and_refills_on_drop() {
        let budget = BodyBudget::new(100);
        let mut first = BodyCharge::default();
        budget.charge(&mut first, 40).unwrap();
        budget.charge(&mut first, 30).unwrap();
        assert_eq!(budget.in_use(), 70);
        let mut second = BodyCharge::default();
        let refused = budget.charge(&mut second, 31).unwrap_err();
        assert_eq!(
            refused.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        budget.charge(&mut second, 30).unwrap();
        drop(first);
        assert_eq!(budget.in_use(), 30);
        budget.charge(&mut second, 70).unwrap();
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }
}
