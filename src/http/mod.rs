//! The HTTP service: one route table (method, path, scope, summary, handler) from which
//! both the axum router and `/openapi.json` are built, shared state, and the middleware
//! stack.
//!
//! Middleware, outermost first: panic → JSON 500 (last resort), metrics and access log
//! (route template only, never ids or bodies: no PII in logs), load shedding (a bounded
//! number of requests in flight, then 503 + `Retry-After`), request timeout, and per route
//! the auth check of its scope.

pub mod auth;
pub mod body;
pub mod changes;
pub mod console;
pub mod error;
pub mod ingest;
pub mod membership;
pub mod membership_text;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod segments;
pub mod server;
pub mod webhooks;

use crate::engine::{Applied, Engine, Mutation};
use crate::write::{WriteError, WritePath};
use auth::{Keys, Scope};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use error::{ApiError, ErrorCode};
use metrics::Metrics;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// Limits of the HTTP layer. Every one is explicit, documented in the README and tested.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, as sent and after gzip decompression.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503 `request_timeout`.
    pub request_timeout_ms: u64,
    /// Requests in flight at once; more are shed with 503 `overloaded`.
    pub max_concurrent_requests: usize,
    /// Open Server-Sent Events streams at once.
    pub max_sse_streams: usize,
    /// Open connections at once; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers (also bounds how long a
    /// kept-alive connection may sit before its next request starts).
    pub header_read_timeout_ms: u64,
    /// A connection with no bytes moving for this long is closed (after any request in
    /// flight finishes).
    pub idle_timeout_ms: u64,
    /// Request body bytes (as sent and decoded) held by all requests at once; beyond
    /// it requests are shed with 503 `overloaded`.
    pub max_body_bytes_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: body::DEFAULT_MAX_BODY_BYTES,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1_024,
            max_sse_streams: 256,
            max_connections: 4_096,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_body_bytes_in_flight: 256 * 1024 * 1024,
        }
    }
}

/// Where the persistence layer plugs in `POST /v1/admin/snapshot` and the final snapshot
/// on shutdown.
pub trait SnapshotHook: Send + Sync {
    /// Writes a snapshot now; returns a JSON description of what was written.
    fn snapshot(&self, engine: &Engine) -> Result<serde_json::Value, String>;
}

/// Everything the service is configured with.
#[derive(Clone, Default)]
pub struct ServiceOptions {
    pub keys: Keys,
    pub limits: Limits,
    pub webhooks: webhooks::WebhookOptions,
    pub snapshot: Option<Arc<dyn SnapshotHook>>,
    /// When set, every mutation is written to its WAL before it is acknowledged (see
    /// [`ServiceState::write`]).
    pub database: Option<Arc<crate::persist::Database>>,
    /// Host names (besides IP literals and `localhost`) an open server answers to.
    pub allowed_hosts: Vec<String>,
    /// Test hook: called by the applier thread before each mutation.
    pub apply_hook: Option<crate::write::ApplyHook>,
    /// Console session limits.
    pub console: console::ConsoleOptions,
}

/// State shared by every handler.
pub struct ServiceState {
    pub engine: Arc<Engine>,
    pub keys: auth::KeyRing,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub webhooks: webhooks::Webhooks,
    pub snapshot: Option<Arc<dyn SnapshotHook>>,
    pub database: Option<Arc<crate::persist::Database>>,
    pub allowed_hosts: Vec<String>,
    writes: WritePath,
    pub console: console::Console,
    ready: AtomicBool,
    shutdown: watch::Sender<bool>,
    in_flight: Arc<Semaphore>,
    sse_slots: Arc<Semaphore>,
    /// Bytes of request bodies held at once (see [`Limits::max_body_bytes_in_flight`]).
    pub body_budget: body::BodyBudget,
    pub metrics_extra: Arc<server::ConnectionMetrics>,
}

