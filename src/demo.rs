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
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

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

    /// The profile at `index`.
    pub fn profile(&self, index: u64) -> DemoProfile {
        let (country, city) = self.location(index);
        let mut traits = Map::new();
        let mut insert = |name: &str, value: Value| {
            traits.insert(name.to_string(), value);
        };

        // Person: gender, names, birth date and age.
        let mut rng = self.rng(index, Stream::Person);
        let gender = pick(&mut rng, GENDERS, |g| g.1).0;
        let names = country.names;
        let female = match gender {
            "female" => true,
            "male" => false,
            _ => rng.gen_bool(0.5),
        };
        let first_name = choose(&mut rng, if female { names.female } else { names.male });
        let last_name = choose(&mut rng, names.last);
        let now_date = date_of_ms(self.now_ms);
        let (low_age, high_age, _) = *pick(&mut rng, AGE_BRACKETS, |b| b.2);
        let age_years = rng.gen_range(low_age..=high_age) as f64 + rng.gen::<f64>();
        let birth_julian_day = now_date.to_julian_day() - (age_years * 365.2425) as i32;
        let birth_date = Date::from_julian_day(birth_julian_day).unwrap_or(now_date);
        insert("first_name", Value::from(first_name));
        insert("last_name", Value::from(last_name));
        insert("gender", Value::from(gender));
        insert(
            "birth_date",
            Value::from(format_ms(days_to_ms(birth_date.to_julian_day()))),
        );
        insert("age", Value::from(calendar_age(birth_date, now_date)));

        // Contact: email, phone.
        let mut rng = self.rng(index, Stream::Contact);
        insert(
            "email",
            Value::from(email(&mut rng, index, first_name, last_name, country)),
        );
        let has_phone = rng.gen_bool(0.75);
        if has_phone {
            insert(
                "phone",
                Value::from(phone(self.seed, index, country.calling_code)),
            );
        }

        // Location.
        insert("city", Value::from(city.name));
        insert("country", Value::from(country.code));
        insert("region", Value::from(city.region));
        insert("timezone", Value::from(city.timezone));

        // Marketing: status, subscriptions, acquisition, device, push.
        let mut rng = self.rng(index, Stream::Marketing);
        let status = pick(&mut rng, STATUSES, |s| s.1).0;
        insert("status", Value::from(status));
        insert("test_subscriber", Value::from(rng.gen_bool(0.005)));
        if rng.gen_bool(0.72) {
            let (source, medium, campaigns, _) = *pick(&mut rng, UTM_SOURCES, |u| u.3);
            insert("utm_source", Value::from(source));
            insert("utm_medium", Value::from(medium));
            insert("utm_campaign", Value::from(choose(&mut rng, campaigns)));
        }
        let device = pick(&mut rng, DEVICES, |d| d.weight);
        let platform = pick(&mut rng, device.platforms, |p| p.weight);
        let browser = pick(&mut rng, platform.browsers, |b| b.1).0;
        insert("device_type", Value::from(device.name));
        insert("platform", Value::from(platform.name));
        insert("browser", Value::from(browser));
        insert(
            "push_enabled",
            Value::from(rng.gen_bool(device.push_probability)),
        );
        let newsletter_status = match status {
            "subscribed" => {
                pick(
                    &mut rng,
                    &[("subscribed", 85), ("unsubscribed", 10), ("unconfirmed", 5)],
                    |s| s.1,
                )
                .0
            }
            "unconfirmed" => "unconfirmed",
            _ => "unsubscribed",
        };
        let sms_status = if has_phone {
            pick(
                &mut rng,
                &[
                    ("subscribed", 35),
                    ("unsubscribed", 50),
                    ("unconfirmed", 15),
                ],
                |s| s.1,
            )
            .0
        } else {
            "unsubscribed"
        };
        insert(
            "subscriptions",
            serde_json::json!({
                "newsletter": {"email": {"status": newsletter_status}},
                "promo": {"sms": {"status": sms_status}},
            }),
        );

        // Commerce: orders, lifetime value, tags, sign-up time.
        let mut rng = self.rng(index, Stream::Commerce);
        let orders_count: u32 = if rng.gen_bool(0.38) {
            0
        } else {
            (1.0 + log_normal(&mut rng, 1.8, 1.0)).min(500.0) as u32
        };
        let ltv_cents: i64 = (0..orders_count)
            .map(|_| order_amount_cents(&mut rng))
            .sum();
        let ltv = ltv_cents as f64 / 100.0;
        insert("ltv", Value::from(ltv));
        insert("orders_count", Value::from(orders_count));
        insert("tags", Value::from(tags(&mut rng, ltv)));
        let signup_ago_ms =
            (rng.gen::<f64>().powf(1.4) * (SIGNUP_HISTORY_DAYS * DAY_MS) as f64) as i64;
        insert(
            "signup_at",
            Value::from(format_ms(self.now_ms - signup_ago_ms)),
        );

        DemoProfile {
            user_id: format!("user-{index}"),
            anonymous_id: anonymous_id(self.seed, index, &mut rng),
            traits,
        }
    }

    /// `count` events of the profile at `index`, oldest first, all within the
    /// [`EVENT_HISTORY_DAYS`] days up to and including `now_ms`.
    pub fn events(&self, index: u64, count: usize) -> Vec<DemoEvent> {
        let (country, city) = self.location(index);
        let persona = Persona::new(&mut self.rng(index, Stream::Persona));
        let mut rng = self.rng(index, Stream::Events);
        let mut history = History {
            events: Vec::with_capacity(count.min(1 << 16)),
            count,
            now_ms: self.now_ms,
        };
        let kinds = persona.activity_weights();
        let mut order_number = 0u32;
        while history.events.len() < count {
            let start_ms = self.activity_start_ms(&mut rng, city.utc_offset_hours);
            match pick(&mut rng, &kinds, |k| k.1).0 {
                Activity::EmailCampaign => {
                    email_campaign(&mut rng, &mut history, start_ms, &persona)
                }
                Activity::Sms => {
                    let campaign = choose(&mut rng, SMS_CAMPAIGNS);
                    let properties = props([("campaign", Value::from(campaign))]);
                    history.push("sms_sent", start_ms, properties.clone());
                    if rng.gen_bool(0.95) {
                        let delay_ms = rng.gen_range(SECOND_MS..60 * SECOND_MS);
                        history.push("sms_delivered", start_ms + delay_ms, properties);
                    }
                }
                Activity::Push => {
                    let campaign = choose(&mut rng, PUSH_CAMPAIGNS);
                    let properties = props([("campaign", Value::from(campaign))]);
                    history.push("push_sent", start_ms, properties.clone());
                    if rng.gen_bool(persona.push_open_rate) {
                        let delay_ms = rng.gen_range(10 * SECOND_MS..4 * HOUR_MS);
                        history.push("push_opened", start_ms + delay_ms, properties);
                    }
                }
                Activity::WebSession => {
                    let utm = if rng.gen_bool(0.4) {
                        Some(*pick(&mut rng, UTM_SOURCES, |u| u.3))
                    } else {
                        None
                    };
                    let views = rng.gen_range(1..=4);
                    let mut time_ms = start_ms;
                    for view in 0..views {
                        let (source, medium, campaigns, _) = match utm {
                            Some(utm) if view == 0 => utm,
                            _ => ("", "", &[][..], 0),
                        };
                        let campaign = if campaigns.is_empty() {
                            ""
                        } else {
                            choose(&mut rng, campaigns)
                        };
                        let path = page_path(&mut rng);
                        history.push(
                            "page",
                            time_ms,
                            page_properties(&path, source, medium, campaign),
                        );
                        time_ms += rng.gen_range(5 * SECOND_MS..300 * SECOND_MS);
                    }
                }
                Activity::AppSession => {
                    let version = choose(&mut rng, APP_VERSIONS);
                    history.push(
                        "app_opened",
                        start_ms,
                        props([("app_version", Value::from(version))]),
                    );
                }
                Activity::Order => {
                    order_number += 1;
                    let mut time_ms = start_ms;
                    let mut promo_code = None;
                    if rng.gen_bool(0.12) {
                        let (code, discount) = choose(&mut rng, PROMO_CODES);
                        history.push(
                            "promo_code_redeemed",
                            time_ms,
                            props([
                                ("code", Value::from(code)),
                                ("discount_percent", Value::from(discount)),
                            ]),
                        );
                        promo_code = Some(code);
                        time_ms += rng.gen_range(30 * SECOND_MS..600 * SECOND_MS);
                    }
                    let mut properties = props([
                        (
                            "order_id",
                            Value::from(format!("ord-{index}-{order_number}")),
                        ),
                        (
                            "amount",
                            Value::from(order_amount_cents(&mut rng) as f64 / 100.0),
                        ),
                        ("currency", Value::from(country.currency)),
                        ("items", Value::from(order_items(&mut rng))),
                    ]);
                    if let Some(code) = promo_code {
                        properties.insert("promo_code".into(), Value::from(code));
                    }
                    history.push("order_completed", time_ms, properties);
                }
                Activity::Review => {
                    let rating = pick(
                        &mut rng,
                        &[(1, 5), (2, 5), (3, 10), (4, 30), (5, 50)],
                        |r| r.1,
                    )
                    .0;
                    history.push(
                        "review_left",
                        start_ms,
                        props([
                            ("rating", Value::from(rating)),
                            ("product_id", Value::from(product_id(&mut rng))),
                        ]),
                    );
                }
                Activity::Form => {
                    let form = pick(&mut rng, FORMS, |f| f.1).0;
                    history.push(
                        "form_submitted",
                        start_ms,
                        props([("form", Value::from(form))]),
                    );
                }
            }
        }
        history.events.truncate(count);
        history.events.sort_by_key(|e| e.time_ms);
        history.events
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

/// About a dozen realistic segments as `(name, rule text, description)`, in the rule text
/// syntax of the README. Segments referenced by others ("vip", "churned") come first.
pub fn demo_segments() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "vip",
            r#"tags contains "vip" or ltv > 1000"#,
            "VIP customers: tagged vip, or lifetime value above 1000",
        ),
        (
            "churned",
            r#"orders_count > 0 and did not "order_completed" in last 60 days and last "email_opened" more than 60 days ago"#,
            "Former buyers with no order and no email opened in 60 days",
        ),
        (
            "de_young_high_value_push",
            r#"country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300 and push_enabled"#,
            "Subscribed German customers aged 25-40 with lifetime value above 300 and push on",
        ),
        (
            "example_domain_or_vip_tag",
            r#"email ends_with "@example.com" or tags contains "vip""#,
            "Internal example.com addresses or anyone tagged vip",
        ),
        (
            "reachable_outside_berlin",
            r#"status in ("subscribed", "unconfirmed") and city != "Berlin""#,
            "Reachable (subscribed or unconfirmed) customers outside Berlin",
        ),
        (
            "new_signups_30d",
            r#"signup_at within last 30 days"#,
            "Signed up in the last 30 days: welcome journey audience",
        ),
        (
            "frequent_big_buyers",
            r#"did "order_completed" where amount > 100 at least 3 times in last 30 days"#,
            "At least 3 orders above 100 in the last 30 days",
        ),
        (
            "app_dormant_14d",
            r#"did not "app_opened" in last 14 days"#,
            "Did not open the app in the last 14 days: push re-engagement",
        ),
        (
            "email_lapsed_60d",
            r#"last "email_opened" more than 60 days ago"#,
            "Last opened an email more than 60 days ago: win-back",
        ),
        (
            "high_spenders_90d",
            r#"sum of "order_completed".amount in last 90 days >= 500"#,
            "Spent 500 or more in the last 90 days",
        ),
        (
            "vip_not_churned",
            r#"in segment "vip" and not in segment "churned""#,
            "Active VIPs: in vip and not in churned",
        ),
        (
            "holdout_10pct",
            r#"random bucket 10%"#,
            "Stable 10% holdout group for campaign measurement",
        ),
        (
            "missing_phone",
            r#"not has phone"#,
            "No phone number on file: ask for it at checkout",
        ),
        (
            "newsletter_subscribers",
            r#"subscriptions.newsletter.email.status = "subscribed" and test_subscriber = false"#,
            "Real (non-test) newsletter email subscribers",
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Events: activities and their properties.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    EmailCampaign,
    Sms,
    Push,
    WebSession,
    AppSession,
    Order,
    Review,
    Form,
}

