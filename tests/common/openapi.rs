//! Validates HTTP responses against `/openapi.json` (the document `segd` generates from its
//! handlers): the operation is found by method and path template, the response by status
//! (else `default`), and a JSON body must satisfy that response's `application/json`
//! schema (JSON Schema 2020-12, as OpenAPI 3.1 uses, with `$ref`s into the document's
//! components). Other bodies must have a content type the response declares. Requests
//! that match no route are the router's own 404/405 and must be the error body.
//!
//! Test files call [`check_response`] from their request helper, so every response the
//! suite receives is checked.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

struct Spec {
    document: Value,
    /// JSON pointer of a schema → its compiled validator.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec {
        document: segd::http::openapi::document(),
        validators: Mutex::default(),
    })
}

/// `~` and `/` escaped for a JSON pointer.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The document's path template matching `path` (no query), preferring literal
/// segments over parameters (`/v1/segments/preview` over `/v1/segments/{id}`).
fn template_for<'a>(document: &'a Value, path: &str) -> Option<&'a str> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&str, usize)> = None;
    for template in document["paths"].as_object()?.keys() {
        let pattern: Vec<&str> = template.split('/').collect();
        if pattern.len() != parts.len() {
            continue;
        }
        let mut parameters = 0;
        let matches = pattern.iter().zip(&parts).all(|(want, got)| {
            if want.starts_with('{') && want.ends_with('}') {
                parameters += 1;
                !got.is_empty()
            } else {
                want == got
            }
        });
        if matches && best.is_none_or(|(_, fewest)| parameters < fewest) {
            best = Some((template, parameters));
        }
    }
    best.map(|(template, _)| template)
}

fn validator(pointer: &str) -> Arc<jsonschema::Validator> {
    let spec = spec();
    let mut cache = spec
        .validators
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(validator) = cache.get(pointer) {
        return validator.clone();
    }
    // The whole document as the root, so `#/components/schemas/...` references resolve,
    // with the schema to check pointed at by `$ref`.
    let mut root = spec.document.clone();
    // (a URI fragment: the template braces are percent-encoded)
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    let validator = Arc::new(
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|error| panic!("schema at {pointer} does not compile: {error}")),
    );
    cache.insert(pointer.to_string(), validator.clone());
    validator
}

/// Asserts that a response agrees with the OpenAPI document. `uri` may carry a query.
pub fn check_response(
    method: &str,
    uri: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    let document = &spec().document;
    let path = uri.split('?').next().unwrap_or(uri);
    let method = method.to_ascii_lowercase();
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let operation = template_for(document, path).and_then(|template| {
        document["paths"][template]
            .get(&method)
            .map(|_| format!("/paths/{}/{method}", escape(template)))
    });
    let schema_pointer = match &operation {
        // Not a route: the router's 404 or 405, always the error body.
        None => "/components/schemas/ErrorBody".to_string(),
        Some(operation) => {
            let responses = &document.pointer(operation).unwrap()["responses"];
            let key = if responses.get(status.to_string()).is_some() {
                status.to_string()
            } else if responses.get("default").is_some() {
                "default".to_string()
            } else {
                panic!("{method} {uri}: status {status} is not documented in /openapi.json");
            };
            let response = &responses[&key];
            let declared = response["content"].as_object();
            if body.is_empty() {
                return;
            }
            let Some(declared) = declared else {
                panic!("{method} {uri} {status}: a body, but /openapi.json declares none");
            };
            let essence = essence.clone().unwrap_or_default();
            assert!(
                declared.contains_key(&essence),
                "{method} {uri} {status}: content type `{essence}` is not declared (declared: {:?})",
                declared.keys().collect::<Vec<_>>()
            );
            if essence != "application/json" {
                return;
            }
            format!(
                "{operation}/responses/{}/content/application~1json/schema",
                escape(&key)
            )
        }
    };
    if essence.as_deref() != Some("application/json") {
        return;
    }
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|error| panic!("{method} {uri} {status}: the body is not JSON ({error})"));
    let validator = validator(&schema_pointer);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {uri} {status}: the body does not match its schema in /openapi.json ({schema_pointer}):\n{}\nbody: {instance}",
        errors.join("\n")
    );
}

/// Sends `request` through `router` and checks the response against the document;
/// returns its status, headers and body.
pub async fn oneshot_checked(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (
    axum::http::StatusCode,
    axum::http::HeaderMap,
    axum::body::Bytes,
) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    check_response(&method, &uri, status.as_u16(), content_type, &bytes);
    (status, headers, bytes)
}
