//! The HTTP side: health and readiness, Prometheus metrics, the JSON API of the contract,
//! server-sent events, and the status board.
//!
//! Handlers read the writer's published state (station status, open alerts) or the journal
//! through a read connection; the only write, acknowledgement, goes through the journal
//! writer like everything else.

mod board;
mod bulletins;
mod callouts;
pub mod guard;
mod handlers;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::config::Settings;
use crate::ingest::mqtt::SourceStatus;
use crate::writer::{Command, Live, Shared};

/// Everything a handler may need.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub shared: Arc<Shared>,
    pub writer: mpsc::Sender<Command>,
    pub live: broadcast::Sender<Live>,
    pub source: Arc<SourceStatus>,
    pub reader: Arc<Mutex<Connection>>,
    pub metrics: Option<PrometheusHandle>,
    /// Rate limits, event stream slots: see [`guard`].
    pub guard: Arc<guard::Guard>,
}

/// A JSON error body with the HTTP status it goes with.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: &self.message,
            status: self.status.as_u16(),
        });
        (self.status, body).into_response()
    }
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let reads = Router::new()
        .route("/api/v1/stations", get(handlers::stations))
        .route("/api/v1/stations/{id}", get(handlers::station))
        .route("/api/v1/stations/{id}/series", get(handlers::series))
        .route("/api/v1/alerts", get(handlers::alerts))
        .route("/api/v1/alerts/{id}", get(handlers::alert))
        .route("/api/v1/alerts/{id}/callouts", get(callouts::callouts))
        .route("/api/v1/unreached", get(callouts::unreached))
        .route("/api/v1/dead_letters", get(handlers::dead_letters))
        .route("/api/v1/notifications", get(handlers::notifications))
        .route("/api/v1/events", get(handlers::events))
        .route("/api/v1/bulletins/{date}", get(bulletins::json))
        .route("/bulletins/{date}", get(bulletins::page))
        .route("/bulletins/{date}/rain.png", get(bulletins::rain_png))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_access));
    let metrics = Router::new().route("/metrics", get(metrics_text));
    let metrics = if state.settings.http.metrics_need_token {
        metrics.route_layer(middleware::from_fn_with_state(state.clone(), read_access))
    } else {
        metrics
    };
    Router::new()
        .route("/", get(board::page))
        .route("/assets/{name}", get(board::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/alerts/{id}/ack", post(handlers::acknowledge))
        .route("/api/v1/callbacks/{channel_id}", post(callouts::callback))
        .route(
            "/api/v1/session",
            post(handlers::login).delete(handlers::logout),
        )
        .merge(metrics)
        .merge(reads)
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

/// Ready when the journal is open (the writer exists) and the broker has acknowledged the
/// subscriptions on the current connection.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.writer.is_closed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "journal writer stopped").into_response();
    }
    if state.shared.journal_paused.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the journal cannot be written (disk full or I/O error); ingestion paused",
        )
            .into_response();
    }
    if !state.source.subscribed.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not subscribed to the broker",
        )
            .into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not enabled in this process").into_response(),
    }
}

/// With `http.read_token` set, reads need `Authorization: Bearer <token>` or the board's
/// session cookie (and `?token=` only with `http.legacy_query_token`). Without it, reads are
/// open: the office network. A wrong token counts against the client's address.
async fn read_access(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Request,
    next: Next,
) -> Response {
    let http = &state.settings.http;
    let Some(expected) = &http.read_token else {
        return next.run(request).await;
    };
    let peer = guard::peer_ip(peer);
    if guard::presents_token(http, request.headers(), request.uri()) {
        if let Some(limited) = state.guard.limited(peer) {
            return limited;
        }
    }
    match guard::read_access(http, expected, request.headers(), request.uri()) {
        guard::ReadAccess::Granted => next.run(request).await,
        outcome => {
            if outcome == guard::ReadAccess::Wrong {
                state.guard.failed(peer);
            }
            ApiError::new(StatusCode::UNAUTHORIZED, "reads need the read token").into_response()
        }
    }
}
