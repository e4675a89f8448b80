//! Wiring: starts every component of `hydrowatch run` as its own task, connected by channels,
//! and stops them together.
//!
//! ```text
//! broker ──► ingest::mqtt ───┐
//!              ▲   (decode)  ├─► writer ──────────┬─► sink (InfluxDB)
//! RTUs ──► ingest::sl651 ────┘   (rules, alerts)   ├─► notify::dispatch ──► teams
//!   ▲  ▲     (sl651::center)                       └─► api (status, SSE, board)
//!   │  └──── acks after commit (Receipt::Mqtt) ◄── writer
//!   └─────── reply frame after commit (Receipt::Committed) ◄── writer
//! ```
//!
//! The broker is outside (Mosquitto, EMQX...) or, with `[broker] embedded`, rumqttd in this
//! process ([`crate::broker`]), started before the MQTT source connects to it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, Notify};

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::ingest::mqtt::{self, SourceStatus};
use crate::journal;
use crate::notify::dispatch::Dispatcher;
use crate::sink::Forwarder;
use crate::writer::{Command, Hooks, Shared, Writer};

/// How often wall-clock rules (offline stations, escalation timers) are checked.
const TICK: Duration = Duration::from_secs(2);

/// Installs the Prometheus recorder once per process.
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Runs the daemon until `shutdown` resolves (Ok) or a component fails for good (Err).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with_routes(settings, shutdown, axum::Router::new()).await
}

