//! The status board in a real headless Chromium (Debian's `chromium`), driven over the Chrome
//! DevTools Protocol: the board loads while hydrowatch ingests readings from a real Mosquitto,
//! a station changes colour when it crosses a stage without the page reloading, an alert's
//! acknowledgement shows up live, and screenshots are saved under `target/` for people. The
//! board signs in with the read token once (a form, then a session cookie): every request the
//! page makes is recorded from the DevTools protocol, and none carries the token in its URL.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

const READ_TOKEN: &str = "duty-officer-read";
const TEAM_TOKEN: &str = "pihe-east-secret";
const MAIN: &str = "62304000";

fn config(mqtt: &Mosquitto) -> String {
    HwConfig::new(mqtt)
        .client_id("hw-board")
        .http(&format!(r#"read_token = "{READ_TOKEN}""#))
        .body(&format!(
            r#"[[teams]]
id = "pihe-east"
name = "淠河东岸巡堤队"
token = "{TEAM_TOKEN}"

[[stations]]
id = "{MAIN}"
name = "横排头"
river = "淠河"
team = "pihe-east"
stages = {{ guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }}
rise_rate_m_per_h = 0.5

[[stations]]
id = "62304100"
name = "六安"
river = "淠河"
team = "pihe-east"
stages = {{ guard = 54.0, warning = 55.5, guaranteed = 57.0, record = 58.2 }}

[[stations]]
id = "62304200"
name = "正阳关"
river = "淮河"
stages = {{ guard = 24.0, warning = 24.5, guaranteed = 26.5, record = 26.8 }}

[[stations]]
id = "USGS-01646500"
name = "Little Falls"
river = "Potomac"
stages = {{ action = 3.0, minor = 4.0, moderate = 5.0, major = 6.0, record = 7.0 }}

[[stations]]
id = "62305000"
name = "响洪甸水库"
river = "西淠河"
stages = {{ guard = 125.0, warning = 128.0 }}
drought = {{ warning = 108.0, limit = 105.0 }}

[[stations]]
id = "62306000"
name = "佛子岭"
river = "东淠河"
stages = {{ guard = 120.0, warning = 124.0 }}
"#
        ))
        .build()
}

fn msg(station: &str, time_s: i64, level: f64, rain: Option<f64>) -> (String, Vec<u8>) {
    let body = match rain {
        Some(r) => json!({"time": time_s, "level_m": level, "rain_mm": r, "rain_period_s": 300}),
        None => json!({"time": time_s, "level_m": level}),
    };
    (
        format!("hydro/{station}/data"),
        body.to_string().into_bytes(),
    )
}

fn api(hw: &Hydrowatch, path: &str) -> Value {
    let (status, value) = get_json_with_token(hw.http_port(), path, READ_TOKEN);
    assert_eq!(status, 200, "GET {path}: {value}");
    value
}

fn latest_level(hw: &Hydrowatch, station: &str) -> Option<f64> {
    api(hw, &format!("/api/v1/stations/{station}"))["status"]["latest_level_m"].as_f64()
}

// ---------------------------------------------------------------------------------------
// A minimal Chrome DevTools Protocol client over one websocket (flattened sessions).
// ---------------------------------------------------------------------------------------

struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
    /// Every URL the page requested (`Network.requestWillBeSent`), in order.
    requests: Vec<String>,
}

fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium not found at {}: install Debian's package (`apt-get install chromium`) or set \
         CHROMIUM=/path/to/chromium. This test does not skip: the board must be checked in a \
         real browser.",
        path.display()
    );
    path
}

