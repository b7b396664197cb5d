//! Crashes: failpoints between snapshot fsync and rename, and (see `crash_cycles`)
//! a child process killed with SIGKILL at random moments.
//!
//! Failpoints are process-wide, so they live in this test binary, apart from the
//! other persistence tests.

mod common;

use common::persist::{populate, state, Suite};
use segd::engine::Mutation;
use segd::ingest::parse_batch;
use segd::persist::inspect::inspect;
use segd::persist::wal::FsyncPolicy;
use segd::persist::{set_failpoint, Database, FailAction, PersistError};
use serde_json::{json, Value};
use std::path::PathBuf;

const SUITE: Suite = Suite {
    name: "crash",
    fsync: FsyncPolicy::Always,
    wal_segment_bytes: Some(16 << 10),
    shards: 3,
    identity_traits: &[],
};

#[test]
fn a_crash_between_snapshot_fsync_and_rename_keeps_the_previous_snapshot() {
    let dir = SUITE.data_dir("before-rename");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 200);
    let first = database.snapshot_now().unwrap();
    populate(&database, 200, 300);
    set_failpoint("snapshot_before_rename", Some(FailAction::Error));
    let error = database.snapshot_now().unwrap_err();
    set_failpoint("snapshot_before_rename", None);
    assert!(matches!(error, PersistError::Io { .. }), "{error}");
    let before = state(&database, 300);
    drop(database);
    let (database, report) = SUITE.open(&dir);
    assert_eq!(report.snapshot.as_deref(), Some(first.path.as_path()));
    assert_eq!(state(&database, 300), before);
    // The temporary directory was cleaned up.
    assert!(inspect(&dir).unwrap().other_files.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Child mode: open the data directory from `SEGD_CRASH_DIR`, snapshot every 40 ms,
/// apply the batches read from stdin (one JSON object per line) and print
/// `ack <message ids> head=<change-log head>` once each is acknowledged.
fn run_child() -> ! {
    use std::io::BufRead;
    let dir = PathBuf::from(std::env::var("SEGD_CRASH_DIR").unwrap());
    if let Ok(point) = std::env::var("SEGD_CRASH_FAILPOINT") {
        set_failpoint(&point, Some(FailAction::Abort));
    }
    let (database, _) = Database::open(
        SUITE.options(&dir),
        std::sync::Arc::new(segd::clock::SystemClock),
    )
    .unwrap();
    let database = std::sync::Arc::new(database);
    println!("start head={}", database.engine().changes().head());
    for (name, rule) in crash_segments() {
        if database.engine().segment_id(name).is_none() {
            database
                .apply(Mutation::CreateSegment {
                    name: name.to_string(),
                    description: "".to_string(),
                    rule: Some(serde_json::from_value(rule).unwrap()),
                    emit_initial: false,
                })
                .unwrap();
        }
    }
    let _snapshots = database.start_snapshots(std::time::Duration::from_millis(40));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let batch: Value = serde_json::from_str(&line).unwrap();
        let messages = parse_batch(&batch).unwrap();
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        database.apply(Mutation::Messages(messages)).unwrap();
        println!(
            "ack {} head={}",
            ids.join(","),
            database.engine().changes().head()
        );
    }
    std::process::exit(0);
}

fn crash_segments() -> Vec<(&'static str, Value)> {
    vec![
        (
            "pro",
            json!({"kind": "compare", "trait": "plan", "op": "=", "value": "pro"}),
        ),
        (
            "big",
            json!({"kind": "compare", "trait": "n", "op": ">", "value": 1000}),
        ),
        (
            "big_pro",
            json!({"kind": "and", "rules": [{"kind": "in_segment", "segment": "pro"}, {"kind": "in_segment", "segment": "big"}]}),
        ),
        (
            "pinged",
            json!({"kind": "event_count", "event": "ping", "count_op": "at_least", "count": 1,
                   "window": {"type": "last", "span": {"amount": 30, "unit": "days"}}}),
        ),
    ]
}

fn crash_message(number: usize) -> Value {
    let plan = if number.is_multiple_of(3) {
        "pro"
    } else {
        "free"
    };
    if number % 4 == 1 {
        // Every fourth message is an event: it must survive exactly once too.
        return json!({"type": "track", "userId": format!("p-{number}"), "messageId": format!("msg-{number}"),
                      "event": "ping", "properties": {"n": number as i64, "plan": plan}});
    }
    json!({"type": "identify", "userId": format!("p-{number}"), "messageId": format!("msg-{number}"),
           "traits": {"n": number as i64, "plan": plan}})
}

/// Entry point of the child process (does nothing in a normal test run).
#[test]
fn crash_child_entry() {
    if std::env::var("SEGD_CRASH_CHILD").is_ok() {
        run_child();
    }
}

