//! Rule evaluation: what each stored reading means for its station, in observation time.
//!
//! The [`Engine`] keeps, per station, the little memory the rules need (recent good levels,
//! rain amounts, the rain counter, the dry spell's dates, when the station was last heard
//! from) and the open alerts. Each rule lives in its own module and only answers "which stage
//! should this station's alert be at now"; the alert lifecycle in [`crate::alerts`] turns that
//! into events. Everything here is synchronous and pure: no I/O and no clock, time comes in
//! as arguments, so the journal writer can replay history through it and tests can drive it
//! minute by minute.
//!
//! - [`stage`]: flood stages (`stage`) and drought levels (`drought`), one ladder rule;
//! - [`rise_rate`]: rate of rise, trend and time to the next stage (`rise_rate`);
//! - [`rain`]: counters, sliding windows (`rain_<window>`) and hydrological days;
//! - [`rain_level`]: rain warning levels (`rain_level`: 准备转移 / 立即转移, four colours), for
//!   a station and for a warning zone on several gauges;
//! - [`dry_spell`]: consecutive dry days (`dry_spell`);
//! - [`offline`]: station silence on the wall clock (`offline`);
//! - [`sensor`]: level quality (`sensor`).

pub mod dry_spell;
pub mod offline;
pub mod rain;
pub mod rain_level;
pub mod rise_rate;
pub mod sensor;
pub mod stage;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use crate::alerts::AckError;
use crate::alerts::{message, millis, Alert, AlertBook, AlertEvent, AlertState, Transition};
use crate::config::{RuleSettings, StageLadder, Station, Zone};
use crate::model::{Millis, Quality, Reading};

use dry_spell::DrySpellState;
use rain::RainLedger;
use rise_rate::{LevelHistory, Outlook};
use stage::Direction;

/// What one station looks like now, for the API and the status board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationStatus {
    pub latest_level_m: Option<f64>,
    pub level_time: Option<Millis>,
    /// Highest flood stage at or below the latest level.
    pub stage: Option<String>,
    pub stage_index: Option<usize>,
    /// Most severe drought level at or above the latest level.
    pub drought: Option<String>,
    pub trend_m_per_h: Option<f64>,
    pub next_stage: Option<(String, f64)>,
    pub time_to_next_stage_s: Option<f64>,
    /// Rain in the current hydrological day (the day of the station's latest rain).
    pub rain_today_mm: f64,
    /// Rain in the hydrological day before; `None` when nothing was seen that early.
    pub rain_yesterday_mm: Option<f64>,
    /// Each configured window: (label, current sum).
    pub rain_windows: Vec<(String, f64)>,
    pub dry_days: Option<u32>,
    pub last_message_at: Option<Millis>,
    pub offline: bool,
}

/// One station's memory.
#[derive(Debug)]
struct StationState {
    station: Station,
    levels: LevelHistory,
    /// Latest observation time of a level of any quality: older levels are stored but never
    /// move an alert backwards.
    level_time: Option<Millis>,
    /// Last tipping-bucket counter value (time, total).
    counter: Option<(Millis, f64)>,
    rain: RainLedger,
    /// Where the rain windows were last evaluated; never moves back.
    rain_end: Option<Millis>,
    /// Period of the latest rain amount, to tell a silent gauge from a slow one.
    rain_period: Millis,
    dry: DrySpellState,
    /// Wall clock of the last message received.
    last_message_at: Option<Millis>,
    /// Latest observation time of any reading: with `last_message_at`, whether the station
    /// reports live (a replay of an old flood does not).
    latest_observed: Option<Millis>,
    /// The warning zones this gauge stands for (indices into `Engine::zones`).
    zones: Vec<usize>,
}

impl StationState {
    fn new(station: &Station) -> StationState {
        let widest = station.widest_rain_window();
        StationState {
            station: station.clone(),
            levels: LevelHistory::default(),
            level_time: None,
            counter: None,
            rain: RainLedger::new(widest),
            rain_end: None,
            rain_period: millis(station.interval),
            dry: DrySpellState::default(),
            last_message_at: None,
            latest_observed: None,
            zones: Vec::new(),
        }
    }

    fn observed(&mut self, time: Millis) {
        self.latest_observed = Some(self.latest_observed.map_or(time, |t| t.max(time)));
    }

    /// Whether the station reports in real time: its latest reading was not late when its
    /// last message arrived. Wall-clock rules apply only then, so that a replay of a flood
    /// from years ago is judged in its own time alone.
    fn live(&self, late_after: Duration) -> bool {
        match (self.last_message_at, self.latest_observed) {
            (Some(heard), Some(observed)) => heard.saturating_sub(observed) <= millis(late_after),
            _ => false,
        }
    }

