//! The outbox table's reads and state changes: what the dispatcher delivers next, how a row
//! ends (`delivered` or `failed`), and the list the API and the board show.
//!
//! A row is one (event, destination) pair, written by the journal writer in the event's own
//! transaction. Its destination is `{team}/{channel id}`: a channel's stable identity, not its
//! position in the team's list, so editing a team's channels never sends a row elsewhere.
//! A row is pending until it is delivered or failed; both are final.

use rusqlite::{params, Connection, OptionalExtension};

use crate::alerts::AlertEvent;
use crate::config::Settings;
use crate::journal::JournalError;
use crate::model::Millis;

/// The oldest pending row of a destination, with its event.
pub struct Pending {
    pub id: i64,
    pub attempts: i64,
    pub next_attempt_ms: Millis,
    /// When the event (and so the row) was recorded: `give_up_after` counts from here.
    pub created_ms: Millis,
    pub event: AlertEvent,
    /// A redial: the only phones this row calls (`None`: everyone the event calls).
    pub phones: Option<Vec<String>>,
}

/// Destinations with at least one pending row.
pub fn destinations_with_work(conn: &Connection) -> Result<Vec<String>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT destination FROM outbox WHERE delivered_ms IS NULL AND failed_ms IS NULL",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The destination's oldest pending row: per-destination order is kept among pending rows,
/// and a failed row is no longer among them. A redial not yet due (a row restricted to some
/// phones, due after `now`) does not hold back the rows behind it: it is the head only when
/// nothing else is pending.
pub fn head(
    conn: &Connection,
    destination: &str,
    now: Millis,
) -> Result<Option<Pending>, JournalError> {
    let row = conn
        .query_row(
            "SELECT o.id, o.attempts, o.next_attempt_ms, e.created_ms, e.json, o.phones
             FROM outbox o JOIN alert_events e ON e.seq = o.event_seq
             WHERE o.destination = ?1 AND o.delivered_ms IS NULL AND o.failed_ms IS NULL
             ORDER BY (o.phones IS NOT NULL AND o.next_attempt_ms > ?2), o.id LIMIT 1",
            params![destination, now],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .optional()?;
    Ok(match row {
        None => None,
        Some((id, attempts, next_attempt_ms, created_ms, json, phones)) => Some(Pending {
            id,
            attempts,
            next_attempt_ms,
            created_ms,
            event: serde_json::from_str(&json)?,
            phones: phones.map(|p| serde_json::from_str(&p)).transpose()?,
        }),
    })
}

/// Queues one more call to `phone` for the event `event_seq` on `destination`, due at `due`.
pub fn queue_redial(
    conn: &Connection,
    event_seq: i64,
    destination: &str,
    phone: &str,
    due: Millis,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO outbox (event_seq, destination, next_attempt_ms, phones)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event_seq,
        destination,
        due,
        serde_json::to_string(&[phone])?
    ])?;
    Ok(())
}

/// The rows on `destination` for event `event_seq` that call `phone`: how many there are
/// (the event's own row, if any, and its redials), and whether a redial is still pending.
pub fn calls_to(
    conn: &Connection,
    event_seq: i64,
    destination: &str,
    phone: &str,
) -> Result<RowsFor, JournalError> {
    let only = serde_json::to_string(&[phone])?;
    Ok(conn.query_row(
        "SELECT count(*) FILTER (WHERE phones IS NULL),
                count(*) FILTER (WHERE phones = ?3),
                count(*) FILTER (WHERE phones = ?3 AND delivered_ms IS NULL AND failed_ms IS NULL)
         FROM outbox WHERE event_seq = ?1 AND destination = ?2",
        params![event_seq, destination, only],
        |r| {
            Ok(RowsFor {
                pages: r.get(0)?,
                redials: r.get(1)?,
                redials_pending: r.get(2)?,
            })
        },
    )?)
}

/// See [`calls_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsFor {
    /// The event's own rows (everyone it calls).
    pub pages: i64,
    /// Redials to the phone, placed or not.
    pub redials: i64,
    /// Redials to the phone not yet placed.
    pub redials_pending: i64,
}

/// The newest row on `destination` that pages everyone for an event of `alert_id`: its
/// event's seq (the event a call result without the event's id answers).
pub fn latest_page_of(
    conn: &Connection,
    alert_id: &str,
    destination: &str,
) -> Result<Option<i64>, JournalError> {
    Ok(conn
        .query_row(
            "SELECT o.event_seq FROM outbox o JOIN alert_events e ON e.seq = o.event_seq
             WHERE e.alert_id = ?1 AND o.destination = ?2 AND o.phones IS NULL
             ORDER BY o.id DESC LIMIT 1",
            params![alert_id, destination],
            |r| r.get(0),
        )
        .optional()?)
}

