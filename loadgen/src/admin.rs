//! Reads a Sluice edge's `/metrics` (Prometheus text) over plain HTTP/1.0.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A label's value.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample the edge exports now.
pub fn scrape(admin: SocketAddr) -> Result<Vec<Sample>> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .with_context(|| format!("admin endpoint {admin}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: admin\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let Some((head, text)) = body.split_once("\r\n\r\n") else {
        bail!("admin endpoint: no HTTP response");
    };
    if !head.starts_with("HTTP/1.") || !head.contains(" 200") {
        bail!("admin endpoint: {}", head.lines().next().unwrap_or(""));
    }
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(l: &str) -> Option<Sample> {
    if l.starts_with('#') || l.is_empty() {
        return None;
    }
    let (series, value) = l.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            (n.to_owned(), labels)
        }
        None => (series.to_owned(), Vec::new()),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Sum of a metric over samples whose labels include every `(key, value)` in `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// A metric per worker (index = worker id), summed over its other labels.
pub fn per_worker(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
    {
        if let Some(w) = s.label("worker").and_then(|w| w.parse::<usize>().ok()) {
            if out.len() <= w {
                out.resize(w + 1, 0.0);
            }
            out[w] += s.value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_lines() {
        let s = parse_line(r#"sluice_refusals_total{worker="1",reason="unknown_host"} 7"#).unwrap();
        assert_eq!(s.name, "sluice_refusals_total");
        assert_eq!(s.label("worker"), Some("1"));
        assert_eq!(s.value, 7.0);
        let all = vec![
            s.clone(),
            Sample {
                labels: vec![("worker".into(), "0".into())],
                ..s
            },
        ];
        assert_eq!(
            per_worker(&all, "sluice_refusals_total", &[]),
            vec![7.0, 7.0]
        );
        assert_eq!(
            sum(&all, "sluice_refusals_total", &[("reason", "unknown_host")]),
            7.0
        );
        assert!(parse_line("# HELP x y").is_none());
    }
}
