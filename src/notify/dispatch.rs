//! The outbox dispatcher: delivers each destination's pending rows in order, one at a time,
//! until each is delivered or failed.
//!
//! Delivery is at least once: a crash after the receiver answered but before the row is
//! marked delivered sends that event again, with the same `event_id`, which receivers use to
//! deduplicate. Per-destination order holds among pending rows because a destination's next
//! row is not tried until the one before it is delivered or failed.
//!
//! What an answer means is [`super::outcome`]'s decision: a refusal no retry can cure (HTTP
//! 4xx other than 408/429, a chat robot's misconfiguration code) fails the row at once; a
//! transient failure is retried with exponential backoff until the channel's
//! `give_up_after` has passed since the event, then the row fails. A row whose channel is no
//! longer configured fails too, with that reason. Failed rows are counted
//! (`hydrowatch_notifications_total{result="failed"}`), logged and listed by the API; they
//! never hold back the rows behind them.
//!
//! A channel's `rate_per_minute` delays deliveries beyond the rate (never drops them): the
//! next row waits until the oldest send of the last minute is a minute old.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::callout_log::PlacedCall;
use super::mqtt::Publisher;
use super::outbox::{self, Pending};
use super::outcome::{self, Failure};
use super::{channels, voice, EventPayload};
use crate::alerts::AlertEvent;
use crate::config::{Channel, ChannelKind, Settings, Team};
use crate::journal::{self, JournalError};
use crate::model::{format_time, now_millis, Millis};

/// Longest wait between two attempts at one destination.
const MAX_BACKOFF_MS: i64 = 60_000;

