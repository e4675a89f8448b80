//! The MQTT source: a persistent session (fixed client id, clean session off) with manual
//! acknowledgements, so a QoS 1 message is acknowledged only after the journal has committed
//! it, in the order messages arrived.
//!
//! Every ConnAck triggers a fresh subscription, whatever the broker says about the session:
//! a broker restarted without its state would otherwise leave hydrowatch connected and deaf
//! (the "silent stall" most MQTT ingest setups suffer from).
//!
//! Acknowledgements are written by the same task that polls the event loop, never across a
//! reconnect: a broker that lost its state reuses packet ids, and an acknowledgement meant
//! for the old connection would acknowledge an uncommitted message on the new one. Between
//! two polls (the connection only changes inside `poll`) every committed message is
//! acknowledged at once, straight onto the connection; while a poll waits, the oldest one
//! goes through rumqttc's request channel to wake it (rumqttc drops queued acknowledgements
//! when a connection fails). rumqttc itself sends one request per round of its event loop
//! while a round reads up to ten messages: through its channel alone, acknowledgements fell
//! ever further behind a flood, and a crash then made the broker deliver again everything
//! committed since the flood began (docs/reliability.md, finding 7).
//!
//! The client accepts packets up to four times `limits.max_payload_bytes`, so that a message
//! too large to decode arrives and is dead-lettered (`too_large`) instead of breaking the
//! connection; a broker that lets even larger packets through is met by raising the limit
//! for the next connection, because otherwise its redelivery of that one message would stop
//! ingestion for good.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Packet, QoS, StateError};
use tokio::sync::mpsc;

use super::decode::{decode, station_from_topic, Cause, DecodeContext, Rejection};
use super::sl651::Bridge;
use crate::config::Settings;
use crate::model::{now_millis, AckToken, RefusedPayload};
use crate::writer::{Command, Decoded, Inbound, Receipt};

/// Decoded messages held while the writer's queue is full, beyond which the event loop waits
/// for the writer after all. As large as the writer's own queue: enough to keep the
/// keep-alive answered through a commit or two, without holding a broker's whole in-flight
/// window of decoded messages in memory (measured: that doubled peak RSS on 100-reading
/// messages; docs/performance.md).
const MAX_WAITING: usize = crate::writer::QUEUE;

/// MQTT's own ceiling on a packet (the remaining length field's maximum).
const MQTT_MAX_PACKET: usize = 268_435_455;

/// Connection state that readiness and metrics report.
#[derive(Default)]
pub struct SourceStatus {
    pub connected: AtomicBool,
    /// The broker acknowledged the subscriptions on the current connection.
    pub subscribed: AtomicBool,
    pub connection: AtomicU64,
}

