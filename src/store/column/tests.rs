//! Each column kind against direct checks of its stored values, including updates,
//! clears, the dictionary→arena switch and int→float widening.
use super::numbers::compare_integer_float;
use super::*;
use crate::segment::ast::CompareOp;
use std::cmp::Ordering;

#[test]
fn integer_float_ordering_is_exact() {
    assert_eq!(compare_integer_float(3, 2.5), Ordering::Greater);
    assert_eq!(compare_integer_float(2, 2.5), Ordering::Less);
    assert_eq!(compare_integer_float(2, 2.0), Ordering::Equal);
    assert_eq!(compare_integer_float(-3, -2.5), Ordering::Less);
    assert_eq!(compare_integer_float(i64::MAX, 9.3e18), Ordering::Less);
    assert_eq!(compare_integer_float(i64::MIN, -9.3e18), Ordering::Greater);
    assert_eq!(
        compare_integer_float((1 << 53) + 1, (1u64 << 53) as f64),
        Ordering::Greater
    );
}

#[test]
fn float_column_refines_the_boundary_bucket() {
    let mut column = Column::new(TraitType::Float);
    let values = [300.0, 300.25, 300.5, 299.99, 301.0, -0.5, 0.0];
    for (id, value) in values.iter().enumerate() {
        column.set(id as u32, &TraitValue::Float(*value));
    }
    let universe: RoaringBitmap = (0..10).collect();
    for op in [
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Less,
        CompareOp::LessOrEqual,
        CompareOp::Greater,
        CompareOp::GreaterOrEqual,
    ] {
        for literal in [
            Number::Float(300.25),
            Number::Integer(300),
            Number::Float(-0.25),
            Number::Integer(0),
        ] {
            let got = column.compare_number(op, literal, &universe);
            let expected: RoaringBitmap = values
                .iter()
                .enumerate()
                .filter(|(_, v)| {
                    ordering_satisfies(compare_numbers(Number::Float(**v), literal), op)
                })
                .map(|(id, _)| id as u32)
                .collect();
            assert_eq!(got, expected, "{op:?} {literal:?}");
        }
    }
}

#[test]
fn integer_paths_agree_before_and_after_the_value_index_is_dropped() {
    // Value index (few values), then bit-sliced index and candidate scans (many).
    for distinct in [50i64, SMALL_VALUE_LIMIT as i64 + 50] {
        let mut column = Column::new(TraitType::Integer);
        for id in 0..2_000u32 {
            column.set(
                id,
                &TraitValue::Integer((i64::from(id) * 7919) % distinct - distinct / 2),
            );
        }
        for id in (0..2_000).step_by(3) {
            column.clear(id);
        }
        let full: RoaringBitmap = (0..2_100).collect();
        let narrow: RoaringBitmap = (0..2_100).step_by(11).collect();
        for universe in [&full, &narrow] {
            for literal in [
                Number::Integer(3),
                Number::Float(-2.5),
                Number::Integer(distinct),
            ] {
                for op in [
                    CompareOp::Eq,
                    CompareOp::NotEq,
                    CompareOp::Less,
                    CompareOp::LessOrEqual,
                    CompareOp::Greater,
                    CompareOp::GreaterOrEqual,
                ] {
                    let expected: RoaringBitmap = universe
                        .iter()
                        .filter(|id| match column.get_number(*id) {
                            Some(number) => {
                                ordering_satisfies(compare_numbers(number, literal), op)
                            }
                            None => false,
                        })
                        .collect();
                    assert_eq!(
                        column.compare_number(op, literal, universe),
                        expected,
                        "{distinct} {op:?} {literal:?}"
                    );
                }
            }
            let expected: RoaringBitmap = universe
                .iter()
                .filter(|id| {
                    column.get_number(*id).is_some_and(|n| {
                        compare_numbers(n, Number::Integer(-5)).is_ge()
                            && compare_numbers(n, Number::Float(10.5)).is_le()
                    })
                })
                .collect();
            assert_eq!(
                column.between_numbers(Number::Integer(-5), Number::Float(10.5), universe),
                expected
            );
        }
    }
}

