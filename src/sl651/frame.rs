//! One SL 651 frame: its header, its body bytes and its end, in either of the standard's
//! encodings, plus the encoder that writes frames back (replies, simulated RTUs, tests).
//!
//! HEX frame (all binary):
//! `7E 7E | centre (1) | station (5) | password (2) | function (1) | direction+length (2) |
//!  STX 02 or SYN 16 | [packet total+number (3), SYN only] | body | end (1) | CRC (2, high first)`.
//! Downlink frames swap the two addresses (station first). The length word's high nibble is
//! `0` up, `8` down; its low twelve bits count the bytes between the start mark and the end
//! mark (the packet numbers included).
//!
//! ASCII frame: `SOH 01`, then the same header fields as hexadecimal characters (2, 10, 4, 2,
//! 4), `STX`/`SYN`, six characters of packet numbers after `SYN`, the body as text, the end
//! byte and the CRC as four hexadecimal characters.

use std::fmt;
use std::str::FromStr;

use super::crc::crc16;
use super::Sl651Error;

/// The first bytes of a HEX frame.
pub const HEX_START: [u8; 2] = [0x7E, 0x7E];
/// The first byte of an ASCII frame (SOH).
pub const ASCII_START: u8 = 0x01;
/// Start of a single-packet body.
pub const STX: u8 = 0x02;
/// Start of one packet of a multi-packet (M3) transfer.
pub const SYN: u8 = 0x16;

/// HEX header bytes up to and including the start mark.
const HEX_HEADER: usize = 14;
/// ASCII header bytes up to and including the start mark.
const ASCII_HEADER: usize = 24;

/// Function codes hydrowatch handles (the standard defines more, all of them downlink
/// commands a centre sends, or answers to those).
pub mod function {
    /// 链路维持报: keeps the link open; never answered.
    pub const KEEP_ALIVE: u8 = 0x2F;
    /// 测试报.
    pub const TEST: u8 = 0x30;
    /// 均匀时段水文信息报: values at a uniform time step.
    pub const UNIFORM_INTERVAL: u8 = 0x31;
    /// 遥测站定时报.
    pub const TIMED: u8 = 0x32;
    /// 遥测站加报报: added report when a threshold is crossed.
    pub const ADDED: u8 = 0x33;
    /// 遥测站小时报: the hour's 5-minute series.
    pub const HOURLY: u8 = 0x34;
    /// 遥测站人工置数报.
    pub const MANUAL: u8 = 0x35;

    /// Report frames (30–35) carry observations and are answered once committed.
    pub fn is_report(code: u8) -> bool {
        (TEST..=MANUAL).contains(&code)
    }
}

/// Which of the standard's two encodings a frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Ascii,
}

/// Uplink (RTU → centre) or downlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// The control byte that ends a frame's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndMark {
    /// 03: end of the message, nothing follows.
    Etx,
    /// 17: end of a packet, more packets follow (M3).
    Etb,
    /// 05: enquiry (downlink commands).
    Enq,
    /// 04: end of transmission, the RTU hangs up.
    Eot,
    /// 06: positive acknowledgement, go on.
    Ack,
    /// 15: negative acknowledgement, send again.
    Nak,
    /// 1B: end of transmission, the RTU stays online.
    Esc,
}

impl EndMark {
    pub fn byte(self) -> u8 {
        match self {
            EndMark::Etx => 0x03,
            EndMark::Etb => 0x17,
            EndMark::Enq => 0x05,
            EndMark::Eot => 0x04,
            EndMark::Ack => 0x06,
            EndMark::Nak => 0x15,
            EndMark::Esc => 0x1B,
        }
    }

    pub fn from_byte(b: u8) -> Option<EndMark> {
        Some(match b {
            0x03 => EndMark::Etx,
            0x17 => EndMark::Etb,
            0x05 => EndMark::Enq,
            0x04 => EndMark::Eot,
            0x06 => EndMark::Ack,
            0x15 => EndMark::Nak,
            0x1B => EndMark::Esc,
            _ => return None,
        })
    }
}