/// Per-profile behaviour, fixed for the profile so repeated `events` calls agree.
struct Persona {
    email_open_rate: f64,
    push_open_rate: f64,
    app_user: bool,
    /// 0..1, most profiles near 0, a few heavy buyers near 1.
    buyer: f64,
}

impl Persona {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        Persona {
            email_open_rate: rng.gen_range(0.05..0.6),
            push_open_rate: rng.gen_range(0.05..0.3),
            app_user: rng.gen_bool(0.4),
            buyer: rng.gen::<f64>().powi(3),
        }
    }

    fn activity_weights(&self) -> [(Activity, u32); 8] {
        let app = if self.app_user { 18 } else { 2 };
        let push = if self.app_user { 12 } else { 4 };
        [
            (Activity::EmailCampaign, 30),
            (Activity::Sms, 6),
            (Activity::Push, push),
            (Activity::WebSession, 22),
            (Activity::AppSession, app),
            (Activity::Order, 3 + (self.buyer * 22.0) as u32),
            (Activity::Review, 2),
            (Activity::Form, 3),
        ]
    }
}

/// Collects events, leaving out those that would lie after `now_ms`.
struct History {
    events: Vec<DemoEvent>,
    count: usize,
    now_ms: i64,
}

impl History {
    fn push(&mut self, event: &str, time_ms: i64, properties: Map<String, Value>) {
        if time_ms <= self.now_ms && self.events.len() < self.count {
            self.events.push(DemoEvent {
                event: event.to_string(),
                time_ms,
                properties,
            });
        }
    }
}