    /// Records a rain amount in the windows, the day totals and the dry spell.
    fn add_rain(
        &mut self,
        settings: &RuleSettings,
        time: Millis,
        rain_mm: f64,
        period_s: Option<u32>,
    ) {
        self.rain.insert(time, rain_mm);
        if self.rain_end.is_none_or(|end| time >= end) {
            self.rain_period =
                period_s.map_or(millis(self.station.interval), |s| i64::from(s) * 1000);
        }
        if let Some(dry) = &self.station.dry_spell {
            if let Some(day) =
                rain::hydrological_day(time, &settings.time_zone, settings.day_start_hour)
            {
                // An amount older than the ledger keeps (a backlog flushed after days) is not
                // in the day's sum any more, but it did fall on that day.
                let total = self
                    .day_total(settings, day)
                    .map_or(rain_mm, |t| t.max(rain_mm));
                self.dry.observe_day(day, total, dry.dry_day_mm);
            }
        }
    }

    fn day_total(&self, settings: &RuleSettings, day: jiff::civil::Date) -> Option<f64> {
        let (start, end) = rain::day_bounds(day, &settings.time_zone, settings.day_start_hour)?;
        Some(self.rain.sum(start, end))
    }

    fn record_level(&mut self, reading: &Reading, level_m: f64) {
        if reading.quality == Quality::Good {
            self.levels.insert(reading.time, level_m);
        }
        self.level_time = Some(
            self.level_time
                .map_or(reading.time, |t| t.max(reading.time)),
        );
    }
}

/// The rules of every station and their open alerts.
#[derive(Debug)]
pub struct Engine {
    settings: RuleSettings,
    stations: BTreeMap<String, StationState>,
    /// Warning zones, judged on their gauges' rain after each of them moves.
    zones: Vec<Zone>,
    book: AlertBook,
}

impl Engine {
    /// An engine for `stations` with the shared `settings`.
    pub fn new(settings: &RuleSettings, stations: &[Station]) -> Engine {
        Engine {
            settings: settings.clone(),
            stations: stations
                .iter()
                .map(|s| (s.id.clone(), StationState::new(s)))
                .collect(),
            zones: Vec::new(),
            book: AlertBook::default(),
        }
    }

    /// The engine with warning `zones` (rule `rain_level` on several gauges). Their gauges
    /// keep rain for the zones' widest window too.
    pub fn with_zones(mut self, zones: &[Zone]) -> Engine {
        for (index, zone) in zones.iter().enumerate() {
            let widest = zone.place.widest_rain_window();
            for gauge in &zone.gauges {
                if let Some(st) = self.stations.get_mut(gauge) {
                    st.rain.keep_at_least(widest);
                    st.zones.push(index);
                }
            }
        }
        self.zones = zones.to_vec();
        self
    }

    /// Before a reading is stored, in arrival order: sets its level `quality` (rule `sensor`)
    /// and turns a rain counter into `rain_mm` / `rain_period_s`.
    ///
    /// The amount is the increment since the station's previous counter value (a counter that
    /// went down was reset: the amount is the new total), over the time since it. The first
    /// counter value ever seen gives no amount, nor does one not newer than the last (a
    /// redelivery must neither count twice nor look like a reset). A `rain_mm` without a
    /// period gets the station's interval. Readings from unknown stations are left unchanged.
    pub fn prepare(&mut self, reading: &mut Reading) {
        let Some(st) = self.stations.get_mut(&reading.station) else {
            return;
        };
        if let Some(level) = reading.level_m {
            reading.quality = sensor::level_quality(&st.station, &st.levels, reading.time, level);
            if reading.quality == Quality::Good {
                // Now, not at evaluation: a message's later readings are judged against it.
                st.levels.insert(reading.time, level);
            }
        }
        if let Some(total) = reading.rain_total_mm.filter(|t| t.is_finite() && *t >= 0.0) {
            match st.counter {
                Some((since, previous)) if reading.time > since => {
                    if reading.rain_mm.is_none() {
                        reading.rain_mm = Some(rain::counter_increment(previous, total));
                        let secs = reading.time.saturating_sub(since) / 1000;
                        reading.rain_period_s = Some(u32::try_from(secs).unwrap_or(u32::MAX));
                    }
                    st.counter = Some((reading.time, total));
                }
                Some(_) => {}
                None => st.counter = Some((reading.time, total)),
            }
        }
        if reading.rain_mm.is_some() && reading.rain_period_s.is_none() {
            reading.rain_period_s =
                Some(u32::try_from(st.station.interval.as_secs()).unwrap_or(u32::MAX));
        }
    }

