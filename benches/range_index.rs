//! Range-index alternatives at 1M profiles (issue 10, BENCHMARKS.md "Range indexes").
//!
//! The demo's `ltv` (float), `age` (integer) and `signup_at` (timestamp) values of 1M
//! seeded profiles, split like the engine into 16 shards of dense ids, answered over the
//! whole population by:
//! - `bsi`: the engine's bit-sliced index (`segd::index::bsi`) on the same coarse keys
//!   the columns use (floor for floats, minute for timestamps) plus the exact check of
//!   the boundary key, as `store::column` does;
//! - `range_encoded`: 32 quantile buckets per shard, bitmap j = ids with key ≤ boundary
//!   j; a query is one bitmap difference plus an exact check of one bucket's ids;
//! - `sorted_prefix`: the ids sorted by value plus a prefix bitmap every 2,048 positions;
//!   a query is a binary search, one bitmap difference and ≤ 2,047 single-id edits;
//! - `scan`: every value compared (the floor any index must beat);
//! - `column`: the engine's own path, `store::column::Column::compare_number` /
//!   `compare_timestamp` over the whole shard, answering from the column's sorted range
//!   index (built with `range_build_input` → `build` → `install_range`, as
//!   `Engine::maintain_range_indexes` does), with a further row after 1% of each
//!   shard's values changed since the build (answered through the dirty ids).
//!
//! Answers are checked equal across all four. Prints p50 over `SEGD_BENCH_RUNS` (default
//! 50) runs and the index bytes per profile. Not a criterion bench: a quick table.

use roaring::RoaringBitmap;
use segd::demo::DemoGenerator;
use segd::index::bsi::{BitSlicedIndex, KeyComparison};
use segd::segment::ast::CompareOp;
use segd::store::column::{Column, Number};
use segd::store::value::{TraitType, TraitValue};
use std::time::Instant;

const SHARDS: usize = 16;
const BUCKETS: usize = 32;
const PREFIX_STEP: usize = 2_048;

/// One shard's values of one trait, as exact f64 (ints and ms fit) and coarse keys.
struct Shard {
    values: Vec<f64>,
    bsi: BitSlicedIndex,
    /// (upper boundary value, ids with value ≤ boundary) per bucket, ascending.
    range_encoded: Vec<(f64, RoaringBitmap)>,
    all: RoaringBitmap,
    sorted: Vec<(f64, u32)>,
    prefixes: Vec<RoaringBitmap>,
    column: Column,
}

impl Shard {
    fn build(values: Vec<f64>, key_of: impl Fn(f64) -> i64, trait_type: TraitType) -> Shard {
        let mut column = Column::new(trait_type);
        let entries: Vec<(u32, TraitValue)> = values
            .iter()
            .enumerate()
            .map(|(id, value)| (id as u32, typed(trait_type, *value)))
            .collect();
        column.extend_fresh(&entries);
        let built = column.range_build_input().unwrap().build();
        column.install_range(built);
        let keys: Vec<i64> = values.iter().map(|value| key_of(*value)).collect();
        let mut bsi = BitSlicedIndex::new();
        for (id, key) in keys.iter().enumerate() {
            bsi.set(id as u32, None, *key);
        }
        let mut sorted: Vec<(f64, u32)> = values
            .iter()
            .enumerate()
            .map(|(id, value)| (*value, id as u32))
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut range_encoded = Vec::new();
        for bucket in 1..=BUCKETS {
            let end = sorted.len() * bucket / BUCKETS;
            let boundary = sorted[end - 1].0;
            let ids: RoaringBitmap = values
                .iter()
                .enumerate()
                .filter(|(_, value)| **value <= boundary)
                .map(|(id, _)| id as u32)
                .collect();
            range_encoded.push((boundary, ids));
        }
        let mut prefixes = Vec::new();
        let mut running = RoaringBitmap::new();
        for (position, (_, id)) in sorted.iter().enumerate() {
            if position % PREFIX_STEP == 0 {
                prefixes.push(running.clone());
            }
            running.insert(*id);
        }
        let all = (0..values.len() as u32).collect();
        Shard {
            values,
            bsi,
            range_encoded,
            all,
            sorted,
            prefixes,
            column,
        }
    }

