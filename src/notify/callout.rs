//! 叫应: every warning reaches a named person, and somebody answers.
//!
//! A page that nobody acknowledges within the team's `respond_within` is *unanswered*: the
//! team's members are called again (phone channels first), then each member's superior, and
//! each superior's superior, one step per deadline, until somebody answers. Each step is an
//! `unanswered` event on the team's channels that names the people to call.
//!
//! Why it is pure: like the escalation timers ([`super::escalation`]), the journal writer
//! evaluates [`due`] on its wall-clock tick with what the journal knows (the steps already
//! taken, in `callout_steps`) and records the step it returns in the same transaction as the
//! event and its outbox rows. A `kill -9` in the middle therefore neither repeats a step nor
//! forgets one that was due.
//!
//! What a provider reports back (a call answered, a keypress, an SMS reply) arrives as an
//! [`Answer`]: the callback route (`POST /api/v1/callbacks/{channel_id}`) turns the request
//! body into answers with [`parse_answers`], the writer records each in the audit
//! (`callout_log`, see [`super::callout_log`]) and a confirming one acknowledges the alert for
//! the person whose phone answered.

use crate::alerts::{Alert, AlertEvent, AlertState, CallStep, Callee, Page, PageReason};
use crate::config::{ChannelKind, Settings, Team};
use crate::model::Millis;

pub use super::callback::{parse_answers, Answer, AnswerError, CallOutcome, MAX_ANSWERS};

/// Whether a channel reaches a phone (SMS, voice): those are called first.
pub fn is_phone_channel(kind: ChannelKind) -> bool {
    matches!(kind.as_str(), "sms" | "voice")
}

/// One step already taken for a team's round of an alert (`callout_steps`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub team: String,
    /// Wall clock since which the alert has waited for an answer (the round).
    pub since: Millis,
    /// 1: the members called again; 2: their superiors; 3: the superiors' superiors...
    pub step: u32,
    pub at: Millis,
    /// The person ids called in this step.
    pub people: Vec<String>,
}

/// A step due now for one team.
#[derive(Debug, Clone, PartialEq)]
pub struct DueStep {
    pub team: String,
    pub since: Millis,
    pub step: u32,
    pub callees: Vec<Callee>,
}

/// The callout steps due at `now` for one open alert: for each paged team with a
/// `respond_within`, the next step once the last one (or the page itself, at `since`) went
/// unanswered that long. `paged`: (team, wall clock the team was first paged); the round
/// starts at the later of that and `unacknowledged_since` (a raise after an
/// acknowledgement needs a new answer). Nothing is due for an acknowledged or pending alert,
/// a station under maintenance, or a team whose chain has nobody left to call.
pub fn due(
    settings: &Settings,
    alert: &Alert,
    paged: &[(String, Millis)],
    unacknowledged_since: Option<Millis>,
    steps: &[Step],
    now: Millis,
) -> Vec<DueStep> {
    if alert.acknowledged_by.is_some() || alert.state == AlertState::Pending {
        return Vec::new();
    }
    let Some(station) = settings.place(&alert.station).filter(|s| !s.maintenance) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (team_id, paged_ms) in paged {
        let Some(team) = settings.team(team_id) else {
            continue;
        };
        let Some(within) = team
            .respond_within
            .as_ref()
            .and_then(|r| r.for_alert(station, &alert.rule, alert.stage_index))
        else {
            continue;
        };
        let since = (*paged_ms).max(unacknowledged_since.unwrap_or(Millis::MIN));
        let taken: Vec<&Step> = steps
            .iter()
            .filter(|s| s.team == *team_id && s.since == since)
            .collect();
        let last = taken.iter().max_by_key(|s| s.step);
        let (from, next) = match last {
            None => (since, 1),
            Some(s) => (s.at, s.step + 1),
        };
        if now - from < crate::alerts::millis(within) {
            continue;
        }
        let callees = match last {
            None => members(settings, team),
            Some(_) => {
                let called: Vec<&str> = taken
                    .iter()
                    .flat_map(|s| s.people.iter().map(String::as_str))
                    .collect();
                superiors(
                    settings,
                    &last.map(|s| s.people.clone()).unwrap_or_default(),
                )
                .into_iter()
                .filter(|c| !called.contains(&c.person.as_str()))
                .collect()
            }
        };
        if callees.is_empty() {
            // Nobody left up the chain: the alert stays listed as unreached.
            continue;
        }
        out.push(DueStep {
            team: team_id.clone(),
            since,
            step: next,
            callees,
        });
    }
    out
}

