//! Calling a phone again when its call went unanswered (重拨): a county rule has an
//! unanswered call redialled three times in five minutes. A voice channel's
//! `redial = { attempts, spacing }` says how often and how far apart; [`super::voice::redial_at`]
//! decides from one call's result, and [`after_answer`] acts on it.
//!
//! A redial is an outbox row like any page: the same event, the same destination, restricted
//! to the one phone (`phones`), due `spacing` after the result. The journal writer queues it
//! in the transaction that records the result, so a crash between the result and the redial
//! changes nothing. An acknowledgement cancels the pending redials of its alert
//! ([`cancel`]), and the dispatcher places none for an alert that is acknowledged or over.

use rusqlite::Connection;

use super::callout::Answer;
use super::callout_log::{self, Entry};
use super::outbox;
use crate::alerts::Alert;
use crate::config::Settings;
use crate::journal::JournalError;
use crate::model::{format_time, Millis};

/// One redial queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub alert_id: String,
    pub phone: String,
    /// Which call this will be (the first call is 1).
    pub call: u32,
    pub due: Millis,
}

/// After a call result on `destination` (`{team}/{channel id}`): when the channel redials,
/// the result says nobody was reached, and the alert it belongs to is still open and
/// unacknowledged, queues one more call to that phone, unless one is already waiting or
/// the attempts are spent. `targets` are the alerts the answer answers for (see
/// `callout_log::answer_targets`); `open` the alerts open now. Logs each redial in the audit.
pub fn after_answer(
    tx: &Connection,
    settings: &Settings,
    destination: &str,
    answer: &Answer,
    targets: &[(String, String)],
    open: &[Alert],
    now: Millis,
) -> Result<Vec<Queued>, JournalError> {
    let Some((team, channel)) = super::lookup(settings, destination) else {
        return Ok(Vec::new());
    };
    let Some(voice) = &channel.voice else {
        return Ok(Vec::new());
    };
    if voice.redial.attempts <= 1 {
        return Ok(Vec::new());
    }
    // The provider's time of the result, unless its clock is ahead of ours.
    let result_at = if answer.at > 0 && answer.at <= now {
        answer.at
    } else {
        now
    };
    let mut queued = Vec::new();
    for (alert_id, _) in targets {
        let Some(alert) = open.iter().find(|a| a.alert_id == *alert_id) else {
            continue;
        };
        if alert.acknowledged_by.is_some() {
            continue;
        }
        // The call's event: the one the result names, else this channel's latest page.
        let named = match answer.reference.as_deref() {
            Some(reference) => event_seq(
                tx,
                &callout_log::event_of_reference(tx, reference)?,
                alert_id,
            )?,
            None => None,
        };
        let Some(seq) = named.map_or_else(
            || outbox::latest_page_of(tx, alert_id, destination),
            |s| Ok(Some(s)),
        )?
        else {
            continue;
        };
        let rows = outbox::calls_to(tx, seq, destination, &answer.phone)?;
        if rows.pages == 0 && rows.redials == 0 {
            // This channel never called for that event.
            continue;
        }
        if rows.redials_pending > 0 {
            // The provider reported again (or reported twice): one redial is waiting already.
            continue;
        }
        let calls_made = 1 + rows.redials as u32;
        let Some(due) =
            super::voice::redial_at(&voice.redial, calls_made, &answer.outcome, result_at)
        else {
            continue;
        };
        outbox::queue_redial(tx, seq, destination, &answer.phone, due)?;
        let mut e = Entry::new(alert_id, now, "redial");
        if let Some(p) = settings.person_by_phone(&answer.phone) {
            e = e.with_callee(&super::callout::callee(p, None));
        }
        e.phone = Some(answer.phone.clone());
        e.team = Some(team.id.clone());
        e.channel = Some(channel.id.clone());
        e.event_id = Some(event_id(tx, seq)?);
        e.detail = Some(format!(
            "call {} of {} after {}, due {}",
            calls_made + 1,
            voice.redial.attempts,
            answer.outcome.as_str(),
            format_time(due, &settings.rules.time_zone)
        ));
        callout_log::log(tx, &e)?;
        tracing::info!(%alert_id, phone = %answer.phone, call = calls_made + 1,
            outcome = answer.outcome.as_str(), "call not answered; calling again");
        queued.push(Queued {
            alert_id: alert_id.clone(),
            phone: answer.phone.clone(),
            call: calls_made + 1,
            due,
        });
    }
    Ok(queued)
}

/// An acknowledgement ends the alert's waiting redials: none rings after it.
pub fn cancel(tx: &Connection, alert_id: &str, now: Millis) -> Result<usize, JournalError> {
    outbox::cancel_redials(tx, alert_id, now, "the alert was acknowledged")
}

/// The seq of event `reference` when it is an event of `alert_id`; with the alert's id as
/// the reference, `None` (the channel's latest page then).
fn event_seq(
    tx: &Connection,
    reference: &str,
    alert_id: &str,
) -> Result<Option<i64>, JournalError> {
    use rusqlite::OptionalExtension;
    Ok(tx
        .query_row(
            "SELECT seq FROM alert_events WHERE event_id = ?1 AND alert_id = ?2",
            [reference, alert_id],
            |r| r.get(0),
        )
        .optional()?)
}

