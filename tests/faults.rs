//! Ordinary faults that must not stop or wedge hydrowatch, each against the real binary, a
//! real Mosquitto and (where it matters) a real InfluxDB: an oversized message, contention
//! on the journal, a journal whose disk is full, garbage that would fill the disk, and an
//! InfluxDB 2 endpoint that never answers.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn metric(hw: &Hydrowatch, name: &str) -> f64 {
    let (_, text) = hw.http_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn json(hw: &Hydrowatch, path: &str) -> Value {
    let (status, body) = hw.http_get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn reading(station: &str, time_s: i64, level: f64) -> (String, Vec<u8>) {
    (
        format!("hydro/{station}/data"),
        format!(r#"{{"time":{time_s},"level_m":{level}}}"#).into_bytes(),
    )
}

/// How many distinct readings the journal at `path` holds (read beside the daemon, as any
/// SQLite reader may).
fn journal_count(path: &std::path::Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the journal");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// How many readings the daemon's journal holds.
fn stored(hw: &Hydrowatch) -> usize {
    journal_count(
        &hw.dir().join("journal.db"),
        "SELECT count(*) FROM readings",
    ) as usize
}

const ONE_STATION: &str = r#"
[[stations]]
id = "S1"
name = "Station 1"
stages = { guard = 10.0, warning = 11.0 }
"#;

// ---------------------------------------------------------------------------
// 1. An oversized message is dead-lettered and acknowledged; ingestion goes on.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_dead_lettered_and_ingestion_goes_on() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt).body(ONE_STATION).build(),
        Duration::from_secs(30),
    );
    // 1.2 MB: over the 1 MiB payload limit, within what the client accepts.
    let big: Vec<u8> = (0..1_200_000).map(|i| b'a' + (i % 26) as u8).collect();
    // 5 MiB: over the client's ceiling too, from a broker that caps nothing.
    let huge = vec![b'x'; 5 << 20];
    let t = now_s() - 600;
    publish_all(
        mqtt.port(),
        vec![
            reading("S1", t, 1.0),
            ("hydro/S1/data".into(), big.clone()),
            reading("S1", t + 60, 2.0),
            ("hydro/S1/data".into(), huge.clone()),
            reading("S1", t + 120, 3.0),
        ],
    )
    .await;
    wait_until_async(
        Duration::from_secs(30),
        "the readings around both big messages",
        || stored(&hw) == 3,
    )
    .await;
    // Both dead-lettered (a message redelivered across the reconnect may be recorded twice:
    // delivery is at least once), each as its first 4 KiB with its length and hash.
    let letters = json(&hw, "/api/v1/dead_letters");
    let letters = letters.as_array().expect("array").clone();
    let mut hashes: Vec<&str> = letters
        .iter()
        .map(|l| l["payload_sha256"].as_str().unwrap())
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 2, "{letters:?}");
    for payload in [&big, &huge] {
        let sha = hex::encode(Sha256::digest(payload));
        let letter = letters
            .iter()
            .find(|l| l["payload_sha256"] == sha.as_str())
            .expect("a dead letter for each big message");
        assert_eq!(letter["cause"], "too_large");
        assert_eq!(letter["payload_bytes"], payload.len());
        assert_eq!(letter["truncated"], true);
        assert_eq!(letter["payload"].as_str().unwrap().len(), 4096);
    }
    let before_restart = letters.len();
    // Acknowledged: a restart does not bring them back from the broker.
    let mut hw = hw;
    hw.stop();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    publish_all(mqtt.port(), vec![reading("S1", t + 180, 4.0)]).await;
    wait_until_async(
        Duration::from_secs(20),
        "the reading after the restart",
        || stored(&hw) == 4,
    )
    .await;
    assert_eq!(
        json(&hw, "/api/v1/dead_letters").as_array().unwrap().len(),
        before_restart,
        "acknowledged: nothing redelivered after a clean restart"
    );
}

