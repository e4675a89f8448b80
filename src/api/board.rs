//! The status board: one page, its assets built into the binary (no CDN: the board must work
//! on an isolated office network).

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::ApiError;

const PAGE: &str = "<!doctype html><title>hydrowatch</title><p>hydrowatch";

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let _ = header::CONTENT_TYPE;
    ApiError::not_found(format!("no asset `{name}`")).into_response()
}
