//! The human sentence in every alert event.
//!
//! Patrol teams read these on a phone in the rain, so they name the station, the value, the
//! stage in the words the station's own ladder uses (设防水位 / 警戒水位 ... for the Chinese
//! characteristic levels, "action stage" / "minor flood stage" ... for NWS ladders) and, for a
//! rising river, how long until the next stage at the current rate.

use std::time::Duration;

use super::{AlertEvent, AlertState};
use crate::config::{Language, Station};

/// Chinese characteristic levels (flood ladder), as configured and as read.
const CHINESE_FLOOD: [(&str, &str); 4] = [
    ("guard", "设防水位"),
    ("warning", "警戒水位"),
    ("guaranteed", "保证水位"),
    ("record", "历史最高水位"),
];
const NWS_FLOOD: [(&str, &str); 5] = [
    ("action", "action stage"),
    ("minor", "minor flood stage"),
    ("moderate", "moderate flood stage"),
    ("major", "major flood stage"),
    ("record", "record stage"),
];
/// The Chinese names read in English.
const CHINESE_FLOOD_EN: [(&str, &str); 3] = [
    ("guard", "guard stage"),
    ("warning", "warning stage"),
    ("guaranteed", "guaranteed stage"),
];
const DROUGHT: [(&str, &str, &str); 4] = [
    ("warning", "旱警水位", "drought warning level"),
    ("limit", "旱限水位", "drought limit level"),
    ("seasonal_min", "同期最低水位", "seasonal minimum level"),
    ("historical_min", "历史最低水位", "historical minimum level"),
];
/// Rain warning levels people know by id, read in English (a configured name that is not
/// Chinese is used as written).
const RAIN_LEVELS_EN: [(&str, &str); 6] = [
    ("prepare", "prepare to evacuate"),
    ("evacuate", "evacuate now"),
    ("blue", "blue warning"),
    ("yellow", "yellow warning"),
    ("orange", "orange warning"),
    ("red", "red warning"),
];
const DRY_GRADES: [(&str, &str); 4] = [
    ("light", "轻度"),
    ("moderate", "中度"),
    ("severe", "重度"),
    ("extreme", "特重"),
];

/// The language of a station's messages: Chinese when its flood ladder uses the Chinese
/// characteristic levels, English for NWS ladders; a station without a telling ladder (no
/// stages, or only `record`) follows its name.
pub fn language(station: &Station) -> Language {
    let names: Vec<&str> = station
        .stages
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let only = |set: &[(&str, &str)]| {
        !names.is_empty() && names.iter().all(|n| set.iter().any(|(k, _)| k == n))
    };
    let chinese = only(&CHINESE_FLOOD);
    let nws = only(&NWS_FLOOD);
    if chinese && !nws {
        Language::Chinese
    } else if nws && !chinese {
        Language::English
    } else if station.name.chars().any(is_cjk) {
        Language::Chinese
    } else {
        Language::English
    }
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// How a stage of a rule reads in `lang` (unknown names read as configured).
pub fn stage_label(rule: &str, stage: &str, lang: Language) -> String {
    let found = match (rule, lang) {
        ("stage", Language::Chinese) => lookup(&CHINESE_FLOOD, stage),
        ("stage", Language::English) => {
            lookup(&NWS_FLOOD, stage).or_else(|| lookup(&CHINESE_FLOOD_EN, stage))
        }
        ("drought", lang) => DROUGHT
            .iter()
            .find(|(k, ..)| *k == stage)
            .map(
                |(_, zh, en)| {
                    if lang == Language::Chinese {
                        *zh
                    } else {
                        *en
                    }
                },
            ),
        _ => None,
    };
    found.unwrap_or(stage).to_string()
}

/// How a rain warning level of `station` reads: its configured name; in English, a Chinese
/// name is replaced by the level's English reading when the id is a known one.
pub fn rain_level_label(station: &Station, level: &str, lang: Language) -> String {
    let name = station
        .rain_levels
        .iter()
        .find(|l| l.level == level)
        .map_or(level, |l| l.name.as_str());
    if lang == Language::English && name.chars().any(is_cjk) {
        return lookup(&RAIN_LEVELS_EN, level).unwrap_or(level).to_string();
    }
    name.to_string()
}

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// What the sentence needs beyond the event itself.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// For a fall back: the stage left and its level.
    pub left: Option<&'a (String, f64)>,
    /// `rules.pending`, for the pending sentence.
    pub pending: Duration,
    /// For a warning zone's `rain_level`: the name of the gauge that decided it.
    pub gauge: Option<&'a str>,
}

