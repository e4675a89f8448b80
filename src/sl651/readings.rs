//! From a decoded report to hydrowatch readings, as the contract maps SL 651 elements.
//!
//! | element | reading |
//! |---|---|
//! | Z (39) / ZU (3B) / ZB (3A), the one the station's `sl651_level` names | `level_m` |
//! | DRZ1 (F5) for Z and ZU stations, DRZ2 (F6) for ZB stations: twelve 5-minute levels | `level_m` |
//! | PT (26), cumulative | `rain_total_mm` |
//! | PN05 (22), DRP (F4): twelve 5-minute amounts | `rain_mm`, period 300 s |
//! | P1 (1A), only when the frame has no 5-minute amount | `rain_mm`, period 3600 s |
//! | Q (27) | `flow_m3s` |
//! | VT (38) | `battery_v` |
//!
//! Series timing: DRP and DRZ cover the hour that ends at their group's observation time, as
//! an hourly report at 08:00 carries 07:00–08:00. Value `i` (0-based) is stamped
//! `observed − 55 min + 5·i min`: the last one at the observation time; a DRP amount is the
//! rain of the five minutes ending at its stamp. Uniform-interval values (function 31) are
//! stamped `observed + i·step`, the first at the observation time.
//!
//! Precedence at one time: an instantaneous element (Z, PN05) wins over a series value.
//! Rain is never counted twice: 5-minute amounts (PN05, DRP) win over P1 (dropped when any
//! 5-minute amount is in the frame); explicit amounts win over the PT counter: a PT reading
//! that falls inside the span an explicit amount of its group covers, without an amount of
//! its own, is given 0 mm over 300 s, so that the rules advance the counter without deriving
//! from it an amount the explicit ones already hold. PJ (current rainfall, no defined
//! period) and PD (daily total) are kept for audit only.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::tz::TimeZone;

use super::body::Report;
use super::elements::{Element, Identifier, Value};
use super::Sl651Error;
use crate::model::{Millis, Reading};

const FIVE_MINUTES_MS: i64 = 300_000;

/// Which element is a station's water level (`sl651_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LevelElement {
    /// 39: river level or tide level (瞬时河道水位、潮位).
    #[default]
    Z,
    /// 3B: upstream level of a reservoir, gate or pumping station (库(闸、站)上水位).
    Zu,
    /// 3A: downstream level (库(闸、站)下水位).
    Zb,
}

impl LevelElement {
    fn code(self) -> u8 {
        match self {
            LevelElement::Z => 0x39,
            LevelElement::Zu => 0x3B,
            LevelElement::Zb => 0x3A,
        }
    }

    /// The 5-minute level series of the same gauge: DRZ1 is the river or upstream level,
    /// DRZ2 the downstream level of a gate or pumping station.
    fn series_code(self) -> u8 {
        match self {
            LevelElement::Z | LevelElement::Zu => 0xF5,
            LevelElement::Zb => 0xF6,
        }
    }
}

impl FromStr for LevelElement {
    type Err = Sl651Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "Z" | "39" => Ok(LevelElement::Z),
            "ZU" | "3B" => Ok(LevelElement::Zu),
            "ZB" | "3A" => Ok(LevelElement::Zb),
            other => Err(Sl651Error::BadSetting(format!(
                "sl651_level `{other}`: expected Z, ZU or ZB"
            ))),
        }
    }
}

/// Where a value at one time came from; the stronger source wins a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Series,
    Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    level: Option<(f64, Source)>,
    rain: Option<(f64, u32, Source)>,
    total: Option<f64>,
    flow: Option<f64>,
    battery: Option<f64>,
}

fn put<T: Copy>(slot: &mut Option<(T, Source)>, value: T, source: Source) {
    if slot.is_none_or(|(_, s)| source >= s) {
        *slot = Some((value, source));
    }
}

fn put_rain(slot: &mut Option<(f64, u32, Source)>, mm: f64, period: u32, source: Source) {
    if slot.is_none_or(|(_, _, s)| source >= s) {
        *slot = Some((mm, period, source));
    }
}

/// Converts a local observation time to UTC milliseconds in `tz`.
pub fn to_millis(t: jiff::civil::DateTime, tz: &TimeZone) -> Result<Millis, Sl651Error> {
    t.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| Sl651Error::Body(format!("time {t} in the station's zone: {e}")))
}

fn is(e: &Element, code: u8) -> bool {
    e.identifier == Identifier::Standard(code)
}

