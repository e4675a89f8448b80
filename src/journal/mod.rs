//! The journal: an embedded SQLite database (WAL mode, `synchronous = FULL`) that is the
//! system of record between the broker and everything downstream.
//!
//! Why it exists: a reading is acknowledged to the broker only once it is committed here, and
//! every consumer (InfluxDB forwarder, notification outbox, API) reads from here with its own
//! cursor. A crash at any moment therefore loses nothing that was acknowledged, and replays
//! duplicate nothing, because readings are keyed by (station, observation time).
//!
//! One [`writer`] thread owns the only write-heavy connection and commits each group of
//! messages (readings, dead letters, alert changes, outbox rows) in one transaction; the other
//! components open their own connections for reads and small cursor updates.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::alerts::{Alert, AlertEvent};
use crate::model::{Millis, Quality, Reading};

/// Errors from the journal: the database file cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("journal directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal: stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS readings (
    station       TEXT    NOT NULL,
    time_ms       INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    level_m       REAL,
    rain_mm       REAL,
    rain_period_s INTEGER,
    rain_total_mm REAL,
    flow_m3s      REAL,
    battery_v     REAL,
    quality       TEXT    NOT NULL DEFAULT 'good',
    received_ms   INTEGER NOT NULL,
    PRIMARY KEY (station, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_seq ON readings (seq);

CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- A refused message: at most its first 4 KiB (`payload`), with the whole payload's length
-- and SHA-256. Bounded by retention and by `limits.max_dead_letters` (oldest first).
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    cause       TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    bytes       INTEGER NOT NULL DEFAULT 0,
    sha256      TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id   TEXT PRIMARY KEY,
    station    TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    open       INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    json       TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (station, rule) WHERE open = 1;

CREATE TABLE IF NOT EXISTS alert_events (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT    NOT NULL UNIQUE,
    alert_id   TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    json       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id);

-- destination: `{team}/{channel id}` (notify::outbox). A row ends delivered or failed.
-- phones: a JSON array restricting a voice row to those phones (a redial, notify::redial);
-- NULL calls everyone the event calls.
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    event_seq       INTEGER NOT NULL,
    destination     TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_ms    INTEGER,
    last_error      TEXT,
    failed_ms       INTEGER,
    phones          TEXT
);

-- Which teams were paged for an alert, first and last (wall clock): the durable state of
-- re-notification and escalation timers (notify::escalation).
CREATE TABLE IF NOT EXISTS alert_pages (
    alert_id    TEXT    NOT NULL,
    team        TEXT    NOT NULL,
    paged_ms    INTEGER NOT NULL,
    notified_ms INTEGER NOT NULL,
    PRIMARY KEY (alert_id, team)
) WITHOUT ROWID;

-- 叫应 (notify::callout): each step taken for a team's round of an alert (the round starts
-- when the alert last needed an answer, `since_ms`); `people` is a JSON array of person ids.
CREATE TABLE IF NOT EXISTS callout_steps (
    alert_id TEXT    NOT NULL,
    team     TEXT    NOT NULL,
    since_ms INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    people   TEXT    NOT NULL,
    PRIMARY KEY (alert_id, team, since_ms, step)
) WITHOUT ROWID;

-- The callout audit (notify::callout_log): every page, call result and acknowledgement with
-- its time and person. Deliveries are read from the outbox.
CREATE TABLE IF NOT EXISTS callout_log (
    id       INTEGER PRIMARY KEY,
    alert_id TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    team     TEXT,
    person   TEXT,
    name     TEXT,
    phone    TEXT,
    channel  TEXT,
    event_id TEXT,
    detail   TEXT
);
CREATE INDEX IF NOT EXISTS callout_log_alert ON callout_log (alert_id, id);
CREATE INDEX IF NOT EXISTS callout_log_person ON callout_log (person, id);

