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
//! Signature: header `X-Segd-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`; the receiver recomputes it over the raw body with the secret returned
//! when the webhook was registered, and should reject old `t` values to stop replays.

use crate::engine::Engine;
use crate::http::body::{JsonBody, PathParams};
use crate::http::error::{ApiError, ApiResult};
use crate::http::metrics::{Metrics, WebhookFigures};
use crate::http::segments::resolve_segment;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most webhooks registered at once.
pub const MAX_WEBHOOKS: usize = 100;
/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;
/// Longest secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 256;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-segd-signature";

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
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            batch_size: 500,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            attempt_timeout_ms: 10_000,
        }
    }
}

/// A webhook's delivery status, as listed.
#[derive(Clone, Debug, Default, Serialize)]
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

struct Webhook {
    id: u64,
    url: String,
    uri: axum::http::Uri,
    segments: Option<Vec<u32>>,
    secret: String,
    created_ms: i64,
    status: Mutex<DeliveryStatus>,
    stop: watch::Sender<bool>,
}

impl Webhook {
    fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "segments": self.segments,
            "created_ms": self.created_ms,
            "status": *self.status.lock(),
        })
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// The registered webhooks and their workers.
pub struct Webhooks {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    options: WebhookOptions,
    hooks: Mutex<BTreeMap<u64, Arc<Webhook>>>,
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
    pub created_ms: i64,
    pub delivered_through: u64,
}

/// All registrations, serialized as the database's application state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PersistedWebhooks {
    pub next_id: u64,
    pub webhooks: Vec<PersistedWebhook>,
}

/// `t=<ms>,v1=<hex hmac>` for a body.
pub fn signature(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp_ms},v1={hex}")
}

fn random_secret() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

impl Webhooks {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        options: WebhookOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Webhooks {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Webhooks {
            engine,
            metrics,
            options,
            hooks: Mutex::new(BTreeMap::new()),
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
                .map(|hook| PersistedWebhook {
                    id: hook.id,
                    url: hook.url.clone(),
                    segments: hook.segments.clone(),
                    secret: hook.secret.clone(),
                    created_ms: hook.created_ms,
                    delivered_through: hook.status.lock().delivered_through,
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
            let Ok(uri) = saved.url.parse::<axum::http::Uri>() else {
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
                secret: saved.secret,
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
                    let mut attempt: u32 = 0;
                    loop {
                        attempt += 1;
                        let outcome =
                            deliver(&client, &hook, &body, attempt, options.attempt_timeout_ms)
                                .await;
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
    body: &str,
    attempt: u32,
    timeout_ms: u64,
) -> Result<(), String> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let request = axum::http::Request::post(hook.uri.clone())
        .header("content-type", "application/json")
        .header("user-agent", concat!("segd/", env!("CARGO_PKG_VERSION")))
        .header(
            SIGNATURE_HEADER,
            signature(&hook.secret, now_ms, body.as_bytes()),
        )
        .header("x-segd-webhook-id", hook.id.to_string())
        .header("x-segd-delivery-attempt", attempt.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|error| format!("could not build the request: {error}"))?;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), client.request(request)).await {
        Err(_) => Err(format!("no answer within {timeout_ms} ms")),
        Ok(Err(error)) => Err(format!("connection failed: {error}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status().as_u16())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWebhook {
    url: String,
    /// Only changes of these segments (ids or names); all when absent.
    #[serde(default)]
    segments: Option<Vec<Value>>,
    /// Signing secret; generated when absent.
    #[serde(default)]
    secret: Option<String>,
    /// Deliver changes after this sequence; the current head when absent (new only).
    #[serde(default)]
    after: Option<u64>,
}

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
    let uri: axum::http::Uri = body
        .url
        .parse()
        .map_err(|_| ApiError::invalid_field("url", "url is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => {
            return Err(ApiError::invalid_field(
                "url",
                "https webhooks are not supported by this build; deliver to http:// behind a TLS-terminating proxy",
            ))
        }
        _ => {
            return Err(ApiError::invalid_field(
                "url",
                "url must be absolute, like http://host:port/path",
            ))
        }
    }
    let secret = body.secret.unwrap_or_else(random_secret);
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Err(ApiError::invalid_field(
            "secret",
            format!("secret must be 1 to {MAX_SECRET_BYTES} bytes"),
        ));
    }
    let segments = match body.segments {
        None => None,
        Some(list) => {
            let mut ids = Vec::with_capacity(list.len());
            for (index, segment) in list.iter().enumerate() {
                let name = match segment {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    _ => {
                        return Err(ApiError::invalid_field(
                            &format!("segments[{index}]"),
                            "segments are ids (numbers) or names (strings)",
                        ))
                    }
                };
                ids.push(resolve_segment(&state.engine, &name)?.0);
            }
            Some(ids)
        }
    };
    let webhooks = &state.webhooks;
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
            secret: secret.clone(),
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
    described["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(described)).into_response())
}

/// Writes the registration change to the WAL (record: what changed plus the whole
/// registration list; the list is also the state kept in snapshots). Without
/// persistence this does nothing.
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

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let hooks: Vec<Value> = state
        .webhooks
        .hooks
        .lock()
        .values()
        .map(|hook| hook.describe())
        .collect();
    Json(json!({ "webhooks": hooks }))
}

fn find(state: &AppState, id: &str) -> Result<Arc<Webhook>, ApiError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| state.webhooks.hooks.lock().get(&id).cloned())
        .ok_or_else(|| ApiError::not_found("webhook_not_found", format!("no webhook `{id}`")))
}

pub async fn get_one(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(find(&state, &id)?.describe()))
}

pub async fn remove(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let hook = find(&state, &id)?;
    state.webhooks.hooks.lock().remove(&hook.id);
    if let Err(error) = persist_registrations(&state, json!({"deleted": hook.id})).await {
        state.webhooks.hooks.lock().insert(hook.id, hook.clone());
        return Err(error);
    }
    hook.stop.send_replace(true);
    Ok(Json(json!({ "deleted": true, "id": hook.id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        // Reference: Python `hmac.new(b"secret", b"1.{}", hashlib.sha256).hexdigest()`.
        assert_eq!(
            signature("secret", 1, b"{}"),
            "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
        );
        assert_ne!(signature("secret", 1, b"{}"), signature("other", 1, b"{}"));
    }
}