pub type AppState = Arc<ServiceState>;

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceState")
            .field("engine", &self.engine)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServiceState {
    /// The service's state; starts the write path's threads.
    pub fn new(engine: Arc<Engine>, options: ServiceOptions) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let writes = WritePath::start(engine.clone(), options.database.clone(), options.apply_hook)
            .unwrap_or_else(|error| panic!("cannot start the write path's threads: {error}"));
        let (shutdown, _) = watch::channel(false);
        Arc::new(ServiceState {
            webhooks: webhooks::Webhooks::new(
                engine.clone(),
                metrics.clone(),
                options.webhooks,
                shutdown.subscribe(),
            ),
            engine,
            keys: auth::KeyRing::new(options.keys),
            in_flight: Arc::new(Semaphore::new(
                options.limits.max_concurrent_requests.max(1),
            )),
            sse_slots: Arc::new(Semaphore::new(options.limits.max_sse_streams.max(1))),
            body_budget: body::BodyBudget::new(options.limits.max_body_bytes_in_flight),
            metrics_extra: Arc::default(),
            limits: options.limits,
            metrics,
            snapshot: options.snapshot,
            database: options.database,
            allowed_hosts: options.allowed_hosts,
            writes,
            console: console::Console::new(options.console),
            ready: AtomicBool::new(true),
            shutdown,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Starts shutting down: not ready any more, streams and webhook workers end.
    pub fn begin_shutdown(&self) {
        self.set_ready(false);
        self.shutdown.send_replace(true);
    }

    /// Wakes when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

impl From<crate::persist::DatabaseError> for ApiError {
    fn from(error: crate::persist::DatabaseError) -> ApiError {
        match error {
            crate::persist::DatabaseError::Engine(error) => error.into(),
            crate::persist::DatabaseError::Unavailable(error) => {
                tracing::error!(%error, "write refused: the WAL cannot persist it");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the server cannot persist writes right now; nothing was applied — retry later",
                )
            }
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::Refused(error) => error.into(),
            WriteError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; nothing was applied — retry on another instance",
            ),
        }
    }
}

impl ServiceState {
    /// The one door for mutations: hands `mutation` to the write path (applied on its
    /// own thread, WAL first when persistence is configured; a failing WAL refuses
    /// with 503 `storage_unavailable`) and waits for the acknowledgement without
    /// blocking this async worker.
    pub async fn write(&self, mutation: Mutation) -> Result<Applied, ApiError> {
        Ok(self.writes.submit(mutation).await?)
    }
}

/// Runs engine work on the blocking pool (whole-population work must not stall the
/// async workers that answer lookups).
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Engine) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || work(&engine))
        .await
        .map_err(|_| ApiError::internal())
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    /// axum path template (`/v1/segments/{id}`).
    pub path: &'static str,
    pub scope: Scope,
    pub summary: &'static str,
    pub handler: MethodRouter<AppState>,
}

pub(crate) fn route(
    method: Method,
    path: &'static str,
    scope: Scope,
    summary: &'static str,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        scope,
        summary,
        handler,
    }
}

/// The whole API. The router and the OpenAPI document are both built from this list.
pub fn route_table() -> Vec<Route> {
    use axum::routing::{delete, get, post, put};
    let mut routes = vec![
        route(
            Method::GET,
            "/healthz",
            Scope::Public,
            "Liveness: 200 while the process runs",
            get(operations::healthz),
        ),
        route(
            Method::GET,
            "/readyz",
            Scope::Public,
            "Readiness: 200 when serving, 503 while loading or shutting down",
            get(operations::readyz),
        ),
        route(
            Method::GET,
            "/metrics",
            Scope::Public,
            "Prometheus metrics (text format)",
            get(operations::metrics),
        ),
        route(
            Method::GET,
            "/openapi.json",
            Scope::Public,
            "This API description",
            get(openapi::openapi_json),
        ),
        route(
            Method::POST,
            "/v1/admin/snapshot",
            Scope::Admin,
            "Write a snapshot now",
            post(operations::snapshot),
        ),
    ];
    routes.extend(ingest::routes());
    routes.extend([
        route(
            Method::POST,
            "/v1/segments",
            Scope::Admin,
            "Create a segment (rule as text or JSON AST, or static)",
            post(segments::create),
        ),
        route(
            Method::GET,
            "/v1/segments",
            Scope::Admin,
            "List segments with member counts",
            get(segments::list),
        ),
        route(
            Method::POST,
            "/v1/segments/preview",
            Scope::Admin,
            "Count and sample a rule without saving it",
            post(segments::preview),
        ),
        route(
            Method::POST,
            "/v1/segments/count",
            Scope::Admin,
            "Count a set expression (and, or, and_not) over segments",
            post(segments::count),
        ),
        route(
            Method::GET,
            "/v1/segments/{id}",
            Scope::Admin,
            "Get a segment",
            get(segments::get_one),
        ),
        route(
            Method::PUT,
            "/v1/segments/{id}",
            Scope::Admin,
            "Replace a segment's rule (new version; the diff is recorded)",
            put(segments::update),
        ),
        route(
            Method::DELETE,
            "/v1/segments/{id}",
            Scope::Admin,
            "Delete a segment",
            delete(segments::remove),
        ),
        route(
            Method::GET,
            "/v1/segments/{id}/members",
            Scope::Admin,
            "A page of members (cursor, limit)",
            get(segments::members_page),
        ),
        route(
            Method::GET,
            "/v1/segments/{id}/members.ndjson",
            Scope::Admin,
            "All members, streamed as NDJSON",
            get(segments::members_ndjson),
        ),
        route(
            Method::POST,
            "/v1/segments/{id}/members",
            Scope::Admin,
            "Add to or replace a static segment's members",
            post(segments::static_add),
        ),
        route(
            Method::DELETE,
            "/v1/segments/{id}/members",
            Scope::Admin,
            "Remove members from a static segment",
            delete(segments::static_remove),
        ),
        route(
            Method::GET,
            "/v1/segments/{id}/explain/{profile}",
            Scope::Admin,
            "Why a profile is or is not a member, condition by condition",
            get(segments::explain),
        ),
        route(
            Method::GET,
            "/v1/segments/{id}/members/{profile}",
            Scope::Read,
            "Is the profile a member?",
            get(membership::is_member),
        ),
        route(
            Method::GET,
            "/v1/profiles/{id}/segments",
            Scope::Read,
            "Segments the profile is in",
            get(membership::segments_of),
        ),
        route(
            Method::POST,
            "/v1/membership",
            Scope::Read,
            "Bulk membership check of profiles x segments",
            post(membership::bulk),
        ),
        route(
            Method::GET,
            "/v1/profiles/{id}",
            Scope::Read,
            "The profile card",
            get(membership::card),
        ),
        route(
            Method::DELETE,
            "/v1/profiles/{id}",
            Scope::Admin,
            "Erase a profile and suppress its identifiers",
            delete(membership::erase),
        ),
        route(
            Method::GET,
            "/v1/profiles/{id}/export",
            Scope::Read,
            "Everything held about a profile",
            get(membership::export),
        ),
        route(
            Method::GET,
            "/v1/changes",
            Scope::Read,
            "Membership changes after a sequence (long-poll with wait_ms)",
            get(changes::long_poll),
        ),
        route(
            Method::GET,
            "/v1/changes/stream",
            Scope::Read,
            "Membership changes as Server-Sent Events (resumes from Last-Event-ID)",
            get(changes::stream),
        ),
        route(
            Method::POST,
            "/v1/webhooks",
            Scope::Admin,
            "Register a webhook for membership changes",
            post(webhooks::register),
        ),
        route(
            Method::GET,
            "/v1/webhooks",
            Scope::Admin,
            "List webhooks with their delivery status",
            get(webhooks::list),
        ),
        route(
            Method::GET,
            "/v1/webhooks/{id}",
            Scope::Admin,
            "One webhook with its delivery status",
            get(webhooks::get_one),
        ),
        route(
            Method::DELETE,
            "/v1/webhooks/{id}",
            Scope::Admin,
            "Delete a webhook",
            delete(webhooks::remove),
        ),
        route(
            Method::POST,
            "/v1/webhooks/{id}/rotate-secret",
            Scope::Admin,
            "Replace a webhook's secret (the old one keeps signing for a while)",
            post(webhooks::rotate_secret),
        ),
    ]);
    routes.extend(console::routes());
    routes
}

