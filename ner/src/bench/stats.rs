//! Order statistics of per-iteration times. Medians and percentiles rather
//! than means: a shared machine adds rare long stalls that would drag a mean.

/// Milliseconds per iteration over the timed runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
}

/// `None` for no samples or a non-finite one (a broken clock or a bug, not
/// something to average over).
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Some(Summary {
        median: percentile(&s, 50.0),
        min: s[0],
        max: s[s.len() - 1],
        p10: percentile(&s, 10.0),
        p90: percentile(&s, 90.0),
    })
}

/// Linear interpolation between closest ranks (NumPy's default), so the
/// PyTorch script's `numpy`-free copy of this formula gives the same numbers.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 4.0));
        assert!((s.p10 - 1.3).abs() < 1e-12);
        assert!((s.p90 - 3.7).abs() < 1e-12);
        let one = summarize(&[7.0]).unwrap();
        assert_eq!((one.median, one.p10, one.p90), (7.0, 7.0, 7.0));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }
}
