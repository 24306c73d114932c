//! Inline SVG charts: no script, no network, a few KB each. Every chart has a title, both axes
//! with ticks, and each axis labelled with what it counts and its unit.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const W: f64 = 560.0;
const H: f64 = 230.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `n` ticks up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A number as a tick label: no trailing zeros, thousands as `k`.
pub fn short(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        return format!("{}k", short(v / 1000.0));
    }
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The frame: the y axis with ticks from 0 to a nice top (returned), the x axis line, both labels.
fn frame(s: &mut String, title: &str, max: f64, x_label: &str, y_label: &str) -> f64 {
    let step = nice_step(max.max(1e-9), 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    let _ = write!(s, "<figure><svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" font-family=\"system-ui,sans-serif\"><title>{t}</title>", t = esc(title));
    let plot_h = H - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = H - BOTTOM - plot_h * v / top;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            W - RIGHT,
            LEFT - 5.0,
            y + 3.5,
            esc(&short(v))
        );
        v += step;
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#888\"/><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#222\" class=\"x-label\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#222\" class=\"y-label\">{}</text>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        esc(x_label),
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    top
}

/// Vertical bars, one per `(label, value)`, on labelled axes.
pub fn bars(title: &str, x_label: &str, y_label: &str, data: &[(String, f64)]) -> String {
    let mut s = String::new();
    let max = data.iter().map(|d| d.1).fold(0.0, f64::max);
    let top = frame(&mut s, title, max, x_label, y_label);
    let n = data.len().max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let bw = plot_w / n;
    let every = (data.len() / 24).max(1);
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = plot_h * v / top;
        let x = LEFT + i as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4a78b5\"><title>{}: {}</title></rect>",
            x + 1.0,
            H - BOTTOM - bh,
            (bw - 2.0).max(1.0),
            esc(label),
            short(*v)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                x + bw / 2.0,
                H - BOTTOM + 13.0,
                esc(label)
            );
        }
        if data.len() <= 16 && *v > 0.0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                x + bw / 2.0,
                H - BOTTOM - bh - 3.0,
                short(*v)
            );
        }
    }
    let _ = write!(s, "</svg><figcaption>{}</figcaption></figure>", esc(title));
    s
}

/// A line over equally spaced points, `step` seconds apart from the run's start: the x axis is
/// seconds since the start, the y axis `y_label` (with its unit).
pub fn line(title: &str, y_label: &str, step: f64, values: &[f64]) -> String {
    let mut s = String::new();
    let max = values.iter().copied().fold(0.0, f64::max);
    let top = frame(&mut s, title, max, "seconds since the start of the run (s)", y_label);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = (values.len().max(2) - 1) as f64;
    let span = step * n;
    let x_of = |i: f64| LEFT + plot_w * i / n;
    let x_step = nice_step(span.max(1e-9), 6.0);
    let mut t = 0.0;
    while t <= span + x_step / 100.0 {
        let x = LEFT + plot_w * t / span.max(1e-9);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - BOTTOM + 15.0,
            short(t)
        );
        t += x_step;
    }
    let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x_of(i as f64), H - BOTTOM - plot_h * v / top)).collect();
    let _ = write!(s, "<polyline fill=\"none\" stroke=\"#b5574a\" stroke-width=\"1.5\" points=\"{}\"/>", points.join(" "));
    if values.len() <= 60 {
        for (i, v) in values.iter().enumerate() {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#b5574a\"><title>{} s: {}</title></circle>",
                x_of(i as f64),
                H - BOTTOM - plot_h * v / top,
                short(step * i as f64),
                short(*v)
            );
        }
    }
    let _ = write!(s, "</svg><figcaption>{}</figcaption></figure>", esc(title));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_axes_ticks_and_labels() {
        let b = bars("scores", "score (1–5)", "records", &[("1".into(), 3.0), ("2".into(), 7.0)]);
        assert!(b.contains("class=\"x-label\">score (1–5)<") && b.contains("class=\"y-label\">records<"), "{b}");
        assert!(b.contains(">8<"), "a nice top tick above 7: {b}");
        let l = line("rate", "records per second (/s)", 2.0, &[1.0, 4.0, 2.5]);
        assert!(l.contains("seconds since the start of the run (s)") && l.contains(">4<"), "{l}");
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(12000.0), "12k");
    }
}
