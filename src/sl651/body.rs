//! The body of a report frame: serial number, send time, the station block (`F1F1`), and one
//! or more observation-time groups (`F0F0`), each applying to the elements after it until the
//! next group. Elements that come before any `F0F0` belong to a group without a time.
//!
//! A uniform-interval report (function 31) carries a time-step code (`04 18 DDHHmm`) in its
//! group; the element after it is followed by as many values as the rest of the body holds,
//! one per step from the observation time.

use jiff::civil::DateTime;

use super::elements::{
    self, bcd_digits, data_len, decode_value, encode_value, Element, Identifier, Kind, Value,
    OBSERVATION_TIME, STATION_ADDRESS, USER_DEFINED,
};
use super::frame::{function, hex_text, to_hex_text, Encoding, StationAddress};
use super::Sl651Error;

/// The station block of a report: who sent it and what kind of station it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationBlock {
    pub address: StationAddress,
    /// Station classification code (遥测站分类码), an ASCII letter: `P` rain, `H` river,
    /// `K` reservoir, `Z` gate, `D` pumping station, `T` tide, `M` soil moisture,
    /// `G` groundwater, `Q` water quality, `I` intake, `O` outlet.
    pub kind: u8,
}

/// Elements observed at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Local time of the observation (the frame carries no zone); `None` before any `F0F0`.
    pub observed: Option<DateTime>,
    /// Time step of a uniform-interval report, in minutes.
    pub step_minutes: Option<u32>,
    pub elements: Vec<Element>,
}

/// A decoded report body.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// 流水号: echoed in the centre's answer.
    pub serial: u16,
    /// 发报时间: the RTU's clock when it sent the frame (local time).
    pub sent: DateTime,
    pub station: Option<StationBlock>,
    pub groups: Vec<Group>,
}

impl Report {
    /// Every element with the observation time of its group.
    pub fn elements(&self) -> impl Iterator<Item = (Option<DateTime>, &Element)> {
        self.groups
            .iter()
            .flat_map(|g| g.elements.iter().map(move |e| (g.observed, e)))
    }
}

fn body_err(detail: impl Into<String>) -> Sl651Error {
    Sl651Error::Body(detail.into())
}

/// Reads a BCD time `YYMMDDHHmm[ss]` (years 2000–2099).
pub fn bcd_time(bytes: &[u8]) -> Result<DateTime, Sl651Error> {
    let mut parts = [0i64; 6];
    for (slot, &b) in parts.iter_mut().zip(bytes) {
        *slot = bcd_digits(&[b])
            .and_then(|d| i64::try_from(d).ok())
            .ok_or_else(|| body_err(format!("time {} is not BCD", hex::encode_upper(bytes))))?;
    }
    civil_time(parts, bytes)
}

fn civil_time(p: [i64; 6], source: &[u8]) -> Result<DateTime, Sl651Error> {
    let bad = || {
        body_err(format!(
            "time {} is not a valid date and time",
            String::from_utf8_lossy(&to_hex_text(source))
        ))
    };
    let narrow = |v: i64| i8::try_from(v).map_err(|_| bad());
    DateTime::new(
        2000 + i16::try_from(p[0]).map_err(|_| bad())?,
        narrow(p[1])?,
        narrow(p[2])?,
        narrow(p[3])?,
        narrow(p[4])?,
        narrow(p[5])?,
        0,
    )
    .map_err(|_| bad())
}

/// Writes a time as BCD `YYMMDDHHmm` (`with_seconds`: `YYMMDDHHmmss`).
pub fn time_bcd(t: DateTime, with_seconds: bool) -> Vec<u8> {
    let year = i64::from(t.year()).rem_euclid(100);
    let mut parts = vec![
        year,
        i64::from(t.month()),
        i64::from(t.day()),
        i64::from(t.hour()),
        i64::from(t.minute()),
    ];
    if with_seconds {
        parts.push(i64::from(t.second()));
    }
    parts
        .into_iter()
        .map(|v| {
            let v = v.clamp(0, 99) as u8;
            ((v / 10) << 4) | (v % 10)
        })
        .collect()
}

