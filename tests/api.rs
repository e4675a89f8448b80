//! Every HTTP route against a real hydrowatch fed by a real Mosquitto: the happy path, and the
//! bad input a client can send (unknown ids, bad elements and times, `from` after `to`, unknown
//! alert states, missing or wrong tokens), each answered with a JSON error and the right status.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const READ_TOKEN: &str = "office-read";
const EAST_TOKEN: &str = "east-token";
const WEST_TOKEN: &str = "west-token";

fn config(mqtt: &Mosquitto, read_token: Option<&str>) -> String {
    let config = HwConfig::new(mqtt).client_id("hw-api");
    let config = match read_token {
        Some(t) => config.http(&format!("read_token = \"{t}\"")),
        None => config,
    };
    config
        .body(&format!(
            r#"[[teams]]
id = "east"
name = "淠河东岸巡堤队"
token = "{EAST_TOKEN}"

[[teams]]
id = "west"
name = "West bank patrol"
token = "{WEST_TOKEN}"

[[stations]]
id = "62304000"
name = "横排头"
river = "淠河"
team = "east"
stages = {{ guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }}
drought = {{ warning = 51.0, limit = 50.2 }}

[[stations]]
id = "long"
name = "Long record"
team = "west"
stages = {{ action = 10.0, minor = 11.0 }}

[[stations]]
id = "quiet"
name = "Quiet"
stages = {{ guard = 1.0 }}
"#
        ))
        .build()
}

/// A raw HTTP/1.0 exchange: (status, lower-cased head, body).
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// GET with the read token; the JSON body and the status.
fn get(hw: &Hydrowatch, path: &str) -> (u16, Value) {
    get_json_with_token(hw.http_port(), path, READ_TOKEN)
}

fn ok(hw: &Hydrowatch, path: &str) -> Value {
    let (status, value) = get(hw, path);
    assert_eq!(status, 200, "GET {path}: {value}");
    value
}

/// A JSON error with this status whose message mentions `needle`.
fn error(hw: &Hydrowatch, path: &str, status: u16, needle: &str) {
    let (got, value) = get(hw, path);
    assert_eq!(got, status, "GET {path}: {value}");
    assert_eq!(value["status"], status, "GET {path}: {value}");
    let message = value["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "GET {path}: error `{message}` should mention `{needle}`"
    );
}

fn ack(hw: &Hydrowatch, alert_id: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, body) = hw.http_post(&format!("/api/v1/alerts/{alert_id}/ack"), b"", &headers);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("ack: not JSON ({e}): {body}")),
    )
}