/// The sentence for `event` at `station`, in the station's language.
pub fn describe(station: &Station, event: &AlertEvent, cx: &Context) -> String {
    describe_in(station, event, cx, language(station))
}

/// The sentence for `event` at `station`, in `lang`.
pub fn describe_in(station: &Station, event: &AlertEvent, cx: &Context, lang: Language) -> String {
    let zh = lang == Language::Chinese;
    let name = &station.name;
    let v = event.value;
    let th = event.threshold;
    let label = if event.rule == "rain_level" {
        rain_level_label(station, &event.stage, lang)
    } else {
        stage_label(&event.rule, &event.stage, lang)
    };

    if event.state == AlertState::Acknowledged {
        let team = event.acknowledged_by.as_deref().unwrap_or("?");
        let what = subject(event, &label, zh);
        return if zh {
            format!("{name} {what}告警已由 {team} 确认")
        } else {
            format!("{name} {what} alert acknowledged by {team}")
        };
    }
    let raised = matches!(
        event.state,
        AlertState::Pending | AlertState::Firing | AlertState::Escalated
    );

    let mut text = match event.rule.as_str() {
        "stage" | "drought" => {
            let falling_ladder = event.rule == "drought";
            let (cmp, back_zh, side, back_en) = if falling_ladder {
                ("≤", "回升至", "以上", "rose above")
            } else {
                ("≥", "回落至", "以下", "fell below")
            };
            match (event.state, cx.left) {
                (AlertState::Deescalated, Some((left, left_level))) => {
                    let left = stage_label(&event.rule, left, lang);
                    if zh {
                        format!("{name} {v:.2} m {back_zh} {left} {left_level:.2} m {side}, 现为 {label} {th:.2} m")
                    } else {
                        format!("{name} {v:.2} m {back_en} {left} {left_level:.2} m, now at {label} {th:.2} m")
                    }
                }
                (AlertState::Resolved | AlertState::Deescalated, _) => {
                    if zh {
                        format!("{name} {v:.2} m {back_zh} {label} {th:.2} m {side}")
                    } else {
                        format!("{name} {v:.2} m {back_en} {label} {th:.2} m")
                    }
                }
                _ => format!("{name} {v:.2} m {cmp} {label} {th:.2} m"),
            }
        }
        "rain_level" => {
            let window = event.window.as_deref().unwrap_or("?");
            let (gauge_zh, gauge_en) = match cx.gauge {
                Some(g) => (format!("{g} "), format!(" at {g}")),
                None => (String::new(), String::new()),
            };
            let amount_zh =
                |cmp: &str| format!("{gauge_zh}{window} 雨量 {v:.1} mm {cmp} {th:.1} mm");
            let amount_en =
                |cmp: &str| format!("{v:.1} mm of rain in {window}{gauge_en} {cmp} {th:.1} mm");
            match (event.state, cx.left) {
                (AlertState::Resolved, _) if zh => {
                    format!(
                        "{name} {label} 解除: 各时段雨量均低于指标 ({})",
                        amount_zh("<")
                    )
                }
                (AlertState::Resolved, _) => {
                    format!(
                        "{name} {label} lifted: every window below it ({})",
                        amount_en("<")
                    )
                }
                (AlertState::Deescalated, Some((left, _))) => {
                    let left = rain_level_label(station, left, lang);
                    if zh {
                        format!("{name} {left} 解除, 现为 {label}: {}", amount_zh("≥"))
                    } else {
                        format!("{name} {left} lifted, now {label}: {}", amount_en("≥"))
                    }
                }
                _ if zh => format!("{name} {label}: {}", amount_zh("≥")),
                _ => format!("{name} {label}: {}", amount_en("≥")),
            }
        }
        "rise_rate" => match (raised, zh) {
            (true, true) => format!("{name} 涨率 {v:.2} m/h ≥ {th:.2} m/h"),
            (true, false) => format!("{name} rising {v:.2} m/h ≥ {th:.2} m/h"),
            (false, true) => format!("{name} 涨率回落至 {v:.2} m/h (阈值 {th:.2} m/h)"),
            (false, false) => format!("{name} rise slowed to {v:.2} m/h (threshold {th:.2} m/h)"),
        },
        "offline" => {
            let silent = human_secs(v);
            let after = human_secs(th);
            match (raised, zh) {
                (true, true) => format!("{name} 已 {silent} 无数据 (离线阈值 {after})"),
                (true, false) => format!("{name} silent for {silent} (offline after {after})"),
                (false, true) => format!("{name} 恢复上报"),
                (false, false) => format!("{name} reporting again"),
            }
        }
        "sensor" => match (raised, event.stage.as_str(), zh) {
            (true, "out_of_range", true) => {
                format!(
                    "{name} 水位 {v:.2} m 超出可能范围{}, 已标记为可疑",
                    range(station)
                )
            }
            (true, "out_of_range", false) => format!(
                "{name} level {v:.2} m outside the possible range{}, marked suspect",
                range(station)
            ),
            (true, _, true) => format!("{name} 水位 {v:.2} m 跳变超过 {th:.2} m, 已标记为可疑"),
            (true, _, false) => {
                format!("{name} level {v:.2} m jumped more than {th:.2} m, marked suspect")
            }
            (false, _, true) => format!("{name} 水位数据恢复正常 ({v:.2} m)"),
            (false, _, false) => format!("{name} level readings good again ({v:.2} m)"),
        },
        "dry_spell" => {
            let days = v.round();
            let grade_zh = lookup(&DRY_GRADES, &event.stage).unwrap_or(event.stage.as_str());
            match (raised, zh) {
                (true, true) => format!(
                    "{name} 连续无雨 {days} 天, 达{grade_zh}等级 (≥ {} 天)",
                    th.round()
                ),
                (true, false) => format!(
                    "{name} {days} consecutive dry days: {} dry spell (≥ {} days)",
                    event.stage,
                    th.round()
                ),
                (false, true) => format!("{name} 有效降雨, 连续无雨结束"),
                (false, false) => format!("{name} rain ended the dry spell"),
            }
        }
        rule if rule.starts_with("rain_") => match (raised, zh) {
            (true, true) => format!("{name} {label} 雨量 {v:.1} mm ≥ {th:.1} mm"),
            (true, false) => format!("{name} {v:.1} mm of rain in {label} ≥ {th:.1} mm"),
            (false, true) => format!("{name} {label} 雨量回落至 {th:.1} mm 以下 ({v:.1} mm)"),
            (false, false) => {
                format!("{name} rain in {label} fell below {th:.1} mm ({v:.1} mm)")
            }
        },
        rule => format!("{name} {rule} {label} {v:.2} ({})", event.state.as_str()),
    };

    if matches!(event.rule.as_str(), "stage" | "drought" | "rise_rate") {
        if let Some(rate) = event.trend_m_per_h {
            if event.rule != "rise_rate" {
                text.push_str(&trend(rate));
            }
        }
        if let (Some((next, level)), Some(secs)) = (&event.next_stage, event.time_to_next_stage_s) {
            let next = stage_label("stage", next, lang);
            let hours = secs / 3600.0;
            if zh {
                text.push_str(&format!(", 约 {hours:.1} h 后达{next} {level:.2} m"));
            } else {
                text.push_str(&format!(", {next} {level:.2} m in about {hours:.1} h"));
            }
        }
    }
    if event.state == AlertState::Pending {
        let wait = humantime::format_duration(cx.pending);
        if zh {
            text.push_str(&format!(", 持续 {wait} 后告警"));
        } else {
            text.push_str(&format!(", alert if it holds for {wait}"));
        }
    }
    text
}

