//! Profiles: [`DemoGenerator::profile`] and the helpers that make its traits.

use super::events::order_amount_cents;
use super::random::{choose, log_normal, pick, splitmix64};
use super::vocabulary::{Country, AGE_BRACKETS, DEVICES, GENDERS, STATUSES, TAGS, UTM_SOURCES};
use super::{DemoGenerator, DemoProfile, Stream, DAY_MS, SECOND_MS, SIGNUP_HISTORY_DAYS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

impl DemoGenerator {
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
}

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
pub(super) fn phone(seed: u64, index: u64, calling_code: &str) -> String {
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
pub(super) fn ascii_letters(text: &str) -> String {
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
