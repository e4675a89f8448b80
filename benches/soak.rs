//! Soak: a million bad and odd gauge messages, mixed with good ones, through a real Mosquitto
//! into the real `hydrowatch run` (release build), then the books.
//!
//! ```text
//! cargo bench --bench soak                            # 1,000,000 messages
//! cargo bench --bench soak -- --messages=100000       # or HW_SOAK_MESSAGES=100000
//! cargo bench --bench soak -- --no-influx             # readings stay in the journal
//! cargo bench --bench soak -- --timeout=1800          # give up after this many seconds
//! cargo bench --bench soak -- --keep-logs=DIR         # copy hydrowatch's and Mosquitto's logs
//! ```
//!
//! The messages (seeded, so every run sends the same ones): valid readings (objects, arrays,
//! envelopes, local and epoch times, near-future times, unusual but valid JSON), not JSON,
//! binary garbage, wrong shapes, unknown stations, station mismatches, missing and bad times,
//! NaN-like and out-of-range values, times far in the future, no element, deep nesting, bad
//! acknowledgements on the ack topic, and every thousandth message a heavy one: up to
//! 1 MiB − 16 bytes (never over the limit), 10,000-reading arrays, 10,001-reading arrays,
//! 200,000-number arrays, 1 MiB of garbage or of nesting. The bench decodes each message with
//! hydrowatch's own decoder as it publishes it, to predict what the daemon must do with it.
//!
//! It reports messages/s, hydrowatch's RSS (sampled every half second) and journal size (db + wal),
//! and checks, from `/metrics`:
//! - received == published (QoS 1, every PubAck counted);
//! - received == stored + Σ dead letters by cause, and each count as predicted;
//! - the same process all along (same pid, still alive, `/readyz` 200 at the end), no MQTT
//!   reconnection in its log, no panic;
//! - memory bounded: RSS after the first quarter of the messages peaks no higher than
//!   1.25 × the first quarter's peak + 16 MiB.
//!
//! It stops by itself: when the books balance and no counter has moved for 15 s, or at the
//! timeout, or when nothing has moved for two minutes after the last PubAck; then it prints
//! what it has and exits 1 if a check failed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hydrowatch::ingest::decode::{decode, station_from_topic, DecodeContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const STATIONS: usize = 1000;
/// hydrowatch's default `limits.max_payload_bytes`; no message here is larger.
const LIMIT: usize = 1_048_576;
const MAX_READINGS: usize = 10_000;
/// Every `HEAVY_EVERY`th message is a heavy one.
const HEAVY_EVERY: u64 = 1000;
const PUBLISHERS: u64 = 2;
const ACK_TOPIC: &str = "hydro-ack";
const TEAM_TOKEN: &str = "soak-token";
/// Observation times of the valid readings start here (2021-07-01T00:00:00Z).
const BASE_TIME_S: i64 = 1_625_097_600;
const SEED: u64 = 20_180_831;

struct Options {
    messages: u64,
    influx: bool,
    timeout: Duration,
    keep_logs: Option<std::path::PathBuf>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            messages: std::env::var("HW_SOAK_MESSAGES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
            influx: true,
            timeout: Duration::from_secs(1800),
            keep_logs: None,
        };
        for arg in std::env::args().skip(1) {
            if let Some(n) = arg.strip_prefix("--messages=") {
                o.messages = n.parse().expect("--messages=N");
            } else if let Some(s) = arg.strip_prefix("--timeout=") {
                o.timeout = Duration::from_secs(s.parse().expect("--timeout=SECONDS"));
            } else if let Some(dir) = arg.strip_prefix("--keep-logs=") {
                o.keep_logs = Some(dir.into());
            } else if arg == "--no-influx" {
                o.influx = false;
            }
        }
        o
    }
}

