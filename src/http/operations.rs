//! Operations endpoints: health, readiness, metrics, snapshot.

use crate::http::error::{ApiError, ApiResult};
use crate::http::{blocking, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.is_ready() {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "segd is loading data or shutting down",
        ))
    }
}

pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let inputs = crate::http::metrics::ScrapeInputs {
        webhooks: state.webhooks.figures(),
        wal: state
            .database
            .as_ref()
            .map(|database| database.wal_status()),
    };
    let metrics = state.metrics.clone();
    let text = blocking(&state, move |engine| metrics.render(engine, &inputs)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

pub async fn snapshot(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let Some(hook) = state.snapshot.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "persistence_not_configured",
            "this server keeps everything in memory only: persistence is not configured",
        ));
    };
    match blocking(&state, move |engine| hook.snapshot(engine)).await? {
        Ok(report) => Ok(Json(json!({ "snapshot": report }))),
        Err(error) => {
            tracing::error!(%error, "snapshot failed");
            Err(ApiError::internal())
        }
    }
}
