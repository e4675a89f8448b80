//! The JSON routes of the contract.

use std::convert::Infallible;
use std::time::Duration;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tokio_stream::StreamExt;

use super::{guard, ApiError, AppState};
use crate::alerts::{Alert, AlertEvent};
use crate::config::{Stage, Station};
use crate::journal;
use crate::model::{format_time, now_millis, Millis, Reading};
use crate::notify::outbox;
use crate::rules::{AckError, StationStatus};
use crate::writer::Command;

/// Most points a series returns before it is downsampled.
const MAX_POINTS: usize = 2000;

/// A station as the API shows it.
#[derive(Serialize)]
pub struct StationView {
    pub id: String,
    pub name: String,
    pub river: Option<String>,
    pub basin: Option<String>,
    pub team: Option<String>,
    /// The team's display name, for the board.
    pub team_name: Option<String>,
    pub stages: Vec<StageView>,
    pub drought: Vec<StageView>,
    pub rain_thresholds: Vec<RainView>,
    /// Rise rate that alerts (rule `rise_rate`), when configured.
    pub rise_rate_m_per_h: Option<f64>,
    pub maintenance: bool,
    pub status: Option<StationStatus>,
    pub open_alerts: Vec<Alert>,
}

#[derive(Serialize)]
pub struct StageView {
    pub name: String,
    pub level_m: f64,
}

#[derive(Serialize)]
pub struct RainView {
    pub window: String,
    pub threshold_mm: f64,
}

fn stage_views(stages: &[Stage]) -> Vec<StageView> {
    stages
        .iter()
        .map(|s| StageView {
            name: s.name.clone(),
            level_m: s.level_m,
        })
        .collect()
}

fn view(state: &AppState, s: &Station, open: &[Alert]) -> StationView {
    let status = state
        .shared
        .statuses
        .read()
        .ok()
        .and_then(|m| m.get(&s.id).cloned());
    StationView {
        id: s.id.clone(),
        name: s.name.clone(),
        river: s.river.clone(),
        basin: s.basin.clone(),
        team: s.team.clone(),
        team_name: s
            .team
            .as_ref()
            .and_then(|t| state.settings.teams.iter().find(|team| &team.id == t))
            .map(|team| team.name.clone()),
        stages: stage_views(&s.stages.stages),
        drought: stage_views(&s.drought.stages),
        rain_thresholds: s
            .rain
            .iter()
            .map(|w| RainView {
                window: w.label.clone(),
                threshold_mm: w.threshold_mm,
            })
            .collect(),
        rise_rate_m_per_h: s.rise_rate_m_per_h,
        maintenance: s.maintenance,
        status,
        open_alerts: open.iter().filter(|a| a.station == s.id).cloned().collect(),
    }
}

fn open_alerts(state: &AppState) -> Vec<Alert> {
    state
        .shared
        .open_alerts
        .read()
        .map(|a| a.clone())
        .unwrap_or_default()
}

/// `GET /api/v1/stations`: every station with its latest readings, stage status and trend,
/// in catalogue order (upstream to downstream when the catalogue is written that way).
pub async fn stations(State(state): State<AppState>) -> Json<Vec<StationView>> {
    let open = open_alerts(&state);
    Json(
        state
            .settings
            .stations
            .iter()
            .map(|s| view(&state, s, &open))
            .collect(),
    )
}

