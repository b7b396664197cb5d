//! Unit tests: both formats against the ordinary engine paths, rejections and limits.

use super::*;
use crate::bulk::{csv_header, csv_row, five_condition_rule, identify_message, load_demo};
use crate::demo::DemoGenerator;
use crate::engine::{Engine, EngineOptions, RuleInput};
use crate::segment::ast::{CompareOp, Literal, Rule};
use crate::store::value::{TraitType, TraitValue};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn with(contents: &str) -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "segd-import-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn generated_csv(generator: &DemoGenerator, count: u64) -> String {
    let mut text = csv_header();
    text.push('\n');
    for index in 0..count {
        csv_row(&generator.profile(index), &mut text);
        text.push('\n');
    }
    text
}

fn engine() -> Engine {
    Engine::new(EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    })
}

fn import(engine: &Engine, text: &str) -> Result<ImportSummary, ImportError> {
    let file = TempFile::with(text);
    import_csv(engine, &file.0, &ImportOptions::default(), &mut |_| {})
}

fn german() -> Rule {
    Rule::Compare {
        trait_name: "country".into(),
        op: CompareOp::Eq,
        value: Literal::String("DE".into()),
    }
}

#[test]
fn csv_import_gives_the_same_answers_as_the_ordinary_path() {
    let generator = DemoGenerator::new(11);
    let imported = engine();
    // A segment that exists before the import is evaluated once at the end.
    let segment = imported
        .create_segment("german", "", Some(RuleInput::Ast(german())))
        .unwrap();
    let summary = import(&imported, &generated_csv(&generator, 3_000)).unwrap();
    assert_eq!(summary.rows, 3_000);
    assert_eq!(summary.profiles_created, 3_000);
    assert_eq!(summary.rejected, 0, "{:?}", summary.rejected_examples);
    assert_eq!(imported.profile_count(), 3_000);

    let reference = engine();
    load_demo(&reference, &generator, 3_000, 0, 2).unwrap();
    let rule = five_condition_rule();
    assert_eq!(
        imported.count_rule(&rule).unwrap(),
        reference.count_rule(&rule).unwrap()
    );
    assert_eq!(
        imported.count(segment.id),
        reference.count_rule(&german()).unwrap()
    );
    assert!(imported.count(segment.id) > 0);
    for index in [0, 1, 17, 2_999] {
        let user = format!("user-{index}");
        let expected = reference.traits_of(&user).unwrap();
        let got = imported.traits_of(&user).unwrap();
        for name in [
            "email",
            "age",
            "country",
            "ltv",
            "signup_at",
            "push_enabled",
        ] {
            assert_eq!(got.get(name), expected.get(name), "{user} {name}");
        }
        let anonymous = generator.profile(index).anonymous_id;
        assert_eq!(
            imported.resolve(&format!("anon:{anonymous}")),
            imported.resolve(&user)
        );
        assert_eq!(
            imported.is_member(segment.id, &user).unwrap(),
            expected["country"] == "DE"
        );
    }
}

#[test]
fn rows_for_known_profiles_update_them_through_the_ordinary_path() {
    let engine = engine();
    engine
        .identify(Some("known"), None, &serde_json::Map::new())
        .unwrap();
    let summary = import(
        &engine,
        "user_id,age:integer,city\nknown,30,Berlin\nnew,41,Paris\nnew,42,\n",
    )
    .unwrap();
    assert_eq!(summary.profiles_created, 1);
    assert_eq!(summary.applied_individually, 2);
    assert_eq!(engine.profile_count(), 2);
    let known = engine.traits_of("known").unwrap();
    assert_eq!(known["age"], 30);
    assert_eq!(known["city"], "Berlin");
    let new = engine.traits_of("new").unwrap();
    assert_eq!(new["age"], 42, "the later row wins");
    assert_eq!(new["city"], "Paris", "an empty cell leaves the trait unset");
}