    /// Evaluates a stored reading; `now` is the wall clock (for `late` and `created_at`).
    /// Returns the lifecycle events in order.
    pub fn evaluate(&mut self, reading: &Reading, now: Millis) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let Engine {
            settings,
            stations,
            zones,
            book,
        } = self;
        let Some(st) = stations.get_mut(&reading.station) else {
            return events;
        };
        // The catalogue id, which `stations` is keyed by: borrowed, not copied per reading.
        let id = reading.station.as_str();
        let pending = settings.pending;

        // Anything received, even a backlog of old readings, proves the station is alive.
        let silent_s = st
            .last_message_at
            .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
        st.last_message_at = Some(st.last_message_at.map_or(now, |t| t.max(now)));
        st.observed(reading.time);
        if let Some(tr) = book.apply(id, "offline", None, silent_s, reading.time, Duration::ZERO) {
            events.push(emit(settings, &st.station, &tr, reading.time, now, None));
        }

        if let Some(level) = reading.level_m.filter(|l| l.is_finite()) {
            let current = st.level_time.is_none_or(|t| reading.time >= t);
            st.record_level(reading, level);
            if current {
                let target = sensor::sensor_target(&st.station, reading.quality, level);
                if let Some(tr) =
                    book.apply(id, "sensor", target, level, reading.time, Duration::ZERO)
                {
                    events.push(emit(settings, &st.station, &tr, reading.time, now, None));
                }
            }
            if current && reading.quality == Quality::Good {
                let rate = st.levels.rate_at(reading.time);
                let outlook = Outlook::new(&st.station.stages, level, rate);
                let trend_only = Outlook {
                    trend_m_per_h: rate,
                    ..Outlook::default()
                };
                let ladders = [
                    ("stage", &st.station.stages, Direction::Rising, &outlook),
                    (
                        "drought",
                        &st.station.drought,
                        Direction::Falling,
                        &trend_only,
                    ),
                ];
                for (rule, ladder, direction, outlook) in ladders {
                    if ladder.is_empty() {
                        continue;
                    }
                    let open = open_index(book.get(id, rule), ladder);
                    let target = stage::ladder_target(
                        ladder,
                        direction,
                        settings.clear_margin_m,
                        open,
                        level,
                    );
                    if let Some(tr) = book.apply(id, rule, target, level, reading.time, pending) {
                        events.push(emit(
                            settings,
                            &st.station,
                            &tr,
                            reading.time,
                            now,
                            Some(outlook),
                        ));
                    }
                }
                // An unknown rate (too few readings) holds whatever was decided last.
                if let (Some(threshold), Some(rate)) = (st.station.rise_rate_m_per_h, rate) {
                    let open = book.get(id, "rise_rate").is_some();
                    let target = rise_rate::rise_rate_target(threshold, rate, open);
                    if let Some(tr) =
                        book.apply(id, "rise_rate", target, rate, reading.time, pending)
                    {
                        events.push(emit(
                            settings,
                            &st.station,
                            &tr,
                            reading.time,
                            now,
                            Some(&outlook),
                        ));
                    }
                }
            }
        }

