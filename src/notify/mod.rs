//! Notifications: who hears about an alert event, what they receive, and the durable outbox
//! that keeps trying until they have it.
//!
//! The journal writer calls [`route`] inside the transaction that records an event, so each
//! (event, destination) pair is an outbox row before anything is sent. The [`dispatch`]
//! task delivers each destination's rows strictly in order, retrying with backoff; a
//! receiver that is down for an hour gets every event, in order, when it returns, each
//! carrying the same `event_id` on every attempt.

pub mod channels;
pub mod dispatch;

use serde::Serialize;

use crate::alerts::{AlertEvent, AlertState};
use crate::config::{Settings, Station};
use crate::model::format_time;

/// The outbox destinations for an event: `"{team}/{channel index}"` for every channel of the
/// station's team and of teams the station pages from the event's stage upward. Pending
/// events and stations under maintenance page no one (the event is still recorded).
pub fn route(settings: &Settings, event: &AlertEvent) -> Vec<String> {
    if event.state == AlertState::Pending {
        return Vec::new();
    }
    let Some(station) = settings.station(&event.station) else {
        return Vec::new();
    };
    if station.maintenance {
        return Vec::new();
    }
    let mut teams: Vec<&str> = station.team.as_deref().into_iter().collect();
    if event.rule == "stage" {
        for (stage_index, extra) in &station.escalate {
            if event.stage_index >= *stage_index {
                teams.extend(extra.iter().map(String::as_str));
            }
        }
    }
    destinations(settings, &teams)
}

/// The teams paged for an alert: the station's own team, and those the station adds at the
/// alert's stage. Any of them may acknowledge it.
pub fn teams_for<'a>(settings: &'a Settings, alert: &crate::alerts::Alert) -> Vec<&'a str> {
    let Some(station) = settings.station(&alert.station) else {
        return Vec::new();
    };
    let mut teams: Vec<&str> = station.team.as_deref().into_iter().collect();
    if alert.rule == "stage" {
        for (stage_index, extra) in &station.escalate {
            if alert.stage_index >= *stage_index {
                teams.extend(extra.iter().map(String::as_str));
            }
        }
    }
    teams
}

/// Every channel of the named teams, without repeats.
pub fn destinations(settings: &Settings, teams: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in teams {
        if let Some(team) = settings.team(id) {
            for i in 0..team.channels.len() {
                let d = format!("{}/{}", team.id, i);
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// The contract's webhook body (also the MQTT channel's payload).
#[derive(Debug, Clone, Serialize)]
pub struct EventPayload {
    pub event_id: String,
    pub alert_id: String,
    pub state: AlertState,
    pub station: String,
    pub station_name: String,
    pub river: Option<String>,
    pub rule: String,
    pub stage: String,
    pub value: f64,
    pub threshold: f64,
    pub observed_at: String,
    pub team: Option<String>,
    pub message: String,
    pub late: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend_m_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_next_stage_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
}

impl EventPayload {
    /// Builds the payload for `event`, addressed to `team`.
    pub fn new(settings: &Settings, event: &AlertEvent, team: Option<&str>) -> EventPayload {
        let station: Option<&Station> = settings.station(&event.station);
        EventPayload {
            event_id: event.event_id.clone(),
            alert_id: event.alert_id.clone(),
            state: event.state,
            station: event.station.clone(),
            station_name: station.map_or_else(|| event.station.clone(), |s| s.name.clone()),
            river: station.and_then(|s| s.river.clone()),
            rule: event.rule.clone(),
            stage: event.stage.clone(),
            value: event.value,
            threshold: event.threshold,
            observed_at: format_time(event.observed_at, &settings.rules.time_zone),
            team: team
                .map(str::to_string)
                .or_else(|| station.and_then(|s| s.team.clone())),
            message: event.message.clone(),
            late: event.late,
            acknowledged_by: event.acknowledged_by.clone(),
            trend_m_per_h: event.trend_m_per_h,
            time_to_next_stage_s: event.time_to_next_stage_s,
            ack_url: settings
                .http
                .public_url
                .as_ref()
                .map(|base| format!("{}/#alert={}", base.trim_end_matches('/'), event.alert_id)),
        }
    }
}
