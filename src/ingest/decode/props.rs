//! Property tests over the payload decoder, with generated input of three kinds: arbitrary
//! bytes, arbitrary JSON values, and near misses (valid messages with a few mutations: wrong
//! types, missing, extra and duplicate fields, odd numbers and times, nested shapes, another
//! station, too many readings, unicode and escapes, truncation).
//!
//! For every input:
//! - nothing panics;
//! - [`decode`] (fast path first) gives exactly what the general path alone gives: the same
//!   readings, or the same rejection (cause and detail), so the fast path never accepts a
//!   message the general path would reject or read differently;
//! - a message the general path accepts is accepted by the fast path too, unless it uses one of
//!   the things the fast path leaves to the general path by design (an envelope or any
//!   `readings` key, a backslash escape, a duplicate key): otherwise the fast path would be
//!   silently unused.
//!
//! The case counts keep `cargo test --lib` quick. For a long run:
//! `PROPTEST_CASES=200000 cargo test --release --lib ingest::decode::props`
//! (the variable replaces every count here).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::{decode, fast, general, Cause, DecodeContext, Rejection};
use crate::model::{Millis, Reading};

/// The wall clock the tests pretend it is (2023-11-14T22:13:20Z).
const NOW: Millis = 1_700_000_000_000;
const FUTURE_TOLERANCE_MS: i64 = 300_000;
/// 1900-01-01, the earliest time the decoder accepts.
const EARLIEST: Millis = -2_208_988_800_000;

/// Known stations (one with a space, one in Chinese) and stations that are not.
static KNOWN: [&str; 3] = ["62304000", "a b", "横排头"];
static UNKNOWN: [&str; 2] = ["nope", ""];

/// The field names the decoders look at.
static FIELDS: [&str; 9] = [
    "time",
    "level_m",
    "rain_mm",
    "rain_total_mm",
    "flow_m3s",
    "battery_v",
    "rain_period_s",
    "station",
    "readings",
];

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

struct Fixture {
    stations: HashSet<String>,
    /// Asia/Shanghai (no DST now, but some in the past) and America/New_York (gaps and folds
    /// for local times written without an offset).
    zones: [jiff::tz::TimeZone; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        stations: KNOWN.iter().map(|s| s.to_string()).collect(),
        zones: [
            jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled tzdb"),
            jiff::tz::TimeZone::get("America/New_York").expect("bundled tzdb"),
        ],
    })
}

/// The context every case decodes with; `max_readings` small so that "too many" is cheap.
fn context(zone: usize, max_readings: usize) -> DecodeContext<'static> {
    let f = fixture();
    DecodeContext {
        stations: &f.stations,
        time_zone: &f.zones[zone % 2],
        max_payload_bytes: 1 << 20,
        max_readings,
        future_tolerance_ms: FUTURE_TOLERANCE_MS,
        now: NOW,
    }
}

/// Readings compared through `Debug`, so that `-0.0` and `0.0` differ too.
fn shown(result: &Result<Vec<Reading>, Rejection>) -> Result<String, String> {
    match result {
        Ok(readings) => Ok(format!("{readings:?}")),
        Err(rejection) => Err(rejection.to_string()),
    }
}

/// The properties, for one input.
fn agree(topic: Option<&str>, payload: &[u8], cx: &DecodeContext) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(payload);
    let whole = decode(topic, payload, cx);
    let general = general(topic, payload, cx);
    let fast = fast::decode(topic, payload, cx);
    if let Some(fast) = &fast {
        prop_assert_eq!(
            Ok(format!("{fast:?}")),
            shown(&general),
            "the fast path accepted what the general path decodes otherwise; topic {:?}, payload {}",
            topic,
            text
        );
    }
    prop_assert_eq!(
        shown(&whole),
        shown(&general),
        "decode and the general path differ; topic {:?}, payload {}",
        topic,
        text
    );
    if general.is_ok() && fast.is_none() {
        prop_assert!(
            !plain(payload),
            "the general path accepts a plain message that the fast path refuses; topic {:?}, payload {}",
            topic,
            text
        );
    }
    Ok(())
}

