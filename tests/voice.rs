//! 叫应 by phone and chat, end to end: the real hydrowatch binary and a real Mosquitto, with an
//! in-process HTTP receiver standing in for Aliyun's and Tencent Cloud's voice APIs, a voice
//! gateway of one's own, and the WeCom and DingTalk robots. Every signature is recomputed
//! here from what arrived, following each provider's published algorithm, independently of
//! hydrowatch's code.

mod common;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/signatures.rs"]
mod signatures;

use std::time::Duration;

use common::*;
use receiver::{Delivery, Receiver};
use serde_json::Value;
use signatures::{expected_aliyun_authorization, hmac_sha256, query_pairs, sha256_hex};

const PHONES: [&str; 2] = ["13800000001", "13800000002"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Tencent Cloud TC3-HMAC-SHA256, as "签名方法 v3" describes it, rebuilt from the request as
/// received (content-type and host signed).
fn expected_tencent_authorization(d: &Delivery, secret_id: &str, secret_key: &str) -> String {
    let timestamp: i64 = d.header("x-tc-timestamp").unwrap().parse().unwrap();
    let date = jiff::Timestamp::from_second(timestamp)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let canonical_request = format!(
        "POST\n{}\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        d.path,
        d.header("content-type").unwrap(),
        d.header("host").unwrap(),
        sha256_hex(&d.body)
    );
    let scope = format!("{date}/vms/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, b"vms");
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    let signature = hex::encode(hmac_sha256(&k_signing, to_sign.as_bytes()));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"
    )
}

fn open_alert_id(hw: &Hydrowatch, station: &str) -> Option<String> {
    let (_, body) = hw.http_get("/api/v1/alerts?state=open");
    let alerts: Value = serde_json::from_str(&body).ok()?;
    alerts.as_array()?.iter().find_map(|a| {
        let a = a.get("alert").unwrap_or(a);
        (a["station"] == station).then(|| a["alert_id"].as_str().unwrap().to_string())
    })
}

fn notifications(hw: &Hydrowatch, state: &str) -> Vec<Value> {
    let (code, body) = hw.http_get(&format!("/api/v1/notifications?state={state}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

const STATION: &str = r#"
[[stations]]
id = "62304000"
name = "横排头"
river = "淠河"
team = "pihe-east"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0 }
"#;

const TEAM: &str = r#"
[[teams]]
id = "pihe-east"
name = "淠河东岸巡堤队"
token = "east-token"
members = [{ name = "王队长", phone = "13800000001" }, { name = "李四", phone = "13800000002" }]
"#;

const VOICE_AND_CHAT: &str = r#"
  [[teams.channels]]
  id = "aliyun"
  kind = "voice"
  provider = "aliyun"
  url = "@RX@/aliyun/"
  key_id = "LTAI-test-key"
  secret = "aliyun-test-secret"
  template = "TTS_10001"
  caller = "02000000000"
  tts_params = { station = "{station_name}", stage = "{stage}" }
  redial = { attempts = 3, spacing = "90s" }
  [[teams.channels]]
  id = "tencent"
  kind = "voice"
  provider = "tencent"
  url = "@RX@/tencent/"
  key_id = "AKID-test-id"
  secret = "tencent-test-secret"
  template = "4356"
  app_id = "1400006666"
  play_times = 2
  [[teams.channels]]
  id = "gateway"
  kind = "voice"
  provider = "template"
  url = "@RX@/gateway/call"
  secret = "gateway-secret"
  body = '{"to":"{phone}","say":"{message}","ref":"{event_id}"}'
  [[teams.channels]]
  kind = "wecom"
  url = "@RX@/cgi-bin/webhook/send?key=WECOM-KEY"
  [[teams.channels]]
  kind = "dingtalk"
  url = "@RX@/robot/send?access_token=DING-TOKEN"
"#;

async fn start(channels: &str) -> (Mosquitto, Receiver, Hydrowatch) {
    Receiver::with_hydrowatch(&format!("{TEAM}{channels}{STATION}")).await
}

async fn fire(mqtt: &Mosquitto) {
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            br#"{"time":"2021-07-20T08:05:00+08:00","level_m":59.12}"#.to_vec(),
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_calls_every_member_signed_as_each_provider_requires() {
    let (mqtt, rx, hw) = start(VOICE_AND_CHAT).await;
    fire(&mqtt).await;
    wait_until_async(
        Duration::from_secs(20),
        "two calls per voice channel and two robots",
        || {
            rx.requests("/aliyun/").len() >= 2
                && rx.requests("/tencent/").len() >= 2
                && rx.requests("/gateway/").len() >= 2
                && !rx.requests("/cgi-bin/").is_empty()
                && !rx.requests("/robot/").is_empty()
        },
    )
    .await;
    let alert_id = open_alert_id(&hw, "62304000").expect("open alert");
    let now = now_ms();

    // Aliyun SingleCallByTts: one call per member phone, parameters in the query, empty
    // body, ACS3-HMAC-SHA256 over host and the x-acs-* headers.
    let aliyun = rx.requests("/aliyun/");
    assert_eq!(aliyun.len(), 2, "one call per phone: {aliyun:#?}");
    let mut event_id = None;
    for (call, phone) in aliyun.iter().zip(PHONES) {
        assert_eq!(call.method, "POST");
        assert!(call.body.is_empty());
        let q: std::collections::HashMap<String, String> = query_pairs(call).into_iter().collect();
        assert_eq!(q["CalledNumber"], phone);
        assert_eq!(q["CalledShowNumber"], "02000000000");
        assert_eq!(q["TtsCode"], "TTS_10001");
        let params: Value = serde_json::from_str(&q["TtsParam"]).unwrap();
        assert_eq!(
            params,
            serde_json::json!({"station": "横排头", "stage": "warning"})
        );
        event_id.get_or_insert_with(|| q["OutId"].clone());
        assert_eq!(
            Some(&q["OutId"]),
            event_id.as_ref(),
            "the same event for each phone"
        );
        assert_eq!(call.header("x-acs-action"), Some("SingleCallByTts"));
        assert_eq!(call.header("x-acs-version"), Some("2017-05-25"));
        assert_eq!(
            call.header("x-acs-content-sha256"),
            Some(sha256_hex(b"").as_str())
        );
        let date = call.header("x-acs-date").unwrap();
        let at: jiff::Timestamp = date.parse().expect("ISO 8601 UTC");
        assert!((now - at.as_millisecond()).abs() < 600_000, "{date}");
        assert!(date.ends_with('Z') && date.len() == 20, "{date}");
        assert_eq!(
            call.header("authorization").unwrap(),
            expected_aliyun_authorization(call, "LTAI-test-key", "aliyun-test-secret"),
        );
    }
    let nonces: std::collections::HashSet<_> = aliyun
        .iter()
        .map(|c| c.header("x-acs-signature-nonce").unwrap().to_string())
        .collect();
    assert_eq!(nonces.len(), 2, "a nonce is never reused");

    // Tencent VMS SendTtsVoice: a JSON body per phone (E.164), TC3-HMAC-SHA256.
    let tencent = rx.requests("/tencent/");
    assert_eq!(tencent.len(), 2, "{tencent:#?}");
    for (call, phone) in tencent.iter().zip(PHONES) {
        assert_eq!(call.header("x-tc-action"), Some("SendTtsVoice"));
        assert_eq!(call.header("x-tc-version"), Some("2020-09-02"));
        assert_eq!(call.header("x-tc-region"), Some("ap-guangzhou"));
        assert_eq!(
            call.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let ts: i64 = call.header("x-tc-timestamp").unwrap().parse().unwrap();
        assert!(
            (now / 1000 - ts).abs() < 600,
            "within Tencent's five minutes"
        );
        let b = call.json();
        assert_eq!(b["CalledNumber"], format!("+86{phone}").as_str());
        assert_eq!(b["TemplateId"], "4356");
        assert_eq!(b["VoiceSdkAppid"], "1400006666");
        assert_eq!(b["PlayTimes"], 2);
        assert_eq!(b["SessionContext"], event_id.as_deref().unwrap());
        let spoken = b["TemplateParamSet"][0].as_str().unwrap();
        assert!(
            spoken.contains("横排头 59.12 m ≥ 警戒水位 59.00 m"),
            "{spoken}"
        );
        assert!(!spoken.contains("http"), "no links read aloud: {spoken}");
        assert_eq!(
            call.header("authorization").unwrap(),
            expected_tencent_authorization(call, "AKID-test-id", "tencent-test-secret"),
        );
    }

    // A voice gateway of one's own: the body template per phone, HMAC-signed like a webhook.
    let gateway = rx.requests("/gateway/call");
    assert_eq!(gateway.len(), 2, "{gateway:#?}");
    for (call, phone) in gateway.iter().zip(PHONES) {
        let expected = format!(
            "sha256={}",
            hex::encode(hmac_sha256(b"gateway-secret", &call.body))
        );
        assert_eq!(
            call.header("x-hydrowatch-signature"),
            Some(expected.as_str())
        );
        let b = call.json();
        assert_eq!(b["to"], phone);
        assert_eq!(b["ref"], event_id.as_deref().unwrap());
        assert!(b["say"].as_str().unwrap().contains("横排头"));
    }

    // WeCom: markdown cannot @mention by phone, so the page goes as text with
    // mentioned_mobile_list.
    let wecom = &rx.requests("/cgi-bin/webhook/send")[0];
    let w = wecom.json();
    assert_eq!(w["msgtype"], "text", "{w}");
    assert_eq!(
        w["text"]["mentioned_mobile_list"],
        serde_json::json!(PHONES)
    );
    let content = w["text"]["content"].as_str().unwrap();
    assert!(content.contains("[告警] 淠河 横排头"), "{content}");
    assert!(!content.contains("**"), "plain text: {content}");

    // DingTalk: at.atMobiles, and each @phone in the text, as DingTalk requires.
    let ding = rx.requests("/robot/send")[0].json();
    assert_eq!(ding["msgtype"], "markdown");
    assert_eq!(ding["at"]["atMobiles"], serde_json::json!(PHONES));
    assert_eq!(ding["at"]["isAtAll"], false);
    let text = ding["markdown"]["text"].as_str().unwrap();
    for phone in PHONES {
        assert!(text.contains(&format!("@{phone}")), "{text}");
    }

    // Acknowledged news wakes nobody: chat messages mention no one and no phone rings.
    let (code, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        b"{}",
        &[("Authorization", "Bearer east-token")],
    );
    assert!((200..300).contains(&code), "{code} {body}");
    wait_until_async(
        Duration::from_secs(10),
        "the acknowledgement reaches the robots",
        || rx.requests("/cgi-bin/").len() >= 2 && rx.requests("/robot/").len() >= 2,
    )
    .await;
    let w = rx.requests("/cgi-bin/webhook/send")[1].json();
    assert_eq!(w["msgtype"], "markdown", "{w}");
    let d = rx.requests("/robot/send")[1].json();
    assert!(d.get("at").is_none(), "{d}");
    wait_until_async(
        Duration::from_secs(10),
        "every channel has the acknowledgement",
        || notifications(&hw, "pending").is_empty() && notifications(&hw, "delivered").len() == 10,
    )
    .await;
    assert_eq!(
        rx.requests("/aliyun/").len(),
        2,
        "no call about an acknowledgement"
    );
    assert_eq!(rx.requests("/tencent/").len(), 2);
    assert_eq!(rx.requests("/gateway/").len(), 2);
}

const FLAKY_GATEWAY: &str = r#"
  [[teams.channels]]
  id = "gateway"
  kind = "voice"
  provider = "template"
  url = "@RX@/gateway/call"
  backoff = "200ms"
  body = '{"to":"{phone}","say":"{message}"}'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_voice_page_calls_only_the_phones_not_yet_reached() {
    let (mqtt, rx, _hw) = start(FLAKY_GATEWAY).await;
    // The second member's call fails (the gateway is overloaded for that number).
    rx.refuse("/gateway/call", PHONES[1], 503, r#"{"error":"busy"}"#);
    fire(&mqtt).await;
    wait_until_async(
        Duration::from_secs(20),
        "the failing call is retried",
        || {
            rx.requests("/gateway/call")
                .iter()
                .filter(|d| d.text().contains(PHONES[1]))
                .count()
                >= 3
        },
    )
    .await;
    rx.accept_all();
    wait_until_async(
        Duration::from_secs(20),
        "the second member is called",
        || {
            rx.requests("/gateway/call")
                .iter()
                .any(|d| d.accepted && d.text().contains(PHONES[1]))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let first: Vec<_> = rx
        .requests("/gateway/call")
        .into_iter()
        .filter(|d| d.text().contains(PHONES[0]))
        .collect();
    assert_eq!(
        first.len(),
        1,
        "the first member's phone rang once: {first:#?}"
    );
}

const REFUSING_ALIYUN: &str = r#"
  [[teams.channels]]
  id = "aliyun"
  kind = "voice"
  provider = "aliyun"
  url = "@RX@/aliyun/"
  key_id = "LTAI-test-key"
  secret = "aliyun-test-secret"
  template = "TTS_MISSING"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_api_misconfiguration_fails_the_page_at_once_and_a_system_error_is_retried() {
    let (mqtt, rx, hw) = start(REFUSING_ALIYUN).await;
    // Aliyun answers business errors as HTTP 400 with a Code: a passing system error first...
    rx.refuse(
        "/aliyun/",
        "",
        400,
        r#"{"Code":"isp.SYSTEM_ERROR","Message":"system error","RequestId":"r1"}"#,
    );
    fire(&mqtt).await;
    wait_until_async(
        Duration::from_secs(20),
        "the failed call is retried",
        || rx.requests("/aliyun/").len() >= 3,
    )
    .await;
    assert!(
        notifications(&hw, "failed").is_empty(),
        "a system error is not a failure"
    );
    // ...then a template the account does not have: failed for good, not retried.
    rx.accept_all();
    rx.refuse(
        "/aliyun/",
        "",
        400,
        r#"{"Code":"isv.TTS_TEMPLATE_ILLEGAL","Message":"bad template","RequestId":"r2"}"#,
    );
    wait_until_async(Duration::from_secs(20), "the page fails", || {
        !notifications(&hw, "failed").is_empty()
    })
    .await;
    let failed = notifications(&hw, "failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["kind"], "voice");
    let error = failed[0]["last_error"].as_str().unwrap();
    assert!(error.contains("isv.TTS_TEMPLATE_ILLEGAL"), "{error}");
    let tried = rx.requests("/aliyun/").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rx.requests("/aliyun/").len(),
        tried,
        "a refusal is never retried"
    );
}

const LIMITED_TENCENT: &str = r#"
  [[teams.channels]]
  id = "tencent"
  kind = "voice"
  provider = "tencent"
  url = "@RX@/tencent/"
  key_id = "AKID-test-id"
  secret = "tencent-test-secret"
  template = "4356"
  app_id = "1400006666"
  backoff = "200ms"
"#;

/// A number the provider limits (a few calls a minute, an hour, a day to one number) is not
/// called again every minute, and the page's other phone does not wait behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_the_provider_limits_is_not_called_again() {
    let (mqtt, rx, hw) = start(LIMITED_TENCENT).await;
    rx.refuse(
        "/tencent/",
        PHONES[1],
        200,
        r#"{"Response":{"Error":{"Code":"LimitExceeded.PhoneNumberOneHourLimit","Message":"limit"},"RequestId":"r1"}}"#,
    );
    fire(&mqtt).await;
    wait_until_async(
        Duration::from_secs(20),
        "the page fails, naming the number",
        || {
            notifications(&hw, "failed").iter().any(|n| {
                n["last_error"].as_str().is_some_and(|e| {
                    e.contains(PHONES[1]) && e.contains("limits calls to this number")
                })
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = |phone: &str| {
        rx.requests("/tencent/")
            .iter()
            .filter(|d| d.text().contains(phone))
            .count()
    };
    assert_eq!(calls(PHONES[0]), 1, "the other member was called once");
    assert_eq!(
        calls(PHONES[1]),
        1,
        "the limited number was not called again"
    );
}

/// A page whose calls keep failing stops ringing once somebody acknowledges the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_alert_stops_its_retried_calls() {
    let (mqtt, rx, hw) = start(FLAKY_GATEWAY).await;
    rx.refuse("/gateway/call", PHONES[1], 503, r#"{"error":"busy"}"#);
    fire(&mqtt).await;
    let tries = || {
        rx.requests("/gateway/call")
            .iter()
            .filter(|d| d.text().contains(PHONES[1]))
            .count()
    };
    wait_until_async(
        Duration::from_secs(20),
        "the failing call is retried",
        || tries() >= 2,
    )
    .await;
    let (code, body) = hw.http_get("/api/v1/alerts?state=open");
    assert_eq!(code, 200, "{body}");
    let alerts: Value = serde_json::from_str(&body).unwrap();
    let id = alerts[0]["alert_id"]
        .as_str()
        .expect("an open alert")
        .to_string();
    let (code, body) = hw.http_post(
        &format!("/api/v1/alerts/{id}/ack"),
        b"",
        &[("Authorization", "Bearer east-token")],
    );
    assert_eq!(code, 200, "{body}");
    // At most the attempt already under way; then nothing, although the number still fails.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after_ack = tries();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(tries(), after_ack, "no call after the acknowledgement");
}

const TWO_STATIONS_ONE_OFFICER: &str = r#"
[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"
superior = "li"

[[people]]
id = "li"
name = "李镇长"
phone = "13800000003"

[[teams]]
id = "east"
token = "east-token"
members = ["wang"]
respond_within = "3s"
  [[teams.channels]]
  id = "tencent"
  kind = "voice"
  provider = "tencent"
  url = "@RX@/tencent/"
  key_id = "AKID-test-id"
  secret = "tencent-test-secret"
  template = "4356"
  app_id = "1400006666"
  callback_key = "tencent-callback-key"
  [[teams.channels]]
  id = "hook"
  kind = "webhook"
  url = "@RX@/hook"

[[stations]]
id = "s1"
name = "横排头"
team = "east"
stages = { guard = 1.0, warning = 2.0 }

[[stations]]
id = "s2"
name = "响洪甸"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

/// 王队长 presses 1 on the Tencent call `call_id`: what the callback route answers.
fn wang_presses_1(hw: &Hydrowatch, call_id: &str) -> Value {
    let key = serde_json::json!({"voicekey_callback": {
        "call_from": "", "callid": call_id, "keypress": "1", "mobile": "13800000001",
        "nationcode": "86", "keypress_time": now_ms() / 1000,
    }})
    .to_string();
    let (status, body) = hw.http_post(
        "/api/v1/callbacks/tencent?key=tencent-callback-key",
        key.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// s1 and s2 both over their warning stage: two alerts, each paging wang.
async fn both_stations_over_warning(port: u16) {
    publish_all(
        port,
        vec![
            (
                "hydro/s1/data".into(),
                br#"{"time":"2021-07-20T08:05:00+08:00","level_m":2.5}"#.to_vec(),
            ),
            (
                "hydro/s2/data".into(),
                br#"{"time":"2021-07-20T08:05:00+08:00","level_m":2.6}"#.to_vec(),
            ),
        ],
    )
    .await;
}

/// The unanswered pages (叫应 steps) the webhook received for `alert_id`, one per event.
fn steps_for(rx: &Receiver, alert_id: &str) -> usize {
    let mut seen = std::collections::HashSet::new();
    rx.delivered("/hook")
        .into_iter()
        .filter(|e| e["state"] == "unanswered" && e["alert_id"] == alert_id)
        .filter(|e| seen.insert(e["event_id"].to_string()))
        .count()
}

/// Tencent's call reports name the call only by the `callid` its SendTtsVoice answer gave:
/// a keypress on the call for one alert acknowledges that alert, not every alert that
/// called the same person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tencent_keypress_acknowledges_the_alert_its_call_was_for() {
    let mqtt = Mosquitto::start(false);
    let rx = Receiver::start().await;
    // SendTtsVoice answers as Tencent documents: Response.SendStatus.CallId, a fresh one per
    // call, with the SessionContext sent.
    let placed: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let log = placed.clone();
    rx.respond_with("/tencent/", move |body| {
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let session = request["SessionContext"].as_str().unwrap_or("").to_string();
        let mut log = log.lock().unwrap();
        let call_id = format!(
            "{:08x}-403c-11eb-96b8-525400476c37",
            0x1258_2bce + log.len()
        );
        log.push((session.clone(), call_id.clone()));
        serde_json::json!({"Response": {
            "SendStatus": {"CallId": call_id, "SessionContext": session},
            "RequestId": format!("req-{}", log.len()),
        }})
        .to_string()
    });
    let config = HwConfig::new(&mqtt)
        .body(&TWO_STATIONS_ONE_OFFICER.replace("@RX@", &rx.url("")))
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    both_stations_over_warning(mqtt.port()).await;
    wait_until_async(
        Duration::from_secs(15),
        "both firing pages, each with its call to wang",
        || {
            let firing = rx
                .delivered("/hook")
                .iter()
                .filter(|e| e["state"] == "firing")
                .count();
            let calls = placed.lock().unwrap().len();
            firing >= 2 && calls >= 2
        },
    )
    .await;
    let firing = |station: &str| {
        rx.delivered("/hook")
            .into_iter()
            .find(|e| e["state"] == "firing" && e["station"] == station)
            .unwrap_or_else(|| panic!("a firing page for {station}"))
    };
    let (a, b) = (firing("s1"), firing("s2"));
    let alert_a = a["alert_id"].as_str().unwrap().to_string();
    let alert_b = b["alert_id"].as_str().unwrap().to_string();
    let call_for_a = placed
        .lock()
        .unwrap()
        .iter()
        .find(|(session, _)| *session == a["event_id"].as_str().unwrap())
        .map(|(_, call_id)| call_id.clone())
        .expect("a call for alert A");
    let b_steps_before = steps_for(&rx, &alert_b);

    // 王队长 presses 1 on the call about 横排头 (s1).
    let result = wang_presses_1(&hw, &call_for_a);
    assert_eq!(result[0]["person"], "wang", "{result}");
    assert_eq!(
        result[0]["acknowledged"],
        serde_json::json!([alert_a]),
        "only the alert the call was for (A = {alert_a}, B = {alert_b})"
    );

    let (_, open) = hw.http_get("/api/v1/alerts?state=open");
    let open: Value = serde_json::from_str(&open).unwrap();
    let acknowledged_by = |id: &str| {
        open.as_array()
            .unwrap()
            .iter()
            .map(|a| a.get("alert").unwrap_or(a))
            .find(|a| a["alert_id"] == id)
            .map(|a| a["acknowledged_by"].clone())
            .unwrap_or_else(|| panic!("{id} open: {open}"))
    };
    assert_eq!(acknowledged_by(&alert_a), "east");
    assert_eq!(acknowledged_by(&alert_b), Value::Null, "B stays unanswered");

    // B's 叫应 chain goes on; A's has stopped.
    wait_until_async(Duration::from_secs(15), "B's next callout step", || {
        steps_for(&rx, &alert_b) > b_steps_before
    })
    .await;
    let a_steps = steps_for(&rx, &alert_a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        steps_for(&rx, &alert_a),
        a_steps,
        "no step for A after its answer"
    );

    // The audit names the call: placed with its provider id, and the keypress reported on it
    // for the event it was about.
    let (status, audit) = hw.http_get(&format!("/api/v1/alerts/{alert_a}/callouts"));
    assert_eq!(status, 200, "{audit}");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let entries = audit.as_array().unwrap();
    let placed_entry = entries
        .iter()
        .find(|e| e["kind"] == "call_placed")
        .unwrap_or_else(|| panic!("a call_placed line: {audit:#}"));
    assert_eq!(placed_entry["person"], "wang");
    assert_eq!(placed_entry["channel"], "tencent");
    assert_eq!(placed_entry["event_id"], a["event_id"]);
    assert!(
        placed_entry["detail"]
            .as_str()
            .unwrap()
            .contains(&call_for_a),
        "{placed_entry}"
    );
    let result = entries
        .iter()
        .find(|e| e["kind"] == "call_result")
        .unwrap_or_else(|| panic!("a call_result line: {audit:#}"));
    assert_eq!(result["event_id"], a["event_id"], "{result}");
    let (_, audit_b) = hw.http_get(&format!("/api/v1/alerts/{alert_b}/callouts"));
    assert!(
        !audit_b.contains("acknowledgement") && !audit_b.contains(&call_for_a),
        "{audit_b}"
    );
}

/// A call is recorded by the journal writer, in order with the reports about it: with the
/// journal locked by another connection for longer than SQLite's busy timeout (10 s) just as
/// the first call is accepted, the page's next phone is still called at once, and the keypress on
/// that first call, reported after the lock is gone, acknowledges exactly its alert although
/// two open alerts called the same officer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_placed_while_the_journal_is_busy_is_recorded_before_its_keypress() {
    let mqtt = Mosquitto::start(false);
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    // (session context, call id, when the call request arrived)
    let placed: std::sync::Arc<std::sync::Mutex<Vec<(String, String, std::time::Instant)>>> =
        Default::default();
    let (released_tx, released_rx) = std::sync::mpsc::channel::<()>();
    let released_tx = std::sync::Mutex::new(Some(released_tx));
    let log = placed.clone();
    let path = journal.clone();
    rx.respond_with("/tencent/", move |body| {
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let session = request["SessionContext"].as_str().unwrap_or("").to_string();
        let mut log = log.lock().unwrap();
        let call_id = format!("busy-call-{}", log.len());
        if log.is_empty() {
            // Another connection takes the journal's write lock before the provider answers
            // the first call, and keeps it past the busy timeout.
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            let released = released_tx.lock().unwrap().take();
            let path = path.clone();
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).expect("journal");
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").expect("write lock");
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(11_000));
                conn.execute_batch("ROLLBACK").unwrap();
                if let Some(r) = released {
                    let _ = r.send(());
                }
            });
            held_rx.recv().expect("lock taken");
        }
        log.push((session.clone(), call_id.clone(), std::time::Instant::now()));
        serde_json::json!({"Response": {
            "SendStatus": {"CallId": call_id, "SessionContext": session},
            "RequestId": format!("req-{}", log.len()),
        }})
        .to_string()
    });
    // Each page calls two people, one after the other.
    let body = format!(
        "[[people]]\nid = \"zhao\"\nname = \"赵干事\"\nphone = \"13800000002\"\n{}",
        TWO_STATIONS_ONE_OFFICER
            .replace(r#"members = ["wang"]"#, r#"members = ["wang", "zhao"]"#)
            .replace("@RX@", &rx.url(""))
    );
    let config = HwConfig::new(&mqtt)
        .journal(&journal.display().to_string())
        .body(&body)
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    both_stations_over_warning(mqtt.port()).await;
    wait_until_async(Duration::from_secs(30), "two calls to wang", || {
        placed.lock().unwrap().len() >= 2
    })
    .await;
    let (first, first_at, second_at) = {
        let placed = placed.lock().unwrap();
        (placed[0].clone(), placed[0].2, placed[1].2)
    };
    assert!(
        second_at - first_at < Duration::from_secs(5),
        "the page's second phone waited {:?} for the first call's record",
        second_at - first_at
    );
    tokio::task::spawn_blocking(move || released_rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the journal's lock released");
    let (session, call_id, _) = first;

    // 王队长 presses 1 on the first call, after the lock is gone.
    let result = wang_presses_1(&hw, &call_id);
    let alert = rx
        .delivered("/hook")
        .into_iter()
        .find(|e| e["state"] == "firing" && e["event_id"] == session.as_str())
        .and_then(|e| e["alert_id"].as_str().map(str::to_string))
        .expect("the firing page the first call was for");
    assert_eq!(
        result[0]["acknowledged"],
        serde_json::json!([alert]),
        "the keypress acknowledges the alert of its call: {result}"
    );
}
