use super::*;
use crate::alerts::AlertState;
use crate::config::Language;

const H: Millis = 3_600_000;
const M5: Millis = 300_000;

const CONFIG: &str = r#"
[rules]
time_zone = "Asia/Shanghai"
day_start_hour = 8

[[stations]]
id = "hpt"
name = "横排头"
river = "淠河"
basin = "淮河"
interval = "1h"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }

[[stations]]
id = "p01"
name = "雨量一"
river = "淠河"
basin = "淮河"
interval = "1h"
dry_spell = true

[[stations]]
id = "p02"
name = "雨量二"
basin = "淮河"
interval = "1h"

[[stations]]
id = "dry"
name = "枯水站"
interval = "1h"
drought = { warning = 51.0, limit = 50.2 }
"#;

fn settings() -> Settings {
    crate::config::load_from_str(CONFIG).expect("valid configuration")
}

/// 2021-07-{day}T{hh}:{mm}+08:00 in ms.
fn at(day: i8, hh: i8, mm: i8) -> Millis {
    jiff::civil::date(2021, 7, day)
        .at(hh, mm, 0, 0)
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .expect("valid")
        .timestamp()
        .as_millisecond()
}

fn rain(station: &str, time: Millis, mm: f64) -> Reading {
    let mut r = Reading::empty(station, time);
    r.rain_mm = Some(mm);
    r.rain_period_s = Some(3600);
    r
}

fn level(station: &str, time: Millis, m: f64) -> Reading {
    let mut r = Reading::empty(station, time);
    r.level_m = Some(m);
    r
}

fn july20() -> Date {
    jiff::civil::date(2021, 7, 20)
}

fn station<'a>(b: &'a Bulletin, id: &str) -> &'a StationDay {
    b.stations.iter().find(|s| s.id == id).expect("station")
}

fn sorted(mut readings: Vec<Reading>) -> Vec<Reading> {
    readings.sort_by(|a, b| a.station.cmp(&b.station).then(a.time.cmp(&b.time)));
    readings
}

#[test]
fn the_day_runs_from_eight_to_eight_and_eight_oclock_closes_it() {
    let s = settings();
    let readings = sorted(vec![
        rain("p01", at(20, 7, 0), 5.0), // the day before
        rain("p01", at(20, 8, 0), 7.0), // closes the day before
        rain("p01", at(20, 9, 0), 1.5), // first hour of the day
        rain("p01", at(20, 14, 0), 30.0),
        rain("p01", at(20, 14, 30), 12.0), // same clock hour (14:00, 15:00]
        rain("p01", at(21, 8, 0), 10.0),   // closes the day: counts
        rain("p01", at(21, 9, 0), 99.0),   // the next day
    ]);
    let b = compute(
        &s,
        july20(),
        &DayData {
            readings,
            ..Default::default()
        },
    )
    .expect("bulletin");
    assert_eq!(b.from, "2021-07-20T08:00:00+08:00");
    assert_eq!(b.to, "2021-07-21T08:00:00+08:00");
    let p = station(&b, "p01");
    assert_eq!(p.rain_mm, Some(53.5));
    assert_eq!(p.rain_hourly_mm.len(), 24);
    assert_eq!(p.rain_hourly_mm[0], 1.5);
    assert_eq!(p.rain_hourly_mm[23], 10.0);
    // (14:00, 15:00] holds 12 mm: 30 at 14:00 belongs to (13:00, 14:00].
    assert_eq!(p.max_1h_mm, Some(30.0));
    assert_eq!(p.max_1h_end.as_deref(), Some("2021-07-20T14:00:00+08:00"));
    assert_eq!(b.stations_rain_50mm, 1);
    assert_eq!(b.stations_rain_100mm, 0);
    // A station without a rain element has no total, not zero.
    assert_eq!(station(&b, "hpt").rain_mm, None);
}

