//! The MQTT channel's own broker connection, which reports a notification delivered only when
//! the broker has acknowledged it (PUBACK).
//!
//! Why its own connection: rumqttc's `AsyncClient::publish` returns as soon as the message is
//! queued for the event loop, which says nothing about the broker. The gauge source's event
//! loop belongs to ingestion; here a second client (id `{mqtt.client_id}-notify`, clean
//! session) has an event loop this module alone polls, so it can match the packet id of each
//! outgoing publish (`Outgoing::Publish(pkid)`) with the broker's `PubAck(pkid)`. Publishes go
//! out one at a time, which keeps that matching trivially right and costs nothing at the rate
//! alerts happen. A clean session means a reconnect never replays an old publish under a
//! packet id we might mistake for a new one; the outbox retries instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use super::outcome::Failure;
use crate::broker::SourceError;
use crate::config::Settings;

/// Longest pause between two connection attempts.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// A handle for publishing notifications; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    jobs: mpsc::Sender<Job>,
    connected: Arc<AtomicBool>,
}

/// One publish waiting for its PUBACK.
struct Job {
    topic: String,
    retain: bool,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// What the event loop tells the publishing task.
#[derive(Debug)]
enum Signal {
    Connected,
    Disconnected(String),
    /// The event loop wrote a publish with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acknowledged(u16),
}

impl Publisher {
    /// Connects (in the background, retrying) with the gauge source's broker settings under the
    /// client id `{mqtt.client_id}-notify`. Needs a running tokio runtime.
    pub fn start(settings: &Settings) -> Result<Publisher, SourceError> {
        let mut own = settings.clone();
        own.mqtt.client_id = format!("{}-notify", settings.mqtt.client_id);
        // The same TLS, credentials and limits as the source; only the session differs.
        let (client, mut eventloop) = crate::broker::client(&own)?;
        eventloop.mqtt_options.set_clean_session(true);
        let (signals_tx, signals) = mpsc::unbounded_channel();
        tokio::spawn(poll(eventloop, signals_tx));
        let (jobs, jobs_rx) = mpsc::channel(64);
        let connected = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish_one_at_a_time(
            client,
            jobs_rx,
            signals,
            connected.clone(),
        ));
        Ok(Publisher { jobs, connected })
    }

    /// Publishes `payload` with QoS 1 and returns once the broker has acknowledged it. No
    /// PUBACK within `timeout` (broker down, slow or unreachable) is a transient failure.
    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let (done, acknowledged) = oneshot::channel();
        let job = Job {
            topic,
            retain,
            payload,
            done,
        };
        let attempt = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| "the MQTT notification connection stopped".to_string())?;
            acknowledged
                .await
                .map_err(|_| "the MQTT notification connection dropped the message".to_string())?
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result.map_err(Failure::Transient),
            Err(_) => Err(Failure::Transient(format!(
                "no PUBACK from the MQTT broker within {} ({})",
                humantime::format_duration(timeout),
                match self.connected.load(Ordering::SeqCst) {
                    true => "connected",
                    false => "not connected",
                }
            ))),
        }
    }
}

/// Polls the event loop forever, passing on what the publishing task needs. Never blocks on
/// the receiver (unbounded), so the connection keeps its keep-alive whatever happens.
async fn poll(mut eventloop: EventLoop, signals: mpsc::UnboundedSender<Signal>) {
    let mut wait = Duration::from_millis(200);
    loop {
        let signal = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                wait = Duration::from_millis(200);
                Signal::Connected
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Signal::Sent(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => Signal::Acknowledged(ack.pkid),
            Ok(_) => continue,
            Err(e) => {
                if signals.send(Signal::Disconnected(e.to_string())).is_err() {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RECONNECT_WAIT);
                continue;
            }
        };
        if signals.send(signal).is_err() {
            return;
        }
    }
}

/// The publish on the wire, waiting for its PUBACK.
struct InFlight {
    done: oneshot::Sender<Result<(), String>>,
    /// Known once the event loop has written it.
    pkid: Option<u16>,
}

/// Takes one job at a time while connected, and answers it when its PUBACK arrives or the
/// connection drops. A job whose caller stopped waiting (timeout) is let go; the packet ids
/// owed to such jobs are skipped so they are never mistaken for the next job's.
async fn publish_one_at_a_time(
    client: AsyncClient,
    mut jobs: mpsc::Receiver<Job>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
    connected: Arc<AtomicBool>,
) {
    let mut current: Option<InFlight> = None;
    // Publishes handed to the event loop whose `Sent` has not been seen, for abandoned jobs.
    let mut owed: usize = 0;
    let mut online = false;
    loop {
        tokio::select! {
            signal = signals.recv() => {
                let Some(signal) = signal else { return };
                match signal {
                    Signal::Connected => {
                        // A clean session drops whatever the last connection had queued.
                        owed = 0;
                        online = true;
                        connected.store(true, Ordering::SeqCst);
                        tracing::info!("MQTT notification connection up");
                    }
                    Signal::Disconnected(error) => {
                        if online {
                            tracing::warn!(%error, "MQTT notification connection lost; reconnecting");
                        }
                        online = false;
                        connected.store(false, Ordering::SeqCst);
                        if let Some(job) = current.take() {
                            let _ = job.done.send(Err(format!("MQTT connection lost before PUBACK: {error}")));
                        }
                    }
                    Signal::Sent(pkid) => match current.as_mut() {
                        _ if owed > 0 => owed -= 1,
                        Some(job) if job.pkid.is_none() => job.pkid = Some(pkid),
                        _ => {}
                    },
                    Signal::Acknowledged(pkid) => {
                        if current.as_ref().is_some_and(|job| job.pkid == Some(pkid)) {
                            if let Some(job) = current.take() {
                                let _ = job.done.send(Ok(()));
                            }
                        }
                    }
                }
            }
            _ = abandoned(&mut current) => {
                if current.take().is_some_and(|job| job.pkid.is_none()) {
                    owed += 1;
                }
            }
            job = jobs.recv(), if online && current.is_none() => {
                let Some(job) = job else { return };
                if job.done.is_closed() {
                    continue;
                }
                // Never blocks: the request queue holds 1024 and this task sends one at a time.
                match client.try_publish(job.topic, QoS::AtLeastOnce, job.retain, job.payload) {
                    Ok(()) => current = Some(InFlight { done: job.done, pkid: None }),
                    Err(e) => {
                        let _ = job.done.send(Err(format!("cannot queue the MQTT publish: {e}")));
                    }
                }
            }
        }
    }
}

/// Resolves when the caller of the job in flight has stopped waiting for it.
async fn abandoned(current: &mut Option<InFlight>) {
    match current {
        Some(job) => job.done.closed().await,
        None => std::future::pending().await,
    }
}