/// The readings a report carries for `station`, sorted by time, one per observation time.
/// Errors when a group with mapped elements has no observation time.
pub fn readings(
    report: &Report,
    station: &str,
    level: LevelElement,
    tz: &TimeZone,
) -> Result<Vec<Reading>, Sl651Error> {
    let has_five_minute_rain = report.elements().any(|(_, e)| is(e, 0x22) || is(e, 0xF4));
    let mut slots: BTreeMap<Millis, Slot> = BTreeMap::new();
    // Per group, the span explicit rain amounts cover: (start exclusive, end inclusive).
    let mut rain_spans: Vec<(Millis, Millis)> = Vec::new();
    let mut totals: Vec<Millis> = Vec::new();

    for group in &report.groups {
        let mapped = group.elements.iter().any(|e| maps(e, level));
        let Some(observed) = group.observed else {
            if mapped {
                return Err(Sl651Error::Body(
                    "elements before any observation time (F0F0)".into(),
                ));
            }
            continue;
        };
        let t0 = to_millis(observed, tz)?;
        let step_ms = group.step_minutes.map(|m| i64::from(m) * 60_000);
        let mut span: Option<(Millis, Millis)> = None;
        let mut cover = |start: Millis, end: Millis| {
            span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
        };
        for e in &group.elements {
            // Values at their times: one for instantaneous elements, twelve for DRP/DRZ,
            // one per step for uniform-interval series.
            let (points, source): (Vec<(Millis, f64)>, Source) = match (&e.value, step_ms) {
                (Value::Number(v), _) => (vec![(t0, *v)], Source::Instant),
                (Value::Series(values), Some(step)) if !is(e, 0xF4) && !is_drz(e) => (
                    values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (t0 + step * i as i64, v)))
                        .collect(),
                    Source::Instant,
                ),
                (Value::Series(values), _) => (
                    values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| {
                            let back = (values.len() as i64 - 1 - i as i64) * FIVE_MINUTES_MS;
                            v.map(|v| (t0 - back, v))
                        })
                        .collect(),
                    Source::Series,
                ),
                _ => continue,
            };
            let code = match &e.identifier {
                Identifier::Standard(c) => *c,
                _ => continue,
            };
            for (t, v) in points {
                let slot = slots.entry(t).or_default();
                match code {
                    c if c == level.code() || c == level.series_code() => {
                        put(&mut slot.level, v, source)
                    }
                    0x26 => {
                        slot.total = Some(v);
                        totals.push(t);
                    }
                    0x22 | 0xF4 => {
                        put_rain(&mut slot.rain, v, 300, source);
                        cover(t - FIVE_MINUTES_MS, t);
                    }
                    0x1A if !has_five_minute_rain => {
                        put_rain(&mut slot.rain, v, 3600, source);
                        cover(t - 12 * FIVE_MINUTES_MS, t);
                    }
                    0x27 => slot.flow = Some(v),
                    0x38 => slot.battery = Some(v),
                    _ => {}
                }
            }
            // An absent DRP slot still lies inside the hour the series covers.
            if is(e, 0xF4) {
                if let Value::Series(values) = &e.value {
                    let len = values.len() as i64;
                    cover(t0 - len * FIVE_MINUTES_MS, t0);
                }
            }
        }
        if let Some(s) = span {
            rain_spans.push(s);
        }
    }

    for t in totals {
        let covered = rain_spans.iter().any(|(s, e)| t > *s && t <= *e);
        if let Some(slot) = slots.get_mut(&t) {
            if covered && slot.rain.is_none() {
                slot.rain = Some((0.0, 300, Source::Series));
            }
        }
    }

    Ok(slots
        .into_iter()
        .filter_map(|(time, s)| {
            let mut r = Reading::empty(station, time);
            r.level_m = s.level.map(|(v, _)| v);
            if let Some((mm, period, _)) = s.rain {
                r.rain_mm = Some(mm);
                r.rain_period_s = Some(period);
            }
            r.rain_total_mm = s.total;
            r.flow_m3s = s.flow;
            r.battery_v = s.battery;
            let any = r.level_m.is_some()
                || r.rain_mm.is_some()
                || r.rain_total_mm.is_some()
                || r.flow_m3s.is_some()
                || r.battery_v.is_some();
            any.then_some(r)
        })
        .collect())
}

fn is_drz(e: &Element) -> bool {
    matches!(e.identifier, Identifier::Standard(0xF5..=0xFC))
}

/// Whether hydrowatch maps this element for a station measuring `level`.
fn maps(e: &Element, level: LevelElement) -> bool {
    match e.identifier {
        Identifier::Standard(c) => {
            c == level.code()
                || c == level.series_code()
                || matches!(c, 0x1A | 0x22 | 0x26 | 0x27 | 0x38 | 0xF4)
        }
        _ => false,
    }
}
