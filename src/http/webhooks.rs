//! Webhooks: membership changes POSTed to a URL, at least once.
//!
//! Each webhook has one worker task that reads the change log from its own position
//! (optionally only some segments), POSTs up to [`WebhookOptions::batch_size`] changes as
//! `{"webhook_id", "changes": [...]}`, and advances only after a 2xx. A failed attempt
//! (connection error, timeout, non-2xx) is retried with exponential backoff
//! (`retry_initial_ms` doubling up to `retry_max_ms`) until it succeeds or the webhook is
//! deleted, so a receiver may see a batch twice and should de-duplicate by `sequence`.
//!
//! The queue is bounded because it is not a copy: pending deliveries are the change log
//! after the webhook's position, and the log's retention bounds them. If retention drops
//! changes a webhook has not delivered, the webhook records it (`fell_behind` in its
//! status and in metrics) and continues from the oldest change still held.
//!
//! Registration (admin keys only) checks the destination (see [`destination`]), and every
//! attempt checks it again. Headers: Standard Webhooks `webhook-id` (stable across the
//! retries of one delivery), `webhook-timestamp` and `webhook-signature` (see
//! [`signing`]), plus the deprecated `X-Segd-Signature` for one more release.
//!
//! Registration changes (register, delete, secret rotation) are one atomic step under
//! the registry lock: change the in-memory list, write the whole list to the WAL, and undo
//! the change if the write fails, so the list persisted last is always the list in memory.

pub mod destination;
pub mod signing;

use crate::engine::Engine;
use crate::http::body::{JsonBody, PathParams};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::metrics::{Metrics, WebhookFigures};
use crate::http::segments::resolve_segment;
use crate::http::segments::SegmentName;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::Full;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most webhooks registered at once.
pub const MAX_WEBHOOKS: usize = 100;
/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;
/// Most previous secrets kept signing at once (rotations in a row).
pub const MAX_PREVIOUS_SECRETS: usize = 4;
/// Most segments in one webhook's `segments` filter.
pub const MAX_FILTER_SEGMENTS: usize = 256;
/// Longest a previous secret stays valid after a rotation, in seconds (7 days).
pub const MAX_PREVIOUS_SECRET_S: u64 = 7 * 86_400;
/// How long a previous secret stays valid after a rotation by default (24 hours).
pub const DEFAULT_PREVIOUS_SECRET_S: u64 = 86_400;
/// The deprecated signature header (one more release).
pub const SIGNATURE_HEADER: &str = "x-segd-signature";

pub use destination::{check_ip, parse_pem_roots};
pub use signing::{signature, standard_signature};

/// Delivery tuning.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Most changes per delivery.
    pub batch_size: usize,
    /// First retry delay; doubles per failed attempt.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Time allowed for one delivery attempt.
    pub attempt_timeout_ms: u64,
    /// Deliver to loopback, private, link-local and metadata addresses too
    /// (`--webhook-allow-private`; tests and single-machine setups).
    pub allow_private: bool,
    /// CA certificates trusted for `https://` besides Mozilla's roots.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            batch_size: 500,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            attempt_timeout_ms: 10_000,
            allow_private: false,
            extra_roots: Vec::new(),
        }
    }
}

/// A webhook's delivery status, as listed.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DeliveryStatus {
    /// Every change with a sequence up to this one was delivered (or filtered out).
    pub delivered_through: u64,
    pub deliveries: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub last_success_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Times retention dropped changes before they were delivered.
    pub fell_behind: u64,
}

/// A secret replaced by a rotation, still signing until it expires.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_ms: i64,
}

/// A webhook's secrets: the current one and those still valid after rotations.
#[derive(Clone, Debug)]
struct Secrets {
    current: String,
    previous: Vec<PreviousSecret>,
}

impl Secrets {
    /// The secrets that sign at `now_ms`, newest first.
    fn signing(&self, now_ms: i64) -> Vec<String> {
        std::iter::once(self.current.clone())
            .chain(
                self.previous
                    .iter()
                    .rev()
                    .filter(|previous| previous.expires_ms > now_ms)
                    .map(|previous| previous.secret.clone()),
            )
            .collect()
    }
}

struct Webhook {
    id: u64,
    url: String,
    uri: axum::http::Uri,
    segments: Option<Vec<u32>>,
    secrets: Mutex<Secrets>,
    created_ms: i64,
    status: Mutex<DeliveryStatus>,
    stop: watch::Sender<bool>,
}

