//! The daily water and rain bulletin (水雨情日报): what each station did during one
//! hydrological day (08:00 to 08:00 local by default), per basin the average rain, the day's
//! alerts with who answered and how fast, and which stations sent fewer readings than their
//! interval implies.
//!
//! Why it exists: the flood-control office reports the day every morning, and the same
//! document must come out for any past day, so it is computed from the journal alone (a
//! replay of a past flood gives that flood's bulletins). [`compute`] is pure: it takes the
//! day's readings and alert events ([`DayData`], loaded by [`load`] through journal queries)
//! and gives a [`Bulletin`]; [`render`] writes it as markdown or as a printable page with
//! charts ([`chart`]); [`schedule`] writes each day's bulletin after the day ends and sends
//! it to the teams that asked for it.
//!
//! Nothing in a bulletin depends on the wall clock, so regenerating a day gives the same
//! document, byte for byte, as long as the journal holds the same data.

pub mod chart;
pub mod image;
pub mod render;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::alerts::{Alert, AlertEvent, AlertState};
use crate::config::{Settings, Station};
use crate::journal::{self, JournalError};
use crate::model::{format_time, Millis, Quality, Reading};
use crate::rules::rain;

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;
/// How far back dry-spell days are counted from the journal.
const DRY_LOOKBACK_DAYS: i64 = 120;
/// A day-end level within this of the day before reads as steady (平).
const STEADY_M: f64 = 0.01;

/// Errors while making a bulletin.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("`{0}` is not a date (YYYY-MM-DD)")]
    Date(String),
    #[error("the hydrological day {0} has not ended yet")]
    NotEnded(String),
    #[error("the hydrological day {0} cannot be placed in the configured time zone")]
    Bounds(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// One hydrological day's bulletin. Field meanings: docs/bulletin.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bulletin {
    /// The local date the day starts on (SL 323 names the day's total by the 08:00 closing it;
    /// this is the day before that).
    pub date: String,
    /// `(from, to]`, RFC 3339 in the configured time zone.
    pub from: String,
    pub to: String,
    pub time_zone: String,
    pub day_start_hour: u8,
    pub stations: Vec<StationDay>,
    pub basins: Vec<BasinDay>,
    /// Stations with at least 50 mm (暴雨) and at least 100 mm (大暴雨) in the day.
    pub stations_rain_50mm: usize,
    pub stations_rain_100mm: usize,
    pub alerts: Vec<AlertOfDay>,
    /// Stations that sent fewer readings than their interval implies.
    pub incomplete: Vec<Incomplete>,
}

/// One station's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationDay {
    pub id: String,
    pub name: String,
    pub river: Option<String>,
    pub basin: Option<String>,
    /// The day's rain total; `None` when the station reported no rain element at all.
    pub rain_mm: Option<f64>,
    /// Rain per clock hour of the day, the first ending at `from` + 1 h.
    pub rain_hourly_mm: Vec<f64>,
    /// The wettest clock hour and the time it ended.
    pub max_1h_mm: Option<f64>,
    pub max_1h_end: Option<String>,
    /// The last good level of the day and when it was observed.
    pub level_m: Option<f64>,
    pub level_at: Option<String>,
    /// Against the last good level of the day before.
    pub level_change_m: Option<f64>,
    /// `rising` (涨), `falling` (落) or `steady` (平).
    pub trend: Option<Trend>,
    /// The day's highest good level, first time reached.
    pub peak_m: Option<f64>,
    pub peak_at: Option<String>,
    /// The highest flood stage the day's peak reached.
    pub stage: Option<String>,
    /// Each flood stage with the day-end level's margin to it (positive: above).
    pub margins: Vec<Margin>,
    /// The most severe drought level the day-end level is at or below.
    pub drought: Option<String>,
    /// Each drought level with the day-end level's margin to it (negative: below).
    pub drought_margins: Vec<Margin>,
    /// Completed days without rain up to this one, for stations with a dry-spell rule.
    pub dry_days: Option<u32>,
    pub readings: Completeness,
    /// Good levels of the day, for the hydrograph (not part of the JSON).
    #[serde(skip)]
    pub levels: Vec<(Millis, f64)>,
}

/// A stage and how far the level is from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margin {
    pub stage: String,
    pub level_m: f64,
    /// Level minus the stage's level: `超警 0.32 m` is +0.32 to `warning`.
    pub margin_m: f64,
}

