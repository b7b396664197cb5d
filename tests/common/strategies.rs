//! Proptest strategies for ingest messages, shared by the integration tests.
//!
//! *Good* messages use identifiers from small pools (so profiles repeat, merge and are
//! aliased), traits with one fixed type per name (a profile with [`seed_traits`] creates
//! the columns first; `fresh_text` and `fresh_count` are created by whichever message
//! writes them first) and `messageId`s from a small pool (so duplicates happen). Any
//! sequence of good messages is accepted by the engine.
//!
//! An [`Injection`] is one or two messages whose *last* one `Engine::prepare_batch`
//! refuses whatever state good messages built (the ones before it are good): injected
//! into a batch of good messages, the batch must be refused naming that position.

use proptest::prelude::*;
use proptest::sample::select;
use segd::ingest::{Message, MessageKind};
use segd::store::value::format_timestamp;
use serde_json::{json, Map, Value};

pub const NOW_MS: i64 = 1_750_000_000_000;
pub const DAY_MS: i64 = 86_400_000;

pub const USER_IDS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];
pub const ANONYMOUS_IDS: [&str; 4] = ["a0", "a1", "a2", "a3"];
pub const EVENTS: [&str; 3] = ["buy", "view", "signup"];
/// Trait name the two-message injections introduce (renamed `zz0`, `zz1`, ... by
/// [`injections`] so several pairs in one batch do not meet).
pub const PAIR_TRAIT: &str = "zz";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Traits of a seed profile: creates the columns good messages write, one type each
/// (`plan` string, `age` integer, `score` float, `vip` boolean, `signup_at` timestamp,
/// `ratio` integer that good messages may widen to float, `big` integer only ever
/// written by injections, `address.city` string).
pub fn seed_traits() -> Map<String, Value> {
    object(json!({
        "plan": "free",
        "age": 30,
        "score": 1.5,
        "vip": false,
        "signup_at": "2025-06-01T10:00:00Z",
        "ratio": 1,
        "big": 1,
        "address": {"city": "Berlin"},
    }))
}

/// A seed identify message for `user_id` with [`seed_traits`].
pub fn seed_message(user_id: &str) -> Message {
    identify(Some(user_id.into()), None, seed_traits())
}

pub fn identify(
    user_id: Option<String>,
    anonymous_id: Option<String>,
    traits: Map<String, Value>,
) -> Message {
    Message {
        kind: MessageKind::Identify { traits },
        user_id,
        anonymous_id,
        message_id: None,
        timestamp_ms: None,
    }
}

/// Where good messages draw their identifiers from.
#[derive(Clone, Debug)]
pub struct IdentifierPools {
    pub user_ids: Vec<String>,
    pub anonymous_ids: Vec<String>,
}

impl IdentifierPools {
    /// [`USER_IDS`] and [`ANONYMOUS_IDS`]: few profiles, many merges.
    pub fn small() -> IdentifierPools {
        IdentifierPools::sized(USER_IDS.len(), ANONYMOUS_IDS.len())
    }

    /// `u0..u{users}` and `a0..a{anonymous}`.
    pub fn sized(users: usize, anonymous: usize) -> IdentifierPools {
        IdentifierPools {
            user_ids: (0..users).map(|n| format!("u{n}")).collect(),
            anonymous_ids: (0..anonymous).map(|n| format!("a{n}")).collect(),
        }
    }

    /// Every external id a profile of these pools can have.
    pub fn external_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.user_ids
            .iter()
            .cloned()
            .chain(self.anonymous_ids.iter().map(|id| format!("anon:{id}")))
    }
}

pub fn user_id() -> impl Strategy<Value = String> {
    select(USER_IDS.to_vec()).prop_map(String::from)
}

pub fn anonymous_id() -> impl Strategy<Value = String> {
    select(ANONYMOUS_IDS.to_vec()).prop_map(String::from)
}

/// `(userId, anonymousId)`: a userId, an anonymousId, or both (which merges).
pub fn identifiers() -> impl Strategy<Value = (Option<String>, Option<String>)> {
    identifiers_from(&IdentifierPools::small())
}

/// [`identifiers`] drawn from `pools`.
pub fn identifiers_from(
    pools: &IdentifierPools,
) -> impl Strategy<Value = (Option<String>, Option<String>)> {
    let users = select(pools.user_ids.clone());
    let anonymous = select(pools.anonymous_ids.clone());
    prop_oneof![
        3 => users.clone().prop_map(|user| (Some(user), None)),
        1 => anonymous.clone().prop_map(|anonymous| (None, Some(anonymous))),
        1 => (users, anonymous).prop_map(|(user, anonymous)| (Some(user), Some(anonymous))),
    ]
}