        let rain_mm = reading.rain_mm.filter(|mm| mm.is_finite() && *mm >= 0.0);
        let end = match (rain_mm, st.rain_end) {
            (Some(mm), _) => {
                st.add_rain(settings, reading.time, mm, reading.rain_period_s);
                Some(st.rain_end.map_or(reading.time, |e| e.max(reading.time)))
            }
            // A gauge that reports only when it rains: once it has been silent longer than
            // its period, let the windows slide on the station's other readings.
            (None, Some(end)) => {
                let heard = st.rain.latest().unwrap_or(end);
                let silent = reading.time > heard.saturating_add(st.rain_period);
                (silent && reading.time > end).then_some(reading.time)
            }
            _ => None,
        };
        if let Some(end) = end {
            st.rain_end = Some(end);
            // Dry days are counted from the gauge's own reports, not from its neighbours'.
            let dry_spell = rain_mm.is_some();
            events.extend(evaluate_rain(settings, st, book, end, now, dry_spell));
            // Empty for most stations: no allocation.
            let its_zones = st.zones.clone();
            events.extend(evaluate_zones(
                settings, zones, &its_zones, stations, book, end, now,
            ));
        }
        events
    }

    /// Wall-clock tick: a station silent for its `offline_after` goes offline (observed at
    /// `now`). Only the next reading brings it back.
    ///
    /// For a station that reports live and is not offline, the rain windows and the dry spell
    /// also move on with the clock once its rain gauge has been silent longer than its
    /// period: a gauge that reports rain only when it rains (and otherwise only its battery,
    /// or nothing within its `offline_after`) sends nothing to slide its windows, and its
    /// `rain_1h` would otherwise stay firing, and its dry spell stand still, until the next
    /// rain.
    pub fn tick(&mut self, now: Millis) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let Engine {
            settings,
            stations,
            zones,
            book,
        } = self;
        // The zones of gauges whose windows moved with the clock, judged after them.
        let mut moved: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
        for st in stations.values_mut() {
            let Some(last) = st.last_message_at else {
                continue;
            };
            if book.get(&st.station.id, "offline").is_none() {
                let target = offline::offline_target(last, now, st.station.offline_after);
                let silent_s = now.saturating_sub(last) as f64 / 1000.0;
                if let Some(tr) = book.apply(
                    &st.station.id,
                    "offline",
                    target,
                    silent_s,
                    now,
                    Duration::ZERO,
                ) {
                    events.push(emit(settings, &st.station, &tr, now, now, None));
                }
            }
            // A station gone silent is offline, not dry: its windows and dry days wait for
            // it (the offline alert is the news), as they do for a replay of old data.
            if (st.station.rain.is_empty()
                && st.station.rain_levels.is_empty()
                && st.station.dry_spell.is_none()
                && st.zones.is_empty())
                || !st.live(settings.late_after)
                || book.get(&st.station.id, "offline").is_some()
            {
                continue;
            }
            let end = st.rain_end.unwrap_or(Millis::MIN);
            let heard = st.rain.latest().unwrap_or(end);
            if now > end && now > heard.saturating_add(st.rain_period) {
                st.rain_end = Some(now);
                events.extend(evaluate_rain(settings, st, book, now, now, true));
                moved.extend(&st.zones);
            }
        }
        let moved: Vec<usize> = moved.into_iter().collect();
        events.extend(evaluate_zones(
            settings, zones, &moved, stations, book, now, now,
        ));
        events
    }

    /// When a station's last message was received (wall clock).
    pub fn last_message_at(&self, station: &str) -> Option<Millis> {
        self.stations.get(station)?.last_message_at
    }

    /// At start, before live readings: rebuilds a station's memory from a retained reading
    /// (in time order per station). Produces no events and never touches alerts.
    pub fn warm(&mut self, reading: &Reading) {
        let settings = &self.settings;
        let Some(st) = self.stations.get_mut(&reading.station) else {
            return;
        };
        st.observed(reading.time);
        if let Some(total) = reading.rain_total_mm.filter(|t| t.is_finite() && *t >= 0.0) {
            if st.counter.is_none_or(|(t, _)| reading.time > t) {
                st.counter = Some((reading.time, total));
            }
        }
        if let Some(level) = reading.level_m.filter(|l| l.is_finite()) {
            st.record_level(reading, level);
        }
        if let Some(mm) = reading.rain_mm.filter(|mm| mm.is_finite() && *mm >= 0.0) {
            st.add_rain(settings, reading.time, mm, reading.rain_period_s);
            st.rain_end = Some(st.rain_end.map_or(reading.time, |e| e.max(reading.time)));
        }
    }

    /// At start: puts back an open alert from the journal.
    pub fn restore_alert(&mut self, alert: Alert) {
        self.book.restore(alert);
    }

    /// At start: when the station's last message was received (wall clock).
    pub fn restore_last_seen(&mut self, station: &str, wall_ms: Millis) {
        if let Some(st) = self.stations.get_mut(station) {
            st.last_message_at = Some(st.last_message_at.map_or(wall_ms, |t| t.max(wall_ms)));
        }
    }

    /// Per-station state that the retained readings cannot rebuild (the dry spell's first
    /// and last wet day); the journal stores it and hands it back at start.
    pub fn snapshot(&self, station: &str) -> Option<serde_json::Value> {
        let dry = self.stations.get(station)?.dry.snapshot()?;
        Some(serde_json::json!({ "dry_spell": dry }))
    }

    /// Hands back what [`Engine::snapshot`] gave; merges with what `warm` rebuilt.
    pub fn restore_snapshot(&mut self, station: &str, value: serde_json::Value) {
        if let (Some(st), Some(dry)) = (self.stations.get_mut(station), value.get("dry_spell")) {
            st.dry.restore(dry);
        }
    }

    /// A team acknowledges an open alert: returns the `acknowledged` event (observed and
    /// created at `now`).
    pub fn acknowledge(
        &mut self,
        alert_id: &str,
        team: &str,
        now: Millis,
    ) -> Result<AlertEvent, AckError> {
        let alert = self.book.acknowledge(alert_id, team, now)?;
        let mut event = AlertEvent::new(
            &alert,
            AlertState::Acknowledged,
            now,
            now,
            self.settings.late_after,
        );
        let place = self
            .stations
            .get(&alert.station)
            .map(|st| &st.station)
            .or_else(|| {
                let zone = self.zones.iter().find(|z| z.place.id == alert.station);
                zone.map(|z| &z.place)
            });
        event.message = match place {
            Some(place) => {
                event.set_messages(place, &message::Context::default());
                event.message.clone()
            }
            None => format!(
                "{} {} alert acknowledged by {team}",
                alert.station, alert.rule
            ),
        };
        Ok(event)
    }

    /// Every open alert.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.book.iter()
    }

    /// An open alert by id.
    pub fn alert(&self, alert_id: &str) -> Option<&Alert> {
        self.book.by_id(alert_id)
    }

    /// A station's current status, for the API and the board.
    pub fn status(&self, station: &str) -> Option<StationStatus> {
        let st = self.stations.get(station)?;
        let s = &st.station;
        let latest = st.levels.latest();
        let level = latest.map(|(_, l)| l);
        let stage_index = level.and_then(|l| stage::stage_reached(&s.stages, Direction::Rising, l));
        let drought = level
            .and_then(|l| stage::stage_reached(&s.drought, Direction::Falling, l))
            .and_then(|i| s.drought.stages.get(i))
            .map(|d| d.name.clone());
        let outlook = match latest {
            Some((t, l)) => Outlook::new(&s.stages, l, st.levels.rate_at(t)),
            None => Outlook::default(),
        };
        let tz = &self.settings.time_zone;
        let hour = self.settings.day_start_hour;
        let today = st
            .rain_end
            .and_then(|end| rain::hydrological_day(end, tz, hour));
        let yesterday = today.and_then(|d| d.yesterday().ok());
        let rain_yesterday_mm = match (yesterday, st.rain.earliest()) {
            (Some(day), Some(first)) => rain::day_bounds(day, tz, hour)
                .filter(|(_, day_end)| first <= *day_end)
                .and_then(|_| st.day_total(&self.settings, day)),
            _ => None,
        };
        Some(StationStatus {
            latest_level_m: level,
            level_time: latest.map(|(t, _)| t),
            stage: stage_index
                .and_then(|i| s.stages.stages.get(i))
                .map(|x| x.name.clone()),
            stage_index,
            drought,
            trend_m_per_h: outlook.trend_m_per_h,
            next_stage: outlook.next_stage,
            time_to_next_stage_s: outlook.time_to_next_stage_s,
            rain_today_mm: today
                .and_then(|d| st.day_total(&self.settings, d))
                .unwrap_or(0.0),
            rain_yesterday_mm,
            rain_windows: s
                .rain
                .iter()
                .map(|w| {
                    let sum = st
                        .rain_end
                        .map_or(0.0, |end| st.rain.window_sum(end, w.window));
                    (w.label.clone(), sum)
                })
                .collect(),
            dry_days: s
                .dry_spell
                .as_ref()
                .and(today)
                .and_then(|d| st.dry.dry_days(d)),
            last_message_at: st.last_message_at,
            offline: self.book.get(station, "offline").is_some(),
        })
    }
}