fn main() {
    let opts = Options::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!("# Soak: {} bad and odd messages", opts.messages);
    println!();
    println!(
        "machine: {} cores; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    let influx = opts.influx.then(Influx::start);
    let mqtt = Mosquitto::start(false);
    let mut config = HwConfig::new(&mqtt)
        .client_id("hw-soak")
        .mqtt(&format!("ack_topic = \"{ACK_TOPIC}\""));
    if let Some(influx) = &influx {
        influx.create_database("soak");
        config = config.influx_v1(influx, "soak");
    }
    let config = config.body(&body()).build();
    let mut hw = Hydrowatch::start_ready(&config, Duration::from_secs(60));
    let pid = hw.pid().expect("hydrowatch pid");
    let journal = hw.dir().join("journal.db");
    println!(
        "hydrowatch pid {pid}, {STATIONS} stations, InfluxDB {}",
        if opts.influx { "on" } else { "off" }
    );
    println!();

    // Publish from the runtime while this thread samples.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let publishing = {
        let (tally, acked, port, total) =
            (tally.clone(), acked.clone(), mqtt.port(), opts.messages);
        rt.spawn(async move { publish_all_generated(port, total, tally, acked).await })
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut published_at = None;
    let mut last_change = Instant::now();
    let mut last_books = (0.0, 0.0, 0.0);
    let mut last_print = Instant::now();
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(500));
        let m = metrics(&hw);
        let s = Sample {
            at: started.elapsed().as_secs_f64(),
            acked: acked.load(Ordering::Relaxed),
            received: m.total("hydrowatch_messages_received_total"),
            stored: m.total("hydrowatch_messages_stored_total"),
            dead: m.total("hydrowatch_dead_letters_total"),
            rss_kb: proc_status_kb(pid, "VmRSS:"),
            journal_bytes: journal_bytes(&journal),
        };
        if published_at.is_none() && publishing.is_finished() {
            published_at = Some(started.elapsed());
        }
        let books = (s.received, s.stored, s.dead);
        if books != last_books {
            last_books = books;
            last_change = Instant::now();
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            println!(
                "  {:6.0} s  published {:>8}  received {:>8}  stored {:>8}  dead-lettered {:>8}  RSS {:6.1} MB  journal {:7.1} MB",
                s.at,
                s.acked,
                s.received,
                s.stored,
                s.dead,
                s.rss_kb as f64 / 1024.0,
                s.journal_bytes as f64 / 1e6
            );
        }
        samples.push(s);
        let s = samples.last().expect("just pushed");
        if let Some(st) = hw.exited() {
            break format!("hydrowatch exited: {st}");
        }
        let done_publishing = published_at.is_some();
        // Redeliveries can make `received` reach the published count before every message
        // has arrived: the books are closed only after 15 quiet seconds.
        if done_publishing
            && s.received >= opts.messages as f64
            && s.stored + s.dead == s.received
            && last_change.elapsed() >= Duration::from_secs(15)
        {
            break "balanced".to_string();
        }
        if started.elapsed() > opts.timeout {
            break format!("timed out after {:?}", opts.timeout);
        }
        if done_publishing && last_change.elapsed() > Duration::from_secs(120) {
            break "stalled: no counter moved for 120 s after the last PubAck".to_string();
        }
    };
    // The last time a counter moved.
    let settled = last_change.duration_since(started);
    let publish_result = if publishing.is_finished() {
        rt.block_on(publishing)
            .map_err(|e| e.to_string())
            .and_then(|r| r)
    } else {
        publishing.abort();
        Err("publishers still running".into())
    };
    let passed = report(Report {
        opts: &opts,
        hw: &mut hw,
        pid,
        mqtt: &mqtt,
        tally: &tally.lock().expect("tally"),
        samples: &samples,
        outcome: &outcome,
        publish_result,
        published_in: published_at,
        settled_in: settled,
    });
    // Stop hydrowatch, Mosquitto and InfluxDB before exiting: `exit` runs no destructors, and
    // a hydrowatch left behind goes on working through its backlog.
    drop(hw);
    drop(mqtt);
    drop(influx);
    if !passed {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// A team that may acknowledge (so the ack topic has a token to get wrong) and the stations:
/// stages, a sensor range, a step limit and rain windows, so every rule runs.
fn body() -> String {
    let mut s =
        format!("[[teams]]\nid = \"soak\"\nname = \"Soak team\"\ntoken = \"{TEAM_TOKEN}\"\n\n");
    for i in 0..STATIONS {
        s.push_str(&format!(
            "[[stations]]\nid = \"g{i}\"\nname = \"Gauge {i}\"\nteam = \"soak\"\n\
             stages = {{ guard = 55.0, warning = 58.0 }}\nlevel_range = [40.0, 70.0]\n\
             max_step_m = 3.0\nrain = {{ \"1h\" = 30.0 }}\n\n"
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// What the bench expects hydrowatch to do with one message.
#[derive(Default)]
struct Tally {
    published: u64,
    bytes: u64,
    heavy: u64,
    largest: usize,
    stored_messages: u64,
    stored_readings: u64,
    /// Dead letters by cause.
    dead: BTreeMap<&'static str, u64>,
    /// Messages by kind (what the generator meant to send).
    kinds: BTreeMap<&'static str, u64>,
}

/// One generated message: topic, payload, and its kind for the tally.
struct Message {
    topic: String,
    payload: Vec<u8>,
    kind: &'static str,
    /// Fixed expectation for the ack topic, which the gauge decoder does not read.
    ack_cause: Option<&'static str>,
}

fn station(rng: &mut StdRng) -> String {
    format!("g{}", rng.gen_range(0..STATIONS))
}

fn gauge_topic(station: &str) -> String {
    format!("hydro/{station}/data")
}

/// A plausible old observation time (seconds), as in a backlog flush.
fn old_time(rng: &mut StdRng) -> i64 {
    BASE_TIME_S + rng.gen_range(0..10_000_000)
}

/// A valid reading object.
fn valid_reading(rng: &mut StdRng) -> String {
    let t = old_time(rng);
    let level = rng.gen_range(50.0..54.9f64);
    match rng.gen_range(0..6) {
        0 => format!(r#"{{"time":{t},"level_m":{level:.3}}}"#),
        1 => format!(
            r#"{{"time":{t},"level_m":{level:.3},"rain_mm":{:.1},"rain_period_s":300,"battery_v":12.6}}"#,
            rng.gen_range(0.0..5.0f64)
        ),
        2 => format!(
            r#"{{"time":{},"rain_total_mm":{:.1}}}"#,
            t * 1000,
            rng.gen_range(0.0..900.0f64)
        ),
        3 => {
            let ts = jiff::Timestamp::from_second(t).expect("time");
            format!(
                r#"{{"time":"{ts}","level_m":{level:.3},"flow_m3s":{:.2}}}"#,
                rng.gen_range(0.0..300.0f64)
            )
        }
        4 => {
            let local = jiff::Timestamp::from_second(t)
                .expect("time")
                .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
                .strftime("%Y-%m-%dT%H:%M:%S");
            format!(r#"{{"time":"{local}","level_m":{level:.3}}}"#)
        }
        _ => format!(
            r#"{{"time":{t}.5,"level_m":{level:.3},"quality_note":"ok","extra":{{"a":[1,2]}}}}"#
        ),
    }
}

fn readings_array(rng: &mut StdRng, n: usize) -> String {
    let items: Vec<String> = (0..n).map(|_| valid_reading(rng)).collect();
    format!("[{}]", items.join(","))
}

fn garbage(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Message `i`: every `HEAVY_EVERY`th a heavy one, the rest drawn by weight.
fn generate(i: u64, rng: &mut StdRng) -> Message {
    if i % HEAVY_EVERY == HEAVY_EVERY - 1 {
        return heavy((i / HEAVY_EVERY) % 8, rng);
    }
    let st = station(rng);
    let gauge = |payload: Vec<u8>, kind| Message {
        topic: gauge_topic(&st),
        payload,
        kind,
        ack_cause: None,
    };
    let t = old_time(rng);
    let level = rng.gen_range(50.0..54.9f64);
    let roll = rng.gen_range(0..1000);
    match roll {
        // Valid.
        0..=299 => gauge(valid_reading(rng).into_bytes(), "valid object"),
        300..=379 => {
            let n = rng.gen_range(2..20);
            gauge(readings_array(rng, n).into_bytes(), "valid array")
        }
        380..=389 => {
            let n = rng.gen_range(50..500);
            gauge(
                readings_array(rng, n).into_bytes(),
                "valid large array (50-500)",
            )
        }
        390..=419 => {
            let n = rng.gen_range(1..10);
            let items = readings_array(rng, n);
            gauge(
                format!(r#"{{"station":"{st}","readings":{items}}}"#).into_bytes(),
                "valid envelope",
            )
        }
        420..=439 => {
            // Within the 5-minute tolerance.
            let t = now_s() + rng.gen_range(-60..60);
            gauge(
                format!(r#"{{"time":{t},"level_m":{level:.3}}}"#).into_bytes(),
                "valid, time about now",
            )
        }
        440..=459 => {
            let odd = [
                format!(" \n\t{{ \"level_m\" : {level:.3} , \"time\" : {t} }} \r\n"),
                format!(r#"{{"time":{t},"level_m":{level:.3},"level_m":{level:.2}}}"#),
                format!(r#"{{"time":{t},"level_m":{level:.3},"battery_v":null,"flow_m3s":null}}"#),
                format!(r#"{{"t\u0069me":{t},"level_m":{level:.3},"备注":"水位正常 🌊"}}"#),
                format!(r#"{{"station":"{st}","time":{t},"level_m":{level:.3e}}}"#),
                format!(r#"[{{"time":{t},"level_m":{level:.3},"readings":"not an envelope"}}]"#),
            ];
            let k = rng.gen_range(0..odd.len());
            gauge(odd[k].clone().into_bytes(), "valid, unusual JSON")
        }
        // Not JSON.
        460..=529 => {
            let r = valid_reading(rng);
            let cut = rng.gen_range(1..r.len());
            let texts = [
                r[..cut].to_string(),
                "level=59.3".to_string(),
                String::new(),
                format!("{r}{r}"),
                format!("{{'time': {t}, 'level_m': {level}}}"),
                format!(r#"{{"time":{t},"level_m":NaN}}"#),
                format!(r#"{{"time":{t},"level_m":1e999}}"#),
                format!(r#"{{"time":{t},"level_m":1,"note":"\ud800"}}"#),
            ];
            let k = rng.gen_range(0..texts.len());
            gauge(texts[k].clone().into_bytes(), "not JSON")
        }
        530..=599 => {
            let len = rng.gen_range(1..1024);
            gauge(garbage(rng, len), "binary garbage")
        }
        // Wrong shapes.
        600..=669 => {
            let shapes = [
                "59.32".to_string(),
                "\"59.32\"".to_string(),
                "null".to_string(),
                "[]".to_string(),
                "[1,2,3]".to_string(),
                format!(r#"[[{t},{level}]]"#),
                format!(r#"{{"readings":{{"time":{t},"level_m":1}}}}"#),
                r#"{"station":62304000,"readings":[]}"#.to_string(),
                format!(r#"{{"station":"{st}","readings":[]}}"#),
                format!(r#"[{{"time":{t},"level_m":1}},"x"]"#),
                format!(r#"{{"station":["{st}"],"time":{t},"level_m":1}}"#),
            ];
            let k = rng.gen_range(0..shapes.len());
            gauge(shapes[k].clone().into_bytes(), "wrong shape")
        }
        // Stations.
        670..=729 => {
            let names = ["nope", "G1", "g-1", "g1000000", "横排头", "g1 ", "%00"];
            let name = names[rng.gen_range(0..names.len())];
            Message {
                topic: gauge_topic(name),
                payload: valid_reading(rng).into_bytes(),
                kind: "unknown station",
                ack_cause: None,
            }
        }
        730..=759 => {
            let other = station(rng);
            let name = if other == st {
                "nope".to_string()
            } else {
                other
            };
            gauge(
                format!(r#"{{"station":"{name}","time":{t},"level_m":{level:.3}}}"#).into_bytes(),
                "station mismatch",
            )
        }
        // Times.
        760..=789 => {
            let texts = [
                format!(r#"{{"level_m":{level:.3}}}"#),
                format!(r#"{{"time":null,"level_m":{level:.3}}}"#),
                format!(r#"[{{"time":{t},"level_m":1}},{{"level_m":2}}]"#),
            ];
            let k = rng.gen_range(0..texts.len());
            gauge(texts[k].clone().into_bytes(), "missing time")
        }
        790..=829 => {
            let times = [
                "\"yesterday\"",
                "\"2021-13-45T00:00:00Z\"",
                "\"\"",
                "\"1899-12-31T23:59:59Z\"",
                "-2208988801",
                "\"2021-07-20T08:05:00+08:00[Mars/Olympus]\"",
                "true",
                "{\"s\":1}",
                "\"２０２１-07-20\"",
            ];
            let time = times[rng.gen_range(0..times.len())];
            gauge(
                format!(r#"{{"time":{time},"level_m":{level:.3}}}"#).into_bytes(),
                "bad time",
            )
        }
        830..=869 => {
            let ahead = [3_600, 86_400, 365 * 86_400, 100 * 365 * 86_400];
            let t = now_s() + ahead[rng.gen_range(0..ahead.len())];
            let texts = [
                format!(r#"{{"time":{t},"level_m":{level:.3}}}"#),
                format!(r#"{{"time":{},"level_m":{level:.3}}}"#, t * 1000),
                r#"{"time":"9999-12-31T23:59:59Z","level_m":1}"#.to_string(),
                r#"{"time":18446744073709551615,"level_m":1}"#.to_string(),
            ];
            let k = rng.gen_range(0..texts.len());
            gauge(texts[k].clone().into_bytes(), "future time")
        }
        // Values.
        870..=929 => {
            let values = [
                "\"NaN\"",
                "\"Infinity\"",
                "1e308",
                "-5000",
                "10000.001",
                "\"59.32\"",
                "[59.32]",
                "{\"v\":59.32}",
                "true",
            ];
            let v = values[rng.gen_range(0..values.len())];
            let fields = [
                "level_m",
                "rain_mm",
                "rain_total_mm",
                "flow_m3s",
                "battery_v",
                "rain_period_s",
            ];
            let f = fields[rng.gen_range(0..fields.len())];
            let texts = [
                format!(r#"{{"time":{t},"level_m":{level:.3},"{f}":{v}}}"#),
                format!(r#"{{"time":{t},"rain_mm":-0.5}}"#),
                format!(r#"{{"time":{t},"rain_mm":1,"rain_period_s":300.5}}"#),
            ];
            let k = rng.gen_range(0..texts.len());
            gauge(texts[k].clone().into_bytes(), "NaN or out of range")
        }
        930..=949 => gauge(
            format!(r#"{{"time":{t},"battery_v":12.1}}"#).into_bytes(),
            "no element",
        ),
        950..=969 => {
            let depth = rng.gen_range(100..2000);
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            gauge(s.into_bytes(), "deep nesting")
        }
        970..=979 => {
            let n = rng.gen_range(100..1000);
            gauge(
                readings_array(rng, n).into_bytes(),
                "valid large array (100-1000)",
            )
        }
        // The ack topic: refused acknowledgements are dead-lettered like gauge messages.
        _ => {
            let (payload, cause) = match rng.gen_range(0..3) {
                0 => (b"{not json".to_vec(), "bad_shape"),
                1 => (br#"{"team":"soak"}"#.to_vec(), "bad_shape"),
                _ => (
                    br#"{"team":"soak","token":"wrong"}"#.to_vec(),
                    "unauthorized",
                ),
            };
            Message {
                topic: format!("{ACK_TOPIC}/{}", uuid::Uuid::new_v4().simple()),
                payload,
                kind: "refused acknowledgement",
                ack_cause: Some(cause),
            }
        }
    }
}

/// A large message, never over the limit.
fn heavy(which: u64, rng: &mut StdRng) -> Message {
    let st = station(rng);
    let near = LIMIT - 16;
    let (payload, kind): (Vec<u8>, &'static str) = match which {
        0 => {
            // 10,000 readings (the most a message may hold), padded to just under the limit.
            let mut s = readings_array(rng, MAX_READINGS);
            s.truncate(s.len().min(near));
            if s.len() < near && s.ends_with(']') {
                s.push_str(&" ".repeat(near - s.len()));
            }
            (s.into_bytes(), "heavy: 10,000 readings, ~1 MiB")
        }
        1 => {
            let items: Vec<String> = (0..MAX_READINGS + 1)
                .map(|k| format!(r#"{{"time":{},"level_m":1}}"#, BASE_TIME_S + k as i64))
                .collect();
            (
                format!("[{}]", items.join(",")).into_bytes(),
                "heavy: 10,001 readings",
            )
        }
        2 => (garbage(rng, near), "heavy: 1 MiB of garbage"),
        3 => {
            let mut s = valid_reading(rng);
            s.push_str(&" ".repeat(near - s.len()));
            (s.into_bytes(), "heavy: one reading padded to 1 MiB")
        }
        4 => {
            let r = valid_reading(rng);
            let note = "水".repeat((near - r.len() - 20) / 3);
            let s = format!(r#"{{"note":"{note}",{}"#, &r[1..]);
            (s.into_bytes(), "heavy: one reading with a 1 MiB field")
        }
        5 => {
            let s = format!("[{}1]", "1,".repeat(200_000));
            (s.into_bytes(), "heavy: 200,000 numbers")
        }
        6 => {
            let half = near / 2;
            let s = "[".repeat(half) + &"]".repeat(half);
            (s.into_bytes(), "heavy: 1 MiB of nesting")
        }
        _ => {
            let s = format!("\"{}\"", "a".repeat(near - 2));
            (s.into_bytes(), "heavy: a 1 MiB string")
        }
    };
    assert!(payload.len() <= LIMIT, "{kind}: {} bytes", payload.len());
    Message {
        topic: gauge_topic(&st),
        payload,
        kind,
        ack_cause: None,
    }
}

/// Predicts what hydrowatch does with one message, with its own decoder.
struct Predictor {
    stations: HashSet<String>,
    zone: jiff::tz::TimeZone,
    filters: Vec<String>,
}

impl Predictor {
    fn new() -> Predictor {
        Predictor {
            stations: (0..STATIONS).map(|i| format!("g{i}")).collect(),
            zone: jiff::tz::TimeZone::get("Asia/Shanghai").expect("tzdb"),
            filters: vec!["hydro/+/data".to_string()],
        }
    }

    fn tally(&self, m: &Message, tally: &mut Tally) {
        tally.published += 1;
        tally.bytes += m.payload.len() as u64;
        tally.largest = tally.largest.max(m.payload.len());
        if m.kind.starts_with("heavy") {
            tally.heavy += 1;
        }
        *tally.kinds.entry(m.kind).or_default() += 1;
        if let Some(cause) = m.ack_cause {
            *tally.dead.entry(cause).or_default() += 1;
            return;
        }
        let cx = DecodeContext {
            stations: &self.stations,
            time_zone: &self.zone,
            max_payload_bytes: LIMIT,
            max_readings: MAX_READINGS,
            future_tolerance_ms: 300_000,
            now: hydrowatch::model::now_millis(),
        };
        match decode(station_from_topic(&m.topic, &self.filters), &m.payload, &cx) {
            Ok(readings) => {
                tally.stored_messages += 1;
                tally.stored_readings += readings.len() as u64;
            }
            Err(rejection) => *tally.dead.entry(rejection.cause.as_str()).or_default() += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

/// Publishes `total` generated messages with QoS 1 from `PUBLISHERS` connections; returns when
/// every PubAck has arrived. `acked` counts them as they come.
async fn publish_all_generated(
    port: u16,
    total: u64,
    tally: Arc<Mutex<Tally>>,
    acked: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut handles = Vec::new();
    for p in 0..PUBLISHERS {
        let (tally, acked) = (tally.clone(), acked.clone());
        handles.push(tokio::spawn(async move {
            let mut opts = MqttOptions::new(format!("hw-soak-pub-{p}"), "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(30))
                .set_clean_session(true)
                .set_inflight(1000)
                .set_max_packet_size(2 * LIMIT, 2 * LIMIT);
            let (client, mut eventloop) = AsyncClient::new(opts, 1000);
            let mine = (p..total).step_by(PUBLISHERS as usize).count() as u64;
            let publisher = tokio::spawn(async move {
                let predictor = Predictor::new();
                let mut rng = StdRng::seed_from_u64(SEED + p);
                let mut local = Tally::default();
                for i in (p..total).step_by(PUBLISHERS as usize) {
                    let m = generate(i, &mut rng);
                    predictor.tally(&m, &mut local);
                    client
                        .publish(m.topic, QoS::AtLeastOnce, false, m.payload)
                        .await
                        .map_err(|e| format!("publisher {p}: {e}"))?;
                }
                Ok::<_, String>((client, local))
            });
            let mut got = 0;
            while got < mine {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        got += 1;
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("publisher {p}: {e} after {got}/{mine} PubAcks")),
                }
            }
            let (client, local) = publisher.await.map_err(|e| e.to_string())??;
            tally.lock().expect("tally").merge(local);
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while eventloop.poll().await.is_ok() {}
            })
            .await;
            Ok(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.published += other.published;
        self.bytes += other.bytes;
        self.heavy += other.heavy;
        self.largest = self.largest.max(other.largest);
        self.stored_messages += other.stored_messages;
        self.stored_readings += other.stored_readings;
        for (k, v) in other.dead {
            *self.dead.entry(k).or_default() += v;
        }
        for (k, v) in other.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

struct Sample {
    at: f64,
    acked: u64,
    received: f64,
    stored: f64,
    dead: f64,
    rss_kb: u64,
    journal_bytes: u64,
}

/// `/metrics` as (name, labels) → value.
struct Metrics(BTreeMap<(String, String), f64>);

impl Metrics {
    /// The sum over every label set of `name`.
    fn total(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// Each label set of `name` with its value.
    fn series(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, labels), v)| (labels.clone(), *v))
            .collect()
    }
}

fn metrics(hw: &Hydrowatch) -> Metrics {
    let mut out = BTreeMap::new();
    if let Ok((200, text)) = http_request(hw.http_port(), "GET", "/metrics", b"", &[]) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            if let Ok(v) = value.parse::<f64>() {
                out.insert((name.to_string(), labels.to_string()), v);
            }
        }
    }
    Metrics(out)
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The journal's database and write-ahead log, in bytes.
fn journal_bytes(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db.to_path_buf(), wal]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

struct Report<'a> {
    opts: &'a Options,
    hw: &'a mut Hydrowatch,
    pid: u32,
    mqtt: &'a Mosquitto,
    tally: &'a Tally,
    samples: &'a [Sample],
    outcome: &'a str,
    publish_result: Result<(), String>,
    published_in: Option<Duration>,
    settled_in: Duration,
}

/// Prints the figures and the checks; whether every check passed.
fn report(r: Report) -> bool {
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        println!("- [{}] {what}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failures.push(what);
        }
    };
    let m = metrics(r.hw);
    let received = m.total("hydrowatch_messages_received_total");
    let stored = m.total("hydrowatch_messages_stored_total");
    let dead = m.total("hydrowatch_dead_letters_total");
    let readings_stored = m.total("hydrowatch_readings_stored_total");
    let t = r.tally;
    let n = r.opts.messages;

    println!();
    println!("## Sent");
    println!();
    println!(
        "{} messages ({:.1} MB, {} heavy, largest {} bytes; limit {LIMIT}), outcome: {}",
        t.published,
        t.bytes as f64 / 1e6,
        t.heavy,
        t.largest,
        r.outcome
    );
    println!();
    println!("| kind | messages |");
    println!("|---|---:|");
    for (kind, count) in &t.kinds {
        println!("| {kind} | {count} |");
    }
    println!();
    println!("## Rates");
    println!();
    let published_s = r.published_in.map_or(f64::NAN, |d| d.as_secs_f64());
    let settled_s = r.settled_in.as_secs_f64();
    println!(
        "- published (every PubAck): {published_s:.1} s, {:.0} messages/s",
        n as f64 / published_s
    );
    println!(
        "- last counter change (the books balanced from there on): {settled_s:.1} s after the first publish, {:.0} published messages/s end to end",
        n as f64 / settled_s
    );
    let cpu = cpu_seconds(r.pid);
    println!(
        "- hydrowatch CPU: {cpu:.1} s ({:.1} s per 100,000 messages)",
        cpu / n as f64 * 100_000.0
    );
    println!("- load average at the end: {}", loadavg());

    println!();
    println!("## Memory and journal");
    println!();
    let peak_rss = r.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let hwm = proc_status_kb(r.pid, "VmHWM:");
    let quarter = n as f64 / 4.0;
    let q1_peak = r
        .samples
        .iter()
        .filter(|s| s.received <= quarter)
        .map(|s| s.rss_kb)
        .max()
        .unwrap_or(0);
    let rest_peak = r
        .samples
        .iter()
        .filter(|s| s.received > quarter)
        .map(|s| s.rss_kb)
        .max()
        .unwrap_or(0);
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "- RSS: peak sampled {:.1} MB (VmHWM {:.1} MB); first quarter of the messages {:.1} MB, the rest {:.1} MB, at the end {:.1} MB",
        mb(peak_rss),
        mb(hwm),
        mb(q1_peak),
        mb(rest_peak),
        mb(r.samples.last().map_or(0, |s| s.rss_kb))
    );
    let journal_end = r.samples.last().map_or(0, |s| s.journal_bytes);
    let journal_peak = r.samples.iter().map(|s| s.journal_bytes).max().unwrap_or(0);
    println!(
        "- journal (db + wal): {:.1} MB at the end, {:.1} MB at most",
        journal_end as f64 / 1e6,
        journal_peak as f64 / 1e6
    );
    println!("- RSS and journal, every tenth of the run:");
    println!();
    println!("| s | published | received | RSS MB | journal MB |");
    println!("|---:|---:|---:|---:|---:|");
    let step = (r.samples.len() / 10).max(1);
    for s in r.samples.iter().step_by(step).chain(r.samples.last()) {
        println!(
            "| {:.0} | {} | {} | {:.1} | {:.1} |",
            s.at,
            s.acked,
            s.received,
            mb(s.rss_kb),
            s.journal_bytes as f64 / 1e6
        );
    }

    println!();
    println!("## The books (from /metrics)");
    println!();
    println!("| | hydrowatch | predicted |");
    println!("|---|---:|---:|");
    println!("| published (PubAcks) | | {} |", t.published);
    println!(
        "| hydrowatch_messages_received_total | {received} | {} |",
        t.published
    );
    println!(
        "| hydrowatch_messages_stored_total | {stored} | {} |",
        t.stored_messages
    );
    println!(
        "| hydrowatch_readings_stored_total | {readings_stored} | {} |",
        t.stored_readings
    );
    let series = m.series("hydrowatch_dead_letters_total");
    let mut causes: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for (labels, v) in &series {
        let cause = labels
            .trim_start_matches("cause=\"")
            .trim_end_matches('"')
            .to_string();
        causes.entry(cause).or_default().0 = *v;
    }
    for (cause, count) in &t.dead {
        causes.entry(cause.to_string()).or_default().1 = *count;
    }
    for (cause, (got, want)) in &causes {
        println!("| hydrowatch_dead_letters_total{{cause=\"{cause}\"}} | {got} | {want} |");
    }
    println!(
        "| Σ dead letters | {dead} | {} |",
        t.dead.values().sum::<u64>()
    );
    println!(
        "| hydrowatch_readings_forwarded_total | {} | |",
        m.total("hydrowatch_readings_forwarded_total")
    );
    println!();

    println!("## Checks");
    println!();
    check(
        r.publish_result.is_ok(),
        format!("publishers finished: {:?}", r.publish_result),
    );
    check(
        t.published == n,
        format!("published {} of {n}", t.published),
    );
    check(
        received == t.published as f64,
        format!("received ({received}) == published ({})", t.published),
    );
    check(
        received == stored + dead,
        format!("received ({received}) == stored ({stored}) + dead-lettered ({dead})"),
    );
    check(
        stored == t.stored_messages as f64 && readings_stored == t.stored_readings as f64,
        format!(
            "stored as predicted: {stored} messages (predicted {}), {readings_stored} readings (predicted {})",
            t.stored_messages, t.stored_readings
        ),
    );
    let mismatched: Vec<String> = causes
        .iter()
        .filter(|(_, (got, want))| *got != *want as f64)
        .map(|(c, (got, want))| format!("{c}: {got} (predicted {want})"))
        .collect();
    check(
        mismatched.is_empty(),
        format!("dead letters by cause as predicted {mismatched:?}"),
    );
    let alive = r.hw.exited().is_none();
    check(
        alive && r.hw.pid() == Some(r.pid),
        format!("same process all along (pid {}), alive: {alive}", r.pid),
    );
    // Readiness may be catching up after a reconnection: give it 30 s, and say how long.
    let asked = Instant::now();
    let ready = loop {
        let ok = matches!(
            http_request(r.hw.http_port(), "GET", "/readyz", b"", &[]),
            Ok((200, _))
        );
        if ok || asked.elapsed() > Duration::from_secs(30) {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    check(
        ready,
        format!(
            "/readyz 200 at the end (after {:.1} s)",
            asked.elapsed().as_secs_f64()
        ),
    );
    let log = r.hw.log();
    let reconnects = log.matches("lost the MQTT connection").count();
    let panics = log.matches("panicked").count();
    check(
        reconnects == 0 && panics == 0,
        format!("no MQTT reconnection ({reconnects}) and no panic ({panics}) in hydrowatch's log"),
    );
    let dropped = r.mqtt.log().matches("dropped").count();
    check(
        dropped == 0,
        format!("Mosquitto dropped no message ({dropped} log lines)"),
    );
    let q1_samples = r.samples.iter().filter(|s| s.received <= quarter).count();
    if q1_samples >= 3 {
        let bound = q1_peak as f64 * 1.25 + 16.0 * 1024.0;
        check(
            (rest_peak as f64) <= bound,
            format!(
                "RSS bounded: after the first quarter {:.1} MB <= 1.25 x first quarter {:.1} MB + 16 MB",
                mb(rest_peak),
                mb(q1_peak)
            ),
        );
    } else {
        println!("- [skipped] RSS bounded: {q1_samples} sample(s) in the first quarter, too few to judge (run more messages)");
    }
    println!();
    println!("## MQTT sessions");
    println!();
    println!("hydrowatch's log:");
    println!("```");
    for line in log.lines().filter(|l| {
        l.contains("lost the MQTT connection") || l.contains("connected to the MQTT broker")
    }) {
        println!("{}", strip_ansi(line));
    }
    println!("```");
    println!("Mosquitto's log, hydrowatch's client (`hw-soak-` + its HTTP port):");
    println!("```");
    let client = format!("hw-soak-{}", r.hw.http_port());
    for line in r
        .mqtt
        .log()
        .lines()
        .filter(|l| l.contains(&client))
        .take(40)
    {
        println!("{line}");
    }
    println!("```");
    if received > t.published as f64 && reconnects > 0 {
        println!(
            "{} deliveries more than published over {reconnects} reconnection(s): {:.0} each",
            received - t.published as f64,
            (received - t.published as f64) / reconnects as f64
        );
    }
    if let Some(dir) = &r.opts.keep_logs {
        let kept = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(dir.join("hydrowatch.log"), strip_ansi(&log)))
            .and_then(|_| std::fs::write(dir.join("mosquitto.log"), r.mqtt.log()));
        println!("logs kept in {}: {kept:?}", dir.display());
    }
    println!();
    if failures.is_empty() {
        println!("all checks passed");
    } else {
        println!("{} check(s) FAILED", failures.len());
        println!();
        println!("hydrowatch log tail:\n{}", strip_ansi(&tail(&log, 30)));
    }
    failures.is_empty()
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    (ticks(11) + ticks(12)) / hz
}
