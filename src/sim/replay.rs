//! CSV replay: turns a table of observations (USGS exports, a county's own archive) into
//! gauge readings. Which column holds the time and which the value is named on the command
//! line; values can be scaled (feet to metres) and rows filtered (e.g. approved data only).

use std::path::PathBuf;

use crate::ingest::decode;
use crate::model::{Millis, Reading};

/// Which element the value column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Element {
    /// Water level in metres (after `scale`).
    #[value(name = "level_m")]
    LevelM,
    /// Rainfall in millimetres in the period ending at the row's time.
    #[value(name = "rain_mm")]
    RainMm,
}

/// How to read one CSV file.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    pub path: PathBuf,
    pub time_column: String,
    pub value_column: String,
    /// Station id for every row; when `None`, taken from `station_column`.
    pub station: Option<String>,
    pub station_column: String,
    /// Multiplied into every value (0.3048 turns feet into metres).
    pub scale: f64,
    pub element: Element,
    /// Keep only rows whose `filter.0` column equals `filter.1`.
    pub filter: Option<(String, String)>,
    /// Zone of timestamps without an offset.
    pub time_zone: jiff::tz::TimeZone,
}

/// Errors reading a replay file.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {error}")]
    Csv { path: String, error: csv::Error },
    #[error("{path}: no column `{column}` (columns: {available})")]
    NoColumn {
        path: String,
        column: String,
        available: String,
    },
    #[error("{path}, line {line}: {message}")]
    Row {
        path: String,
        line: u64,
        message: String,
    },
}

/// Reads every row that passes the filter, in file order. An empty value (a gap in the
/// record) is skipped; anything else that does not parse is an error naming the line.
pub fn read(spec: &ReplaySpec) -> Result<Vec<Reading>, ReplayError> {
    let path = spec.path.display().to_string();
    let csv_err = |error| ReplayError::Csv {
        path: path.clone(),
        error,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&spec.path)
        .map_err(csv_err)?;
    let headers = reader.headers().map_err(csv_err)?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ReplayError::NoColumn {
                path: path.clone(),
                column: name.to_string(),
                available: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let time_col = column(&spec.time_column)?;
    let value_col = column(&spec.value_column)?;
    let station_col = match &spec.station {
        Some(_) => None,
        None => Some(column(&spec.station_column)?),
    };
    let filter = match &spec.filter {
        Some((name, value)) => Some((column(name)?, value.as_str())),
        None => None,
    };

    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row_err = |message: String| ReplayError::Row {
            path: path.clone(),
            line,
            message,
        };
        if let Some((col, wanted)) = filter {
            if record.get(col) != Some(wanted) {
                continue;
            }
        }
        let value = record.get(value_col).unwrap_or("");
        if value.is_empty() {
            continue;
        }
        let value: f64 = value
            .parse()
            .map_err(|_| row_err(format!("`{value}` is not a number")))?;
        let time_text = record.get(time_col).unwrap_or("");
        let time = parse_time(time_text, &spec.time_zone).map_err(row_err)?;
        let station = match (&spec.station, station_col) {
            (Some(s), _) => s.clone(),
            (None, Some(col)) => record.get(col).unwrap_or("").to_string(),
            (None, None) => String::new(),
        };
        let mut reading = Reading::empty(station, time);
        let value = value * spec.scale;
        match spec.element {
            Element::LevelM => reading.level_m = Some(value),
            Element::RainMm => reading.rain_mm = Some(value),
        }
        out.push(reading);
    }
    Ok(out)
}

/// RFC 3339 with an offset, a naive `YYYY-MM-DD[T ]HH:MM[:SS]` in `tz`, or Unix seconds
/// (milliseconds above 10^11), as the gauge contract reads times.
pub fn parse_time(text: &str, tz: &jiff::tz::TimeZone) -> Result<Millis, String> {
    match text.parse::<i64>() {
        Ok(n) => decode::millis_from_number(n as f64).ok_or_else(|| format!("`{text}`")),
        Err(_) => decode::parse_time_text(text, tz).map_err(|r| r.detail),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn spec(path: &Path) -> ReplaySpec {
        ReplaySpec {
            path: path.to_path_buf(),
            time_column: "time_utc".into(),
            value_column: "stage_ft".into(),
            station: None,
            station_column: "station".into(),
            scale: 0.3048,
            element: Element::LevelM,
            filter: Some(("qualifier".into(), "A".into())),
            time_zone: jiff::tz::TimeZone::UTC,
        }
    }

    #[test]
    fn reads_usgs_columns_scales_and_filters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.csv");
        std::fs::write(
            &path,
            "station,time_utc,stage_ft,qualifier\n\
             USGS-1,2018-08-31T23:00:00Z,5.25,A\n\
             USGS-1,2018-08-31T23:05:00Z,5.51,P\n\
             USGS-1,2018-08-31T23:10:00Z,,A\n\
             USGS-1,2018-08-31 23:15:00,10,A\n",
        )
        .expect("write");
        let readings = read(&spec(&path)).expect("reads");
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].station, "USGS-1");
        assert_eq!(readings[0].time, 1_535_756_400_000);
        assert!((readings[0].level_m.expect("level") - 5.25 * 0.3048).abs() < 1e-12);
        assert_eq!(readings[1].time, 1_535_756_400_000 + 900_000);
        assert!((readings[1].level_m.expect("level") - 3.048).abs() < 1e-12);
    }

    #[test]
    fn names_the_missing_column_and_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.csv");
        std::fs::write(&path, "time,stage\n2018-08-31T23:00:00Z,x\n").expect("write");
        let err = read(&spec(&path)).expect_err("no time_utc");
        assert!(err.to_string().contains("no column `time_utc`"), "{err}");
        let mut s = spec(&path);
        s.time_column = "time".into();
        s.value_column = "stage".into();
        s.station = Some("g".into());
        s.filter = None;
        let err = read(&s).expect_err("bad value");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn times_in_every_contract_form() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz");
        let utc = jiff::tz::TimeZone::UTC;
        let t = 1_626_739_500_000;
        assert_eq!(parse_time("2021-07-20T08:05:00+08:00", &utc), Ok(t));
        assert_eq!(parse_time("2021-07-20 08:05:00", &shanghai), Ok(t));
        assert_eq!(parse_time("2021-07-20T08:05", &shanghai), Ok(t));
        assert_eq!(parse_time("1626739500", &utc), Ok(t));
        assert_eq!(parse_time("1626739500000", &utc), Ok(t));
        assert!(parse_time("yesterday", &utc).is_err());
    }
}
