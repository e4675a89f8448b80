//! The flood scenario: a river with three level gauges upstream to downstream and a rain gauge
//! above them. A rainstorm passes over the basin; a flood wave follows it downstream with a lag,
//! crossing the guard and warning stages and receding; the middle gauge goes silent for two
//! hours on the falling limb; the downstream gauge reports one impossible spike.
//!
//! Pure and deterministic: the same seed and start give the same readings. The demo's
//! configuration ([`demo_stations_toml`]) is written from the same numbers, so the stages the
//! wave crosses are the stages the rules check.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{Millis, Reading};

/// Reporting interval of every scenario gauge.
pub const INTERVAL: Duration = Duration::from_secs(300);
/// Simulated length of one scenario run.
pub const DURATION: Duration = Duration::from_secs(12 * 3600);

const HOUR_MS: f64 = 3_600_000.0;

/// A level gauge on the scenario's river.
#[derive(Debug, Clone, PartialEq)]
pub struct RiverGauge {
    pub id: &'static str,
    pub name: &'static str,
    /// Level before the storm, metres.
    pub base_m: f64,
    pub guard_m: f64,
    pub warning_m: f64,
    pub guaranteed_m: f64,
    /// Crest of the flood wave, metres.
    pub crest_m: f64,
    /// Hours after the start of the run when the crest passes.
    pub crest_h: f64,
}

/// The rain gauge.
pub const RAIN_GAUGE: (&str, &str) = ("62304800", "大店岗雨量站");

/// The river, upstream to downstream. The wave crosses warning at the upper two gauges and
/// guard only at the lowest, where the floodplain has flattened it.
pub const RIVER: [RiverGauge; 3] = [
    RiverGauge {
        id: "62303500",
        name: "响洪甸",
        base_m: 100.0,
        guard_m: 101.5,
        warning_m: 102.5,
        guaranteed_m: 103.5,
        crest_m: 103.0,
        crest_h: 4.0,
    },
    RiverGauge {
        id: "62304000",
        name: "横排头",
        base_m: 50.0,
        guard_m: 51.5,
        warning_m: 52.5,
        guaranteed_m: 53.8,
        crest_m: 52.9,
        crest_h: 5.5,
    },
    RiverGauge {
        id: "62304500",
        name: "六安",
        base_m: 20.0,
        guard_m: 21.2,
        warning_m: 22.0,
        guaranteed_m: 23.0,
        crest_m: 21.7,
        crest_h: 7.0,
    },
];

/// The gauge that goes silent, and when (hours after the start of the run).
pub const OFFLINE: (&str, f64, f64) = ("62304000", 8.0, 10.0);
/// The gauge that reports a spike, when, and how far above the river.
pub const SPIKE: (&str, f64, f64) = ("62304500", 2.0, 4.5);
/// The storm: start and end hours, and the peak rain rate in mm per hour.
const STORM: (f64, f64, f64) = (0.5, 3.5, 48.0);

/// One run of the scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Observation time of the first reading.
    pub start: Millis,
    /// Seeds the measurement noise.
    pub seed: u64,
}

impl Scenario {
    /// Every reading of one run, in time order, gauges upstream to downstream within a step.
    pub fn readings(&self) -> Vec<Reading> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let step = INTERVAL.as_millis() as i64;
        let steps = (DURATION.as_millis() as i64) / step;
        let mut out = Vec::new();
        for i in 0..steps {
            let time = self.start + i * step;
            let hours = (i * step) as f64 / HOUR_MS;
            let mut rain = Reading::empty(RAIN_GAUGE.0, time);
            rain.rain_mm = Some(round1(
                rain_rate(hours) * INTERVAL.as_secs_f64() / 3600.0 * rng.gen_range(0.8..1.2),
            ));
            rain.rain_period_s = Some(INTERVAL.as_secs() as u32);
            out.push(rain);
            for gauge in &RIVER {
                if gauge.id == OFFLINE.0 && (OFFLINE.1..OFFLINE.2).contains(&hours) {
                    continue;
                }
                let mut level = gauge.base_m
                    + (gauge.crest_m - gauge.base_m) * wave(hours - gauge.crest_h)
                    + rng.gen_range(-0.01..0.01);
                if gauge.id == SPIKE.0 && (hours - SPIKE.1).abs() < 1e-9 {
                    level += SPIKE.2;
                }
                let mut r = Reading::empty(gauge.id, time);
                r.level_m = Some(round3(level));
                out.push(r);
            }
        }
        out
    }
}

