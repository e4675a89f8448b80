//! `hydrowatch demo` as a new user runs it: the real binary, no outside service. Within 45 s
//! the API lists at least three stations with readings and at least one alert, the demo
//! patrol team has received it, and SIGTERM ends the demo with exit code 0.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn json(port: u16, path: &str) -> Option<serde_json::Value> {
    match http_request(port, "GET", path, b"", &[]) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Stations whose status shows a message received.
fn stations_with_readings(port: u16) -> usize {
    json(port, "/api/v1/stations")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|s| !s["status"]["last_message_at"].is_null())
        .count()
}

/// Whether a station's status shows a message received.
fn has_readings(port: u16, station: &str) -> bool {
    json(port, "/api/v1/stations")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|s| s["id"] == station && !s["status"]["last_message_at"].is_null())
}

fn count(port: u16, path: &str) -> usize {
    json(port, path)
        .and_then(|v| v.as_array().map(|a| a.len()))
        .unwrap_or(0)
}

#[test]
fn demo_shows_stations_and_alerts_within_45_s_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("demo.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let http_port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .arg("demo")
        .current_dir(dir.path())
        .env("HYDROWATCH__HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        // Not 1883: other tests and a developer's own broker may be using it.
        .env(
            "HYDROWATCH__BROKER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        // Not 5005 either, for the same reason: the demo's SL 651 centre.
        .env(
            "HYDROWATCH__SL651__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn hydrowatch demo");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let deadline = started + Duration::from_secs(45);
    let mut seen: (usize, usize, usize);
    let shown = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the demo exited ({status}):\n{}", tail(&log(), 40));
        }
        seen = (
            stations_with_readings(http_port),
            count(http_port, "/api/v1/alerts?state=all"),
            count(http_port, "/api/v1/demo/deliveries"),
        );
        // The rain gauge reports as an SL 651 RTU: the centre answered and stored it.
        let rtu = has_readings(http_port, "62304800");
        if seen.0 >= 3 && seen.1 >= 1 && seen.2 >= 1 && rtu {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !shown {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "after 45 s: {} stations with readings, {} alerts, {} deliveries; log:\n{}",
            seen.0,
            seen.1,
            seen.2,
            tail(&log(), 40)
        );
    }
    eprintln!("demo showed {seen:?} after {:?}", started.elapsed());

    let (status, board) = http_get(http_port, "/");
    assert_eq!(status, 200, "the board is served");
    assert!(board.contains("<"), "the board is a web page");
    let text = log();
    assert!(
        text.contains(&format!("open http://127.0.0.1:{http_port}/")),
        "the log tells the user where to look:\n{}",
        tail(&text, 40)
    );
    assert!(
        text.contains("patrol team notified"),
        "alerts reach the log:\n{}",
        tail(&text, 40)
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let stop_deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= stop_deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "exit code after SIGTERM; log:\n{}",
        tail(&log(), 20)
    );
}
