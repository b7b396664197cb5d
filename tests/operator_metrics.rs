//! `/metrics` of a real `segd serve` (open keys, a data directory, 127.0.0.1): after a
//! segment, ingest and a snapshot, every line is valid Prometheus text, and the operator
//! figures are there with plausible values: per-route+method latency histograms, process
//! memory and fds, WAL bytes and fsync latency, last snapshot time/duration/size,
//! recovery figures, per-segment entries/exits. Bounded: every wait has a deadline.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn call(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Sample lines `name{labels} value` → value; checks the text format on the way.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed.contains(*base))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample without TYPE: {line}");
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate: {line}"
        );
    }
    samples
}

#[test]
fn operator_metrics_are_exposed_and_well_formed() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("segd-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_segd"))
        .args(["serve", "--listen", &address.to_string(), "--shards", "2"])
        .args(["--wal-fsync", "always", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(address).is_err() || call(address, "GET", "/readyz", "").0 != 200 {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, created) = call(
        address,
        "POST",
        "/v1/segments",
        r#"{"name": "big", "rule": "ltv > 100"}"#,
    );
    assert_eq!(status, 201, "{created}");
    for (user, ltv) in [("u1", 500), ("u2", 600), ("u1", 5)] {
        let body = format!(r#"{{"userId": "{user}", "traits": {{"ltv": {ltv}}}}}"#);
        assert_eq!(call(address, "POST", "/v1/identify", &body).0, 200);
    }
    let (status, snapshot) = call(address, "POST", "/v1/admin/snapshot", "");
    assert_eq!(status, 200, "{snapshot}");
    let (status, text) = call(address, "GET", "/metrics", "");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200);
    let samples = parse(&text);
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert_eq!(
        get(r#"segd_http_request_duration_seconds_count{route="/v1/identify",method="POST"}"#),
        3.0
    );
    assert_eq!(
        get(
            r#"segd_http_request_duration_seconds_bucket{route="/v1/identify",method="POST",le="+Inf"}"#
        ),
        3.0
    );
    assert!(
        get(r#"segd_http_request_duration_seconds_sum{route="/v1/identify",method="POST"}"#) > 0.0
    );
    assert!(get("process_resident_memory_bytes") > 1_000_000.0);
    assert!(get("process_open_fds") >= 3.0);
    assert!(get("process_max_fds") >= get("process_open_fds"));
    assert!(get("segd_wal_bytes_written_total") > 0.0);
    // `always`: every acknowledged write was synced, each sync timed.
    assert!(get("segd_wal_fsync_duration_seconds_count") >= 1.0);
    assert_eq!(get("segd_snapshots_total"), 1.0);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let saved = get("segd_snapshot_last_success_timestamp_seconds");
    assert!(saved > now_s - 600.0 && saved <= now_s + 1.0, "{saved}");
    assert!(get("segd_snapshot_last_size_bytes") > 0.0);
    assert!(get("segd_snapshot_last_duration_seconds") > 0.0);
    assert_eq!(
        get("segd_recovery_replayed_records"),
        0.0,
        "empty directory"
    );
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"].clone();
    assert_eq!(
        get(&format!(
            r#"segd_segment_transitions_total{{segment_id="{id}",kind="entered"}}"#
        )),
        2.0
    );
    assert_eq!(
        get(&format!(
            r#"segd_segment_transitions_total{{segment_id="{id}",kind="exited"}}"#
        )),
        1.0
    );
    assert_eq!(get("segd_sse_stream_lag_max"), 0.0);
}
