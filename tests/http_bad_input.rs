//! A bad-input corpus against every route of the route table (with the right key for
//! its scope, so handlers are reached): malformed and truncated JSON, wrong types,
//! oversized, truncated and fake gzip bodies, wrong content types, invalid UTF-8, deep
//! nesting, garbage query strings and path parameters, unknown segments and profiles,
//! batches with one bad message among good ones, oversized rule ASTs.
//!
//! For every request: no 5xx, and nothing half-applied — the engine state, the WAL
//! position and the webhook list are the same before and after. The server (a real
//! database-backed router) keeps answering throughout.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use segd::clock::ManualClock;
use segd::engine::Mutation;
use segd::engine::{Engine, EngineOptions};
use segd::http::auth::{Keys, Scope};
use segd::http::{route_table, router, Limits, ServiceOptions, ServiceState, SnapshotHook};
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use tower::ServiceExt;

const WRITE: &str = "corpus-write-key";
const READ: &str = "corpus-read-key";
const ADMIN: &str = "corpus-admin-key";
const MAX_BODY_BYTES: usize = 64 * 1024;

struct Snapshots(Arc<Database>);

impl SnapshotHook for Snapshots {
    fn snapshot(&self, _engine: &Engine) -> Result<Value, String> {
        self.0
            .snapshot_now()
            .map(|report| json!({"covered_lsn": report.covered_lsn}))
            .map_err(|error| error.to_string())
    }
}

struct Fixture {
    router: Router,
    database: Arc<Database>,
    dir: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("segd-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (database, _) = Database::open(
        DatabaseOptions {
            fsync: FsyncPolicy::Never,
            engine: EngineOptions {
                shards: 2,
                ..EngineOptions::default()
            },
            ..DatabaseOptions::new(&dir)
        },
        ManualClock::new(1_750_000_000_000),
    )
    .unwrap();
    let database = Arc::new(database);
    let messages = segd::ingest::parse_batch(&json!({"batch": [
        {"type": "identify", "userId": "alice", "traits": {"plan": "pro", "ltv": 10}},
        {"type": "identify", "userId": "bob", "traits": {"plan": "free", "ltv": 1}},
        {"type": "track", "userId": "alice", "event": "order", "properties": {"amount": 5}}
    ]}))
    .unwrap();
    database.apply(Mutation::Messages(messages)).unwrap();
    let rule = serde_json::from_value(
        json!({"kind": "compare", "trait": "plan", "op": "=", "value": "pro"}),
    )
    .unwrap();
    database
        .apply(Mutation::CreateSegment {
            name: "pro".into(),
            description: String::new(),
            rule: Some(rule),
            emit_initial: false,
        })
        .unwrap();
    database
        .apply(Mutation::CreateSegment {
            name: "vips".into(),
            description: String::new(),
            rule: None,
            emit_initial: false,
        })
        .unwrap();
    let state = ServiceState::new(
        database.engine().clone(),
        ServiceOptions {
            keys: Keys {
                write: vec![WRITE.into()],
                read: vec![READ.into()],
                admin: vec![ADMIN.into()],
            },
            limits: Limits {
                max_body_bytes: MAX_BODY_BYTES,
                ..Limits::default()
            },
            database: Some(database.clone()),
            snapshot: Some(Arc::new(Snapshots(database.clone()))),
            ..ServiceOptions::default()
        },
    );
    Fixture {
        router: router(state),
        database,
        dir,
    }
}