/// A webhook as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookDescription {
    pub id: u64,
    pub url: String,
    /// Segment ids whose changes it receives; null for all.
    pub segments: Option<Vec<u32>>,
    pub created_ms: i64,
    pub status: DeliveryStatus,
    /// The signing secret: shown once, in the registration answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Webhook {
    fn describe(&self) -> WebhookDescription {
        WebhookDescription {
            id: self.id,
            url: self.url.clone(),
            segments: self.segments.clone(),
            created_ms: self.created_ms,
            status: self.status.lock().clone(),
            secret: None,
        }
    }
}

use destination::Client;

/// The registered webhooks and their workers.
pub struct Webhooks {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    options: WebhookOptions,
    hooks: Mutex<BTreeMap<u64, Arc<Webhook>>>,
    /// Held across a registration change and its WAL write (see the module doc).
    registry: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    client: Client,
}

/// A registration as persisted (WAL record and snapshot state): everything needed to
/// restart its worker. Delivery progress is saved with each registration change, so
/// after a restart a webhook resumes from there (at-least-once: changes delivered since
/// may be delivered again; ones older than the change log's retention are reported as
/// fallen behind).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PersistedWebhook {
    pub id: u64,
    pub url: String,
    pub segments: Option<Vec<u32>>,
    pub secret: String,
    /// Secrets replaced by rotations that still sign until they expire.
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    pub created_ms: i64,
    pub delivered_through: u64,
}

/// All registrations, serialized as the database's application state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PersistedWebhooks {
    pub next_id: u64,
    pub webhooks: Vec<PersistedWebhook>,
}

impl Webhooks {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        options: WebhookOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Webhooks {
        let client = destination::client(options.allow_private, &options.extra_roots);
        Webhooks {
            engine,
            metrics,
            options,
            hooks: Mutex::new(BTreeMap::new()),
            registry: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            shutdown,
            client,
        }
    }

    /// The registrations as persisted state.
    pub fn persisted(&self) -> PersistedWebhooks {
        PersistedWebhooks {
            next_id: self.next_id.load(Ordering::Relaxed),
            webhooks: self
                .hooks
                .lock()
                .values()
                .map(|hook| {
                    let secrets = hook.secrets.lock().clone();
                    PersistedWebhook {
                        id: hook.id,
                        url: hook.url.clone(),
                        segments: hook.segments.clone(),
                        secret: secrets.current,
                        previous_secrets: secrets.previous,
                        created_ms: hook.created_ms,
                        delivered_through: hook.status.lock().delivered_through,
                    }
                })
                .collect(),
        }
    }

    /// Re-registers persisted webhooks at start-up (workers resume from their saved
    /// progress). Entries whose URL no longer parses are skipped with a log line.
    pub fn restore(&self, persisted: PersistedWebhooks) {
        self.next_id
            .fetch_max(persisted.next_id.max(1), Ordering::Relaxed);
        for saved in persisted.webhooks {
            let Ok(uri) = destination::parse_url(&saved.url) else {
                tracing::error!(
                    id = saved.id,
                    "persisted webhook has an invalid url; skipped"
                );
                continue;
            };
            let (stop, _) = watch::channel(false);
            let hook = Arc::new(Webhook {
                id: saved.id,
                url: saved.url,
                uri,
                segments: saved.segments,
                secrets: Mutex::new(Secrets {
                    current: saved.secret,
                    previous: saved.previous_secrets,
                }),
                created_ms: saved.created_ms,
                status: Mutex::new(DeliveryStatus {
                    delivered_through: saved.delivered_through,
                    ..DeliveryStatus::default()
                }),
                stop,
            });
            self.next_id.fetch_max(saved.id + 1, Ordering::Relaxed);
            self.hooks.lock().insert(hook.id, hook.clone());
            self.spawn_worker(hook);
        }
    }

    /// Lag and failures per webhook, for `/metrics`.
    pub fn figures(&self) -> Vec<WebhookFigures> {
        let head = self.engine.changes().head();
        self.hooks
            .lock()
            .values()
            .map(|hook| {
                let status = hook.status.lock();
                WebhookFigures {
                    id: hook.id,
                    lag: head.saturating_sub(status.delivered_through),
                    consecutive_failures: status.consecutive_failures,
                }
            })
            .collect()
    }

    /// Stops every worker (shutdown).
    pub fn stop_all(&self) {
        for hook in self.hooks.lock().values() {
            hook.stop.send_replace(true);
        }
    }