/// A telemetry station's five-byte address, written as ten hexadecimal digits
/// (`sl651_address = "0062304000"` in the station catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StationAddress(pub [u8; 5]);

impl fmt::Display for StationAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for StationAddress {
    type Err = Sl651Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex_text(s.as_bytes())
            .filter(|b| b.len() == 5)
            .ok_or_else(|| {
                Sl651Error::BadAddress(format!(
                    "`{s}` is not a station address: expected 10 hexadecimal digits"
                ))
            })?;
        let mut a = [0u8; 5];
        a.copy_from_slice(&bytes);
        Ok(StationAddress(a))
    }
}

/// Which packet of a multi-packet (M3) transfer a frame carries; numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub total: u16,
    pub number: u16,
}

impl Packet {
    fn to_bytes(self) -> [u8; 3] {
        let (t, n) = (self.total & 0x0FFF, self.number & 0x0FFF);
        [
            (t >> 4) as u8,
            (((t & 0x0F) << 4) as u8) | ((n >> 8) as u8),
            n as u8,
        ]
    }

    fn from_bytes(b: [u8; 3]) -> Packet {
        Packet {
            total: (u16::from(b[0]) << 4) | (u16::from(b[1]) >> 4),
            number: (u16::from(b[1] & 0x0F) << 8) | u16::from(b[2]),
        }
    }
}

/// Everything before a frame's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub encoding: Encoding,
    pub direction: Direction,
    pub center: u8,
    pub station: StationAddress,
    pub password: u16,
    pub function: u8,
    /// The declared length: bytes (characters in ASCII) between start and end mark.
    pub length: u16,
    /// `Some` for a packet of a multi-packet transfer (start mark SYN).
    pub packet: Option<Packet>,
}

impl Header {
    /// Length of the whole frame this header announces.
    pub fn frame_len(&self) -> usize {
        let length = usize::from(self.length);
        match self.encoding {
            Encoding::Hex => HEX_HEADER + length + 3,
            Encoding::Ascii => ASCII_HEADER + length + 5,
        }
    }

    fn packet_len(&self) -> usize {
        match (self.packet, self.encoding) {
            (None, _) => 0,
            (Some(_), Encoding::Hex) => 3,
            (Some(_), Encoding::Ascii) => 6,
        }
    }
}

/// A complete frame whose CRC checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub header: Header,
    /// The body: bytes for HEX frames, text for ASCII frames (packet numbers excluded).
    pub body: Vec<u8>,
    pub end: EndMark,
    /// The frame exactly as received, for the journal's audit copy.
    pub raw: Vec<u8>,
}

/// What the bytes at a buffer's start are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HeaderScan {
    /// Too few bytes to tell.
    NeedMore,
    /// Not the start of a frame: skip a byte and look again.
    NotAFrame,
    /// A readable header.
    Header(Header),
}

/// Reads a header at the start of `bytes`.
pub(crate) fn scan_header(bytes: &[u8]) -> HeaderScan {
    match bytes.first() {
        None => HeaderScan::NeedMore,
        Some(0x7E) => scan_hex_header(bytes),
        Some(&ASCII_START) => scan_ascii_header(bytes),
        Some(_) => HeaderScan::NotAFrame,
    }
}