/// A message the fast path is meant to accept when the general path does: an object or an
/// array of objects, no `readings` key in any of them, no escape anywhere, no duplicate key.
fn plain(payload: &[u8]) -> bool {
    if payload.contains(&b'\\') {
        return false;
    }
    let objects: Vec<Keys> = match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => match serde_json::from_slice(payload) {
            Ok(list) => list,
            Err(_) => return false,
        },
        Some(b'{') => match serde_json::from_slice(payload) {
            Ok(one) => vec![one],
            Err(_) => return false,
        },
        _ => return false,
    };
    objects.iter().all(|Keys(keys)| {
        let distinct: HashSet<&String> = keys.iter().collect();
        distinct.len() == keys.len() && !distinct.contains(&"readings".to_string())
    })
}

/// The keys of one JSON object in order, duplicates kept.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// The station the topic names: mostly a known one.
fn topic() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        6 => select(&KNOWN[..]).prop_map(Some),
        1 => select(&UNKNOWN[..]).prop_map(Some),
        1 => Just(None),
    ]
}

/// A time in milliseconds: mostly plausible (1900 until a little after `NOW`), sometimes not.
fn time_ms() -> impl Strategy<Value = Millis> {
    prop_oneof![
        8 => EARLIEST..NOW + FUTURE_TOLERANCE_MS,
        1 => NOW + FUTURE_TOLERANCE_MS - 2..NOW + FUTURE_TOLERANCE_MS + 2,
        1 => EARLIEST - 2..EARLIEST + 2,
        1 => NOW..NOW + 10 * 365 * 86_400_000,
    ]
}

/// A valid `time` value (raw JSON) for `ms`, in one of the forms the contract allows.
fn time_text(ms: Millis, form: u8, zone: usize) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).expect("time within jiff's range");
    match form % 7 {
        // Whole seconds as an integer, milliseconds as an integer, seconds with a fraction.
        0 => format!("{}", ms.div_euclid(1000)),
        1 if ms.abs() > 100_000_000_000 => format!("{ms}"),
        1 | 2 => format!("{:.3}", ms as f64 / 1000.0),
        3 => format!("\"{ts}\""),
        4 => {
            let offset = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
            format!(
                "\"{}\"",
                ts.to_zoned(offset).strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
            )
        }
        // Local time without an offset, in the context's zone.
        5 => {
            let tz = fixture().zones[zone % 2].clone();
            format!("\"{}\"", ts.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S"))
        }
        _ => format!("\"{}\"", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
    }
}

/// A number inside `min..=max`, written as JSON.
fn number_in(min: f64, max: f64) -> impl Strategy<Value = String> {
    prop_oneof![
        (min..=max).prop_map(|x| format!("{x}")),
        (min..=max).prop_map(|x| format!("{x:.3}")),
        ((min.ceil() as i64)..=(max.floor() as i64)).prop_map(|i| format!("{i}")),
        Just(format!("{min}")),
        Just(format!("{max}")),
    ]
}

/// One valid reading, as (key, raw JSON value) pairs.
fn valid_reading(zone: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    let element = |key: &'static str, min: f64, max: f64| {
        proptest::option::weighted(0.5, number_in(min, max))
            .prop_map(move |v| v.map(|v| (key.to_string(), v)))
    };
    (
        time_ms(),
        any::<u8>(),
        element("level_m", -1000.0, 10_000.0),
        element("rain_mm", 0.0, 2000.0),
        element("rain_total_mm", 0.0, 1.0e7),
        element("flow_m3s", -1.0e6, 1.0e6),
        element("battery_v", 0.0, 1000.0),
        proptest::option::weighted(0.3, 1u32..=31 * 86_400),
        any::<prop::sample::Index>(),
    )
        .prop_map(
            move |(ms, form, level, rain, total, flow, battery, period, first)| {
                let mut fields = vec![("time".to_string(), time_text(ms, form, zone))];
                let elements: Vec<_> = [level, rain, total, flow].into_iter().flatten().collect();
                if elements.is_empty() {
                    // At least one element; battery alone is not one.
                    fields.push(("level_m".into(), format!("{}", first.index(1000))));
                }
                fields.extend(elements);
                fields.extend(battery);
                if let Some(p) = period {
                    fields.push(("rain_period_s".into(), p.to_string()));
                }
                let len = fields.len();
                fields.rotate_left(first.index(len));
                fields
            },
        )
}

/// A zone (0 or 1) and one to three valid readings, local times written for that zone.
fn readings() -> impl Strategy<Value = (usize, Vec<Vec<(String, String)>>)> {
    (0usize..2).prop_flat_map(|zone| (Just(zone), prop::collection::vec(valid_reading(zone), 1..4)))
}

