//! The rain chart as a PNG, for chat robots that take an image (WeCom): one horizontal bar
//! per station with rain, wettest first, with lines at 50 and 100 mm.
//!
//! Its only text is station ids and amounts, drawn with a small built-in 3×5 pixel font:
//! the server sits on an isolated network and may have no CJK font, so names in Chinese are
//! left to the markdown beside the image and to the HTML page, which the reader's own
//! device renders (docs/decisions.md).

use md5::{Digest, Md5};

use super::Bulletin;

/// Stations drawn at most (the robot's image limit is 2 MB; this stays far below it).
const MAX_BARS: usize = 30;
const WIDTH: u32 = 720;
const ROW: u32 = 22;
const TOP: u32 = 24;
const LABEL_W: u32 = 170;
const VALUE_W: u32 = 80;
const SCALE: u32 = 2;

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [40, 40, 40];
const BAR: Rgb = [42, 143, 214];
const HEAVY: Rgb = [214, 120, 30];
const RED: Rgb = [210, 40, 40];
const GRID: Rgb = [200, 200, 200];

struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: WHITE.repeat((width * height) as usize),
        }
    }

    fn put(&mut self, x: u32, y: u32, c: Rgb) {
        if x < self.width && y < self.height {
            let i = ((y * self.width + x) * 3) as usize;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// Text in the 3×5 font, scaled; characters it does not know are drawn as blanks.
    fn text(&mut self, x: u32, y: u32, text: &str, c: Rgb) {
        for (i, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            let gx = x + i as u32 * 4 * SCALE;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        self.rect(gx + col * SCALE, y + row as u32 * SCALE, SCALE, SCALE, c);
                    }
                }
            }
        }
    }

    fn png(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().ok()?;
            writer.write_image_data(&self.pixels).ok()?;
        }
        Some(out)
    }
}

fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * 4 * SCALE
}

/// Rows of three bits, top first.
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        '_' => [0, 0, 0, 0, 7],
        ':' => [0, 2, 0, 2, 0],
        _ => [0; 5],
    }
}

/// The day's rain per station as a PNG; `None` when no station had rain.
pub fn rain_png(bulletin: &Bulletin) -> Option<Vec<u8>> {
    let mut wet: Vec<(&str, f64)> = bulletin
        .stations
        .iter()
        .filter_map(|s| s.rain_mm.filter(|r| *r > 0.0).map(|r| (s.id.as_str(), r)))
        .collect();
    if wet.is_empty() {
        return None;
    }
    wet.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    wet.truncate(MAX_BARS);
    let height = TOP + ROW * wet.len() as u32 + 30;
    let mut canvas = Canvas::new(WIDTH, height);
    let plot_w = WIDTH - LABEL_W - VALUE_W;
    let top = wet[0].1.max(110.0);
    let x_of = |mm: f64| LABEL_W + ((mm / top) * plot_w as f64) as u32;
    canvas.text(8, 6, &format!("{} RAIN MM", bulletin.date), INK);
    for (i, (id, mm)) in wet.iter().enumerate() {
        let y = TOP + i as u32 * ROW;
        let label: String = id.chars().take(20).collect();
        canvas.text(LABEL_W - 8 - text_width(&label), y + 5, &label, INK);
        let colour = if *mm >= 50.0 { HEAVY } else { BAR };
        canvas.rect(LABEL_W, y + 3, x_of(*mm) - LABEL_W, ROW - 6, colour);
        canvas.text(x_of(*mm) + 6, y + 5, &format!("{mm:.1}"), INK);
    }
    let bottom = TOP + ROW * wet.len() as u32;
    // 50 mm (暴雨) and 100 mm (大暴雨) lines, dashed.
    for (mm, colour) in [(50.0, RED), (100.0, RED)] {
        let x = x_of(mm);
        for y in (TOP..bottom).step_by(6) {
            canvas.rect(x, y, 1, 3, colour);
        }
        let label = format!("{mm:.0}");
        canvas.text(
            x.saturating_sub(text_width(&label) / 2),
            bottom + 8,
            &label,
            colour,
        );
    }
    canvas.rect(LABEL_W, TOP, 1, bottom - TOP, GRID);
    canvas.png()
}

/// The MD5 the WeCom robot wants beside an image, hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_the_empty_input() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn glyphs_cover_ids() {
        for c in "0123456789abcdefghijklmnopqrstuvwxyz-._".chars() {
            assert_ne!(glyph(c), [0; 5], "{c}");
        }
    }
}
