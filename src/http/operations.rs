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
    if let Some(failure) = wal_failure(&state) {
        // Every write would be refused: route traffic elsewhere until a restart.
        tracing::error!(%failure, "not ready: the WAL has failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the write-ahead log has failed; writes are refused until segd is restarted",
        ));
    }
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
    let mut text = blocking(&state, move |engine| metrics.render(engine, &inputs)).await?;
    render_faults(&state, &mut text);
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

/// Why the WAL refuses writes, if it does.
fn wal_failure(state: &AppState) -> Option<String> {
    state
        .database
        .as_ref()
        .and_then(|database| database.wal_status().failure)
}

/// Storage and connection figures (rendered here, apart from the engine's metrics).
fn render_faults(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    // `segd_wal_failed` is rendered with the other WAL figures (`metrics::operations`).
    gauge(
        out,
        "segd_http_connections_open",
        "Open client connections.",
        state.metrics_extra.connections_open.load(Ordering::Relaxed),
    );
    gauge(
        out,
        "segd_http_connections_limit",
        "Most client connections open at once (--max-connections).",
        state.limits.max_connections as u64,
    );
    let _ = writeln!(
        out,
        "# HELP segd_http_connections_idle_closed_total Connections closed by the idle timeout.\n# TYPE segd_http_connections_idle_closed_total counter\nsegd_http_connections_idle_closed_total {}",
        state.metrics_extra.idle_closed.load(Ordering::Relaxed)
    );
    gauge(
        out,
        "segd_http_body_bytes_in_flight",
        "Request body bytes held by requests in flight.",
        state.body_budget.in_use() as u64,
    );
}
