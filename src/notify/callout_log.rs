//! The 叫应 tables' SQL: the steps taken for each alert (`callout_steps`, the callout timers'
//! durable state), the audit of every page, call result and acknowledgement with its time
//! and person (`callout_log`), and the voice calls each provider accepted, by the id it gave
//! them (`voice_calls`). Deliveries come from the outbox, so the audit shows what each
//! channel did with each page without a second copy of it.
//!
//! The writer calls the `record_*` and `log_*` functions inside the transaction of the event
//! they belong to, and [`record_call`] when the dispatcher hands it a placed call; the API
//! reads [`audit`] and [`unreached`].

use rusqlite::{params, Connection};
use serde::Serialize;

use super::callout::{self, DueStep, Step};
use crate::alerts::{Alert, AlertEvent, AlertState, Callee, PageReason};
use crate::config::Settings;
use crate::journal::{self, JournalError};
use crate::model::{format_time, Millis};

/// One line of an alert's callout audit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub alert_id: String,
    /// Milliseconds since the epoch, like every time in the API.
    pub at: Millis,
    /// `page`, `redial` (the members called again, or one phone whose call went unanswered),
    /// `escalation` (a superior paged), `delivered`, `delivery_failed`, `delivery_pending`,
    /// `redial_cancelled`, `call_result`, `acknowledgement`.
    pub kind: String,
    pub team: Option<String>,
    pub person: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The channel id (deliveries, call results).
    pub channel: Option<String>,
    pub event_id: Option<String>,
    /// The event's state for pages and deliveries, the outcome of a call, who answered.
    pub detail: Option<String>,
}

impl Entry {
    /// A line of `kind` about `alert_id` at `at`, the rest to fill in.
    pub fn new(alert_id: &str, at: Millis, kind: &str) -> Entry {
        Entry {
            alert_id: alert_id.to_string(),
            at,
            kind: kind.to_string(),
            team: None,
            person: None,
            name: None,
            phone: None,
            channel: None,
            event_id: None,
            detail: None,
        }
    }

    /// The line is about this person.
    pub fn with_callee(mut self, c: &Callee) -> Entry {
        self.person = Some(c.person.clone());
        self.name = Some(c.name.clone());
        self.phone = c.phone.clone();
        self
    }
}

/// Appends one line to the audit.
pub fn log(conn: &Connection, e: &Entry) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO callout_log (alert_id, at_ms, kind, team, person, name, phone, channel,
                                  event_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        e.alert_id, e.at, e.kind, e.team, e.person, e.name, e.phone, e.channel, e.event_id,
        e.detail
    ])?;
    Ok(())
}

/// Logs who `event` pages in `team`: the step's callees for an unanswered page (`redial`,
/// or `escalation` for superiors), the team's members for any other page.
pub fn log_page(
    conn: &Connection,
    settings: &Settings,
    event: &AlertEvent,
    team: &str,
    now: Millis,
) -> Result<(), JournalError> {
    let (kind, callees) = match event.page.as_ref().and_then(|p| p.call.as_ref()) {
        Some(call) if call.step == 1 => ("redial", call.people.clone()),
        Some(call) => ("escalation", call.people.clone()),
        None => match settings.team(team) {
            Some(t) => ("page", callout::members(settings, t)),
            None => return Ok(()),
        },
    };
    let detail = match event.page.as_ref().map(|p| p.reason) {
        Some(PageReason::Renotify) => "reminder".to_string(),
        Some(PageReason::Escalation) => "escalation page".to_string(),
        Some(PageReason::Unanswered) => match event.page.as_ref().and_then(|p| p.call.as_ref()) {
            Some(call) => format!("unanswered, step {}", call.step),
            None => "unanswered".into(),
        },
        None => event.state.as_str().to_string(),
    };
    for c in &callees {
        let mut e = Entry::new(&event.alert_id, now, kind).with_callee(c);
        e.team = Some(team.to_string());
        e.event_id = Some(event.event_id.clone());
        e.detail = Some(match &c.superior_of {
            Some(of) => format!("{detail} (superior of {of})"),
            None => detail.clone(),
        });
        log(conn, &e)?;
    }
    Ok(())
}

