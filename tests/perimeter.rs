//! The perimeter, against the real binary: the embedded broker refuses anyone without the
//! configured credentials (plain and TLS) while hydrowatch's own source gets in with them;
//! the read token never needs to travel in a URL; `/metrics` can need it; failed token
//! checks from one address are slowed down; event streams are bounded, and one that falls
//! behind is told to resync.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

const READ_TOKEN: &str = "office-read";
const EAST_TOKEN: &str = "east-token";
const WEST_TOKEN: &str = "west-token";

/// A raw HTTP/1.0 exchange: (status, lower-cased head, body).
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
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

fn teams_and_station() -> String {
    format!(
        r#"[[teams]]
id = "east"
token = "{EAST_TOKEN}"

[[teams]]
id = "west"
token = "{WEST_TOKEN}"

[[stations]]
id = "62304000"
name = "横排头"
team = "east"
stages = {{ guard = 57.5, warning = 59.0 }}
"#
    )
}

// ---------------------------------------------------------------------------------------
// The embedded broker
// ---------------------------------------------------------------------------------------

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority and a server certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) {
    let p = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=hydrowatch test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(p("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("san.ext"))
        .arg("-out")
        .arg(p("server.crt")));
}

/// How the broker answered a CONNECT: `Ok(())` for a successful CONNACK, `Err(why)` for a
/// refusal (a CONNACK with an error code, or the connection closed without one).
async fn try_connect(
    port: u16,
    login: Option<(&str, &str)>,
    ca: Option<&Path>,
) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let mut options = MqttOptions::new(
        format!("perimeter-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        port,
    );
    options.set_keep_alive(Duration::from_secs(10));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    if let Some(ca) = ca {
        options.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Simple {
            ca: std::fs::read(ca).expect("CA file"),
            alpn: None,
            client_auth: None,
        }));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return if ack.code == ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("CONNACK {:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("the broker answers a CONNECT within 20 s");
    answer.map(|()| (client, eventloop))
}

/// Publishes one reading with QoS 1 on a connected client and waits for its PUBACK.
async fn publish_reading(
    (client, mut eventloop): (AsyncClient, rumqttc::EventLoop),
    time: i64,
    level: f64,
) {
    client
        .publish(
            "hydro/62304000/data",
            QoS::AtLeastOnce,
            false,
            json!({"time": time, "level_m": level}).to_string(),
        )
        .await
        .expect("queue the publish");
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("publishing: {e}"),
            }
        }
    })
    .await
    .expect("PUBACK within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_refuses_strangers_and_admits_its_users_plain_and_over_tls() {
    let secrets = tempfile::tempdir().unwrap();
    certificates(secrets.path());
    let password_file = secrets.path().join("broker-password");
    std::fs::write(&password_file, "gauge pass 1\n").unwrap();
    let plain = free_port();
    let tls = free_port();
    // Beyond loopback, with users, and a TLS listener; hydrowatch's own source has no
    // credentials of its own: it uses the broker's first user.
    let config = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{plain}"
client_id = "hw-perimeter-{{http_port}}"

[broker]
embedded = true
listen = "0.0.0.0:{plain}"
username = "gauges"
password_file = "{password_file}"
users = [{{ username = "county-dtu", password = "dtu pass 2" }}]
tls_listen = "127.0.0.1:{tls}"
tls_cert_file = "{dir}/server.crt"
tls_key_file = "{dir}/server.key"

[journal]
path = "{{dir}}/journal.db"

[http]
listen = "127.0.0.1:{{http_port}}"

{teams}"#,
        password_file = password_file.display(),
        dir = secrets.path().display(),
        teams = teams_and_station(),
    );
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    let ca = secrets.path().join("ca.crt");

    // Strangers: no login, a wrong password, an unknown user; plain and over TLS.
    for (port, tls_ca) in [(plain, None), (tls, Some(ca.as_path()))] {
        for login in [
            None,
            Some(("gauges", "wrong")),
            Some(("nobody", "gauge pass 1")),
        ] {
            let answer = try_connect(port, login, tls_ca).await;
            assert!(
                answer.is_err(),
                "port {port} (tls: {}) admitted {login:?}",
                tls_ca.is_some()
            );
        }
    }

    // Users: the inline one over plain MQTT, the listed one over TLS; both readings arrive.
    let now = now_s();
    let gauge = try_connect(plain, Some(("gauges", "gauge pass 1")), None)
        .await
        .unwrap_or_else(|e| panic!("the configured user is refused on the plain port: {e}"));
    publish_reading(gauge, now - 120, 57.1).await;
    let dtu = try_connect(tls, Some(("county-dtu", "dtu pass 2")), Some(&ca))
        .await
        .unwrap_or_else(|e| panic!("the listed user is refused over TLS: {e}"));
    publish_reading(dtu, now - 60, 57.3).await;
    let hw = tokio::task::spawn_blocking(move || {
        wait_until_msg(Duration::from_secs(20), "both readings stored", || {
            let (_, body) = hw.http_get("/api/v1/stations/62304000/series");
            body.contains("57.1") && body.contains("57.3")
        });
        hw
    })
    .await
    .expect("join");
    assert!(
        !hw.log().contains("gauge pass 1") && !hw.log().contains("dtu pass 2"),
        "passwords stay out of the log"
    );
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

