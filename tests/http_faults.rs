//! Faults at the HTTP layer, over loopback sockets with tiny configured timeouts:
//! idle and slow clients cannot exhaust the server (connection cap honoured, silent,
//! slow-header and kept-alive idle connections closed), and a failed WAL turns
//! `/readyz` to 503 and shows in `/metrics` while writes are refused.
//!
//! Every wait is bounded (generous, for a slow machine); nothing asserts a duration.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineOptions};
use segd::http::{router, AppState, Limits, ServiceOptions, ServiceState};
use segd::persist::wal::{FsyncPolicy, WalFaults};
use segd::persist::{Database, DatabaseOptions};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Longest any single wait may take before the test fails.
const BOUND: Duration = Duration::from_secs(20);

struct Server {
    state: AppState,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let engine = Arc::new(Engine::new(EngineOptions {
        shards: 2,
        ..EngineOptions::default()
    }));
    let state = ServiceState::new(
        engine,
        ServiceOptions {
            limits,
            ..ServiceOptions::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
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

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(BOUND, self.handle)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// Waits until the server closes `stream` (end of file or a reset).
async fn closed_by_server(mut stream: TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(BOUND, reading).await.is_ok()
}

/// Sends one request on a new connection and returns the status code.
async fn status_of(address: SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::time::timeout(BOUND, TcpStream::connect(address))
        .await
        .unwrap()
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

fn tiny_limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        header_read_timeout_ms: 200,
        idle_timeout_ms: 300,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_sockets_do_not_exhaust_the_server() {
    let server = start(tiny_limits(3)).await;
    // Sample the open-connection gauge the whole time.
    let most = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (state, most, done) = (server.state.clone(), most.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let open = state.metrics_extra.connections_open.load(Ordering::SeqCst);
                most.fetch_max(open, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Twelve clients connect and send nothing.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(server.address).await.unwrap());
    }
    let closing: Vec<_> = idle
        .into_iter()
        .map(|stream| tokio::spawn(closed_by_server(stream)))
        .collect();
    for (index, closed) in closing.into_iter().enumerate() {
        assert!(
            closed.await.unwrap(),
            "idle socket {index} was closed by the server"
        );
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "at most 3 connections open, saw {most}"
    );
    // Still serving.
    assert_eq!(status_of(server.address, "/healthz").await, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let server = start(tiny_limits(8)).await;
    // Headers started but never finished.
    let mut slow = TcpStream::connect(server.address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    assert!(closed_by_server(slow).await, "slow headers cut off");

    // One request answered, then the connection sits idle.
    let mut kept = TcpStream::connect(server.address).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\"ok\"") {
        let read = tokio::time::timeout(BOUND, kept.read(&mut buffer))
            .await
            .expect("answered")
            .unwrap();
        assert!(read > 0, "answered before closing");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(kept).await,
        "idle kept-alive connection closed"
    );
    assert_eq!(status_of(server.address, "/readyz").await, 200);
    server.stop().await;
}

async fn get(router: &axum::Router, path: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test]
async fn a_failed_wal_turns_readyz_to_503_and_shows_in_metrics() {
    let dir = std::env::temp_dir().join(format!("segd-http-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let faults = Arc::new(WalFaults::default());
    let (database, _) = Database::open(
        DatabaseOptions {
            fsync: FsyncPolicy::Always,
            faults: Some(faults.clone()),
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
    let state = ServiceState::new(
        database.engine().clone(),
        ServiceOptions {
            database: Some(database.clone()),
            ..ServiceOptions::default()
        },
    );
    let router = router(state);
    assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
    assert!(get(&router, "/metrics")
        .await
        .1
        .contains("segd_wal_failed 0"));

    faults.fail_writes.store(true, Ordering::SeqCst);
    let write = router
        .clone()
        .oneshot(
            Request::post("/v1/identify")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"userId": "u1", "traits": {"plan": "pro"}}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("storage_unavailable"), "{body}");
    assert!(get(&router, "/metrics")
        .await
        .1
        .contains("segd_wal_failed 1"));
    // Liveness is unaffected: restarting is the operator's call.
    assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
    drop(router);
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}
