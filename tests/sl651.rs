//! The SL 651 telemetry centre, end to end against a real Mosquitto and a real InfluxDB 1.x:
//! RTUs over TCP are answered with valid reply frames only after their readings are
//! committed; levels and rain arrive in InfluxDB at their observation times (Beijing time in
//! the frames, UTC in InfluxDB); SL 651 levels fire stage alerts; bad frames are dead letters;
//! `kill -9` between commit and reply loses and duplicates nothing; a trickling client is
//! dropped at the idle timeout without holding the others.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hydrowatch::sim::sl651::{element, report_frame, Rtu};
use hydrowatch::sl651::frame::{function, to_hex_text, Direction, EndMark, Frame};
use hydrowatch::sl651::{crc::crc16, FrameDecoder, StationAddress, Value};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DB: &str = "hydro";
const RIVER: &str = "62304000";
const RAIN: &str = "62304800";

fn address(text: &str) -> StationAddress {
    text.parse().expect("address")
}

/// Beijing local time.
fn local(text: &str) -> jiff::civil::DateTime {
    text.parse().expect("civil time")
}

/// A river level gauge and a rain gauge that speak SL 651, the centre on `centre_port`.
fn config(mqtt: &Mosquitto, influx: &Influx, centre_port: u16, idle: &str) -> String {
    HwConfig::new(mqtt)
        .influx_v1(influx, DB)
        .influxdb(r#"flush_interval = "50ms""#)
        .body(&format!(
            r#"[sl651]
listen = "127.0.0.1:{centre_port}"
idle_timeout = "{idle}"
mqtt_topics = ["sl651/+/up"]

[[stations]]
id = "{RIVER}"
name = "横排头"
sl651_address = "0062304000"
stages = {{ guard = 57.5, warning = 59.0 }}

[[stations]]
id = "{RAIN}"
name = "大店岗"
sl651_address = "0062304800"
sl651_level = "ZU"
"#
        ))
        .build()
}

struct Setup {
    mqtt: Mosquitto,
    influx: Influx,
    hw: Hydrowatch,
    centre: String,
}

fn start(idle: &str) -> Setup {
    let mqtt = Mosquitto::start(false);
    let influx = Influx::start();
    influx.create_database(DB);
    let port = free_port();
    let hw = Hydrowatch::start_ready(&config(&mqtt, &influx, port, idle), Duration::from_secs(30));
    Setup {
        mqtt,
        influx,
        hw,
        centre: format!("127.0.0.1:{port}"),
    }
}

fn json(hw: &Hydrowatch, path: &str) -> Json {
    let (status, body) = hw.http_get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn metric(hw: &Hydrowatch, name: &str) -> f64 {
    let (_, text) = hw.http_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn journal_count(hw: &Hydrowatch, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        hw.dir().join("journal.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the journal");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// A timed report (32) of the river gauge: level `z` observed at `observed`.
fn level_report(serial: u16, observed: &str, z: f64) -> Vec<u8> {
    let t = local(observed);
    report_frame(
        address("0062304000"),
        function::TIMED,
        serial,
        t,
        b'H',
        vec![(t, vec![element(0x39, Value::Number(z))])],
    )
    .expect("encodes")
}

/// Checks an answer the way an RTU would, with the protocol module: a downlink frame to
/// `station`, the report's function code and serial, EOT after a complete report, and a
/// CRC that matches its bytes.
fn assert_answer(answer: &Frame, station: &str, function: u8, serial: u16) {
    assert_eq!(answer.header.direction, Direction::Down);
    assert_eq!(answer.header.station, address(station));
    assert_eq!(answer.header.function, function);
    assert_eq!(answer.end, EndMark::Eot);
    assert_eq!(&answer.body[..2], &serial.to_be_bytes(), "serial echoed");
    let n = answer.raw.len();
    let declared = u16::from_be_bytes([answer.raw[n - 2], answer.raw[n - 1]]);
    assert_eq!(declared, crc16(&answer.raw[..n - 2]), "CRC of the answer");
}

/// Reads one frame (or refusal) from a raw link.
async fn read_answer(link: &mut TcpStream, decoder: &mut FrameDecoder) -> Frame {
    let mut buf = [0u8; 512];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), link.read(&mut buf))
            .await
            .expect("an answer within 20 s")
            .expect("read");
        assert!(n > 0, "the centre closed the link before answering");
        if let Some(r) = decoder.push(&buf[..n]).into_iter().next() {
            return r.expect("a well-formed answer");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_answered_after_commit_and_reach_influxdb_rules_and_dead_letters() {
    let Setup {
        mqtt,
        influx,
        hw,
        centre,
    } = start("10m");

    // The river gauge: a level below guard, then one above warning, on one link.
    let mut river = Rtu::new(&centre, address("0062304000"));
    let answer = river
        .send(&level_report(1, "2021-07-20T08:00:00", 57.0))
        .await
        .expect("answered");
    assert_answer(&answer, "0062304000", 0x32, 1);
    // The answer comes after the commit: the reading is already in the journal.
    assert_eq!(
        journal_count(
            &hw,
            "SELECT count(*) FROM readings WHERE station = '62304000'"
        ),
        1
    );
    let answer = river
        .send(&level_report(2, "2021-07-20T08:05:00", 59.32))
        .await
        .expect("answered");
    assert_answer(&answer, "0062304000", 0x32, 2);

    // The rain gauge: 5-minute rain and the counter (its level element is ZU, unused here).
    let t = local("2021-07-20T08:05:00");
    let rain = report_frame(
        address("0062304800"),
        function::TIMED,
        9,
        t,
        b'P',
        vec![(
            t,
            vec![
                element(0x22, Value::Number(1.5)),
                element(0x26, Value::Number(184.8)),
            ],
        )],
    )
    .expect("encodes");
    let answer = Rtu::new(&centre, address("0062304800"))
        .send(&rain)
        .await
        .expect("answered");
    assert_answer(&answer, "0062304800", 0x32, 9);

    // Bad frames on a raw link with garbage between them: a bad CRC (NAK), an unknown
    // station (answered, so the RTU does not retry forever), and a good report after both.
    let mut link = TcpStream::connect(&centre).await.expect("connect");
    let mut decoder = FrameDecoder::default();
    let mut bad_crc = level_report(3, "2021-07-20T08:10:00", 59.4);
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0x5A;
    let stranger = report_frame(
        address("0099999999"),
        function::TIMED,
        4,
        t,
        b'H',
        vec![(t, vec![element(0x39, Value::Number(1.0))])],
    )
    .expect("encodes");
    let mut stream = b"AT+CSQ\r\n\x00\xFF line noise ".to_vec();
    stream.extend(&bad_crc);
    stream.extend(b"\x7E\x01garbage");
    stream.extend(&stranger);
    stream.extend(b"\r\n+++");
    stream.extend(level_report(5, "2021-07-20T08:15:00", 59.45));
    link.write_all(&stream).await.expect("write");
    let nak = read_answer(&mut link, &mut decoder).await;
    assert_eq!(nak.end, EndMark::Nak, "bad CRC answered NAK");
    assert_eq!(nak.header.station, address("0062304000"));
    let unknown = read_answer(&mut link, &mut decoder).await;
    assert_answer(&unknown, "0099999999", 0x32, 4);
    let good = read_answer(&mut link, &mut decoder).await;
    assert_answer(&good, "0062304000", 0x32, 5);

    // A DTU bridges a frame over MQTT as hex text.
    let bridged = to_hex_text(&level_report(6, "2021-07-20T08:20:00", 59.5));
    publish_all(mqtt.port(), vec![("sl651/dtu-7/up".into(), bridged)]).await;

    // Levels at their observation times: Beijing 08:00 is 00:00 UTC.
    let t0 = 1_626_739_200_000_i64; // 2021-07-20T00:00:00Z
    wait_until_async(Duration::from_secs(20), "4 levels in InfluxDB", || {
        influx.count(DB, "SELECT count(level_m) FROM water_level") == 4
    })
    .await;
    let levels: BTreeMap<i64, f64> = influx
        .rows(
            DB,
            "SELECT level_m FROM water_level WHERE station = '62304000'",
        )
        .into_iter()
        .map(|r| (r[0].as_i64().expect("time"), r[1].as_f64().expect("level")))
        .collect();
    let expected: BTreeMap<i64, f64> = [
        (t0, 57.0),
        (t0 + 300_000, 59.32),
        (t0 + 900_000, 59.45),
        (t0 + 1_200_000, 59.5),
    ]
    .into();
    assert_eq!(levels.len(), 4, "{levels:?}");
    for (t, level) in &expected {
        let got = levels.get(t).copied().unwrap_or(f64::NAN);
        assert!((got - level).abs() < 1e-9, "level at {t}: {got} != {level}");
    }
    wait_until_async(Duration::from_secs(20), "rain in InfluxDB", || {
        influx.count(DB, "SELECT count(rain_mm) FROM rainfall") >= 1
    })
    .await;
    let rain = influx.rows(
        DB,
        "SELECT rain_mm, period_s FROM rainfall WHERE station = '62304800'",
    );
    assert_eq!(rain.len(), 1, "{rain:?}");
    assert_eq!(rain[0][0].as_i64(), Some(t0 + 300_000));
    assert_eq!(rain[0][1].as_f64(), Some(1.5));
    assert_eq!(rain[0][2].as_i64(), Some(300));

    // The stage rule fired from SL 651 levels.
    let alerts = json(&hw, "/api/v1/alerts?state=open");
    let stage = alerts
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["station"] == RIVER && a["rule"] == "stage")
        .unwrap_or_else(|| panic!("no stage alert: {alerts}"));
    assert_eq!(stage["stage"], "warning");

    // Dead letters: the bad CRC and the unknown station, with the frame in hex.
    let dead = json(&hw, "/api/v1/dead_letters");
    let by_cause: HashMap<&str, &Json> = dead
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| Some((d["cause"].as_str()?, d)))
        .collect();
    let crc = by_cause.get("crc").unwrap_or_else(|| panic!("{dead}"));
    assert_eq!(crc["topic"], "sl651/0062304000");
    assert_eq!(
        crc["payload"].as_str().map(str::to_string),
        Some(String::from_utf8(to_hex_text(&bad_crc)).expect("hex"))
    );
    let unknown = by_cause
        .get("unknown_station")
        .unwrap_or_else(|| panic!("{dead}"));
    assert_eq!(unknown["topic"], "sl651/0099999999");
    assert!(unknown["payload"]
        .as_str()
        .is_some_and(|p| p.starts_with("7E7E")));
    assert_eq!(dead.as_array().map(Vec::len), Some(2), "{dead}");

    // Metrics count frames, answers and refusals; every frame is kept for audit.
    assert!(metric(&hw, "hydrowatch_sl651_frames_rejected_total{cause=\"crc\"}") >= 1.0);
    assert!(metric(&hw, "hydrowatch_sl651_replies_total{end=\"nak\"}") >= 1.0);
    assert!(metric(&hw, "hydrowatch_sl651_replies_total{end=\"eot\"}") >= 5.0);
    assert!(metric(&hw, "hydrowatch_sl651_connections_open") >= 1.0);
    assert_eq!(journal_count(&hw, "SELECT count(*) FROM sl651_frames"), 7);
    drop(link);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commit_and_reply_loses_and_duplicates_nothing() {
    let Setup {
        influx,
        mut hw,
        centre,
        mqtt: _mqtt,
    } = start("10m");
    const STATIONS: usize = 3;
    /// 2021-07-20T00:00 in Beijing, in UTC milliseconds.
    const T0: i64 = 1_626_710_400_000;
    const FRAMES: usize = 150;
    // Serials each RTU saw answered, per station.
    let answered: Arc<Mutex<Vec<Vec<u16>>>> = Arc::new(Mutex::new(vec![Vec::new(); STATIONS]));
    let start = local("2021-07-20T00:00:00");
    let mut rtus = Vec::new();
    for s in 0..STATIONS {
        let answered = Arc::clone(&answered);
        let centre = centre.clone();
        rtus.push(tokio::spawn(async move {
            // Three links of the river gauge, each with its own run of observation times.
            let mut rtu = Rtu::new(&centre, address("0062304000"));
            rtu.give_up_after = Duration::from_secs(120);
            for i in 0..FRAMES {
                let serial = (s * FRAMES + i + 1) as u16;
                let observed = start + jiff::Span::new().minutes((s * FRAMES + i) as i64 * 5);
                let frame = report_frame(
                    address("0062304000"),
                    function::TIMED,
                    serial,
                    observed,
                    b'H',
                    vec![(
                        observed,
                        vec![element(0x39, Value::Number(50.0 + i as f64 / 100.0))],
                    )],
                )
                .expect("encodes");
                let answer = rtu.send(&frame).await.expect("answered in the end");
                assert_eq!(&answer.body[..2], &serial.to_be_bytes());
                answered.lock().expect("lock")[s].push(serial);
            }
        }));
    }
    let total_answered = || {
        answered
            .lock()
            .expect("lock")
            .iter()
            .map(Vec::len)
            .sum::<usize>()
    };
    wait_until_async(Duration::from_secs(60), "some frames answered", || {
        total_answered() >= 60
    })
    .await;
    // The RTUs are mid-conversation: at least one frame is committed or on its way, not
    // yet answered.
    hw.kill9();
    // Every frame answered before the kill is in the journal: the reply came after commit.
    let answered_before: Vec<u16> = answered.lock().expect("lock").concat();
    let conn = rusqlite::Connection::open(hw.dir().join("journal.db")).expect("journal");
    for serial in &answered_before {
        let time = T0 + (*serial as i64 - 1) * 300_000;
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM readings WHERE station = ?1 AND time_ms = ?2",
                rusqlite::params![RIVER, time],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            n, 1,
            "frame {serial} was answered but its reading is not in the journal"
        );
    }
    drop(conn);
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    for rtu in rtus {
        rtu.await.expect("every RTU finished");
    }
    let expected = (STATIONS * FRAMES) as i64;
    assert_eq!(
        journal_count(
            &hw,
            "SELECT count(*) FROM readings WHERE station = '62304000'"
        ),
        expected,
        "each report stored exactly once"
    );
    wait_until_async(Duration::from_secs(30), "every level in InfluxDB", || {
        influx.count(DB, "SELECT count(level_m) FROM water_level") == expected as u64
    })
    .await;
    // Resends stored nothing twice: one point per observation time, values as sent.
    let rows = influx.rows(DB, "SELECT level_m FROM water_level");
    assert_eq!(rows.len(), expected as usize);
    for row in rows {
        let k = (row[0].as_i64().expect("time") - T0) / 300_000;
        let i = k as usize % FRAMES;
        let level = row[1].as_f64().expect("level");
        assert!((level - (50.0 + i as f64 / 100.0)).abs() < 1e-9, "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_dropped_at_the_idle_timeout_without_holding_others() {
    let Setup {
        hw,
        centre,
        mqtt: _mqtt,
        influx: _influx,
    } = start("2s");
    let started = std::time::Instant::now();
    let slow = TcpStream::connect(&centre).await.expect("connect");
    let (mut slow_read, mut slow_write) = slow.into_split();
    // One byte every half second: each byte alone would reset a per-read timeout forever.
    let frame = level_report(1, "2021-07-20T08:00:00", 57.0);
    let trickle = tokio::spawn(async move {
        for b in frame.iter().cycle() {
            if slow_write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // Another RTU is served at once meanwhile.
    let answer = Rtu::new(&centre, address("0062304000"))
        .send(&level_report(2, "2021-07-20T08:05:00", 57.1))
        .await
        .expect("answered");
    assert_answer(&answer, "0062304000", 0x32, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the other RTU waited {:?}",
        started.elapsed()
    );
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), slow_read.read(&mut buf))
        .await
        .expect("the trickling client is dropped within 10 s");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(6),
        "dropped after {elapsed:?}, idle_timeout is 2 s"
    );
    trickle.abort();
    assert!(metric(&hw, "hydrowatch_sl651_idle_closed_total") >= 1.0);
}
