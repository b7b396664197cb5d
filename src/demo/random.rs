//! Random helpers: weighted picks, log-normal samples, a seed mixer.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

/// Picks an item with probability proportional to its weight.
pub(super) fn pick<'a, T>(
    rng: &mut ChaCha8Rng,
    items: &'a [T],
    weight: impl Fn(&T) -> u32,
) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut ticket = rng.gen_range(0..total.max(1));
    for item in items {
        let item_weight = weight(item);
        if ticket < item_weight {
            return item;
        }
        ticket -= item_weight;
    }
    &items[items.len() - 1]
}

pub(super) fn choose<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// A log-normal sample with the given median and shape (Box-Muller normal).
pub(super) fn log_normal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    let radius = (-2.0 * (1.0 - rng.gen::<f64>()).ln()).sqrt();
    let normal = radius * (std::f64::consts::TAU * rng.gen::<f64>()).cos();
    median * (sigma * normal).exp()
}

pub(super) fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn props<const N: usize>(entries: [(&str, Value); N]) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}
