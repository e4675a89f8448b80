//! Sensor health (rule `sensor`): a level outside the station's physically possible range, or
//! a jump no river makes between two readings, is stored flagged and kept out of the flood
//! rules; the flag also opens a `sensor` alert so somebody checks the gauge.

use crate::alerts::{millis, Target};
use crate::config::Station;
use crate::model::{Millis, Quality};

use super::rise_rate::LevelHistory;

/// How many reporting intervals back a previous good level still counts for jump detection.
/// A step that persists longer than this is accepted as the river's new level (a gauge moved,
/// or a real surge after an outage), instead of flagging every later reading forever.
const JUMP_MEMORY_INTERVALS: u32 = 3;

/// The quality of a level observed at `time`, judged against the station's range and the
/// previous good level in `history`.
pub fn level_quality(
    station: &Station,
    history: &LevelHistory,
    time: Millis,
    level_m: f64,
) -> Quality {
    if let Some((lo, hi)) = station.level_range {
        if !(lo..=hi).contains(&level_m) {
            return Quality::OutOfRange;
        }
    }
    if let Some(step) = station.max_step_m {
        let memory = millis(station.interval * JUMP_MEMORY_INTERVALS);
        if let Some((t, previous)) = history.before(time) {
            if time.saturating_sub(t) <= memory && (level_m - previous).abs() > step {
                return Quality::Jump;
            }
        }
    }
    Quality::Good
}

/// The target for rule `sensor` after a level of `quality`: `jump` (index 0, threshold the
/// allowed step) or `out_of_range` (index 1, threshold the bound crossed).
pub fn sensor_target(station: &Station, quality: Quality, level_m: f64) -> Option<Target> {
    match quality {
        Quality::Good => None,
        Quality::Jump => Some(Target {
            stage: "jump".into(),
            stage_index: 0,
            threshold: station.max_step_m.unwrap_or(0.0),
        }),
        Quality::OutOfRange => {
            let bound = match station.level_range {
                Some((lo, _)) if level_m < lo => lo,
                Some((_, hi)) => hi,
                None => level_m,
            };
            Some(Target {
                stage: "out_of_range".into(),
                stage_index: 1,
                threshold: bound,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::station;

    const MIN: Millis = 60_000;

    #[test]
    fn range_is_inclusive() {
        let s = station();
        let h = LevelHistory::default();
        assert_eq!(level_quality(&s, &h, 0, 40.0), Quality::Good);
        assert_eq!(level_quality(&s, &h, 0, 70.0), Quality::Good);
        assert_eq!(level_quality(&s, &h, 0, 70.01), Quality::OutOfRange);
        assert_eq!(level_quality(&s, &h, 0, 39.99), Quality::OutOfRange);
        let t = sensor_target(&s, Quality::OutOfRange, 39.0).expect("target");
        assert_eq!((t.stage.as_str(), t.threshold), ("out_of_range", 40.0));
    }

    #[test]
    fn jump_from_the_previous_good_level_within_memory() {
        let s = station(); // max_step 1.5 m, interval 5 min
        let mut h = LevelHistory::default();
        h.insert(0, 55.0);
        assert_eq!(level_quality(&s, &h, 5 * MIN, 56.5), Quality::Good);
        assert_eq!(level_quality(&s, &h, 5 * MIN, 56.51), Quality::Jump);
        assert_eq!(level_quality(&s, &h, 15 * MIN, 53.0), Quality::Jump);
        // After an outage longer than three intervals the step is accepted.
        assert_eq!(level_quality(&s, &h, 16 * MIN, 58.0), Quality::Good);
    }
}
