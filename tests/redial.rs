//! Voice calls that go unanswered, end to end: the real hydrowatch binary and a real
//! Mosquitto, with an in-process HTTP receiver standing in for Aliyun's voice API and for a
//! voice gateway of one's own, which then report call results back on the callback route.
//! (a) Aliyun: nobody answers, the 叫应 steps call the members again and then their
//! superior, whose keypress in Aliyun's VoiceReport acknowledges. (b) A template gateway
//! with `redial = { attempts = 3, spacing = "1s" }`: each unanswered call is placed again to
//! that phone only, three calls at most, across a kill -9, and not after an acknowledgement.

mod common;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/signatures.rs"]
mod signatures;

use std::time::{Duration, Instant};

use common::*;
use receiver::{Delivery, Receiver};
use serde_json::{json, Value};
use signatures::{expected_aliyun_authorization, hmac_sha256};

const WANG: &str = "13800000001";
const ZHAO: &str = "13800000002";
const LI: &str = "13800000003";

const PEOPLE: &str = r#"
[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"
superior = "li"

[[people]]
id = "zhao"
name = "赵四"
phone = "13800000002"
superior = "li"

[[people]]
id = "li"
name = "李镇长"
phone = "13800000003"

[[stations]]
id = "s1"
name = "横排头"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

const ALIYUN_TEAM: &str = r#"
[[teams]]
id = "east"
token = "east-token"
members = ["wang", "zhao"]
respond_within = "1s"
  [[teams.channels]]
  id = "aliyun"
  kind = "voice"
  provider = "aliyun"
  url = "@RX@/aliyun/"
  key_id = "LTAI-test-key"
  secret = "aliyun-test-secret"
  template = "TTS_10001"
  callback_key = "report-key-0123456789"
"#;

const GATEWAY_TEAM: &str = r#"
[[teams]]
id = "east"
token = "east-token"
members = ["wang", "zhao"]
  [[teams.channels]]
  id = "gateway"
  kind = "voice"
  provider = "template"
  url = "@RX@/gateway/call"
  secret = "gateway-secret"
  body = '{"to":"{phone}","ref":"{event_id}"}'
  redial = { attempts = 3, spacing = "1s" }
"#;

async fn start(team: &str) -> (Mosquitto, Receiver, Hydrowatch) {
    Receiver::with_hydrowatch(&format!("{team}{PEOPLE}")).await
}

async fn fire(mqtt: &Mosquitto) {
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/s1/data".into(),
            br#"{"time":"2021-07-20T08:05:00+08:00","level_m":2.5}"#.to_vec(),
        )],
    )
    .await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn get_json(hw: &Hydrowatch, path: &str) -> Value {
    let (status, body) = hw.http_get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

/// The phone an Aliyun call rings.
fn called(d: &Delivery) -> String {
    d.query_params()["CalledNumber"].clone()
}

/// `2021-04-28 10:03:40`: now in Beijing time, as Aliyun writes its report times.
fn beijing_now() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_calls_nobody_answers_the_superior_is_called_and_his_keypress_acknowledges() {
    let (mqtt, rx, hw) = start(ALIYUN_TEAM).await;
    fire(&mqtt).await;

    // The page, the members called again (step 1), then their superior (step 2).
    wait_until_async(Duration::from_secs(20), "a call to the superior", || {
        rx.requests("/aliyun/").iter().any(|d| called(d) == LI)
    })
    .await;
    let calls = rx.requests("/aliyun/");
    let phones: Vec<String> = calls.iter().map(called).collect();
    assert_eq!(
        phones,
        [WANG, ZHAO, WANG, ZHAO, LI],
        "each member twice, then the superior once"
    );
    for call in &calls {
        assert_eq!(call.header("x-acs-action"), Some("SingleCallByTts"));
        assert_eq!(
            call.header("authorization").unwrap(),
            expected_aliyun_authorization(call, "LTAI-test-key", "aliyun-test-secret"),
            "signed ACS3-HMAC-SHA256"
        );
    }
    let out_id = calls[4].query_params()["OutId"].clone();
    assert_ne!(
        out_id,
        calls[0].query_params()["OutId"],
        "the superior's call is its own event"
    );
    let alerts = get_json(&hw, "/api/v1/alerts?state=open");
    let alert_id = alerts[0]["alert_id"].as_str().unwrap().to_string();
    assert_eq!(
        get_json(&hw, "/api/v1/unreached").as_array().unwrap().len(),
        1,
        "unreached while nobody answered"
    );

    // Aliyun's VoiceReport: the superior listened and pressed 1.
    let report = json!([{
        "status_code": "200000", "status_msg": "执行完成", "callee": LI,
        "caller": "02000000000", "dtmf": "1", "out_id": out_id,
        "call_id": "122628733198^109422061234", "duration": "12",
        "originate_time": beijing_now(), "end_time": beijing_now(), "toll_type": "LOCAL",
        "voice_type": "voice"
    }])
    .to_string();
    let (status, _) = hw.http_post(
        "/api/v1/callbacks/aliyun?key=wrong-key",
        report.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 401, "a wrong key");
    let (status, body) = hw.http_post(
        "/api/v1/callbacks/aliyun?key=report-key-0123456789",
        report.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result[0]["person"], "li");
    assert_eq!(result[0]["acknowledged"], json!([alert_id]));

    let alerts = get_json(&hw, "/api/v1/alerts?state=all");
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_id"] == alert_id.as_str())
        .unwrap();
    assert_eq!(alert["acknowledged_by"], "east", "{alert}");
    let last = alert["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["state"], "acknowledged", "{last}");
    assert_eq!(last["acknowledged_person"], "li", "{last}");
    let audit = get_json(&hw, &format!("/api/v1/alerts/{alert_id}/callouts"));
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "acknowledgement" && e["person"] == "li"),
        "{audit:#}"
    );
    assert_eq!(hw.http_get("/api/v1/unreached").1.trim(), "[]");
    let count = rx.requests("/aliyun/").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        rx.requests("/aliyun/").len(),
        count,
        "no call after the answer"
    );
}

