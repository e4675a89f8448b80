//! The bulletin's charts as inline SVG: a hydrograph with its stage lines for each station
//! that passed a stage, and a bar chart of hourly rain for each station that had rain.
//!
//! SVG rather than a server-side bitmap: the browser draws the text, so Chinese station and
//! stage names need no font on the server, and the page stays one self-contained document
//! that works on an isolated network and prints sharply (docs/decisions.md).

use std::fmt::Write as _;

use crate::model::Millis;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn plot_w() -> f64 {
    W - LEFT - RIGHT
}
fn plot_h() -> f64 {
    H - TOP - BOTTOM
}

/// Hour labels along the x axis: every 3 hours from the day's start hour.
fn hour_axis(svg: &mut String, start_hour: u8, hours: usize) {
    for h in (0..=hours).step_by(3) {
        let x = LEFT + plot_w() * h as f64 / hours as f64;
        let label = (start_hour as usize + h) % 24;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#ddd"/><text x="{x:.1}" y="{ty:.1}" font-size="11" text-anchor="middle">{label:02}</text>"##,
            y0 = TOP,
            y1 = TOP + plot_h(),
            ty = H - 10.0,
        );
    }
}

/// A hydrograph of `levels` over `(from, to]` with a dashed line per stage (name, level).
pub fn hydrograph(
    title: &str,
    levels: &[(Millis, f64)],
    stages: &[(String, f64)],
    from: Millis,
    to: Millis,
    start_hour: u8,
) -> String {
    let mut lo = levels.iter().map(|l| l.1).fold(f64::INFINITY, f64::min);
    let mut hi = levels.iter().map(|l| l.1).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return String::new();
    }
    // Show the stages near the river's range: the one below its lowest point and above its peak.
    let below = stages
        .iter()
        .filter(|s| s.1 <= lo)
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let above = stages
        .iter()
        .filter(|s| s.1 >= hi)
        .map(|s| s.1)
        .fold(f64::INFINITY, f64::min);
    if below.is_finite() {
        lo = below;
    }
    if above.is_finite() {
        hi = above;
    }
    let pad = ((hi - lo) * 0.08).max(0.05);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |t: Millis| LEFT + plot_w() * (t - from) as f64 / (to - from).max(1) as f64;
    let y = |v: f64| TOP + plot_h() * (hi - v) / (hi - lo);
    let mut svg = format!(
        r##"<svg class="chart hydrograph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="#fff" stroke="#999"/>"##,
        t = escape(title),
        pw = plot_w(),
        ph = plot_h(),
    );
    hour_axis(&mut svg, start_hour, 24);
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-size="11" text-anchor="end">{v:.2}</text>"##,
            tx = LEFT - 4.0,
            ty = y(v) + 4.0,
        );
    }
    for (name, level) in stages.iter().filter(|s| s.1 >= lo && s.1 <= hi) {
        let _ = write!(
            svg,
            r##"<line class="stage-line" x1="{x0}" y1="{yy:.1}" x2="{x1:.1}" y2="{yy:.1}" stroke="#d33" stroke-dasharray="6 4"/><text x="{tx:.1}" y="{ty:.1}" font-size="11" fill="#d33" text-anchor="end">{n} {level:.2}</text>"##,
            x0 = LEFT,
            x1 = W - RIGHT,
            yy = y(*level),
            tx = W - RIGHT - 4.0,
            ty = y(*level) - 3.0,
            n = escape(name),
        );
    }
    let points: Vec<String> = levels
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline class="level" fill="none" stroke="#1f5fbf" stroke-width="2" points="{}"/></svg>"##,
        points.join(" ")
    );
    svg
}

/// Hourly rain bars, the first hour ending at the day's start hour + 1.
pub fn rain_bars(title: &str, hourly_mm: &[f64], start_hour: u8) -> String {
    let hours = hourly_mm.len().max(1);
    let top = hourly_mm.iter().copied().fold(0.0, f64::max);
    let scale = nice_ceiling(top.max(1.0));
    let mut svg = format!(
        r##"<svg class="chart rain" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="#fff" stroke="#999"/>"##,
        t = escape(title),
        pw = plot_w(),
        ph = plot_h(),
    );
    hour_axis(&mut svg, start_hour, hours);
    for i in 0..=4 {
        let v = scale * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-size="11" text-anchor="end">{v:.0}</text>"##,
            tx = LEFT - 4.0,
            ty = TOP + plot_h() * (1.0 - i as f64 / 4.0) + 4.0,
        );
    }
    let bw = plot_w() / hours as f64;
    for (h, v) in hourly_mm.iter().enumerate() {
        if *v <= 0.0 {
            continue;
        }
        let bh = plot_h() * v / scale;
        let _ = write!(
            svg,
            r##"<rect class="bar" x="{bx:.1}" y="{by:.1}" width="{w:.1}" height="{bh:.1}" fill="#2a8fd6"><title>{v:.1} mm</title></rect>"##,
            bx = LEFT + bw * h as f64 + 1.0,
            by = TOP + plot_h() - bh,
            w = (bw - 2.0).max(1.0),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// 1, 2, 5 × 10^n at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * exp >= v {
            return m * exp;
        }
    }
    10.0 * exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hydrograph_draws_the_stages_near_the_river() {
        let svg = hydrograph(
            "横排头",
            &[(1_000, 58.0), (2_000, 59.5), (3_000, 58.9)],
            &[
                ("guard".into(), 57.5),
                ("warning".into(), 59.0),
                ("guaranteed".into(), 61.0),
                ("record".into(), 62.1),
            ],
            0,
            4_000,
            8,
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        // guard below the lowest point, warning inside, guaranteed above the peak; not record.
        assert_eq!(svg.matches("class=\"stage-line\"").count(), 3, "{svg}");
        assert!(!svg.contains("record"));
    }

    #[test]
    fn rain_bars_one_per_wet_hour() {
        let mut hourly = vec![0.0; 24];
        hourly[3] = 12.5;
        hourly[4] = 40.0;
        let svg = rain_bars("p01", &hourly, 8);
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        assert!(svg.contains("40.0 mm"));
        assert_eq!(nice_ceiling(40.0), 50.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
    }
}