#[test]
fn bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported() {
    let engine = engine();
    let text = "user_id,anonymous_id,age:integer,vip:boolean,tags:list,seen:timestamp\n\
                    a,,1,true,x|y,2024-01-01\n\
                    b,,old,true,,\n\
                    c,,3,maybe,,\n\
                    d,,4,true\n\
                    ,,5,true,,\n\
                    \"e,,6,true,,\n\
                    f,,7,false,\"q,r\",1700000000000\n";
    let summary = import(&engine, text).unwrap();
    assert_eq!(summary.rows, 7);
    assert_eq!(summary.profiles_created, 2);
    assert_eq!(summary.rejected, 5);
    let codes: Vec<(u64, &str)> = summary
        .rejected_examples
        .iter()
        .map(|row| (row.line, row.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (3, "invalid_trait"),
            (4, "invalid_trait"),
            (5, "csv_wrong_cell_count"),
            (6, "missing_identifier"),
            (7, "csv_bad_quoting"),
        ]
    );
    assert!(summary.rejected_examples[0].reason.contains("`age`"));
    let a = engine.traits_of("a").unwrap();
    assert_eq!(a["tags"], serde_json::json!(["x", "y"]));
    assert_eq!(a["seen"], "2024-01-01T00:00:00.000Z");
    let f = engine.traits_of("f").unwrap();
    assert_eq!(f["tags"], serde_json::json!(["q,r"]));
    assert_eq!(f["seen"], "2023-11-14T22:13:20.000Z");
}

#[test]
fn header_problems_stop_the_import_with_their_own_codes() {
    let cases = [
        ("user_id,age:number\n", "import_bad_header"),
        ("age:integer,city\n", "import_bad_header"),
        ("user_id,city,city\n", "import_bad_header"),
        ("", "import_empty"),
    ];
    for (text, code) in cases {
        let error = import(&engine(), text).unwrap_err();
        assert_eq!(error.code(), code, "{text:?}: {error}");
    }
    let engine = engine();
    let mut traits = serde_json::Map::new();
    traits.insert("city".into(), "Berlin".into());
    engine.identify(Some("x"), None, &traits).unwrap();
    let error = import(&engine, "user_id,city:integer\ny,5\n").unwrap_err();
    assert_eq!(error.code(), "import_type_conflict");
    assert!(error.to_string().contains("city"));
}

#[test]
fn integers_coerce_into_existing_float_columns() {
    let engine = engine();
    let mut traits = serde_json::Map::new();
    traits.insert("ltv".into(), 1.5.into());
    engine.identify(Some("x"), None, &traits).unwrap();
    import(&engine, "user_id,ltv:integer\ny,7\n").unwrap();
    assert_eq!(engine.traits_of("y").unwrap()["ltv"], 7.0);
}

#[test]
fn large_files_are_read_in_chunks_with_correct_line_numbers() {
    let generator = DemoGenerator::new(3);
    let mut text = generated_csv(&generator, 14_000);
    assert!(text.len() > 2 * MAX_LINE_BYTES, "needs several chunks");
    text.push_str("broken,row\n");
    let file = TempFile::with(&text);
    let mut reports = Vec::new();
    let options = ImportOptions {
        chunk_bytes: 0,
        ..ImportOptions::default()
    };
    let summary = import_csv(&engine(), &file.0, &options, &mut |progress| {
        reports.push(progress.clone())
    })
    .unwrap();
    assert!(reports.len() >= 2, "{reports:?}");
    assert_eq!(reports.last().unwrap().bytes_read, text.len() as u64);
    assert_eq!(summary.profiles_created, 14_000);
    assert_eq!(summary.rejected_examples[0].line, 14_002);
}

#[test]
fn overlong_lines_stop_the_import() {
    let mut text = String::from("user_id,note\nu1,");
    text.push_str(&"x".repeat(MAX_LINE_BYTES + 10));
    text.push('\n');
    let error = import(&engine(), &text).unwrap_err();
    assert_eq!(error.code(), "import_line_too_long");
    assert!(error.to_string().contains("line 2"));
}