/// What a redial that is not placed says when its alert no longer needs it.
pub const NOT_CALLED: &str = "not called";

/// Ends the pending redials of `alert_id` without calling (the alert was acknowledged or is
/// over): delivered, with why in `last_error`. Returns how many.
pub fn cancel_redials(
    conn: &Connection,
    alert_id: &str,
    now: Millis,
    why: &str,
) -> Result<usize, JournalError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET delivered_ms = ?2, last_error = ?3
             WHERE phones IS NOT NULL AND delivered_ms IS NULL AND failed_ms IS NULL
               AND event_seq IN (SELECT seq FROM alert_events WHERE alert_id = ?1)",
        )?
        .execute(params![alert_id, now, format!("{NOT_CALLED}: {why}")])?)
}

/// Ends one redial without calling, like [`cancel_redials`].
pub fn skip(conn: &Connection, id: i64, now: Millis, why: &str) -> Result<(), JournalError> {
    conn.execute(
        "UPDATE outbox SET delivered_ms = ?1, last_error = ?2 WHERE id = ?3",
        params![now, format!("{NOT_CALLED}: {why}"), id],
    )?;
    Ok(())
}

/// The receiver has it.
pub fn mark_delivered(conn: &Connection, id: i64, now: Millis) -> Result<(), JournalError> {
    conn.execute(
        "UPDATE outbox SET delivered_ms = ?1, attempts = attempts + 1 WHERE id = ?2",
        params![now, id],
    )?;
    Ok(())
}

/// Another try at `next_attempt_ms`.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    attempts: i64,
    next_attempt_ms: Millis,
    error: &str,
) -> Result<(), JournalError> {
    conn.execute(
        "UPDATE outbox SET attempts = ?1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?4",
        params![attempts, next_attempt_ms, error, id],
    )?;
    Ok(())
}

/// No more tries: refused for good, given up on, or its channel is gone.
pub fn mark_failed(
    conn: &Connection,
    id: i64,
    attempts: i64,
    now: Millis,
    error: &str,
) -> Result<(), JournalError> {
    conn.execute(
        "UPDATE outbox SET attempts = ?1, failed_ms = ?2, last_error = ?3 WHERE id = ?4",
        params![attempts, now, error, id],
    )?;
    Ok(())
}

/// Rows queued by versions that addressed a channel by its position (`{team}/{index}`) are
/// readdressed to the channel now at that position, which is where they would have gone
/// anyway: the version upgrade is assumed not to coincide with a reordering of channels.
/// Positions past the end keep their old address and fail as no longer configured. Returns
/// how many rows were readdressed.
pub fn adopt_positional_destinations(
    conn: &Connection,
    settings: &Settings,
) -> Result<usize, JournalError> {
    let current: std::collections::HashSet<String> = settings
        .teams
        .iter()
        .flat_map(|t| t.channels.iter().map(|c| super::destination(t, c)))
        .collect();
    let mut moved = 0;
    for team in &settings.teams {
        for (index, channel) in team.channels.iter().enumerate() {
            let old = format!("{}/{index}", team.id);
            if current.contains(&old) {
                continue;
            }
            moved += conn.execute(
                "UPDATE outbox SET destination = ?1
                 WHERE destination = ?2 AND delivered_ms IS NULL AND failed_ms IS NULL",
                params![super::destination(team, channel), old],
            )?;
        }
    }
    Ok(moved)
}

/// Which rows a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Pending,
    Delivered,
    Failed,
    All,
}

impl Filter {
    /// From the API's `state` parameter.
    pub fn parse(text: &str) -> Option<Filter> {
        match text {
            "pending" => Some(Filter::Pending),
            "delivered" => Some(Filter::Delivered),
            "failed" => Some(Filter::Failed),
            "all" => Some(Filter::All),
            _ => None,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Filter::Pending => "o.delivered_ms IS NULL AND o.failed_ms IS NULL",
            Filter::Delivered => "o.delivered_ms IS NOT NULL",
            Filter::Failed => "o.failed_ms IS NOT NULL",
            Filter::All => "1 = 1",
        }
    }
}

/// One outbox row as the API lists it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub destination: String,
    pub event_id: String,
    pub alert_id: String,
    pub station: String,
    /// The event's state (`firing`, `acknowledged`...).
    pub event_state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_ms: Millis,
    pub next_attempt_ms: Millis,
    pub delivered_ms: Option<Millis>,
    pub failed_ms: Option<Millis>,
}

