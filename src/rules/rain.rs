//! Rainfall: turning tipping-bucket counters into amounts, sliding-window sums (rule
//! `rain_<window>`, e.g. `rain_3h` for the 50 mm in 3 h rainstorm signal) and hydrological-day
//! totals (08:00 to 08:00 local by default, as SL 323 keeps them).
//!
//! A rain amount covers the period ending at its time; for windows and days it is counted
//! entirely at that time. A window `w` evaluated at `t` sums the amounts in `(t - w, t]`, and
//! an amount observed exactly at 08:00 belongs to the hydrological day that ends at 08:00.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::alerts::{millis, Target};
use crate::config::RainWindow;
use crate::model::Millis;

/// Amounts are kept long enough for yesterday's hydrological day and the widest window.
const KEEP_DAYS: Millis = 50 * 3_600_000;

/// One station's rain amounts by observation time, oldest first. A sorted deque rather than a
/// tree: amounts arrive almost always in time order, and 24 hours of 5-minute amounts for ten
/// thousand stations must stay small (16 bytes an amount).
#[derive(Debug, Clone, Default)]
pub struct RainLedger {
    amounts: VecDeque<(Millis, f64)>,
    keep: Millis,
}

impl RainLedger {
    /// A ledger that keeps amounts for `widest` window (and at least two days).
    pub fn new(widest: Duration) -> RainLedger {
        RainLedger {
            amounts: VecDeque::new(),
            keep: millis(widest).max(KEEP_DAYS),
        }
    }

    /// Keeps amounts for `window` too, when it is wider than what the ledger keeps.
    pub fn keep_at_least(&mut self, window: Duration) {
        self.keep = self.keep.max(millis(window));
    }

    /// Records an amount; the same time again overwrites, so a replay never counts twice.
    pub fn insert(&mut self, time: Millis, rain_mm: f64) {
        match self.amounts.back() {
            Some(&(last, _)) if time <= last => {
                match self.amounts.binary_search_by_key(&time, |(t, _)| *t) {
                    Ok(i) => self.amounts[i].1 = rain_mm,
                    Err(i) => self.amounts.insert(i, (time, rain_mm)),
                }
            }
            _ => self.amounts.push_back((time, rain_mm)),
        }
        if let Some(&(latest, _)) = self.amounts.back() {
            let cutoff = latest.saturating_sub(self.keep);
            while self.amounts.front().is_some_and(|(t, _)| *t < cutoff) {
                self.amounts.pop_front();
            }
        }
    }

    /// Rain in `(end - window, end]`.
    pub fn window_sum(&self, end: Millis, window: Duration) -> f64 {
        let start = end.saturating_sub(millis(window));
        self.sum(start, end)
    }

    /// Rain in `(start, end]`.
    pub fn sum(&self, start: Millis, end: Millis) -> f64 {
        if start >= end {
            return 0.0;
        }
        let from = self.amounts.partition_point(|(t, _)| *t <= start);
        let to = self.amounts.partition_point(|(t, _)| *t <= end);
        self.amounts.range(from..to).map(|(_, mm)| mm).sum()
    }

    /// Time of the earliest amount still kept.
    pub fn earliest(&self) -> Option<Millis> {
        self.amounts.front().map(|(t, _)| *t)
    }

    /// Time of the latest amount.
    pub fn latest(&self) -> Option<Millis> {
        self.amounts.back().map(|(t, _)| *t)
    }
}

/// The rain windows' targets at `end`: (rule, target, sum) for each window, target `None`
/// when the sum is below the threshold.
pub fn window_targets(
    ledger: &RainLedger,
    windows: &[RainWindow],
    end: Millis,
) -> Vec<(String, Option<Target>, f64)> {
    windows
        .iter()
        .map(|w| {
            let sum = ledger.window_sum(end, w.window);
            let target = (sum >= w.threshold_mm).then(|| Target {
                stage: w.label.clone(),
                stage_index: 0,
                threshold: w.threshold_mm,
            });
            (format!("rain_{}", w.label), target, sum)
        })
        .collect()
}

/// The increment of a tipping-bucket counter: a counter that went down was reset (daily at
/// 08:00 or on power loss), so the new total is all rain since the reset — never negative.
pub fn counter_increment(previous_mm: f64, total_mm: f64) -> f64 {
    if total_mm >= previous_mm {
        total_mm - previous_mm
    } else {
        total_mm.max(0.0)
    }
}

/// The hydrological day, named by the local date it starts on, that an amount observed at
/// `time` belongs to: the day runs `(start_hour, next day's start_hour]` local time.
pub fn hydrological_day(time: Millis, tz: &TimeZone, start_hour: u8) -> Option<Date> {
    // One millisecond back: an amount at exactly 08:00 is the last of the day ending then.
    let ts = Timestamp::from_millisecond(time.saturating_sub(1)).ok()?;
    let local = ts.to_zoned(tz.clone()).datetime();
    if local.hour() < start_hour as i8 {
        local.date().yesterday().ok()
    } else {
        Some(local.date())
    }
}

/// `(start, end]` of a hydrological day in milliseconds.
pub fn day_bounds(day: Date, tz: &TimeZone, start_hour: u8) -> Option<(Millis, Millis)> {
    let at = |d: Date| -> Option<Millis> {
        let zoned = d.at(start_hour as i8, 0, 0, 0).to_zoned(tz.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    };
    Some((at(day)?, at(day.tomorrow().ok()?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").expect("bundled tzdb")
    }

    /// 2021-07-20T{hh}:{mm}+08:00 in ms.
    fn july20(hh: i8, mm: i8) -> Millis {
        jiff::civil::date(2021, 7, 20)
            .at(hh, mm, 0, 0)
            .to_zoned(shanghai())
            .expect("valid")
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn window_is_open_at_the_start_closed_at_the_end() {
        let mut l = RainLedger::new(Duration::from_secs(3 * 3600));
        l.insert(0, 10.0);
        l.insert(H, 20.0);
        l.insert(3 * H, 30.0);
        let w = Duration::from_secs(3 * 3600);
        assert_eq!(l.window_sum(3 * H, w), 50.0);
        assert_eq!(l.window_sum(3 * H - 1, w), 30.0);
        // A replayed reading overwrites.
        l.insert(H, 20.0);
        assert_eq!(l.window_sum(3 * H, w), 50.0);
    }

    #[test]
    fn counter_resets_are_never_negative() {
        assert_eq!(counter_increment(10.0, 12.5), 2.5);
        assert_eq!(counter_increment(80.0, 1.5), 1.5);
        assert_eq!(counter_increment(80.0, 0.0), 0.0);
        assert_eq!(counter_increment(80.0, 80.0), 0.0);
    }

    #[test]
    fn eight_oclock_closes_the_hydrological_day() {
        let tz = shanghai();
        let day = |t| hydrological_day(t, &tz, 8).map(|d| d.to_string());
        assert_eq!(day(july20(8, 0)).as_deref(), Some("2021-07-19"));
        assert_eq!(day(july20(8, 0) + 1).as_deref(), Some("2021-07-20"));
        assert_eq!(day(july20(8, 5)).as_deref(), Some("2021-07-20"));
        assert_eq!(day(july20(0, 30)).as_deref(), Some("2021-07-19"));
        assert_eq!(day(july20(23, 59)).as_deref(), Some("2021-07-20"));
        let (start, end) = day_bounds(jiff::civil::date(2021, 7, 20), &tz, 8).expect("bounds");
        assert_eq!(start, july20(8, 0));
        assert_eq!(end, july20(8, 0) + 24 * H);
    }
}