/// The shipped Mosquitto configuration caps packets at what hydrowatch accepts with its
/// default limits, and a broker so configured refuses a larger message at the publisher
/// while hydrowatch carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_broker_cap_matches_the_client_and_protects_it() {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/mosquitto.conf"
    ))
    .expect("deploy/mosquitto.conf");
    let cap: usize = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("max_packet_size"))
        .and_then(|v| v.trim().parse().ok())
        .expect("deploy/mosquitto.conf sets max_packet_size");
    let defaults = hydrowatch::config::load_from_str("").expect("defaults");
    assert_eq!(cap, defaults.limits.max_packet_bytes());

    let mqtt = Mosquitto::start_with(false, |_| format!("max_packet_size {cap}"));
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt).body(ONE_STATION).build(),
        Duration::from_secs(30),
    );
    let t = now_s() - 600;
    // Mosquitto disconnects a publisher that exceeds the cap; the message never reaches
    // hydrowatch. A separate connection for each, so the refusal does not take the rest.
    let over = tokio::time::timeout(
        Duration::from_secs(10),
        publish_all(
            mqtt.port(),
            vec![("hydro/S1/data".into(), vec![b'x'; cap + 1])],
        ),
    );
    let refused = tokio::spawn(over);
    let _ = refused.await; // refused or timed out: either way it is not delivered
    publish_all(mqtt.port(), vec![reading("S1", t, 1.0)]).await;
    wait_until_async(
        Duration::from_secs(20),
        "the reading after the refused message",
        || stored(&hw) == 1,
    )
    .await;
    assert!(json(&hw, "/api/v1/dead_letters")
        .as_array()
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// 2. Contention on the journal never fails a commit.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_on_the_journal_never_stops_the_writer() {
    let mqtt = Mosquitto::start(false);
    let influx = Influx::start();
    influx.create_database("hydro");
    let rx = receiver::Receiver::start().await;
    let mut stations = String::new();
    for i in 0..50 {
        stations.push_str(&format!(
            "[[stations]]\nid = \"s{i}\"\nteam = \"east\"\nstages = {{ guard = 10.0, warning = 11.0, guaranteed = 12.0 }}\n\n"
        ));
    }
    let body = format!(
        r#"
[[teams]]
id = "east"
token = "east-token"
renotify = "2s"
  [[teams.channels]]
  kind = "webhook"
  url = "{url}/east"
  [[teams.escalation]]
  after = "2s"
  team = "county"

[[teams]]
id = "county"
token = "county-token"
renotify = "2s"
  [[teams.channels]]
  kind = "webhook"
  url = "{url}/county"

{stations}"#,
        url = rx.url("")
    );
    let mut hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .influx_v1(&influx, "hydro")
            .influxdb(r#"flush_interval = "10ms""#)
            .influxdb("batch_size = 50")
            // Half the acknowledgements below are refused (403) on purpose: not an attack.
            .http("max_failed_auth = 100000")
            .body(&body)
            .build(),
        Duration::from_secs(30),
    );
    // Every station over its guard stage: 50 open alerts, reminders and escalations every
    // two seconds, each an outbox row the dispatcher marks delivered.
    let t0 = now_s() - 2 * 86_400;
    let first: Vec<_> = (0..50)
        .map(|i| reading(&format!("s{i}"), t0, 10.5))
        .collect();
    publish_all(mqtt.port(), first).await;
    wait_until_async(Duration::from_secs(20), "50 open alerts", || {
        json(&hw, "/api/v1/alerts?state=open")
            .as_array()
            .unwrap()
            .len()
            == 50
    })
    .await;
    // Readings stream in while the forwarder drains them to InfluxDB, the dispatcher
    // delivers, and teams acknowledge over HTTP.
    let alerts: Vec<String> = json(&hw, "/api/v1/alerts?state=open")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    let port = hw.http_port();
    let acks = tokio::task::spawn_blocking(move || {
        for (i, id) in alerts.iter().enumerate() {
            let token = if i % 2 == 0 {
                "east-token"
            } else {
                "county-token"
            };
            let auth = format!("Bearer {token}");
            let (status, body) = http_post(
                port,
                &format!("/api/v1/alerts/{id}/ack"),
                b"",
                &[("Authorization", &auth)],
            );
            assert!(
                matches!(status, 200 | 403 | 409),
                "acknowledging {id}: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut sent = 50;
    for round in 1..=160_i64 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let level = 10.5 + 0.01 * ((round + i) % 30) as f64;
                reading(&format!("s{i}"), t0 + round * 30, level)
            })
            .collect();
        sent += batch.len();
        publish_all(mqtt.port(), batch).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            hw.exited().is_none(),
            "hydrowatch exited:\n{}",
            tail(&hw.log(), 40)
        );
    }
    acks.await.expect("acknowledgements");
    wait_until_async(
        Duration::from_secs(30),
        &format!("all {sent} readings stored"),
        || stored(&hw) == sent,
    )
    .await;
    wait_until_async(Duration::from_secs(30), "every reading in InfluxDB", || {
        influx.count("hydro", "SELECT count(level_m) FROM water_level") as usize == sent
    })
    .await;
    assert!(hw.exited().is_none(), "{}", tail(&hw.log(), 40));
    assert!(
        !hw.log().contains("journal writer failed"),
        "{}",
        tail(&hw.log(), 40)
    );
    assert_eq!(metric(&hw, "hydrowatch_journal_write_errors_total"), 0.0);
}