fn http_config(mqtt: &Mosquitto, extra_http: &[&str]) -> String {
    let mut config = HwConfig::new(mqtt)
        .client_id("hw-perimeter")
        .http(&format!("read_token = \"{READ_TOKEN}\""));
    for line in extra_http {
        config = config.http(line);
    }
    config.body(&teams_and_station()).build()
}

#[test]
fn the_read_token_travels_in_a_header_or_a_session_cookie_never_in_a_url() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &http_config(&mqtt, &["metrics_need_token = true"]),
        Duration::from_secs(30),
    );
    let port = hw.http_port();

    // `?token=` is refused (it would land in access logs); the header works.
    let (status, _, body) = exchange(
        port,
        "GET",
        &format!("/api/v1/stations?token={READ_TOKEN}"),
        &[],
        "",
    );
    assert_eq!(
        status, 401,
        "a token in the URL must not be accepted: {body}"
    );
    let bearer = format!("Bearer {READ_TOKEN}");
    let (status, _, _) = exchange(
        port,
        "GET",
        "/api/v1/stations",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200);

    // The board signs in with the token in a POST body and gets an HttpOnly, SameSite=Strict
    // cookie, which opens reads and the event stream.
    let (status, _, body) = exchange(
        port,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &json!({"token": "guess"}).to_string(),
    );
    assert_eq!(status, 401, "{body}");
    let (status, head, body) = exchange(
        port,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &json!({"token": READ_TOKEN}).to_string(),
    );
    assert_eq!(status, 204, "{body}");
    let set_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("a session cookie: {head}"))
        .to_string();
    assert!(set_cookie.contains("httponly"), "{set_cookie}");
    assert!(set_cookie.contains("samesite=strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains(READ_TOKEN),
        "the cookie is not the token itself: {set_cookie}"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let (status, _, body) = exchange(port, "GET", "/api/v1/alerts", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{body}");
    let forged = "hydrowatch_session=00";
    let (status, _, _) = exchange(port, "GET", "/api/v1/alerts", &[("Cookie", forged)], "");
    assert_eq!(status, 401);

    // /metrics behind the read token when asked to.
    let (status, _, _) = exchange(port, "GET", "/metrics", &[], "");
    assert_eq!(status, 401);
    let (status, _, body) = exchange(port, "GET", "/metrics", &[("Authorization", &bearer)], "");
    assert_eq!(status, 200);
    assert!(body.contains("hydrowatch_"), "{body}");
    // Health stays open for probes.
    assert_eq!(exchange(port, "GET", "/healthz", &[], "").0, 200);
}

#[test]
fn the_legacy_query_token_works_only_when_switched_on() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &http_config(&mqtt, &["legacy_query_token = true"]),
        Duration::from_secs(30),
    );
    let (status, _, body) = exchange(
        hw.http_port(),
        "GET",
        &format!("/api/v1/stations?token={READ_TOKEN}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{body}");
    // Metrics stay open by default.
    assert_eq!(exchange(hw.http_port(), "GET", "/metrics", &[], "").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_acknowledgements_from_one_address_get_429() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &http_config(
            &mqtt,
            &["max_failed_auth = 4", "failed_auth_window = \"10m\""],
        ),
        Duration::from_secs(30),
    );
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            json!({"time": now_s() - 60, "level_m": 59.2})
                .to_string()
                .into_bytes(),
        )],
    )
    .await;
    let port = hw.http_port();
    let alert_id = tokio::task::spawn_blocking(move || {
        let mut id = String::new();
        wait_until_msg(Duration::from_secs(20), "the stage alert", || {
            let (_, alerts) = get_json_with_token(port, "/api/v1/alerts", READ_TOKEN);
            id = alerts[0]["alert_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !id.is_empty()
        });
        id
    })
    .await
    .expect("join");
    let ack = |token: &str| {
        let auth = format!("Bearer {token}");
        exchange(
            port,
            "POST",
            &format!("/api/v1/alerts/{alert_id}/ack"),
            &[("Authorization", &auth)],
            "",
        )
    };
    // Four failures: guesses (401) and the wrong team (403).
    for (token, expected) in [
        ("guess-1", 401),
        ("guess-2", 401),
        (WEST_TOKEN, 403),
        ("guess-3", 401),
    ] {
        let (status, _, body) = ack(token);
        assert_eq!(status, expected, "{token}: {body}");
    }
    // Now even the right token waits: a guesser must not learn which guess was right.
    let (status, head, body) = ack(EAST_TOKEN);
    assert_eq!(status, 429, "{body}");
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {head}"));
    assert!((1..=600).contains(&retry), "{retry}");
    assert!(body.contains("too many"), "{body}");
    // Wrong bearer read tokens are guesses too and are limited the same way; the board's
    // session cookie is not a guess.
    let (status, _, _) = exchange(
        port,
        "GET",
        "/api/v1/stations",
        &[("Authorization", "Bearer guess-4")],
        "",
    );
    assert_eq!(status, 429);
    let (status, _, _) = exchange(
        port,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &json!({"token": READ_TOKEN}).to_string(),
    );
    assert_eq!(status, 429, "sign-ins are limited too");
    // Nothing was acknowledged meanwhile.
    let (_, alert) = get_json_with_token(port, &format!("/api/v1/alerts/{alert_id}"), READ_TOKEN);
    assert!(alert["acknowledged_by"].is_null(), "{alert}");
}

