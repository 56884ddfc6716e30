//! A linear-chain conditional random field over per-position tag scores:
//! the sentence-level log-likelihood of Collobert et al. (2011) and of
//! Lafferty et al. (2001), for any tagger that scores each position.
//!
//! A path's score is `start[y₀] + Σₜ emit[t, yₜ] + Σₜ trans[yₜ₋₁, yₜ] +
//! end[y_last]`; its log-probability is that score minus the log-partition
//! log Σ_paths exp(score), computed by the forward algorithm from `select`,
//! `unsqueeze`, `logsumexp` and `where_cond`. Being a composition of ops it
//! has no backward rule of its own: autograd differentiates the forward
//! algorithm (which yields the forward-backward marginals).
//!
//! Sentences come batched as `[S, T, K]` scores padded to a common length
//! `T`, with their true lengths; positions past a length change nothing.
//! The graph depends only on `S`, `T` and `K`, never on the lengths (they
//! enter as mask data), so a training loop that pads to a few lengths
//! compiles a few plans.

use crate::dtype::HostData;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const OP: &str = "crf";

/// The learned scores of a CRF over `K` tags.
pub struct CrfParams<'a> {
    /// `[K, K]` transition scores, `[from, to]`.
    pub transitions: &'a Tensor,
    /// `[K]` scores of starting a sentence with each tag.
    pub start: &'a Tensor,
    /// `[K]` scores of ending a sentence with each tag.
    pub end: &'a Tensor,
}

/// Checks shapes and lengths; returns `(S, T, K)`.
fn check(emissions: &Tensor, lengths: &[usize], p: &CrfParams) -> Result<(usize, usize, usize)> {
    let &[s, t, k] = emissions.shape() else {
        return Err(Error::shape_detail(
            OP,
            emissions.shape(),
            &[0, 0, 0],
            "emissions must be [sentences, positions, tags]",
        ));
    };
    for (name, x, want) in [
        ("transitions", p.transitions, vec![k, k]),
        ("start", p.start, vec![k]),
        ("end", p.end, vec![k]),
    ] {
        if x.shape() != want.as_slice() {
            return Err(Error::shape_detail(OP, x.shape(), &want, name));
        }
        if x.dtype() != emissions.dtype() {
            return Err(Error::invalid(
                OP,
                format!("{name} is {}, emissions {}", x.dtype(), emissions.dtype()),
            ));
        }
    }
    if lengths.len() != s {
        return Err(Error::invalid(
            OP,
            format!("{} lengths for {s} sentences", lengths.len()),
        ));
    }
    if let Some(i) = lengths.iter().position(|&l| l > t) {
        return Err(Error::invalid(
            OP,
            format!("sentence {i} has length {} > {t} positions", lengths[i]),
        ));
    }
    if k == 0 || t == 0 {
        return Err(Error::invalid(OP, "needs at least one position and tag"));
    }
    Ok((s, t, k))
}

/// A host-built constant of `shape` in `like`'s dtype and device.
fn data(v: Vec<f64>, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Tensor::from_host(HostData::from_f64(&v, like.dtype()), shape, &like.device())
}

/// `[S]` log-partition log Σ_paths exp(score) of each sentence, by the
/// forward algorithm over `emissions` `[S, T, K]` with `lengths[s] ≤ T`
/// (a sentence of length 0 gives log Σₖ exp(start\[k\] + emit\[0, k\] +
/// end\[k\]), a value callers mask out). Gradient: through the composition,
/// i.e. the tag marginals for the emissions, the expected transition
/// counts for the transitions.
pub fn log_partition(emissions: &Tensor, lengths: &[usize], p: &CrfParams) -> Result<Tensor> {
    let (s, t, _k) = check(emissions, lengths, p)?;
    // α₀[s, j] = start[j] + emit[s, 0, j]
    let mut alpha = emissions.select(1, 0)?.add(p.start)?;
    for step in 1..t {
        let m: Vec<f64> = lengths.iter().map(|&l| f64::from(step < l)).collect();
        let mask = data(m, &[s, 1], emissions)?;
        // αₜ[s, j] = logsumexp_i(αₜ₋₁[s, i] + trans[i, j]) + emit[s, t, j]
        let next = alpha
            .unsqueeze(2)?
            .add(p.transitions)?
            .logsumexp(1)?
            .add(&emissions.select(1, step)?)?;
        alpha = mask.where_cond(&next, &alpha)?;
    }
    alpha.add(p.end)?.logsumexp(1)
}

/// `[S]` negative log-likelihood of each sentence's `gold` path (`gold`:
/// `S·T` tag ids, sentence by sentence; ids past a sentence's length are
/// ignored): log-partition minus the gold path's score; 0 for a sentence
/// of length 0 (batch padding). An error on a bad shape, a length above
/// `T`, or a gold id `≥ K` within a sentence. Gradient: through the
/// composition — marginals minus gold indicators.
pub fn nll(emissions: &Tensor, lengths: &[usize], gold: &[u32], p: &CrfParams) -> Result<Tensor> {
    let (s, t, k) = check(emissions, lengths, p)?;
    if gold.len() != s * t {
        return Err(Error::invalid(
            OP,
            format!("{} gold ids for {s} × {t} positions", gold.len()),
        ));
    }
    let mut onehot = vec![0.0; s * t * k];
    let mut trans = vec![0.0; s * k * k];
    let mut first = vec![0.0; s * k];
    let mut last = vec![0.0; s * k];
    let mut nonempty = vec![0.0; s];
    for (si, &len) in lengths.iter().enumerate() {
        let ids = &gold[si * t..si * t + len];
        if let Some(j) = ids.iter().position(|&y| y as usize >= k) {
            return Err(Error::IdOutOfRange {
                op: OP,
                id: u64::from(ids[j]),
                position: si * t + j,
                rows: k,
            });
        }
        let (Some(&y0), Some(&yn)) = (ids.first(), ids.last()) else {
            continue;
        };
        nonempty[si] = 1.0;
        first[si * k + y0 as usize] = 1.0;
        last[si * k + yn as usize] = 1.0;
        for (ti, &y) in ids.iter().enumerate() {
            onehot[(si * t + ti) * k + y as usize] = 1.0;
        }
        for w in ids.windows(2) {
            trans[si * k * k + w[0] as usize * k + w[1] as usize] += 1.0;
        }
    }
    let onehot = data(onehot, &[s, t, k], emissions)?;
    let gold_score = emissions
        .mul(&onehot)?
        .sum_axis(2)?
        .sum_axis(1)?
        .add(
            &p.transitions
                .reshape(&[1, k * k])?
                .mul(&data(trans, &[s, k * k], emissions)?)?
                .sum_axis(1)?,
        )?
        .add(
            &p.start
                .mul(&data(first, &[s, k], emissions)?)?
                .sum_axis(1)?,
        )?
        .add(&p.end.mul(&data(last, &[s, k], emissions)?)?.sum_axis(1)?)?;
    log_partition(emissions, lengths, p)?
        .sub(&gold_score)?
        .mul(&data(nonempty, &[s], emissions)?)
}