-- Voice calls the provider accepted, by the id it gave the call (notify::callout_log): a call
-- report that names only that id (Tencent's `callid`) answers for this event and alert.
-- Pruned with the callout audit.
CREATE TABLE IF NOT EXISTS voice_calls (
    call_id     TEXT    PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    alert_id    TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    placed_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS voice_calls_alert ON voice_calls (alert_id, placed_ms);

-- Every SL 651 frame as received (all packets of a multi-packet report), for audit: the
-- readings keep only the mapped elements. Deleted after `journal.retention`, like readings.
CREATE TABLE IF NOT EXISTS sl651_frames (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    frame       BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS station_state (
    station      TEXT PRIMARY KEY,
    last_seen_ms INTEGER,
    snapshot     TEXT
);

-- The daily bulletin as written after its hydrological day ended (`day`: the local date the
-- day starts on), and the chat channels it goes to: one row per (day, `{team}/{channel id}`),
-- so a restart never sends a day's bulletin twice. A send row ends delivered or failed.
CREATE TABLE IF NOT EXISTS bulletins (
    day        TEXT PRIMARY KEY,
    written_ms INTEGER NOT NULL,
    json       TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS bulletin_sends (
    day             TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_ms    INTEGER,
    failed_ms       INTEGER,
    last_error      TEXT,
    PRIMARY KEY (day, destination)
) WITHOUT ROWID;
"#;

/// Opens (creating if needed) the journal at `path` with the pragmas every connection needs.
pub fn open(path: &Path) -> Result<Connection, JournalError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Directory {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(|source| JournalError::Open {
        path: path.display().to_string(),
        source,
    })?;
    // FULL makes every commit durable in WAL mode: "acknowledged" means "survives power loss".
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;",
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(SCHEMA)?;
    migrate(&conn)?;
    Ok(conn)
}

/// The size of the journal's write-ahead log (`<path>-wal`), 0 when there is none.
pub fn wal_bytes(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Copies the write-ahead log into the database and truncates it to zero bytes. SQLite
/// restarts its log only when a checkpoint has caught up while no reader is in the log,
/// which a journal written and read without pause may never see: its log would grow for
/// ever. This waits at most `wait` for the readers in the log to finish, holding the write
/// lock so that no new frames arrive (so the wait is short: a long reader, a backup, must not
/// stall ingestion). False when readers outlasted the wait; the next call tries again. The
/// connection's own busy timeout is put back afterwards.
pub fn truncate_wal(conn: &Connection, wait: Duration) -> Result<bool, JournalError> {
    conn.busy_timeout(wait)?;
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(result? == 0)
}

/// How long every connection waits for another one's lock (`PRAGMA busy_timeout`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Brings a journal written by an earlier version up to this schema.
fn migrate(conn: &Connection) -> Result<(), JournalError> {
    let has_bytes: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name = 'bytes'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    migrate_outbox(conn)?;
    if !has_bytes {
        let tx = immediate(conn)?;
        tx.execute_batch(
            "ALTER TABLE dead_letters ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE dead_letters ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
             UPDATE dead_letters SET bytes = length(payload), payload = substr(payload, 1, 4096);",
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A
/// deferred transaction that reads first cannot upgrade to a writer once another connection
/// has committed meanwhile, and SQLite's busy timeout does not help it then: every
/// transaction in hydrowatch that writes starts here, so contention only ever waits.
pub fn immediate(conn: &Connection) -> Result<rusqlite::Transaction<'_>, JournalError> {
    Ok(rusqlite::Transaction::new_unchecked(
        conn,
        rusqlite::TransactionBehavior::Immediate,
    )?)
}

/// Whether an error is the kind that goes away by itself (disk full, I/O error, lock held
/// too long): the writer pauses and retries those, and isolates anything else.
pub fn is_transient(e: &JournalError) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        JournalError::Sql(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            DiskFull
                | SystemIoFailure
                | DatabaseBusy
                | DatabaseLocked
                | CannotOpen
                | ReadOnly
                | OutOfMemory
                | FileLockingProtocolFailed
        ),
        JournalError::Open { .. } | JournalError::Directory { .. } => true,
        _ => false,
    }
}

/// Journals from before failed notifications existed: add `failed_ms` (and `phones`, from
/// before redials), and index the pending rows as rows neither delivered nor failed (the old
/// index counted failed rows as pending).
fn migrate_outbox(conn: &Connection) -> Result<(), JournalError> {
    let has_failed: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'failed_ms'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_failed {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN failed_ms INTEGER;")?;
    }
    // Journals from before redials: every row called everyone its event calls.
    let has_phones: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'phones'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_phones {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN phones TEXT;")?;
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS outbox_pending;
         CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (destination, id)
           WHERE delivered_ms IS NULL AND failed_ms IS NULL;
         CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (id) WHERE failed_ms IS NOT NULL;",
    )?;
    Ok(())
}

/// Same station and time: merge elements (a station may send level and rain separately) and
/// take a new seq so the merged row is forwarded again.
pub const INSERT_READING: &str =
    "INSERT INTO readings (station, time_ms, seq, level_m, rain_mm, rain_period_s, rain_total_mm,
                           flow_m3s, battery_v, quality, received_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (station, time_ms) DO UPDATE SET
       seq = excluded.seq,
       level_m = coalesce(excluded.level_m, level_m),
       rain_mm = coalesce(excluded.rain_mm, rain_mm),
       rain_period_s = coalesce(excluded.rain_period_s, rain_period_s),
       rain_total_mm = coalesce(excluded.rain_total_mm, rain_total_mm),
       flow_m3s = coalesce(excluded.flow_m3s, flow_m3s),
       battery_v = coalesce(excluded.battery_v, battery_v),
       quality = CASE WHEN excluded.level_m IS NOT NULL THEN excluded.quality ELSE quality END,
       received_ms = excluded.received_ms";

/// Stores one reading with the statement prepared once per commit group.
pub fn insert_reading(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &Reading,
    seq: i64,
    received: Millis,
) -> Result<(), JournalError> {
    stmt.execute(params![
        r.station,
        r.time,
        seq,
        r.level_m,
        r.rain_mm,
        r.rain_period_s,
        r.rain_total_mm,
        r.flow_m3s,
        r.battery_v,
        r.quality.as_str(),
        received
    ])?;
    Ok(())
}

/// A stored reading with its forwarding sequence number.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: i64,
    pub reading: Reading,
}

const READING_COLUMNS: &str = "station, time_ms, level_m, rain_mm, rain_period_s, rain_total_mm, flow_m3s, battery_v, quality";

fn reading_from_row(row: &rusqlite::Row, offset: usize) -> rusqlite::Result<Reading> {
    let quality: String = row.get(offset + 8)?;
    Ok(Reading {
        station: row.get(offset)?,
        time: row.get(offset + 1)?,
        level_m: row.get(offset + 2)?,
        rain_mm: row.get(offset + 3)?,
        rain_period_s: row.get(offset + 4)?,
        rain_total_mm: row.get(offset + 5)?,
        flow_m3s: row.get(offset + 6)?,
        battery_v: row.get(offset + 7)?,
        quality: Quality::parse(&quality),
    })
}

/// Readings after `cursor` in commit order, at most `limit`.
pub fn readings_after(
    conn: &Connection,
    cursor: i64,
    limit: usize,
) -> Result<Vec<Stored>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, {READING_COLUMNS} FROM readings WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![cursor, limit as i64], |row| {
        Ok(Stored {
            seq: row.get(0)?,
            reading: reading_from_row(row, 1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A station's readings in `[from, to]`, oldest first, at most `limit`.
pub fn series(
    conn: &Connection,
    station: &str,
    from: Millis,
    to: Millis,
    limit: usize,
) -> Result<Vec<Reading>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {READING_COLUMNS} FROM readings WHERE station = ?1 AND time_ms >= ?2 AND time_ms <= ?3
         ORDER BY time_ms LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![station, from, to, limit as i64], |row| {
        reading_from_row(row, 0)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The observation time of a station's latest reading.
pub fn latest_time(conn: &Connection, station: &str) -> Result<Option<Millis>, JournalError> {
    Ok(conn.query_row(
        "SELECT max(time_ms) FROM readings WHERE station = ?1",
        [station],
        |r| r.get(0),
    )?)
}

/// A station's latest good water level: (observation time, level). Suspect levels (out of
/// range, impossible jumps) are stored but are not the river's level: everything that shows
/// a stage shows the rules' judgement.
pub fn latest_level(
    conn: &Connection,
    station: &str,
) -> Result<Option<(Millis, f64)>, JournalError> {
    Ok(conn
        .query_row(
            "SELECT time_ms, level_m FROM readings
             WHERE station = ?1 AND level_m IS NOT NULL AND quality = 'good'
             ORDER BY time_ms DESC LIMIT 1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Each station's readings from `span_ms` before its own latest reading onward, in time order:
/// what the rules need to rebuild their windows at start (observation time, so a replayed
/// flood from years ago rebuilds too). Each reading goes to `f` as it is read, so a start with
/// millions of readings to rebuild does not hold them all in memory at once.
pub fn for_each_recent(
    conn: &Connection,
    span_ms: i64,
    mut f: impl FnMut(Reading),
) -> Result<(), JournalError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {READING_COLUMNS} FROM readings r
         JOIN (SELECT station AS s, max(time_ms) AS latest FROM readings GROUP BY station) m
           ON r.station = m.s
         WHERE r.time_ms >= m.latest - ?1
         ORDER BY r.station, r.time_ms"
    ))?;
    let mut rows = stmt.query(params![span_ms])?;
    while let Some(row) = rows.next()? {
        f(reading_from_row(row, 0)?);
    }
    Ok(())
}

/// The position a consumer has reached.
pub fn cursor(conn: &Connection, name: &str) -> Result<i64, JournalError> {
    Ok(conn
        .query_row("SELECT seq FROM cursors WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// Moves a consumer's cursor forward (never back).
pub fn set_cursor(conn: &Connection, name: &str, seq: i64) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO cursors (name, seq) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
        params![name, seq],
    )?;
    Ok(())
}

/// The highest reading sequence number committed so far.
pub fn max_reading_seq(conn: &Connection) -> Result<i64, JournalError> {
    Ok(
        conn.query_row("SELECT coalesce(max(seq), 0) FROM readings", [], |r| {
            r.get(0)
        })?,
    )
}

/// Alert events after `cursor`, oldest first.
pub fn events_after(
    conn: &Connection,
    cursor: i64,
    limit: usize,
) -> Result<Vec<(i64, AlertEvent)>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, json FROM alert_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![cursor, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, json) = row?;
        out.push((seq, serde_json::from_str(&json)?));
    }
    Ok(out)
}

/// The alerts still open, as the rules engine left them.
pub fn open_alerts(conn: &Connection) -> Result<Vec<Alert>, JournalError> {
    alerts_where(conn, "open = 1", 100_000)
}

/// Open alerts, or all alerts newest first, at most `limit`.
pub fn alerts(
    conn: &Connection,
    only_open: bool,
    limit: usize,
) -> Result<Vec<Alert>, JournalError> {
    alerts_where(conn, if only_open { "open = 1" } else { "1 = 1" }, limit)
}

fn alerts_where(conn: &Connection, filter: &str, limit: usize) -> Result<Vec<Alert>, JournalError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT json FROM alerts WHERE {filter} ORDER BY updated_ms DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}

/// One alert by id, open or closed.
pub fn alert(conn: &Connection, alert_id: &str) -> Result<Option<Alert>, JournalError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT json FROM alerts WHERE alert_id = ?1",
            [alert_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match json {
        Some(j) => Some(serde_json::from_str(&j)?),
        None => None,
    })
}

/// An alert's events, oldest first.
pub fn alert_events(conn: &Connection, alert_id: &str) -> Result<Vec<AlertEvent>, JournalError> {
    let mut stmt =
        conn.prepare_cached("SELECT json FROM alert_events WHERE alert_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([alert_id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}

/// The teams paged for an alert so far, first paged first.
pub fn alert_pages(conn: &Connection, alert_id: &str) -> Result<Vec<Paged>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT team, paged_ms, notified_ms FROM alert_pages WHERE alert_id = ?1
         ORDER BY paged_ms, team",
    )?;
    let rows = stmt.query_map([alert_id], |r| {
        Ok(Paged {
            team: r.get(0)?,
            paged_ms: r.get(1)?,
            notified_ms: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A team paged for an alert, as recorded in the journal's `alert_pages`.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged {
    pub team: String,
    /// Wall clock of the first page of this team for this alert.
    pub paged_ms: Millis,
    /// Wall clock of the latest event sent to this team for this alert.
    pub notified_ms: Millis,
}

/// The teams paged for an alert so far, first paged first.
pub fn paged_teams(conn: &Connection, alert_id: &str) -> Result<Vec<String>, JournalError> {
    Ok(alert_pages(conn, alert_id)?
        .into_iter()
        .map(|p| p.team)
        .collect())
}

/// Stores an alert event and the alert as it now is; returns the event's sequence number
/// (what outbox rows point at).
///
/// Only the journal writer calls this, through the path that forgets the alert's timer record
/// (`writer::TimerRecords`): a write from anywhere else would leave the tick deciding
/// reminders, escalations and 叫应 steps from a stale record.
pub fn record_event(
    conn: &Connection,
    event: &AlertEvent,
    alert: &Alert,
    open: bool,
    now: Millis,
) -> Result<i64, JournalError> {
    conn.prepare_cached(
        "INSERT INTO alert_events (event_id, alert_id, created_ms, json) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event.event_id,
        event.alert_id,
        now,
        serde_json::to_string(event)?
    ])?;
    let event_seq = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO alerts (alert_id, station, rule, open, updated_ms, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (alert_id) DO UPDATE SET open = excluded.open, updated_ms = excluded.updated_ms,
           json = excluded.json",
    )?
    .execute(params![
        alert.alert_id,
        alert.station,
        alert.rule,
        open as i64,
        now,
        serde_json::to_string(alert)?
    ])?;
    Ok(event_seq)
}

/// One outbox row per destination for the event `event_seq`, due now; returns how many.
pub fn queue_notifications(
    conn: &Connection,
    event_seq: i64,
    destinations: &[String],
    now: Millis,
) -> Result<usize, JournalError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (event_seq, destination, next_attempt_ms) VALUES (?1, ?2, ?3)",
    )?;
    for destination in destinations {
        insert.execute(params![event_seq, destination, now])?;
    }
    Ok(destinations.len())
}

/// Records that `team` was sent an event of `alert_id` at `now` (first page kept).
///
/// Only the journal writer calls this, through the path that forgets the alert's timer record
/// (`writer::TimerRecords`): a write from anywhere else would leave the tick deciding
/// reminders, escalations and 叫应 steps from a stale record.
pub fn record_page(
    conn: &Connection,
    alert_id: &str,
    team: &str,
    now: Millis,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO alert_pages (alert_id, team, paged_ms, notified_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (alert_id, team) DO UPDATE SET notified_ms = excluded.notified_ms",
    )?
    .execute(params![alert_id, team, now])?;
    Ok(())
}

/// A dead-lettered message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub received_ms: Millis,
    pub topic: String,
    /// The payload's first 4 KiB, as text (invalid UTF-8 replaced).
    pub payload: String,
    /// The whole payload's length in bytes.
    pub payload_bytes: i64,
    /// The whole payload's SHA-256, hex.
    pub payload_sha256: String,
    /// True when `payload` is only the beginning of the message.
    pub truncated: bool,
    pub cause: String,
    pub detail: String,
}

/// Stores a refused message, then deletes the oldest ones beyond `keep`.
pub fn insert_dead_letter(
    conn: &Connection,
    received_ms: Millis,
    topic: &str,
    payload: &crate::model::RefusedPayload,
    cause: &str,
    detail: &str,
) -> Result<i64, JournalError> {
    conn.prepare_cached(
        "INSERT INTO dead_letters (received_ms, topic, payload, cause, detail, bytes, sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        received_ms,
        topic,
        payload.head,
        cause,
        detail,
        payload.bytes as i64,
        payload.sha256
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Keeps a received SL 651 frame for audit; `source` is `sl651/{address}` or the MQTT topic
/// it was bridged on.
pub fn insert_frame(
    conn: &Connection,
    received_ms: Millis,
    source: &str,
    frame: &[u8],
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO sl651_frames (received_ms, source, frame) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![received_ms, source, frame])?;
    Ok(())
}

/// Keeps the newest `keep` dead letters: ids only grow, so everything at or below
/// `newest - keep` goes.
pub fn cap_dead_letters(
    conn: &Connection,
    newest: i64,
    keep: usize,
) -> Result<usize, JournalError> {
    Ok(conn
        .prepare_cached("DELETE FROM dead_letters WHERE id <= ?1")?
        .execute([newest - keep as i64])?)
}

/// Dead letters newest first, at most `limit`, older than id `before` when given (paging).
pub fn dead_letters(
    conn: &Connection,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<DeadLetter>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_ms, topic, payload, cause, detail, bytes, sha256 FROM dead_letters
         WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64, before.unwrap_or(i64::MAX)], |r| {
        let payload: Vec<u8> = r.get(3)?;
        let bytes: i64 = r.get(6)?;
        Ok(DeadLetter {
            id: r.get(0)?,
            received_ms: r.get(1)?,
            topic: r.get(2)?,
            truncated: (payload.len() as i64) < bytes,
            payload: String::from_utf8_lossy(&payload).into_owned(),
            payload_bytes: bytes,
            payload_sha256: r.get(7)?,
            cause: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A station's id, wall-clock time of its last message, and the rules' snapshot (JSON).
pub type StationState = (String, Option<Millis>, Option<String>);

/// Per-station wall-clock time of the last message and the rules' snapshot.
pub fn station_states(conn: &Connection) -> Result<Vec<StationState>, JournalError> {
    let mut stmt = conn.prepare("SELECT station, last_seen_ms, snapshot FROM station_state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every station's readings in `(from, to]`, by station then time: what a bulletin is
/// computed from.
pub fn readings_between(
    conn: &Connection,
    from: Millis,
    to: Millis,
) -> Result<Vec<Reading>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {READING_COLUMNS} FROM readings WHERE time_ms > ?1 AND time_ms <= ?2
         ORDER BY station, time_ms"
    ))?;
    let rows = stmt.query_map(params![from, to], |row| reading_from_row(row, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A station's last good level in `(from, to]`: (observation time, level).
pub fn last_good_level_between(
    conn: &Connection,
    station: &str,
    from: Millis,
    to: Millis,
) -> Result<Option<(Millis, f64)>, JournalError> {
    Ok(conn
        .prepare_cached(
            "SELECT time_ms, level_m FROM readings
             WHERE station = ?1 AND time_ms > ?2 AND time_ms <= ?3 AND level_m IS NOT NULL
               AND quality = 'good'
             ORDER BY time_ms DESC LIMIT 1",
        )?
        .query_row(params![station, from, to], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A station's rain amounts above zero in `(from, to]`, oldest first (dry-spell days).
pub fn rain_between(
    conn: &Connection,
    station: &str,
    from: Millis,
    to: Millis,
) -> Result<Vec<(Millis, f64)>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT time_ms, rain_mm FROM readings
         WHERE station = ?1 AND time_ms > ?2 AND time_ms <= ?3 AND rain_mm > 0 ORDER BY time_ms",
    )?;
    let rows = stmt.query_map(params![station, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The observation time of a station's earliest reading after `from`.
pub fn earliest_time_after(
    conn: &Connection,
    station: &str,
    from: Millis,
) -> Result<Option<Millis>, JournalError> {
    Ok(conn.query_row(
        "SELECT min(time_ms) FROM readings WHERE station = ?1 AND time_ms > ?2",
        params![station, from],
        |r| r.get(0),
    )?)
}

/// Alert events observed in `(from, to]`, oldest first, with the alerts they belong to.
pub fn events_observed_between(
    conn: &Connection,
    from: Millis,
    to: Millis,
) -> Result<(Vec<AlertEvent>, Vec<Alert>), JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT json FROM alert_events
         WHERE json_extract(json, '$.observed_at') > ?1 AND json_extract(json, '$.observed_at') <= ?2
         ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![from, to], |r| r.get::<_, String>(0))?;
    let mut events: Vec<AlertEvent> = Vec::new();
    for json in rows {
        events.push(serde_json::from_str(&json?)?);
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e.alert_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut alerts = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(a) = alert(conn, id)? {
            alerts.push(a);
        }
    }
    Ok((events, alerts))
}

/// A stored bulletin's JSON.
pub fn bulletin(conn: &Connection, day: &str) -> Result<Option<String>, JournalError> {
    Ok(conn
        .query_row("SELECT json FROM bulletins WHERE day = ?1", [day], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The latest day whose bulletin is stored (`YYYY-MM-DD`).
pub fn latest_bulletin_day(conn: &Connection) -> Result<Option<String>, JournalError> {
    Ok(conn
        .query_row("SELECT max(day) FROM bulletins", [], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Whether the bulletin of `day` is stored.
pub fn has_bulletin(conn: &Connection, day: &str) -> Result<bool, JournalError> {
    Ok(conn
        .query_row("SELECT 1 FROM bulletins WHERE day = ?1", [day], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Stores a day's bulletin and one send row per destination, in one transaction; a day
/// already stored is left as it was (returns false).
pub fn store_bulletin(
    conn: &Connection,
    day: &str,
    json: &str,
    destinations: &[String],
    now: Millis,
) -> Result<bool, JournalError> {
    let tx = immediate(conn)?;
    let added = tx.execute(
        "INSERT OR IGNORE INTO bulletins (day, written_ms, json) VALUES (?1, ?2, ?3)",
        params![day, now, json],
    )?;
    if added > 0 {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO bulletin_sends (day, destination, next_attempt_ms)
             VALUES (?1, ?2, ?3)",
        )?;
        for d in destinations {
            insert.execute(params![day, d, now])?;
        }
    }
    tx.commit()?;
    Ok(added > 0)
}

/// A bulletin waiting to reach a chat channel.
#[derive(Debug, Clone)]
pub struct BulletinSend {
    pub day: String,
    pub destination: String,
    pub attempts: i64,
    pub next_attempt_ms: Millis,
    /// When the bulletin was written: `give_up_after` counts from here.
    pub written_ms: Millis,
}

/// Send rows neither delivered nor failed, oldest day first.
pub fn pending_bulletin_sends(conn: &Connection) -> Result<Vec<BulletinSend>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.day, s.destination, s.attempts, s.next_attempt_ms, b.written_ms
         FROM bulletin_sends s JOIN bulletins b ON b.day = s.day
         WHERE s.delivered_ms IS NULL AND s.failed_ms IS NULL ORDER BY s.day, s.destination",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(BulletinSend {
            day: r.get(0)?,
            destination: r.get(1)?,
            attempts: r.get(2)?,
            next_attempt_ms: r.get(3)?,
            written_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How a send attempt ended: delivered, another try at a time, or failed for good.
pub fn record_bulletin_send(
    conn: &Connection,
    day: &str,
    destination: &str,
    attempts: i64,
    outcome: BulletinSendOutcome<'_>,
) -> Result<(), JournalError> {
    let (sql, time, error) = match outcome {
        BulletinSendOutcome::Delivered(at) => (
            "UPDATE bulletin_sends SET attempts = ?3, delivered_ms = ?4, last_error = ?5
             WHERE day = ?1 AND destination = ?2",
            at,
            None,
        ),
        BulletinSendOutcome::Retry(at, e) => (
            "UPDATE bulletin_sends SET attempts = ?3, next_attempt_ms = ?4, last_error = ?5
             WHERE day = ?1 AND destination = ?2",
            at,
            Some(e),
        ),
        BulletinSendOutcome::Failed(at, e) => (
            "UPDATE bulletin_sends SET attempts = ?3, failed_ms = ?4, last_error = ?5
             WHERE day = ?1 AND destination = ?2",
            at,
            Some(e),
        ),
    };
    let tx = immediate(conn)?;
    tx.execute(sql, params![day, destination, attempts, time, error])?;
    tx.commit()?;
    Ok(())
}

/// See [`record_bulletin_send`].
#[derive(Debug, Clone, Copy)]
pub enum BulletinSendOutcome<'a> {
    Delivered(Millis),
    Retry(Millis, &'a str),
    Failed(Millis, &'a str),
}

/// Rows one retention statement deletes at most: each chunk is its own short write
/// transaction, so the journal writer never waits long behind retention.
const PRUNE_CHUNK: i64 = 2000;

/// What retention deleted.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    pub readings: usize,
    pub dead_letters: usize,
    pub notifications: usize,
    /// SL 651 frames kept for audit.
    pub frames: usize,
    /// 叫应 audit lines and steps of closed alerts, and answers that were for no alert.
    pub callouts: usize,
    /// Daily bulletins (with their send rows), kept [`BULLETIN_KEEP_MS`] at least.
    pub bulletins: usize,
}

/// Daily bulletins are kept at least this long (a year and a month: the same day last year
/// stays comparable), however short the readings' retention.
pub const BULLETIN_KEEP_MS: Millis = 400 * 86_400_000;

/// Deletes readings received before `before_ms` that every consumer has passed (retention
/// never deletes a reading that has not been forwarded), dead letters received before it,
/// delivered or failed notifications, audit copies of SL 651 frames, and the callout audit
/// and steps of alerts no longer open older than it, in small chunks.
pub fn prune(
    conn: &Connection,
    now_ms: Millis,
    before_ms: Millis,
    forwarded_seq: Option<i64>,
) -> Result<Pruned, JournalError> {
    let until_seq = forwarded_seq.unwrap_or(i64::MAX);
    Ok(Pruned {
        readings: in_chunks(|| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM readings WHERE (station, time_ms) IN (
                       SELECT station, time_ms FROM readings
                       WHERE seq <= ?2 AND received_ms < ?1 ORDER BY seq LIMIT ?3)",
                )?
                .execute(params![before_ms, until_seq, PRUNE_CHUNK])?)
        })?,
        dead_letters: in_chunks(|| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM dead_letters WHERE id IN (
                       SELECT id FROM dead_letters WHERE received_ms < ?1 ORDER BY id LIMIT ?2)",
                )?
                .execute(params![before_ms, PRUNE_CHUNK])?)
        })?,
        notifications: in_chunks(|| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM outbox WHERE id IN (
                       SELECT id FROM outbox WHERE coalesce(delivered_ms, failed_ms) < ?1
                       ORDER BY id LIMIT ?2)",
                )?
                .execute(params![before_ms, PRUNE_CHUNK])?)
        })?,
        frames: in_chunks(|| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM sl651_frames WHERE id IN (
                       SELECT id FROM sl651_frames WHERE received_ms < ?1 ORDER BY id LIMIT ?2)",
                )?
                .execute(params![before_ms, PRUNE_CHUNK])?)
        })?,
        // An open alert keeps its whole audit, however long it stays open.
        callouts: in_chunks(|| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM callout_log WHERE id IN (
                       SELECT c.id FROM callout_log c LEFT JOIN alerts a ON a.alert_id = c.alert_id
                       WHERE c.at_ms < ?1 AND coalesce(a.open, 0) = 0 ORDER BY c.id LIMIT ?2)",
                )?
                .execute(params![before_ms, PRUNE_CHUNK])?)
        })? + conn
            .prepare_cached(
                "DELETE FROM callout_steps WHERE at_ms < ?1
                   AND alert_id NOT IN (SELECT alert_id FROM alerts WHERE open = 1)",
            )?
            .execute([before_ms])?
            + in_chunks(|| {
                Ok(conn
                    .prepare_cached(
                        "DELETE FROM voice_calls WHERE call_id IN (
                           SELECT v.call_id FROM voice_calls v
                           LEFT JOIN alerts a ON a.alert_id = v.alert_id
                           WHERE v.placed_ms < ?1 AND coalesce(a.open, 0) = 0 LIMIT ?2)",
                    )?
                    .execute(params![before_ms, PRUNE_CHUNK])?)
            })?,
        bulletins: {
            let cutoff = before_ms.min(now_ms - BULLETIN_KEEP_MS);
            conn.prepare_cached(
                "DELETE FROM bulletin_sends WHERE day IN (SELECT day FROM bulletins WHERE written_ms < ?1)",
            )?
            .execute([cutoff])?;
            conn.prepare_cached("DELETE FROM bulletins WHERE written_ms < ?1")?
                .execute([cutoff])?
        },
    })
}

/// Runs one chunked delete until it deletes nothing more; returns the total.
fn in_chunks(
    mut chunk: impl FnMut() -> Result<usize, JournalError>,
) -> Result<usize, JournalError> {
    let mut total = 0;
    loop {
        let n = chunk()?;
        total += n;
        if n < PRUNE_CHUNK as usize {
            return Ok(total);
        }
    }
}

/// For unit tests elsewhere: a fresh journal in a temporary directory, holding event
/// `e1` (sequence 1) of `alert`, a firing event as the writer would store it.
#[cfg(test)]
pub fn with_one_event(alert: &crate::alerts::Alert) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let conn = open(&dir.path().join("j.db")).expect("journal");
    conn.execute(
        "INSERT INTO alert_events (seq, event_id, alert_id, created_ms, json)
         VALUES (1, 'e1', ?1, 0, ?2)",
        params![
            alert.alert_id,
            serde_json::json!({
                "event_id": "e1", "alert_id": alert.alert_id, "state": "firing",
                "station": alert.station, "rule": alert.rule, "stage": alert.stage,
                "stage_index": alert.stage_index, "value": alert.value,
                "threshold": alert.threshold, "observed_at": 0, "created_at": 0, "late": false,
                "message": format!("{} {:.2} m", alert.station, alert.value)
            })
            .to_string()
        ],
    )
    .expect("event");
    (dir, conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(
        conn: &Connection,
        station: &str,
        time: Millis,
        seq: i64,
        received: Millis,
        level: Option<f64>,
        rain: Option<f64>,
    ) {
        let mut r = Reading::empty(station, time);
        r.level_m = level;
        r.rain_mm = rain;
        let tx = conn.unchecked_transaction().unwrap();
        let mut stmt = tx.prepare_cached(INSERT_READING).unwrap();
        insert_reading(&mut stmt, &r, seq, received).unwrap();
        drop(stmt);
        tx.commit().unwrap();
    }

    #[test]
    fn a_second_message_for_the_same_station_and_time_merges_and_is_forwarded_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("j.db")).unwrap();
        insert(&conn, "s", 1000, 1, 0, Some(1.5), None);
        insert(&conn, "s", 1000, 2, 0, None, Some(0.5));
        let rows = readings_after(&conn, 0, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].seq, 2);
        assert_eq!(rows[0].reading.level_m, Some(1.5));
        assert_eq!(rows[0].reading.rain_mm, Some(0.5));
        assert!(readings_after(&conn, 2, 10).unwrap().is_empty());
    }

    #[test]
    fn retention_never_deletes_what_was_not_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("j.db")).unwrap();
        insert(&conn, "s", 1000, 1, 10, Some(1.0), None);
        insert(&conn, "s", 2000, 2, 10, Some(2.0), None);
        insert(&conn, "s", 3000, 3, 99, Some(3.0), None);
        // Old enough: the first two. Forwarded: only the first.
        assert_eq!(prune(&conn, i64::MAX, 50, Some(1)).unwrap().readings, 1);
        let left: Vec<i64> = readings_after(&conn, 0, 10)
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(left, [2, 3]);
        // Without InfluxDB there is no cursor to respect.
        assert_eq!(prune(&conn, i64::MAX, 50, None).unwrap().readings, 1);
    }

    #[test]
    fn retention_deletes_old_audit_frames_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("j.db")).unwrap();
        let old = PRUNE_CHUNK as usize + 5;
        for i in 0..old {
            insert_frame(&conn, i as i64, "sl651/0062304000", &[0x7E, 0x7E]).unwrap();
        }
        insert_frame(&conn, 1_000_000, "sl651/0062304000", &[0x7E, 0x7E]).unwrap();
        assert_eq!(prune(&conn, i64::MAX, 500_000, None).unwrap().frames, old);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM sl651_frames", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
    }

    #[test]
    fn retention_keeps_the_callout_audit_of_open_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("j.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO alerts VALUES ('open', 's', 'stage', 1, 0, '{}');
             INSERT INTO alerts VALUES ('closed', 's', 'stage', 0, 0, '{}');
             INSERT INTO callout_log (alert_id, at_ms, kind) VALUES ('open', 10, 'page');
             INSERT INTO callout_log (alert_id, at_ms, kind) VALUES ('closed', 10, 'page');
             INSERT INTO callout_log (alert_id, at_ms, kind) VALUES ('', 10, 'call_result');
             INSERT INTO callout_log (alert_id, at_ms, kind) VALUES ('closed', 99, 'page');
             INSERT INTO callout_steps VALUES ('open', 'east', 0, 1, 10, '[]');
             INSERT INTO callout_steps VALUES ('closed', 'east', 0, 1, 10, '[]');",
        )
        .unwrap();
        assert_eq!(prune(&conn, i64::MAX, 50, None).unwrap().callouts, 3);
        let left: Vec<(String, i64)> = conn
            .prepare("SELECT alert_id, at_ms FROM callout_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, [("open".to_string(), 10), ("closed".to_string(), 99)]);
        let steps: i64 = conn
            .query_row("SELECT count(*) FROM callout_steps", [], |r| r.get(0))
            .unwrap();
        assert_eq!(steps, 1);
    }

    #[test]
    fn an_outbox_from_before_redials_gains_its_phones_column() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("old.db");
        {
            let old = Connection::open(&path).expect("old journal");
            old.execute_batch(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,
                   destination TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                   next_attempt_ms INTEGER NOT NULL, delivered_ms INTEGER, last_error TEXT);
                 INSERT INTO outbox (event_seq, destination, next_attempt_ms) VALUES (1, 'east/hook', 0);",
            )
            .expect("old schema");
        }
        let conn = open(&path).expect("migrated");
        let phones: Option<String> = conn
            .query_row("SELECT phones FROM outbox WHERE id = 1", [], |r| r.get(0))
            .expect("the column exists");
        assert_eq!(phones, None, "an old row calls everyone its event calls");
    }

    #[test]
    fn cursors_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("j.db")).unwrap();
        set_cursor(&conn, "c", 5).unwrap();
        set_cursor(&conn, "c", 3).unwrap();
        assert_eq!(cursor(&conn, "c").unwrap(), 5);
    }
}
