//! InfluxDB line protocol for the contract's measurements, with the escaping that lets any
//! station id, name or river (spaces, commas, `=`, quotes, Chinese text) round-trip intact.

use std::fmt::Write as _;

use crate::alerts::AlertEvent;
use crate::config::{Settings, Station};
use crate::model::{Quality, Reading};

/// Escapes a tag key, tag value or field key: commas, equals signs and spaces take a
/// backslash. Line breaks cannot be represented and become spaces.
pub fn escape_tag(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Writes a string field value in double quotes, escaping quotes and backslashes.
pub fn quote_field(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn float(v: f64, out: &mut String) {
    // `{}` prints the shortest text that parses back to the same f64.
    let _ = write!(out, "{v}");
}

fn tag(key: &str, value: &str, out: &mut String) {
    out.push(',');
    out.push_str(key);
    out.push('=');
    escape_tag(value, out);
}

/// Appends the lines for one reading (timestamps in milliseconds): `water_level` when it has a
/// level, `rainfall` when it has a rain amount, `station_health` for the battery.
pub fn encode_reading(r: &Reading, settings: &Settings, out: &mut String) {
    encode_reading_of(r, settings.station(&r.station), out);
}

/// [`encode_reading`] with the station already looked up (`Settings::station` is a linear
/// scan: the forwarder looks stations up in its own index instead, once per reading).
pub fn encode_reading_of(r: &Reading, station: Option<&Station>, out: &mut String) {
    // A gauge that measures discharge only (a flow meter, an SL 651 Q element) still belongs
    // in `water_level`: the point needs one field, not necessarily the level.
    if r.level_m.is_some() || r.flow_m3s.is_some() {
        out.push_str("water_level");
        tag("station", &r.station, out);
        if let Some(s) = station {
            if let Some(river) = &s.river {
                tag("river", river, out);
            }
            if let Some(basin) = &s.basin {
                tag("basin", basin, out);
            }
        }
        let mut separator = ' ';
        if let Some(level) = r.level_m {
            out.push(separator);
            out.push_str("level_m=");
            float(level, out);
            separator = ',';
            if r.quality != Quality::Good {
                out.push_str(",quality=");
                quote_field(r.quality.as_str(), out);
            }
        }
        if let Some(flow) = r.flow_m3s {
            out.push(separator);
            out.push_str("flow_m3s=");
            float(flow, out);
        }
        let _ = writeln!(out, " {}", r.time);
    }
    if let Some(rain) = r.rain_mm {
        out.push_str("rainfall");
        tag("station", &r.station, out);
        out.push_str(" rain_mm=");
        float(rain, out);
        if let Some(p) = r.rain_period_s {
            let _ = write!(out, ",period_s={p}i");
        }
        let _ = writeln!(out, " {}", r.time);
    }
    if let Some(v) = r.battery_v {
        out.push_str("station_health");
        tag("station", &r.station, out);
        out.push_str(" battery_v=");
        float(v, out);
        let _ = writeln!(out, " {}", r.time);
    }
}

/// Appends the `alert_event` line for one event, stamped with its observation time.
pub fn encode_event(e: &AlertEvent, out: &mut String) {
    out.push_str("alert_event");
    tag("station", &e.station, out);
    tag("rule", &e.rule, out);
    if !e.stage.is_empty() {
        tag("stage", &e.stage, out);
    }
    out.push_str(" state=");
    quote_field(e.state.as_str(), out);
    if e.value.is_finite() {
        out.push_str(",value=");
        float(e.value, out);
    }
    if e.threshold.is_finite() {
        out.push_str(",threshold=");
        float(e.threshold, out);
    }
    out.push_str(",alert_id=");
    quote_field(&e.alert_id, out);
    // Rain levels: what decided the level (string fields, so no new series).
    for (key, value) in [("window", &e.window), ("gauge", &e.gauge)] {
        if let Some(v) = value {
            out.push_str(&format!(",{key}="));
            quote_field(v, out);
        }
    }
    let _ = writeln!(out, " {}", e.observed_at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_fields_are_escaped() {
        let mut out = String::new();
        escape_tag(r#"a b,c=d"淠河"#, &mut out);
        assert_eq!(out, r#"a\ b\,c\=d"淠河"#);
        let mut f = String::new();
        quote_field(r#"say "hi" \o/"#, &mut f);
        assert_eq!(f, r#""say \"hi\" \\o/""#);
    }

    #[test]
    fn floats_keep_every_digit() {
        let mut out = String::new();
        float(59.32, &mut out);
        assert_eq!(out, "59.32");
        out.clear();
        float(0.1 + 0.2, &mut out);
        assert_eq!(out.parse::<f64>().unwrap(), 0.1 + 0.2);
    }

    #[test]
    fn a_reading_with_only_a_discharge_is_written() {
        let mut r = Reading::empty("q1", 1_000);
        r.flow_m3s = Some(12.5);
        let mut out = String::new();
        encode_reading_of(&r, None, &mut out);
        assert_eq!(out, "water_level,station=q1 flow_m3s=12.5 1000\n");
        r.level_m = Some(3.25);
        r.quality = Quality::Jump;
        out.clear();
        encode_reading_of(&r, None, &mut out);
        assert_eq!(
            out,
            "water_level,station=q1 level_m=3.25,quality=\"jump\",flow_m3s=12.5 1000\n"
        );
    }

    #[test]
    fn a_rain_level_event_carries_its_window_and_gauge() {
        let alert = crate::alerts::Alert {
            rule: "rain_level".into(),
            stage: "prepare".into(),
            stage_index: 0,
            value: 38.0,
            threshold: 35.0,
            ..crate::alerts::Alert::sample("a1", "v01")
        };
        let mut e = AlertEvent::new(
            &alert,
            crate::alerts::AlertState::Firing,
            1_000,
            1_000,
            std::time::Duration::from_secs(3600),
        );
        let mut plain = String::new();
        encode_event(&e, &mut plain);
        assert!(!plain.contains("window="), "{plain}");
        e.window = Some("1h".into());
        e.gauge = Some("p01".into());
        let mut out = String::new();
        encode_event(&e, &mut out);
        assert_eq!(
            out,
            "alert_event,station=v01,rule=rain_level,stage=prepare state=\"firing\",value=38,\
             threshold=35,alert_id=\"a1\",window=\"1h\",gauge=\"p01\" 1000\n"
        );
    }
}