    fn spawn_worker(&self, hook: Arc<Webhook>) {
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        let options = self.options.clone();
        let client = self.client.clone();
        let mut stop = hook.stop.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let log = engine.changes();
            let mut head = log.subscribe();
            loop {
                if *stop.borrow() || *shutdown.borrow() {
                    return;
                }
                let after = hook.status.lock().delivered_through;
                let result = match log.read(after, None, options.batch_size) {
                    Ok(result) => result,
                    Err(behind) => {
                        metrics.webhook_fell_behind.fetch_add(1, Ordering::Relaxed);
                        let mut status = hook.status.lock();
                        status.fell_behind += 1;
                        status.delivered_through = behind.oldest_available.saturating_sub(1);
                        continue;
                    }
                };
                let changes: Vec<_> = result
                    .changes
                    .iter()
                    .filter(|change| {
                        hook.segments
                            .as_ref()
                            .is_none_or(|wanted| wanted.contains(&change.segment_id))
                    })
                    .collect();
                if !changes.is_empty() {
                    let body = json!({ "webhook_id": hook.id, "changes": changes }).to_string();
                    // One id per delivery, the same for each retry, derived from what it
                    // carries so a restart that resends it resends the same id.
                    let delivery_id = format!(
                        "msg_{}_{}_{}",
                        hook.id,
                        changes.first().map_or(0, |change| change.sequence),
                        changes.last().map_or(0, |change| change.sequence)
                    );
                    let mut attempt: u32 = 0;
                    loop {
                        attempt += 1;
                        let outcome =
                            deliver(&client, &hook, &delivery_id, &body, attempt, &options).await;
                        let now_ms = engine.now_ms();
                        match outcome {
                            Ok(()) => {
                                metrics.webhook_deliveries.fetch_add(1, Ordering::Relaxed);
                                let mut status = hook.status.lock();
                                status.deliveries += 1;
                                status.consecutive_failures = 0;
                                status.last_success_ms = Some(now_ms);
                                break;
                            }
                            Err(error) => {
                                metrics.webhook_failures.fetch_add(1, Ordering::Relaxed);
                                {
                                    let mut status = hook.status.lock();
                                    status.failures += 1;
                                    status.consecutive_failures += 1;
                                    status.last_failure_ms = Some(now_ms);
                                    status.last_error = Some(error);
                                }
                                let delay_ms = options
                                    .retry_initial_ms
                                    .saturating_mul(1u64 << (attempt - 1).min(30))
                                    .min(options.retry_max_ms);
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                                    _ = stop.changed() => return,
                                    _ = shutdown.changed() => return,
                                }
                            }
                        }
                    }
                }
                hook.status.lock().delivered_through = result.next_after;
                if result.next_after >= result.head {
                    let after = result.next_after;
                    tokio::select! {
                        changed = head.wait_for(|head| *head > after) => {
                            if changed.is_err() { return; }
                        }
                        _ = stop.changed() => return,
                        _ = shutdown.changed() => return,
                    }
                }
            }
        });
    }
}

async fn deliver(
    client: &Client,
    hook: &Webhook,
    delivery_id: &str,
    body: &str,
    attempt: u32,
    options: &WebhookOptions,
) -> Result<(), String> {
    // Checked at every attempt: IP literals here, names by the client's resolver.
    destination::check_literal(&hook.uri, options.allow_private)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let secrets = hook.secrets.lock().signing(now_ms);
    let request = axum::http::Request::post(hook.uri.clone())
        .header("content-type", "application/json")
        .header("user-agent", concat!("segd/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", delivery_id)
        .header("webhook-timestamp", (now_ms / 1_000).to_string())
        .header(
            "webhook-signature",
            standard_signature(
                secrets.iter().map(String::as_str),
                delivery_id,
                now_ms / 1_000,
                body.as_bytes(),
            ),
        )
        .header(
            SIGNATURE_HEADER,
            signature(&secrets[0], now_ms, body.as_bytes()),
        )
        .header("x-segd-webhook-id", hook.id.to_string())
        .header("x-segd-delivery-attempt", attempt.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|error| format!("could not build the request: {error}"))?;
    let timeout_ms = options.attempt_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), client.request(request)).await {
        Err(_) => Err(format!("no answer within {timeout_ms} ms")),
        Ok(Err(error)) => Err(format!("connection failed: {}", error_chain(&error))),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status().as_u16())),
    }
}

/// An error with its causes (the refusal of a private address is a cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWebhook {
    /// `https://` (or `http://`) URL; private addresses only with `--webhook-allow-private`.
    url: String,
    /// Only changes of these segments (ids or names); all when absent.
    #[serde(default)]
    #[schema(value_type = Option<Vec<SegmentName>>)]
    segments: Option<Vec<Value>>,
    /// Signing secret; generated when absent.
    #[serde(default)]
    secret: Option<String>,
    /// Deliver changes after this sequence; the current head when absent (new only).
    #[serde(default)]
    after: Option<u64>,
}

