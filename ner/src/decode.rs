//! Turning per-token tag scores into tag sequences.
//!
//! The window classifier scores every token on its own, so its argmax can
//! produce IOB2 sequences that name no entity (`O I-PER`). Viterbi decoding
//! finds the best sequence that is valid: `I-X` only after `B-X` or `I-X`,
//! never first. Optional transition log-probabilities (for example from
//! [`estimate_transitions`]) are added on top of the constraint.
//!
//! Scores are `n_tokens x n_tags` row-major log-probabilities (any
//! log-domain scores work). Ties go to the lowest tag id.

use deltagrad::{Error, Result};

use crate::conll::{Tag, parse_tag};

/// Argmax per token. `scores.len()` must be a multiple of `n_tags`. NaN
/// scores are errors since they would make the result arbitrary.
pub fn greedy(scores: &[f32], n_tags: usize) -> Result<Vec<u32>> {
    check_scores("greedy", scores, n_tags)?;
    Ok(scores
        .chunks_exact(n_tags)
        .map(|row| argmax(row.iter().map(|&x| f64::from(x))) as u32)
        .collect())
}

fn check_scores(op: &'static str, scores: &[f32], n_tags: usize) -> Result<()> {
    if n_tags == 0 || !scores.len().is_multiple_of(n_tags) {
        return Err(Error::invalid(
            op,
            format!("{} scores do not form rows of {n_tags} tags", scores.len()),
        ));
    }
    if n_tags > u32::MAX as usize {
        return Err(Error::invalid(op, format!("{n_tags} tags is too many")));
    }
    if let Some(i) = scores.iter().position(|x| x.is_nan()) {
        return Err(Error::invalid(
            op,
            format!(
                "score {} (token {}, tag {}) is NaN",
                i,
                i / n_tags,
                i % n_tags
            ),
        ));
    }
    Ok(())
}

/// Index of the first maximum; 0 for an empty iterator.
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

/// Viterbi decoder for one tag set.
#[derive(Debug, Clone, PartialEq)]
pub struct Viterbi {
    n_tags: usize,
    /// Score of starting a sentence with each tag (`-inf` = forbidden).
    start: Vec<f64>,
    /// `n_tags x n_tags`, `[from * n_tags + to]` (`-inf` = forbidden).
    trans: Vec<f64>,
    /// Score of ending a sentence with each tag.
    end: Vec<f64>,
}

impl Viterbi {
    /// The IOB2 constraint alone (all allowed transitions score 0). Tags
    /// that are not `O`/`B-X`/`I-X` are unconstrained.
    pub fn iob2<S: AsRef<str>>(tags: &[S]) -> Viterbi {
        let n = tags.len();
        let parsed: Vec<Option<Tag<'_>>> = tags.iter().map(|t| parse_tag(t.as_ref())).collect();
        let allowed_after = |prev: Option<Option<Tag<'_>>>, to: Option<Tag<'_>>| match to {
            Some(Tag::I(ty)) => {
                matches!(prev, Some(Some(Tag::B(p) | Tag::I(p))) if p == ty)
            }
            _ => true,
        };
        let score = |ok: bool| if ok { 0.0 } else { f64::NEG_INFINITY };
        let start = parsed
            .iter()
            .map(|&t| score(allowed_after(None, t)))
            .collect();
        let mut trans = Vec::with_capacity(n * n);
        for &from in &parsed {
            for &to in &parsed {
                trans.push(score(allowed_after(Some(from), to)));
            }
        }
        Viterbi {
            n_tags: n,
            start,
            trans,
            end: vec![0.0; n],
        }
    }

