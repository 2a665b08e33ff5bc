//! Plots written by hand as SVG (no plotting crate): axes with round ticks, one polyline of
//! points per system under test, or bars; labels and a legend.

use std::fmt::Write as _;

use super::markdown::num;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 60.0;
const PALETTE: [&str; 6] = [
    "#555555", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
];

/// The colour of a target: fixed for the three built-in ones, else by position.
fn colour(target: &str, index: usize) -> &'static str {
    match target {
        "limit" => PALETTE[0],
        "embedded" => PALETTE[1],
        "cluster" => PALETTE[2],
        _ => PALETTE[3 + index % 3],
    }
}

/// One series of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic y axis (decades).
    pub log_y: bool,
    /// Draw y = x (dashed).
    pub diagonal: bool,
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick label: no trailing zeros (`10`, `0.5`, `250000`).
fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Round ticks from 0 to at least `max`: 1, 2 or 5 times a power of ten apart.
pub fn ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let count = (max / step).ceil().clamp(1.0, 20.0) as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Decades covering `[min, max]` (both positive).
pub fn decades(min: f64, max: f64) -> Vec<f64> {
    let lo = if min.is_finite() && min > 0.0 {
        min.log10().floor()
    } else {
        0.0
    };
    let hi = if max.is_finite() && max > 0.0 {
        max.log10().ceil()
    } else {
        lo + 1.0
    };
    let hi = if hi <= lo {
        lo + 1.0
    } else {
        hi.min(lo + 12.0)
    };
    let (lo, hi) = (lo as i32, hi as i32);
    (lo..=hi).map(|e| 10f64.powi(e)).collect()
}

fn open(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        W / 2.0,
        esc(title)
    );
}

fn axes_labels(out: &mut String, x_label: &str, y_label: &str) {
    let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
    let _ = writeln!(
        out,
        "<path d=\"M{x0},{y1} L{x0},{y0} L{x1},{y0}\" fill=\"none\" stroke=\"black\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (x0 + x1) / 2.0,
        H - 16.0,
        esc(x_label)
    );
    let _ = writeln!(
        out,
        "<text x=\"18\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {})\">{}</text>",
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
}

/// A horizontal grid line from `x0` to `x1` at height `y`, labelled `value` on the left.
fn y_gridline(out: &mut String, (x0, x1): (f64, f64), y: f64, value: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
         <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        x0 - 6.0,
        y + 4.0,
        tick_label(value)
    );
}

fn no_data(out: &mut String) {
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data</text>",
        (LEFT + W - RIGHT) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
}

fn legend(out: &mut String, names: &[(String, &str)]) {
    for (i, (name, col)) in names.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let x = W - RIGHT + 16.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{col}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            y - 9.0,
            x + 20.0,
            y,
            esc(name)
        );
    }
}

impl LineChart {
    /// The SVG document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        open(&mut out, &self.title);
        axes_labels(&mut out, &self.x_label, &self.y_label);
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        if points.is_empty() {
            no_data(&mut out);
            out.push_str("</svg>\n");
            return out;
        }
        let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max);
        let y_max_data = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let y_max = if self.diagonal {
            y_max_data.max(x_max)
        } else {
            y_max_data
        };
        let x_ticks = ticks(x_max);
        let x_top = x_ticks.last().copied().unwrap_or(1.0);
        let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
        let sx = |x: f64| x0 + (x / x_top) * (x1 - x0);
        let (y_ticks, sy): (Vec<f64>, Box<dyn Fn(f64) -> f64>) = if self.log_y {
            let y_min = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
            let d = decades(y_min, y_max);
            let (lo, hi) = (
                d.first().copied().unwrap_or(1.0).log10(),
                d.last().copied().unwrap_or(10.0).log10(),
            );
            let span = (hi - lo).max(1.0);
            (
                d,
                Box::new(move |y: f64| y0 - ((y.log10() - lo) / span) * (y0 - y1)),
            )
        } else {
            let t = ticks(y_max);
            let top = t.last().copied().unwrap_or(1.0);
            (t, Box::new(move |y: f64| y0 - (y / top) * (y0 - y1)))
        };
        for t in &x_ticks {
            let x = sx(*t);
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{y1}\" stroke=\"#eee\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                y0 + 16.0,
                tick_label(*t)
            );
        }
        for t in &y_ticks {
            y_gridline(&mut out, (x0, x1), sy(*t), *t);
        }
        if self.diagonal {
            let top = x_top.min(y_ticks.last().copied().unwrap_or(x_top));
            let _ = writeln!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" \
                 stroke-dasharray=\"4 4\"/>",
                sx(0.0),
                sy(0.0),
                sx(top),
                sy(top)
            );
        }
        let mut names = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let col = colour(&s.name, i);
            names.push((s.name.clone(), col));
            let mut pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
            for (x, y) in &pts {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{col}\"/>",
                    sx(*x),
                    sy(*y)
                );
            }
        }
        legend(&mut out, &names);
        out.push_str("</svg>\n");
        out
    }
}

/// A bar chart: one bar per named value.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub bars: Vec<(String, f64)>,
}

impl BarChart {
    /// The SVG document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        open(&mut out, &self.title);
        axes_labels(&mut out, "system under test", &self.y_label);
        let bars: Vec<&(String, f64)> = self.bars.iter().filter(|b| b.1.is_finite()).collect();
        if bars.is_empty() {
            no_data(&mut out);
            out.push_str("</svg>\n");
            return out;
        }
        let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
        // Headroom for the value printed above the tallest bar.
        let t = ticks(max * 1.1);
        let top = t.last().copied().unwrap_or(1.0);
        let sy = |y: f64| y0 - (y.max(0.0) / top) * (y0 - y1);
        for v in &t {
            y_gridline(&mut out, (x0, x1), sy(*v), *v);
        }
        let slot = (x1 - x0) / bars.len() as f64;
        let width = (slot * 0.6).min(120.0);
        for (i, (name, value)) in bars.iter().enumerate() {
            let cx = x0 + slot * (i as f64 + 0.5);
            let y = sy(*value);
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" \
                 fill=\"{}\"/>\
                 <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                cx - width / 2.0,
                (y0 - y).max(0.0),
                colour(name, i),
                y - 5.0,
                num(*value),
                y0 + 16.0,
                esc(name)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}