/// A `messageId` from a small pool, or none.
pub fn message_id() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.4, (0u8..8).prop_map(|n| format!("m{n}")))
}

fn quarter() -> impl Strategy<Value = Value> {
    (-400i32..400).prop_map(|quarters| json!(f64::from(quarters) / 4.0))
}

/// Traits of a good identify: any subset of the seeded traits with values of their
/// column's type (`plan` may be removed with null; `ratio` may get a fractional value,
/// which widens it to float), plus traits created on first use: `fresh_text`,
/// `fresh_count` and `email` (from a pool of three: an identity trait where configured,
/// so profiles sharing it merge).
pub fn good_traits() -> impl Strategy<Value = Map<String, Value>> {
    (
        (
            proptest::option::of(prop_oneof![
                select(vec!["free", "pro", "team"]).prop_map(Value::from),
                Just(Value::Null),
            ]),
            proptest::option::of((0i64..90).prop_map(Value::from)),
            proptest::option::of(quarter()),
            proptest::option::of(any::<bool>().prop_map(Value::from)),
            proptest::option::of(
                (0i64..60).prop_map(|days| Value::from(format_timestamp(NOW_MS - days * DAY_MS))),
            ),
        ),
        (
            proptest::option::of(prop_oneof![(0i64..100).prop_map(Value::from), quarter()]),
            proptest::option::of(select(vec!["Berlin", "Paris", "Rome"]).prop_map(Value::from)),
            proptest::option::of("[a-c]{1,3}".prop_map(Value::from)),
            proptest::option::of((-5i64..5).prop_map(Value::from)),
            proptest::option::of(
                select(vec!["e0@x.test", "e1@x.test", "e2@x.test"]).prop_map(Value::from),
            ),
        ),
    )
        .prop_map(
            |(
                (plan, age, score, vip, signup_at),
                (ratio, city, fresh_text, fresh_count, email),
            )| {
                let mut traits = Map::new();
                for (name, value) in [
                    ("plan", plan),
                    ("age", age),
                    ("score", score),
                    ("vip", vip),
                    ("signup_at", signup_at),
                    ("ratio", ratio),
                    ("fresh_text", fresh_text),
                    ("fresh_count", fresh_count),
                    ("email", email),
                ] {
                    if let Some(value) = value {
                        traits.insert(name.into(), value);
                    }
                }
                if let Some(city) = city {
                    traits.insert("address".into(), json!({ "city": city }));
                }
                traits
            },
        )
}

/// Properties of a good track.
pub fn good_properties() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(0i64..100),
        proptest::option::of("[a-c]{1,2}"),
        proptest::option::of(quarter()),
    )
        .prop_map(|(amount, sku, price)| {
            let mut properties = Map::new();
            if let Some(amount) = amount {
                properties.insert("amount".into(), amount.into());
            }
            if let Some(sku) = sku {
                properties.insert("item".into(), json!({ "sku": sku, "tags": ["x", sku] }));
            }
            if let Some(price) = price {
                properties.insert("price".into(), price);
            }
            properties
        })
}

/// One good identify, track or alias.
pub fn good_message() -> impl Strategy<Value = Message> {
    good_message_from(&IdentifierPools::small())
}

/// [`good_message`] with identifiers drawn from `pools`.
pub fn good_message_from(pools: &IdentifierPools) -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        3 => good_traits().prop_map(|traits| MessageKind::Identify { traits }),
        2 => (select(EVENTS.to_vec()), good_properties()).prop_map(|(event, properties)| {
            MessageKind::Track { event: event.into(), properties }
        }),
        1 => prop_oneof![select(pools.user_ids.clone()), select(pools.anonymous_ids.clone())]
            .prop_map(|previous_id| MessageKind::Alias { previous_id }),
    ];
    (
        kind,
        identifiers_from(pools),
        select(pools.user_ids.clone()),
        message_id(),
        proptest::option::of(0i64..30),
    )
        .prop_map(
            |(kind, (user_id, anonymous_id), alias_user, message_id, days_ago)| {
                let (user_id, anonymous_id) = match kind {
                    MessageKind::Alias { .. } => (Some(alias_user), None),
                    _ => (user_id, anonymous_id),
                };
                let timestamp_ms = match kind {
                    MessageKind::Track { .. } => days_ago.map(|days| NOW_MS - days * DAY_MS),
                    _ => None,
                };
                Message {
                    kind,
                    user_id,
                    anonymous_id,
                    message_id,
                    timestamp_ms,
                }
            },
        )
}