fn email_campaign(rng: &mut ChaCha8Rng, history: &mut History, start_ms: i64, persona: &Persona) {
    let campaign = choose(rng, EMAIL_CAMPAIGNS);
    let message_id = format!("msg-{:016x}", rng.gen::<u64>());
    let properties = props([
        ("campaign", Value::from(campaign)),
        ("message_id", Value::from(message_id)),
    ]);
    history.push("email_sent", start_ms, properties.clone());
    if !rng.gen_bool(0.97) {
        return;
    }
    let delivered_ms = start_ms + rng.gen_range(SECOND_MS..120 * SECOND_MS);
    history.push("email_delivered", delivered_ms, properties.clone());
    if !rng.gen_bool(persona.email_open_rate) {
        return;
    }
    // Opens cluster soon after delivery but some come days later.
    let opened_ms =
        delivered_ms + (log_normal(rng, 2.0, 1.5) * HOUR_MS as f64) as i64 % (7 * DAY_MS);
    history.push("email_opened", opened_ms, properties.clone());
    if !rng.gen_bool(0.25) {
        return;
    }
    let clicked_ms = opened_ms + rng.gen_range(5 * SECOND_MS..180 * SECOND_MS);
    let path = page_path(rng);
    let mut clicked = properties;
    clicked.insert(
        "url".into(),
        Value::from(format!("https://shop.example.com{path}")),
    );
    history.push("email_clicked", clicked_ms, clicked);
    if rng.gen_bool(0.8) {
        let landed_ms = clicked_ms + rng.gen_range(SECOND_MS..10 * SECOND_MS);
        history.push(
            "page",
            landed_ms,
            page_properties(&path, "newsletter", "email", campaign),
        );
    }
}

fn page_properties(path: &str, source: &str, medium: &str, campaign: &str) -> Map<String, Value> {
    let mut properties = props([
        (
            "url",
            Value::from(format!("https://shop.example.com{path}")),
        ),
        ("path", Value::from(path)),
    ]);
    if !source.is_empty() {
        properties.insert("utm_source".into(), Value::from(source));
        properties.insert("utm_medium".into(), Value::from(medium));
        properties.insert("utm_campaign".into(), Value::from(campaign));
    }
    properties
}

fn page_path(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..10) {
        0..=1 => "/".to_string(),
        2..=4 => format!("/products/{}", product_id(rng)),
        5..=6 => format!("/category/{}", choose(rng, CATEGORIES)),
        7 => "/cart".to_string(),
        8 => format!("/blog/{}", choose(rng, BLOG_POSTS)),
        _ => "/account".to_string(),
    }
}

fn product_id(rng: &mut ChaCha8Rng) -> String {
    // Popular products more often: a skewed pick out of 500.
    let rank = (rng.gen::<f64>().powi(3) * 500.0) as u32;
    format!("sku-{:04}", rank + 1)
}

fn order_items(rng: &mut ChaCha8Rng) -> u32 {
    let mut items = 1;
    while items < 20 && rng.gen_bool(0.35) {
        items += 1;
    }
    items
}

/// A long-tailed order amount in cents (median 55.00, at least 1.00).
fn order_amount_cents(rng: &mut ChaCha8Rng) -> i64 {
    ((log_normal(rng, 55.0, 0.75) * 100.0).round() as i64).clamp(100, 5_000_000)
}

// ---------------------------------------------------------------------------------------
// Profile helpers.

fn email(
    rng: &mut ChaCha8Rng,
    index: u64,
    first_name: &str,
    last_name: &str,
    country: &Country,
) -> String {
    let first = ascii_letters(first_name);
    let last = ascii_letters(last_name);
    // The index is the trailing digit run after letters or a dot, so emails are unique.
    let local = match rng.gen_range(0..100) {
        0..=39 => format!("{first}.{last}{index}"),
        40..=59 => format!("{first}{last}{index}"),
        60..=74 => format!("{first}_{last}{index}"),
        _ => format!("{}{last}{index}", &first[..first.len().min(1)]),
    };
    let domain = match rng.gen_range(0..100) {
        0..=5 => "example.com",
        6..=45 => "gmail.com",
        46..=57 => "outlook.com",
        58..=65 => "icloud.com",
        66..=72 => "yahoo.com",
        _ => choose(rng, country.email_domains),
    };
    format!("{local}@{domain}")
}

/// `+<calling code><10 digits>`. The digits are a keyed permutation of the index modulo
/// 10^10 (a four-round Feistel network on two 5-digit halves), so phones are unique below
/// 10^10 profiles yet do not look sequential.
fn phone(seed: u64, index: u64, calling_code: &str) -> String {
    const HALF: u64 = 100_000;
    let value = index % (HALF * HALF);
    let (mut left, mut right) = (value / HALF, value % HALF);
    for round in 0..4u64 {
        let mixed = splitmix64(seed ^ splitmix64(right ^ (round << 32))) % HALF;
        (left, right) = (right, (left + mixed) % HALF);
    }
    format!("+{calling_code}{:05}{:05}", left, right)
}

/// 32 hex digits in UUID layout; the first half is a bijection of the index for the seed.
fn anonymous_id(seed: u64, index: u64, rng: &mut ChaCha8Rng) -> String {
    let high = splitmix64(index ^ splitmix64(seed));
    let low: u64 = rng.gen();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

fn tags(rng: &mut ChaCha8Rng, ltv: f64) -> Vec<&'static str> {
    let mut chosen = Vec::new();
    if ltv > 1500.0 && rng.gen_bool(0.7) {
        chosen.push("vip");
    }
    let wanted = pick(rng, &[(0, 35), (1, 33), (2, 18), (3, 9), (4, 5)], |c| c.1).0;
    while chosen.len() < wanted {
        let tag = pick(rng, TAGS, |t| t.1).0;
        if !chosen.contains(&tag) {
            chosen.push(tag);
        }
    }
    chosen
}

/// Whole calendar years from `birth` to `today` (a 29 February birthday counts from
/// 1 March in other years).
fn calendar_age(birth: Date, today: Date) -> i32 {
    let mut years = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        years -= 1;
    }
    years
}

fn date_of_ms(ms: i64) -> Date {
    let julian_day_of_epoch = 2_440_588;
    Date::from_julian_day((julian_day_of_epoch + ms.div_euclid(DAY_MS)) as i32).unwrap_or(Date::MIN)
}

fn days_to_ms(julian_day: i32) -> i64 {
    (i64::from(julian_day) - 2_440_588) * DAY_MS
}

/// RFC 3339 UTC with whole seconds, e.g. `2024-03-05T14:07:09Z`.
fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(SECOND_MS))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Lower-case ASCII letters only, transliterating common European letters.
fn ascii_letters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars().flat_map(char::to_lowercase) {
        let replacement = match character {
            'a'..='z' => {
                out.push(character);
                continue;
            }
            'ä' | 'æ' => "ae",
            'ö' | 'ø' => "oe",
            'ü' => "ue",
            'ß' => "ss",
            'à' | 'á' | 'â' | 'å' | 'ą' => "a",
            'ç' | 'ć' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'ę' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ł' => "l",
            'ñ' | 'ń' => "n",
            'ò' | 'ó' | 'ô' => "o",
            'ś' => "s",
            'ù' | 'ú' | 'û' => "u",
            'ź' | 'ż' => "z",
            _ => "",
        };
        out.push_str(replacement);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Random helpers.

/// Picks an item with probability proportional to its weight.
fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
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

fn choose<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

/// A log-normal sample with the given median and shape (Box-Muller normal).
fn log_normal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    let radius = (-2.0 * (1.0 - rng.gen::<f64>()).ln()).sqrt();
    let normal = radius * (std::f64::consts::TAU * rng.gen::<f64>()).cos();
    median * (sigma * normal).exp()
}

fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn props<const N: usize>(entries: [(&str, Value); N]) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Vocabularies.

struct City {
    name: &'static str,
    region: &'static str,
    timezone: &'static str,
    /// Standard-time offset from UTC, for the local daily cycle (daylight saving ignored).
    utc_offset_hours: i8,
    weight: u32,
}

struct Names {
    female: &'static [&'static str],
    male: &'static [&'static str],
    last: &'static [&'static str],
}

struct Country {
    code: &'static str,
    weight: u32,
    calling_code: &'static str,
    currency: &'static str,
    email_domains: &'static [&'static str],
    names: &'static Names,
    cities: &'static [City],
}

const fn city(
    name: &'static str,
    region: &'static str,
    timezone: &'static str,
    utc_offset_hours: i8,
    weight: u32,
) -> City {
    City {
        name,
        region,
        timezone,
        utc_offset_hours,
        weight,
    }
}

const GERMAN: Names = Names {
    female: &[
        "Anna",
        "Lena",
        "Laura",
        "Julia",
        "Sarah",
        "Lisa",
        "Katharina",
        "Sophie",
        "Marie",
        "Hannah",
        "Jana",
        "Sabine",
    ],
    male: &[
        "Lukas",
        "Felix",
        "Jonas",
        "Maximilian",
        "Paul",
        "Leon",
        "Tobias",
        "Jan",
        "Michael",
        "Thomas",
        "Stefan",
        "Jürgen",
    ],
    last: &[
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "Wolf",
        "Schröder",
        "Neumann",
    ],
};
const ENGLISH: Names = Names {
    female: &[
        "Emily", "Olivia", "Emma", "Sophia", "Jessica", "Ashley", "Sarah", "Hannah", "Grace",
        "Chloe", "Megan", "Madison",
    ],
    male: &[
        "James", "John", "Michael", "William", "David", "Daniel", "Matthew", "Oliver", "Jack",
        "Harry", "Ryan", "Ethan",
    ],
    last: &[
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor",
        "Anderson", "Thomas", "Jackson", "White", "Harris", "Martin", "Garcia", "Evans",
    ],
};
const FRENCH: Names = Names {
    female: &[
        "Camille", "Léa", "Manon", "Chloé", "Inès", "Emma", "Jade", "Louise", "Sarah", "Juliette",
    ],
    male: &[
        "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Théo", "Nathan", "Mathis",
        "Antoine",
    ],
    last: &[
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garnier",
    ],
};
const SPANISH: Names = Names {
    female: &[
        "Lucía", "María", "Paula", "Sofía", "Carmen", "Laura", "Marta", "Elena", "Ana", "Isabel",
    ],
    male: &[
        "Hugo",
        "Daniel",
        "Pablo",
        "Alejandro",
        "Javier",
        "Carlos",
        "David",
        "Sergio",
        "Manuel",
        "Álvaro",
    ],
    last: &[
        "García",
        "Fernández",
        "González",
        "Rodríguez",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Gómez",
        "Martín",
        "Jiménez",
        "Ruiz",
    ],
};
const ITALIAN: Names = Names {
    female: &[
        "Giulia",
        "Sofia",
        "Aurora",
        "Alice",
        "Chiara",
        "Francesca",
        "Martina",
        "Sara",
        "Elena",
        "Valentina",
    ],
    male: &[
        "Leonardo",
        "Francesco",
        "Alessandro",
        "Lorenzo",
        "Matteo",
        "Andrea",
        "Marco",
        "Luca",
        "Giuseppe",
        "Davide",
    ],
    last: &[
        "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
        "Greco", "Bruno", "Gallo",
    ],
};
const DUTCH: Names = Names {
    female: &[
        "Emma", "Julia", "Sophie", "Anna", "Lisa", "Eva", "Sanne", "Fleur", "Noa", "Femke",
    ],
    male: &[
        "Daan", "Sem", "Lucas", "Levi", "Thijs", "Bram", "Jesse", "Ruben", "Lars", "Niels",
    ],
    last: &[
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "van Dijk",
        "Bakker",
        "Janssen",
        "Visser",
        "Smit",
        "Meijer",
        "de Boer",
        "Mulder",
    ],
};
const POLISH: Names = Names {
    female: &[
        "Anna",
        "Maria",
        "Katarzyna",
        "Małgorzata",
        "Agnieszka",
        "Zofia",
        "Julia",
        "Magdalena",
        "Natalia",
        "Aleksandra",
    ],
    male: &[
        "Piotr",
        "Krzysztof",
        "Tomasz",
        "Paweł",
        "Jakub",
        "Michał",
        "Kamil",
        "Marcin",
        "Łukasz",
        "Adam",
    ],
    last: &[
        "Nowak",
        "Wójcik",
        "Kowalczyk",
        "Woźniak",
        "Mazur",
        "Krawczyk",
        "Kaczmarek",
        "Zając",
        "Król",
        "Wieczorek",
    ],
};
const SWEDISH: Names = Names {
    female: &[
        "Alice", "Maja", "Elsa", "Astrid", "Wilma", "Ebba", "Saga", "Linnéa", "Klara", "Ingrid",
    ],
    male: &[
        "William", "Liam", "Noah", "Hugo", "Oscar", "Erik", "Lucas", "Axel", "Nils", "Anders",
    ],
    last: &[
        "Andersson",
        "Johansson",
        "Karlsson",
        "Nilsson",
        "Eriksson",
        "Larsson",
        "Olsson",
        "Persson",
        "Svensson",
        "Gustafsson",
        "Lindberg",
        "Lindqvist",
    ],
};

const BERLIN_TZ: &str = "Europe/Berlin";
const NEW_YORK_TZ: &str = "America/New_York";
const CHICAGO_TZ: &str = "America/Chicago";
const DENVER_TZ: &str = "America/Denver";
const LOS_ANGELES_TZ: &str = "America/Los_Angeles";

