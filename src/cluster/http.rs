//! What the HTTP API does in cluster mode: which routes are served (the rest answer
//! 501 `not_in_cluster_mode`, never a single node's partial view) and where writes go.

use super::*;
use crate::engine::{Applied, Mutation};
use crate::http::error::ApiError;
use axum::http::{Method, StatusCode};

/// Routes served in cluster mode (ingest, segment create/list/get/delete, counts,
/// lookups, operations).
const SUPPORTED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/segments"),
    ("GET", "/v1/segments"),
    ("GET", "/v1/segments/{id}"),
    ("DELETE", "/v1/segments/{id}"),
    ("GET", "/v1/segments/{id}/members/{profile}"),
    ("GET", "/v1/profiles/{id}/segments"),
];

/// Whether a route of the route table is served in cluster mode.
pub fn supported(method: &Method, path: &str) -> bool {
    let ingest = crate::http::ingest::routes()
        .iter()
        .any(|route| route.path == path && route.method == method);
    ingest
        || SUPPORTED
            .iter()
            .any(|(m, p)| *p == path && method.as_str() == *m)
}

/// The answer of every route not yet available in cluster mode.
pub async fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_in_cluster_mode",
        "this endpoint is not available in cluster mode yet (see the README, \"Cluster mode\")",
    )
}

/// Where a mutation goes in cluster mode.
pub async fn write(cluster: &Arc<Cluster>, mutation: Mutation) -> Result<Applied, ApiError> {
    match mutation {
        Mutation::Messages(messages) => ingest::publish(cluster, messages).await,
        Mutation::CreateSegment { .. } | Mutation::DeleteSegment { .. } => {
            segments::publish(cluster, mutation).await
        }
        _ => Err(unsupported().await),
    }
}
