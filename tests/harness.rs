//! Self-test of the integration-test harness in `tests/common`.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_publish_all_1000_qos1_and_subscribe() {
    let broker = Mosquitto::start(false);
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.port()));
    let mut sub = MqttSubscriber::connect(broker.port(), "hw/test/#").await;

    let msgs: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            (
                format!("hw/test/g{}", i % 7),
                format!("msg-{i}").into_bytes(),
            )
        })
        .collect();
    publish_all(broker.port(), msgs.clone()).await;

    let got = sub.recv_n(1000, Duration::from_secs(10)).await;
    let want: BTreeSet<_> = msgs.into_iter().collect();
    let got: BTreeSet<_> = got.into_iter().collect();
    assert_eq!(got, want);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sub.drain().is_empty(), "no duplicates expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_all_20000_and_1mb_payload() {
    let broker = Mosquitto::start(false);
    let mut sub = MqttSubscriber::connect(broker.port(), "big/#").await;
    let msgs: Vec<(String, Vec<u8>)> = (0..20_000)
        .map(|i| ("big/many".to_string(), i.to_string().into_bytes()))
        .collect();
    let t = std::time::Instant::now();
    publish_all(broker.port(), msgs).await;
    eprintln!("publish_all 20000 QoS1: {:?}", t.elapsed());
    let got = sub.recv_n(20_000, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 20_000);

    let big = vec![b'x'; 1024 * 1024];
    publish_all(broker.port(), vec![("big/one".into(), big.clone())]).await;
    let got = sub.recv_n(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].0, "big/one");
    assert_eq!(got[0].1, big);
}

