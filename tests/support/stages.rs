//! The reference flood: the USGS Plumtree Run record near Bel Air, Maryland, August–September
//! 2018 (feet, converted to metres), and the stage events the contract's semantics imply for
//! it, computed independently of hydrowatch.

#![allow(dead_code)]

use std::path::PathBuf;

pub const STATION: &str = "USGS-01581752";
pub const FT: f64 = 0.3048;
/// NWS flood categories for this gauge (PTRM2), feet.
pub const STAGES_FT: [(&str, f64); 4] = [
    ("action", 5.0),
    ("minor", 6.0),
    ("moderate", 7.0),
    ("major", 10.0),
];
pub const CLEAR_MARGIN_M: f64 = 0.05;

/// The NWS categories in metres, lowest first.
pub fn stages_m() -> Vec<(&'static str, f64)> {
    STAGES_FT
        .iter()
        .map(|&(name, ft)| (name, ft * FT))
        .collect()
}

pub fn data_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/plumtree_run_2018-08.csv")
}

/// Replays the record through `hydrowatch simulate` to the broker at `broker_url`, as fast as
/// it goes, 12 readings a message, approved rows only; panics unless it succeeds within 120 s.
pub async fn replay_the_flood(broker_url: &str) {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
            .args(["simulate", "--broker", broker_url, "--replay"])
            .arg(data_file())
            .args([
                "--time-column",
                "time_utc",
                "--value-column",
                "stage_ft",
                "--station-column",
                "station",
                "--scale",
                "0.3048",
                "--element",
                "level_m",
                "--filter-column",
                "qualifier",
                "--filter-value",
                "A",
                "--as-fast-as-possible",
                "--batch",
                "12",
            ])
            .output(),
    )
    .await
    .expect("simulate finishes within 120 s")
    .expect("run simulate");
    assert!(
        output.status.success(),
        "simulate exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// (time ms, level in metres), approved rows only, in time order.
pub fn readings() -> Vec<(i64, f64)> {
    let path = data_file();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the Plumtree Run CSV {}: {e}", path.display()));
    let mut rows: Vec<(i64, f64)> =
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let cols: Vec<&str> = line.split(',').collect();
                (cols.len() == 4 && cols[0] == STATION && cols[3] == "A" && !cols[2].is_empty())
                    .then(|| {
                        (
                            millis(cols[1]),
                            cols[2].parse::<f64>().expect("stage_ft") * FT,
                        )
                    })
            })
            .collect();
    rows.sort_by_key(|&(t, _)| t);
    rows
}

pub fn millis(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("time {rfc3339}: {e}"))
        .as_millisecond()
}

/// One stage event as the contract implies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub state: String,
    pub stage: String,
    pub observed_at_ms: i64,
}

/// The contract's stage semantics, walked over (time ms, level) readings with `stages`
/// (name, level) lowest first: raise to the highest stage reached; fall back only when more
/// than `margin` below the open stage, to the highest stage not that far below, or resolve
/// (naming the stage left).
pub fn expected_events(readings: &[(i64, f64)], stages: &[(&str, f64)], margin: f64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    let event = |state: &str, stage: usize, t: i64| Event {
        state: state.into(),
        stage: stages[stage].0.into(),
        observed_at_ms: t,
    };
    for &(t, level) in readings {
        let reached = stages.iter().rposition(|(_, l)| level >= *l);
        match (open, reached) {
            (None, Some(r)) => {
                out.push(event("firing", r, t));
                open = Some(r);
            }
            (Some(o), Some(r)) if r > o => {
                out.push(event("escalated", r, t));
                open = Some(r);
            }
            (Some(o), _) if level < stages[o].1 - margin => {
                match stages[..o].iter().rposition(|(_, l)| level >= *l - margin) {
                    Some(d) => {
                        out.push(event("deescalated", d, t));
                        open = Some(d);
                    }
                    None => {
                        out.push(event("resolved", o, t));
                        open = None;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_expected_sequence_follows_the_contract() {
    // A hand-made walk through the semantics the stage tests rely on: raise to the highest
    // stage reached, fall back only beyond the margin, to the stage not that far below.
    let m = |ft: f64| ft * FT;
    let rows = [
        ("2018-08-31T23:00:00Z", m(4.9)),
        ("2018-08-31T23:05:00Z", m(6.2)), // firing minor (action skipped)
        ("2018-08-31T23:10:00Z", m(5.9)), // within the margin of minor: nothing
        ("2018-08-31T23:15:00Z", m(5.5)), // deescalated to action
        ("2018-08-31T23:20:00Z", m(4.9)), // within the margin of action: nothing
        ("2018-08-31T23:25:00Z", m(4.7)), // resolved, naming action
    ];
    let rows: Vec<(i64, f64)> = rows.iter().map(|(t, l)| (millis(t), *l)).collect();
    let got: Vec<(String, String, i64)> = expected_events(&rows, &stages_m(), CLEAR_MARGIN_M)
        .into_iter()
        .map(|e| (e.state, e.stage, e.observed_at_ms))
        .collect();
    let want = [
        ("firing", "minor", "2018-08-31T23:05:00Z"),
        ("deescalated", "action", "2018-08-31T23:15:00Z"),
        ("resolved", "action", "2018-08-31T23:25:00Z"),
    ]
    .map(|(a, b, t)| (a.to_string(), b.to_string(), millis(t)));
    assert_eq!(got, want);
}