// ---------------------------------------------------------------------------
// 3. Garbage cannot fill the disk: dead letters are truncated, capped and paged.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_bounded_redacted_and_paged() {
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .mqtt(r#"ack_topic = "hydro/ack""#)
            .body(&format!(
                "[limits]\nmax_dead_letters = 1500\n\n[[teams]]\nid = \"east\"\ntoken = \"the-real-token\"\n{ONE_STATION}team = \"east\"\n"
            ))
            .build(),
        Duration::from_secs(30),
    );
    // 2,000 bad messages of 20 KB each, then an acknowledgement with a wrong token.
    let garbage: Vec<_> = (0..2000)
        .map(|i| {
            let mut p = format!("garbage {i} ").into_bytes();
            p.resize(20_000, b'#');
            ("hydro/S1/data".to_string(), p)
        })
        .collect();
    publish_all(mqtt.port(), garbage).await;
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/ack/some-alert".into(),
            br#"{"team":"east","token":"guessed-secret-123"}"#.to_vec(),
        )],
    )
    .await;
    wait_until_async(Duration::from_secs(60), "2001 dead letters counted", || {
        metric(&hw, "hydrowatch_dead_letters_total") == 2001.0
    })
    .await;

    // The newest is the refused acknowledgement, without its token.
    let newest = json(&hw, "/api/v1/dead_letters?limit=1");
    let newest = &newest[0];
    assert_eq!(newest["cause"], "unauthorized");
    let text = newest["payload"].as_str().unwrap();
    assert!(!text.contains("guessed-secret"), "token stored: {text}");
    assert!(text.contains("[redacted]"), "{text}");

    // Pages of at most 1000, newest first, 1500 kept in all, oldest deleted first.
    let (status, body) = hw.http_get("/api/v1/dead_letters?limit=5000");
    assert_eq!(status, 200);
    let first: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(first.len(), 1000, "a page holds at most 1000");
    let last_id = first.last().unwrap()["id"].as_i64().unwrap();
    let second = json(
        &hw,
        &format!("/api/v1/dead_letters?limit=1000&before={last_id}"),
    );
    let second = second.as_array().unwrap();
    assert_eq!(second.len(), 500, "1500 kept in all");
    let oldest_kept = second.last().unwrap()["payload"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(oldest_kept.starts_with("garbage 501 "), "{oldest_kept:.40}");
    for letter in first.iter().skip(1).chain(second) {
        assert_eq!(letter["payload_bytes"], 20_000);
        assert_eq!(letter["payload"].as_str().unwrap().len(), 4096);
    }
    // The journal holds the kept heads, not two thousand whole payloads (40 MB).
    let db = std::fs::metadata(hw.dir().join("journal.db"))
        .unwrap()
        .len()
        + std::fs::metadata(hw.dir().join("journal.db-wal")).map_or(0, |m| m.len());
    assert!(db < 20_000_000, "journal is {db} bytes");
    let (status, _) = hw.http_get("/api/v1/dead_letters?limit=ten");
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------
// 4. A full disk pauses ingestion; it resumes by itself with nothing lost or doubled.
// ---------------------------------------------------------------------------

/// A small tmpfs mounted for the test's journal (needs root, as CI has).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new().prefix("hw-disk-").tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills what is left with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_ingestion_and_it_resumes_with_nothing_lost_or_doubled() {
    let root = unsafe { libc_geteuid() } == 0;
    let Some(disk) = SmallDisk::mount("24m") else {
        assert!(!root, "running as root, yet a tmpfs cannot be mounted");
        eprintln!("skipped: mounting a small disk needs root");
        return;
    };
    let mqtt = Mosquitto::start(false);
    let journal = disk.path().join("journal.db");
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .journal(&journal.display().to_string())
            .body(ONE_STATION)
            .build(),
        Duration::from_secs(30),
    );
    let t0 = now_s() - 86_400;
    publish_all(mqtt.port(), vec![reading("S1", t0, 5.0)]).await;
    let stored = || journal_count(&journal, "SELECT count(*) FROM readings") as usize;
    wait_until_async(Duration::from_secs(20), "the first reading", || {
        stored() == 1
    })
    .await;
    let pid = hw.pid();

    let filler = disk.fill();
    // Readings that cross the guard stage while the disk is full: one alert must fire,
    // once, after the disk has room again. 3,000 readings in 30 messages, so the writes
    // outgrow what the journal's files already hold.
    let messages: Vec<_> = (0..30)
        .map(|m| {
            let readings: Vec<String> = (0..100)
                .map(|i| {
                    let n = m * 100 + i + 1;
                    let level = if n == 1500 {
                        10.5
                    } else {
                        5.0 + (n % 7) as f64 * 0.01
                    };
                    format!(r#"{{"time":{},"level_m":{level}}}"#, t0 + n * 10)
                })
                .collect();
            (
                "hydro/S1/data".to_string(),
                format!("[{}]", readings.join(",")).into_bytes(),
            )
        })
        .collect();
    let publishing = tokio::spawn(publish_all(mqtt.port(), messages));
    wait_until_async(Duration::from_secs(30), "a journal write error", || {
        metric(&hw, "hydrowatch_journal_write_errors_total") > 0.0
    })
    .await;
    let (status, body) = hw.http_get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("journal"), "{body}");
    let stored_while_full = stored();
    assert!(
        stored_while_full < 3001,
        "everything stored on a full disk?"
    );

    // Room again: everything arrives, the alert fires exactly once, same process.
    std::fs::remove_file(filler).unwrap();
    publishing.await.unwrap();
    wait_until_async(Duration::from_secs(60), "all 3001 readings", || {
        stored() == 3001
    })
    .await;
    wait_until_async(Duration::from_secs(10), "ready again", || {
        hw.http_get("/readyz").0 == 200
    })
    .await;
    assert_eq!(hw.pid(), pid);
    let mut hw = hw;
    assert!(hw.exited().is_none());
    let alerts = json(&hw, "/api/v1/alerts?state=all");
    let alerts = alerts.as_array().unwrap();
    let stage: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "stage").collect();
    assert_eq!(stage.len(), 1, "{alerts:?}");
    let firing = stage[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "firing")
        .count();
    assert_eq!(
        firing, 1,
        "the alert fired exactly once: {:?}",
        stage[0]["events"]
    );
    assert_eq!(
        metric(&hw, "hydrowatch_alert_events_total"),
        stage[0]["events"].as_array().unwrap().len() as f64
    );
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

