//! The OpenAPI description of the HTTP API, served at `/api/v1/openapi.json`.

use axum::Json;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"openapi": "3.0.3", "info": {"title": "hydrowatch", "version": env!("CARGO_PKG_VERSION")}, "paths": {}}),
    )
}
