//! Playing SL 651 RTUs against a telemetry centre (hydrowatch or any other): each station
//! holds its own TCP link, sends HEX report frames and waits for the centre's answer to each,
//! as a real RTU does; a frame that is not answered (timeout, link lost) is sent again on a
//! new link, with the same serial number.
//!
//! Reports, per station and 5-minute step of the flood scenario:
//! - timed report (32): the level (Z) of a river gauge, or the 5-minute rain (PN05) and the
//!   accumulated counter (PT) of the rain gauge, and the supply voltage (VT);
//! - added report (33): a river gauge rising more than 0.1 m in five minutes reports its
//!   level again at once (加报), as RTUs do in a flood;
//! - hourly report (34) on the hour: the hour's twelve 5-minute levels (DRZ1) or amounts
//!   (DRP), the same values the timed reports carried, so the centre stores nothing twice.

use std::collections::HashMap;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::model::{Millis, Reading};
use crate::sl651::body::{self, Group, Report, StationBlock};
use crate::sl651::elements::{self, Element, Identifier, Value};
use crate::sl651::frame::{self, function, Direction, Encoding, EndMark, Frame, FrameSpec};
use crate::sl651::{FrameDecoder, Sl651Error, StationAddress};

/// How long an RTU waits for an answer before it sends the frame again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors playing an RTU.
#[derive(Debug, thiserror::Error)]
pub enum RtuError {
    #[error("cannot encode the report: {0}")]
    Encode(#[from] Sl651Error),
    #[error("the centre at {centre} did not answer within {waited:?}: {last}")]
    NoAnswer {
        centre: String,
        waited: Duration,
        last: String,
    },
}

/// The address the scenario's stations use: their 8-digit id behind `00`
/// (`62304000` → `0062304000`); `None` for other ids.
pub fn scenario_address(station: &str) -> Option<StationAddress> {
    if station.len() == 8 && station.bytes().all(|b| b.is_ascii_digit()) {
        format!("00{station}").parse().ok()
    } else {
        None
    }
}

/// One element of a report: the standard's identifier and a value.
pub fn element(code: u8, value: Value) -> Element {
    Element {
        identifier: Identifier::Standard(code),
        definition: elements::info(code).map_or(0, |i| i.definition()),
        value,
        raw: Vec::new(),
    }
}

/// An uplink HEX report frame: `groups` are (observation time, elements), times local.
pub fn report_frame(
    address: StationAddress,
    function: u8,
    serial: u16,
    sent: DateTime,
    kind: u8,
    groups: Vec<(DateTime, Vec<Element>)>,
) -> Result<Vec<u8>, Sl651Error> {
    let report = Report {
        serial,
        sent,
        station: Some(StationBlock { address, kind }),
        groups: groups
            .into_iter()
            .map(|(observed, elements)| Group {
                observed: Some(observed),
                step_minutes: None,
                elements,
            })
            .collect(),
    };
    let body = body::encode(Encoding::Hex, &report)?;
    frame::encode(&FrameSpec {
        encoding: Encoding::Hex,
        direction: Direction::Up,
        center: 0x01,
        station: address,
        password: 0x0000,
        function,
        packet: None,
        body: &body,
        end: EndMark::Etx,
    })
}

/// One RTU's link to the centre.
pub struct Rtu {
    centre: String,
    pub address: StationAddress,
    serial: u16,
    link: Option<TcpStream>,
    decoder: FrameDecoder,
    /// Give up on a frame after this long without an answer.
    pub give_up_after: Duration,
}

impl Rtu {
    /// An RTU that connects to `centre` (HOST:PORT) when it first reports.
    pub fn new(centre: &str, address: StationAddress) -> Rtu {
        Rtu {
            centre: centre.to_string(),
            address,
            serial: 0,
            link: None,
            decoder: FrameDecoder::default(),
            give_up_after: Duration::from_secs(60),
        }
    }

    /// The next serial number (流水号), 1..=65535.
    pub fn next_serial(&mut self) -> u16 {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        self.serial
    }