// ---------------------------------------------------------------------------
// 5. An InfluxDB 2 that never answers counts as down.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxdb2_that_never_answers_counts_as_down() {
    let mqtt = Mosquitto::start(false);
    let hung =
        receiver::Receiver::scripted(vec![receiver::Reply::Hang(Duration::from_secs(3600))]).await;
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .influxdb(&format!(r#"url = "{}""#, hung.url("")))
            .influxdb(r#"api = "v2""#)
            .influxdb(r#"org = "o""#)
            .influxdb(r#"bucket = "b""#)
            .influxdb(r#"token = "t""#)
            .influxdb(r#"timeout = "1s""#)
            .body(ONE_STATION)
            .build(),
        Duration::from_secs(30),
    );
    hung.set_status(204);
    publish_all(mqtt.port(), vec![reading("S1", now_s() - 60, 1.0)]).await;
    // The first write hangs; after the timeout it counts as a failure, and the retry (which
    // the receiver answers) delivers the batch.
    wait_until_async(Duration::from_secs(20), "a second write attempt", || {
        hung.all().len() >= 2
    })
    .await;
    wait_until_async(Duration::from_secs(10), "the batch accepted", || {
        hung.all().iter().any(|d| d.accepted) && metric(&hw, "hydrowatch_influxdb_up") == 1.0
    })
    .await;
    assert!(
        hw.log().contains("no answer within 1s"),
        "{}",
        tail(&hw.log(), 20)
    );
}

// ---------------------------------------------------------------------------
// 6. The simulator's publisher never hangs when the broker restarts without its state.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_finishes_after_a_broker_restart_without_state() {
    let mut mqtt = Mosquitto::start(false);
    let url = mqtt.url();
    let mut publisher = hydrowatch::sim::publish::Publisher::connect(&url)
        .await
        .expect("connect");
    for i in 0..1000 {
        publisher
            .publish_raw("sim/t".into(), format!("{i}").into_bytes())
            .await
            .expect("queued");
    }
    // The broker goes away with messages outstanding, and comes back knowing nothing of
    // this client: rumqttc drops what it held for the lost session.
    tokio::task::block_in_place(|| mqtt.stop());
    // More messages while it is away. Publishing may block (the client's queue is full
    // when the broker acknowledged little before it went: back-pressure), so it runs
    // beside the broker's return, as a replay would.
    let more = tokio::spawn(async move {
        for i in 1000..1500 {
            publisher
                .publish_raw("sim/t".into(), format!("{i}").into_bytes())
                .await
                .expect("queued");
        }
        publisher
    });
    tokio::time::sleep(Duration::from_millis(1500)).await; // a failed reconnect or two
    tokio::task::block_in_place(|| mqtt.restart());
    let publisher = tokio::time::timeout(Duration::from_secs(60), more)
        .await
        .expect("publishing resumes when the broker is back")
        .expect("publishing task");
    let finished = tokio::time::timeout(Duration::from_secs(60), publisher.finish()).await;
    // Finished means every message, those held when the session was lost included, has a
    // PubAck from a broker.
    assert_eq!(
        finished.expect("finish never hangs").expect("finished"),
        1500
    );
}

// ---------------------------------------------------------------------------
// 7. A message the journal refuses for good is isolated, not retried forever.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_journal_refuses_is_isolated_and_the_rest_go_on() {
    let mqtt = Mosquitto::start(false);
    let body = format!("{ONE_STATION}\n[[stations]]\nid = \"S2\"\n");
    let mut hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt).body(&body).build(),
        Duration::from_secs(30),
    );
    hw.stop();
    // A fault hydrowatch cannot foresee: the journal refuses every reading of S2 (what a
    // constraint, a corrupt index or a bug would do). Retrying cannot help.
    let path = hw.dir().join("journal.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_s2 BEFORE INSERT ON readings WHEN NEW.station = 'S2'
             BEGIN SELECT RAISE(ABORT, 'S2 refused'); END;",
        )
        .unwrap();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    let t = now_s() - 600;
    let messages: Vec<_> = (0..20)
        .map(|i| reading(if i == 7 { "S2" } else { "S1" }, t + i, 1.0))
        .collect();
    publish_all(mqtt.port(), messages).await;
    wait_until_async(Duration::from_secs(30), "the 19 good readings", || {
        journal_count(&path, "SELECT count(*) FROM readings WHERE station = 'S1'") == 19
    })
    .await;
    wait_until_async(
        Duration::from_secs(10),
        "the refused one as a dead letter",
        || {
            json(&hw, "/api/v1/dead_letters")
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["cause"] == "unstorable" && l["topic"] == "hydro/S2/data")
        },
    )
    .await;
    assert!(hw.exited().is_none());
    assert_eq!(hw.http_get("/readyz").0, 200);
}