/// Which way the river went since the day before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Rising,
    Falling,
    Steady,
}

/// Readings received against readings expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    /// The day's length divided by the station's interval.
    pub expected: u64,
    /// Distinct observation times in the day.
    pub received: u64,
    pub complete: bool,
}

/// Rain over a basin (or, without a basin, a river).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasinDay {
    pub basin: String,
    /// Mean of the day's totals of the stations that reported rain.
    pub average_rain_mm: f64,
    pub rain_stations: usize,
    /// The wettest stations, at most three, wettest first.
    pub wettest: Vec<StationRain>,
}

/// A station and its rain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationRain {
    pub id: String,
    pub name: String,
    pub rain_mm: f64,
}

/// An alert that changed during the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOfDay {
    pub alert_id: String,
    pub station: String,
    pub rule: String,
    /// The most severe stage it reached during the day.
    pub stage: String,
    /// Observation time of its first change in the day.
    pub first_at: String,
    /// Its lifecycle changes in the day, in order (`firing`, `escalated`, ...).
    pub states: Vec<String>,
    pub resolved: bool,
    pub acknowledged_by: Option<String>,
    /// The person who answered (叫应), by name where `[[people]]` knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    pub acknowledged_at: Option<String>,
    /// From its first page in the day to the acknowledgement (wall clock), in seconds.
    pub response_s: Option<i64>,
}

/// A station that sent fewer readings than expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incomplete {
    pub station: String,
    pub expected: u64,
    pub received: u64,
}

/// What a bulletin is computed from, as the journal has it.
#[derive(Debug, Clone, Default)]
pub struct DayData {
    /// Every station's readings in `(from, to]`, by station then time.
    pub readings: Vec<Reading>,
    /// Each station's last good level of the day before, `(from - 24 h, from]`.
    pub levels_before: HashMap<String, f64>,
    /// Alert events observed in `(from, to]`, oldest first.
    pub events: Vec<AlertEvent>,
    /// The alerts those events belong to.
    pub alerts: Vec<Alert>,
    /// Per dry-spell station: its rain history.
    pub dry: HashMap<String, RainHistory>,
}

/// What the dry-spell days are counted from: a station's rain amounts above zero in the
/// lookback, and its earliest reading in it.
#[derive(Debug, Clone, Default)]
pub struct RainHistory {
    pub amounts: Vec<(Millis, f64)>,
    pub earliest: Option<Millis>,
}