/// Everything a request could change.
fn fingerprint(fixture: &Fixture) -> Value {
    let engine = fixture.database.engine();
    let segments: Vec<Value> = engine
        .list_segments()
        .into_iter()
        .map(|summary| serde_json::to_value(summary).unwrap())
        .collect();
    json!({
        "profiles": engine.profile_count(),
        "alice": engine.traits_of("alice").ok(),
        "bob": engine.traits_of("bob").ok(),
        "segments": segments,
        "change_head": engine.changes().head(),
        "next_lsn": fixture.database.wal_status().next_lsn,
        "application_state": fixture.database.application_state(),
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A malformed body: (name, content type, content encoding, bytes).
type BadBody = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Vec<u8>,
);

/// A body to send: (content type, content encoding, bytes).
type SentBody<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>);

fn bad_bodies() -> Vec<BadBody> {
    let json = Some("application/json");
    let valid_message = br#"{"type": "identify", "userId": "mallory", "traits": {"plan": "x"}}"#;
    let truncated_gzip = {
        let full = gzip(valid_message);
        full[..full.len() / 2].to_vec()
    };
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let zeros = format!("[{}]", vec!["0"; 30_000].join(","));
    vec![
        ("empty", json, None, Vec::new()),
        ("not json", json, None, b"hello there".to_vec()),
        ("truncated json", json, None, b"{\"userId\": \"mallory\", \"tra".to_vec()),
        ("array", json, None, b"[1, 2, 3]".to_vec()),
        ("number", json, None, b"42".to_vec()),
        ("null", json, None, b"null".to_vec()),
        ("wrong field types", json, None, br#"{"userId": {"a": 1}, "name": 5, "rule": [1], "batch": "x", "url": 3, "profiles": 7, "segments": "s"}"#.to_vec()),
        ("trailing garbage", json, None, [&valid_message[..], b" }}"].concat()),
        ("invalid utf-8", json, None, b"{\"userId\": \"\xff\xfe\"}".to_vec()),
        ("deep nesting", json, None, deep.into_bytes()),
        ("tiny values", json, None, zeros.into_bytes()),
        ("oversized", json, None, vec![b' '; MAX_BODY_BYTES + 1]),
        ("fake gzip", json, Some("gzip"), valid_message.to_vec()),
        ("truncated gzip", json, Some("gzip"), truncated_gzip),
        ("gzip bomb", json, Some("gzip"), gzip(&vec![b' '; MAX_BODY_BYTES * 4])),
        ("unknown encoding", json, Some("br"), valid_message.to_vec()),
        ("wrong content type", Some("application/xml"), None, b"<x/>".to_vec()),
    ]
}

/// Well-formed JSON that must still be refused as a whole.
fn semantic_bodies(method: &Method, path: &str) -> Vec<Value> {
    let good = json!({"type": "identify", "userId": "mallory", "traits": {"plan": "x"}});
    let huge_list: Vec<String> = (0..2_000).map(|i| format!("value-{i:040}")).collect();
    let mut bodies = if path.ends_with("batch") {
        vec![
            json!({"batch": [good, good, {"type": "identify", "userId": "m2", "traits": {"plan": 5}}]}),
            json!({"batch": [good, {"type": "track", "userId": "m3"}]}),
            json!({"batch": [good, {"type": "nonsense", "userId": "m4"}]}),
            json!({"batch": vec![good.clone(); 5_001]}),
        ]
    } else if path.contains("segments") && !path.contains("members/") {
        vec![
            json!({"name": "big", "rule": {"kind": "in", "trait": "plan", "values": huge_list}}),
            json!({"name": "bad", "rule": "plan = = 3"}),
            json!({"name": "bad", "rule": {"kind": "no_such_kind"}}),
            json!({"rule": {"kind": "in_segment", "segment": "no-such-segment"}}),
            json!({"profiles": ["nobody"], "mode": "nonsense"}),
            json!({"and": ["no-such-segment"]}),
        ]
    } else if path.contains("webhooks") {
        vec![
            json!({"url": "not a url"}),
            json!({"url": "ftp://127.0.0.1/"}),
            json!({"url": "http://127.0.0.1:9/", "segments": ["no-such-segment"]}),
            json!({"url": "http://127.0.0.1:9/", "secret": 5}),
        ]
    } else if path.contains("membership") {
        vec![
            json!({"profiles": ["alice"], "segments": ["no-such-segment"]}),
            json!({"profiles": vec!["x"; 100_000], "segments": ["pro"]}),
        ]
    } else if path.starts_with("/v1/identify") || path.starts_with("/identify") {
        vec![
            json!({"traits": {"plan": "x"}}),
            json!({"userId": "mallory", "traits": {"plan": 5, "ltv": "lots"}}),
            json!({"userId": "mallory", "traits": {"x": "y".repeat(5_000)}}),
        ]
    } else {
        vec![
            json!({"type": 7, "userId": "mallory"}),
            json!({"userId": ["mallory"]}),
            json!({"anonymousId": {}, "userId": null}),
        ]
    };
    if *method == Method::POST && path == "/v1/segments" {
        // Valid only as an update: as a creation these collide or contradict.
        bodies.extend([
            json!({"name": "pro", "rule": "plan = \"pro\""}),
            json!({"name": "", "rule": "plan = \"pro\""}),
            json!({"name": "both", "rule": "plan = \"pro\"", "static": true}),
        ]);
    }
    bodies
}

/// Path parameters to try: a known one, unknown, and hostile ones.
fn path_variants(template: &str) -> Vec<String> {
    let mut variants = Vec::new();
    for (segment, profile) in [
        ("pro", "alice"),
        ("vips", "bob"),
        ("no-such-segment", "nobody"),
        ("%FF%FE", "%00"),
        ("99999999999999999999", "anon:"),
        ("..%2F..%2Fetc", "%2e%2e"),
    ] {
        let path = template
            .replace(
                "{id}",
                if template.contains("/profiles/") {
                    profile
                } else {
                    segment
                },
            )
            .replace("{profile}", profile);
        if !variants.contains(&path) {
            variants.push(path);
        }
    }
    variants
}

const BAD_QUERIES: [&str; 4] = [
    "?limit=abc&cursor=%%&after=-1&wait_ms=0",
    "?limit=99999999999&after=99999999999999999999999&wait_ms=0",
    "?segments=%FF&sample=-3&wait_ms=0",
    "?after=0&wait_ms=0&cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
];

fn auth_for(scope: Scope) -> Option<String> {
    use base64::Engine as _;
    match scope {
        Scope::Public => None,
        Scope::Write => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{WRITE}:"))
        )),
        Scope::Read => Some(format!("Bearer {READ}")),
        Scope::Admin => Some(format!("Bearer {ADMIN}")),
    }
}

