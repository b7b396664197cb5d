//! Event histories: [`DemoGenerator::events`], the activities a history is built from and
//! their properties.

use super::random::{choose, log_normal, pick, props};
use super::vocabulary::{
    APP_VERSIONS, BLOG_POSTS, CATEGORIES, EMAIL_CAMPAIGNS, FORMS, PROMO_CODES, PUSH_CAMPAIGNS,
    SMS_CAMPAIGNS, UTM_SOURCES,
};
use super::{DemoEvent, DemoGenerator, Stream, DAY_MS, HOUR_MS, SECOND_MS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

impl DemoGenerator {
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Activity {
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
pub(super) struct Persona {
    pub(super) email_open_rate: f64,
    pub(super) push_open_rate: f64,
    pub(super) app_user: bool,
    /// 0..1, most profiles near 0, a few heavy buyers near 1.
    pub(super) buyer: f64,
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
pub(super) fn order_amount_cents(rng: &mut ChaCha8Rng) -> i64 {
    ((log_normal(rng, 55.0, 0.75) * 100.0).round() as i64).clamp(100, 5_000_000)
}