// ---------------------------------------------------------------------------
// 8. InfluxDB refusing points (a field type conflict) does not wedge forwarding.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_refusing_points_does_not_wedge_forwarding() {
    let mqtt = Mosquitto::start(false);
    let influx = Influx::start();
    influx.create_database("hydro");
    let t0 = now_s() - 60 * 86_400;
    // Someone wrote level_m as a string into this week's shard: InfluxDB answers 400 to
    // hydrowatch's float for the same field there.
    let (status, body) = influx.write_lines(
        "hydro",
        "s",
        &format!("water_level,station=S1 level_m=\"broken\" {t0}"),
    );
    assert_eq!(status, 204, "{body}");
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .influx_v1(&influx, "hydro")
            .influxdb(r#"flush_interval = "20ms""#)
            .body(ONE_STATION)
            .build(),
        Duration::from_secs(30),
    );
    publish_all(mqtt.port(), vec![reading("S1", t0 + 60, 1.0)]).await;
    wait_until_async(Duration::from_secs(20), "the refused batch counted", || {
        metric(&hw, "hydrowatch_forward_rejected_total") >= 1.0
    })
    .await;
    // A month later, another shard: forwarding goes on.
    publish_all(mqtt.port(), vec![reading("S1", t0 + 30 * 86_400, 2.0)]).await;
    wait_until_async(
        Duration::from_secs(20),
        "the next reading in InfluxDB",
        || {
            influx.count(
                "hydro",
                "SELECT count(level_m) FROM water_level WHERE level_m = 2.0",
            ) == 1
        },
    )
    .await;
    assert_eq!(stored(&hw), 2, "both stay in the journal");
}