/// A good message that names one profile and changes no schema or identity key: a
/// track, or an identify of seeded traits, by a userId or an anonymousId from `pools`.
/// (Parallel apply lanes can run these side by side.)
pub fn single_profile_message_from(pools: &IdentifierPools) -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        (select(EVENTS.to_vec()), good_properties()).prop_map(|(event, properties)| {
            MessageKind::Track {
                event: event.into(),
                properties,
            }
        }),
        good_traits().prop_map(|mut traits| {
            for created_on_first_use in ["fresh_text", "fresh_count", "email"] {
                traits.remove(created_on_first_use);
            }
            MessageKind::Identify { traits }
        }),
    ];
    let who = prop_oneof![
        3 => select(pools.user_ids.clone()).prop_map(|user| (Some(user), None)),
        1 => select(pools.anonymous_ids.clone()).prop_map(|anonymous| (None, Some(anonymous))),
    ];
    (kind, who, proptest::option::of(0i64..30)).prop_map(
        |(kind, (user_id, anonymous_id), days_ago)| {
            let timestamp_ms = match kind {
                MessageKind::Track { .. } => days_ago.map(|days| NOW_MS - days * DAY_MS),
                _ => None,
            };
            Message {
                kind,
                user_id,
                anonymous_id,
                message_id: None,
                timestamp_ms,
            }
        },
    )
}

/// Good messages, between `min` and `max` of them.
pub fn good_batch(min: usize, max: usize) -> impl Strategy<Value = Vec<Message>> {
    proptest::collection::vec(good_message(), min..=max)
}

/// [`good_batch`] with identifiers drawn from `pools`.
pub fn good_batch_from(
    pools: &IdentifierPools,
    min: usize,
    max: usize,
) -> impl Strategy<Value = Vec<Message>> {
    proptest::collection::vec(good_message_from(pools), min..=max)
}

/// Messages to inject into a batch; the last is refused, the ones before are good.
#[derive(Clone, Debug)]
pub struct Injection {
    pub messages: Vec<Message>,
    /// What is wrong with the last message.
    pub why: &'static str,
}

fn single(message: Message, why: &'static str) -> Injection {
    Injection {
        messages: vec![message],
        why,
    }
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "n": inner }))
}

/// A good identify or track for `who`, to be spoiled by the caller.
fn some_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        good_traits().prop_map(|traits| MessageKind::Identify { traits }),
        (select(EVENTS.to_vec()), good_properties()).prop_map(|(event, properties)| {
            MessageKind::Track {
                event: event.into(),
                properties,
            }
        }),
    ]
}

fn with_ids(kind: MessageKind, user_id: Option<String>, anonymous_id: Option<String>) -> Message {
    Message {
        kind,
        user_id,
        anonymous_id,
        message_id: None,
        timestamp_ms: None,
    }
}

/// Identify traits the engine refuses on their own (bad names, values, shapes).
fn bad_traits() -> impl Strategy<Value = (Map<String, Value>, &'static str)> {
    let many: Map<String, Value> = (0..513).map(|n| (format!("t{n}"), json!(n))).collect();
    let long_list = vec!["t"; 257];
    select(vec![
        (object(json!({"": 1})), "empty trait name"),
        (object(json!({"a..b": 1})), "trait name with an empty part"),
        (
            object(json!({"x": {"": 1}})),
            "nested trait name ending in a dot",
        ),
        (
            object(json!({"bell\u{7}": 1})),
            "trait name with a control character",
        ),
        (object(json!({ "n".repeat(257): 1 })), "trait name too long"),
        (
            object(json!({"plan": "s".repeat(4097)})),
            "trait string too long",
        ),
        (
            object(json!({"long_text": "s".repeat(4097)})),
            "new trait string too long",
        ),
        (object(json!({"huge": u64::MAX})), "integer out of range"),
        (object(json!({"tags": [1, 2]})), "list of numbers"),
        (object(json!({ "tags": long_list })), "list too long"),
        (
            object(json!({ "deep": nested(9) })),
            "traits nested too deep",
        ),
        (many, "too many traits in one message"),
    ])
}