/// Where the dispatcher hands a placed call to be recorded: the journal writer's queue
/// (implemented by `writer`), so that the call's row is written in the writer's group
/// transaction, ahead of every report about the call, which reaches the writer through the
/// same queue later. `record` waits at most `wait` for room in the queue; an error says why
/// the call was not handed over.
pub trait CallRecorder: Send + Sync {
    /// Hands `call` over, waiting at most `wait`.
    fn record(
        &self,
        call: PlacedCall,
        wait: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// What the dispatcher needs.
pub struct Dispatcher {
    pub settings: Arc<Settings>,
    pub conn: Arc<Mutex<Connection>>,
    pub http: reqwest::Client,
    /// The MQTT channel's connection, which waits for the broker's PUBACK.
    pub mqtt: Option<Publisher>,
    pub wake: Arc<Notify>,
    /// Per destination: when its deliveries of the last minute were sent (rate limits).
    sent: Mutex<HashMap<String, VecDeque<Millis>>>,
    /// Per pending voice row: the phones whose call is placed (or refused for good), so a
    /// retry calls only the others. Kept in memory: after a restart a page may ring a
    /// phone twice, never zero times. Cleared when the row is delivered or failed.
    called: Mutex<HashMap<i64, HashSet<String>>>,
    /// The journal writer, which records placed calls: no wait for the journal's write lock
    /// between two phones, and a call's row is in before its keypress is handled.
    recorder: Box<dyn CallRecorder>,
}

/// How one row ends this time round.
enum Verdict {
    Delivered,
    Retry {
        attempts: i64,
        at: Millis,
        error: String,
    },
    Failed {
        attempts: i64,
        error: String,
    },
}

impl Dispatcher {
    /// Opens the dispatcher's own journal connection, and readdresses rows that older versions
    /// queued by channel position (see [`outbox::adopt_positional_destinations`]).
    pub fn open(
        settings: Arc<Settings>,
        http: reqwest::Client,
        mqtt: Option<Publisher>,
        wake: Arc<Notify>,
        recorder: impl CallRecorder + 'static,
    ) -> Result<Dispatcher, JournalError> {
        let conn = journal::open(&settings.journal.path)?;
        let adopted = outbox::adopt_positional_destinations(&conn, &settings)?;
        if adopted > 0 {
            tracing::info!(
                rows = adopted,
                "outbox: pending notifications addressed by channel position now use channel ids"
            );
        }
        Ok(Dispatcher {
            settings,
            conn: Arc::new(Mutex::new(conn)),
            http,
            mqtt,
            wake,
            sent: Mutex::new(HashMap::new()),
            called: Mutex::new(HashMap::new()),
            recorder: Box::new(recorder),
        })
    }

    /// Runs until the task is cancelled: one worker per destination with pending rows.
    pub async fn run(self: Arc<Self>) {
        // One long-lived worker per destination, woken through a watch channel: a worker that
        // found nothing to do sees every later wake-up, even one rung while it was querying.
        let (bell, _) = tokio::sync::watch::channel(0_u64);
        let mut workers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.db(outbox::destinations_with_work).await {
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

    /// Delivers one destination's rows in order, forever.
    async fn drain(self: Arc<Self>, dest: String, mut bell: tokio::sync::watch::Receiver<u64>) {
        loop {
            bell.mark_unchanged();
            let d = dest.clone();
            let pending = match self.db(move |c| outbox::head(c, &d, now_millis())).await {
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
            if pending.phones.is_some() {
                // A redial: wait for it without holding back a page queued meanwhile, and
                // place it only while its alert still waits for an answer.
                let wait = pending.next_attempt_ms - now_millis();
                if wait > 0 {
                    let wait = Duration::from_millis(wait as u64);
                    if let Ok(Err(_)) = tokio::time::timeout(wait, bell.changed()).await {
                        // No bell any more: wait without it rather than spin.
                        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                    }
                    continue;
                }
                match self.redial_unneeded(&pending).await {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        let id = pending.id;
                        tracing::info!(destination = %dest, alert_id = %pending.event.alert_id,
                            why, "redial not placed");
                        if let Err(e) = self
                            .db(move |c| outbox::skip(c, id, now_millis(), why))
                            .await
                        {
                            tracing::error!(error = %e, "outbox: cannot record a skipped redial");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, destination = %dest, "outbox: cannot read");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let verdict = match super::lookup(&self.settings, &dest) {
                Some((team, channel)) => self.attempt(&dest, team, channel, &pending).await,
                // Its channel was removed or renamed: sending it to another would be wrong,
                // waiting for one that will not come would hold the rest back.
                None => Verdict::Failed {
                    attempts: pending.attempts,
                    error: format!(
                        "channel `{dest}` is no longer configured (removed, or its id changed)"
                    ),
                },
            };
            if let Err(e) = self.record(&dest, &pending, verdict).await {
                tracing::error!(error = %e, "outbox: cannot record delivery");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Why a call (a redial, or a page retried) is no longer needed: its alert was
    /// acknowledged or is over.
    async fn redial_unneeded(
        &self,
        pending: &Pending,
    ) -> Result<Option<&'static str>, JournalError> {
        let alert_id = pending.event.alert_id.clone();
        let alert = self.db(move |c| journal::alert(c, &alert_id)).await?;
        Ok(match alert {
            Some(a) if a.acknowledged_by.is_some() => Some("the alert was acknowledged"),
            Some(a) if a.state == crate::alerts::AlertState::Resolved => Some("the alert is over"),
            Some(_) => None,
            None => Some("the alert is gone"),
        })
    }

    /// Waits for the row's turn (backoff, rate limit), tries once, and judges the answer.
    async fn attempt(
        &self,
        dest: &str,
        team: &Team,
        channel: &Channel,
        pending: &Pending,
    ) -> Verdict {
        let wait = pending.next_attempt_ms - now_millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        if let Some(rate) = channel.rate_per_minute {
            let wait = self.rate_wait(dest, rate, now_millis());
            if wait > 0 {
                metrics::counter!("hydrowatch_notifications_delayed_total", "channel" => channel.kind.as_str())
                    .increment(1);
                tracing::info!(destination = %dest, wait_ms = wait, "channel rate limit: delaying the next notification");
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            self.note_sent(dest, now_millis());
        }
        let attempts = pending.attempts + 1;
        let result = if channel.kind == ChannelKind::Voice {
            self.call(team, channel, pending).await
        } else {
            self.deliver(team, channel, &pending.event).await
        };
        let failure = match result {
            Ok(()) => return Verdict::Delivered,
            Err(failure) => failure,
        };
        let now = now_millis();
        let give_up_at = pending
            .created_ms
            .saturating_add(channel.give_up_after.as_millis() as i64);
        match failure {
            Failure::Refused(_) => Verdict::Failed {
                attempts,
                error: failure.message(),
            },
            Failure::Transient(error) if now >= give_up_at => Verdict::Failed {
                attempts,
                error: format!(
                    "gave up after {} of failures: {error}",
                    humantime::format_duration(channel.give_up_after)
                ),
            },
            Failure::Transient(error) => Verdict::Retry {
                attempts,
                at: now + backoff(channel, attempts),
                error,
            },
        }
    }

    /// Stores the verdict, counts it and logs it.
    async fn record(
        &self,
        dest: &str,
        pending: &Pending,
        verdict: Verdict,
    ) -> Result<(), JournalError> {
        let kind = super::lookup(&self.settings, dest).map_or("unknown", |(_, c)| c.kind.as_str());
        let id = pending.id;
        let now = now_millis();
        let event_id = &pending.event.event_id;
        if !matches!(verdict, Verdict::Retry { .. }) {
            self.called
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        match verdict {
            Verdict::Delivered => {
                count(kind, "delivered");
                self.db(move |c| outbox::mark_delivered(c, id, now)).await
            }
            Verdict::Retry {
                attempts,
                at,
                error,
            } => {
                count(kind, "retry");
                tracing::warn!(destination = %dest, %event_id, attempts, error = %error,
                    "notification not delivered; retrying");
                self.db(move |c| outbox::mark_retry(c, id, attempts, at, &error))
                    .await
            }
            Verdict::Failed { attempts, error } => {
                count(kind, "failed");
                tracing::error!(destination = %dest, %event_id, alert_id = %pending.event.alert_id,
                    station = %pending.event.station, attempts, error = %error,
                    "notification failed: not retried; the next ones on this channel go ahead");
                self.db(move |c| outbox::mark_failed(c, id, attempts, now, &error))
                    .await
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

    /// One attempt, bounded by the channel's timeout.
    async fn deliver(
        &self,
        team: &Team,
        channel: &Channel,
        event: &AlertEvent,
    ) -> Result<(), Failure> {
        let mut payload = EventPayload::new(&self.settings, event, Some(&team.id));
        if !matches!(channel.kind, ChannelKind::Webhook | ChannelKind::Mqtt) {
            // People read chat and SMS: in their team's language. Machines get the contract's
            // message, in the station's language.
            payload.message = event.message_in(channel.language).to_string();
        }
        if channel.kind == ChannelKind::Mqtt {
            return self.publish(channel, event, &payload).await;
        }
        let Some(req) = channels::request(channel, &payload, now_millis()) else {
            return Err(Failure::Refused("channel has no URL".into()));
        };
        let (status, body) = self.send(channel, req).await?;
        outcome::http_answer(channel.kind, status, &body)
    }

    /// A voice page: one call per phone of the channel, for events that need an answer
    /// (other events are delivered without a call). Each phone is called once per
    /// event: when some calls fail transiently, the retry calls only those phones. A phone
    /// the API refuses for good (a malformed number) is not retried; the row fails after the
    /// other phones were called, naming it.
    async fn call(&self, team: &Team, channel: &Channel, pending: &Pending) -> Result<(), Failure> {
        let Some(settings) = &channel.voice else {
            return Err(Failure::Refused("voice channel without a provider".into()));
        };
        let mut payload = EventPayload::new(&self.settings, &pending.event, Some(&team.id));
        payload.message = pending.event.message_in(channel.language).to_string();
        if !channels::needs_answer(&payload) {
            // Lifecycle news (resolved, acknowledged...) rings no phone: chat and SMS tell it.
            return Ok(());
        }
        // A page retried (or queued behind others) after its alert was answered or ended
        // rings no phone either.
        match self.redial_unneeded(pending).await {
            Ok(None) => {}
            Ok(Some(why)) => {
                tracing::info!(alert_id = %pending.event.alert_id, why, "voice page not called");
                return Ok(());
            }
            Err(e) => return Err(Failure::Transient(format!("cannot read the alert: {e}"))),
        }
        let done: HashSet<String> = self
            .called
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pending.id)
            .cloned()
            .unwrap_or_default();
        // A redial calls its one phone; a 叫应 step its own people (the members again, or
        // their superiors).
        let phones: Vec<String> = pending
            .phones
            .clone()
            .or_else(|| payload.callout_phones())
            .unwrap_or_else(|| channel.phones.clone())
            .into_iter()
            .filter(|phone| !done.contains(phone))
            .collect();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut transient = Vec::new();
        let mut refused = Vec::new();
        let destination = super::destination(team, channel);
        for call in voice::calls(channel, &phones, &payload, now_millis(), &nonce) {
            let answer = match self.send(channel, call.request).await {
                Ok((_, body)) if outcome::voice_number_limited(settings.provider, &body) => {
                    Err(Failure::Refused(format!(
                        "the provider limits calls to this number for now: {}",
                        String::from_utf8_lossy(&body[..body.len().min(256)])
                    )))
                }
                Ok((status, body)) => outcome::voice_answer(settings.provider, status, &body)
                    .map(|()| voice::call_id(settings.provider, &body)),
                Err(failure) => Err(failure),
            };
            let answer = match answer {
                Ok(Some(call_id)) => {
                    // Ahead of the call's reports, which name only this id: a keypress
                    // must find the alert this call was about.
                    self.record_call(
                        PlacedCall {
                            call_id,
                            event_id: pending.event.event_id.clone(),
                            alert_id: pending.event.alert_id.clone(),
                            phone: call.phone.clone(),
                            destination: destination.clone(),
                            placed_ms: now_millis(),
                        },
                        channel.timeout,
                    )
                    .await;
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(failure) => Err(failure),
            };
            let finished = match answer {
                Ok(()) => true,
                Err(Failure::Refused(e)) => {
                    refused.push(format!("{}: {e}", call.phone));
                    true
                }
                Err(Failure::Transient(e)) => {
                    transient.push(format!("{}: {e}", call.phone));
                    false
                }
            };
            if finished {
                self.called
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(pending.id)
                    .or_default()
                    .insert(call.phone);
            }
        }
        if !transient.is_empty() {
            // The numbers refused meanwhile are not called again: say so now, or nobody would.
            transient.extend(refused.iter().map(|r| format!("refused, not retried: {r}")));
            return Err(Failure::Transient(transient.join("; ")));
        }
        if !refused.is_empty() {
            return Err(Failure::Refused(refused.join("; ")));
        }
        Ok(())
    }

    /// Records a placed call under its provider id: handed to the journal writer, waiting
    /// at most the channel's timeout for room in its queue. A failure is logged, not
    /// retried: the phone is ringing
    /// already, and calling it again would not help; that call's reports are then taken as
    /// for a call not recorded (see `callout_log::answer_targets`).
    async fn record_call(&self, call: PlacedCall, wait: Duration) {
        let (call_id, alert_id) = (call.call_id.clone(), call.alert_id.clone());
        if let Err(error) = self.recorder.record(call, wait).await {
            tracing::error!(%call_id, %alert_id, %error,
                "cannot record a placed call: its keypress will not find its alert by call id");
        }
    }

    /// Sends one request, bounded by the channel's timeout, and reads the whole answer.
    async fn send(
        &self,
        channel: &Channel,
        req: channels::Request,
    ) -> Result<(u16, Vec<u8>), Failure> {
        send(&self.http, channel, req).await
    }

    /// The MQTT channel: the event on `{topic}/{station}`, then the station's state retained
    /// on `{status_topic}/{station}`; delivered when the broker has acknowledged both.
    async fn publish(
        &self,
        channel: &Channel,
        event: &AlertEvent,
        payload: &EventPayload,
    ) -> Result<(), Failure> {
        let Some(publisher) = &self.mqtt else {
            return Err(Failure::Transient(
                "no MQTT connection for the mqtt channel".into(),
            ));
        };
        let prefix = channel.topic.as_deref().unwrap_or("hydro/alerts");
        let body = serde_json::to_vec(payload)
            .map_err(|e| Failure::Refused(format!("event does not serialize: {e}")))?;
        publisher
            .publish(
                format!("{prefix}/{}", event.station),
                false,
                body,
                channel.timeout,
            )
            .await?;
        // The station's current state, retained for apps and panels that connect later.
        let status_prefix = channel.status_topic.as_deref().unwrap_or("hydro/status");
        let status = self
            .station_status(event.station.clone())
            .await
            .map_err(Failure::Transient)?;
        publisher
            .publish(
                format!("{status_prefix}/{}", event.station),
                true,
                status,
                channel.timeout,
            )
            .await
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

/// The wait before the next attempt: the channel's first backoff, doubled per failed
/// attempt, at most a minute.
fn backoff(channel: &Channel, attempts: i64) -> Millis {
    let first = (channel.backoff.as_millis() as i64).max(1);
    first
        .saturating_mul(1 << (attempts - 1).clamp(0, 16))
        .min(MAX_BACKOFF_MS)
}

fn count(kind: &'static str, result: &'static str) {
    metrics::counter!("hydrowatch_notifications_total", "channel" => kind, "result" => result)
        .increment(1);
}

/// Sends one request to a channel, bounded by the channel's timeout, and reads the whole
/// answer: its status and body, for the channel's failure policy to judge.
pub async fn send(
    http: &reqwest::Client,
    channel: &Channel,
    req: channels::Request,
) -> Result<(u16, Vec<u8>), Failure> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|e| Failure::Refused(format!("HTTP method `{}`: {e}", req.method)))?;
    let mut builder = http
        .request(method, &req.url)
        .timeout(channel.timeout)
        .body(req.body);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let response = builder
        .send()
        .await
        .map_err(|e| Failure::Transient(e.to_string()))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(channel.timeout, read_answer(response))
        .await
        .map_err(|_| Failure::Transient("timed out reading the answer".into()))?
        .map_err(|e| Failure::Transient(e.to_string()))?;
    Ok((status, body))
}

/// Most of a receiver's answer hydrowatch reads: a chat robot's or a voice API's answer is a
/// few hundred bytes; what a misbehaving receiver sends beyond this is not read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Reads an answer's body up to [`MAX_ANSWER_BYTES`].
async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_receivers_answer_is_read_up_to_a_bound() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        // A receiver that answers with 8 MiB (and would go on).
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 1024];
            let _ = socket.read(&mut request).await;
            let size = 8 * 1024 * 1024;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
            socket.write_all(head.as_bytes()).await.unwrap();
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..size / block.len() {
                if socket.write_all(&block).await.is_err() {
                    return; // hydrowatch stopped reading
                }
            }
        });
        let response = reqwest::get(&url).await.expect("answer");
        let body = read_answer(response).await.expect("read");
        assert_eq!(body.len(), MAX_ANSWER_BYTES);
        let short = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", short.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = short.accept().await.unwrap();
            let mut request = [0_u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer =
                "HTTP/1.1 200 OK\r\ncontent-length: 27\r\n\r\n{\"errcode\":0,\"errmsg\":\"ok\"}";
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let body = read_answer(reqwest::get(&url).await.expect("answer")).await;
        assert_eq!(body.expect("read"), br#"{"errcode":0,"errmsg":"ok"}"#);
    }

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
}
