//! Unit tests of the event store.
use super::*;
use serde_json::json;

const DAY: i64 = 86_400_000;

fn props(value: Value) -> BorrowedProperties<'static> {
    let value: &'static Value = Box::leak(Box::new(value));
    prepare_properties_borrowed(value.as_object().unwrap()).unwrap()
}

#[test]
fn windows_counts_and_properties() {
    let mut store = EventStore::new(90 * DAY);
    let now = 1_000 * DAY;
    for day in [1, 5, 10, 40] {
        store.insert(
            7,
            "order_completed",
            now - day * DAY,
            &props(json!({"amount": day * 10, "currency": "EUR", "items": ["a", 1]})),
            now,
        );
    }
    store.insert(7, "app_opened", now - DAY, &[], now);
    let order = store.event_name_id("order_completed").unwrap();
    assert_eq!(store.count_in_window(7, order, now - 30 * DAY, now), 3);
    assert_eq!(
        store.count_in_window(7, order, now - 5 * DAY, now - 5 * DAY),
        1
    );
    assert_eq!(store.count_in_window(8, order, i64::MIN, i64::MAX), 0);
    let amount = store.property_name_id("amount").unwrap();
    let amounts: Vec<_> = store
        .events(7, order, now - 30 * DAY, now)
        .map(|event| event.property(amount))
        .collect();
    assert_eq!(
        amounts,
        vec![
            Some(PropertyValue::Integer(100)),
            Some(PropertyValue::Integer(50)),
            Some(PropertyValue::Integer(10))
        ]
    );
    let items = store.property_name_id("items").unwrap();
    let first = store.events(7, order, i64::MIN, i64::MAX).next().unwrap();
    assert_eq!(
        first.property(items),
        Some(PropertyValue::List(vec!["a", "1"]))
    );
    let lifetime = store.lifetime(7, order).unwrap();
    assert_eq!(lifetime.count, 4);
    assert_eq!(lifetime.first_ms, now - 40 * DAY);
    assert_eq!(lifetime.last_ms, now - DAY);
    assert_eq!(store.stats().stored, 5);
}

#[test]
fn retention_keeps_lifetime_but_drops_old_events() {
    let mut store = EventStore::new(10 * DAY);
    let now = 100 * DAY;
    assert!(!store.insert(1, "e", now - 20 * DAY, &[], now));
    assert!(store.insert(1, "e", now - 5 * DAY, &[], now));
    let name = store.event_name_id("e").unwrap();
    assert_eq!(store.count_in_window(1, name, i64::MIN, i64::MAX), 1);
    assert_eq!(store.lifetime(1, name).unwrap().count, 2);
    // Time passes: the sweep removes the stored one, the lifetime stays.
    assert_eq!(store.expire(now + 6 * DAY, 10), 1);
    assert_eq!(store.count_in_window(1, name, i64::MIN, i64::MAX), 0);
    assert_eq!(store.lifetime(1, name).unwrap().count, 2);
    assert!(store.profiles_with(name).contains(1));
    assert_eq!(store.stats().stored, 0);
    assert_eq!(store.stats().arrived_expired, 1);
}

#[test]
fn out_of_order_events_are_counted_by_event_time() {
    let mut store = EventStore::new(90 * DAY);
    let now = 1_000 * DAY;
    for offset in [3, 1, 2, 5, 4] {
        store.insert(2, "e", now - offset * DAY, &[], now);
    }
    let name = store.event_name_id("e").unwrap();
    let times: Vec<i64> = store
        .events(2, name, i64::MIN, i64::MAX)
        .map(|e| e.time_ms)
        .collect();
    assert_eq!(
        times,
        (1..=5).rev().map(|d| now - d * DAY).collect::<Vec<_>>()
    );
    assert_eq!(store.count_in_window(2, name, now - 2 * DAY, now), 2);
}

#[test]
fn per_profile_bound_drops_oldest() {
    let mut store = EventStore::new(i64::MAX / 4);
    let now = 1_000_000_000;
    for index in 0..(MAX_EVENTS_PER_PROFILE as i64 + 10) {
        store.insert(0, "e", index, &[], now);
    }
    let name = store.event_name_id("e").unwrap();
    assert_eq!(
        store.count_in_window(0, name, i64::MIN, i64::MAX),
        MAX_EVENTS_PER_PROFILE as u64
    );
    assert_eq!(
        store
            .events(0, name, i64::MIN, i64::MAX)
            .next()
            .unwrap()
            .time_ms,
        10
    );
    assert_eq!(
        store.lifetime(0, name).unwrap().count,
        MAX_EVENTS_PER_PROFILE as u64 + 10
    );
    assert_eq!(store.stats().dropped_over_limit, 10);
}

