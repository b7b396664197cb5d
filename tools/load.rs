//! segd-load: an HTTP/1.1 load generator for segd, loopback only.
//!
//! ```text
//! # closed loop: 50 connections, each sends its next request when the last answered
//! segd-load --target http://127.0.0.1:7700 --scenario lookup --segment 3 --connections 50
//! # open loop: 20,000 requests/s spread over 50 connections, latency from the intended
//! # send time (no coordinated omission)
//! segd-load --target http://127.0.0.1:7700 --scenario ingest --bodies batches.ndjson --rate 20000
//! segd-load --target http://127.0.0.1:7700 --scenario preview --rule 'country = "DE"'
//! # mixed: 4 writers post 2,000-message batches while one reader asks
//! # GET /v1/profiles/{id}/segments every 5 ms; a segment is created half way through
//! segd-load --target http://127.0.0.1:7700 --scenario mixed --bodies batches.ndjson \
//!     --batch-messages 2000 --connections 4 --profiles 300000 --duration-s 30
//! ```
//!
//! Scenarios: `lookup` (`GET /v1/segments/{segment}/members/{prefix}{n}` over
//! `--profiles` rotating profiles), `ingest` (`POST /v1/batch`, bodies cycled from a file
//! with one body per line, e.g. `segd-gen profiles --format batch`), `preview`
//! (`POST /v1/segments/preview`), `mixed` (`--connections` writers as in `ingest`, plus
//! one reader on its own connection calling `GET /v1/profiles/{prefix}{n}/segments` every
//! `--read-interval-ms`, plus one `POST /v1/segments` with `--rule` at
//! `--create-at-s`; the summary's `reader` object is the reader's latency, each read
//! timed from its send to its answer, and `create` is the creation's own time). With
//! `--batch-messages`, the messages of all bodies are regrouped into bodies of that many
//! messages (e.g. 2,000 from `segd-gen`'s 100-message bodies). A run stops at `--requests` or `--duration-s`,
//! whichever comes first; both are capped. Keep-alive connections; a connection that
//! fails is reopened. Latencies go into an HDR histogram (µs, 3 significant digits).
//! The last line printed is a JSON summary.
//!
//! Only loopback targets are accepted (127.0.0.0/8, ::1, localhost): this tool must not
//! load anything but a server on this machine.

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most requests in one run.
const MAX_REQUESTS: u64 = 100_000_000;
/// Longest run.
const MAX_DURATION_S: u64 = 3_600;
/// Most connections.
const MAX_CONNECTIONS: usize = 4_096;
/// A request without an answer after this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted (headers + body).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Most bodies read from `--bodies`.
const MAX_BODIES: usize = 1_000_000;
/// Highest latency the histogram records (µs); slower answers are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Lookup,
    Ingest,
    Preview,
    Mixed,
}

