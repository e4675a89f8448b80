//! Integration-test harness for hydrowatch.
//!
//! Every helper starts its own process on free ports inside its own
//! `TempDir`, so tests can run in parallel; every process is killed when its
//! handle is dropped (also while unwinding from a failed assertion).
//!
//! Everything here is synchronous std code except the MQTT helpers
//! (`publish_all`, `MqttSubscriber`), which are async (rumqttc).  The blocking
//! HTTP helpers use a plain `std::net::TcpStream`, so they can be called from
//! inside `#[tokio::test]` too (no nested runtime).  Note that they do block the
//! calling thread; inside a current-thread `#[tokio::test]` that is fine as long
//! as no spawned task on that same runtime must make progress meanwhile; use
//! `#[tokio::test(flavor = "multi_thread")]` or `spawn_blocking` otherwise.
//!
//! Usage from a test file: `mod common; use common::*;`
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod config;
#[allow(unused_imports)] // not every test writes a configuration
pub use config::HwConfig;

// ---------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------

/// A TCP port that was free a moment ago, chosen below the kernel's ephemeral range
/// (32768 and up by default). Services that a test stops and starts again on the same port
/// (InfluxDB, Mosquitto, hydrowatch) would otherwise race every outgoing connection on the
/// machine, which takes its local port from that range.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(10_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 10000 and 32000");
}

/// Poll `cond` every 20 ms until it returns true; panic after `timeout`.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) {
    wait_until_msg(timeout, "condition", cond)
}

