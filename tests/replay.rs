//! The reference event through the whole system: `hydrowatch simulate --replay` publishes the
//! USGS Plumtree Run record (feet, converted to metres) into a separately started Mosquitto;
//! `hydrowatch run` ingests it; a webhook receiver collects what the patrol team is sent.
//! The stage events must be the transitions the data imply, at the observation times that
//! imply them, computed here from the CSV with the contract's stage semantics.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Json;
use common::*;

const STATION: &str = "USGS-01581752";
const FT: f64 = 0.3048;
/// NWS flood categories for this gauge (PTRM2), feet.
const STAGES_FT: [(&str, f64); 4] = [
    ("action", 5.0),
    ("minor", 6.0),
    ("moderate", 7.0),
    ("major", 10.0),
];
const CLEAR_MARGIN_M: f64 = 0.05;

fn data_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/plumtree_run_2018-08.csv")
}

/// (time as written, level in metres), approved rows only, in time order.
fn readings() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(data_file()).expect("the Plumtree Run CSV");
    let mut rows: Vec<(String, f64)> =
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let cols: Vec<&str> = line.split(',').collect();
                (cols.len() == 4 && cols[0] == STATION && cols[3] == "A" && !cols[2].is_empty())
                    .then(|| {
                        (
                            cols[1].to_string(),
                            cols[2].parse::<f64>().expect("stage_ft") * FT,
                        )
                    })
            })
            .collect();
    rows.sort_by_key(|(t, _)| millis(t));
    rows
}

fn millis(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("time {rfc3339}: {e}"))
        .as_millisecond()
}

/// The contract's stage semantics, walked over the readings: (state, stage, observed_at ms).
fn expected_events(readings: &[(String, f64)]) -> Vec<(String, String, i64)> {
    let levels: Vec<f64> = STAGES_FT.iter().map(|(_, ft)| ft * FT).collect();
    let mut open: Option<usize> = None;
    let mut events = Vec::new();
    for (time, level) in readings {
        let reached = levels.iter().rposition(|l| level >= l);
        let mut emit = |state: &str, stage: usize| {
            events.push((
                state.to_string(),
                STAGES_FT[stage].0.to_string(),
                millis(time),
            ))
        };
        match (open, reached) {
            (None, Some(r)) => {
                emit("firing", r);
                open = Some(r);
            }
            (Some(o), Some(r)) if r > o => {
                emit("escalated", r);
                open = Some(r);
            }
            (Some(o), _) if *level < levels[o] - CLEAR_MARGIN_M => {
                match levels.iter().rposition(|l| *level >= l - CLEAR_MARGIN_M) {
                    Some(lower) => {
                        emit("deescalated", lower);
                        open = Some(lower);
                    }
                    None => {
                        emit("resolved", o);
                        open = None;
                    }
                }
            }
            _ => {}
        }
    }
    events
}

fn config(mqtt: &Mosquitto, hook_port: u16) -> String {
    let stages: Vec<String> = STAGES_FT
        .iter()
        .map(|(name, ft)| format!("{name} = {:?}", ft * FT))
        .collect();
    format!(
        r#"
[mqtt]
url = "{mqtt}"
client_id = "hw-replay-{{http_port}}"

[journal]
path = "{{dir}}/journal.db"

[http]
listen = "127.0.0.1:{{http_port}}"

[rules]
time_zone = "UTC"
clear_margin_m = {CLEAR_MARGIN_M}

[[teams]]
id = "harford-patrol"
name = "Harford County patrol"
  [[teams.channels]]
  kind = "webhook"
  url = "http://127.0.0.1:{hook_port}/hook"

[[stations]]
id = "{STATION}"
name = "Plumtree Run near Bel Air, MD"
team = "harford-patrol"
interval = "5m"
stages = {{ {stages} }}
"#,
        mqtt = mqtt.url(),
        stages = stages.join(", "),
    )
}

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

async fn start_receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(event): Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(event);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

/// Stage events the receiver got, deduplicated on event_id, in observation order.
fn stage_events(received: &Received) -> Vec<(String, String, i64)> {
    let mut seen = std::collections::HashSet::new();
    let mut events: Vec<(String, String, i64)> = received
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| e["rule"] == "stage" && e["station"] == STATION)
        .filter(|e| seen.insert(e["event_id"].as_str().unwrap_or("").to_string()))
        .map(|e| {
            (
                e["state"].as_str().unwrap_or("").to_string(),
                e["stage"].as_str().unwrap_or("").to_string(),
                millis(e["observed_at"].as_str().expect("observed_at")),
            )
        })
        .collect();
    events.sort_by_key(|(_, _, t)| *t);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_plumtree_run_gives_the_stage_events_the_data_imply() {
    let readings = readings();
    let expected = expected_events(&readings);
    // The reference flood: action and minor, up and back down.
    assert!(
        expected.len() >= 4,
        "the data should hold the 2018-08-31 flash flood: {expected:?}"
    );

    let mqtt = Mosquitto::start(false);
    let (hook_port, received) = start_receiver().await;
    let hw = Hydrowatch::start_ready(&config(&mqtt, hook_port), Duration::from_secs(30));

    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
            .args(["simulate", "--broker", &mqtt.url(), "--replay"])
            .arg(data_file())
            .args([
                "--time-column",
                "time_utc",
                "--value-column",
                "stage_ft",
                "--station-column",
                "station",
                "--scale",
                "0.3048",
                "--element",
                "level_m",
                "--filter-column",
                "qualifier",
                "--filter-value",
                "A",
                "--as-fast-as-possible",
                "--batch",
                "12",
            ])
            .output(),
    )
    .await
    .expect("simulate finishes within 120 s")
    .expect("run simulate");
    assert!(
        output.status.success(),
        "simulate exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // Every reading has been processed once the station's latest level is the last row's.
    let last = millis(&readings.last().expect("rows").0);
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
        || stage_events(&received).len() >= expected.len(),
    )
    .await;

    assert_eq!(stage_events(&received), expected);
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

#[test]
fn the_expected_sequence_follows_the_contract() {
    // A hand-made walk through the semantics the replay test relies on: raise to the highest
    // stage reached, fall back only beyond the margin, to the stage not that far below.
    let m = |ft: f64| ft * FT;
    let rows = [
        ("2018-08-31T23:00:00Z", m(4.9)),
        ("2018-08-31T23:05:00Z", m(6.2)), // firing minor (action skipped)
        ("2018-08-31T23:10:00Z", m(5.9)), // within the margin of minor: nothing
        ("2018-08-31T23:15:00Z", m(5.5)), // deescalated to action
        ("2018-08-31T23:20:00Z", m(4.9)), // within the margin of action: nothing
        ("2018-08-31T23:25:00Z", m(4.7)), // resolved, naming action
    ];
    let rows: Vec<(String, f64)> = rows.iter().map(|(t, l)| (t.to_string(), *l)).collect();
    let got: Vec<(String, String)> = expected_events(&rows)
        .into_iter()
        .map(|(s, st, _)| (s, st))
        .collect();
    let want = [
        ("firing", "minor"),
        ("deescalated", "action"),
        ("resolved", "action"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(got, want);
}