#[test]
fn detach_and_attach_move_everything() {
    let mut from = EventStore::new(90 * DAY);
    let mut to = EventStore::new(90 * DAY);
    let now = 1_000 * DAY;
    from.insert(
        3,
        "viewed",
        now - DAY,
        &props(json!({"url": "/a", "n": 1.5})),
        now,
    );
    from.insert(3, "viewed", now - 200 * DAY, &[], now);
    to.insert(9, "viewed", now - 2 * DAY, &[], now);
    to.insert(9, "other", now - 2 * DAY, &[], now);
    let detached = from.detach(3);
    assert_eq!(from.stats().stored, 0);
    assert!(from
        .profiles_with(from.event_name_id("viewed").unwrap())
        .is_empty());
    to.attach(9, detached, now);
    let viewed = to.event_name_id("viewed").unwrap();
    let lifetime = to.lifetime(9, viewed).unwrap();
    assert_eq!(lifetime.count, 3);
    assert_eq!(lifetime.first_ms, now - 200 * DAY);
    assert_eq!(lifetime.last_ms, now - DAY);
    assert_eq!(to.count_in_window(9, viewed, i64::MIN, i64::MAX), 2);
    let url = to.property_name_id("url").unwrap();
    let newest = to.events(9, viewed, i64::MIN, i64::MAX).last().unwrap();
    assert_eq!(newest.property(url), Some(PropertyValue::Str("/a")));
}

#[test]
fn property_preparation_rejects_what_cannot_be_stored() {
    let too_long = "x".repeat(MAX_STRING_BYTES + 1);
    let error = prepare_properties(json!({"a": too_long}).as_object().unwrap()).unwrap_err();
    assert_eq!(error.code(), "value_too_long");
    let big = serde_json::from_str::<Value>(r#"{"n": 1e400}"#);
    assert!(big.is_err() || prepare_properties(big.unwrap().as_object().unwrap()).is_err());
    let huge_unsigned = json!({"n": u64::MAX});
    assert_eq!(
        prepare_properties(huge_unsigned.as_object().unwrap())
            .unwrap_err()
            .code(),
        "number_out_of_range"
    );
    let mut deep = json!(1);
    for _ in 0..MAX_PROPERTY_NESTING + 1 {
        deep = json!({ "x": deep });
    }
    assert_eq!(
        prepare_properties(deep.as_object().unwrap())
            .unwrap_err()
            .code(),
        "properties_too_deep"
    );
    let many: serde_json::Map<String, Value> = (0..=MAX_PROPERTIES_PER_EVENT)
        .map(|i| (format!("p{i}"), json!(i)))
        .collect();
    assert_eq!(
        prepare_properties(&many).unwrap_err().code(),
        "too_many_properties"
    );
    assert_eq!(check_event_name("").unwrap_err().code(), "bad_event_name");
    let nested = prepare_properties(
        json!({"product": {"sku": "A1", "price": 9.5}, "gone": null})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        nested,
        vec![
            ("product.price".to_string(), EventProperty::Float(9.5)),
            (
                "product.sku".to_string(),
                EventProperty::String("A1".into())
            )
        ]
    );
}

#[test]
fn per_profile_bytes_are_bounded_and_oversized_events_rejected() {
    let mut store = EventStore::with_profile_bytes(90 * DAY, 64 << 10);
    let now = 1_000 * DAY;
    let text = "x".repeat(4_000);
    for minute in 0..200i64 {
        store.insert(
            3,
            "viewed",
            now - DAY + minute * 60_000,
            &props(json!({"blob": text, "n": minute})),
            now,
        );
    }
    let profile = store.profile(3).unwrap();
    let live = profile.properties.len() - profile.garbage_bytes;
    assert!(live <= 64 << 10, "live property bytes {live}");
    assert!(profile.properties.len() <= 2 * (64 << 10) + 8_192);
    assert!(store.stats().dropped_over_limit > 150);
    // The newest events are the ones kept.
    let viewed = store.event_name_id("viewed").unwrap();
    let newest = now - DAY + 199 * 60_000;
    assert_eq!(store.count_in_window(3, viewed, newest, now), 1);
    assert_eq!(
        store.count_in_window(3, viewed, 0, newest - 100 * 60_000),
        0
    );
    assert_eq!(store.lifetime(3, viewed).unwrap().count, 200);

    let list: Vec<String> = (0..256).map(|_| "y".repeat(4_000)).collect();
    let error = prepare_properties(json!({"a": list, "b": list}).as_object().unwrap()).unwrap_err();
    assert_eq!(error.code(), "properties_too_large");
    assert!(error.to_string().contains("at most 1048576"), "{error}");
}

#[test]
fn lifetime_entries_pack_name_and_count_and_saturate() {
    let name = EventNameId(u32::from(u16::MAX));
    let lifetime = Lifetime {
        count: 3,
        first_ms: -5,
        last_ms: i64::MAX,
    };
    let mut entry = LifetimeEntry::new(name, lifetime);
    assert_eq!(std::mem::size_of::<LifetimeEntry>(), 24);
    assert_eq!((entry.name(), entry.lifetime()), (name, lifetime));
    entry.add(Lifetime {
        count: u64::MAX,
        first_ms: -9,
        last_ms: 0,
    });
    assert_eq!(
        entry.name(),
        name,
        "a saturating count must not spill into the name"
    );
    assert_eq!(entry.lifetime().count, MAX_LIFETIME_COUNT);
    assert_eq!(entry.lifetime().first_ms, -9);
    assert_eq!(entry.lifetime().last_ms, i64::MAX);
}