/// Rain rate in mm/h at `hours`: a triangular storm.
fn rain_rate(hours: f64) -> f64 {
    let (from, to, peak) = STORM;
    if !(from..to).contains(&hours) {
        return 0.0;
    }
    let middle = (from + to) / 2.0;
    peak * (1.0 - (hours - middle).abs() / (middle - from))
}

/// Shape of the flood wave, 1 at the crest: a quick rise and a slower recession, as rivers do.
fn wave(hours_from_crest: f64) -> f64 {
    let x = hours_from_crest;
    if x < 0.0 {
        (-(x / 1.2).powi(2)).exp()
    } else {
        (-(x / 1.8).powi(2)).exp()
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The scenario stations that report over SL 651 in the demo (the others over MQTT): the
/// rain gauge and the upstream level gauge, as remote gauges in the hills often do.
pub const SL651_STATIONS: [&str; 2] = [RAIN_GAUGE.0, RIVER[0].id];

/// The `[[stations]]` of the scenario for a hydrowatch configuration: Chinese stage set,
/// rise-rate and sensor rules, rain windows on the rain gauge, all paging `team`. Stations
/// named in `sl651` get their SL 651 address (`00` + id).
pub fn demo_stations_toml(team: &str, offline_after: &str, sl651: &[&str]) -> String {
    let address = |id: &str| match sl651.contains(&id) {
        true => format!("sl651_address = \"00{id}\"\n"),
        false => String::new(),
    };
    let mut toml = String::new();
    toml.push_str(&format!(
        "[[stations]]\nid = \"{}\"\nname = \"{}\"\nriver = \"淠河\"\nteam = \"{team}\"\n\
         interval = \"5m\"\noffline_after = \"{offline_after}\"\n{}\
         rain = {{ \"1h\" = 30.0, \"3h\" = 50.0 }}\n\
         rain_levels = [\n  \
         {{ level = \"prepare\", name = \"准备转移\", windows = {{ \"1h\" = 30.0, \"3h\" = 50.0 }} }},\n  \
         {{ level = \"evacuate\", name = \"立即转移\", windows = {{ \"1h\" = 40.0, \"3h\" = 60.0 }} }},\n]\n\n",
        RAIN_GAUGE.0,
        RAIN_GAUGE.1,
        address(RAIN_GAUGE.0)
    ));
    for g in &RIVER {
        toml.push_str(&format!(
            "[[stations]]\nid = \"{id}\"\nname = \"{name}\"\nriver = \"淠河\"\nteam = \"{team}\"\n\
             interval = \"5m\"\noffline_after = \"{offline_after}\"\n{sl651}\
             stages = {{ guard = {g:.2}, warning = {w:.2}, guaranteed = {q:.2} }}\n\
             rise_rate_m_per_h = 0.8\nmax_step_m = 1.0\nlevel_range = [{lo:.1}, {hi:.1}]\n\n",
            id = g.id,
            name = g.name,
            g = g.guard_m,
            w = g.warning_m,
            q = g.guaranteed_m,
            lo = g.base_m - 10.0,
            hi = g.base_m + 10.0,
            sl651 = address(g.id),
        ));
    }
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Vec<Reading> {
        Scenario {
            start: 1_700_000_000_000,
            seed: 7,
        }
        .readings()
    }

    fn levels(readings: &[Reading], id: &str) -> Vec<(Millis, f64)> {
        readings
            .iter()
            .filter(|r| r.station == id)
            .filter_map(|r| Some((r.time, r.level_m?)))
            .collect()
    }

    /// First time a gauge's (spike-free) level reaches `level`.
    fn first_at_or_above(series: &[(Millis, f64)], level: f64, max: f64) -> Option<Millis> {
        series
            .iter()
            .find(|(_, l)| *l >= level && *l < max)
            .map(|(t, _)| *t)
    }

    #[test]
    fn same_seed_same_readings_other_seed_other_noise() {
        assert_eq!(run(), run());
        let other = Scenario {
            start: 1_700_000_000_000,
            seed: 8,
        }
        .readings();
        assert_ne!(run(), other);
    }

    #[test]
    fn readings_are_in_time_order_at_the_interval() {
        let readings = run();
        assert!(readings.windows(2).all(|w| w[0].time <= w[1].time));
        let upper = levels(&readings, RIVER[0].id);
        assert_eq!(upper.len() as u64, DURATION.as_secs() / INTERVAL.as_secs());
        assert!(upper.windows(2).all(|w| w[1].0 - w[0].0 == 300_000));
    }

    #[test]
    fn the_wave_crosses_guard_and_warning_then_recedes_travelling_downstream() {
        let readings = run();
        let mut guard_times = Vec::new();
        for g in &RIVER {
            let series = levels(&readings, g.id);
            let spike_free = g.base_m + 4.0;
            let guard = first_at_or_above(&series, g.guard_m, spike_free)
                .unwrap_or_else(|| panic!("{} never reaches guard", g.id));
            guard_times.push(guard);
            let peak = series
                .iter()
                .filter(|(_, l)| *l < spike_free)
                .map(|(_, l)| *l)
                .fold(f64::MIN, f64::max);
            assert!(peak < g.guaranteed_m, "{} stays below guaranteed", g.id);
            let (_, last) = series.last().expect("readings");
            assert!(
                *last < g.guard_m - 0.5,
                "{} recedes below guard ({last})",
                g.id
            );
        }
        assert!(
            guard_times.windows(2).all(|w| w[0] < w[1]),
            "lag downstream"
        );
        let warned = RIVER
            .iter()
            .filter(|g| {
                levels(&readings, g.id)
                    .iter()
                    .any(|(_, l)| *l >= g.warning_m && *l < g.base_m + 4.0)
            })
            .count();
        assert!(warned >= 1, "at least one gauge crosses warning");
    }

    #[test]
    fn the_storm_exceeds_the_demo_rain_windows() {
        let readings = run();
        let rain: Vec<(Millis, f64)> = readings
            .iter()
            .filter(|r| r.station == RAIN_GAUGE.0)
            .filter_map(|r| Some((r.time, r.rain_mm?)))
            .collect();
        let window = |hours: i64| {
            rain.iter()
                .map(|(t, _)| {
                    rain.iter()
                        .filter(|(u, _)| *u <= *t && *u > *t - hours * 3_600_000)
                        .map(|(_, mm)| mm)
                        .sum::<f64>()
                })
                .fold(0.0, f64::max)
        };
        assert!(window(1) >= 30.0, "1h max {}", window(1));
        assert!(window(3) >= 50.0, "3h max {}", window(3));
        // The rain gauge's 立即转移 level (3h 60 mm) is reached too.
        assert!(window(3) >= 60.0, "3h max {}", window(3));
        let (_, last) = rain.last().expect("rain");
        assert_eq!(*last, 0.0, "the storm has passed by the end");
    }

    #[test]
    fn one_gauge_goes_silent_and_one_spikes() {
        let readings = run();
        let mill = levels(&readings, OFFLINE.0);
        let gap = mill
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .expect("readings");
        assert_eq!(gap, 2 * 3_600_000 + 300_000, "two hours without a reading");
        let delta = &RIVER[2];
        let spikes = levels(&readings, SPIKE.0)
            .iter()
            .filter(|(_, l)| *l > delta.base_m + 4.0)
            .count();
        assert_eq!(spikes, 1);
    }

    #[test]
    fn the_demo_stations_are_a_valid_configuration() {
        let toml = format!(
            "[[teams]]\nid = \"t\"\n\n{}",
            demo_stations_toml("t", "5s", &SL651_STATIONS)
        );
        let settings = crate::config::load_from_str(&toml).expect("valid");
        assert_eq!(settings.stations.len(), 4);
        let speaking: Vec<String> = settings
            .stations
            .iter()
            .filter_map(|s| s.sl651_address.map(|a| a.to_string()))
            .collect();
        assert_eq!(speaking, ["0062304800", "0062303500"]);
        assert_eq!(
            settings.stations[1].stages.stages[1].level_m,
            RIVER[0].warning_m
        );
    }
}
