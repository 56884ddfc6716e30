//! `--compare`: our medians against another run's (the PyTorch script's),
//! matched by case name and device kind.

use super::schema::Report;

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub case: String,
    pub device: String,
    pub ours_ms: f64,
    pub theirs_variant: String,
    pub theirs_backend: String,
    pub theirs_ms: f64,
    /// Their median over ours: above 1, deltagrad is faster.
    pub ratio: f64,
}

/// One row per (our result, their result) pair with the same case and
/// device; a case they ran several ways (eager, compile) gets several rows.
/// Rows whose shapes differ are skipped: a ratio of different problems
/// means nothing, and `--tiny` runs keep the full-size names.
pub fn compare(ours: &Report, theirs: &Report) -> Vec<Comparison> {
    let mut rows = Vec::new();
    for o in &ours.results {
        for t in theirs
            .results
            .iter()
            .filter(|t| t.case == o.case && t.device == o.device && t.shape == o.shape)
        {
            if o.median_ms > 0.0 && t.median_ms.is_finite() {
                rows.push(Comparison {
                    case: o.case.clone(),
                    device: o.device.clone(),
                    ours_ms: o.median_ms,
                    theirs_variant: t.variant.clone(),
                    theirs_backend: t.backend.clone(),
                    theirs_ms: t.median_ms,
                    ratio: t.median_ms / o.median_ms,
                });
            }
        }
    }
    rows
}
