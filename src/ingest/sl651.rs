//! The SL 651 source: RTUs that speak SL 651-2014, over TCP to the centre loop
//! ([`crate::sl651::center`]) or bridged over MQTT by DTUs, feed the same journal writer as
//! the MQTT gauges.
//!
//! Delivery guarantee: a report is answered only after its readings (or its dead letter) are
//! committed. Each frame goes to the writer as one [`Inbound`] carrying a
//! [`Receipt::Committed`]; the connection awaits that receipt and only then writes its reply
//! frame. A frame whose commit never resolves (the writer stopped, the journal refuses even
//! its dead letter, `kill -9`) gets no reply, so the RTU sends it again; readings are keyed
//! by (station, observation time), so the resend duplicates nothing. Frames bridged over MQTT
//! are acknowledged to the broker after commit like any gauge message.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::decode::{Cause, Rejection};
use crate::config::Settings;
use crate::model::{now_millis, Millis, RefusedPayload};
use crate::sl651::center::{self, CenterSettings, Delivery, StationLink};
use crate::sl651::frame::{function, to_hex_text, Direction, Frame};
use crate::sl651::Sl651Error;
use crate::writer::{Command, Decoded, Inbound, Outcome, Receipt};

/// Why a frame's commit did not resolve; the frame is not answered and the RTU resends it.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the journal writer has stopped")]
    WriterStopped,
    #[error("the journal could not store the frame, not even as a dead letter")]
    NotStored,
}

/// The centre's settings from the configuration: the stations that have an `sl651_address`.
pub fn center_settings(settings: &Settings) -> Option<CenterSettings> {
    let s = settings.sl651.as_ref()?;
    let stations = settings
        .stations
        .iter()
        .filter_map(|st| {
            let link = StationLink {
                id: st.id.clone(),
                level: st.sl651_level,
            };
            st.sl651_address.map(|a| (a, link))
        })
        .collect();
    Some(CenterSettings {
        time_zone: s.time_zone.clone(),
        reply_end: s.reply_end,
        idle_timeout: s.idle_timeout,
        max_frame: s.max_frame_bytes,
        max_connections: s.max_connections,
        stations,
    })
}

/// Serves RTU connections on `listener` until `shutdown`, committing every frame through
/// `writer`.
pub async fn serve(
    listener: TcpListener,
    centre: Arc<CenterSettings>,
    limits: crate::config::Limits,
    writer: mpsc::Sender<Command>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let future_tolerance_ms = limits.future_tolerance.as_millis() as i64;
    let commit = move |delivery: Delivery| {
        let writer = writer.clone();
        async move {
            commit(&writer, delivery, future_tolerance_ms)
                .await
                .map(|_| ())
        }
    };
    center::serve(listener, centre, commit, shutdown).await
}

/// Hands one frame to the writer and waits until it is committed.
pub async fn commit(
    writer: &mpsc::Sender<Command>,
    delivery: Delivery,
    future_tolerance_ms: i64,
) -> Result<Outcome, CommitError> {
    metrics::counter!("hydrowatch_messages_received_total").increment(1);
    let (tx, rx) = oneshot::channel();
    let address = match &delivery {
        Delivery::DeadLetter { station, .. } => *station,
        Delivery::Readings { raw, .. } => Frame::parse(raw).ok().map(|f| f.header.station),
    };
    let topic = match address {
        Some(address) => format!("sl651/{address}"),
        None => "sl651".to_string(),
    };
    let now = now_millis();
    let (decoded, frame) = decoded(delivery, now, future_tolerance_ms);
    let inbound = Inbound {
        topic,
        received_at: now,
        decoded,
        receipt: Some(Receipt::Committed(tx)),
        frame,
    };
    writer
        .send(Command::Message(inbound))
        .await
        .map_err(|_| CommitError::WriterStopped)?;
    rx.await.map_err(|_| CommitError::NotStored)
}

/// A delivery as the writer takes it: readings or a dead letter, and the frame for audit.
/// Readings from beyond `future_tolerance_ms` are refused as a JSON message's would be.
pub fn decoded(
    delivery: Delivery,
    now: Millis,
    future_tolerance_ms: i64,
) -> (Decoded, Option<Vec<u8>>) {
    match delivery {
        Delivery::Readings { readings, raw, .. } => {
            if let Some(r) = readings.iter().find(|r| r.time > now + future_tolerance_ms) {
                let rejection = Rejection {
                    cause: Cause::FutureTime,
                    detail: format!(
                        "observation time {} is in the future (check the RTU's clock and sl651.time_zone)",
                        crate::model::format_time(r.time, &jiff::tz::TimeZone::UTC)
                    ),
                };
                return (rejected(rejection, &raw), Some(raw));
            }
            metrics::counter!("hydrowatch_readings_received_total")
                .increment(readings.len() as u64);
            (Decoded::Readings(readings), Some(raw))
        }
        Delivery::DeadLetter {
            cause, detail, raw, ..
        } => {
            let rejection = Rejection {
                cause: Cause::Sl651(cause),
                detail,
            };
            let audit = (!raw.is_empty()).then(|| raw.clone());
            (rejected(rejection, &raw), audit)
        }
    }
}