/// `(from, to]` of the hydrological day `date` in milliseconds.
pub fn bounds(settings: &Settings, date: Date) -> Result<(Millis, Millis), BulletinError> {
    rain::day_bounds(
        date,
        &settings.rules.time_zone,
        settings.rules.day_start_hour,
    )
    .ok_or_else(|| BulletinError::Bounds(date.to_string()))
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, BulletinError> {
    text.parse::<Date>()
        .map_err(|_| BulletinError::Date(text.to_string()))
}

/// The last hydrological day that has ended by `now`.
pub fn last_ended_day(settings: &Settings, now: Millis) -> Option<Date> {
    let current = rain::hydrological_day(
        now.saturating_add(1),
        &settings.rules.time_zone,
        settings.rules.day_start_hour,
    )?;
    current.yesterday().ok()
}

/// The bulletin of `date` as the CLI and the API give it: computed from the journal, or,
/// once retention may have deleted some of the day's readings (the day ended longer ago than
/// `journal.retention`), the copy written after the day ended, when there is one.
pub fn document(
    conn: &Connection,
    settings: &Settings,
    date: Date,
    now: Millis,
) -> Result<Bulletin, BulletinError> {
    let (_, end) = bounds(settings, date)?;
    let pruned_from = now.saturating_sub(settings.journal.retention.as_millis() as Millis);
    if end < pruned_from {
        if let Some(json) = journal::bulletin(conn, &date.to_string())? {
            if let Ok(stored) = serde_json::from_str::<Bulletin>(&json) {
                return Ok(stored);
            }
        }
    }
    load(conn, settings, date, now)
}

/// Loads what the bulletin of `date` needs from the journal and computes it. The day must
/// have ended by `now`.
pub fn load(
    conn: &Connection,
    settings: &Settings,
    date: Date,
    now: Millis,
) -> Result<Bulletin, BulletinError> {
    let (from, to) = bounds(settings, date)?;
    if to > now {
        return Err(BulletinError::NotEnded(date.to_string()));
    }
    let readings = journal::readings_between(conn, from, to)?;
    let mut levels_before = HashMap::new();
    for st in &settings.stations {
        if let Some((_, level)) = journal::last_good_level_between(conn, &st.id, from - DAY, from)?
        {
            levels_before.insert(st.id.clone(), level);
        }
    }
    let (mut events, alerts) = journal::events_observed_between(conn, from, to)?;
    // Who answered: acknowledgements are stamped with the wall clock, which for a replayed
    // flood is long after its day, so they are looked up by alert, not by time.
    for alert in &alerts {
        for e in journal::alert_events(conn, &alert.alert_id)? {
            if e.state == AlertState::Acknowledged
                && !events.iter().any(|x| x.event_id == e.event_id)
            {
                events.push(e);
            }
        }
    }
    let mut dry = HashMap::new();
    for st in settings.stations.iter().filter(|s| s.dry_spell.is_some()) {
        let since = to - DRY_LOOKBACK_DAYS * DAY;
        let amounts = journal::rain_between(conn, &st.id, since, to)?;
        let earliest = journal::earliest_time_after(conn, &st.id, since)?;
        dry.insert(st.id.clone(), RainHistory { amounts, earliest });
    }
    compute(
        settings,
        date,
        &DayData {
            readings,
            levels_before,
            events,
            alerts,
            dry,
        },
    )
}

/// The bulletin of `date` from `data` (pure).
pub fn compute(settings: &Settings, date: Date, data: &DayData) -> Result<Bulletin, BulletinError> {
    let (from, to) = bounds(settings, date)?;
    let tz = &settings.rules.time_zone;
    let mut by_station: HashMap<&str, Vec<&Reading>> = HashMap::new();
    for r in &data.readings {
        by_station.entry(r.station.as_str()).or_default().push(r);
    }
    let stations: Vec<StationDay> = settings
        .stations
        .iter()
        .map(|st| {
            let readings = by_station
                .get(st.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            station_day(
                settings,
                st,
                (date, from, to),
                readings,
                data.levels_before.get(&st.id).copied(),
                data.dry.get(&st.id),
            )
        })
        .collect();
    let basins = basins(&stations);
    let count_at_least = |mm: f64| {
        stations
            .iter()
            .filter(|s| s.rain_mm.is_some_and(|r| r >= mm))
            .count()
    };
    let incomplete = stations
        .iter()
        .filter(|s| !s.readings.complete)
        .map(|s| Incomplete {
            station: s.id.clone(),
            expected: s.readings.expected,
            received: s.readings.received,
        })
        .collect();
    Ok(Bulletin {
        date: date.to_string(),
        from: format_time(from, tz),
        to: format_time(to, tz),
        time_zone: settings.rules.time_zone_name.clone(),
        day_start_hour: settings.rules.day_start_hour,
        stations_rain_50mm: count_at_least(50.0),
        stations_rain_100mm: count_at_least(100.0),
        basins,
        alerts: alerts_of_day(settings, &data.events, &data.alerts),
        incomplete,
        stations,
    })
}

fn round(value: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    let r = (value * f).round() / f;
    if r == 0.0 {
        0.0 // no "-0.0" in the JSON
    } else {
        r
    }
}

/// Rain in millimetres to 0.01, levels in metres to 0.001.
fn mm(value: f64) -> f64 {
    round(value, 2)
}
fn metres(value: f64) -> f64 {
    round(value, 3)
}

fn station_day(
    settings: &Settings,
    st: &Station,
    (date, from, to): (Date, Millis, Millis),
    readings: &[&Reading],
    level_before: Option<f64>,
    dry: Option<&RainHistory>,
) -> StationDay {
    let tz = &settings.rules.time_zone;
    let in_day: Vec<&Reading> = readings
        .iter()
        .copied()
        .filter(|r| r.time > from && r.time <= to)
        .collect();

    // Rain: an amount counts at its time, in the clock hour (h, h + 1 h] that holds it.
    let hours = ((to - from) / HOUR).max(1) as usize;
    let mut hourly = vec![0.0; hours];
    let mut any_rain = false;
    for r in &in_day {
        if let Some(amount) = r.rain_mm {
            any_rain = true;
            let h = (((r.time - from - 1) / HOUR) as usize).min(hours - 1);
            hourly[h] += amount;
        }
    }
    let rain_mm = any_rain.then(|| mm(hourly.iter().sum()));
    let hourly: Vec<f64> = if any_rain {
        hourly.into_iter().map(mm).collect()
    } else {
        Vec::new()
    };
    let wettest =
        hourly
            .iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (h, &v)| match best {
                Some((_, b)) if b >= v => best,
                _ => Some((h, v)),
            });

    // Levels: good ones only, as everything that shows a stage.
    let good = |r: &&&Reading| r.quality == Quality::Good;
    let levels: Vec<(Millis, f64)> = in_day
        .iter()
        .filter(good)
        .filter_map(|r| r.level_m.map(|l| (r.time, l)))
        .collect();
    let before = level_before;
    let end = levels.last().copied();
    let peak = levels
        .iter()
        .copied()
        .fold(None::<(Millis, f64)>, |best, (t, l)| match best {
            Some((_, b)) if b >= l => best,
            _ => Some((t, l)),
        });
    let change = match (end, before) {
        (Some((_, l)), Some(b)) => Some(metres(l - b)),
        _ => None,
    };
    let trend = change.map(|c| {
        if c >= STEADY_M {
            Trend::Rising
        } else if c <= -STEADY_M {
            Trend::Falling
        } else {
            Trend::Steady
        }
    });
    let stage = peak.and_then(|(_, p)| {
        st.stages
            .stages
            .iter()
            .rev()
            .find(|s| p >= s.level_m)
            .map(|s| s.name.clone())
    });
    let margins_to = |ladder: &crate::config::StageLadder| -> Vec<Margin> {
        match end {
            Some((_, l)) => ladder
                .stages
                .iter()
                .map(|s| Margin {
                    stage: s.name.clone(),
                    level_m: s.level_m,
                    margin_m: metres(l - s.level_m),
                })
                .collect(),
            None => Vec::new(),
        }
    };
    let drought = end.and_then(|(_, l)| {
        st.drought
            .stages
            .iter()
            .rev()
            .find(|s| l <= s.level_m)
            .map(|s| s.name.clone())
    });

    let interval_ms = (st.interval.as_millis() as Millis).max(1);
    let expected = ((to - from) / interval_ms) as u64;
    let mut times: Vec<Millis> = in_day.iter().map(|r| r.time).collect();
    times.dedup();
    let received = times.len() as u64;

    let dry_days = st
        .dry_spell
        .as_ref()
        .and_then(|spell| dry_days(settings, date, spell.dry_day_mm, dry?));

    StationDay {
        id: st.id.clone(),
        name: st.name.clone(),
        river: st.river.clone(),
        basin: st.basin.clone(),
        rain_mm,
        max_1h_mm: wettest.map(|(_, v)| v),
        max_1h_end: wettest.map(|(h, _)| format_time(from + (h as Millis + 1) * HOUR, tz)),
        rain_hourly_mm: hourly,
        level_m: end.map(|(_, l)| l),
        level_at: end.map(|(t, _)| format_time(t, tz)),
        level_change_m: change,
        trend,
        peak_m: peak.map(|(_, l)| l),
        peak_at: peak.map(|(t, _)| format_time(t, tz)),
        stage,
        margins: margins_to(&st.stages),
        drought,
        drought_margins: margins_to(&st.drought),
        dry_days,
        readings: Completeness {
            expected,
            received,
            complete: received >= expected,
        },
        levels,
    }
}

/// Completed days without rain up to and including `date`: 0 when `date` was wet; counted
/// from the last wet day in the lookback, or from the station's earliest reading in it.
fn dry_days(
    settings: &Settings,
    date: Date,
    dry_day_mm: f64,
    history: &RainHistory,
) -> Option<u32> {
    let (amounts, earliest) = (&history.amounts, &history.earliest);
    let tz = &settings.rules.time_zone;
    let hour = settings.rules.day_start_hour;
    let mut totals: BTreeMap<Date, f64> = BTreeMap::new();
    for &(t, a) in amounts {
        if let Some(d) = rain::hydrological_day(t, tz, hour) {
            *totals.entry(d).or_default() += a;
        }
    }
    let last_wet = totals
        .iter()
        .rev()
        .find(|(d, total)| **d <= date && **total >= dry_day_mm)
        .map(|(d, _)| *d);
    let first_dry = match last_wet {
        Some(wet) => wet.tomorrow().ok()?,
        None => rain::hydrological_day((*earliest)?, tz, hour)?,
    };
    if first_dry > date {
        return Some(0);
    }
    let days = date.since(first_dry).ok()?.get_days() + 1;
    u32::try_from(days).ok()
}

fn basins(stations: &[StationDay]) -> Vec<BasinDay> {
    let mut groups: BTreeMap<String, Vec<&StationDay>> = BTreeMap::new();
    for s in stations.iter().filter(|s| s.rain_mm.is_some()) {
        let key = s
            .basin
            .clone()
            .or_else(|| s.river.clone())
            .unwrap_or_else(|| "-".to_string());
        groups.entry(key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(basin, members)| {
            let total: f64 = members.iter().filter_map(|s| s.rain_mm).sum();
            let mut wettest: Vec<StationRain> = members
                .iter()
                .filter_map(|s| {
                    s.rain_mm.filter(|r| *r > 0.0).map(|r| StationRain {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        rain_mm: r,
                    })
                })
                .collect();
            wettest.sort_by(|a, b| b.rain_mm.total_cmp(&a.rain_mm).then(a.id.cmp(&b.id)));
            wettest.truncate(3);
            BasinDay {
                average_rain_mm: mm(total / members.len() as f64),
                rain_stations: members.len(),
                basin,
                wettest,
            }
        })
        .collect()
}

fn alerts_of_day(settings: &Settings, events: &[AlertEvent], alerts: &[Alert]) -> Vec<AlertOfDay> {
    let tz = &settings.rules.time_zone;
    let mut out: Vec<(Millis, AlertOfDay)> = Vec::new();
    for alert in alerts {
        let mine: Vec<&AlertEvent> = events
            .iter()
            .filter(|e| e.alert_id == alert.alert_id)
            .filter(|e| e.state != AlertState::Acknowledged && e.page.is_none())
            .collect();
        let Some(first) = mine.iter().map(|e| e.observed_at).min() else {
            continue;
        };
        let top = mine
            .iter()
            .filter(|e| e.state != AlertState::Resolved)
            .max_by_key(|e| e.stage_index)
            .or(mine.last());
        let paged = mine
            .iter()
            .filter(|e| e.state != AlertState::Pending)
            .map(|e| e.created_at)
            .min();
        // The first acknowledgement after the first page; else what the alert record holds.
        let ack = events
            .iter()
            .filter(|e| e.alert_id == alert.alert_id && e.state == AlertState::Acknowledged)
            .filter(|e| paged.is_none_or(|p| e.created_at >= p))
            .min_by_key(|e| e.created_at)
            .map(|e| {
                (
                    e.acknowledged_by.clone(),
                    e.created_at,
                    e.acknowledged_person.clone(),
                )
            })
            .or_else(|| {
                alert
                    .acknowledged_at
                    .map(|t| (alert.acknowledged_by.clone(), t, None))
            });
        let answered_by = ack.as_ref().and_then(|(_, _, person)| {
            let person = person.as_ref()?;
            Some(
                settings
                    .people
                    .iter()
                    .find(|p| &p.id == person)
                    .map_or_else(|| person.clone(), |p| p.name.clone()),
            )
        });
        let response_s = match (paged, &ack) {
            (Some(p), Some((_, a, _))) => Some((a - p).max(0) / 1000),
            _ => None,
        };
        out.push((
            first,
            AlertOfDay {
                alert_id: alert.alert_id.clone(),
                station: alert.station.clone(),
                rule: alert.rule.clone(),
                stage: top.map(|e| e.stage.clone()).unwrap_or_default(),
                first_at: format_time(first, tz),
                states: mine.iter().map(|e| e.state.as_str().to_string()).collect(),
                resolved: mine.iter().any(|e| e.state == AlertState::Resolved),
                acknowledged_by: ack.as_ref().and_then(|(by, _, _)| by.clone()),
                answered_by,
                acknowledged_at: ack.as_ref().map(|(_, t, _)| format_time(*t, tz)),
                response_s,
            },
        ));
    }
    out.sort_by(|(a, x), (b, y)| a.cmp(b).then(x.alert_id.cmp(&y.alert_id)));
    out.into_iter().map(|(_, a)| a).collect()
}

/// The bulletin as its JSON document (the API's body, the CLI's `--format json`).
pub fn to_json(bulletin: &Bulletin) -> String {
    let mut text = serde_json::to_string_pretty(bulletin).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
