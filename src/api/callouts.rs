//! 叫应 over HTTP: who is still unreached (`GET /api/v1/unreached`), an alert's callout audit
//! (`GET /api/v1/alerts/{id}/callouts`, JSON or CSV), and the route where a provider's call
//! results and SMS replies arrive (`POST /api/v1/callbacks/{channel_id}`).
//!
//! The callback route is authenticated by the channel's own secret: the body's HMAC-SHA256,
//! `X-Hydrowatch-Signature: sha256=<hex>`, the same signature hydrowatch puts on its webhooks;
//! or, for voice and SMS platforms that cannot sign what they push (Aliyun's call reports,
//! Tencent's callbacks), by the channel's `callback_key` in the URL the operator registers
//! with the platform (`?key=`).
//! The body becomes [`Answer`]s through `notify::callout::parse_answers`; recording them and
//! acknowledging is the journal writer's job, like every other write.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::handlers::WRITER_WAIT;
use super::{guard, ApiError, AppState};
use crate::journal;
use crate::notify::callout::{self, Answer};
use crate::notify::callout_log;
use crate::writer::{AnswerResult, Command};

/// `GET /api/v1/unreached`: open alerts whose page nobody answered in time (未叫醒), oldest
/// first, each with who was paged, since when, and what was tried.
pub async fn unreached(
    State(state): State<AppState>,
) -> Result<Json<Vec<callout_log::Unreached>>, ApiError> {
    let reader = state.reader.clone();
    let settings = state.settings.clone();
    let list = tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        let open = journal::open_alerts(&conn)?;
        callout_log::unreached(&conn, &settings, &open)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(list))
}

#[derive(Deserialize)]
pub struct CalloutsQuery {
    /// `csv` or `json`; otherwise the `Accept` header decides (JSON by default).
    pub format: Option<String>,
}

/// Most audit lines one answer holds.
const MAX_AUDIT: usize = 10_000;

/// `GET /api/v1/alerts/{id}/callouts`: every page, delivery, call result and acknowledgement
/// of an alert with its time and person, oldest first. JSON, or CSV with `Accept: text/csv`
/// (or `?format=csv`).
pub async fn callouts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CalloutsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format `{other}` is not `json` or `csv`"
            )))
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
    };
    let reader = state.reader.clone();
    let settings = state.settings.clone();
    let alert_id = id.clone();
    let entries = tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        if journal::alert(&conn, &alert_id)?.is_none() {
            return Ok(None);
        }
        callout_log::audit(&conn, &settings, &alert_id, MAX_AUDIT).map(Some)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?
    .ok_or_else(|| ApiError::not_found("no such alert"))?;
    if !csv {
        return Ok(Json(entries).into_response());
    }
    let body = callout_log::csv(&state.settings, &entries)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"callouts-{id}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/v1/callbacks/{channel_id}`: a provider reports call results or SMS replies
/// for the channel with that id. 401 unless `X-Hydrowatch-Signature` is the body's
/// HMAC-SHA256 with the channel's secret (counted against the address like a wrong token);
/// 404 for a channel id no team has; 400 for a body that holds no answer; 200 with what
/// became of each answer (the alerts it acknowledged).
pub async fn callback(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    Query(query): Query<CallbackQuery>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = guard::peer_ip(peer);
    if let Some(limited) = state.guard.limited(peer) {
        return limited;
    }
    let answer = receive(&state, &channel_id, query.key.as_deref(), &headers, &body).await;
    if let Err(e) = &answer {
        // Guessing channel ids counts like guessing keys: both are refused attempts.
        if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::NOT_FOUND {
            state.guard.failed(peer);
        }
    }
    answer.into_response()
}

/// `?key=`: a channel's `callback_key`.
#[derive(Deserialize)]
pub struct CallbackQuery {
    key: Option<String>,
}

async fn receive(
    state: &AppState,
    channel_id: &str,
    key: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Vec<AnswerResult>>, ApiError> {
    let candidates: Vec<_> = state
        .settings
        .teams
        .iter()
        .flat_map(|t| t.channels.iter().map(move |c| (t, c)))
        .filter(|(_, c)| c.id == channel_id)
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::not_found(format!("no channel `{channel_id}`")));
    }
    let presented = headers
        .get("x-hydrowatch-signature")
        .and_then(|v| v.to_str().ok());
    if presented.is_none() && key.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a callback needs X-Hydrowatch-Signature: sha256=<hex HMAC-SHA256 of the body with the channel's secret>, \
             or the channel's callback_key as ?key=",
        ));
    }
    // Every candidate is checked, each in constant time.
    let verified = candidates.iter().fold(None, |found, (team, channel)| {
        let signed = presented.is_some_and(|presented| {
            channel.secret.as_deref().is_some_and(|secret| {
                crate::config::same_secret(
                    presented,
                    &crate::notify::channels::signature(secret, body),
                )
            })
        });
        let keyed = key.is_some_and(|key| {
            channel
                .callback_key
                .as_deref()
                .is_some_and(|expected| crate::config::same_secret(key, expected))
        });
        found.or((signed || keyed).then_some((*team, *channel)))
    });
    let Some((team, channel)) = verified else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "neither the signature nor the key matches the channel's",
        ));
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let answers: Vec<Answer> = callout::parse_answers(channel, body, content_type)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (reply, result) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the journal is not taking writes right now; the provider should retry",
        )
    };
    state
        .writer
        .send_timeout(
            Command::Answer {
                channel: crate::notify::destination(team, channel),
                answers,
                reply,
            },
            WRITER_WAIT,
        )
        .await
        .map_err(|_| unavailable())?;
    let results = tokio::time::timeout(WRITER_WAIT, result)
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())?;
    Ok(Json(results))
}
