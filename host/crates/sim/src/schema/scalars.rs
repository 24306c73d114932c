//! Scalar values under a schema: numbers within bounds and multiples, strings within lengths
//! and simple patterns, and the few formats a judge schema uses.

use serde_json::{Map, Number, Value};

use super::*;

/// The bounds a number must lie within: (value, exclusive).
pub(super) struct Bounds {
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
}

impl Bounds {
    fn of(s: &Map<String, Value>) -> Bounds {
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        let flag = |k: &str| s.get(k) == Some(&Value::Bool(true));
        // Draft 6+: numeric exclusive bounds; draft 4: booleans qualifying minimum/maximum.
        let tighter = |a: Option<(f64, bool)>, b: Option<(f64, bool)>, lower: bool| match (a, b) {
            (Some(x), Some(y)) => {
                let x_tighter = if lower { x.0 > y.0 || (x.0 == y.0 && x.1) } else { x.0 < y.0 || (x.0 == y.0 && x.1) };
                Some(if x_tighter { x } else { y })
            }
            (x, y) => x.or(y),
        };
        let lo = tighter(num("minimum").map(|v| (v, flag("exclusiveMinimum"))), num("exclusiveMinimum").map(|v| (v, true)), true);
        let hi = tighter(num("maximum").map(|v| (v, flag("exclusiveMaximum"))), num("exclusiveMaximum").map(|v| (v, true)), false);
        Bounds { lo, hi }
    }

    fn admits(&self, v: f64) -> bool {
        let above = self.lo.is_none_or(|(l, ex)| if ex { v > l } else { v >= l });
        let below = self.hi.is_none_or(|(u, ex)| if ex { v < u } else { v <= u });
        v.is_finite() && above && below
    }
}

pub(super) fn number_value(v: f64, integer: bool) -> Value {
    if integer && v.fract() == 0.0 && v.abs() < 9.0e18 {
        return Value::Number(Number::from(v as i64));
    }
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// An integer or number within the schema's bounds, a multiple of `multipleOf`.
pub(super) fn number(s: &Map<String, Value>, h: u64, integer: bool) -> Value {
    let b = Bounds::of(s);
    let multiple = s.get("multipleOf").and_then(Value::as_f64).filter(|m| *m > 0.0 && m.is_finite());
    let hn = mix(h, "num");
    // The range to draw from when a side is open: a 1..=5 score for integers, 0..1 otherwise.
    let width: f64 = if integer { 4.0 } else { 1.0 };
    let (lo, hi) = match (b.lo, b.hi) {
        (Some((l, _)), Some((u, _))) => (l, u),
        (Some((l, _)), None) => (l, l + width.max(multiple.unwrap_or(0.0) * 4.0)),
        (None, Some((u, _))) => (u - width.max(multiple.unwrap_or(0.0) * 4.0), u),
        (None, None) if integer => (1.0, 5.0),
        (None, None) => (0.0, 1.0),
    };
    let step = match (multiple, integer) {
        (Some(m), _) => Some(m),
        (None, true) => Some(1.0),
        (None, false) => None,
    };
    if let Some(m) = step {
        let kmin = (lo / m).ceil();
        let kmax = (hi / m).floor();
        let span = if kmax >= kmin { (kmax - kmin).min(1.0e15) as u64 + 1 } else { 1 };
        let start = hn % span;
        // Walk from a hashed start over the multiples in range until one is exactly k·m (the
        // validator divides exactly), within the bounds, and whole when an integer is wanted.
        let tries = span.min(4096);
        for i in 0..tries {
            let k = kmin + ((start + i) % span) as f64;
            let v = k * m;
            if k.mul_add(m, -v) == 0.0 && b.admits(v) && (!integer || v.fract() == 0.0) {
                return number_value(v, integer);
            }
        }
        if b.admits(0.0) {
            return number_value(0.0, integer);
        }
        return number_value(kmin * m, integer);
    }
    let f = 0.1 + 0.8 * ((hn % 1000) as f64 / 1000.0);
    let raw = lo + (hi - lo) * f;
    for v in [(raw * 100.0).round() / 100.0, (raw * 1.0e6).round() / 1.0e6, raw, (lo + hi) / 2.0, lo, hi] {
        if b.admits(v) {
            return number_value(v, false);
        }
    }
    number_value(raw, false)
}

/// A string within `minLength`/`maxLength`, matching a simple `pattern`, shaped by a few formats.
pub(super) fn string(s: &Map<String, Value>, h: u64, name: &str) -> String {
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
    let hs = mix(h, "str");
    let fits = |t: &str| (min..=max).contains(&t.chars().count());
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        if let Some(t) = pattern::matching(pattern, hs, min, max) {
            return t;
        }
    }
    let formatted = match s.get("format").and_then(Value::as_str) {
        Some("date-time") => Some(format!("2024-01-{:02}T12:00:00Z", 1 + hs % 28)),
        Some("date") => Some(format!("2024-01-{:02}", 1 + hs % 28)),
        Some("time") => Some(format!("12:{:02}:00Z", hs % 60)),
        Some("email" | "idn-email") => Some(format!("sim{:04x}@example.com", hs & 0xffff)),
        Some("uri" | "url" | "iri") => Some(format!("https://example.com/sim/{:04x}", hs & 0xffff)),
        Some("uuid") => Some(format!("00000000-0000-4000-8000-{:012x}", hs & 0xffff_ffff_ffff)),
        _ => None,
    };
    if let Some(t) = formatted.filter(|t| fits(t)) {
        return t;
    }
    let label = name.replace(|c: char| !c.is_ascii_alphanumeric(), " ");
    let label = label.trim();
    let mut t = if label.is_empty() { format!("simulated {:04x}", hs & 0xffff) } else { format!("simulated {label} {:04x}", hs & 0xffff) };
    let filler = " lorem ipsum dolor sit amet";
    let mut i = 0;
    while t.chars().count() < min {
        t.push(filler.as_bytes()[i % filler.len()] as char);
        i += 1;
    }
    if t.chars().count() > max {
        t = t.chars().take(max).collect();
    }
    t
}

