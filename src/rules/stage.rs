//! Stage ladders: the flood stages (rule `stage`, rising: guard → warning → guaranteed →
//! record, or NWS action → … → record) and the drought levels (rule `drought`, falling:
//! 旱警 → 旱限 …) are one rule read in two directions.
//!
//! A level at or beyond a stage raises the alert to the highest stage reached. It falls back
//! only when the level is more than `clear_margin_m` back from the open stage, so a river
//! hovering at a stage does not page the patrol team every five minutes.

use crate::alerts::Target;
use crate::config::StageLadder;

/// Gauges report to the millimetre; this only absorbs float noise in `stage - margin`, so a
/// level written exactly at a boundary behaves as written.
const EPSILON_M: f64 = 1e-9;

/// Which way a ladder's water is dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Flood stages: danger when the level is at or above.
    Rising,
    /// Drought levels: danger when the level is at or below.
    Falling,
}

impl Direction {
    /// How far `level` is past `stage_m` in the dangerous direction (negative: short of it).
    fn beyond(self, level: f64, stage_m: f64) -> f64 {
        match self {
            Direction::Rising => level - stage_m,
            Direction::Falling => stage_m - level,
        }
    }
}

/// The stage index an alert on `ladder` should be at after `level`, given the stage it is
/// open at (`None`: no alert). `None` back means no alert: never raised, or cleared.
///
/// Exactly at a stage reaches it; exactly `clear_margin_m` back from the open stage still
/// holds it (it must be *more* than the margin back to fall).
pub fn ladder_stage(
    ladder: &StageLadder,
    direction: Direction,
    clear_margin_m: f64,
    open: Option<usize>,
    level: f64,
) -> Option<usize> {
    let reached = stage_reached(ladder, direction, level);
    let Some(open) = open else {
        return reached;
    };
    // A restored alert may name a stage the ladder no longer has that far up.
    let open = open.min(ladder.stages.len().checked_sub(1)?);
    if reached.is_some_and(|r| r >= open) {
        return reached;
    }
    // Short of the open stage: hold the highest stage the level is within the margin of.
    ladder.stages[..=open]
        .iter()
        .rposition(|s| direction.beyond(level, s.level_m) >= -clear_margin_m - EPSILON_M)
}

/// The target for rule `stage` or `drought` after `level`: [`ladder_stage`] with the stage's
/// name and level filled in.
pub fn ladder_target(
    ladder: &StageLadder,
    direction: Direction,
    clear_margin_m: f64,
    open: Option<usize>,
    level: f64,
) -> Option<Target> {
    let index = ladder_stage(ladder, direction, clear_margin_m, open, level)?;
    let stage = ladder.stages.get(index)?;
    Some(Target {
        stage: stage.name.clone(),
        stage_index: index,
        threshold: stage.level_m,
    })
}

/// The highest stage at or beyond `level`, without hysteresis (for the status board).
pub fn stage_reached(ladder: &StageLadder, direction: Direction, level: f64) -> Option<usize> {
    ladder
        .stages
        .iter()
        .rposition(|s| direction.beyond(level, s.level_m) >= -EPSILON_M)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Stage;

    fn ladder(stages: &[(&str, f64)]) -> StageLadder {
        StageLadder {
            stages: stages
                .iter()
                .map(|(n, l)| Stage {
                    name: n.to_string(),
                    level_m: *l,
                })
                .collect(),
        }
    }

    fn chinese() -> StageLadder {
        ladder(&[
            ("guard", 57.5),
            ("warning", 59.0),
            ("guaranteed", 61.0),
            ("record", 62.1),
        ])
    }

    const M: f64 = 0.05;
    use Direction::{Falling, Rising};

    fn flood(open: Option<usize>, level: f64) -> Option<usize> {
        ladder_target(&chinese(), Rising, M, open, level).map(|t| t.stage_index)
    }

    #[test]
    fn exactly_at_a_stage_reaches_it() {
        assert_eq!(flood(None, 57.49), None);
        assert_eq!(flood(None, 57.5), Some(0));
        assert_eq!(flood(None, 59.0), Some(1));
        assert_eq!(flood(None, 62.1), Some(3));
        let t = ladder_target(&chinese(), Rising, M, None, 59.0).expect("warning");
        assert_eq!((t.stage.as_str(), t.threshold), ("warning", 59.0));
    }

    #[test]
    fn jumps_to_the_highest_stage_reached() {
        assert_eq!(flood(Some(0), 61.5), Some(2));
        assert_eq!(flood(None, 63.0), Some(3));
    }

    #[test]
    fn within_the_margin_holds_beyond_it_falls() {
        // Exactly the margin below holds; a millimetre more falls back.
        assert_eq!(flood(Some(1), 58.95), Some(1));
        assert_eq!(flood(Some(1), 58.97), Some(1));
        assert_eq!(flood(Some(1), 58.949), Some(0));
        // Lowest stage: more than the margin below resolves.
        assert_eq!(flood(Some(0), 57.45), Some(0));
        assert_eq!(flood(Some(0), 57.449), None);
    }

    #[test]
    fn falls_back_across_several_stages() {
        // From record straight to guard: the highest stage it is not far below.
        assert_eq!(flood(Some(3), 58.0), Some(0));
        // Within the margin of warning (an intermediate stage) keeps warning.
        assert_eq!(flood(Some(3), 58.96), Some(1));
        assert_eq!(flood(Some(3), 50.0), None);
    }

    #[test]
    fn nws_ladder_works_the_same() {
        let nws = ladder(&[
            ("action", 10.0),
            ("minor", 12.0),
            ("moderate", 14.0),
            ("major", 16.0),
        ]);
        let at = |open, level| ladder_target(&nws, Rising, 0.1, open, level).map(|t| t.stage);
        assert_eq!(at(None, 14.0), Some("moderate".to_string()));
        assert_eq!(at(Some(2), 13.9), Some("moderate".to_string()));
        assert_eq!(at(Some(2), 13.8), Some("minor".to_string()));
    }

    #[test]
    fn drought_mirrors_downward() {
        let drought = ladder(&[("warning", 51.0), ("limit", 50.2)]);
        let at =
            |open, level| ladder_target(&drought, Falling, M, open, level).map(|t| t.stage_index);
        assert_eq!(at(None, 51.01), None);
        assert_eq!(at(None, 51.0), Some(0));
        assert_eq!(at(None, 50.2), Some(1));
        assert_eq!(at(Some(1), 50.25), Some(1));
        assert_eq!(at(Some(1), 50.26), Some(0));
        assert_eq!(at(Some(0), 51.05), Some(0));
        assert_eq!(at(Some(0), 51.051), None);
    }

    #[test]
    fn an_open_index_past_the_ladder_is_clamped() {
        assert_eq!(flood(Some(9), 61.0), Some(2));
        assert_eq!(
            ladder_target(&StageLadder::default(), Rising, M, Some(0), 1.0),
            None
        );
    }
}
