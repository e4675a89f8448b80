//! Rate of rise (涨率): how fast the river climbs, and how long until the next stage at that
//! rate — the first question a duty officer asks. A fast rise below the guard stage is an
//! early warning of its own (rule `rise_rate`).
//!
//! The rate is the level change over the last hour, taken against the retained reading
//! closest to one hour back. Gauges drop readings and flush backlogs, so the reference may be
//! anywhere from 30 to 90 minutes back; with nothing in that span the rate is unknown and the
//! rule holds whatever it last decided rather than guessing.

use std::collections::BTreeMap;

use crate::alerts::Target;
use crate::config::StageLadder;
use crate::model::Millis;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
/// The reference reading must be at least this far back...
const MIN_SPAN: Millis = 30 * MINUTE;
/// ...and at most this far.
const MAX_SPAN: Millis = 90 * MINUTE;
/// How long good levels are kept: the widest reference span plus slack for late readings.
pub const KEEP: Millis = 3 * HOUR;
/// A rise-rate alert clears when the rate drops below this share of the threshold, so a rate
/// wobbling around the threshold (gauge noise of a centimetre is 0.01 m over the hour) does
/// not flap.
pub const CLEAR_FRACTION: f64 = 0.8;

/// Good water levels of one station by observation time: the memory behind rise rate, trend
/// and jump detection.
#[derive(Debug, Clone, Default)]
pub struct LevelHistory {
    levels: BTreeMap<Millis, f64>,
}

impl LevelHistory {
    /// Records a good level; the same time again overwrites (a replay is not a new reading).
    pub fn insert(&mut self, time: Millis, level_m: f64) {
        self.levels.insert(time, level_m);
        if let Some(latest) = self.levels.keys().next_back().copied() {
            let cutoff = latest.saturating_sub(KEEP);
            while self
                .levels
                .first_key_value()
                .is_some_and(|(t, _)| *t < cutoff)
            {
                self.levels.pop_first();
            }
        }
    }

    /// The latest good level.
    pub fn latest(&self) -> Option<(Millis, f64)> {
        self.levels.iter().next_back().map(|(t, l)| (*t, *l))
    }

    /// The latest good level strictly before `time`.
    pub fn before(&self, time: Millis) -> Option<(Millis, f64)> {
        self.levels.range(..time).next_back().map(|(t, l)| (*t, *l))
    }

    /// Metres per hour over the last hour ending at the level at or before `time`; `None`
    /// when no reading lies 30 to 90 minutes before it.
    pub fn rate_at(&self, time: Millis) -> Option<f64> {
        let (t, level) = self.levels.range(..=time).next_back()?;
        let wanted = t.saturating_sub(HOUR);
        let (t0, level0) = self
            .levels
            .range(t.saturating_sub(MAX_SPAN)..=t.saturating_sub(MIN_SPAN))
            .min_by_key(|(t0, _)| t0.abs_diff(wanted))?;
        let hours = (t - t0) as f64 / HOUR as f64;
        Some((level - level0) / hours)
    }
}

/// Where the river is heading: the trend and, when rising, the next flood stage and the time
/// to reach it at the current rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outlook {
    pub trend_m_per_h: Option<f64>,
    pub next_stage: Option<(String, f64)>,
    pub time_to_next_stage_s: Option<f64>,
}

impl Outlook {
    /// The outlook at `level_m` with `rate` (m/h) on the flood `stages`.
    pub fn new(stages: &StageLadder, level_m: f64, rate: Option<f64>) -> Outlook {
        let rising = rate.filter(|r| *r > 0.0);
        let next = rising.and_then(|_| stages.stages.iter().find(|s| s.level_m > level_m));
        Outlook {
            trend_m_per_h: rate,
            next_stage: next.map(|s| (s.name.clone(), s.level_m)),
            time_to_next_stage_s: match (next, rising) {
                (Some(s), Some(r)) => Some((s.level_m - level_m) / r * 3600.0),
                _ => None,
            },
        }
    }
}

/// The target for rule `rise_rate`: raised at or above `threshold_m_per_h`, held until the
/// rate drops below [`CLEAR_FRACTION`] of it.
pub fn rise_rate_target(threshold_m_per_h: f64, rate: f64, open: bool) -> Option<Target> {
    let holds = if open {
        rate >= threshold_m_per_h * CLEAR_FRACTION
    } else {
        rate >= threshold_m_per_h
    };
    holds.then(|| Target {
        stage: "rise_rate".to_string(),
        stage_index: 0,
        threshold: threshold_m_per_h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Stage;

    fn history(points: &[(Millis, f64)]) -> LevelHistory {
        let mut h = LevelHistory::default();
        for (t, l) in points {
            h.insert(t * MINUTE, *l);
        }
        h
    }

    #[test]
    fn rate_over_the_last_hour() {
        let h = history(&[(0, 10.0), (30, 10.2), (60, 10.5)]);
        let rate = h.rate_at(60 * MINUTE).expect("an hour of data");
        assert!((rate - 0.5).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn gaps_pick_the_closest_reference_within_span() {
        // Nothing near an hour back: 40 minutes back is the closest usable reading.
        let h = history(&[(0, 10.0), (100, 10.0), (140, 10.4)]);
        let rate = h.rate_at(140 * MINUTE).expect("40 minutes back");
        assert!((rate - 0.6).abs() < 1e-9, "{rate}");
        // Only 20 minutes back (and 2 h back): too sparse.
        let h = history(&[(0, 10.0), (100, 10.0), (120, 10.4)]);
        assert_eq!(h.rate_at(120 * MINUTE), None);
        // Exactly 90 minutes back is still usable, 91 is not.
        assert!(history(&[(0, 10.0), (90, 10.3)])
            .rate_at(90 * MINUTE)
            .is_some());
        assert_eq!(history(&[(0, 10.0), (91, 10.3)]).rate_at(91 * MINUTE), None);
    }

    #[test]
    fn old_levels_are_forgotten() {
        let h = history(&[(0, 10.0), (300, 11.0)]);
        assert_eq!(h.before(300 * MINUTE), None);
    }

    #[test]
    fn outlook_names_the_next_stage_when_rising() {
        let stages = StageLadder {
            stages: vec![
                Stage {
                    name: "guard".into(),
                    level_m: 57.5,
                },
                Stage {
                    name: "warning".into(),
                    level_m: 59.0,
                },
            ],
        };
        let o = Outlook::new(&stages, 58.0, Some(0.5));
        assert_eq!(o.next_stage, Some(("warning".to_string(), 59.0)));
        assert_eq!(o.time_to_next_stage_s, Some(7200.0));
        let o = Outlook::new(&stages, 58.0, Some(-0.1));
        assert_eq!((o.next_stage, o.time_to_next_stage_s), (None, None));
        assert_eq!(o.trend_m_per_h, Some(-0.1));
    }

    #[test]
    fn rise_rate_fires_at_threshold_and_clears_below_the_fraction() {
        assert!(rise_rate_target(0.5, 0.49, false).is_none());
        assert!(rise_rate_target(0.5, 0.5, false).is_some());
        assert!(rise_rate_target(0.5, 0.4, true).is_some());
        assert!(rise_rate_target(0.5, 0.39, true).is_none());
    }
}