/// Records a step as taken, in the transaction of its event.
///
/// Only the journal writer calls this, through the path that forgets the alert's timer record
/// (`writer::TimerRecords`): a write from anywhere else would leave the tick deciding
/// reminders, escalations and 叫应 steps from a stale record.
pub fn record_step(
    conn: &Connection,
    alert_id: &str,
    due: &DueStep,
    now: Millis,
) -> Result<(), JournalError> {
    let people: Vec<&str> = due.callees.iter().map(|c| c.person.as_str()).collect();
    conn.prepare_cached(
        "INSERT OR IGNORE INTO callout_steps (alert_id, team, since_ms, step, at_ms, people)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        alert_id,
        due.team,
        due.since,
        due.step,
        now,
        serde_json::to_string(&people)?
    ])?;
    Ok(())
}

/// The steps taken for an alert, oldest first.
pub fn steps(conn: &Connection, alert_id: &str) -> Result<Vec<Step>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT team, since_ms, step, at_ms, people FROM callout_steps WHERE alert_id = ?1
         ORDER BY at_ms, team, step",
    )?;
    let rows = stmt.query_map([alert_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (team, since, step, at, people) = row?;
        out.push(Step {
            team,
            since,
            step,
            at,
            people: serde_json::from_str(&people)?,
        });
    }
    Ok(out)
}

/// A voice call a provider accepted, under the id it gave the call. Tencent's call reports
/// name the call by that id alone (`callid`): this is how a keypress finds the alert it
/// answers.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedCall {
    pub call_id: String,
    pub event_id: String,
    pub alert_id: String,
    pub phone: String,
    /// `{team}/{channel id}`.
    pub destination: String,
    pub placed_ms: Millis,
}

/// Records a call the provider accepted (the writer, on the dispatcher's
/// `Command::RecordCall`). The same id twice is the same call: kept once.
pub fn record_call(conn: &Connection, call: &PlacedCall) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO voice_calls
           (call_id, event_id, alert_id, phone, destination, placed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        call.call_id,
        call.event_id,
        call.alert_id,
        call.phone,
        call.destination,
        call.placed_ms
    ])?;
    Ok(())
}

/// The call a provider's call id names, if hydrowatch placed it (and retention kept it).
pub fn placed_call(conn: &Connection, call_id: &str) -> Result<Option<PlacedCall>, JournalError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT call_id, event_id, alert_id, phone, destination, placed_ms
             FROM voice_calls WHERE call_id = ?1",
        )?
        .query_row([call_id], placed_row)
        .optional()?)
}

fn placed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PlacedCall> {
    Ok(PlacedCall {
        call_id: r.get(0)?,
        event_id: r.get(1)?,
        alert_id: r.get(2)?,
        phone: r.get(3)?,
        destination: r.get(4)?,
        placed_ms: r.get(5)?,
    })
}

/// The event a call report's reference names: the reference itself (hydrowatch's event id,
/// as Aliyun's `out_id` returns it), or the event of the call a provider's call id names.
pub fn event_of_reference(conn: &Connection, reference: &str) -> Result<String, JournalError> {
    Ok(placed_call(conn, reference)?.map_or_else(|| reference.to_string(), |c| c.event_id))
}

/// The open alerts `person` was called for, newest call first, with the team that called.
pub fn alerts_calling(
    conn: &Connection,
    person: &str,
) -> Result<Vec<(String, String)>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.alert_id, c.team FROM callout_log c JOIN alerts a ON a.alert_id = c.alert_id
         WHERE c.person = ?1 AND a.open = 1 AND c.kind IN ('page', 'redial', 'escalation')
           AND c.team IS NOT NULL
         ORDER BY c.id DESC LIMIT 1000",
    )?;
    let rows = stmt.query_map([person], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for row in rows {
        let (alert, team): (String, String) = row?;
        if !out.iter().any(|(a, _)| *a == alert) {
            out.push((alert, team));
        }
    }
    Ok(out)
}