/// Opens `/api/v1/events` with the read token and returns the stream after its head
/// (`Err(status)` when the server refused it).
fn open_events(port: u16) -> Result<BufReader<TcpStream>, u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {READ_TOKEN}\r\n\r\n"
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
        head.push_str(&line);
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    if status == 200 {
        Ok(reader)
    } else {
        Err(status)
    }
}

#[test]
fn event_streams_are_bounded() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &http_config(&mqtt, &["max_event_streams = 3"]),
        Duration::from_secs(30),
    );
    let port = hw.http_port();
    let open: Vec<_> = (0..3)
        .map(|i| open_events(port).unwrap_or_else(|s| panic!("stream {i}: {s}")))
        .collect();
    assert_eq!(open_events(port).err(), Some(503), "a fourth stream");
    // A closed stream gives its slot back.
    drop(open);
    wait_until_msg(Duration::from_secs(10), "a slot to be free again", || {
        open_events(port).is_ok()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_is_told_to_resync() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &http_config(&mqtt, &["event_buffer = 16"]),
        Duration::from_secs(30),
    );
    let port = hw.http_port();
    // A client that does not read while thousands of readings are committed: its socket
    // fills, the server cannot write, and the live stream leaves it more than 16 behind.
    let reader = open_events(port).expect("the event stream");
    // 20,000 one-minute readings ending an hour ago.
    let base = now_s() - 20_000 * 60 - 3600;
    let messages: Vec<(String, Vec<u8>)> = (0..4)
        .map(|m| {
            let readings: Vec<Value> = (0..5000)
                .map(|i| json!({"time": base + (m * 5000 + i) * 60, "level_m": 55.0 + (i % 50) as f64 * 0.01}))
                .collect();
            (
                "hydro/62304000/data".to_string(),
                json!({"station": "62304000", "readings": readings})
                    .to_string()
                    .into_bytes(),
            )
        })
        .collect();
    publish_all(mqtt.port(), messages).await;
    let last = (base + 19_999 * 60) * 1000;
    tokio::task::spawn_blocking(move || {
        wait_until_msg(Duration::from_secs(60), "every reading stored", || {
            let (_, s) = get_json_with_token(port, "/api/v1/stations/62304000", READ_TOKEN);
            s["status"]["level_time"].as_i64() == Some(last)
        });
        // Now read: somewhere in the stream is a `resync`, with how many updates it missed.
        let mut reader = reader;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut event = String::new();
        loop {
            assert!(Instant::now() < deadline, "no resync event");
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read the stream");
            assert!(n > 0, "the stream ended without a resync");
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "resync" {
                    let data: Value = serde_json::from_str(data.trim()).expect("JSON");
                    assert!(data["missed"].as_u64().is_some_and(|n| n > 0), "{data}");
                    return;
                }
            }
        }
    })
    .await
    .expect("join");
}
