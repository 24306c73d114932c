//! `modelcall report A B`: two outputs of the same input compared, record by record (matched by
//! id): the score shift, agreement (exact, within 1, Cohen's kappa, correlation), the confusion
//! table, and the records that moved most with both replies. For comparing judges or prompts.
//!
//! Memory: one `id → score` map of A; the replies are read again only for the records shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use super::browser::record_key;
use super::svg::{bars, esc, short};

/// Records that moved most, shown.
const TOP_MOVED: usize = 20;

/// The rows of the records shown, by id: A's and B's.
pub type ShownRows = BTreeMap<String, [Option<Map<String, Value>>; 2]>;

/// The headline score of a row: `score` when numeric, else `score_value`, else `overall_score`.
pub fn headline_of(row: &Map<String, Value>) -> Option<(&'static str, f64)> {
    ["score", "score_value", "overall_score"].iter().find_map(|k| row.get(*k).and_then(Value::as_f64).map(|v| (*k, v)))
}

/// The agreement between two runs.
#[derive(Default, Debug)]
pub struct Comparison {
    pub rows_a: u64,
    pub rows_b: u64,
    pub pairs: u64,
    pub only_a: u64,
    pub only_b: u64,
    pub exact: u64,
    pub within_one: u64,
    sum_a: f64,
    sum_b: f64,
    sum_aa: f64,
    sum_bb: f64,
    sum_ab: f64,
    /// (A's value, B's value) → records.
    pub confusion: BTreeMap<(String, String), u64>,
    /// B − A → records.
    shifts: BTreeMap<String, u64>,
    /// (|B − A|, id, A, B), largest first.
    pub moved: Vec<(f64, String, f64, f64)>,
}

fn label(v: f64) -> String {
    let v = (v * 10.0).round() / 10.0;
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

fn order(l: &str) -> f64 {
    l.parse::<f64>().unwrap_or(f64::MAX)
}

impl Comparison {
    fn add(&mut self, id: &str, a: f64, b: f64) {
        self.pairs += 1;
        self.exact += (a == b) as u64;
        self.within_one += ((a - b).abs() <= 1.0) as u64;
        self.sum_a += a;
        self.sum_b += b;
        self.sum_aa += a * a;
        self.sum_bb += b * b;
        self.sum_ab += a * b;
        *self.confusion.entry((label(a), label(b))).or_default() += 1;
        *self.shifts.entry(label(b - a)).or_default() += 1;
        let d = (b - a).abs();
        if d > 0.0 && (self.moved.len() < TOP_MOVED || self.moved.last().is_some_and(|m| d > m.0)) {
            self.moved.push((d, id.to_string(), a, b));
            self.moved.sort_by(|x, y| y.0.total_cmp(&x.0).then_with(|| x.1.cmp(&y.1)));
            self.moved.truncate(TOP_MOVED);
        }
    }

    fn share(&self, n: u64) -> Option<f64> {
        (self.pairs > 0).then(|| n as f64 / self.pairs as f64)
    }
    pub fn exact_share(&self) -> Option<f64> {
        self.share(self.exact)
    }
    pub fn within_one_share(&self) -> Option<f64> {
        self.share(self.within_one)
    }
    pub fn mean_a(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.sum_a / self.pairs as f64)
    }
    pub fn mean_b(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.sum_b / self.pairs as f64)
    }
    pub fn pearson(&self) -> Option<f64> {
        let n = self.pairs as f64;
        if self.pairs < 3 {
            return None;
        }
        let cov = self.sum_ab / n - (self.sum_a / n) * (self.sum_b / n);
        let va = self.sum_aa / n - (self.sum_a / n).powi(2);
        let vb = self.sum_bb / n - (self.sum_b / n).powi(2);
        (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
    }
    /// Cohen's kappa over the confusion table: agreement beyond chance.
    pub fn kappa(&self) -> Option<f64> {
        let n = self.pairs as f64;
        if self.pairs == 0 {
            return None;
        }
        let (mut rows, mut cols) = (BTreeMap::<&str, u64>::new(), BTreeMap::<&str, u64>::new());
        for ((a, b), c) in &self.confusion {
            *rows.entry(a).or_default() += c;
            *cols.entry(b).or_default() += c;
        }
        let pe: f64 = rows.iter().map(|(k, r)| (*r as f64 / n) * (cols.get(k).copied().unwrap_or(0) as f64 / n)).sum();
        let po = self.exact as f64 / n;
        (pe < 1.0).then(|| (po - pe) / (1.0 - pe))
    }
}

