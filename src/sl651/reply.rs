//! The centre's answers (downlink frames) to report frames.
//!
//! An answer has the report's function code, direction down (station address first), the
//! report's serial number echoed and the centre's own clock as send time, and no elements.
//! Its end byte tells the RTU what to do: EOT (hang up) or ESC (stay online, per the
//! `reply_end` setting) after a frame that ended ETX; ACK after a packet that ended ETB; NAK
//! for a packet or frame that must be sent again. Answers to M3 packets carry the packet's
//! numbers, so that the RTU knows which packet is meant.

use jiff::civil::DateTime;

use super::body::time_bcd;
use super::frame::{encode, to_hex_text, Direction, Encoding, EndMark, FrameSpec, Header};
use super::Sl651Error;

/// What the centre asks after a complete report (`reply_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyEnd {
    /// EOT: the RTU may hang up (the default: RTUs on dial-up links save power).
    #[default]
    Eot,
    /// ESC: the RTU keeps the link open.
    Esc,
}

impl std::str::FromStr for ReplyEnd {
    type Err = Sl651Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "eot" => Ok(ReplyEnd::Eot),
            "esc" => Ok(ReplyEnd::Esc),
            other => Err(Sl651Error::BadSetting(format!(
                "reply_end `{other}`: expected eot or esc"
            ))),
        }
    }
}

/// The end byte of the answer to a frame that ended with `received`; `None` when the frame
/// is not to be answered (downlink control bytes).
pub fn end_for(received: EndMark, setting: ReplyEnd) -> Option<EndMark> {
    match received {
        EndMark::Etx => Some(match setting {
            ReplyEnd::Eot => EndMark::Eot,
            ReplyEnd::Esc => EndMark::Esc,
        }),
        EndMark::Etb => Some(EndMark::Ack),
        _ => None,
    }
}

/// Builds the answer to the frame whose header is `to`.
pub fn answer(
    to: &Header,
    serial: u16,
    centre_time: DateTime,
    end: EndMark,
) -> Result<Vec<u8>, Sl651Error> {
    let time = time_bcd(centre_time, true);
    let body = match to.encoding {
        Encoding::Hex => {
            let mut b = serial.to_be_bytes().to_vec();
            b.extend(time);
            b
        }
        Encoding::Ascii => {
            let mut b = format!("{serial:04X} ").into_bytes();
            b.extend(to_hex_text(&time));
            b
        }
    };
    encode(&FrameSpec {
        encoding: to.encoding,
        direction: Direction::Down,
        center: to.center,
        station: to.station,
        password: to.password,
        function: to.function,
        packet: to.packet,
        body: &body,
        end,
    })
}
