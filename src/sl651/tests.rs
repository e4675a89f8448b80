//! Tests of the protocol module: the worked frames (tests/data/sl651_examples.md), element
//! round trips, broken and noisy streams, series timing, ASCII, M3 and answers.

use jiff::civil::{date, DateTime};
use jiff::tz::TimeZone;

use super::body::{self, Group, Report, StationBlock};
use super::elements::{self, Element, Identifier, Kind, Value};
use super::frame::{self, function, Direction, Encoding, EndMark, FrameSpec, Packet};
use super::multipacket::{Assembly, Reassembler};
use super::readings::LevelElement;
use super::reply::{self, ReplyEnd};
use super::*;

const EXAMPLE_1: &str = "7E7E 01 0100000001 1234 30 0033 02 0040 201126142746
    F1F1 0100000001 48 F0F0 2011261427 2019000000 2619000000
    392300000075 38121208 7A0829 FFA0110288 03 E43B";

const EXAMPLE_2: &str = "7E7E 00 0081120005 FFFF 32 0020 02 25B9 260701063006
    F1F1 0081120005 50 F0F0 2607010630 2619001848 38121200 03 C648";

const EXAMPLE_3_UP: &str = "7E7E 01 0012345678 1234 30 002B 02 0003 591011154947
    F1F1 0012345678 48 F0F0 5910111549 2019000005 2619000005 392300000127 38121115 03 20FA";

const EXAMPLE_3_DOWN: &str = "7E7E 0012345678 01 1234 30 8008 02 0003 591011154947 1B 75D4";

fn bytes(hex: &str) -> Vec<u8> {
    let clean: String = hex.split_whitespace().collect();
    frame::hex_text(clean.as_bytes()).expect("test hex")
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").expect("tz")
}

fn utc_ms(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
    date(y, mo, d)
        .at(h, mi, 0, 0)
        .to_zoned(TimeZone::UTC)
        .expect("utc")
        .timestamp()
        .as_millisecond()
}

fn station() -> StationAddress {
    "0062304000".parse().expect("address")
}

fn number(code: u8, value: f64) -> Element {
    let info = elements::info(code).expect("in table");
    Element {
        identifier: Identifier::Standard(code),
        definition: info.definition(),
        value: Value::Number(value),
        raw: Vec::new(),
    }
}

fn series(code: u8, values: Vec<Option<f64>>) -> Element {
    let info = elements::info(code).expect("in table");
    Element {
        identifier: Identifier::Standard(code),
        definition: info.definition(),
        value: Value::Series(values),
        raw: Vec::new(),
    }
}

fn group(observed: DateTime, elements: Vec<Element>) -> Group {
    Group {
        observed: Some(observed),
        step_minutes: None,
        elements,
    }
}

fn report(groups: Vec<Group>) -> Report {
    Report {
        serial: 0x0102,
        sent: date(2021, 7, 20).at(8, 0, 30, 0),
        station: Some(StationBlock {
            address: station(),
            kind: b'H',
        }),
        groups,
    }
}

/// An uplink report frame as an RTU would send it.
fn uplink(encoding: Encoding, function: u8, report: &Report) -> Vec<u8> {
    let body = body::encode(encoding, report).expect("encodes");
    frame::encode(&FrameSpec {
        encoding,
        direction: Direction::Up,
        center: 0x01,
        station: station(),
        password: 0x1234,
        function,
        packet: None,
        body: &body,
        end: EndMark::Etx,
    })
    .expect("frame")
}

fn decode_one(raw: &[u8]) -> Frame {
    Frame::parse(raw).expect("frame parses")
}

/// Strips the raw bytes, which the encoder does not fill, for comparisons.
fn values(report: &Report) -> Vec<(Option<DateTime>, Identifier, Value)> {
    report
        .elements()
        .map(|(t, e)| (t, e.identifier.clone(), e.value.clone()))
        .collect()
}

