//! End-to-end benchmarks of `hydrowatch run` against a real Mosquitto and a real InfluxDB 1.x,
//! started on free ports in temporary directories by the integration-test harness.
//!
//! ```text
//! cargo bench --bench pipeline                     # the full run (a few minutes)
//! cargo bench --bench pipeline -- --quick          # smaller counts, for a smoke test
//! cargo bench --bench pipeline -- --only=ingest    # ingest | latency | restart (comma list)
//! ```
//!
//! What it measures (docs/performance.md explains the figures and what limits each):
//! - ingest: readings/s from the first publish until hydrowatch has forwarded every reading to
//!   InfluxDB (and InfluxDB's count agrees), for single-reading messages and 100-reading
//!   batches, over 1,000 and 10,000 stations; the same messages through the same broker to a
//!   bare rumqttc subscriber that only counts them (the broker's own limit), and the ratio;
//!   hydrowatch's CPU seconds per 100,000 readings and its peak RSS.
//! - latency: publish of a stage-crossing reading → webhook receipt, while a background
//!   publisher sends 10,000 readings/s to other stations.
//! - restart: process start → `/readyz` 200 with 10,000 stations and 24 h of 5-minute rain to
//!   rebuild from the journal.
//!
//! Nothing here asserts a timing; it reports.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/receiver.rs"]
mod receiver;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use receiver::Receiver;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Observation times start here (2021-07-01T00:00:00Z): old timestamps, as in a backlog flush.
const BASE_TIME_S: i64 = 1_625_097_600;