#[derive(Parser, Debug)]
#[command(name = "segd-load", about = "Loopback HTTP load generator for segd")]
struct Arguments {
    /// Base URL of the server, e.g. http://127.0.0.1:7700 (loopback only).
    #[arg(long)]
    target: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Client threads (1 leaves the other cores to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// lookup: segment id or name.
    #[arg(long)]
    segment: Option<String>,
    /// lookup: profiles `{prefix}0` .. `{prefix}{n-1}` are asked for.
    #[arg(long, default_value_t = 100_000)]
    profiles: u64,
    #[arg(long, default_value = "user-")]
    profile_prefix: String,
    /// ingest: file with one `/v1/batch` body per line.
    #[arg(long)]
    bodies: Option<std::path::PathBuf>,
    /// preview: the rule (text, or a JSON AST object); mixed: the rule of the segment
    /// created during the run.
    #[arg(long)]
    rule: Option<String>,
    /// ingest, mixed: regroup the bodies' messages into bodies of this many messages.
    #[arg(long)]
    batch_messages: Option<usize>,
    /// mixed: the reader's interval between lookups (ms).
    #[arg(long, default_value_t = 5)]
    read_interval_ms: u64,
    /// mixed: when to create the segment (seconds after the start; default half the
    /// duration).
    #[arg(long)]
    create_at_s: Option<f64>,
    #[arg(long, env = "SEGD_WRITE_KEY")]
    write_key: Option<String>,
    #[arg(long, env = "SEGD_READ_KEY")]
    read_key: Option<String>,
    #[arg(long, env = "SEGD_ADMIN_KEY")]
    admin_key: Option<String>,
}

/// Why a run cannot start: always the caller's to fix.
#[derive(Debug)]
struct UsageError(String);

/// A validated target: a loopback socket address and the Host header.
#[derive(Clone, Debug)]
struct Target {
    address: SocketAddr,
    host: String,
}

fn parse_target(url: &str) -> Result<Target, UsageError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        UsageError(format!(
            "--target `{url}` must start with http:// (plain HTTP on loopback)"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_string()
        } else {
            format!("{authority}:80")
        }
    } else if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addresses: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|error| UsageError(format!("--target `{url}`: cannot resolve: {error}")))?
        .collect();
    let address = addresses
        .first()
        .copied()
        .ok_or_else(|| UsageError(format!("--target `{url}` resolves to no address")))?;
    if !addresses.iter().all(|address| address.ip().is_loopback()) {
        return Err(UsageError(format!(
            "--target `{url}` is not a loopback address; segd-load only loads servers on this machine (127.0.0.0/8, ::1, localhost)"
        )));
    }
    Ok(Target {
        address,
        host: authority.to_string(),
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(ALPHABET[((triple >> (18 - 6 * position)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a path segment.
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Builds the bytes of request number `number`.
struct RequestFactory {
    scenario: Scenario,
    host: String,
    authorization: Option<String>,
    segment: String,
    profiles: u64,
    profile_prefix: String,
    bodies: Vec<Vec<u8>>,
}

impl RequestFactory {
    fn new(arguments: &Arguments, target: &Target) -> Result<RequestFactory, UsageError> {
        let bearer = |key: &Option<String>| key.as_ref().map(|key| format!("Bearer {key}"));
        let (authorization, segment, bodies) = match arguments.scenario {
            Scenario::Lookup => {
                let segment = arguments.segment.clone().ok_or_else(|| {
                    UsageError("--scenario lookup needs --segment <id or name>".into())
                })?;
                if arguments.profiles == 0 {
                    return Err(UsageError("--profiles must be at least 1".into()));
                }
                (bearer(&arguments.read_key), segment, Vec::new())
            }
            Scenario::Ingest | Scenario::Mixed => {
                let path = arguments.bodies.as_ref().ok_or_else(|| {
                    UsageError("--scenario ingest and mixed need --bodies <file with one /v1/batch body per line> (see segd-gen profiles --format batch)".into())
                })?;
                let text = std::fs::read(path).map_err(|error| {
                    UsageError(format!("cannot read {}: {error}", path.display()))
                })?;
                let bodies: Vec<Vec<u8>> = text
                    .split(|&byte| byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .take(MAX_BODIES)
                    .map(<[u8]>::to_vec)
                    .collect();
                if bodies.is_empty() {
                    return Err(UsageError(format!("{} has no bodies", path.display())));
                }
                let bodies = match arguments.batch_messages {
                    Some(size) => regroup(&bodies, size)?,
                    None => bodies,
                };
                let basic = arguments
                    .write_key
                    .as_ref()
                    .map(|key| format!("Basic {}", base64(format!("{key}:").as_bytes())));
                (basic, String::new(), bodies)
            }
            Scenario::Preview => {
                let rule = arguments.rule.as_ref().ok_or_else(|| {
                    UsageError("--scenario preview needs --rule <text or JSON AST>".into())
                })?;
                let rule_value = serde_json::from_str::<serde_json::Value>(rule)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(|| serde_json::Value::String(rule.clone()));
                let body = serde_json::json!({ "rule": rule_value }).to_string();
                (
                    bearer(&arguments.admin_key),
                    String::new(),
                    vec![body.into_bytes()],
                )
            }
        };
        Ok(RequestFactory {
            scenario: arguments.scenario,
            host: target.host.clone(),
            authorization,
            segment: encode_segment(&segment),
            profiles: arguments.profiles,
            profile_prefix: arguments.profile_prefix.clone(),
            bodies,
        })
    }

    /// Messages per body (`batch` array length), if every body parses.
    fn messages_per_body(&self) -> Option<Vec<usize>> {
        self.bodies
            .iter()
            .map(|body| {
                serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|value| value.get("batch")?.as_array().map(Vec::len))
            })
            .collect()
    }

    fn build(&self, number: u64, into: &mut Vec<u8>) {
        into.clear();
        let (method, path, body): (&str, String, &[u8]) = match self.scenario {
            Scenario::Lookup => {
                // A prime stride spreads consecutive requests over the profiles.
                let profile = number.wrapping_mul(7_919) % self.profiles;
                let name = encode_segment(&format!("{}{profile}", self.profile_prefix));
                (
                    "GET",
                    format!("/v1/segments/{}/members/{name}", self.segment),
                    &[],
                )
            }
            Scenario::Ingest | Scenario::Mixed => (
                "POST",
                "/v1/batch".to_string(),
                &self.bodies[(number % self.bodies.len() as u64) as usize],
            ),
            Scenario::Preview => ("POST", "/v1/segments/preview".to_string(), &self.bodies[0]),
        };
        into.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n",
                self.host
            )
            .as_bytes(),
        );
        if let Some(authorization) = &self.authorization {
            into.extend_from_slice(format!("Authorization: {authorization}\r\n").as_bytes());
        }
        if method == "POST" {
            into.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        into.extend_from_slice(b"\r\n");
        into.extend_from_slice(body);
    }
}

/// Regroups the messages of `/v1/batch` bodies into bodies of `size` messages (the last
/// one may be shorter), in order.
fn regroup(bodies: &[Vec<u8>], size: usize) -> Result<Vec<Vec<u8>>, UsageError> {
    if size == 0 {
        return Err(UsageError("--batch-messages must be at least 1".into()));
    }
    let mut messages = Vec::new();
    for (line, body) in bodies.iter().enumerate() {
        let mut value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| UsageError(format!("body {} is not JSON: {error}", line + 1)))?;
        match value.get_mut("batch").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(batch)) => messages.extend(batch),
            _ => {
                return Err(UsageError(format!(
                    "body {} has no \"batch\" array",
                    line + 1
                )))
            }
        }
    }
    Ok(messages
        .chunks(size)
        .map(|chunk| {
            serde_json::to_vec(&serde_json::json!({ "batch": chunk })).expect("JSON values")
        })
        .collect())
}

/// A complete request without keep-alive bookkeeping: method, path, auth, JSON body.
fn simple_request(
    host: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n");
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one HTTP/1.1 response; returns its status.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<u16> {
    let invalid =
        |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string());
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buffer) {
            Ok(httparse::Status::Complete(header_length)) => {
                let status = response.code.unwrap_or(0);
                let mut content_length = None;
                let mut chunked = false;
                for header in response.headers.iter() {
                    if header.name.eq_ignore_ascii_case("content-length") {
                        content_length = std::str::from_utf8(header.value)
                            .ok()
                            .and_then(|value| value.trim().parse::<usize>().ok());
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = header.value.eq_ignore_ascii_case(b"chunked");
                    }
                }
                if chunked {
                    read_chunked(stream, buffer, header_length).await?;
                } else {
                    let total = header_length + content_length.unwrap_or(0);
                    if total > MAX_RESPONSE_BYTES {
                        return Err(invalid("response too large"));
                    }
                    fill(stream, buffer, total).await?;
                    buffer.drain(..total);
                }
                return Ok(status);
            }
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_RESPONSE_BYTES {
                    return Err(invalid("response headers too large"));
                }
                read_more(stream, buffer).await?;
            }
            Err(_) => return Err(invalid("malformed HTTP response")),
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let read = stream.read(&mut chunk).await?;
    if read == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>, wanted: usize) -> std::io::Result<()> {
    while buffer.len() < wanted {
        read_more(stream, buffer).await?;
    }
    Ok(())
}

/// Consumes a chunked body that starts at `start` in `buffer`.
async fn read_chunked(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    start: usize,
) -> std::io::Result<()> {
    let invalid =
        |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string());
    let mut position = start;
    loop {
        let line_end = loop {
            if let Some(offset) = buffer[position..].windows(2).position(|w| w == b"\r\n") {
                break position + offset;
            }
            if buffer.len() > MAX_RESPONSE_BYTES {
                return Err(invalid("response too large"));
            }
            read_more(stream, buffer).await?;
        };
        let size_text = std::str::from_utf8(&buffer[position..line_end])
            .map_err(|_| invalid("bad chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        let chunk_end = line_end + 2 + size + 2;
        if chunk_end > MAX_RESPONSE_BYTES {
            return Err(invalid("response too large"));
        }
        fill(stream, buffer, chunk_end).await?;
        position = chunk_end;
        if size == 0 {
            buffer.drain(..position);
            return Ok(());
        }
    }
}

/// What one connection measured.
struct ConnectionResult {
    histogram: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    errors: u64,
}

struct Shared {
    factory: RequestFactory,
    address: SocketAddr,
    next: AtomicU64,
    limit: u64,
    deadline: Instant,
    started: Instant,
    rate: Option<f64>,
    stop: AtomicBool,
}

async fn connect(address: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn run_connection(shared: Arc<Shared>) -> ConnectionResult {
    let mut result = ConnectionResult {
        histogram: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
        statuses: BTreeMap::new(),
        errors: 0,
    };
    let mut link = Link::new(shared.address);
    let mut request = Vec::with_capacity(4096);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let number = shared.next.fetch_add(1, Ordering::Relaxed);
        if number >= shared.limit {
            break;
        }
        // Open loop: request `number` is due at start + number / rate; latency counts
        // from then, so a slow server cannot hide its queueing.
        let intended = match shared.rate {
            Some(rate) => {
                let due = shared.started + Duration::from_secs_f64(number as f64 / rate);
                if due > shared.deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if Instant::now() >= shared.deadline {
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        shared.factory.build(number, &mut request);
        let answered = link
            .send_counted(&request, intended, &mut result.statuses, &mut result.errors)
            .await;
        if let Some(micros) = answered {
            result.histogram.saturating_record(micros);
        }
    }
    result
}

/// A client task's keep-alive connection, opened on first use and again after an error.
struct Link {
    address: SocketAddr,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Link {
    fn new(address: SocketAddr) -> Link {
        Link {
            address,
            stream: None,
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `request` (within [`REQUEST_TIMEOUT`]) and counts the outcome in `statuses`
    /// and `errors`: its status (an error unless 2xx), or `connection_error`, after
    /// which the connection is dropped. Returns the latency from `since` in
    /// microseconds if there was an answer.
    async fn send_counted(
        &mut self,
        request: &[u8],
        since: Instant,
        statuses: &mut BTreeMap<String, u64>,
        errors: &mut u64,
    ) -> Option<u64> {
        let outcome = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(&mut self.stream, self.address, request, &mut self.buffer),
        )
        .await;
        let micros = (since.elapsed().as_micros() as u64).clamp(1, MAX_LATENCY_US);
        match outcome {
            Ok(Ok(status)) => {
                *statuses.entry(status.to_string()).or_default() += 1;
                if !(200..300).contains(&status) {
                    *errors += 1;
                }
                Some(micros)
            }
            Ok(Err(_)) | Err(_) => {
                *errors += 1;
                *statuses.entry("connection_error".into()).or_default() += 1;
                self.stream = None;
                self.buffer.clear();
                None
            }
        }
    }
}

/// Sends `request` on `stream` (connecting first if there is none) and reads the answer.
async fn exchange(
    stream: &mut Option<TcpStream>,
    address: SocketAddr,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> std::io::Result<u16> {
    if stream.is_none() {
        *stream = Some(connect(address).await?);
    }
    let connection = stream.as_mut().expect("connected above");
    connection.write_all(request).await?;
    read_response(connection, buffer).await
}

/// The mixed scenario's reader and segment creation.
struct MixedPlan {
    address: SocketAddr,
    host: String,
    read_authorization: Option<String>,
    admin_authorization: Option<String>,
    profiles: u64,
    profile_prefix: String,
    interval: Duration,
    create_at: Duration,
    create_body: Vec<u8>,
    started: Instant,
    deadline: Instant,
    /// Microseconds after `started` at which the creation was sent / answered
    /// (`u64::MAX` until then).
    create_sent_us: AtomicU64,
    create_done_us: AtomicU64,
}

struct ReaderResult {
    histogram: Histogram<u64>,
    /// Reads sent while the segment creation was in flight.
    during_create: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    errors: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

/// One lookup every `interval` on a connection of its own; each timed from send to
/// answer. Ticks missed while a read was slow are skipped (not queued).
async fn run_reader(plan: Arc<MixedPlan>) -> ReaderResult {
    let mut result = ReaderResult {
        histogram: new_histogram(),
        during_create: new_histogram(),
        statuses: BTreeMap::new(),
        errors: 0,
    };
    let mut link = Link::new(plan.address);
    let mut ticker = tokio::time::interval(plan.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut number = 0u64;
    loop {
        ticker.tick().await;
        if Instant::now() >= plan.deadline {
            break;
        }
        let profile = number.wrapping_mul(7_919) % plan.profiles;
        number += 1;
        let path = format!(
            "/v1/profiles/{}/segments",
            encode_segment(&format!("{}{profile}", plan.profile_prefix))
        );
        let request = simple_request(
            &plan.host,
            "GET",
            &path,
            plan.read_authorization.as_deref(),
            &[],
        );
        let sent = Instant::now();
        let sent_us = (sent - plan.started).as_micros() as u64;
        let answered = link
            .send_counted(&request, sent, &mut result.statuses, &mut result.errors)
            .await;
        if let Some(micros) = answered {
            result.histogram.saturating_record(micros);
            let create_sent = plan.create_sent_us.load(Ordering::Relaxed);
            let create_done = plan.create_done_us.load(Ordering::Relaxed);
            if sent_us >= create_sent && sent_us <= create_done {
                result.during_create.saturating_record(micros);
            }
        }
    }
    result
}

/// Creates the segment at `create_at`; returns (status, seconds) or nothing if the run
/// ended first.
async fn run_creation(plan: Arc<MixedPlan>) -> Option<(String, f64)> {
    let due = plan.started + plan.create_at;
    if due >= plan.deadline {
        return None;
    }
    tokio::time::sleep_until(due.into()).await;
    let request = simple_request(
        &plan.host,
        "POST",
        "/v1/segments",
        plan.admin_authorization.as_deref(),
        &plan.create_body,
    );
    let mut stream = None;
    let mut buffer = Vec::new();
    let sent = Instant::now();
    plan.create_sent_us
        .store((sent - plan.started).as_micros() as u64, Ordering::Relaxed);
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        exchange(&mut stream, plan.address, &request, &mut buffer),
    )
    .await;
    let seconds = sent.elapsed().as_secs_f64();
    plan.create_done_us
        .store(plan.started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let status = match outcome {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(error)) => format!("error: {error}"),
        Err(_) => "timeout".to_string(),
    };
    Some((status, seconds))
}

fn latency_summary(histogram: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "count": histogram.len(),
        "p50_us": histogram.value_at_quantile(0.50),
        "p99_us": histogram.value_at_quantile(0.99),
        "max_us": histogram.max(),
    })
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match run(&arguments) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(UsageError(message)) => {
            eprintln!("segd-load: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(arguments: &Arguments) -> Result<serde_json::Value, UsageError> {
    if arguments.connections == 0 || arguments.connections > MAX_CONNECTIONS {
        return Err(UsageError(format!(
            "--connections must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    if arguments.requests == 0 || arguments.requests > MAX_REQUESTS {
        return Err(UsageError(format!(
            "--requests must be 1 to {MAX_REQUESTS}"
        )));
    }
    if arguments.duration_s == 0 || arguments.duration_s > MAX_DURATION_S {
        return Err(UsageError(format!(
            "--duration-s must be 1 to {MAX_DURATION_S}"
        )));
    }
    if let Some(rate) = arguments.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(UsageError("--rate must be a positive number".into()));
        }
    }
    let target = parse_target(&arguments.target)?;
    let factory = RequestFactory::new(arguments, &target)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(arguments.threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|error| UsageError(format!("cannot start the client runtime: {error}")))?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        factory,
        address: target.address,
        next: AtomicU64::new(0),
        limit: arguments.requests,
        deadline: started + Duration::from_secs(arguments.duration_s),
        started,
        rate: arguments.rate,
        stop: AtomicBool::new(false),
    });
    let mixed = if arguments.scenario == Scenario::Mixed {
        if arguments.read_interval_ms == 0 {
            return Err(UsageError("--read-interval-ms must be at least 1".into()));
        }
        if arguments.profiles == 0 {
            return Err(UsageError("--profiles must be at least 1".into()));
        }
        let rule = arguments
            .rule
            .clone()
            .unwrap_or_else(|| "country = \"DE\" and age >= 30".to_string());
        let rule_value = serde_json::from_str::<serde_json::Value>(&rule)
            .ok()
            .filter(serde_json::Value::is_object)
            .unwrap_or(serde_json::Value::String(rule));
        let name = format!(
            "segd-load-mixed-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.as_millis())
                .unwrap_or_default()
        );
        let create_at = arguments
            .create_at_s
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .unwrap_or(arguments.duration_s as f64 / 2.0);
        let bearer = |key: &Option<String>| key.as_ref().map(|key| format!("Bearer {key}"));
        let plan = Arc::new(MixedPlan {
            address: target.address,
            host: target.host.clone(),
            read_authorization: bearer(&arguments.read_key),
            admin_authorization: bearer(&arguments.admin_key),
            profiles: arguments.profiles,
            profile_prefix: arguments.profile_prefix.clone(),
            interval: Duration::from_millis(arguments.read_interval_ms),
            create_at: Duration::from_secs_f64(create_at),
            create_body: serde_json::json!({ "name": name, "rule": rule_value })
                .to_string()
                .into_bytes(),
            started,
            deadline: shared.deadline,
            create_sent_us: AtomicU64::new(u64::MAX),
            create_done_us: AtomicU64::new(u64::MAX),
        });
        // The reader and the creation get a thread of their own, so the writers'
        // client work does not delay a read's send or its answer's processing.
        let side_plan = plan.clone();
        let side = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("reader runtime");
            runtime.block_on(async move {
                let creation = tokio::spawn(run_creation(side_plan.clone()));
                let reader = run_reader(side_plan).await;
                (reader, creation.await.ok().flatten())
            })
        });
        Some((plan, side))
    } else {
        None
    };
    let results: Vec<ConnectionResult> = runtime.block_on(async {
        let tasks: Vec<_> = (0..arguments.connections)
            .map(|_| tokio::spawn(run_connection(shared.clone())))
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok(result) = task.await {
                results.push(result);
            }
        }
        results
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds");
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = 0;
    for result in results {
        histogram.add(&result.histogram).expect("same bounds");
        for (status, count) in result.statuses {
            *statuses.entry(status).or_default() += count;
        }
        errors += result.errors;
    }
    let completed: u64 = statuses.values().sum();
    let messages_per_body = match arguments.scenario {
        Scenario::Ingest | Scenario::Mixed => shared.factory.messages_per_body(),
        _ => None,
    };
    let mean_messages = messages_per_body
        .as_ref()
        .filter(|sizes| !sizes.is_empty())
        .map(|sizes| sizes.iter().sum::<usize>() as f64 / sizes.len() as f64);
    let mut summary = serde_json::json!({
        "scenario": format!("{:?}", arguments.scenario).to_lowercase(),
        "bodies": shared.factory.bodies.len(),
        "target": arguments.target,
        "connections": arguments.connections,
        "mode": if arguments.rate.is_some() { "open" } else { "closed" },
        "rate": arguments.rate,
        "requests": completed,
        "ok": completed - errors,
        "errors": errors,
        "statuses": statuses,
        "elapsed_s": elapsed,
        "requests_per_second": completed as f64 / elapsed.max(1e-9),
        "mean_us": histogram.mean(),
        "p50_us": histogram.value_at_quantile(0.50),
        "p90_us": histogram.value_at_quantile(0.90),
        "p99_us": histogram.value_at_quantile(0.99),
        "p999_us": histogram.value_at_quantile(0.999),
        "max_us": histogram.max(),
    });
    if let Some(mean) = mean_messages {
        summary["messages_per_body"] = serde_json::json!(mean);
        // Bodies are cycled, so ok × mean is exact for equal-sized bodies.
        summary["messages_per_second"] =
            serde_json::json!((completed - errors) as f64 * mean / elapsed.max(1e-9));
    }
    if let Some((plan, side)) = mixed {
        let (reader, creation) = side
            .join()
            .map_err(|_| UsageError("the reader thread panicked".into()))?;
        summary["reader"] = serde_json::json!({
            "path": "/v1/profiles/{id}/segments",
            "interval_ms": arguments.read_interval_ms,
            "all": latency_summary(&reader.histogram),
            "during_create": latency_summary(&reader.during_create),
            "statuses": reader.statuses,
            "errors": reader.errors,
        });
        summary["create"] = match creation {
            Some((status, seconds)) => serde_json::json!({
                "at_s": plan.create_at.as_secs_f64(),
                "status": status,
                "seconds": seconds,
            }),
            None => serde_json::Value::Null,
        };
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(parse_target("http://127.0.0.1:7700").is_ok());
        assert!(parse_target("http://127.5.0.1:80/").is_ok());
        assert!(parse_target("http://localhost:7700").is_ok());
        assert!(parse_target("http://[::1]:7700").is_ok());
        for bad in [
            "http://10.0.0.1:7700",
            "http://192.168.1.2",
            "https://127.0.0.1",
            "127.0.0.1:7700",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn regroup_keeps_every_message_in_order() {
        let bodies: Vec<Vec<u8>> = (0..3)
            .map(|body| {
                let batch: Vec<_> = (0..4)
                    .map(|index| serde_json::json!({ "userId": format!("u{}", body * 4 + index) }))
                    .collect();
                serde_json::to_vec(&serde_json::json!({ "batch": batch })).unwrap()
            })
            .collect();
        let regrouped = regroup(&bodies, 5).unwrap();
        let sizes: Vec<usize> = regrouped
            .iter()
            .map(|body| {
                serde_json::from_slice::<serde_json::Value>(body).unwrap()["batch"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![5, 5, 2]);
        let ids: Vec<String> = regrouped
            .iter()
            .flat_map(|body| {
                let value: serde_json::Value = serde_json::from_slice(body).unwrap();
                value["batch"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|message| message["userId"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<String> = (0..12).map(|index| format!("u{index}")).collect();
        assert_eq!(ids, expected);
        assert!(regroup(&bodies, 0).is_err());
        assert!(regroup(&[b"{}".to_vec()], 10).is_err());
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b"key:"), "a2V5Og==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
