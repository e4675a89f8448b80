//! The gauge simulator: a flood scenario on a river, or a replay of a CSV file, published to
//! any MQTT broker as stations would.
//!
//! - [`scenario`]: the simulated river, storm and flood wave (pure, seeded);
//! - [`replay`]: reading a CSV file of observations;
//! - [`publish`]: QoS 1 publishing that waits for every acknowledgement;
//! - [`sl651`]: the scenario played by SL 651 RTUs against a telemetry centre over TCP;
//! - [`demo`]: `hydrowatch demo`, the whole system fed by the scenario.

pub mod demo;
pub mod publish;
pub mod replay;
pub mod scenario;
pub mod sl651;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::model::{now_millis, Millis, Reading};
use publish::Publisher;

/// `hydrowatch simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Broker URL (mqtt:// or mqtts://, user:password@ allowed).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,

    /// Replay this CSV file instead of running the flood scenario.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Replay: the column with the observation time (RFC 3339, naive local, Unix seconds).
    #[arg(long, default_value = "time", requires = "replay")]
    pub time_column: String,
    /// Replay: the column with the value.
    #[arg(long, default_value = "value", requires = "replay")]
    pub value_column: String,
    /// Replay: the station id for every row (else read from --station-column).
    #[arg(long, requires = "replay")]
    pub station: Option<String>,
    /// Replay: the column with the station id, when --station is not given.
    #[arg(long, default_value = "station", requires = "replay")]
    pub station_column: String,
    /// Replay: multiply every value by this (0.3048 turns feet into metres).
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    pub scale: f64,
    /// Replay: which element the value is.
    #[arg(long, value_enum, default_value = "level_m", requires = "replay")]
    pub element: replay::Element,
    /// Replay: keep only rows whose column FILTER_COLUMN equals --filter-value.
    #[arg(long, requires_all = ["replay", "filter_value"])]
    pub filter_column: Option<String>,
    /// Replay: the value --filter-column must have (e.g. `A` for approved USGS data).
    #[arg(long, requires = "filter_column")]
    pub filter_value: Option<String>,
    /// Replay: time zone of times written without an offset.
    #[arg(long, default_value = "UTC", requires = "replay")]
    pub time_zone: String,

    /// Play the flood scenario as SL 651 RTUs against the telemetry centre at HOST:PORT
    /// (timed, added and hourly reports; each waits for the centre's answer) instead of
    /// publishing to a broker. The scenario's stations use addresses `00` + their id.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "replay")]
    pub sl651: Option<String>,
    /// SL 651: the zone of the RTUs' clocks (frames carry local time).
    #[arg(long, default_value = "Asia/Shanghai", requires = "sl651")]
    pub sl651_time_zone: String,

    /// Scenario: seed of the measurement noise.
    #[arg(long, default_value_t = 1, conflicts_with = "replay")]
    pub seed: u64,
    /// Scenario: how many 12-hour runs to publish back to back; 0 runs until interrupted.
    #[arg(long, default_value_t = 1, conflicts_with = "replay")]
    pub loops: u64,
    /// Scenario: observation time of the first reading (RFC 3339); default: the first run
    /// ends now.
    #[arg(long, conflicts_with = "replay")]
    pub start: Option<String>,

    /// Speed-up over observation time: 60 publishes an hour of readings per minute; 0 as
    /// fast as the broker acknowledges.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Publish without waiting between readings (same as --speed 0).
    #[arg(long)]
    pub as_fast_as_possible: bool,
    /// Readings per message (a JSON array), per station.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
}

