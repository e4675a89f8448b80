//! The gauge message contract: one JSON object, an array of objects, or an envelope
//! `{"station": ..., "readings": [...]}` on `hydro/{station_id}/data`.
//!
//! Decoding is all-or-nothing per message: a message with one bad reading is dead-lettered
//! whole, with the reading's position in the reason, so that an operator can fix and replay it
//! as the unit the station sent. Nothing here does I/O.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::model::{Millis, Quality, Reading};

/// What a decoder needs to know besides the message.
pub struct DecodeContext<'a> {
    /// Known station ids; readings for others are dead-lettered.
    pub stations: &'a HashSet<String>,
    /// Zone for timestamps written without an offset.
    pub time_zone: &'a jiff::tz::TimeZone,
    pub max_payload_bytes: usize,
    pub max_readings: usize,
    /// How far in the future (beyond `now`) a time may lie: station clocks drift.
    pub future_tolerance_ms: i64,
    /// Wall clock at arrival.
    pub now: Millis,
}

pub use crate::model::{Cause, Rejection};

fn reject(cause: Cause, detail: impl Into<String>) -> Rejection {
    Rejection {
        cause,
        detail: detail.into(),
    }
}

/// Extracts the station id from a topic such as `hydro/62304000/data`: the segment that
/// stands where the configured filter has its first `+`.
pub fn station_from_topic<'t>(topic: &'t str, filters: &[String]) -> Option<&'t str> {
    filters
        .iter()
        .find_map(|filter| match_plus(filter, topic))
        .filter(|s| !s.is_empty())
}

/// The topic segment under the filter's first `+`, when the topic matches the filter.
/// Walks both without allocating: this runs for every message.
fn match_plus<'t>(filter: &str, topic: &'t str) -> Option<&'t str> {
    let mut levels = topic.split('/');
    let mut station = None;
    let mut has_plus = false;
    for segment in filter.split('/') {
        if segment == "#" {
            return station;
        }
        let level = levels.next()?;
        match segment {
            "+" => {
                if !has_plus {
                    station = Some(level);
                    has_plus = true;
                }
            }
            s if s == level => {}
            _ => return None,
        }
    }
    // A filter without `#` must use up the whole topic.
    match levels.next() {
        None => station,
        Some(_) => None,
    }
}

/// Decodes one message. `topic_station` is the station named by the topic, if any.
pub fn decode(
    topic_station: Option<&str>,
    payload: &[u8],
    cx: &DecodeContext,
) -> Result<Vec<Reading>, Rejection> {
    if payload.len() > cx.max_payload_bytes {
        return Err(reject(
            Cause::TooLarge,
            format!(
                "payload of {} bytes exceeds the limit of {}",
                payload.len(),
                cx.max_payload_bytes
            ),
        ));
    }
    if let Some(readings) = fast::decode(topic_station, payload, cx) {
        return Ok(readings);
    }
    general(topic_station, payload, cx)
}

/// The general path: decodes any message through a `serde_json::Value` tree and alone says
/// why a message is rejected. [`decode`] comes here when the fast path does not accept.
fn general(
    topic_station: Option<&str>,
    payload: &[u8],
    cx: &DecodeContext,
) -> Result<Vec<Reading>, Rejection> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| reject(Cause::NotJson, format!("not JSON: {e}")))?;

    let (envelope_station, items): (Option<&str>, Vec<&Map<String, Value>>) = match &value {
        Value::Object(obj) if obj.contains_key("readings") => {
            let station = match obj.get("station") {
                None => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err(reject(Cause::BadShape, "`station` must be a string")),
            };
            let Some(Value::Array(arr)) = obj.get("readings") else {
                return Err(reject(Cause::BadShape, "`readings` must be an array"));
            };
            (station, objects(arr)?)
        }
        Value::Object(obj) => (None, vec![obj]),
        Value::Array(arr) => (None, objects(arr)?),
        _ => {
            return Err(reject(
                Cause::BadShape,
                "expected an object, an array of objects, or {\"station\", \"readings\"}",
            ))
        }
    };
    if items.is_empty() {
        return Err(reject(Cause::BadShape, "no readings in the message"));
    }
    if items.len() > cx.max_readings {
        return Err(reject(
            Cause::TooManyReadings,
            format!(
                "{} readings exceed the limit of {} per message",
                items.len(),
                cx.max_readings
            ),
        ));
    }

    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |e: Rejection| {
            if items.len() == 1 {
                e
            } else {
                Rejection {
                    cause: e.cause,
                    detail: format!("reading {i}: {}", e.detail),
                }
            }
        };
        let station = station_of(topic_station, envelope_station, item, cx).map_err(at)?;
        out.push(reading(station, item, cx).map_err(at)?);
    }
    Ok(out)
}

