//! A seeded generator of realistic Customer Data Platform data: profiles with typical CDP
//! traits, event histories, and a set of demo segments. Used by `segd serve --demo`, tests
//! and benches.
//!
//! # Determinism
//! Everything is a pure function of `(seed, now_ms, index)`: each profile and each event
//! history draws from its own ChaCha8 stream keyed by the seed, the profile index and a
//! purpose tag, so `profile(i)` and `events(i, n)` can be generated in any order, from any
//! number of threads (the methods take `&self`), and always give the same answer. Aspects
//! shared by profile and events (the location, which sets the currency and the local
//! daily cycle) come from their own stream so both sides agree.
//!
//! # Profiles
//! `user_id` is `user-<index>`; `anonymous_id` is a 32-hex-digit id in UUID layout whose
//! first half is a bijection of the index (unique for one seed). Traits:
//! first_name, last_name (by country), gender, birth_date (RFC 3339 midnight UTC), age
//! (calendar years at `now_ms`), email (unique: the index is the trailing digit run of the
//! local part; about 6 % at `example.com`), phone (about 75 % of profiles; unique for
//! indices below 10^10: the national part is an affine bijection of the index), city,
//! country (ISO 3166-1 alpha-2, skewed DE > US > FR > GB > ...), region, timezone (IANA,
//! from the city, so consistent with the country), status (72 % subscribed, then
//! unsubscribed, unconfirmed, hard_bounced, invalid, complainer, suspended), test_subscriber
//! (0.5 %), utm_source/utm_medium/utm_campaign (about 72 %, absent for direct sign-ups),
//! device_type/platform/browser (consistent with each other), ltv (sum of the order
//! amounts, two decimals, long-tailed), orders_count, push_enabled, tags (0-4 distinct
//! from a small vocabulary), signup_at (within the last 3 years, skewed recent) and
//! `subscriptions.newsletter.email.status` / `subscriptions.promo.sms.status`.
//!
//! # Events
//! Histories are built from activities: an email campaign (sent → delivered 97 % → opened
//! at a per-profile rate → clicked 25 % of opens → landing page), SMS (sent → delivered),
//! push (sent → opened), a web session (1-4 `page` views), an app session (`app_opened`),
//! an order (`order_completed {order_id, amount, currency, items}`, sometimes after a
//! `promo_code_redeemed`), `review_left` and `form_submitted`. Start times fall in the 90
//! days before `now_ms`, following a daily cycle in the profile's local time; follow-ups
//! that would lie after `now_ms` have not happened yet and are left out. How many events a
//! profile gets is the caller's choice; `activity_weight` gives a Zipf-like weight for it.
//!
//! # Files
//! - `profiles`: [`DemoGenerator::profile`] and the trait helpers (emails, phones, ids).
//! - `events`: [`DemoGenerator::events`], the activities and their properties.
//! - `segments`: the demo segment catalogue ([`demo_segments`]).
//! - `vocabulary`: countries, cities, names, campaigns and the other weighted tables.
//! - `random`: weighted picks, log-normal samples and other random helpers.

mod events;
mod profiles;
mod random;
mod segments;
#[cfg(test)]
mod tests;
mod vocabulary;

pub use segments::demo_segments;
pub use vocabulary::{STATUS_WEIGHTS, TAGS};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use random::pick;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vocabulary::{City, Country, COUNTRIES, HOURLY_WEIGHTS};

const SECOND_MS: i64 = 1000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// How far back event histories reach.
pub const EVENT_HISTORY_DAYS: i64 = 90;
/// How far back sign-ups reach.
pub const SIGNUP_HISTORY_DAYS: i64 = 3 * 365;
/// The reference time `DemoGenerator::new` uses: 2025-01-01T00:00:00Z.
pub const DEFAULT_NOW_MS: i64 = 1_735_689_600_000;
/// `now_ms` is clamped into 2000-01-01 .. 2200-01-01 so date arithmetic stays in range.
const MIN_NOW_MS: i64 = 946_684_800_000;
const MAX_NOW_MS: i64 = 7_258_118_400_000;
/// Largest value `activity_weight` returns (100 times the mean).
pub const MAX_ACTIVITY_WEIGHT: f64 = 100.0;
/// Pareto shape of the activity weights: sorted, they follow a rank-size law with
/// exponent 1 / shape.
const ACTIVITY_PARETO_SHAPE: f64 = 1.5;