    /// Sends `frame` and waits for the centre's answer with the same function code and
    /// serial; sends it again on a new link when the answer does not come.
    pub async fn send(&mut self, frame: &[u8]) -> Result<Frame, RtuError> {
        let sent = Frame::parse(frame)?;
        let serial = sent.body.get(..2).map(|s| u16::from_be_bytes([s[0], s[1]]));
        let deadline = tokio::time::Instant::now() + self.give_up_after;
        let mut backoff = Duration::from_millis(100);
        loop {
            let last = match self.try_send(frame, sent.header.function, serial).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            self.link = None;
            self.decoder = FrameDecoder::default();
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(RtuError::NoAnswer {
                    centre: self.centre.clone(),
                    waited: self.give_up_after,
                    last,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn try_send(
        &mut self,
        frame: &[u8],
        function: u8,
        serial: Option<u16>,
    ) -> Result<Frame, String> {
        if self.link.is_none() {
            let link = TcpStream::connect(&self.centre)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = link.set_nodelay(true);
            self.link = Some(link);
        }
        let link = self.link.as_mut().ok_or("no link")?;
        link.write_all(frame)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 512];
        let wait = async {
            loop {
                let n = link
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("the centre closed the link".to_string());
                }
                for answer in self.decoder.push(&buf[..n]).into_iter().flatten() {
                    let echoed = answer
                        .body
                        .get(..2)
                        .map(|s| u16::from_be_bytes([s[0], s[1]]));
                    if answer.header.function == function && (serial.is_none() || echoed == serial)
                    {
                        return match answer.end {
                            EndMark::Nak => Err("the centre answered NAK".to_string()),
                            _ => Ok(answer),
                        };
                    }
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, wait)
            .await
            .map_err(|_| format!("no answer within {ANSWER_TIMEOUT:?}"))?
    }
}

/// What one scenario station reports next, from the readings at one step.
#[derive(Default)]
struct StationPlay {
    /// The last hour's 5-minute values, for the hourly report: (time, value).
    recent: Vec<(Millis, f64)>,
    last_level: Option<f64>,
    rain_total: f64,
}

/// Plays the scenario's `readings` (in time order) as RTUs against `centre`, paced by
/// `pacer`; stations whose id has no [`scenario_address`] are skipped. Returns the number
/// of frames answered.
pub async fn play(
    centre: &str,
    pacer: &mut super::Pacer,
    readings: Vec<Reading>,
    tz: &TimeZone,
) -> anyhow::Result<u64> {
    let mut rtus: HashMap<String, Rtu> = HashMap::new();
    let mut plays: HashMap<String, StationPlay> = HashMap::new();
    let mut answered = 0u64;
    let mut steps: Vec<(Millis, Vec<Reading>)> = Vec::new();
    for r in readings {
        if scenario_address(&r.station).is_none() {
            continue;
        }
        match steps.last_mut() {
            Some((t, batch)) if *t == r.time => batch.push(r),
            _ => steps.push((r.time, vec![r])),
        }
    }
    for (time, batch) in steps {
        pacer.wait_for(time).await;
        let local = to_local(time, tz)?;
        let mut frames: Vec<(String, Vec<u8>)> = Vec::new();
        for r in &batch {
            let Some(address) = scenario_address(&r.station) else {
                continue;
            };
            let rtu = rtus
                .entry(r.station.clone())
                .or_insert_with(|| Rtu::new(centre, address));
            let play = plays.entry(r.station.clone()).or_default();
            for frame in reports(rtu, play, r, local)? {
                frames.push((r.station.clone(), frame));
            }
        }
        // Stations report at once, each on its own link, each waiting for its answers.
        let mut by_station: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (station, frame) in frames {
            by_station.entry(station).or_default().push(frame);
        }
        let sends = rtus
            .iter_mut()
            .filter_map(|(id, rtu)| by_station.remove(id).map(|f| (rtu, f)))
            .map(|(rtu, frames)| async move {
                let mut n = 0u64;
                for frame in frames {
                    rtu.send(&frame).await?;
                    n += 1;
                }
                Ok::<u64, RtuError>(n)
            });
        for result in futures::future::join_all(sends).await {
            answered += result?;
        }
    }
    Ok(answered)
}

fn to_local(time: Millis, tz: &TimeZone) -> anyhow::Result<DateTime> {
    Ok(jiff::Timestamp::from_millisecond(time)?
        .to_zoned(tz.clone())
        .datetime())
}

/// The frames one station sends for one reading: timed, perhaps added, and hourly on the hour.
fn reports(
    rtu: &mut Rtu,
    play: &mut StationPlay,
    r: &Reading,
    local: DateTime,
) -> Result<Vec<Vec<u8>>, Sl651Error> {
    let mut out = Vec::new();
    let battery = element(0x38, Value::Number(12.6));
    // RTUs report levels in centimetres (DRZ1 can carry no more), so that the hourly series
    // repeats the timed reports' values exactly.
    if let Some(level) = r.level_m.map(|l| (l * 100.0).round() / 100.0) {
        let rising = play.last_level.is_some_and(|l| level - l > 0.1);
        play.last_level = Some(level);
        play.recent.push((r.time, level));
        let elements = vec![element(0x39, Value::Number(level)), battery.clone()];
        let serial = rtu.next_serial();
        let f = report_frame(
            rtu.address,
            function::TIMED,
            serial,
            local,
            b'H',
            vec![(local, elements)],
        )?;
        out.push(f);
        if rising {
            let serial = rtu.next_serial();
            let elements = vec![element(0x39, Value::Number(level))];
            out.push(report_frame(
                rtu.address,
                function::ADDED,
                serial,
                local,
                b'H',
                vec![(local, elements)],
            )?);
        }
    }
    if let Some(mm) = r.rain_mm {
        play.rain_total = ((play.rain_total + mm) * 10.0).round() / 10.0;
        play.recent.push((r.time, mm));
        let elements = vec![
            element(0x22, Value::Number(mm)),
            element(0x26, Value::Number(play.rain_total)),
            battery.clone(),
        ];
        let serial = rtu.next_serial();
        out.push(report_frame(
            rtu.address,
            function::TIMED,
            serial,
            local,
            b'P',
            vec![(local, elements)],
        )?);
    }
    if local.minute() == 0 && !play.recent.is_empty() {
        // The hour ending now: slot i is observed − 55 min + 5·i min.
        let mut slots = vec![None; 12];
        for (t, v) in &play.recent {
            let back = (r.time - t) / 300_000;
            if (0..12).contains(&back) {
                slots[11 - back as usize] = Some(*v);
            }
        }
        let (code, kind) = match r.level_m {
            Some(_) => (0xF5, b'H'),
            None => (0xF4, b'P'),
        };
        let serial = rtu.next_serial();
        out.push(report_frame(
            rtu.address,
            function::HOURLY,
            serial,
            local,
            kind,
            vec![(local, vec![element(code, Value::Series(slots)), battery])],
        )?);
        play.recent.retain(|(t, _)| r.time - t < 3_600_000);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sl651::readings::LevelElement;

    #[test]
    fn a_timed_report_decodes_to_the_reading_it_was_made_from() {
        let address = scenario_address("62304000").expect("address");
        assert_eq!(address.to_string(), "0062304000");
        let local: DateTime = "2021-07-20T08:05:00".parse().expect("time");
        let bytes = report_frame(
            address,
            function::TIMED,
            7,
            local,
            b'H',
            vec![(local, vec![element(0x39, Value::Number(59.32))])],
        )
        .expect("encodes");
        let frame = Frame::parse(&bytes).expect("parses");
        let tz = TimeZone::get("Asia/Shanghai").expect("zone");
        let decoded =
            crate::sl651::decode_report(&frame, "62304000", LevelElement::Z, &tz).expect("decodes");
        assert_eq!(decoded.report.serial, 7);
        assert_eq!(decoded.readings.len(), 1);
        assert_eq!(decoded.readings[0].time, 1_626_739_500_000);
        assert_eq!(decoded.readings[0].level_m, Some(59.32));
    }

    #[test]
    fn the_hourly_report_repeats_the_hour_the_timed_ones_carried() {
        let mut rtu = Rtu::new("127.0.0.1:1", scenario_address("62304800").expect("a"));
        let mut play = StationPlay::default();
        let tz = TimeZone::get("Asia/Shanghai").expect("zone");
        let start = 1_626_739_500_000 - 300_000; // 08:00 Beijing
        let mut last = Vec::new();
        for i in 1..=12 {
            let mut r = Reading::empty("62304800", start + i * 300_000);
            r.rain_mm = Some(i as f64 / 10.0);
            last = reports(&mut rtu, &mut play, &r, to_local(r.time, &tz).expect("t"))
                .expect("frames");
        }
        assert_eq!(last.len(), 2, "timed, then hourly at 09:00");
        let hourly = Frame::parse(&last[1]).expect("parses");
        let readings = crate::sl651::decode_report(&hourly, "r", LevelElement::Z, &tz)
            .expect("decodes")
            .readings;
        assert_eq!(readings.len(), 12);
        assert_eq!(readings[0].time, start + 300_000);
        assert_eq!(readings[0].rain_mm, Some(0.1));
        assert_eq!(readings[11].rain_mm, Some(1.2));
    }
}