/// Kills a child process with SIGKILL at random moments (during ingest, snapshots and
/// WAL rotations; every third cycle also aborts inside a snapshot via a failpoint),
/// restarts it, and finally checks that every acknowledged message is present exactly
/// once, membership equals a full re-evaluation, and change-log sequences never went
/// backwards. `SEGD_CRASH_CYCLES` (default 5) and `SEGD_CRASH_SEED` tune it.
#[test]
fn killed_at_random_moments_loses_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    if std::env::var("SEGD_CRASH_CHILD").is_ok() {
        return;
    }
    let cycles: usize = std::env::var("SEGD_CRASH_CYCLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("SEGD_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = SUITE.data_dir("kill");
    const BATCHES_PER_CYCLE: usize = 300;
    const BATCH_MESSAGES: usize = 20;
    let mut acknowledged: Vec<usize> = Vec::new();
    let mut highest_head = 0u64;
    let mut next = 0usize;
    for cycle in 0..cycles {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SEGD_CRASH_CHILD", "1")
            .env("SEGD_CRASH_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if cycle % 3 == 2 {
            let point = ["snapshot_before_rename", "snapshot_after_rename"][(cycle / 3) % 2];
            command.env("SEGD_CRASH_FAILPOINT", point);
        }
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        let first = next;
        next += BATCHES_PER_CYCLE * BATCH_MESSAGES;
        let writer = std::thread::spawn(move || {
            for batch in 0..BATCHES_PER_CYCLE {
                let start = first + batch * BATCH_MESSAGES;
                let messages: Vec<Value> =
                    (start..start + BATCH_MESSAGES).map(crash_message).collect();
                let line = json!({ "batch": messages }).to_string();
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(80..600)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let _ = writer.join();
        for line in reader.join().unwrap() {
            if let Some(head) = line.strip_prefix("start head=") {
                let head: u64 = head.parse().unwrap();
                assert!(
                    head >= highest_head,
                    "cycle {cycle}: change-log head {head} restarted below {highest_head}"
                );
            } else if let Some(rest) = line.strip_prefix("ack ") {
                let (ids, head) = rest.split_once(" head=").unwrap();
                highest_head = highest_head.max(head.parse().unwrap());
                acknowledged.extend(
                    ids.split(',')
                        .map(|id| id.trim_start_matches("msg-").parse::<usize>().unwrap()),
                );
            }
        }
    }
    assert!(!acknowledged.is_empty(), "no cycle acknowledged anything");

    let (database, report) = Database::open(
        SUITE.options(&dir),
        std::sync::Arc::new(segd::clock::SystemClock),
    )
    .unwrap();
    let engine = database.engine();
    eprintln!(
        "{cycles} cycles: {} of {next} messages acknowledged, {} profiles; last recovery: {report}",
        acknowledged.len(),
        engine.profile_count()
    );
    assert!(engine.changes().head() >= highest_head, "{report}");
    for number in &acknowledged {
        let id = format!("p-{number}");
        if number % 4 == 1 {
            let card = engine
                .profile_card(&id, 10)
                .unwrap_or_else(|_| panic!("acknowledged event {number} lost; {report}"));
            assert_eq!(card.events.len(), 1, "{id}: {:?}", card.events);
            assert_eq!(
                card.events[0].count, 1,
                "event {number} applied twice; {report}"
            );
            assert_eq!(card.recent_events[0].properties["n"], json!(*number as i64));
            continue;
        }
        let traits = engine
            .traits_of(&id)
            .unwrap_or_else(|_| panic!("acknowledged message {number} lost; {report}"));
        assert_eq!(traits["n"], json!(*number as i64));
    }
    let profiles = engine.profile_count() as usize;
    assert!(profiles >= acknowledged.len() && profiles <= next);
    for (name, rule) in crash_segments() {
        let id = engine.segment_id(name).unwrap();
        let mut stored = engine.all_members(id);
        stored.sort();
        let mut fresh = engine
            .matching_profiles(&serde_json::from_value(rule).unwrap())
            .unwrap();
        fresh.sort();
        assert_eq!(stored, fresh, "segment {name}");
    }
    // Retried messages are recognised: nothing acknowledged is applied twice.
    let retry: Vec<Value> = acknowledged
        .iter()
        .take(5_000)
        .map(|n| crash_message(*n))
        .collect();
    let outcome = database
        .apply(Mutation::Messages(
            parse_batch(&json!({ "batch": retry })).unwrap(),
        ))
        .unwrap()
        .into_batch()
        .unwrap();
    assert_eq!(outcome.duplicates, acknowledged.len().min(5_000));
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}