fn objects(arr: &[Value]) -> Result<Vec<&Map<String, Value>>, Rejection> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_object()
                .ok_or_else(|| reject(Cause::BadShape, format!("reading {i} is not an object")))
        })
        .collect()
}

/// The topic names the station; a `station` in the payload must agree with it.
fn station_of<'a>(
    topic: Option<&'a str>,
    envelope: Option<&'a str>,
    item: &'a Map<String, Value>,
    cx: &DecodeContext,
) -> Result<&'a str, Rejection> {
    let inner = match item.get("station") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(reject(Cause::BadShape, "`station` must be a string")),
    };
    let mut chosen = topic;
    for named in [envelope, inner].into_iter().flatten() {
        match chosen {
            Some(c) if c != named => {
                return Err(reject(
                    Cause::StationMismatch,
                    format!("payload names station `{named}` but the topic is for `{c}`"),
                ))
            }
            _ => chosen = Some(named),
        }
    }
    let station =
        chosen.ok_or_else(|| reject(Cause::UnknownStation, "no station in topic or payload"))?;
    if !cx.stations.contains(station) {
        return Err(reject(
            Cause::UnknownStation,
            format!("station `{station}` is not in the catalogue"),
        ));
    }
    Ok(station)
}

/// The fast path for the common message: a well-formed object or array of objects decoded
/// straight into typed fields, without building a `serde_json::Value` tree (a map and a key
/// string per field per reading). It only ever accepts: anything it does not recognise as
/// valid (a malformed or unusual message, any reading that would be rejected, an envelope)
/// makes it return `None`, and [`decode`] decodes the message again on the general path, which
/// alone says why a message is rejected. So its acceptance must match the general path's
/// exactly: unknown fields ignored, `null` the same as absent, the same ranges and checks.
mod fast {
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, Visitor};
    use serde::Deserialize;

    use super::{check_time, millis_from_number, parse_time_text, DecodeContext};
    use crate::model::{Quality, Reading};

    /// One reading object. A duplicate key is an error here (the general path lets the last
    /// one win), which only sends such a message to the general path.
    #[derive(Deserialize)]
    struct Item<'a> {
        /// Absent is `None`; `null` or a non-string fails (the general path rejects both).
        #[serde(default, borrow, deserialize_with = "present_str")]
        station: Option<&'a str>,
        #[serde(default, borrow)]
        time: Option<Time<'a>>,
        level_m: Option<f64>,
        rain_mm: Option<f64>,
        rain_total_mm: Option<f64>,
        flow_m3s: Option<f64>,
        battery_v: Option<f64>,
        rain_period_s: Option<f64>,
        /// An object with `readings` is an envelope: the general path's business.
        #[serde(default, deserialize_with = "present")]
        readings: bool,
        /// Any other field, read in full and dropped. Skipping it unread would accept what the
        /// general path cannot parse (a number beyond f64, a lone surrogate, bytes that are not
        /// UTF-8); flattening parses it as the general path does, and costs nothing for a
        /// message without unknown fields.
        #[serde(flatten)]
        _unknown: IgnoredAny,
    }

    fn present_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
        <&str>::deserialize(d).map(Some)
    }

    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        IgnoredAny::deserialize(d).map(|_| true)
    }

    /// `time` as the general path reads it: a number (integer or not) or a string without
    /// escapes (an escaped one fails here and is parsed on the general path).
    enum Time<'a> {
        Number(f64),
        Text(&'a str),
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Time<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a number or a string")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                    Ok(Time::Number(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                    Ok(Time::Number(v as f64))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                    Ok(Time::Number(v))
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(Time::Text(v))
                }
            }
            d.deserialize_any(V)
        }
    }

    pub(super) fn decode(
        topic: Option<&str>,
        payload: &[u8],
        cx: &DecodeContext,
    ) -> Option<Vec<Reading>> {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
        let items: Vec<Object> = match first {
            b'[' => serde_json::from_slice(payload).ok()?,
            b'{' => vec![serde_json::from_slice(payload).ok()?],
            _ => return None,
        };
        if items.is_empty() || items.len() > cx.max_readings {
            return None;
        }
        items
            .iter()
            .map(|item| reading(topic, &item.0, cx))
            .collect()
    }

    /// An [`Item`] written as a JSON object. A derived struct would also accept an array of
    /// its fields in order, which the general path rejects as `bad_shape`.
    struct Object<'a>(Item<'a>);

    impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Object<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a reading object")
                }
                fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    Item::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
                }
            }
            d.deserialize_map(V)
        }
    }

    fn reading(topic: Option<&str>, item: &Item, cx: &DecodeContext) -> Option<Reading> {
        if item.readings {
            return None;
        }
        let station = match (topic, item.station) {
            (Some(t), Some(named)) if t != named => return None,
            (Some(t), _) => t,
            (None, named) => named?,
        };
        if !cx.stations.contains(station) {
            return None;
        }
        let time = match item.time.as_ref()? {
            Time::Number(n) => millis_from_number(*n)?,
            Time::Text(s) => parse_time_text(s, cx.time_zone).ok()?,
        };
        if check_time(time).is_err() || time > cx.now + cx.future_tolerance_ms {
            return None;
        }
        let within = |v: Option<f64>, min: f64, max: f64| match v {
            Some(x) if !x.is_finite() || x < min || x > max => Err(()),
            v => Ok(v),
        };
        let mut r = Reading::empty(station, time);
        r.level_m = within(item.level_m, -1000.0, 10_000.0).ok()?;
        r.rain_mm = within(item.rain_mm, 0.0, 2000.0).ok()?;
        r.rain_total_mm = within(item.rain_total_mm, 0.0, 1.0e7).ok()?;
        r.flow_m3s = within(item.flow_m3s, -1.0e6, 1.0e6).ok()?;
        r.battery_v = within(item.battery_v, 0.0, 1000.0).ok()?;
        r.rain_period_s = match within(item.rain_period_s, 1.0, 31.0 * 86400.0).ok()? {
            None => None,
            Some(p) if p.fract() == 0.0 => Some(p as u32),
            Some(_) => return None,
        };
        if r.level_m.is_none()
            && r.rain_mm.is_none()
            && r.rain_total_mm.is_none()
            && r.flow_m3s.is_none()
        {
            return None;
        }
        r.quality = Quality::Good;
        Some(r)
    }
}