/// Options from the command line (`cargo bench` adds `--bench`, which is ignored).
struct Options {
    quick: bool,
    only: Vec<String>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            quick: std::env::var("HW_BENCH_QUICK").is_ok(),
            only: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            if arg == "--quick" {
                o.quick = true;
            } else if let Some(spec) = arg.strip_prefix("--bare-subscriber=") {
                bare_subscriber(spec);
                std::process::exit(0);
            } else if let Some(list) = arg.strip_prefix("--only=") {
                o.only = list.split(',').map(str::to_string).collect();
            }
        }
        o
    }

    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn main() {
    let opts = Options::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // One InfluxDB for the whole run (a fresh database per case); a fresh broker per case, so
    // that no persistent session left by an earlier case makes the broker queue for it.
    let influx = Influx::start();
    println!("# hydrowatch pipeline benchmark");
    println!();
    println!(
        "machine: {} cores, {}; mosquitto {}, influxd {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total(),
        tool_version("mosquitto", &["-h"]),
        tool_version("influxd", &["version"]),
    );
    println!(
        "load average at start: {} (other work on the machine skews every figure)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("broker: max_inflight_messages 1000, max_queued_messages 1000000, persistence off; clients: QoS 1, inflight 100, clean session off");
    println!();

    if opts.wants("ingest") {
        let (single, batch) = if opts.quick {
            (20_000, 200_000)
        } else {
            (100_000, 1_000_000)
        };
        let cases = [
            (1_000, 1, single),
            (10_000, 1, single),
            (1_000, 100, batch),
            (10_000, 100, batch),
        ];
        println!("## Ingest: first publish → every reading in InfluxDB");
        println!();
        println!("| stations | readings/msg | readings | bare subscriber (readings/s) | hydrowatch committed+acked (readings/s) | hydrowatch → InfluxDB (readings/s) | ratio to bare | hw CPU s / 100k readings | bare CPU s / 100k | hw peak RSS MB | mosquitto CPU s | influxd CPU s |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (n, (stations, per_msg, readings)) in cases.into_iter().enumerate() {
            let messages = gauge_messages(stations, per_msg, readings);
            let (bare, bare_cpu) = bare_rate(&rt, &messages, per_msg);
            let hw = hydrowatch_rate(
                &rt,
                &influx,
                &format!("ingest{n}"),
                stations,
                &messages,
                readings,
            );
            println!(
                "| {stations} | {per_msg} | {readings} | {:.0} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {:.1} | {:.2} | {:.2} |",
                bare,
                readings as f64 / hw.committed_s,
                readings as f64 / hw.forwarded_s,
                (readings as f64 / hw.forwarded_s) / bare,
                hw.cpu_s / readings as f64 * 100_000.0,
                bare_cpu / readings as f64 * 100_000.0,
                hw.peak_rss_kb as f64 / 1024.0,
                hw.mosquitto_cpu_s,
                hw.influx_cpu_s,
            );
        }
        println!();
    }

    if opts.wants("latency") {
        let samples = if opts.quick { 60 } else { 300 };
        alert_latency(&rt, &influx, samples, 10_000);
    }

    if opts.wants("restart") {
        restart_time(&influx, 10_000, if opts.quick { 1 } else { 3 });
    }
}

// ---------------------------------------------------------------------------
// Messages and configuration
// ---------------------------------------------------------------------------

/// `readings` water levels spread over `stations` stations `g0`..; `per_msg` readings per
/// message (a plain object when 1, an array otherwise). Every (station, time) is distinct,
/// so InfluxDB's point count must equal `readings`.
fn gauge_messages(stations: usize, per_msg: usize, readings: usize) -> Vec<(String, Vec<u8>)> {
    let count = readings / per_msg;
    (0..count)
        .map(|j| {
            let station = j % stations;
            let round = (j / stations) as i64;
            let one = |k: usize| {
                let t = BASE_TIME_S + (round * per_msg as i64 + k as i64) * 60;
                let level = 50.0 + ((j * 7 + k * 3) % 1000) as f64 / 1000.0;
                format!(r#"{{"time":{t},"level_m":{level:.3}}}"#)
            };
            let payload = if per_msg == 1 {
                one(0)
            } else {
                let items: Vec<String> = (0..per_msg).map(one).collect();
                format!("[{}]", items.join(","))
            };
            (format!("hydro/g{station}/data"), payload.into_bytes())
        })
        .collect()
}

fn stations_toml(stations: usize, extra: &str) -> String {
    let mut s = String::with_capacity(stations * 100);
    for i in 0..stations {
        s.push_str(&format!(
            "[[stations]]\nid = \"g{i}\"\nname = \"Gauge {i}\"\nstages = {{ guard = 1000.0, warning = 1001.0 }}\n{extra}\n"
        ));
    }
    s
}

fn daemon_config(mqtt: &Mosquitto, influx: &Influx, db: &str, journal: &str, body: &str) -> String {
    HwConfig::new(mqtt)
        .client_id("hw-bench")
        .influx_v1(influx, db)
        .journal(journal)
        .body(body)
        .build()
}

// ---------------------------------------------------------------------------
// Publishing and the bare subscriber
// ---------------------------------------------------------------------------

fn client_options(id: &str, port: u16, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(clean)
        .set_inflight(100)
        .set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
    o
}

/// Publishes every message with QoS 1 from `connections` clients in parallel and returns
/// when every PubAck arrived. The returned instant is taken just before the first publish.
async fn publish_parallel(
    port: u16,
    messages: &[(String, Vec<u8>)],
    connections: usize,
    started: Arc<Mutex<Option<(Instant, SystemTime)>>>,
) {
    let chunk = messages.len().div_ceil(connections);
    let mut handles = Vec::new();
    for (c, part) in messages.chunks(chunk).enumerate() {
        let part = part.to_vec();
        let started = started.clone();
        handles.push(tokio::spawn(async move {
            let id = format!("hw-bench-pub-{c}-{}", std::process::id());
            let mut opts = client_options(&id, port, true);
            opts.set_inflight(1000);
            let (client, mut eventloop) = AsyncClient::new(opts, 1000);
            let total = part.len();
            let publisher = tokio::spawn(async move {
                {
                    let mut s = started.lock().unwrap();
                    s.get_or_insert_with(|| (Instant::now(), SystemTime::now()));
                }
                for (topic, payload) in part {
                    client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .expect("publish");
                }
                client
            });
            let mut acked = 0;
            while acked < total {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => panic!("publisher {c}: {e} after {acked}/{total}"),
                }
            }
            let client = publisher.await.expect("publisher task");
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }));
    }
    for h in handles {
        h.await.expect("publisher");
    }
}

const PUBLISHERS: usize = 2;

/// The broker's own limit: the same messages, through the same broker, to a bare rumqttc
/// subscriber set up like hydrowatch's (QoS 1, persistent session, inflight 100) that
/// acknowledges each message on receipt (auto-ack) and only counts. It runs as its own
/// process (this binary with `--bare-subscriber`), as hydrowatch does, so that it does not
/// share the publishers' runtime. Returns (readings/s from first publish to last receipt,
/// the subscriber's CPU seconds).
fn bare_rate(
    rt: &tokio::runtime::Runtime,
    messages: &[(String, Vec<u8>)],
    per_msg: usize,
) -> (f64, f64) {
    use std::io::BufRead;
    let mqtt = Mosquitto::start(false);
    let port = mqtt.port();
    let total = messages.len();
    let mut child = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .arg(format!("--bare-subscriber={port}:{total}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the bare subscriber");
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut line = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(line(), "subscribed", "bare subscriber did not subscribe");
    let started = Arc::new(Mutex::new(None));
    let msgs = messages.to_vec();
    let st = started.clone();
    let publishing = rt.spawn(async move { publish_parallel(port, &msgs, PUBLISHERS, st).await });
    let finished_ns: u128 = line().parse().expect("bare subscriber finish time");
    let cpu = cpu_seconds(pid);
    rt.block_on(publishing).expect("publishers");
    let _ = child.kill();
    let _ = child.wait();
    let (_, start) = started.lock().unwrap().expect("publishing started");
    let start_ns = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let secs = finished_ns.saturating_sub(start_ns) as f64 / 1e9;
    (total as f64 * per_msg as f64 / secs, cpu)
}

/// The bare subscriber process: subscribes, prints `subscribed`, counts `count` messages,
/// prints the wall-clock time of the last one (ns since the epoch) and waits to be killed.
fn bare_subscriber(spec: &str) {
    let (port, count) = spec.split_once(':').expect("PORT:COUNT");
    let port: u16 = port.parse().expect("port");
    let count: usize = count.parse().expect("count");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let id = format!("hw-bench-bare-{}", std::process::id());
        let (client, mut eventloop) = AsyncClient::new(client_options(&id, port, false), 1024);
        client
            .subscribe("hydro/+/data", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let mut received = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => println!("subscribed"),
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received += 1;
                    if received == count {
                        let ns = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .expect("clock")
                            .as_nanos();
                        println!("{ns}");
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("bare subscriber: {e}"),
            }
        }
    });
}

