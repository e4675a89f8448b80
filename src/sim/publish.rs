//! Publishing readings as a gauge would: QoS 1 on `hydro/{station}/data`, one JSON object per
//! message or a batch as a JSON array, and waiting for every PubAck before calling it done.
//!
//! The publisher keeps each message until the broker acknowledges it. rumqttc forgets the
//! messages in flight when a broker comes back without the session (restarted without
//! persistence); the publisher then sends them again, so `finish` never waits for
//! acknowledgements that cannot come. A message may therefore arrive twice, which the gauge
//! contract allows (hydrowatch's journal is keyed by station and time).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use tokio::sync::watch;

use crate::model::{format_time, Reading};

/// How long the first connection may take before the simulator gives up.
const FIRST_CONNECT: Duration = Duration::from_secs(5);
/// How long a broker may stay away mid-run before the simulator gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// Errors publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("`{0}` is not a broker URL like mqtt://127.0.0.1:1883")]
    Url(String),
    #[error("the broker at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the MQTT client stopped")]
    Closed,
}

/// Connection state the event-loop task reports.
#[derive(Debug, Clone, Default)]
struct Progress {
    connected: bool,
    acked: u64,
    failed: Option<String>,
}

/// One message kept until the broker acknowledges it.
type Message = (String, Vec<u8>);

/// The messages not yet acknowledged, by where they are.
#[derive(Default)]
struct Unacknowledged {
    /// Handed to the client, not yet written to the broker (in order).
    queued: VecDeque<Message>,
    /// Written, waiting for the PubAck, by packet id.
    in_flight: HashMap<u16, Message>,
    /// Held by rumqttc when the connection broke: gone if the broker lost the session.
    interrupted: Vec<Message>,
}

impl Unacknowledged {
    fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty() && self.interrupted.is_empty()
    }
}

