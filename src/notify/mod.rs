//! Notifications: who hears about an alert event, what they receive, and the durable outbox
//! that keeps trying until they have it.
//!
//! The journal writer calls [`route`] inside the transaction that records an event, so each
//! (event, destination) pair is an outbox row before anything is sent. A destination is a
//! team's channel by its stable id (`{team}/{channel id}`), never by its position in the
//! team's list. The [`dispatch`] task delivers each destination's rows in order, retrying
//! transient failures with backoff; a receiver that is down for an hour gets every event, in
//! order, when it returns, each carrying the same `event_id` on every attempt. A row the
//! receiver refuses for good, or that keeps failing past the channel's `give_up_after`, is
//! marked failed ([`outcome`]) and stops holding back the rows behind it.

pub mod callback;
pub mod callout;
pub mod callout_log;
pub mod channels;
pub mod dispatch;
pub mod escalation;
pub mod mqtt;
pub mod outbox;
pub mod outcome;
pub mod redial;
pub mod voice;

use serde::Serialize;

use crate::alerts::{Alert, AlertEvent, AlertState, PageReason};
use crate::config::{Channel, Settings, Station, Team};
use crate::model::format_time;

/// The teams an event pages. A lifecycle event goes to the station's team, the teams the
/// station adds at the alert's stage, and every team already paged for this alert
/// (`paged`: escalations), so whoever heard "firing" also hears "acknowledged" and
/// "resolved". A reminder or escalation page goes to its one team. Pending events and
/// stations under maintenance page no one (the event is still recorded), and what follows a
/// raise nobody was told about (a condition that never left `pending` and fell back, an
/// alert raised during maintenance) tells no one either: "resolved" for an alert nobody
/// heard of is noise a duty officer learns to ignore.
pub fn route_teams(settings: &Settings, event: &AlertEvent, paged: &[String]) -> Vec<String> {
    let follows_a_raise = matches!(
        event.state,
        AlertState::Resolved | AlertState::Deescalated | AlertState::Acknowledged
    );
    if event.state == AlertState::Pending || (follows_a_raise && paged.is_empty()) {
        return Vec::new();
    }
    let Some(station) = settings.place(&event.station) else {
        return Vec::new();
    };
    if station.maintenance {
        return Vec::new();
    }
    if let Some(page) = &event.page {
        return vec![page.team.clone()];
    }
    with_paged(
        station_teams(station, &event.rule, event.stage_index),
        paged,
    )
}

/// The outbox destinations for an event: `"{team}/{channel id}"` for every channel of the
/// teams [`route_teams`] names.
pub fn route(settings: &Settings, event: &AlertEvent, paged: &[String]) -> Vec<String> {
    let teams = route_teams(settings, event, paged);
    let teams: Vec<&str> = teams.iter().map(String::as_str).collect();
    destinations(settings, &teams)
}

fn station_teams<'a>(station: &'a Station, rule: &str, stage_index: usize) -> Vec<&'a str> {
    let mut teams: Vec<&str> = station.team.as_deref().into_iter().collect();
    if rule == "stage" {
        for (index, extra) in &station.escalate {
            if stage_index >= *index {
                for team in extra {
                    if !teams.contains(&team.as_str()) {
                        teams.push(team);
                    }
                }
            }
        }
    }
    teams
}

/// The teams that may acknowledge an alert: the station's own team, those the station adds
/// at the alert's stage, and those already paged for it (`paged`, e.g. by escalation).
pub fn teams_for(settings: &Settings, alert: &Alert, paged: &[String]) -> Vec<String> {
    let Some(station) = settings.place(&alert.station) else {
        return Vec::new();
    };
    with_paged(
        station_teams(station, &alert.rule, alert.stage_index),
        paged,
    )
}

/// Whether `team` may acknowledge `alert`: it is one of [`teams_for`].
pub fn may_acknowledge(settings: &Settings, alert: &Alert, paged: &[String], team: &str) -> bool {
    teams_for(settings, alert, paged).iter().any(|t| t == team)
}

