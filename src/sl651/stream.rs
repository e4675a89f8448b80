//! The incremental decoder for a TCP byte stream: feed whatever the socket read, get every
//! complete frame and every rejected one in order.
//!
//! RTUs on GPRS links send line noise, half frames after a reconnect and several frames in
//! one read. The decoder skips anything that is not a frame start, never holds more than one
//! frame's worth of bytes, and tells the caller why a frame was refused, with its header when
//! it could be read, so that the caller can answer NAK. A declared length beyond the limit is
//! refused at once (it is more likely a corrupted length word than a real frame) and the
//! search resumes at the next byte; so it does after a length that does not put an end mark
//! where it should.

use super::frame::{check, scan_header, HeaderScan};
use super::Sl651Error;

/// Default largest frame accepted: the 12-bit length's maximum plus the HEX/ASCII framing.
pub const DEFAULT_MAX_FRAME: usize = 4095 + 29;

/// A frame the decoder refused, with its bytes: the whole frame when its end mark was where
/// the length said (bad CRC), else what was held from its header up to the declared length.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub error: Sl651Error,
    pub raw: Vec<u8>,
}

/// Splits a byte stream into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame: usize,
    skipped: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max_frame: max_frame.max(32),
            skipped: 0,
        }
    }

    /// Feeds received bytes; returns the frames (and refusals) they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<super::Frame, Sl651Error>> {
        self.push_keeping_refused(bytes)
            .into_iter()
            .map(|r| r.map_err(|refused| refused.error))
            .collect()
    }

    /// [`FrameDecoder::push`], with the bytes of each refused frame, so that its dead letter
    /// shows what the RTU sent.
    pub fn push_keeping_refused(&mut self, bytes: &[u8]) -> Vec<Result<super::Frame, Refused>> {
        let mut out = Vec::new();
        // Chunked so that the buffer never grows past two frames, whatever one read returns.
        for chunk in bytes.chunks(self.max_frame) {
            self.buf.extend_from_slice(chunk);
            self.drain(&mut out);
        }
        out
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes thrown away as noise so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The stream ended: a frame still incomplete is reported as truncated.
    pub fn finish(&mut self) -> Option<Sl651Error> {
        let pending = std::mem::take(&mut self.buf);
        match scan_header(&pending) {
            HeaderScan::Header(h) => Some(Sl651Error::Truncated {
                expected: h.frame_len(),
                got: pending.len(),
                header: Some(h),
            }),
            HeaderScan::NeedMore if pending.len() > 1 => Some(Sl651Error::Truncated {
                header: None,
                expected: 0,
                got: pending.len(),
            }),
            _ => None,
        }
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        self.skipped += n as u64;
    }

    /// The held bytes of a refused frame that declares `total` bytes.
    fn refused(&self, error: Sl651Error, total: usize) -> Refused {
        Refused {
            error,
            raw: self.buf[..total.min(self.buf.len())].to_vec(),
        }
    }

    fn drain(&mut self, out: &mut Vec<Result<super::Frame, Refused>>) {
        loop {
            let Some(start) = self.buf.iter().position(|&b| b == 0x7E || b == 0x01) else {
                let all = self.buf.len();
                self.skip(all);
                return;
            };
            self.skip(start);
            let header = match scan_header(&self.buf) {
                HeaderScan::NeedMore => return,
                HeaderScan::NotAFrame => {
                    self.skip(1);
                    continue;
                }
                HeaderScan::Header(h) => h,
            };
            let total = header.frame_len();
            if total > self.max_frame {
                // Only the header: the declared length is likely garbage.
                let error = Sl651Error::TooLarge {
                    declared: total,
                    limit: self.max_frame,
                    header: Some(header),
                };
                out.push(Err(self.refused(error, 32)));
                self.skip(1);
                continue;
            }
            if self.buf.len() < total {
                // A frame cut short by the RTU is followed by its next frame: do not wait for
                // bytes that will never come when a complete frame already sits inside.
                if let Some(next) = self.complete_frame_after(1) {
                    let error = Sl651Error::Truncated {
                        expected: total,
                        got: next,
                        header: Some(header),
                    };
                    out.push(Err(self.refused(error, next)));
                    self.skip(next);
                    continue;
                }
                return;
            }
            match check(header, &self.buf) {
                Ok(frame) => {
                    self.buf.drain(..total);
                    out.push(Ok(frame));
                }
                Err(Sl651Error::BadLength { header, detail }) => {
                    // A new frame starting inside this one means this one was cut short.
                    let (err, held) = match self.frame_start_within(1, total) {
                        Some(at) => (
                            Sl651Error::Truncated {
                                header,
                                expected: total,
                                got: at,
                            },
                            at,
                        ),
                        None => (Sl651Error::BadLength { header, detail }, total),
                    };
                    out.push(Err(self.refused(err, held)));
                    self.skip(1);
                }
                Err(e) => {
                    // The end mark sat where the length said: the frame is delimited, only
                    // its content is bad, so it is consumed whole.
                    let refused = self.refused(e, total);
                    self.buf.drain(..total);
                    out.push(Err(refused));
                }
            }
        }
    }

    /// Offset of a readable header in `from..to`.
    fn frame_start_within(&self, from: usize, to: usize) -> Option<usize> {
        (from..to.min(self.buf.len())).find(|&i| {
            matches!(self.buf[i], 0x7E | 0x01)
                && matches!(scan_header(&self.buf[i..]), HeaderScan::Header(_))
        })
    }

    /// Offset of a later frame that is complete and checks, if any.
    fn complete_frame_after(&self, from: usize) -> Option<usize> {
        (from..self.buf.len()).find(|&i| {
            if !matches!(self.buf[i], 0x7E | 0x01) {
                return false;
            }
            match scan_header(&self.buf[i..]) {
                HeaderScan::Header(h) => {
                    h.frame_len() <= self.buf.len() - i && check(h, &self.buf[i..]).is_ok()
                }
                _ => false,
            }
        })
    }
}