/// Decodes a report body in the frame's encoding. `function` decides the uniform-interval
/// layout (31).
pub fn decode(encoding: Encoding, function: u8, body: &[u8]) -> Result<Report, Sl651Error> {
    match encoding {
        Encoding::Hex => decode_hex(function, body),
        Encoding::Ascii => decode_ascii(body),
    }
}

fn current_group(groups: &mut Vec<Group>) -> &mut Group {
    if groups.is_empty() {
        groups.push(Group {
            observed: None,
            step_minutes: None,
            elements: Vec::new(),
        });
    }
    let last = groups.len() - 1;
    &mut groups[last]
}

fn decode_hex(function: u8, body: &[u8]) -> Result<Report, Sl651Error> {
    if body.len() < 8 {
        return Err(body_err(format!(
            "a body of {} bytes has no serial number and send time",
            body.len()
        )));
    }
    let serial = u16::from_be_bytes([body[0], body[1]]);
    let sent = bcd_time(&body[2..8])?;
    let mut station = None;
    let mut groups: Vec<Group> = Vec::new();
    let mut pos = 8;
    let need = |pos: usize, n: usize, what: &str| -> Result<(), Sl651Error> {
        if pos + n > body.len() {
            Err(body_err(format!(
                "{what} at byte {pos} needs {n} bytes, {} remain",
                body.len() - pos.min(body.len())
            )))
        } else {
            Ok(())
        }
    };
    while pos < body.len() {
        let id = body[pos];
        let next = body.get(pos + 1).copied();
        if id == STATION_ADDRESS && next == Some(STATION_ADDRESS) {
            need(pos, 8, "station block F1F1")?;
            let mut a = [0u8; 5];
            a.copy_from_slice(&body[pos + 2..pos + 7]);
            station = Some(StationBlock {
                address: StationAddress(a),
                kind: body[pos + 7],
            });
            pos += 8;
            continue;
        }
        if id == OBSERVATION_TIME && next == Some(OBSERVATION_TIME) {
            need(pos, 7, "observation time F0F0")?;
            let mut t = body[pos + 2..pos + 7].to_vec();
            t.push(0x00);
            groups.push(Group {
                observed: Some(bcd_time(&t)?),
                step_minutes: None,
                elements: Vec::new(),
            });
            pos += 7;
            continue;
        }
        if id == 0xF3 && next == Some(0xF3) {
            // A picture runs to the end of the body.
            current_group(&mut groups).elements.push(Element {
                identifier: Identifier::Standard(0xF3),
                definition: 0xF3,
                value: Value::Raw,
                raw: body[pos + 2..].to_vec(),
            });
            break;
        }
        let (identifier, def_at) = if id == USER_DEFINED {
            need(pos, 3, "user-defined element")?;
            (Identifier::UserDefined(body[pos + 1]), pos + 2)
        } else {
            need(pos, 2, "element")?;
            (Identifier::Standard(id), pos + 1)
        };
        let definition = body[def_at];
        let n = data_len(definition);
        let data_at = def_at + 1;
        let group = current_group(&mut groups);
        let uniform = function == function::UNIFORM_INTERVAL
            && group.step_minutes.is_some()
            && identifier.info().map(|i| i.kind) != Some(Kind::TimeStep);
        if uniform {
            if n == 0 || (body.len() - data_at) % n != 0 {
                return Err(body_err(format!(
                    "uniform-interval values of {} do not divide into {n}-byte values",
                    identifier.label()
                )));
            }
            let values = body[data_at..]
                .chunks(n)
                .map(|v| match elements::decode_number(definition, v) {
                    Value::Number(x) => Some(x),
                    _ => None,
                })
                .collect();
            group.elements.push(Element {
                identifier,
                definition,
                value: Value::Series(values),
                raw: body[data_at..].to_vec(),
            });
            break;
        }
        need(data_at, n, &format!("element {}", identifier.label()))?;
        let data = &body[data_at..data_at + n];
        let value = decode_value(&identifier, definition, data);
        if let Value::Step { minutes } = value {
            group.step_minutes = Some(minutes);
        }
        group.elements.push(Element {
            identifier,
            definition,
            value,
            raw: data.to_vec(),
        });
        pos = data_at + n;
    }
    Ok(Report {
        serial,
        sent,
        station,
        groups,
    })
}

