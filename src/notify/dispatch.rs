//! The outbox dispatcher: delivers each destination's pending rows in order, one at a time,
//! retrying with exponential backoff until the receiver answers 2xx.
//!
//! Delivery is at least once: a crash after the receiver answered but before the row is
//! marked delivered sends that event again, with the same `event_id`, which receivers use to
//! deduplicate. Per-destination order holds because a destination's next row is not tried
//! until the one before it is delivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;

use super::channels;
use super::EventPayload;
use crate::alerts::AlertEvent;
use crate::config::{ChannelKind, Settings};
use crate::journal::{self, JournalError};
use crate::model::now_millis;

/// Longest wait between two attempts at one destination.
const MAX_BACKOFF_MS: i64 = 60_000;

/// What the dispatcher needs.
pub struct Dispatcher {
    pub settings: Arc<Settings>,
    pub conn: Arc<Mutex<Connection>>,
    pub http: reqwest::Client,
    pub mqtt: Option<rumqttc::AsyncClient>,
    pub wake: Arc<Notify>,
}

/// One pending outbox row with its event.
struct Pending {
    id: i64,
    attempts: i64,
    next_attempt_ms: i64,
    event: AlertEvent,
}

impl Dispatcher {
    /// Opens the dispatcher's own journal connection.
    pub fn open(
        settings: Arc<Settings>,
        http: reqwest::Client,
        mqtt: Option<rumqttc::AsyncClient>,
        wake: Arc<Notify>,
    ) -> Result<Dispatcher, JournalError> {
        let conn = journal::open(&settings.journal.path)?;
        Ok(Dispatcher {
            settings,
            conn: Arc::new(Mutex::new(conn)),
            http,
            mqtt,
            wake,
        })
    }

    /// Runs until the task is cancelled: one worker per destination with pending rows.
    pub async fn run(self: Arc<Self>) {
        let mut workers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            workers.retain(|_, h| !h.is_finished());
            match self.destinations_with_work().await {
                Ok(dests) => {
                    for dest in dests {
                        if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(dest)
                        {
                            let me = self.clone();
                            let d = slot.key().clone();
                            slot.insert(tokio::spawn(async move { me.drain(d).await }));
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbox: cannot read pending notifications"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .unwrap_or_else(|e| panic!("outbox database task failed: {e}"))
    }

    async fn destinations_with_work(&self) -> Result<Vec<String>, JournalError> {
        self.db(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT destination FROM outbox WHERE delivered_ms IS NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn head(&self, dest: String) -> Result<Option<Pending>, JournalError> {
        self.db(move |c| {
            let row = c
                .query_row(
                    "SELECT o.id, o.attempts, o.next_attempt_ms, e.json FROM outbox o
                     JOIN alert_events e ON e.seq = o.event_seq
                     WHERE o.destination = ?1 AND o.delivered_ms IS NULL ORDER BY o.id LIMIT 1",
                    [dest],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            Ok(match row {
                None => None,
                Some((id, attempts, next_attempt_ms, json)) => Some(Pending {
                    id,
                    attempts,
                    next_attempt_ms,
                    event: serde_json::from_str(&json)?,
                }),
            })
        })
        .await
    }

    /// Delivers one destination's rows in order until none is left.
    async fn drain(self: Arc<Self>, dest: String) {
        loop {
            let pending = match self.head(dest.clone()).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, destination = %dest, "outbox: cannot read");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let wait = pending.next_attempt_ms - now_millis();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            let kind = self.channel_kind(&dest);
            let result = self.deliver(&dest, &pending.event).await;
            let now = now_millis();
            let id = pending.id;
            let update = match &result {
                Ok(()) => {
                    metrics::counter!("hydrowatch_notifications_total", "channel" => kind, "result" => "delivered")
                        .increment(1);
                    self.db(move |c| {
                        c.execute("UPDATE outbox SET delivered_ms = ?1, attempts = attempts + 1 WHERE id = ?2", params![now, id])?;
                        Ok(())
                    })
                    .await
                }
                Err(error) => {
                    metrics::counter!("hydrowatch_notifications_total", "channel" => kind, "result" => "retry")
                        .increment(1);
                    let attempts = pending.attempts + 1;
                    let backoff = (500_i64 << attempts.min(10)).min(MAX_BACKOFF_MS);
                    tracing::warn!(destination = %dest, event_id = %pending.event.event_id, attempts, error = %error,
                        "notification not delivered; retrying");
                    let error = error.clone();
                    self.db(move |c| {
                        c.execute(
                            "UPDATE outbox SET attempts = ?1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?4",
                            params![attempts, now + backoff, error, id],
                        )?;
                        Ok(())
                    })
                    .await
                }
            };
            if let Err(e) = update {
                tracing::error!(error = %e, "outbox: cannot record delivery");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    fn channel_kind(&self, dest: &str) -> &'static str {
        self.lookup(dest)
            .map(|(_, c)| c.kind.as_str())
            .unwrap_or("unknown")
    }

    fn lookup(&self, dest: &str) -> Option<(&crate::config::Team, &crate::config::Channel)> {
        let (team, index) = dest.rsplit_once('/')?;
        let team = self.settings.team(team)?;
        let channel = team.channels.get(index.parse::<usize>().ok()?)?;
        Some((team, channel))
    }

    /// One attempt. A destination that is no longer configured counts as delivered (logged),
    /// so a configuration change cannot wedge the outbox.
    async fn deliver(&self, dest: &str, event: &AlertEvent) -> Result<(), String> {
        let Some((team, channel)) = self.lookup(dest) else {
            tracing::warn!(destination = %dest, event_id = %event.event_id,
                "notification destination no longer configured; dropping it");
            return Ok(());
        };
        let payload = EventPayload::new(&self.settings, event, Some(&team.id));
        if channel.kind == ChannelKind::Mqtt {
            let Some(client) = &self.mqtt else {
                return Err("no MQTT connection for the mqtt channel".into());
            };
            let prefix = channel.topic.as_deref().unwrap_or("hydro/alerts");
            let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
            return client
                .publish(
                    format!("{prefix}/{}", event.station),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    body,
                )
                .await
                .map_err(|e| e.to_string());
        }
        let Some(req) = channels::request(channel, &payload, now_millis()) else {
            return Err("channel has no URL".into());
        };
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = self
            .http
            .request(method, &req.url)
            .timeout(Duration::from_secs(10))
            .body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let response = builder.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("receiver answered {}", response.status()))
        }
    }
}