/// `GET /api/v1/stations/{id}`.
pub async fn station(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StationView>, ApiError> {
    let s = state
        .settings
        .station(&id)
        .ok_or_else(|| ApiError::not_found(format!("no station `{id}`")))?;
    Ok(Json(view(&state, s, &open_alerts(&state))))
}

#[derive(Deserialize)]
pub struct SeriesQuery {
    pub element: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A stored series, possibly downsampled.
#[derive(Serialize)]
pub struct SeriesView {
    pub station: String,
    pub element: String,
    pub from: String,
    pub to: String,
    /// `raw`, or how buckets were combined: `mean` for levels, `sum` for rain amounts.
    pub method: String,
    pub bucket_s: Option<i64>,
    /// `[time_ms, value]`, oldest first.
    pub points: Vec<(Millis, f64)>,
}

fn parse_bound(name: &str, text: &str, tz: &jiff::tz::TimeZone) -> Result<Millis, ApiError> {
    crate::ingest::decode::parse_time(&serde_json::Value::String(text.to_string()), tz).map_err(
        |_| {
            ApiError::bad_request(format!(
                "`{name}` must be RFC 3339, e.g. 2021-07-20T08:00:00+08:00"
            ))
        },
    )
}

fn element_of(r: &Reading, element: &str) -> Option<f64> {
    match element {
        "level_m" => r.level_m,
        "rain_mm" => r.rain_mm,
        "rain_total_mm" => r.rain_total_mm,
        "flow_m3s" => r.flow_m3s,
        "battery_v" => r.battery_v,
        _ => None,
    }
}

/// `GET /api/v1/stations/{id}/series?element=level_m&from=&to=`. Defaults: the 24 hours up
/// to the station's latest reading (or now).
pub async fn series(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<SeriesView>, ApiError> {
    if state.settings.station(&id).is_none() {
        return Err(ApiError::not_found(format!("no station `{id}`")));
    }
    let element = q.element.unwrap_or_else(|| "level_m".into());
    if ![
        "level_m",
        "rain_mm",
        "rain_total_mm",
        "flow_m3s",
        "battery_v",
    ]
    .contains(&element.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "unknown element `{element}`: use level_m, rain_mm, rain_total_mm, flow_m3s or battery_v"
        )));
    }
    let tz = state.settings.rules.time_zone.clone();
    let to =
        q.to.as_deref()
            .map(|t| parse_bound("to", t, &tz))
            .transpose()?;
    let from = q
        .from
        .as_deref()
        .map(|t| parse_bound("from", t, &tz))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::bad_request("`from` is after `to`"));
        }
    }
    let reader = state.reader.clone();
    let station = id.clone();
    let (from, to, readings) = tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        let to = match to {
            Some(t) => t,
            None => journal::latest_time(&conn, &station)?.unwrap_or_else(now_millis),
        };
        let from = from.unwrap_or(to - 24 * 3600 * 1000);
        journal::series(&conn, &station, from, to, 1_000_000).map(|r| (from, to, r))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if from > to {
        return Err(ApiError::bad_request("`from` is after `to`"));
    }
    let raw: Vec<(Millis, f64)> = readings
        .iter()
        .filter_map(|r| element_of(r, &element).map(|v| (r.time, v)))
        .collect();
    let (method, bucket_s, points) = downsample(raw, &element, from, to);
    Ok(Json(SeriesView {
        station: id,
        element,
        from: format_time(from, &tz),
        to: format_time(to, &tz),
        method,
        bucket_s,
        points,
    }))
}

/// Keeps at most `MAX_POINTS`: levels are averaged per bucket, rain amounts summed (so a
/// bar's height is still the rain that fell in it).
fn downsample(
    raw: Vec<(Millis, f64)>,
    element: &str,
    from: Millis,
    to: Millis,
) -> (String, Option<i64>, Vec<(Millis, f64)>) {
    if raw.len() <= MAX_POINTS {
        return ("raw".into(), None, raw);
    }
    let sum = element == "rain_mm";
    let bucket = ((to - from) / MAX_POINTS as i64).max(1000);
    let mut out: Vec<(Millis, f64, u32)> = Vec::new();
    for (t, v) in raw {
        let start = from + (t - from) / bucket * bucket;
        match out.last_mut() {
            Some(last) if last.0 == start => {
                last.1 += v;
                last.2 += 1;
            }
            _ => out.push((start, v, 1)),
        }
    }
    let points = out
        .into_iter()
        .map(|(t, total, n)| (t, if sum { total } else { total / n as f64 }))
        .collect();
    (
        if sum { "sum" } else { "mean" }.into(),
        Some(bucket / 1000),
        points,
    )
}