/// Raw JSON values that are wrong, extreme or unusual somewhere.
fn odd_value() -> impl Strategy<Value = String> {
    const ODD: &[&str] = &[
        "null",
        "true",
        "false",
        "\"NaN\"",
        "\"Infinity\"",
        "\"-Infinity\"",
        "NaN",
        "Infinity",
        "1e308",
        "1e309",
        "-1e308",
        "-1e309",
        "5e-324",
        "-0",
        "-0.0",
        "0.1e1",
        "1E2",
        "00",
        "01",
        "1.",
        ".5",
        "+1",
        "0x10",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999999999",
        "[]",
        "{}",
        "[1,2]",
        "{\"a\":{\"b\":[1,{\"c\":null}]}}",
        "[[[[[[[[[[1]]]]]]]]]]",
        "\"\"",
        "\"1.5\"",
        "\"59.32\"",
        "\"横排头\"",
        "\"\\ud83c\\udf0a\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\u{1F30A}\"",
        "\"2021-07-20T08:05:00+08:00\"",
        "\"2021-07-20T08:05:00\"",
        "\"2021-07-20 08:05:00\"",
        "\"2021-07-20T08:05\"",
        "\"2021-07-20\"",
        "\"08:05:00\"",
        "\"20210720T080500Z\"",
        "\"2021-07-20T08:05:00+08:00[Asia/Shanghai]\"",
        "\"2021-07-20T08:05:00[Asia/Shanghai]\"",
        "\"2021-07-20T08:05:00+24:00\"",
        "\"2021-07-20T08:05:60Z\"",
        "\"2021-07-20T24:00:00Z\"",
        "\"2021-13-45T00:00:00Z\"",
        "\"2021-02-29T00:00:00Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"9999-12-31T23:59:59-23:59\"",
        "\"-009999-01-01T00:00:00Z\"",
        "\"+010000-01-01T00:00:00Z\"",
        "\"0000-01-01T00:00:00Z\"",
        "\"1899-12-31T23:59:59Z\"",
        "\"1900-01-01T00:00:00Z\"",
        "\"1900-01-01T07:59:59\"",
        "\"2021-03-14T02:30:00\"",
        "\"2021-11-07T01:30:00\"",
        "\"1986-05-04T02:30:00\"",
        "\"\\u0032021-07-20T08:05:00Z\"",
        "\"2021-07-20T08:05:00.123456789123Z\"",
        "\"2021-07-20t08:05:00z\"",
        "\"yesterday\"",
        "\"now\"",
        "100000000000",
        "100000000001",
        "99999999999.5",
        "-100000000001",
        "-2208988800",
        "-2208988800.0004",
        "-2208988801",
        "-2208988800000",
        "-2208988800001",
        "1700000300",
        "1700000300.0004",
        "1700000300001",
        "4102444800",
        "9223372036854775807",
        "9.3e18",
        "-1000",
        "-1000.0000001",
        "10000",
        "10000.000001",
        "2000",
        "2000.0001",
        "-0.0001",
        "10000000",
        "10000000.1",
        "1000000",
        "-1000001",
        "1000",
        "1000.5",
        "1",
        "0.5",
        "300.5",
        "2678400",
        "2678401",
        "4294967296",
    ];
    prop_oneof![
        6 => select(ODD).prop_map(str::to_string),
        1 => any::<f64>().prop_map(|x| serde_json::to_string(&x).unwrap_or_default()),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ]
}

/// A key: one the decoders know, a made-up one, or any unicode (escaped on purpose sometimes).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&FIELDS[..]).prop_map(str::to_string),
        1 => "[a-z_]{0,10}",
        1 => any::<String>().prop_map(|s| escaped(&s)),
        1 => select(vec!["level\\u005fm", "tim\\u0065", "st\\u0061tion", "read\\u0069ngs"])
            .prop_map(str::to_string),
    ]
}