/// The calls the gateway was asked to place to `phone`.
fn calls_to(rx: &Receiver, phone: &str) -> Vec<Delivery> {
    rx.requests("/gateway/call")
        .into_iter()
        .filter(|d| d.json()["to"] == phone)
        .collect()
}

/// The gateway reports a call result in hydrowatch's own answer JSON, signed.
fn report(hw: &Hydrowatch, phone: &str, outcome: Value, event_id: &str) -> Value {
    let body = json!({"phone": phone, "outcome": outcome, "at": now_ms(), "reference": event_id})
        .to_string();
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(b"gateway-secret", body.as_bytes()))
    );
    let (status, answer) = hw.http_post(
        "/api/v1/callbacks/gateway",
        body.as_bytes(),
        &[
            ("Content-Type", "application/json"),
            ("X-Hydrowatch-Signature", &signature),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

async fn wait_calls(rx: &Receiver, phone: &str, n: usize) {
    wait_until_async(
        Duration::from_secs(15),
        &format!("call {n} to {phone}"),
        || calls_to(rx, phone).len() >= n,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_is_redialled_to_that_phone_only_until_the_attempts_are_spent() {
    let (mqtt, rx, mut hw) = start(GATEWAY_TEAM).await;
    fire(&mqtt).await;
    wait_calls(&rx, ZHAO, 1).await;
    wait_calls(&rx, WANG, 1).await;
    let event_id = calls_to(&rx, WANG)[0].json()["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let alert_id = get_json(&hw, "/api/v1/alerts?state=open")[0]["alert_id"]
        .as_str()
        .unwrap()
        .to_string();

    // No answer: Wang's phone, and only his, rings again about a second later.
    let reported = Instant::now();
    report(&hw, WANG, json!("no_answer"), &event_id);
    wait_calls(&rx, WANG, 2).await;
    let redial = &calls_to(&rx, WANG)[1];
    let after = redial.at.duration_since(reported);
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "spacing 1s: {after:?}"
    );
    assert_eq!(redial.json()["ref"], event_id.as_str(), "the same event");
    assert_eq!(
        calls_to(&rx, ZHAO).len(),
        1,
        "the other member is not called"
    );

    // Busy the second time: a third call. A third result: the attempts are spent.
    report(&hw, WANG, json!("busy"), &event_id);
    wait_calls(&rx, WANG, 3).await;
    report(&hw, WANG, json!("no_answer"), &event_id);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(calls_to(&rx, WANG).len(), 3, "three calls in all");

    // kill -9 between a result and its redial: the redial is in the journal.
    report(&hw, ZHAO, json!("no_answer"), &event_id);
    hw.kill9();
    assert_eq!(
        calls_to(&rx, ZHAO).len(),
        1,
        "killed before the redial was due"
    );
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    wait_calls(&rx, ZHAO, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(calls_to(&rx, ZHAO).len(), 2, "the redial happened once");
    assert_eq!(calls_to(&rx, WANG).len(), 3, "the restart rang nobody else");

    // Another no answer queues a redial; Zhao's keypress acknowledges before it is due, and
    // it never rings.
    report(&hw, ZHAO, json!("no_answer"), &event_id);
    let answer = report(&hw, ZHAO, json!({"keypress": "1"}), &event_id);
    assert_eq!(answer[0]["person"], "zhao");
    assert_eq!(answer[0]["acknowledged"], json!([alert_id]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        calls_to(&rx, ZHAO).len(),
        2,
        "no call after the acknowledgement"
    );

    // The audit lists each redial with the person and phone, and the one not placed.
    let audit = get_json(&hw, &format!("/api/v1/alerts/{alert_id}/callouts"));
    let audit = audit.as_array().unwrap();
    let redials = |person: &str| {
        audit
            .iter()
            .filter(|e| e["kind"] == "redial" && e["person"] == person)
            .count()
    };
    assert_eq!(redials("wang"), 2, "{audit:#?}");
    assert_eq!(redials("zhao"), 2, "{audit:#?}");
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "redial_cancelled" && e["phone"] == ZHAO),
        "{audit:#?}"
    );
    let delivered_redials = audit
        .iter()
        .filter(|e| {
            e["kind"] == "delivered" && e["detail"].as_str().is_some_and(|d| d.contains("redial"))
        })
        .count();
    assert_eq!(delivered_redials, 3, "{audit:#?}");
}
