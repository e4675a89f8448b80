//! The daily bulletin over HTTP: `GET /api/v1/bulletins/{date}` (JSON),
//! `GET /bulletins/{date}` (the printable page with its charts, `?lang=zh|en`) and
//! `GET /bulletins/{date}/rain.png` (the rain chart the WeCom robot receives). `latest`
//! names the last hydrological day that has ended. Each is computed from the journal (the
//! stored copy once retention may have deleted the day's readings: `bulletin::document`).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::bulletin::{self, Bulletin, BulletinError};
use crate::config::Language;
use crate::model::now_millis;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

async fn load(state: &AppState, date: String) -> Result<Bulletin, ApiError> {
    let settings = state.settings.clone();
    let reader = state.reader.clone();
    tokio::task::spawn_blocking(move || {
        let now = now_millis();
        let day = if date == "latest" {
            bulletin::last_ended_day(&settings, now).ok_or_else(|| BulletinError::Date(date))?
        } else {
            bulletin::parse_date(&date)?
        };
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        bulletin::document(&conn, &settings, day, now)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| match e {
        BulletinError::Date(_) => ApiError::bad_request(e.to_string()),
        BulletinError::NotEnded(_) | BulletinError::Bounds(_) => ApiError::not_found(e.to_string()),
        BulletinError::Journal(_) => ApiError::internal(e.to_string()),
    })
}

/// `GET /api/v1/bulletins/{date}`: the same bytes as `hydrowatch bulletin --format json`.
pub async fn json(State(state): State<AppState>, Path(date): Path<String>) -> Response {
    match load(&state, date).await {
        Ok(b) => (
            [(header::CONTENT_TYPE, "application/json")],
            bulletin::to_json(&b),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The page's language: `?lang=`, else Chinese.
fn language(q: &PageQuery) -> Language {
    match q.lang.as_deref() {
        Some("en") => Language::English,
        _ => Language::Chinese,
    }
}

/// `GET /bulletins/{date}`.
pub async fn page(
    State(state): State<AppState>,
    Path(date): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match load(&state, date).await {
        Ok(b) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            bulletin::render::html(&b, &state.settings, language(&q)),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /bulletins/{date}/rain.png`.
pub async fn rain_png(State(state): State<AppState>, Path(date): Path<String>) -> Response {
    match load(&state, date).await {
        Ok(b) => match bulletin::image::rain_png(&b) {
            Some(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
            None => ApiError::not_found("no station had rain that day").into_response(),
        },
        Err(e) => e.into_response(),
    }
}