    /// Adds a CRF's learned scores of starting and ending a sentence with
    /// each tag; forbidden starts stay forbidden. Non-finite entries are
    /// errors.
    pub fn with_start_end(mut self, start: &[f32], end: &[f32]) -> Result<Viterbi> {
        const OP: &str = "Viterbi::with_start_end";
        for (name, v) in [("start", start), ("end", end)] {
            if v.len() != self.n_tags {
                return Err(Error::invalid(
                    OP,
                    format!("{name}: expected {} values, got {}", self.n_tags, v.len()),
                ));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::invalid(OP, format!("{name} entry {i} is {}", v[i])));
            }
        }
        for (s, &x) in self.start.iter_mut().zip(start) {
            *s += f64::from(x);
        }
        self.end = end.iter().map(|&x| f64::from(x)).collect();
        Ok(self)
    }

    /// Adds transition log-probabilities (`n_tags x n_tags`,
    /// `[from * n_tags + to]`) to the allowed transitions; forbidden ones
    /// stay forbidden. NaN or `+inf` entries are errors.
    pub fn with_transitions(mut self, log_probs: &[f32]) -> Result<Viterbi> {
        const OP: &str = "Viterbi::with_transitions";
        if log_probs.len() != self.n_tags * self.n_tags {
            return Err(Error::invalid(
                OP,
                format!(
                    "expected {0} x {0} = {1} values, got {2}",
                    self.n_tags,
                    self.n_tags * self.n_tags,
                    log_probs.len()
                ),
            ));
        }
        if let Some(i) = log_probs
            .iter()
            .position(|x| x.is_nan() || *x == f32::INFINITY)
        {
            return Err(Error::invalid(
                OP,
                format!("entry {i} is {}; expected a log-probability", log_probs[i]),
            ));
        }
        for (t, &lp) in self.trans.iter_mut().zip(log_probs) {
            *t += f64::from(lp);
        }
        Ok(self)
    }

    pub fn n_tags(&self) -> usize {
        self.n_tags
    }

    /// The best allowed tag sequence for one sentence. An empty sentence
    /// gives an empty sequence. Errors when every allowed sequence scores
    /// `-inf` (then no choice is meaningful).
    pub fn decode(&self, scores: &[f32]) -> Result<Vec<u32>> {
        const OP: &str = "Viterbi::decode";
        let n = self.n_tags;
        check_scores(OP, scores, n)?;
        let n_tokens = scores.len() / n;
        if n_tokens == 0 {
            return Ok(Vec::new());
        }
        // back[t * n + j]: best previous tag for tag j at token t.
        let mut back = vec![0u32; n_tokens * n];
        let mut delta: Vec<f64> = self
            .start
            .iter()
            .zip(scores)
            .map(|(&s, &x)| s + f64::from(x))
            .collect();
        let mut next = vec![0.0f64; n];
        for (t, row) in scores.chunks_exact(n).enumerate().skip(1) {
            for (j, (&emit, slot)) in row.iter().zip(next.iter_mut()).enumerate() {
                let from = (0..n).map(|i| delta[i] + self.trans[i * n + j]);
                let (best_i, best) = best_of(from);
                *slot = best + f64::from(emit);
                back[t * n + j] = best_i as u32;
            }
            std::mem::swap(&mut delta, &mut next);
        }
        let (mut j, best) = best_of(delta.iter().zip(&self.end).map(|(d, e)| d + e));
        if best == f64::NEG_INFINITY {
            return Err(Error::invalid(
                OP,
                "every allowed tag sequence scores -inf".to_string(),
            ));
        }
        let mut path = vec![0u32; n_tokens];
        for t in (0..n_tokens).rev() {
            path[t] = j as u32;
            j = back[t * n + j] as usize;
        }
        Ok(path)
    }

    /// Decodes consecutive sentences whose scores are stacked in `scores`,
    /// `lengths[i]` tokens each (as in `Windows::sentence_lengths`).
    pub fn decode_sentences(&self, scores: &[f32], lengths: &[usize]) -> Result<Vec<Vec<u32>>> {
        let total = lengths.iter().try_fold(0usize, |a, &l| a.checked_add(l));
        if total.and_then(|t| t.checked_mul(self.n_tags)) != Some(scores.len()) {
            return Err(Error::invalid(
                "Viterbi::decode_sentences",
                format!(
                    "{} scores for {total:?} tokens of {} tags",
                    scores.len(),
                    self.n_tags
                ),
            ));
        }
        let mut out = Vec::with_capacity(lengths.len());
        let mut rest = scores;
        for &len in lengths {
            let (mine, tail) = rest.split_at(len * self.n_tags);
            out.push(self.decode(mine)?);
            rest = tail;
        }
        Ok(out)
    }
}

/// (index, value) of the first maximum; `-inf` if all are `-inf`.
fn best_of(xs: impl Iterator<Item = f64>) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best
}