fn event_id(tx: &Connection, seq: i64) -> Result<String, JournalError> {
    Ok(tx.query_row(
        "SELECT event_id FROM alert_events WHERE seq = ?1",
        [seq],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::callout::CallOutcome;

    const CONFIG: &str = r#"
[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"

[[teams]]
id = "east"
members = ["wang", { name = "李四", phone = "13800000002" }]
  [[teams.channels]]
  id = "gateway"
  kind = "voice"
  provider = "template"
  url = "http://127.0.0.1:9/call"
  redial = { attempts = 3, spacing = "90s" }
"#;

    const DEST: &str = "east/gateway";

    fn alert(acknowledged: bool) -> Alert {
        Alert {
            acknowledged_by: acknowledged.then(|| "east".into()),
            ..Alert::sample("a1", "s1")
        }
    }

    /// A journal holding event `e1` of alert `a1` and its page on the gateway.
    fn journal() -> (tempfile::TempDir, Connection) {
        let (dir, conn) = crate::journal::with_one_event(&alert(false));
        conn.execute(
            "INSERT INTO outbox (event_seq, destination, next_attempt_ms, delivered_ms)
             VALUES (1, ?1, 0, 10)",
            [DEST],
        )
        .expect("page");
        (dir, conn)
    }

    fn no_answer(phone: &str, at: Millis) -> Answer {
        Answer {
            phone: phone.into(),
            outcome: CallOutcome::NoAnswer,
            at,
            reference: Some("e1".into()),
        }
    }

    fn targets() -> Vec<(String, String)> {
        vec![("a1".into(), "east".into())]
    }

    #[test]
    fn an_unanswered_call_queues_one_more_call_to_that_phone_until_the_attempts_are_spent() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        let open = [alert(false)];
        let answer = no_answer("13800000001", 1_000);
        let queued =
            after_answer(&conn, &settings, DEST, &answer, &targets(), &open, 5_000).expect("ok");
        assert_eq!(
            queued,
            [Queued {
                alert_id: "a1".into(),
                phone: "13800000001".into(),
                call: 2,
                due: 91_000,
            }],
            "due spacing after the result's time"
        );
        // The provider reports the same result twice: still one redial waiting.
        let again =
            after_answer(&conn, &settings, DEST, &answer, &targets(), &open, 5_500).expect("ok");
        assert!(again.is_empty());
        // While the redial waits, the page behind it goes first; once due, it is the head.
        crate::journal::queue_notifications(&conn, 1, &[DEST.to_string()], 6_000).expect("row");
        let head = outbox::head(&conn, DEST, 6_000)
            .expect("read")
            .expect("a row");
        assert!(head.phones.is_none(), "a waiting redial holds nothing back");
        conn.execute(
            "UPDATE outbox SET delivered_ms = 7000 WHERE phones IS NULL",
            [],
        )
        .expect("delivered");
        let head = outbox::head(&conn, DEST, 7_000)
            .expect("read")
            .expect("a row");
        assert_eq!(head.phones, Some(vec!["13800000001".to_string()]));
        outbox::mark_delivered(&conn, head.id, 91_000).expect("placed");
        // Its result: no answer again, a third call; then the attempts are spent.
        let third = after_answer(
            &conn,
            &settings,
            DEST,
            &no_answer("13800000001", 100_000),
            &targets(),
            &open,
            100_000,
        )
        .expect("ok");
        assert_eq!(third[0].call, 3);
        conn.execute("UPDATE outbox SET delivered_ms = 191000", [])
            .expect("placed");
        let fourth = after_answer(
            &conn,
            &settings,
            DEST,
            &no_answer("13800000001", 200_000),
            &targets(),
            &open,
            200_000,
        )
        .expect("ok");
        assert!(fourth.is_empty(), "three calls in all");
        let audit = callout_log::audit(&conn, &settings, "a1", 100).expect("audit");
        let redials: Vec<_> = audit.iter().filter(|e| e.kind == "redial").collect();
        assert_eq!(redials.len(), 2);
        assert_eq!(redials[0].person.as_deref(), Some("wang"));
        assert_eq!(redials[0].phone.as_deref(), Some("13800000001"));
    }

    #[test]
    fn no_redial_for_an_acknowledged_alert_an_answered_call_or_another_channel() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        let answer = no_answer("13800000002", 1_000);
        let none = |answer: &Answer, open: &[Alert], dest: &str| {
            after_answer(&conn, &settings, dest, answer, &targets(), open, 5_000)
                .expect("ok")
                .is_empty()
        };
        assert!(none(&answer, &[alert(true)], DEST), "acknowledged");
        assert!(none(&answer, &[], DEST), "over");
        let answered = Answer {
            outcome: CallOutcome::Answered,
            ..answer.clone()
        };
        assert!(none(&answered, &[alert(false)], DEST), "reached");
        assert!(
            none(&answer, &[alert(false)], "east/other"),
            "no such channel"
        );
        // An inline member (no person id) is redialled by phone.
        assert!(!none(&answer, &[alert(false)], DEST));
    }

    #[test]
    fn an_acknowledgement_cancels_the_waiting_redials() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        after_answer(
            &conn,
            &settings,
            DEST,
            &no_answer("13800000001", 1_000),
            &targets(),
            &[alert(false)],
            1_000,
        )
        .expect("ok");
        assert_eq!(cancel(&conn, "a1", 2_000).expect("cancelled"), 1);
        assert!(
            outbox::head(&conn, DEST, 100_000).expect("read").is_none(),
            "nothing left to call"
        );
        let audit = callout_log::audit(&conn, &settings, "a1", 100).expect("audit");
        assert!(
            audit
                .iter()
                .any(|e| e.kind == "redial_cancelled" && e.person.as_deref() == Some("wang")),
            "{audit:#?}"
        );
    }
}
