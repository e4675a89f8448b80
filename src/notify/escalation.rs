//! Timers on open, unacknowledged alerts: re-notification at each paged team's interval, and
//! escalation along a team's chain when nobody acknowledges in time.
//!
//! Why it is a pure module: the journal writer calls [`due`] on every wall-clock tick with
//! what the journal knows (which teams were paged for an alert, when first and when last,
//! and when the alert reached each stage), and records the pages it returns as events and
//! outbox rows in the same transaction. The timers therefore live in the journal, not in
//! memory: a restart neither repeats an escalation nor forgets one that was due.

use crate::alerts::{Alert, AlertEvent, AlertState, Page, PageReason};
use crate::config::Settings;
use crate::model::Millis;

pub use crate::journal::Paged;

/// One open alert with its timer inputs.
#[derive(Debug, Clone)]
pub struct Timers<'a> {
    pub alert: &'a Alert,
    pub paged: &'a [Paged],
    /// Wall clock of each raise (`firing`, `escalated`) with the stage it raised to.
    pub raised: &'a [(usize, Millis)],
    /// Wall clock of the moment the alert last became unacknowledged again (a raise after
    /// an acknowledgement), if it was ever acknowledged.
    pub unacknowledged_since: Option<Millis>,
}

/// A page that is due now.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Send the alert again to `team`: its re-notify interval passed since it last heard.
    Renotify { team: String, since: Millis },
    /// Page `to`: `from`'s escalation waited long enough without an acknowledgement.
    Escalate {
        from: String,
        to: String,
        since: Millis,
    },
}

/// The pages due at `now` for one alert. Nothing is due for an acknowledged or pending
/// alert, or for a station under maintenance. A team already paged for the alert is never
/// escalated to again; a team escalated to in this call is not also reminded.
pub fn due(settings: &Settings, t: &Timers, now: Millis) -> Vec<Due> {
    let alert = t.alert;
    if alert.acknowledged_by.is_some() || alert.state == AlertState::Pending {
        return Vec::new();
    }
    let Some(station) = settings.place(&alert.station) else {
        return Vec::new();
    };
    if station.maintenance {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut escalated: Vec<&str> = Vec::new();
    for paged in t.paged {
        let Some(team) = settings.team(&paged.team) else {
            continue;
        };
        for step in &team.escalation {
            let min_index = match &step.min_stage {
                None => None,
                Some(name) => {
                    // A stage threshold only means something for the flood ladder.
                    if alert.rule != "stage" {
                        continue;
                    }
                    match station.stages.position(name) {
                        Some(i) => Some(i),
                        None => continue,
                    }
                }
            };
            if min_index.is_some_and(|i| alert.stage_index < i) {
                continue;
            }
            // The clock starts when both the team was paged and the alert was at the stage.
            let reached = match min_index {
                None => Some(paged.paged_ms),
                Some(i) => t
                    .raised
                    .iter()
                    .filter(|(stage, _)| *stage >= i)
                    .map(|(_, at)| *at)
                    .min(),
            };
            let Some(reached) = reached else { continue };
            // The escalation clock measures how long nobody has answered: from the later of
            // the page and the moment the alert last needed a new acknowledgement. An alert
            // acknowledged at warning and raised to guaranteed an hour later has been
            // unanswered for minutes, not for the hour.
            let since = reached
                .max(paged.paged_ms)
                .max(t.unacknowledged_since.unwrap_or(Millis::MIN));
            let after = crate::alerts::millis(step.after);
            let already = t.paged.iter().any(|p| p.team == step.team)
                || escalated.contains(&step.team.as_str());
            if now - since >= after && !already {
                escalated.push(&step.team);
                out.push(Due::Escalate {
                    from: paged.team.clone(),
                    to: step.team.clone(),
                    since,
                });
            }
        }
    }
    for paged in t.paged {
        let Some(interval) = settings.team(&paged.team).and_then(|team| team.renotify) else {
            continue;
        };
        if now - paged.notified_ms >= crate::alerts::millis(interval) {
            out.push(Due::Renotify {
                team: paged.team.clone(),
                since: paged.paged_ms,
            });
        }
    }
    out
}

/// Whether any team has a reminder interval or an escalation chain (otherwise nothing is
/// ever due and the journal need not be read for it).
pub fn any_timers(settings: &Settings) -> bool {
    settings
        .teams
        .iter()
        .any(|t| t.renotify.is_some() || !t.escalation.is_empty())
}

/// When the alert last became unacknowledged again: after its latest acknowledgement, the
/// first raise (`events` oldest first). `None` when it was never acknowledged.
pub fn unacknowledged_since(events: &[AlertEvent]) -> Option<Millis> {
    let lifecycle = |e: &&AlertEvent| e.page.is_none();
    events
        .iter()
        .rposition(|e| e.page.is_none() && e.state == AlertState::Acknowledged)
        .and_then(|i| {
            events[i + 1..]
                .iter()
                .filter(lifecycle)
                .find(|e| matches!(e.state, AlertState::Firing | AlertState::Escalated))
                .map(|e| e.created_at)
        })
}

/// What the timers need of an alert's events: kept in place of the events themselves, so
/// that the writer need not read and parse them again on every tick (see [`History::of`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Wall clock of each raise (`firing`, `escalated`) with the stage it raised to.
    pub raised: Vec<(usize, Millis)>,
    /// See [`unacknowledged_since`].
    pub unacknowledged_since: Option<Millis>,
    /// The latest lifecycle event that is not an acknowledgement: what a page repeats.
    pub latest: Option<AlertEvent>,
}

