//! Webhook hardening, loopback only: registration is an admin operation and refuses
//! private/metadata IP literals unless allowed (no delivery is ever attempted to them);
//! the destination is checked again at delivery time; delivery over TLS (rustls) to a
//! loopback receiver whose self-signed certificate is made here and trusted as an extra
//! root; Standard Webhooks headers (`webhook-id` stable across retries, signatures that
//! verify independently, two signatures during a secret rotation); and concurrent
//! register/delete persist exactly the list held in memory (checked after a restart).

mod common;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use segd::clock::SystemClock;
use segd::engine::{Engine, EngineOptions};
use segd::http::auth::Keys;
use segd::http::webhooks::{PersistedWebhook, PersistedWebhooks, WebhookOptions};
use segd::http::{router, AppState, ServiceOptions, ServiceState};
use segd::persist::{Database, DatabaseOptions};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

const ADMIN: &str = "ak-webhooks";
const READ: &str = "rk-webhooks";
const WRITE: &str = "wk-webhooks";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROTATED: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn keys() -> Keys {
    Keys {
        write: vec![WRITE.into()],
        read: vec![READ.into()],
        admin: vec![ADMIN.into()],
    }
}

fn state_with(webhooks: WebhookOptions, database: Option<Arc<Database>>) -> AppState {
    let engine = match &database {
        Some(database) => database.engine().clone(),
        None => Arc::new(Engine::new(EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        })),
    };
    ServiceState::new(
        engine,
        ServiceOptions {
            keys: keys(),
            webhooks,
            database,
            ..ServiceOptions::default()
        },
    )
}

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    builder = if key == WRITE {
        builder.header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
            ),
        )
    } else {
        builder.header("authorization", format!("Bearer {key}"))
    };
    let request = match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    let (status, _, bytes) = common::openapi::oneshot_checked(app, request).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A segment `pro` (plan = pro), then `user` moves into it: one membership change.
