//! Rain warning levels (rule `rain_level`): the flash-flood ladder 准备转移 → 立即转移 (prepare
//! to move people, move them now), or a county's four colours, each level an amount of rain
//! per window. See docs/rain-levels.md for the schemes and the choices below.
//!
//! A level is reached when **any** of its windows holds at least the level's amount for it;
//! the alert sits at the highest level reached and falls back as soon as every window of its
//! level is below it. There is no margin: a window sum only falls when old rain leaves the
//! window, so the longest window already holds a level for hours after the rain stops.
//!
//! A warning zone (a village on several gauges) is judged the same way on each of its gauges
//! with the zone's levels, and sits at the worst level any gauge reaches.
//!
//! Every event names what decided it: the window (and, for a zone, the gauge) whose sum is
//! furthest past the level's amount, relative to that amount; for a `resolved` alert, the one
//! closest to the level it leaves.

use crate::alerts::Target;
use crate::config::RainLevel;
use crate::model::Millis;

use super::rain::RainLedger;

/// One gauge's rain, up to the latest time its rain is known.
#[derive(Debug, Clone, Copy)]
pub struct Gauge<'a> {
    /// The gauge's station id, named in a zone's events; `None` for a station's own alert.
    pub id: Option<&'a str>,
    pub ledger: &'a RainLedger,
    pub end: Millis,
}

/// Where a `rain_level` alert should be, and what decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The level to be at (`None`: below the lowest level), its `threshold` the deciding
    /// window's amount.
    pub target: Option<Target>,
    /// The deciding window, as written ("3h").
    pub window: String,
    /// The deciding window's sum, mm.
    pub sum_mm: f64,
    /// The level's amount for that window (for `resolved`: of the level left), mm.
    pub amount_mm: f64,
    /// The deciding gauge, for a zone.
    pub gauge: Option<String>,
}

/// The highest level reached by one gauge: any window at or above its amount.
pub fn level_reached(levels: &[RainLevel], gauge: &Gauge) -> Option<usize> {
    levels.iter().rposition(|level| {
        level
            .windows
            .iter()
            .any(|w| gauge.ledger.window_sum(gauge.end, w.window) >= w.threshold_mm)
    })
}