impl History {
    /// The timers' view of an alert's `events`, oldest first.
    pub fn of(events: &[AlertEvent]) -> History {
        let lifecycle = |e: &&AlertEvent| e.page.is_none();
        History {
            raised: events
                .iter()
                .filter(lifecycle)
                .filter(|e| matches!(e.state, AlertState::Firing | AlertState::Escalated))
                .map(|e| (e.stage_index, e.created_at))
                .collect(),
            unacknowledged_since: unacknowledged_since(events),
            latest: events
                .iter()
                .rev()
                .filter(lifecycle)
                .find(|e| e.state != AlertState::Acknowledged)
                .cloned(),
        }
    }
}

/// The pages due at `now` for one open alert, from the journal's record of it (`paged`, its
/// `events` oldest first), as events copied from its latest lifecycle event with a fresh
/// `event_id`.
pub fn pages(
    settings: &Settings,
    alert: &Alert,
    paged: &[Paged],
    events: &[AlertEvent],
    now: Millis,
) -> Vec<AlertEvent> {
    pages_after(settings, alert, paged, &History::of(events), now)
}

/// [`pages`], from the [`History`] of the alert's events.
pub fn pages_after(
    settings: &Settings,
    alert: &Alert,
    paged: &[Paged],
    history: &History,
    now: Millis,
) -> Vec<AlertEvent> {
    let timers = Timers {
        alert,
        paged,
        raised: &history.raised,
        unacknowledged_since: history.unacknowledged_since,
    };
    let due_now = due(settings, &timers, now);
    let Some(latest) = &history.latest else {
        return Vec::new();
    };
    due_now
        .into_iter()
        .map(|page| {
            let page = match page {
                Due::Renotify { team, since } => Page {
                    reason: PageReason::Renotify,
                    team,
                    from_team: None,
                    unacknowledged_since: since,
                    call: None,
                },
                Due::Escalate { from, to, since } => {
                    tracing::warn!(alert_id = %alert.alert_id, station = %alert.station, from = %from, to = %to,
                        "alert not acknowledged in time; escalating");
                    Page {
                        reason: PageReason::Escalation,
                        team: to,
                        from_team: Some(from),
                        unacknowledged_since: since,
                        call: None,
                    }
                }
            };
            let mut event = latest.clone();
            event.event_id = uuid::Uuid::new_v4().to_string();
            event.created_at = now;
            event.acknowledged_by = None;
            event.page = Some(page);
            event
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from_str;

    const CONFIG: &str = r#"
[[teams]]
id = "east"
renotify = "10s"
  [[teams.escalation]]
  after = "20s"
  team = "county"
  min_stage = "warning"
[[teams]]
id = "county"
  [[teams.escalation]]
  after = "30s"
  team = "province"
[[teams]]
id = "province"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0, guaranteed = 3.0 }

[[stations]]
id = "s2"
team = "east"
maintenance = true
stages = { guard = 1.0, warning = 2.0 }
"#;

    fn settings() -> Settings {
        load_from_str(CONFIG).expect("valid test configuration")
    }

    fn alert(station: &str, stage_index: usize) -> Alert {
        Alert {
            stage: ["guard", "warning", "guaranteed"][stage_index].into(),
            stage_index,
            value: 2.1,
            ..Alert::sample("a", station)
        }
    }

    fn paged(team: &str, paged_ms: Millis, notified_ms: Millis) -> Paged {
        Paged {
            team: team.into(),
            paged_ms,
            notified_ms,
        }
    }

    #[test]
    fn renotifies_at_the_team_interval() {
        let s = settings();
        let a = alert("s1", 0);
        let p = [paged("east", 0, 5_000)];
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &[(0, 0)],
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 14_999).is_empty());
        assert_eq!(
            due(&s, &t, 15_000),
            vec![Due::Renotify {
                team: "east".into(),
                since: 0
            }]
        );
    }

    #[test]
    fn escalates_from_when_the_alert_reached_the_minimum_stage() {
        let s = settings();
        let a = alert("s1", 1);
        // Paged at guard at t=0, reached warning at t=100 s: due at 120 s, not 20 s.
        let p = [paged("east", 0, 119_000)];
        let raised = [(0, 0), (1, 100_000)];
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &raised,
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 119_999).is_empty());
        assert_eq!(
            due(&s, &t, 120_000),
            vec![Due::Escalate {
                from: "east".into(),
                to: "county".into(),
                since: 100_000
            }]
        );
    }

    #[test]
    fn below_the_minimum_stage_never_escalates() {
        let s = settings();
        let a = alert("s1", 0);
        let p = [paged("east", 0, 1_000_000)];
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &[(0, 0)],
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 1_000_000).is_empty());
    }

    #[test]
    fn the_chain_continues_from_the_escalated_team_and_never_repeats() {
        let s = settings();
        let a = alert("s1", 1);
        let p = [paged("east", 0, 50_000), paged("county", 20_000, 50_000)];
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &[(1, 0)],
            unacknowledged_since: None,
        };
        // county has been paged, so east's step is done; county's own step is due at 50 s.
        assert_eq!(
            due(&s, &t, 50_000),
            vec![Due::Escalate {
                from: "county".into(),
                to: "province".into(),
                since: 20_000
            }]
        );
    }

    #[test]
    fn acknowledged_pending_and_maintenance_alerts_have_no_timers() {
        let s = settings();
        let p = [paged("east", 0, 0)];
        let raised = [(1, 0)];
        let mut a = alert("s1", 1);
        a.acknowledged_by = Some("east".into());
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &raised,
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 1_000_000).is_empty());
        let mut a = alert("s1", 1);
        a.state = AlertState::Pending;
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &raised,
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 1_000_000).is_empty());
        let a = alert("s2", 1);
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &raised,
            unacknowledged_since: None,
        };
        assert!(due(&s, &t, 1_000_000).is_empty());
    }

    #[test]
    fn the_escalation_clock_restarts_when_a_raise_undoes_an_acknowledgement() {
        // Paged at warning at 0, acknowledged, raised to guaranteed at 60 min: the county's
        // 20 s step runs from the raise, not from the first page an hour earlier.
        let s = settings();
        let a = alert("s1", 2);
        let p = [paged("east", 0, 3_600_000)];
        let raised = [(1, 0), (2, 3_600_000)];
        let t = Timers {
            alert: &a,
            paged: &p,
            raised: &raised,
            unacknowledged_since: Some(3_600_000),
        };
        assert!(!due(&s, &t, 3_600_001)
            .iter()
            .any(|d| matches!(d, Due::Escalate { .. })));
        assert_eq!(
            due(&s, &t, 3_620_000)
                .into_iter()
                .filter(|d| matches!(d, Due::Escalate { .. }))
                .collect::<Vec<_>>(),
            vec![Due::Escalate {
                from: "east".into(),
                to: "county".into(),
                since: 3_600_000
            }]
        );
    }
}