// ---------------------------------------------------------------------------
// 10. A backlog that takes longer to drain than two keep-alive periods: the broker answers
//     a ping only after the messages queued before it (Mosquitto 2.0 does), so a late
//     PINGRESP while messages keep arriving is not a dead connection.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backlog_drains_on_one_connection() {
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .mqtt(r#"keep_alive = "5s""#)
        .body(ONE_STATION)
        .build();
    // The first start creates the persistent session; the messages then wait at the broker.
    let mut hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    hw.stop();
    // A journal slowed down (what a busy disk does): every reading costs a join of 48,400
    // rows, so the backlog takes many keep-alive periods to drain.
    let path = hw.dir().join("journal.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE slow(x INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 220)
             INSERT INTO slow SELECT i FROM n;
             CREATE TRIGGER slow_down AFTER INSERT ON readings
             BEGIN SELECT count(*) FROM slow a, slow b WHERE a.x + b.x > NEW.level_m; END;",
        )
        .unwrap();
    let total = 10_000;
    let t = now_s() - 86_400;
    let messages: Vec<_> = (0..total).map(|i| reading("S1", t + i, 1.0)).collect();
    publish_all(mqtt.port(), messages).await;

    let started = std::time::Instant::now();
    hw.restart();
    wait_until_async(Duration::from_secs(240), "the backlog stored", || {
        stored(&hw) == total as usize
    })
    .await;
    let drained = started.elapsed();
    // Reconnections would deliver again what was in flight: every message exactly once.
    let received = metric(&hw, "hydrowatch_messages_received_total");
    let log = hw.log();
    assert!(
        drained > Duration::from_secs(12),
        "the test needs a backlog longer than two keep-alive periods; it drained in {drained:?}"
    );
    assert!(
        !log.contains("lost the MQTT connection"),
        "the connection dropped while draining ({drained:?}): {}",
        tail(&log, 20)
    );
    assert_eq!(received, total as f64, "deliveries of {total} messages");
}

