//! Real-socket tests on 127.0.0.1 with bounded time: SSE resume from Last-Event-ID,
//! webhook delivery (retry, signature) to a local receiver, graceful shutdown, HTTP/1.1
//! pipelining (several requests written at once on one connection, answered in order).

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::http::webhooks::{signature, WebhookOptions};
use segd::http::{AppState, ServiceOptions, ServiceState};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// A Standard Webhooks secret (24 key bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Server {
    state: AppState,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(options: ServiceOptions) -> Server {
    start_with(
        options,
        EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        },
    )
    .await
}

async fn start_with(options: ServiceOptions, engine_options: EngineOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let engine = Arc::new(Engine::new(engine_options));
    let state = ServiceState::new(engine, options);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(segd::http::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Server {
        state,
        address,
        stop: Some(stop),
        handle,
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn plan_segment(engine: &Engine, name: &str, plan: &str) {
    let rule = serde_json::from_value(
        json!({"kind": "compare", "trait": "plan", "op": "=", "value": plan}),
    )
    .unwrap();
    engine
        .create_segment(name, "", Some(RuleInput::Ast(rule)))
        .unwrap();
}

fn set_plan(engine: &Engine, user: &str, plan: &str) {
    engine
        .identify(Some(user), None, json!({"plan": plan}).as_object().unwrap())
        .unwrap();
}

/// Reads SSE frames until `wanted` event ids were seen (or 5 s pass); returns the ids.
async fn read_ids(body: &mut hyper::body::Incoming, wanted: usize) -> Vec<u64> {
    let mut text = String::new();
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ids.len() < wanted {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("SSE events arrive within 5 s")
            .expect("stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        ids = text
            .lines()
            .filter_map(|line| line.strip_prefix("id: ").or(line.strip_prefix("id:")))
            .map(|id| id.trim().parse().unwrap())
            .collect();
    }
    ids
}

fn get(address: SocketAddr, path: &str) -> axum::http::request::Builder {
    Request::get(format!("http://{address}{path}"))
}

/// Reads one Content-Length framed response; returns (status, body).
async fn read_one_response(
    stream: &mut tokio::net::TcpStream,
    buffered: &mut Vec<u8>,
) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(head_end) = buffered.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffered[..head_end]).to_string();
            let status: u16 = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            let end = head_end + 4 + length;
            if buffered.len() >= end {
                let body = String::from_utf8_lossy(&buffered[head_end + 4..end]).to_string();
                buffered.drain(..end);
                return (status, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "the server closed the connection early");
        buffered.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_answer_in_order() {
    use tokio::io::AsyncWriteExt;
    let server = start(ServiceOptions::default()).await;
    let engine = server.state.engine.clone();
    for index in 0..8 {
        set_plan(
            &engine,
            &format!("u{index}"),
            if index % 2 == 0 { "pro" } else { "free" },
        );
    }
    plan_segment(&engine, "pro", "pro");
    // Lookups, a profile's segments, a compact bulk check and a 404, all written in one
    // go before any answer is read.
    let mut wire = Vec::new();
    let mut expected: Vec<(u16, String)> = Vec::new();
    for index in 0..8 {
        wire.extend_from_slice(
            format!("GET /v1/segments/pro/members/u{index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .as_bytes(),
        );
        expected.push((
            200,
            format!(
                r#"{{"segment_id":0,"profile":"u{index}","member":{}}}"#,
                index % 2 == 0
            ),
        ));
    }
    let bulk = "pro\tu0\npro\tu1\n0\tghost\n";
    wire.extend_from_slice(
        format!(
            "POST /v1/membership HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{bulk}",
            bulk.len()
        )
        .as_bytes(),
    );
    expected.push((200, "1\n0\n0\n".into()));
    wire.extend_from_slice(b"GET /v1/profiles/u2/segments HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expected.push((
        200,
        r#"{"profile":"u2","segments":[{"id":0,"name":"pro"}]}"#.into(),
    ));
    wire.extend_from_slice(b"GET /v1/segments/nope/members/u1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expected.push((404, "segment_not_found".into()));
    wire.extend_from_slice(b"GET /v1/segments/0/members/u3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expected.push((
        200,
        r#"{"segment_id":0,"profile":"u3","member":false}"#.into(),
    ));

    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    stream.write_all(&wire).await.unwrap();
    let mut buffered = Vec::new();
    let answers = timeout(Duration::from_secs(10), async {
        let mut answers = Vec::new();
        for _ in 0..expected.len() {
            answers.push(read_one_response(&mut stream, &mut buffered).await);
        }
        answers
    })
    .await
    .expect("every pipelined request answered");
    for (index, ((status, body), (want_status, want_body))) in
        answers.iter().zip(&expected).enumerate()
    {
        assert_eq!(status, want_status, "answer {index}: {body}");
        if *want_status == 200 {
            assert_eq!(body, want_body, "answer {index}");
        } else {
            assert!(body.contains(want_body.as_str()), "answer {index}: {body}");
        }
    }
    assert!(buffered.is_empty(), "no extra bytes after the last answer");
    drop(stream);
}

#[tokio::test]
async fn sse_stream_resumes_from_last_event_id() {
    let server = start(ServiceOptions::default()).await;
    let engine = server.state.engine.clone();
    plan_segment(&engine, "pro", "pro");
    let client = client();
    let response = client
        .request(
            get(server.address, "/v1/changes/stream?after=0")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    set_plan(&engine, "u1", "pro");
    assert_eq!(read_ids(&mut body, 1).await, vec![1]);
    drop(body);

    // While disconnected, two more changes happen.
    set_plan(&engine, "u2", "pro");
    set_plan(&engine, "u1", "free");
    let response = client
        .request(
            get(server.address, "/v1/changes/stream")
                .header("Last-Event-ID", "1")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    assert_eq!(read_ids(&mut body, 2).await, vec![2, 3]);

    let response = client
        .request(
            get(server.address, "/v1/changes/stream")
                .header("Last-Event-ID", "yesterday")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn webhooks_deliver_signed_batches_and_retry_failures() {
    // A local receiver that fails the first attempt and accepts the rest.
    let (sender, mut received) = mpsc::channel::<(axum::http::HeaderMap, Bytes)>(16);
    let attempts = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let attempts = attempts.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
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
        )
    };
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = receiver_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(receiver_listener, receiver).await });

    let server = start(ServiceOptions {
        webhooks: WebhookOptions {
            retry_initial_ms: 20,
            retry_max_ms: 200,
            allow_private: true,
            ..WebhookOptions::default()
        },
        ..ServiceOptions::default()
    })
    .await;
    let engine = server.state.engine.clone();
    plan_segment(&engine, "pro", "pro");
    plan_segment(&engine, "free", "free");
    let client = client();
    let register = json!({"url": format!("http://{receiver_address}/hook"), "secret": SECRET, "segments": ["pro"]});
    let response = client
        .request(
            Request::post(format!("http://{}/v1/webhooks", server.address))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(register.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    set_plan(&engine, "u2", "free");
    set_plan(&engine, "u1", "pro");
    let mut deliveries = Vec::new();
    for _ in 0..2 {
        deliveries.push(
            timeout(Duration::from_secs(5), received.recv())
                .await
                .expect("delivered within 5 s")
                .unwrap(),
        );
    }
    for (attempt, (headers, body)) in deliveries.iter().enumerate() {
        assert_eq!(
            headers["x-segd-delivery-attempt"],
            (attempt + 1).to_string().as_str(),
            "the failed batch is retried"
        );
        let header = headers["x-segd-signature"].to_str().unwrap();
        let time_ms: i64 = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            header,
            signature(SECRET, time_ms, body),
            "signature verifies"
        );
        let payload: Value = serde_json::from_slice(body).unwrap();
        let changes = payload["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "only the pro segment's change: {payload}");
        assert_eq!(changes[0]["profile"], "u1");
        assert_eq!(changes[0]["segment_id"], 0);
    }
    // Status shows the failure and the delivery.
    let mut status = Value::Null;
    for _ in 0..50 {
        let response = client
            .request(
                get(server.address, "/v1/webhooks/1")
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        status = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
            .unwrap();
        if status["status"]["deliveries"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"]["deliveries"], 1, "{status}");
    assert_eq!(status["status"]["failures"], 1);
    assert_eq!(status["status"]["consecutive_failures"], 0);
    assert!(status["status"]["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));
    let metrics = client
        .request(
            get(server.address, "/metrics")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        metrics
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("segd_webhook_failures_total 1"), "{text}");
    assert!(text.contains("segd_webhook_deliveries_total 1"), "{text}");
}

#[tokio::test]
async fn webhook_that_falls_behind_retention_says_so_and_resumes() {
    // The receiver fails until told to accept.
    let accept = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sender, mut received) = mpsc::channel::<Value>(16);
    let receiver = {
        let accept = accept.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: Bytes| {
                let sender = sender.clone();
                let accept = accept.clone();
                async move {
                    if !accept.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let _ = sender.send(serde_json::from_slice(&body).unwrap()).await;
                    StatusCode::OK
                }
            }),
        )
    };
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = receiver_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(receiver_listener, receiver).await });
    let server = start_with(
        ServiceOptions {
            webhooks: WebhookOptions {
                retry_initial_ms: 10,
                retry_max_ms: 20,
                allow_private: true,
                ..WebhookOptions::default()
            },
            ..ServiceOptions::default()
        },
        EngineOptions {
            shards: 2,
            change_log: segd::changes::ChangeLogOptions {
                retention_count: 2,
                ..segd::changes::ChangeLogOptions::default()
            },
            ..EngineOptions::default()
        },
    )
    .await;
    let engine = server.state.engine.clone();
    plan_segment(&engine, "pro", "pro");
    let client = client();
    let register = json!({"url": format!("http://{receiver_address}/hook")});
    let response = client
        .request(
            Request::post(format!("http://{}/v1/webhooks", server.address))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(register.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Change 1 is picked up and fails; changes 2..5 push 1..3 out of retention.
    set_plan(&engine, "u1", "pro");
    // Wait until the worker holds change 1 and has failed to deliver it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server
        .state
        .metrics
        .webhook_failures
        .load(Ordering::Relaxed)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for user in ["u2", "u3", "u4", "u5"] {
        set_plan(&engine, user, "pro");
    }
    accept.store(true, Ordering::SeqCst);
    let mut sequences = Vec::new();
    while !sequences.contains(&5) {
        let payload = timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("delivered within 5 s")
            .unwrap();
        for change in payload["changes"].as_array().unwrap() {
            sequences.push(change["sequence"].as_u64().unwrap());
        }
    }
    assert_eq!(
        sequences,
        vec![1, 4, 5],
        "the batch in hand, then what retention kept"
    );
    assert_eq!(
        server
            .state
            .metrics
            .webhook_fell_behind
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn graceful_shutdown_ends_streams_and_stops() {
    let mut server = start(ServiceOptions::default()).await;
    let client = client();
    let response = client
        .request(
            get(server.address, "/v1/changes/stream")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let healthz = client
        .request(
            get(server.address, "/healthz")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    drop(healthz);
    // A long-poll waiting for up to 20 s.
    let poll = tokio::spawn(
        client.request(
            get(server.address, "/v1/changes?wait_ms=20000")
                .body(Full::default())
                .unwrap(),
        ),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    // The poll is answered at once, the open stream ends, then the server returns.
    let polled = timeout(Duration::from_secs(5), poll)
        .await
        .expect("long-poll answered during shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(polled.status(), StatusCode::OK);
    let ended = timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "SSE stream ended on shutdown");
    drop(client);
    let result = timeout(Duration::from_secs(5), server.handle)
        .await
        .expect("server stops within 5 s");
    assert!(result.unwrap().is_ok());
    assert!(!server.state.is_ready());
    assert!(tokio::net::TcpStream::connect(server.address)
        .await
        .is_err());
}

/// Measures "event accepted → change on the SSE stream": each round POSTs an identify
/// that flips the profile in or out of a segment and waits for the change event. Run with
/// `cargo test --release --test http_socket -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints latency percentiles"]
async fn measure_event_to_sse_latency() {
    let server = start(ServiceOptions::default()).await;
    let engine = server.state.engine.clone();
    plan_segment(&engine, "pro", "pro");
    let client = client();
    let response = client
        .request(
            get(server.address, "/v1/changes/stream")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let rounds = 2_000;
    let mut latencies_us = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let plan = if round % 2 == 0 { "pro" } else { "free" };
        let message = json!({"userId": "latency-user", "traits": {"plan": plan}});
        let started = std::time::Instant::now();
        let answer = client
            .request(
                Request::post(format!("http://{}/v1/identify", server.address))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(message.to_string())))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let ids = read_ids(&mut body, 1).await;
        assert_eq!(ids, vec![round as u64 + 1]);
        latencies_us.push(started.elapsed().as_micros() as u64);
    }
    latencies_us.sort_unstable();
    let at = |quantile: f64| latencies_us[((rounds as f64 * quantile) as usize).min(rounds - 1)];
    println!(
        "identify POST -> SSE event, {rounds} rounds: p50 {} us, p99 {} us, max {} us",
        at(0.5),
        at(0.99),
        latencies_us[rounds - 1]
    );
}