/// A team's members as callees: named people with their phones (inline members by name).
pub fn members(settings: &Settings, team: &Team) -> Vec<Callee> {
    team.members
        .iter()
        .map(
            |m| match m.person.as_deref().and_then(|id| settings.person(id)) {
                Some(p) => callee(p, None),
                None => Callee {
                    person: m.person.clone().unwrap_or_else(|| m.name.clone()),
                    name: m.name.clone(),
                    phone: m.phone.clone(),
                    role: None,
                    superior_of: None,
                },
            },
        )
        .collect()
}

/// The superiors of `people`, each once, in the order of the people they stand above.
pub fn superiors(settings: &Settings, people: &[String]) -> Vec<Callee> {
    let mut out: Vec<Callee> = Vec::new();
    for id in people {
        let Some(boss) = settings
            .person(id)
            .and_then(|p| p.superior.as_deref())
            .and_then(|s| settings.person(s))
        else {
            continue;
        };
        if !out.iter().any(|c| c.person == boss.id) {
            out.push(callee(boss, Some(id.clone())));
        }
    }
    out
}

pub(crate) fn callee(p: &crate::config::Person, superior_of: Option<String>) -> Callee {
    Callee {
        person: p.id.clone(),
        name: p.name.clone(),
        phone: p.phone.clone(),
        role: p.role.clone(),
        superior_of,
    }
}