async fn send(
    fixture: &Fixture,
    method: &Method,
    path: &str,
    scope: Scope,
    body: Option<SentBody<'_>>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method.clone()).uri(path);
    if let Some(auth) = auth_for(scope) {
        request = request.header("authorization", auth);
    }
    let body = match body {
        Some((content_type, encoding, bytes)) => {
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let Ok(request) = request.body(body) else {
        // Some hostile paths are not even valid URIs for the client: nothing to send.
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let uri = request.uri().to_string();
    let response = fixture.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    if path.contains("/stream") {
        // An event stream never ends: the status is what matters.
        return (status, String::new());
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // Refusals of hostile input are documented answers too.
    common::openapi::check_response(
        method.as_str(),
        &uri,
        status.as_u16(),
        content_type.as_deref(),
        &bytes,
    );
    (status, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_input_without_5xx_or_partial_effects() {
    let fixture = fixture();
    let mut requests = 0usize;
    for route in route_table() {
        let takes_body = route.method == Method::POST
            || route.method == Method::PUT
            || route.method == Method::DELETE;
        for path in path_variants(route.path) {
            // Deleting a segment or profile that exists is not bad input.
            if route.method == Method::DELETE
                && route.path.ends_with("{id}")
                && ["/pro", "/vips", "/alice", "/bob"]
                    .iter()
                    .any(|known| path.ends_with(known))
            {
                continue;
            }
            let mut cases: Vec<(String, Option<SentBody>)> = Vec::new();
            for query in BAD_QUERIES {
                cases.push((format!("{path}{query}"), None));
            }
            if takes_body {
                for (name, content_type, encoding, bytes) in bad_bodies() {
                    cases.push((
                        format!("{path} [{name}]"),
                        Some((content_type, encoding, bytes)),
                    ));
                }
                for value in semantic_bodies(&route.method, &path) {
                    let bytes = serde_json::to_vec(&value).unwrap();
                    cases.push((
                        format!("{path} [semantic]"),
                        Some((Some("application/json"), None, bytes)),
                    ));
                }
            }
            for (label, body) in cases {
                let target = label.split(' ').next().unwrap().to_string();
                let before = fingerprint(&fixture);
                let (status, text) =
                    send(&fixture, &route.method, &target, route.scope, body).await;
                requests += 1;
                assert!(
                    !status.is_server_error(),
                    "{} {label}: {status} {text}",
                    route.method
                );
                // Refused or harmless (a read, a snapshot, removing a non-member):
                // either way nothing changed.
                assert_eq!(
                    fingerprint(&fixture),
                    before,
                    "{} {label}: {status} {text}",
                    route.method
                );
            }
        }
    }
    // Alive and unchanged at the end.
    let (status, _) = send(&fixture, &Method::GET, "/healthz", Scope::Public, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, text) = send(
        &fixture,
        &Method::GET,
        "/v1/profiles/alice",
        Scope::Read,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(requests > 1_000, "{requests} requests sent");
    drop(fixture.router);
    drop(fixture.database);
    std::fs::remove_dir_all(&fixture.dir).unwrap();
}

#[tokio::test]
async fn json_rule_asts_are_held_to_the_text_limit() {
    let state = ServiceState::new(
        Arc::new(Engine::new(EngineOptions {
            shards: 1,
            ..EngineOptions::default()
        })),
        ServiceOptions::default(),
    );
    let router = router(state);
    let preview = |rule: Value| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(
                    Request::post("/v1/segments/preview")
                        .header("content-type", "application/json")
                        .body(Body::from(
                            serde_json::to_vec(&json!({ "rule": rule })).unwrap(),
                        ))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).to_string())
        }
    };
    let values =
        |count: usize| -> Vec<String> { (0..count).map(|i| format!("value-{i:040}")).collect() };
    // ~140 KB as text: refused like the same rule as text would be.
    let (status, text) =
        preview(json!({"kind": "in", "trait": "plan", "values": values(3_000)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("the limit is 65536"), "{text}");
    // Well under the limit: fine.
    let (status, text) =
        preview(json!({"kind": "in", "trait": "plan", "values": values(100)})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}