fn scan_hex_header(b: &[u8]) -> HeaderScan {
    if b.len() < 2 {
        return HeaderScan::NeedMore;
    }
    if b[1] != 0x7E {
        return HeaderScan::NotAFrame;
    }
    if b.len() < HEX_HEADER {
        return HeaderScan::NeedMore;
    }
    let direction = match b[11] >> 4 {
        0x0 => Direction::Up,
        0x8 => Direction::Down,
        _ => return HeaderScan::NotAFrame,
    };
    let multi = match b[13] {
        STX => false,
        SYN => true,
        _ => return HeaderScan::NotAFrame,
    };
    let (center, station) = match direction {
        Direction::Up => (b[2], [b[3], b[4], b[5], b[6], b[7]]),
        Direction::Down => (b[7], [b[2], b[3], b[4], b[5], b[6]]),
    };
    let length = (u16::from(b[11] & 0x0F) << 8) | u16::from(b[12]);
    let packet = if multi {
        if b.len() < HEX_HEADER + 3 {
            return HeaderScan::NeedMore;
        }
        Some(Packet::from_bytes([b[14], b[15], b[16]]))
    } else {
        None
    };
    HeaderScan::Header(Header {
        encoding: Encoding::Hex,
        direction,
        center,
        station: StationAddress(station),
        password: u16::from_be_bytes([b[8], b[9]]),
        function: b[10],
        length,
        packet,
    })
}

fn scan_ascii_header(b: &[u8]) -> HeaderScan {
    let available = b.len().min(ASCII_HEADER - 1);
    // Garbage that merely contains 01 is refused as early as possible.
    if !b[1..available].iter().all(u8::is_ascii_hexdigit) {
        return HeaderScan::NotAFrame;
    }
    if b.len() < ASCII_HEADER {
        return HeaderScan::NeedMore;
    }
    let Some(fields) = hex_text(&b[1..23]) else {
        return HeaderScan::NotAFrame;
    };
    // fields: 11 bytes = address block (6), password (2), function (1), direction+length (2).
    let direction = match fields[9] >> 4 {
        0x0 => Direction::Up,
        0x8 => Direction::Down,
        _ => return HeaderScan::NotAFrame,
    };
    let multi = match b[23] {
        STX => false,
        SYN => true,
        _ => return HeaderScan::NotAFrame,
    };
    let (center, station) = match direction {
        Direction::Up => (
            fields[0],
            [fields[1], fields[2], fields[3], fields[4], fields[5]],
        ),
        Direction::Down => (
            fields[5],
            [fields[0], fields[1], fields[2], fields[3], fields[4]],
        ),
    };
    let packet = if multi {
        if b.len() < ASCII_HEADER + 6 {
            return HeaderScan::NeedMore;
        }
        match hex_text(&b[24..30]) {
            Some(p) => Some(Packet::from_bytes([p[0], p[1], p[2]])),
            None => return HeaderScan::NotAFrame,
        }
    } else {
        None
    };
    HeaderScan::Header(Header {
        encoding: Encoding::Ascii,
        direction,
        center,
        station: StationAddress(station),
        password: u16::from_be_bytes([fields[6], fields[7]]),
        function: fields[8],
        length: (u16::from(fields[9] & 0x0F) << 8) | u16::from(fields[10]),
        packet,
    })
}

/// Checks a frame whose header has been read and whose announced bytes are all present:
/// the end mark where the length puts it, then the CRC.
pub(crate) fn check(header: Header, bytes: &[u8]) -> Result<Frame, Sl651Error> {
    let total = header.frame_len();
    let (start_len, crc_len) = match header.encoding {
        Encoding::Hex => (HEX_HEADER, 2),
        Encoding::Ascii => (ASCII_HEADER, 4),
    };
    if bytes.len() < total {
        return Err(Sl651Error::Truncated {
            header: Some(header),
            expected: total,
            got: bytes.len(),
        });
    }
    let end_at = total - crc_len - 1;
    let body_start = start_len + header.packet_len();
    let Some(end) = EndMark::from_byte(bytes[end_at]).filter(|_| end_at >= body_start) else {
        return Err(Sl651Error::BadLength {
            detail: format!(
                "declared length {} puts the end mark at byte {end_at}, which holds {:02X}",
                header.length, bytes[end_at]
            ),
            header: Some(header),
        });
    };
    let computed = crc16(&bytes[..=end_at]);
    let declared = match header.encoding {
        Encoding::Hex => Some(u16::from_be_bytes([bytes[end_at + 1], bytes[end_at + 2]])),
        Encoding::Ascii => {
            hex_text(&bytes[end_at + 1..total]).map(|c| u16::from_be_bytes([c[0], c[1]]))
        }
    };
    if declared != Some(computed) {
        return Err(Sl651Error::Crc {
            header: Some(header),
            declared,
            computed,
        });
    }
    Ok(Frame {
        body: bytes[body_start..end_at].to_vec(),
        end,
        raw: bytes[..total].to_vec(),
        header,
    })
}

