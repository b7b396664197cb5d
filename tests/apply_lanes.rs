//! Apply lanes (a batch's messages applied in parallel, one lane per group of shards)
//! give exactly the result of applying the messages one at a time.
//!
//! Random histories and big batches of good messages are applied as whole batches by a
//! `Database` whose engine has 4 lanes over 8 shards, and one message at a time by a
//! one-lane reference engine. Identifiers come from pools large enough that most
//! messages name one profile (so lanes get long runs), yet merges (userId with an
//! anonymousId), aliases, identity-trait (`email`) changes, new traits and widenings
//! occur and must act as barriers. Every observable must be equal — profiles,
//! identifier owners, members, schema, the change log *with its sequence numbers*,
//! counters, timers — and reopening the data directory (replay, itself laned) must give
//! the same state again. Batches are mostly single-profile messages with any good
//! message now and then, so runs are long enough to go parallel.

mod common;

use common::state::{covering_segments, engine_state};
use common::strategies::{
    good_message_from, seed_message, single_profile_message_from, IdentifierPools, NOW_MS,
};
use common::ScratchDir;
use proptest::prelude::*;
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineOptions, Mutation};
use segd::ingest::{Message, MessageKind};
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseOptions};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;

fn options(apply_lanes: usize) -> EngineOptions {
    EngineOptions {
        shards: 8,
        apply_lanes,
        identity_traits: vec!["email".into()],
        ..EngineOptions::default()
    }
}

fn open(dir: &Path) -> Database {
    let options = DatabaseOptions {
        fsync: FsyncPolicy::Never,
        engine: options(4),
        ..DatabaseOptions::new(dir)
    };
    let (database, report) = Database::open(options, ManualClock::new(NOW_MS)).unwrap();
    assert_eq!(report.replay_errors, 0, "{report}");
    assert_eq!(database.engine().apply_lanes(), 4);
    database
}

fn pools() -> IdentifierPools {
    IdentifierPools::sized(40, 12)
}

fn external_ids() -> Vec<String> {
    pools().external_ids().chain(["seed".to_string()]).collect()
}

/// Applies `batches` as whole batches to a laned database and one message at a time
/// to a one-lane engine, compares, reopens, compares again; returns the laned engine's
/// count of parallel runs.
fn check(batches: &[Vec<Message>]) -> Result<u64, TestCaseError> {
    let dir = ScratchDir::new("lanes");
    let database = open(&dir.0);
    let reference = Engine::with_clock(options(1), ManualClock::new(NOW_MS));
    assert_eq!(reference.apply_lanes(), 1);
    let mut setup = covering_segments();
    setup.push(Mutation::Messages(vec![seed_message("seed")]));
    for mutation in setup {
        database.apply(mutation.clone()).unwrap();
        reference.apply(&mutation).unwrap();
    }
    for batch in batches {
        database
            .apply(Mutation::Messages(batch.clone()))
            .map_err(|error| TestCaseError::fail(format!("batch refused: {error}")))?;
        for message in batch {
            reference
                .apply(&Mutation::Messages(vec![message.clone()]))
                .map_err(|error| TestCaseError::fail(format!("message refused: {error}")))?;
        }
    }
    let ids = external_ids();
    let laned = engine_state(database.engine(), true, &ids);
    prop_assert_eq!(&laned, &engine_state(&reference, true, &ids));
    let parallel_runs = database
        .engine()
        .counters
        .parallel_runs
        .load(Ordering::Relaxed);
    drop(database);
    let reopened = open(&dir.0);
    prop_assert_eq!(
        engine_state(reopened.engine(), false, &ids),
        engine_state(&reference, false, &ids)
    );
    Ok(parallel_runs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn laned_batches_equal_one_message_at_a_time(
        batches in proptest::collection::vec(proptest::collection::vec(
            // Mostly messages lanes can run side by side, with any good message
            // (merges, aliases, email changes, new traits) now and then.
            prop_oneof![
                10 => single_profile_message_from(&pools()),
                1 => good_message_from(&pools()),
            ],
            16..=80,
        ), 1..4),
    ) {
        check(&batches)?;
    }
}

fn identify(user_id: &str, traits: serde_json::Value) -> Message {
    Message {
        kind: MessageKind::Identify {
            traits: traits.as_object().unwrap().clone(),
        },
        user_id: Some(user_id.into()),
        anonymous_id: None,
        message_id: None,
        timestamp_ms: None,
    }
}

/// A batch built to use the lanes (64 distinct profiles created and updated, a
/// merge and an email change in the middle as barriers): it must really run in
/// parallel, and still equal serial application.
#[test]
fn a_wide_batch_runs_over_the_lanes_and_equals_serial() {
    let mut batch: Vec<Message> = (0..40)
        .map(|n| identify(&format!("u{n}"), json!({"plan": "pro", "age": n})))
        .collect();
    batch.push(identify("u3", json!({"email": "e0@x.test"})));
    batch.push(identify("u4", json!({"email": "e0@x.test"}))); // merges u3 into u4
    batch.push(identify("u4", json!({"email": "e1@x.test"}))); // moves the email key
    batch.extend((0..40).map(|n| {
        let mut message = identify(&format!("u{n}"), json!({"age": 100 - n}));
        if n % 3 == 0 {
            message.kind = MessageKind::Track {
                event: "buy".into(),
                properties: Default::default(),
            };
            message.timestamp_ms = Some(NOW_MS - 1_000);
        }
        message
    }));
    let parallel_runs = check(&[batch]).unwrap();
    assert!(parallel_runs >= 2, "only {parallel_runs} parallel runs");
}