#[test]
fn levels_peak_trend_and_margins_to_the_stages() {
    let s = settings();
    let mut readings = vec![level("hpt", at(20, 10, 0), 58.9)];
    readings.push(level("hpt", at(20, 20, 0), 60.12));
    readings.push(level("hpt", at(20, 21, 0), 60.12)); // the same peak later: first one counts
    let mut suspect = level("hpt", at(20, 22, 0), 70.0);
    suspect.quality = Quality::Jump;
    readings.push(suspect);
    readings.push(level("hpt", at(21, 8, 0), 59.32));
    let b = compute(
        &s,
        july20(),
        &DayData {
            readings: sorted(readings),
            // The day before's last good level.
            levels_before: HashMap::from([("hpt".to_string(), 58.10)]),
            ..Default::default()
        },
    )
    .expect("bulletin");
    let h = station(&b, "hpt");
    assert_eq!(h.level_m, Some(59.32));
    assert_eq!(h.level_at.as_deref(), Some("2021-07-21T08:00:00+08:00"));
    assert_eq!(h.level_change_m, Some(1.22));
    assert_eq!(h.trend, Some(Trend::Rising));
    assert_eq!(h.peak_m, Some(60.12), "the suspect 70 m is not the river");
    assert_eq!(h.peak_at.as_deref(), Some("2021-07-20T20:00:00+08:00"));
    assert_eq!(h.stage.as_deref(), Some("warning"));
    let margin = |name: &str| {
        h.margins
            .iter()
            .find(|m| m.stage == name)
            .expect("m")
            .margin_m
    };
    assert_eq!(margin("warning"), 0.32);
    assert_eq!(margin("guaranteed"), -1.68);
    assert_eq!(
        render::margin_words(&h.margins, Language::Chinese),
        "超警 0.32 m / 距保证 1.68 m"
    );
    assert_eq!(
        render::margin_words(&h.margins, Language::English),
        "0.32 m above warning stage / 1.68 m below guaranteed stage"
    );
}

#[test]
fn a_day_with_a_missing_hour_is_incomplete() {
    let s = settings();
    let mut readings: Vec<Reading> = (1..=24)
        .map(|h| rain("p01", at(20, 8, 0) + h * H, 0.0))
        .collect();
    readings.extend(
        (1..=24)
            .filter(|h| *h != 13)
            .map(|h| rain("p02", at(20, 8, 0) + h * H, 0.0)),
    );
    let b = compute(
        &s,
        july20(),
        &DayData {
            readings: sorted(readings),
            ..Default::default()
        },
    )
    .expect("bulletin");
    assert!(station(&b, "p01").readings.complete);
    let p02 = &station(&b, "p02").readings;
    assert_eq!((p02.expected, p02.received, p02.complete), (24, 23, false));
    let incomplete: Vec<&str> = b.incomplete.iter().map(|i| i.station.as_str()).collect();
    // hpt and dry sent nothing at all.
    assert_eq!(incomplete, ["hpt", "p02", "dry"]);
}

#[test]
fn basins_average_the_stations_with_rain() {
    let s = settings();
    let readings = sorted(vec![
        rain("p01", at(20, 12, 0), 120.0),
        rain("p02", at(20, 12, 0), 40.0),
    ]);
    let b = compute(
        &s,
        july20(),
        &DayData {
            readings,
            ..Default::default()
        },
    )
    .expect("bulletin");
    assert_eq!(b.basins.len(), 1);
    assert_eq!(b.basins[0].basin, "淮河");
    assert_eq!(b.basins[0].average_rain_mm, 80.0);
    assert_eq!(b.basins[0].wettest[0].id, "p01");
    assert_eq!((b.stations_rain_50mm, b.stations_rain_100mm), (1, 1));
}

#[test]
fn drought_level_and_dry_days() {
    let s = settings();
    let readings = sorted(vec![level("dry", at(20, 12, 0), 50.9)]);
    let mut dry = HashMap::new();
    // Wet on 07-15 (the hydrological day starting 07-15), dry since.
    dry.insert(
        "p01".to_string(),
        RainHistory {
            amounts: vec![(at(15, 12, 0), 3.0)],
            earliest: Some(at(10, 9, 0)),
        },
    );
    let b = compute(
        &s,
        july20(),
        &DayData {
            readings,
            dry,
            ..Default::default()
        },
    )
    .expect("bulletin");
    let d = station(&b, "dry");
    assert_eq!(d.drought.as_deref(), Some("warning"));
    assert_eq!(d.drought_margins[0].margin_m, -0.1);
    assert_eq!(station(&b, "p01").dry_days, Some(5), "16th to 20th");
}

