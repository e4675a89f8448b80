//! `hydrowatch demo`: the whole system on embedded defaults, for someone who has no broker and
//! no InfluxDB yet. One process runs
//!
//! - the embedded MQTT broker (rumqttd) on 127.0.0.1:1883, or a free port when that is taken;
//! - hydrowatch itself, exactly as `run` does, with the journal as the only store;
//! - the flood scenario, looping, at a speed that shows a whole flood in about a minute: two
//!   of its gauges play SL 651 RTUs against hydrowatch's telemetry centre (127.0.0.1:5005,
//!   or a free port), the others publish over MQTT;
//! - a demo webhook receiver standing in for a patrol team's phone: every alert it receives is
//!   logged and listed at `GET /api/v1/demo/deliveries`.
//!
//! The scenario's observation times start 30 days back and move forward 12 hours a minute, so
//! for the first hour every reading lies in the past, like a replay of last month's flood
//! season. After that the simulator never publishes a reading before its time, and the demo
//! slows to real time (restart it to see the flood again).

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;

use super::publish::Publisher;
use super::{align, publish_paced, scenario, Pacer};
use crate::model::now_millis;

/// How many deliveries the demo receiver keeps for the board.
const KEEP_DELIVERIES: usize = 200;
/// How far back the scenario's observation times start.
const HISTORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// `hydrowatch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the journal in this directory (default: a temporary directory, deleted on exit).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Speed-up of the simulated flood: 720 plays its 12 hours in one minute.
    #[arg(long, default_value_t = 720.0)]
    pub speed: f64,
    /// Seed of the measurement noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Webhook deliveries the demo receiver has seen, newest first.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<VecDeque<serde_json::Value>>>);

impl Deliveries {
    fn push(&self, event: serde_json::Value) {
        if let Ok(mut list) = self.0.lock() {
            list.push_front(event);
            list.truncate(KEEP_DELIVERIES);
        }
    }

    fn list(&self) -> Vec<serde_json::Value> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.speed.is_finite() && args.speed > 0.0,
        "--speed must be above 0"
    );
    let (_temp, dir) = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating --data-dir {}", dir.display()))?;
            (None, dir.clone())
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("hydrowatch-demo-")
                .tempdir()
                .context("creating a temporary directory for the journal")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };

    let deliveries = Deliveries::default();
    let hook = start_receiver(deliveries.clone()).await?;
    let broker_port = free_port_or(1883);
    let sl651_port = free_port_or(5005);
    let toml = config_toml(
        broker_port,
        sl651_port,
        &dir.join("hydrowatch-demo.db"),
        hook,
    );
    let mut settings = crate::config::load_from_str(&toml).map_err(|problems| {
        anyhow::anyhow!(
            "the demo configuration is invalid (check HYDROWATCH__* variables):\n{problems}"
        )
    })?;
    // HYDROWATCH__BROKER__LISTEN may move the broker; hydrowatch follows it.
    let listen: SocketAddr = settings
        .broker
        .listen
        .parse()
        .with_context(|| format!("broker.listen `{}`", settings.broker.listen))?;
    settings.mqtt.host = loopback_if_unspecified(listen).ip().to_string();
    settings.mqtt.port = listen.port();
    let http: SocketAddr = settings
        .http
        .listen
        .parse()
        .with_context(|| format!("http.listen `{}`", settings.http.listen))?;
    let broker_url = format!("mqtt://{}", loopback_if_unspecified(listen));
    let centre = settings
        .sl651
        .as_ref()
        .and_then(|s| s.listen)
        .map(|a| loopback_if_unspecified(a).to_string())
        .context("the demo configuration has no sl651.listen")?;
    let board = format!("http://{}/", loopback_if_unspecified(http));
    tracing::info!(journal = %dir.display(), broker = %broker_url, "starting the demo");

    let routes = Router::new()
        .route("/api/v1/demo/deliveries", get(list_deliveries))
        .with_state(deliveries);
    let daemon = crate::daemon::run_with_routes(settings, crate::shutdown::signal(), routes);
    let simulator = simulate(broker_url, centre, board, args.speed, args.seed);
    tokio::pin!(daemon);
    tokio::select! {
        result = &mut daemon => result,
        result = simulator => match result {
            // The simulator runs until interrupted; if it stops, the demo has nothing to show.
            Ok(()) => daemon.await,
            Err(e) => Err(e.context("the gauge simulator failed")),
        },
    }
}

