//! The bulletin for people: markdown (chat robots, `--format markdown`) and a printable HTML
//! page with its charts inline (`GET /bulletins/{date}`, `--format html`), in Chinese or
//! English. Everything is inside the one document: no script, no font, no outside asset.

use std::fmt::Write as _;

use super::chart::{self, escape};
use super::{Bulletin, Margin, StationDay, Trend};
use crate::alerts::message::stage_label;
use crate::config::{Language, Settings};

struct Words {
    title: &'static str,
    period: &'static str,
    rain_50: &'static str,
    rain_100: &'static str,
    basins: &'static str,
    average: &'static str,
    wettest: &'static str,
    stations: &'static str,
    alerts: &'static str,
    incomplete: &'static str,
    none: &'static str,
    station: &'static str,
    rain: &'static str,
    max_1h: &'static str,
    level: &'static str,
    change: &'static str,
    peak: &'static str,
    stage: &'static str,
    readings: &'static str,
    answered: &'static str,
    unanswered: &'static str,
    dry_days: &'static str,
    link: &'static str,
    charts: &'static str,
    chart_level: &'static str,
    chart_rain: &'static str,
}

const ZH: Words = Words {
    title: "水雨情日报",
    period: "统计时段",
    rain_50: "日雨量 ≥50 mm 站数",
    rain_100: "日雨量 ≥100 mm 站数",
    basins: "流域面雨量",
    average: "平均",
    wettest: "最大",
    stations: "测站",
    alerts: "当日告警",
    incomplete: "数据缺报",
    none: "无",
    station: "站名",
    rain: "日雨量",
    max_1h: "最大 1 小时",
    level: "8 时水位",
    change: "较昨日",
    peak: "最高水位",
    stage: "特征水位",
    readings: "报数",
    answered: "确认",
    unanswered: "未确认",
    dry_days: "连续无雨日数",
    link: "查看日报",
    charts: "过程线",
    chart_level: "水位",
    chart_rain: "逐时雨量",
};

const EN: Words = Words {
    title: "Daily water and rain bulletin",
    period: "Period",
    rain_50: "Stations with ≥50 mm",
    rain_100: "Stations with ≥100 mm",
    basins: "Rain by basin",
    average: "average",
    wettest: "wettest",
    stations: "Stations",
    alerts: "Alerts of the day",
    incomplete: "Incomplete data",
    none: "none",
    station: "Station",
    rain: "Rain",
    max_1h: "Wettest hour",
    level: "Level at day end",
    change: "Change",
    peak: "Peak",
    stage: "Stage",
    readings: "Readings",
    answered: "acknowledged",
    unanswered: "not acknowledged",
    dry_days: "dry days",
    link: "Open the bulletin",
    charts: "Charts",
    chart_level: "Level",
    chart_rain: "Hourly rain",
};

fn words(lang: Language) -> &'static Words {
    match lang {
        Language::Chinese => &ZH,
        Language::English => &EN,
    }
}

fn trend_word(t: Trend, lang: Language) -> &'static str {
    match (t, lang) {
        (Trend::Rising, Language::Chinese) => "涨",
        (Trend::Falling, Language::Chinese) => "落",
        (Trend::Steady, Language::Chinese) => "平",
        (Trend::Rising, Language::English) => "rising",
        (Trend::Falling, Language::English) => "falling",
        (Trend::Steady, Language::English) => "steady",
    }
}

/// `超警 0.32 m / 距保证 1.18 m`: how far above the highest stage passed, and how far below
/// the next one.
pub fn margin_words(margins: &[Margin], lang: Language) -> String {
    let above = margins.iter().rev().find(|m| m.margin_m >= 0.0);
    let below = margins.iter().find(|m| m.margin_m < 0.0);
    let short = |name: &str| -> String {
        let label = stage_label("stage", name, lang);
        match lang {
            // 超警 / 距保证: how the office says it.
            Language::Chinese if name == "warning" => "警".to_string(),
            Language::Chinese => label.trim_end_matches("水位").to_string(),
            Language::English => label,
        }
    };
    let mut parts = Vec::new();
    if let Some(m) = above {
        parts.push(match lang {
            Language::Chinese => format!("超{} {:.2} m", short(&m.stage), m.margin_m),
            Language::English => format!("{:.2} m above {}", m.margin_m, short(&m.stage)),
        });
    }
    if let Some(m) = below {
        parts.push(match lang {
            Language::Chinese => format!("距{} {:.2} m", short(&m.stage), -m.margin_m),
            Language::English => format!("{:.2} m below {}", -m.margin_m, short(&m.stage)),
        });
    }
    parts.join(" / ")
}

