//! Cluster mode end to end: a real 3-server NATS JetStream cluster (loopback ports,
//! streams and buckets with 3 replicas) and three `segd serve --cluster` processes.
//!
//! - Differential: a seeded message sequence sent over HTTP to all three nodes gives
//!   the same segment counts and the same per-profile memberships as one in-process
//!   engine (the single-node oracle) fed the same batches; batches linking identities
//!   across partitions are refused whole with 422 and change nothing.
//! - Failover: one node is killed with SIGKILL while a batch is in flight to it; its
//!   partitions are taken over by the others replaying the stream, the client retries
//!   unanswered batches on another node (same `messageId`s), and counts and
//!   memberships converge to the oracle: nothing acknowledged is lost, nothing is
//!   applied twice (an `exactly 1 time` segment and event counts would show it).
//!
//! Skips (saying so) without `nats-server`, except under `CI`, where it fails. Every
//! wait has a deadline; nothing is asserted about timing.

mod common;

use common::process::{free_address, http_json, segd, ServeProcess};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use segd::cluster::partition_of_key;
use segd::engine::{Engine, EngineOptions, Mutation, RuleInput};
use serde_json::{json, Value};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 6;
const USERS: usize = 120;
const BATCHES: usize = 48;
const BATCH_MESSAGES: usize = 10;
const SEED: u64 = 14;
const SEGMENTS: &[(&str, &str)] = &[
    ("pro", r#"plan = "pro""#),
    ("big", "ltv > 500"),
    ("buyers", r#"did "purchase" at least 2 times"#),
    ("one_purchase", r#"did "purchase" exactly 1 time"#),
    ("browsers", r#"did "page_view" at least 1 time"#),
];

fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three `nats-server`s with JetStream, routed to each other on loopback.
fn start_nats(binary: &PathBuf, root: &std::path::Path) -> (Vec<Killed>, Vec<String>) {
    let client_ports: Vec<u16> = (0..3).map(|_| free_address().port()).collect();
    let route_ports: Vec<u16> = (0..3).map(|_| free_address().port()).collect();
    let monitor_ports: Vec<u16> = (0..3).map(|_| free_address().port()).collect();
    let routes = route_ports
        .iter()
        .map(|port| format!("nats://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    for index in 0..3 {
        let store = root.join(format!("nats-{index}"));
        std::fs::create_dir_all(&store).unwrap();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &client_ports[index].to_string()])
            .args(["-m", &monitor_ports[index].to_string()])
            .args(["-js", "-sd"])
            .arg(&store)
            .args([
                "-n",
                &format!("nats-{index}"),
                "--cluster_name",
                "segd-test",
            ])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", route_ports[index]),
            ])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        servers.push(Killed(child));
    }
    // JetStream is usable once each server's health check passes (meta leader elected).
    let deadline = Instant::now() + Duration::from_secs(60);
    for port in &monitor_ports {
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        while !matches!(http(address, "GET", "/healthz", None), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let urls = client_ports
        .iter()
        .map(|port| format!("nats://127.0.0.1:{port}"))
        .collect();
    (servers, urls)
}

/// One HTTP/1.1 request with `Connection: close`; the JSON body of the answer.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    http_json(address, method, path, None, body, Duration::from_secs(20))
}

fn start_node(root: &std::path::Path, urls: &[String], node: &str) -> ServeProcess {
    let dir = root.join(node);
    let cluster = urls.join(",");
    let args = [
        "--cluster",
        &cluster,
        "--node-id",
        node,
        "--cluster-partitions",
        "6",
        "--cluster-replicas",
        "3",
        "--cluster-lease-ms",
        "2000",
        "--shards",
        "2",
    ];
    let process = ServeProcess::spawn(&dir, &args, |command| {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    });
    process.wait_ready(|address| matches!(http(address, "GET", "/readyz", None), Ok((200, _))));
    process
}

/// `segd cluster status --json`.
fn cluster_status(urls: &[String]) -> Option<Value> {
    let output = segd()
        .args(["cluster", "status", "--json", "--cluster", &urls.join(",")])
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// Waits until every partition has one of `nodes` as owner, caught up.
fn wait_owned(urls: &[String], nodes: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = cluster_status(urls) {
            let lines = status["partition_status"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let settled = lines.len() == PARTITIONS as usize
                && lines.iter().all(|line| {
                    line["owner"]
                        .as_str()
                        .is_some_and(|owner| nodes.contains(&owner))
                        && line["applied_seq"].as_u64() >= line["last_seq"].as_u64()
                });
            if settled {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "partitions were not all owned by {nodes:?} in time"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An anonymous id whose `a:` and `u:` keys both live in `user`'s partition (so it can
/// be linked and aliased without crossing partitions).
fn home_anonymous_id(user: &str, salt: &str) -> String {
    let home = partition_of_key(&format!("u:{user}"), PARTITIONS);
    (0..100_000)
        .map(|k| format!("anon-{user}-{salt}-{k}"))
        .find(|id| {
            partition_of_key(&format!("a:{id}"), PARTITIONS) == home
                && partition_of_key(&format!("u:{id}"), PARTITIONS) == home
        })
        .unwrap()
}

/// The seeded batches: identifies (some linking a same-partition anonymousId), purchases,
/// anonymous page views later linked, aliases; every message has a unique messageId.
fn batches() -> (Vec<Value>, Vec<String>) {
    let mut random = ChaCha8Rng::seed_from_u64(SEED);
    let anonymous: Vec<String> = (0..USERS)
        .map(|user| home_anonymous_id(&format!("u{user}"), "a"))
        .collect();
    let mut next_id = 0;
    let mut batches = Vec::new();
    for _ in 0..BATCHES {
        let mut messages = Vec::new();
        for _ in 0..BATCH_MESSAGES {
            next_id += 1;
            let user_index = random.gen_range(0..USERS);
            let user = format!("u{user_index}");
            let anon = &anonymous[user_index];
            let message_id = format!("m{next_id}");
            let message = match random.gen_range(0..10) {
                0..=2 => {
                    let plan = ["free", "pro", "team"][random.gen_range(0..3)];
                    let ltv = random.gen_range(0..1000);
                    json!({"type": "identify", "userId": user, "messageId": message_id,
                        "traits": {"plan": plan, "ltv": ltv}})
                }
                3 => json!({"type": "identify", "userId": user, "anonymousId": anon,
                    "messageId": message_id, "traits": {"seen": true}}),
                4..=6 => json!({"type": "track", "userId": user, "event": "purchase",
                    "messageId": message_id, "properties": {"amount": random.gen_range(1..200)}}),
                7 | 8 => json!({"type": "track", "anonymousId": anon, "event": "page_view",
                    "messageId": message_id, "properties": {"path": "/"}}),
                _ => json!({"type": "alias", "userId": user, "previousId": anon,
                    "messageId": message_id}),
            };
            messages.push(message);
        }
        batches.push(json!({ "batch": messages }));
    }
    let mut profiles: Vec<String> = (0..USERS).map(|user| format!("u{user}")).collect();
    profiles.extend(anonymous.iter().map(|id| format!("anon:{id}")));
    (batches, profiles)
}

fn oracle_apply(oracle: &Engine, batch: &Value) {
    let messages = segd::ingest::body::parse_batch_body(batch.to_string().as_bytes()).unwrap();
    oracle.apply(&Mutation::Messages(messages)).unwrap();
}

/// Sends a batch to `nodes[first]`, else the next ones, until one acknowledges it.
fn send(nodes: &[SocketAddr], first: usize, batch: &Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = first;
    loop {
        let address = nodes[attempt % nodes.len()];
        match http(address, "POST", "/v1/batch", Some(batch)) {
            Ok((200, _)) => return,
            Ok((status, body)) if status < 500 && status != 0 => {
                panic!("batch refused with {status}: {body}")
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "no node acknowledged a batch");
        attempt += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Compares counts and every profile's segments on `node` with the oracle's; `Err`
/// says what differs (still converging, or wrong).
fn compare(node: SocketAddr, oracle: &Engine, profiles: &[String]) -> Result<(), String> {
    for (name, _) in SEGMENTS {
        let expected = oracle.count(oracle.segment_id(name).unwrap());
        match http(node, "GET", &format!("/v1/segments/{name}"), None) {
            Ok((200, body)) if body["count"].as_u64() == Some(expected) => {}
            other => return Err(format!("{name}: expected {expected}, got {other:?}")),
        }
    }
    for profile in profiles {
        let expected: Vec<String> = match oracle.segments_of(profile) {
            Ok(ids) => {
                let mut names: Vec<String> = ids
                    .iter()
                    .map(|id| oracle.segment(*id).unwrap().name.clone())
                    .collect();
                names.sort();
                names
            }
            Err(_) => {
                match http(
                    node,
                    "GET",
                    &format!("/v1/profiles/{profile}/segments"),
                    None,
                ) {
                    Ok((404, _)) => continue,
                    other => return Err(format!("{profile}: expected 404, got {other:?}")),
                }
            }
        };
        let got = match http(
            node,
            "GET",
            &format!("/v1/profiles/{profile}/segments"),
            None,
        ) {
            Ok((200, body)) => {
                let mut names: Vec<String> = body["segments"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|entry| entry["name"].as_str().map(str::to_string))
                    .collect();
                names.sort();
                names
            }
            other => return Err(format!("{profile}: {other:?}")),
        };
        if got != expected {
            return Err(format!("{profile}: expected {expected:?}, got {got:?}"));
        }
    }
    Ok(())
}

fn converge(nodes: &[SocketAddr], oracle: &Engine, profiles: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in nodes {
        loop {
            match compare(*node, oracle, profiles) {
                Ok(()) => break,
                Err(difference) => assert!(
                    Instant::now() < deadline,
                    "node {node} did not converge to the oracle: {difference}"
                ),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn cluster_matches_single_node_oracle_and_survives_a_killed_node() {
    let Some(nats_server) = find_nats_server() else {
        assert!(
            std::env::var("CI").is_err(),
            "nats-server is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: install nats-server (Debian package) to run the cluster test");
        return;
    };
    let root = common::temp_data_dir("cluster", "oracle");
    std::fs::create_dir_all(&root).unwrap();
    let (_nats, urls) = start_nats(&nats_server, &root);

    let mut first = start_node(&root, &urls, "n1");
    let second = start_node(&root, &urls, "n2");
    let mut third = start_node(&root, &urls, "n3");
    wait_owned(&urls, &["n1", "n2", "n3"]);
    let nodes = [first.address, second.address, third.address];

    // A node joining with another partition count is refused with a clear error.
    let refused = segd()
        .args(["serve", "--listen", &free_address().to_string()])
        .args(["--cluster", &urls.join(","), "--node-id", "n9"])
        .args(["--cluster-partitions", "7", "--cluster-replicas", "3"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("created with 6 partitions"), "{stderr}");

    let oracle = Engine::new(EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    });
    for (index, (name, rule)) in SEGMENTS.iter().enumerate() {
        oracle
            .create_segment(name, "", Some(RuleInput::Text(rule.to_string())))
            .unwrap();
        let (status, body) = http(
            nodes[index % 3],
            "POST",
            "/v1/segments",
            Some(&json!({"name": name, "rule": rule})),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    // Names are cluster-wide: a second create of one is refused on any node.
    let (status, _) = http(
        nodes[2],
        "POST",
        "/v1/segments",
        Some(&json!({"name": "pro", "rule": "ltv > 1"})),
    )
    .unwrap();
    assert_eq!(status, 409);

    // Identities in two partitions in one message: the whole batch is refused.
    let home = partition_of_key("u:lonely", PARTITIONS);
    let foreign = (0..1_000)
        .map(|k| format!("stranger-{k}"))
        .find(|id| partition_of_key(&format!("a:{id}"), PARTITIONS) != home)
        .unwrap();
    let (status, body) = http(
        nodes[1],
        "POST",
        "/v1/batch",
        Some(&json!({"batch": [
            {"type": "identify", "userId": "lonely", "traits": {"plan": "pro"}},
            {"type": "identify", "userId": "lonely", "anonymousId": foreign},
        ]})),
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "cross_partition_identity", "{body}");
    assert_eq!(body["error"]["path"], "batch[1].anonymousId", "{body}");

    let (batches, mut profiles) = batches();
    profiles.push("lonely".into());
    let half = batches.len() / 2;
    for (index, batch) in batches[..half].iter().enumerate() {
        send(&nodes, index, batch);
        oracle_apply(&oracle, batch);
    }
    // The sequence exercises every segment (none empty, none everyone).
    for (name, _) in SEGMENTS {
        let count = oracle.count(oracle.segment_id(name).unwrap());
        assert!(
            count > 0 && count < oracle.profile_count(),
            "{name}: {count}"
        );
    }
    converge(&nodes, &oracle, &profiles);

    // Kill n3 (SIGKILL) while a batch is in flight to it; unanswered batches are sent
    // again to another node, as a client would.
    let kill_at = half + 6;
    let survivors = [first.address, second.address];
    for (index, batch) in batches.iter().enumerate().skip(half) {
        if index == kill_at {
            let pid = third.child.id();
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            });
            let answered = matches!(
                http(third.address, "POST", "/v1/batch", Some(batch)),
                Ok((200, _))
            );
            killer.join().unwrap();
            let _ = third.child.wait();
            if !answered {
                send(&survivors, index, batch);
            }
        } else if index > kill_at {
            send(&survivors, index, batch);
        } else {
            send(&nodes, index, batch);
        }
        oracle_apply(&oracle, batch);
    }
    wait_owned(&urls, &["n1", "n2"]);
    converge(&survivors, &oracle, &profiles);

    // A graceful stop releases the node's leases.
    assert!(first.terminate().is_some_and(|status| status.success()));
    drop(third);
    drop(second);
    let _ = std::fs::remove_dir_all(&root);
}