/// The station's teams, then those already paged for the alert, without repeats.
fn with_paged(station_teams: Vec<&str>, paged: &[String]) -> Vec<String> {
    let mut teams: Vec<String> = station_teams.into_iter().map(str::to_string).collect();
    for team in paged {
        if !teams.contains(team) {
            teams.push(team.clone());
        }
    }
    teams
}

/// Every channel of the named teams, without repeats.
pub fn destinations(settings: &Settings, teams: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in teams {
        if let Some(team) = settings.team(id) {
            for channel in &team.channels {
                let d = destination(team, channel);
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// The outbox destinations of `event` in `teams`: [`destinations`], with phone channels
/// (SMS, voice) first for an `unanswered` page, which calls people again.
pub fn destinations_for(settings: &Settings, event: &AlertEvent, teams: &[&str]) -> Vec<String> {
    let mut out = destinations(settings, teams);
    if event.state == AlertState::Unanswered {
        out.sort_by_key(|d| {
            !lookup(settings, d).is_some_and(|(_, c)| callout::is_phone_channel(c.kind))
        });
    }
    out
}

/// A channel's outbox address: `{team}/{channel id}`. Channel ids never contain `/`, so the
/// last `/` separates the two.
pub fn destination(team: &Team, channel: &Channel) -> String {
    format!("{}/{}", team.id, channel.id)
}

/// The team and channel an outbox address names in `settings`, if it still exists.
pub fn lookup<'a>(settings: &'a Settings, destination: &str) -> Option<(&'a Team, &'a Channel)> {
    let (team, channel) = destination.rsplit_once('/')?;
    let team = settings.team(team)?;
    let channel = team.channels.iter().find(|c| c.id == channel)?;
    Some((team, channel))
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
    /// The person who acknowledged (叫应), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend_m_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_next_stage_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
    /// `rain_level`: the window that decided the level (`value` its sum, `threshold` the
    /// level's amount for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// A warning zone's `rain_level`: the gauge (station id) that decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gauge: Option<String>,
    /// A reminder: the alert is unchanged and still unacknowledged (a new `event_id`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub renotify: bool,
    /// An escalation page: nobody acknowledged in time, so this team (`team`) is paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated_to: Option<String>,
    /// The team whose escalation chain led here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<String>,
    /// For reminders and escalations: seconds the alert has waited for an acknowledgement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unacknowledged_s: Option<f64>,
    /// On an `unanswered` event (叫应): the step and the people to call, with their phones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callout: Option<crate::alerts::CallStep>,
}

impl EventPayload {
    /// The phones this event is for: the callout step's people, when it names any.
    pub fn callout_phones(&self) -> Option<Vec<String>> {
        let call = self.callout.as_ref()?;
        let phones: Vec<String> = call.people.iter().filter_map(|c| c.phone.clone()).collect();
        (!phones.is_empty()).then_some(phones)
    }
}

impl EventPayload {
    /// Builds the payload for `event`, addressed to `team`.
    pub fn new(settings: &Settings, event: &AlertEvent, team: Option<&str>) -> EventPayload {
        let station: Option<&Station> = settings.place(&event.station);
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
            acknowledged_person: event.acknowledged_person.clone(),
            trend_m_per_h: event.trend_m_per_h,
            time_to_next_stage_s: event.time_to_next_stage_s,
            ack_url: settings
                .http
                .public_url
                .as_ref()
                .map(|base| format!("{}/#alert={}", base.trim_end_matches('/'), event.alert_id)),
            window: event.window.clone(),
            gauge: event.gauge.clone(),
            renotify: event
                .page
                .as_ref()
                .is_some_and(|p| p.reason == PageReason::Renotify),
            escalated_to: event
                .page
                .as_ref()
                .filter(|p| p.reason == PageReason::Escalation)
                .map(|p| p.team.clone()),
            escalated_from: event.page.as_ref().and_then(|p| p.from_team.clone()),
            unacknowledged_s: event
                .page
                .as_ref()
                .map(|p| (event.created_at - p.unacknowledged_since).max(0) as f64 / 1000.0),
            callout: event.page.as_ref().and_then(|p| p.call.clone()),
        }
    }
}