fn event(
    alert: &Alert,
    state: AlertState,
    stage: &str,
    index: usize,
    observed: Millis,
    created: Millis,
) -> AlertEvent {
    let mut e = AlertEvent::new(
        alert,
        state,
        observed,
        created,
        std::time::Duration::from_secs(3600),
    );
    e.stage = stage.into();
    e.stage_index = index;
    e.created_at = created;
    e
}

#[test]
fn alerts_of_the_day_with_who_answered_and_how_fast() {
    let s = settings();
    let alert = Alert {
        alert_id: "a1".into(),
        station: "hpt".into(),
        rule: "stage".into(),
        state: AlertState::Escalated,
        stage: "warning".into(),
        stage_index: 1,
        value: 59.2,
        threshold: 59.0,
        opened_at: at(20, 10, 0),
        updated_at: at(20, 11, 0),
        acknowledged_by: Some("pihe-east".into()),
        acknowledged_at: Some(at(20, 10, 5) + 200_000),
    };
    let paged = at(20, 10, 1);
    let mut ack = event(
        &alert,
        AlertState::Acknowledged,
        "warning",
        1,
        paged + 250_000,
        paged + 250_000,
    );
    ack.acknowledged_by = Some("王队长".into());
    let events = vec![
        event(&alert, AlertState::Firing, "guard", 0, at(20, 10, 0), paged),
        event(
            &alert,
            AlertState::Escalated,
            "warning",
            1,
            at(20, 11, 0),
            at(20, 11, 1),
        ),
        ack,
    ];
    let b = compute(
        &s,
        july20(),
        &DayData {
            events,
            alerts: vec![alert],
            ..Default::default()
        },
    )
    .expect("bulletin");
    assert_eq!(b.alerts.len(), 1);
    let a = &b.alerts[0];
    assert_eq!(a.stage, "warning");
    assert_eq!(a.states, ["firing", "escalated"]);
    assert_eq!(a.first_at, "2021-07-20T10:00:00+08:00");
    assert_eq!(a.acknowledged_by.as_deref(), Some("王队长"));
    assert_eq!(a.response_s, Some(250));
    assert!(!a.resolved);
    let md = render::markdown(&b, &s, Language::Chinese, None);
    assert!(md.contains("确认 王队长 (4 分 10 秒)"), "{md}");
}

#[test]
fn the_json_is_the_same_every_time_and_reads_back() {
    let s = settings();
    let readings = sorted(vec![
        rain("p01", at(20, 9, 0), 0.1),
        rain("p01", at(20, 10, 0), 0.2),
        level("hpt", at(20, 10, 0), 59.5),
    ]);
    let data = DayData {
        readings,
        ..Default::default()
    };
    let first = to_json(&compute(&s, july20(), &data).expect("bulletin"));
    let second = to_json(&compute(&s, july20(), &data).expect("bulletin"));
    assert_eq!(first, second);
    assert!(first.contains("\"rain_mm\": 0.3,"), "rounded: {first}");
    let back: Bulletin = serde_json::from_str(&first).expect("reads back");
    assert_eq!(to_json(&back), first);
    let html = render::html(
        &compute(&s, july20(), &data).expect("bulletin"),
        &s,
        Language::Chinese,
    );
    assert!(html.contains("class=\"chart hydrograph\""));
    assert!(html.contains("class=\"chart rain\""));
    assert!(image::rain_png(&back).is_some_and(|p| p.starts_with(b"\x89PNG")));
}

#[test]
fn the_last_ended_day() {
    let s = settings();
    assert_eq!(last_ended_day(&s, at(21, 8, 0)), Some(july20()));
    assert_eq!(
        last_ended_day(&s, at(21, 7, 59)),
        jiff::civil::date(2021, 7, 19).into()
    );
    let _ = M5;
}