fn reading(
    station: &str,
    item: &Map<String, Value>,
    cx: &DecodeContext,
) -> Result<Reading, Rejection> {
    let time = match item.get("time") {
        None | Some(Value::Null) => return Err(reject(Cause::MissingTime, "`time` is missing")),
        Some(v) => parse_time(v, cx.time_zone)?,
    };
    if time > cx.now + cx.future_tolerance_ms {
        return Err(reject(
            Cause::FutureTime,
            format!(
                "time {} lies {} s in the future",
                crate::model::format_time(time, cx.time_zone),
                (time - cx.now) / 1000
            ),
        ));
    }
    let mut r = Reading::empty(station, time);
    r.level_m = number(item, "level_m", -1000.0, 10_000.0)?;
    r.rain_mm = number(item, "rain_mm", 0.0, 2000.0)?;
    r.rain_total_mm = number(item, "rain_total_mm", 0.0, 1.0e7)?;
    r.flow_m3s = number(item, "flow_m3s", -1.0e6, 1.0e6)?;
    r.battery_v = number(item, "battery_v", 0.0, 1000.0)?;
    r.rain_period_s = match number(item, "rain_period_s", 1.0, 31.0 * 86400.0)? {
        None => None,
        Some(p) if p.fract() == 0.0 => Some(p as u32),
        Some(p) => {
            return Err(reject(
                Cause::BadValue,
                format!("`rain_period_s` {p} is not a whole number of seconds"),
            ))
        }
    };
    if r.level_m.is_none()
        && r.rain_mm.is_none()
        && r.rain_total_mm.is_none()
        && r.flow_m3s.is_none()
    {
        return Err(reject(
            Cause::NoElement,
            "no element: expected level_m, rain_mm, rain_total_mm or flow_m3s",
        ));
    }
    r.quality = Quality::Good;
    Ok(r)
}

/// A number within a sane physical range (station-specific ranges are a quality flag, not a
/// rejection; see the sensor rule).
fn number(
    item: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, Rejection> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if !v.is_finite() || v < min || v > max {
                Err(reject(
                    Cause::BadValue,
                    format!("`{key}` = {v} is outside {min}..{max}"),
                ))
            } else {
                Ok(Some(v))
            }
        }
        Some(other) => Err(reject(
            Cause::BadValue,
            format!("`{key}` must be a number, got {other}"),
        )),
    }
}