/// [`wait_until`] with a description for the panic message.
pub fn wait_until_msg(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("wait_until: timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async twin of [`wait_until`] (does not block the runtime thread).
pub async fn wait_until_async(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("wait_until_async: timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn port_open(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Send SIGTERM (via `kill(1)`, no libc dependency), wait up to `grace`,
/// then SIGKILL.  Always reaps the child.
fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL and reap.
fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    let f2 = f.try_clone().unwrap();
    (Stdio::from(f), Stdio::from(f2))
}

// ---------------------------------------------------------------------------
// Minimal blocking HTTP/1.0 client (std::net only)
// ---------------------------------------------------------------------------

/// Blocking HTTP request to 127.0.0.1:`port`.  `path` includes the query
/// string (already URL-encoded).  Returns (status, body).  Errors (connect
/// refused, timeout, garbage) are returned as `Err(String)`.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.set_write_timeout(Some(Duration::from_secs(30))).ok();
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "malformed HTTP response: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
            .map_err(|e| format!("bad chunk size {size_str:?}: {e}"))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

/// `http_request` that panics on transport errors.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path, b"", &[]).unwrap_or_else(|e| panic!("GET :{port}{path}: {e}"))
}

pub fn http_post(port: u16, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    http_request(port, "POST", path, body, headers)
        .unwrap_or_else(|e| panic!("POST :{port}{path}: {e}"))
}

/// GET `path` with `Authorization: Bearer {token}`: the status and the JSON body.
pub fn get_json_with_token(port: u16, path: &str, token: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = http_request(port, "GET", path, b"", &[("Authorization", &auth)])
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: {status}, not JSON ({e}): {body}"));
    (status, value)
}

/// Seconds since the Unix epoch, now.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------

pub struct Mosquitto {
    dir: TempDir,
    port: u16,
    persistence: bool,
    child: Option<Child>,
}

impl Mosquitto {
    /// Start a private mosquitto on a free port.  With `persistence = true`
    /// sessions/queued messages survive `stop()`+`restart()` (mosquitto writes
    /// its DB on SIGTERM; after `kill()` only the last autosave survives).
    pub fn start(persistence: bool) -> Mosquitto {
        Mosquitto::start_with(persistence, |_| String::new())
    }

    /// Like [`Mosquitto::start`], with more configuration lines for the listener (TLS files,
    /// `password_file`, `allow_anonymous false`), written by `extra` given the broker's own
    /// temporary directory.
    pub fn start_with(persistence: bool, extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("hw-mosquitto-")
            .tempdir()
            .unwrap();
        let port = free_port();
        // `user root`: when started as root, mosquitto 2.0 otherwise drops to
        // the `mosquitto` user and can't open its log/db in our 0700 temp dir.
        // Ignored when not running as root.
        let extra = extra(dir.path());
        let anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        let conf = format!(
            "user root\n\
             listener {port} 127.0.0.1\n\
             {extra}\n\
             {anonymous}\
             max_inflight_messages 1000\n\
             max_queued_messages 1000000\n\
             max_queued_bytes 0\n\
             persistence {persistence}\n\
             persistence_location {loc}/\n\
             log_dest file {log}\n",
            loc = dir.path().display(),
            log = dir.path().join("mosquitto.log").display(),
        );
        fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut m = Mosquitto {
            dir,
            port,
            persistence,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "mosquitto already running");
        let (out, err) = log_file(&self.dir.path().join("mosquitto.stdout"));
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn mosquitto (is /usr/sbin in PATH?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if port_open(self.port) {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "mosquitto exited ({st}) before listening on {}:\n{}",
                    self.port,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "mosquitto did not listen on {} within 10s:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
    /// mosquitto's own log + anything it printed to stdout/stderr.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("mosquitto.log"))
            + &read_lossy(&self.dir.path().join("mosquitto.stdout"))
    }
    /// Graceful stop (SIGTERM, wait; persistent DB is saved).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(10));
        }
    }
    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }
    /// Start again (after `stop`/`kill`, or stops it gracefully first) on the
    /// same port with the same config.  Without persistence the new broker
    /// knows nothing about previous sessions/subscriptions.
    pub fn restart(&mut self) {
        self.stop();
        // The port was just released by the old broker; wait until it's free.
        wait_until_msg(
            Duration::from_secs(5),
            "old mosquitto to release its port",
            || !port_open(self.port),
        );
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// InfluxDB 1.x
// ---------------------------------------------------------------------------

pub struct Influx {
    dir: TempDir,
    port: u16,
    rpc_port: u16,
    child: Option<Child>,
}

impl Influx {
    pub fn start() -> Influx {
        let dir = tempfile::Builder::new()
            .prefix("hw-influx-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let rpc_port = free_port();
        let d = dir.path();
        let conf = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[coordinator]

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = false
  log-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"#,
            d = d.display()
        );
        fs::write(d.join("influxdb.conf"), conf).unwrap();
        let mut i = Influx {
            dir,
            port,
            rpc_port,
            child: None,
        };
        i.spawn();
        i
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "influxd already running");
        let (out, err) = log_file(&self.dir.path().join("influxd.log"));
        let child = Command::new("influxd")
            .arg("-config")
            .arg(self.dir.path().join("influxdb.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn influxd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((204, _)) = http_request(self.port, "GET", "/ping", b"", &[]) {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "influxd exited ({st}) before /ping answered on {}:\n{}",
                    self.port,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "influxd /ping on {} not 204 within 20s:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("influxd.log"))
    }

    /// POST /query q=CREATE DATABASE "name"; panics unless 200.
    pub fn create_database(&self, name: &str) {
        let body = format!(
            "q={}",
            urlencoding::encode(&format!("CREATE DATABASE \"{name}\""))
        );
        let (st, resp) = http_post(
            self.port,
            "/query",
            body.as_bytes(),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        );
        assert_eq!(st, 200, "CREATE DATABASE {name}: {resp}");
        assert!(
            !resp.contains("\"error\""),
            "CREATE DATABASE {name}: {resp}"
        );
    }

    /// POST /write?db=DB&precision=PRECISION (line protocol); returns status+body.
    /// `precision` is e.g. "ns", "ms", "s".
    pub fn write_lines(&self, db: &str, precision: &str, lines: &str) -> (u16, String) {
        let path = format!(
            "/write?db={}&precision={}",
            urlencoding::encode(db),
            urlencoding::encode(precision)
        );
        http_post(
            self.port,
            &path,
            lines.as_bytes(),
            &[("Content-Type", "text/plain")],
        )
    }

    /// GET /query?db=DB&q=Q&epoch=ms; parsed JSON.  Panics on non-200 or on a
    /// statement-level `"error"`.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let path = format!(
            "/query?db={}&epoch=ms&q={}",
            urlencoding::encode(db),
            urlencoding::encode(q)
        );
        let (st, body) = http_get(self.port, &path);
        assert_eq!(st, 200, "influx query {q:?} on {db}: HTTP {st}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("influx query {q:?}: bad JSON ({e}): {body}"));
        if let Some(err) = v["results"][0].get("error") {
            panic!("influx query {q:?} on {db}: {err}");
        }
        v
    }

    /// `values` of the first series of the first result ([] when no series).
    /// Each row is `[time_ms, col1, col2, ...]`.
    pub fn rows(&self, db: &str, q: &str) -> Vec<Vec<serde_json::Value>> {
        let v = self.query(db, q);
        v["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Run e.g. `SELECT count(level_m) FROM water_level` and return the first
    /// numeric column of the first row (0 when there is no series, e.g. the
    /// measurement or database doesn't exist yet).
    pub fn count(&self, db: &str, q: &str) -> u64 {
        let v = self.query(db, q);
        v["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0)
    }

    /// Graceful stop (SIGTERM, wait).  Data directories are kept.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(15));
        }
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }
    /// Start again with the same config, dirs and ports (data kept).
    pub fn start_again(&mut self) {
        self.stop();
        wait_until_msg(
            Duration::from_secs(5),
            "old influxd to release its port",
            || !port_open(self.port),
        );
        self.spawn();
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// hydrowatch (the binary under test)
// ---------------------------------------------------------------------------

pub struct Hydrowatch {
    dir: TempDir,
    http_port: u16,
    config_path: PathBuf,
    child: Option<Child>,
}

impl Hydrowatch {
    /// Write `config_template` to `TEMPDIR/hydrowatch.toml` and run
    /// `hydrowatch run -c TEMPDIR/hydrowatch.toml` (RUST_LOG=info, stdout and
    /// stderr appended to `TEMPDIR/hydrowatch.log`).
    ///
    /// Placeholders substituted in the template before writing:
    /// * `{dir}`       – the temp dir path (no trailing slash), e.g.
    ///   `path = "{dir}/journal.sqlite"`; it survives `restart()`.
    /// * `{http_port}` – a free port chosen by the harness; use it as
    ///   `[http] listen = "127.0.0.1:{http_port}"`.
    ///
    /// Only these exact tokens are replaced (it's not `format!`), so other
    /// braces in the TOML are untouched.  Does not wait for readiness — call
    /// [`Hydrowatch::wait_ready`].
    pub fn start(config_template: &str) -> Hydrowatch {
        let dir = tempfile::Builder::new()
            .prefix("hw-hydrowatch-")
            .tempdir()
            .unwrap();
        let http_port = free_port();
        let config = config_template
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{http_port}", &http_port.to_string());
        let config_path = dir.path().join("hydrowatch.toml");
        fs::write(&config_path, config).unwrap();
        let mut h = Hydrowatch {
            dir,
            http_port,
            config_path,
            child: None,
        };
        h.spawn();
        h
    }

    /// `start` + `wait_ready(timeout)`.
    pub fn start_ready(config_template: &str, timeout: Duration) -> Hydrowatch {
        let mut h = Hydrowatch::start(config_template);
        h.wait_ready(timeout);
        h
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "hydrowatch already running");
        let (out, err) = log_file(&self.log_path());
        let child = Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
            .arg("run")
            .arg("-c")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn hydrowatch");
        self.child = Some(child);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn http_port(&self) -> u16 {
        self.http_port
    }
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hydrowatch.log")
    }
    /// Whole log (all runs, appended across restarts).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// `Some(exit status)` if the process has exited (it stays reaped).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Poll `GET /readyz` until 200.  Panics with the log tail on timeout or
    /// if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            match http_request(self.http_port, "GET", "/readyz", b"", &[]) {
                Ok((200, _)) => return,
                Ok((st, body)) => last = format!("HTTP {st}: {body}"),
                Err(e) => last = e,
            }
            if let Some(st) = self.exited() {
                panic!(
                    "hydrowatch exited ({st}) before /readyz was 200 (last: {last}); log tail:\n{}",
                    tail(&self.log(), 60)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "hydrowatch /readyz not 200 within {timeout:?} (last: {last}); log tail:\n{}",
                    tail(&self.log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Graceful stop (SIGTERM, wait up to 15s, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(15));
        }
    }
    /// SIGTERM and wait; returns the exit status (for shutdown tests).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        terminate(&mut c, grace);
        c.try_wait().ok().flatten()
    }
    /// SIGKILL + wait (crash simulation).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }
    /// Start again with the same config file and temp dir (journal kept) and
    /// the same HTTP port.  Kills (SIGKILL) the old process if still running;
    /// call `stop()` first for a graceful restart.  Does not wait for ready.
    pub fn restart(&mut self) {
        self.kill9();
        let port = self.http_port;
        wait_until_msg(
            Duration::from_secs(5),
            "old hydrowatch to release its HTTP port",
            || !port_open(port),
        );
        let _ = fs::OpenOptions::new()
            .append(true)
            .open(self.log_path())
            .and_then(|mut f| writeln!(f, "===== harness: restart ====="));
        self.spawn();
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
    }
    pub fn http_post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
        http_post(self.http_port, path, body, headers)
    }
}

impl Drop for Hydrowatch {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- hydrowatch log tail ({}) ----\n{}",
                self.log_path().display(),
                tail(&self.log(), 80)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// MQTT helpers (async, rumqttc, plain TCP)
// ---------------------------------------------------------------------------

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn random_client_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn mqtt_options(client_id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(100);
    o.set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
    o
}

/// Publish every (topic, payload) with QoS 1 and return once every PubAck has
/// arrived (then disconnect cleanly), with the simulator's publisher.
/// Panics on connection errors or if it takes longer than 120 s.
pub async fn publish_all(port: u16, messages: Vec<(String, Vec<u8>)>) {
    let total = messages.len();
    let fut = async {
        let url = format!("mqtt://127.0.0.1:{port}");
        let mut publisher = hydrowatch::sim::publish::Publisher::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("publish_all: {e}"));
        for (topic, payload) in messages {
            publisher
                .publish_raw(topic, payload)
                .await
                .unwrap_or_else(|e| panic!("publish_all: {e}"));
        }
        publisher
            .finish()
            .await
            .unwrap_or_else(|e| panic!("publish_all: {e}"));
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .unwrap_or_else(|_| {
            panic!("publish_all: timed out (120s) publishing {total} messages to :{port}")
        });
}

/// A subscriber whose event loop runs in a background task; received
/// publishes are forwarded to a channel.  Dropping it aborts the task.
pub struct MqttSubscriber {
    pub client: AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttSubscriber {
    /// Connect (clean session, random id), subscribe to `filter` with QoS 1
    /// and return once the SubAck is received.
    pub async fn connect(port: u16, filter: &str) -> MqttSubscriber {
        let opts = mqtt_options(&random_client_id("hw-sub"), port);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let suback = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => break,
                    Ok(_) => {}
                    Err(e) => panic!("MqttSubscriber: error before SubAck on :{port}: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), suback)
            .await
            .expect("MqttSubscriber: no SubAck in 10s");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        MqttSubscriber { client, rx, task }
    }

    /// Receive exactly `n` messages; panics if they don't arrive within `timeout`.
    pub async fn recv_n(&mut self, n: usize, timeout: Duration) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(n);
        let res = tokio::time::timeout(timeout, async {
            while out.len() < n {
                match self.rx.recv().await {
                    Some(m) => out.push(m),
                    None => break,
                }
            }
        })
        .await;
        if res.is_err() || out.len() < n {
            panic!(
                "MqttSubscriber: received {}/{n} messages within {timeout:?}",
                out.len()
            );
        }
        out
    }

    /// Whatever arrived so far (non-blocking).
    pub fn drain(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.push(m);
        }
        out
    }
}

impl Drop for MqttSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
