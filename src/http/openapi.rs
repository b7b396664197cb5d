//! `/openapi.json`: an OpenAPI 3.1 description generated from the route table, so every
//! route is described (a test checks it) and none is described that does not exist.

use crate::http::auth::Scope;
use crate::http::route_table;
use axum::Json;
use serde_json::{json, Map, Value};

/// Path parameters of a template (`/v1/segments/{id}/explain/{profile}` → id, profile).
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in route_table() {
        let security = match route.scope {
            Scope::Public => json!([]),
            Scope::Write => json!([{ "writeKey": [] }]),
            Scope::Read => json!([{ "readKey": [] }, { "adminKey": [] }]),
            Scope::Admin => json!([{ "adminKey": [] }]),
        };
        let parameters: Vec<Value> = path_parameters(route.path)
            .into_iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "security": security,
            "x-segd-scope": route.scope.name(),
            "parameters": parameters,
            "responses": {
                "200": {"description": "success"},
                "default": {"description": "error: {\"error\": {\"code\", \"message\", ...}}",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if matches!(route.method.as_str(), "POST" | "PUT") {
            operation["requestBody"] = json!({
                "content": {"application/json": {"schema": {"type": "object"}}}
            });
        }
        paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|item| item.insert(route.method.as_str().to_ascii_lowercase(), operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "segd", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Real-time customer segmentation engine"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "write key as the username, empty password"},
                "readKey": {"type": "http", "scheme": "bearer"},
                "adminKey": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
            }
        }
    })
}

pub async fn openapi_json() -> Json<Value> {
    Json(document())
}