/// "2021-07-20T08:05:00+08:00" → "07-20 08:05" (the bulletin's zone is in its header).
fn clock(rfc3339: &str) -> String {
    rfc3339
        .get(5..16)
        .map_or_else(|| rfc3339.to_string(), |s| s.replacen('T', " ", 1))
}

fn opt<T: std::fmt::Display>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".to_string())
}

fn signed(v: f64) -> String {
    format!("{v:+.2}")
}

fn response_words(seconds: i64, lang: Language) -> String {
    let (m, s) = (seconds / 60, seconds % 60);
    match lang {
        Language::Chinese => format!("{m} 分 {s} 秒"),
        Language::English => format!("{m} min {s} s"),
    }
}

fn alert_line(a: &super::AlertOfDay, settings: &Settings, lang: Language) -> String {
    let w = words(lang);
    let name = settings
        .station(&a.station)
        .map_or(a.station.as_str(), |s| s.name.as_str());
    let stage = if a.stage == a.rule {
        String::new()
    } else {
        stage_label(&a.rule, &a.stage, lang)
    };
    let answer = match (&a.acknowledged_by, a.response_s) {
        (by, Some(s)) => format!(
            "{} {} ({})",
            w.answered,
            match (&a.answered_by, by) {
                (Some(person), Some(team)) => format!("{person} / {team}"),
                (Some(person), None) => person.clone(),
                (None, by) => by.clone().unwrap_or_else(|| "?".into()),
            },
            response_words(s, lang)
        ),
        _ => w.unanswered.to_string(),
    };
    format!(
        "{} {name} {} {stage} · {} · {answer}",
        clock(&a.first_at),
        a.rule,
        a.states.join("→")
    )
}