/// The alert an event id belongs to.
pub fn alert_of_event(conn: &Connection, event_id: &str) -> Result<Option<String>, JournalError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT alert_id FROM alert_events WHERE event_id = ?1",
            [event_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// An alert's audit, oldest first: the logged pages, call results and acknowledgements, and
/// each page's delivery on each channel (one line per person the page was for). With more
/// than `limit` logged lines, the newest `limit` (an alert open for weeks keeps its current
/// round in view).
pub fn audit(
    conn: &Connection,
    settings: &Settings,
    alert_id: &str,
    limit: usize,
) -> Result<Vec<Entry>, JournalError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, kind, team, person, name, phone, channel, event_id, detail FROM (
           SELECT * FROM callout_log WHERE alert_id = ?1 ORDER BY id DESC LIMIT ?2
         ) ORDER BY id",
    )?;
    let rows = stmt.query_map(params![alert_id, limit as i64], |r| {
        Ok(Entry {
            alert_id: alert_id.to_string(),
            at: r.get(0)?,
            kind: r.get(1)?,
            team: r.get(2)?,
            person: r.get(3)?,
            name: r.get(4)?,
            phone: r.get(5)?,
            channel: r.get(6)?,
            event_id: r.get(7)?,
            detail: r.get(8)?,
        })
    })?;
    for row in rows {
        out.push(row?);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT o.destination, o.delivered_ms, o.failed_ms, o.last_error, o.attempts,
                e.created_ms, e.json, o.phones, o.next_attempt_ms
         FROM outbox o JOIN alert_events e ON e.seq = o.event_seq
         WHERE e.alert_id = ?1 ORDER BY o.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![alert_id, limit as i64], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    for row in rows {
        let (destination, delivered, failed, error, attempts, created, json, phones, due) = row?;
        let phones: Option<Vec<String>> = phones.map(|p| serde_json::from_str(&p)).transpose()?;
        let event: AlertEvent = serde_json::from_str(&json)?;
        let Some((team, channel)) = destination.rsplit_once('/') else {
            continue;
        };
        let redial = if phones.is_some() { ", redial" } else { "" };
        let (kind, at, detail) = match (delivered, failed) {
            // A redial its alert no longer needed: no phone rang.
            (Some(at), _)
                if error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(super::outbox::NOT_CALLED)) =>
            {
                ("redial_cancelled", at, error.clone().unwrap_or_default())
            }
            (Some(at), _) => ("delivered", at, format!("{}{redial}", event.state.as_str())),
            (None, Some(at)) => (
                "delivery_failed",
                at,
                format!("{}: {}", event.state.as_str(), error.unwrap_or_default()),
            ),
            (None, None) if phones.is_some() => (
                "delivery_pending",
                due,
                format!("{}{redial} due", event.state.as_str()),
            ),
            (None, None) => (
                "delivery_pending",
                created,
                format!("{} ({attempts} attempts)", event.state.as_str()),
            ),
        };
        let call = event.page.as_ref().and_then(|p| p.call.as_ref());
        let callees = match (&phones, call) {
            // A redial rings its one phone: whoever has it.
            (Some(phones), _) => phones
                .iter()
                .map(|phone| match settings.person_by_phone(phone) {
                    Some(p) => callout::callee(p, None),
                    None => Callee {
                        person: phone.clone(),
                        name: phone.clone(),
                        phone: Some(phone.clone()),
                        role: None,
                        superior_of: None,
                    },
                })
                .collect(),
            (None, Some(call)) => call.people.clone(),
            (None, None) => settings
                .team(team)
                .map(|t| callout::members(settings, t))
                .unwrap_or_default(),
        };
        let base = || {
            let mut e = Entry::new(alert_id, at, kind);
            e.team = Some(team.to_string());
            e.channel = Some(channel.to_string());
            e.event_id = Some(event.event_id.clone());
            e.detail = Some(detail.clone());
            e
        };
        if callees.is_empty() {
            out.push(base());
        }
        for c in &callees {
            out.push(base().with_callee(c));
        }
    }
    // Each call a provider accepted, with the id its call reports name it by.
    let mut stmt = conn.prepare_cached(
        "SELECT call_id, event_id, alert_id, phone, destination, placed_ms FROM voice_calls
         WHERE alert_id = ?1 ORDER BY placed_ms DESC LIMIT ?2",
    )?;
    for call in stmt.query_map(params![alert_id, limit as i64], placed_row)? {
        let call = call?;
        let mut e = Entry::new(alert_id, call.placed_ms, "call_placed");
        if let Some(p) = settings.person_by_phone(&call.phone) {
            e = e.with_callee(&callout::callee(p, None));
        }
        if let Some((team, channel)) = call.destination.rsplit_once('/') {
            e.team = Some(team.to_string());
            e.channel = Some(channel.to_string());
        }
        e.phone = Some(call.phone);
        e.event_id = Some(call.event_id);
        e.detail = Some(format!("provider call id {}", call.call_id));
        out.push(e);
    }
    // Each source gave its newest `limit` lines: keep the newest `limit` of them all.
    out.sort_by_key(|e| e.at);
    let excess = out.len().saturating_sub(limit);
    out.drain(..excess);
    Ok(out)
}

