//! Patrol dispatch end to end: the real hydrowatch binary, a real Mosquitto, and in-process
//! HTTP receivers standing in for the webhook, WeCom, DingTalk, Feishu and an SMS gateway.
//! Each receiver checks what the platform documents; timers run with second-long settings.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use receiver::{Receiver, Reply};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn metric(hw: &Hydrowatch, name: &str, labels: &[&str]) -> f64 {
    let (_, text) = hw.http_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn reading(station: &str, time: &str, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        format!(r#"{{"time":"{time}","level_m":{level}}}"#).into_bytes(),
    )
}

/// The daemon's configuration with `body`'s teams and stations; `@RX@` in `body` is the
/// receiver's URL.
fn config(mqtt: &Mosquitto, body: &str, rx: &Receiver) -> String {
    HwConfig::new(mqtt)
        .mqtt(r#"ack_topic = "hydro/ack""#)
        .http(r#"public_url = "http://board.example/""#)
        .body(&body.replace("@RX@", &rx.url("")))
        .build()
}

/// Mosquitto, a receiver answering from `script` (then 200), and the daemon paging it.
async fn start(body: &str, script: Vec<Reply>) -> (Mosquitto, Receiver, Hydrowatch) {
    let mqtt = Mosquitto::start(false);
    let rx = Receiver::scripted(script).await;
    let hw = Hydrowatch::start_ready(&config(&mqtt, body, &rx), Duration::from_secs(30));
    (mqtt, rx, hw)
}

async fn publish_reading(mqtt: &Mosquitto, station: &str, time: &str, level: f64) {
    publish_all(mqtt.port(), vec![reading(station, time, level)]).await;
}

/// How many different events reached `prefix` (a redelivery repeats an `event_id`).
fn distinct_events(rx: &Receiver, prefix: &str) -> usize {
    rx.requests(prefix)
        .iter()
        .map(|d| d.json()["event_id"].clone().to_string())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn open_alert_id(hw: &Hydrowatch, station: &str) -> Option<String> {
    let (_, body) = hw.http_get("/api/v1/alerts?state=open");
    let alerts: Value = serde_json::from_str(&body).ok()?;
    alerts.as_array()?.iter().find_map(|a| {
        let a = a.get("alert").unwrap_or(a);
        (a["station"] == station).then(|| a["alert_id"].as_str().unwrap().to_string())
    })
}

// ---------------------------------------------------------------------------
// 1. Every channel's request format, and maintenance
// ---------------------------------------------------------------------------

const FORMATS: &str = r#"
[[teams]]
id = "pihe-east"
name = "淠河东岸巡堤队"
token = "east-token"
members = [{ name = "王队长", phone = "13800000001" }, { name = "李四", phone = "13800000002" }]
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/hook"
  secret = "webhook-secret"
  [[teams.channels]]
  kind = "wecom"
  url = "@RX@/cgi-bin/webhook/send?key=WECOM-KEY"
  mention = false                   # markdown; @mentions (as text) are in tests/voice.rs
  [[teams.channels]]
  kind = "dingtalk"
  url = "@RX@/robot/send?access_token=DING-TOKEN"
  secret = "SECdingtalk-secret"
  [[teams.channels]]
  kind = "feishu"
  url = "@RX@/open-apis/bot/v2/hook/FEISHU-HOOK"
  secret = "feishu-secret"
  language = "en"
  [[teams.channels]]
  kind = "sms"
  url = "@RX@/sms/send"
  body = '{"to":"{phones}","text":"{message}","ref":"{event_id}"}'
  headers = { "X-Api-Key" = "sms-key" }
  [[teams.channels]]
  kind = "mqtt"

[[stations]]
id = "maint1"
name = "检修站"
river = "淠河"
team = "pihe-east"
maintenance = true
stages = { guard = 57.5, warning = 59.0 }

[[stations]]
id = "62304000"
name = "横排头"
river = "淠河"
team = "pihe-east"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_sends_what_its_platform_documents() {
    let (mqtt, rx, hw) = start(FORMATS, Vec::new()).await;
    let mut alerts = MqttSubscriber::connect(mqtt.port(), "hydro/alerts/#").await;
    let mut status = MqttSubscriber::connect(mqtt.port(), "hydro/status/#").await;

    // The station under maintenance fires first: recorded, but paged to no one. Its outbox
    // rows would be ahead of the other station's in every channel's queue.
    publish_reading(&mqtt, "maint1", "2021-07-20T08:00:00+08:00", 59.5).await;
    wait_until_async(
        Duration::from_secs(10),
        "the maintenance alert is recorded",
        || open_alert_id(&hw, "maint1").is_some(),
    )
    .await;
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            br#"[{"time":"2021-07-20T07:05:00+08:00","level_m":57.10},{"time":"2021-07-20T08:05:00+08:00","level_m":59.12}]"#.to_vec(),
        )],
    )
    .await;
    wait_until_async(Duration::from_secs(20), "five HTTP channels", || {
        rx.requests("/").len() >= 5
    })
    .await;
    let alert_id = open_alert_id(&hw, "62304000").expect("open alert");
    let all = rx.requests("/");
    assert_eq!(all.len(), 5, "one request per HTTP channel: {all:#?}");
    for r in &all {
        assert!(
            !r.text().contains("maint1") && !r.text().contains("检修站"),
            "a station under maintenance pages no one: {}",
            r.text()
        );
        assert_eq!(r.method, "POST", "{}", r.path);
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{}",
            r.path
        );
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    // Webhook: the contract's JSON, signed with HMAC-SHA256 of the body.
    let hook = &rx.requests("/hook")[0];
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(b"webhook-secret", &hook.body))
    );
    assert_eq!(
        hook.header("x-hydrowatch-signature"),
        Some(expected.as_str())
    );
    let e = hook.json();
    assert_eq!(hook.header("x-hydrowatch-event-id").unwrap(), e["event_id"]);
    assert_eq!(e["alert_id"], alert_id.as_str());
    assert_eq!(e["state"], "firing");
    assert_eq!(e["station"], "62304000");
    assert_eq!(e["station_name"], "横排头");
    assert_eq!(e["river"], "淠河");
    assert_eq!(e["rule"], "stage");
    assert_eq!(e["stage"], "warning");
    assert_eq!(e["value"], 59.12);
    assert_eq!(e["threshold"], 59.0);
    assert_eq!(e["observed_at"], "2021-07-20T08:05:00+08:00");
    assert_eq!(e["team"], "pihe-east");
    assert_eq!(e["late"], true, "observed in 2021");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("横排头 59.12 m ≥ 警戒水位 59.00 m, rising"),
        "{message}"
    );
    assert!(e["trend_m_per_h"].as_f64().unwrap() > 0.0);
    assert_eq!(
        e["ack_url"],
        format!("http://board.example/#alert={alert_id}").as_str()
    );
    assert!(e.get("renotify").is_none() && e.get("escalated_to").is_none());

    // WeCom group robot: {"msgtype":"markdown","markdown":{"content":...}}, key in the URL.
    let wecom = &rx.requests("/cgi-bin/webhook/send")[0];
    assert_eq!(wecom.query_params()["key"], "WECOM-KEY");
    let w = wecom.json();
    assert_eq!(w.as_object().unwrap().len(), 2, "{w}");
    assert_eq!(w["msgtype"], "markdown");
    assert_eq!(w["markdown"].as_object().unwrap().len(), 1);
    let content = w["markdown"]["content"].as_str().unwrap();
    for needle in [
        "[告警] 淠河 横排头",
        "59.12 m ≥ 警戒水位 59.00 m",
        "观测时间：2021-07-20T08:05:00+08:00",
        "涨率：+",
        "预计",
        "[确认告警](http://board.example/#alert=",
    ] {
        assert!(
            content.contains(needle),
            "WeCom content lacks {needle:?}: {content}"
        );
    }
    assert!(content.len() <= 4096);

    // DingTalk robot, signed mode: timestamp (ms) and sign = base64(HmacSHA256(secret,
    // "{timestamp}\n{secret}")) in the query; markdown with title and text.
    let ding = &rx.requests("/robot/send")[0];
    let query = ding.query_params();
    assert_eq!(query["access_token"], "DING-TOKEN");
    let ts: i64 = query["timestamp"].parse().expect("ms timestamp");
    assert!((now_ms - ts).abs() < 3_600_000, "within DingTalk's hour");
    let secret = "SECdingtalk-secret";
    assert_eq!(
        query["sign"],
        b64(&hmac_sha256(
            secret.as_bytes(),
            format!("{ts}\n{secret}").as_bytes()
        ))
    );
    let d = ding.json();
    assert_eq!(d["msgtype"], "markdown");
    assert_eq!(d["markdown"]["title"], "[告警] 淠河 横排头");
    assert!(d["markdown"]["text"]
        .as_str()
        .unwrap()
        .contains("59.12 m ≥ 警戒水位"));

    // Feishu custom bot, signed: timestamp (s) and sign = base64(HmacSHA256(key =
    // "{timestamp}\n{secret}", message = "")) in the body; an interactive card, in English.
    let feishu = &rx.requests("/open-apis/bot/v2/hook/FEISHU-HOOK")[0];
    let f = feishu.json();
    let ts: i64 = f["timestamp"].as_str().expect("string").parse().unwrap();
    assert!((now_ms / 1000 - ts).abs() < 3_600);
    assert_eq!(
        f["sign"],
        b64(&hmac_sha256(format!("{ts}\nfeishu-secret").as_bytes(), b"")).as_str()
    );
    assert_eq!(f["msg_type"], "interactive");
    assert_eq!(
        f["card"]["header"]["title"],
        serde_json::json!({"tag": "plain_text", "content": "[FIRING] 淠河 横排头"})
    );
    assert_eq!(f["card"]["elements"][0]["tag"], "markdown");
    let card = f["card"]["elements"][0]["content"].as_str().unwrap();
    assert!(
        card.contains("Trend: +") && card.contains("[Acknowledge](http://board.example/#alert=")
    );

    // SMS gateway: the configured body template, JSON-escaped, with the extra header.
    let sms = &rx.requests("/sms/send")[0];
    assert_eq!(sms.header("x-api-key"), Some("sms-key"));
    let s = sms.json();
    assert_eq!(s["to"], "13800000001,13800000002");
    assert_eq!(s["ref"], e["event_id"]);
    let text = s["text"].as_str().unwrap();
    assert!(
        text.starts_with("【告警】淠河 横排头 59.12 m ≥ 警戒水位 59.00 m"),
        "{text}"
    );
    assert!(text.contains(&format!("确认：http://board.example/#alert={alert_id}")));

    // MQTT: the event on hydro/alerts/{station}, and the station's state retained.
    let got = alerts.recv_n(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].0, "hydro/alerts/62304000");
    let m: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(m["event_id"], e["event_id"]);
    status.recv_n(1, Duration::from_secs(10)).await;
    let mut late = MqttSubscriber::connect(mqtt.port(), "hydro/status/62304000").await;
    let retained = late.recv_n(1, Duration::from_secs(10)).await;
    let st: Value = serde_json::from_slice(&retained[0].1).unwrap();
    assert_eq!(st["station"], "62304000");
    assert_eq!(st["level_m"], 59.12);
    assert_eq!(st["stage"], "warning");
    assert_eq!(st["observed_at"], "2021-07-20T08:05:00+08:00");
    assert_eq!(st["open_alerts"][0]["alert_id"], alert_id.as_str());
    assert!(
        alerts.drain().is_empty(),
        "nothing for the maintenance station"
    );
}