impl Frame {
    /// Parses one complete frame at the start of `bytes` (for a datagram or an MQTT payload);
    /// bytes after it are ignored. Use [`super::FrameDecoder`] for a byte stream.
    pub fn parse(bytes: &[u8]) -> Result<Frame, Sl651Error> {
        match scan_header(bytes) {
            HeaderScan::Header(h) => check(h, bytes),
            HeaderScan::NeedMore => Err(Sl651Error::Truncated {
                header: None,
                expected: HEX_HEADER,
                got: bytes.len(),
            }),
            HeaderScan::NotAFrame => Err(Sl651Error::NotAFrame),
        }
    }
}

/// What to write into a frame (the body already encoded for the frame's encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSpec<'a> {
    pub encoding: Encoding,
    pub direction: Direction,
    pub center: u8,
    pub station: StationAddress,
    pub password: u16,
    pub function: u8,
    pub packet: Option<Packet>,
    pub body: &'a [u8],
    pub end: EndMark,
}

/// Writes a frame with its length word and CRC.
pub fn encode(spec: &FrameSpec<'_>) -> Result<Vec<u8>, Sl651Error> {
    let packet_bytes = spec.packet.map(Packet::to_bytes);
    let packet_len = match (packet_bytes, spec.encoding) {
        (None, _) => 0,
        (Some(_), Encoding::Hex) => 3,
        (Some(_), Encoding::Ascii) => 6,
    };
    let length = spec.body.len() + packet_len;
    if length > 0x0FFF {
        return Err(Sl651Error::Encode(format!(
            "a body of {length} bytes does not fit the 12-bit length (split it into M3 packets)"
        )));
    }
    let dir: u16 = match spec.direction {
        Direction::Up => 0x0000,
        Direction::Down => 0x8000,
    };
    let word = (dir | length as u16).to_be_bytes();
    let mut fields = Vec::with_capacity(11);
    match spec.direction {
        Direction::Up => {
            fields.push(spec.center);
            fields.extend(spec.station.0);
        }
        Direction::Down => {
            fields.extend(spec.station.0);
            fields.push(spec.center);
        }
    }
    fields.extend(spec.password.to_be_bytes());
    fields.push(spec.function);
    fields.extend(word);
    let start = if spec.packet.is_some() { SYN } else { STX };

    let mut out = Vec::with_capacity(length + 32);
    match spec.encoding {
        Encoding::Hex => {
            out.extend(HEX_START);
            out.extend(&fields);
            out.push(start);
            if let Some(p) = packet_bytes {
                out.extend(p);
            }
        }
        Encoding::Ascii => {
            out.push(ASCII_START);
            out.extend(to_hex_text(&fields));
            out.push(start);
            if let Some(p) = packet_bytes {
                out.extend(to_hex_text(&p));
            }
        }
    }
    out.extend(spec.body);
    out.push(spec.end.byte());
    let crc = crc16(&out).to_be_bytes();
    match spec.encoding {
        Encoding::Hex => out.extend(crc),
        Encoding::Ascii => out.extend(to_hex_text(&crc)),
    }
    Ok(out)
}

/// Decodes hexadecimal text (either case) into bytes; `None` when it is not hex or odd.
pub fn hex_text(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Writes bytes as upper-case hexadecimal text.
pub fn to_hex_text(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0F)]])
        .collect()
}