/// An alert nobody has answered although its deadline passed (未叫醒).
#[derive(Debug, Clone, Serialize)]
pub struct Unreached {
    pub alert_id: String,
    pub station: String,
    pub station_name: String,
    pub rule: String,
    pub stage: String,
    pub state: AlertState,
    /// The teams whose deadline passed.
    pub teams: Vec<String>,
    /// Wall clock since which the alert has waited for an answer.
    pub since: Millis,
    /// `since` in the configured time zone.
    pub since_time: String,
    /// Everyone called so far in this round, first called first.
    pub paged: Vec<Callee>,
    /// The steps taken: when, which step, whom.
    pub steps: Vec<StepView>,
    /// What was tried, oldest first: pages, deliveries per channel, call results.
    pub tried: Vec<Entry>,
}

/// A callout step as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub team: String,
    pub step: u32,
    /// `redial` or `superiors`.
    pub action: String,
    pub at: Millis,
    pub people: Vec<String>,
}

/// The open, unacknowledged alerts with at least one callout step in their current round.
pub fn unreached(
    conn: &Connection,
    settings: &Settings,
    open: &[Alert],
) -> Result<Vec<Unreached>, JournalError> {
    let mut out = Vec::new();
    for alert in open {
        if alert.acknowledged_by.is_some() {
            continue;
        }
        let steps = steps(conn, &alert.alert_id)?;
        if steps.is_empty() {
            continue;
        }
        // Steps of a round an acknowledgement ended belong to that round.
        let events = journal::alert_events(conn, &alert.alert_id)?;
        let last_ack = events
            .iter()
            .rev()
            .find(|e| e.state == AlertState::Acknowledged)
            .map_or(Millis::MIN, |e| e.created_at);
        let current: Vec<&Step> = steps.iter().filter(|s| s.at > last_ack).collect();
        let Some(since) = current.iter().map(|s| s.since).min() else {
            continue;
        };
        let tried: Vec<Entry> = audit(conn, settings, &alert.alert_id, 10_000)?
            .into_iter()
            .filter(|e| e.at >= since)
            .collect();
        let mut paged: Vec<Callee> = Vec::new();
        let mut teams: Vec<String> = Vec::new();
        for s in &current {
            if !teams.contains(&s.team) {
                teams.push(s.team.clone());
                if let Some(team) = settings.team(&s.team) {
                    for c in callout::members(settings, team) {
                        if !paged.iter().any(|p| p.person == c.person) {
                            paged.push(c);
                        }
                    }
                }
            }
        }
        for e in events.iter().filter(|e| e.created_at >= since) {
            if let Some(call) = e.page.as_ref().and_then(|p| p.call.as_ref()) {
                for c in &call.people {
                    if !paged.iter().any(|p| p.person == c.person) {
                        paged.push(c.clone());
                    }
                }
            }
        }
        let station = settings.place(&alert.station);
        out.push(Unreached {
            alert_id: alert.alert_id.clone(),
            station: alert.station.clone(),
            station_name: station.map_or_else(|| alert.station.clone(), |s| s.name.clone()),
            rule: alert.rule.clone(),
            stage: alert.stage.clone(),
            state: alert.state,
            teams,
            since,
            since_time: format_time(since, &settings.rules.time_zone),
            paged,
            steps: current
                .iter()
                .map(|s| StepView {
                    team: s.team.clone(),
                    step: s.step,
                    action: if s.step == 1 { "redial" } else { "superiors" }.into(),
                    at: s.at,
                    people: s.people.clone(),
                })
                .collect(),
            tried,
        });
    }
    out.sort_by_key(|u| u.since);
    Ok(out)
}

