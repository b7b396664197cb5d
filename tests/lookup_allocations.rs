//! Heap allocations per lookup request, counted end to end: the real server (`serve`,
//! hyper, middleware, auth with keys configured, handler) answers keep-alive requests on
//! loopback from a client in this process that itself allocates nothing per request
//! (prebuilt request bytes, fixed read buffer), so every allocation the global counting
//! allocator sees during the measured requests is the server's.
//!
//! Checks that `GET /v1/segments/{id}/members/{profile}` and
//! `GET /v1/profiles/{id}/segments` stay within a small per-request allocation budget
//! (what hyper and axum's routing/middleware need; the handlers add only the response
//! body), and prints the figures. Counts, not timings: deterministic on a loaded machine.

use segd::bulk::load_demo;
use segd::demo::DemoGenerator;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::http::auth::Keys;
use segd::http::{serve, ServiceOptions, ServiceState};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const READ_KEY: &str = "read-key-allocations";
const PROFILES: u64 = 500;
const WARM_UP: usize = 300;
const MEASURED: usize = 2_000;

/// Reads one HTTP/1.1 response (Content-Length framed) into `buffer`; returns the
/// status and the body's range. Allocates nothing.
fn read_response(stream: &mut TcpStream, buffer: &mut [u8]) -> (u16, std::ops::Range<usize>) {
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).expect("read a response");
        assert!(read > 0, "the server closed the connection");
        filled += read;
        let Some(head_end) = buffer[..filled]
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
        else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end]).expect("an ASCII head");
        let status: u16 = head[9..12].parse().expect("a status code");
        let length: usize = head
            .split("\r\n")
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("a content-length");
        let body_start = head_end + 4;
        while filled < body_start + length {
            let read = stream.read(&mut buffer[filled..]).expect("read a body");
            assert!(read > 0, "the server closed the connection mid-body");
            filled += read;
        }
        assert_eq!(filled, body_start + length, "one response at a time");
        return (status, body_start..body_start + length);
    }
}

/// Allocations per request over `MEASURED` requests cycling through `requests`.
fn allocations_per_request(stream: &mut TcpStream, requests: &[Vec<u8>]) -> f64 {
    let mut buffer = vec![0u8; 64 * 1024];
    for request in requests.iter().cycle().take(WARM_UP) {
        stream.write_all(request).unwrap();
        let (status, body) = read_response(stream, &mut buffer);
        assert_eq!(
            status,
            200,
            "{}",
            String::from_utf8_lossy(&buffer[body.clone()])
        );
    }
    let region = Region::new(GLOBAL);
    for request in requests.iter().cycle().take(MEASURED) {
        stream.write_all(request).unwrap();
        let (status, _) = read_response(stream, &mut buffer);
        assert_eq!(status, 200);
    }
    let change = region.change();
    change.allocations as f64 / MEASURED as f64
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {READ_KEY}\r\n\r\n")
        .into_bytes()
}

#[test]
fn lookups_allocate_within_budget() {
    let generator = DemoGenerator::new(7);
    let engine = Arc::new(Engine::new(EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    }));
    load_demo(&engine, &generator, PROFILES, 0, 1).unwrap();
    let segment = engine
        .create_segment(
            "germany",
            "",
            Some(RuleInput::Text(r#"country = "DE""#.into())),
        )
        .unwrap()
        .id;
    engine
        .create_segment(
            "adults \"quoted\"",
            "",
            Some(RuleInput::Text("age >= 18".into())),
        )
        .unwrap();
    let state = ServiceState::new(
        engine,
        ServiceOptions {
            keys: Keys {
                read: vec![READ_KEY.into()],
                admin: vec!["admin-key-allocations".into()],
                ..Keys::default()
            },
            ..ServiceOptions::default()
        },
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // One worker thread: the server's allocations are all made there or on the write
    // path's (idle) threads.
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });

    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let member_requests: Vec<Vec<u8>> = (0..64)
        .map(|index| get(&format!("/v1/segments/{segment}/members/user-{index}")))
        .collect();
    let by_name: Vec<Vec<u8>> = (0..64)
        .map(|index| get(&format!("/v1/segments/germany/members/user-{index}")))
        .collect();
    let segments_requests: Vec<Vec<u8>> = (0..64)
        .map(|index| get(&format!("/v1/profiles/user-{index}/segments")))
        .collect();
    let health = allocations_per_request(&mut stream, &[get("/healthz")]);
    let member = allocations_per_request(&mut stream, &member_requests);
    let member_by_name = allocations_per_request(&mut stream, &by_name);
    let segments_of = allocations_per_request(&mut stream, &segments_requests);
    println!(
        "allocations per request: /healthz {health:.2}, is_member {member:.2}, is_member by name {member_by_name:.2}, \
         segments_of {segments_of:.2}"
    );
    drop(stream);
    let _ = stop.send(());
    server.join().unwrap();

    // What the lookup handlers may add to the cheapest route's (`/healthz`: hyper's
    // request head and headers, axum's routing, boxed bodies and middleware futures):
    // the router's storage of the path parameters (a list and two shared strings per
    // parameter: 5 for two), the borrowed parameters' list, and the response body.
    // Before the allocation-free handlers, `is_member` added 9 and `segments_of` 9.27.
    for (what, count) in [
        ("is_member", member),
        ("is_member by name", member_by_name),
        ("segments_of", segments_of),
    ] {
        assert!(
            count - health <= HANDLER_BUDGET,
            "{what}: {count:.2} allocations per request, {:.2} more than /healthz's {health:.2}; \
             the budget is {HANDLER_BUDGET}",
            count - health
        );
    }
}

const HANDLER_BUDGET: f64 = 7.0;
