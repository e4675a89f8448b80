//! The MQTT source: a persistent session (fixed client id, clean session off) with manual
//! acknowledgements, so a QoS 1 message is acknowledged only after the journal has committed
//! it, in the order messages arrived.
//!
//! Every ConnAck triggers a fresh subscription, whatever the broker says about the session:
//! a broker restarted without its state would otherwise leave hydrowatch connected and deaf
//! (the "silent stall" most MQTT ingest setups suffer from).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use super::decode::{decode, station_from_topic, Cause, DecodeContext, Rejection};
use crate::config::Settings;
use crate::journal::writer::{Command, Decoded, Inbound};
use crate::model::now_millis;

/// A committed message to acknowledge, tagged with the connection it arrived on: an
/// acknowledgement must never reach a later connection, where the same packet id may name
/// a different, uncommitted message.
pub struct AckToken {
    pub connection: u64,
    pub publish: rumqttc::Publish,
}

impl AckToken {
    /// Keeps only what an acknowledgement needs (packet id and QoS): the payload shares the
    /// network read buffer, and holding it until the commit would pin that whole buffer.
    pub fn new(connection: u64, mut publish: rumqttc::Publish) -> AckToken {
        publish.payload = Default::default();
        AckToken {
            connection,
            publish,
        }
    }
}

/// Connection state that readiness and metrics report.
#[derive(Default)]
pub struct SourceStatus {
    pub connected: AtomicBool,
    /// The broker acknowledged the subscriptions on the current connection.
    pub subscribed: AtomicBool,
    pub connection: AtomicU64,
}

/// Errors setting up the MQTT client.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("mqtt.ca_file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
}

/// Builds the client and its event loop from the settings.
pub fn client(settings: &Settings) -> Result<(AsyncClient, EventLoop), SourceError> {
    let m = &settings.mqtt;
    let mut options = MqttOptions::new(&m.client_id, &m.host, m.port);
    options
        .set_keep_alive(m.keep_alive.max(Duration::from_secs(5)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(settings.limits.max_payload_bytes + 4096, 1024 * 1024)
        .set_inflight(100);
    if let Some(user) = &m.username {
        options.set_credentials(user, m.password.clone().unwrap_or_default());
    }
    if m.tls {
        let ca = match &m.ca_file {
            Some(path) => std::fs::read(path).map_err(|source| SourceError::CaFile {
                path: path.display().to_string(),
                source,
            })?,
            None => Vec::new(),
        };
        let transport = if ca.is_empty() {
            Transport::tls_with_default_config()
        } else {
            Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            })
        };
        options.set_transport(transport);
    }
    Ok(AsyncClient::new(options, 1024))
}

/// Polls the event loop forever: decodes each publish, hands it to the journal writer, and
/// resubscribes on every connection.
pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    settings: Arc<Settings>,
    writer: mpsc::Sender<Command>,
    status: Arc<SourceStatus>,
) {
    let stations: HashSet<String> = settings.stations.iter().map(|s| s.id.clone()).collect();
    let mut topics = settings.mqtt.topics.clone();
    if let Some(ack) = &settings.mqtt.ack_topic {
        topics.push(format!("{}/+", ack.trim_end_matches('/')));
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(200);
                status.connection.fetch_add(1, Ordering::SeqCst);
                status.connected.store(true, Ordering::SeqCst);
                status.subscribed.store(false, Ordering::SeqCst);
                metrics::gauge!("hydrowatch_mqtt_connected").set(1.0);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker; subscribing"
                );
                let filters: Vec<_> = topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
                    .collect();
                // Subscribing awaits the request channel, which only this loop drains: do it
                // from another task.
                let c = client.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.subscribe_many(filters).await {
                        tracing::error!(error = %e, "cannot queue the subscription");
                    }
                });
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a subscription: check the topic ACLs");
                } else {
                    status.subscribed.store(true, Ordering::SeqCst);
                    tracing::info!(topics = ?topics, "subscribed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let connection = status.connection.load(Ordering::SeqCst);
                let command = inbound(&settings, &stations, &topics, publish, connection);
                if writer.send(command).await.is_err() {
                    return; // the writer is gone: shutting down
                }
            }
            Ok(_) => {}
            Err(e) => {
                if status.connected.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "lost the MQTT connection; reconnecting");
                } else {
                    tracing::debug!(error = %e, "MQTT connection attempt failed");
                }
                status.subscribed.store(false, Ordering::SeqCst);
                metrics::gauge!("hydrowatch_mqtt_connected").set(0.0);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Turns one publish into a writer command: readings, a dead letter, or an acknowledgement