#[test]
fn ndjson_import_applies_messages_and_batches_in_order() {
    let generator = DemoGenerator::new(4);
    let mut text = String::new();
    for index in 0..200 {
        let message = identify_message(&generator, index, generator.profile(index));
        text.push_str(&message.to_string());
        text.push('\n');
    }
    text.push_str("{not json}\n");
    text.push_str(r#"{"batch": [{"type": "identify", "userId": "user-0", "traits": {"age": 99}}, {"type": "identify", "userId": "late", "traits": {"age": 1}}]}"#);
    text.push('\n');
    text.push_str(r#"{"type": "identify", "traits": {"age": 2}}"#);
    text.push('\n');
    let file = TempFile::with(&text);
    let engine = engine();
    let summary = import_ndjson(&engine, &file.0, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(summary.rows, 204);
    assert_eq!(summary.applied_individually, 202);
    assert_eq!(summary.rejected, 2);
    assert_eq!(summary.rejected_examples[0].line, 201);
    assert_eq!(summary.rejected_examples[0].code, "invalid_json");
    assert_eq!(summary.rejected_examples[1].line, 203);
    assert_eq!(engine.profile_count(), 201);
    assert_eq!(engine.traits_of("user-0").unwrap()["age"], 99);
    // Re-importing the same file: every message with a messageId is a duplicate.
    let again = import_ndjson(&engine, &file.0, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(again.duplicates, 200);
}

/// `Column::extend_fresh` (the bulk path) must leave a column exactly as the same
/// values stored one by one with `Column::set` would: values, presence, indexes.
#[test]
fn bulk_column_writes_equal_one_by_one_writes() {
    use crate::segment::ast::CompareOp;
    use crate::store::column::{Column, Number};
    use roaring::RoaringBitmap;
    let count = 6_000u32;
    let value_of = |trait_type: TraitType, id: u32| -> Option<TraitValue> {
        if id % 7 == 3 {
            return None; // absent
        }
        Some(match trait_type {
            // More than DICTIONARY_LIMIT distinct values: converts to the arena form.
            TraitType::String => TraitValue::String(format!("v{}", id % 5_000)),
            TraitType::Integer => TraitValue::Integer(i64::from(id % 300) - 20),
            TraitType::Float => TraitValue::Float(f64::from(id) * 0.37 - 100.0),
            TraitType::Boolean => TraitValue::Boolean(id.is_multiple_of(3)),
            TraitType::Timestamp => {
                TraitValue::Timestamp(1_700_000_000_000 + i64::from(id) * 61_001)
            }
            TraitType::List => TraitValue::List(
                (0..id % 3)
                    .map(|item| format!("t{}", (id + item) % 9))
                    .collect(),
            ),
        })
    };
    for trait_type in [
        TraitType::String,
        TraitType::Integer,
        TraitType::Float,
        TraitType::Boolean,
        TraitType::Timestamp,
        TraitType::List,
    ] {
        let mut one_by_one = Column::new(trait_type);
        let mut bulk = Column::new(trait_type);
        let entries: Vec<(u32, TraitValue)> = (0..count)
            .filter_map(|id| value_of(trait_type, id).map(|value| (id, value)))
            .collect();
        for (id, value) in &entries {
            one_by_one.set(*id, value);
        }
        // Two batches, and a third out of order (falls back to `set`).
        let (first, rest) = entries.split_at(entries.len() / 2);
        let (second, third) = rest.split_at(rest.len() - 10);
        bulk.extend_fresh(first);
        bulk.extend_fresh(second);
        let mut reversed = third.to_vec();
        reversed.reverse();
        bulk.extend_fresh(&reversed);
        assert_eq!(bulk.present, one_by_one.present, "{trait_type}");
        for id in 0..count {
            assert_eq!(bulk.get(id), one_by_one.get(id), "{trait_type} id {id}");
        }
        let universe: RoaringBitmap = (0..count).collect();
        match trait_type {
            TraitType::Integer | TraitType::Float => {
                for op in [CompareOp::Less, CompareOp::Eq, CompareOp::GreaterOrEqual] {
                    for literal in [
                        Number::Integer(-5),
                        Number::Integer(100),
                        Number::Float(0.5),
                    ] {
                        assert_eq!(
                            bulk.compare_number(op, literal, &universe),
                            one_by_one.compare_number(op, literal, &universe),
                            "{trait_type} {op:?} {literal:?}"
                        );
                    }
                }
            }
            TraitType::Timestamp => {
                let middle = 1_700_000_000_000 + 3_000 * 61_001;
                assert_eq!(
                    bulk.compare_timestamp(CompareOp::Greater, middle, &universe),
                    one_by_one.compare_timestamp(CompareOp::Greater, middle, &universe)
                );
            }
            TraitType::String => assert_eq!(
                bulk.strings_equal_any(&["v10", "v4999"], &universe),
                one_by_one.strings_equal_any(&["v10", "v4999"], &universe)
            ),
            TraitType::Boolean => assert_eq!(
                bulk.booleans_equal(true, &universe),
                one_by_one.booleans_equal(true, &universe)
            ),
            TraitType::List => assert_eq!(
                bulk.list_contains_any(&["t1", "t8"], &universe),
                one_by_one.list_contains_any(&["t1", "t8"], &universe)
            ),
        }
    }
    // Low-cardinality strings stay a dictionary; borrowed-text writes agree too.
    let mut one_by_one = Column::new(TraitType::String);
    let mut bulk = Column::new(TraitType::String);
    let texts: Vec<(u32, String)> = (0..count).map(|id| (id, format!("c{}", id % 40))).collect();
    for (id, text) in &texts {
        one_by_one.set(*id, &TraitValue::String(text.clone()));
    }
    let borrowed: Vec<(u32, &str)> = texts
        .iter()
        .map(|(id, text)| (*id, text.as_str()))
        .collect();
    bulk.extend_fresh_strings(&borrowed);
    assert_eq!(bulk.value_counts(), one_by_one.value_counts());
    assert!(bulk.value_counts().is_some(), "still a dictionary");
}

#[test]
fn the_format_comes_from_the_extension_or_the_first_byte() {
    let csv = TempFile::with("user_id,age:integer\nu,1\n");
    let ndjson = TempFile::with(
        "\n  {\"type\": \"identify\", \"userId\": \"u\", \"traits\": {\"age\": 2}}\n",
    );
    let blank = TempFile::with(" \n\n");
    assert_eq!(ImportFormat::detect(&csv.0).unwrap(), ImportFormat::Csv);
    assert_eq!(
        ImportFormat::detect(&ndjson.0).unwrap(),
        ImportFormat::Ndjson
    );
    assert_eq!(
        ImportFormat::detect(&blank.0).unwrap_err().code(),
        "import_empty"
    );
    assert_eq!(
        ImportFormat::detect(Path::new("/nonexistent/x.ndjson")).unwrap(),
        ImportFormat::Ndjson
    );
    assert_eq!(
        ImportFormat::detect(Path::new("/nonexistent/x"))
            .unwrap_err()
            .code(),
        "import_io"
    );
    let engine = engine();
    let (format, summary) =
        import_path(&engine, &ndjson.0, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(
        (format, summary.applied_individually),
        (ImportFormat::Ndjson, 1)
    );
    let (format, summary) =
        import_path(&engine, &csv.0, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(format, ImportFormat::Csv);
    assert_eq!(summary.applied_individually, 1, "u exists: updated");
    assert_eq!(engine.traits_of("u").unwrap()["age"], 1);
}

#[test]
fn every_rejected_row_is_counted_but_only_the_first_hundred_are_kept() {
    let mut text = String::from("user_id,age:integer\n");
    for index in 0..(MAX_REJECTED_EXAMPLES + 50) {
        text.push_str(&format!("u{index},not-a-number\n"));
    }
    text.push_str("ok,5\n");
    let engine = engine();
    let summary = import(&engine, &text).unwrap();
    assert_eq!(summary.rejected, (MAX_REJECTED_EXAMPLES + 50) as u64);
    assert_eq!(summary.rejected_examples.len(), MAX_REJECTED_EXAMPLES);
    assert_eq!(summary.rejected_examples[0].line, 2);
    assert_eq!(summary.profiles_created, 1);
}
