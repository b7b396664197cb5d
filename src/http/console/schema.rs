//! `GET /v1/schema`: what the rule builder offers — every trait with its type and how
//! many profiles hold it, the most frequent values of dictionary-encoded strings and of
//! lists, and every event name with how many profiles performed it and the property
//! names seen on it.
//!
//! Read-only over the shards (read locks through `Engine::map_shards`), computed on the
//! blocking pool when asked; nothing is maintained on the ingest path. Property names
//! are collected from a bounded sample of each event's performers per shard.

use crate::engine::Engine;
use crate::events::EventNameId;
use crate::http::error::ApiResult;
use crate::http::{blocking, AppState};
use crate::store::shard::Shard;
use crate::store::value::TraitType;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most values listed per trait.
pub const TOP_VALUES: usize = 20;
/// Profiles per shard and event whose stored events are read for property names.
pub const PROPERTY_SAMPLE_PROFILES: usize = 64;
/// Most property names listed per event.
pub const MAX_PROPERTIES_LISTED: usize = 100;

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TopValue {
    pub value: String,
    pub profiles: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TraitInfo {
    pub name: String,
    /// `string`, `integer`, `float`, `boolean`, `timestamp` or `list`.
    #[serde(rename = "type")]
    pub trait_type: TraitType,
    /// Profiles holding a value.
    pub profiles: u64,
    /// Most frequent values, most frequent first (dictionary strings and lists only;
    /// absent for high-cardinality strings such as emails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_values: Option<Vec<TopValue>>,
    /// Distinct values (when `top_values` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_values: Option<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EventInfo {
    pub name: String,
    /// Profiles that ever performed it.
    pub profiles: u64,
    /// Property names seen on it (sampled), sorted.
    pub properties: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SchemaReport {
    pub profiles: u64,
    pub traits: Vec<TraitInfo>,
    pub events: Vec<EventInfo>,
}

#[derive(Default)]
struct ShardPart {
    /// column index → (profiles holding it, value → profiles)
    traits: HashMap<usize, (u64, Option<HashMap<String, u64>>)>,
    /// event name → (profiles, property names)
    events: HashMap<String, (u64, BTreeSet<String>)>,
}

fn shard_part(shard: &Shard) -> ShardPart {
    let mut part = ShardPart::default();
    for (index, column) in shard.columns.iter().enumerate() {
        let Some(column) = column else { continue };
        let values = column.value_counts().map(|counts| {
            counts
                .into_iter()
                .filter(|(_, profiles)| *profiles > 0)
                .map(|(value, profiles)| (value.to_string(), profiles))
                .collect()
        });
        part.traits.insert(
            index,
            (column.present.intersection_len(&shard.live), values),
        );
    }
    let store = &shard.events;
    for (index, name) in store.name_list.iter().enumerate() {
        let id = EventNameId(index as u32);
        let performers = store.profiles_with(id);
        let profiles = performers.intersection_len(&shard.live);
        if profiles == 0 {
            continue;
        }
        let mut properties = BTreeSet::new();
        for local in performers.iter().take(PROPERTY_SAMPLE_PROFILES) {
            for event in store.events(local, id, i64::MIN, i64::MAX) {
                for (property, _) in event.properties() {
                    if properties.len() < MAX_PROPERTIES_LISTED {
                        properties.insert(store.property_name(property).to_string());
                    }
                }
            }
        }
        part.events.insert(name.to_string(), (profiles, properties));
    }
    part
}

/// The schema report of an engine.
pub fn report(engine: &Engine) -> SchemaReport {
    let schema = engine.schema();
    let parts = engine.map_shards(shard_part);
    let mut traits = Vec::with_capacity(schema.len());
    for (id, info) in schema.columns() {
        let index = id.0 as usize;
        let mut profiles = 0;
        let mut values: Option<HashMap<&str, u64>> = None;
        for part in &parts {
            let Some((present, counts)) = part.traits.get(&index) else {
                continue;
            };
            profiles += present;
            if let Some(counts) = counts {
                let merged = values.get_or_insert_with(HashMap::new);
                for (value, count) in counts {
                    *merged.entry(value.as_str()).or_default() += count;
                }
            }
        }
        let wants_values = matches!(info.trait_type, TraitType::String | TraitType::List);
        let (top_values, distinct_values) = match values.filter(|_| wants_values) {
            Some(values) => {
                let distinct = values.len() as u64;
                let mut sorted: Vec<(&str, u64)> = values.into_iter().collect();
                sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                sorted.truncate(TOP_VALUES);
                (
                    Some(
                        sorted
                            .into_iter()
                            .map(|(value, profiles)| TopValue {
                                value: value.to_string(),
                                profiles,
                            })
                            .collect(),
                    ),
                    Some(distinct),
                )
            }
            None => (None, None),
        };
        traits.push(TraitInfo {
            name: info.name.clone(),
            trait_type: info.trait_type,
            profiles,
            top_values,
            distinct_values,
        });
    }
    traits.sort_by(|a, b| a.name.cmp(&b.name));
    let mut events: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for part in parts {
        for (name, (profiles, properties)) in part.events {
            let entry = events.entry(name).or_default();
            entry.0 += profiles;
            entry.1.extend(properties);
        }
    }
    SchemaReport {
        profiles: engine.profile_count(),
        traits,
        events: events
            .into_iter()
            .map(|(name, (profiles, properties))| EventInfo {
                name,
                profiles,
                properties: properties.into_iter().take(MAX_PROPERTIES_LISTED).collect(),
            })
            .collect(),
    }
}

/// Traits with types and top values, events with property names (for rule builders).
#[utoipa::path(get, path = "/v1/schema", operation_id = "getSchema", tag = "console",
    responses(
        (status = 200, description = "What the data holds", body = SchemaReport),
        (status = "default", description = "Error", body = crate::http::error::ErrorBody),
    ))]
pub async fn get_schema(State(state): State<AppState>) -> ApiResult<Json<SchemaReport>> {
    Ok(Json(blocking(&state, report).await?))
}
