//! What a duty officer would catch out in the pages: an escalation that claims an hour of
//! silence minutes after a team answered, a "resolved" for an alert nobody was told about, a
//! sensor spike shown as a flood stage. The real binary, a real Mosquitto, an in-process
//! receiver; rules run in observation time, timers on the wall clock.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use common::*;
use receiver::Receiver;
use serde_json::Value;

fn reading(station: &str, time: &str, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        format!(r#"{{"time":"{time}","level_m":{level}}}"#).into_bytes(),
    )
}

async fn start(body: &str, rx: &Receiver) -> (Mosquitto, Hydrowatch) {
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .body(&body.replace("@RX@", &rx.url("")))
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    (mqtt, hw)
}

// ---------------------------------------------------------------------------
// 1. The escalation clock runs from the moment the alert last needed an answer.
// ---------------------------------------------------------------------------

const ESCALATION: &str = r#"
[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/east"
  [[teams.escalation]]
  after = "4s"
  team = "county"

[[teams]]
id = "county"
token = "county-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/county"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0, guaranteed = 3.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_alert_raised_again_escalates_only_after_the_full_wait() {
    let rx = Receiver::start().await;
    let (mqtt, hw) = start(ESCALATION, &rx).await;
    publish_all(
        mqtt.port(),
        vec![reading("s1", "2021-07-20T10:00:00+08:00", 2.1)],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "the warning page", || {
        !rx.delivered("/east").is_empty()
    })
    .await;
    let alert_id = rx.delivered("/east")[0]["alert_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        b"",
        &[("Authorization", "Bearer east-token")],
    );
    assert_eq!(status, 200, "{body}");
    // Answered, then quiet for longer than the escalation step: nobody is escalated to.
    wait_until_async(
        Duration::from_secs(10),
        "the acknowledgement delivered",
        || {
            rx.delivered("/east")
                .iter()
                .any(|e| e["state"] == "acknowledged")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        rx.requests("/county").is_empty(),
        "escalated although answered"
    );

    // The river reaches the guaranteed stage: a new acknowledgement is needed, and the
    // county is paged only if none comes within the step, counted from now.
    publish_all(
        mqtt.port(),
        vec![reading("s1", "2021-07-20T11:00:00+08:00", 3.2)],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "the guaranteed-stage page", || {
        rx.delivered("/east")
            .iter()
            .any(|e| e["state"] == "escalated")
    })
    .await;
    let raised_at = rx
        .requests("/east")
        .into_iter()
        .find(|d| d.accepted && d.json()["state"] == "escalated")
        .unwrap()
        .at;
    wait_until_async(
        Duration::from_secs(15),
        "the escalation to the county",
        || !rx.requests("/county").is_empty(),
    )
    .await;
    let county = &rx.requests("/county")[0];
    let waited = county.at - raised_at;
    assert!(
        waited >= Duration::from_millis(3800),
        "county paged {waited:?} after the raise; the step is 4 s"
    );
    let page = county.json();
    let unanswered = page["unacknowledged_s"].as_f64().unwrap();
    assert!(
        (3.5..15.0).contains(&unanswered),
        "the page must not claim the time since the first page: {page}"
    );
}

// ---------------------------------------------------------------------------
// 2. A condition that never left `pending` pages no one, ever.
// ---------------------------------------------------------------------------

const PENDING: &str = r#"
[rules]
pending = "10m"

[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/east"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }

[[stations]]
id = "s2"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_never_left_pending_pages_no_one() {
    let rx = Receiver::start().await;
    let (mqtt, hw) = start(PENDING, &rx).await;
    // s1 touches guard for five minutes and falls back: pending, then dropped.
    publish_all(
        mqtt.port(),
        vec![
            reading("s1", "2021-07-20T10:00:00+08:00", 1.1),
            reading("s1", "2021-07-20T10:05:00+08:00", 0.5),
        ],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "s1's pending alert closed", || {
        let (_, body) = hw.http_get("/api/v1/alerts?state=all");
        let alerts: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        alerts.as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["station"] == "s1" && a["state"] == "resolved")
        })
    })
    .await;
    // s2 holds guard for ten minutes and fires. Its page goes through the same destination
    // after anything s1 queued, so once it is delivered, s1's would have been too.
    publish_all(
        mqtt.port(),
        vec![
            reading("s2", "2021-07-20T10:00:00+08:00", 1.1),
            reading("s2", "2021-07-20T10:10:00+08:00", 1.2),
        ],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "s2's firing page", || {
        rx.delivered("/east").iter().any(|e| e["station"] == "s2")
    })
    .await;
    let about_s1: Vec<Value> = rx
        .delivered("/east")
        .into_iter()
        .filter(|e| e["station"] == "s1")
        .collect();
    assert!(about_s1.is_empty(), "s1 never fired, yet: {about_s1:?}");
}