// ---------------------------------------------------------------------------
// 2. Re-notification, escalation, acknowledgement (HTTP), restart
// ---------------------------------------------------------------------------

const CHAIN: &str = r#"
[[teams]]
id = "east"
token = "east-token"
renotify = "1s"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/east"
  [[teams.escalation]]
  after = "2s"
  team = "county"
  min_stage = "warning"

[[teams]]
id = "county"
token = "county-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/county"

[[teams]]
id = "west"
token = "west-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/west"

[[stations]]
id = "s1"
name = "Gauge 1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }

[[stations]]
id = "s2"
name = "Gauge 2"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_alert_renotifies_and_escalates_until_acknowledged() {
    let (mqtt, rx, mut hw) = start(CHAIN, Vec::new()).await;
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 2.5).await;

    wait_until_async(Duration::from_secs(15), "escalation to county", || {
        !rx.requests("/county").is_empty()
    })
    .await;
    wait_until_async(Duration::from_secs(15), "two reminders to east", || {
        rx.delivered("/east").len() >= 3
    })
    .await;
    let east = rx.requests("/east");
    let first = east[0].json();
    assert_eq!(first["state"], "firing");
    assert!(first.get("renotify").is_none());
    let alert_id = first["alert_id"].as_str().unwrap().to_string();
    let mut ids = std::collections::HashSet::new();
    for (i, r) in east.iter().enumerate() {
        let e = r.json();
        assert_eq!(e["alert_id"], alert_id.as_str());
        assert!(
            ids.insert(e["event_id"].clone()),
            "each page has its own event_id"
        );
        if i > 0 {
            assert_eq!(e["renotify"], true, "{e}");
            assert_eq!(e["state"], "firing");
            assert_eq!(e["value"], 2.5);
            assert!(
                r.at - east[i - 1].at >= Duration::from_millis(900),
                "reminders keep the 1s interval"
            );
        }
    }
    let county = rx.requests("/county");
    assert_eq!(county.len(), 1, "escalated once");
    let c = county[0].json();
    assert_eq!(c["escalated_to"], "county");
    assert_eq!(c["escalated_from"], "east");
    assert_eq!(c["team"], "county");
    assert_eq!(c["alert_id"], alert_id.as_str());
    assert!(c["unacknowledged_s"].as_f64().unwrap() >= 2.0);
    assert!(
        county[0].at - east[0].at >= Duration::from_millis(1900),
        "escalation waits for its timeout"
    );

    // kill -9 and restart: the escalation is not repeated, reminders go on.
    hw.kill9();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    let before = rx.requests("/east").len();
    wait_until_async(Duration::from_secs(15), "reminders after restart", || {
        rx.requests("/east").len() >= before + 2
    })
    .await;
    // Delivery is at least once: a kill -9 between the receiver's answer and the row being
    // marked delivered sends the same event again. A second escalation would be a new event.
    assert_eq!(distinct_events(&rx, "/county"), 1, "no second escalation");

    // Acknowledgement: 401 without or with an unknown token, 403 for a team not paged,
    // 200 for the team escalated to, 409 once done.
    let path = format!("/api/v1/alerts/{alert_id}/ack");
    assert_eq!(hw.http_post(&path, b"", &[]).0, 401);
    assert_eq!(
        hw.http_post(&path, b"", &[("Authorization", "Bearer nope")])
            .0,
        401
    );
    let (code, body) = hw.http_post(&path, b"", &[("Authorization", "Bearer west-token")]);
    assert_eq!(code, 403, "{body}");
    let (code, body) = hw.http_post(&path, b"", &[("Authorization", "Bearer county-token")]);
    assert_eq!(code, 200, "{body}");
    let acked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(
        hw.http_post(&path, b"", &[("Authorization", "Bearer east-token")])
            .0,
        409
    );

    // The acknowledged event reaches both paged teams.
    for team in ["/east", "/county"] {
        wait_until_async(Duration::from_secs(10), "acknowledged event", || {
            rx.delivered(team)
                .iter()
                .any(|e| e["state"] == "acknowledged" && e["acknowledged_by"] == "county")
        })
        .await;
    }
    assert!(rx.requests("/west").is_empty());

    // Nothing more while the alert stays acknowledged: wait three reminder intervals, then
    // resolve; the resolution is the next thing each team hears.
    tokio::time::sleep(Duration::from_secs(3)).await;
    publish_reading(&mqtt, "s1", "2021-07-20T08:05:00+08:00", 0.5).await;
    for team in ["/east", "/county"] {
        wait_until_async(Duration::from_secs(10), "resolved event", || {
            rx.delivered(team).iter().any(|e| e["state"] == "resolved")
        })
        .await;
        let events = rx.delivered(team);
        let ack = events
            .iter()
            .position(|e| e["state"] == "acknowledged")
            .unwrap();
        let states: Vec<&Value> = events[ack..].iter().map(|e| &e["state"]).collect();
        assert_eq!(
            states,
            ["acknowledged", "resolved"],
            "{team}: no reminder or escalation after the acknowledgement"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_due_while_the_daemon_was_down_happens_after_restart() {
    let (mqtt, rx, mut hw) = start(CHAIN, Vec::new()).await;
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 2.5).await;
    wait_until_async(Duration::from_secs(10), "firing", || {
        !rx.requests("/east").is_empty()
    })
    .await;
    hw.kill9();
    assert!(
        rx.requests("/county").is_empty(),
        "killed before the 2 s timeout"
    );
    // Down for longer than the escalation timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    wait_until_async(Duration::from_secs(10), "escalation after restart", || {
        !rx.requests("/county").is_empty()
    })
    .await;
    let county = rx.requests("/county");
    let page = county[0].json();
    assert_eq!(page["escalated_to"], "county");
    // Counted from the page before the crash, not from the restart.
    let since_first = (county[0].at - rx.requests("/east")[0].at).as_secs_f64();
    let waited = page["unacknowledged_s"].as_f64().unwrap();
    assert!(
        waited >= since_first - 0.5,
        "unacknowledged for {waited} s, first page {since_first} s ago"
    );
}