/// The bulletin as markdown, with a link to its page when `link` is given.
pub fn markdown(b: &Bulletin, settings: &Settings, lang: Language, link: Option<&str>) -> String {
    let w = words(lang);
    let mut out = String::new();
    let _ = writeln!(out, "## {} {}\n", w.title, b.date);
    let _ = writeln!(out, "{}: {} ~ {}\n", w.period, clock(&b.from), clock(&b.to));
    let _ = writeln!(
        out,
        "{} **{}**, {} **{}**\n",
        w.rain_50, b.stations_rain_50mm, w.rain_100, b.stations_rain_100mm
    );
    if !b.basins.is_empty() {
        let _ = writeln!(out, "**{}**\n", w.basins);
        for basin in &b.basins {
            let wettest: Vec<String> = basin
                .wettest
                .iter()
                .map(|s| format!("{} {:.1}", s.name, s.rain_mm))
                .collect();
            let _ = writeln!(
                out,
                "- {}: {} {:.1} mm{}",
                basin.basin,
                w.average,
                basin.average_rain_mm,
                if wettest.is_empty() {
                    String::new()
                } else {
                    format!(", {} {}", w.wettest, wettest.join(", "))
                }
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "**{}**\n", w.stations);
    for s in &b.stations {
        let _ = writeln!(out, "- {}", station_line(s, lang));
    }
    out.push('\n');
    let _ = writeln!(out, "**{}**\n", w.alerts);
    if b.alerts.is_empty() {
        let _ = writeln!(out, "- {}", w.none);
    }
    for a in &b.alerts {
        let _ = writeln!(out, "- {}", alert_line(a, settings, lang));
    }
    out.push('\n');
    let _ = writeln!(out, "**{}**\n", w.incomplete);
    if b.incomplete.is_empty() {
        let _ = writeln!(out, "- {}", w.none);
    }
    for i in &b.incomplete {
        let name = settings
            .station(&i.station)
            .map_or(i.station.as_str(), |s| s.name.as_str());
        let _ = writeln!(out, "- {name} {}/{}", i.received, i.expected);
    }
    if let Some(link) = link {
        let _ = writeln!(out, "\n[{}]({link})", w.link);
    }
    out
}

/// The markdown a chat robot receives: the link first, then the bulletin, cut to 4000
/// bytes at a line boundary (WeCom takes at most 4096) so the link always survives.
pub fn markdown_for_chat(b: &Bulletin, settings: &Settings, lang: Language, link: &str) -> String {
    let w = words(lang);
    let body = markdown(b, settings, lang, None);
    let head = format!("[{}]({link})\n\n", w.link);
    let mut out = head.clone();
    for line in body.lines() {
        if out.len() + line.len() + 8 > 4000 {
            out.push_str("…\n");
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn station_line(s: &StationDay, lang: Language) -> String {
    let w = words(lang);
    let mut parts = vec![format!("**{}**", s.name)];
    if let Some(r) = s.rain_mm {
        let mut text = format!("{} {r:.1} mm", w.rain);
        if let (Some(m), Some(at)) = (s.max_1h_mm, &s.max_1h_end) {
            if m > 0.0 {
                let _ = write!(text, " ({} {m:.1} mm @{})", w.max_1h, clock(at));
            }
        }
        parts.push(text);
    }
    if let Some(l) = s.level_m {
        let mut text = format!("{} {l:.2} m", w.level);
        if let (Some(c), Some(t)) = (s.level_change_m, s.trend) {
            let _ = write!(text, " {} {}", trend_word(t, lang), signed(c));
        }
        parts.push(text);
    }
    if let (Some(p), Some(at)) = (s.peak_m, &s.peak_at) {
        parts.push(format!("{} {p:.2} m @{}", w.peak, clock(at)));
    }
    let margins = margin_words(&s.margins, lang);
    if !margins.is_empty() {
        parts.push(margins);
    }
    if let Some(d) = &s.drought {
        parts.push(stage_label("drought", d, lang));
    }
    if let Some(d) = s.dry_days {
        parts.push(format!("{} {d}", w.dry_days));
    }
    if !s.readings.complete {
        parts.push(format!(
            "{} {}/{}",
            w.readings, s.readings.received, s.readings.expected
        ));
    }
    parts.join(" · ")
}

/// The printable page: tables, then a hydrograph for each station that passed a stage and
/// a rain bar chart for each station that had rain.
pub fn html(b: &Bulletin, settings: &Settings, lang: Language) -> String {
    let w = words(lang);
    let (from, to) = super::parse_date(&b.date)
        .ok()
        .and_then(|d| super::bounds(settings, d).ok())
        .unwrap_or((0, 1));
    let html_lang = match lang {
        Language::Chinese => "zh-CN",
        Language::English => "en",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} {date}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.5em; margin: 0 0 .3em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.2em; font-size: .9em; }}
th, td {{ border: 1px solid #bbb; padding: .25em .5em; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.over td {{ background: #fde8e8; }}
.charts figure {{ display: inline-block; margin: 0 1em 1em 0; break-inside: avoid; }}
figcaption {{ font-size: .9em; }}
nav {{ float: right; }}
@media print {{ nav {{ display: none; }} body {{ margin: 0; }} }}
</style>
</head>
<body>
<nav><a href="/">hydrowatch</a> · <a href="?lang={other}">{other_name}</a></nav>
<h1>{title} {date}</h1>
<p>{period}: {from_t} ~ {to_t} ({tz})</p>
<p id="counts">{r50}: <strong>{n50}</strong> · {r100}: <strong>{n100}</strong></p>
"#,
        title = w.title,
        date = escape(&b.date),
        period = w.period,
        from_t = escape(&b.from),
        to_t = escape(&b.to),
        tz = escape(&b.time_zone),
        r50 = w.rain_50,
        r100 = w.rain_100,
        n50 = b.stations_rain_50mm,
        n100 = b.stations_rain_100mm,
        other = match lang {
            Language::Chinese => "en",
            Language::English => "zh",
        },
        other_name = match lang {
            Language::Chinese => "English",
            Language::English => "中文",
        },
    );
    if !b.basins.is_empty() {
        let _ = write!(
            out,
            "<h2>{}</h2><table id=\"basins\"><tr><th></th><th>{} (mm)</th><th>{}</th></tr>",
            w.basins, w.average, w.wettest
        );
        for basin in &b.basins {
            let wettest: Vec<String> = basin
                .wettest
                .iter()
                .map(|s| format!("{} {:.1}", escape(&s.name), s.rain_mm))
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{:.1}</td><td>{}</td></tr>",
                escape(&basin.basin),
                basin.average_rain_mm,
                wettest.join(", ")
            );
        }
        out.push_str("</table>\n");
    }
    let _ = write!(
        out,
        "<h2>{}</h2><table id=\"stations\"><tr><th>{}</th><th>{} (mm)</th><th>{}</th><th>{} (m)</th><th>{}</th><th>{} (m)</th><th>{}</th><th>{}</th></tr>",
        w.stations, w.station, w.rain, w.max_1h, w.level, w.change, w.peak, w.stage, w.readings
    );
    for s in &b.stations {
        let stage = s
            .stage
            .as_deref()
            .map(|st| stage_label("stage", st, lang))
            .unwrap_or_default();
        let mut stage_cell = stage;
        let margins = margin_words(&s.margins, lang);
        if !margins.is_empty() {
            let _ = write!(stage_cell, " ({margins})");
        }
        if let Some(d) = &s.drought {
            let _ = write!(stage_cell, " {}", stage_label("drought", d, lang));
        }
        if let Some(d) = s.dry_days {
            let _ = write!(stage_cell, " {} {d}", w.dry_days);
        }
        let _ = write!(
            out,
            "<tr{cls} data-station=\"{id}\"><td>{name}</td><td class=\"num\">{rain}</td><td>{max}</td><td class=\"num\">{level}</td><td class=\"num\">{change}</td><td>{peak}</td><td>{stage}</td><td class=\"num\">{rx}/{ex}</td></tr>",
            cls = if s.stage.is_some() { " class=\"over\"" } else { "" },
            id = escape(&s.id),
            name = escape(&s.name),
            rain = opt(s.rain_mm, |r| format!("{r:.1}")),
            max = match (s.max_1h_mm, &s.max_1h_end) {
                (Some(m), Some(at)) if m > 0.0 => format!("{m:.1} @{}", escape(&clock(at))),
                _ => "-".into(),
            },
            level = opt(s.level_m, |l| format!("{l:.2}")),
            change = match (s.level_change_m, s.trend) {
                (Some(c), Some(t)) => format!("{} {}", trend_word(t, lang), signed(c)),
                _ => "-".into(),
            },
            peak = match (s.peak_m, &s.peak_at) {
                (Some(p), Some(at)) => format!("{p:.2} @{}", escape(&clock(at))),
                _ => "-".into(),
            },
            stage = escape(&stage_cell),
            rx = s.readings.received,
            ex = s.readings.expected,
        );
    }
    out.push_str("</table>\n");
    let _ = write!(out, "<h2>{}</h2><ul id=\"alerts\">", w.alerts);
    if b.alerts.is_empty() {
        let _ = write!(out, "<li>{}</li>", w.none);
    }
    for a in &b.alerts {
        let _ = write!(out, "<li>{}</li>", escape(&alert_line(a, settings, lang)));
    }
    out.push_str("</ul>\n");
    let _ = write!(out, "<h2>{}</h2><ul id=\"incomplete\">", w.incomplete);
    if b.incomplete.is_empty() {
        let _ = write!(out, "<li>{}</li>", w.none);
    }
    for i in &b.incomplete {
        let name = settings
            .station(&i.station)
            .map_or(i.station.as_str(), |s| s.name.as_str());
        let _ = write!(
            out,
            "<li>{} {}/{}</li>",
            escape(name),
            i.received,
            i.expected
        );
    }
    out.push_str("</ul>\n");
    let _ = write!(out, "<h2>{}</h2><div class=\"charts\">", w.charts);
    for s in &b.stations {
        let Some(st) = settings.station(&s.id) else {
            continue;
        };
        if s.stage.is_some() && !s.levels.is_empty() {
            let stages: Vec<(String, f64)> = st
                .stages
                .stages
                .iter()
                .map(|x| (stage_label("stage", &x.name, lang), x.level_m))
                .collect();
            let _ = write!(
                out,
                "<figure>{}<figcaption>{} · {} (m)</figcaption></figure>",
                chart::hydrograph(&s.name, &s.levels, &stages, from, to, b.day_start_hour),
                escape(&s.name),
                w.chart_level
            );
        }
        if s.rain_mm.is_some_and(|r| r > 0.0) {
            let _ = write!(
                out,
                "<figure>{}<figcaption>{} · {} (mm/h)</figcaption></figure>",
                chart::rain_bars(&s.name, &s.rain_hourly_mm, b.day_start_hour),
                escape(&s.name),
                w.chart_rain
            );
        }
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}