/// `s` as the inside of a JSON string (quotes and control characters escaped).
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// A change to a valid message.
#[derive(Clone, Debug)]
enum Mutation {
    /// Remove field `at` of reading `reading`.
    Remove {
        reading: prop::sample::Index,
        at: prop::sample::Index,
    },
    /// Set field `at` to a value (a wrong type, an extreme number, an odd time...).
    Replace {
        reading: prop::sample::Index,
        at: prop::sample::Index,
        value: String,
    },
    /// Add a field (maybe a duplicate of a known one).
    Add {
        reading: prop::sample::Index,
        key: String,
        value: String,
    },
    /// Name a station in the reading.
    Station {
        reading: prop::sample::Index,
        value: String,
    },
    /// Write one of the keys with a `\u` escape.
    EscapeKey {
        reading: prop::sample::Index,
        at: prop::sample::Index,
    },
    /// Copy a reading until there are `extra` more.
    Repeat { extra: usize },
    /// Drop every reading.
    Empty,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    let station_value = prop_oneof![
        select(&KNOWN[..]).prop_map(|s| format!("\"{s}\"")),
        select(&UNKNOWN[..]).prop_map(|s| format!("\"{s}\"")),
        Just("\"62304\\u0030000\"".to_string()),
        Just("\"a\\u0020b\"".to_string()),
        odd_value(),
    ];
    prop_oneof![
        3 => (index(), index()).prop_map(|(reading, at)| Mutation::Remove { reading, at }),
        6 => (index(), index(), odd_value())
            .prop_map(|(reading, at, value)| Mutation::Replace { reading, at, value }),
        4 => (index(), key(), odd_value())
            .prop_map(|(reading, key, value)| Mutation::Add { reading, key, value }),
        2 => (index(), station_value).prop_map(|(reading, value)| Mutation::Station { reading, value }),
        1 => (index(), index()).prop_map(|(reading, at)| Mutation::EscapeKey { reading, at }),
        1 => (1usize..8).prop_map(|extra| Mutation::Repeat { extra }),
        1 => Just(Mutation::Empty),
    ]
}

fn mutate(readings: &mut Vec<Vec<(String, String)>>, m: &Mutation) {
    if let Mutation::Repeat { extra } = m {
        for i in 0..*extra {
            if let Some(copy) = readings.get(i).cloned() {
                readings.push(copy);
            }
        }
        return;
    }
    if let Mutation::Empty = m {
        readings.clear();
        return;
    }
    if readings.is_empty() {
        return;
    }
    let pick = |i: &prop::sample::Index, len: usize| i.index(len.max(1));
    match m {
        Mutation::Remove { reading, at } => {
            let len = readings.len();
            let r = &mut readings[pick(reading, len)];
            if !r.is_empty() {
                r.remove(pick(at, r.len()));
            }
        }
        Mutation::Replace { reading, at, value } => {
            let len = readings.len();
            let r = &mut readings[pick(reading, len)];
            if !r.is_empty() {
                let i = pick(at, r.len());
                r[i].1 = value.clone();
            }
        }
        Mutation::Add {
            reading,
            key,
            value,
        } => {
            let i = pick(reading, readings.len());
            readings[i].push((key.clone(), value.clone()));
        }
        Mutation::Station { reading, value } => {
            let i = pick(reading, readings.len());
            readings[i].insert(0, ("station".into(), value.clone()));
        }
        Mutation::EscapeKey { reading, at } => {
            let len = readings.len();
            let r = &mut readings[pick(reading, len)];
            if !r.is_empty() {
                let i = pick(at, r.len());
                let key = &mut r[i].0;
                if let Some(c) = key.chars().next() {
                    *key = format!("\\u{:04x}{}", c as u32 & 0xffff, &key[c.len_utf8()..]);
                }
            }
        }
        Mutation::Repeat { .. } | Mutation::Empty => {}
    }
}

/// How the readings are wrapped.
#[derive(Clone, Debug)]
enum Shape {
    /// One object (the first reading; an empty message becomes `{}`).
    Object,
    Array,
    /// `{"station": .., "readings": [..]}`, the station's raw value if any.
    Envelope(Option<String>),
    /// `{"readings": {..}}`: readings as an object, not an array.
    EnvelopeObject,
    /// `[[..]]`: an array of arrays.
    Nested,
    /// `{"data": {..}}`: the reading one level down.
    Wrapped,
}

fn shape() -> impl Strategy<Value = Shape> {
    let station = prop_oneof![
        select(&KNOWN[..]).prop_map(|s| format!("\"{s}\"")),
        select(&UNKNOWN[..]).prop_map(|s| format!("\"{s}\"")),
        odd_value(),
    ];
    prop_oneof![
        6 => Just(Shape::Object),
        6 => Just(Shape::Array),
        3 => proptest::option::of(station).prop_map(Shape::Envelope),
        1 => Just(Shape::EnvelopeObject),
        1 => Just(Shape::Nested),
        1 => Just(Shape::Wrapped),
    ]
}

/// Whitespace JSON allows, and sometimes some it does not.
fn spacing() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just(""),
        2 => select(vec![" ", "\n", "\t", "\r\n  "]),
        1 => select(vec!["\u{c}", "\u{a0}", "\u{feff}"]),
    ]
}