#[derive(Deserialize)]
pub struct AlertsQuery {
    pub state: Option<String>,
    pub station: Option<String>,
    /// Most alerts returned, newest change first (default 500, at most 1000).
    pub limit: Option<String>,
}

/// An alert with its events.
#[derive(Serialize)]
pub struct AlertView {
    #[serde(flatten)]
    pub alert: Alert,
    pub open: bool,
    pub events: Vec<AlertEvent>,
}

/// `GET /api/v1/alerts?state=open|all`.
pub async fn alerts(
    State(state): State<AppState>,
    Query(q): Query<AlertsQuery>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let only_open = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state `{other}` is not `open` or `all`"
            )))
        }
    };
    if let Some(station) = &q.station {
        if state.settings.station(station).is_none() {
            return Err(ApiError::not_found(format!("no station `{station}`")));
        }
    }
    let (limit, _) = PageQuery {
        limit: q.limit.clone(),
        before: None,
    }
    .parse(500)?;
    let reader = state.reader.clone();
    let station = q.station.clone();
    let views =
        tokio::task::spawn_blocking(move || -> Result<Vec<AlertView>, journal::JournalError> {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            let open: std::collections::HashSet<String> = journal::open_alerts(&conn)?
                .into_iter()
                .map(|a| a.alert_id)
                .collect();
            for alert in journal::alerts(&conn, only_open, limit)? {
                if station.as_ref().is_some_and(|s| *s != alert.station) {
                    continue;
                }
                let events = journal::alert_events(&conn, &alert.alert_id)?;
                out.push(AlertView {
                    open: open.contains(&alert.alert_id),
                    alert,
                    events,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(views))
}

/// `GET /api/v1/alerts/{id}`.
pub async fn alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let reader = state.reader.clone();
    let found = tokio::task::spawn_blocking(
        move || -> Result<Option<AlertView>, journal::JournalError> {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            let Some(alert) = journal::alert(&conn, &id)? else {
                return Ok(None);
            };
            let open = journal::open_alerts(&conn)?
                .iter()
                .any(|a| a.alert_id == alert.alert_id);
            let events = journal::alert_events(&conn, &alert.alert_id)?;
            Ok(Some(AlertView {
                alert,
                open,
                events,
            }))
        },
    )
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such alert"))
}

/// `POST /api/v1/alerts/{id}/ack` with `Authorization: Bearer <team token>`, and optionally
/// the person who answers: `{"person": "wang"}` (400 for a person not in `[[people]]`).
/// 401 without a valid team token; 403 when the token's team is not paged for this alert; 404 when no
/// open alert has that id; 409 when it is already acknowledged; 429 after too many 401s and
/// 403s from the same address (see [`guard`]).
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = guard::peer_ip(peer);
    if let Some(limited) = state.guard.limited(peer) {
        return limited;
    }
    let answer = acknowledge_as(&state, id, &headers, &body).await;
    if let Err(e) = &answer {
        if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            state.guard.failed(peer);
        }
    }
    answer.into_response()
}

/// The optional body of an acknowledgement.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    person: Option<String>,
}

