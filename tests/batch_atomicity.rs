//! A batch of messages is all-or-nothing, in memory, in the change log and in the WAL.
//!
//! Random good batches build some state in a `Database`; then a random batch of good
//! messages with refused ones injected at random positions (a trait whose type
//! conflicts with its column, a new trait introduced with two types in one batch, a
//! widening that would lose an integer written earlier in the batch, bad identifiers,
//! bad event names, bad trait and property names, values and shapes) must be refused
//! naming the first refused message (`batch[i]`) and leave no trace: the engine, the
//! change log, the WAL (status and files on disk) and the state recovered from disk
//! all equal what they were before. The same batch without its refused messages is
//! then applied and must equal applying its messages one at a time to a reference
//! engine fed the same history.

mod common;

use common::state::create;
use common::strategies::{good_batch, seed_message, spoiled_batch, Spoiled, NOW_MS};
use common::ScratchDir;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use segd::clock::ManualClock;
use segd::engine::{
    Applied, BatchOutcome, Engine, EngineError, EngineOptions, Mutation, StaticEdit,
};
use segd::ingest::{parse_batch, Message};
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseError, DatabaseOptions};
use serde_json::{json, Value};
use std::path::Path;

fn engine_options() -> EngineOptions {
    EngineOptions {
        shards: 3,
        identity_traits: vec!["email".into()],
        ..EngineOptions::default()
    }
}

fn open(dir: &Path) -> Database {
    let options = DatabaseOptions {
        fsync: FsyncPolicy::Never,
        engine: engine_options(),
        ..DatabaseOptions::new(dir)
    };
    let (database, report) = Database::open(options, ManualClock::new(NOW_MS)).unwrap();
    assert_eq!(report.replay_errors, 0, "{report}");
    database
}

fn reference_engine() -> Engine {
    Engine::with_clock(engine_options(), ManualClock::new(NOW_MS))
}

/// Segments reading every kind of thing good messages write (traits of each type,
/// events, other segments, time, a trait the batch under test may create), a static
/// segment, and a seed profile that creates the seeded columns; applied to both.
fn setup(database: &Database, reference: &Engine) {
    let mut mutations = common::state::covering_segments();
    mutations.extend([
        create("picked", None),
        Mutation::Messages(vec![seed_message("seed"), seed_message("u0")]),
    ]);
    for mutation in mutations {
        apply_both(database, reference, mutation);
    }
    let picked = reference.segment_id("picked").unwrap();
    assert_eq!(database.engine().segment_id("picked"), Some(picked));
    let edit = Mutation::EditStatic {
        id: picked,
        edit: StaticEdit::Add,
        profiles: vec!["seed".into(), "u0".into()],
    };
    apply_both(database, reference, edit);
}

/// [`common::state::engine_state`] naming this test's identifiers.
fn engine_state(engine: &Engine, exact: bool) -> Value {
    let external_ids: Vec<String> = common::strategies::IdentifierPools::small()
        .external_ids()
        .chain(["seed".to_string()])
        .collect();
    common::state::engine_state(engine, exact, &external_ids)
}

/// The WAL as the database reports it, and every file in the data directory with its
/// size.
fn wal_state(database: &Database, dir: &Path) -> Value {
    let status = database.wal_status();
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let size = entry.metadata().unwrap().len();
            (entry.file_name().to_string_lossy().into_owned(), size)
        })
        .collect();
    files.sort();
    json!({
        "next_lsn": status.next_lsn,
        "acknowledged_lsn": status.acknowledged_lsn,
        "durable_lsn": status.durable_lsn,
        "current_segment": status.current_segment,
        "batches_written": status.batches_written,
        "records_written": status.records_written,
        "bytes_written": status.bytes_written,
        "failure": status.failure,
        "files": files,
    })
}

fn outcome(applied: Applied) -> BatchOutcome {
    applied.into_batch().expect("a batch outcome")
}

/// Applies `mutation` to the database and the reference engine; both must accept it.
fn apply_both(database: &Database, reference: &Engine, mutation: Mutation) {
    let what = format!("{mutation:?}");
    reference
        .apply(&mutation)
        .unwrap_or_else(|error| panic!("reference refused {what}: {error}"));
    database
        .apply(mutation)
        .unwrap_or_else(|error| panic!("database refused {what}: {error}"));
}

/// The refusal names `index` as `batch[index]`.
fn check_refusal(error: &DatabaseError, index: usize) -> Result<(), TestCaseError> {
    match error {
        DatabaseError::Engine(EngineError::InBatch {
            index: named,
            source,
        }) => {
            prop_assert_eq!(*named, index, "wrong index in `{}`", error);
            prop_assert!(
                !matches!(**source, EngineError::Internal(_)),
                "refused as an internal error: {}",
                error
            );
        }
        other => prop_assert!(
            false,
            "expected a refusal naming batch[{index}], got {other:?}"
        ),
    }
    prop_assert!(
        error.to_string().starts_with(&format!("batch[{index}]: ")),
        "the message does not name batch[{}]: {}",
        index,
        error
    );
    Ok(())
}