#[test]
fn worked_example_1_decodes_to_the_documented_values() {
    let raw = bytes(EXAMPLE_1);
    let frame = decode_one(&raw);
    let h = &frame.header;
    assert_eq!(h.encoding, Encoding::Hex);
    assert_eq!(h.direction, Direction::Up);
    assert_eq!(h.center, 0x01);
    assert_eq!(h.station.to_string(), "0100000001");
    assert_eq!(h.password, 0x1234);
    assert_eq!(h.function, function::TEST);
    assert_eq!(h.length, 51);
    assert_eq!(h.packet, None);
    assert_eq!(frame.end, EndMark::Etx);
    assert_eq!(frame.body.len(), 51);
    assert_eq!(crc::crc16(&raw[..raw.len() - 2]), 0xE43B);

    let decoded = decode_report(&frame, "river-1", LevelElement::Z, &shanghai()).expect("decodes");
    let r = &decoded.report;
    assert_eq!(r.serial, 0x0040);
    assert_eq!(r.sent, date(2020, 11, 26).at(14, 27, 46, 0));
    assert_eq!(
        r.station,
        Some(StationBlock {
            address: "0100000001".parse().expect("address"),
            kind: 0x48
        })
    );
    assert_eq!(r.groups.len(), 1);
    assert_eq!(
        r.groups[0].observed,
        Some(date(2020, 11, 26).at(14, 27, 0, 0))
    );
    let got: Vec<(String, Value)> = r.groups[0]
        .elements
        .iter()
        .map(|e| (e.identifier.label(), e.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("20 PJ".to_string(), Value::Number(0.0)),
            ("26 PT".to_string(), Value::Number(0.0)),
            ("39 Z".to_string(), Value::Number(0.075)),
            ("38 VT".to_string(), Value::Number(12.08)),
            ("7A".to_string(), Value::Number(29.0)),
            ("FFA0".to_string(), Value::Number(28.8)),
        ]
    );
    let z = &r.groups[0].elements[2];
    assert_eq!(
        (z.symbol(), z.unit(), z.raw.clone()),
        ("Z".into(), "m", vec![0, 0, 0, 0x75])
    );
    assert_eq!(r.groups[0].elements[4].name(), "unknown");

    // 14:27 Beijing time is 06:27 UTC.
    let mut expected = crate::model::Reading::empty("river-1", utc_ms(2020, 11, 26, 6, 27));
    expected.level_m = Some(0.075);
    expected.rain_total_mm = Some(0.0);
    expected.battery_v = Some(12.08);
    assert_eq!(decoded.readings, vec![expected]);
}

#[test]
fn worked_example_2_decodes_to_the_documented_values() {
    let raw = bytes(EXAMPLE_2);
    let frame = decode_one(&raw);
    assert_eq!(frame.header.center, 0x00);
    assert_eq!(frame.header.station.to_string(), "0081120005");
    assert_eq!(frame.header.password, 0xFFFF);
    assert_eq!(frame.header.function, function::TIMED);
    assert_eq!(frame.header.length, 32);
    assert_eq!(crc::crc16(&raw[..raw.len() - 2]), 0xC648);

    let decoded = decode_report(&frame, "rain-5", LevelElement::Z, &shanghai()).expect("ok");
    assert_eq!(decoded.report.serial, 0x25B9);
    assert_eq!(decoded.report.sent, date(2026, 7, 1).at(6, 30, 6, 0));
    assert_eq!(decoded.report.station.map(|s| s.kind), Some(b'P'));
    let mut expected = crate::model::Reading::empty("rain-5", utc_ms(2026, 6, 30, 22, 30));
    expected.rain_total_mm = Some(184.8);
    expected.battery_v = Some(12.0);
    assert_eq!(decoded.readings, vec![expected]);
}

#[test]
fn published_answer_is_reproduced_byte_for_byte() {
    let up = decode_one(&bytes(EXAMPLE_3_UP));
    let decoded = decode_report(&up, "s", LevelElement::Z, &shanghai()).expect("ok");
    let r = &decoded.readings[0];
    assert_eq!(
        (r.level_m, r.rain_total_mm, r.battery_v),
        (Some(0.127), Some(0.5), Some(11.15))
    );

    let end = reply::end_for(up.end, ReplyEnd::Esc).expect("answered");
    let answer = reply::answer(&up.header, decoded.report.serial, decoded.report.sent, end)
        .expect("encodes");
    assert_eq!(answer, bytes(EXAMPLE_3_DOWN));
    let parsed = decode_one(&answer);
    assert_eq!(parsed.header.direction, Direction::Down);
    assert_eq!(parsed.header.station, up.header.station);
    assert_eq!(parsed.header.center, up.header.center);
    assert_eq!(parsed.end, EndMark::Esc);
}