// ---------------------------------------------------------------------------
// 11. Readers that never let go (the forwarder, the API, Grafana's SQLite plugin, a backup)
//     must not let the write-ahead log grow without bound: SQLite restarts the log only when
//     a checkpoint has caught up with no reader in it, which a busy journal may never see.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_constant_readers() {
    let mqtt = Mosquitto::start(false);
    let body = ONE_STATION;
    let hw = Hydrowatch::start_ready(
        &HwConfig::new(&mqtt)
            .journal_line("max_wal_bytes = 1048576")
            .body(body)
            .build(),
        Duration::from_secs(30),
    );
    let path = hw.dir().join("journal.db");
    let wal = hw.dir().join("journal.db-wal");
    // Two readers in turn, so that one always holds a snapshot.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                std::thread::sleep(Duration::from_millis(7 * i));
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    conn.execute_batch("BEGIN").unwrap();
                    let _: i64 = conn
                        .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(15));
                    conn.execute_batch("COMMIT").unwrap();
                }
            })
        })
        .collect();
    let t = now_s() - 86_400;
    let mut largest = 0_u64;
    let per_message = 100;
    let rounds = 10;
    for round in 0..rounds {
        let messages: Vec<_> = (0..50)
            .map(|m| {
                let base = t + (round * 50 + m) * per_message;
                let readings: Vec<String> = (0..per_message)
                    .map(|k| format!(r#"{{"time":{},"level_m":1.5}}"#, base + k))
                    .collect();
                (
                    "hydro/S1/data".to_string(),
                    format!("[{}]", readings.join(",")).into_bytes(),
                )
            })
            .collect();
        publish_all(mqtt.port(), messages).await;
        let expected = ((round + 1) * 50 * per_message) as usize;
        wait_until_async(Duration::from_secs(60), "the round stored", || {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            stored(&hw) == expected
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    // Give the writer one more check of its log after the last commit.
    wait_until_async(
        Duration::from_secs(20),
        "the log truncated (limit 1 MiB)",
        || {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            std::fs::metadata(&wal).map_or(0, |m| m.len()) <= 4 << 20
        },
    )
    .await;
    assert!(
        largest <= 8 << 20,
        "the write-ahead log reached {largest} bytes with a limit of 1 MiB"
    );
}

// ---------------------------------------------------------------------------
// 12. Under a flood, acknowledgements keep pace with the journal: a crash at any moment makes
//     the broker deliver again only the messages committed in the last moments (at most the
//     writer's last group or two, 513 messages each), not everything committed since the
//     flood began.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_under_a_flood_redelivers_only_the_last_commits() {
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt).body(ONE_STATION).build();
    // The first start creates the persistent session; the flood then waits at the broker.
    let mut hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    hw.stop();
    let total = 60_000_usize;
    let t = now_s() - 7 * 86_400;
    let messages: Vec<_> = (0..total as i64)
        .map(|i| reading("S1", t + i, 1.0))
        .collect();
    publish_all(mqtt.port(), messages).await;

    hw.restart();
    wait_until_async(
        Duration::from_secs(240),
        "a third of the flood stored",
        || stored(&hw) >= total / 3,
    )
    .await;
    hw.kill9();
    let committed = stored(&hw);
    assert!(
        committed < total,
        "the crash must come mid-flood: {committed} of {total} stored"
    );

    hw.restart();
    wait_until_async(
        Duration::from_secs(240),
        "the rest of the flood stored",
        || stored(&hw) == total,
    )
    .await;
    let received = metric(&hw, "hydrowatch_messages_received_total") as usize;
    let again = received.saturating_sub(total - committed);
    eprintln!("{committed} committed at the crash, {received} deliveries after it: {again} again");
    assert!(
        again <= 2_000,
        "{again} messages committed before the crash were delivered again \
         ({committed} committed at the crash, {received} deliveries after it)"
    );
}