/// RFC 3339 with offset; without an offset, local time in `tz`; an integer is Unix seconds,
/// or milliseconds when above 10^11.
pub fn parse_time(v: &Value, tz: &jiff::tz::TimeZone) -> Result<Millis, Rejection> {
    let ms = match v {
        Value::Number(n) => {
            let secs_or_ms = n
                .as_i64()
                .map(|i| i as f64)
                .or_else(|| n.as_f64())
                .unwrap_or(f64::NAN);
            millis_from_number(secs_or_ms)
                .ok_or_else(|| reject(Cause::BadTime, format!("time {n} is not a number")))?
        }
        Value::String(s) => parse_time_text(s, tz)?,
        other => {
            return Err(reject(
                Cause::BadTime,
                format!("time must be a string or a number, got {other}"),
            ))
        }
    };
    check_time(ms)?;
    Ok(ms)
}

/// Unix seconds, or milliseconds when above 10^11; `None` when not finite.
pub fn millis_from_number(secs_or_ms: f64) -> Option<Millis> {
    if !secs_or_ms.is_finite() {
        return None;
    }
    Some(if secs_or_ms.abs() > 1e11 {
        secs_or_ms.round() as i64
    } else {
        (secs_or_ms * 1000.0).round() as i64
    })
}

fn check_time(ms: Millis) -> Result<(), Rejection> {
    const EARLIEST: Millis = -2_208_988_800_000; // 1900-01-01: older is a clock fault
    if ms < EARLIEST {
        return Err(reject(Cause::BadTime, "time before 1900"));
    }
    Ok(())
}

/// A time written as text: RFC 3339 with an offset, else local time in `tz`.
pub fn parse_time_text(s: &str, tz: &jiff::tz::TimeZone) -> Result<Millis, Rejection> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil: jiff::civil::DateTime = s.parse().map_err(|_| {
        reject(
            Cause::BadTime,
            format!("`{s}` is not RFC 3339 (e.g. 2021-07-20T08:05:00+08:00)"),
        )
    })?;
    let zoned = tz
        .to_ambiguous_zoned(civil)
        .compatible()
        .map_err(|e| reject(Cause::BadTime, format!("`{s}` in the local zone: {e}")))?;
    Ok(zoned.timestamp().as_millisecond())
}

