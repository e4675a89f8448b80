//! The foundation, end to end against a real Mosquitto and a real InfluxDB 1.x: every payload
//! shape arrives with exact values and times, bad messages are dead-lettered without harm,
//! and neither `kill -9`, an InfluxDB outage nor a broker that forgets its sessions loses a
//! reading.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

const DB: &str = "hydro";

/// A configuration for one test: ten plain stations `s0`..`s9` and one whose name, river and
/// basin are full of characters line protocol must escape.
fn config(mqtt: &Mosquitto, influx: &Influx) -> String {
    let mut stations = String::new();
    for i in 0..10 {
        stations.push_str(&format!(
            "[[stations]]\nid = \"s{i}\"\nname = \"Station {i}\"\nstages = {{ guard = 1000.0, warning = 1001.0 }}\n\n"
        ));
    }
    HwConfig::new(mqtt)
        .influx_v1(influx, DB)
        .influxdb(r#"flush_interval = "50ms""#)
        .body(&format!(
            r#"[[stations]]
id = "62304000"
name = "横排头 \"东\", 站=1"
river = "淠河 east,bank=\"A\""
basin = "淮河 basin"
stages = {{ guard = 57.5, warning = 59.0 }}

{stations}
"#
        ))
        .build()
}

fn start_all(persistence: bool) -> (Mosquitto, Influx, Hydrowatch) {
    let mqtt = Mosquitto::start(persistence);
    let influx = Influx::start();
    influx.create_database(DB);
    let hw = Hydrowatch::start_ready(&config(&mqtt, &influx), Duration::from_secs(30));
    (mqtt, influx, hw)
}

fn metric(hw: &Hydrowatch, name: &str) -> f64 {
    let (_, text) = hw.http_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (station, time ms) → level.
type Levels = HashMap<(String, i64), f64>;

/// Every water_level point in InfluxDB.
fn levels(influx: &Influx) -> Levels {
    influx
        .rows(DB, "SELECT level_m, station FROM water_level")
        .into_iter()
        .map(|row| {
            let t = row[0].as_i64().expect("time");
            let level = row[1].as_f64().expect("level_m");
            let station = row[2].as_str().expect("station").to_string();
            ((station, t), level)
        })
        .collect()
}

fn reading_msg(station: &str, time_s: i64, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        format!(r#"{{"time":{time_s},"level_m":{level}}}"#).into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_shape_arrives_exactly_and_bad_messages_are_dead_lettered() {
    let (mqtt, influx, hw) = start_all(false);
    let messages: Vec<(String, Vec<u8>)> = vec![
        // One object, RFC 3339 with offset, level and rain.
        (
            "hydro/62304000/data".into(),
            br#"{"time":"2021-07-20T08:05:00+08:00","level_m":59.32,"rain_mm":1.5,"rain_period_s":300}"#.to_vec(),
        ),
        // An array: naive local time (Asia/Shanghai), Unix seconds, Unix milliseconds.
        (
            "hydro/s1/data".into(),
            br#"[{"time":"2021-07-20T08:10:00","level_m":10.01},{"time":1626740100,"level_m":10.02},{"time":1626740400000,"level_m":10.03}]"#.to_vec(),
        ),
        // The envelope.
        (
            "hydro/s2/data".into(),
            br#"{"station":"s2","readings":[{"time":"2021-07-20T00:05:00Z","level_m":20.5},{"time":"2021-07-20T00:10:00Z","level_m":20.25}]}"#.to_vec(),
        ),
        // Four kinds of bad message, between good ones.
        ("hydro/s3/data".into(), b"this is not json".to_vec()),
        ("hydro/nobody/data".into(), br#"{"time":1626739500,"level_m":1.0}"#.to_vec()),
        ("hydro/s3/data".into(), br#"{"level_m":1.0}"#.to_vec()),
        ("hydro/s3/data".into(), br#"{"time":4102444800,"level_m":1.0}"#.to_vec()),
        ("hydro/s3/data".into(), br#"{"time":1626739500,"level_m":"NaN"}"#.to_vec()),
        // A good one after the bad ones: the daemon is still ingesting.
        ("hydro/s3/data".into(), br#"{"time":1626739500,"level_m":30.125}"#.to_vec()),
    ];
    publish_all(mqtt.port(), messages).await;

    wait_until_async(Duration::from_secs(20), "7 levels in InfluxDB", || {
        influx.count(DB, "SELECT count(level_m) FROM water_level") == 7
    })
    .await;
    let got = levels(&influx);
    let t0 = 1_626_739_500_000_i64; // 2021-07-20T08:05:00+08:00
    let expected = [
        ("62304000", t0, 59.32),
        ("s1", t0 + 300_000, 10.01),
        ("s1", t0 + 600_000, 10.02),
        ("s1", t0 + 900_000, 10.03),
        ("s2", t0, 20.5),
        ("s2", t0 + 300_000, 20.25),
        ("s3", t0, 30.125),
    ];
    for (station, t, level) in expected {
        assert_eq!(
            got.get(&(station.to_string(), t)),
            Some(&level),
            "{station} at {t}: {got:?}"
        );
    }

    // Rainfall with its period, and the special characters round-trip as tags.
    let rain = influx.rows(
        DB,
        "SELECT rain_mm, period_s FROM rainfall WHERE station = '62304000'",
    );
    assert_eq!(
        rain,
        vec![vec![
            serde_json::json!(t0),
            serde_json::json!(1.5),
            serde_json::json!(300)
        ]]
    );
    let tags = influx.rows(
        DB,
        "SELECT level_m, river, basin FROM water_level WHERE station = '62304000'",
    );
    assert_eq!(tags[0][2], serde_json::json!("淠河 east,bank=\"A\""));
    assert_eq!(tags[0][3], serde_json::json!("淮河 basin"));

    // 59.32 m is above the warning stage (59.0): the alert event reaches InfluxDB too.
    wait_until_async(
        Duration::from_secs(20),
        "the alert event in InfluxDB",
        || influx.count(DB, "SELECT count(value) FROM alert_event") == 1,
    )
    .await;
    let event = influx.rows(
        DB,
        "SELECT state, stage, rule, value, threshold, station FROM alert_event",
    );
    assert_eq!(
        event[0][0],
        serde_json::json!(t0),
        "stamped with the observation time"
    );
    assert_eq!(
        event[0][1..],
        [
            serde_json::json!("firing"),
            serde_json::json!("warning"),
            serde_json::json!("stage"),
            serde_json::json!(59.32),
            serde_json::json!(59),
            serde_json::json!("62304000")
        ]
    );

    // Five dead letters, each with its reason, counted in /metrics.
    let (status, body) = hw.http_get("/api/v1/dead_letters");
    assert_eq!(status, 200);
    let dead: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut causes: Vec<&str> = dead.iter().map(|d| d["cause"].as_str().unwrap()).collect();
    causes.sort();
    assert_eq!(
        causes,
        [
            "bad_value",
            "future_time",
            "missing_time",
            "not_json",
            "unknown_station"
        ]
    );
    assert_eq!(metric(&hw, "hydrowatch_dead_letters_total"), 5.0);
    let (status, _) = hw.http_get("/healthz");
    assert_eq!(status, 200);
}

/// Compares without printing twenty thousand entries.
fn assert_same(got: &Levels, expected: &Levels) {
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .take(5)
        .map(|(k, v)| format!("{k:?}: expected {v}, got {:?}", got.get(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} points differ, e.g. {wrong:#?}",
        expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .count()
    );
    assert_eq!(got.len(), expected.len(), "extra points in InfluxDB");
}

/// Publishes `n` readings spread over ten stations; returns what InfluxDB must end up holding.
fn burst(n: usize, base_s: i64) -> (Vec<(String, Vec<u8>)>, Levels) {
    let mut messages = Vec::with_capacity(n);
    let mut expected = HashMap::new();
    for i in 0..n {
        let station = format!("s{}", i % 10);
        let t = base_s + (i / 10) as i64 * 60;
        let level = 100.0 + (i as f64) / 1000.0;
        messages.push(reading_msg(&station, t, level));
        expected.insert((station, t * 1000), level);
    }
    (messages, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_burst_loses_and_duplicates_nothing() {
    let (mqtt, influx, mut hw) = start_all(false);
    let (messages, expected) = burst(20_000, 1_600_000_000);
    let port = mqtt.port();
    let publisher = tokio::spawn(async move { publish_all(port, messages).await });

    let stored_some = |hw: &Hydrowatch| metric(hw, "hydrowatch_readings_stored_total") >= 2_000.0;
    tokio::task::block_in_place(|| {
        wait_until_msg(Duration::from_secs(60), "2,000 readings stored", || {
            stored_some(&hw)
        })
    });
    let stored_before = metric(&hw, "hydrowatch_readings_stored_total");
    hw.kill9();
    assert!(
        stored_before < 20_000.0,
        "the kill must land mid-burst (stored {stored_before})"
    );
    publisher.await.unwrap();
    hw.restart();
    tokio::task::block_in_place(|| {
        hw.wait_ready(Duration::from_secs(30));
        wait_until_msg(
            Duration::from_secs(120),
            "20,000 levels in InfluxDB",
            || influx.count(DB, "SELECT count(level_m) FROM water_level") >= 20_000,
        );
    });
    assert_eq!(
        influx.count(DB, "SELECT count(level_m) FROM water_level"),
        20_000
    );
    assert_same(&levels(&influx), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxdb_outage_and_a_kill_9_during_it_lose_nothing() {
    let (mqtt, mut influx, mut hw) = start_all(false);
    influx.stop();
    let (messages, expected) = burst(5_000, 1_500_000_000);
    publish_all(mqtt.port(), messages).await;
    tokio::task::block_in_place(|| {
        wait_until_msg(
            Duration::from_secs(60),
            "5,000 readings in the journal",
            || metric(&hw, "hydrowatch_readings_stored_total") >= 5_000.0,
        )
    });
    hw.kill9();
    influx.start_again();
    hw.restart();
    tokio::task::block_in_place(|| {
        hw.wait_ready(Duration::from_secs(30));
        wait_until_msg(Duration::from_secs(120), "5,000 levels in InfluxDB", || {
            influx.count(DB, "SELECT count(level_m) FROM water_level") >= 5_000
        });
    });
    assert_same(&levels(&influx), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_without_its_state_does_not_leave_hydrowatch_deaf() {
    let (mut mqtt, influx, hw) = start_all(false);
    publish_all(mqtt.port(), vec![reading_msg("s0", 1_700_000_000, 1.0)]).await;
    tokio::task::block_in_place(|| {
        wait_until_msg(Duration::from_secs(20), "first reading", || {
            influx.count(DB, "SELECT count(level_m) FROM water_level") == 1
        })
    });

    mqtt.restart(); // no persistence: the broker forgets the session and its subscriptions

    // Keep publishing a probe until one arrives: without a fresh subscription none ever would.
    let mut probe = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        probe += 1;
        publish_all(
            mqtt.port(),
            vec![reading_msg("s1", 1_700_000_000 + probe, 2.0)],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if influx.count(
            DB,
            "SELECT count(level_m) FROM water_level WHERE station = 's1'",
        ) > 0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "silent stall: nothing stored after the broker restart\n{}",
            tail(&hw.log(), 30)
        );
    }
    // And everything after that arrives.
    let batch: Vec<_> = (0..100)
        .map(|i| reading_msg("s2", 1_700_000_000 + i, 3.0 + i as f64))
        .collect();
    publish_all(mqtt.port(), batch).await;
    tokio::task::block_in_place(|| {
        wait_until_msg(
            Duration::from_secs(20),
            "100 readings after the restart",
            || {
                influx.count(
                    DB,
                    "SELECT count(level_m) FROM water_level WHERE station = 's2'",
                ) == 100
            },
        )
    });
}
