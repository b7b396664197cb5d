//! A bounded run of the fuzz targets' entry points (see tools/fuzz) in the normal
//! suite: arbitrary bytes, and real inputs with random byte flips, truncations and
//! insertions, fed to the WAL segment scanner and record decoder, the snapshot
//! decoder (manifest and shard), the rule parser (text and JSON AST) and the ingest
//! body parser. Each must return, never panic. Seeded by proptest; bounded cases.

use proptest::prelude::*;
use segd::clock::ManualClock;
use segd::engine::Mutation as EngineMutation;
use segd::engine::{EngineOptions, RuleInput};
use segd::ingest::body::{parse_batch_body, parse_message_body};
use segd::persist::record::WalRecord;
use segd::persist::snapshot::decode_untrusted;
use segd::persist::wal::{list_segments, scan_segment, FsyncPolicy};
use segd::persist::{Database, DatabaseOptions};
use segd::segment::ast::Rule;
use segd::segment::parser::parse_rule;
use serde_json::json;
use std::sync::OnceLock;

/// Real files to mutate: a WAL segment, a manifest and a shard.
struct Seeds {
    wal: Vec<u8>,
    manifest: Vec<u8>,
    shard: Vec<u8>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("segd-fuzz-seeds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (database, _) = Database::open(
            DatabaseOptions {
                fsync: FsyncPolicy::Never,
                engine: EngineOptions {
                    shards: 1,
                    ..EngineOptions::default()
                },
                ..DatabaseOptions::new(&dir)
            },
            ManualClock::new(1_750_000_000_000),
        )
        .unwrap();
        let batch = segd::ingest::parse_batch(&json!({"batch": [
            {"type": "identify", "userId": "u1", "anonymousId": "a1",
             "traits": {"plan": "pro", "n": 3, "f": 1.5, "ok": true, "tags": ["x", "y"], "at": "2025-01-01T00:00:00Z"}},
            {"type": "track", "userId": "u1", "event": "order", "properties": {"amount": 5, "sku": "s"}},
            {"type": "alias", "userId": "u2", "previousId": "u1"}
        ]}))
        .unwrap();
        database.apply(EngineMutation::Messages(batch)).unwrap();
        database
            .apply(EngineMutation::CreateSegment {
                name: "pro".into(),
                description: "d".into(),
                rule: Some(parse_rule("plan = \"pro\" and n > 1").unwrap()),
                emit_initial: false,
            })
            .unwrap();
        let (_, segment) = list_segments(&dir).unwrap().pop().unwrap();
        let wal = std::fs::read(segment).unwrap();
        let snapshot = database.snapshot_now().unwrap();
        let manifest = std::fs::read(snapshot.path.join("manifest.seg")).unwrap();
        let shard = std::fs::read(snapshot.path.join("shard-0000.seg")).unwrap();
        drop(database);
        let _ = std::fs::remove_dir_all(&dir);
        Seeds {
            wal,
            manifest,
            shard,
        }
    })
}

const RULE_TEXT: &str = "did \"order\" where amount > 100 at least 3 times in last 30 days and (plan in (\"a\", \"b\") or not has phone) and random bucket 10% salt \"s\"";

/// The JSON AST of [`RULE_TEXT`].
fn rule_json() -> Vec<u8> {
    serde_json::to_vec(&parse_rule(RULE_TEXT).unwrap()).unwrap()
}
const BATCH: &str = r#"{"batch": [{"type": "identify", "userId": "u", "traits": {"a": {"b": [1, "x"]}}}, {"type": "page", "anonymousId": "a", "context": {"campaign": {"name": "n"}}}]}"#;

/// A mutation of a seed: byte flips, then a truncation, then an insertion.
#[derive(Clone, Debug)]
struct Mutation {
    flips: Vec<(usize, u8)>,
    cut: Option<usize>,
    insert: Option<(usize, Vec<u8>)>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<usize>(), 1..=255u8), 0..6),
        prop::option::of(any::<usize>()),
        prop::option::of((any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))),
    )
        .prop_map(|(flips, cut, insert)| Mutation { flips, cut, insert })
}

fn apply(seed: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    if bytes.is_empty() {
        return bytes;
    }
    for (at, mask) in &mutation.flips {
        let index = at % bytes.len();
        bytes[index] ^= mask;
    }
    if let Some(cut) = mutation.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    if let Some((at, extra)) = &mutation.insert {
        let index = at % (bytes.len() + 1);
        bytes.splice(index..index, extra.iter().copied());
    }
    bytes
}

fn wal_entry_point(bytes: &[u8]) {
    let scan = scan_segment(bytes);
    for batch in &scan.batches {
        for item in &batch.items {
            let _ = WalRecord::decode(item);
        }
    }
    let _ = WalRecord::decode(bytes);
}

fn rule_entry_point(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_rule(text);
    }
    if let Ok(rule) = serde_json::from_slice::<Rule>(bytes) {
        let _ = RuleInput::Ast(rule).into_rule();
    }
}

fn ingest_entry_point(bytes: &[u8]) {
    let _ = parse_batch_body(bytes);
    let _ = parse_message_body(bytes, "track");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        wal_entry_point(&bytes);
        let _ = decode_untrusted(&bytes, None);
        let _ = decode_untrusted(&bytes, Some(&seeds().manifest));
        rule_entry_point(&bytes);
        ingest_entry_point(&bytes);
    }

    #[test]
    fn mutated_wal_segments_never_panic(mutation in mutation()) {
        wal_entry_point(&apply(&seeds().wal, &mutation));
    }

    #[test]
    fn mutated_snapshots_never_panic(mutation in mutation()) {
        let seeds = seeds();
        let _ = decode_untrusted(&apply(&seeds.manifest, &mutation), None);
        let _ = decode_untrusted(&apply(&seeds.shard, &mutation), Some(&seeds.manifest));
    }

    #[test]
    fn mutated_rules_never_panic(mutation in mutation()) {
        rule_entry_point(&apply(RULE_TEXT.as_bytes(), &mutation));
        rule_entry_point(&apply(&rule_json(), &mutation));
    }

    #[test]
    fn mutated_ingest_bodies_never_panic(mutation in mutation()) {
        ingest_entry_point(&apply(BATCH.as_bytes(), &mutation));
    }
}

#[test]
fn seeds_decode_unmutated() {
    let seeds = seeds();
    let scan = scan_segment(&seeds.wal);
    assert!(scan.damage.is_none() && !scan.batches.is_empty());
    assert!(decode_untrusted(&seeds.manifest, None).is_ok());
    assert!(decode_untrusted(&seeds.shard, Some(&seeds.manifest)).is_ok());
    assert!(parse_rule(RULE_TEXT).is_ok());
    assert!(serde_json::from_slice::<Rule>(&rule_json()).is_ok());
    assert_eq!(parse_batch_body(BATCH.as_bytes()).unwrap().len(), 2);
}