/// A value that fits an element's default definition, to round-trip every table row.
fn sample(info: &elements::ElementInfo) -> f64 {
    let digits = i32::from(info.digits.min(9));
    let decimals = i32::from(info.decimals);
    // 1234... truncated to the element's digits, scaled by its decimals.
    let n: f64 = "123456789"[..digits.max(1) as usize]
        .parse()
        .expect("digits");
    n / 10f64.powi(decimals)
}

#[test]
fn every_element_type_round_trips_hex_and_ascii() {
    let t = date(2021, 7, 20).at(8, 0, 0, 0);
    let mut elements = Vec::new();
    for info in elements::TABLE {
        let e = match info.kind {
            Kind::Number => number(info.code, sample(info)),
            Kind::RainSeries => series(
                info.code,
                (0..12)
                    .map(|i| (i % 5 != 4).then_some(f64::from(i) * 0.5))
                    .collect(),
            ),
            Kind::LevelSeries => series(
                info.code,
                (0..12)
                    .map(|i| (i != 3).then_some(59.0 + f64::from(i) / 100.0))
                    .collect(),
            ),
            Kind::Status => Element {
                identifier: Identifier::Standard(info.code),
                definition: 0x20,
                value: Value::Status(0x0000_0A05),
                raw: Vec::new(),
            },
            Kind::TimeStep | Kind::Raw => continue,
        };
        elements.push(e);
    }
    elements.push(Element {
        identifier: Identifier::UserDefined(0xA0),
        definition: 0x11,
        value: Value::Number(28.8),
        raw: Vec::new(),
    });
    elements.push(Element {
        identifier: Identifier::Standard(0x7A),
        definition: 0x08,
        value: Value::Number(29.0),
        raw: Vec::new(),
    });
    let original = report(vec![group(t, elements)]);
    for encoding in [Encoding::Hex, Encoding::Ascii] {
        // Split across several frames: the whole table does not fit one 12-bit length.
        for chunk in original.groups[0].elements.chunks(40) {
            let part = report(vec![group(t, chunk.to_vec())]);
            let raw = uplink(encoding, function::TIMED, &part);
            let frame = decode_one(&raw);
            let back = body::decode(encoding, frame.header.function, &frame.body).expect("body");
            let expected: Vec<_> = values(&part)
                .into_iter()
                .filter(|(_, id, _)| {
                    // ASCII frames name only the standard's elements.
                    encoding == Encoding::Hex || id.info().is_some()
                })
                .collect();
            let got: Vec<_> = values(&back)
                .into_iter()
                .filter(|(_, id, _)| encoding == Encoding::Hex || id.info().is_some())
                .collect();
            assert_eq!(got, expected, "{encoding:?}");
            assert_eq!(back.serial, part.serial);
            assert_eq!(back.sent, part.sent);
            assert_eq!(back.station, part.station);
        }
    }
}

#[test]
fn negative_values_and_absent_markers_decode() {
    let t = date(2021, 1, 5).at(8, 0, 0, 0);
    let mut absent = number(0x3B, 0.0);
    absent.value = Value::Absent;
    let r = report(vec![group(
        t,
        vec![number(0x39, -1.234), number(0x02, -12.5), absent],
    )]);
    let raw = uplink(Encoding::Hex, function::TIMED, &r);
    // Z: definition 0x2B (one more byte), FF sign, then 00 00 12 34.
    let z_at = raw
        .windows(2)
        .position(|w| w == [0x39, 0x2B])
        .expect("negative Z definition");
    assert_eq!(&raw[z_at + 2..z_at + 7], &[0xFF, 0x00, 0x00, 0x12, 0x34]);
    let frame = decode_one(&raw);
    let decoded = decode_report(&frame, "s", LevelElement::Z, &shanghai()).expect("ok");
    let got: Vec<Value> = decoded.report.groups[0]
        .elements
        .iter()
        .map(|e| e.value.clone())
        .collect();
    assert_eq!(
        got,
        vec![Value::Number(-1.234), Value::Number(-12.5), Value::Absent]
    );
    assert_eq!(decoded.readings[0].level_m, Some(-1.234));
}