/// ASCII bodies are whitespace-separated fields: serial (4 hex), send time (12 digits),
/// `ST address type`, `TT YYMMDDHHmm`, then `symbol value` pairs; the time step is one field
/// such as `DRN05` (minutes), `DRH01` (hours) or `DRD01` (days).
fn decode_ascii(body: &[u8]) -> Result<Report, Sl651Error> {
    let text = std::str::from_utf8(body).map_err(|_| body_err("ASCII body is not text"))?;
    let mut fields = text.split_ascii_whitespace().peekable();
    let first = fields.next().ok_or_else(|| body_err("empty ASCII body"))?;
    // Some RTUs write serial and send time without a space between them.
    let (serial_text, time_text) = if first.len() == 16 {
        (&first[..4], first[4..].to_string())
    } else {
        let t = fields
            .next()
            .ok_or_else(|| body_err("ASCII body has no send time"))?;
        (first, t.to_string())
    };
    let serial = hex_text(serial_text.as_bytes())
        .filter(|b| b.len() == 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| body_err(format!("serial number `{serial_text}` is not 4 hex digits")))?;
    let sent = ascii_time(&time_text, 12)?;
    let mut station = None;
    let mut groups: Vec<Group> = Vec::new();
    while let Some(symbol) = fields.next() {
        match symbol {
            "ST" => {
                let address = fields
                    .next()
                    .ok_or_else(|| body_err("ST without an address"))?
                    .parse()?;
                let kind = fields
                    .next()
                    .and_then(|k| k.bytes().next())
                    .ok_or_else(|| body_err("ST without a station type"))?;
                station = Some(StationBlock { address, kind });
            }
            "TT" => {
                let t = fields.next().ok_or_else(|| body_err("TT without a time"))?;
                groups.push(Group {
                    observed: Some(ascii_time(t, 10)?),
                    step_minutes: None,
                    elements: Vec::new(),
                });
            }
            s if is_ascii_step(s) => {
                let minutes = ascii_step_minutes(s)?;
                let group = current_group(&mut groups);
                group.step_minutes = Some(minutes);
                group.elements.push(Element {
                    identifier: Identifier::Standard(0x04),
                    definition: 0x18,
                    value: Value::Step { minutes },
                    raw: s.as_bytes().to_vec(),
                });
            }
            s => {
                let value_text = fields
                    .next()
                    .ok_or_else(|| body_err(format!("element {s} has no value")))?;
                let element = ascii_element(s, value_text);
                current_group(&mut groups).elements.push(element);
            }
        }
    }
    Ok(Report {
        serial,
        sent,
        station,
        groups,
    })
}

fn ascii_time(text: &str, digits: usize) -> Result<DateTime, Sl651Error> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(body_err(format!("time `{text}` is not {digits} digits")));
    }
    let mut parts = [0i64; 6];
    for (i, slot) in parts.iter_mut().take(digits / 2).enumerate() {
        *slot = text[i * 2..i * 2 + 2]
            .parse()
            .map_err(|_| body_err(format!("time `{text}` is not digits")))?;
    }
    civil_time(parts, text.as_bytes())
}

fn is_ascii_step(s: &str) -> bool {
    s.len() == 5 && s.starts_with("DR") && matches!(&s[2..3], "D" | "H" | "N")
}

fn ascii_step_minutes(s: &str) -> Result<u32, Sl651Error> {
    let n: u32 = s[3..]
        .parse()
        .map_err(|_| body_err(format!("time step `{s}` is not a number")))?;
    Ok(match &s[2..3] {
        "D" => n * 1440,
        "H" => n * 60,
        _ => n,
    })
}

fn ascii_element(symbol: &str, value_text: &str) -> Element {
    let raw = value_text.as_bytes().to_vec();
    let Some(info) = elements::info_by_symbol(symbol) else {
        return Element {
            identifier: Identifier::Symbol(symbol.to_string()),
            definition: 0,
            value: value_text.parse().map_or(Value::Raw, Value::Number),
            raw,
        };
    };
    let identifier = Identifier::Standard(info.code);
    let definition = info.definition();
    let value = match info.kind {
        Kind::Number => {
            if !value_text.is_empty() && value_text.bytes().all(|b| b == b'F' || b == b'f') {
                Value::Absent
            } else {
                value_text.parse().map_or(Value::Raw, Value::Number)
            }
        }
        // Series and status travel as hexadecimal text of the HEX encoding's bytes.
        _ => match hex_text(value_text.as_bytes()) {
            Some(bytes) => decode_value(&identifier, definition, &bytes),
            None => Value::Raw,
        },
    };
    Element {
        identifier,
        definition,
        value,
        raw,
    }
}

