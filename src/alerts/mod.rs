//! Alerts and their lifecycle events.
//!
//! Rules decide *what level* a station is at; this module decides *what that means for the
//! people paged*: one open [`Alert`] per (station, rule), moved through `pending` → `firing` →
//! `escalated`/`deescalated` → `resolved`, each move recorded as one [`AlertEvent`] carrying
//! everything the journal, the webhook body and InfluxDB's `alert_event` point need. Keeping the
//! lifecycle apart from the rules means flood, drought, rain and health rules all page the same
//! way, and the contract's state machine lives in one place ([`lifecycle`]).

pub mod lifecycle;
pub mod message;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Millis;

pub use lifecycle::{AlertBook, Target, Transition};

/// Where an alert is in its lifecycle (contract: "Alerts and notifications").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds but has not yet held for `rules.pending`.
    Pending,
    /// The condition held; the team is paged.
    Firing,
    /// Moved to a more severe stage.
    Escalated,
    /// Fell back to a less severe stage, still open.
    Deescalated,
    /// Back to normal; the alert is closed.
    Resolved,
    /// A team took responsibility (an event only; the alert keeps its lifecycle state).
    Acknowledged,
    /// Nobody answered a page in time: people are called again, or up the chain (an event
    /// only, see `notify::callout`).
    Unanswered,
}

impl AlertState {
    /// The name used in the journal, webhooks and InfluxDB.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Escalated => "escalated",
            AlertState::Deescalated => "deescalated",
            AlertState::Resolved => "resolved",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Unanswered => "unanswered",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => AlertState::Pending,
            "firing" => AlertState::Firing,
            "escalated" => AlertState::Escalated,
            "deescalated" => AlertState::Deescalated,
            "resolved" => AlertState::Resolved,
            "acknowledged" => AlertState::Acknowledged,
            "unanswered" => AlertState::Unanswered,
            _ => return None,
        })
    }
}

/// An open alert (one per (station, rule)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// uuid v4, created when the alert opens.
    pub alert_id: String,
    pub station: String,
    /// "stage", "rise_rate", "rain_3h", "rain_level", "drought", "dry_spell", "offline",
    /// "sensor".
    pub rule: String,
    /// Last lifecycle state (never `Acknowledged`: see `acknowledged_by`).
    pub state: AlertState,
    /// Current stage name (rain: the window label; rise_rate: "rise_rate"; offline: "offline";
    /// sensor: "jump"/"out_of_range"; dry_spell: light/moderate/severe/extreme).
    pub stage: String,
    /// Position in the ladder (severity); 0 for single-threshold rules.
    pub stage_index: usize,
    /// The value that last moved it.
    pub value: f64,
    /// The threshold of `stage`.
    pub threshold: f64,
    /// Observation time it opened (or went pending).
    pub opened_at: Millis,
    /// Observation time of the last change.
    pub updated_at: Millis,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Millis>,
}

#[cfg(test)]
impl Alert {
    /// For unit tests: alert `alert_id` of `station`'s stage rule, firing at the warning stage
    /// (2.5 m against 2.0 m), unacknowledged. Change what a test needs with `..`.
    pub fn sample(alert_id: &str, station: &str) -> Alert {
        Alert {
            alert_id: alert_id.into(),
            station: station.into(),
            rule: "stage".into(),
            state: AlertState::Firing,
            stage: "warning".into(),
            stage_index: 1,
            value: 2.5,
            threshold: 2.0,
            opened_at: 0,
            updated_at: 0,
            acknowledged_by: None,
            acknowledged_at: None,
        }
    }
}

/// One lifecycle change, with every field the webhook JSON and the InfluxDB `alert_event`
/// point need; `message` is a ready human sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// uuid v4, generated once: receivers deduplicate redeliveries on it.
    pub event_id: String,
    pub alert_id: String,
    pub state: AlertState,
    pub station: String,
    pub rule: String,
    /// For `resolved`, the stage it leaves.
    pub stage: String,
    pub stage_index: usize,
    pub value: f64,
    pub threshold: f64,
    /// Observation time of the reading that caused it (wall clock for offline and ack).
    pub observed_at: Millis,
    /// Wall clock when the event was made.
    pub created_at: Millis,
    /// `created_at - observed_at` exceeded `rules.late_after`.
    pub late: bool,
    /// The sentence in the station's own language (Chinese stages: Chinese; NWS: English).
    pub message: String,
    /// The same sentence in each language, for channels whose team reads the other one.
    #[serde(default)]
    pub messages: Messages,
    /// Level change over the last hour, when known.
    pub trend_m_per_h: Option<f64>,
    /// Next higher flood stage (name, level), when rising toward one.
    pub next_stage: Option<(String, f64)>,
    /// Seconds to reach `next_stage` at the current rate.
    pub time_to_next_stage_s: Option<f64>,
    pub acknowledged_by: Option<String>,
    /// On an `acknowledged` event: the person who answered (a person id, or an inline
    /// member's name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_person: Option<String>,
    /// Set on a reminder or an escalation page: the alert did not change, somebody is paged
    /// (again) because nobody acknowledged it. Absent on lifecycle events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    /// For `rain_level`: the window that decided the level, as configured ("3h"); `value` is
    /// its sum and `threshold` the level's amount for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// For a warning zone's `rain_level`: the gauge (station id) that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<String>,
}