fn render(readings: &[Vec<(String, String)>], shape: &Shape, space: &str) -> String {
    let object = |r: &Vec<(String, String)>| {
        let mut out = String::from("{");
        for (i, (k, v)) in r.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{space}\"{k}\"{space}:{space}{v}");
        }
        out + space + "}"
    };
    let array = || {
        let items: Vec<String> = readings.iter().map(object).collect();
        format!("[{space}{}{space}]", items.join(&format!(",{space}")))
    };
    match shape {
        Shape::Object => readings.first().map_or("{}".into(), object),
        Shape::Array => array(),
        Shape::Envelope(None) => format!("{{\"readings\":{}}}", array()),
        Shape::Envelope(Some(station)) => {
            format!("{{\"station\":{station},{space}\"readings\":{}}}", array())
        }
        Shape::EnvelopeObject => format!(
            "{{\"readings\":{}}}",
            readings.first().map_or("{}".into(), object)
        ),
        Shape::Nested => format!("[{}]", array()),
        Shape::Wrapped => format!(
            "{{\"data\":{}}}",
            readings.first().map_or("{}".into(), object)
        ),
    }
}

/// The text of a message after the last touches: cut short, or with something after it.
#[derive(Clone, Debug)]
enum Ending {
    Whole,
    Truncated(prop::sample::Index),
    Trailing(&'static str),
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        12 => Just(Ending::Whole),
        1 => any::<prop::sample::Index>().prop_map(Ending::Truncated),
        1 => select(vec![" ", "x", ",", "{}", "\u{0}", "\n\n"]).prop_map(Ending::Trailing),
    ]
}

fn finish(mut text: String, ending: &Ending) -> Vec<u8> {
    match ending {
        Ending::Whole => text.into_bytes(),
        Ending::Truncated(at) => {
            let mut bytes = text.into_bytes();
            bytes.truncate(at.index(bytes.len().max(1)));
            bytes
        }
        Ending::Trailing(tail) => {
            text.push_str(tail);
            text.into_bytes()
        }
    }
}

/// A JSON value, leaning towards numbers and strings the decoders care about.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-2.3e9..2.0e9f64).prop_map(Value::from),
        (EARLIEST..NOW + 2 * FUTURE_TOLERANCE_MS).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        select(&KNOWN[..]).prop_map(Value::from),
        odd_value().prop_map(|raw| serde_json::from_str(&raw).unwrap_or(Value::String(raw))),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_bytes(
        topic in topic(),
        zone in 0usize..2,
        max_readings in 1usize..6,
        prefix in select(vec!["", "{", "[", "[{", "{\"time\":", "{\"readings\":["]),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut payload = prefix.as_bytes().to_vec();
        payload.extend(bytes);
        agree(topic, &payload, &context(zone, max_readings))?;
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_json(
        topic in topic(),
        zone in 0usize..2,
        max_readings in 1usize..6,
        value in json_value(),
        pretty in any::<bool>(),
    ) {
        let payload = if pretty {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        }
        .expect("a Value serializes");
        agree(topic, &payload, &context(zone, max_readings))?;
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn near_misses(
        topic in topic(),
        (zone, mut readings) in readings(),
        max_readings in 1usize..6,
        mutations in prop::collection::vec(mutation(), 0..4),
        shape in shape(),
        space in spacing(),
        ending in ending(),
    ) {
        for m in &mutations {
            mutate(&mut readings, m);
        }
        let payload = finish(render(&readings, &shape, space), &ending);
        agree(topic, &payload, &context(zone, max_readings))?;
    }

    /// Valid messages, unmutated: accepted by both paths, as the same readings.
    #[test]
    fn valid_messages_are_accepted_by_both_paths(
        topic in select(&KNOWN[..]),
        (zone, readings) in readings(),
        array in any::<bool>(),
        space in prop_oneof![Just(""), Just(" "), Just("\n")],
    ) {
        let shape = if array { Shape::Array } else { Shape::Object };
        let payload = render(&readings, &shape, space).into_bytes();
        let cx = context(zone, 10);
        agree(Some(topic), &payload, &cx)?;
        // Only a time beyond the future tolerance or before 1900 may make such a message fail.
        if let Err(e) = general(Some(topic), &payload, &cx) {
            prop_assert!(
                matches!(e.cause, Cause::FutureTime | Cause::BadTime),
                "{}: {}",
                e,
                String::from_utf8_lossy(&payload)
            );
        }
    }
}
