//! 叫应 end to end: every warning reaches a named person who answers. The real binary, a real
//! Mosquitto, an in-process receiver standing in for the team's SMS gateway and webhook (and
//! for the voice platform that reports call results back). Deadlines are seconds long.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use receiver::Receiver;
use serde_json::Value;
use sha2::Sha256;

const CALL_SECRET: &str = "call-secret";

const CALLOUT: &str = concat!(
    include_str!("data/people.toml"),
    r#"
[[teams]]
id = "east"
token = "east-token"
members = ["wang", "zhao"]
respond_within = "2s"
  [[teams.channels]]
  id = "hook"
  kind = "webhook"
  url = "@RX@/hook"
  [[teams.channels]]
  id = "calls"
  kind = "sms"
  url = "@RX@/sms"
  secret = "call-secret"
  body = '{"to":"{phones}","text":"{message}","ref":"{event_id}"}'

[[stations]]
id = "s1"
name = "横排头"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#
);

fn reading(station: &str, time: &str, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        format!(r#"{{"time":"{time}","level_m":{level}}}"#).into_bytes(),
    )
}

async fn start(rx: &Receiver) -> (Mosquitto, Hydrowatch) {
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .body(&CALLOUT.replace("@RX@", &rx.url("")))
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    (mqtt, hw)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The unanswered pages the webhook received, one per event (a redelivery repeats one).
fn unanswered(rx: &Receiver) -> Vec<Value> {
    let mut seen = HashSet::new();
    rx.delivered("/hook")
        .into_iter()
        .filter(|e| e["state"] == "unanswered")
        .filter(|e| seen.insert(e["event_id"].to_string()))
        .collect()
}

fn people_of(page: &Value) -> Vec<String> {
    page["callout"]["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["person"].as_str().unwrap().to_string())
        .collect()
}

fn get_json(hw: &Hydrowatch, path: &str) -> Value {
    let (status, body) = hw.http_get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_then_members_are_called_again_then_superiors_until_an_answer() {
    let rx = Receiver::start().await;
    let (mqtt, mut hw) = start(&rx).await;
    publish_all(
        mqtt.port(),
        vec![reading("s1", "2021-07-20T08:00:00+08:00", 2.5)],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "the firing page", || {
        !rx.delivered("/hook").is_empty()
    })
    .await;
    let firing = rx.delivered("/hook")[0].clone();
    assert_eq!(firing["state"], "firing");
    let alert_id = firing["alert_id"].as_str().unwrap().to_string();
    assert!(
        hw.http_get("/api/v1/unreached").1.trim() == "[]",
        "within the deadline nothing is unreached"
    );

    // Step 1: nobody answered within 2 s, the members are called again, phones first.
    wait_until_async(Duration::from_secs(10), "the members called again", || {
        !unanswered(&rx).is_empty()
    })
    .await;
    let first = unanswered(&rx)[0].clone();
    assert_eq!(first["alert_id"], alert_id.as_str());
    assert_eq!(first["callout"]["step"], 1);
    assert_eq!(first["callout"]["action"], "redial");
    assert_eq!(people_of(&first), ["wang", "zhao"]);
    assert!(
        first["unacknowledged_s"].as_f64().unwrap() >= 2.0,
        "{first}"
    );
    // The SMS goes to the members' phones.
    wait_until_async(Duration::from_secs(10), "the redial SMS", || {
        rx.delivered("/sms")
            .iter()
            .any(|s| s["ref"] == first["event_id"] && s["to"] == "13800000001,13800000002")
    })
    .await;

    // kill -9 in the middle of the chain; down longer than a deadline.
    hw.kill9();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));

    // Step 2: the members' superior, once for both of them; step 3: his superior.
    wait_until_async(
        Duration::from_secs(15),
        "the superiors up the chain",
        || unanswered(&rx).len() >= 3,
    )
    .await;
    let pages = unanswered(&rx);
    let steps: Vec<i64> = pages
        .iter()
        .map(|p| p["callout"]["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3], "each step once, across the restart");
    assert_eq!(people_of(&pages[1]), ["li"]);
    assert_eq!(pages[1]["callout"]["action"], "superiors");
    assert_eq!(pages[1]["callout"]["people"][0]["superior_of"], "wang");
    assert_eq!(pages[1]["callout"]["people"][0]["phone"], "13800000003");
    assert_eq!(people_of(&pages[2]), ["chen"]);
    wait_until_async(
        Duration::from_secs(10),
        "the SMS to the county head",
        || {
            rx.delivered("/sms")
                .iter()
                .any(|s| s["ref"] == pages[2]["event_id"] && s["to"] == "13800000004")
        },
    )
    .await;

    // 未叫醒: the alert with every attempt.
    let list = get_json(&hw, "/api/v1/unreached");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let u = &list[0];
    assert_eq!(u["alert_id"], alert_id.as_str());
    assert_eq!(u["station"], "s1");
    assert_eq!(u["station_name"], "横排头");
    assert_eq!(u["teams"], serde_json::json!(["east"]));
    let paged: Vec<&str> = u["paged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["person"].as_str().unwrap())
        .collect();
    assert_eq!(paged, ["wang", "zhao", "li", "chen"]);
    let step_numbers: Vec<i64> = u["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_i64().unwrap())
        .collect();
    assert_eq!(step_numbers, [1, 2, 3]);
    let tried = u["tried"].as_array().unwrap();
    let tried_kind = |kind: &str, person: &str| {
        tried
            .iter()
            .any(|t| t["kind"] == kind && t["person"] == person)
    };
    assert!(tried_kind("redial", "wang") && tried_kind("redial", "zhao"));
    assert!(tried_kind("escalation", "li") && tried_kind("escalation", "chen"));
    assert!(
        tried
            .iter()
            .any(|t| t["kind"] == "delivered" && t["channel"] == "calls" && t["person"] == "li"),
        "the SMS to li was delivered: {tried:?}"
    );
    assert!(u["since"].as_i64().unwrap() > 0);

    // The voice platform reports back: unsigned and wrongly signed reports are refused.
    let path = "/api/v1/callbacks/calls";
    let now_ms = now_s() * 1000;
    let no_answer =
        serde_json::json!({"phone": "13800000004", "outcome": "no_answer", "at": now_ms})
            .to_string();
    assert_eq!(hw.http_post(path, no_answer.as_bytes(), &[]).0, 401);
    let wrong = sign("guess", no_answer.as_bytes());
    assert_eq!(
        hw.http_post(
            path,
            no_answer.as_bytes(),
            &[("X-Hydrowatch-Signature", &wrong)]
        )
        .0,
        401
    );
    assert_eq!(
        hw.http_post(
            "/api/v1/callbacks/nope",
            no_answer.as_bytes(),
            &[("X-Hydrowatch-Signature", &wrong)]
        )
        .0,
        404
    );
    let signature = sign(CALL_SECRET, no_answer.as_bytes());
    let (status, body) = hw.http_post(
        path,
        no_answer.as_bytes(),
        &[
            ("X-Hydrowatch-Signature", &signature),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result[0]["person"], "chen");
    assert_eq!(result[0]["acknowledged"], serde_json::json!([]));
    let garbage = b"{\"phone\": 1}";
    let signature = sign(CALL_SECRET, garbage);
    assert_eq!(
        hw.http_post(path, garbage, &[("X-Hydrowatch-Signature", &signature)])
            .0,
        400
    );

    // 李镇长 answers his call and presses 1: the alert is answered for everyone.
    let pressed = serde_json::json!({
        "phone": "+86 138 0000 0003", "outcome": {"keypress": "1"}, "at": now_ms,
        "reference": pages[1]["event_id"]
    })
    .to_string();
    let signature = sign(CALL_SECRET, pressed.as_bytes());
    let (status, body) = hw.http_post(
        path,
        pressed.as_bytes(),
        &[("X-Hydrowatch-Signature", &signature)],
    );
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result[0]["person"], "li");
    assert_eq!(result[0]["acknowledged"], serde_json::json!([alert_id]));
    wait_until_async(Duration::from_secs(10), "the acknowledged page", || {
        rx.delivered("/hook")
            .iter()
            .any(|e| e["state"] == "acknowledged")
    })
    .await;
    let acked = rx
        .delivered("/hook")
        .into_iter()
        .find(|e| e["state"] == "acknowledged")
        .unwrap();
    assert_eq!(acked["acknowledged_by"], "east");
    assert_eq!(acked["acknowledged_person"], "li");
    assert_eq!(hw.http_get("/api/v1/unreached").1.trim(), "[]");
    // Nothing more is called once answered.
    let count = unanswered(&rx).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(unanswered(&rx).len(), count, "no step after the answer");

    // The audit: every page, delivery, call result and the acknowledgement, with people.
    let audit = get_json(&hw, &format!("/api/v1/alerts/{alert_id}/callouts"));
    let audit = audit.as_array().unwrap();
    let has = |kind: &str, person: &str| {
        audit
            .iter()
            .any(|e| e["kind"] == kind && e["person"] == person)
    };
    for (kind, person) in [
        ("page", "wang"),
        ("page", "zhao"),
        ("redial", "wang"),
        ("escalation", "li"),
        ("escalation", "chen"),
        ("delivered", "chen"),
        ("call_result", "chen"),
        ("call_result", "li"),
        ("acknowledgement", "li"),
    ] {
        assert!(has(kind, person), "no {kind} for {person}: {audit:#?}");
    }
    let times: Vec<i64> = audit.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let ack = audit
        .iter()
        .find(|e| e["kind"] == "acknowledgement")
        .unwrap();
    assert_eq!(ack["name"], "李镇长");
    assert_eq!(ack["team"], "east");
    let result = audit
        .iter()
        .find(|e| e["kind"] == "call_result" && e["person"] == "li")
        .unwrap();
    assert_eq!(result["channel"], "calls");
    assert!(result["detail"].as_str().unwrap().starts_with("keypress 1"));

    // The same as CSV.
    let (status, csv) = http_request(
        hw.http_port(),
        "GET",
        &format!("/api/v1/alerts/{alert_id}/callouts"),
        b"",
        &[("Accept", "text/csv")],
    )
    .unwrap();
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time,at_ms,kind,team,person,name,phone,channel,event_id,detail"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), audit.len(), "one CSV row per entry");
    assert!(rows
        .iter()
        .any(|r| r.contains(",acknowledgement,east,li,李镇长,13800000003,")));
    assert_eq!(hw.http_get("/api/v1/alerts/no-such-alert/callouts").0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_names_the_person_who_answers() {
    let rx = Receiver::start().await;
    let (mqtt, hw) = start(&rx).await;
    publish_all(
        mqtt.port(),
        vec![reading("s1", "2021-07-20T08:00:00+08:00", 1.5)],
    )
    .await;
    wait_until_async(Duration::from_secs(10), "the firing page", || {
        !rx.delivered("/hook").is_empty()
    })
    .await;
    let alert_id = rx.delivered("/hook")[0]["alert_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/alerts/{alert_id}/ack");
    let auth = [("Authorization", "Bearer east-token")];
    let (status, body) = hw.http_post(&path, br#"{"person": "nobody"}"#, &auth);
    assert_eq!(status, 400, "{body}");
    let (status, body) = hw.http_post(&path, br#"{"person": "zhao"}"#, &auth);
    assert_eq!(status, 200, "{body}");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["acknowledged_person"], "zhao");
    let audit = get_json(&hw, &format!("/api/v1/alerts/{alert_id}/callouts"));
    let ack = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "acknowledgement")
        .cloned()
        .expect("an acknowledgement in the audit");
    assert_eq!(ack["person"], "zhao");
    assert_eq!(ack["phone"], "13800000002");
    // Answered within the deadline: nobody is called again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(unanswered(&rx).is_empty());
    assert_eq!(hw.http_get("/api/v1/unreached").1.trim(), "[]");
}

// ---------------------------------------------------------------------------
// check-config: people and their chains
// ---------------------------------------------------------------------------

fn check_config(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(["check-config", "-c", file.to_str().unwrap()])
        .output()
        .expect("run hydrowatch");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_names_every_people_problem_with_file_and_key() {
    let (code, text) = check_config(
        r#"
[[people]]
id = "a"
superior = "b"
[[people]]
id = "b"
superior = "c"
[[people]]
id = "c"
superior = "a"
[[people]]
id = "d"
superior = "ghost"
[[people]]
id = "e"
superior = "e"

[[teams]]
id = "east"
members = ["a", "stranger"]
respond_within = "soon"
"#,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("people.toml"), "the file is named: {text}");
    assert!(
        text.contains("people[a].superior") && text.contains("a → b → c → a"),
        "the cycle: {text}"
    );
    assert_eq!(
        text.matches("go round in a circle").count(),
        2,
        "each cycle once (a-b-c and e): {text}"
    );
    assert!(
        text.contains("people[d].superior") && text.contains("unknown person `ghost`"),
        "{text}"
    );
    assert!(text.contains("people[e].superior"), "{text}");
    assert!(
        text.contains("teams[east].members[1]") && text.contains("unknown person `stranger`"),
        "{text}"
    );
    assert!(text.contains("teams[east].respond_within"), "{text}");
}

#[test]
fn check_config_accepts_people_chains_and_inline_members() {
    let (code, text) = check_config(
        r#"
[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"
superior = "li"
chat_ids = { wecom = "WangDa" }
[[people]]
id = "li"
phone = "13800000003"

[[teams]]
id = "east"
members = ["wang"]
respond_within = "5m"
[[teams]]
id = "west"
members = [{ name = "张三", phone = "13800000009" }]
"#,
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("people:   2 (1 teams with a respond_within deadline)"),
        "{text}"
    );
}
