//! The OpenAPI description of the HTTP API, served at `/api/v1/openapi.json`.
//!
//! Written by hand in `openapi.json` beside this file, so that it reads as documentation and
//! changes in review next to the handler it describes; the tests check that every route the
//! router serves appears in it.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document as written.
pub const SOURCE: &str = include_str!("openapi.json");

/// The document with `info.version` set to this build's version.
pub fn value() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        // The file is checked by a unit test; should it ever be broken, serve a stub
        // rather than fail every request.
        let mut doc: serde_json::Value = serde_json::from_str(SOURCE).unwrap_or_else(
            |e| serde_json::json!({"openapi": "3.0.3", "info": {"title": "hydrowatch", "description": e.to_string()}, "paths": {}}),
        );
        doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
        doc
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value().to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_valid_json_with_every_reference_defined() {
        let doc: serde_json::Value = serde_json::from_str(SOURCE).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.0.3");
        // Every `$ref` points at something that exists.
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
        assert_eq!(value()["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_route_of_the_router_is_described() {
        let doc: serde_json::Value = serde_json::from_str(SOURCE).expect("openapi.json parses");
        let router_source = include_str!("mod.rs");
        let mut seen = 0;
        for piece in router_source.split(".route(\"").skip(1) {
            let path = piece.split('"').next().expect("a quoted path");
            seen += 1;
            assert!(
                doc["paths"].get(path).is_some(),
                "route {path} is missing from openapi.json"
            );
        }
        assert!(seen >= 12, "found only {seen} routes in api/mod.rs");
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