/// The rain windows (and, with `dry_spell`, the dry spell) at `end`, the latest time the
/// station's rain is known.
fn evaluate_rain(
    settings: &RuleSettings,
    st: &StationState,
    book: &mut AlertBook,
    end: Millis,
    now: Millis,
    dry_spell: bool,
) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    let id = &st.station.id;
    for (rule, target, sum) in rain::window_targets(&st.rain, &st.station.rain, end) {
        if let Some(tr) = book.apply(id, &rule, target, sum, end, Duration::ZERO) {
            events.push(emit(settings, &st.station, &tr, end, now, None));
        }
    }
    if !st.station.rain_levels.is_empty() {
        let gauge = rain_level::Gauge {
            id: None,
            ledger: &st.rain,
            end,
        };
        events.extend(judge_rain_level(
            settings,
            &st.station,
            book,
            &[gauge],
            end,
            now,
            None,
        ));
    }
    if dry_spell && st.station.dry_spell.is_some() {
        let today = rain::hydrological_day(end, &settings.time_zone, settings.day_start_hour);
        if let Some((today, days)) = today.and_then(|d| Some((d, st.dry.dry_days(d)?))) {
            let open = book.get(id, "dry_spell").map(|a| a.stage_index);
            let target = dry_spell::dry_spell_target(today, days, open);
            if let Some(tr) = book.apply(
                id,
                "dry_spell",
                target,
                f64::from(days),
                end,
                Duration::ZERO,
            ) {
                events.push(emit(settings, &st.station, &tr, end, now, None));
            }
        }
    }
    events
}