// ---------------------------------------------------------------------------
// 3. Acknowledgement over MQTT
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_acknowledgement_needs_the_team_token() {
    let (mqtt, rx, hw) = start(CHAIN, Vec::new()).await;
    publish_reading(&mqtt, "s2", "2021-07-20T08:00:00+08:00", 1.5).await;
    wait_until_async(Duration::from_secs(10), "firing", || {
        !rx.requests("/east").is_empty()
    })
    .await;
    let alert_id = rx.requests("/east")[0].json()["alert_id"]
        .as_str()
        .unwrap()
        .to_string();
    let topic = format!("hydro/ack/{alert_id}");
    publish_all(
        mqtt.port(),
        vec![
            (
                topic.clone(),
                br#"{"team":"east","token":"wrong"}"#.to_vec(),
            ),
            (
                topic.clone(),
                br#"{"team":"west","token":"west-token"}"#.to_vec(),
            ),
            (topic, br#"{"team":"east","token":"east-token"}"#.to_vec()),
        ],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "acknowledged event", || {
        rx.delivered("/east")
            .iter()
            .any(|e| e["state"] == "acknowledged" && e["acknowledged_by"] == "east")
    })
    .await;
    let (_, dead) = hw.http_get("/api/v1/dead_letters");
    assert!(dead.contains("wrong token for team `east`"), "{dead}");
    let (_, alert) = hw.http_get(&format!("/api/v1/alerts/{alert_id}"));
    let alert: Value = serde_json::from_str(&alert).unwrap();
    assert_eq!(alert["acknowledged_by"], "east", "{alert}");
    assert!(rx.requests("/west").is_empty());
}

// ---------------------------------------------------------------------------
// 4. A receiver that fails for a while
// ---------------------------------------------------------------------------

const FLAKY: &str = r#"
[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/flaky"
  timeout = "1s"
  backoff = "100ms"

[[stations]]
id = "s1"
name = "Gauge 1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_gets_every_event_once_in_order() {
    let mut script = vec![Reply::Status(500), Reply::Status(503), Reply::Status(500)];
    script.extend([Reply::Hang(Duration::from_secs(3)); 2]);
    let (mqtt, rx, hw) = start(FLAKY, script).await;
    // firing (guard), escalated (warning), deescalated (guard), resolved.
    publish_all(
        mqtt.port(),
        vec![
            reading("s1", "2021-07-20T08:00:00+08:00", 1.5),
            reading("s1", "2021-07-20T08:05:00+08:00", 2.5),
            reading("s1", "2021-07-20T08:10:00+08:00", 1.9),
            reading("s1", "2021-07-20T08:15:00+08:00", 0.5),
        ],
    )
    .await;
    wait_until_async(Duration::from_secs(30), "four events delivered", || {
        rx.delivered("/flaky").len() >= 4
    })
    .await;
    let delivered = rx.delivered("/flaky");
    let alert_id = delivered[0]["alert_id"].as_str().unwrap();
    let (_, body) = hw.http_get(&format!("/api/v1/alerts/{alert_id}"));
    let journal: Value = serde_json::from_str(&body).unwrap();
    let expected: Vec<&Value> = journal["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event_id"])
        .collect();
    let got: Vec<&Value> = delivered.iter().map(|e| &e["event_id"]).collect();
    assert_eq!(got, expected, "each event once, in journal order");
    let states: Vec<&Value> = delivered.iter().map(|e| &e["state"]).collect();
    assert_eq!(states, ["firing", "escalated", "deescalated", "resolved"]);

    // Every failed attempt was the first event, sent again with the same event_id.
    let all = rx.requests("/flaky");
    assert_eq!(all.len(), 9, "3 errors + 2 timeouts + 4 deliveries");
    for r in &all[..6] {
        assert_eq!(r.json()["event_id"], *expected[0]);
    }
    assert!(all.iter().all(|r| r.method == "POST"), "{all:#?}");
    assert_eq!(
        all.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 503, 500, 0, 0, 200, 200, 200, 200]
    );
    wait_until_async(Duration::from_secs(5), "metrics", || {
        metric(
            &hw,
            "hydrowatch_notifications_total",
            &[r#"channel="webhook""#, r#"result="delivered""#],
        ) == 4.0
    })
    .await;
    assert_eq!(
        metric(
            &hw,
            "hydrowatch_notifications_total",
            &[r#"channel="webhook""#, r#"result="retry""#],
        ),
        5.0
    );
}

// ---------------------------------------------------------------------------
// 5. Failure policy: refusals, giving up, and what a failed notification leaves behind
// ---------------------------------------------------------------------------

/// The notifications the API lists in `state` (`failed`, `pending`, `delivered`, `all`).
fn notifications(hw: &Hydrowatch, state: &str) -> Vec<Value> {
    let (code, body) = hw.http_get(&format!("/api/v1/notifications?state={state}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap_or_else(|e| panic!("notifications are not JSON ({e}): {body}"))
        .as_array()
        .unwrap_or_else(|| panic!("notifications are not a list: {body}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_never_holds_back_the_next() {
    let (mqtt, rx, hw) = start(FLAKY, Vec::new()).await;
    // The receiver refuses the firing event for good, as a receiver that cannot parse it would.
    rx.refuse(
        "/flaky",
        r#""state":"firing""#,
        400,
        r#"{"error":"bad event"}"#,
    );
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 1.5).await;
    wait_until_async(Duration::from_secs(10), "the firing event is tried", || {
        !rx.requests("/flaky").is_empty()
    })
    .await;
    // The next event (the warning stage) is delivered promptly, not after the refused one.
    publish_reading(&mqtt, "s1", "2021-07-20T08:05:00+08:00", 2.5).await;
    wait_until_async(Duration::from_secs(5), "the escalated event", || {
        rx.delivered("/flaky")
            .iter()
            .any(|e| e["state"] == "escalated")
    })
    .await;
    let all = rx.requests("/flaky");
    assert_eq!(
        all.iter().filter(|r| r.answered == 400).count(),
        1,
        "a refusal is final: never retried: {all:#?}"
    );

    let failed = notifications(&hw, "failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let f = &failed[0];
    let refused = all[0].json();
    assert_eq!(f["event_id"], refused["event_id"]);
    assert_eq!(f["alert_id"], refused["alert_id"]);
    assert_eq!(f["station"], "s1");
    assert_eq!(f["team"], "east");
    assert_eq!(f["kind"], "webhook");
    assert_eq!(f["state"], "failed");
    assert_eq!(f["attempts"], 1);
    assert!(f["last_error"].as_str().unwrap().contains("400"), "{f}");
    assert!(f["failed_at"].as_i64() >= f["created_at"].as_i64(), "{f}");
    let delivered = notifications(&hw, "delivered");
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0]["event_state"], "escalated");
    assert!(notifications(&hw, "pending").is_empty());
    assert_eq!(notifications(&hw, "all").len(), 2);
    wait_until_async(Duration::from_secs(5), "the failure is counted", || {
        metric(
            &hw,
            "hydrowatch_notifications_total",
            &[r#"channel="webhook""#, r#"result="failed""#],
        ) == 1.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_page_is_not_an_acknowledgement() {
    let (mqtt, rx, hw) = start(CHAIN, Vec::new()).await;
    // East's receiver refuses everything: every page to east fails at once.
    rx.refuse("/east", "", 400, r#"{"error":"no such hook"}"#);
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 2.5).await;
    wait_until_async(Duration::from_secs(15), "escalation to county", || {
        !rx.delivered("/county").is_empty()
    })
    .await;
    wait_until_async(Duration::from_secs(15), "reminders to east go on", || {
        rx.requests("/east").len() >= 3
    })
    .await;
    let east = rx.requests("/east");
    assert_eq!(east[0].json()["state"], "firing");
    assert!(east[1..].iter().all(|r| r.json()["renotify"] == true));
    let escalation = &rx.delivered("/county")[0];
    assert_eq!(escalation["escalated_from"], "east");
    let alert_id = escalation["alert_id"].as_str().unwrap();
    let (_, body) = hw.http_get(&format!("/api/v1/alerts/{alert_id}"));
    let alert: Value = serde_json::from_str(&body).unwrap();
    assert!(alert["acknowledged_by"].is_null(), "{alert}");
    assert_eq!(alert["open"], true);
    // The receiver saw the third page; its failure is recorded just after.
    wait_until_async(
        Duration::from_secs(10),
        "three failed pages recorded",
        || notifications(&hw, "failed").len() >= 3,
    )
    .await;
    let failed = notifications(&hw, "failed");
    assert!(failed.iter().all(|f| f["team"] == "east"), "{failed:#?}");
}

const GIVE_UP: &str = r#"
[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "webhook"
  url = "@RX@/down"
  timeout = "1s"
  backoff = "100ms"
  give_up_after = "2s"

[[stations]]
id = "s1"
name = "Gauge 1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_until_give_up_after() {
    let (mqtt, rx, hw) = start(GIVE_UP, Vec::new()).await;
    rx.set_down(true);
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 1.5).await;
    wait_until_async(Duration::from_secs(15), "the firing event given up", || {
        !notifications(&hw, "failed").is_empty()
    })
    .await;
    let tries = rx.requests("/down");
    let first = tries.first().expect("tried").at;
    let last = tries.last().expect("tried").at;
    assert!(tries.len() >= 3, "retried with backoff: {}", tries.len());
    assert!(
        last - first >= Duration::from_millis(1500),
        "retried for about give_up_after (2 s), not {:?}",
        last - first
    );
    let failed = &notifications(&hw, "failed")[0];
    assert_eq!(failed["event_state"], "firing");
    assert_eq!(failed["attempts"].as_u64(), Some(tries.len() as u64));
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("gave up after 2s") && error.contains("503"),
        "{error}"
    );

    // The receiver is back: the next event goes through at once.
    rx.set_down(false);
    publish_reading(&mqtt, "s1", "2021-07-20T08:05:00+08:00", 2.5).await;
    wait_until_async(Duration::from_secs(10), "the escalated event", || {
        rx.delivered("/down")
            .iter()
            .any(|e| e["state"] == "escalated")
    })
    .await;
    assert_eq!(
        rx.delivered("/down").len(),
        1,
        "the failed one is not resent"
    );
    assert_eq!(
        metric(
            &hw,
            "hydrowatch_notifications_total",
            &[r#"channel="webhook""#, r#"result="failed""#],
        ),
        1.0
    );
}

/// Two webhook channels, in the order given.
fn two_channels(first: &str, second: Option<&str>) -> String {
    let channel = |path: &str| {
        format!(
            "  [[teams.channels]]\n  kind = \"webhook\"\n  url = \"@RX@{path}\"\n  backoff = \"100ms\"\n"
        )
    };
    format!(
        "[[teams]]\nid = \"east\"\ntoken = \"east-token\"\n{}{}\n[[stations]]\nid = \"s1\"\nname = \"Gauge 1\"\nteam = \"east\"\nstages = {{ guard = 1.0, warning = 2.0 }}\n",
        channel(first),
        second.map(channel).unwrap_or_default()
    )
}

/// Replaces the daemon's configuration file (it is read again on restart).
fn rewrite_config(hw: &Hydrowatch, mqtt: &Mosquitto, body: &str, rx: &Receiver) {
    let text = config(mqtt, body, rx)
        .replace("{dir}", &hw.dir().display().to_string())
        .replace("{http_port}", &hw.http_port().to_string());
    std::fs::write(hw.config_path(), text).expect("write the configuration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_channels_keep_their_pending_notifications() {
    let (mqtt, rx, mut hw) = start(&two_channels("/a", Some("/b")), Vec::new()).await;
    rx.refuse("/a", "", 503, "{}");
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 1.5).await;
    wait_until_async(
        Duration::from_secs(10),
        "b has the event, a is retrying",
        || !rx.delivered("/b").is_empty() && !rx.requests("/a").is_empty(),
    )
    .await;
    let firing = rx.delivered("/b")[0]["event_id"].clone();

    // Restart with the channels the other way round while /a's row is pending.
    hw.kill9();
    rewrite_config(&hw, &mqtt, &two_channels("/b", Some("/a")), &rx);
    rx.accept_all();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    wait_until_async(Duration::from_secs(10), "a gets its pending event", || {
        !rx.delivered("/a").is_empty()
    })
    .await;
    assert_eq!(rx.delivered("/a")[0]["event_id"], firing);
    assert_eq!(
        distinct_events(&rx, "/b"),
        1,
        "b never gets a's pending notification"
    );

    // A channel removed while its row is pending: the row fails with that reason.
    rx.refuse("/a", "", 503, "{}");
    publish_reading(&mqtt, "s1", "2021-07-20T08:05:00+08:00", 2.5).await;
    wait_until_async(
        Duration::from_secs(10),
        "escalated: b has it, a retries",
        || {
            // Delivery is at least once: b may have had the firing event twice across
            // the kill, so look for the escalated one, not for a count.
            rx.delivered("/b").iter().any(|e| e["state"] == "escalated")
                && rx
                    .requests("/a")
                    .iter()
                    .any(|r| r.json()["state"] == "escalated")
        },
    )
    .await;
    hw.kill9();
    rewrite_config(&hw, &mqtt, &two_channels("/b", None), &rx);
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    wait_until_async(Duration::from_secs(10), "the orphaned row failed", || {
        !notifications(&hw, "failed").is_empty()
    })
    .await;
    let failed = &notifications(&hw, "failed")[0];
    assert_eq!(failed["event_state"], "escalated");
    assert_eq!(failed["kind"], "unknown");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("no longer configured"),
        "{failed}"
    );
    assert_eq!(distinct_events(&rx, "/b"), 2, "nothing re-routed to b");
    assert!(notifications(&hw, "pending").is_empty());
}

const MQTT_CHANNEL: &str = r#"
[[teams]]
id = "east"
token = "east-token"
  [[teams.channels]]
  kind = "mqtt"
  timeout = "1s"
  backoff = "100ms"

[[stations]]
id = "s1"
name = "Gauge 1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_notifications_are_delivered_only_when_the_broker_acknowledges() {
    let (mut mqtt, _rx, hw) = start(MQTT_CHANNEL, Vec::new()).await;
    let mut alerts = MqttSubscriber::connect(mqtt.port(), "hydro/alerts/#").await;
    publish_reading(&mqtt, "s1", "2021-07-20T08:00:00+08:00", 1.5).await;
    let got = alerts.recv_n(1, Duration::from_secs(10)).await;
    let firing: Value = serde_json::from_slice(&got[0].1).unwrap();
    wait_until_async(Duration::from_secs(10), "firing delivered", || {
        notifications(&hw, "delivered").len() == 1
    })
    .await;

    // The broker goes away; an acknowledgement (over HTTP) makes an event for the channel.
    mqtt.stop();
    let alert_id = firing["alert_id"].as_str().unwrap();
    let (code, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        b"",
        &[("Authorization", "Bearer east-token")],
    );
    assert_eq!(code, 200, "{body}");
    wait_until_async(
        Duration::from_secs(15),
        "unacknowledged publishes retried",
        || {
            notifications(&hw, "pending")
                .first()
                .is_some_and(|n| n["attempts"].as_u64() >= Some(2))
        },
    )
    .await;
    let pending = &notifications(&hw, "pending")[0];
    assert_eq!(pending["event_state"], "acknowledged");
    assert_eq!(pending["kind"], "mqtt");
    let error = pending["last_error"].as_str().unwrap();
    assert!(
        error.contains("PUBACK") || error.contains("MQTT connection"),
        "{error}"
    );
    assert_eq!(notifications(&hw, "delivered").len(), 1, "not delivered");
    assert_eq!(
        metric(
            &hw,
            "hydrowatch_notifications_total",
            &[r#"channel="mqtt""#, r#"result="delivered""#],
        ),
        1.0
    );

    // Back (without persistence: a retained status now was published after the restart).
    mqtt.restart();
    wait_until_async(Duration::from_secs(20), "acknowledged delivered", || {
        notifications(&hw, "delivered").len() == 2
    })
    .await;
    let mut status = MqttSubscriber::connect(mqtt.port(), "hydro/status/s1").await;
    let retained = status.recv_n(1, Duration::from_secs(10)).await;
    let st: Value = serde_json::from_slice(&retained[0].1).unwrap();
    assert_eq!(st["open_alerts"][0]["acknowledged_by"], "east", "{st}");
    assert!(notifications(&hw, "failed").is_empty());
}