/// Judges `levels` on `gauges` (the worst gauge counts), given the level the alert is open at
/// (`open`, `None`: no alert). `None` back: nothing to say (no level reached, no alert open,
/// or no gauge has any rain yet).
pub fn judge(levels: &[RainLevel], gauges: &[Gauge], open: Option<usize>) -> Option<Judgement> {
    let reached = gauges.iter().filter_map(|g| level_reached(levels, g)).max();
    // A restored alert may name a level the configuration no longer has that far up.
    let described = reached.or(open.map(|o| o.min(levels.len().saturating_sub(1))))?;
    let level = levels.get(described)?;
    let mut best: Option<(f64, &Gauge, &crate::config::RainWindow, f64)> = None;
    for gauge in gauges {
        for w in &level.windows {
            // `+ 0.0`: an empty window sums to -0.0, which no message should show.
            let sum = gauge.ledger.window_sum(gauge.end, w.window) + 0.0;
            let ratio = sum / w.threshold_mm;
            // Strictly greater: ties go to the first gauge, then the first window written.
            if best.is_none_or(|(r, ..)| ratio > r) {
                best = Some((ratio, gauge, w, sum));
            }
        }
    }
    let (_, gauge, window, sum) = best?;
    Some(Judgement {
        target: reached.map(|index| Target {
            stage: level.level.clone(),
            stage_index: index,
            threshold: window.threshold_mm,
        }),
        window: window.label.clone(),
        sum_mm: sum,
        amount_mm: window.threshold_mm,
        gauge: gauge.id.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RainWindow;

    const MIN: Millis = 60_000;

    fn window(label: &str, minutes: u64, mm: f64) -> RainWindow {
        RainWindow {
            label: label.into(),
            window: Duration::from_secs(minutes * 60),
            threshold_mm: mm,
        }
    }

    /// The contract's two-tier scheme.
    fn two_tier() -> Vec<RainLevel> {
        vec![
            RainLevel {
                level: "prepare".into(),
                name: "准备转移".into(),
                windows: vec![
                    window("1h", 60, 35.0),
                    window("3h", 180, 55.0),
                    window("6h", 360, 70.0),
                ],
            },
            RainLevel {
                level: "evacuate".into(),
                name: "立即转移".into(),
                windows: vec![
                    window("1h", 60, 45.0),
                    window("3h", 180, 75.0),
                    window("6h", 360, 95.0),
                ],
            },
        ]
    }

    /// A ledger of `(minute, mm)` amounts.
    fn ledger(amounts: &[(Millis, f64)]) -> RainLedger {
        let mut l = RainLedger::new(Duration::from_secs(6 * 3600));
        for (m, mm) in amounts {
            l.insert(m * MIN, *mm);
        }
        l
    }

    fn at<'a>(l: &'a RainLedger, minute: Millis) -> Gauge<'a> {
        Gauge {
            id: None,
            ledger: l,
            end: minute * MIN,
        }
    }

    fn stage(j: &Option<Judgement>) -> Option<&str> {
        j.as_ref()?.target.as_ref().map(|t| t.stage.as_str())
    }

    #[test]
    fn any_window_reaches_a_level_exactly_at_its_amount() {
        let levels = two_tier();
        // 34.9 mm in the hour: nothing; 35.0 mm: prepare, decided by 1h.
        let l = ledger(&[(0, 20.0), (30, 14.9)]);
        assert_eq!(judge(&levels, &[at(&l, 30)], None), None);
        let l = ledger(&[(0, 20.0), (30, 15.0)]);
        let j = judge(&levels, &[at(&l, 30)], None).expect("a level");
        assert_eq!(stage(&Some(j.clone())), Some("prepare"));
        assert_eq!(
            (j.window.as_str(), j.sum_mm, j.amount_mm),
            ("1h", 35.0, 35.0)
        );
        assert_eq!(j.target.expect("target").threshold, 35.0);
        // 55 mm over three hours, never 35 in one: prepare by 3h.
        let l = ledger(&[(0, 20.0), (60, 20.0), (120, 15.0)]);
        let j = judge(&levels, &[at(&l, 120)], None).expect("a level");
        assert_eq!(
            (stage(&Some(j.clone())), j.window.as_str()),
            (Some("prepare"), "3h")
        );
    }

    #[test]
    fn the_highest_level_any_window_reaches_wins() {
        let levels = two_tier();
        // 1h: 40 (prepare only); 3h: 80 (evacuate): evacuate, decided by 3h.
        let l = ledger(&[(0, 40.0), (60, 0.0), (120, 40.0)]);
        let j = judge(&levels, &[at(&l, 120)], None).expect("a level");
        assert_eq!(j.target.as_ref().map(|t| t.stage_index), Some(1));
        assert_eq!(
            (j.window.as_str(), j.sum_mm, j.amount_mm),
            ("3h", 80.0, 75.0)
        );
    }

    #[test]
    fn the_deciding_window_is_the_one_furthest_past_its_amount() {
        let levels = two_tier();
        // 1h 40/35 = 1.14, 3h 70/55 = 1.27: 3h decides prepare.
        let l = ledger(&[(0, 30.0), (150, 40.0)]);
        let j = judge(&levels, &[at(&l, 150)], None).expect("a level");
        assert_eq!(
            (stage(&Some(j.clone())), j.window.as_str()),
            (Some("prepare"), "3h")
        );
    }

    #[test]
    fn falls_back_when_every_window_is_below_and_names_the_closest() {
        let levels = two_tier();
        let l = ledger(&[(0, 50.0), (60, 10.0)]);
        // At 1:00 the 1h window holds 10 (< 35), 3h and 6h 60 (≥ 55, < 75): prepare.
        let j = judge(&levels, &[at(&l, 60)], Some(1)).expect("deescalates");
        assert_eq!(stage(&Some(j.clone())), Some("prepare"));
        // At 3:00 the 50 mm left the 3h window; 6h still holds 60 < 70; 3h 10 < 55.
        let j = judge(&levels, &[at(&l, 180)], Some(0)).expect("resolves");
        assert_eq!(j.target, None);
        // Closest to prepare: 6h 60/70 = 0.86 (1h 0/35, 3h 10/55).
        assert_eq!(
            (j.window.as_str(), j.sum_mm, j.amount_mm),
            ("6h", 60.0, 70.0)
        );
        // Nothing open, nothing reached: nothing to say.
        assert_eq!(judge(&levels, &[at(&l, 180)], None), None);
    }

    #[test]
    fn a_zone_takes_its_worst_gauge_and_names_it() {
        let levels = two_tier();
        let dry = ledger(&[(0, 5.0)]);
        let wet = ledger(&[(0, 30.0), (30, 10.0)]);
        let gauges = [
            Gauge {
                id: Some("p01"),
                ledger: &dry,
                end: 30 * MIN,
            },
            Gauge {
                id: Some("p02"),
                ledger: &wet,
                end: 30 * MIN,
            },
        ];
        let j = judge(&levels, &gauges, None).expect("a level");
        assert_eq!(stage(&Some(j.clone())), Some("prepare"));
        assert_eq!(j.gauge.as_deref(), Some("p02"));
        // 40 mm in 1h on the wet gauge (40/35), against 5 mm on the dry one.
        assert_eq!((j.window.as_str(), j.sum_mm), ("1h", 40.0));
        // Ten more millimetres on the wet gauge raise the whole zone to evacuate.
        let wetter = ledger(&[(0, 30.0), (30, 10.0), (40, 10.0)]);
        let gauges = [
            gauges[0],
            Gauge {
                id: Some("p02"),
                ledger: &wetter,
                end: 40 * MIN,
            },
        ];
        let j = judge(&levels, &gauges, Some(0)).expect("a level");
        assert_eq!(
            (stage(&Some(j.clone())), j.gauge.as_deref()),
            (Some("evacuate"), Some("p02"))
        );
    }

    #[test]
    fn ten_minute_windows_work() {
        let levels = vec![RainLevel {
            level: "prepare".into(),
            name: "准备转移".into(),
            windows: vec![window("10m", 10, 12.0)],
        }];
        let l = ledger(&[(0, 7.0), (5, 5.0), (10, 4.0)]);
        // (−5, 5]: 12 mm; (0, 10]: 9 mm (the amount at minute 0 left the window).
        assert_eq!(level_reached(&levels, &at(&l, 5)), Some(0));
        assert_eq!(level_reached(&levels, &at(&l, 10)), None);
    }

    #[test]
    fn a_restored_level_beyond_the_ladder_is_clamped() {
        let levels = two_tier();
        let l = ledger(&[(0, 1.0)]);
        let j = judge(&levels, &[at(&l, 0)], Some(7)).expect("resolves");
        assert_eq!(j.target, None);
        assert_eq!(
            j.amount_mm, 45.0,
            "named against evacuate, the highest level"
        );
        assert_eq!(judge(&[], &[at(&l, 0)], Some(0)), None);
    }
}