/// Polls `cond` every 2 ms; returns when it first held.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "benchmark step timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// hydrowatch ingest
// ---------------------------------------------------------------------------

struct IngestResult {
    committed_s: f64,
    forwarded_s: f64,
    cpu_s: f64,
    peak_rss_kb: u64,
    mosquitto_cpu_s: f64,
    influx_cpu_s: f64,
}

fn hydrowatch_rate(
    rt: &tokio::runtime::Runtime,
    influx: &Influx,
    db: &str,
    stations: usize,
    messages: &[(String, Vec<u8>)],
    readings: usize,
) -> IngestResult {
    influx.create_database(db);
    let mqtt = &Mosquitto::start(false);
    let config = daemon_config(
        mqtt,
        influx,
        db,
        "{dir}/journal.db",
        &stations_toml(stations, ""),
    );
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(60));
    let pid = hw.pid().expect("hydrowatch pid");
    let mosquitto_pid = pid_with_arg(&mqtt.dir().display().to_string());
    let influx_pid = pid_with_arg(&influx.dir().display().to_string());
    let cpu0 = cpu_seconds(pid);
    let mq0 = mosquitto_pid.map_or(0.0, cpu_seconds);
    let in0 = influx_pid.map_or(0.0, cpu_seconds);

    let started = Arc::new(Mutex::new(None));
    let msgs = messages.to_vec();
    let st = started.clone();
    let port = mqtt.port();
    let publishing = rt.spawn(async move { publish_parallel(port, &msgs, PUBLISHERS, st).await });

    let target = readings as f64;
    let mut committed_at = None;
    let forwarded_at = loop {
        let m = metrics(&hw);
        let now = Instant::now();
        let stored = m
            .get("hydrowatch_readings_stored_total")
            .copied()
            .unwrap_or(0.0);
        let forwarded = m
            .get("hydrowatch_readings_forwarded_total")
            .copied()
            .unwrap_or(0.0);
        if committed_at.is_none() && stored >= target {
            committed_at = Some(now);
        }
        if forwarded >= target {
            break now;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = cpu_seconds(pid) - cpu0;
    let mq = mosquitto_pid.map_or(0.0, cpu_seconds) - mq0;
    let inf = influx_pid.map_or(0.0, cpu_seconds) - in0;
    let peak_rss_kb = peak_rss_kb(pid);
    let in_influx = influx.count(db, "SELECT count(level_m) FROM water_level");
    assert_eq!(
        in_influx, readings as u64,
        "InfluxDB holds {in_influx} of {readings} readings"
    );
    rt.block_on(publishing).expect("publishers");
    let (start, _) = started.lock().unwrap().expect("publishing started");
    let committed_at = committed_at.unwrap_or(forwarded_at);
    drop(hw);
    IngestResult {
        committed_s: committed_at.duration_since(start).as_secs_f64(),
        forwarded_s: forwarded_at.duration_since(start).as_secs_f64(),
        cpu_s: cpu,
        peak_rss_kb,
        mosquitto_cpu_s: mq,
        influx_cpu_s: inf,
    }
}

/// hydrowatch's /metrics, summed per metric name (labels dropped).
fn metrics(hw: &Hydrowatch) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    if let Ok((200, text)) = http_request(hw.http_port(), "GET", "/metrics", b"", &[]) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = name.split('{').next().unwrap_or(name).to_string();
            if let Ok(v) = value.parse::<f64>() {
                *out.entry(name).or_insert(0.0) += v;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// VmHWM (peak resident set) in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The process whose command line mentions `needle` (a harness temp dir).
fn pid_with_arg(needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return Some(pid);
        }
    }
    None
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("? GB".into(), |kb| {
            format!("{:.0} GB", kb as f64 / 1048576.0)
        })
}