    /// The engine's column answering `value > threshold`.
    fn greater_column(&self, threshold: f64) -> RoaringBitmap {
        match self.column.trait_type() {
            TraitType::Timestamp => {
                self.column
                    .compare_timestamp(CompareOp::Greater, threshold as i64, &self.all)
            }
            TraitType::Integer => self.column.compare_number(
                CompareOp::Greater,
                Number::Integer(threshold as i64),
                &self.all,
            ),
            _ => {
                self.column
                    .compare_number(CompareOp::Greater, Number::Float(threshold), &self.all)
            }
        }
    }

    /// Ids with value > `threshold` (the `ltv > 300` / `within last` shape).
    fn greater_bsi(&self, threshold: f64, key: i64) -> RoaringBitmap {
        let mut result = self.bsi.compare(KeyComparison::Greater, key, &self.all);
        for id in &self.bsi.compare(KeyComparison::Equal, key, &self.all) {
            if self.values[id as usize] > threshold {
                result.insert(id);
            }
        }
        result
    }

    fn greater_range_encoded(&self, threshold: f64) -> RoaringBitmap {
        // First bucket whose boundary exceeds the threshold: everything above the
        // previous boundary is a candidate; only that bucket needs exact checks.
        let index = self
            .range_encoded
            .partition_point(|(boundary, _)| *boundary <= threshold);
        if index == self.range_encoded.len() {
            return RoaringBitmap::new();
        }
        let below = if index == 0 {
            RoaringBitmap::new()
        } else {
            self.range_encoded[index - 1].1.clone()
        };
        let bucket = &self.range_encoded[index].1 - &below;
        let mut result = &self.all - &self.range_encoded[index].1;
        for id in &bucket {
            if self.values[id as usize] > threshold {
                result.insert(id);
            }
        }
        result
    }

    fn greater_sorted_prefix(&self, threshold: f64) -> RoaringBitmap {
        let position = self
            .sorted
            .partition_point(|(value, _)| *value <= threshold);
        let step = position / PREFIX_STEP;
        let mut result = &self.all - &self.prefixes[step];
        for (_, id) in &self.sorted[step * PREFIX_STEP..position] {
            result.remove(*id);
        }
        result
    }

    fn greater_scan(&self, threshold: f64) -> RoaringBitmap {
        let ids = self
            .values
            .iter()
            .enumerate()
            .filter(|(_, value)| **value > threshold)
            .map(|(id, _)| id as u32);
        RoaringBitmap::from_sorted_iter(ids).unwrap()
    }

    /// Changes 1% of the values (seeded) without rebuilding: they become dirty ids.
    fn change_one_percent(&mut self, seed: u64) {
        let count = self.values.len() as u64;
        let trait_type = self.column.trait_type();
        for step in 0..count / 100 {
            let id = ((step * 7_919 + seed) % count) as u32;
            let other = self.values[((step * 104_729 + seed) % count) as usize];
            self.values[id as usize] = other;
            self.column.set(id, &typed(trait_type, other));
        }
    }

    fn bytes(&self) -> [usize; 4] {
        let range: usize = self
            .range_encoded
            .iter()
            .map(|(_, bitmap)| bitmap.serialized_size())
            .sum();
        let prefix: usize = self
            .prefixes
            .iter()
            .map(RoaringBitmap::serialized_size)
            .sum::<usize>()
            + self.sorted.len() * 12;
        [
            self.bsi.memory_bytes(),
            range,
            prefix,
            self.column.range_memory_bytes(),
        ]
    }
}

fn typed(trait_type: TraitType, value: f64) -> TraitValue {
    match trait_type {
        TraitType::Timestamp => TraitValue::Timestamp(value as i64),
        TraitType::Integer => TraitValue::Integer(value as i64),
        _ => TraitValue::Float(value),
    }
}

fn p50(mut timings: Vec<f64>) -> f64 {
    timings.sort_by(f64::total_cmp);
    timings[timings.len() / 2]
}