/// Event properties the engine refuses.
fn bad_properties() -> impl Strategy<Value = (Map<String, Value>, &'static str)> {
    let long_list = vec!["t"; 257];
    select(vec![
        (object(json!({"": 1})), "empty property name"),
        (
            object(json!({ "p".repeat(257): 1 })),
            "property name too long",
        ),
        (
            object(json!({"note": "s".repeat(4097)})),
            "property string too long",
        ),
        (
            object(json!({"count": u64::MAX})),
            "property number out of range",
        ),
        (
            object(json!({ "list": long_list })),
            "property list too long",
        ),
        (
            object(json!({ "deep": nested(9) })),
            "properties nested too deep",
        ),
    ])
}

/// A trait whose value conflicts with its seeded column's type.
fn conflicting_trait() -> impl Strategy<Value = (&'static str, Value)> {
    select(vec![
        ("age", json!("old")),
        ("age", json!(true)),
        ("vip", json!(3)),
        ("vip", json!("yes")),
        ("signup_at", json!(true)),
        ("signup_at", json!("yesterday")),
        ("score", json!("high")),
        ("plan", json!(7)),
        ("plan", json!(["a"])),
        ("ratio", json!("x")),
        ("address", json!({"city": false})),
    ])
}

/// Two values whose types conflict: the first creates a new trait, the second cannot
/// be stored in it.
fn conflicting_pair() -> impl Strategy<Value = (Value, Value)> {
    select(vec![
        (json!(1), json!("x")),
        (json!("x"), json!(1)),
        (json!(true), json!(1)),
        (json!(1), json!(true)),
        (json!("2025-01-01T00:00:00Z"), json!("x")),
        (json!(1.5), json!("x")),
        (json!("x"), json!(false)),
        (json!(1.5), json!(true)),
        (json!(["a"]), json!(2)),
    ])
}

/// One injection (see [`Injection`]).
pub fn injection() -> impl Strategy<Value = Injection> {
    let long = "x".repeat(segd::engine::MAX_IDENTIFIER_BYTES + 1);
    let long_event = "e".repeat(segd::events::MAX_EVENT_NAME_BYTES + 1);
    prop_oneof![
        // A trait whose type conflicts with its column's, next to good traits.
        (identifiers(), good_traits(), conflicting_trait()).prop_map(
            |((user, anonymous), mut traits, (name, value))| {
                traits.insert(name.into(), value);
                single(
                    identify(user, anonymous, traits),
                    "type conflicts with the column",
                )
            }
        ),
        // The original bug: two messages introduce the same new trait with two types.
        (identifiers(), identifiers(), conflicting_pair()).prop_map(
            |((user1, anonymous1), (user2, anonymous2), (first, second))| Injection {
                messages: vec![
                    identify(user1, anonymous1, object(json!({ PAIR_TRAIT: first }))),
                    identify(user2, anonymous2, object(json!({ PAIR_TRAIT: second }))),
                ],
                why: "a new trait introduced with two types",
            }
        ),
        // A widening to float after the batch wrote an integer a float cannot hold.
        (identifiers(), identifiers()).prop_map(|((user1, anonymous1), (user2, anonymous2))| {
            Injection {
                messages: vec![
                    identify(user1, anonymous1, object(json!({"big": 1i64 << 60}))),
                    identify(user2, anonymous2, object(json!({"big": 0.5}))),
                ],
                why: "widening loses an integer written earlier in the batch",
            }
        }),
        (identifiers(), bad_traits()).prop_map(|((user, anonymous), (traits, why))| single(
            identify(user, anonymous, traits),
            why
        )),
        (identifiers(), bad_properties(), select(EVENTS.to_vec())).prop_map(
            |((user, anonymous), (properties, why), event)| single(
                with_ids(
                    MessageKind::Track {
                        event: event.into(),
                        properties
                    },
                    user,
                    anonymous
                ),
                why
            )
        ),
        (some_kind(), proptest::option::of(anonymous_id())).prop_map(|(kind, anonymous)| single(
            with_ids(kind, Some(String::new()), anonymous),
            "empty userId"
        )),
        (some_kind(), proptest::option::of(user_id())).prop_map(|(kind, user)| single(
            with_ids(kind, user, Some(String::new())),
            "empty anonymousId"
        )),
        {
            let long = long.clone();
            (some_kind(), any::<bool>()).prop_map(move |(kind, as_user)| {
                let (user, anonymous) = if as_user {
                    (Some(long.clone()), None)
                } else {
                    (None, Some(long.clone()))
                };
                single(with_ids(kind, user, anonymous), "identifier too long")
            })
        },
        some_kind().prop_map(|kind| single(with_ids(kind, None, None), "no identifier")),
        (
            identifiers(),
            good_properties(),
            prop_oneof![Just(String::new()), Just(long_event)]
        )
            .prop_map(|((user, anonymous), properties, event)| single(
                with_ids(MessageKind::Track { event, properties }, user, anonymous),
                "bad event name"
            )),
        (anonymous_id(), user_id()).prop_map(|(anonymous, previous_id)| single(
            with_ids(MessageKind::Alias { previous_id }, None, Some(anonymous)),
            "alias without userId"
        )),
        (user_id(), prop_oneof![Just(String::new()), Just(long)]).prop_map(
            |(user, previous_id)| single(
                with_ids(MessageKind::Alias { previous_id }, Some(user), None),
                "alias with a bad previousId"
            )
        ),
    ]
}