async fn acknowledge_as(
    state: &AppState,
    id: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<AlertEvent>, ApiError> {
    let token = guard::bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "acknowledging needs `Authorization: Bearer <team token>`",
        )
    })?;
    let team = crate::config::team_by_token(&state.settings.teams, token)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "that token belongs to no team"))?;
    let person = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => {
            let parsed: AckBody = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is optional; when given it is {{\"person\": \"<person id>\"}} ({e})"
                ))
            })?;
            parsed.person
        }
    };
    if let Some(p) = &person {
        if state.settings.person(p).is_none() {
            return Err(ApiError::bad_request(format!(
                "no person `{p}` in [[people]]"
            )));
        }
    }
    // Which teams may acknowledge (the station's, those its stages add, and those an
    // unanswered alert escalated to) is decided by the journal writer, which knows the pages.
    let (reply, answer) = oneshot::channel();
    // While the journal cannot be written the writer's queue fills: answer 503 in bounded
    // time instead of holding the request open.
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the journal is not taking writes right now; try again",
        )
    };
    state
        .writer
        .send_timeout(
            Command::Acknowledge {
                alert_id: id,
                team: team.id.clone(),
                person,
                reply,
            },
            WRITER_WAIT,
        )
        .await
        .map_err(|_| unavailable())?;
    let answer = tokio::time::timeout(WRITER_WAIT, answer)
        .await
        .map_err(|_| unavailable())?;
    match answer {
        Ok(Ok(event)) => Ok(Json(event)),
        Ok(Err(AckError::AlreadyAcknowledged)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "already acknowledged"))
        }
        Ok(Err(AckError::NotFound)) => Err(ApiError::not_found("no open alert with that id")),
        Ok(Err(e @ AckError::NotResponsible(_))) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, e.to_string()))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal writer stopped",
        )),
    }
}

/// How long an API request waits for the journal writer before answering 503.
pub(super) const WRITER_WAIT: Duration = Duration::from_secs(10);

/// Most items one page of a list holds.
pub const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
pub struct PageQuery {
    /// Kept as text so that a bad number gets this API's JSON 400, not axum's plain one.
    pub limit: Option<String>,
    /// The page after the one that ended with this id (newest first: smaller ids).
    pub before: Option<String>,
}

impl PageQuery {
    /// `limit` (default `default`, at most [`MAX_PAGE`]) and `before`.
    pub fn parse(&self, default: usize) -> Result<(usize, Option<i64>), ApiError> {
        let number = |name: &str, text: &str| {
            text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be a whole number, not `{text}`"))
            })
        };
        let limit = match self.limit.as_deref() {
            None => default,
            Some(text) => (number("limit", text)? as usize).min(MAX_PAGE),
        };
        let before = self
            .before
            .as_deref()
            .map(|t| number("before", t))
            .transpose()?;
        Ok((limit, before))
    }
}

/// `GET /api/v1/dead_letters?limit=&before=`: rejected messages with their reasons, newest
/// first, a page at a time (`limit` at most 1000; `before` = the last id of the previous
/// page, also given in the `Link: <...>; rel="next"` header).
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let (limit, before) = q.parse(100)?;
    let reader = state.reader.clone();
    let page = tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        journal::dead_letters(&conn, limit, before)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let next = match page.last() {
        Some(last) if page.len() == limit => Some(format!(
            "</api/v1/dead_letters?limit={limit}&before={}>; rel=\"next\"",
            last.id
        )),
        _ => None,
    };
    let mut response = Json(page).into_response();
    if let Some(link) = next.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct NotificationsQuery {
    pub state: Option<String>,
    /// Kept as text so that a bad number gets this API's JSON 400, not axum's plain one.
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// One outbox row: an event on its way to (or at, or refused by) one team channel.
#[derive(Serialize)]
pub struct NotificationView {
    /// The row's id; pass the last one seen as `before` for the next page.
    pub id: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    pub event_id: String,
    pub alert_id: String,
    pub station: String,
    /// The alert event's state (`firing`, `acknowledged`...).
    pub event_state: String,
    pub team: String,
    /// The channel's id within the team.
    pub channel: String,
    /// The channel's kind, or `unknown` when it is no longer configured.
    pub kind: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the event was recorded (and the notification queued), like every time in this
    /// API: milliseconds since the epoch.
    pub created_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Millis>,
}

fn notification_view(state: &AppState, row: outbox::Row) -> NotificationView {
    let (team, channel) = row
        .destination
        .rsplit_once('/')
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .unwrap_or_else(|| (String::new(), row.destination.clone()));
    let kind = crate::notify::lookup(&state.settings, &row.destination)
        .map_or("unknown", |(_, c)| c.kind.as_str());
    let status = match (row.delivered_ms, row.failed_ms) {
        (Some(_), _) => "delivered",
        (None, Some(_)) => "failed",
        (None, None) => "pending",
    };
    NotificationView {
        id: row.id,
        state: status,
        event_id: row.event_id,
        alert_id: row.alert_id,
        station: row.station,
        event_state: row.event_state,
        team,
        channel,
        kind,
        attempts: row.attempts,
        last_error: row.last_error,
        created_at: row.created_ms,
        next_attempt_at: (status == "pending").then_some(row.next_attempt_ms),
        delivered_at: row.delivered_ms,
        failed_at: row.failed_ms,
    }
}

fn whole_number(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        t.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("`{name}` must be a whole number, not `{t}`"))
        })
    })
    .transpose()
}

