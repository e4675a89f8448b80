//! Rain warning levels (rule `rain_level`, 准备转移 / 立即转移) through the whole system: a storm
//! replayed over MQTT into the real binary, a real Mosquitto, an in-process webhook receiver
//! for the village team and the zone team. The events must come at exactly the readings the
//! windows imply, in observation time, naming the deciding window (and, for the zone, the
//! gauge); the daemon is killed mid-storm and the alert carries on after the restart. The
//! expectations are worked out by hand below, and checked against a brute-force recount in
//! the test itself, never against the engine.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use receiver::Receiver;
use serde_json::Value;

const LEVELS: &str = r#"[
  { level = "prepare", name = "准备转移", windows = { "1h" = 35.0, "3h" = 55.0, "6h" = 70.0 } },
  { level = "evacuate", name = "立即转移", windows = { "1h" = 45.0, "3h" = 75.0, "6h" = 95.0 } },
]"#;

fn body(rx: &Receiver) -> String {
    format!(
        r#"
[[teams]]
id = "shimen"
name = "石门村"
  [[teams.channels]]
  kind = "webhook"
  url = "{p01}"

[[teams]]
id = "shankou"
name = "山口村"
  [[teams.channels]]
  kind = "webhook"
  url = "{zone}"

[[stations]]
id = "p01"
name = "石门雨量站"
team = "shimen"
interval = "30m"
offline_after = "24h"
rain_levels = {LEVELS}

[[stations]]
id = "p02"
name = "龙潭雨量站"
interval = "30m"
offline_after = "24h"

[[zones]]
id = "v01"
name = "山口村"
team = "shankou"
stations = ["p01", "p02"]
rain_levels = {LEVELS}
"#,
        p01 = rx.url("/p01"),
        zone = rx.url("/zone"),
    )
}

/// Half-hourly amounts (minutes after 2021-07-20T00:00+08:00, mm).
const P01: [(i64, f64); 14] = [
    (0, 8.0),
    (30, 12.0),
    (60, 18.0),
    (90, 20.0),
    (120, 22.0),
    (150, 6.0),
    (180, 2.0),
    (210, 0.0),
    (240, 0.0),
    (270, 0.0),
    (300, 0.0),
    (330, 0.0),
    (360, 0.0),
    (390, 0.0),
];
/// One downpour on the neighbouring gauge, then nothing.
fn p02(minute: i64) -> f64 {
    if minute == 0 {
        40.0
    } else {
        0.0
    }
}