/// from an app on the ack topic.
fn inbound(
    settings: &Settings,
    stations: &HashSet<String>,
    filters: &[String],
    mut publish: rumqttc::Publish,
    connection: u64,
) -> Command {
    let now = now_millis();
    metrics::counter!("hydrowatch_messages_received_total").increment(1);
    let topic = std::mem::take(&mut publish.topic);
    let ack_request = settings
        .mqtt
        .ack_topic
        .as_deref()
        .and_then(|prefix| topic.strip_prefix(prefix.trim_end_matches('/')))
        .and_then(|rest| rest.strip_prefix('/'));
    if let Some(alert_id) = ack_request {
        let decoded = match mqtt_acknowledgement(settings, alert_id, &publish.payload) {
            Ok(d) => d,
            Err(rejection) => Decoded::Rejected {
                rejection,
                payload: publish.payload.to_vec(),
            },
        };
        return Command::Message(Inbound {
            topic,
            received_at: now,
            decoded,
            publish: Some(AckToken::new(connection, publish)),
        });
    }
    let cx = DecodeContext {
        stations,
        time_zone: &settings.rules.time_zone,
        max_payload_bytes: settings.limits.max_payload_bytes,
        max_readings: settings.limits.max_readings_per_message,
        future_tolerance_ms: settings.limits.future_tolerance.as_millis() as i64,
        now,
    };
    let decoded = match decode(station_from_topic(&topic, filters), &publish.payload, &cx) {
        Ok(readings) => {
            metrics::counter!("hydrowatch_readings_received_total")
                .increment(readings.len() as u64);
            Decoded::Readings(readings)
        }
        Err(rejection) => Decoded::Rejected {
            rejection,
            payload: publish.payload.to_vec(),
        },
    };
    Command::Message(Inbound {
        topic,
        received_at: now,
        decoded,
        publish: Some(AckToken::new(connection, publish)),
    })
}

/// `{ack_topic}/{alert_id}` with `{"team": "...", "token": "..."}`: checked like the HTTP
/// route. A bad request is dead-lettered like any bad message.
fn mqtt_acknowledgement(
    settings: &Settings,
    alert_id: &str,
    payload: &[u8],
) -> Result<Decoded, Rejection> {
    #[derive(serde::Deserialize)]
    struct Ack {
        team: String,
        token: String,
    }
    let ack: Ack = serde_json::from_slice(payload).map_err(|e| Rejection {
        cause: Cause::BadShape,
        detail: format!("acknowledgement must be {{\"team\": ..., \"token\": ...}}: {e}"),
    })?;
    let authorized = settings
        .team(&ack.team)
        .is_some_and(|t| t.token.as_deref() == Some(ack.token.as_str()));
    if !authorized {
        return Err(Rejection {
            cause: Cause::Unauthorized,
            detail: format!("wrong token for team `{}`", ack.team),
        });
    }
    Ok(Decoded::Acknowledge {
        alert_id: alert_id.to_string(),
        team: ack.team,
    })
}

/// Sends acknowledgements for committed messages, in order, skipping those that arrived on
/// an earlier connection (the broker redelivers them; they are already committed, and the
/// journal ignores the duplicate).
pub async fn acknowledge(
    client: AsyncClient,
    status: Arc<SourceStatus>,
    mut committed: mpsc::UnboundedReceiver<Vec<AckToken>>,
) {
    while let Some(group) = committed.recv().await {
        let current = status.connection.load(Ordering::SeqCst);
        for token in group {
            if token.connection != current {
                continue;
            }
            if client.ack(&token.publish).await.is_err() {
                return;
            }
        }
    }
}