/// Waits until hydrowatch is subscribed (a reading published before would be lost: the
/// broker keeps nothing for a session that does not exist yet), then loops the scenario:
/// the SL 651 stations' readings as RTU frames to the centre, the others over MQTT, each
/// stream paced from the same first observation time.
async fn simulate(
    broker: String,
    centre: String,
    board: String,
    speed: f64,
    seed: u64,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let ready = format!("{board}readyz");
    loop {
        let ok = http
            .get(&ready)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!("demo ready: open {board} (alerts delivered to the demo patrol team: {board}api/v1/demo/deliveries)");
    let mut publisher = Publisher::connect(&broker).await?;
    let mut pacer = Pacer::new(speed);
    let mut rtu_pacer = Pacer::new(speed);
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").context("the demo's RTU time zone")?;
    let run_ms = scenario::DURATION.as_millis() as i64;
    let mut start = align(now_millis() - HISTORY.as_millis() as i64);
    let mut run = 0u64;
    loop {
        tracing::info!(
            run = run + 1,
            "simulated flood: rain on the headwaters, a wave travelling down the 淠河 (Pi River)"
        );
        let readings = scenario::Scenario {
            start,
            seed: seed.wrapping_add(run),
        }
        .readings();
        let (rtu, mqtt): (Vec<_>, Vec<_>) = readings
            .into_iter()
            .partition(|r| scenario::SL651_STATIONS.contains(&r.station.as_str()));
        let (published, played) = tokio::join!(
            publish_paced(&mut publisher, &mut pacer, mqtt, 1),
            super::sl651::play(&centre, &mut rtu_pacer, rtu, &tz),
        );
        published?;
        played?;
        start += run_ms;
        run += 1;
    }
}

/// `preferred` when free (1883 for the broker, 5005 for the SL 651 centre), so gauges and
/// tools find them where they expect; else any free port.
fn free_port_or(preferred: u16) -> u16 {
    if TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return preferred;
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(preferred)
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// The demo's configuration. `[http]` is left to the defaults and the environment, so
/// `HYDROWATCH__HTTP__LISTEN` moves the board.
fn config_toml(
    broker_port: u16,
    sl651_port: u16,
    journal: &std::path::Path,
    hook: SocketAddr,
) -> String {
    // TOML basic strings: escape backslashes (Windows paths) and quotes.
    let journal = journal
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
client_id = "hydrowatch-demo"

[broker]
embedded = true
listen = "127.0.0.1:{broker_port}"

[journal]
path = "{journal}"

[sl651]
listen = "127.0.0.1:{sl651_port}"

[rules]
# The scenario's observations lie in the past; they are news in the demo, not late.
late_after = "400d"

[[teams]]
id = "demo-patrol"
name = "淠河巡堤队（演示）"
token = "demo"
language = "zh"
  [[teams.channels]]
  kind = "webhook"
  url = "http://{hook}/hook"

{stations}"#,
        // Silence is judged on the wall clock; at 720x five seconds is an hour of river time.
        stations = scenario::demo_stations_toml("demo-patrol", "5s", &scenario::SL651_STATIONS),
    )
}

/// The demo patrol team's "phone": an HTTP server on a free loopback port.
async fn start_receiver(deliveries: Deliveries) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("starting the demo webhook receiver")?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(deliveries);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "demo webhook receiver stopped");
        }
    });
    Ok(addr)
}

async fn receive(State(deliveries): State<Deliveries>, Json(event): Json<serde_json::Value>) {
    let text = |key: &str| {
        event
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    tracing::info!(
        target: "hydrowatch::demo::patrol",
        state = %text("state"),
        station = %text("station"),
        rule = %text("rule"),
        stage = %text("stage"),
        observed_at = %text("observed_at"),
        "patrol team notified: {}",
        text("message")
    );
    deliveries.push(event);
}

/// `GET /api/v1/demo/deliveries`: what the demo patrol team received, newest first.
async fn list_deliveries(State(deliveries): State<Deliveries>) -> Json<Vec<serde_json::Value>> {
    Json(deliveries.list())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_valid_and_embedded() {
        let toml = config_toml(
            1883,
            5005,
            std::path::Path::new("/tmp/x \"y\"/demo.db"),
            "127.0.0.1:9000".parse().expect("addr"),
        );
        let settings = crate::config::load_from_str(&toml).expect("valid");
        assert!(settings.broker.embedded);
        assert!(settings.influxdb.is_none(), "the journal is the only store");
        assert_eq!(settings.stations.len(), 4);
        assert_eq!(
            settings.sl651.as_ref().and_then(|s| s.listen),
            "127.0.0.1:5005".parse().ok()
        );
        assert_eq!(settings.teams[0].channels.len(), 1);
        assert_eq!(
            settings.journal.path,
            std::path::PathBuf::from("/tmp/x \"y\"/demo.db")
        );
    }
}
