//! Consecutive days without rain (连续无雨日数), rule `dry_spell`: completed hydrological days
//! with less than `dry_day_mm` of rain since the last wet day, graded light / moderate /
//! severe / extreme by the season of the current day (domain.md: spring 16/31/46/61 days,
//! summer 16/26/36/46, autumn–winter 31/51/71/91).
//!
//! A spell lasts months, longer than the journal retains readings, so the two dates it rests
//! on (the first day seen and the last wet day) are kept in the engine's snapshot.
//!
//! Days are counted from the rain readings that arrive; a day without any reading counts as
//! dry (gauges that report only when it rains send nothing on a dry day). The current day
//! turns wet as soon as its running total reaches `dry_day_mm`, which ends the spell at once.
//! A grade never falls while the spell lasts: when the season changes to one with longer
//! grades the alert keeps its grade until a wet day resolves it.

use jiff::civil::Date;
use serde_json::json;

use crate::alerts::Target;

/// Grade names, least severe first.
pub const GRADES: [&str; 4] = ["light", "moderate", "severe", "extreme"];

/// The dates a dry spell is counted from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrySpellState {
    first_day: Option<Date>,
    last_wet_day: Option<Date>,
}

impl DrySpellState {
    /// Takes note of a hydrological day's running total.
    pub fn observe_day(&mut self, day: Date, total_mm: f64, dry_day_mm: f64) {
        self.first_day = Some(self.first_day.map_or(day, |d| d.min(day)));
        if total_mm >= dry_day_mm {
            self.last_wet_day = Some(self.last_wet_day.map_or(day, |d| d.max(day)));
        }
    }

    /// Completed dry days before `today`; `None` before any day was seen.
    pub fn dry_days(&self, today: Date) -> Option<u32> {
        let from = match self.last_wet_day {
            Some(wet) => wet.tomorrow().ok()?,
            None => self.first_day?,
        };
        let days = today.since(from).ok()?.get_days();
        Some(u32::try_from(days).unwrap_or(0))
    }

    /// The state as JSON, for the engine's snapshot.
    pub fn snapshot(&self) -> Option<serde_json::Value> {
        self.first_day?;
        Some(json!({
            "first_day": self.first_day.map(|d| d.to_string()),
            "last_wet_day": self.last_wet_day.map(|d| d.to_string()),
        }))
    }

    /// Merges a snapshot: the earlier first day and the later wet day win, so it does not
    /// matter whether the journal's readings are warmed before or after.
    pub fn restore(&mut self, value: &serde_json::Value) {
        let date = |key: &str| value.get(key)?.as_str()?.parse::<Date>().ok();
        if let Some(first) = date("first_day") {
            self.first_day = Some(self.first_day.map_or(first, |d| d.min(first)));
        }
        if let Some(wet) = date("last_wet_day") {
            self.last_wet_day = Some(self.last_wet_day.map_or(wet, |d| d.max(wet)));
        }
    }
}

/// The days each grade starts at in the season of `day`.
pub fn grade_days(day: Date) -> [u32; 4] {
    match day.month() {
        3..=5 => [16, 31, 46, 61],
        6..=8 => [16, 26, 36, 46],
        _ => [31, 51, 71, 91],
    }
}

/// The target for rule `dry_spell` on `today` after `dry_days` dry days, given the grade the
/// alert is open at.
pub fn dry_spell_target(today: Date, dry_days: u32, open: Option<usize>) -> Option<Target> {
    if dry_days == 0 {
        return None;
    }
    let starts = grade_days(today);
    let reached = starts.iter().rposition(|d| dry_days >= *d);
    let index = reached.max(open)?.min(GRADES.len() - 1);
    Some(Target {
        stage: GRADES[index].to_string(),
        stage_index: index,
        threshold: f64::from(starts[index]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn counts_completed_days_since_the_last_wet_day() {
        let mut s = DrySpellState::default();
        assert_eq!(s.dry_days(date(2021, 4, 1)), None);
        s.observe_day(date(2021, 3, 1), 0.0, 0.1);
        assert_eq!(s.dry_days(date(2021, 3, 1)), Some(0));
        assert_eq!(s.dry_days(date(2021, 3, 17)), Some(16));
        s.observe_day(date(2021, 3, 10), 0.1, 0.1);
        assert_eq!(s.dry_days(date(2021, 3, 10)), Some(0));
        assert_eq!(s.dry_days(date(2021, 3, 11)), Some(0));
        assert_eq!(s.dry_days(date(2021, 3, 12)), Some(1));
    }

    #[test]
    fn grades_follow_the_season() {
        let grade = |d, n| dry_spell_target(d, n, None).map(|t| t.stage);
        assert_eq!(grade(date(2021, 4, 1), 15), None);
        assert_eq!(grade(date(2021, 4, 1), 16).as_deref(), Some("light"));
        assert_eq!(grade(date(2021, 4, 1), 31).as_deref(), Some("moderate"));
        assert_eq!(grade(date(2021, 7, 1), 26).as_deref(), Some("moderate"));
        assert_eq!(grade(date(2021, 7, 1), 46).as_deref(), Some("extreme"));
        assert_eq!(grade(date(2021, 12, 1), 30), None);
        assert_eq!(grade(date(2022, 2, 1), 91).as_deref(), Some("extreme"));
        // Into autumn with a summer grade: the grade holds.
        let t = dry_spell_target(date(2021, 9, 1), 27, Some(1)).expect("held");
        assert_eq!((t.stage.as_str(), t.threshold), ("moderate", 51.0));
        assert_eq!(dry_spell_target(date(2021, 9, 1), 0, Some(1)), None);
    }

    #[test]
    fn snapshot_round_trips_and_merges() {
        let mut s = DrySpellState::default();
        assert_eq!(s.snapshot(), None);
        s.observe_day(date(2021, 1, 5), 3.0, 0.1);
        let snap = s.snapshot().expect("state");
        let mut warmed = DrySpellState::default();
        warmed.observe_day(date(2021, 2, 1), 0.0, 0.1);
        warmed.restore(&snap);
        assert_eq!(warmed, s);
        assert_eq!(warmed.dry_days(date(2021, 2, 10)), Some(35));
    }
}
