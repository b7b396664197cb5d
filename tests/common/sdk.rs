//! Replaying SDK requests from `tests/fixtures/sdk/` against the router: the fixture
//! files, a service with the fixtures' keys, and one request sent as recorded.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use segd::engine::Engine;
use segd::http::auth::Keys;
use segd::http::{router, ServiceOptions, ServiceState};
use std::path::PathBuf;
use std::sync::Arc;

/// The `*.json` files directly in `tests/fixtures/sdk/<folder>` ("" for the folder
/// itself), sorted by name.
pub fn fixture_files(folder: &str) -> Vec<PathBuf> {
    let directory =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk")).join(folder);
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    paths
}

/// The router over `engine` with one write key and one admin key.
pub fn service(engine: Arc<Engine>, write_key: &str, admin_key: &str) -> axum::Router {
    router(ServiceState::new(
        engine,
        ServiceOptions {
            keys: Keys {
                write: vec![write_key.into()],
                admin: vec![admin_key.into()],
                ..Keys::default()
            },
            ..ServiceOptions::default()
        },
    ))
}

/// Sends one request as recorded (headers in order, body bytes unmodified); returns the
/// status and the body.
pub async fn replay<'a>(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Vec<u8>,
) -> (StatusCode, Bytes) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    // Every answer is also checked against the OpenAPI document.
    let request = builder.body(Body::from(body)).unwrap();
    let (status, _, bytes) = super::openapi::oneshot_checked(app, request).await;
    (status, bytes)
}