#[test]
fn dictionary_switches_to_arena_and_keeps_values() {
    let mut column = Column::new(TraitType::String);
    for id in 0..(DICTIONARY_LIMIT as u32 + 10) {
        column.set(id, &TraitValue::String(format!("user{id}@example.com")));
    }
    assert!(matches!(column.data, ColumnData::Arena(_)));
    assert_eq!(column.get_str(7), Some("user7@example.com"));
    column.set(7, &TraitValue::String("changed".into()));
    column.clear(8);
    assert_eq!(column.get_str(7), Some("changed"));
    assert_eq!(column.get(8), None);
    let universe: RoaringBitmap = (0..20).collect();
    let found = column.strings_matching(&universe, |text| text.ends_with("9@example.com"));
    assert_eq!(found.iter().collect::<Vec<_>>(), vec![9, 19]);
}

#[test]
fn widening_keeps_values_and_index() {
    let mut column = Column::new(TraitType::Integer);
    column.set(1, &TraitValue::Integer(10));
    column.set(2, &TraitValue::Integer(-4));
    column.widen_to_float();
    column.set(3, &TraitValue::Float(10.5));
    let universe: RoaringBitmap = (0..5).collect();
    let got = column.compare_number(CompareOp::GreaterOrEqual, Number::Integer(10), &universe);
    assert_eq!(got.iter().collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(column.get(2), Some(TraitValue::Float(-4.0)));
}

#[test]
fn list_updates_replace_the_whole_set() {
    let mut column = Column::new(TraitType::List);
    column.set(1, &TraitValue::List(vec!["a".into(), "b".into()]));
    column.set(1, &TraitValue::List(vec!["c".into()]));
    assert_eq!(column.get(1), Some(TraitValue::List(vec!["c".into()])));
    assert!(!column.list_contains(1, "a"));
    column.clear(1);
    assert!(!column.list_contains(1, "c"));
}

/// splitmix64: seeded values for the range-index tests.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

fn random_value(trait_type: TraitType, state: &mut u64) -> TraitValue {
    let pick = next(state);
    match trait_type {
        TraitType::Float => TraitValue::Float(match pick % 7 {
            0 => 300.0,
            1 => -0.0,
            2 => 1e300,
            3 => -1e300,
            _ => (pick % 4_000) as f64 / 4.0 - 500.0,
        }),
        TraitType::Timestamp => TraitValue::Timestamp(match pick % 6 {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => 1_750_000_000_000 + (pick % 10_000) as i64 - 5_000,
        }),
        _ => TraitValue::Integer(match pick % 6 {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => 0,
            _ => (pick % 600) as i64 - 300,
        }),
    }
}

/// Intervals around the interesting values: extremes, fractions, exact ms.
fn random_interval(state: &mut u64) -> Interval {
    let literal = |state: &mut u64| {
        let pick = next(state);
        match pick % 9 {
            0 => Number::Integer(i64::MIN),
            1 => Number::Integer(i64::MAX),
            2 => Number::Float(300.0),
            3 => Number::Float(-0.25),
            4 => Number::Float(9.3e18),
            5 => Number::Integer(1_750_000_000_000 + (pick % 10_000) as i64 - 5_000),
            6 => Number::Float((pick % 4_000) as f64 / 4.0 - 500.0),
            _ => Number::Integer((pick % 600) as i64 - 300),
        }
    };
    let bound = |state: &mut u64| match next(state) % 3 {
        0 => None,
        inclusive => Some((literal(state), inclusive == 1)),
    };
    Interval {
        low: bound(state),
        high: bound(state),
    }
}

/// The range index answers exactly like the values: after a build, with values changed
/// since (the dirty ids), with values changed *while* a build sorted (the swap keeps
/// them dirty), after a rebuild, and through the count path; for integers, floats and
/// timestamps with extremes, -0.0 and ms boundaries.
#[test]
fn range_index_agrees_with_the_values_through_changes_and_builds() {
    let mut state = 7;
    for trait_type in [TraitType::Integer, TraitType::Float, TraitType::Timestamp] {
        let size = 5_000u32;
        let mut column = Column::new(trait_type);
        for id in 0..size {
            if !next(&mut state).is_multiple_of(10) {
                column.set(id, &random_value(trait_type, &mut state));
            }
        }
        let check = |column: &Column, state: &mut u64, round: &str| {
            assert!(column.range_index_usable(), "{round}: index usable");
            let everyone: RoaringBitmap = (0..size + 10).collect();
            let narrow: RoaringBitmap = (0..size).filter(|id| id % 3 != 1).collect();
            for _ in 0..60 {
                let interval = random_interval(state);
                for universe in [&everyone, &narrow] {
                    let expected: RoaringBitmap = universe
                        .iter()
                        .filter(|id| match column.get(*id) {
                            Some(TraitValue::Integer(v) | TraitValue::Timestamp(v)) => {
                                interval.contains(Number::Integer(v))
                            }
                            Some(TraitValue::Float(v)) => interval.contains(Number::Float(v)),
                            _ => false,
                        })
                        .collect();
                    let found = column.interval_from_index(&interval, universe).unwrap();
                    assert_eq!(found, expected, "{round} {trait_type:?} {interval:?}");
                    let (count, sample) = column
                        .interval_count_sample(&interval, universe, 10)
                        .unwrap();
                    assert_eq!(count, expected.len(), "{round} count {interval:?}");
                    let first: Vec<u32> = expected.iter().take(10).collect();
                    assert_eq!(sample, first, "{round} sample {interval:?}");
                }
            }
        };
        let built = column.range_build_input().unwrap().build();
        assert!(column.install_range(built));
        assert_eq!(column.range_status(), (true, 0));
        check(&column, &mut state, "fresh build");
        // Changes after the build: answered through the dirty ids.
        for _ in 0..300 {
            let id = (next(&mut state) % u64::from(size)) as u32;
            if next(&mut state).is_multiple_of(4) {
                column.clear(id);
            } else {
                column.set(id, &random_value(trait_type, &mut state));
            }
        }
        assert!(column.range_status().1 > 0);
        check(&column, &mut state, "dirty");
        // Changes while a build sorts: copied before, installed after.
        let input = column.range_build_input().unwrap();
        for _ in 0..200 {
            let id = (next(&mut state) % u64::from(size)) as u32;
            column.set(id, &random_value(trait_type, &mut state));
        }
        assert!(column.install_range(input.build()));
        check(&column, &mut state, "changed during build");
        // A clean rebuild leaves nothing dirty.
        let built = column.range_build_input().unwrap().build();
        assert!(column.install_range(built));
        assert_eq!(column.range_status(), (true, 0));
        check(&column, &mut state, "rebuilt");
        // The ordinary entry points answer from the index too.
        let universe: RoaringBitmap = (0..size).collect();
        if trait_type != TraitType::Timestamp {
            let got = column.compare_number(CompareOp::Greater, Number::Integer(3), &universe);
            let expected: RoaringBitmap = universe
                .iter()
                .filter(|id| {
                    column
                        .get_number(*id)
                        .is_some_and(|n| compare_numbers(n, Number::Integer(3)).is_gt())
                })
                .collect();
            assert_eq!(got, expected);
        }
    }
}

#[test]
fn widening_drops_the_integer_range_index_and_builds_in_flight() {
    let mut column = Column::new(TraitType::Integer);
    column.set(1, &TraitValue::Integer(10));
    let input = column.range_build_input().unwrap();
    column.widen_to_float();
    assert!(
        !column.install_range(input.build()),
        "a pre-widening build is dropped"
    );
    assert_eq!(column.range_status(), (false, 0));
    let built = column.range_build_input().unwrap().build();
    assert!(column.install_range(built));
    let universe: RoaringBitmap = (0..3).collect();
    let interval = Interval::compare(CompareOp::GreaterOrEqual, Number::Float(9.5)).unwrap();
    let found = column.interval_from_index(&interval, &universe).unwrap();
    assert_eq!(found.iter().collect::<Vec<_>>(), vec![1]);
}