// ---------------------------------------------------------------------------
// 3. A sensor spike is a sensor alert, not a flood stage, in the retained status too.
// ---------------------------------------------------------------------------

const SPIKE: &str = r#"
[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "mqtt"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }
level_range = [40.0, 70.0]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_spike_is_not_shown_as_a_stage() {
    let rx = Receiver::start().await;
    let (mqtt, hw) = start(SPIKE, &rx).await;
    let mut status = MqttSubscriber::connect(mqtt.port(), "hydro/status/#").await;
    publish_all(
        mqtt.port(),
        vec![
            reading("s1", "2021-07-20T10:00:00+08:00", 55.2),
            reading("s1", "2021-07-20T10:05:00+08:00", 75.0),
        ],
    )
    .await;
    let got = status.recv_n(1, Duration::from_secs(15)).await;
    let retained: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(got[0].0, "hydro/status/s1");
    assert_eq!(retained["level_m"], 55.2, "{retained}");
    assert_eq!(retained["stage"], Value::Null, "{retained}");
    let open = &retained["open_alerts"];
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{retained}");
    assert_eq!(open[0]["rule"], "sensor");
    // The API agrees.
    let (_, body) = hw.http_get("/api/v1/stations/s1");
    let station: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(station["status"]["stage"], Value::Null, "{station}");
}

// ---------------------------------------------------------------------------
// 5. A restart keeps the day's rain total whole and the time a station was last heard.
// ---------------------------------------------------------------------------

const RAIN_GAUGE: &str = r#"
[[stations]]
id = "p1"
interval = "1h"
offline_after = "2s"
"#;

fn status(hw: &Hydrowatch) -> Value {
    let (code, body) = hw.http_get("/api/v1/stations/p1");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_days_rain_and_when_the_station_was_last_heard() {
    let rx = Receiver::start().await;
    let (mqtt, mut hw) = start(RAIN_GAUGE, &rx).await;
    // 1 mm an hour from 09:00 to 21:00 (Beijing) on one hydrological day: 13 mm.
    let messages: Vec<_> = (9..=21)
        .map(|h| {
            (
                "hydro/p1/data".to_string(),
                format!(
                    r#"{{"time":"2021-07-20T{h:02}:00:00+08:00","rain_mm":1.0,"rain_period_s":3600}}"#
                )
                .into_bytes(),
            )
        })
        .collect();
    publish_all(mqtt.port(), messages).await;
    wait_until_async(Duration::from_secs(10), "13 mm today", || {
        status(&hw)["rain_today_mm"] == 13.0
    })
    .await;
    let heard = status(&hw)["last_message_at"].clone();
    assert!(heard.is_string() || heard.is_number(), "{heard}");
    // The station falls silent and goes offline; the offline alert is not a message.
    wait_until_async(Duration::from_secs(15), "the station offline", || {
        status(&hw)["offline"] == true
    })
    .await;
    hw.stop();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    let after = status(&hw);
    assert_eq!(after["rain_today_mm"], 13.0, "{after}");
    assert_eq!(after["last_message_at"], heard, "{after}");
}
