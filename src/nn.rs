//! Model building blocks composed from ops: layer normalization, dropout
//! and cross-entropy with class weights and label smoothing. Being
//! compositions, they need no backward rule of their own; their gradients
//! are planned and fused like any other, and are themselves
//! differentiable.

use rand::Rng;
use rand::rngs::StdRng;

use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Layer normalization over the last axis (PyTorch's `layer_norm` with
/// `normalized_shape = [d]`): `(x − mean) / sqrt(var + eps) · weight + bias`,
/// with the biased variance; `weight` and `bias` (optional) have shape
/// `[d]`. Gradient: through the composition, i.e. for x
/// `(g' − mean(g') − x̂ · mean(g' ⊙ x̂)) / sqrt(var + eps)` with
/// `g' = g ⊙ weight` and `x̂` the normalized input; for weight `Σ g ⊙ x̂`
/// and for bias `Σ g` over the other axes.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let last = x.rank().checked_sub(1).ok_or_else(|| {
        Error::shape_detail("layer_norm", x.shape(), &[], "needs at least one axis")
    })?;
    let d = x.shape()[last];
    for (what, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p
            && p.shape() != [d]
        {
            return Err(Error::shape_detail(
                "layer_norm",
                x.shape(),
                p.shape(),
                format!("{what} must have the last axis' shape [{d}]"),
            ));
        }
    }
    if eps.is_nan() || eps < 0.0 {
        return Err(Error::invalid(
            "layer_norm",
            format!("eps must be >= 0, got {eps}"),
        ));
    }
    let mut keep = x.shape().to_vec();
    keep[last] = 1;
    let centred = x.sub(&x.mean_axis(last)?.reshape(&keep)?)?;
    let var = centred.square()?.mean_axis(last)?.reshape(&keep)?;
    let mut y = centred.mul(&var.add_scalar(eps)?.sqrt()?.recip()?)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

/// Inverted dropout: in training, each element is zeroed with probability
/// `p` and the rest are scaled by 1/(1 − p), so the expected value is
/// unchanged; otherwise (or with `p = 0`) `x` itself. The mask is drawn
/// from `rng` on the host and uploaded (reproducible from the seed).
/// `p` must be in [0, 1]; `p = 1` zeroes everything. Gradient: g ⊙ mask.
pub fn dropout(x: &Tensor, p: f64, rng: &mut StdRng, train: bool) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout",
            format!("p must be in [0, 1], got {p} (input shape {:?})", x.shape()),
        ));
    }
    if !x.dtype().is_float() {
        return Err(Error::invalid(
            "dropout",
            format!("needs a float tensor, got {}", x.dtype()),
        ));
    }
    if !train || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return x.mul_scalar(0.0);
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f64> = (0..x.numel())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_host(HostData::from_f64(&mask, x.dtype()), x.shape(), &x.device())?;
    x.mul(&mask)
}

/// Mean softmax cross-entropy of `[batch, classes]` logits and `[batch]`
/// u32 labels, with optional per-class `weights` (`[classes]`) and label
/// smoothing `eps` in [0, 1], exactly as PyTorch's `cross_entropy`:
///
/// `loss = (1 − eps) · Σᵢ w[yᵢ]·(−log pᵢ[yᵢ]) / Σᵢ w[yᵢ]
///        + eps/C · Σᵢ Σ_c w[c]·(−log pᵢ[c]) / Σᵢ w[yᵢ]`
///
/// (w = 1 without weights, so the denominators are the batch size).
/// Composed from `log_softmax` and a one-hot mask of the labels built on
/// the host; without weights and smoothing it equals the fused
/// `softmax_cross_entropy`. Gradient: with respect to the logits,
/// `(Σ_c q_c)·p − q` per row, divided by the denominator, where
/// `q = (1 − eps)·w[y]·onehot(y) + eps/C · w` is the weighted target.
pub fn cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
    label_smoothing: f64,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    check_cross_entropy(logits, labels, weights, label_smoothing)?;
    let (batch, classes) = (logits.shape()[0], logits.shape()[1]);
    let ids = labels.to_ids()?;
    let mut onehot = vec![0.0; batch * classes];
    for (i, &y) in ids.iter().enumerate() {
        if y as usize >= classes {
            return Err(Error::IdOutOfRange {
                op: OP,
                id: y as u64,
                position: i,
                rows: classes,
            });
        }
        onehot[i * classes + y as usize] = 1.0;
    }
    let onehot = Tensor::from_host(
        HostData::from_f64(&onehot, logits.dtype()),
        &[batch, classes],
        &logits.device(),
    )?;
    let neg_logp = logits.log_softmax()?.neg()?;
    let (picked, denom) = match weights {
        Some(w) => {
            let wy = onehot.mul(w)?;
            (neg_logp.mul(&wy)?.sum()?, wy.sum()?)
        }
        None => (
            neg_logp.mul(&onehot)?.sum()?,
            logits.constant_like(batch.max(1) as f64),
        ),
    };
    let mut total = picked.mul_scalar(1.0 - label_smoothing)?;
    if label_smoothing > 0.0 {
        let spread = match weights {
            Some(w) => neg_logp.mul(w)?.sum()?,
            None => neg_logp.sum()?,
        };
        total = total.add(&spread.mul_scalar(label_smoothing / classes.max(1) as f64)?)?;
    }
    total.div(&denom)
}

/// The shapes, dtypes and smoothing `cross_entropy` accepts.
fn check_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
    label_smoothing: f64,
) -> Result<()> {
    const OP: &str = "cross_entropy";
    if logits.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != logits.shape()[0] {
        return Err(Error::shape_detail(
            OP,
            logits.shape(),
            labels.shape(),
            "expected [batch, classes] logits and [batch] labels",
        ));
    }
    if !logits.dtype().is_float() {
        return Err(Error::invalid(
            OP,
            format!("logits must be float, got {}", logits.dtype()),
        ));
    }
    if labels.dtype() != DType::U32 {
        return Err(Error::invalid(
            OP,
            format!("labels must be u32, got {}", labels.dtype()),
        ));
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::invalid(
            OP,
            format!("label_smoothing must be in [0, 1], got {label_smoothing}"),
        ));
    }
    let classes = logits.shape()[1];
    if let Some(w) = weights {
        if w.shape() != [classes] {
            return Err(Error::shape_detail(
                OP,
                logits.shape(),
                w.shape(),
                format!("weights must have shape [{classes}]"),
            ));
        }
        if w.dtype() != logits.dtype() {
            return Err(Error::DType {
                op: OP,
                lhs: logits.dtype(),
                rhs: w.dtype(),
            });
        }
    }
    Ok(())
}