#[test]
fn several_observation_groups_each_apply_to_the_elements_after_them() {
    let r = report(vec![
        group(
            date(2021, 7, 20).at(8, 0, 0, 0),
            vec![number(0x39, 59.10), number(0x26, 10.0)],
        ),
        group(
            date(2021, 7, 20).at(8, 5, 0, 0),
            vec![number(0x39, 59.32), number(0x26, 11.5)],
        ),
        group(
            date(2021, 7, 20).at(8, 10, 0, 0),
            vec![number(0x27, 850.125)],
        ),
    ]);
    let frame = decode_one(&uplink(Encoding::Hex, function::ADDED, &r));
    let d = decode_report(&frame, "62304000", LevelElement::Z, &shanghai()).expect("ok");
    type Row = (i64, Option<f64>, Option<f64>, Option<f64>);
    let got: Vec<Row> = d
        .readings
        .iter()
        .map(|r| (r.time, r.level_m, r.rain_total_mm, r.flow_m3s))
        .collect();
    assert_eq!(
        got,
        vec![
            (utc_ms(2021, 7, 20, 0, 0), Some(59.10), Some(10.0), None),
            (utc_ms(2021, 7, 20, 0, 5), Some(59.32), Some(11.5), None),
            (utc_ms(2021, 7, 20, 0, 10), None, None, Some(850.125)),
        ]
    );
}

#[test]
fn hourly_series_cover_the_hour_ending_at_the_observation_time() {
    // DRP: 0.0, 0.5, ..., with slot 4 absent (FF); DRZ1: levels in cm, slot 3 absent (FFFF).
    let drp: Vec<Option<f64>> = (0..12)
        .map(|i| (i != 4).then_some(f64::from(i) * 0.5))
        .collect();
    let drz: Vec<Option<f64>> = (0..12)
        .map(|i| (i != 3).then_some(59.0 + f64::from(i) / 100.0))
        .collect();
    let r = report(vec![group(
        date(2021, 7, 20).at(9, 0, 0, 0),
        vec![
            series(0xF4, drp),
            series(0xF5, drz),
            number(0x39, 59.50),
            number(0x22, 9.9),
            number(0x1A, 30.0),
            number(0x26, 120.0),
        ],
    )]);
    let frame = decode_one(&uplink(Encoding::Hex, function::HOURLY, &r));
    // The series bytes as the standard lays them out.
    let f4 = frame
        .body
        .windows(2)
        .position(|w| w == [0xF4, 0x60])
        .expect("F4 60");
    assert_eq!(frame.body[f4 + 2 + 4], 0xFF);
    let f5 = frame
        .body
        .windows(2)
        .position(|w| w == [0xF5, 0xC0])
        .expect("F5 C0");
    assert_eq!(&frame.body[f5 + 2..f5 + 4], &[0x17, 0x0C]); // 5900 cm
    assert_eq!(&frame.body[f5 + 2 + 6..f5 + 2 + 8], &[0xFF, 0xFF]);

    let d = decode_report(&frame, "s", LevelElement::Z, &shanghai()).expect("ok");
    assert_eq!(d.readings.len(), 12);
    let first = &d.readings[0];
    // 09:00 Beijing = 01:00 UTC; the first value is 08:05 Beijing = 00:05 UTC.
    assert_eq!(first.time, utc_ms(2021, 7, 20, 0, 5));
    assert_eq!(
        (first.level_m, first.rain_mm, first.rain_period_s),
        (Some(59.0), Some(0.0), Some(300))
    );
    let slot3 = &d.readings[3];
    assert_eq!((slot3.level_m, slot3.rain_mm), (None, Some(1.5)));
    let slot4 = &d.readings[4];
    assert_eq!((slot4.level_m, slot4.rain_mm), (Some(59.04), None));
    let last = &d.readings[11];
    assert_eq!(last.time, utc_ms(2021, 7, 20, 1, 0));
    // Z and PN05 win over the series' last values; P1 is dropped (finer amounts exist).
    assert_eq!(last.level_m, Some(59.50));
    assert_eq!((last.rain_mm, last.rain_period_s), (Some(9.9), Some(300)));
    assert_eq!(last.rain_total_mm, Some(120.0));
    assert!(d.readings.iter().all(|r| r.rain_period_s != Some(3600)));
}