/// A dead letter keeps the frame as upper-case hex text (its first 4 KiB of text).
fn rejected(rejection: Rejection, raw: &[u8]) -> Decoded {
    Decoded::Rejected {
        rejection,
        payload: RefusedPayload::of(&to_hex_text(raw)),
    }
}

/// Frames bridged over MQTT by DTUs: which topics carry them, and the centre's settings.
pub struct Bridge {
    pub filters: Vec<String>,
    pub centre: CenterSettings,
}

impl Bridge {
    /// The bridge, when `sl651.mqtt_topics` names any topic.
    pub fn new(settings: &Settings) -> Option<Bridge> {
        let filters = settings.sl651.as_ref()?.mqtt_topics.clone();
        if filters.is_empty() {
            return None;
        }
        Some(Bridge {
            filters,
            centre: center_settings(settings)?,
        })
    }

    /// Whether a topic carries SL 651 frames.
    pub fn carries(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| topic_matches(f, topic))
    }

    /// One bridged frame (binary, or hex text) → what the writer commits. One MQTT message
    /// holds one whole frame: multi-packet transfers need the TCP link.
    pub fn delivery(&self, payload: &[u8]) -> Option<Delivery> {
        let bytes = from_hex_text(payload).unwrap_or_else(|| payload.to_vec());
        let frame = match Frame::parse(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                metrics::counter!("hydrowatch_sl651_frames_rejected_total", "cause" => e.cause())
                    .increment(1);
                return Some(Delivery::DeadLetter {
                    cause: e.cause(),
                    detail: e.to_string(),
                    station: e.header().map(|h| h.station),
                    raw: bytes,
                });
            }
        };
        metrics::counter!("hydrowatch_sl651_frames_received_total").increment(1);
        let h = &frame.header;
        if h.direction != Direction::Up || h.function == function::KEEP_ALIVE {
            return None;
        }
        if !function::is_report(h.function) {
            return Some(center::not_a_report(&frame));
        }
        if h.packet.is_some() {
            let e = Sl651Error::BadPacket {
                header: Some(h.clone()),
                detail: "multi-packet (M3) transfers are not accepted over MQTT".into(),
            };
            return Some(Delivery::DeadLetter {
                cause: e.cause(),
                detail: e.to_string(),
                station: Some(h.station),
                raw: frame.raw,
            });
        }
        Some(center::deliver(&frame, &self.centre).0)
    }
}

/// A bridged frame's MQTT message as the writer takes it: a keep-alive or downlink frame
/// carries nothing to keep, and is only acknowledged.
pub fn bridged(
    bridge: &Bridge,
    payload: &[u8],
    now: Millis,
    future_tolerance_ms: i64,
) -> (Decoded, Option<Vec<u8>>) {
    match bridge.delivery(payload) {
        Some(delivery) => decoded(delivery, now, future_tolerance_ms),
        None => (Decoded::Readings(Vec::new()), None),
    }
}

/// Hex text (`7E7E01...`, whitespace allowed) → bytes; `None` when the payload is not that.
fn from_hex_text(payload: &[u8]) -> Option<Vec<u8>> {
    let text: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !text.starts_with(b"7E7E") && !text.starts_with(b"7e7e") {
        return None;
    }
    crate::sl651::frame::hex_text(&text)
}

/// MQTT topic filter matching (`+` one level, `#` the rest).
fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(level)) if f == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_match_like_mqtt() {
        assert!(topic_matches("sl651/+/up", "sl651/dtu-1/up"));
        assert!(!topic_matches("sl651/+/up", "sl651/dtu-1/down"));
        assert!(!topic_matches("sl651/+/up", "sl651/dtu-1/up/x"));
        assert!(topic_matches("sl651/#", "sl651/a/b"));
        assert!(!topic_matches("hydro/+/data", "sl651/a/up"));
    }

    #[test]
    fn hex_text_frames_are_recognised_and_binary_ones_left_alone() {
        assert_eq!(from_hex_text(b"7E7E 01"), Some(vec![0x7E, 0x7E, 0x01]));
        assert_eq!(from_hex_text(&[0x7E, 0x7E, 0x01]), None);
        assert_eq!(from_hex_text(b"{\"time\":1}"), None);
    }
}