/// The `unanswered` event for a due step: a copy of the alert's latest lifecycle event with
/// a fresh `event_id`, addressed to the step's team, naming the people to call.
pub fn event(latest: &AlertEvent, due: &DueStep, now: Millis) -> AlertEvent {
    let mut event = latest.clone();
    event.event_id = uuid::Uuid::new_v4().to_string();
    event.state = AlertState::Unanswered;
    event.created_at = now;
    event.acknowledged_by = None;
    event.page = Some(Page {
        reason: PageReason::Unanswered,
        team: due.team.clone(),
        from_team: None,
        unacknowledged_since: due.since,
        call: Some(CallStep {
            step: due.step,
            action: if due.step == 1 { "redial" } else { "superiors" }.into(),
            people: due.callees.clone(),
        }),
    });
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from_str;

    const CONFIG: &str = concat!(
        include_str!("../../tests/data/people.toml"),
        r#"
[[teams]]
id = "east"
members = ["wang", "zhao"]
respond_within = "10s"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#
    );

    fn alert() -> Alert {
        Alert {
            stage: "guard".into(),
            stage_index: 0,
            value: 1.5,
            threshold: 1.0,
            ..Alert::sample("a", "s1")
        }
    }

    fn taken(d: &DueStep, at: Millis) -> Step {
        Step {
            team: d.team.clone(),
            since: d.since,
            step: d.step,
            at,
            people: d.callees.iter().map(|c| c.person.clone()).collect(),
        }
    }

    #[test]
    fn members_then_superiors_then_theirs_one_deadline_each() {
        let s = load_from_str(CONFIG).expect("valid");
        let a = alert();
        let paged = [("east".to_string(), 0)];
        assert!(due(&s, &a, &paged, None, &[], 9_999).is_empty());
        let first = due(&s, &a, &paged, None, &[], 10_000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].step, 1);
        let people: Vec<&str> = first[0].callees.iter().map(|c| c.person.as_str()).collect();
        assert_eq!(people, ["wang", "zhao"]);
        let mut steps = vec![taken(&first[0], 12_000)];
        assert!(due(&s, &a, &paged, None, &steps, 21_999).is_empty());
        let second = due(&s, &a, &paged, None, &steps, 22_000);
        assert_eq!(second[0].step, 2);
        assert_eq!(second[0].callees.len(), 1, "one superior for both");
        assert_eq!(second[0].callees[0].person, "li");
        assert_eq!(second[0].callees[0].superior_of.as_deref(), Some("wang"));
        steps.push(taken(&second[0], 22_000));
        let third = due(&s, &a, &paged, None, &steps, 32_000);
        assert_eq!(third[0].callees[0].person, "chen");
        steps.push(taken(&third[0], 32_000));
        assert!(
            due(&s, &a, &paged, None, &steps, 1_000_000).is_empty(),
            "the top of the chain has no superior"
        );
    }

    #[test]
    fn an_acknowledged_alert_has_nothing_due_and_a_new_round_starts_after_a_raise() {
        let s = load_from_str(CONFIG).expect("valid");
        let mut a = alert();
        let paged = [("east".to_string(), 0)];
        a.acknowledged_by = Some("east".into());
        assert!(due(&s, &a, &paged, None, &[], 100_000).is_empty());
        a.acknowledged_by = None;
        let old = Step {
            team: "east".into(),
            since: 0,
            step: 1,
            at: 10_000,
            people: vec!["wang".into(), "zhao".into()],
        };
        // Raised again at 50 s after an acknowledgement: the round restarts from there.
        assert!(due(
            &s,
            &a,
            &paged,
            Some(50_000),
            std::slice::from_ref(&old),
            59_999
        )
        .is_empty());
        let d = due(&s, &a, &paged, Some(50_000), &[old], 60_000);
        assert_eq!((d[0].step, d[0].since), (1, 50_000));
    }

    #[test]
    fn a_stage_deadline_applies_from_that_stage_up() {
        let config = CONFIG.replace(
            r#"respond_within = "10s""#,
            r#"respond_within = { default = "60s", warning = "5s" }"#,
        );
        let s = load_from_str(&config).expect("valid");
        let paged = [("east".to_string(), 0)];
        let guard = alert();
        assert!(due(&s, &guard, &paged, None, &[], 59_999).is_empty());
        assert_eq!(due(&s, &guard, &paged, None, &[], 60_000).len(), 1);
        let mut warning = alert();
        warning.stage = "warning".into();
        warning.stage_index = 1;
        assert!(due(&s, &warning, &paged, None, &[], 4_999).is_empty());
        assert_eq!(due(&s, &warning, &paged, None, &[], 5_000).len(), 1);
        let mut rain = alert();
        rain.rule = "rain_1h".into();
        rain.stage_index = 1;
        assert!(
            due(&s, &rain, &paged, None, &[], 59_999).is_empty(),
            "other rules take the default"
        );
        let unknown = CONFIG.replace(
            r#"respond_within = "10s""#,
            r#"respond_within = { flood = "5s" }"#,
        );
        let problems = load_from_str(&unknown).expect_err("unknown stage");
        assert!(
            problems
                .0
                .iter()
                .any(|p| p.key == "teams[east].respond_within.flood"),
            "{problems}"
        );
    }

    #[test]
    fn an_unanswered_page_names_whom_it_calls() {
        let s = load_from_str(CONFIG).expect("valid");
        let a = alert();
        let latest = AlertEvent::new(&a, AlertState::Firing, 0, 0, std::time::Duration::ZERO);
        let step = due(&s, &a, &[("east".to_string(), 0)], None, &[], 10_000).remove(0);
        let e = event(&latest, &step, 10_000);
        assert_eq!(e.state, AlertState::Unanswered);
        assert_ne!(e.event_id, latest.event_id);
        let payload = crate::notify::EventPayload::new(&s, &e, Some("east"));
        assert_eq!(
            payload.callout_phones(),
            Some(vec!["13800000001".to_string(), "13800000002".to_string()])
        );
        let text = crate::notify::channels::markdown(&payload, crate::config::Language::Chinese);
        assert!(
            text.contains("[未应答]")
                && text.contains("现呼叫：王队长 13800000001、赵四 13800000002"),
            "{text}"
        );
        let json = serde_json::to_value(&payload).expect("serializes");
        assert_eq!(json["state"], "unanswered");
        assert_eq!(json["callout"]["step"], 1);
        assert_eq!(json["callout"]["people"][1]["phone"], "13800000002");
    }

    #[test]
    fn answers_parse_from_the_documented_json() {
        let s = load_from_str(
            r#"
[[teams]]
id = "east"
  [[teams.channels]]
  id = "calls"
  kind = "webhook"
  url = "http://127.0.0.1:1/x"
"#,
        )
        .expect("valid");
        let channel = &s.teams[0].channels[0];
        let one = br#"{"phone":"13800000001","outcome":{"keypress":"1"},"at":5,"reference":"e1"}"#;
        let answers = parse_answers(channel, one, None).expect("parses");
        assert_eq!(
            answers,
            [Answer {
                phone: "13800000001".into(),
                outcome: CallOutcome::Keypress("1".into()),
                at: 5,
                reference: Some("e1".into()),
            }]
        );
        assert!(answers[0].outcome.confirms("1"));
        assert!(!CallOutcome::Keypress("2".into()).confirms("1"));
        assert!(CallOutcome::SmsReply("收到".into()).confirms("1"));
        assert!(!CallOutcome::NoAnswer.confirms("1"));
        let many = br#"[{"phone":"1","outcome":"no_answer","at":1},{"phone":"1","outcome":"busy","at":2}]"#;
        assert_eq!(parse_answers(channel, many, None).expect("parses").len(), 2);
        assert!(
            parse_answers(channel, br#"{"phone":"1","outcome":"maybe","at":1}"#, None).is_err()
        );
        assert!(parse_answers(channel, br#"{"phone":"","outcome":"busy","at":1}"#, None).is_err());
        assert_eq!(
            serde_json::to_value(CallOutcome::SmsReply("ok".into())).unwrap(),
            serde_json::json!({"sms_reply": "ok"})
        );
        assert_eq!(
            serde_json::to_value(CallOutcome::NoAnswer).unwrap(),
            serde_json::json!("no_answer")
        );
    }
}