#[test]
fn hourly_rain_is_used_only_without_finer_amounts_and_counters_never_double_count() {
    let t = date(2021, 7, 20).at(9, 0, 0, 0);
    let only_p1 = report(vec![group(t, vec![number(0x1A, 12.5), number(0x26, 40.0)])]);
    let d = decode_report(
        &decode_one(&uplink(Encoding::Hex, function::TIMED, &only_p1)),
        "s",
        LevelElement::Z,
        &shanghai(),
    )
    .expect("ok");
    assert_eq!(
        (
            d.readings[0].rain_mm,
            d.readings[0].rain_period_s,
            d.readings[0].rain_total_mm
        ),
        (Some(12.5), Some(3600), Some(40.0))
    );

    // DRP whose last slot is absent: the PT reading at that time still gets an amount (0),
    // so the rules do not derive one from the counter over the hour DRP already covers.
    let mut drp: Vec<Option<f64>> = vec![Some(1.0); 12];
    drp[11] = None;
    let with_drp = report(vec![group(t, vec![series(0xF4, drp), number(0x26, 52.0)])]);
    let d = decode_report(
        &decode_one(&uplink(Encoding::Hex, function::HOURLY, &with_drp)),
        "s",
        LevelElement::Z,
        &shanghai(),
    )
    .expect("ok");
    let last = d.readings.last().expect("readings");
    assert_eq!(
        (last.rain_mm, last.rain_period_s, last.rain_total_mm),
        (Some(0.0), Some(300), Some(52.0))
    );
    let sum: f64 = d.readings.iter().filter_map(|r| r.rain_mm).sum();
    assert!((sum - 11.0).abs() < 1e-9);

    // A PT-only group is left to the counter.
    let pt_only = report(vec![group(t, vec![number(0x26, 52.0)])]);
    let d = decode_report(
        &decode_one(&uplink(Encoding::Hex, function::TIMED, &pt_only)),
        "s",
        LevelElement::Z,
        &shanghai(),
    )
    .expect("ok");
    assert_eq!(d.readings[0].rain_mm, None);
}

#[test]
fn the_station_level_element_decides_which_level_is_kept() {
    let t = date(2021, 7, 20).at(9, 0, 0, 0);
    let drz2: Vec<Option<f64>> = vec![Some(41.0); 12];
    let r = report(vec![group(
        t,
        vec![
            number(0x3B, 62.0),
            number(0x3A, 41.2),
            number(0x39, 1.0),
            series(0xF6, drz2),
        ],
    )]);
    let frame = decode_one(&uplink(Encoding::Hex, function::HOURLY, &r));
    let zu = decode_report(&frame, "s", LevelElement::Zu, &shanghai()).expect("ok");
    assert_eq!(zu.readings.len(), 1);
    assert_eq!(zu.readings[0].level_m, Some(62.0));
    let zb = decode_report(&frame, "s", LevelElement::Zb, &shanghai()).expect("ok");
    assert_eq!(zb.readings.len(), 12);
    assert_eq!(zb.readings[0].level_m, Some(41.0));
    assert_eq!(zb.readings[11].level_m, Some(41.2));
    assert_eq!("zu".parse::<LevelElement>().ok(), Some(LevelElement::Zu));
    assert!("Q".parse::<LevelElement>().is_err());
}

#[test]
fn uniform_interval_values_are_one_per_step_from_the_observation_time() {
    let t = date(2021, 7, 20).at(8, 0, 0, 0);
    let step = Element {
        identifier: Identifier::Standard(0x04),
        definition: 0x18,
        value: Value::Step { minutes: 5 },
        raw: Vec::new(),
    };
    let mut z = series(0x39, vec![Some(59.1), Some(59.2), None, Some(59.4)]);
    z.definition = 0x23;
    let r = report(vec![Group {
        observed: Some(t),
        step_minutes: Some(5),
        elements: vec![step, z],
    }]);
    // HEX only: uniform-interval reports in ASCII frames are not supported yet.
    let frame = decode_one(&uplink(Encoding::Hex, function::UNIFORM_INTERVAL, &r));
    let d = decode_report(&frame, "s", LevelElement::Z, &shanghai()).expect("ok");
    assert_eq!(d.report.groups[0].step_minutes, Some(5));
    let got: Vec<(i64, Option<f64>)> = d.readings.iter().map(|r| (r.time, r.level_m)).collect();
    assert_eq!(
        got,
        vec![
            (utc_ms(2021, 7, 20, 0, 0), Some(59.1)),
            (utc_ms(2021, 7, 20, 0, 5), Some(59.2)),
            (utc_ms(2021, 7, 20, 0, 15), Some(59.4)),
        ]
    );
}