/// Rows matching `filter` with an id below `before` (all when `None`), newest first, at most
/// `limit`: page on by passing the last row's id as the next `before`.
pub fn list(
    conn: &Connection,
    filter: Filter,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Row>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT o.id, o.destination, e.event_id, e.alert_id,
                coalesce(json_extract(e.json, '$.station'), ''),
                coalesce(json_extract(e.json, '$.state'), ''),
                o.attempts, o.last_error, e.created_ms, o.next_attempt_ms, o.delivered_ms,
                o.failed_ms
         FROM outbox o JOIN alert_events e ON e.seq = o.event_seq
         WHERE {} AND o.id < ?1 ORDER BY o.id DESC LIMIT ?2",
        filter.sql()
    ))?;
    let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
        Ok(Row {
            id: r.get(0)?,
            destination: r.get(1)?,
            event_id: r.get(2)?,
            alert_id: r.get(3)?,
            station: r.get(4)?,
            event_state: r.get(5)?,
            attempts: r.get(6)?,
            last_error: r.get(7)?,
            created_ms: r.get(8)?,
            next_attempt_ms: r.get(9)?,
            delivered_ms: r.get(10)?,
            failed_ms: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many rows have failed (for the board's count).
pub fn failed_count(conn: &Connection) -> Result<i64, JournalError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM outbox WHERE failed_ms IS NOT NULL",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[teams]]
id = "east"
  [[teams.channels]]
  id = "duty-hook"
  kind = "webhook"
  url = "http://127.0.0.1:1/a"
  [[teams.channels]]
  kind = "webhook"
  url = "http://127.0.0.1:1/b"
"#;

    fn journal() -> (tempfile::TempDir, Connection) {
        crate::journal::with_one_event(&crate::alerts::Alert {
            stage: "guard".into(),
            stage_index: 0,
            value: 1.5,
            threshold: 1.0,
            ..crate::alerts::Alert::sample("a1", "s1")
        })
    }

    fn queue(conn: &Connection, destination: &str) -> i64 {
        conn.execute(
            "INSERT INTO outbox (event_seq, destination, next_attempt_ms) VALUES (1, ?1, 0)",
            [destination],
        )
        .expect("row");
        conn.last_insert_rowid()
    }

    fn destination_of(conn: &Connection, id: i64) -> String {
        conn.query_row("SELECT destination FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("row")
    }

    #[test]
    fn positional_rows_of_older_versions_go_to_the_channel_at_that_position() {
        let settings = crate::config::load_from_str(CONFIG).expect("valid");
        let (_dir, conn) = journal();
        let first = queue(&conn, "east/0");
        let second = queue(&conn, "east/1");
        let gone = queue(&conn, "east/2");
        let done = queue(&conn, "east/1");
        mark_delivered(&conn, done, 5).expect("delivered");
        assert_eq!(
            adopt_positional_destinations(&conn, &settings).expect("adopted"),
            2
        );
        assert_eq!(destination_of(&conn, first), "east/duty-hook");
        let derived = &settings.teams[0].channels[1].id;
        assert!(derived.starts_with("webhook-127.0.0.1-"), "{derived}");
        assert_eq!(destination_of(&conn, second), format!("east/{derived}"));
        assert_eq!(destination_of(&conn, gone), "east/2", "left to fail");
        assert_eq!(destination_of(&conn, done), "east/1", "history untouched");
        // A second start finds nothing positional left.
        assert_eq!(
            adopt_positional_destinations(&conn, &settings).expect("adopted"),
            0
        );
    }

    #[test]
    fn a_failed_row_leaves_the_head_and_is_listed() {
        let (_dir, conn) = journal();
        let first = queue(&conn, "east/duty-hook");
        let second = queue(&conn, "east/duty-hook");
        mark_failed(&conn, first, 1, 10, "refused: HTTP 400").expect("failed");
        let head = head(&conn, "east/duty-hook", 0)
            .expect("read")
            .expect("a row");
        assert_eq!(head.id, second);
        let failed = list(&conn, Filter::Failed, None, 10).expect("list");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, first);
        assert_eq!(failed[0].station, "s1");
        assert_eq!(failed[0].event_state, "firing");
        assert_eq!(failed[0].failed_ms, Some(10));
        assert_eq!(
            list(&conn, Filter::Pending, None, 10).expect("list").len(),
            1
        );
        assert_eq!(failed_count(&conn).expect("count"), 1);
        // Paging: below the second row's id there is only the first.
        let page = list(&conn, Filter::All, Some(second), 10).expect("list");
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
    }
}
