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
            Some(reference) => event_seq(tx, reference, alert_id)?,
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