static COUNTRIES: &[Country] = &[
    Country {
        code: "DE",
        weight: 28,
        calling_code: "49",
        currency: "EUR",
        email_domains: &["web.de", "gmx.de", "t-online.de"],
        names: &GERMAN,
        cities: &[
            city("Berlin", "Berlin", BERLIN_TZ, 1, 22),
            city("Hamburg", "Hamburg", BERLIN_TZ, 1, 12),
            city("München", "Bayern", BERLIN_TZ, 1, 11),
            city("Köln", "Nordrhein-Westfalen", BERLIN_TZ, 1, 8),
            city("Frankfurt am Main", "Hessen", BERLIN_TZ, 1, 7),
            city("Stuttgart", "Baden-Württemberg", BERLIN_TZ, 1, 6),
            city("Düsseldorf", "Nordrhein-Westfalen", BERLIN_TZ, 1, 5),
            city("Leipzig", "Sachsen", BERLIN_TZ, 1, 5),
            city("Dresden", "Sachsen", BERLIN_TZ, 1, 4),
            city("Hannover", "Niedersachsen", BERLIN_TZ, 1, 4),
            city("Nürnberg", "Bayern", BERLIN_TZ, 1, 4),
        ],
    },
    Country {
        code: "US",
        weight: 20,
        calling_code: "1",
        currency: "USD",
        email_domains: &["aol.com", "hotmail.com", "comcast.net"],
        names: &ENGLISH,
        cities: &[
            city("New York", "New York", NEW_YORK_TZ, -5, 20),
            city("Los Angeles", "California", LOS_ANGELES_TZ, -8, 14),
            city("Chicago", "Illinois", CHICAGO_TZ, -6, 10),
            city("Houston", "Texas", CHICAGO_TZ, -6, 8),
            city("Phoenix", "Arizona", "America/Phoenix", -7, 6),
            city("Philadelphia", "Pennsylvania", NEW_YORK_TZ, -5, 6),
            city("San Francisco", "California", LOS_ANGELES_TZ, -8, 6),
            city("Seattle", "Washington", LOS_ANGELES_TZ, -8, 5),
            city("Denver", "Colorado", DENVER_TZ, -7, 5),
            city("Miami", "Florida", NEW_YORK_TZ, -5, 6),
            city("Boston", "Massachusetts", NEW_YORK_TZ, -5, 5),
            city("Atlanta", "Georgia", NEW_YORK_TZ, -5, 5),
        ],
    },
    Country {
        code: "FR",
        weight: 11,
        calling_code: "33",
        currency: "EUR",
        email_domains: &["orange.fr", "free.fr", "laposte.net"],
        names: &FRENCH,
        cities: &[
            city("Paris", "Île-de-France", "Europe/Paris", 1, 30),
            city(
                "Marseille",
                "Provence-Alpes-Côte d'Azur",
                "Europe/Paris",
                1,
                10,
            ),
            city("Lyon", "Auvergne-Rhône-Alpes", "Europe/Paris", 1, 10),
            city("Toulouse", "Occitanie", "Europe/Paris", 1, 8),
            city("Nice", "Provence-Alpes-Côte d'Azur", "Europe/Paris", 1, 6),
            city("Nantes", "Pays de la Loire", "Europe/Paris", 1, 6),
            city("Strasbourg", "Grand Est", "Europe/Paris", 1, 5),
            city("Bordeaux", "Nouvelle-Aquitaine", "Europe/Paris", 1, 6),
            city("Lille", "Hauts-de-France", "Europe/Paris", 1, 6),
        ],
    },
    Country {
        code: "GB",
        weight: 10,
        calling_code: "44",
        currency: "GBP",
        email_domains: &["btinternet.com", "hotmail.co.uk", "sky.com"],
        names: &ENGLISH,
        cities: &[
            city("London", "England", "Europe/London", 0, 35),
            city("Manchester", "England", "Europe/London", 0, 10),
            city("Birmingham", "England", "Europe/London", 0, 10),
            city("Glasgow", "Scotland", "Europe/London", 0, 7),
            city("Edinburgh", "Scotland", "Europe/London", 0, 6),
            city("Leeds", "England", "Europe/London", 0, 6),
            city("Bristol", "England", "Europe/London", 0, 5),
            city("Liverpool", "England", "Europe/London", 0, 5),
            city("Cardiff", "Wales", "Europe/London", 0, 4),
            city("Belfast", "Northern Ireland", "Europe/London", 0, 3),
        ],
    },
    Country {
        code: "ES",
        weight: 6,
        calling_code: "34",
        currency: "EUR",
        email_domains: &["hotmail.es", "telefonica.net"],
        names: &SPANISH,
        cities: &[
            city("Madrid", "Comunidad de Madrid", "Europe/Madrid", 1, 30),
            city("Barcelona", "Cataluña", "Europe/Madrid", 1, 25),
            city("Valencia", "Comunidad Valenciana", "Europe/Madrid", 1, 12),
            city("Sevilla", "Andalucía", "Europe/Madrid", 1, 10),
            city("Málaga", "Andalucía", "Europe/Madrid", 1, 8),
            city("Bilbao", "País Vasco", "Europe/Madrid", 1, 6),
            city(
                "Las Palmas de Gran Canaria",
                "Canarias",
                "Atlantic/Canary",
                0,
                5,
            ),
        ],
    },
    Country {
        code: "IT",
        weight: 6,
        calling_code: "39",
        currency: "EUR",
        email_domains: &["libero.it", "virgilio.it", "tiscali.it"],
        names: &ITALIAN,
        cities: &[
            city("Roma", "Lazio", "Europe/Rome", 1, 25),
            city("Milano", "Lombardia", "Europe/Rome", 1, 25),
            city("Napoli", "Campania", "Europe/Rome", 1, 12),
            city("Torino", "Piemonte", "Europe/Rome", 1, 10),
            city("Bologna", "Emilia-Romagna", "Europe/Rome", 1, 8),
            city("Firenze", "Toscana", "Europe/Rome", 1, 8),
            city("Palermo", "Sicilia", "Europe/Rome", 1, 6),
        ],
    },
    Country {
        code: "NL",
        weight: 5,
        calling_code: "31",
        currency: "EUR",
        email_domains: &["ziggo.nl", "kpnmail.nl"],
        names: &DUTCH,
        cities: &[
            city("Amsterdam", "Noord-Holland", "Europe/Amsterdam", 1, 30),
            city("Rotterdam", "Zuid-Holland", "Europe/Amsterdam", 1, 20),
            city("Den Haag", "Zuid-Holland", "Europe/Amsterdam", 1, 15),
            city("Utrecht", "Utrecht", "Europe/Amsterdam", 1, 15),
            city("Eindhoven", "Noord-Brabant", "Europe/Amsterdam", 1, 10),
            city("Groningen", "Groningen", "Europe/Amsterdam", 1, 6),
        ],
    },
    Country {
        code: "PL",
        weight: 4,
        calling_code: "48",
        currency: "PLN",
        email_domains: &["wp.pl", "onet.pl", "o2.pl"],
        names: &POLISH,
        cities: &[
            city("Warszawa", "Mazowieckie", "Europe/Warsaw", 1, 30),
            city("Kraków", "Małopolskie", "Europe/Warsaw", 1, 18),
            city("Wrocław", "Dolnośląskie", "Europe/Warsaw", 1, 14),
            city("Łódź", "Łódzkie", "Europe/Warsaw", 1, 12),
            city("Poznań", "Wielkopolskie", "Europe/Warsaw", 1, 12),
            city("Gdańsk", "Pomorskie", "Europe/Warsaw", 1, 10),
        ],
    },
    Country {
        code: "AT",
        weight: 4,
        calling_code: "43",
        currency: "EUR",
        email_domains: &["gmx.at", "aon.at"],
        names: &GERMAN,
        cities: &[
            city("Wien", "Wien", "Europe/Vienna", 1, 45),
            city("Graz", "Steiermark", "Europe/Vienna", 1, 15),
            city("Linz", "Oberösterreich", "Europe/Vienna", 1, 12),
            city("Salzburg", "Salzburg", "Europe/Vienna", 1, 12),
            city("Innsbruck", "Tirol", "Europe/Vienna", 1, 10),
        ],
    },
    Country {
        code: "CH",
        weight: 3,
        calling_code: "41",
        currency: "CHF",
        email_domains: &["bluewin.ch", "gmx.ch"],
        names: &GERMAN,
        cities: &[
            city("Zürich", "Zürich", "Europe/Zurich", 1, 30),
            city("Genève", "Genève", "Europe/Zurich", 1, 20),
            city("Basel", "Basel-Stadt", "Europe/Zurich", 1, 15),
            city("Bern", "Bern", "Europe/Zurich", 1, 15),
            city("Lausanne", "Vaud", "Europe/Zurich", 1, 12),
        ],
    },
    Country {
        code: "SE",
        weight: 3,
        calling_code: "46",
        currency: "SEK",
        email_domains: &["telia.com", "hotmail.se"],
        names: &SWEDISH,
        cities: &[
            city("Stockholm", "Stockholm", "Europe/Stockholm", 1, 45),
            city("Göteborg", "Västra Götaland", "Europe/Stockholm", 1, 25),
            city("Malmö", "Skåne", "Europe/Stockholm", 1, 18),
            city("Uppsala", "Uppsala", "Europe/Stockholm", 1, 12),
        ],
    },
];