/// The readings of both gauges in time order (p01 first at each time), up to `until`.
fn storm(from: i64, until: i64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (minute, mm) in P01.iter().filter(|(m, _)| (from..=until).contains(m)) {
        for (station, mm) in [("p01", *mm), ("p02", p02(*minute))] {
            let time = format!("2021-07-20T{:02}:{:02}:00+08:00", minute / 60, minute % 60);
            let payload = format!(r#"{{"time":"{time}","rain_mm":{mm:.1},"rain_period_s":1800}}"#);
            out.push((format!("hydro/{station}/data"), payload.into_bytes()));
        }
    }
    out
}

/// (state, stage, window, value, threshold, observed_at, gauge) as a webhook names them.
type Seen = (String, String, String, f64, f64, String, Option<String>);

fn seen(
    state: &str,
    stage: &str,
    window: &str,
    v: f64,
    th: f64,
    at: &str,
    gauge: Option<&str>,
) -> Seen {
    (
        state.into(),
        stage.into(),
        window.into(),
        v,
        th,
        format!("2021-07-20T{at}:00+08:00"),
        gauge.map(str::to_string),
    )
}

/// `rain_level` events delivered to `path`, deduplicated on event_id, in delivery order.
fn delivered(rx: &Receiver, path: &str) -> Vec<Value> {
    let mut ids = HashSet::new();
    rx.delivered(path)
        .into_iter()
        .filter(|e| e["rule"] == "rain_level")
        .filter(|e| ids.insert(e["event_id"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn summary(events: &[Value]) -> Vec<Seen> {
    events
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap_or("").into(),
                e["stage"].as_str().unwrap_or("").into(),
                e["window"].as_str().unwrap_or("").into(),
                e["value"].as_f64().unwrap_or(f64::NAN),
                e["threshold"].as_f64().unwrap_or(f64::NAN),
                e["observed_at"].as_str().unwrap_or("").into(),
                e["gauge"].as_str().map(str::to_string),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The expectations, by hand. A window w at t sums the amounts observed in (t - w, t].
//
// p01, against prepare 35/55/70 and evacuate 45/75/95 (1h/3h/6h):
//   01:30  1h 20+18 = 38 ≥ 35, 3h 58 ≥ 55, 6h 58; evacuate nowhere   → firing prepare.
//          Deciding: 1h 38/35 = 1.086 beats 3h 58/55 = 1.055.
//   02:00  1h 42 < 45, 3h 8+12+18+20+22 = 80 ≥ 75                     → escalated evacuate, 3h.
//   02:30  3h 86, 03:00 3h 12+18+20+22+6+2 = 80: evacuate holds.
//   03:30  3h 18+20+22+6+2+0 = 68 < 75, 6h 88 < 95, 1h 2 < 45         → deescalated prepare.
//          Deciding: 6h 88/70 = 1.257 beats 3h 68/55 = 1.236.
//   04:00  3h 50 < 55 but 6h 88 ≥ 70: prepare holds, until the amounts leave the 6h window:
//          06:00 6h 12+18+20+22+6+2 = 80 ≥ 70; 06:30 6h 68 < 70, all others 0  → resolved,
//          named on the closest window, 6h 68/70.
//
// Zone v01 (山口村) on p01 and p02 with the same levels, each gauge at its own latest time,
// readings arriving p01 then p02 at each half hour:
//   00:00 (p02)  p02 1h 40 ≥ 35                               → firing prepare, p02 1h 40/35.
//   01:00 (p02)  p02 1h 0, 3h 40, 6h 40; p01 1h 30, 3h 38    → resolved; closest is p01 1h
//                30/35 = 0.857 (p02 3h 40/55 = 0.727, 6h 40/70 = 0.571).
//   01:30 (p01)  as p01 alone: firing prepare, p01 1h 38/35 (a new alert).
//   02:00 (p01)  escalated evacuate, p01 3h 80/75.
//   03:30 (p01)  deescalated prepare, p01 6h 88/70 (p02's 40 mm is 6h 40/70 = 0.571).
//   06:30 (p01)  resolved, p01 6h 68/70 (p02's 40 mm left its 6h window at 06:00).
// ---------------------------------------------------------------------------

fn expected_p01() -> Vec<Seen> {
    vec![
        seen("firing", "prepare", "1h", 38.0, 35.0, "01:30", None),
        seen("escalated", "evacuate", "3h", 80.0, 75.0, "02:00", None),
        seen("deescalated", "prepare", "6h", 88.0, 70.0, "03:30", None),
        seen("resolved", "prepare", "6h", 68.0, 70.0, "06:30", None),
    ]
}

fn expected_zone() -> Vec<Seen> {
    vec![
        seen("firing", "prepare", "1h", 40.0, 35.0, "00:00", Some("p02")),
        seen(
            "resolved",
            "prepare",
            "1h",
            30.0,
            35.0,
            "01:00",
            Some("p01"),
        ),
        seen("firing", "prepare", "1h", 38.0, 35.0, "01:30", Some("p01")),
        seen(
            "escalated",
            "evacuate",
            "3h",
            80.0,
            75.0,
            "02:00",
            Some("p01"),
        ),
        seen(
            "deescalated",
            "prepare",
            "6h",
            88.0,
            70.0,
            "03:30",
            Some("p01"),
        ),
        seen(
            "resolved",
            "prepare",
            "6h",
            68.0,
            70.0,
            "06:30",
            Some("p01"),
        ),
    ]
}

/// The level (0 none, 1 prepare, 2 evacuate) of a gauge at `t` minutes, recounted from the
/// amounts by brute force: a cross-check of the hand-worked levels above.
fn level_by_recount(amounts: &[(i64, f64)], t: i64) -> usize {
    let sum = |w: i64| -> f64 {
        amounts
            .iter()
            .filter(|(m, _)| *m > t - w && *m <= t)
            .map(|(_, mm)| mm)
            .sum()
    };
    let (h1, h3, h6) = (sum(60), sum(180), sum(360));
    if h1 >= 45.0 || h3 >= 75.0 || h6 >= 95.0 {
        2
    } else if h1 >= 35.0 || h3 >= 55.0 || h6 >= 70.0 {
        1
    } else {
        0
    }
}

#[test]
fn the_hand_worked_levels_agree_with_a_recount() {
    let level_of = |stage: &str| if stage == "evacuate" { 2 } else { 1 };
    let minute = |at: &str| -> i64 {
        let hm = &at[11..16];
        hm[..2].parse::<i64>().unwrap() * 60 + hm[3..].parse::<i64>().unwrap()
    };
    // p01: the level changes exactly at the expected readings, to the expected level.
    let mut previous = 0;
    let mut changes = Vec::new();
    for (t, _) in P01 {
        let now = level_by_recount(&P01, t);
        if now != previous {
            changes.push((t, now));
        }
        previous = now;
    }
    let expected: Vec<(i64, usize)> = expected_p01()
        .iter()
        .map(|e| {
            let level = if e.0 == "resolved" { 0 } else { level_of(&e.1) };
            (minute(&e.5), level)
        })
        .collect();
    assert_eq!(changes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_storm_raises_and_lowers_rain_levels_at_the_readings_the_windows_imply() {
    let rx = Receiver::start().await;
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .client_id("hw-rain")
        .body(&body(&rx))
        .build();
    let mut hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));

    // The storm up to 02:00: prepare, then evacuate.
    publish_all(mqtt.port(), storm(0, 120)).await;
    wait_until_async(Duration::from_secs(20), "p01 escalated to evacuate", || {
        delivered(&rx, "/p01").len() >= 2
    })
    .await;
    wait_until_async(
        Duration::from_secs(20),
        "the zone escalated to evacuate",
        || delivered(&rx, "/zone").len() >= 4,
    )
    .await;

    // kill -9 mid-storm; the rest of the storm waits at the broker for the persistent session.
    hw.kill9();
    publish_all(mqtt.port(), storm(150, 390)).await;
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));

    wait_until_async(Duration::from_secs(30), "p01's storm to end", || {
        delivered(&rx, "/p01").len() >= expected_p01().len()
    })
    .await;
    wait_until_async(Duration::from_secs(30), "the zone's storm to end", || {
        delivered(&rx, "/zone").len() >= expected_zone().len()
    })
    .await;
    // Anything extra would have arrived with the last events.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p01 = delivered(&rx, "/p01");
    assert_eq!(summary(&p01), expected_p01());
    let zone = delivered(&rx, "/zone");
    assert_eq!(summary(&zone), expected_zone());

    // One alert through the restart: the events after it continue the same alert.
    let ids: HashSet<&str> = p01.iter().filter_map(|e| e["alert_id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "{p01:#?}");
    // The zone's second alert, opened at 01:30, is the one that carries on.
    assert_eq!(zone[2]["alert_id"], zone[5]["alert_id"]);
    assert_ne!(zone[0]["alert_id"], zone[2]["alert_id"]);

    // What people read.
    assert_eq!(p01[0]["station_name"], "石门雨量站");
    assert_eq!(p01[0]["team"], "shimen");
    assert_eq!(
        p01[0]["message"],
        "石门雨量站 准备转移: 1h 雨量 38.0 mm ≥ 35.0 mm"
    );
    assert_eq!(
        p01[2]["message"],
        "石门雨量站 立即转移 解除, 现为 准备转移: 6h 雨量 88.0 mm ≥ 70.0 mm"
    );
    assert_eq!(zone[0]["station"], "v01");
    assert_eq!(zone[0]["station_name"], "山口村");
    assert_eq!(zone[0]["team"], "shankou");
    assert_eq!(
        zone[0]["message"],
        "山口村 准备转移: 龙潭雨量站 1h 雨量 40.0 mm ≥ 35.0 mm"
    );
    assert_eq!(
        zone[5]["message"],
        "山口村 准备转移 解除: 各时段雨量均低于指标 (石门雨量站 6h 雨量 68.0 mm < 70.0 mm)"
    );
    // A replay is late news, and says so.
    assert!(p01.iter().all(|e| e["late"] == true));

    // The journal holds the same events.
    let (_, body) = hw.http_get("/api/v1/alerts?state=all");
    let alerts: Value = serde_json::from_str(&body).expect("alerts JSON");
    let recorded: usize = alerts
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["rule"] == "rain_level")
        .map(|a| a["events"].as_array().map_or(0, |e| e.len()))
        .sum();
    assert_eq!(recorded, expected_p01().len() + expected_zone().len());
    let windows: Vec<&str> = alerts
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["station"] == "p01" && a["rule"] == "rain_level")
        .flat_map(|a| a["events"].as_array().into_iter().flatten())
        .filter_map(|e| e["window"].as_str())
        .collect();
    assert_eq!(windows, ["1h", "3h", "6h", "6h"]);
}

#[test]
fn check_config_names_the_file_and_key_of_bad_rain_levels_and_zones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rain.toml");
    std::fs::write(
        &file,
        r#"
[[stations]]
id = "p01"
rain_levels = [
  { level = "prepare", windows = { "1h" = 35.0, "5m" = 8.0 } },
  { level = "evacuate", windows = { "1h" = 30.0 } },
  { level = "evacuate", windows = { "3h" = 0 } },
]

[[zones]]
id = "v01"
stations = ["p01", "p99"]
rain_levels = [{ level = "prepare", windows = { "1h" = 35.0 } }]
"#,
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(["check-config", "-c"])
        .arg(&file)
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let f = file.display();
    for expected in [
        format!("{f}: stations[p01].rain_levels[0].windows.5m: window must be a duration of 10 minutes or more"),
        format!("{f}: stations[p01].rain_levels[1].windows.1h: 30 mm must be more than level `prepare`'s 35 mm for 1h"),
        format!("{f}: stations[p01].rain_levels[2].level: level `evacuate` is listed twice"),
        format!("{f}: stations[p01].rain_levels[2].windows.3h: amount must be above 0 mm"),
        format!("{f}: zones[v01].stations: unknown station `p99`"),
    ] {
        assert!(text.contains(&expected), "{expected}\nin:\n{text}");
    }

    // Both schemes of docs/rain-levels.md are valid as written in the example configuration.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rain-levels.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(["check-config", "-c", example])
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("zones:    1"), "{text}");
    assert!(text.contains("rain_level 3"), "{text}");
}