/// Connect with a fixed client id and clean_session=false; return session_present.
async fn persistent_connect(
    port: u16,
    id: &str,
    subscribe: Option<&str>,
    recv: usize,
) -> (bool, Vec<Vec<u8>>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(false);
    let (client, mut el) = AsyncClient::new(o, 100);
    let session_present = loop {
        if let Event::Incoming(Packet::ConnAck(a)) = el.poll().await.expect("connect") {
            break a.session_present;
        }
    };
    if let Some(f) = subscribe {
        client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
                break;
            }
        }
    }
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < recv {
            if let Event::Incoming(Packet::Publish(p)) = el.poll().await.unwrap() {
                got.push(p.payload.to_vec());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("received only {}/{recv} queued messages", got.len()));
    // Give the PubAcks a moment to be flushed, then disconnect.
    client.disconnect().await.unwrap();
    loop {
        match el.poll().await {
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
            _ => {}
        }
    }
    (session_present, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_without_persistence_forgets_sessions() {
    let mut broker = Mosquitto::start(false);
    let port = broker.port();
    let (sp, _) = persistent_connect(port, "hw-np", Some("np/#"), 0).await;
    assert!(!sp);
    let (sp, _) = persistent_connect(port, "hw-np", None, 0).await;
    assert!(sp, "session kept while broker runs");

    tokio::task::block_in_place(|| broker.restart());
    assert_eq!(broker.port(), port);
    let (sp, _) = persistent_connect(port, "hw-np", None, 0).await;
    assert!(
        !sp,
        "non-persistent broker must forget sessions across restart"
    );

    // kill() + restart() also works.
    broker.kill();
    tokio::task::block_in_place(|| broker.restart());
    publish_all(port, vec![("np/x".into(), b"1".to_vec())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_persistent_queue_survives_restart() {
    let mut broker = Mosquitto::start(true);
    let port = broker.port();
    persistent_connect(port, "hw-p", Some("p/#"), 0).await;
    // Subscriber offline: 5000 messages (> mosquitto's default 1000 queue limit).
    let msgs: Vec<_> = (0..5000)
        .map(|i| ("p/q".to_string(), format!("{i}").into_bytes()))
        .collect();
    publish_all(port, msgs).await;
    tokio::task::block_in_place(|| broker.restart()); // SIGTERM saves the DB
    let (sp, got) = persistent_connect(port, "hw-p", None, 5000).await;
    assert!(sp, "persistent broker must remember the session");
    let got: BTreeSet<u32> = got
        .iter()
        .map(|p| std::str::from_utf8(p).unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, (0..5000).collect());
}

#[test]
fn influx_write_query_count_and_restart_keeps_data() {
    let mut influx = Influx::start();
    assert_eq!(influx.url(), format!("http://127.0.0.1:{}", influx.port()));
    influx.create_database("hw");
    assert_eq!(
        influx.count("hw", "SELECT count(level_m) FROM water_level"),
        0,
        "no series yet"
    );

    let lines = "water_level,gauge=g1 level_m=1.25 1700000000000\n\
                 water_level,gauge=g1 level_m=1.5 1700000060000\n\
                 water_level,gauge=g2 level_m=-0.75 1700000120000\n";
    let (st, body) = influx.write_lines("hw", "ms", lines);
    assert_eq!(st, 204, "write: {body}");

    let check = |influx: &Influx| {
        let rows = influx.rows("hw", "SELECT level_m, gauge FROM water_level ORDER BY time");
        assert_eq!(
            rows,
            vec![
                vec![
                    serde_json::json!(1700000000000u64),
                    serde_json::json!(1.25),
                    serde_json::json!("g1")
                ],
                vec![
                    serde_json::json!(1700000060000u64),
                    serde_json::json!(1.5),
                    serde_json::json!("g1")
                ],
                vec![
                    serde_json::json!(1700000120000u64),
                    serde_json::json!(-0.75),
                    serde_json::json!("g2")
                ],
            ]
        );
        assert_eq!(
            influx.count("hw", "SELECT count(level_m) FROM water_level"),
            3
        );
        assert_eq!(
            influx.count(
                "hw",
                "SELECT count(level_m) FROM water_level WHERE gauge = 'g1'"
            ),
            2
        );
        let v = influx.query("hw", "SELECT sum(level_m) FROM water_level");
        assert_eq!(
            v["results"][0]["series"][0]["values"][0][1].as_f64(),
            Some(2.0)
        );
    };
    check(&influx);

    let port = influx.port();
    influx.stop();
    assert!(
        http_request(port, "GET", "/ping", b"", &[]).is_err(),
        "stopped"
    );
    influx.start_again();
    assert_eq!(influx.port(), port);
    check(&influx);
}

#[test]
fn influx_query_errors_panic_clearly() {
    let influx = Influx::start();
    let r = std::panic::catch_unwind(|| influx.query("nope", "SELECT * FROM x"));
    assert!(r.is_err(), "query against a missing database must panic");
    // Missing measurement in an existing database: count is 0.
    influx.create_database("empty");
    assert_eq!(
        influx.count("empty", "SELECT count(level_m) FROM water_level"),
        0
    );
}

/// The blocking HTTP client against an axum (hyper) server, like hydrowatch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_against_axum() {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: String| async move { (axum::http::StatusCode::CREATED, body) }),
        )
        .route("/big", get(|| async { "y".repeat(1 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (a, b, c, d) = tokio::task::spawn_blocking(move || {
        (
            http_get(port, "/readyz"),
            http_post(
                port,
                "/echo",
                b"{\"a\":1}",
                &[("Content-Type", "application/json")],
            ),
            http_get(port, "/missing"),
            http_get(port, "/big"),
        )
    })
    .await
    .unwrap();
    assert_eq!(a, (200, "ok".to_string()));
    assert_eq!(b, (201, "{\"a\":1}".to_string()));
    assert_eq!(c.0, 404);
    assert_eq!(d.1.len(), 1 << 20);
}

/// Until the binary is written (and afterwards, for an invalid config),
/// `wait_ready` must fail fast with a clear message instead of hanging.
#[test]
#[should_panic(expected = "hydrowatch exited")]
fn hydrowatch_wait_ready_panics_when_process_exits() {
    let mut h = Hydrowatch::start("this is [not valid toml\ndir = \"{dir}\"\nport = {http_port}\n");
    let cfg = std::fs::read_to_string(h.config_path()).unwrap();
    assert!(
        cfg.contains(&h.dir().display().to_string()) && cfg.contains(&h.http_port().to_string())
    );
    h.wait_ready(Duration::from_secs(10));
}

#[test]
fn wait_until_works_and_panics() {
    let mut n = 0;
    wait_until(Duration::from_secs(1), || {
        n += 1;
        n >= 3
    });
    let r =
        std::panic::catch_unwind(|| wait_until_msg(Duration::from_millis(50), "never", || false));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("never"), "{msg}");
}