/// Polls the event loop forever: decodes each publish, hands it to the journal writer,
/// acknowledges what the writer committed, and resubscribes on every connection.
pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    settings: Arc<Settings>,
    writer: mpsc::Sender<Command>,
    status: Arc<SourceStatus>,
    mut committed: mpsc::UnboundedReceiver<Vec<AckToken>>,
) {
    let stations: HashSet<String> = settings.stations.iter().map(|s| s.id.clone()).collect();
    let mut topics = settings.mqtt.topics.clone();
    if let Some(ack) = &settings.mqtt.ack_topic {
        topics.push(format!("{}/+", ack.trim_end_matches('/')));
    }
    let bridge = Bridge::new(&settings);
    if let Some(b) = &bridge {
        topics.extend(b.filters.iter().cloned());
    }
    let command = |publish, connection| {
        inbound(
            &settings,
            &stations,
            &topics,
            bridge.as_ref(),
            publish,
            connection,
        )
    };
    let mut acks = Acknowledgements::default();
    // Decoded messages the writer's queue had no room for yet, in arrival order.
    let mut waiting: VecDeque<Command> = VecDeque::new();
    // The subscription of the current connection, until the client has taken it.
    let mut subscription: Option<Vec<rumqttc::SubscribeFilter>> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        // Between two polls: acknowledge everything committed so far on this connection.
        let written = match subscription {
            None => acks.write(&mut eventloop).await,
            Some(_) => Ok(()), // the subscription goes out first (see below)
        };
        // The poll future is never dropped before it completes (rumqttc's poll is not
        // cancel-safe); committed messages are acknowledged while it waits.
        let event = if let Err(e) = written {
            eventloop.clean(); // as rumqttc does when a poll fails: reconnect on the next
            Err(e)
        } else {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                if let Some(filters) = &subscription {
                    if client.try_subscribe_many(filters.clone()).is_ok() {
                        subscription = None;
                    }
                }
                if subscription.is_none() {
                    acks.wake(&client);
                }
                if waiting.len() >= MAX_WAITING {
                    // Far more than any broker keeps in flight for one client: hold the
                    // event loop until the writer takes some (the keep-alive may lapse).
                    if let Some(command) = waiting.pop_front() {
                        if writer.send(command).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                tokio::select! {
                    event = &mut poll => break event,
                    Some(group) = committed.recv() => acks.add(&status, group),
                    permit = writer.reserve(), if !waiting.is_empty() => match permit {
                        Ok(permit) => {
                            if let Some(command) = waiting.pop_front() {
                                permit.send(command);
                            }
                        }
                        Err(_) => return, // the writer is gone: shutting down
                    },
                }
            }
        };
        match event {
            Ok(Event::Outgoing(
                rumqttc::Outgoing::PubAck(pkid) | rumqttc::Outgoing::PubRec(pkid),
            )) => acks.sent(pkid),
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(200);
                acks.clear();
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
                // Queued by the loop below before any acknowledgement: acknowledgements keep
                // the client's request channel full under a backlog, and a subscription
                // waiting behind them would never go out (and readiness never return).
                subscription = Some(filters);
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
                // A message arriving proves the connection alive, as a PINGRESP would. A
                // broker with a backlog for this client answers a ping only after the
                // messages queued before the answer (Mosquitto 2.0 does), so under a long
                // backlog the PINGRESP comes later than the next keep-alive tick, and rumqttc
                // would drop a working connection ("Last pingreq isn't acked") and the broker
                // deliver again all it had in flight. A silent connection still fails: with
                // nothing arriving, the unanswered ping stays unanswered.
                eventloop.state.await_pingresp = false;
                let connection = status.connection.load(Ordering::SeqCst);
                // Never wait for the writer here: the event loop must keep being polled, or
                // the keep-alive lapses while the journal is busy and the broker redelivers
                // everything in flight on the next connection. What waits is bounded by
                // MAX_WAITING, not by the broker: Mosquitto 2.0 goes past its in-flight
                // window once a client acknowledges (docs/reliability.md, finding 7).
                waiting.push_back(command(publish, connection));
            }
            Ok(_) => {}
            Err(e) => {
                // The rest of the last batch rumqttc read: committed, never acknowledged
                // (their connection is gone; a broker that kept the session delivers them
                // again, and the journal ignores the duplicates).
                let connection = status.connection.load(Ordering::SeqCst);
                for publish in stranded(&mut eventloop) {
                    waiting.push_back(command(publish, connection));
                }
                acks.clear();
                if status.connected.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "lost the MQTT connection; reconnecting");
                } else {
                    tracing::debug!(error = %e, "MQTT connection attempt failed");
                }
                status.subscribed.store(false, Ordering::SeqCst);
                metrics::gauge!("hydrowatch_mqtt_connected").set(0.0);
                if let Some(size) = oversized(&e) {
                    metrics::counter!("hydrowatch_mqtt_oversized_total").increment(1);
                    tracing::error!(
                        packet_bytes = size,
                        limit = eventloop.mqtt_options.max_packet_size(),
                        "the broker delivered a packet larger than hydrowatch accepts: it would redeliver it \
                         forever, so the limit is raised to MQTT's maximum until restart; cap the broker's \
                         packets (Mosquitto: max_packet_size) at four times limits.max_payload_bytes"
                    );
                    eventloop
                        .mqtt_options
                        .set_max_packet_size(MQTT_MAX_PACKET, 1024 * 1024);
                    continue; // reconnect at once: the message is waiting
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// After a connection failed: the messages rumqttc read in the same batch as the last one it
/// returned. They wait in its event buffer, which nothing in rumqttc empties, and would come
/// out after the next ConnAck as if they had arrived on the new connection, where their
/// acknowledgement could name another message. Also drops any acknowledgement that rumqttc
/// keeps for the next connection (it drops PUBACKs itself, but keeps PUBRECs).
fn stranded(eventloop: &mut EventLoop) -> Vec<rumqttc::Publish> {
    eventloop
        .pending
        .retain(|r| !matches!(r, rumqttc::Request::PubAck(_) | rumqttc::Request::PubRec(_)));
    eventloop
        .state
        .events
        .drain(..)
        .filter_map(|event| match event {
            Event::Incoming(Packet::Publish(publish)) => Some(publish),
            _ => None,
        })
        .collect()
}

/// The size of a packet the client refused for its size, if that is what broke the
/// connection.
fn oversized(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size),
        )) => Some(*size),
        _ => None,
    }
}