/// The audit as CSV: one line per entry, times in the configured zone and in milliseconds.
pub fn csv(settings: &Settings, entries: &[Entry]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "time", "at_ms", "kind", "team", "person", "name", "phone", "channel", "event_id", "detail",
    ])?;
    for e in entries {
        let at = e.at.to_string();
        let time = format_time(e.at, &settings.rules.time_zone);
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            time,
            at,
            e.kind.clone(),
            o(&e.team),
            o(&e.person),
            o(&e.name),
            o(&e.phone),
            o(&e.channel),
            o(&e.event_id),
            o(&e.detail),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Logs an acknowledgement with the person who answered (when known).
pub fn log_acknowledgement(
    conn: &Connection,
    settings: &Settings,
    event: &AlertEvent,
    team: &str,
    person: Option<&str>,
    now: Millis,
) -> Result<(), JournalError> {
    let mut e = Entry::new(&event.alert_id, now, "acknowledgement");
    e.team = Some(team.to_string());
    e.event_id = Some(event.event_id.clone());
    if let Some(id) = person {
        e.person = Some(id.to_string());
        match settings.person(id) {
            Some(p) => {
                e.name = Some(p.name.clone());
                e.phone = p.phone.clone();
            }
            None => e.name = Some(id.to_string()),
        }
    }
    e.detail = Some(format!("acknowledged by {team}"));
    log(conn, &e)
}

/// Logs a provider's answer for an alert (`alert_id` empty: it answered for no alert).
pub fn log_answer(
    conn: &Connection,
    alert_id: &str,
    team: &str,
    channel: &str,
    person: Option<&str>,
    answer: &callout::Answer,
    now: Millis,
) -> Result<(), JournalError> {
    let mut e = Entry::new(alert_id, now, "call_result");
    e.team = (!team.is_empty()).then(|| team.to_string());
    e.person = person.map(str::to_string);
    e.phone = Some(answer.phone.clone());
    e.channel = Some(
        channel
            .rsplit_once('/')
            .map_or(channel, |(_, c)| c)
            .to_string(),
    );
    // A provider's call id is not an event: the line names the call's event, and the call.
    let call = match answer.reference.as_deref() {
        Some(reference) => placed_call(conn, reference)?,
        None => None,
    };
    e.event_id = call
        .as_ref()
        .map(|c| c.event_id.clone())
        .or_else(|| answer.reference.clone());
    let on_call = call.map_or_else(String::new, |c| format!(" on call {}", c.call_id));
    e.detail = Some(match answer.outcome.detail() {
        Some(d) => format!(
            "{} {d} (reported at {}){on_call}",
            answer.outcome.as_str(),
            answer.at
        ),
        None => format!(
            "{} (reported at {}){on_call}",
            answer.outcome.as_str(),
            answer.at
        ),
    });
    log(conn, &e)
}

/// The open alerts an answer is about, each with the team it acknowledges for.
///
/// With a reference: the alert it names (an alert id, an event id, or the provider's id of a
/// call hydrowatch placed), and only that alert; none when that alert is no longer open (a
/// keypress on the call for one alert never acknowledges another). Without a reference (an
/// SMS reply, a gateway that sends none): every open, unacknowledged alert that called
/// `person`.
///
/// A reference hydrowatch does not know: on a channel whose reports name each call by the
/// provider's call id (`calls_recorded`: Tencent, Aliyun), it names a call not recorded (a
/// report that overtook the record, or a call placed before call ids were kept), so the
/// answer is taken for the alert that called `person` only when exactly one open,
/// unacknowledged alert did, and for none otherwise: the 叫应 chains go on rather than end
/// on a guess. On other channels (an SMS gateway's own message id) every open,
/// unacknowledged alert that called `person`, as without a reference.
///
/// No person and no known reference: none (the answer is still logged, for no alert).
pub fn answer_targets(
    conn: &Connection,
    settings: &Settings,
    open: &[Alert],
    person: Option<&str>,
    reference: Option<&str>,
    calls_recorded: bool,
) -> Result<Vec<(String, String)>, JournalError> {
    let called = match person {
        Some(p) => alerts_calling(conn, p)?,
        None => Vec::new(),
    };
    let unanswered: Vec<(String, String)> = called
        .iter()
        .filter(|(a, _)| {
            open.iter()
                .any(|o| o.alert_id == *a && o.acknowledged_by.is_none())
        })
        .cloned()
        .collect();
    let Some(reference) = reference else {
        return Ok(unanswered);
    };
    let alert_id = match open.iter().find(|a| a.alert_id == reference) {
        Some(a) => Some(a.alert_id.clone()),
        None => match placed_call(conn, reference)? {
            Some(call) => Some(call.alert_id),
            None => alert_of_event(conn, reference)?,
        },
    };
    let Some(alert_id) = alert_id else {
        return Ok(if calls_recorded && unanswered.len() > 1 {
            Vec::new()
        } else {
            unanswered
        });
    };
    let Some(alert) = open.iter().find(|a| a.alert_id == alert_id) else {
        return Ok(Vec::new());
    };
    let team = match called.iter().find(|(a, _)| *a == alert.alert_id) {
        Some((_, team)) => Some(team.clone()),
        None => {
            // Not called by name (an inline member, a channel's fixed phones): the
            // first team that may acknowledge and lists the person.
            let paged = journal::paged_teams(conn, &alert.alert_id)?;
            let teams = super::teams_for(settings, alert, &paged);
            teams
                .iter()
                .find(|t| {
                    settings.team(t).is_some_and(|team| {
                        team.members
                            .iter()
                            .any(|m| person.is_some() && m.person.as_deref() == person)
                    })
                })
                .or(teams.first())
                .cloned()
        }
    };
    Ok(team
        .map(|team| vec![(alert.alert_id.clone(), team)])
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"

[[teams]]
id = "east"
members = ["wang"]

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }

[[stations]]
id = "s2"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

    fn alert(id: &str, station: &str) -> Alert {
        Alert::sample(id, station)
    }

    /// Alerts a1 (event e1, station s1) and a2 (event e2, station s2), both open, both having
    /// paged 王队长, and the Tencent call for e1 recorded as `call-a`.
    fn journal() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let conn = journal::open(&dir.path().join("j.db")).expect("journal");
        for (seq, (alert_id, event_id, station)) in
            [("a1", "e1", "s1"), ("a2", "e2", "s2")].iter().enumerate()
        {
            conn.execute(
                "INSERT INTO alerts VALUES (?1, ?2, 'stage', 1, 0, '{}')",
                [alert_id, station],
            )
            .expect("alert");
            conn.execute(
                "INSERT INTO alert_events (seq, event_id, alert_id, created_ms, json)
                 VALUES (?1, ?2, ?3, 0, '{}')",
                params![seq as i64 + 1, event_id, alert_id],
            )
            .expect("event");
            let mut e = Entry::new(alert_id, 10, "page");
            e.team = Some("east".into());
            e.person = Some("wang".into());
            e.phone = Some("13800000001".into());
            e.event_id = Some(event_id.to_string());
            log(&conn, &e).expect("page");
        }
        record_call(&conn, &call("call-a", "e1", "a1")).expect("recorded");
        (dir, conn)
    }

    fn call(call_id: &str, event_id: &str, alert_id: &str) -> PlacedCall {
        PlacedCall {
            call_id: call_id.into(),
            event_id: event_id.into(),
            alert_id: alert_id.into(),
            phone: "13800000001".into(),
            destination: "east/tencent".into(),
            placed_ms: 20,
        }
    }

    fn ids(targets: Vec<(String, String)>) -> Vec<String> {
        targets.into_iter().map(|(a, _)| a).collect()
    }

    #[test]
    fn a_call_id_answers_for_the_alert_its_call_was_for_only() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        let open = [alert("a1", "s1"), alert("a2", "s2")];
        let targets = |reference: Option<&str>, recorded: bool| {
            ids(
                answer_targets(&conn, &settings, &open, Some("wang"), reference, recorded)
                    .expect("targets"),
            )
        };
        assert_eq!(targets(Some("call-a"), true), ["a1"]);
        assert_eq!(
            targets(Some("e2"), true),
            ["a2"],
            "an event id, as Aliyun's out_id"
        );
        assert_eq!(targets(Some("a2"), false), ["a2"], "an alert id");
        // No reference (an SMS reply): every open, unacknowledged alert that called him.
        assert_eq!(targets(None, true), ["a2", "a1"]);
        // A call id not recorded: on a voice API that names its calls, two alerts called
        // him, so it answers for neither; elsewhere (an SMS gateway's own id) for both.
        assert!(targets(Some("call-unknown"), true).is_empty());
        assert_eq!(targets(Some("call-unknown"), false), ["a2", "a1"]);
        // With one alert left calling him, that one is the call he answered.
        let mut a2_acknowledged = alert("a2", "s2");
        a2_acknowledged.acknowledged_by = Some("east".into());
        let one = [alert("a1", "s1"), a2_acknowledged];
        let got = answer_targets(&conn, &settings, &one, Some("wang"), Some("call-x"), true);
        assert_eq!(ids(got.expect("targets")), ["a1"]);
        // The call's alert is over: the keypress answers for no other alert.
        let only_a2 = [alert("a2", "s2")];
        let got = answer_targets(
            &conn,
            &settings,
            &only_a2,
            Some("wang"),
            Some("call-a"),
            true,
        );
        assert!(got.expect("targets").is_empty());
    }

    #[test]
    fn a_long_audit_keeps_its_newest_lines_from_every_source() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        // Weeks of a drought alert: many rounds of pages and calls after the first.
        for i in 0..30_i64 {
            let mut e = Entry::new("a1", 1_000 + i * 100, "page");
            e.team = Some("east".into());
            e.person = Some("wang".into());
            log(&conn, &e).expect("page");
            let mut c = call(&format!("call-{i}"), "e1", "a1");
            c.placed_ms = 1_050 + i * 100;
            record_call(&conn, &c).expect("call");
        }
        let lines = audit(&conn, &settings, "a1", 10).expect("audit");
        let at: Vec<i64> = lines.iter().map(|e| e.at).collect();
        assert_eq!(
            at,
            [3_500, 3_550, 3_600, 3_650, 3_700, 3_750, 3_800, 3_850, 3_900, 3_950],
            "the newest ten, oldest first"
        );
        assert!(
            lines.iter().any(|e| e.kind == "call_placed") && lines.iter().any(|e| e.kind == "page")
        );
    }

    #[test]
    fn a_call_result_names_the_calls_event_and_the_audit_shows_the_call() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        // The same id recorded twice is one call.
        record_call(&conn, &call("call-a", "e2", "a2")).expect("ignored");
        assert_eq!(
            placed_call(&conn, "call-a").expect("read"),
            Some(call("call-a", "e1", "a1"))
        );
        assert_eq!(event_of_reference(&conn, "call-a").expect("read"), "e1");
        assert_eq!(event_of_reference(&conn, "e2").expect("read"), "e2");
        let answer = callout::Answer {
            phone: "13800000001".into(),
            outcome: callout::CallOutcome::Keypress("1".into()),
            at: 30,
            reference: Some("call-a".into()),
        };
        log_answer(
            &conn,
            "a1",
            "east",
            "east/tencent",
            Some("wang"),
            &answer,
            40,
        )
        .expect("log");
        let lines = audit(&conn, &settings, "a1", 100).expect("audit");
        let placed = lines
            .iter()
            .find(|e| e.kind == "call_placed")
            .expect("the placed call");
        assert_eq!(placed.person.as_deref(), Some("wang"));
        assert_eq!(placed.channel.as_deref(), Some("tencent"));
        assert_eq!(placed.event_id.as_deref(), Some("e1"));
        assert_eq!(placed.detail.as_deref(), Some("provider call id call-a"));
        let result = lines
            .iter()
            .find(|e| e.kind == "call_result")
            .expect("the result");
        assert_eq!(result.event_id.as_deref(), Some("e1"));
        assert!(
            result
                .detail
                .as_deref()
                .is_some_and(|d| d.ends_with("on call call-a")),
            "{result:?}"
        );
        assert!(audit(&conn, &settings, "a2", 100)
            .expect("audit")
            .iter()
            .all(|e| e.kind != "call_placed"));
    }

    #[test]
    fn retention_keeps_the_calls_of_open_alerts() {
        let (_dir, conn) = journal();
        record_call(&conn, &call("call-b", "e2", "a2")).expect("recorded");
        conn.execute("UPDATE alerts SET open = 0 WHERE alert_id = 'a1'", [])
            .expect("closed");
        let pruned = journal::prune(&conn, i64::MAX, 1_000, None).expect("pruned");
        assert!(pruned.callouts >= 1, "{pruned:?}");
        assert_eq!(placed_call(&conn, "call-a").expect("read"), None);
        assert!(placed_call(&conn, "call-b").expect("read").is_some());
        // Newer than the retention: kept, even for a closed alert.
        record_call(&conn, &call("call-c", "e1", "a1")).expect("recorded");
        journal::prune(&conn, i64::MAX, 10, None).expect("pruned");
        assert!(placed_call(&conn, "call-c").expect("read").is_some());
    }
}
