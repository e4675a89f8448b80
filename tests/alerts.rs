//! Rules and the alert lifecycle end to end: real Mosquitto, the real daemon, and an
//! in-process webhook receiver standing in for a patrol team.

mod common;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/stages.rs"]
mod stages;

use std::time::Duration;

use common::*;
use receiver::Receiver;

fn daemon_config(mqtt: &Mosquitto, hook: &str, stations: &str) -> String {
    HwConfig::new(mqtt)
        .body(&format!(
            r#"[rules]
time_zone = "UTC"
clear_margin_m = 0.05

[[teams]]
id = "patrol"
name = "Patrol"
token = "patrol-token"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook}"
  secret = "s3cret"

{stations}
"#
        ))
        .build()
}

/// A stage event as the receiver saw it.
#[derive(Debug, Clone, PartialEq)]
struct StageEvent {
    state: String,
    stage: String,
    observed_at: String,
}

fn stage_events(receiver: &Receiver, rule: &str) -> Vec<StageEvent> {
    receiver
        .accepted()
        .iter()
        .filter(|e| e["rule"] == rule)
        .map(|e| StageEvent {
            state: e["state"].as_str().unwrap().to_string(),
            stage: e["stage"].as_str().unwrap().to_string(),
            observed_at: e["observed_at"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn utc(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The stage events the Plumtree Run record implies (see `support/stages.rs`), as the
/// receiver should see them from a station in UTC.
fn expected_plumtree_events(readings: &[(i64, f64)]) -> Vec<StageEvent> {
    stages::expected_events(readings, &stages::stages_m(), stages::CLEAR_MARGIN_M)
        .into_iter()
        .map(|e| StageEvent {
            state: e.state,
            stage: e.stage,
            observed_at: utc(e.observed_at_ms),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plumtree_run_flash_flood_produces_exactly_the_stage_events_its_data_imply() {
    let mqtt = Mosquitto::start(false);
    let receiver = Receiver::start().await;
    // NWS categories for PTRM2 (action 5, minor 6, moderate 7, major 10 ft), in metres.
    let table: Vec<String> = stages::stages_m()
        .iter()
        .map(|(n, l)| format!("{n} = {l}"))
        .collect();
    let station = format!(
        "[[stations]]\nid = \"{}\"\nname = \"Plumtree Run near Bel Air\"\nteam = \"patrol\"\nstages = {{ {} }}\n",
        stages::STATION,
        table.join(", ")
    );
    let mut hw = Hydrowatch::start(&daemon_config(&mqtt, &receiver.url("/hook"), &station));
    tokio::task::block_in_place(|| hw.wait_ready(Duration::from_secs(30)));

    let readings = stages::readings();
    let expected = expected_plumtree_events(&readings);
    assert!(
        expected.len() >= 2,
        "the data must cross a stage: {expected:?}"
    );
    assert!(
        expected
            .iter()
            .any(|e| e.observed_at.starts_with("2018-08-31")),
        "{expected:?}"
    );

    let messages: Vec<(String, Vec<u8>)> = readings
        .chunks(100)
        .map(|chunk| {
            let arr: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(t, l)| serde_json::json!({"time": t, "level_m": l}))
                .collect();
            (
                format!("hydro/{}/data", stages::STATION),
                serde_json::to_vec(&arr).unwrap(),
            )
        })
        .collect();
    publish_all(mqtt.port(), messages).await;

    let want = expected.len();
    wait_until_async(
        Duration::from_secs(60),
        "every stage event delivered",
        || stage_events(&receiver, "stage").len() >= want,
    )
    .await;
    eprintln!("expected stage events: {expected:#?}");
    assert_eq!(stage_events(&receiver, "stage"), expected);

    // Each delivery is signed with the team's secret, and carries the contract's fields.
    let first = receiver.all().into_iter().find(|d| d.accepted).unwrap();
    let signature = first.header("X-Hydrowatch-Signature").unwrap().to_string();
    assert_eq!(
        signature,
        hydrowatch::notify::channels::signature("s3cret", &first.body)
    );
    let body = first.json();
    for field in [
        "event_id",
        "alert_id",
        "station_name",
        "rule",
        "value",
        "threshold",
        "observed_at",
        "team",
        "message",
    ] {
        assert!(!body[field].is_null(), "missing {field}: {body}");
    }
    assert_eq!(body["late"], true, "a 2018 reading is late");
}

fn level_msg(station: &str, t_s: i64, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        serde_json::to_vec(&serde_json::json!({"time": t_s, "level_m": level})).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_an_alert_open_and_the_receiver_down_delivers_each_event_once() {
    let mqtt = Mosquitto::start(false);
    let receiver = Receiver::start().await;
    receiver.set_down(true);
    let station = r#"[[stations]]
id = "62304000"
name = "横排头"
river = "淠河"
team = "patrol"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0 }
"#;
    let mut hw = Hydrowatch::start(&daemon_config(&mqtt, &receiver.url("/hook"), station));
    tokio::task::block_in_place(|| hw.wait_ready(Duration::from_secs(30)));
    let t0 = 1_626_739_500; // 2021-07-20T00:05:00Z
    let rising = vec![
        level_msg("62304000", t0, 57.0),
        level_msg("62304000", t0 + 300, 57.6),
        level_msg("62304000", t0 + 600, 59.1),
    ];
    publish_all(mqtt.port(), rising.clone()).await;

    // Both events are committed (the receiver has refused at least the first) ...
    tokio::task::block_in_place(|| {
        wait_until_msg(
            Duration::from_secs(20),
            "escalated alert in the journal",
            || {
                let (_, body) = hw.http_get("/api/v1/alerts?state=open");
                body.contains("\"escalated\"")
            },
        );
        wait_until_msg(Duration::from_secs(20), "a refused delivery", || {
            !receiver.all().is_empty()
        });
    });
    // ... then the daemon dies, the receiver comes back, and the daemon restarts.
    hw.kill9();
    receiver.set_down(false);
    tokio::task::block_in_place(|| {
        hw.restart();
        hw.wait_ready(Duration::from_secs(30));
    });
    // The same readings again (a station's backlog flush, or a broker redelivery): no new
    // firing. Then the river falls and the alert resolves.
    publish_all(mqtt.port(), rising).await;
    publish_all(mqtt.port(), vec![level_msg("62304000", t0 + 900, 57.0)]).await;
    wait_until_async(Duration::from_secs(30), "the resolved event", || {
        stage_events(&receiver, "stage")
            .iter()
            .any(|e| e.state == "resolved")
    })
    .await;

    let accepted = receiver.accepted();
    let states: Vec<&str> = accepted
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["firing", "escalated", "resolved"]);
    let mut ids: Vec<&str> = accepted
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "each event exactly once by event_id: {accepted:?}"
    );
    // The refused attempts carried the same event_id as the accepted delivery.
    let refused: Vec<String> = receiver
        .all()
        .iter()
        .filter(|d| !d.accepted)
        .map(|d| d.json()["event_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        refused.iter().all(|id| ids.contains(&id.as_str())),
        "{refused:?} vs {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_millimetres_in_three_hours_fires_rain_3h_at_the_crossing_and_resolves_as_the_window_slides(
) {
    let mqtt = Mosquitto::start(false);
    let receiver = Receiver::start().await;
    let station = r#"[[stations]]
id = "rain1"
name = "大店岗雨量站"
team = "patrol"
interval = "5m"
rain = { "3h" = 50.0 }
"#;
    let mut hw = Hydrowatch::start(&daemon_config(&mqtt, &receiver.url("/hook"), station));
    tokio::task::block_in_place(|| hw.wait_ready(Duration::from_secs(30)));

    // Five-minute amounts: a storm of 4.5 mm per period for an hour, then dry for four hours.
    let t0 = 1_626_739_200; // 2021-07-20T00:00:00Z
    let amounts: Vec<(i64, f64)> = (1..=60)
        .map(|i| (t0 + i * 300, if i <= 12 { 4.5 } else { 0.0 }))
        .collect();
    // Expected from the data: the first reading whose 3 h window (t - 3h, t] reaches 50 mm,
    // then the first after it whose window is below 50 mm again.
    let window_sum = |t: i64| -> f64 {
        amounts
            .iter()
            .filter(|(u, _)| *u > t - 3 * 3600 && *u <= t)
            .map(|(_, a)| a)
            .sum()
    };
    let fire = amounts
        .iter()
        .find(|(t, _)| window_sum(*t) >= 50.0)
        .unwrap()
        .0;
    let resolve = amounts
        .iter()
        .find(|(t, _)| *t > fire && window_sum(*t) < 50.0)
        .unwrap()
        .0;
    assert!(resolve > fire);

    let messages = amounts
        .iter()
        .map(|(t, a)| {
            (
                "hydro/rain1/data".to_string(),
                serde_json::to_vec(
                    &serde_json::json!({"time": t, "rain_mm": a, "rain_period_s": 300}),
                )
                .unwrap(),
            )
        })
        .collect();
    publish_all(mqtt.port(), messages).await;
    wait_until_async(Duration::from_secs(30), "rain_3h resolved", || {
        stage_events(&receiver, "rain_3h")
            .iter()
            .any(|e| e.state == "resolved")
    })
    .await;
    let events = stage_events(&receiver, "rain_3h");
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.state.as_str(), e.observed_at.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("firing", utc(fire * 1000).as_str()),
            ("resolved", utc(resolve * 1000).as_str())
        ]
    );
    let firing = receiver
        .accepted()
        .into_iter()
        .find(|e| e["rule"] == "rain_3h")
        .unwrap();
    assert_eq!(firing["value"].as_f64().unwrap(), window_sum(fire));
    assert_eq!(firing["threshold"].as_f64().unwrap(), 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rain_windows_are_rebuilt_from_the_journal_after_a_restart() {
    let mqtt = Mosquitto::start(false);
    let receiver = Receiver::start().await;
    let station = r#"[[stations]]
id = "rain1"
team = "patrol"
rain = { "3h" = 50.0 }
"#;
    let mut hw = Hydrowatch::start(&daemon_config(&mqtt, &receiver.url("/hook"), station));
    tokio::task::block_in_place(|| hw.wait_ready(Duration::from_secs(30)));
    let t0 = 1_626_739_200;
    let rain = |t: i64, mm: f64| {
        (
            "hydro/rain1/data".to_string(),
            serde_json::to_vec(
                &serde_json::json!({"time": t, "rain_mm": mm, "rain_period_s": 300}),
            )
            .unwrap(),
        )
    };
    // 40 mm in the first hour: below the 3 h threshold.
    publish_all(
        mqtt.port(),
        (1..=8).map(|i| rain(t0 + i * 300, 5.0)).collect(),
    )
    .await;
    tokio::task::block_in_place(|| {
        wait_until_msg(Duration::from_secs(20), "40 mm in the 3 h window", || {
            let (_, body) = hw.http_get("/api/v1/stations/rain1");
            body.contains(r#"["3h",40.0]"#)
        });
        hw.kill9();
        hw.restart();
        hw.wait_ready(Duration::from_secs(30));
    });
    // 15 mm more after the restart: 55 mm in 3 h only if the window remembers the first 40.
    publish_all(mqtt.port(), vec![rain(t0 + 9 * 300, 15.0)]).await;
    wait_until_async(Duration::from_secs(20), "rain_3h firing", || {
        !stage_events(&receiver, "rain_3h").is_empty()
    })
    .await;
    let events = stage_events(&receiver, "rain_3h");
    assert_eq!(events[0].state, "firing");
    assert_eq!(events[0].observed_at, utc((t0 + 9 * 300) * 1000));
}