/// Property tests: the fast path and the general path agree on every input.
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(stations: &HashSet<String>) -> DecodeContext<'_> {
        DecodeContext {
            stations,
            time_zone: Box::leak(Box::new(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())),
            max_payload_bytes: 4096,
            max_readings: 100,
            future_tolerance_ms: 300_000,
            now: 1_700_000_000_000,
        }
    }

    fn known() -> HashSet<String> {
        ["62304000".to_string(), "a b".to_string()]
            .into_iter()
            .collect()
    }

    const T0: Millis = 1_626_739_500_000; // 2021-07-20T08:05:00+08:00

    #[test]
    fn single_object_with_offset() {
        let k = known();
        let r = decode(
            Some("62304000"),
            br#"{"time":"2021-07-20T08:05:00+08:00","level_m":59.32,"rain_mm":1.5,"rain_period_s":300}"#,
            &cx(&k),
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].time, T0);
        assert_eq!(r[0].level_m, Some(59.32));
        assert_eq!(r[0].rain_mm, Some(1.5));
        assert_eq!(r[0].rain_period_s, Some(300));
    }

    #[test]
    fn array_envelope_naive_and_epoch_times() {
        let k = known();
        let c = cx(&k);
        let arr = decode(
            Some("62304000"),
            br#"[{"time":"2021-07-20T08:05:00","level_m":1},{"time":1626739500,"level_m":2},{"time":1626739500000,"level_m":3}]"#,
            &c,
        )
        .unwrap();
        assert!(arr.iter().all(|r| r.time == T0), "{arr:?}");
        let env = decode(
            Some("62304000"),
            br#"{"station":"62304000","readings":[{"time":"2021-07-20T00:05:00Z","rain_total_mm":12.5}]}"#,
            &c,
        )
        .unwrap();
        assert_eq!(env[0].time, T0);
        assert_eq!(env[0].rain_total_mm, Some(12.5));
    }

    #[test]
    fn bad_messages_name_their_cause() {
        let k = known();
        let c = cx(&k);
        let cases: [(&[u8], Option<&str>, Cause); 9] = [
            (b"not json", Some("62304000"), Cause::NotJson),
            (br#"{"level_m":1}"#, Some("62304000"), Cause::MissingTime),
            (
                br#"{"time":1626739500,"level_m":1}"#,
                Some("nope"),
                Cause::UnknownStation,
            ),
            (
                br#"{"time":1626739500,"level_m":"NaN"}"#,
                Some("62304000"),
                Cause::BadValue,
            ),
            (
                br#"{"time":1626739500,"level_m":1e308}"#,
                Some("62304000"),
                Cause::BadValue,
            ),
            (
                br#"{"time":4102444800,"level_m":1}"#,
                Some("62304000"),
                Cause::FutureTime,
            ),
            (
                br#"{"time":1626739500}"#,
                Some("62304000"),
                Cause::NoElement,
            ),
            (
                br#"{"station":"a b","time":1626739500,"level_m":1}"#,
                Some("62304000"),
                Cause::StationMismatch,
            ),
            (
                br#"{"time":"yesterday","level_m":1}"#,
                Some("62304000"),
                Cause::BadTime,
            ),
        ];
        for (payload, station, cause) in cases {
            let e = decode(station, payload, &c).unwrap_err();
            assert_eq!(e.cause, cause, "{}", String::from_utf8_lossy(payload));
        }
        let big = vec![b' '; 5000];
        assert_eq!(
            decode(Some("62304000"), &big, &c).unwrap_err().cause,
            Cause::TooLarge
        );
    }

    #[test]
    fn one_bad_reading_rejects_the_message_and_says_which() {
        let k = known();
        let e = decode(
            Some("62304000"),
            br#"[{"time":1626739500,"level_m":1},{"time":1626739500,"level_m":-5000}]"#,
            &cx(&k),
        )
        .unwrap_err();
        assert_eq!(e.cause, Cause::BadValue);
        assert!(e.detail.starts_with("reading 1:"), "{}", e.detail);
    }

    #[test]
    fn fast_path_accepts_and_refuses_as_the_general_path_does() {
        let k = known();
        let c = cx(&k);
        // Unknown fields ignored, null as absent, an escaped time string, duplicate keys
        // (last wins): the same readings however the message was decoded.
        let ok = decode(
            Some("62304000"),
            br#"[{"time":1626739500.0,"level_m":1,"x":{"y":[1]},"battery_v":null},
                 {"time":"2021-07-20T08:05:00\u002B08:00","level_m":2,"level_m":3}]"#,
            &c,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|r| r.time == T0), "{ok:?}");
        assert_eq!((ok[0].level_m, ok[0].battery_v), (Some(1.0), None));
        assert_eq!(ok[1].level_m, Some(3.0));
        let refused: [(&[u8], Cause); 3] = [
            (br#"[[null,1626739500,1]]"#, Cause::BadShape),
            (
                br#"{"station":null,"time":1626739500,"level_m":1}"#,
                Cause::BadShape,
            ),
            (br#"{"time":null,"level_m":1}"#, Cause::MissingTime),
        ];
        for (payload, cause) in refused {
            let e = decode(Some("62304000"), payload, &c).unwrap_err();
            assert_eq!(e.cause, cause, "{}", String::from_utf8_lossy(payload));
        }
    }

    /// Found by the property tests: the fast path skipped unknown fields without reading
    /// them, so it accepted a value that the general path cannot parse (a number beyond f64,
    /// a lone surrogate, bytes that are not UTF-8), and the same field made a plain message
    /// stored and an envelope dead-lettered.
    #[test]
    fn an_unknown_field_is_read_as_strictly_on_both_paths() {
        let k = known();
        let c = cx(&k);
        let payloads: [&[u8]; 4] = [
            br#"{"rain_mm":0,"flow_m3s":0,"time":0,"":1e309}"#,
            br#"{"time":1626739500,"level_m":1,"x":[1,{"y":-1e400}]}"#,
            br#"{"time":1626739500,"level_m":1,"note":"\ud800"}"#,
            b"{\"time\":1626739500,\"level_m\":1,\"note\":\"\xff\xfe\"}",
        ];
        for payload in payloads {
            let text = String::from_utf8_lossy(payload);
            assert_eq!(fast::decode(Some("62304000"), payload, &c), None, "{text}");
            let e = decode(Some("62304000"), payload, &c).unwrap_err();
            assert_eq!(e.cause, Cause::NotJson, "{text}");
        }
        // Unknown fields that parse are still ignored, on the fast path.
        let fine = br#"{"time":1626739500,"level_m":1,"x":[1e308,{"y":"\ud83c\udf0a"}],"z":null}"#;
        assert!(fast::decode(Some("62304000"), fine, &c).is_some());
    }

    #[test]
    fn station_is_taken_from_the_plus_segment() {
        let filters = vec!["hydro/+/data".to_string()];
        assert_eq!(
            station_from_topic("hydro/62304000/data", &filters),
            Some("62304000")
        );
        assert_eq!(station_from_topic("hydro/62304000/status", &filters), None);
        assert_eq!(station_from_topic("other/x/data", &filters), None);
        let deep = vec!["region/+/gauges/#".to_string()];
        assert_eq!(
            station_from_topic("region/st1/gauges/a/b", &deep),
            Some("st1")
        );
    }
}