/// Register a webhook for membership changes.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "registerWebhook", tag = "webhooks",
    request_body = RegisterWebhook,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = WebhookDescription),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RegisterWebhook>,
) -> ApiResult<Response> {
    if body.url.len() > MAX_URL_BYTES {
        return Err(ApiError::invalid_field(
            "url",
            format!("url is longer than {MAX_URL_BYTES} bytes"),
        ));
    }
    let uri = destination::parse_url(&body.url)
        .map_err(|message| ApiError::invalid_field("url", message))?;
    let secret = match body.secret {
        Some(secret) => {
            signing::check_secret(&secret)
                .map_err(|message| ApiError::invalid_field("secret", message))?;
            secret
        }
        None => signing::generate_secret(),
    };
    let segments = match body.segments {
        None => None,
        Some(list) if list.len() > MAX_FILTER_SEGMENTS => {
            return Err(ApiError::invalid_field(
                "segments",
                format!(
                    "at most {MAX_FILTER_SEGMENTS} segments per webhook; omit `segments` for all"
                ),
            ))
        }
        Some(list) => {
            let mut ids = Vec::with_capacity(list.len());
            for (index, segment) in list.iter().enumerate() {
                let name = crate::http::segments::segment_reference(segment, index)?;
                ids.push(resolve_segment(&state.engine, &name)?.0);
            }
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        }
    };
    let webhooks = &state.webhooks;
    destination::check_destination(&uri, webhooks.options.allow_private)
        .await
        .map_err(|message| ApiError::invalid_field("url", message))?;
    let _registry = webhooks.registry.lock().await;
    let head = state.engine.changes().head();
    let hook = {
        let mut hooks = webhooks.hooks.lock();
        if hooks.len() >= MAX_WEBHOOKS {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "too_many_webhooks",
                format!("{MAX_WEBHOOKS} webhooks are registered, the limit; delete unused ones"),
            ));
        }
        let id = webhooks.next_id.fetch_add(1, Ordering::Relaxed);
        let (stop, _) = watch::channel(false);
        let hook = Arc::new(Webhook {
            id,
            url: body.url,
            uri,
            segments,
            secrets: Mutex::new(Secrets {
                current: secret.clone(),
                previous: Vec::new(),
            }),
            created_ms: state.engine.now_ms(),
            status: Mutex::new(DeliveryStatus {
                delivered_through: body.after.unwrap_or(head).min(head),
                ..DeliveryStatus::default()
            }),
            stop,
        });
        hooks.insert(id, hook.clone());
        hook
    };
    if let Err(error) = persist_registrations(&state, json!({"registered": hook.id})).await {
        webhooks.hooks.lock().remove(&hook.id);
        return Err(error);
    }
    webhooks.spawn_worker(hook.clone());
    let mut described = hook.describe();
    // The secret is shown once, at registration.
    described.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(described)).into_response())
}

/// Writes the registration change to the WAL (record: what changed plus the whole
/// registration list; the list is also the state kept in snapshots). The caller holds
/// the registry lock from its in-memory change until this returns. Without persistence
/// this does nothing.
async fn persist_registrations(state: &AppState, change: Value) -> Result<(), ApiError> {
    let Some(database) = state.database.clone() else {
        return Ok(());
    };
    let persisted = state.webhooks.persisted();
    let bytes = serde_json::to_vec(&persisted).map_err(|_| ApiError::internal())?;
    let record = serde_json::to_vec(&json!({"change": change, "state": persisted}))
        .map_err(|_| ApiError::internal())?;
    tokio::task::spawn_blocking(move || database.append_opaque(record, bytes))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(())
}

/// The webhook registrations to restore after recovery: the newest registration record
/// replayed from the WAL, else the state in the snapshot.
pub fn recovered_registrations(
    snapshot_state: &[u8],
    replayed_records: &[Vec<u8>],
) -> PersistedWebhooks {
    #[derive(Deserialize)]
    struct Record {
        state: PersistedWebhooks,
    }
    if let Some(last) = replayed_records.last() {
        if let Ok(record) = serde_json::from_slice::<Record>(last) {
            return record.state;
        }
        tracing::error!("the last webhook record in the WAL is unreadable; using the snapshot's");
    }
    if snapshot_state.is_empty() {
        return PersistedWebhooks::default();
    }
    serde_json::from_slice(snapshot_state).unwrap_or_else(|_| {
        tracing::error!("the snapshot's webhook registrations are unreadable; starting without");
        PersistedWebhooks::default()
    })
}

