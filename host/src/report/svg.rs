//! Inline SVG charts: no script, no network, a few KB each.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Vertical bars, one per `(label, value)`.
pub fn bars(title: &str, data: &[(String, f64)]) -> String {
    let (w, h, pad) = (520.0, 180.0, 28.0);
    let max = data.iter().map(|d| d.1).fold(0.0, f64::max).max(1e-9);
    let n = data.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut s = format!("<figure><svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\"><title>{t}</title>", t = esc(title));
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = (h - 2.0 * pad) * v / max;
        let x = pad + i as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4a78b5\"><title>{}: {}</title></rect>",
            x + 1.0,
            h - pad - bh,
            (bw - 2.0).max(1.0),
            esc(label),
            v
        );
        if data.len() <= 24 {
            let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", x + bw / 2.0, h - pad + 12.0, esc(label));
            let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#555\">{}</text>", x + bw / 2.0, h - pad - bh - 3.0, v);
        }
    }
    let _ = write!(s, "</svg><figcaption>{}</figcaption></figure>", esc(title));
    s
}

/// A line over equally spaced points (`step` seconds apart).
pub fn line(title: &str, unit: &str, step: f64, values: &[f64]) -> String {
    let (w, h, pad) = (520.0, 160.0, 28.0);
    let max = values.iter().copied().fold(0.0, f64::max).max(1e-9);
    let n = (values.len().max(2) - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", pad + (w - 2.0 * pad) * i as f64 / n, h - pad - (h - 2.0 * pad) * v / max))
        .collect();
    format!(
        "<figure><svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\"><title>{t}</title>\
         <polyline fill=\"none\" stroke=\"#b5574a\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"{pad}\" y=\"14\" font-size=\"10\">max {max:.1} {u}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{:.0} s</text></svg><figcaption>{t}</figcaption></figure>",
        points.join(" "),
        w - pad,
        h - 8.0,
        step * n,
        t = esc(title),
        u = esc(unit)
    )
}