fn main() {
    let profiles: usize = std::env::var("SEGD_BENCH_PROFILES")
        .ok()
        .and_then(|value| value.split(',').next()?.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("SEGD_BENCH_RUNS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50);
    let generator = DemoGenerator::new(7);
    let now_ms = generator.now_ms();
    let started = Instant::now();
    let mut columns: [Vec<Vec<f64>>; 3] = Default::default();
    for column in &mut columns {
        *column = (0..SHARDS)
            .map(|_| Vec::with_capacity(profiles / SHARDS + 1))
            .collect();
    }
    for index in 0..profiles as u64 {
        let profile = generator.profile(index);
        let shard = (index as usize) % SHARDS;
        let number = |name: &str| profile.traits.get(name).and_then(|v| v.as_f64());
        columns[0][shard].push(number("ltv").unwrap_or(0.0));
        columns[1][shard].push(number("age").unwrap_or(0.0));
        let signup = profile.traits["signup_at"].as_str().unwrap();
        let millis = segd::store::value::parse_timestamp(signup).unwrap();
        columns[2][shard].push(millis as f64);
    }
    println!(
        "generated {profiles} profiles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let minute = 60_000.0;
    let queries: [(&str, usize, f64, i64); 3] = [
        ("ltv > 300", 0, 300.0, 300),
        ("age > 39 (half of `between 25 and 40`)", 1, 39.0, 39),
        (
            "signup_at within last 30 days",
            2,
            (now_ms - 30 * 86_400_000 - 1) as f64,
            ((now_ms - 30 * 86_400_000 - 1) as f64 / minute).floor() as i64,
        ),
    ];
    for (label, column, threshold, key) in queries {
        let key_of = move |value: f64| match column {
            2 => (value / minute).floor() as i64,
            _ => value.floor() as i64,
        };
        let trait_type = [TraitType::Float, TraitType::Integer, TraitType::Timestamp][column];
        let mut shards: Vec<Shard> = columns[column]
            .iter()
            .map(|values| Shard::build(values.clone(), key_of, trait_type))
            .collect();
        let expected: u64 = shards.iter().map(|s| s.greater_scan(threshold).len()).sum();
        let mut line = format!("{label}: {expected} of {profiles};");
        type Method = fn(&Shard, f64, i64) -> RoaringBitmap;
        let methods: [(&str, Method); 5] = [
            ("bsi", |s, t, k| s.greater_bsi(t, k)),
            ("range_encoded", |s, t, _| s.greater_range_encoded(t)),
            ("sorted_prefix", |s, t, _| s.greater_sorted_prefix(t)),
            ("scan", |s, t, _| s.greater_scan(t)),
            ("column", |s, t, _| s.greater_column(t)),
        ];
        let time = |shards: &[Shard], method: Method| {
            let timings: Vec<f64> = (0..runs)
                .map(|_| {
                    let call = Instant::now();
                    let total: u64 = shards.iter().map(|s| method(s, threshold, key).len()).sum();
                    std::hint::black_box(total);
                    call.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            p50(timings)
        };
        for (name, method) in methods {
            let count: u64 = shards.iter().map(|s| method(s, threshold, key).len()).sum();
            assert_eq!(count, expected, "{name} agrees with the scan on {label}");
            line += &format!(" {name} {:.0} µs", time(&shards, method));
        }
        for (seed, shard) in shards.iter_mut().enumerate() {
            shard.change_one_percent(seed as u64);
        }
        let expected_after: u64 = shards.iter().map(|s| s.greater_scan(threshold).len()).sum();
        let column_after: Method = |s, t, _| s.greater_column(t);
        let count: u64 = shards
            .iter()
            .map(|s| column_after(s, threshold, key).len())
            .sum();
        assert_eq!(
            count, expected_after,
            "column with 1% dirty agrees on {label}"
        );
        line += &format!(" column_1%_dirty {:.0} µs", time(&shards, column_after));
        let bytes = shards.iter().map(Shard::bytes).fold([0; 4], |a, b| {
            [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
        });
        line += &format!(
            "; bytes/profile: bsi {:.1}, range_encoded {:.1}, sorted_prefix {:.1}, column range index (1% dirty) {:.1}",
            bytes[0] as f64 / profiles as f64,
            bytes[1] as f64 / profiles as f64,
            bytes[2] as f64 / profiles as f64,
            bytes[3] as f64 / profiles as f64
        );
        println!("{line}");
    }
}
