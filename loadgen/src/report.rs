//! `sluice-loadgen report`: JSON reports of a side-by-side run (one per line, several runs of
//! each contender) become Markdown tables: per case, one row per contender with the median,
//! min and max of each figure and the median's ratio to the `direct` row; then the goals.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Flags of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// JSON-lines files of reports (bad lines are skipped).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The contender every ratio is taken against.
    #[arg(long, default_value = "direct")]
    baseline: String,
    /// A goal: `CASE|LABEL|FIGURE|>=|FACTOR|CASE2|LABEL2|FIGURE2|TEXT` (relative) or
    /// `CASE|LABEL|FIGURE|<=|VALUE|||| TEXT` (absolute); repeatable.
    #[arg(long)]
    goal: Vec<String>,
}

#[derive(Debug, Default)]
struct Runs {
    /// Label order of first appearance.
    labels: Vec<String>,
    /// (label, figure) → values.
    values: BTreeMap<(String, String), Vec<f64>>,
    /// Figure order of first appearance.
    figures: Vec<String>,
    params: BTreeMap<String, String>,
}

/// Figures shown for each scenario (others stay in the JSON).
fn shown(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "bulk" => &["gbit_s", "mbyte_s", "cpu_s_per_gb.proxy"],
        "connect" => &[
            "conn_per_s",
            "ttfb.p50",
            "ttfb.p99",
            "cpu_us_per_conn.proxy",
            "errors",
        ],
        "handshakes" => &["conn_per_s", "handshake.p50", "handshake.p99", "errors"],
        "latency" => &[
            "req_per_s",
            "latency.p50",
            "latency.p99",
            "latency.p999",
            "errors",
        ],
        "scale" => &[
            "rss_kib_per_tunnel.proxy",
            "rss_kib_per_channel.proxy",
            "slab_kib_per_channel_all_ends",
            "tunnels_up",
            "channels_up",
        ],
        "handover" => &[
            "conn_per_s.same",
            "conn_per_s.other",
            "ttfb.same.p50",
            "ttfb.other.p50",
            "ttfb.same.p99",
            "ttfb.other.p99",
            "handovers_seen",
        ],
        _ => &[],
    }
}