#[test]
fn a_hand_written_ascii_frame_decodes() {
    let body = "0040 201126142746 ST 0100000001 H TT 2011261427 PJ 0.0 PT 12.5 Z -0.075 VT 12.08 DRP 0005FF000000000000000001 XQ 7";
    // SOH, centre 01, station 0100000001, password 1234, function 32, up + length, STX.
    let mut raw = format!("\x01010100000001123432{:04X}\x02", body.len()).into_bytes();
    raw.extend(body.as_bytes());
    raw.push(0x03);
    let crc = crc::crc16(&raw);
    raw.extend(format!("{crc:04X}").into_bytes());

    let frame = decode_one(&raw);
    assert_eq!(frame.header.encoding, Encoding::Ascii);
    assert_eq!(frame.header.station.to_string(), "0100000001");
    assert_eq!(frame.header.function, function::TIMED);
    assert_eq!(frame.header.password, 0x1234);
    let d = decode_report(&frame, "s", LevelElement::Z, &shanghai()).expect("ok");
    assert_eq!(d.report.serial, 0x40);
    assert_eq!(d.report.station.map(|s| s.kind), Some(b'H'));
    let unknown = d.report.groups[0].elements.last().expect("XQ");
    assert_eq!(unknown.identifier, Identifier::Symbol("XQ".into()));
    let at_obs = d.readings.last().expect("reading at 14:27");
    assert_eq!(at_obs.time, utc_ms(2020, 11, 26, 6, 27));
    assert_eq!(at_obs.level_m, Some(-0.075));
    assert_eq!(at_obs.rain_total_mm, Some(12.5));
    assert_eq!(at_obs.rain_mm, Some(0.1));
    // DRP slot 1 = 0.5 mm at 13:37; slot 2 absent.
    assert_eq!(d.readings[1].rain_mm, Some(0.5));

    // ASCII frames are answered in ASCII.
    let answer = reply::answer(
        &frame.header,
        0x40,
        date(2020, 11, 26).at(14, 28, 0, 0),
        EndMark::Eot,
    )
    .expect("answer");
    assert_eq!(answer[0], 0x01);
    let back = decode_one(&answer);
    assert_eq!(
        (back.header.direction, back.end),
        (Direction::Down, EndMark::Eot)
    );
    assert_eq!(back.body, b"0040 201126142800".to_vec());
}

#[test]
fn bad_crc_is_reported_with_the_header() {
    let mut raw = bytes(EXAMPLE_1);
    let n = raw.len();
    raw[n - 1] ^= 0x01;
    let err = Frame::parse(&raw).expect_err("bad crc");
    assert_eq!(err.cause(), "crc");
    assert_eq!(
        err.header().map(|h| h.station.to_string()),
        Some("0100000001".into())
    );
    // A changed body byte is caught too.
    let mut raw = bytes(EXAMPLE_1);
    raw[40] ^= 0x10;
    assert_eq!(Frame::parse(&raw).expect_err("bad crc").cause(), "crc");
}

#[test]
fn truncated_and_wrong_length_frames_are_told_apart() {
    let raw = bytes(EXAMPLE_1);
    let err = Frame::parse(&raw[..40]).expect_err("truncated");
    assert_eq!(err.cause(), "truncated");
    assert_eq!(err.header().map(|h| h.function), Some(0x30));

    let mut wrong = raw.clone();
    wrong[12] = 0x30; // declares 48 body bytes instead of 51
    let err = Frame::parse(&wrong).expect_err("bad length");
    assert_eq!(err.cause(), "bad_length");
    assert!(err.header().is_some());

    let mut decoder = FrameDecoder::default();
    assert!(decoder.push(&raw[..30]).is_empty());
    let err = decoder.finish().expect("truncated at end of stream");
    assert_eq!(err.cause(), "truncated");
}

#[test]
fn garbage_between_frames_is_skipped() {
    let one = bytes(EXAMPLE_1);
    let two = bytes(EXAMPLE_2);
    let mut stream = b"AT+CSQ\r\n\x7E\x00noise\x01zz".to_vec();
    stream.extend(&one);
    stream.extend([0x7E, 0x7E, 0x01, 0x02]); // a false start
    stream.extend(b"\xFF\xFE");
    stream.extend(&two);
    stream.extend(b"trailing");
    let mut decoder = FrameDecoder::default();
    let out = decoder.push(&stream);
    let frames: Vec<&Frame> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(frames.len(), 2, "{out:?}");
    assert_eq!(frames[0].raw, one);
    assert_eq!(frames[1].raw, two);
    assert!(decoder.skipped() > 0);
    assert!(decoder.buffered() < 8);
}