/// The contract's example keeps the trend in this form in both languages.
fn trend(rate: f64) -> String {
    if rate > 0.0 {
        format!(", rising {rate:.2} m/h")
    } else if rate < 0.0 {
        format!(", falling {:.2} m/h", -rate)
    } else {
        ", steady".to_string()
    }
}

fn subject(event: &AlertEvent, label: &str, zh: bool) -> String {
    match (event.rule.as_str(), zh) {
        ("stage" | "drought", _) => label.to_string(),
        ("rise_rate", true) => "涨率".into(),
        ("offline", true) => "离线".into(),
        ("sensor", true) => "传感器".into(),
        ("dry_spell", true) => "连续无雨".into(),
        ("rain_level", _) => label.to_string(),
        (r, true) if r.starts_with("rain_") => format!("{label} 雨量"),
        ("rise_rate", false) => "rise rate".into(),
        ("dry_spell", false) => "dry spell".into(),
        (r, false) if r.starts_with("rain_") => format!("{label} rain"),
        (r, _) => r.to_string(),
    }
}

fn range(station: &Station) -> String {
    match station.level_range {
        Some((lo, hi)) => format!(" [{lo:.2}, {hi:.2}] m"),
        None => String::new(),
    }
}

fn human_secs(secs: f64) -> String {
    let secs = secs.max(0.0).round();
    if secs < 120.0 {
        format!("{secs} s")
    } else if secs < 7200.0 {
        format!("{} min", (secs / 60.0).round())
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Alert;
    use crate::config::{Stage, StageLadder};

    fn station(name: &str, stages: &[(&str, f64)]) -> Station {
        Station {
            id: "62304000".into(),
            name: name.into(),
            river: None,
            basin: None,
            team: None,
            interval: Duration::from_secs(300),
            stages: StageLadder {
                stages: stages
                    .iter()
                    .map(|(n, l)| Stage {
                        name: n.to_string(),
                        level_m: *l,
                    })
                    .collect(),
            },
            drought: StageLadder::default(),
            rise_rate_m_per_h: None,
            level_range: None,
            max_step_m: None,
            rain: Vec::new(),
            rain_levels: Vec::new(),
            offline_after: Duration::from_secs(900),
            dry_spell: None,
            escalate: Vec::new(),
            maintenance: false,
            sl651_address: None,
            sl651_level: Default::default(),
        }
    }

    fn event(rule: &str, state: AlertState, stage: &str, value: f64, threshold: f64) -> AlertEvent {
        let alert = Alert {
            alert_id: "a".into(),
            station: "62304000".into(),
            rule: rule.into(),
            state,
            stage: stage.into(),
            stage_index: 0,
            value,
            threshold,
            opened_at: 0,
            updated_at: 0,
            acknowledged_by: None,
            acknowledged_at: None,
        };
        AlertEvent::new(&alert, state, 0, 0, Duration::from_secs(600))
    }

    #[test]
    fn an_event_carries_its_sentence_in_both_languages() {
        let s = station("横排头", &[("guard", 57.5), ("warning", 59.0)]);
        let mut e = event("stage", AlertState::Firing, "warning", 59.12, 59.0);
        e.set_messages(&s, &Context::default());
        assert_eq!(
            e.message, e.messages.zh,
            "a Chinese ladder speaks Chinese by default"
        );
        assert!(e.messages.zh.contains("警戒水位"), "{}", e.messages.zh);
        assert!(
            !e.messages.en.chars().any(is_cjk_stage_word),
            "{}",
            e.messages.en
        );
        assert_eq!(e.message_in(Language::English), e.messages.en);
    }

    /// A CJK character other than in the station's own name.
    fn is_cjk_stage_word(c: char) -> bool {
        is_cjk(c) && !"横排头".contains(c)
    }

    #[test]
    fn chinese_stage_message_matches_the_contract_example() {
        let s = station("横排头", &[("guard", 57.5), ("warning", 59.0)]);
        let mut e = event("stage", AlertState::Firing, "warning", 59.12, 59.0);
        e.trend_m_per_h = Some(0.31);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "横排头 59.12 m ≥ 警戒水位 59.00 m, rising 0.31 m/h"
        );
        let e = event("stage", AlertState::Resolved, "guard", 57.4, 57.5);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "横排头 57.40 m 回落至 设防水位 57.50 m 以下"
        );
    }

    #[test]
    fn nws_ladder_reads_in_english_with_outlook() {
        let s = station("Big River at Town", &[("action", 10.0), ("minor", 12.0)]);
        assert_eq!(language(&s), Language::English);
        let mut e = event("stage", AlertState::Firing, "action", 10.5, 10.0);
        e.trend_m_per_h = Some(0.5);
        e.next_stage = Some(("minor".into(), 12.0));
        e.time_to_next_stage_s = Some(3.0 * 3600.0);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "Big River at Town 10.50 m ≥ action stage 10.00 m, rising 0.50 m/h, \
             minor flood stage 12.00 m in about 3.0 h"
        );
        let left = ("minor".to_string(), 12.0);
        let e = event("stage", AlertState::Deescalated, "action", 11.9, 10.0);
        let cx = Context {
            left: Some(&left),
            ..Context::default()
        };
        assert_eq!(
            describe(&s, &e, &cx),
            "Big River at Town 11.90 m fell below minor flood stage 12.00 m, now at action stage 10.00 m"
        );
    }

    #[test]
    fn language_falls_back_to_the_station_name() {
        assert_eq!(language(&station("横排头", &[])), Language::Chinese);
        assert_eq!(
            language(&station("Gauge 7", &[("record", 3.0)])),
            Language::English
        );
        assert_eq!(
            language(&station("Gauge 7", &[("guard", 3.0)])),
            Language::Chinese
        );
    }

    #[test]
    fn drought_and_rain_sentences() {
        let s = station("横排头", &[("guard", 57.5)]);
        let e = event("drought", AlertState::Firing, "limit", 50.1, 50.2);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "横排头 50.10 m ≤ 旱限水位 50.20 m"
        );
        let e = event("drought", AlertState::Resolved, "warning", 51.1, 51.0);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "横排头 51.10 m 回升至 旱警水位 51.00 m 以上"
        );
        let e = event("rain_3h", AlertState::Firing, "3h", 52.0, 50.0);
        assert_eq!(
            describe(&s, &e, &Context::default()),
            "横排头 3h 雨量 52.0 mm ≥ 50.0 mm"
        );
    }

    #[test]
    fn rain_level_sentences_use_the_configured_names() {
        use crate::config::{RainLevel, RainWindow};
        let level = |id: &str, name: &str| RainLevel {
            level: id.into(),
            name: name.into(),
            windows: vec![RainWindow {
                label: "1h".into(),
                window: Duration::from_secs(3600),
                threshold_mm: 35.0,
            }],
        };
        let mut s = station("石门", &[]);
        s.rain_levels = vec![level("prepare", "准备转移"), level("evacuate", "立即转移")];
        let mut e = event("rain_level", AlertState::Firing, "prepare", 36.0, 35.0);
        e.window = Some("1h".into());
        e.set_messages(&s, &Context::default());
        assert_eq!(e.message, "石门 准备转移: 1h 雨量 36.0 mm ≥ 35.0 mm");
        assert_eq!(
            e.messages.en,
            "石门 prepare to evacuate: 36.0 mm of rain in 1h ≥ 35.0 mm"
        );
        let mut ack = event(
            "rain_level",
            AlertState::Acknowledged,
            "evacuate",
            50.0,
            45.0,
        );
        ack.acknowledged_by = Some("shimen".into());
        ack.set_messages(&s, &Context::default());
        assert_eq!(ack.message, "石门 立即转移告警已由 shimen 确认");

        // A scheme named in English reads as written, in both languages.
        let mut s = station("Stone Gate", &[]);
        s.rain_levels = vec![level("amber", "amber alert")];
        let mut e = event("rain_level", AlertState::Firing, "amber", 36.0, 35.0);
        e.window = Some("1h".into());
        let cx = Context {
            gauge: Some("Upper Gauge"),
            ..Context::default()
        };
        e.set_messages(&s, &cx);
        assert_eq!(
            e.message,
            "Stone Gate amber alert: 36.0 mm of rain in 1h at Upper Gauge ≥ 35.0 mm"
        );
        assert_eq!(
            e.messages.zh,
            "Stone Gate amber alert: Upper Gauge 1h 雨量 36.0 mm ≥ 35.0 mm"
        );
    }
}