/// Renames trait `from` to `to` in an identify.
fn rename_trait(message: &mut Message, from: &str, to: &str) {
    if let MessageKind::Identify { traits } = &mut message.kind {
        if let Some(value) = traits.remove(from) {
            traits.insert(to.into(), value);
        }
    }
}

/// Between 1 and `max` injections, the two-message ones each with their own trait
/// (`zz0`, `zz1`, ...).
pub fn injections(max: usize) -> impl Strategy<Value = Vec<Injection>> {
    proptest::collection::vec(injection(), 1..=max).prop_map(|mut list| {
        for (index, injection) in list.iter_mut().enumerate() {
            for message in &mut injection.messages {
                rename_trait(message, PAIR_TRAIT, &format!("{PAIR_TRAIT}{index}"));
            }
        }
        list
    })
}

/// A batch of good messages with injections placed at random positions (the messages
/// of one injection keep their order, others may come between them).
#[derive(Clone, Debug)]
pub struct Spoiled {
    pub messages: Vec<Message>,
    /// Positions of refused messages, ascending.
    pub bad: Vec<usize>,
    /// What is wrong with each refused message, in the order of `bad`.
    pub why: Vec<&'static str>,
}

impl Spoiled {
    /// The batch without its refused messages.
    pub fn cleaned(&self) -> Vec<Message> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(index, _)| self.bad.binary_search(index).is_err())
            .map(|(_, message)| message.clone())
            .collect()
    }
}

/// `good` with `injections` inserted: each injected message gets a slot (insert before
/// `good[slot]`, or at the end), the slots of one injection ascending.
pub fn spoiled_batch(
    good_len: (usize, usize),
    max_injections: usize,
) -> impl Strategy<Value = Spoiled> {
    (
        good_batch(good_len.0, good_len.1),
        injections(max_injections),
    )
        .prop_flat_map(|(good, injections)| {
            let slots: Vec<_> = injections
                .iter()
                .map(|injection| {
                    proptest::collection::vec(0..=good.len(), injection.messages.len()).prop_map(
                        |mut slots| {
                            slots.sort_unstable();
                            slots
                        },
                    )
                })
                .collect();
            (Just(good), Just(injections), slots)
        })
        .prop_map(|(good, injections, slots)| {
            // (slot, injection, message within it) orders the injected messages.
            let mut placed: Vec<(usize, usize, usize)> = Vec::new();
            for (which, slots) in slots.iter().enumerate() {
                for (within, slot) in slots.iter().enumerate() {
                    placed.push((*slot, which, within));
                }
            }
            placed.sort_unstable();
            let mut messages = Vec::new();
            let mut bad = Vec::new();
            let mut why = Vec::new();
            let mut next = placed.iter().peekable();
            for slot in 0..=good.len() {
                while let Some(&&(at, which, within)) = next.peek() {
                    if at != slot {
                        break;
                    }
                    next.next();
                    let injection = &injections[which];
                    if within + 1 == injection.messages.len() {
                        bad.push(messages.len());
                        why.push(injection.why);
                    }
                    messages.push(injection.messages[within].clone());
                }
                if let Some(message) = good.get(slot) {
                    messages.push(message.clone());
                }
            }
            Spoiled { messages, bad, why }
        })
}