#[test]
fn a_frame_delivered_one_byte_at_a_time_decodes_once() {
    let mut stream = bytes(EXAMPLE_1);
    stream.extend(bytes(EXAMPLE_2));
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    for b in &stream {
        for r in decoder.push(std::slice::from_ref(b)) {
            frames.push(r.expect("valid"));
        }
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].header.station.to_string(), "0081120005");
}

#[test]
fn a_truncated_frame_followed_by_a_good_one_does_not_stall_the_stream() {
    let one = bytes(EXAMPLE_1);
    let two = bytes(EXAMPLE_2);
    let mut stream = one[..50].to_vec();
    stream.extend(&two);
    let mut decoder = FrameDecoder::default();
    let out = decoder.push(&stream);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[0].as_ref().map_err(Sl651Error::cause).err(),
        Some("truncated")
    );
    assert_eq!(out[1].as_ref().map(|f| f.raw.clone()).ok(), Some(two));
}

#[test]
fn an_oversized_declared_length_is_refused_and_skipped() {
    let mut big = bytes(EXAMPLE_1);
    big[11] = 0x0F;
    big[12] = 0xFF;
    let mut stream = big[..40].to_vec();
    stream.extend(bytes(EXAMPLE_2));
    let mut decoder = FrameDecoder::new(512);
    let out = decoder.push(&stream);
    assert_eq!(out.len(), 2, "{out:?}");
    let err = out[0].as_ref().expect_err("too large");
    assert_eq!(err.cause(), "too_large");
    assert_eq!(err.header().map(|h| h.length), Some(0xFFF));
    assert!(out[1].is_ok());
    assert!(decoder.buffered() <= 512);
}

#[test]
fn a_bad_crc_in_a_stream_keeps_the_next_frame() {
    let mut one = bytes(EXAMPLE_1);
    let n = one.len();
    one[n - 2] ^= 0xFF;
    let mut stream = one;
    stream.extend(bytes(EXAMPLE_2));
    let out = FrameDecoder::default().push(&stream);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].as_ref().map_err(Sl651Error::cause).err(),
        Some("crc")
    );
    assert!(out[1].is_ok());
}

fn m3_packets(report: &Report, pieces: usize) -> Vec<Vec<u8>> {
    let body = body::encode(Encoding::Hex, report).expect("body");
    let size = body.len().div_ceil(pieces);
    let chunks: Vec<&[u8]> = body.chunks(size).collect();
    let total = chunks.len() as u16;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let number = i as u16 + 1;
            frame::encode(&FrameSpec {
                encoding: Encoding::Hex,
                direction: Direction::Up,
                center: 1,
                station: station(),
                password: 0x1234,
                function: function::HOURLY,
                packet: Some(Packet { total, number }),
                body: chunk,
                end: if number == total {
                    EndMark::Etx
                } else {
                    EndMark::Etb
                },
            })
            .expect("packet")
        })
        .collect()
}

#[test]
fn multi_packet_reports_are_reassembled_in_number_order() {
    let drp: Vec<Option<f64>> = vec![Some(0.5); 12];
    let r = report(vec![group(
        date(2021, 7, 20).at(9, 0, 0, 0),
        vec![series(0xF4, drp), number(0x39, 59.5), number(0x26, 88.0)],
    )]);
    let packets = m3_packets(&r, 3);
    assert_eq!(packets.len(), 3);
    let mut reassembler = Reassembler::default();
    // Packets 2, 3, 1 (an RTU resending after a NAK).
    let mut complete = None;
    for i in [1usize, 2, 0] {
        let f = decode_one(&packets[i]);
        assert_eq!(f.header.packet.map(|p| p.total), Some(3));
        match reassembler.push(f).expect("fits") {
            Assembly::Partial { received, total } => assert!(received < total),
            Assembly::Complete(whole) => complete = Some(whole),
        }
    }
    let whole = complete.expect("complete");
    assert_eq!(whole.end, EndMark::Etx);
    assert_eq!(reassembler.pending(), 0);
    let d = decode_report(&whole, "s", LevelElement::Z, &shanghai()).expect("ok");
    assert_eq!(values(&d.report), values(&r));
    assert_eq!(d.readings.len(), 12);

    // Each packet ending ETB is acknowledged with its numbers; the last gets EOT.
    let p1 = decode_one(&packets[0]);
    let end = reply::end_for(p1.end, ReplyEnd::Eot).expect("answered");
    assert_eq!(end, EndMark::Ack);
    let ack = decode_one(&reply::answer(&p1.header, 0x0102, r.sent, end).expect("ack"));
    assert_eq!(
        ack.header.packet,
        Some(Packet {
            total: 3,
            number: 1
        })
    );
    assert_eq!(ack.end, EndMark::Ack);
}