const GENDERS: &[(&str, u32)] = &[("female", 49), ("male", 48), ("other", 3)];

/// (lowest age, highest age, weight).
const AGE_BRACKETS: &[(u32, u32, u32)] = &[
    (18, 24, 14),
    (25, 34, 24),
    (35, 44, 22),
    (45, 54, 18),
    (55, 64, 13),
    (65, 80, 9),
];

/// Global statuses and their shares in percent.
pub const STATUS_WEIGHTS: &[(&str, u32)] = &[
    ("subscribed", 72),
    ("unsubscribed", 12),
    ("unconfirmed", 6),
    ("hard_bounced", 4),
    ("invalid", 3),
    ("complainer", 2),
    ("suspended", 1),
];
const STATUSES: &[(&str, u32)] = STATUS_WEIGHTS;

type UtmSource = (&'static str, &'static str, &'static [&'static str], u32);
/// (utm_source, utm_medium, campaigns, weight).
const UTM_SOURCES: &[UtmSource] = &[
    (
        "google",
        "cpc",
        &["brand_search", "generic_search", "shopping"],
        25,
    ),
    ("google", "organic", &["seo"], 15),
    (
        "facebook",
        "paid_social",
        &[
            "spring_sale",
            "summer_launch",
            "black_friday",
            "retargeting",
        ],
        14,
    ),
    (
        "instagram",
        "paid_social",
        &[
            "spring_sale",
            "summer_launch",
            "black_friday",
            "influencer_collab",
        ],
        12,
    ),
    (
        "newsletter",
        "email",
        &["welcome_series", "weekly_digest", "winback"],
        10,
    ),
    (
        "tiktok",
        "paid_social",
        &["summer_launch", "influencer_collab"],
        7,
    ),
    ("bing", "cpc", &["brand_search", "generic_search"], 4),
    ("partner", "affiliate", &["partner_program"], 6),
    ("referral", "referral", &["refer_a_friend"], 7),
];

struct Platform {
    name: &'static str,
    weight: u32,
    browsers: &'static [(&'static str, u32)],
}

struct Device {
    name: &'static str,
    weight: u32,
    push_probability: f64,
    platforms: &'static [Platform],
}

const MOBILE_IOS: Platform = Platform {
    name: "ios",
    weight: 45,
    browsers: &[("safari", 80), ("chrome", 20)],
};
const MOBILE_ANDROID: Platform = Platform {
    name: "android",
    weight: 55,
    browsers: &[("chrome", 75), ("samsung_internet", 15), ("firefox", 10)],
};

const DEVICES: &[Device] = &[
    Device {
        name: "mobile",
        weight: 55,
        push_probability: 0.55,
        platforms: &[MOBILE_IOS, MOBILE_ANDROID],
    },
    Device {
        name: "desktop",
        weight: 36,
        push_probability: 0.08,
        platforms: &[
            Platform {
                name: "windows",
                weight: 65,
                browsers: &[("chrome", 65), ("edge", 22), ("firefox", 13)],
            },
            Platform {
                name: "macos",
                weight: 30,
                browsers: &[("safari", 50), ("chrome", 45), ("firefox", 5)],
            },
            Platform {
                name: "linux",
                weight: 5,
                browsers: &[("firefox", 55), ("chrome", 45)],
            },
        ],
    },
    Device {
        name: "tablet",
        weight: 9,
        push_probability: 0.35,
        platforms: &[
            Platform {
                name: "ios",
                weight: 65,
                browsers: &[("safari", 85), ("chrome", 15)],
            },
            Platform {
                name: "android",
                weight: 35,
                browsers: &[("chrome", 85), ("samsung_internet", 15)],
            },
        ],
    },
];

/// The tag vocabulary and relative weights.
pub const TAGS: &[(&str, u32)] = &[
    ("newsletter", 30),
    ("loyalty", 18),
    ("churn_risk", 8),
    ("student", 8),
    ("beta", 8),
    ("vip", 6),
    ("early_adopter", 6),
    ("gift_buyer", 6),
    ("wholesale", 4),
    ("b2b", 4),
    ("influencer", 2),
];

/// Local hour of day and its relative activity.
const HOURLY_WEIGHTS: [(i64, u32); 24] = [
    (0, 10),
    (1, 6),
    (2, 4),
    (3, 3),
    (4, 3),
    (5, 6),
    (6, 15),
    (7, 35),
    (8, 55),
    (9, 65),
    (10, 70),
    (11, 70),
    (12, 80),
    (13, 70),
    (14, 60),
    (15, 60),
    (16, 62),
    (17, 70),
    (18, 80),
    (19, 90),
    (20, 100),
    (21, 90),
    (22, 60),
    (23, 30),
];