impl Chromium {
    fn launch() -> Chromium {
        let binary = chromium_binary();
        let profile = tempfile::Builder::new()
            .prefix("hw-chromium-")
            .tempdir()
            .expect("temp dir");
        // Port 0: Chromium picks a free port and writes it to DevToolsActivePort, so there is
        // no race with other tests for a port.
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1600,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let active = profile.path().join("DevToolsActivePort");
        let mut endpoint = None;
        wait_until_msg(
            Duration::from_secs(30),
            "Chromium to write DevToolsActivePort",
            || {
                let text = std::fs::read_to_string(&active).unwrap_or_default();
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    endpoint = Some(format!("ws://127.0.0.1:{port}{path}"));
                }
                endpoint.is_some()
            },
        );
        let url = endpoint.expect("endpoint");
        let authority = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .to_string();
        let stream = TcpStream::connect(&authority)
            .unwrap_or_else(|e| panic!("connect to Chromium at {authority}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let (ws, _) = tungstenite::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("CDP websocket {url}: {e}"));
        Chromium {
            child,
            _profile: profile,
            ws,
            next_id: 0,
            session: None,
            requests: Vec::new(),
        }
    }

    /// Sends one command (to the page session once attached) and returns its `result`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("CDP send {method}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "CDP {method}: no answer in 30 s");
            let frame = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("CDP read ({method}): {e}"));
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(text.as_str()).expect("CDP sends JSON");
            if answer["id"].as_u64() != Some(id) {
                if answer["method"] == "Network.requestWillBeSent" {
                    let url = &answer["params"]["request"]["url"];
                    self.requests
                        .push(url.as_str().unwrap_or_default().to_string());
                }
                continue; // an event
            }
            if let Some(error) = answer.get("error") {
                panic!("CDP {method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Opens a tab on `url` and attaches to it.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        self.session = Some(attached["sessionId"].as_str().expect("sessionId").into());
        self.call("Page.enable", json!({}));
        self.call("Runtime.enable", json!({}));
        self.call("Network.enable", json!({}));
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Evaluates a JS expression in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("JS `{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until `accept` likes its value; panics with the last value.
    fn wait_for(&mut self, what: &str, expression: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.eval(expression);
            if accept(&value) {
                return value;
            }
            if Instant::now() >= deadline {
                let error = self.eval("document.getElementById('error') && document.getElementById('error').textContent");
                panic!("timed out waiting for {what}; last value {value}; board error: {error}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The board asks for the read token once; type it in and sign in.
    fn sign_in(&mut self, token: &str) {
        self.wait_for(
            "the sign-in form",
            "(() => { const f = document.getElementById('login'); return f ? !f.hidden : false })()",
            |v| v == &json!(true),
        );
        self.eval(&format!(
            "document.getElementById('login-token').value = {}; \
             document.querySelector('#login button[type=submit]').click(); true",
            json!(token)
        ));
        self.wait_for(
            "the sign-in form to go away",
            "document.getElementById('login').hidden",
            |v| v == &json!(true),
        );
    }

    /// Every URL the page has requested so far.
    fn requested_urls(&mut self) -> Vec<String> {
        // Events that came before this call's answer are read while waiting for it.
        self.eval("true");
        self.requests.clone()
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf()
}

fn row_state(station: &str) -> String {
    format!(
        "(() => {{ const r = document.querySelector('tr[data-station=\"{station}\"]');
           return r ? {{ severity: r.dataset.severity, stage: r.dataset.stage,
                        level: r.querySelector('.level').textContent,
                        colour: getComputedStyle(r.cells[0]).backgroundColor,
                        loadId: window.__boardLoadId }} : null }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_shows_a_stage_crossing_live_in_headless_chromium() {
    chromium_binary();
    let mqtt = Mosquitto::start(false);
    let hw = Hydrowatch::start_ready(&config(&mqtt), Duration::from_secs(30));
    let now = now_s();
    let start = now - 6 * 3600;

    // Six hours of history, every station below its first stage except the neighbours that
    // give the screenshot its colours.
    let mut messages = Vec::new();
    for i in 0..=66 {
        let t = start + i * 300;
        let f = i as f64 / 66.0;
        let rain = if (20..50).contains(&i) {
            Some(2.0 + (i % 7) as f64)
        } else {
            Some(0.0)
        };
        messages.push(msg(MAIN, t, 55.0 + 2.2 * f * f, rain));
        messages.push(msg("62304100", t, 53.2 + 1.1 * f, None));
        messages.push(msg("62304200", t, 26.0 + 0.6 * f, None));
        messages.push(msg("USGS-01646500", t, 4.6 + 0.7 * f, None));
        messages.push(msg("62305000", t, 108.4 - 0.8 * f, None));
    }
    publish_all(mqtt.port(), messages).await;
    let below_guard = 55.0 + 2.2;
    let hw = tokio::task::spawn_blocking(move || {
        wait_until_msg(
            Duration::from_secs(30),
            "the history to be ingested",
            || {
                latest_level(&hw, MAIN) == Some(below_guard)
                    && latest_level(&hw, "62305000").is_some_and(|l| (l - 107.6).abs() < 1e-9)
            },
        );
        hw
    })
    .await
    .expect("join");

    let mut browser = tokio::task::spawn_blocking(Chromium::launch)
        .await
        .expect("join");
    let url = format!("{}/", hw.base_url());
    let row = row_state(MAIN);
    let (mut browser, first) = tokio::task::spawn_blocking(move || {
        browser.open(&url);
        browser.sign_in(READ_TOKEN);
        let first = browser.wait_for("the station row in its normal colour", &row, |v| {
            v["severity"] == "normal"
        });
        (browser, first)
    })
    .await
    .expect("join");
    assert_eq!(first["stage"], "normal");
    assert_eq!(first["level"], "57.20");
    let load_id = first["loadId"].as_str().expect("load id").to_string();
    assert!(!load_id.is_empty());

    // The river rises through the guard stage past the warning stage.
    let mut rising = Vec::new();
    for (i, level) in [57.45, 57.8, 58.3, 58.8, 59.32].into_iter().enumerate() {
        rising.push(msg(MAIN, now - 300 + i as i64 * 60, level, Some(6.5)));
    }
    publish_all(mqtt.port(), rising).await;

    let row = row_state(MAIN);
    let (mut browser, crossed) = tokio::task::spawn_blocking(move || {
        let crossed = browser.wait_for(
            "the station row to turn to the warning colour without a reload",
            &row,
            |v| v["severity"] == "yellow",
        );
        (browser, crossed)
    })
    .await
    .expect("join");
    assert_eq!(crossed["stage"], "warning");
    assert_eq!(crossed["level"], "59.32");
    assert_ne!(
        crossed["colour"], first["colour"],
        "the row's colour must change, not only its class"
    );
    assert_eq!(
        crossed["loadId"], load_id,
        "the page was reloaded: the board must update live"
    );

    // The stage alert is listed, not yet acknowledged; the team acknowledges; the board shows who.
    let open_alert = "(() => { const li = document.querySelector('#alerts li[data-rule=stage][data-station=\"62304000\"]');
        return li ? { id: li.dataset.alert, acked: li.dataset.acknowledged, text: li.textContent } : null })()";
    let (mut browser, alert) = tokio::task::spawn_blocking(move || {
        let alert = browser.wait_for("the open stage alert on the board", open_alert, |v| {
            v["text"].as_str().is_some_and(|t| t.contains("横排头"))
        });
        (browser, alert)
    })
    .await
    .expect("join");
    assert_eq!(alert["acked"], "no");
    let alert_id = alert["id"].as_str().expect("alert id").to_string();
    let (status, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        b"",
        &[("Authorization", &format!("Bearer {TEAM_TOKEN}"))],
    );
    assert_eq!(status, 200, "ack: {body}");

    let target = target_dir();
    let shots = target.clone();
    let load_id_en = load_id.clone();
    tokio::task::spawn_blocking(move || {
        let acked = browser.wait_for("the acknowledgement on the board", open_alert, |v| {
            v["acked"] == "yes"
        });
        assert!(
            acked["text"]
                .as_str()
                .is_some_and(|t| t.contains("淠河东岸巡堤队")),
            "the board names the team that acknowledged: {acked}"
        );
        // Clicking the station opens its hydrograph, with its stage lines and rain bars.
        browser.eval("document.querySelector('tr[data-station=\"62304000\"]').click()");
        let chart = browser.wait_for(
            "the hydrograph with level, stage lines and rain",
            "(() => { const c = document.querySelector('#chart .uplot');
                 return c ? Array.from(c.querySelectorAll('.u-legend .u-series')).map(s => s.textContent) : null })()",
            |v| {
                let text = v.to_string();
                text.contains("警戒 59.00") && text.contains("雨量")
            },
        );
        let legend = chart.to_string();
        assert!(legend.contains("警戒 59.00"), "warning stage line: {legend}");
        assert!(legend.contains("雨量"), "rain bars: {legend}");
        // Colours of the neighbours: guard = blue, guaranteed = orange, NWS moderate = orange,
        // drought.
        let severities = browser.eval(
            "Object.fromEntries(Array.from(document.querySelectorAll('tr[data-station]')).map(r => [r.dataset.station, r.dataset.severity]))",
        );
        assert_eq!(severities["62304100"], "blue", "{severities}");
        assert_eq!(severities["62304200"], "orange", "{severities}");
        assert_eq!(severities["USGS-01646500"], "orange", "{severities}");
        assert_eq!(severities["62305000"], "drought", "{severities}");
        assert_eq!(severities["62306000"], "nodata", "{severities}");
        browser.screenshot(&shots.join("board.png"));

        // English, remembered for the next visit.
        browser.eval("document.getElementById('lang').click()");
        browser.wait_for(
            "the English header",
            "document.querySelector('h1').textContent",
            |v| v.as_str().is_some_and(|t| t.contains("Status board")),
        );
        assert_eq!(
            browser.eval("localStorage.getItem('hydrowatch.lang')"),
            "en"
        );
        browser.wait_for(
            "the English hydrograph legend",
            "(() => { const c = document.querySelector('#chart .u-legend'); return c ? c.textContent : '' })()",
            |v| v.as_str().is_some_and(|t| t.contains("warning 59.00")),
        );
        assert_eq!(browser.eval("window.__boardLoadId"), load_id_en.as_str());
        browser.screenshot(&shots.join("board-en.png"));

        // The token never travelled in a URL: not on the page, not on the API, not on the
        // event stream, which the page did open (live updates came through it).
        let urls = browser.requested_urls();
        for path in ["/api/v1/session", "/api/v1/stations", "/api/v1/events"] {
            assert!(
                urls.iter().any(|u| u.contains(path)),
                "the page requested {path}: {urls:#?}"
            );
        }
        for url in &urls {
            assert!(
                !url.contains(READ_TOKEN) && !url.contains("token="),
                "a URL carries the read token: {url}"
            );
        }
    })
    .await
    .expect("join");
    assert!(target.join("board.png").exists());
    drop(hw);
}

/// A team whose only receiver refuses every page, for the failed-notifications panel.
fn refusing_team_config(mqtt: &Mosquitto, hook: &str) -> String {
    HwConfig::new(mqtt)
        .client_id("hw-board-failed")
        .http(&format!(r#"read_token = "{READ_TOKEN}""#))
        .body(&format!(
            r#"[[teams]]
id = "pihe-east"
name = "淠河东岸巡堤队"
token = "{TEAM_TOKEN}"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook}"

[[stations]]
id = "{MAIN}"
name = "横排头"
river = "淠河"
team = "pihe-east"
stages = {{ guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }}
"#
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_lists_failed_notifications_in_headless_chromium() {
    chromium_binary();
    let mqtt = Mosquitto::start(false);
    let rx = receiver::Receiver::start().await;
    rx.refuse("/hook", "", 400, r#"{"error":"unknown hook"}"#);
    let hw = Hydrowatch::start_ready(
        &refusing_team_config(&mqtt, &rx.url("/hook")),
        Duration::from_secs(30),
    );
    publish_all(mqtt.port(), vec![msg(MAIN, now_s() - 600, 56.0, None)]).await;

    let browser = tokio::task::spawn_blocking(Chromium::launch)
        .await
        .expect("join");
    let url = format!("{}/", hw.base_url());
    let panel = "(() => { const p = document.getElementById('failed-panel');
        if (!p) return null;
        return { hidden: p.hidden, count: document.getElementById('failed-count').textContent,
                 items: Array.from(document.querySelectorAll('#failed li')).map(li => li.textContent),
                 rows: document.querySelectorAll('tr[data-station]').length, loadId: window.__boardLoadId } })()";
    let (browser, empty) = tokio::task::spawn_blocking(move || {
        let mut browser = browser;
        browser.open(&url);
        browser.sign_in(READ_TOKEN);
        let empty = browser.wait_for("the board with no failed notification", panel, |v| {
            v["rows"] == 1
        });
        (browser, empty)
    })
    .await
    .expect("join");
    assert_eq!(
        empty["hidden"], true,
        "nothing failed, nothing shown: {empty}"
    );

    // The guard stage pages the team; its receiver refuses: the board shows it, live.
    publish_all(mqtt.port(), vec![msg(MAIN, now_s() - 300, 57.6, None)]).await;
    let shots = target_dir();
    let shown = tokio::task::spawn_blocking(move || {
        let mut browser = browser;
        let shown = browser.wait_for("the failed notification on the board", panel, |v| {
            v["hidden"] == false && v["items"].as_array().is_some_and(|i| !i.is_empty())
        });
        browser.screenshot(&shots.join("board-failed.png"));
        shown
    })
    .await
    .expect("join");
    assert_eq!(shown["count"], "(1)", "{shown}");
    assert_eq!(shown["loadId"], empty["loadId"], "no reload");
    let item = shown["items"][0].as_str().expect("text");
    for needle in ["横排头", "淠河东岸巡堤队", "webhook", "400", "1 次尝试"] {
        assert!(item.contains(needle), "{needle:?} missing from {item:?}");
    }
    drop(hw);
}

/// A board whose event stream falls behind (a burst larger than `http.event_buffer`) gets
/// `resync` and reloads its state: it shows the latest reading, not a stale one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_reloads_its_state_after_a_resync_in_headless_chromium() {
    chromium_binary();
    let mqtt = Mosquitto::start(false);
    let config = HwConfig::new(&mqtt)
        .client_id("hw-board-resync")
        .http(&format!(r#"read_token = "{READ_TOKEN}""#))
        .http("event_buffer = 2")
        .body(&format!(
            r#"[[stations]]
id = "{MAIN}"
name = "横排头"
stages = {{ guard = 57.5, warning = 59.0 }}
"#
        ))
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    let now = now_s();
    publish_all(mqtt.port(), vec![msg(MAIN, now - 7200, 55.0, None)]).await;

    let browser = tokio::task::spawn_blocking(Chromium::launch)
        .await
        .expect("join");
    let url = format!("{}/", hw.base_url());
    let row = row_state(MAIN);
    let state = "(() => ({ resyncs: window.__boardResyncs || 0, live: document.getElementById('conn').className }))()";
    let browser = tokio::task::spawn_blocking(move || {
        let mut browser = browser;
        browser.open(&url);
        browser.sign_in(READ_TOKEN);
        browser.wait_for("the first reading", &row, |v| v["level"] == "55.00");
        browser.wait_for("the live stream", state, |v| {
            v["live"].as_str().is_some_and(|c| c.contains("up"))
        });
        browser
    })
    .await
    .expect("join");

    // 2,000 readings in one message: committed together, far more than the stream holds.
    let readings: Vec<Value> = (0..2000)
        .map(|i| json!({"time": now - 7000 + i, "level_m": 55.0 + i as f64 * 0.001}))
        .collect();
    publish_all(
        mqtt.port(),
        vec![(
            format!("hydro/{MAIN}/data"),
            json!({"station": MAIN, "readings": readings})
                .to_string()
                .into_bytes(),
        )],
    )
    .await;
    let row = row_state(MAIN);
    tokio::task::spawn_blocking(move || {
        let mut browser = browser;
        let after = browser.wait_for("a resync", state, |v| v["resyncs"].as_u64() >= Some(1));
        assert!(
            after["live"].as_str().is_some_and(|c| c.contains("up")),
            "{after}"
        );
        browser.wait_for("the latest reading after the resync", &row, |v| {
            v["level"] == "57.00"
        });
    })
    .await
    .expect("join");
    drop(hw);
}

fn callout_config(mqtt: &Mosquitto, hook: &str) -> String {
    HwConfig::new(mqtt)
        .client_id("hw-board-callout")
        .http(&format!(r#"read_token = "{READ_TOKEN}""#))
        .body(&format!(
            r#"[[people]]
id = "wang"
name = "王队长"
phone = "13800000001"
superior = "li"
[[people]]
id = "li"
name = "李镇长"
phone = "13800000003"

[[teams]]
id = "pihe-east"
name = "淠河东岸巡堤队"
token = "{TEAM_TOKEN}"
members = ["wang"]
respond_within = "1s"
  [[teams.channels]]
  kind = "webhook"
  url = "{hook}"

[[stations]]
id = "{MAIN}"
name = "横排头"
river = "淠河"
team = "pihe-east"
stages = {{ guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }}
"#
        ))
        .build()
}

/// 叫应 on the board: an alert nobody answers is listed as unreached with who was called,
/// its callout log opens in the alert view, and the answer clears it, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_lists_unreached_alerts_and_their_callout_log_in_headless_chromium() {
    chromium_binary();
    let mqtt = Mosquitto::start(false);
    let rx = receiver::Receiver::start().await;
    let hw = Hydrowatch::start_ready(
        &callout_config(&mqtt, &rx.url("/hook")),
        Duration::from_secs(30),
    );
    publish_all(mqtt.port(), vec![msg(MAIN, now_s() - 60, 57.6, None)]).await;
    let browser = tokio::task::spawn_blocking(Chromium::launch)
        .await
        .expect("join");
    let url = format!("{}/", hw.base_url());
    let panel = "(() => { const p = document.getElementById('unreached-panel');
        if (!p) return null;
        return { hidden: p.hidden,
                 items: Array.from(document.querySelectorAll('#unreached li')).map(li => li.textContent),
                 alert: (document.querySelector('#alerts li[data-alert]') || {}).textContent || '',
                 loadId: window.__boardLoadId } })()";
    let (mut browser, shown) = tokio::task::spawn_blocking(move || {
        let mut browser = browser;
        browser.open(&url);
        browser.sign_in(READ_TOKEN);
        let shown = browser.wait_for("the superior called, on the board", panel, |v| {
            v["items"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|t| t.as_str().unwrap_or("").contains("李镇长"))
            })
        });
        (browser, shown)
    })
    .await
    .expect("join");
    assert_eq!(shown["hidden"], false, "{shown}");
    let item = shown["items"][0].as_str().expect("text");
    for needle in [
        "横排头",
        "王队长",
        "13800000001",
        "李镇长",
        "重呼",
        "呼叫上级",
    ] {
        assert!(item.contains(needle), "{needle:?} missing from {item:?}");
    }

    // The alert view opens the callout log.
    let log = "(() => { const b = document.querySelector('#alerts li[data-alert] .callouts-toggle');
        if (!b) return null;
        if (!document.querySelector('#alerts table.callouts')) b.click();
        return Array.from(document.querySelectorAll('#alerts table.callouts tr')).map(r => r.getAttribute('data-kind')) })()";
    let kinds = tokio::task::spawn_blocking(move || {
        let kinds = browser.wait_for("the callout log", log, |v| {
            v.as_array()
                .is_some_and(|k| k.iter().any(|k| k == "escalation"))
        });
        (browser, kinds)
    })
    .await
    .expect("join");
    let (mut browser, kinds) = kinds;
    for kind in ["page", "redial", "escalation", "delivered"] {
        assert!(
            kinds.as_array().unwrap().iter().any(|k| k == kind),
            "{kind} missing from {kinds}"
        );
    }

    // 李镇长 answers: the alert is no longer unreached.
    let alert_id = rx.delivered("/hook")[0]["alert_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = hw.http_post(
        &format!("/api/v1/alerts/{alert_id}/ack"),
        br#"{"person": "li"}"#,
        &[("Authorization", &format!("Bearer {TEAM_TOKEN}"))],
    );
    assert_eq!(status, 200, "{body}");
    let shots = target_dir();
    let after = tokio::task::spawn_blocking(move || {
        let after = browser.wait_for("the answered alert", panel, |v| {
            v["hidden"] == true && v["alert"].as_str().unwrap_or("").contains("李镇长")
        });
        browser.screenshot(&shots.join("board-callout.png"));
        after
    })
    .await
    .expect("join");
    assert_eq!(after["loadId"], shown["loadId"], "no reload");
    drop(hw);
}