/// `GET /v1/webhooks`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookDescription>,
}

/// List webhooks with their delivery status.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    responses(
        (status = 200, description = "Every webhook", body = WebhookList),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<WebhookList> {
    let webhooks = state
        .webhooks
        .hooks
        .lock()
        .values()
        .map(|hook| hook.describe())
        .collect();
    Json(WebhookList { webhooks })
}

fn find(state: &AppState, id: &str) -> Result<Arc<Webhook>, ApiError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| state.webhooks.hooks.lock().get(&id).cloned())
        .ok_or_else(|| ApiError::not_found("webhook_not_found", format!("no webhook `{id}`")))
}

/// One webhook with its delivery status.
#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookDescription),
        (status = "default", description = "Error (404 `webhook_not_found`)", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<WebhookDescription>> {
    Ok(Json(find(&state, &id)?.describe()))
}

/// `DELETE /v1/webhooks/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedWebhook {
    pub deleted: bool,
    pub id: u64,
}

/// Delete a webhook.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedWebhook),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<DeletedWebhook>> {
    let _registry = state.webhooks.registry.lock().await;
    let hook = find(&state, &id)?;
    state.webhooks.hooks.lock().remove(&hook.id);
    if let Err(error) = persist_registrations(&state, json!({"deleted": hook.id})).await {
        state.webhooks.hooks.lock().insert(hook.id, hook.clone());
        return Err(error);
    }
    hook.stop.send_replace(true);
    Ok(Json(DeletedWebhook {
        deleted: true,
        id: hook.id,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The new secret; generated when absent.
    #[serde(default)]
    secret: Option<String>,
    /// Seconds the replaced secret keeps signing (default one day).
    #[serde(default)]
    previous_valid_s: Option<u64>,
}

/// `POST /v1/webhooks/{id}/rotate-secret`: a new secret signs from now on; the replaced
/// one keeps signing beside it for `previous_valid_s`, so receivers can switch over.
/// `POST /v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub id: u64,
    /// The new secret.
    pub secret: String,
    /// When each replaced secret still signing stops (ms since the epoch).
    pub previous_secrets_expire_ms: Vec<i64>,
}

/// Replace a webhook's secret (the old one keeps signing for a while).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = RotateSecret,
    responses(
        (status = 200, description = "Rotated", body = RotatedSecret),
        (status = "default", description = "Error", body = ErrorBody),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<RotateSecret>,
) -> ApiResult<Json<RotatedSecret>> {
    let previous_valid_s = body.previous_valid_s.unwrap_or(DEFAULT_PREVIOUS_SECRET_S);
    if previous_valid_s > MAX_PREVIOUS_SECRET_S {
        return Err(ApiError::invalid_field(
            "previous_valid_s",
            format!("previous_valid_s is at most {MAX_PREVIOUS_SECRET_S} (7 days)"),
        ));
    }
    let secret = match body.secret {
        Some(secret) => {
            signing::check_secret(&secret)
                .map_err(|message| ApiError::invalid_field("secret", message))?;
            secret
        }
        None => signing::generate_secret(),
    };
    let _registry = state.webhooks.registry.lock().await;
    let hook = find(&state, &id)?;
    let now_ms = state.engine.now_ms();
    let before = hook.secrets.lock().clone();
    {
        let mut secrets = hook.secrets.lock();
        let replaced = std::mem::replace(&mut secrets.current, secret.clone());
        secrets
            .previous
            .retain(|previous| previous.expires_ms > now_ms);
        secrets.previous.push(PreviousSecret {
            secret: replaced,
            expires_ms: now_ms.saturating_add(previous_valid_s as i64 * 1_000),
        });
        // Bounded: a burst of rotations keeps only the newest few.
        let excess = secrets.previous.len().saturating_sub(MAX_PREVIOUS_SECRETS);
        secrets.previous.drain(..excess);
    }
    if let Err(error) = persist_registrations(&state, json!({"rotated": hook.id})).await {
        *hook.secrets.lock() = before;
        return Err(error);
    }
    let previous: Vec<i64> = hook
        .secrets
        .lock()
        .previous
        .iter()
        .map(|previous| previous.expires_ms)
        .collect();
    Ok(Json(RotatedSecret {
        id: hook.id,
        secret,
        previous_secrets_expire_ms: previous,
    }))
}