/// Room the acknowledgement queue keeps when it has drained.
const KEEP_ACK_CAPACITY: usize = 4096;

/// Committed messages waiting to be acknowledged on the connection they arrived on.
#[derive(Default)]
struct Acknowledgements {
    /// Packet id and QoS of each, in the order the messages arrived.
    queue: VecDeque<(u16, QoS)>,
    /// The packet id of the acknowledgement handed to rumqttc's request channel to wake a
    /// waiting poll, until the event loop reports it sent: nothing is written straight onto
    /// the connection meanwhile, so that acknowledgements keep the order of the messages.
    waking: Option<u16>,
}

impl Acknowledgements {
    /// Queues a committed group, keeping only messages of the current connection: the
    /// broker redelivers the others (already committed: the journal ignores the duplicate).
    /// A QoS 0 message needs no acknowledgement.
    fn add(&mut self, status: &SourceStatus, group: Vec<AckToken>) {
        let current = status.connection.load(Ordering::SeqCst);
        if !status.connected.load(Ordering::SeqCst) {
            return;
        }
        self.queue.extend(
            group
                .into_iter()
                .filter(|t| t.connection == current && t.publish.qos != QoS::AtMostOnce)
                .map(|t| (t.publish.pkid, t.publish.qos)),
        );
    }

    /// While a poll waits (on a quiet connection, nothing else would end it): hands the oldest
    /// acknowledgement to rumqttc's request channel, which wakes the poll; the rest follow
    /// once it has gone out.
    fn wake(&mut self, client: &AsyncClient) {
        if self.waking.is_some() {
            return;
        }
        if let Some(&(pkid, qos)) = self.queue.front() {
            let mut publish = rumqttc::Publish::new("", qos, Vec::new());
            publish.pkid = pkid;
            if client.try_ack(&publish).is_ok() {
                self.queue.pop_front();
                self.waking = Some(pkid);
            }
        }
    }

    /// The event loop sent an acknowledgement: the one handed to it, if it was waking it.
    fn sent(&mut self, pkid: u16) {
        if self.waking == Some(pkid) {
            self.waking = None;
        }
    }

    /// Between two polls: writes every queued acknowledgement straight onto the connection,
    /// within the connection's timeout, unless one still waits in rumqttc's channel.
    async fn write(&mut self, eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
        if self.waking.is_some() || self.queue.is_empty() {
            return Ok(());
        }
        let Some(network) = eventloop.network.as_mut() else {
            return Ok(());
        };
        let state = &mut eventloop.state;
        let timeout = Duration::from_secs(eventloop.network_options.connection_timeout());
        let queue = &mut self.queue;
        let written = tokio::time::timeout(timeout, async {
            while let Some((pkid, qos)) = queue.pop_front() {
                let packet = match qos {
                    QoS::AtMostOnce => continue,
                    QoS::AtLeastOnce => Some(Packet::PubAck(rumqttc::PubAck::new(pkid))),
                    // Never delivered on hydrowatch's QoS 1 subscriptions; the client's state
                    // keeps QoS 2's second step.
                    QoS::ExactlyOnce => state.handle_outgoing_packet(rumqttc::Request::PubRec(
                        rumqttc::PubRec::new(pkid),
                    ))?,
                };
                if let Some(packet) = packet {
                    network.write(packet).await?;
                }
            }
            network.flush().await
        })
        .await;
        self.trim();
        match written {
            Ok(result) => result.map_err(ConnectionError::MqttState),
            Err(_) => Err(ConnectionError::FlushTimeout),
        }
    }

    /// After a flood, give back the room the queue grew to instead of keeping its largest
    /// size for good (only when it holds a quarter of its room or less, so that shrinking
    /// stays rare).
    fn trim(&mut self) {
        let room = KEEP_ACK_CAPACITY.max(self.queue.len() * 2);
        if self.queue.capacity() > 2 * room {
            self.queue.shrink_to(room);
        }
    }

