//! The InfluxDB sink: drains the journal into InfluxDB in batches, from a cursor kept in the
//! journal, so that an outage of hours drains completely when the database returns.
//!
//! Delivery is at least once, and harmless when repeated: a point's identity in InfluxDB is
//! its series and timestamp, so a batch sent again after a crash overwrites itself.

pub mod line_protocol;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::alerts::AlertEvent;
use crate::config::{InfluxApi, InfluxSettings, Settings};
use crate::journal::{self, JournalError, Stored};

const READINGS_CURSOR: &str = "influxdb.readings";
const EVENTS_CURSOR: &str = "influxdb.events";

/// Why a write failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Network trouble, 5xx, auth or a missing database: wait and retry the same batch.
    #[error("InfluxDB unavailable: {0}")]
    Retry(String),
    /// 400: InfluxDB refuses these points (e.g. a field type conflict); retrying cannot help.
    #[error("InfluxDB rejected the batch: {0}")]
    Rejected(String),
}

/// Speaks one of InfluxDB's write APIs.
pub enum InfluxWriter {
    /// `/write?db=` with optional basic auth or token.
    V1 {
        http: reqwest::Client,
        url: String,
        settings: InfluxSettings,
    },
    /// `/api/v2/write` through the influxdb2 crate (which sets no timeout of its own: the
    /// write is bounded by `timeout` here).
    V2 {
        client: influxdb2::Client,
        org: String,
        bucket: String,
        timeout: Duration,
    },
}

impl InfluxWriter {
    /// A writer for the configured API.
    pub fn new(settings: &InfluxSettings, http: reqwest::Client) -> InfluxWriter {
        let base = settings.url.as_str().trim_end_matches('/').to_string();
        match &settings.api {
            InfluxApi::V1 {
                database,
                retention_policy,
                ..
            } => {
                let mut url = format!(
                    "{base}/write?db={}&precision=ms",
                    urlencoding::encode(database)
                );
                if let Some(rp) = retention_policy {
                    url.push_str(&format!("&rp={}", urlencoding::encode(rp)));
                }
                InfluxWriter::V1 {
                    http,
                    url,
                    settings: settings.clone(),
                }
            }
            InfluxApi::V2 { org, bucket } => InfluxWriter::V2 {
                client: influxdb2::Client::new(
                    base,
                    org.clone(),
                    settings.token.clone().unwrap_or_default(),
                ),
                org: org.clone(),
                bucket: bucket.clone(),
                timeout: settings.timeout,
            },
        }
    }

    /// Writes line protocol with millisecond timestamps.
    pub async fn write(&self, body: String) -> Result<(), WriteError> {
        match self {
            InfluxWriter::V1 {
                http,
                url,
                settings,
            } => {
                let mut req = http.post(url).timeout(settings.timeout).body(body);
                if let InfluxApi::V1 {
                    username: Some(user),
                    password,
                    ..
                } = &settings.api
                {
                    req = req.basic_auth(user, password.as_ref());
                } else if let Some(token) = &settings.token {
                    req = req.header("Authorization", format!("Token {token}"));
                }
                let response = req
                    .send()
                    .await
                    .map_err(|e| WriteError::Retry(e.to_string()))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = response.text().await.unwrap_or_default();
                if status == reqwest::StatusCode::BAD_REQUEST {
                    Err(WriteError::Rejected(format!("{status}: {text}")))
                } else {
                    Err(WriteError::Retry(format!("{status}: {text}")))
                }
            }
            InfluxWriter::V2 {
                client,
                org,
                bucket,
                timeout,
            } => {
                let write = client.write_line_protocol_with_precision(
                    org,
                    bucket,
                    body,
                    influxdb2::api::write::TimestampPrecision::Milliseconds,
                );
                match tokio::time::timeout(*timeout, write).await {
                    Err(_) => Err(WriteError::Retry(format!(
                        "no answer within {}",
                        humantime::format_duration(*timeout)
                    ))),
                    Ok(result) => result.map_err(|e| match &e {
                        influxdb2::RequestError::Http { status, .. } if status.as_u16() == 400 => {
                            WriteError::Rejected(e.to_string())
                        }
                        _ => WriteError::Retry(e.to_string()),
                    }),
                }
            }
        }
    }
}

