//! Multi-packet transfers (M3): an RTU splits a long report into packets that each start
//! with SYN and carry the packet count and their number (from 1); every packet but the last
//! ends ETB. The centre puts the bodies together in number order and decodes the result as
//! one report. A packet that does not fit the transfer is refused so that the centre can
//! answer NAK and the RTU sends it again; a packet sent again replaces the earlier copy.

use std::collections::{BTreeMap, HashMap};

use super::frame::{Frame, Header, StationAddress};
use super::Sl651Error;

/// Largest number of packets one transfer may announce.
pub const DEFAULT_MAX_PACKETS: u16 = 512;

#[derive(Debug)]
struct Transfer {
    total: u16,
    parts: BTreeMap<u16, Frame>,
    bytes: usize,
}

/// What a packet did to its transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembly {
    /// More packets are expected.
    Partial { received: u16, total: u16 },
    /// All packets are in: one frame whose body is the whole report and whose `raw` holds
    /// every packet as received, one after another.
    Complete(Frame),
}

/// Collects the packets of transfers in progress, per station and function code.
#[derive(Debug)]
pub struct Reassembler {
    max_packets: u16,
    max_bytes: usize,
    transfers: HashMap<(StationAddress, u8), Transfer>,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new(DEFAULT_MAX_PACKETS, 1 << 20)
    }
}

impl Reassembler {
    /// At most `max_packets` packets and `max_bytes` of body per transfer.
    pub fn new(max_packets: u16, max_bytes: usize) -> Self {
        Reassembler {
            max_packets,
            max_bytes,
            transfers: HashMap::new(),
        }
    }

    /// Transfers waiting for packets.
    pub fn pending(&self) -> usize {
        self.transfers.len()
    }

    /// Adds a packet. A single-packet frame (no packet numbers) completes at once.
    pub fn push(&mut self, frame: Frame) -> Result<Assembly, Sl651Error> {
        let Some(packet) = frame.header.packet else {
            return Ok(Assembly::Complete(frame));
        };
        let bad = |header: &Header, detail: String| Sl651Error::BadPacket {
            header: Some(header.clone()),
            detail,
        };
        if packet.total == 0 || packet.number == 0 || packet.number > packet.total {
            return Err(bad(
                &frame.header,
                format!("packet {} of {}", packet.number, packet.total),
            ));
        }
        if packet.total > self.max_packets {
            return Err(bad(
                &frame.header,
                format!(
                    "{} packets exceed the limit of {}",
                    packet.total, self.max_packets
                ),
            ));
        }
        let key = (frame.header.station, frame.header.function);
        if let Some(t) = self.transfers.get(&key) {
            if t.total != packet.total {
                // A new transfer began (the RTU gave up on the old one): keep the new one.
                self.transfers.remove(&key);
            }
        }
        let transfer = self.transfers.entry(key).or_insert_with(|| Transfer {
            total: packet.total,
            parts: BTreeMap::new(),
            bytes: 0,
        });
        if transfer.bytes + frame.body.len() > self.max_bytes {
            let header = frame.header.clone();
            self.transfers.remove(&key);
            return Err(Sl651Error::TooLarge {
                declared: usize::MAX,
                limit: self.max_bytes,
                header: Some(header),
            });
        }
        transfer.bytes += frame.body.len();
        if let Some(old) = transfer.parts.insert(packet.number, frame) {
            transfer.bytes -= old.body.len();
        }
        let received = u16::try_from(transfer.parts.len()).unwrap_or(u16::MAX);
        if received < transfer.total {
            return Ok(Assembly::Partial {
                received,
                total: transfer.total,
            });
        }
        let Some(transfer) = self.transfers.remove(&key) else {
            return Ok(Assembly::Partial {
                received,
                total: packet.total,
            });
        };
        let mut parts = transfer.parts.into_values();
        let Some(mut whole) = parts.next() else {
            return Ok(Assembly::Partial {
                received: 0,
                total: packet.total,
            });
        };
        for part in parts {
            whole.body.extend(part.body);
            whole.raw.extend(part.raw);
            whole.end = part.end;
        }
        whole.header.packet = None;
        whole.header.length = u16::try_from(whole.body.len()).unwrap_or(u16::MAX);
        Ok(Assembly::Complete(whole))
    }
}
