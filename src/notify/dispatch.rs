//! The outbox dispatcher: delivers each destination's pending rows in order, one at a time,
//! retrying with exponential backoff until the receiver answers 2xx.
//!
//! Delivery is at least once: a crash after the receiver answered but before the row is
//! marked delivered sends that event again, with the same `event_id`, which receivers use to
//! deduplicate. Per-destination order holds because a destination's next row is not tried
//! until the one before it is delivered.
//!
//! A channel's `rate_per_minute` delays deliveries beyond the rate (never drops them): the
//! next row waits until the oldest send of the last minute is a minute old. Chat robots
//! answer HTTP 200 with an error code in the body (WeCom and DingTalk `errcode`, Feishu
//! `code`), for instance when their own rate limit is hit; those count as failures and are
//! retried like a 5xx.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;

use super::channels;
use super::EventPayload;
use crate::alerts::AlertEvent;
use crate::config::{Channel, ChannelKind, Settings};
use crate::journal::{self, JournalError};
use crate::model::{format_time, now_millis, Millis};

/// Longest wait between two attempts at one destination.
const MAX_BACKOFF_MS: i64 = 60_000;

/// What the dispatcher needs.
pub struct Dispatcher {
    pub settings: Arc<Settings>,
    pub conn: Arc<Mutex<Connection>>,
    pub http: reqwest::Client,
    pub mqtt: Option<rumqttc::AsyncClient>,
    pub wake: Arc<Notify>,
    /// Per destination: when its deliveries of the last minute were sent (rate limits).
    sent: Mutex<HashMap<String, VecDeque<Millis>>>,
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
            sent: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until the task is cancelled: one worker per destination with pending rows.
    pub async fn run(self: Arc<Self>) {
        // One long-lived worker per destination, woken through a watch channel: a worker that
        // found nothing to do sees every later wake-up, even one rung while it was querying.
        let (bell, _) = tokio::sync::watch::channel(0_u64);
        let mut workers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.destinations_with_work().await {
                Ok(dests) => {
                    for dest in dests {
                        if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(dest)
                        {
                            let me = self.clone();
                            let d = slot.key().clone();
                            let rx = bell.subscribe();
                            slot.insert(tokio::spawn(async move { me.drain(d, rx).await }));
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbox: cannot read pending notifications"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            bell.send_modify(|n| *n += 1);
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

    /// Delivers one destination's rows in order, forever.
    async fn drain(self: Arc<Self>, dest: String, mut bell: tokio::sync::watch::Receiver<u64>) {
        loop {
            bell.mark_unchanged();
            let pending = match self.head(dest.clone()).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    // Nothing pending: sleep until the writer commits more (or a minute, in
                    // case the dispatcher loop is gone).
                    let _ = tokio::time::timeout(Duration::from_secs(60), bell.changed()).await;
                    continue;
                }
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
            let rate = self.lookup(&dest).and_then(|(_, c)| c.rate_per_minute);
            if let Some(rate) = rate {
                let wait = self.rate_wait(&dest, rate, now_millis());
                if wait > 0 {
                    metrics::counter!("hydrowatch_notifications_delayed_total", "channel" => kind)
                        .increment(1);
                    tracing::info!(destination = %dest, wait_ms = wait, "channel rate limit: delaying the next notification");
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                self.note_sent(&dest, now_millis());
            }
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
                    let first = self
                        .lookup(&dest)
                        .map_or(1000, |(_, c)| c.backoff.as_millis() as i64)
                        .max(1);
                    let backoff = first
                        .saturating_mul(1 << (attempts - 1).clamp(0, 16))
                        .min(MAX_BACKOFF_MS);
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

    /// How long to wait before the next send to `dest` keeps it within `rate` a minute.
    fn rate_wait(&self, dest: &str, rate: u32, now: Millis) -> Millis {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        rate_wait(sent.entry(dest.to_string()).or_default(), rate, now)
    }

    fn note_sent(&self, dest: &str, now: Millis) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let times = sent.entry(dest.to_string()).or_default();
        times.push_back(now);
        while times.len() > 10_000 {
            times.pop_front();
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
        let mut payload = EventPayload::new(&self.settings, event, Some(&team.id));
        if !matches!(channel.kind, ChannelKind::Webhook | ChannelKind::Mqtt) {
            // People read chat and SMS: in their team's language. Machines get the contract's
            // message, in the station's language.
            payload.message = event.message_in(channel.language).to_string();
        }
        if channel.kind == ChannelKind::Mqtt {
            let Some(client) = &self.mqtt else {
                return Err("no MQTT connection for the mqtt channel".into());
            };
            let prefix = channel.topic.as_deref().unwrap_or("hydro/alerts");
            let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
            client
                .publish(
                    format!("{prefix}/{}", event.station),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    body,
                )
                .await
                .map_err(|e| e.to_string())?;
            // The station's current state, retained for apps and panels that connect later.
            let status_prefix = channel.status_topic.as_deref().unwrap_or("hydro/status");
            let status = self.station_status(event.station.clone()).await?;
            return client
                .publish(
                    format!("{status_prefix}/{}", event.station),
                    rumqttc::QoS::AtLeastOnce,
                    true,
                    status,
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
            .timeout(channel.timeout)
            .body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let response = builder.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("receiver answered {status}"));
        }
        let body = tokio::time::timeout(channel.timeout, response.bytes())
            .await
            .map_err(|_| "timed out reading the answer".to_string())?
            .map_err(|e| e.to_string())?;
        robot_answer(channel, &body)
    }

    /// The retained `hydro/status/{station}` payload: latest level, its stage, open alerts.
    async fn station_status(&self, station: String) -> Result<Vec<u8>, String> {
        let settings = self.settings.clone();
        self.db(move |c| {
            let latest = crate::journal::latest_level(c, &station)?;
            let open: Vec<serde_json::Value> = crate::journal::open_alerts(c)?
                .into_iter()
                .filter(|a| a.station == station)
                .map(|a| {
                    serde_json::json!({
                        "alert_id": a.alert_id, "rule": a.rule, "state": a.state,
                        "stage": a.stage, "value": a.value, "threshold": a.threshold,
                        "acknowledged_by": a.acknowledged_by,
                    })
                })
                .collect();
            let tz = &settings.rules.time_zone;
            let st = settings.station(&station);
            let stage = match (st, latest) {
                (Some(st), Some((_, level))) => st
                    .stages
                    .stages
                    .iter()
                    .rev()
                    .find(|s| level >= s.level_m)
                    .map(|s| s.name.clone()),
                _ => None,
            };
            Ok(serde_json::json!({
                "station": station,
                "station_name": st.map(|s| s.name.clone()),
                "river": st.and_then(|s| s.river.clone()),
                "level_m": latest.map(|(_, l)| l),
                "observed_at": latest.map(|(t, _)| format_time(t, tz)),
                "stage": stage,
                "open_alerts": open,
                "updated_at": format_time(now_millis(), tz),
            })
            .to_string()
            .into_bytes())
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// Sliding-window rate limit: given the send times of one destination (oldest first), how
/// long until one more send keeps it at `rate` a minute. Forgets sends older than a minute.
fn rate_wait(times: &mut VecDeque<Millis>, rate: u32, now: Millis) -> Millis {
    while times.front().is_some_and(|t| now - t >= 60_000) {
        times.pop_front();
    }
    let rate = rate.max(1) as usize;
    if times.len() < rate {
        return 0;
    }
    (times[times.len() - rate] + 60_000 - now).max(0)
}

/// Chat robots report failure inside an HTTP 200: WeCom and DingTalk with a non-zero
/// `errcode`, Feishu with a non-zero `code` (or the older `StatusCode`). Other answers,
/// and bodies that are not JSON, count as delivered.
fn robot_answer(channel: &Channel, body: &[u8]) -> Result<(), String> {
    let key = match channel.kind {
        ChannelKind::Wecom | ChannelKind::Dingtalk => ["errcode", "errcode"],
        ChannelKind::Feishu => ["code", "StatusCode"],
        _ => return Ok(()),
    };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    for k in key {
        if let Some(code) = answer.get(k).and_then(|c| c.as_i64()) {
            if code != 0 {
                return Err(format!(
                    "{} robot refused the message: {}",
                    channel.kind.as_str(),
                    String::from_utf8_lossy(body)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_delays_beyond_the_rate_and_never_drops() {
        let mut times = VecDeque::new();
        // 3 a minute: three sends pass at once, the fourth waits for the first to age out.
        for now in [0, 1_000, 2_000] {
            assert_eq!(rate_wait(&mut times, 3, now), 0);
            times.push_back(now);
        }
        assert_eq!(rate_wait(&mut times, 3, 2_500), 57_500);
        assert_eq!(rate_wait(&mut times, 3, 60_000), 0);
        assert_eq!(times.len(), 2, "the send at 0 is forgotten");
    }

    #[test]
    fn robot_error_codes_are_failures() {
        let settings = crate::config::load_from_str(
            r#"
[[teams]]
id = "t"
  [[teams.channels]]
  kind = "dingtalk"
  url = "http://127.0.0.1:1/robot/send"
  [[teams.channels]]
  kind = "feishu"
  url = "http://127.0.0.1:1/hook"
  [[teams.channels]]
  kind = "webhook"
  url = "http://127.0.0.1:1/hook"
"#,
        )
        .expect("valid");
        let c = &settings.teams[0].channels;
        assert!(robot_answer(&c[0], br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(robot_answer(&c[0], br#"{"errcode":130101,"errmsg":"send too fast"}"#).is_err());
        assert!(robot_answer(&c[1], br#"{"code":0,"msg":"success"}"#).is_ok());
        assert!(robot_answer(&c[1], br#"{"code":9499,"msg":"Bad Request"}"#).is_err());
        assert!(robot_answer(&c[1], br#"{"StatusCode":19021,"msg":"sign match fail"}"#).is_err());
        assert!(robot_answer(&c[2], br#"{"errcode":1}"#).is_ok());
    }
}