/// [`run`] with extra HTTP routes merged into the API (the demo's webhook deliveries).
pub async fn run_with_routes(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    extra_routes: axum::Router,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    raise_open_file_limit();
    let metrics = metrics_handle();
    let http = reqwest::Client::builder()
        .user_agent(concat!("hydrowatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;

    let (commands, command_rx) = mpsc::channel::<Command>(crate::writer::QUEUE);
    let (live, _) = broadcast::channel(settings.http.event_buffer);
    let forwarder_wake = Arc::new(Notify::new());
    let dispatcher_wake = Arc::new(Notify::new());
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let source_status = Arc::new(SourceStatus::default());

    let writer = Writer::open(
        settings.clone(),
        shared.clone(),
        Hooks {
            acks: Some(ack_tx),
            live: live.clone(),
            forwarder: forwarder_wake.clone(),
            dispatcher: dispatcher_wake.clone(),
        },
    )
    .context("opening the journal")?;
    let mut writer_task = tokio::task::spawn_blocking(move || writer.run(command_rx));
    tracing::info!(path = %settings.journal.path.display(), "journal open");

    if settings.broker.embedded {
        // Before the MQTT source, so its first connection attempt finds the broker.
        crate::broker::start_with(&settings.broker, settings.limits.max_packet_bytes())
            .await
            .context("starting the embedded MQTT broker")?;
    }
    let (client, eventloop) = crate::broker::client(&settings)?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(mqtt::run(
        eventloop,
        client.clone(),
        settings.clone(),
        commands.clone(),
        source_status.clone(),
        ack_rx,
    ));

    if let Some(influx) = settings.influxdb.clone() {
        let forwarder = Forwarder::open(
            settings.clone(),
            influx,
            http.clone(),
            forwarder_wake.clone(),
        )?;
        tasks.spawn(forwarder.run());
    } else {
        tracing::info!("no [influxdb] section: readings stay in the journal");
    }
    // The MQTT channel publishes on a connection of its own, which can wait for PUBACKs.
    let notify_mqtt = settings
        .teams
        .iter()
        .flat_map(|t| &t.channels)
        .any(|c| c.kind == crate::config::ChannelKind::Mqtt)
        .then(|| crate::notify::mqtt::Publisher::start(&settings))
        .transpose()?;
    // Placed calls are recorded by the writer, in order with their reports.
    let dispatcher = Arc::new(Dispatcher::open(
        settings.clone(),
        http.clone(),
        notify_mqtt,
        dispatcher_wake.clone(),
        commands.clone(),
    )?);
    tasks.spawn(dispatcher.run());

    let ticker = commands.clone();
    let subscribed = source_status.clone();
    let grace = startup_grace(&settings);
    tasks.spawn(async move {
        // After downtime every station looks silent until the broker has delivered what it
        // queued for us: offline detection waits a moment after the first subscription.
        // Escalation and re-notification timers run from the start.
        let mut offline_from: Option<tokio::time::Instant> = None;
        let mut interval = tokio::time::interval(TICK);
        loop {
            interval.tick().await;
            if offline_from.is_none()
                && subscribed
                    .subscribed
                    .load(std::sync::atomic::Ordering::SeqCst)
            {
                offline_from = Some(tokio::time::Instant::now() + grace);
            }
            let check_offline = offline_from.is_some_and(|t| tokio::time::Instant::now() >= t);
            if ticker.send(Command::Tick { check_offline }).await.is_err() {
                return;
            }
        }
    });
    tasks.spawn(retention(settings.clone()));
    tasks.spawn(crate::bulletin::schedule::run(
        settings.clone(),
        http.clone(),
    ));

    if let (Some(centre), Some(listen)) = (
        crate::ingest::sl651::center_settings(&settings),
        settings.sl651.as_ref().and_then(|s| s.listen),
    ) {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("sl651.listen: cannot listen on {listen}"))?;
        tracing::info!(%listen, stations = centre.stations.len(), "SL 651 telemetry centre listening");
        tasks.spawn(crate::ingest::sl651::serve(
            listener,
            Arc::new(centre),
            settings.limits.clone(),
            commands.clone(),
            std::future::pending(),
        ));
    }

    let reader = journal::open(&settings.journal.path)?;
    let state = AppState {
        settings: settings.clone(),
        shared,
        writer: commands.clone(),
        live,
        source: source_status,
        reader: Arc::new(Mutex::new(reader)),
        metrics,
        guard: Arc::new(api::guard::Guard::new(&settings.http)),
    };
    let addr: SocketAddr = settings
        .http
        .listen
        .parse()
        .with_context(|| format!("http.listen `{}`", settings.http.listen))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(url = %format!("http://{addr}/"), "status board and API listening");
    tasks.spawn(async move {
        // With each client's address: failed token checks are limited per address.
        let app = api::router(state).merge(extra_routes);
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    drop(commands);

    tokio::select! {
        _ = shutdown => {
            tasks.abort_all();
            let _ = client.disconnect().await;
            Ok(())
        }
        result = &mut writer_task => {
            tasks.abort_all();
            match result {
                Ok(Ok(())) => anyhow::bail!("journal writer stopped"),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("journal writer failed; stopping so that nothing unacknowledged is lost")),
                Err(e) => Err(anyhow::anyhow!("journal writer panicked: {e}")),
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as a service should: every RTU
/// link is a socket, and the default soft limit (often 1024) would cap the SL 651 centre far
/// below what the machine allows.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(
                from = before,
                to = limit.rlim_cur,
                "raised the open-file limit"
            );
        }
    }
}

/// How long after the first subscription wall-clock rules wait: the shortest `offline_after`,
/// at most 30 s.
fn startup_grace(settings: &Settings) -> Duration {
    settings
        .stations
        .iter()
        .map(|s| s.offline_after)
        .min()
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(30))
}

/// Hourly: deletes readings received longer ago than the retention window (but never one
/// that has not yet been forwarded to InfluxDB), dead letters and delivered notifications
/// older than it, in small chunks that never hold the journal's write lock for long.
async fn retention(settings: Arc<Settings>) {
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        let s = settings.clone();
        let result = tokio::task::spawn_blocking(
            move || -> Result<journal::Pruned, journal::JournalError> {
                let conn = journal::open(&s.journal.path)?;
                let forwarded = match s.influxdb {
                    Some(_) => Some(crate::sink::forwarded_seq(&conn)?),
                    None => None,
                };
                let now = crate::model::now_millis();
                let before = now - s.journal.retention.as_millis() as i64;
                journal::prune(&conn, now, before, forwarded)
            },
        )
        .await;
        match result {
            Ok(Ok(n)) if n != journal::Pruned::default() => tracing::info!(
                readings = n.readings,
                dead_letters = n.dead_letters,
                notifications = n.notifications,
                sl651_frames = n.frames,
                callouts = n.callouts,
                bulletins = n.bulletins,
                "retention: old rows deleted"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}
