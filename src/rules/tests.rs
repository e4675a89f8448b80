//! Engine scenarios: readings in, events out, as the journal writer drives it.

use std::time::Duration;

use super::*;
use crate::config::{DrySpell, RainWindow, Stage};

pub(crate) fn ladder(stages: &[(&str, f64)]) -> StageLadder {
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

/// 横排头 on the 淠河, with every rule configured.
pub(crate) fn station() -> Station {
    Station {
        id: "62304000".into(),
        name: "横排头".into(),
        river: Some("淠河".into()),
        basin: None,
        team: Some("pihe-east".into()),
        interval: Duration::from_secs(300),
        stages: ladder(&[
            ("guard", 57.5),
            ("warning", 59.0),
            ("guaranteed", 61.0),
            ("record", 62.1),
        ]),
        drought: ladder(&[("warning", 51.0), ("limit", 50.2)]),
        rise_rate_m_per_h: Some(0.5),
        level_range: Some((40.0, 70.0)),
        max_step_m: Some(1.5),
        rain: vec![
            RainWindow {
                label: "1h".into(),
                window: Duration::from_secs(3600),
                threshold_mm: 30.0,
            },
            RainWindow {
                label: "3h".into(),
                window: Duration::from_secs(3 * 3600),
                threshold_mm: 50.0,
            },
        ],
        rain_levels: Vec::new(),
        offline_after: Duration::from_secs(900),
        dry_spell: Some(DrySpell { dry_day_mm: 0.1 }),
        escalate: Vec::new(),
        maintenance: false,
        sl651_address: None,
        sl651_level: Default::default(),
    }
}

pub(crate) fn settings() -> RuleSettings {
    RuleSettings {
        clear_margin_m: 0.05,
        pending: Duration::ZERO,
        time_zone: jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled tzdb"),
        time_zone_name: "Asia/Shanghai".into(),
        day_start_hour: 8,
        late_after: Duration::from_secs(600),
    }
}

const MIN: Millis = 60_000;
const ID: &str = "62304000";

/// 2021-07-20T08:00:00+08:00, the start of the scenarios.
fn t0() -> Millis {
    jiff::civil::date(2021, 7, 20)
        .at(8, 0, 0, 0)
        .to_zoned(settings().time_zone)
        .expect("valid")
        .timestamp()
        .as_millisecond()
}

fn engine() -> Engine {
    Engine::new(&settings(), &[station()])
}

fn level(minutes: Millis, level_m: f64) -> Reading {
    let mut r = Reading::empty(ID, t0() + minutes * MIN);
    r.level_m = Some(level_m);
    r
}

fn rain(minutes: Millis, mm: f64) -> Reading {
    let mut r = Reading::empty(ID, t0() + minutes * MIN);
    r.rain_mm = Some(mm);
    r
}

/// Prepares and evaluates as the writer does, with the wall clock at the observation time.
fn feed(e: &mut Engine, mut r: Reading) -> Vec<AlertEvent> {
    e.prepare(&mut r);
    let now = r.time;
    e.evaluate(&r, now)
}

fn summary(events: &[AlertEvent]) -> Vec<(String, AlertState, String, Millis)> {
    events
        .iter()
        .map(|e| (e.rule.clone(), e.state, e.stage.clone(), e.observed_at))
        .collect()
}

fn ev(
    rule: &str,
    state: AlertState,
    stage: &str,
    minutes: Millis,
) -> (String, AlertState, String, Millis) {
    (
        rule.to_string(),
        state,
        stage.to_string(),
        t0() + minutes * MIN,
    )
}

use AlertState::{Deescalated, Escalated, Firing, Pending, Resolved};

#[test]
fn stage_fires_escalates_deescalates_and_resolves() {
    let mut s = station();
    s.rise_rate_m_per_h = None;
    let mut e = Engine::new(&settings(), &[s]);
    assert!(feed(&mut e, level(0, 57.0)).is_empty());
    assert_eq!(
        summary(&feed(&mut e, level(5, 57.5))),
        vec![ev("stage", Firing, "guard", 5)]
    );
    assert!(feed(&mut e, level(10, 58.0)).is_empty());
    assert_eq!(
        summary(&feed(&mut e, level(15, 59.0))),
        vec![ev("stage", Escalated, "warning", 15)]
    );
    // Within the margin of warning: holds.
    assert!(feed(&mut e, level(20, 58.95)).is_empty());
    let out = feed(&mut e, level(25, 58.94));
    assert_eq!(summary(&out), vec![ev("stage", Deescalated, "guard", 25)]);
    assert_eq!(out[0].threshold, 57.5);
    assert!(
        out[0].message.contains("回落至 警戒水位 59.00 m 以下"),
        "{}",
        out[0].message
    );
    let out = feed(&mut e, level(30, 57.45));
    assert!(out.is_empty(), "{out:?}");
    let out = feed(&mut e, level(35, 57.44));
    assert_eq!(summary(&out), vec![ev("stage", Resolved, "guard", 35)]);
    assert!(
        out[0]
            .message
            .starts_with("横排头 57.44 m 回落至 设防水位 57.50 m 以下, "),
        "{}",
        out[0].message
    );
    assert_eq!(e.open_alerts().count(), 0);
}

#[test]
fn firing_event_carries_trend_and_next_stage() {
    let mut e = engine();
    // 0.3 m/h: below the rise-rate threshold, so only the stage rule speaks.
    for (m, l) in [(0, 58.8), (30, 58.95), (60, 59.1)] {
        feed(&mut e, level(m, l));
    }
    let out = feed(&mut e, level(60, 59.1));
    assert!(out.is_empty(), "a replay at the same time changes nothing");
    let mut e = engine();
    feed(&mut e, level(0, 58.8));
    feed(&mut e, level(30, 58.95));
    let out = feed(&mut e, level(60, 59.1));
    assert_eq!(summary(&out), vec![ev("stage", Escalated, "warning", 60)]);
    let event = &out[0];
    let trend = event.trend_m_per_h.expect("an hour of data");
    assert!((trend - 0.3).abs() < 1e-9);
    assert_eq!(event.next_stage, Some(("guaranteed".to_string(), 61.0)));
    let eta = event.time_to_next_stage_s.expect("rising");
    assert!((eta - 1.9 / 0.3 * 3600.0).abs() < 1e-3);
    assert_eq!(
        event.message,
        "横排头 59.10 m ≥ 警戒水位 59.00 m, rising 0.30 m/h, 约 6.3 h 后达保证水位 61.00 m"
    );
    assert_eq!(event.value, 59.1);
    assert_eq!(event.threshold, 59.0);
    assert_eq!(event.stage_index, 1);
}

#[test]
fn nws_station_gets_english_messages() {
    let mut s = station();
    s.name = "Big River at Town".into();
    s.stages = ladder(&[
        ("action", 57.5),
        ("minor", 59.0),
        ("moderate", 61.0),
        ("major", 62.0),
    ]);
    s.rise_rate_m_per_h = None;
    let mut e = Engine::new(&settings(), &[s]);
    let out = feed(&mut e, level(0, 61.2));
    assert_eq!(summary(&out), vec![ev("stage", Firing, "moderate", 0)]);
    assert_eq!(
        out[0].message,
        "Big River at Town 61.20 m ≥ moderate flood stage 61.00 m"
    );
    let out = feed(&mut e, level(5, 60.0));
    assert_eq!(summary(&out), vec![ev("stage", Deescalated, "minor", 5)]);
}

#[test]
fn out_of_order_readings_never_move_an_alert_backwards() {
    let mut e = engine();
    feed(&mut e, level(0, 58.0));
    feed(&mut e, level(10, 59.2));
    // A backlog reading from before, well below the stage.
    let out = feed(&mut e, level(5, 57.0));
    assert!(out.is_empty(), "{out:?}");
    let alert = e
        .open_alerts()
        .find(|a| a.rule == "stage")
        .expect("still open");
    assert_eq!((alert.stage.as_str(), alert.state), ("warning", Escalated));
    // Nor forwards.
    assert!(feed(&mut e, level(7, 62.5)).is_empty());
    assert_eq!(
        e.status(ID).and_then(|s| s.stage).as_deref(),
        Some("warning")
    );
}

#[test]
fn pending_waits_for_the_condition_to_hold() {
    let mut cfg = settings();
    cfg.pending = Duration::from_secs(600);
    let mut e = Engine::new(&cfg, &[station()]);
    let out = feed(&mut e, level(0, 59.0));
    assert_eq!(summary(&out), vec![ev("stage", Pending, "warning", 0)]);
    assert!(
        out[0].message.ends_with(", 持续 10m 后告警"),
        "{}",
        out[0].message
    );
    assert!(feed(&mut e, level(5, 59.0)).is_empty());
    let out = feed(&mut e, level(10, 59.0));
    assert_eq!(summary(&out), vec![ev("stage", Firing, "warning", 10)]);
    let alert = e.open_alerts().next().expect("open");
    assert_eq!((alert.opened_at, alert.updated_at), (t0(), t0() + 10 * MIN));

    // A condition that stops holding in time is dropped.
    let mut e = Engine::new(&cfg, &[station()]);
    feed(&mut e, level(0, 57.6));
    let out = feed(&mut e, level(5, 57.4));
    assert_eq!(summary(&out), vec![ev("stage", Resolved, "guard", 5)]);
    assert_eq!(e.open_alerts().count(), 0);
}

#[test]
fn drought_levels_mirror_downward() {
    let mut e = engine();
    assert!(feed(&mut e, level(0, 51.01)).is_empty());
    assert_eq!(
        summary(&feed(&mut e, level(5, 51.0))),
        vec![ev("drought", Firing, "warning", 5)]
    );
    let out = feed(&mut e, level(10, 50.2));
    assert_eq!(summary(&out), vec![ev("drought", Escalated, "limit", 10)]);
    assert_eq!(out[0].message, "横排头 50.20 m ≤ 旱限水位 50.20 m");
    assert!(feed(&mut e, level(15, 50.25)).is_empty());
    assert_eq!(
        summary(&feed(&mut e, level(20, 50.26))),
        vec![ev("drought", Deescalated, "warning", 20)]
    );
    assert!(feed(&mut e, level(25, 51.05)).is_empty());
    assert_eq!(
        summary(&feed(&mut e, level(30, 51.06))),
        vec![ev("drought", Resolved, "warning", 30)]
    );
}

#[test]
fn rise_rate_fires_and_resolves_and_holds_across_gaps() {
    let mut s = station();
    s.stages = ladder(&[("guard", 57.5), ("warning", 59.0)]);
    let mut e = Engine::new(&settings(), &[s]);
    feed(&mut e, level(0, 55.0));
    // 20 minutes of data: no rate yet.
    assert!(feed(&mut e, level(20, 55.3)).is_empty());
    let out = feed(&mut e, level(60, 55.5));
    assert_eq!(
        summary(&out),
        vec![ev("rise_rate", Firing, "rise_rate", 60)]
    );
    assert_eq!(out[0].value, 0.5);
    assert_eq!(out[0].next_stage, Some(("guard".to_string(), 57.5)));
    assert_eq!(out[0].time_to_next_stage_s, Some(4.0 * 3600.0));
    assert_eq!(
        out[0].message,
        "横排头 涨率 0.50 m/h ≥ 0.50 m/h, 约 4.0 h 后达设防水位 57.50 m"
    );
    // Two-hour gap: rate unknown, the alert holds.
    assert!(feed(&mut e, level(180, 55.5)).is_empty());
    assert!(e.open_alerts().any(|a| a.rule == "rise_rate"));
    // 0.4 m/h (the clear fraction) still holds; below it resolves.
    assert!(feed(&mut e, level(240, 55.91)).is_empty());
    let out = feed(&mut e, level(300, 56.29));
    assert_eq!(
        summary(&out),
        vec![ev("rise_rate", Resolved, "rise_rate", 300)]
    );
}

#[test]
fn rain_window_fires_at_the_crossing_reading_and_resolves_as_it_slides() {
    let mut e = engine();
    // 10 mm every 30 minutes: 1h window peaks at 20 mm, 3h window reaches 50 at 02:30.
    for m in [30, 60, 90, 120] {
        assert!(feed(&mut e, rain(m, 10.0)).is_empty(), "at {m}");
    }
    let out = feed(&mut e, rain(150, 10.0));
    assert_eq!(summary(&out), vec![ev("rain_3h", Firing, "3h", 150)]);
    assert_eq!((out[0].value, out[0].threshold), (50.0, 50.0));
    assert_eq!(out[0].message, "横排头 3h 雨量 50.0 mm ≥ 50.0 mm");
    assert!(feed(&mut e, rain(180, 0.0)).is_empty());
    // (00:30, 03:30] loses the first 10 mm: 40 mm.
    let out = feed(&mut e, rain(210, 0.0));
    assert_eq!(summary(&out), vec![ev("rain_3h", Resolved, "3h", 210)]);
    assert_eq!(out[0].value, 40.0);
}

#[test]
fn late_rain_goes_into_the_window_at_the_latest_time() {
    let mut e = engine();
    feed(&mut e, rain(60, 25.0));
    feed(&mut e, rain(120, 15.0));
    // An amount from 01:30 arrives after 02:00: the 3 h window at 02:00 now holds 50 mm.
    let out = feed(&mut e, rain(90, 10.0));
    assert_eq!(summary(&out), vec![ev("rain_3h", Firing, "3h", 120)]);
    // The same amount redelivered does not count twice.
    assert!(feed(&mut e, rain(90, 10.0)).is_empty());
    assert_eq!(e.status(ID).map(|s| s.rain_windows[1].1), Some(50.0));
}

#[test]
fn windows_slide_on_other_readings_once_the_gauge_is_silent() {
    let mut e = engine();
    let out = feed(&mut e, rain(30, 50.0));
    assert_eq!(
        summary(&out),
        vec![
            ev("rain_1h", Firing, "1h", 30),
            ev("rain_3h", Firing, "3h", 30)
        ]
    );
    // Within the gauge's period the windows wait for its next report.
    assert!(feed(&mut e, level(35, 55.0)).is_empty());
    // Then the station's level readings move them on.
    assert!(feed(&mut e, level(89, 55.0)).is_empty());
    let out = feed(&mut e, level(90, 55.0));
    assert_eq!(summary(&out), vec![ev("rain_1h", Resolved, "1h", 90)]);
    let out = feed(&mut e, level(210, 55.0));
    assert_eq!(summary(&out), vec![ev("rain_3h", Resolved, "3h", 210)]);
}

#[test]
fn rain_counter_resets_are_never_negative() {
    let mut e = engine();
    let counter = |m: Millis, total: f64| {
        let mut r = Reading::empty(ID, t0() + m * MIN);
        r.rain_total_mm = Some(total);
        r
    };
    let mut r = counter(0, 80.0);
    e.prepare(&mut r);
    assert_eq!(
        (r.rain_mm, r.rain_period_s),
        (None, None),
        "first value ever"
    );
    let mut r = counter(5, 82.5);
    e.prepare(&mut r);
    assert_eq!((r.rain_mm, r.rain_period_s), (Some(2.5), Some(300)));
    let mut r = counter(15, 1.5);
    e.prepare(&mut r);
    assert_eq!(
        (r.rain_mm, r.rain_period_s),
        (Some(1.5), Some(600)),
        "reset"
    );
    // A redelivered older value is neither rain nor a reset.
    let mut r = counter(5, 82.5);
    e.prepare(&mut r);
    assert_eq!(r.rain_mm, None);
    let mut r = counter(20, 2.0);
    e.prepare(&mut r);
    assert_eq!(r.rain_mm, Some(0.5));
    // An amount without a period gets the station's interval; unknown stations are untouched.
    let mut r = rain(25, 1.0);
    e.prepare(&mut r);
    assert_eq!(r.rain_period_s, Some(300));
    let mut r = Reading::empty("elsewhere", 0);
    r.rain_total_mm = Some(5.0);
    r.level_m = Some(1000.0);
    let before = r.clone();
    e.prepare(&mut r);
    assert_eq!(r, before);
}

#[test]
fn hydrological_day_boundary_at_eight_in_shanghai() {
    let mut e = engine();
    // Day of 07-19 (08:00 07-19 to 08:00 07-20): 3 mm at 07:55 and 2 mm at exactly 08:00.
    feed(&mut e, rain(-5, 3.0));
    feed(&mut e, rain(0, 2.0));
    let status = e.status(ID).expect("known");
    assert_eq!(
        status.rain_today_mm, 5.0,
        "08:00 closes the day that ends then"
    );
    // 08:05 opens the day of 07-20.
    feed(&mut e, rain(5, 1.0));
    let status = e.status(ID).expect("known");
    assert_eq!(status.rain_today_mm, 1.0);
    assert_eq!(status.rain_yesterday_mm, Some(5.0));
}

#[test]
fn dry_spell_grades_and_ends_on_a_wet_day() {
    let mut e = engine();
    let day = 24 * 60;
    // Reports of 0 mm each morning: 16 completed dry days in July is a light spell.
    let mut events = Vec::new();
    for d in 0..=16 {
        events.extend(feed(&mut e, rain(d * day + 60, 0.0)));
    }
    assert_eq!(
        summary(&events),
        vec![ev("dry_spell", Firing, "light", 16 * day + 60)]
    );
    assert_eq!(events[0].value, 16.0);
    assert_eq!(e.status(ID).and_then(|s| s.dry_days), Some(16));
    // 26 days is moderate in summer.
    let mut events = Vec::new();
    for d in 17..=26 {
        events.extend(feed(&mut e, rain(d * day + 60, 0.0)));
    }
    assert_eq!(
        summary(&events),
        vec![ev("dry_spell", Escalated, "moderate", 26 * day + 60)]
    );
    // A wet day ends it at once.
    let out = feed(&mut e, rain(27 * day + 60, 0.1));
    assert_eq!(
        summary(&out),
        vec![ev("dry_spell", Resolved, "moderate", 27 * day + 60)]
    );

    // The snapshot carries the spell's dates across a restart.
    let snap = e.snapshot(ID).expect("dry spell state");
    let mut fresh = engine();
    fresh.restore_snapshot(ID, snap);
    feed(&mut fresh, rain(29 * day + 60, 0.0));
    assert_eq!(fresh.status(ID).and_then(|s| s.dry_days), Some(1));
}

#[test]
fn offline_fires_on_tick_and_resolves_on_the_next_reading() {
    let mut e = engine();
    let wall = t0() + 2 * MIN;
    let mut r = level(0, 55.0);
    e.prepare(&mut r);
    assert!(e.evaluate(&r, wall).is_empty());
    assert!(e.tick(wall + 15 * MIN - 1).is_empty());
    let out = e.tick(wall + 15 * MIN);
    assert_eq!(
        summary(&out),
        vec![(
            "offline".to_string(),
            Firing,
            "offline".to_string(),
            wall + 15 * MIN
        )]
    );
    assert_eq!((out[0].value, out[0].threshold), (900.0, 900.0));
    assert!(!out[0].late);
    assert!(e.tick(wall + 30 * MIN).is_empty(), "fires once");
    assert!(e.status(ID).is_some_and(|s| s.offline));
    // The backlog's first reading brings it back, stamped with its observation time.
    let mut r = level(5, 55.0);
    e.prepare(&mut r);
    let out = e.evaluate(&r, wall + 40 * MIN);
    assert_eq!(summary(&out), vec![ev("offline", Resolved, "offline", 5)]);
    assert!(out[0].late);
    assert_eq!(out[0].message, "横排头 恢复上报");
    assert!(!e.status(ID).is_some_and(|s| s.offline));
}

#[test]
fn sensor_faults_open_a_sensor_alert_and_stay_out_of_the_stage_rule() {
    let mut e = engine();
    feed(&mut e, level(0, 56.0));
    let mut r = level(5, 75.0);
    e.prepare(&mut r);
    assert_eq!(r.quality, Quality::OutOfRange);
    let out = e.evaluate(&r, r.time);
    assert_eq!(summary(&out), vec![ev("sensor", Firing, "out_of_range", 5)]);
    assert_eq!(out[0].threshold, 70.0);
    // A jump to above the record stage: suspect, no stage alert.
    let mut r = level(10, 62.5);
    e.prepare(&mut r);
    assert_eq!(r.quality, Quality::Jump);
    let out = e.evaluate(&r, r.time);
    assert_eq!(summary(&out), vec![ev("sensor", Deescalated, "jump", 10)]);
    let out = feed(&mut e, level(15, 56.1));
    assert_eq!(summary(&out), vec![ev("sensor", Resolved, "jump", 15)]);
    assert!(e.open_alerts().all(|a| a.rule != "stage"));
}

#[test]
fn late_flag_follows_late_after() {
    let mut e = engine();
    let r = level(0, 57.6);
    let out = e.evaluate(&r, r.time + 10 * MIN);
    assert!(!out[0].late);
    let r = level(5, 59.0);
    let out = e.evaluate(&r, r.time + 10 * MIN + 1);
    assert!(out[0].late);
    assert_eq!(out[0].created_at, r.time + 10 * MIN + 1);
}

#[test]
fn restore_and_warm_then_evaluate_does_not_fire_again() {
    let mut e = engine();
    feed(&mut e, level(0, 58.8));
    feed(&mut e, level(30, 58.95));
    let fired = feed(&mut e, level(60, 59.1));
    assert_eq!(summary(&fired), vec![ev("stage", Escalated, "warning", 60)]);
    let alerts: Vec<Alert> = e.open_alerts().cloned().collect();

    // Restart: alerts back from the journal, then the retained readings.
    let mut restarted = engine();
    for a in alerts.clone() {
        restarted.restore_alert(a);
    }
    for r in [level(0, 58.8), level(30, 58.95), level(60, 59.1)] {
        restarted.warm(&r);
    }
    restarted.restore_last_seen(ID, t0() + 60 * MIN);
    assert!(feed(&mut restarted, level(65, 59.15)).is_empty());
    // An old reading replayed after the restart does not move it back either.
    assert!(feed(&mut restarted, level(20, 57.0)).is_empty());
    // The warmed history still gives the trend.
    assert!(restarted.status(ID).and_then(|s| s.trend_m_per_h).is_some());
    // Rising on: the restored alert escalates (the fast rise also opens rise_rate).
    let stage_events = |out: Vec<AlertEvent>| -> Vec<AlertEvent> {
        out.into_iter().filter(|e| e.rule == "stage").collect()
    };
    assert!(stage_events(feed(&mut restarted, level(80, 60.0))).is_empty());
    let out = stage_events(feed(&mut restarted, level(90, 61.0)));
    assert_eq!(
        summary(&out),
        vec![ev("stage", Escalated, "guaranteed", 90)]
    );
    assert_eq!(out[0].alert_id, alerts[0].alert_id);
}

#[test]
fn acknowledge_an_open_alert_once() {
    let mut e = engine();
    let id = feed(&mut e, level(0, 59.0))[0].alert_id.clone();
    assert_eq!(
        e.acknowledge("nope", "pihe-east", t0()),
        Err(AckError::NotFound)
    );
    let now = t0() + 3 * MIN;
    let ack = e.acknowledge(&id, "pihe-east", now).expect("open");
    assert_eq!(ack.state, AlertState::Acknowledged);
    assert_eq!((ack.observed_at, ack.created_at), (now, now));
    assert_eq!(ack.acknowledged_by.as_deref(), Some("pihe-east"));
    assert_eq!(ack.stage, "warning");
    assert_eq!(ack.message, "横排头 警戒水位告警已由 pihe-east 确认");
    let alert = e.alert(&id).expect("still open");
    assert_eq!((alert.state, alert.acknowledged_at), (Firing, Some(now)));
    assert_eq!(
        e.acknowledge(&id, "pihe-east", now),
        Err(AckError::AlreadyAcknowledged)
    );
    // Resolved alerts leave the open set and can no longer be acknowledged.
    feed(&mut e, level(5, 57.9));
    let out = feed(&mut e, level(10, 57.0));
    assert_eq!(summary(&out), vec![ev("stage", Resolved, "guard", 10)]);
    assert_eq!(e.alert(&id), None);
}

#[test]
fn status_summarises_the_station() {
    let mut e = engine();
    assert_eq!(e.status("elsewhere"), None);
    feed(&mut e, level(0, 58.5));
    feed(&mut e, level(60, 59.1));
    let s = e.status(ID).expect("known");
    assert_eq!(s.latest_level_m, Some(59.1));
    assert_eq!(s.level_time, Some(t0() + 60 * MIN));
    assert_eq!(
        (s.stage.as_deref(), s.stage_index),
        (Some("warning"), Some(1))
    );
    assert_eq!(s.drought, None);
    assert_eq!(s.next_stage, Some(("guaranteed".to_string(), 61.0)));
    assert_eq!(s.rain_today_mm, 0.0);
    assert_eq!(s.rain_windows.len(), 2);
    assert_eq!(s.last_message_at, Some(t0() + 60 * MIN));
    assert!(serde_json::to_value(&s).is_ok());
}

#[test]
fn windows_slide_on_the_clock_for_a_gauge_that_reports_only_when_it_rains() {
    // Such a gauge is configured to be allowed its silence.
    let mut s = station();
    s.offline_after = Duration::from_secs(6 * 3600);
    let mut e = Engine::new(&settings(), &[s]);
    let out = feed(&mut e, rain(30, 50.0));
    assert_eq!(
        summary(&out),
        vec![
            ev("rain_1h", Firing, "1h", 30),
            ev("rain_3h", Firing, "3h", 30)
        ]
    );
    // Nothing more arrives: the wall clock moves the windows on (the station reports live:
    // its readings were on time, and it is not offline).
    let rain_events = |e: &mut Engine, minutes: Millis| {
        let out: Vec<AlertEvent> = e
            .tick(t0() + minutes * MIN)
            .into_iter()
            .filter(|ev| ev.rule.starts_with("rain_"))
            .collect();
        summary(&out)
    };
    assert!(rain_events(&mut e, 89).is_empty());
    assert_eq!(
        rain_events(&mut e, 90),
        vec![ev("rain_1h", Resolved, "1h", 90)]
    );
    assert!(rain_events(&mut e, 209).is_empty());
    assert_eq!(
        rain_events(&mut e, 210),
        vec![ev("rain_3h", Resolved, "3h", 210)]
    );
}

#[test]
fn a_replayed_storm_is_not_slid_by_the_clock() {
    let mut e = engine();
    // Observed in 2021, received now: a replay, judged in its own time only.
    let mut r = rain(30, 50.0);
    e.prepare(&mut r);
    let now = t0() + 5 * 365 * 24 * 60 * MIN;
    assert_eq!(e.evaluate(&r, now).len(), 2);
    assert!(e
        .tick(now + 10 * MIN)
        .iter()
        .all(|ev| !ev.rule.starts_with("rain_")));
    assert_eq!(
        e.open_alerts()
            .filter(|a| a.rule.starts_with("rain_"))
            .count(),
        2
    );
}

#[test]
fn the_dry_spell_counts_on_the_clock_for_a_gauge_that_reports_no_rain() {
    let mut e = engine();
    let day = 24 * 60;
    // One wet report on 20 July, then only the daily battery report: such a gauge sends no
    // rain on dry days. The sixteenth dry day (21 July to 5 August) completes at 08:00 on
    // 6 August.
    assert!(feed(&mut e, rain(60, 5.0))
        .iter()
        .all(|ev| ev.rule != "dry_spell"));
    let battery = |minutes: Millis| {
        let mut r = Reading::empty(ID, t0() + minutes * MIN);
        r.battery_v = Some(12.6);
        r
    };
    let mut fired = Vec::new();
    for d in 1..=17 {
        // The report arrives at 06:00 and keeps the station from going offline (15 min)
        // only briefly; the tick right after it judges the day.
        feed(&mut e, battery(d * day - 120));
        fired.extend(
            e.tick(t0() + (d * day - 119) * MIN)
                .into_iter()
                .chain(e.tick(t0() + (d * day + 1) * MIN))
                .filter(|ev| ev.rule == "dry_spell"),
        );
    }
    assert_eq!(summary(&fired), vec![]);
    feed(&mut e, battery(17 * day + 1));
    let out: Vec<_> = e
        .tick(t0() + (17 * day + 2) * MIN)
        .into_iter()
        .filter(|ev| ev.rule == "dry_spell")
        .collect();
    assert_eq!(
        summary(&out),
        vec![ev("dry_spell", Firing, "light", 17 * day + 2)]
    );
}

#[test]
fn an_offline_station_is_not_counted_dry_nor_its_rain_slid() {
    let mut e = engine();
    let day = 24 * 60;
    feed(&mut e, rain(30, 50.0));
    // Silent past offline_after (15 min): offline; its windows and dry days wait for it.
    let out: Vec<_> = e
        .tick(t0() + 20 * day * MIN)
        .into_iter()
        .map(|ev| ev.rule)
        .collect();
    assert_eq!(out, vec!["offline".to_string()]);
    assert!(e
        .tick(t0() + (20 * day + 1) * MIN)
        .iter()
        .all(|ev| ev.rule == "offline"));
    assert_eq!(
        e.open_alerts()
            .filter(|a| a.rule.starts_with("rain_"))
            .count(),
        2,
        "the storm's rain alerts stay open while the station is silent"
    );
}

#[test]
fn old_rain_older_than_the_ledger_still_marks_its_day_wet() {
    let mut e = engine();
    let day = 24 * 60;
    feed(&mut e, rain(60, 0.0));
    feed(&mut e, rain(4 * day + 60, 0.0));
    // A backlog flushed days later: 5 mm on the second day, older than the ledger keeps.
    feed(&mut e, rain(day + 60, 5.0));
    feed(&mut e, rain(5 * day + 60, 0.0));
    // Dry since the day after the wet one: days 2, 3 and 4 completed.
    assert_eq!(e.status(ID).and_then(|s| s.dry_days), Some(3));
}

// ---------------------------------------------------------------------------
// Rain warning levels (rule `rain_level`)
// ---------------------------------------------------------------------------

fn amounts(windows: &[(&str, u64, f64)]) -> Vec<RainWindow> {
    windows
        .iter()
        .map(|(label, minutes, mm)| RainWindow {
            label: label.to_string(),
            window: Duration::from_secs(minutes * 60),
            threshold_mm: *mm,
        })
        .collect()
}

/// The contract's two-tier flash-flood scheme.
fn two_tier() -> Vec<crate::config::RainLevel> {
    use crate::config::RainLevel;
    vec![
        RainLevel {
            level: "prepare".into(),
            name: "准备转移".into(),
            windows: amounts(&[("1h", 60, 35.0), ("3h", 180, 55.0), ("6h", 360, 70.0)]),
        },
        RainLevel {
            level: "evacuate".into(),
            name: "立即转移".into(),
            windows: amounts(&[("1h", 60, 45.0), ("3h", 180, 75.0), ("6h", 360, 95.0)]),
        },
    ]
}

/// A rain gauge with only the rain levels.
fn gauge(id: &str, name: &str) -> Station {
    let mut s = station();
    s.id = id.into();
    s.name = name.into();
    s.stages = StageLadder::default();
    s.drought = StageLadder::default();
    s.rise_rate_m_per_h = None;
    s.rain = Vec::new();
    s.dry_spell = None;
    s.rain_levels = two_tier();
    s
}

fn rain_at(id: &str, minutes: Millis, mm: f64) -> Reading {
    let mut r = Reading::empty(id, t0() + minutes * MIN);
    r.rain_mm = Some(mm);
    r.rain_period_s = Some(1800);
    r
}

/// (state, stage, window, value, threshold, minute) of each `rain_level` event.
type LevelEvent = (AlertState, String, String, f64, f64, Millis);

fn levels(events: &[AlertEvent]) -> Vec<LevelEvent> {
    events
        .iter()
        .filter(|e| e.rule == "rain_level")
        .map(|e| {
            (
                e.state,
                e.stage.clone(),
                e.window.clone().unwrap_or_default(),
                e.value,
                e.threshold,
                (e.observed_at - t0()) / MIN,
            )
        })
        .collect()
}

fn lv(state: AlertState, stage: &str, window: &str, v: f64, th: f64, m: Millis) -> LevelEvent {
    (state, stage.into(), window.into(), v, th, m)
}

#[test]
fn rain_level_rises_and_falls_back_like_stages_naming_the_window() {
    let mut e = Engine::new(&settings(), &[gauge("p01", "石门")]);
    let mut out = Vec::new();
    // Half-hourly amounts; the 1h window at t holds the amounts at t and t-30.
    for (m, mm) in [
        (0, 10.0),
        (30, 20.0),
        (60, 16.0),
        (90, 30.0),
        (120, 2.0),
        (150, 0.0),
    ] {
        out.extend(feed(&mut e, rain_at("p01", m, mm)));
    }
    // 0:30 1h 30; 1:00 1h 36 ≥ 35: prepare (36/35 beats 3h 46/55, 6h 46/70).
    // 1:30 1h 46 ≥ 45: evacuate (46/45 = 1.02; 3h 76/75 = 1.013): by 1h.
    // 2:00 1h 32, 3h 78 ≥ 75: still evacuate. 2:30 1h 2, 3h 78 (amount at 0 left at 3:00).
    assert_eq!(
        levels(&out),
        vec![
            lv(Firing, "prepare", "1h", 36.0, 35.0, 60),
            lv(Escalated, "evacuate", "1h", 46.0, 45.0, 90),
        ]
    );
    assert_eq!(
        out.iter()
            .find(|e| e.rule == "rain_level")
            .map(|e| e.message.as_str()),
        Some("石门 准备转移: 1h 雨量 36.0 mm ≥ 35.0 mm")
    );
    // 3:00: 3h (0:00, 3:00] = 20+16+30+2+0+0 = 68 < 75, 6h 78 < 95: back to prepare by 3h
    // (68/55 = 1.24 against 6h 78/70 = 1.11).
    let out = feed(&mut e, rain_at("p01", 180, 0.0));
    assert_eq!(
        levels(&out),
        vec![lv(Deescalated, "prepare", "3h", 68.0, 55.0, 180)]
    );
    assert_eq!(
        out[0].message,
        "石门 立即转移 解除, 现为 准备转移: 3h 雨量 68.0 mm ≥ 55.0 mm"
    );
    assert_eq!(
        out[0].messages.en,
        "石门 evacuate now lifted, now prepare to evacuate: 68.0 mm of rain in 3h ≥ 55.0 mm"
    );
    // Dry half-hours: 3h falls below 55 at 4:00 (16+30+2 = 48), but 6h holds 78 ≥ 70 until
    // the 10 mm at 0:00 leaves it at 6:00 (68 < 70): resolved, closest window 6h.
    let mut out = Vec::new();
    for m in (210..=360).step_by(30) {
        out.extend(feed(&mut e, rain_at("p01", m, 0.0)));
    }
    assert_eq!(
        levels(&out),
        vec![lv(Resolved, "prepare", "6h", 68.0, 70.0, 360)]
    );
    assert_eq!(
        out[0].message,
        "石门 准备转移 解除: 各时段雨量均低于指标 (6h 雨量 68.0 mm < 70.0 mm)"
    );
}

#[test]
fn a_zone_takes_the_worst_of_its_gauges_and_names_the_gauge() {
    let mut a = gauge("p01", "石门");
    let mut b = gauge("p02", "龙潭");
    // The gauges' own levels are not the zone's: only the zone alerts here.
    a.rain_levels = Vec::new();
    b.rain_levels = Vec::new();
    let mut place = gauge("v01", "山口村");
    place.team = Some("village".into());
    let zone = crate::config::Zone {
        place,
        gauges: vec!["p01".into(), "p02".into()],
    };
    let mut e = Engine::new(&settings(), &[a, b]).with_zones(&[zone]);
    assert!(levels(&feed(&mut e, rain_at("p01", 0, 30.0))).is_empty());
    // p02 40 mm: 40/35 on its 1h against p01's 30/35.
    let out = feed(&mut e, rain_at("p02", 0, 40.0));
    assert_eq!(
        levels(&out),
        vec![lv(Firing, "prepare", "1h", 40.0, 35.0, 0)]
    );
    assert_eq!(
        (out[0].station.as_str(), out[0].gauge.as_deref()),
        ("v01", Some("p02"))
    );
    assert_eq!(
        out[0].message,
        "山口村 准备转移: 龙潭 1h 雨量 40.0 mm ≥ 35.0 mm"
    );
    // p01 reaches 46 in its hour: evacuate, named on p01.
    let out = feed(&mut e, rain_at("p01", 30, 16.0));
    assert_eq!(
        levels(&out),
        vec![lv(Escalated, "evacuate", "1h", 46.0, 45.0, 30)]
    );
    assert_eq!(out[0].gauge.as_deref(), Some("p01"));
    // A gauge of no zone, or a reading of another kind, judges no zone.
    let mut lone = Engine::new(&settings(), &[gauge("p09", "x")]);
    assert!(feed(&mut lone, rain_at("p09", 0, 1.0)).is_empty());
}

#[test]
fn ten_minute_windows_judge_each_five_minute_amount() {
    let mut s = gauge("p01", "石门");
    s.rain_levels = vec![crate::config::RainLevel {
        level: "prepare".into(),
        name: "准备转移".into(),
        windows: amounts(&[("10m", 10, 12.0)]),
    }];
    let mut e = Engine::new(&settings(), &[s]);
    let five = |m, mm| {
        let mut r = rain_at("p01", m, mm);
        r.rain_period_s = Some(300);
        r
    };
    let mut out = Vec::new();
    for (m, mm) in [(0, 5.0), (5, 6.0), (10, 6.0), (15, 3.0), (20, 2.0)] {
        out.extend(feed(&mut e, five(m, mm)));
    }
    // (−5,5] 11; (0,10] 12 ≥ 12; (5,15] 9 < 12.
    assert_eq!(
        levels(&out),
        vec![
            lv(Firing, "prepare", "10m", 12.0, 12.0, 10),
            lv(Resolved, "prepare", "10m", 9.0, 12.0, 15),
        ]
    );
}

#[test]
fn rain_level_falls_back_on_the_clock_for_a_live_gauge() {
    let mut s = gauge("p01", "石门");
    s.offline_after = Duration::from_secs(12 * 3600);
    let mut e = Engine::new(&settings(), &[s]);
    let out = feed(&mut e, rain_at("p01", 0, 80.0));
    assert_eq!(
        levels(&out),
        vec![lv(Firing, "evacuate", "1h", 80.0, 45.0, 0)]
    );
    let tick = |e: &mut Engine, m: Millis| levels(&e.tick(t0() + m * MIN));
    // The hour ends at 1:00: 3h 80 ≥ 75 keeps evacuate; at 3:00 6h 80 < 95 and ≥ 70: prepare.
    assert!(tick(&mut e, 59).is_empty());
    assert!(tick(&mut e, 60).is_empty());
    assert_eq!(
        tick(&mut e, 180),
        vec![lv(Deescalated, "prepare", "6h", 80.0, 70.0, 180)]
    );
    // At 6:00 the 80 mm leaves the 6h window too: every window is empty, and a tie names
    // the first window written.
    assert_eq!(
        tick(&mut e, 360),
        vec![lv(Resolved, "prepare", "1h", 0.0, 35.0, 360)]
    );
}

#[test]
fn rain_level_survives_a_restart() {
    let mut e = Engine::new(&settings(), &[gauge("p01", "石门")]);
    let storm = [rain_at("p01", 0, 20.0), rain_at("p01", 30, 16.0)];
    let mut out = Vec::new();
    for r in storm.clone() {
        out.extend(feed(&mut e, r));
    }
    assert_eq!(
        levels(&out),
        vec![lv(Firing, "prepare", "1h", 36.0, 35.0, 30)]
    );
    let alerts: Vec<Alert> = e.open_alerts().cloned().collect();

    let mut restarted = Engine::new(&settings(), &[gauge("p01", "石门")]);
    for a in alerts {
        restarted.restore_alert(a);
    }
    for r in &storm {
        restarted.warm(r);
    }
    restarted.restore_last_seen("p01", t0() + 30 * MIN);
    // Still prepare after the restart says nothing (1h 16+25 = 41); then 1h 25+30 = 55 ≥ 45:
    // evacuate (55/45 = 1.22 against 3h 91/75 = 1.21), on the same alert.
    assert!(levels(&feed(&mut restarted, rain_at("p01", 60, 25.0))).is_empty());
    let out = feed(&mut restarted, rain_at("p01", 90, 30.0));
    assert_eq!(
        levels(&out),
        vec![lv(Escalated, "evacuate", "1h", 55.0, 45.0, 90)]
    );
    let before = e.open_alerts().find(|a| a.rule == "rain_level");
    assert_eq!(Some(&out[0].alert_id), before.map(|a| &a.alert_id));
}

#[test]
fn a_zone_falls_back_on_the_clock_with_its_live_gauges() {
    let mut a = gauge("p01", "石门");
    a.rain_levels = Vec::new();
    a.offline_after = Duration::from_secs(12 * 3600);
    let zone = crate::config::Zone {
        place: gauge("v01", "山口村"),
        gauges: vec!["p01".into()],
    };
    let mut e = Engine::new(&settings(), &[a]).with_zones(&[zone]);
    let out = feed(&mut e, rain_at("p01", 0, 40.0));
    assert_eq!(
        levels(&out),
        vec![lv(Firing, "prepare", "1h", 40.0, 35.0, 0)]
    );
    // The hour passes with nothing from the gauge: 3h 40 < 55, 6h 40 < 70.
    assert!(levels(&e.tick(t0() + 59 * MIN)).is_empty());
    // Resolved, named on the window closest to prepare: 3h 40/55 (6h 40/70, 1h 0/35).
    let out = e.tick(t0() + 60 * MIN);
    assert_eq!(
        levels(&out),
        vec![lv(Resolved, "prepare", "3h", 40.0, 55.0, 60)]
    );
    assert_eq!(out[0].station, "v01");
    assert_eq!(
        out[0].message,
        "山口村 准备转移 解除: 各时段雨量均低于指标 (石门 3h 雨量 40.0 mm < 55.0 mm)"
    );
}