    /// The connection changed: what is queued belongs to the old one, and rumqttc dropped
    /// the acknowledgement in its channel (see [`stranded`]).
    fn clear(&mut self) {
        self.queue.clear();
        self.waking = None;
        self.trim();
    }
}

/// Turns one publish into a writer command: readings, a dead letter, an acknowledgement
/// from an app on the ack topic, or an SL 651 frame a DTU bridged.
fn inbound(
    settings: &Settings,
    stations: &HashSet<String>,
    filters: &[String],
    bridge: Option<&Bridge>,
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
                payload: redacted(&publish.payload),
            },
        };
        return Command::Message(Inbound {
            topic,
            received_at: now,
            decoded,
            receipt: Some(Receipt::Mqtt(AckToken::new(connection, publish))),
            frame: None,
        });
    }
    if let Some(bridge) = bridge.filter(|b| b.carries(&topic)) {
        let tolerance = settings.limits.future_tolerance.as_millis() as i64;
        let (decoded, frame) = super::sl651::bridged(bridge, &publish.payload, now, tolerance);
        return Command::Message(Inbound {
            topic,
            received_at: now,
            decoded,
            receipt: Some(Receipt::Mqtt(AckToken::new(connection, publish))),
            frame,
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
            payload: RefusedPayload::of(&publish.payload),
        },
    };
    Command::Message(Inbound {
        topic,
        received_at: now,
        decoded,
        receipt: Some(Receipt::Mqtt(AckToken::new(connection, publish))),
        frame: None,
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
        .is_some_and(|t| t.holds_token(&ack.token));
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

/// What a dead letter keeps of a refused acknowledgement: the token never reaches the
/// journal. The JSON with `token` replaced, or only a note when it is not a JSON object; the
/// length is the original's, the hash the redacted text's (a hash of a token would let
/// anyone who reads dead letters test guesses against it).
fn redacted(payload: &[u8]) -> RefusedPayload {
    let text = match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut object)) => {
            if let Some(token) = object.get_mut("token") {
                *token = serde_json::Value::String("[redacted]".into());
            }
            serde_json::Value::Object(object).to_string()
        }
        _ => "[redacted: an acknowledgement that is not a JSON object]".to_string(),
    };
    RefusedPayload {
        bytes: payload.len(),
        ..RefusedPayload::of(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_acknowledgements_never_keep_the_token() {
        let kept = redacted(br#"{"team": "t", "token": "s3cret-token"}"#);
        let text = String::from_utf8(kept.head).expect("utf-8");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("[redacted]") && text.contains("\"team\":\"t\""));
        let kept = redacted(b"team=t token=s3cret-token");
        assert!(!String::from_utf8_lossy(&kept.head).contains("s3cret"));
        assert_eq!(kept.bytes, 25);
    }

    fn connected(connection: u64) -> SourceStatus {
        let status = SourceStatus::default();
        status.connected.store(true, Ordering::SeqCst);
        status.connection.store(connection, Ordering::SeqCst);
        status
    }

    fn token(connection: u64, pkid: u16, qos: QoS) -> AckToken {
        let mut publish = rumqttc::Publish::new("hydro/S1/data", qos, b"{}".to_vec());
        publish.pkid = pkid;
        AckToken::new(connection, publish)
    }

    #[test]
    fn only_the_current_connections_messages_are_acknowledged() {
        let mut acks = Acknowledgements::default();
        let status = connected(2);
        acks.add(
            &status,
            vec![
                token(1, 7, QoS::AtLeastOnce),
                token(2, 8, QoS::AtLeastOnce),
                token(2, 9, QoS::AtMostOnce),
                token(2, 10, QoS::AtLeastOnce),
            ],
        );
        assert_eq!(
            acks.queue,
            [(8, QoS::AtLeastOnce), (10, QoS::AtLeastOnce)],
            "an older connection's message and a QoS 0 one need none"
        );
        status.connected.store(false, Ordering::SeqCst);
        acks.add(&status, vec![token(2, 11, QoS::AtLeastOnce)]);
        assert_eq!(acks.queue.len(), 2, "nothing is queued while disconnected");
    }

    /// A connected event loop and the broker's end of its socket (a listener that answers
    /// the CONNECT with a CONNACK).
    async fn connected_eventloop() -> (AsyncClient, EventLoop, tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = rumqttc::MqttOptions::new("t", "127.0.0.1", port);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let broker = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut connect = [0_u8; 256];
            let _ = socket.read(&mut connect).await.unwrap();
            socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            socket
        });
        let event = eventloop.poll().await.expect("connected");
        assert!(matches!(event, Event::Incoming(Packet::ConnAck(_))));
        (client, eventloop, broker.await.unwrap())
    }

    #[tokio::test]
    async fn a_waking_acknowledgement_holds_the_others_until_it_is_sent() {
        use tokio::io::AsyncReadExt;
        let (client, mut eventloop, mut broker) = connected_eventloop().await;
        let mut acks = Acknowledgements::default();
        acks.add(
            &connected(1),
            (1..=3).map(|p| token(1, p, QoS::AtLeastOnce)).collect(),
        );
        acks.wake(&client);
        assert_eq!(acks.waking, Some(1), "the oldest goes through the channel");
        acks.wake(&client);
        assert_eq!(acks.queue.len(), 2, "one at a time");
        acks.write(&mut eventloop).await.expect("nothing to write");
        assert_eq!(
            acks.queue,
            [(2, QoS::AtLeastOnce), (3, QoS::AtLeastOnce)],
            "nothing overtakes the acknowledgement in the channel"
        );
        // The event loop sends it and reports it.
        let event = eventloop.poll().await.expect("sent");
        let Event::Outgoing(rumqttc::Outgoing::PubAck(pkid)) = event else {
            panic!("{event:?}");
        };
        acks.sent(pkid + 1);
        assert_eq!(
            acks.waking,
            Some(1),
            "another packet id's report changes nothing"
        );
        acks.sent(pkid);
        assert_eq!(acks.waking, None);
        acks.write(&mut eventloop).await.expect("written");
        assert!(acks.queue.is_empty());
        let mut wire = [0_u8; 12];
        broker.read_exact(&mut wire).await.unwrap();
        assert_eq!(
            wire,
            [0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3],
            "three PUBACKs, in the order of the messages"
        );
        acks.add(&connected(1), vec![token(1, 4, QoS::AtLeastOnce)]);
        acks.wake(&client);
        acks.clear();
        assert!(
            acks.waking.is_none() && acks.queue.is_empty(),
            "a new connection starts clean"
        );
    }

    #[test]
    fn messages_stranded_in_a_failed_connections_batch_are_handed_back() {
        let options = rumqttc::MqttOptions::new("t", "127.0.0.1", 1);
        let (_client, mut eventloop) = AsyncClient::new(options, 10);
        let publish = |pkid| {
            let mut p = rumqttc::Publish::new("hydro/S1/data", QoS::AtLeastOnce, b"{}".to_vec());
            p.pkid = pkid;
            Event::Incoming(Packet::Publish(p))
        };
        eventloop
            .state
            .events
            .extend([publish(2), Event::Incoming(Packet::PingResp), publish(3)]);
        eventloop
            .pending
            .push_back(rumqttc::Request::PubRec(rumqttc::PubRec::new(5)));
        eventloop
            .pending
            .push_back(rumqttc::Request::PingReq(rumqttc::PingReq));
        let back: Vec<u16> = stranded(&mut eventloop).iter().map(|p| p.pkid).collect();
        assert_eq!(back, [2, 3]);
        assert!(eventloop.state.events.is_empty());
        assert_eq!(
            eventloop.pending.len(),
            1,
            "only the acknowledgement is dropped"
        );
    }

    #[test]
    fn a_drained_acknowledgement_queue_gives_its_memory_back() {
        let mut acks = Acknowledgements::default();
        acks.queue
            .extend(std::iter::repeat_n((1, QoS::AtLeastOnce), 140_000));
        let flood = acks.queue.capacity();
        acks.queue.drain(..120_000);
        acks.trim();
        assert!(acks.queue.capacity() < flood, "shrinks as it drains");
        assert!(acks.queue.capacity() >= 20_000, "keeps room for what waits");
        acks.queue.clear();
        acks.trim();
        assert!(
            acks.queue.capacity() <= KEEP_ACK_CAPACITY,
            "{}",
            acks.queue.capacity()
        );
    }
}