/// Transition log-probabilities `log P(to | from)` counted from gold tag id
/// sequences with add-`smoothing` smoothing, `n_tags x n_tags` row-major,
/// ready for [`Viterbi::with_transitions`]. Errors on an id `>= n_tags` or
/// a negative or non-finite smoothing; a row with no counts and no
/// smoothing is uniform.
pub fn estimate_transitions(
    sequences: &[Vec<u32>],
    n_tags: usize,
    smoothing: f32,
) -> Result<Vec<f32>> {
    const OP: &str = "estimate_transitions";
    if !(smoothing >= 0.0 && smoothing.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("smoothing {smoothing} must be finite and >= 0"),
        ));
    }
    let size = n_tags
        .checked_mul(n_tags)
        .ok_or_else(|| Error::invalid(OP, format!("{n_tags} tags is too many")))?;
    let mut counts = vec![f64::from(smoothing); size];
    for seq in sequences {
        for (pos, &id) in seq.iter().enumerate() {
            if id as usize >= n_tags {
                return Err(Error::IdOutOfRange {
                    op: OP,
                    id: u64::from(id),
                    position: pos,
                    rows: n_tags,
                });
            }
            if pos > 0 {
                let from = seq[pos - 1] as usize;
                counts[from * n_tags + id as usize] += 1.0;
            }
        }
    }
    let mut out = Vec::with_capacity(counts.len());
    for row in counts.chunks_exact(n_tags.max(1)) {
        let total: f64 = row.iter().sum();
        for &c in row {
            out.push(if total > 0.0 {
                (c / total).ln() as f32
            } else {
                -(n_tags as f32).ln()
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: [&str; 5] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];

    fn ln(p: &[[f32; 5]]) -> Vec<f32> {
        p.iter().flatten().map(|x| x.ln()).collect()
    }

    #[test]
    fn greedy_takes_first_max() {
        let s = [0.1, 0.5, 0.5, 2.0, -1.0, 0.0];
        assert_eq!(greedy(&s, 3).unwrap(), vec![1, 0]);
        assert!(greedy(&s, 4).is_err());
        assert!(greedy(&s, 0).is_err());
        assert!(greedy(&[f32::NAN, 0.0], 2).is_err());
    }

    #[test]
    fn viterbi_fixes_an_invalid_greedy_sequence() {
        // Greedy: O I-PER I-PER, invalid (I-PER after O). Best valid path:
        // B-PER I-PER I-PER (0.4 * 0.6 * 0.6 > 0.6 * 0.1 * 0.1 for O O O...).
        let scores = ln(&[
            [0.5, 0.4, 0.05, 0.03, 0.02],
            [0.1, 0.2, 0.6, 0.05, 0.05],
            [0.1, 0.1, 0.6, 0.1, 0.1],
        ]);
        assert_eq!(greedy(&scores, 5).unwrap(), vec![0, 2, 2]);
        let v = Viterbi::iob2(&TAGS);
        assert_eq!(v.decode(&scores).unwrap(), vec![1, 2, 2]);
        // An I-LOC after B-PER must not survive either.
        let scores = ln(&[[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.3, 0.1, 0.4]]);
        assert_eq!(greedy(&scores, 5).unwrap(), vec![1, 4]);
        assert_eq!(v.decode(&scores).unwrap(), vec![1, 2]);
    }

    #[test]
    fn viterbi_equals_greedy_on_valid_sequences() {
        let scores = ln(&[
            [0.1, 0.6, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.5, 0.2, 0.1],
            [0.7, 0.1, 0.05, 0.1, 0.05],
            [0.1, 0.1, 0.1, 0.6, 0.1],
            [0.2, 0.1, 0.1, 0.1, 0.5],
        ]);
        let g = greedy(&scores, 5).unwrap();
        assert_eq!(g, vec![1, 2, 0, 3, 4]);
        let v = Viterbi::iob2(&TAGS).with_transitions(&[0.0; 25]).unwrap();
        assert_eq!(v.decode(&scores).unwrap(), g);
    }

    #[test]
    fn transitions_shift_the_choice() {
        // Emissions alone prefer B-PER B-PER; a strong penalty on
        // B-PER -> B-PER makes B-PER I-PER win.
        let scores = ln(&[[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.5, 0.3, 0.05, 0.05]]);
        let v = Viterbi::iob2(&TAGS);
        assert_eq!(v.decode(&scores).unwrap(), vec![1, 1]);
        let mut t = vec![0.0f32; 25];
        t[5 + 1] = -5.0;
        let v = v.with_transitions(&t).unwrap();
        assert_eq!(v.decode(&scores).unwrap(), vec![1, 2]);
        assert!(Viterbi::iob2(&TAGS).with_transitions(&[0.0; 24]).is_err());
        let mut bad = [0.0f32; 25];
        bad[3] = f32::NAN;
        assert!(Viterbi::iob2(&TAGS).with_transitions(&bad).is_err());
    }

    #[test]
    fn decode_edge_cases() {
        let v = Viterbi::iob2(&TAGS);
        assert_eq!(v.decode(&[]).unwrap(), Vec::<u32>::new());
        // Only I-PER has a finite score: no valid path.
        let ninf = f32::NEG_INFINITY;
        assert!(v.decode(&[ninf, ninf, 0.0, ninf, ninf]).is_err());
        assert!(v.decode(&[0.0; 7]).is_err());
        let scores = ln(&[
            [0.1, 0.6, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.5, 0.2, 0.1],
            [0.1, 0.1, 0.5, 0.2, 0.1],
        ]);
        let out = v.decode_sentences(&scores, &[1, 2]).unwrap();
        // B-PER I-PER (0.1 * 0.5) beats B-LOC I-LOC (0.2 * 0.1).
        assert_eq!(out, vec![vec![1], vec![1, 2]]);
        assert!(v.decode_sentences(&scores, &[1, 1]).is_err());
    }

    #[test]
    fn estimated_transitions() {
        let t = estimate_transitions(&[vec![1, 2, 0], vec![1, 0]], 3, 0.0).unwrap();
        let p: Vec<f32> = t.iter().map(|x| x.exp()).collect();
        // From B-PER (1): once to I-PER, once to O.
        assert!((p[3] - 0.5).abs() < 1e-6 && (p[5] - 0.5).abs() < 1e-6);
        assert_eq!(t[4], f32::NEG_INFINITY);
        // From O (0): no counts, uniform.
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-6);
        let s = estimate_transitions(&[vec![1, 2]], 3, 1.0).unwrap();
        assert!((s[5].exp() - 2.0 / 4.0).abs() < 1e-6);
        assert!(estimate_transitions(&[vec![3]], 3, 0.0).is_err());
        assert!(estimate_transitions(&[], 3, -1.0).is_err());
    }
}