/// Why an unchanged alert pages a team: the team's re-notify interval passed, or the
/// alert was not acknowledged in time and the escalation chain reached this team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub reason: PageReason,
    /// The team paged by this event (its channels only).
    pub team: String,
    /// For an escalation: the team whose chain it followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_team: Option<String>,
    /// Wall clock since which the alert has waited for an acknowledgement.
    pub unacknowledged_since: Millis,
    /// For an unanswered page (叫应): who is called in this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallStep>,
}

/// One step of a callout (`notify::callout`): the people called because the previous step
/// went unanswered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStep {
    /// 1: the team's members again; 2: their superiors; 3: the superiors' superiors...
    pub step: u32,
    /// `redial` (step 1) or `superiors`.
    pub action: String,
    pub people: Vec<Callee>,
}

/// A person called for an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callee {
    /// The person's id (an inline team member without one: its name).
    pub person: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Called as the superior of this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superior_of: Option<String>,
}

/// See [`Page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageReason {
    Renotify,
    Escalation,
    /// 叫应: nobody answered in time (state `unanswered`).
    Unanswered,
}

/// An event's sentence in Chinese and in English.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Messages {
    pub zh: String,
    pub en: String,
}

impl AlertEvent {
    /// The sentence in `language`, falling back to the station's own.
    pub fn message_in(&self, language: crate::config::Language) -> &str {
        let text = match language {
            crate::config::Language::Chinese => &self.messages.zh,
            crate::config::Language::English => &self.messages.en,
        };
        if text.is_empty() {
            &self.message
        } else {
            text
        }
    }

    /// Writes `message` (the station's language) and both translations.
    pub fn set_messages(&mut self, station: &crate::config::Station, cx: &message::Context) {
        use crate::config::Language;
        self.messages = Messages {
            zh: message::describe_in(station, self, cx, Language::Chinese),
            en: message::describe_in(station, self, cx, Language::English),
        };
        self.message = match message::language(station) {
            Language::Chinese => self.messages.zh.clone(),
            Language::English => self.messages.en.clone(),
        };
    }

    /// The event for `alert` entering `state`; the message and outlook are filled in by the
    /// caller, which knows the station.
    pub fn new(
        alert: &Alert,
        state: AlertState,
        observed_at: Millis,
        now: Millis,
        late_after: Duration,
    ) -> AlertEvent {
        AlertEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            alert_id: alert.alert_id.clone(),
            state,
            station: alert.station.clone(),
            rule: alert.rule.clone(),
            stage: alert.stage.clone(),
            stage_index: alert.stage_index,
            value: alert.value,
            threshold: alert.threshold,
            observed_at,
            created_at: now,
            late: now.saturating_sub(observed_at) > millis(late_after),
            message: String::new(),
            messages: Messages::default(),
            trend_m_per_h: None,
            next_stage: None,
            time_to_next_stage_s: None,
            acknowledged_by: alert.acknowledged_by.clone(),
            acknowledged_person: None,
            page: None,
            window: None,
            gauge: None,
        }
    }
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no open alert has this id (it may have resolved already)")]
    NotFound,
    #[error("this alert is already acknowledged")]
    AlreadyAcknowledged,
    #[error("team `{0}` is not paged for this alert: only the station's team, the teams its stages add and teams escalated to may acknowledge it")]
    NotResponsible(String),
}

/// A duration in milliseconds, saturating (configured durations are far below the limit).
pub(crate) fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in [
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Escalated,
            AlertState::Deescalated,
            AlertState::Resolved,
            AlertState::Acknowledged,
            AlertState::Unanswered,
        ] {
            assert_eq!(AlertState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("serializes");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(AlertState::parse("open"), None);
    }

    #[test]
    fn late_is_strictly_beyond_late_after() {
        let alert = Alert {
            alert_id: "a".into(),
            station: "s".into(),
            rule: "stage".into(),
            state: AlertState::Firing,
            stage: "warning".into(),
            stage_index: 1,
            value: 59.1,
            threshold: 59.0,
            opened_at: 0,
            updated_at: 0,
            acknowledged_by: None,
            acknowledged_at: None,
        };
        let late_after = Duration::from_secs(600);
        let on_time = AlertEvent::new(&alert, AlertState::Firing, 0, 600_000, late_after);
        assert!(!on_time.late);
        let late = AlertEvent::new(&alert, AlertState::Firing, 0, 600_001, late_after);
        assert!(late.late);
        assert_ne!(on_time.event_id, late.event_id);
    }
}