/// Starts Mosquitto and a hydrowatch with a read token, and feeds it: a rising river past
/// the warning stage, 2500 one-minute readings with rain at `long`, one bad message.
async fn fed() -> (Mosquitto, Hydrowatch, i64) {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(&config(&mqtt, Some(READ_TOKEN)), Duration::from_secs(30));
    let now = now_s();
    let base = now - 3 * 24 * 3600;
    let long: Vec<Value> = (0..2500)
        .map(|i| json!({"time": base + i * 60, "level_m": 5.0 + (i % 10) as f64 * 0.1, "rain_mm": 0.5, "rain_period_s": 60}))
        .collect();
    let messages = vec![
        (
            "hydro/62304000/data".to_string(),
            json!([
                {"time": now - 3600, "level_m": 57.0, "rain_mm": 1.0, "rain_period_s": 300},
                {"time": now - 1800, "level_m": 58.2, "rain_mm": 2.5, "rain_period_s": 300},
                {"time": now - 600, "level_m": 59.3, "rain_mm": 4.0, "rain_period_s": 300}
            ])
            .to_string()
            .into_bytes(),
        ),
        (
            "hydro/long/data".to_string(),
            json!({"station": "long", "readings": long})
                .to_string()
                .into_bytes(),
        ),
        ("hydro/quiet/data".to_string(), b"not json at all".to_vec()),
    ];
    publish_all(mqtt.port(), messages).await;
    let hw = tokio::task::spawn_blocking(move || {
        wait_until_msg(Duration::from_secs(30), "the readings to be stored", || {
            let (_, s) = get(&hw, "/api/v1/stations/62304000");
            let (_, l) = get(&hw, "/api/v1/stations/long");
            s["status"]["latest_level_m"].as_f64() == Some(59.3)
                && l["status"]["level_time"].as_i64() == Some((base + 2499 * 60) * 1000)
        });
        hw
    })
    .await
    .expect("join");
    (mqtt, hw, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_bad_input_is_a_clear_json_error() {
    let (_mqtt, hw, now) = fed().await;
    let port = hw.http_port();

    // Operations: open whatever the read token.
    let (status, head, body) = exchange(port, "GET", "/healthz", &[]);
    assert_eq!((status, body.as_str()), (200, "ok"), "{head}");
    let (status, _, body) = exchange(port, "GET", "/readyz", &[]);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = exchange(port, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("hydrowatch_readings_stored_total"), "{body}");
    let (status, head, body) = exchange(port, "GET", "/api/v1/openapi.json", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    let doc: Value = serde_json::from_str(&body).expect("openapi is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/",
        "/assets/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/stations",
        "/api/v1/stations/{id}",
        "/api/v1/stations/{id}/series",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}",
        "/api/v1/alerts/{id}/ack",
        "/api/v1/dead_letters",
        "/api/v1/events",
        "/api/v1/session",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "openapi.json lacks {path}"
        );
    }

    // The board and its assets: open, typed, cacheable by validation.
    let (status, head, body) = exchange(port, "GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("/assets/board.js") && body.contains("/assets/uPlot.iife.min.js"));
    for (name, kind) in [
        ("board.js", "text/javascript"),
        ("board.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
    ] {
        let (status, head, body) = exchange(port, "GET", &format!("/assets/{name}"), &[]);
        assert_eq!(status, 200, "{name}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{name}: {head}"
        );
        assert!(head.contains("cache-control: no-cache"), "{name}: {head}");
        assert!(body.len() > 500, "{name} is the real file");
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .unwrap_or_else(|| panic!("{name} has an ETag: {head}"))
            .to_string();
        let (status, _, body) = exchange(
            port,
            "GET",
            &format!("/assets/{name}"),
            &[("If-None-Match", &etag)],
        );
        assert_eq!(status, 304, "{name} revalidates");
        assert!(body.is_empty());
    }
    let (status, head, body) = exchange(port, "GET", "/assets/secret.txt", &[]);
    assert_eq!(status, 404, "{head}");
    assert!(body.contains("no asset"), "{body}");
    let (status, _, body) = exchange(port, "GET", "/api/v1/nothing-here", &[]);
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""), "{body}");

    // Stations.
    let stations = ok(&hw, "/api/v1/stations");
    let ids: Vec<&str> = stations
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["62304000", "long", "quiet"], "catalogue order");
    let s = ok(&hw, "/api/v1/stations/62304000");
    assert_eq!(s["name"], "横排头");
    assert_eq!(s["team_name"], "淠河东岸巡堤队");
    assert_eq!(s["stages"][1], json!({"name": "warning", "level_m": 59.0}));
    assert_eq!(s["drought"][0]["name"], "warning");
    assert_eq!(s["status"]["stage"], "warning");
    assert_eq!(s["status"]["next_stage"], json!(["guaranteed", 61.0]));
    assert!(
        s["status"]["trend_m_per_h"]
            .as_f64()
            .is_some_and(|t| t > 1.0),
        "{s}"
    );
    assert_eq!(s["open_alerts"][0]["rule"], "stage");
    assert!(ok(&hw, "/api/v1/stations/quiet")["status"]["latest_level_m"].is_null());
    error(&hw, "/api/v1/stations/nope", 404, "nope");
    error(&hw, "/api/v1/stations/nope/series", 404, "nope");

    // Series.
    let series = ok(&hw, "/api/v1/stations/62304000/series");
    assert_eq!(series["element"], "level_m");
    assert_eq!(series["method"], "raw");
    let values: Vec<f64> = series["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p[1].as_f64().expect("value"))
        .collect();
    assert_eq!(values, [57.0, 58.2, 59.3]);
    assert_eq!(series["points"][2][0], (now - 600) * 1000);
    let rain = ok(&hw, "/api/v1/stations/62304000/series?element=rain_mm");
    assert_eq!(rain["points"][1][1], 2.5);
    let from = urlencoding::encode("2000-01-01T08:00:00+08:00").into_owned();
    let to = urlencoding::encode("2100-01-01T00:00:00Z").into_owned();
    let windowed = ok(
        &hw,
        &format!("/api/v1/stations/62304000/series?from={from}&to={to}"),
    );
    assert_eq!(windowed["points"].as_array().map(Vec::len), Some(3));
    assert!(windowed["from"]
        .as_str()
        .is_some_and(|f| f.starts_with("2000-01-01T08:00:00")));
    // A window before every reading is empty, not an error.
    let empty = ok(
        &hw,
        "/api/v1/stations/62304000/series?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
    );
    assert_eq!(empty["points"], json!([]));
    // Long ranges are downsampled and say how.
    let long = ok(
        &hw,
        &format!("/api/v1/stations/long/series?from={from}&to={to}"),
    );
    assert_eq!(long["method"], "mean");
    let n = long["points"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n > 0 && n <= 2000, "{n} points");
    assert!(long["bucket_s"].as_i64().is_some_and(|b| b > 0));
    let long_rain = ok(
        &hw,
        &format!("/api/v1/stations/long/series?element=rain_mm&from={from}&to={to}"),
    );
    assert_eq!(long_rain["method"], "sum");
    let total: f64 = long_rain["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p[1].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        (total - 1250.0).abs() < 1e-6,
        "rain is summed, not averaged: {total}"
    );
    let short = ok(&hw, "/api/v1/stations/long/series");
    assert_eq!(
        short["method"], "raw",
        "the default 24 h holds 1441 readings"
    );
    assert_eq!(short["points"].as_array().map(Vec::len), Some(1441));
    error(
        &hw,
        "/api/v1/stations/62304000/series?element=depth",
        400,
        "element",
    );
    error(
        &hw,
        "/api/v1/stations/62304000/series?from=yesterday",
        400,
        "from",
    );
    error(
        &hw,
        "/api/v1/stations/62304000/series?to=2021-13-45T00:00:00Z",
        400,
        "to",
    );
    error(
        &hw,
        "/api/v1/stations/62304000/series?from=2021-07-21T00:00:00Z&to=2021-07-20T00:00:00Z",
        400,
        "after",
    );

    // Alerts.
    let open = ok(&hw, "/api/v1/alerts?state=open");
    let stage = open
        .as_array()
        .expect("a list")
        .iter()
        .find(|a| a["station"] == "62304000" && a["rule"] == "stage")
        .unwrap_or_else(|| panic!("a stage alert: {open}"))
        .clone();
    assert_eq!(stage["stage"], "warning");
    assert_eq!(stage["open"], true);
    let states: Vec<&str> = stage["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states, ["firing", "escalated"], "{stage}");
    assert_eq!(ok(&hw, "/api/v1/alerts"), open, "state defaults to open");
    let all = ok(&hw, "/api/v1/alerts?state=all");
    assert!(all.as_array().map(Vec::len) >= open.as_array().map(Vec::len));
    let only_long = ok(&hw, "/api/v1/alerts?state=all&station=long");
    assert!(only_long
        .as_array()
        .expect("a list")
        .iter()
        .all(|a| a["station"] == "long"));
    error(&hw, "/api/v1/alerts?state=bogus", 400, "bogus");
    error(&hw, "/api/v1/alerts?station=nope", 404, "nope");
    let id = stage["alert_id"].as_str().expect("alert id");
    let one = ok(&hw, &format!("/api/v1/alerts/{id}"));
    assert_eq!(one["alert_id"], id);
    assert_eq!(one["events"].as_array().map(Vec::len), Some(2));
    error(
        &hw,
        "/api/v1/alerts/00000000-0000-0000-0000-000000000000",
        404,
        "alert",
    );

    // Acknowledgement: always the team token, never the read token.
    let (status, body) = ack(&hw, id, None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = ack(&hw, id, Some(READ_TOKEN));
    assert_eq!(status, 401, "the read token acknowledges nothing: {body}");
    let (status, body) = ack(&hw, id, Some(WEST_TOKEN));
    assert_eq!(status, 403, "{body}");
    let (status, body) = ack(&hw, "no-such-alert", Some(EAST_TOKEN));
    assert_eq!(status, 404, "{body}");
    let (status, event) = ack(&hw, id, Some(EAST_TOKEN));
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["state"], "acknowledged");
    assert_eq!(event["acknowledged_by"], "east");
    let (status, body) = ack(&hw, id, Some(EAST_TOKEN));
    assert_eq!(status, 409, "{body}");
    let acked = ok(&hw, &format!("/api/v1/alerts/{id}"));
    assert_eq!(acked["acknowledged_by"], "east");
    assert!(acked["acknowledged_at"].as_i64().is_some());

    // Dead letters.
    let dead = ok(&hw, "/api/v1/dead_letters");
    assert!(
        dead.as_array()
            .expect("a list")
            .iter()
            .any(|d| d["topic"] == "hydro/quiet/data"),
        "{dead}"
    );
    assert_eq!(ok(&hw, "/api/v1/dead_letters?limit=0"), json!([]));
    error(&hw, "/api/v1/dead_letters?limit=many", 400, "limit");

    // The read token guards every read, in a header (or the board's session cookie).
    for path in [
        "/api/v1/stations",
        "/api/v1/stations/62304000",
        "/api/v1/stations/62304000/series",
        "/api/v1/alerts",
        &format!("/api/v1/alerts/{id}"),
        "/api/v1/dead_letters",
        "/api/v1/events",
    ] {
        let (status, _, body) = exchange(port, "GET", path, &[]);
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert!(body.contains("read token"), "{body}");
        let (status, _, _) = exchange(port, "GET", path, &[("Authorization", "Bearer wrong")]);
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    // Not in the query: URLs land in server and proxy logs (see tests/perimeter.rs for the
    // board's session cookie and the legacy setting).
    let (status, _, _) = exchange(
        port,
        "GET",
        &format!("/api/v1/stations?token={READ_TOKEN}"),
        &[],
    );
    assert_eq!(status, 401);
}

/// Reads server-sent events until one of `kind` arrives; returns its data.
fn next_event(reader: &mut impl BufRead, kind: &str, deadline: Instant) -> Value {
    let mut event = String::new();
    loop {
        assert!(Instant::now() < deadline, "no `{kind}` event in time");
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read the event stream");
        assert!(n > 0, "the event stream closed");
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            if event == kind {
                return serde_json::from_str(data.trim()).expect("event data is JSON");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_readings_and_alert_events_and_reads_are_open_without_a_token() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(&config(&mqtt, None), Duration::from_secs(30));

    // No read token configured: reads are open (the office network).
    let (status, _, body) = exchange(hw.http_port(), "GET", "/api/v1/stations", &[]);
    assert_eq!(status, 200, "{body}");

    let mut stream = TcpStream::connect(("127.0.0.1", hw.http_port())).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    stream
        .write_all(
            b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
        )
        .expect("request");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    // The stream is subscribed once the response head is out; what is committed now arrives.
    let time = now_s() - 60;
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            json!({"time": time, "level_m": 59.5})
                .to_string()
                .into_bytes(),
        )],
    )
    .await;
    let (reading, alert) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let reading = next_event(&mut reader, "reading", deadline);
        let alert = next_event(&mut reader, "alert", deadline);
        (reading, alert)
    })
    .await
    .expect("join");
    assert_eq!(reading["type"], "reading");
    assert_eq!(reading["station"], "62304000");
    assert_eq!(reading["level_m"], 59.5);
    assert_eq!(reading["time"], time * 1000);
    assert_eq!(alert["type"], "alert");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["stage"], "warning");
    assert_eq!(alert["observed_at"], time * 1000);
}
