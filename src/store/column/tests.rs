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