/// `%XX` in a `$ref` pointer segment.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(x), Some(y)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((x * 16 + y) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Strings matching simple regular expressions.
pub(super) mod pattern {
    use super::mix;

    #[derive(Debug, Clone)]
    enum Node {
        /// Any one of these characters (a literal is a class of one).
        Chars(Vec<char>),
        /// One of the alternatives, each a sequence.
        Group(Vec<Vec<Node>>),
        Repeat(Box<Node>, usize, usize),
        /// `^`, `$`, `\b`: nothing to produce.
        Anchor,
    }

    /// A string matching `pattern` (checked with the `regex` crate) of `min..=max` characters,
    /// or `None` when the pattern is beyond this small generator.
    pub fn matching(pattern: &str, h: u64, min: usize, max: usize) -> Option<String> {
        let re = regex::Regex::new(pattern).ok()?;
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let seq = parse_alternatives(&chars, &mut pos)?;
        if pos != chars.len() {
            return None;
        }
        let anchored_end = pattern.ends_with('$') && !pattern.ends_with("\\$");
        // More repetitions until long enough, then padding when the end is free.
        for extra in 0..=min.min(64) {
            let mut out = String::new();
            emit_seq(&seq, h, extra, &mut out);
            let mut n = out.chars().count();
            if n < min && !anchored_end {
                while n < min {
                    out.push('x');
                    n += 1;
                }
            }
            if n >= min && n <= max && re.is_match(&out) {
                return Some(out);
            }
            if n > max {
                break;
            }
        }
        None
    }

    fn emit_seq(seq: &[Node], h: u64, extra: usize, out: &mut String) {
        for (i, node) in seq.iter().enumerate() {
            emit(node, mix(h, &i.to_string()), extra, out);
        }
    }

    fn emit(node: &Node, h: u64, extra: usize, out: &mut String) {
        match node {
            Node::Chars(set) => out.push(set[(h % set.len() as u64) as usize]),
            Node::Group(alts) => {
                let alt = &alts[(h % alts.len() as u64) as usize];
                emit_seq(alt, mix(h, "alt"), extra, out);
            }
            Node::Repeat(inner, lo, hi) => {
                let n = (lo.max(&1) + extra).min(*hi).max(*lo);
                for i in 0..n {
                    emit(inner, mix(h, &format!("r{i}")), extra, out);
                }
            }
            Node::Anchor => {}
        }
    }

    fn parse_alternatives(p: &[char], pos: &mut usize) -> Option<Vec<Node>> {
        let mut alts = vec![parse_seq(p, pos)?];
        while *pos < p.len() && p[*pos] == '|' {
            *pos += 1;
            alts.push(parse_seq(p, pos)?);
        }
        Some(if alts.len() == 1 { alts.pop()? } else { vec![Node::Group(alts)] })
    }

    fn parse_seq(p: &[char], pos: &mut usize) -> Option<Vec<Node>> {
        let mut seq = Vec::new();
        while *pos < p.len() && p[*pos] != '|' && p[*pos] != ')' {
            let atom = parse_atom(p, pos)?;
            let atom = parse_quantifier(p, pos, atom)?;
            seq.push(atom);
        }
        Some(seq)
    }