/// Compares the rows of two runs' summaries.
pub fn compare(a: &Value, b: &Value) -> (Comparison, ShownRows) {
    let mut c = Comparison::default();
    let mut scores_a: HashMap<String, f64> = HashMap::new();
    super::for_each_row(a, |_, row| {
        c.rows_a += 1;
        if let Some((_, v)) = headline_of(row) {
            scores_a.insert(record_key(row, c.rows_a - 1), v);
        }
    });
    let mut matched: BTreeSet<String> = BTreeSet::new();
    super::for_each_row(b, |_, row| {
        c.rows_b += 1;
        let Some((_, v)) = headline_of(row) else { return };
        let id = record_key(row, c.rows_b - 1);
        match scores_a.get(&id) {
            Some(&va) if matched.insert(id.clone()) => c.add(&id, va, v),
            Some(_) => {}
            None => c.only_b += 1,
        }
    });
    c.only_a = scores_a.len() as u64 - matched.len() as u64;
    // The rows of the records shown, read again.
    let wanted: BTreeSet<&String> = c.moved.iter().map(|m| &m.1).collect();
    let mut rows = ShownRows::new();
    for (side, summary) in [a, b].into_iter().enumerate() {
        let mut i = 0;
        super::for_each_row(summary, |_, row| {
            let id = record_key(row, i);
            i += 1;
            if wanted.contains(&id) {
                rows.entry(id).or_default()[side] = Some(row.clone());
            }
        });
    }
    (c, rows)
}

fn pct(x: Option<f64>) -> String {
    x.map(|x| format!("{:.1} %", x * 100.0)).unwrap_or_else(|| "–".into())
}

fn fixed(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())
}

/// A measure as a table row whose `data-value` holds the exact number (tests read it).
fn measure(s: &mut String, id: &str, name: &str, value: Option<f64>, shown: String, meaning: &str) {
    let _ = write!(
        s,
        "<tr><th>{}</th><td id=\"{id}\" data-value=\"{}\">{}</td><td class=\"muted\">{}</td></tr>",
        esc(name),
        value.map(|v| format!("{}", (v * 1e6).round() / 1e6)).unwrap_or_default(),
        esc(&shown),
        esc(meaning)
    );
}

fn describe(summary: &Value, folder: &Path) -> String {
    let run = &summary["run"];
    format!(
        "<code>{}</code> · task {} · model {} · prompt {} · {} scored, {} failed",
        esc(&folder.display().to_string()),
        esc(summary["task_name"].as_str().unwrap_or("?")),
        esc(run["model"].as_str().unwrap_or("?")),
        esc(run["prompt_config"].as_str().unwrap_or("?")),
        summary["records"]["scored"],
        summary["records"]["failed"]
    )
}