fn check_case(history: &[Vec<Message>], spoiled: &Spoiled) -> Result<(), TestCaseError> {
    let dir = ScratchDir::new("atomicity-case");
    let database = open(&dir.0);
    let reference = reference_engine();
    setup(&database, &reference);
    for batch in history {
        apply_both(&database, &reference, Mutation::Messages(batch.clone()));
    }
    let before = engine_state(database.engine(), true);
    prop_assert_eq!(&before, &engine_state(&reference, true));
    let wal_before = wal_state(&database, &dir.0);

    // Refused whole, naming the first refused message, leaving no trace.
    let error = database
        .apply(Mutation::Messages(spoiled.messages.clone()))
        .expect_err("a batch with refused messages was accepted");
    check_refusal(&error, spoiled.bad[0])?;
    prop_assert_eq!(&engine_state(database.engine(), true), &before);
    prop_assert_eq!(&wal_state(&database, &dir.0), &wal_before);
    drop(database);
    let database = open(&dir.0);
    let before_loose = engine_state(&reference, false);
    prop_assert_eq!(&engine_state(database.engine(), false), &before_loose);

    // Without its refused messages the batch applies exactly as its messages one by one.
    let cleaned = spoiled.cleaned();
    let database_head = database.engine().changes().head();
    let reference_head = reference.changes().head();
    let batched = outcome(
        database
            .apply(Mutation::Messages(cleaned.clone()))
            .map_err(|error| TestCaseError::fail(format!("cleaned batch refused: {error}")))?,
    );
    let mut singly = BatchOutcome::default();
    for (index, message) in cleaned.iter().enumerate() {
        let one = outcome(
            reference
                .apply(&Mutation::Messages(vec![message.clone()]))
                .map_err(|error| {
                    TestCaseError::fail(format!("cleaned message {index} refused alone: {error}"))
                })?,
        );
        singly.applied += one.applied;
        singly.duplicates += one.duplicates;
        singly.suppressed += one.suppressed;
        singly.changes += one.changes;
    }
    prop_assert_eq!(&batched, &singly);
    let after = engine_state(database.engine(), false);
    prop_assert_eq!(&after, &engine_state(&reference, false));
    prop_assert_eq!(
        database.engine().changes().head() - database_head,
        reference.changes().head() - reference_head
    );
    // And replaying it gives the same state again.
    drop(database);
    let database = open(&dir.0);
    prop_assert_eq!(&engine_state(database.engine(), false), &after);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn refused_batches_leave_no_trace_and_cleaned_batches_apply_exactly(
        history in proptest::collection::vec(good_batch(1, 8), 0..3),
        spoiled in spoiled_batch((1, 10), 3),
    ) {
        check_case(&history, &spoiled)?;
    }
}

/// The original bug: two messages of one batch introduce the same new trait with two
/// types; the first was applied (creating the column and profile `a1`) before the
/// second failed.
#[test]
fn regression_new_trait_with_two_types_in_one_batch() {
    let dir = ScratchDir::new("atomicity-zz");
    let database = open(&dir.0);
    let reference = reference_engine();
    setup(&database, &reference);
    let batch = parse_batch(&json!({"batch": [
        {"type": "identify", "userId": "a1", "traits": {"zz": 1}},
        {"type": "identify", "userId": "a2", "traits": {"zz": "x"}},
    ]}))
    .unwrap();
    let before = engine_state(database.engine(), true);
    let wal_before = wal_state(&database, &dir.0);

    let error = database
        .apply(Mutation::Messages(batch.clone()))
        .expect_err("zz given two types in one batch was accepted");
    check_refusal(&error, 1).unwrap();
    assert_eq!(error.code(), "invalid_trait");
    assert!(error.to_string().contains("zz"), "{error}");
    assert!(database.engine().schema().lookup("zz").is_none());
    assert!(database.engine().resolve("a1").is_none());
    assert_eq!(engine_state(database.engine(), true), before);
    assert_eq!(wal_state(&database, &dir.0), wal_before);
    drop(database);
    let database = open(&dir.0);
    assert_eq!(
        engine_state(database.engine(), false),
        engine_state(&reference, false)
    );

    // The first message alone is fine; the second then conflicts with the column.
    database
        .apply(Mutation::Messages(batch[..1].to_vec()))
        .unwrap();
    assert!(database.engine().resolve("a1").is_some());
    let error = database
        .apply(Mutation::Messages(batch[1..].to_vec()))
        .expect_err("a string into an integer column was accepted");
    assert_eq!(error.code(), "invalid_trait");
    assert!(database.engine().resolve("a2").is_none());
}