async fn setup_segment(app: &axum::Router) {
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/segments",
        ADMIN,
        Some(json!({"name": "pro", "rule": "plan = \"pro\""})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn enter(app: &axum::Router, user: &str) {
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/identify",
        WRITE,
        Some(json!({"userId": user, "traits": {"plan": "pro"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn registration_is_admin_only_and_refuses_private_destinations() {
    let app = router(state_with(WebhookOptions::default(), None));
    setup_segment(&app).await;
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/webhooks",
        READ,
        Some(json!({"url": "https://hooks.example.com/x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read key cannot register");
    let (status, _) = call(&app, Method::GET, "/v1/webhooks", READ, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor list");
    // IP literals only: refused without any lookup, and never delivered to.
    for url in [
        "http://127.0.0.1:22/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "https://[fd00::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://localhost:9/hook",
    ] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/webhooks",
            ADMIN,
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["path"], "url", "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--webhook-allow-private"),
            "{body}"
        );
    }
    let many: Vec<Value> = (0..=segd::http::webhooks::MAX_FILTER_SEGMENTS)
        .map(|_| json!("pro"))
        .collect();
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/webhooks",
        ADMIN,
        Some(json!({"url": "http://127.0.0.1:9/", "segments": many})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["path"], "segments");
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/webhooks",
        ADMIN,
        Some(json!({"url": "http://127.0.0.1:9/", "secret": "whsec_c2hvcnQ="})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["path"], "secret");
    let (_, listed) = call(&app, Method::GET, "/v1/webhooks", ADMIN, None).await;
    assert_eq!(listed["webhooks"], json!([]), "nothing was registered");
}

#[tokio::test]
async fn delivery_time_check_refuses_a_destination_registered_before() {
    // A loopback receiver that counts connections: it must see none.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let state = state_with(
        WebhookOptions {
            retry_initial_ms: 20,
            retry_max_ms: 50,
            ..WebhookOptions::default()
        },
        None,
    );
    let app = router(state.clone());
    setup_segment(&app).await;
    // As if persisted while private destinations were allowed (or DNS changed since).
    state.webhooks.restore(PersistedWebhooks {
        next_id: 2,
        webhooks: vec![PersistedWebhook {
            id: 1,
            url: format!("http://{address}/hook"),
            segments: None,
            secret: SECRET.into(),
            previous_secrets: Vec::new(),
            created_ms: 0,
            delivered_through: 0,
        }],
    });
    enter(&app, "u1").await;
    let mut status = Value::Null;
    for _ in 0..250 {
        let (_, body) = call(&app, Method::GET, "/v1/webhooks/1", ADMIN, None).await;
        status = body;
        if status["status"]["failures"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = status["status"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("loopback"), "{status}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    state.webhooks.stop_all();
}

/// `v1,<base64>` signatures of `webhook-signature`, checked with an HMAC computed here.
fn verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature == format!("v1,{expected}")
}

/// A TLS receiver on 127.0.0.1 with a fresh self-signed certificate for `127.0.0.1`;
/// fails its first request with 500, accepts the rest; returns (port, certificate DER).
async fn tls_receiver(
    sender: mpsc::Sender<(HeaderMap, Bytes)>,
) -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let certificate = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certificate.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let attempts = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            let attempts = attempts.clone();
            async move {
                let _ = sender.send((headers, body)).await;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(socket).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, certificate)
}

async fn next(received: &mut mpsc::Receiver<(HeaderMap, Bytes)>) -> (HeaderMap, Bytes) {
    timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("delivered within 10 s")
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers[name].to_str().unwrap()
}

#[tokio::test]
async fn tls_delivery_with_standard_webhooks_signatures_and_rotation() {
    let (sender, mut received) = mpsc::channel(16);
    let (port, certificate) = tls_receiver(sender).await;
    let state = state_with(
        WebhookOptions {
            retry_initial_ms: 20,
            retry_max_ms: 100,
            allow_private: true,
            extra_roots: vec![certificate],
            ..WebhookOptions::default()
        },
        None,
    );
    let app = router(state.clone());
    setup_segment(&app).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/webhooks",
        ADMIN,
        Some(json!({"url": format!("https://127.0.0.1:{port}/hook"), "secret": SECRET})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_u64().unwrap();
    enter(&app, "u1").await;

    // Attempt 1 fails (500), attempt 2 succeeds: the same webhook-id both times.
    let (first, first_body) = next(&mut received).await;
    let (second, second_body) = next(&mut received).await;
    assert_eq!(header(&first, "x-segd-delivery-attempt"), "1");
    assert_eq!(header(&second, "x-segd-delivery-attempt"), "2");
    assert_eq!(header(&first, "webhook-id"), header(&second, "webhook-id"));
    assert_eq!(first_body, second_body);
    for (headers, body) in [(&first, &first_body), (&second, &second_body)] {
        let timestamp = header(headers, "webhook-timestamp");
        let seconds: i64 = timestamp.parse().unwrap();
        assert!(
            seconds > 1_600_000_000 && seconds < 100_000_000_000,
            "seconds: {seconds}"
        );
        let signature = header(headers, "webhook-signature");
        assert!(
            verifies(
                SECRET,
                header(headers, "webhook-id"),
                timestamp,
                body,
                signature
            ),
            "{signature}"
        );
        // The deprecated header is still sent, signed with the newest secret.
        assert!(header(headers, "x-segd-signature").starts_with("t="));
    }
    let payload: Value = serde_json::from_slice(&second_body).unwrap();
    assert_eq!(payload["changes"][0]["profile"], "u1", "{payload}");

    // Rotation: the new secret signs first, the old one beside it.
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
        ADMIN,
        Some(json!({"secret": ROTATED, "previous_valid_s": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], ROTATED);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
        READ,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    enter(&app, "u2").await;
    let (headers, body) = next(&mut received).await;
    let signatures: Vec<&str> = header(&headers, "webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    let (id_header, timestamp) = (
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
    );
    assert_ne!(
        id_header,
        header(&first, "webhook-id"),
        "a new delivery, a new id"
    );
    assert!(verifies(
        ROTATED,
        id_header,
        timestamp,
        &body,
        signatures[0]
    ));
    assert!(verifies(SECRET, id_header, timestamp, &body, signatures[1]));
    state.webhooks.stop_all();
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("segd-webhook-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &std::path::Path) -> (Database, segd::persist::recovery::RecoveryReport) {
    let options = DatabaseOptions {
        engine: EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        },
        ..DatabaseOptions::new(dir)
    };
    Database::open(options, Arc::new(SystemClock)).unwrap()
}

fn ids(persisted: &PersistedWebhooks) -> Vec<u64> {
    let mut ids: Vec<u64> = persisted.webhooks.iter().map(|hook| hook.id).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_register_and_delete_persist_the_list_in_memory() {
    let dir = scratch("concurrent");
    for round in 0..4 {
        let (database, report) = open(&dir);
        let database = Arc::new(database);
        let state = state_with(
            WebhookOptions {
                allow_private: true,
                ..WebhookOptions::default()
            },
            Some(database.clone()),
        );
        state
            .webhooks
            .restore(segd::http::webhooks::recovered_registrations(
                &report.application_state,
                &report.application_records,
            ));
        let app = router(state.clone());
        let mut tasks = Vec::new();
        for task in 0..16 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let (status, body) = call(
                    &app,
                    Method::POST,
                    "/v1/webhooks",
                    ADMIN,
                    Some(json!({"url": format!("http://127.0.0.1:9/{round}/{task}")})),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                if task % 2 == 0 {
                    let id = body["id"].as_u64().unwrap();
                    let (status, body) = call(
                        &app,
                        Method::DELETE,
                        &format!("/v1/webhooks/{id}"),
                        ADMIN,
                        None,
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let in_memory = ids(&state.webhooks.persisted());
        assert_eq!(in_memory.len(), 8 * (round + 1));
        state.webhooks.stop_all();
        drop(app);
        drop(state);
        // The last holder of the database was the state: close it (WAL flushed).
        let mut database = Some(database);
        for _ in 0..500 {
            match Arc::try_unwrap(database.take().unwrap()) {
                Ok(owned) => {
                    drop(owned);
                    break;
                }
                Err(shared) => {
                    database = Some(shared);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        assert!(database.is_none(), "the database is still in use");
        let (_, report) = open(&dir);
        let recovered = segd::http::webhooks::recovered_registrations(
            &report.application_state,
            &report.application_records,
        );
        assert_eq!(
            ids(&recovered),
            in_memory,
            "round {round}: persisted != memory"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