/// The comparison page.
pub fn render(a: (&Path, &Value), b: (&Path, &Value), c: &Comparison, rows: &ShownRows) -> String {
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelcall report: A vs B</title><style>{}</style></head><body>",
        super::html::STYLE
    );
    let _ = write!(
        s,
        "<h1>modelcall report: two runs compared</h1><table><tr><th>A</th><td>{}</td></tr><tr><th>B</th><td>{}</td></tr></table>",
        describe(a.1, a.0),
        describe(b.1, b.0)
    );
    s.push_str("<p class=\"muted\">Records are matched by id; the headline score (<code>score</code>, else <code>score_value</code>) of each is compared. Failed records have no score and are not matched.</p>");
    s.push_str("<section id=\"agreement\"><h2>Agreement</h2><table><tr><th>measure</th><th>value</th><th>meaning</th></tr>");
    measure(&mut s, "cmp-pairs", "records matched", Some(c.pairs as f64), c.pairs.to_string(), "scored in both runs, by id");
    measure(&mut s, "cmp-only-a", "scored only in A", Some(c.only_a as f64), c.only_a.to_string(), "missing or failed in B");
    measure(&mut s, "cmp-only-b", "scored only in B", Some(c.only_b as f64), c.only_b.to_string(), "missing or failed in A");
    measure(&mut s, "cmp-exact", "exact agreement", c.exact_share(), pct(c.exact_share()), "same score in both");
    measure(&mut s, "cmp-within1", "agreement within 1", c.within_one_share(), pct(c.within_one_share()), "scores at most 1 apart");
    measure(&mut s, "cmp-kappa", "Cohen's kappa", c.kappa(), fixed(c.kappa()), "agreement beyond chance: 1 perfect, 0 chance, above 0.6 substantial");
    measure(&mut s, "cmp-pearson", "correlation (Pearson)", c.pearson(), fixed(c.pearson()), "do the two rank records alike");
    measure(&mut s, "cmp-mean-a", "mean score, A", c.mean_a(), fixed(c.mean_a()), "over the matched records");
    measure(&mut s, "cmp-mean-b", "mean score, B", c.mean_b(), fixed(c.mean_b()), "over the matched records");
    let shift = c.mean_a().zip(c.mean_b()).map(|(a, b)| b - a);
    measure(&mut s, "cmp-shift", "score shift (B − A)", shift, shift.map(|x| format!("{x:+.2}")).unwrap_or_else(|| "–".into()), "positive: B scores higher");
    s.push_str("</table></section>");

    s.push_str("<section id=\"shift\"><h2>Score shift</h2>");
    let mut shifts: Vec<(String, f64)> = c.shifts.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    shifts.sort_by(|x, y| order(&x.0).total_cmp(&order(&y.0)));
    if !shifts.is_empty() {
        s.push_str(&bars("score in B minus score in A, per matched record", "B − A (score points)", "records", &shifts));
    }
    s.push_str("</section>");

    s.push_str("<section id=\"confusion\"><h2>Confusion table</h2><p class=\"muted\">Rows: A's score; columns: B's score; cells: records. The diagonal is agreement.</p>");
    let mut la: Vec<&String> = c.confusion.keys().map(|k| &k.0).collect::<BTreeSet<_>>().into_iter().collect();
    let mut lb: Vec<&String> = c.confusion.keys().map(|k| &k.1).collect::<BTreeSet<_>>().into_iter().collect();
    la.sort_by(|x, y| order(x).total_cmp(&order(y)));
    lb.sort_by(|x, y| order(x).total_cmp(&order(y)));
    if la.len() <= 40 && lb.len() <= 40 {
        s.push_str("<table class=\"confusion\"><tr><th>A \\ B</th>");
        for b in &lb {
            let _ = write!(s, "<th>{}</th>", esc(b));
        }
        s.push_str("</tr>");
        for a in &la {
            let _ = write!(s, "<tr><th>{}</th>", esc(a));
            for b in &lb {
                let n = c.confusion.get(&((*a).clone(), (*b).clone())).copied().unwrap_or(0);
                let _ = write!(
                    s,
                    "<td class=\"{}\" data-a=\"{}\" data-b=\"{}\">{}</td>",
                    if a == b { "diag" } else { "" },
                    esc(a),
                    esc(b),
                    if n > 0 { n.to_string() } else { String::new() }
                );
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    } else {
        s.push_str("<p class=\"muted\">Too many distinct scores for a table (continuous scores): see the shift chart.</p>");
    }
    s.push_str("</section>");

    let _ = write!(
        s,
        "<section id=\"moved\"><h2>Records that moved most</h2><p class=\"muted\">The {} records whose score changed most, with both replies.</p>",
        c.moved.len()
    );
    if c.moved.is_empty() {
        s.push_str("<p>None: every matched record got the same score.</p>");
    } else {
        s.push_str("<table><tr><th>id</th><th>A</th><th>B</th><th>B − A</th><th>reply in A</th><th>reply in B</th></tr>");
        for (_, id, va, vb) in &c.moved {
            let reply = |side: usize| {
                rows.get(id)
                    .and_then(|r| r[side].as_ref())
                    .and_then(|r| r.get("api_return"))
                    .and_then(Value::as_str)
                    .map(|t| t.chars().take(600).collect::<String>())
                    .unwrap_or_default()
            };
            let _ = write!(
            s,
            "<tr class=\"moved\" data-id=\"{k}\"><td><code>{k}</code></td><td>{}</td><td>{}</td><td>{:+}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            short(*va),
            short(*vb),
            vb - va,
            esc(&reply(0)),
            esc(&reply(1)),
            k = esc(id)
        );
        }
    }
    if !c.moved.is_empty() {
        s.push_str("</table>");
    }
    s.push_str("</section><p class=\"muted\">Written by modelcall; self-contained, no network needed.</p></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_numbers() {
        let mut c = Comparison::default();
        for (i, (a, b)) in [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 4.0)].iter().enumerate() {
            c.add(&format!("r{i}"), *a, *b);
        }
        assert_eq!(c.exact_share(), Some(0.5));
        assert_eq!(c.within_one_share(), Some(0.75));
        assert_eq!(c.moved[0].1, "r2");
        assert_eq!(c.mean_b().unwrap() - c.mean_a().unwrap(), 0.75);
        assert!(c.kappa().unwrap() < 0.5);
    }
}
