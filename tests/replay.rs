//! The reference event through the whole system: `hydrowatch simulate --replay` publishes the
//! USGS Plumtree Run record (feet, converted to metres) into a separately started Mosquitto;
//! `hydrowatch run` ingests it; a webhook receiver collects what the patrol team is sent.
//! The stage events must be the transitions the data imply, at the observation times that
//! imply them, computed here from the CSV with the contract's stage semantics.

mod common;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/stages.rs"]
mod stages;

use std::time::Duration;

use common::*;
use receiver::Receiver;
use stages::{millis, CLEAR_MARGIN_M, FT, STAGES_FT, STATION};

fn config(mqtt: &Mosquitto, hook: &str) -> String {
    let stages: Vec<String> = STAGES_FT
        .iter()
        .map(|(name, ft)| format!("{name} = {:?}", ft * FT))
        .collect();
    HwConfig::new(mqtt)
        .client_id("hw-replay")
        .body(&format!(
            r#"[rules]
time_zone = "UTC"
clear_margin_m = {CLEAR_MARGIN_M}

[[teams]]
id = "harford-patrol"
name = "Harford County patrol"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook}"

[[stations]]
id = "{STATION}"
name = "Plumtree Run near Bel Air, MD"
team = "harford-patrol"
interval = "5m"
stages = {{ {stages} }}
"#,
            stages = stages.join(", "),
        ))
        .build()
}

/// Stage events the receiver got, deduplicated on event_id, in observation order.
fn stage_events(receiver: &Receiver) -> Vec<stages::Event> {
    let mut seen = std::collections::HashSet::new();
    let mut events: Vec<stages::Event> = receiver
        .delivered("/hook")
        .iter()
        .filter(|e| e["rule"] == "stage" && e["station"] == STATION)
        .filter(|e| seen.insert(e["event_id"].as_str().unwrap_or("").to_string()))
        .map(|e| stages::Event {
            state: e["state"].as_str().unwrap_or("").to_string(),
            stage: e["stage"].as_str().unwrap_or("").to_string(),
            observed_at_ms: millis(e["observed_at"].as_str().expect("observed_at")),
        })
        .collect();
    events.sort_by_key(|e| e.observed_at_ms);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_plumtree_run_gives_the_stage_events_the_data_imply() {
    let readings = stages::readings();
    let expected = stages::expected_events(&readings, &stages::stages_m(), CLEAR_MARGIN_M);
    // The reference flood: action and minor, up and back down.
    assert!(
        expected.len() >= 4,
        "the data should hold the 2018-08-31 flash flood: {expected:?}"
    );

    let mqtt = Mosquitto::start(false);
    let receiver = Receiver::start().await;
    let hw = Hydrowatch::start_ready(
        &config(&mqtt, &receiver.url("/hook")),
        Duration::from_secs(30),
    );

    stages::replay_the_flood(&mqtt.url()).await;

    // Every reading has been processed once the station's latest level is the last row's.
    let last = readings.last().expect("rows").0;
    let path = format!("/api/v1/stations/{STATION}");
    wait_until_async(
        Duration::from_secs(60),
        "the last reading processed",
        || {
            let (_, body) = hw.http_get(&path);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["status"]["level_time"].as_i64() == Some(last)
        },
    )
    .await;
    wait_until_async(
        Duration::from_secs(30),
        "the patrol team to receive every stage event",
        || stage_events(&receiver).len() >= expected.len(),
    )
    .await;

    assert_eq!(stage_events(&receiver), expected);
    let (_, body) = hw.http_get("/api/v1/alerts?state=all");
    let alerts: serde_json::Value = serde_json::from_str(&body).expect("alerts JSON");
    let recorded = alerts
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["rule"] == "stage")
        .map(|a| a["events"].as_array().map(|e| e.len()).unwrap_or(0))
        .sum::<usize>();
    assert_eq!(
        recorded,
        expected.len(),
        "the journal holds the same events"
    );
    eprintln!("stage events: {expected:?}");
}