/// `GET /api/v1/notifications?state=failed|pending|delivered|all&limit=&before=`: outbox rows,
/// newest first; `limit` defaults to 100, at most 1000; `before` is a row id (paging).
pub async fn notifications(
    State(state): State<AppState>,
    Query(q): Query<NotificationsQuery>,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let text = q.state.as_deref().unwrap_or("all");
    let filter = outbox::Filter::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "state `{text}` is not `failed`, `pending`, `delivered` or `all`"
        ))
    })?;
    let limit = whole_number("limit", q.limit.as_deref())?
        .unwrap_or(100)
        .clamp(0, 1000) as usize;
    let before = whole_number("before", q.before.as_deref())?;
    let reader = state.reader.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
        outbox::list(&conn, filter, before, limit)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(
        rows.into_iter()
            .map(|row| notification_view(&state, row))
            .collect(),
    ))
}

/// `GET /api/v1/events`: server-sent events `reading` and `alert` as they are committed. At
/// most `http.max_event_streams` at once (503 beyond). A client that falls further behind
/// than `http.event_buffer` updates gets `resync` (`{"missed": n}`) instead of the updates it
/// missed: it must reload its state, never believe it saw every alert.
pub async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state
        .guard
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many event streams are open; try again later",
            )
        })?;
    let stream = BroadcastStream::new(state.live.subscribe()).filter_map(move |item| {
        // The stream holds its slot until the client goes away.
        let _slot = &slot;
        match item {
            Ok(live) => {
                let kind = match &live {
                    crate::writer::Live::Reading(_) => "reading",
                    crate::writer::Live::Alert(_) => "alert",
                };
                let data = serde_json::to_string(&live).ok()?;
                Some(Ok(Event::default().event(kind).data(data)))
            }
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::debug!(missed, "an event stream fell behind: resync");
                Some(Ok(Event::default()
                    .event("resync")
                    .data(serde_json::json!({ "missed": missed }).to_string())))
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize)]
pub struct Login {
    pub token: String,
}

/// `POST /api/v1/session` with `{"token": "<read token>"}`: sets the board's session cookie
/// (`HttpOnly`, `SameSite=Strict`), so that no URL ever carries the token. 401 for a wrong
/// token (counted like a failed acknowledgement), 404 when no read token is configured.
pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let peer = guard::peer_ip(peer);
    if let Some(limited) = state.guard.limited(peer) {
        return limited;
    }
    let Some(expected) = &state.settings.http.read_token else {
        return ApiError::not_found("no read token is configured: reads are open").into_response();
    };
    let login: Login = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(_) => {
            return ApiError::bad_request("send {\"token\": \"<read token>\"}").into_response()
        }
    };
    if !crate::config::same_secret(&login.token, expected) {
        state.guard.failed(peer);
        return ApiError::new(StatusCode::UNAUTHORIZED, "that is not the read token")
            .into_response();
    }
    let secure = state
        .settings
        .http
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, guard::session_cookie(expected, secure))],
    )
        .into_response()
}

/// `DELETE /api/v1/session`: ends the board's session in this browser.
pub async fn logout() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, guard::expired_cookie())],
    )
        .into_response()
}