async fn check_scope(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    // An open server answers only to its own names: a DNS-rebinding page cannot use it.
    if state.keys.none_configured() && !auth::host_allowed(request.headers(), &state.allowed_hosts)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "this server has no keys and answers only to IP addresses, localhost and --allowed-host names",
        )
        .into_response();
    }
    let mut request = request;
    match console::check(&state, scope, request.method(), request.headers()) {
        Ok(deferred) => {
            if let Some(mark) = deferred {
                request.extensions_mut().insert(mark);
            }
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // An Arc clone, not a copy of the text: this runs on every request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let route = matched.as_ref().map_or("unmatched", |path| path.as_str());
    let elapsed_us = started.elapsed().as_micros() as u64;
    state
        .metrics
        .observe_request(route, &method, status, elapsed_us);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        state.metrics.count_rejection(code);
    }
    tracing::debug!(%method, route, status, elapsed_us, "request");
    response
}

async fn shed_and_time_out(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Probes answer even when the server sheds load: an orchestrator that sees them
    // time out would restart a server that is only busy.
    let probe = matches!(request.uri().path(), "/healthz" | "/readyz");
    let permit = state.in_flight.clone().try_acquire_owned();
    if permit.is_err() && !probe {
        state.metrics.shed_requests.fetch_add(1, Ordering::Relaxed);
        return ApiError::overloaded(format!(
            "more than {} requests in flight; retry after a second",
            state.limits.max_concurrent_requests
        ))
        .into_response();
    }
    let timeout = Duration::from_millis(state.limits.request_timeout_ms);
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request took longer than {} ms; narrow it (smaller pages, simpler rules) or retry",
                state.limits.request_timeout_ms
            ),
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("route_not_found", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

/// The service's router over the given state.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for route in route_table() {
        let handler = route.handler.route_layer(middleware::from_fn_with_state(
            (state.clone(), route.scope),
            check_scope,
        ));
        // Several methods on one path merge into one method router.
        router = router.route(route.path, handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            shed_and_time_out,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting, ends streams and webhook
/// workers, drains requests in flight, and takes a final snapshot when persistence is
/// configured.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    server::accept_loop(listener, app, state.clone(), shutdown).await;
    state.webhooks.stop_all();
    if let Some(hook) = state.snapshot.clone() {
        let engine = state.engine.clone();
        match tokio::task::spawn_blocking(move || hook.snapshot(&engine)).await {
            Ok(Ok(_)) => tracing::info!("final snapshot written"),
            Ok(Err(error)) => tracing::error!(%error, "final snapshot failed"),
            Err(_) => tracing::error!("final snapshot panicked"),
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