/// Publishes until done; every message is acknowledged by the broker before this returns.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let speed = if args.as_fast_as_possible {
        0.0
    } else {
        args.speed
    };
    anyhow::ensure!(
        speed.is_finite() && speed >= 0.0,
        "--speed must be 0 or more"
    );
    let batch = args.batch as usize;
    let mut pacer = Pacer::new(speed);
    if let Some(path) = &args.replay {
        let spec = replay::ReplaySpec {
            path: path.clone(),
            time_column: args.time_column.clone(),
            value_column: args.value_column.clone(),
            station: args.station.clone(),
            station_column: args.station_column.clone(),
            scale: args.scale,
            element: args.element,
            filter: args.filter_column.clone().zip(args.filter_value.clone()),
            time_zone: jiff::tz::TimeZone::get(&args.time_zone)
                .with_context(|| format!("--time-zone `{}`", args.time_zone))?,
        };
        let mut readings = replay::read(&spec)?;
        // Stations report in time order; a file sorted otherwise is replayed as they would.
        readings.sort_by_key(|r| r.time);
        let mut publisher = Publisher::connect(&args.broker).await?;
        tracing::info!(file = %path.display(), readings = readings.len(), speed, "replaying");
        publish_paced(&mut publisher, &mut pacer, readings, batch).await?;
        finish(publisher).await
    } else {
        let run_ms = scenario::DURATION.as_millis() as i64;
        let mut start = match &args.start {
            Some(text) => replay::parse_time(text, &jiff::tz::TimeZone::UTC)
                .map_err(|e| anyhow::anyhow!("--start: {e}"))?,
            None => align(now_millis() - run_ms),
        };
        if let Some(centre) = &args.sl651 {
            let tz = jiff::tz::TimeZone::get(&args.sl651_time_zone)
                .with_context(|| format!("--sl651-time-zone `{}`", args.sl651_time_zone))?;
            let mut run = 0u64;
            let mut answered = 0u64;
            while args.loops == 0 || run < args.loops {
                let readings = scenario::Scenario {
                    start,
                    seed: args.seed.wrapping_add(run),
                }
                .readings();
                tracing::info!(run = run + 1, speed, %centre, "playing the flood scenario as SL 651 RTUs");
                answered += sl651::play(centre, &mut pacer, readings, &tz).await?;
                start += run_ms;
                run += 1;
            }
            tracing::info!(
                frames = answered,
                "done: every frame answered by the centre"
            );
            return Ok(());
        }
        let mut publisher = Publisher::connect(&args.broker).await?;
        let mut run = 0u64;
        while args.loops == 0 || run < args.loops {
            let readings = scenario::Scenario {
                start,
                seed: args.seed.wrapping_add(run),
            }
            .readings();
            tracing::info!(run = run + 1, speed, "publishing the flood scenario");
            publish_paced(&mut publisher, &mut pacer, readings, batch).await?;
            start += run_ms;
            run += 1;
        }
        finish(publisher).await
    }
}

async fn finish(publisher: Publisher) -> anyhow::Result<()> {
    let sent = publisher.finish().await?;
    tracing::info!(messages = sent, "done: every message acknowledged");
    Ok(())
}

/// Rounds down to the scenario's reporting interval, so readings fall on the 5-minute marks.
fn align(ms: Millis) -> Millis {
    let step = scenario::INTERVAL.as_millis() as i64;
    ms - ms.rem_euclid(step)
}

/// Publishes `readings` (in time order) at the pacer's speed, `batch` readings of a station
/// per message. With batching, a station's readings wait until its batch is full, so
/// `batch` > 1 suits fast replays.
pub async fn publish_paced(
    publisher: &mut Publisher,
    pacer: &mut Pacer,
    readings: Vec<Reading>,
    batch: usize,
) -> anyhow::Result<()> {
    let mut pending: HashMap<String, Vec<Reading>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for reading in readings {
        pacer.wait_for(reading.time).await;
        let station = reading.station.clone();
        let buffer = pending.entry(station.clone()).or_insert_with(|| {
            order.push(station.clone());
            Vec::new()
        });
        buffer.push(reading);
        if buffer.len() >= batch {
            publisher.publish(&station, buffer).await?;
            buffer.clear();
        }
    }
    for station in order {
        if let Some(rest) = pending.get(&station).filter(|b| !b.is_empty()) {
            publisher.publish(&station, rest).await?;
        }
    }
    Ok(())
}

/// Maps observation time to wall-clock time at a speed-up, anchored at the first reading.
/// Never publishes a reading before its observation time has come on the wall clock:
/// gauges do not report the future, and hydrowatch rejects readings from it.
pub struct Pacer {
    speed: f64,
    origin: Option<(Millis, tokio::time::Instant)>,
}

impl Pacer {
    /// `speed` 0 means no waiting.
    pub fn new(speed: f64) -> Pacer {
        Pacer {
            speed,
            origin: None,
        }
    }

    /// Waits until a reading observed at `time` is due.
    pub async fn wait_for(&mut self, time: Millis) {
        let ahead_of_clock = time - now_millis();
        if ahead_of_clock > 0 {
            tokio::time::sleep(Duration::from_millis(ahead_of_clock as u64)).await;
        }
        if self.speed <= 0.0 {
            return;
        }
        let (t0, real0) = *self
            .origin
            .get_or_insert_with(|| (time, tokio::time::Instant::now()));
        let offset_ms = (time - t0).max(0) as f64 / self.speed;
        tokio::time::sleep_until(real0 + Duration::from_secs_f64(offset_ms / 1000.0)).await;
    }
}