/// The zones `judge` (indices into `zones`), each at `at` (observation time): every gauge of
/// a zone at the latest time its own rain is known.
fn evaluate_zones(
    settings: &RuleSettings,
    zones: &[Zone],
    judge: &[usize],
    stations: &BTreeMap<String, StationState>,
    book: &mut AlertBook,
    at: Millis,
    now: Millis,
) -> Vec<AlertEvent> {
    let mut events = Vec::new();
    for zone in judge.iter().filter_map(|i| zones.get(*i)) {
        let gauges: Vec<rain_level::Gauge> = zone
            .gauges
            .iter()
            .filter_map(|g| {
                let st = stations.get(g)?;
                Some(rain_level::Gauge {
                    id: Some(&st.station.id),
                    ledger: &st.rain,
                    end: st.rain_end?,
                })
            })
            .collect();
        events.extend(judge_rain_level(
            settings,
            &zone.place,
            book,
            &gauges,
            at,
            now,
            Some(stations),
        ));
    }
    events
}

/// Moves `place`'s `rain_level` alert to where its gauges put it; the event names the
/// deciding window (and, for a zone, the gauge, named as in `gauges_of`).
fn judge_rain_level(
    settings: &RuleSettings,
    place: &Station,
    book: &mut AlertBook,
    gauges: &[rain_level::Gauge],
    at: Millis,
    now: Millis,
    gauges_of: Option<&BTreeMap<String, StationState>>,
) -> Option<AlertEvent> {
    let levels = &place.rain_levels;
    let open = book.get(&place.id, "rain_level").map(|a| {
        levels
            .iter()
            .position(|l| l.level == a.stage)
            .unwrap_or(a.stage_index)
    });
    let judgement = rain_level::judge(levels, gauges, open)?;
    let tr = book.apply(
        &place.id,
        "rain_level",
        judgement.target,
        judgement.sum_mm,
        at,
        settings.pending,
    )?;
    let mut event = AlertEvent::new(&tr.alert, tr.alert.state, at, now, settings.late_after);
    // For `resolved` the alert keeps the amount that last raised it; the event names the
    // window closest to the level it leaves.
    event.threshold = judgement.amount_mm;
    event.window = Some(judgement.window);
    let gauge = judgement.gauge.as_deref().map(|g| {
        gauges_of
            .and_then(|s| s.get(g))
            .map_or(g, |st| &st.station.name)
    });
    let cx = message::Context {
        left: tr.left.as_ref(),
        pending: settings.pending,
        gauge,
    };
    event.set_messages(place, &cx);
    event.gauge = judgement.gauge;
    Some(event)
}

/// Where an open alert sits on `ladder`: by name, so a reordered configuration still finds it.
fn open_index(alert: Option<&Alert>, ladder: &StageLadder) -> Option<usize> {
    alert.map(|a| ladder.position(&a.stage).unwrap_or(a.stage_index))
}

/// The event for a transition, with its outlook and sentence.
fn emit(
    settings: &RuleSettings,
    station: &Station,
    tr: &Transition,
    observed_at: Millis,
    now: Millis,
    outlook: Option<&Outlook>,
) -> AlertEvent {
    let mut event = AlertEvent::new(
        &tr.alert,
        tr.alert.state,
        observed_at,
        now,
        settings.late_after,
    );
    if let Some(o) = outlook {
        event.trend_m_per_h = o.trend_m_per_h;
        event.next_stage.clone_from(&o.next_stage);
        event.time_to_next_stage_s = o.time_to_next_stage_s;
    }
    let cx = message::Context {
        left: tr.left.as_ref(),
        pending: settings.pending,
        ..message::Context::default()
    };
    event.set_messages(station, &cx);
    event
}