/// The forwarding task.
pub struct Forwarder {
    settings: Arc<Settings>,
    influx: InfluxSettings,
    /// Used only from blocking tasks, never on an async worker.
    conn: Arc<Mutex<Connection>>,
    writer: InfluxWriter,
    wake: Arc<Notify>,
    /// Station id → index into `settings.stations`, for the per-reading tag lookup.
    stations: HashMap<String, usize>,
}

impl Forwarder {
    /// Opens the forwarder's own journal connection.
    pub fn open(
        settings: Arc<Settings>,
        influx: InfluxSettings,
        http: reqwest::Client,
        wake: Arc<Notify>,
    ) -> Result<Forwarder, JournalError> {
        let conn = journal::open(&settings.journal.path)?;
        let writer = InfluxWriter::new(&influx, http);
        Ok(Forwarder {
            stations: settings.station_index(),
            settings,
            influx,
            conn: Arc::new(Mutex::new(conn)),
            writer,
            wake,
        })
    }

    /// Forwards forever: waits for the writer's signal (or a second), lets a batch fill for
    /// `flush_interval`, then sends full batches until the journal is drained.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.forward_all().await {
                Ok(()) => {
                    backoff = Duration::from_millis(250);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    tokio::time::sleep(self.influx.flush_interval).await;
                }
                Err(e) => {
                    metrics::gauge!("hydrowatch_influxdb_up").set(0.0);
                    tracing::warn!(error = %e, retry_in = ?backoff, "InfluxDB write failed; readings wait in the journal");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Runs a journal call on a blocking thread.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, WriteError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| WriteError::Retry(format!("journal task failed: {e}")))?
        .map_err(|e| WriteError::Retry(e.to_string()))
    }

    /// Sends everything past the cursors. Returns on the first write that must be retried.
    pub async fn forward_all(&mut self) -> Result<(), WriteError> {
        let batch_size = self.influx.batch_size;
        loop {
            let (batch, events, backlog) = self
                .db(move |c| {
                    let cursor = journal::cursor(c, READINGS_CURSOR)?;
                    let batch = journal::readings_after(c, cursor, batch_size)?;
                    let events_cursor = journal::cursor(c, EVENTS_CURSOR)?;
                    let events = journal::events_after(c, events_cursor, batch_size)?;
                    let backlog = journal::max_reading_seq(c)? - cursor;
                    Ok::<(Vec<Stored>, Vec<(i64, AlertEvent)>, i64), _>((batch, events, backlog))
                })
                .await?;
            metrics::gauge!("hydrowatch_journal_backlog").set(backlog as f64);
            if batch.is_empty() && events.is_empty() {
                return Ok(());
            }
            let mut body = String::with_capacity(batch.len() * 80);
            for stored in &batch {
                let station = self
                    .stations
                    .get(&stored.reading.station)
                    .map(|&i| &self.settings.stations[i]);
                line_protocol::encode_reading_of(&stored.reading, station, &mut body);
            }
            // Reminders and escalation pages change no alert: they are not alert_event points.
            for (_, event) in events.iter().filter(|(_, e)| e.page.is_none()) {
                line_protocol::encode_event(event, &mut body);
            }
            match self.writer.write(body).await {
                Ok(()) => {
                    metrics::gauge!("hydrowatch_influxdb_up").set(1.0);
                    metrics::counter!("hydrowatch_readings_forwarded_total")
                        .increment(batch.len() as u64);
                }
                Err(WriteError::Rejected(why)) => {
                    // The points stay in the journal (API, series); InfluxDB will not take them.
                    metrics::counter!("hydrowatch_forward_rejected_total")
                        .increment(batch.len() as u64);
                    tracing::error!(error = %why, readings = batch.len(), "InfluxDB rejected a batch; skipping it");
                }
                Err(e) => return Err(e),
            }
            let last_reading = batch.last().map(|s| s.seq);
            let last_event = events.last().map(|(seq, _)| *seq);
            self.db(move |c| {
                if let Some(seq) = last_reading {
                    journal::set_cursor(c, READINGS_CURSOR, seq)?;
                }
                if let Some(seq) = last_event {
                    journal::set_cursor(c, EVENTS_CURSOR, seq)?;
                }
                Ok(())
            })
            .await?;
        }
    }
}

/// The readings cursor, for retention: nothing past it may be deleted.
pub fn forwarded_seq(conn: &Connection) -> Result<i64, JournalError> {
    journal::cursor(conn, READINGS_CURSOR)
}
