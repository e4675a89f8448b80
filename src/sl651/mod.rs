//! SL 651-2014 (水文监测数据通信规约): the protocol most Chinese river, reservoir and rain
//! gauges (RTUs) speak to a telemetry centre over TCP. hydrowatch is that centre.
//!
//! This module is the pure part: no sockets, no clock, no journal. The pieces, in the order
//! a frame meets them:
//!
//! - [`stream::FrameDecoder`]: bytes from a connection → frames, resynchronising after noise;
//! - [`frame`]: one frame's header, body and end, HEX (`7E7E`) and ASCII (`SOH`) forms, and
//!   the encoder that writes frames;
//! - [`multipacket::Reassembler`]: M3 packets → one report;
//! - [`body`]: a report body → station block and observation-time groups of elements;
//! - [`elements`]: the standard's element table and the value codec;
//! - [`readings`]: elements → hydrowatch [`Reading`]s, per the contract's mapping;
//! - [`reply`]: the centre's downlink answer (ACK/NAK/EOT/ESC);
//! - [`center`]: the TCP loop that answers a report only after its readings are committed.
//!
//! docs/sl651.md says what is supported and how the 5-minute series are timed.

pub mod body;
pub mod center;
pub mod crc;
pub mod elements;
pub mod frame;
pub mod multipacket;
pub mod readings;
pub mod reply;
pub mod stream;

#[cfg(test)]
mod tests;

use jiff::tz::TimeZone;

pub use body::{Group, Report, StationBlock};
pub use elements::{Element, Identifier, Value};
pub use frame::{Direction, Encoding, EndMark, Frame, Header, Packet, StationAddress};
pub use multipacket::{Assembly, Reassembler};
pub use readings::LevelElement;
pub use reply::ReplyEnd;
pub use stream::{FrameDecoder, Refused};

use crate::model::Reading;

/// Why a frame was refused. `cause()` is the stable label for dead letters and metrics; the
/// header, when it could be read, lets the centre answer NAK to the right station.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Sl651Error {
    #[error("not an SL 651 frame")]
    NotAFrame,
    #[error("truncated frame: {got} of {expected} bytes arrived")]
    Truncated {
        header: Option<Header>,
        expected: usize,
        got: usize,
    },
    #[error("wrong length: {detail}")]
    BadLength {
        header: Option<Header>,
        detail: String,
    },
    #[error("frame of {declared} bytes exceeds the limit of {limit}")]
    TooLarge {
        header: Option<Header>,
        declared: usize,
        limit: usize,
    },
    #[error("bad CRC: frame says {}, computed {computed:04X}", declared.map_or("nothing readable".to_string(), |d| format!("{d:04X}")))]
    Crc {
        header: Option<Header>,
        declared: Option<u16>,
        computed: u16,
    },
    #[error("bad packet: {detail}")]
    BadPacket {
        header: Option<Header>,
        detail: String,
    },
    #[error("bad report body: {0}")]
    Body(String),
    #[error("{0}")]
    BadAddress(String),
    #[error("{0}")]
    BadSetting(String),
    #[error("station address {address} is not in the catalogue")]
    UnknownStation { address: StationAddress },
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl Sl651Error {
    /// Stable label used in metrics (`cause="..."`) and the journal's dead letters.
    pub fn cause(&self) -> &'static str {
        match self {
            Sl651Error::NotAFrame => "not_a_frame",
            Sl651Error::Truncated { .. } => "truncated",
            Sl651Error::BadLength { .. } => "bad_length",
            Sl651Error::TooLarge { .. } => "too_large",
            Sl651Error::Crc { .. } => "crc",
            Sl651Error::BadPacket { .. } => "bad_packet",
            Sl651Error::Body(_) => "bad_body",
            Sl651Error::BadAddress(_) => "bad_address",
            Sl651Error::BadSetting(_) => "bad_setting",
            Sl651Error::UnknownStation { .. } => "unknown_station",
            Sl651Error::Encode(_) => "encode",
        }
    }

    /// The refused frame's header, when it could be read.
    pub fn header(&self) -> Option<&Header> {
        match self {
            Sl651Error::Truncated { header, .. }
            | Sl651Error::BadLength { header, .. }
            | Sl651Error::TooLarge { header, .. }
            | Sl651Error::Crc { header, .. }
            | Sl651Error::BadPacket { header, .. } => header.as_ref(),
            _ => None,
        }
    }
}

/// A report frame decoded: every element for audit, and the readings hydrowatch keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub report: Report,
    pub readings: Vec<Reading>,
}

/// Decodes a complete (reassembled) uplink report frame into readings for `station_id`,
/// whose level element is `level`; observation times are local times in `tz`.
pub fn decode_report(
    frame: &Frame,
    station_id: &str,
    level: LevelElement,
    tz: &TimeZone,
) -> Result<Decoded, Sl651Error> {
    if frame.header.direction != Direction::Up {
        return Err(Sl651Error::Body("a downlink frame is not a report".into()));
    }
    let report = body::decode(frame.header.encoding, frame.header.function, &frame.body)?;
    if let Some(st) = report.station {
        if st.address != frame.header.station {
            return Err(Sl651Error::Body(format!(
                "body names station {} but the header {}",
                st.address, frame.header.station
            )));
        }
    }
    let readings = readings::readings(&report, station_id, level, tz)?;
    Ok(Decoded { report, readings })
}