fn extract(v: &serde_json::Value, fig: &str) -> Option<f64> {
    if let Some(x) = v["figures"][fig].as_f64() {
        return Some(x);
    }
    let (name, q) = fig.rsplit_once('.')?;
    let key = match q {
        "p50" => "p50_us",
        "p90" => "p90_us",
        "p99" => "p99_us",
        "p999" => "p999_us",
        "max" => "max_us",
        "mean" => "mean_us",
        _ => return None,
    };
    v["latencies"][name][key].as_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Runs `report`: Markdown on stdout.
pub fn run(a: ReportArgs) -> Result<()> {
    let mut cases: BTreeMap<String, (String, Runs)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in &a.inputs {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let scenario = v["scenario"].as_str().unwrap_or("?").to_owned();
            let case = v["params"]["case"]
                .as_str()
                .map_or(scenario.clone(), str::to_owned);
            let label = v["label"].as_str().unwrap_or("?").to_owned();
            if !cases.contains_key(&case) {
                order.push(case.clone());
            }
            let (_, runs) = cases
                .entry(case)
                .or_insert_with(|| (scenario.clone(), Runs::default()));
            if !runs.labels.contains(&label) {
                runs.labels.push(label.clone());
            }
            if let Some(obj) = v["params"].as_object() {
                for (k, x) in obj {
                    if k != "case" {
                        runs.params
                            .entry(k.clone())
                            .or_insert_with(|| x.to_string());
                    }
                }
            }
            for fig in shown(&scenario) {
                if let Some(x) = extract(&v, fig) {
                    if !runs.figures.iter().any(|f| f == fig) {
                        runs.figures.push((*fig).to_owned());
                    }
                    runs.values
                        .entry((label.clone(), (*fig).to_owned()))
                        .or_default()
                        .push(x);
                }
            }
        }
    }
    let mut out = String::new();
    for case in &order {
        let (scenario, runs) = &cases[case];
        let params: Vec<String> = runs
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.trim_matches('"')))
            .collect();
        let _ = writeln!(out, "### {case} ({scenario})\n");
        let _ = writeln!(out, "Parameters: {}\n", params.join(", "));
        // A ratio column only where the baseline has the figure.
        let has_base = |f: &String| {
            runs.values
                .get(&(a.baseline.clone(), f.clone()))
                .is_some_and(|v| median(v) != 0.0)
        };
        let _ = write!(out, "| contender | runs |");
        for f in &runs.figures {
            let _ = write!(out, " {f} |");
            if has_base(f) {
                let _ = write!(out, " ×{} |", a.baseline);
            }
        }
        let _ = writeln!(out);
        let _ = write!(out, "|---|---|");
        for f in &runs.figures {
            let _ = write!(out, "---|");
            if has_base(f) {
                let _ = write!(out, "---|");
            }
        }
        let _ = writeln!(out);
        for label in &runs.labels {
            let n = runs
                .figures
                .iter()
                .filter_map(|f| runs.values.get(&(label.clone(), f.clone())))
                .map(Vec::len)
                .max()
                .unwrap_or(0);
            let _ = write!(out, "| {label} | {n} |");
            for f in &runs.figures {
                match runs.values.get(&(label.clone(), f.clone())) {
                    Some(v) => {
                        let m = median(v);
                        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let base = runs
                            .values
                            .get(&(a.baseline.clone(), f.clone()))
                            .map(|b| median(b));
                        let ratio = base
                            .filter(|b| *b != 0.0 && b.is_finite())
                            .map_or("-".to_owned(), |b| format!("{:.2}", m / b));
                        let _ = write!(out, " {} ({}–{}) |", fmt(m), fmt(lo), fmt(hi));
                        if has_base(f) {
                            let _ = write!(out, " {ratio} |");
                        }
                    }
                    None => {
                        let _ = write!(out, " - |");
                        if has_base(f) {
                            let _ = write!(out, " - |");
                        }
                    }
                }
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
    if !a.goal.is_empty() {
        let _ = writeln!(out, "### Goals\n");
        let _ = writeln!(out, "| goal | measured | target | reached |");
        let _ = writeln!(out, "|---|---|---|---|");
        let get = |case: &str, label: &str, fig: &str| -> Option<f64> {
            cases
                .get(case)
                .and_then(|(_, r)| r.values.get(&(label.to_owned(), fig.to_owned())))
                .map(|v| median(v))
        };
        for g in &a.goal {
            let p: Vec<&str> = g.split('|').collect();
            if p.len() < 9 {
                continue;
            }
            let text = p[8..].join("|");
            let a_val = get(p[0], p[1], p[2]);
            let factor: f64 = p[4].parse().unwrap_or(f64::NAN);
            let (measured, target) = if p[5].is_empty() {
                (a_val, Some(factor))
            } else {
                let b = get(p[5], p[6], p[7]);
                (a_val.zip(b).map(|(x, y)| x / y), Some(factor))
            };
            let unit = if p[5].is_empty() { "" } else { "×" };
            let (m, verdict) = match (measured, target) {
                (Some(m), Some(t)) if m.is_finite() => {
                    let ok = if p[3] == ">=" { m >= t } else { m <= t };
                    (
                        format!("{}{unit}", fmt(m)),
                        if ok { "yes" } else { "**no**" },
                    )
                }
                _ => ("not measured".to_owned(), "-"),
            };
            let _ = writeln!(
                out,
                "| {text} | {m} | {} {}{unit} | {verdict} |",
                p[3], p[4]
            );
        }
        let _ = writeln!(out);
    }
    print!("{out}");
    Ok(())
}
