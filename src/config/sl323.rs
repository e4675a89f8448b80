//! Station catalogues in the shape of SL 323 (实时雨水情数据库): the station table a
//! provincial hydrology bureau already keeps, exported as CSV, imported as `[[stations]]`.

use std::path::Path;

use indexmap::IndexMap;

use super::raw::RawStation;

/// Imports an SL 323 style station catalogue in CSV: columns named `STCD` (required), `STNM`,
/// `RVNM`, `BSNM`, and the characteristic levels `WRZ` (warning), `GRZ` (guaranteed), `OBHTZ`
/// (record), plus the provincial `SFSW` (guard stage) and `LAZ` (drought warning) when present,
/// and optional `TEAM`.
pub(super) fn read_csv(path: &Path) -> Result<Vec<RawStation>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read: {e}"))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("no header row: {e}"))?
        .iter()
        .map(|h| h.trim().to_ascii_uppercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let stcd = col("STCD").ok_or("the header has no STCD column")?;
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", row + 2))?;
        let text = |c: Option<usize>| {
            c.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let number = |name: &str| -> Result<Option<f64>, String> {
            match text(col(name)) {
                None => Ok(None),
                Some(t) => t
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| format!("row {}: {name} `{t}` is not a number", row + 2)),
            }
        };
        let id = text(Some(stcd)).ok_or(format!("row {}: STCD is empty", row + 2))?;
        let mut stages = IndexMap::new();
        for (column, stage) in [
            ("SFSW", "guard"),
            ("WRZ", "warning"),
            ("GRZ", "guaranteed"),
            ("OBHTZ", "record"),
        ] {
            if let Some(v) = number(column)? {
                stages.insert(stage.to_string(), v);
            }
        }
        let mut drought = IndexMap::new();
        if let Some(v) = number("LAZ")? {
            drought.insert("warning".to_string(), v);
        }
        out.push(RawStation {
            id,
            name: text(col("STNM")),
            river: text(col("RVNM")),
            basin: text(col("BSNM")),
            team: text(col("TEAM")),
            stages,
            drought,
            ..RawStation::default()
        });
    }
    Ok(out)
}