const EMAIL_CAMPAIGNS: &[&str] = &[
    "weekly_digest",
    "spring_sale",
    "summer_launch",
    "black_friday",
    "abandoned_cart",
    "welcome_series",
    "winback",
    "product_recommendations",
];
const SMS_CAMPAIGNS: &[&str] = &[
    "flash_sale",
    "order_shipped",
    "appointment_reminder",
    "black_friday",
];
const PUSH_CAMPAIGNS: &[&str] = &[
    "price_drop",
    "back_in_stock",
    "daily_deal",
    "abandoned_cart",
];
const APP_VERSIONS: &[&str] = &["4.12.0", "4.12.1", "4.13.0", "4.14.2"];
const PROMO_CODES: &[(&str, u32)] = &[
    ("WELCOME10", 10),
    ("SUMMER20", 20),
    ("BLACKFRIDAY30", 30),
    ("VIP15", 15),
    ("FREESHIP", 0),
];
const FORMS: &[(&str, u32)] = &[
    ("newsletter_signup", 40),
    ("contact", 20),
    ("survey", 25),
    ("back_in_stock", 15),
];
const CATEGORIES: &[&str] = &[
    "shoes",
    "dresses",
    "outdoor",
    "electronics",
    "home",
    "beauty",
    "sale",
];
const BLOG_POSTS: &[&str] = &[
    "summer-lookbook",
    "care-guide",
    "gift-ideas",
    "behind-the-scenes",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use time::PrimitiveDateTime;

    fn parse_ms(text: &str) -> i64 {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
        (parsed.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn text<'a>(profile: &'a DemoProfile, name: &str) -> &'a str {
        profile.traits[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not a string in {profile:?}"))
    }

    // The same seed and index give the same profile and events, whatever order they are
    // generated in; a different seed gives different data.
    #[test]
    fn deterministic_per_seed_and_index() {
        let generator = DemoGenerator::new(42);
        let forward: Vec<_> = (0..50).map(|i| generator.profile(i)).collect();
        let backward: Vec<_> = (0..50)
            .rev()
            .map(|i| DemoGenerator::new(42).profile(i))
            .collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert_eq!(
            generator.events(7, 40),
            DemoGenerator::new(42).events(7, 40)
        );
        assert_eq!(
            generator.activity_weight(9),
            DemoGenerator::new(42).activity_weight(9)
        );

        let other = DemoGenerator::new(43);
        let differing = (0..50)
            .filter(|&i| other.profile(i).traits != forward[i as usize].traits)
            .count();
        assert!(
            differing >= 45,
            "only {differing} of 50 profiles differ between seeds"
        );
        assert_ne!(other.events(7, 40), generator.events(7, 40));
        // Times are relative to the reference time: dates move with it, ages do not.
        let later = DemoGenerator::with_now_ms(42, DEFAULT_NOW_MS + 400 * DAY_MS);
        assert_ne!(
            later.profile(0).traits["birth_date"],
            forward[0].traits["birth_date"]
        );
        assert_eq!(later.profile(0).traits["age"], forward[0].traits["age"]);
    }

    // Over 10k profiles the configured shares come out within tolerance, identifiers are
    // unique, and the values the demo segments rely on exist.
    #[test]
    fn distributions_over_ten_thousand_profiles() {
        let generator = DemoGenerator::new(7);
        let total = 10_000u64;
        let mut statuses: HashMap<String, u64> = HashMap::new();
        let mut countries: HashMap<String, u64> = HashMap::new();
        let (mut emails, mut phones, mut anonymous_ids) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        let (mut example_com, mut berlin, mut test_subscribers) = (0u64, 0u64, 0u64);
        let (mut vip_tag, mut high_ltv, mut no_orders) = (0u64, 0u64, 0u64);
        for index in 0..total {
            let profile = generator.profile(index);
            *statuses.entry(text(&profile, "status").into()).or_default() += 1;
            *countries
                .entry(text(&profile, "country").into())
                .or_default() += 1;
            let email = text(&profile, "email").to_string();
            example_com += u64::from(email.ends_with("@example.com"));
            assert!(emails.insert(email), "duplicate email at {index}");
            if let Some(phone) = profile.traits.get("phone") {
                assert!(
                    phones.insert(phone.as_str().unwrap().to_string()),
                    "duplicate phone"
                );
            }
            assert!(anonymous_ids.insert(profile.anonymous_id.clone()));
            berlin += u64::from(text(&profile, "city") == "Berlin");
            test_subscribers += u64::from(profile.traits["test_subscriber"] == true);
            let tags = profile.traits["tags"].as_array().unwrap();
            vip_tag += u64::from(tags.iter().any(|t| t == "vip"));
            let ltv = profile.traits["ltv"].as_f64().unwrap();
            high_ltv += u64::from(ltv > 1000.0);
            no_orders += u64::from(profile.traits["orders_count"] == 0);
        }
        let share = |count: u64| count as f64 / total as f64;
        let within = |count: u64, expected: f64, tolerance: f64| {
            (share(count) - expected).abs() <= tolerance
        };
        assert!(within(statuses["subscribed"], 0.72, 0.025), "{statuses:?}");
        assert!(within(statuses["unsubscribed"], 0.12, 0.02), "{statuses:?}");
        assert_eq!(statuses.len(), STATUS_WEIGHTS.len(), "every status occurs");
        assert!(within(countries["DE"], 0.28, 0.025), "{countries:?}");
        assert!(within(countries["US"], 0.20, 0.025), "{countries:?}");
        assert!(countries["DE"] > countries["US"] && countries["US"] > countries["SE"]);
        assert!(
            within(phones.len() as u64, 0.75, 0.025),
            "phones {}",
            phones.len()
        );
        assert!(
            within(example_com, 0.06, 0.015),
            "example.com {example_com}"
        );
        assert!(within(berlin, 0.28 * 22.0 / 88.0, 0.02), "Berlin {berlin}");
        assert!(test_subscribers > 0 && share(test_subscribers) < 0.015);
        assert!(within(no_orders, 0.38, 0.025), "no orders {no_orders}");
        assert!(
            vip_tag > 50 && high_ltv > 50,
            "vip {vip_tag}, ltv>1000 {high_ltv}"
        );
    }

    // Every trait has the documented JSON type and a plausible value.
    #[test]
    fn trait_value_types() {
        let generator = DemoGenerator::new(3);
        let now_ms = generator.now_ms();
        for index in 0..500 {
            let profile = generator.profile(index);
            assert_eq!(profile.user_id, format!("user-{index}"));
            assert_eq!(profile.anonymous_id.len(), 36);
            for name in [
                "first_name",
                "last_name",
                "gender",
                "email",
                "city",
                "country",
                "region",
                "timezone",
                "status",
                "device_type",
                "platform",
                "browser",
            ] {
                assert!(!text(&profile, name).is_empty(), "{name} empty");
            }
            assert_eq!(text(&profile, "country").len(), 2);
            assert!(text(&profile, "email").contains('@'));
            assert!(profile.traits["age"].is_i64());
            assert!(profile.traits["orders_count"].is_u64());
            assert!(profile.traits["ltv"].is_f64());
            let ltv = profile.traits["ltv"].as_f64().unwrap();
            assert!(ltv >= 0.0 && ((ltv * 100.0).round() - ltv * 100.0).abs() < 1e-6);
            assert!(profile.traits["push_enabled"].is_boolean());
            assert!(profile.traits["test_subscriber"].is_boolean());
            let tags: Vec<&str> = profile.traits["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert!(tags.len() <= 4 && tags.iter().collect::<HashSet<_>>().len() == tags.len());
            let signup_ms = parse_ms(text(&profile, "signup_at"));
            assert!(signup_ms <= now_ms && signup_ms >= now_ms - SIGNUP_HISTORY_DAYS * DAY_MS);
            parse_ms(text(&profile, "birth_date"));
            let newsletter = &profile.traits["subscriptions"]["newsletter"]["email"]["status"];
            let sms = &profile.traits["subscriptions"]["promo"]["sms"]["status"];
            assert!(newsletter.is_string() && sms.is_string());
            if let Some(phone) = profile.traits.get("phone") {
                let phone = phone.as_str().unwrap();
                assert!(phone.starts_with('+') && phone[1..].bytes().all(|b| b.is_ascii_digit()));
            }
            let has_utm = profile.traits.contains_key("utm_source");
            assert_eq!(has_utm, profile.traits.contains_key("utm_medium"));
            assert_eq!(has_utm, profile.traits.contains_key("utm_campaign"));
            // Timezone follows the country.
            let timezone = text(&profile, "timezone");
            match text(&profile, "country") {
                "US" => assert!(timezone.starts_with("America/")),
                "ES" => assert!(timezone == "Europe/Madrid" || timezone == "Atlantic/Canary"),
                "DE" => assert_eq!(timezone, "Europe/Berlin"),
                _ => assert!(timezone.starts_with("Europe/")),
            }
        }
    }

    // The age trait equals the whole years between birth_date and now, checked by adding
    // the years back onto the birth date.
    #[test]
    fn age_matches_birth_date() {
        for now_ms in [
            DEFAULT_NOW_MS,
            1_709_208_000_000, /* 2024-02-29T12:00Z */
        ] {
            let generator = DemoGenerator::with_now_ms(11, now_ms);
            let now = OffsetDateTime::from_unix_timestamp(now_ms / 1000).unwrap();
            for index in 0..2_000 {
                let profile = generator.profile(index);
                let birth = OffsetDateTime::parse(text(&profile, "birth_date"), &Rfc3339).unwrap();
                let age = profile.traits["age"].as_i64().unwrap() as i32;
                assert!((18..=81).contains(&age), "age {age}");
                let anniversary = |years: i32| {
                    let year = birth.year() + years;
                    // A 29 February birthday falls on 1 March in other years.
                    let date = birth.date().replace_year(year).unwrap_or_else(|_| {
                        Date::from_calendar_date(year, time::Month::March, 1).unwrap()
                    });
                    PrimitiveDateTime::new(date, time::Time::MIDNIGHT).assume_utc()
                };
                assert!(anniversary(age) <= now, "{index}: age {age} too high");
                assert!(anniversary(age + 1) > now, "{index}: age {age} too low");
            }
        }
    }

    // Events: exactly `count`, sorted, inside the 90-day window, funnel rates decreasing,
    // order properties typed, and a visible daily cycle.
    #[test]
    fn event_histories() {
        let generator = DemoGenerator::new(5);
        let now_ms = generator.now_ms();
        let mut names: HashMap<String, u64> = HashMap::new();
        let mut utc_hours = [0u64; 24];
        for index in 0..1_000 {
            let count = (index % 80) as usize;
            let events = generator.events(index, count);
            assert_eq!(events.len(), count);
            assert!(events.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
            for event in &events {
                assert!(event.time_ms <= now_ms);
                assert!(event.time_ms > now_ms - EVENT_HISTORY_DAYS * DAY_MS);
                *names.entry(event.event.clone()).or_default() += 1;
                utc_hours[(event.time_ms.rem_euclid(DAY_MS) / HOUR_MS) as usize] += 1;
                if event.event == "order_completed" {
                    let amount = event.properties["amount"].as_f64().unwrap();
                    assert!(amount >= 1.0);
                    assert!(event.properties["items"].as_u64().unwrap() >= 1);
                    assert_eq!(event.properties["currency"].as_str().unwrap().len(), 3);
                }
            }
        }
        let n = |name: &str| names.get(name).copied().unwrap_or(0);
        assert!(n("email_sent") > n("email_delivered"));
        assert!(n("email_delivered") > 2 * n("email_opened"));
        assert!(n("email_opened") > 2 * n("email_clicked") && n("email_clicked") > 0);
        assert!(n("sms_sent") >= n("sms_delivered") && n("push_sent") > n("push_opened"));
        for name in [
            "page",
            "app_opened",
            "order_completed",
            "review_left",
            "promo_code_redeemed",
            "form_submitted",
            "sms_delivered",
            "push_opened",
        ] {
            assert!(n(name) > 0, "no {name} events: {names:?}");
        }
        // Most profiles live in UTC+1; 02-05 local time is far quieter than the evening.
        let night: u64 = utc_hours[1..=4].iter().sum();
        let evening: u64 = utc_hours[17..=20].iter().sum();
        assert!(night * 4 < evening, "night {night}, evening {evening}");
    }

    // Activity weights are deterministic, positive, mean about 1 and heavy-tailed.
    #[test]
    fn activity_weights_are_zipf_like() {
        let generator = DemoGenerator::new(1);
        let mut weights: Vec<f64> = (0..10_000).map(|i| generator.activity_weight(i)).collect();
        assert!(weights.iter().all(|&w| w > 0.0 && w <= MAX_ACTIVITY_WEIGHT));
        let mean = weights.iter().sum::<f64>() / weights.len() as f64;
        assert!((0.8..1.2).contains(&mean), "mean {mean}");
        weights.sort_by(|a, b| b.total_cmp(a));
        let median = weights[weights.len() / 2];
        assert!(
            weights[0] / median > 50.0,
            "top {} median {median}",
            weights[0]
        );
        // The top 1% hold a large share of the activity.
        let top: f64 = weights[..100].iter().sum();
        assert!(top / (mean * weights.len() as f64) > 0.1);
    }

    // Demo segments have unique names, and a segment referenced by another comes before it.
    #[test]
    fn demo_segments_are_ordered() {
        let segments = demo_segments();
        assert!(segments.len() >= 10);
        let mut defined = HashSet::new();
        for (name, rule, description) in &segments {
            assert!(!rule.is_empty() && !description.is_empty());
            let mut rest = *rule;
            while let Some(position) = rest.find("in segment \"") {
                rest = &rest[position + "in segment \"".len()..];
                let referenced = &rest[..rest.find('"').unwrap()];
                assert!(
                    defined.contains(referenced),
                    "{name} references {referenced} before it"
                );
            }
            assert!(defined.insert(*name), "duplicate segment {name}");
        }
        assert!(defined.contains("vip") && defined.contains("churned"));
    }

    // The phone digits are a permutation of the index: no two indices share a number.
    #[test]
    fn phone_numbers_are_a_permutation() {
        let numbers: HashSet<String> = (0..100_000).map(|i| phone(5, i, "49")).collect();
        assert_eq!(numbers.len(), 100_000);
        assert_ne!(
            phone(5, 1, "49"),
            phone(6, 1, "49"),
            "the seed keys the permutation"
        );
    }

    // Transliteration keeps emails to lower-case ASCII letters.
    #[test]
    fn email_local_parts_are_ascii() {
        assert_eq!(ascii_letters("Jürgen"), "juergen");
        assert_eq!(ascii_letters("van den Berg"), "vandenberg");
        assert_eq!(ascii_letters("Łukasz"), "lukasz");
        let generator = DemoGenerator::new(9);
        for index in 0..1_000 {
            let profile = generator.profile(index);
            let email = text(&profile, "email");
            assert!(email.is_ascii(), "{email}");
            let local = email.split('@').next().unwrap();
            assert!(local.ends_with(&index.to_string()));
        }
    }
}