/// One generated profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoProfile {
    pub user_id: String,
    pub anonymous_id: String,
    pub traits: Map<String, Value>,
}

/// One generated event of a profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoEvent {
    pub event: String,
    pub time_ms: i64,
    pub properties: Map<String, Value>,
}

/// The seeded generator. Cheap to create; holds no per-profile state.
#[derive(Clone, Debug)]
pub struct DemoGenerator {
    seed: u64,
    now_ms: i64,
}

/// Purpose tags keying the per-index random streams.
#[derive(Clone, Copy)]
enum Stream {
    Location = 1,
    Person = 2,
    Contact = 3,
    Marketing = 4,
    Commerce = 5,
    Persona = 6,
    Events = 7,
    Activity = 8,
}

impl DemoGenerator {
    /// A generator whose reference time is [`DEFAULT_NOW_MS`], so output depends on the seed
    /// alone.
    pub fn new(seed: u64) -> Self {
        Self::with_now_ms(seed, DEFAULT_NOW_MS)
    }

    /// A generator whose ages, sign-up times and event times are relative to `now_ms`
    /// (clamped into years 2000..2200). The demo command passes the current time so that
    /// relative-time segments have members.
    pub fn with_now_ms(seed: u64, now_ms: i64) -> Self {
        DemoGenerator {
            seed,
            now_ms: now_ms.clamp(MIN_NOW_MS, MAX_NOW_MS),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn rng(&self, index: u64, stream: Stream) -> ChaCha8Rng {
        let mut key = [0u8; 32];
        key[0..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&index.to_le_bytes());
        key[16..24].copy_from_slice(&(stream as u64).to_le_bytes());
        key[24..32].copy_from_slice(b"segddemo");
        ChaCha8Rng::from_seed(key)
    }

    fn location(&self, index: u64) -> (&'static Country, &'static City) {
        let mut rng = self.rng(index, Stream::Location);
        let country = pick(&mut rng, COUNTRIES, |c| c.weight);
        let city = pick(&mut rng, country.cities, |c| c.weight);
        (country, city)
    }

    /// A Zipf-like activity weight for the profile at `index`: a Pareto sample (shape 1.5)
    /// scaled to mean about 1 and capped at [`MAX_ACTIVITY_WEIGHT`]. Sorted over a
    /// population it follows a rank-size law with exponent about 0.67: most profiles are
    /// quiet, a few are very active. Multiply by the wanted mean number of events.
    pub fn activity_weight(&self, index: u64) -> f64 {
        let mut rng = self.rng(index, Stream::Activity);
        // 1 - gen() lies in (0, 1], so the power is finite.
        let uniform = 1.0 - rng.gen::<f64>();
        let pareto = uniform.powf(-1.0 / ACTIVITY_PARETO_SHAPE);
        let mean = ACTIVITY_PARETO_SHAPE / (ACTIVITY_PARETO_SHAPE - 1.0);
        (pareto / mean).min(MAX_ACTIVITY_WEIGHT)
    }

    /// A start time in the history window following the local daily cycle.
    fn activity_start_ms(&self, rng: &mut ChaCha8Rng, utc_offset_hours: i8) -> i64 {
        let window_start_ms = self.now_ms - EVENT_HISTORY_DAYS * DAY_MS;
        let today_ms = self.now_ms.div_euclid(DAY_MS) * DAY_MS;
        for _ in 0..8 {
            let days_back = rng.gen_range(0..=EVENT_HISTORY_DAYS);
            let local_hour = pick(rng, &HOURLY_WEIGHTS, |h| h.1).0;
            let local_ms = local_hour * HOUR_MS + rng.gen_range(0..HOUR_MS);
            let time_ms =
                today_ms - days_back * DAY_MS + local_ms - i64::from(utc_offset_hours) * HOUR_MS;
            if time_ms > window_start_ms && time_ms <= self.now_ms {
                return time_ms / SECOND_MS * SECOND_MS;
            }
        }
        // Rare: the cycle kept landing outside the window (edges); take any time inside.
        self.now_ms - rng.gen_range(0..EVENT_HISTORY_DAYS * DAY_MS)
    }
}