#[test]
fn a_packet_that_does_not_fit_is_refused_for_a_nak() {
    let r = report(vec![group(
        date(2021, 7, 20).at(9, 0, 0, 0),
        vec![number(0x39, 59.5)],
    )]);
    let packets = m3_packets(&r, 2);
    let mut bad = decode_one(&packets[0]);
    bad.header.packet = Some(Packet {
        total: 2,
        number: 3,
    });
    let mut reassembler = Reassembler::default();
    let err = reassembler.push(bad).expect_err("bad packet");
    assert_eq!(err.cause(), "bad_packet");
    let header = err.header().expect("header").clone();
    let nak = decode_one(&reply::answer(&header, 0, r.sent, EndMark::Nak).expect("nak"));
    assert_eq!(nak.end, EndMark::Nak);
    assert_eq!(nak.header.function, function::HOURLY);
    // The transfer still completes with the right packets.
    assert!(matches!(
        reassembler.push(decode_one(&packets[0])),
        Ok(Assembly::Partial { .. })
    ));
    assert!(matches!(
        reassembler.push(decode_one(&packets[1])),
        Ok(Assembly::Complete(_))
    ));
}

#[test]
fn answers_follow_the_end_byte_and_the_setting() {
    assert_eq!(
        reply::end_for(EndMark::Etx, ReplyEnd::Eot),
        Some(EndMark::Eot)
    );
    assert_eq!(
        reply::end_for(EndMark::Etx, ReplyEnd::Esc),
        Some(EndMark::Esc)
    );
    assert_eq!(
        reply::end_for(EndMark::Etb, ReplyEnd::Esc),
        Some(EndMark::Ack)
    );
    assert_eq!(reply::end_for(EndMark::Enq, ReplyEnd::Eot), None);
    assert_eq!("ESC".parse::<ReplyEnd>().ok(), Some(ReplyEnd::Esc));

    let up = decode_one(&bytes(EXAMPLE_2));
    let centre_time = date(2026, 7, 1).at(6, 30, 9, 0);
    let answer =
        decode_one(&reply::answer(&up.header, 0x25B9, centre_time, EndMark::Eot).expect("ok"));
    assert_eq!(answer.header.direction, Direction::Down);
    assert_eq!(answer.header.function, 0x32);
    assert_eq!(answer.header.password, 0xFFFF);
    assert_eq!(answer.header.length, 8);
    assert_eq!(&answer.body[..2], &[0x25, 0xB9]);
    assert_eq!(&answer.body[2..], &[0x26, 0x07, 0x01, 0x06, 0x30, 0x09]);
    assert_eq!(answer.end, EndMark::Eot);
}

#[test]
fn a_keep_alive_has_no_observations() {
    let raw = bytes("7E7E 01 0012345678 1234 2F 0008 02 0003 591011155111 03 6BCA");
    let frame = decode_one(&raw);
    assert_eq!(frame.header.function, function::KEEP_ALIVE);
    assert!(!function::is_report(frame.header.function));
    let d = decode_report(&frame, "s", LevelElement::Z, &shanghai()).expect("ok");
    assert!(d.report.groups.is_empty());
    assert!(d.readings.is_empty());
}

#[test]
fn a_body_naming_another_station_or_cut_short_is_refused() {
    let mut other = report(vec![group(
        date(2021, 7, 20).at(9, 0, 0, 0),
        vec![number(0x39, 1.0)],
    )]);
    other.station = Some(StationBlock {
        address: "0000000009".parse().expect("address"),
        kind: b'H',
    });
    let frame = decode_one(&uplink(Encoding::Hex, function::TIMED, &other));
    assert_eq!(
        decode_report(&frame, "s", LevelElement::Z, &shanghai()).map_err(|e| e.cause()),
        Err("bad_body")
    );
    let mut cut = decode_one(&bytes(EXAMPLE_1));
    cut.body.truncate(cut.body.len() - 2);
    assert_eq!(
        decode_report(&cut, "s", LevelElement::Z, &shanghai()).map_err(|e| e.cause()),
        Err("bad_body")
    );
    assert!("12345".parse::<StationAddress>().is_err());
}
