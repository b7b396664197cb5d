//! `/openapi.json`: an OpenAPI 3.1 description generated from the handlers themselves —
//! each handler's `#[utoipa::path]` (operationId, tag, path and query parameters, request
//! body content types, responses) and the `ToSchema` request/response types it takes and
//! returns, so the schemas are the types the handlers serialize. Security comes from the
//! route table's scopes (the same scopes the auth layer enforces). A test checks that the
//! document and the route table list the same operations (`src/http/openapi.rs` tests
//! and `tests/http_api.rs`); `tests/common/openapi.rs` validates every JSON response of
//! the HTTP tests against it, and `clients/typescript` generates a client from it.
//!
//! `segd openapi` prints the same document without starting a server.

use crate::http::auth::Scope;
use crate::http::route_table;
use crate::http::{changes, console, ingest, membership, operations, segments, webhooks};
use axum::Json;
use serde_json::{json, Value};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;

/// A rule in a request: rule text (a string) or the JSON AST (an object).
#[derive(Debug)]
pub struct RuleSchema;

impl utoipa::PartialSchema for RuleSchema {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "Rule text, e.g. `plan = \"pro\" and count(purchase, 30d) >= 2`",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("The rule's JSON AST (an object with a `kind`)")),
            )
            .into()
    }
}

impl utoipa::ToSchema for RuleSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Rule")
    }
}

/// The document as utoipa derives it from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "segd",
        description = "Real-time customer segmentation engine. Errors are always \
            `{\"error\": {\"code\", \"message\", ...}}` with a stable `code`."
    ),
    paths(
        operations::healthz,
        operations::readyz,
        operations::metrics,
        openapi_json,
        operations::snapshot,
        ingest::identify,
        ingest::identify_bare,
        ingest::track,
        ingest::track_bare,
        ingest::page,
        ingest::page_bare,
        ingest::screen,
        ingest::screen_bare,
        ingest::group,
        ingest::group_bare,
        ingest::alias,
        ingest::alias_bare,
        ingest::batch,
        ingest::batch_bare,
        ingest::beacon_batch,
        ingest::beacon_batch_bare,
        segments::create,
        segments::list,
        segments::preview,
        segments::count,
        segments::get_one,
        segments::update,
        segments::remove,
        segments::members_page,
        segments::members_ndjson,
        segments::static_add,
        segments::static_remove,
        segments::explain,
        membership::is_member,
        membership::segments_of,
        membership::bulk,
        membership::card,
        membership::erase,
        membership::export,
        changes::long_poll,
        changes::stream,
        webhooks::register,
        webhooks::list,
        webhooks::get_one,
        webhooks::remove,
        webhooks::rotate_secret,
        console::schema::get_schema,
        console::assets::root_to_console,
        console::assets::to_console,
        console::assets::index,
        console::assets::file,
        console::session::login,
        console::session::current,
        console::session::logout,
        console::activity::get_activity,
        console::rule::check_rule,
    ),
    components(schemas(crate::http::error::ErrorBody)),
    tags(
        (name = "operations", description = "Health, readiness, metrics, snapshots"),
        (name = "ingest", description = "Segment-spec ingest (write key)"),
        (name = "segments", description = "Segment management (admin key)"),
        (name = "membership", description = "Membership lookups (read key)"),
        (name = "profiles", description = "Profile card, export, erasure"),
        (name = "changes", description = "The membership change feed (read key)"),
        (name = "webhooks", description = "Membership changes POSTed to a URL (admin key)"),
        (name = "console", description = "The marketer console's helpers"),
    )
)]
pub struct ApiDoc;

/// The security requirements of a scope (OpenAPI: any one of the listed schemes).
fn security(scope: Scope) -> Value {
    match scope {
        Scope::Public => json!([]),
        Scope::Write => json!([{ "writeKey": [] }]),
        Scope::Read => json!([{ "readKey": [] }, { "adminKey": [] }]),
        Scope::Admin => json!([{ "adminKey": [] }]),
    }
}

/// The OpenAPI document: utoipa's, plus each operation's security from its route's
/// scope (`x-segd-scope` names it) and the security schemes.
pub fn document() -> Value {
    let mut document =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    document["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    for route in route_table() {
        let method = route.method.as_str().to_ascii_lowercase();
        // A route without an operation is caught by the tests; nothing to add here.
        if let Some(operation) = document["paths"][route.path]
            .get_mut(&method)
            .and_then(Value::as_object_mut)
        {
            operation.insert("security".into(), security(route.scope));
            operation.insert("x-segd-scope".into(), json!(route.scope.name()));
            // Every route can be refused by the layers in front of its handler (auth, host
            // check, load shedding, timeout) with the one error shape.
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.entry("default").or_insert_with(|| {
                    json!({
                        "description": "Error: refused by authentication, the host check, load \
                            shedding or the request timeout",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    })
                });
            }
        }
    }
    declare_free_form_objects(&mut document);
    document["components"]["securitySchemes"] = json!({
        "writeKey": {
            "type": "http", "scheme": "basic",
            "description": "Ingest: the write key as the username and an empty password (the Segment \
                convention). Without an Authorization header the body's `writeKey` is checked instead \
                (analytics.js sendBeacon)."
        },
        "readKey": {"type": "http", "scheme": "bearer", "description": "A read key: lookups and the change feed"},
        "adminKey": {"type": "http", "scheme": "bearer", "description": "An admin key: passes for every scope"}
    });
    document
}

/// Makes `additionalProperties: true` explicit on object schemas that list no properties
/// (traits, event properties, rule ASTs): the same meaning in JSON Schema, but generators
/// read a bare `{"type": "object"}` as an empty object (`Record<string, never>`).
fn declare_free_form_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_object = match map.get("type") {
                Some(Value::String(kind)) => kind == "object",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
                _ => false,
            };
            if is_object
                && !map.contains_key("properties")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(true));
            }
            for child in map.values_mut() {
                declare_free_form_objects(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(declare_free_form_objects),
        _ => {}
    }
}

/// This API description.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The router and the document list the same (method, path) pairs: nothing routed is
    /// undocumented, nothing documented is unrouted.
    #[test]
    fn the_document_and_the_route_table_agree() {
        let document = document();
        let routed: BTreeSet<(String, String)> = route_table()
            .iter()
            .map(|route| {
                (
                    route.method.as_str().to_ascii_lowercase(),
                    route.path.to_string(),
                )
            })
            .collect();
        let mut documented = BTreeSet::new();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                documented.insert((method.clone(), path.clone()));
                let id = operation["operationId"].as_str().unwrap().to_string();
                assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
                assert!(operation["tags"].is_array(), "{method} {path} has no tag");
                assert!(
                    operation["security"].is_array(),
                    "{method} {path}: no security"
                );
            }
        }
        assert_eq!(routed, documented);
    }
}