/// A QoS 1 publisher with its own event-loop task.
pub struct Publisher {
    client: AsyncClient,
    url: String,
    sent: u64,
    unacknowledged: Arc<Mutex<Unacknowledged>>,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Connects to `url` (mqtt:// or mqtts://) and waits for the broker's ConnAck.
    pub async fn connect(url: &str) -> Result<Publisher, PublishError> {
        let parsed = url::Url::parse(url).map_err(|_| PublishError::Url(url.into()))?;
        let tls = match parsed.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            _ => return Err(PublishError::Url(url.into())),
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| PublishError::Url(url.into()))?;
        let port = parsed.port().unwrap_or(if tls { 8883 } else { 1883 });
        let id = format!("hydrowatch-sim-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, host, port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(100)
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        if !parsed.username().is_empty() {
            options.set_credentials(parsed.username(), parsed.password().unwrap_or(""));
        }
        if tls {
            options.set_transport(Transport::tls_with_default_config());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (tx, mut progress) = watch::channel(Progress::default());
        let unacknowledged = Arc::new(Mutex::new(Unacknowledged::default()));
        let book = unacknowledged.clone();
        let resend_client = client.clone();
        let task = tokio::spawn(async move {
            let mut failing_since: Option<tokio::time::Instant> = None;
            let mut ever_connected = false;
            let lock = || book.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if failing_since.is_some() && ever_connected {
                            tracing::info!("reconnected to the broker");
                        }
                        // A broker that accepts the connection but drops it again before
                        // acknowledging anything (it refuses a message) is no progress: the
                        // clock runs on until a PubAck or until nothing is outstanding.
                        if lock().is_empty() {
                            failing_since = None;
                        }
                        ever_connected = true;
                        tx.send_modify(|p| p.connected = true);
                        let lost = std::mem::take(&mut lock().interrupted);
                        if !ack.session_present && !lost.is_empty() {
                            tracing::info!(
                                messages = lost.len(),
                                "the broker lost the session; sending unacknowledged messages again"
                            );
                            let book = book.clone();
                            let client = resend_client.clone();
                            tokio::spawn(async move {
                                for (topic, payload) in lost {
                                    book.lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .queued
                                        .push_back((topic.clone(), payload.clone()));
                                    if client
                                        .publish(topic, QoS::AtLeastOnce, false, payload)
                                        .await
                                        .is_err()
                                    {
                                        return;
                                    }
                                }
                            });
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                        let mut book = lock();
                        if let Some(message) = book.queued.pop_front() {
                            book.in_flight.insert(pkid, message);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        failing_since = None;
                        lock().in_flight.remove(&ack.pkid);
                        tx.send_modify(|p| p.acked += 1);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => {
                        // rumqttc holds what was queued or in flight for the next connection
                        // and drops it if the broker has no session for us: keep it aside.
                        {
                            let mut book = lock();
                            let Unacknowledged {
                                queued,
                                in_flight,
                                interrupted,
                            } = &mut *book;
                            let mut in_flight: Vec<_> = in_flight.drain().collect();
                            in_flight.sort_by_key(|(pkid, _)| *pkid);
                            interrupted.extend(in_flight.into_iter().map(|(_, m)| m));
                            interrupted.extend(queued.drain(..));
                        }
                        // Only a broker that stays away, or takes nothing, ends the run.
                        let first = failing_since.is_none();
                        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                        let limit = if ever_connected {
                            GIVE_UP_AFTER
                        } else {
                            FIRST_CONNECT
                        };
                        if since.elapsed() >= limit {
                            tx.send_modify(|p| p.failed = Some(e.to_string()));
                            return;
                        }
                        if first && ever_connected {
                            tracing::warn!(error = %e, "lost the broker; reconnecting");
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        });
        let unreachable = |reason: String| PublishError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let state = progress
            .wait_for(|p| p.connected || p.failed.is_some())
            .await
            .map_err(|_| PublishError::Closed)?
            .clone();
        if let Some(reason) = state.failed {
            return Err(unreachable(reason));
        }
        Ok(Publisher {
            client,
            url: url.to_string(),
            sent: 0,
            unacknowledged,
            progress,
            task,
        })
    }

    /// Publishes `readings` of one station as one message (an object, or an array when
    /// there are several) with QoS 1. Returns once the message is queued.
    pub async fn publish(
        &mut self,
        station: &str,
        readings: &[Reading],
    ) -> Result<(), PublishError> {
        self.publish_raw(format!("hydro/{station}/data"), payload(readings))
            .await
    }

    /// Publishes any payload on any topic with QoS 1 (replays of raw messages, tests of bad
    /// ones). Returns once the message is queued.
    pub async fn publish_raw(
        &mut self,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<(), PublishError> {
        if let Some(reason) = self.progress.borrow().failed.clone() {
            return Err(PublishError::Unreachable {
                url: self.url.clone(),
                reason,
            });
        }
        self.unacknowledged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queued
            .push_back((topic.clone(), payload.clone()));
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| PublishError::Closed)?;
        self.sent += 1;
        Ok(())
    }

    /// Messages published so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until the broker has acknowledged every message, then disconnects.
    pub async fn finish(mut self) -> Result<u64, PublishError> {
        let sent = self.sent;
        let book = self.unacknowledged.clone();
        let state = self
            .progress
            .wait_for(|p| {
                p.failed.is_some()
                    || (p.acked >= sent
                        && book.lock().unwrap_or_else(|e| e.into_inner()).is_empty())
            })
            .await
            .map_err(|_| PublishError::Closed)?
            .clone();
        if let Some(reason) = state.failed {
            return Err(PublishError::Unreachable {
                url: self.url.clone(),
                reason,
            });
        }
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
        Ok(sent)
    }
}

/// The JSON payload of the gauge contract: one object, or an array of objects.
pub fn payload(readings: &[Reading]) -> Vec<u8> {
    let objects: Vec<serde_json::Value> = readings.iter().map(reading_json).collect();
    let value = match <[serde_json::Value; 1]>::try_from(objects) {
        Ok([one]) => one,
        Err(many) => serde_json::Value::Array(many),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn reading_json(r: &Reading) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert(
        "time".into(),
        format_time(r.time, &jiff::tz::TimeZone::UTC).into(),
    );
    let elements = [
        ("level_m", r.level_m),
        ("rain_mm", r.rain_mm),
        ("rain_total_mm", r.rain_total_mm),
        ("flow_m3s", r.flow_m3s),
        ("battery_v", r.battery_v),
    ];
    for (name, value) in elements {
        if let Some(v) = value {
            object.insert(name.into(), v.into());
        }
    }
    if let Some(p) = r.rain_period_s {
        object.insert("rain_period_s".into(), p.into());
    }
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_is_an_object_several_an_array() {
        let mut a = Reading::empty("g", 1_626_739_500_000);
        a.level_m = Some(59.32);
        let mut b = Reading::empty("g", 1_626_739_800_000);
        b.rain_mm = Some(1.5);
        b.rain_period_s = Some(300);
        let one: serde_json::Value =
            serde_json::from_slice(&payload(std::slice::from_ref(&a))).expect("json");
        assert_eq!(
            one,
            serde_json::json!({"time": "2021-07-20T00:05:00+00:00", "level_m": 59.32})
        );
        let two: serde_json::Value = serde_json::from_slice(&payload(&[a, b])).expect("json");
        assert_eq!(two.as_array().map(|a| a.len()), Some(2));
        assert_eq!(two[1]["rain_period_s"], 300);
        assert!(two[1].get("level_m").is_none());
    }

    #[test]
    fn payloads_decode_under_the_gauge_contract() {
        let mut r = Reading::empty("g", 1_626_739_500_000);
        r.level_m = Some(0.1 + 0.2);
        let stations = std::collections::HashSet::from(["g".to_string()]);
        let cx = crate::ingest::decode::DecodeContext {
            stations: &stations,
            time_zone: &jiff::tz::TimeZone::UTC,
            max_payload_bytes: 1 << 20,
            max_readings: 100,
            future_tolerance_ms: 300_000,
            now: 1_626_739_500_000,
        };
        let decoded =
            crate::ingest::decode::decode(Some("g"), &payload(&[r.clone()]), &cx).expect("decodes");
        assert_eq!(decoded[0].time, r.time);
        assert_eq!(decoded[0].level_m, r.level_m, "levels round-trip exactly");
    }
}
