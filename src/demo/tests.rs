//! Unit tests: determinism, distributions, trait types and event histories.

use super::profiles::{ascii_letters, phone};
use super::*;
use std::collections::{HashMap, HashSet};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime, PrimitiveDateTime};

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
    let within =
        |count: u64, expected: f64, tolerance: f64| (share(count) - expected).abs() <= tolerance;
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