    fn parse_atom(p: &[char], pos: &mut usize) -> Option<Node> {
        let c = p[*pos];
        *pos += 1;
        Some(match c {
            '^' | '$' => Node::Anchor,
            '.' => Node::Chars(('a'..='z').collect()),
            '(' => {
                if p.get(*pos) == Some(&'?') {
                    // Only non-capturing and named groups; lookarounds are beyond us.
                    match (p.get(*pos + 1), p.get(*pos + 2)) {
                        (Some(':'), _) => *pos += 2,
                        (Some('P'), Some('<')) | (Some('<'), Some(_)) => {
                            if p.get(*pos + 2) == Some(&'=') || p.get(*pos + 2) == Some(&'!') {
                                return None;
                            }
                            while *pos < p.len() && p[*pos] != '>' {
                                *pos += 1;
                            }
                            *pos += 1;
                        }
                        _ => return None,
                    }
                }
                let inner = parse_alternatives(p, pos)?;
                if p.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                Node::Group(vec![inner])
            }
            '[' => parse_class(p, pos)?,
            '\\' => {
                let e = *p.get(*pos)?;
                *pos += 1;
                match e {
                    'b' | 'B' | 'A' | 'z' | 'Z' => Node::Anchor,
                    _ => Node::Chars(escape_set(e)?),
                }
            }
            '*' | '+' | '?' | '{' | ')' | ']' => {
                // `{` not starting a quantifier is a literal in both syntaxes; the rest is broken.
                if c == '{' || c == ']' {
                    Node::Chars(vec![c])
                } else {
                    return None;
                }
            }
            other => Node::Chars(vec![other]),
        })
    }

    fn escape_set(e: char) -> Option<Vec<char>> {
        Some(match e {
            'd' => ('0'..='9').collect(),
            'w' => ('a'..='z').chain('0'..='9').collect(),
            's' => vec![' '],
            'D' | 'W' | 'S' => vec![if e == 'W' { '-' } else { 'x' }],
            'n' => vec!['\n'],
            't' => vec!['\t'],
            'r' => vec!['\r'],
            c if c.is_ascii_alphanumeric() => return None,
            c => vec![c],
        })
    }

    fn parse_class(p: &[char], pos: &mut usize) -> Option<Node> {
        let negated = p.get(*pos) == Some(&'^');
        if negated {
            *pos += 1;
        }
        let mut set: Vec<char> = Vec::new();
        let mut first = true;
        loop {
            let c = *p.get(*pos)?;
            *pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = *p.get(*pos)?;
                *pos += 1;
                let s = escape_set(e)?;
                if s.len() > 1 {
                    set.extend(s);
                    continue;
                }
                s[0]
            } else if c == '[' {
                return None; // POSIX classes and nested sets
            } else {
                c
            };
            if p.get(*pos) == Some(&'-') && p.get(*pos + 1).is_some_and(|n| *n != ']') {
                let hi = p[*pos + 1];
                if hi == '\\' {
                    return None;
                }
                *pos += 2;
                if hi < lo {
                    return None;
                }
                set.extend((lo..=hi).take(256));
            } else {
                set.push(lo);
            }
        }
        if negated {
            let candidates = ('a'..='z').chain('A'..='Z').chain('0'..='9').chain(['_', '-', ' ', '.']);
            let allowed: Vec<char> = candidates.filter(|c| !set.contains(c)).collect();
            return (!allowed.is_empty()).then_some(Node::Chars(allowed));
        }
        (!set.is_empty()).then_some(Node::Chars(set))
    }

    fn parse_quantifier(p: &[char], pos: &mut usize, atom: Node) -> Option<Node> {
        let Some(&q) = p.get(*pos) else { return Some(atom) };
        let (lo, hi) = match q {
            '*' => (0, usize::MAX),
            '+' => (1, usize::MAX),
            '?' => (0, 1),
            '{' => {
                let close = p[*pos..].iter().position(|c| *c == '}')? + *pos;
                let body: String = p[*pos + 1..close].iter().collect();
                let (a, b) = match body.split_once(',') {
                    Some((a, "")) => (a.trim().parse().ok()?, usize::MAX),
                    Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                    None => {
                        let n = body.trim().parse().ok()?;
                        (n, n)
                    }
                };
                *pos = close;
                (a, b)
            }
            _ => return Some(atom),
        };
        *pos += 1;
        // Lazy and possessive suffixes change nothing about what matches.
        if matches!(p.get(*pos), Some('?') | Some('+')) {
            *pos += 1;
        }
        if matches!(atom, Node::Anchor) {
            return Some(atom);
        }
        Some(Node::Repeat(Box::new(atom), lo, hi))
    }
}