/// A journal in a temporary directory, for the scheduler's bookkeeping.
fn journal_in(dir: &tempfile::TempDir) -> rusqlite::Connection {
    crate::journal::open(&dir.path().join("journal.db")).expect("journal")
}

#[test]
fn the_scheduler_starts_with_the_last_day_and_catches_up_missed_ones() {
    let s = settings();
    let dir = tempfile::tempdir().unwrap();
    let conn = journal_in(&dir);
    // First start, 2021-07-20 09:00: only the day that just ended, not a week of them.
    let now = at(20, 9, 0);
    assert_eq!(
        schedule::write_due(&conn, &s, now).unwrap().as_deref(),
        Some("2021-07-19")
    );
    assert_eq!(schedule::write_due(&conn, &s, now).unwrap(), None);
    // Down from then until 2021-07-23 09:00: the three missed days, oldest first, one a call.
    let later = at(23, 9, 0);
    let written: Vec<_> = std::iter::from_fn(|| schedule::write_due(&conn, &s, later).unwrap())
        .take(10)
        .collect();
    assert_eq!(written, ["2021-07-20", "2021-07-21", "2021-07-22"]);
    // Before the boundary plus WRITE_AFTER, the day just ending is not yet due.
    assert_eq!(schedule::write_due(&conn, &s, at(24, 8, 3)).unwrap(), None);
    // Down for a month: seven days back at most.
    let month = at(31, 9, 0);
    let caught: Vec<_> = std::iter::from_fn(|| schedule::write_due(&conn, &s, month).unwrap())
        .take(40)
        .collect();
    assert_eq!(caught.first().map(String::as_str), Some("2021-07-23"));
    assert_eq!(caught.last().map(String::as_str), Some("2021-07-30"));
    assert_eq!(caught.len(), 8, "{caught:?}");
}

#[test]
fn an_old_day_is_served_from_its_stored_copy_once_its_readings_may_be_gone() {
    let s = settings();
    let dir = tempfile::tempdir().unwrap();
    let conn = journal_in(&dir);
    let now = at(20, 9, 0);
    conn.execute(
        "INSERT INTO readings (station, time_ms, seq, rain_mm, rain_period_s, quality, received_ms)
         VALUES ('p01', ?1, 1, 12.5, 3600, 'good', ?1)",
        [at(19, 15, 0)],
    )
    .unwrap();
    schedule::write_due(&conn, &s, now).unwrap();
    let stored = crate::journal::bulletin(&conn, "2021-07-19")
        .unwrap()
        .unwrap();
    assert!(stored.contains("12.5"), "{stored}");
    let date: jiff::civil::Date = "2021-07-19".parse().unwrap();
    // Within retention: computed (the same document here).
    let fresh = document(&conn, &s, date, now).unwrap();
    assert_eq!(to_json(&fresh), stored);
    // Retention (30 days by default) later, with the readings deleted: still the stored copy.
    let much_later = now + 40 * 24 * H;
    conn.execute("DELETE FROM readings", []).unwrap();
    let old = document(&conn, &s, date, much_later).unwrap();
    assert_eq!(to_json(&old), stored);
    assert_ne!(to_json(&load(&conn, &s, date, much_later).unwrap()), stored);
}

#[test]
fn the_chart_goes_to_chat_servers_only_when_they_can_fetch_it() {
    let public = format!("{CONFIG}\n[http]\npublic_url = \"https://flood.example.cn/hw/\"\n");
    let s = crate::config::load_from_str(&public).expect("valid");
    assert_eq!(
        schedule::public_chart_url(&s, "2021-07-19").as_deref(),
        Some("https://flood.example.cn/hw/bulletins/2021-07-19/rain.png")
    );
    let guarded = format!("{public}read_token = \"a-long-enough-read-token\"\n");
    let s = crate::config::load_from_str(&guarded).expect("valid");
    assert_eq!(
        schedule::public_chart_url(&s, "2021-07-19"),
        None,
        "behind a token"
    );
    assert_eq!(
        schedule::public_chart_url(&settings(), "2021-07-19"),
        None,
        "no address"
    );
}
