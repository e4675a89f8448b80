//! The vocabulary every component shares: a gauge reading, its quality, and time.
//!
//! Times are kept as milliseconds since the Unix epoch (UTC) everywhere inside hydrowatch;
//! the local time zone only matters when parsing a naive timestamp and when cutting the
//! hydrological day, both of which happen at the edges.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// One observation from one station at one time. At least one element is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Station id, as in the catalogue and the MQTT topic.
    pub station: String,
    /// Observation time (the end of the rainfall period for rain amounts).
    pub time: Millis,
    /// Water level in metres above the station datum.
    pub level_m: Option<f64>,
    /// Rainfall in the period ending at `time`.
    pub rain_mm: Option<f64>,
    /// Length of that rainfall period in seconds.
    pub rain_period_s: Option<u32>,
    /// Cumulative rainfall counter (tipping bucket); resets are detected.
    pub rain_total_mm: Option<f64>,
    /// Discharge, cubic metres per second.
    pub flow_m3s: Option<f64>,
    /// RTU supply voltage.
    pub battery_v: Option<f64>,
    /// Whether the level passed the station's sanity checks.
    pub quality: Quality,
}

impl Reading {
    /// A reading with only a time and a station; elements are filled in by the caller.
    pub fn empty(station: impl Into<String>, time: Millis) -> Self {
        Reading {
            station: station.into(),
            time,
            level_m: None,
            rain_mm: None,
            rain_period_s: None,
            rain_total_mm: None,
            flow_m3s: None,
            battery_v: None,
            quality: Quality::Good,
        }
    }
}

/// Quality flag of a water level. Suspect levels are stored but kept out of the flood rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Passed every check.
    #[default]
    Good,
    /// Outside the station's physically possible `level_range`.
    OutOfRange,
    /// Jumped more than `max_step_m` from the previous reading.
    Jump,
}

impl Quality {
    /// The name stored in the journal and in InfluxDB's `quality` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::OutOfRange => "out_of_range",
            Quality::Jump => "jump",
        }
    }

    /// Parses the stored name; unknown names are treated as good.
    pub fn parse(s: &str) -> Quality {
        match s {
            "out_of_range" => Quality::OutOfRange,
            "jump" => Quality::Jump,
            _ => Quality::Good,
        }
    }
}

/// Wall-clock now in milliseconds.
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// Formats a time as RFC 3339 with the offset of `tz` (e.g. `2021-07-20T08:05:00+08:00`).
pub fn format_time(ms: Millis, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let zoned = ts.to_zoned(tz.clone());
            zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        }
        Err(_) => ms.to_string(),
    }
}

/// What a dead letter keeps of a refused message: its first [`RefusedPayload::HEAD`] bytes,
/// its length and its SHA-256, so that garbage cannot fill the disk and an operator can
/// still recognise (and, from the publisher's copy, verify) the message.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedPayload {
    pub head: Vec<u8>,
    pub bytes: usize,
    pub sha256: String,
}

impl RefusedPayload {
    /// Bytes of a refused payload that are kept.
    pub const HEAD: usize = 4096;

    /// Summarises `payload`.
    pub fn of(payload: &[u8]) -> RefusedPayload {
        RefusedPayload {
            head: payload[..payload.len().min(Self::HEAD)].to_vec(),
            bytes: payload.len(),
            sha256: hex::encode(Sha256::digest(payload)),
        }
    }
}

/// Why a message was dead-lettered. `cause` is a short stable label for metrics and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub cause: Cause,
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.detail)
    }
}

/// The kinds of bad message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    TooLarge,
    NotJson,
    BadShape,
    TooManyReadings,
    UnknownStation,
    StationMismatch,
    MissingTime,
    BadTime,
    FutureTime,
    BadValue,
    NoElement,
    /// An acknowledgement on the MQTT ack topic with a wrong team token.
    Unauthorized,
    /// The message decoded, but the journal refused to store it even on its own (a fault of
    /// hydrowatch's, isolated so that it cannot hold back the messages behind it).
    Unstorable,
    /// An SL 651 frame refused by the protocol module, with its stable label (`crc`,
    /// `unknown_station`, `truncated`...: the SL 651 protocol module's causes).
    Sl651(&'static str),
}

impl Cause {
    /// Stable label used in metrics (`cause="..."`) and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::TooLarge => "too_large",
            Cause::NotJson => "not_json",
            Cause::BadShape => "bad_shape",
            Cause::TooManyReadings => "too_many_readings",
            Cause::UnknownStation => "unknown_station",
            Cause::StationMismatch => "station_mismatch",
            Cause::MissingTime => "missing_time",
            Cause::BadTime => "bad_time",
            Cause::FutureTime => "future_time",
            Cause::BadValue => "bad_value",
            Cause::NoElement => "no_element",
            Cause::Unauthorized => "unauthorized",
            Cause::Unstorable => "unstorable",
            Cause::Sl651(cause) => cause,
        }
    }
}

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
