//! The daily bulletin (水雨情日报) through the whole system.
//!
//! - The Plumtree Run flood is replayed through Mosquitto into `hydrowatch run`, with a rain
//!   gauge beside it; every day's bulletin (API, CLI) must hold what the data imply, computed
//!   here independently from the CSV and the published rain (sums over the 08:00 boundary in
//!   the configured zone, peaks and their times, margins to the stages, completeness); after
//!   a restart the same day gives the same bytes. The printable page is opened in headless
//!   Chromium: it renders its charts, prints to PDF, and a screenshot is kept in `target/`.
//! - A team with `bulletin = true` gets the day's bulletin on its WeCom robot (markdown, then
//!   the rain chart as an image) and its DingTalk robot (markdown with the link), once: a
//!   restart sends nothing again.

mod common;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/stages.rs"]
mod stages;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use receiver::Receiver;
use stages::{FT, STAGES_FT, STATION};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const ZONE: &str = "America/New_York";
const RAIN: &str = "p01";

fn zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(ZONE).expect("bundled zone")
}

/// 08:00 local on `date` in the test's zone, ms.
fn eight_oclock(date: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> i64 {
    date.at(8, 0, 0, 0)
        .to_zoned(tz.clone())
        .expect("valid")
        .timestamp()
        .as_millisecond()
}

fn local(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("time")
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn flood_config(mqtt: &Mosquitto) -> String {
    let stages: Vec<String> = STAGES_FT
        .iter()
        .map(|(name, ft)| format!("{name} = {:?}", ft * FT))
        .collect();
    HwConfig::new(mqtt)
        .client_id("hw-bulletin")
        .body(&format!(
            r#"[rules]
time_zone = "{ZONE}"
day_start_hour = 8

[[stations]]
id = "{STATION}"
name = "Plumtree Run near Bel Air, MD"
river = "Plumtree Run"
basin = "Bush River"
interval = "5m"
stages = {{ {stages} }}

[[stations]]
id = "{RAIN}"
name = "Bel Air rain gauge"
basin = "Bush River"
interval = "1h"
"#,
            stages = stages.join(", "),
        ))
        .build()
}

/// Hourly rain for the rain gauge from 2018-08-30 09:00 to 2018-09-01 08:00 local, without
/// 2018-08-31 15:00 (a missing hour), with a wet burst on the afternoon of 08-31.
fn rain_readings(tz: &jiff::tz::TimeZone) -> Vec<(i64, f64)> {
    let start = eight_oclock(jiff::civil::date(2018, 8, 30), tz);
    let missing = eight_oclock(jiff::civil::date(2018, 8, 31), tz) + 7 * H;
    (1..=48)
        .map(|h| start + h * H)
        .filter(|t| *t != missing)
        .map(|t| {
            let h = (t - start) / H;
            let mm = if (30..36).contains(&h) {
                4.5 * (h - 29) as f64 // 4.5, 9, 13.5, 18, 22.5, 27
            } else {
                (h % 5) as f64 * 0.3
            };
            (t, mm)
        })
        .collect()
}

/// What the bulletin of `date` must say about the river, from the CSV alone.
struct RiverDay {
    level: Option<(i64, f64)>,
    before: Option<f64>,
    peak: Option<(i64, f64)>,
    received: usize,
}

fn river_day(readings: &[(i64, f64)], from: i64, to: i64) -> RiverDay {
    let day: Vec<(i64, f64)> = readings
        .iter()
        .copied()
        .filter(|(t, _)| *t > from && *t <= to)
        .collect();
    let mut peak: Option<(i64, f64)> = None;
    for &(t, l) in &day {
        if peak.is_none_or(|(_, p)| l > p) {
            peak = Some((t, l));
        }
    }
    RiverDay {
        level: day.last().copied(),
        before: readings
            .iter()
            .filter(|(t, _)| *t > from - DAY && *t <= from)
            .map(|(_, l)| *l)
            .next_back(),
        peak,
        received: day.len(),
    }
}

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

fn check_river(b: &serde_json::Value, readings: &[(i64, f64)], from: i64, to: i64) {
    let tz = zone();
    let date = b["date"].as_str().unwrap_or("?");
    let s = b["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .find(|s| s["id"] == STATION)
        .expect("the river station");
    let want = river_day(readings, from, to);
    assert_eq!(
        s["readings"]["received"].as_u64(),
        Some(want.received as u64),
        "{date}: readings"
    );
    assert_eq!(s["readings"]["expected"].as_u64(), Some(288), "{date}");
    assert_eq!(
        s["readings"]["complete"].as_bool(),
        Some(want.received >= 288),
        "{date}: completeness"
    );
    match want.level {
        None => assert!(s["level_m"].is_null(), "{date}: no level"),
        Some((t, l)) => {
            assert!(
                near(s["level_m"].as_f64().expect("level"), l, 1e-9),
                "{date}"
            );
            assert_eq!(
                s["level_at"].as_str(),
                Some(local(t, &tz).as_str()),
                "{date}"
            );
            let (pt, pl) = want.peak.expect("peak");
            assert!(
                near(s["peak_m"].as_f64().expect("peak"), pl, 1e-9),
                "{date}"
            );
            assert_eq!(
                s["peak_at"].as_str(),
                Some(local(pt, &tz).as_str()),
                "{date}: peak time"
            );
            if let Some(before) = want.before {
                let change = s["level_change_m"].as_f64().expect("change");
                assert!(near(change, l - before, 0.0005 + 1e-9), "{date}: change");
            }
            let reached = STAGES_FT
                .iter()
                .rev()
                .find(|(_, ft)| pl >= ft * FT)
                .map(|(n, _)| *n);
            assert_eq!(s["stage"].as_str(), reached, "{date}: stage reached");
            let margins = s["margins"].as_array().expect("margins");
            assert_eq!(margins.len(), STAGES_FT.len());
            for (m, (name, ft)) in margins.iter().zip(STAGES_FT) {
                assert_eq!(m["stage"], name);
                let margin = m["margin_m"].as_f64().expect("margin");
                assert!(
                    near(margin, l - ft * FT, 0.0005 + 1e-9),
                    "{date}: margin to {name}"
                );
            }
        }
    }
}

fn hydrowatch_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(args)
        .output()
        .expect("run hydrowatch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulletins_of_a_replayed_flood_hold_what_the_data_imply() {
    let tz = zone();
    let readings = stages::readings();
    let rain = rain_readings(&tz);
    let mqtt = Mosquitto::start(false);
    let mut hw = Hydrowatch::start_ready(&flood_config(&mqtt), Duration::from_secs(30));

    stages::replay_the_flood(&mqtt.url()).await;
    publish_all(
        mqtt.port(),
        rain.iter()
            .map(|(t, mm)| {
                (
                    format!("hydro/{RAIN}/data"),
                    serde_json::json!({"time": t / 1000, "rain_mm": mm, "rain_period_s": 3600})
                        .to_string()
                        .into_bytes(),
                )
            })
            .collect(),
    )
    .await;
    let last_rain = rain.last().expect("rain").0;
    wait_for_reading(&hw, RAIN, "rain_mm", last_rain).await;
    let last = readings.last().expect("rows").0;
    let path = format!("/api/v1/stations/{STATION}");
    wait_until_async(
        Duration::from_secs(60),
        "the last reading processed",
        || {
            let (_, body) = hw.http_get(&path);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["status"]["level_time"].as_i64() == Some(last)
        },
    )
    .await;

    // Every day of the record, from the API, against the CSV.
    let mut date = jiff::civil::date(2018, 8, 1);
    let mut flood_day = None;
    while date < jiff::civil::date(2018, 9, 30) {
        let (from, to) = (
            eight_oclock(date, &tz),
            eight_oclock(date.tomorrow().expect("day"), &tz),
        );
        let (status, body) = hw.http_get(&format!("/api/v1/bulletins/{date}"));
        assert_eq!(status, 200, "{date}: {body}");
        let b: serde_json::Value = serde_json::from_str(&body).expect("bulletin JSON");
        assert_eq!(b["from"].as_str(), Some(local(from, &tz).as_str()));
        check_river(&b, &readings, from, to);
        if b["stations"][0]["stage"].is_string() {
            flood_day.get_or_insert(date);
        }
        date = date.tomorrow().expect("day");
    }
    let flood_day = flood_day.expect("the 2018-08-31 flash flood passes a stage");
    assert_eq!(flood_day, jiff::civil::date(2018, 8, 31));

    // The rain gauge over the 08:00 boundaries, computed from what was published.
    let (status, body) = hw.http_get("/api/v1/bulletins/2018-08-31");
    assert_eq!(status, 200);
    let b: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let (from, to) = (
        eight_oclock(jiff::civil::date(2018, 8, 31), &tz),
        eight_oclock(jiff::civil::date(2018, 9, 1), &tz),
    );
    let in_day: Vec<(i64, f64)> = rain
        .iter()
        .copied()
        .filter(|(t, _)| *t > from && *t <= to)
        .collect();
    let total: f64 = in_day.iter().map(|(_, mm)| mm).sum();
    let (wet_t, wet_mm) =
        in_day.iter().copied().fold(
            (0, -1.0),
            |best, (t, mm)| if mm > best.1 { (t, mm) } else { best },
        );
    let p = b["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .find(|s| s["id"] == RAIN)
        .expect("rain gauge");
    assert!(
        near(p["rain_mm"].as_f64().expect("rain"), total, 0.005),
        "{p}"
    );
    assert!(total >= 50.0, "the burst makes it a rainstorm day: {total}");
    assert_eq!(b["stations_rain_50mm"], 1);
    assert_eq!(b["stations_rain_100mm"], 0);
    assert!(near(p["max_1h_mm"].as_f64().expect("max"), wet_mm, 1e-9));
    // Hourly readings: the hour ending at the reading's time is the wettest hour.
    assert_eq!(p["max_1h_end"].as_str(), Some(local(wet_t, &tz).as_str()));
    assert_eq!(p["readings"]["received"], 23, "15:00 is missing");
    assert_eq!(p["readings"]["complete"], false);
    assert!(b["incomplete"]
        .as_array()
        .expect("list")
        .iter()
        .any(|i| i["station"] == RAIN));
    let basin = &b["basins"][0];
    assert_eq!(basin["basin"], "Bush River");
    assert!(near(
        basin["average_rain_mm"].as_f64().expect("avg"),
        total,
        0.005
    ));
    // The day before: its last amount is the one at exactly 08:00 on 08-31.
    let (status, body) = hw.http_get("/api/v1/bulletins/2018-08-30");
    assert_eq!(status, 200);
    let before: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let expected_before: f64 = rain
        .iter()
        .filter(|(t, _)| *t <= from)
        .map(|(_, mm)| mm)
        .sum();
    let p = before["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .find(|s| s["id"] == RAIN)
        .expect("rain gauge");
    assert!(near(
        p["rain_mm"].as_f64().expect("rain"),
        expected_before,
        0.005
    ));
    assert_eq!(p["readings"]["complete"], true, "{p}");
    // The flood's alerts are the day's alerts.
    let alerts = b["alerts"].as_array().expect("alerts");
    assert!(
        alerts
            .iter()
            .any(|a| a["station"] == STATION && a["rule"] == "stage"),
        "{alerts:?}"
    );

    // The CLI writes the same bytes from the journal.
    let config = hw.config_path().display().to_string();
    let cli = hydrowatch_cli(&["bulletin", "-c", &config, "--date", "2018-08-31"]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cli.stdout),
        body_of(&hw, "2018-08-31")
    );
    let md = hydrowatch_cli(&[
        "bulletin",
        "-c",
        &config,
        "--date",
        "2018-08-31",
        "--format",
        "markdown",
        "--lang",
        "en",
    ]);
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    assert!(
        md.contains("Daily water and rain bulletin 2018-08-31"),
        "{md}"
    );
    assert!(md.contains("/bulletins/2018-08-31?lang=en"), "{md}");
    let bad = hydrowatch_cli(&["bulletin", "-c", &config, "--date", "31.08.2018"]);
    assert_eq!(bad.status.code(), Some(1));

    // After a restart, the same document.
    let first = body_of(&hw, "2018-08-31");
    hw.stop();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    assert_eq!(
        body_of(&hw, "2018-08-31"),
        first,
        "byte-identical after a restart"
    );
    let (status, _) = hw.http_get("/api/v1/bulletins/2099-01-01");
    assert_eq!(status, 404, "a day that has not ended");
    let (status, _) = hw.http_get("/api/v1/bulletins/yesterday");
    assert_eq!(status, 400);

    printable_page_in_chromium(&hw, "2018-08-31");
}

/// Waits until the journal holds `station`'s reading of `element` at `time` (a broker's
/// PUBACK to the publisher says nothing about hydrowatch having stored it).
async fn wait_for_reading(hw: &Hydrowatch, station: &str, element: &str, time: i64) {
    let t = jiff::Timestamp::from_millisecond(time)
        .expect("time")
        .to_string();
    let path = format!("/api/v1/stations/{station}/series?element={element}&from={t}&to={t}");
    wait_until_async(
        Duration::from_secs(60),
        &format!("{station} at {t} stored"),
        || {
            let (_, body) = hw.http_get(&path);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["points"].as_array().is_some_and(|p| !p.is_empty())
        },
    )
    .await;
}

fn body_of(hw: &Hydrowatch, date: &str) -> String {
    let (status, body) = hw.http_get(&format!("/api/v1/bulletins/{date}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn target_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).expect("target/");
    dir
}

/// Chromium's headless command line: `--dump-dom` for what rendered, `--screenshot` for
/// people, `--print-to-pdf` for the printout.
fn chromium(args: &[String]) -> std::process::Output {
    let binary = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        binary.exists(),
        "Chromium not found at {}",
        binary.display()
    );
    let profile = tempfile::tempdir().expect("profile");
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            "--window-size=1300,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn printable_page_in_chromium(hw: &Hydrowatch, date: &str) {
    let url = format!("{}/bulletins/{date}", hw.base_url());
    let dom = chromium(&["--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("水雨情日报 2018-08-31"), "{}", tail(&dom, 20));
    assert!(
        dom.contains("class=\"chart hydrograph\""),
        "a hydrograph for the flooded station"
    );
    assert!(dom.contains("class=\"stage-line\""), "with its stage lines");
    assert!(
        dom.contains("class=\"chart rain\""),
        "a rain chart for the gauge"
    );

    let dir = target_dir();
    let shot = dir.join("bulletin-2018-08-31.png");
    let pdf = dir.join("bulletin-2018-08-31.pdf");
    let _ = std::fs::remove_file(&shot);
    let _ = std::fs::remove_file(&pdf);
    chromium(&[
        format!("--screenshot={}", shot.display()),
        format!("{url}?lang=en"),
    ]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let shot_zh = dir.join("bulletin-2018-08-31-zh.png");
    chromium(&[format!("--screenshot={}", shot_zh.display()), url.clone()]);
    assert!(std::fs::read(&shot_zh).is_ok_and(|p| p.starts_with(b"\x89PNG")));
    chromium(&[
        "--no-pdf-header-footer".into(),
        format!("--print-to-pdf={}", pdf.display()),
        url,
    ]);
    let printed = std::fs::read(&pdf).expect("a PDF");
    assert!(printed.starts_with(b"%PDF"), "a PDF");
    assert!(printed.len() > 10_000, "{} bytes", printed.len());
    eprintln!("screenshot: {}  PDF: {}", shot.display(), pdf.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_with_bulletin_gets_it_on_its_chat_robots_once_a_day() {
    // The day boundary twelve hours ago, in UTC: the last ended day is yesterday's.
    let now = jiff::Timestamp::now();
    let hour = (now.to_zoned(jiff::tz::TimeZone::UTC).hour() as i64 + 12) % 24;
    let utc = jiff::tz::TimeZone::UTC;
    let last_boundary = {
        let today = now.to_zoned(utc.clone()).date();
        let at = |d: jiff::civil::Date| {
            d.at(hour as i8, 0, 0, 0)
                .to_zoned(utc.clone())
                .expect("valid")
                .timestamp()
                .as_millisecond()
        };
        let t = at(today);
        if t <= now.as_millisecond() {
            t
        } else {
            at(today.yesterday().expect("day"))
        }
    };
    let day_start = last_boundary - DAY;
    let date = jiff::Timestamp::from_millisecond(day_start)
        .expect("time")
        .to_zoned(utc.clone())
        .date()
        .to_string();

    // The day's rain is in the journal before the daemon starts (it arrived earlier).
    let journal_dir = tempfile::tempdir().expect("journal dir");
    let journal_path = journal_dir.path().join("journal.db");
    {
        let conn = hydrowatch::journal::open(&journal_path).expect("journal");
        let tx = conn.unchecked_transaction().expect("tx");
        let mut stmt = tx
            .prepare_cached(hydrowatch::journal::INSERT_READING)
            .expect("stmt");
        for h in 1..=24 {
            let mut r = hydrowatch::model::Reading::empty(RAIN, day_start + h * H);
            r.rain_mm = Some(if h == 5 { 62.5 } else { 0.5 });
            r.rain_period_s = Some(3600);
            hydrowatch::journal::insert_reading(&mut stmt, &r, h, day_start + h * H)
                .expect("insert");
        }
        drop(stmt);
        tx.commit().expect("commit");
    }

    let mqtt = Mosquitto::start(false);
    let robot = Receiver::start().await;
    let config = HwConfig::new(&mqtt)
        .journal(&journal_path.display().to_string())
        .http(r#"public_url = "https://flood.example.cn/hw""#)
        .body(&format!(
            r#"[rules]
time_zone = "UTC"
day_start_hour = {hour}

[[teams]]
id = "office"
name = "防汛办"
bulletin = true
  [[teams.channels]]
  kind = "wecom"
  url = "{wecom}"
  [[teams.channels]]
  kind = "dingtalk"
  url = "{dingtalk}"
  language = "en"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook}"

[[teams]]
id = "patrol"
token = "patrol-token"
  [[teams.channels]]
  kind = "wecom"
  url = "{other}"

[[stations]]
id = "{RAIN}"
name = "雨量站"
team = "patrol"
interval = "1h"

[[stations]]
id = "hpt"
name = "横排头"
team = "patrol"
interval = "1h"
stages = {{ guard = 57.5, warning = 59.0, guaranteed = 61.0 }}
"#,
            wecom = robot.url("/wecom"),
            dingtalk = robot.url("/dingtalk"),
            hook = robot.url("/hook"),
            other = robot.url("/other"),
        ))
        .build();
    let mut hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    wait_until_async(
        Duration::from_secs(30),
        "the bulletin on both robots",
        || robot.requests("/wecom").len() >= 2 && !robot.requests("/dingtalk").is_empty(),
    )
    .await;

    let wecom = robot.requests("/wecom");
    assert_eq!(wecom.len(), 2, "markdown, then the image");
    let markdown = wecom[0].json();
    assert_eq!(markdown["msgtype"], "markdown");
    let content = markdown["markdown"]["content"].as_str().expect("content");
    assert!(content.contains(&format!("水雨情日报 {date}")), "{content}");
    assert!(
        content.contains(&format!(
            "https://flood.example.cn/hw/bulletins/{date}?lang=zh"
        )),
        "{content}"
    );
    assert!(content.contains("雨量站"), "{content}");
    assert!(content.contains("≥50 mm 站数 **1**"), "{content}");
    let image = wecom[1].json();
    assert_eq!(image["msgtype"], "image");
    let png = base64::engine::general_purpose::STANDARD
        .decode(image["image"]["base64"].as_str().expect("base64"))
        .expect("decodes");
    assert!(png.starts_with(b"\x89PNG"));
    assert!(png.len() < 2 * 1024 * 1024);
    std::fs::write(target_dir().join("bulletin-rain-wecom.png"), &png).expect("kept for people");
    use md5::Digest as _;
    assert_eq!(
        image["image"]["md5"].as_str(),
        Some(hex::encode(md5::Md5::digest(&png)).as_str())
    );
    let ding = robot.requests("/dingtalk");
    assert_eq!(ding.len(), 1);
    let text = ding[0].json()["markdown"]["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(
        text.contains(&format!("Daily water and rain bulletin {date}")),
        "{text}"
    );
    assert!(
        text.contains("?lang=en"),
        "in the channel's language: {text}"
    );
    // No read token here, and a public address: DingTalk's servers can fetch the chart.
    assert!(
        text.contains(&format!(
            "![rain](https://flood.example.cn/hw/bulletins/{date}/rain.png)"
        )),
        "the rain chart as an image: {text}"
    );
    assert!(
        robot.requests("/hook").is_empty(),
        "webhooks are for alerts"
    );
    assert!(
        robot.requests("/other").is_empty(),
        "a team without bulletin = true"
    );

    // Recorded as sent: a restart sends nothing again.
    wait_until_async(Duration::from_secs(10), "the sends recorded", || {
        let conn = rusqlite_open(&journal_path);
        conn.query_row(
            "SELECT count(*) FROM bulletin_sends WHERE delivered_ms IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            == 2
    })
    .await;
    hw.stop();
    hw.restart();
    hw.wait_ready(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        robot.requests("/wecom").len(),
        2,
        "once a day, across restarts"
    );
    assert_eq!(robot.requests("/dingtalk").len(), 1);
    assert!(hw.log().contains("daily bulletin written"));

    // Who answered and how fast: a warning-stage alert in that day, acknowledged by the
    // patrol team, is in the day's bulletin (the API computes it from the journal).
    let observed = day_start + 20 * H;
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/hpt/data".to_string(),
            serde_json::json!({"time": observed, "level_m": 59.3})
                .to_string()
                .into_bytes(),
        )],
    )
    .await;
    let mut alert_id = String::new();
    wait_until_async(Duration::from_secs(30), "the stage alert", || {
        let (_, body) = hw.http_get("/api/v1/alerts?state=open");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match v
            .as_array()
            .and_then(|a| a.iter().find(|a| a["station"] == "hpt"))
        {
            Some(a) => {
                alert_id = a["alert_id"].as_str().unwrap_or("").to_string();
                true
            }
            None => false,
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        b"",
        &[("Authorization", "Bearer patrol-token")],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = hw.http_get(&format!("/api/v1/bulletins/{date}"));
    assert_eq!(status, 200, "{body}");
    let b: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let alert = b["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["alert_id"] == alert_id.as_str())
        .unwrap_or_else(|| panic!("the alert in the bulletin: {body}"));
    assert_eq!(alert["stage"], "warning");
    assert_eq!(alert["states"], serde_json::json!(["firing"]));
    assert_eq!(alert["acknowledged_by"], "patrol");
    let response = alert["response_s"].as_i64().expect("response time");
    assert!((1..30).contains(&response), "answered after {response} s");
}

fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    hydrowatch::journal::open(path).expect("journal")
}

/// The demo's flood scenario (rain gauge and three river gauges, one silent for two hours, one
/// spike), run over an 08:00 boundary in Asia/Shanghai, published as gauges would send it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_scenario_over_the_eight_oclock_boundary() {
    use hydrowatch::sim::scenario::{self, Scenario, RIVER, SPIKE};
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    let start = jiff::civil::date(2021, 7, 20)
        .at(2, 0, 0, 0)
        .to_zoned(tz.clone())
        .expect("valid")
        .timestamp()
        .as_millisecond();
    let readings = Scenario { start, seed: 7 }.readings();
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .client_id("hw-bulletin-demo")
        .body(&format!(
            "[rules]\ntime_zone = \"Asia/Shanghai\"\nday_start_hour = 8\n\n[[teams]]\nid = \"demo\"\n\n{}",
            scenario::demo_stations_toml("demo", "1h", &[])
        ))
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    let mut messages = Vec::new();
    let mut ids: Vec<&str> = readings.iter().map(|r| r.station.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        let mine: Vec<serde_json::Value> = readings
            .iter()
            .filter(|r| r.station == *id)
            .map(|r| {
                serde_json::json!({"time": r.time, "level_m": r.level_m, "rain_mm": r.rain_mm,
                                   "rain_period_s": r.rain_period_s})
            })
            .map(|mut v| {
                v.as_object_mut()
                    .expect("object")
                    .retain(|_, x| !x.is_null());
                v
            })
            .collect();
        for chunk in mine.chunks(12) {
            messages.push((
                format!("hydro/{id}/data"),
                serde_json::to_vec(chunk).expect("JSON"),
            ));
        }
    }
    publish_all(mqtt.port(), messages).await;
    for id in &ids {
        let last = readings.iter().rfind(|r| r.station == *id).expect("last");
        let element = if last.rain_mm.is_some() {
            "rain_mm"
        } else {
            "level_m"
        };
        wait_for_reading(&hw, id, element, last.time).await;
    }

    for date in [
        jiff::civil::date(2021, 7, 19),
        jiff::civil::date(2021, 7, 20),
    ] {
        let (from, to) = (
            eight_oclock(date, &tz),
            eight_oclock(date.tomorrow().expect("day"), &tz),
        );
        let (status, body) = hw.http_get(&format!("/api/v1/bulletins/{date}"));
        assert_eq!(status, 200, "{body}");
        let b: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let station = |id: &str| -> serde_json::Value {
            b["stations"]
                .as_array()
                .expect("stations")
                .iter()
                .find(|s| s["id"] == id)
                .cloned()
                .expect("station")
        };
        let in_day = |id: &str| -> Vec<&hydrowatch::model::Reading> {
            readings
                .iter()
                .filter(|r| r.station == id && r.time > from && r.time <= to)
                .collect()
        };
        // Rain: the day's sum, the 08:00 amount closing the day before.
        let rain: f64 = in_day(scenario::RAIN_GAUGE.0)
            .iter()
            .filter_map(|r| r.rain_mm)
            .sum();
        let r = station(scenario::RAIN_GAUGE.0);
        assert!(
            near(r["rain_mm"].as_f64().expect("rain"), rain, 0.005),
            "{date}: {} vs {rain}",
            r["rain_mm"]
        );
        assert_eq!(
            r["readings"]["received"].as_u64(),
            Some(in_day(scenario::RAIN_GAUGE.0).len() as u64)
        );
        for gauge in &RIVER {
            let s = station(gauge.id);
            let levels: Vec<(i64, f64)> = in_day(gauge.id)
                .iter()
                // The spike is a sensor fault, not the river.
                .filter(|r| {
                    !(r.station == SPIKE.0 && r.time == start + (SPIKE.1 * H as f64) as i64)
                })
                .filter_map(|r| r.level_m.map(|l| (r.time, l)))
                .collect();
            assert_eq!(
                s["readings"]["received"].as_u64(),
                Some(in_day(gauge.id).len() as u64),
                "{date} {}",
                gauge.id
            );
            assert_eq!(s["readings"]["complete"], false, "a 12-hour run");
            let Some(&(end_t, end_l)) = levels.last() else {
                assert!(s["level_m"].is_null());
                continue;
            };
            let peak = levels.iter().fold(
                levels[0],
                |best, &(t, l)| if l > best.1 { (t, l) } else { best },
            );
            assert_eq!(s["level_m"].as_f64(), Some(end_l), "{date} {}", gauge.id);
            assert_eq!(s["level_at"].as_str(), Some(local(end_t, &tz).as_str()));
            assert_eq!(s["peak_m"].as_f64(), Some(peak.1), "{date} {}", gauge.id);
            assert_eq!(s["peak_at"].as_str(), Some(local(peak.0, &tz).as_str()));
            let reached = [
                ("guard", gauge.guard_m),
                ("warning", gauge.warning_m),
                ("guaranteed", gauge.guaranteed_m),
            ]
            .iter()
            .rev()
            .find(|(_, level)| peak.1 >= *level)
            .map(|(n, _)| *n);
            assert_eq!(s["stage"].as_str(), reached, "{date} {}", gauge.id);
            let warning = s["margins"]
                .as_array()
                .expect("margins")
                .iter()
                .find(|m| m["stage"] == "warning")
                .expect("warning")["margin_m"]
                .as_f64()
                .expect("margin");
            assert!(near(warning, end_l - gauge.warning_m, 0.0005 + 1e-9));
        }
    }
    // The markdown in Chinese: a receding river, how far below the guard stage it is.
    let config_path = hw.config_path().display().to_string();
    let md = hydrowatch_cli(&[
        "bulletin",
        "-c",
        &config_path,
        "--date",
        "2021-07-20",
        "--format",
        "markdown",
    ]);
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    assert!(md.contains("水雨情日报 2021-07-20"), "{md}");
    assert!(md.contains("大店岗雨量站"), "{md}");
    assert!(md.contains("落 -") && md.contains("距设防"), "{md}");
}