fn tool_version(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool).args(args).output();
    let text = out
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default();
    text.split_whitespace()
        .find(|w| {
            w.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == 'v')
                && w.contains('.')
        })
        .unwrap_or("?")
        .to_string()
}

// ---------------------------------------------------------------------------
// Alert latency
// ---------------------------------------------------------------------------

/// Publish of a stage-crossing reading → webhook receipt, one at a time, alternating a
/// firing (10.5x m ≥ guard 10) and a resolving reading (9.0x m), while `background` readings/s
/// in 10-reading messages go to 10,000 other stations.
fn alert_latency(rt: &tokio::runtime::Runtime, influx: &Influx, samples: usize, background: u64) {
    let db = "latency";
    influx.create_database(db);
    let mqtt = &Mosquitto::start(false);
    // The webhook receiver; `receipts` maps a delivered value (in 1/10000 m) to its receipt.
    let receiver = rt.block_on(Receiver::start());
    receiver.set_status(204);
    let hook_url = receiver.url("/hook");
    let mut receipts: HashMap<i64, Instant> = HashMap::new();
    let mut seen = 0;

    let body = format!(
        r#"[[teams]]
id = "bench"
name = "Bench"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook_url}"

[[stations]]
id = "a0"
name = "Alert gauge"
team = "bench"
stages = {{ guard = 10.0, warning = 11.0 }}

{}"#,
        stations_toml(10_000, "")
    );
    let hw = Hydrowatch::start_ready(
        &daemon_config(mqtt, influx, db, "{dir}/journal.db", &body),
        Duration::from_secs(60),
    );
    let pid = hw.pid().expect("pid");

    // Background load: every 10 ms, background/100 readings in 10-reading messages.
    let port = mqtt.port();
    let per_tick = (background / 100 / 10).max(1) as usize;
    let sent = Arc::new(AtomicU64::new(0));
    let sent_bg = sent.clone();
    let load = rt.spawn(async move {
        let (client, mut eventloop) =
            AsyncClient::new(client_options("hw-bench-background", port, true), 10_000);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut j = 0usize;
        loop {
            tick.tick().await;
            for _ in 0..per_tick {
                let station = j % 10_000;
                let round = (j / 10_000) as i64;
                let items: Vec<String> = (0..10)
                    .map(|k| {
                        let t = BASE_TIME_S + (round * 10 + k) * 60;
                        format!(r#"{{"time":{t},"level_m":50.5}}"#)
                    })
                    .collect();
                let payload = format!("[{}]", items.join(","));
                if client
                    .publish(
                        format!("hydro/g{station}/data"),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .is_err()
                {
                    return;
                }
                sent_bg.fetch_add(10, Ordering::Relaxed);
                j += 1;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2)); // let the load settle

    // Crossing readings from their own client.
    let (client, mut eventloop) =
        AsyncClient::new(client_options("hw-bench-crossing", port, true), 100);
    rt.spawn(async move { while eventloop.poll().await.is_ok() {} });
    let stored0 = metrics(&hw)
        .get("hydrowatch_readings_stored_total")
        .copied()
        .unwrap_or(0.0);
    let load_start = Instant::now();
    let cpu0 = cpu_seconds(pid);
    let sent0 = sent.load(Ordering::Relaxed);
    let mut latencies = Vec::with_capacity(samples);
    let mut lost = 0;
    for i in 0..samples {
        let firing = i % 2 == 0;
        let level = if firing { 10.5 } else { 9.0 } + (i as f64) * 0.0001;
        let key = (level * 10_000.0).round() as i64;
        let time_ms = now_ms();
        let payload = format!(r#"{{"time":{time_ms},"level_m":{level:.4}}}"#);
        let t0 = Instant::now();
        let c = client.clone();
        rt.block_on(async move {
            c.publish("hydro/a0/data", QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish crossing reading")
        });
        let deadline = t0 + Duration::from_secs(10);
        let got = loop {
            let new = receiver.since(seen);
            seen += new.len();
            for d in new.iter().filter(|d| d.path == "/hook") {
                if let Some(value) = serde_json::from_slice::<serde_json::Value>(&d.body)
                    .ok()
                    .and_then(|v| v["value"].as_f64())
                {
                    receipts.insert((value * 10_000.0).round() as i64, d.at);
                }
            }
            if let Some(at) = receipts.get(&key).copied() {
                break Some(at);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        match got {
            Some(at) => latencies.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            None => lost += 1,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = load_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let offered = (sent.load(Ordering::Relaxed) - sent0) as f64 / elapsed;
    let stored = metrics(&hw)
        .get("hydrowatch_readings_stored_total")
        .copied()
        .unwrap_or(0.0);
    let achieved = (stored - stored0) / elapsed;
    load.abort();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!("## Alert latency: publish of the crossing reading → webhook receipt");
    println!();
    println!("| samples | lost | background offered (readings/s) | stored (readings/s) | p50 ms | p90 ms | p99 ms | max ms | hw CPU % of one core | hw peak RSS MB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {lost} | {offered:.0} | {achieved:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} |",
        latencies.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        cpu / elapsed * 100.0,
        peak_rss_kb(pid) as f64 / 1024.0,
    );
    println!();
    drop(hw);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------

/// Writes a journal holding 24 h of 5-minute readings (level and rain) for `stations`
/// stations, all already forwarded, then times process start → `/readyz` 200, `runs` times.
fn restart_time(influx: &Influx, stations: usize, runs: usize) {
    let db = "restart";
    influx.create_database(db);
    let mqtt = &Mosquitto::start(false);
    let dir = tempfile::Builder::new()
        .prefix("hw-bench-restart-")
        .tempdir()
        .expect("tempdir");
    let journal = dir.path().join("journal.db");
    let per_station = 24 * 12;
    let fill = Instant::now();
    populate_journal(&journal, stations, per_station);
    let fill_s = fill.elapsed().as_secs_f64();
    let size_mb = std::fs::metadata(&journal).map_or(0, |m| m.len()) as f64 / 1e6;
    let rain = r#"rain = { "1h" = 30.0, "3h" = 50.0, "24h" = 100.0 }"#;
    let config = daemon_config(
        mqtt,
        influx,
        db,
        &journal.display().to_string(),
        &stations_toml(stations, rain),
    );
    println!("## Restart: process start → /readyz 200");
    println!();
    println!(
        "journal: {stations} stations × {per_station} readings (24 h, 5 min, level + rain) = {} readings, {size_mb:.0} MB, written in {fill_s:.1} s",
        stations * per_station
    );
    println!();
    println!("| run | start → journal open (s) | start → /readyz 200 (s) | peak RSS MB | CPU s |");
    println!("|---:|---:|---:|---:|---:|");
    for run in 1..=runs {
        let t0 = Instant::now();
        let mut hw = Hydrowatch::start(&config);
        let pid = hw.pid().expect("pid");
        let mut journal_open = None;
        let ready = wait_for(Duration::from_secs(120), || {
            if journal_open.is_none() && hw.log().contains("journal open") {
                journal_open = Some(Instant::now());
            }
            matches!(
                http_request(hw.http_port(), "GET", "/readyz", b"", &[]),
                Ok((200, _))
            )
        });
        let journal_open = journal_open.unwrap_or(ready);
        println!(
            "| {run} | {:.2} | {:.2} | {:.1} | {:.2} |",
            journal_open.duration_since(t0).as_secs_f64(),
            ready.duration_since(t0).as_secs_f64(),
            peak_rss_kb(pid) as f64 / 1024.0,
            cpu_seconds(pid),
        );
        hw.stop();
    }
    println!();
}

fn populate_journal(path: &Path, stations: usize, per_station: usize) {
    let mut conn = hydrowatch::journal::open(path).expect("journal");
    conn.execute_batch("PRAGMA synchronous = OFF;")
        .expect("pragma");
    let now = now_ms();
    let latest = now - 60_000;
    let tx = conn.transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO readings (station, time_ms, seq, level_m, rain_mm, rain_period_s, quality, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 300, 'good', ?6)",
            )
            .expect("prepare");
        let mut seq = 0i64;
        // Time-major, as a live journal is written: each 5-minute round reaches every station.
        for k in 0..per_station {
            let time = latest - (per_station - 1 - k) as i64 * 300_000;
            for s in 0..stations {
                seq += 1;
                let level = 50.0 + ((s + k) % 100) as f64 / 100.0;
                let rain = ((s + k) % 3) as f64 * 0.1;
                insert
                    .execute(rusqlite::params![
                        format!("g{s}"),
                        time,
                        seq,
                        level,
                        rain,
                        now
                    ])
                    .expect("insert");
            }
        }
        tx.execute(
            "INSERT INTO cursors (name, seq) VALUES ('influxdb.readings', ?1)",
            [seq],
        )
        .expect("cursor");
        let mut state = tx
            .prepare("INSERT INTO station_state (station, last_seen_ms) VALUES (?1, ?2)")
            .expect("prepare");
        for s in 0..stations {
            state
                .execute(rusqlite::params![format!("g{s}"), now])
                .expect("station_state");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
}
