//! Operations endpoints: health, readiness, metrics, snapshot.

use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{blocking, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

/// A probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: &'static str,
}

/// What `POST /v1/admin/snapshot` wrote.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotAnswer {
    /// The snapshot's description (file, sizes, timings).
    #[schema(value_type = Object)]
    pub snapshot: Value,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process runs", body = ProbeStatus)))]
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "ok" })
}

/// Readiness: 200 when serving, 503 while loading or shutting down.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = ProbeStatus),
        (status = 503, description = "Loading, shutting down, or the WAL has failed", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, ApiError> {
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
        Ok(Json(ProbeStatus { status: "ready" }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "segd is loading data or shutting down",
        ))
    }
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
            content_type = "text/plain", body = String),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
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

/// Write a snapshot now.
#[utoipa::path(post, path = "/v1/admin/snapshot", operation_id = "snapshot", tag = "operations",
    responses(
        (status = 200, description = "The snapshot was written", body = SnapshotAnswer),
        (status = "default", description = "Error (503 `persistence_not_configured` without persistence)", body = ErrorBody),
    ))]
pub async fn snapshot(State(state): State<AppState>) -> ApiResult<Json<SnapshotAnswer>> {
    let Some(hook) = state.snapshot.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "persistence_not_configured",
            "this server keeps everything in memory only: persistence is not configured",
        ));
    };
    match blocking(&state, move |engine| hook.snapshot(engine)).await? {
        Ok(report) => Ok(Json(SnapshotAnswer { snapshot: report })),
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