/// Encodes a report body for a frame of the given encoding (for replies' partners: the
/// simulator and the tests).
pub fn encode(encoding: Encoding, report: &Report) -> Result<Vec<u8>, Sl651Error> {
    match encoding {
        Encoding::Hex => encode_hex(report),
        Encoding::Ascii => encode_ascii(report),
    }
}

fn encode_hex(report: &Report) -> Result<Vec<u8>, Sl651Error> {
    let mut out = Vec::new();
    out.extend(report.serial.to_be_bytes());
    out.extend(time_bcd(report.sent, true));
    if let Some(st) = report.station {
        out.extend([STATION_ADDRESS, STATION_ADDRESS]);
        out.extend(st.address.0);
        out.push(st.kind);
    }
    for group in &report.groups {
        if let Some(t) = group.observed {
            out.extend([OBSERVATION_TIME, OBSERVATION_TIME]);
            out.extend(time_bcd(t, false));
        }
        for e in &group.elements {
            match &e.identifier {
                Identifier::Standard(code) => out.push(*code),
                Identifier::UserDefined(code) => out.extend([USER_DEFINED, *code]),
                Identifier::Symbol(s) => {
                    return Err(Sl651Error::Encode(format!(
                        "ASCII symbol {s} has no HEX identifier"
                    )))
                }
            }
            let (definition, data) = match (&e.value, group.step_minutes) {
                (Value::Series(values), Some(_))
                    if e.identifier.info().map(|i| i.kind) == Some(Kind::Number)
                        || e.identifier.info().is_none() =>
                {
                    // Uniform-interval values: one definition, then every value.
                    let mut data = Vec::new();
                    for v in values {
                        let (_, d) = match v {
                            Some(x) => elements::encode_number(e.definition, *x)?,
                            None => (e.definition, vec![0xFF; data_len(e.definition)]),
                        };
                        data.extend(d);
                    }
                    (e.definition, data)
                }
                (Value::Raw, _) => (e.definition, e.raw.clone()),
                (value, _) => encode_value(&e.identifier, e.definition, value)?,
            };
            out.push(definition);
            out.extend(data);
        }
    }
    Ok(out)
}

fn encode_ascii(report: &Report) -> Result<Vec<u8>, Sl651Error> {
    let mut fields: Vec<String> = vec![
        format!("{:04X}", report.serial),
        String::from_utf8_lossy(&to_hex_text(&time_bcd(report.sent, true))).into_owned(),
    ];
    if let Some(st) = report.station {
        fields.push("ST".into());
        fields.push(st.address.to_string());
        fields.push(char::from(st.kind).to_string());
    }
    for group in &report.groups {
        if let Some(t) = group.observed {
            fields.push("TT".into());
            fields.push(String::from_utf8_lossy(&to_hex_text(&time_bcd(t, false))).into_owned());
        }
        for e in &group.elements {
            let info = e.identifier.info();
            if let Value::Step { minutes } = e.value {
                fields.push(match minutes {
                    m if m % 1440 == 0 && m > 0 => format!("DRD{:02}", m / 1440),
                    m if m % 60 == 0 && m > 0 => format!("DRH{:02}", m / 60),
                    m => format!("DRN{m:02}"),
                });
                continue;
            }
            fields.push(e.symbol());
            let text = match (&e.value, info.map(|i| i.kind)) {
                (Value::Number(v), _) => {
                    let decimals = usize::from(elements::decimals(e.definition));
                    format!("{v:.decimals$}")
                }
                (Value::Absent, _) => "F".repeat(data_len(e.definition).max(1) * 2),
                (Value::Raw, _) => String::from_utf8_lossy(&e.raw).into_owned(),
                (value, _) => {
                    let (_, data) = encode_value(&e.identifier, e.definition, value)?;
                    String::from_utf8_lossy(&to_hex_text(&data)).into_owned()
                }
            };
            fields.push(text);
        }
    }
    Ok(fields.join(" ").into_bytes())
}
