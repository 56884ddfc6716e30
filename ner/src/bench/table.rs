//! Plain-text tables with aligned columns: numbers right-aligned, names left.

use super::compare::Comparison;
use super::schema::{CaseResult, Report};

struct Table {
    header: Vec<&'static str>,
    /// Columns aligned left (names); the rest are numbers, aligned right.
    left: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn render(&self) -> String {
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if i < self.left {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(self.header.clone());
        let total = width.iter().sum::<usize>() + 2 * width.len().saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// Milliseconds with about four significant digits.
pub fn ms(v: f64) -> String {
    match v {
        v if v < 1.0 => format!("{v:.4}"),
        v if v < 100.0 => format!("{v:.3}"),
        v => format!("{v:.1}"),
    }
}

/// A rate with an SI suffix (`812.3k`, `4.10M`).
fn si(v: f64) -> String {
    let (d, s) = match v {
        v if v >= 1e9 => (1e9, "G"),
        v if v >= 1e6 => (1e6, "M"),
        v if v >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    format!("{:.2}{s}", v / d)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn mem(bytes: u64) -> String {
    match bytes as f64 {
        b if b < 1024.0 * 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b if b < 1024.0 * 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        b => format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// What ran where: the lines above the results table.
pub fn header(report: &Report) -> String {
    let mut backends: Vec<String> = Vec::new();
    for r in &report.results {
        let b = format!("{} = {}", r.device, r.backend);
        if !backends.contains(&b) {
            backends.push(b);
        }
    }
    let setting = |k: &str| {
        report
            .settings
            .get(k)
            .map_or_else(|| "?".to_string(), |v| v.to_string())
    };
    let load = |l: Option<f64>| l.map_or_else(|| "?".to_string(), |l| format!("{l:.2}"));
    format!(
        "{}: {}\nhost: {}, {} logical cores, load average {} at start, {} at end\n\
         fused: {}, warm-up {}, iterations {}",
        report.tool,
        if backends.is_empty() {
            "no results".to_string()
        } else {
            backends.join(", ")
        },
        report.host.cpu,
        report.host.logical_cores,
        load(report.host.loadavg_start),
        load(report.host.loadavg_end),
        setting("fused"),
        setting("warmup"),
        setting("iters"),
    )
}

/// The results table printed at the end of a run.
pub fn results(results: &[CaseResult]) -> String {
    let rows = results
        .iter()
        .map(|r| {
            let fraction = match (r.peak_fraction, r.gflops.or(r.gbps)) {
                (Some(f), _) => format!("{:.1}%", 100.0 * f),
                (None, Some(_)) => "unknown".to_string(),
                (None, None) => "-".to_string(),
            };
            vec![
                r.case.clone(),
                r.device.clone(),
                r.iters.to_string(),
                ms(r.median_ms),
                ms(r.p10_ms),
                ms(r.p90_ms),
                format!("{}..{}", ms(r.min_ms), ms(r.max_ms)),
                opt(r.windows_per_s, si),
                opt(r.gflops, |v| format!("{v:.2}")),
                opt(r.gbps, |v| format!("{v:.2}")),
                fraction,
                r.peak_bytes.map_or_else(|| "n/a".to_string(), mem),
            ]
        })
        .collect();
    Table {
        header: vec![
            "case",
            "device",
            "iters",
            "median ms",
            "p10 ms",
            "p90 ms",
            "min..max ms",
            "windows/s",
            "GFLOP/s",
            "GB/s",
            "% peak",
            "peak mem",
        ],
        left: 2,
        rows,
    }
    .render()
}

/// The `--kernel-times` table: each profiled launch's GPU time and its
/// share of all launches of that case; `None` when nothing was profiled.
pub fn kernel_times(results: &[CaseResult]) -> Option<String> {
    let mut rows = Vec::new();
    for r in results {
        let Some(times) = &r.kernel_times else {
            continue;
        };
        let total: f64 = times.iter().map(|t| t.ms).sum();
        let share = |v: f64| {
            if total > 0.0 {
                format!("{:.1}%", 100.0 * v / total)
            } else {
                "-".to_string()
            }
        };
        for (i, t) in times.iter().enumerate() {
            rows.push(vec![
                r.case.clone(),
                i.to_string(),
                t.label.clone(),
                ms(t.ms),
                share(t.ms),
            ]);
        }
        rows.push(vec![
            r.case.clone(),
            "all".to_string(),
            format!(
                "{}; median step {} ms wall",
                if r.device == "gpu" {
                    "GPU busy"
                } else {
                    "launches"
                },
                ms(r.median_ms)
            ),
            ms(total),
            share(total),
        ]);
    }
    if rows.is_empty() {
        return None;
    }
    Some(
        Table {
            header: vec!["case", "launch", "kernel: fused ops", "ms", "share"],
            left: 3,
            rows,
        }
        .render(),
    )
}

/// The `--compare` table. "Theirs" is the file's (usually PyTorch's).
pub fn comparisons(rows: &[Comparison]) -> String {
    let rows = rows
        .iter()
        .map(|c| {
            vec![
                c.case.clone(),
                c.device.clone(),
                c.theirs_variant.clone(),
                ms(c.ours_ms),
                ms(c.theirs_ms),
                format!("{:.2}x", c.ratio),
            ]
        })
        .collect();
    Table {
        header: vec![
            "case",
            "device",
            "their variant",
            "our ms",
            "their ms",
            "theirs/ours",
        ],
        left: 3,
        rows,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = Table {
            header: vec!["name", "ms"],
            left: 1,
            rows: vec![
                vec!["a".into(), "1.5".into()],
                vec!["longer".into(), "12.25".into()],
            ],
        }
        .render();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "name       ms");
        assert_eq!(lines[2], "a         1.5");
        assert_eq!(lines[3], "longer  12.25");
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(ms(0.24), "0.2400");
    }
}
