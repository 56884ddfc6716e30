//! Softmax, softmax cross-entropy and the logistic loss on the CPU. Rows
//! are independent and go to threads in fixed groups; a loss's mean sums
//! the rows in order on one thread, so it is the same for any thread count.

use super::access::{Reader, Typed, floats, load_ids, scalar_of};
use super::elementwise::Scratch;
use super::par::{Pool, SendPtr};
use crate::error::{Error, Result};
use crate::ir::float::{max_nan, sigmoid};
use crate::ir::{Float, Kernel};

/// The numerically careful pieces of a row's log-softmax: its maximum `m`
/// and `log Σ exp(x − m)`. Callers form `(x − m) − log_sum`, so that the
/// result keeps full precision when |m| is large: adding `m` back first
/// (`x − (m + log_sum)`) rounds every output to the precision of `m`.
fn row_stats<T: Float>(row: &[T]) -> (T, T) {
    let mut m = T::neg_infinity();
    for &v in row {
        m = max_nan(v, m);
    }
    if m == T::neg_infinity() || m == T::infinity() || m.is_nan() {
        // No finite shift: all −∞ (the log-sum is −∞), or a +∞/NaN (the
        // outputs are NaN, as in PyTorch).
        let s = row.iter().fold(T::ZERO, |s, &v| s + v.exp());
        return (T::ZERO, s.ln());
    }
    let s = row.iter().fold(T::ZERO, |s, &v| s + (v - m).exp());
    (m, s.ln())
}

pub(super) fn log_softmax<T: Typed>(
    pool: &Pool,
    x: &[T],
    rows: usize,
    cols: usize,
    o: &mut [T],
) -> Result<()> {
    if x.len() < rows * cols || o.len() != rows * cols {
        return Err(Error::invalid("cpu log_softmax", "input too short"));
    }
    if cols == 0 {
        return Ok(());
    }
    pool.rows(o, cols, 4 * cols, |first, part| {
        for (r, dst) in part.chunks_mut(cols).enumerate() {
            let row = &x[(first + r) * cols..(first + r + 1) * cols];
            let (m, log_sum) = row_stats(row);
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - m) - log_sum;
            }
        }
    });
    Ok(())
}

/// Softmax cross-entropy (mean over the batch) or its gradient, into `o`.
pub(super) fn softmax_xent<T: Typed>(
    k: &Kernel,
    read: &Reader<'_>,
    o: &mut [T],
    pool: &Pool,
) -> Result<()> {
    let (logits, labels, batch, classes, grad) = match k {
        Kernel::SoftmaxXent {
            logits,
            labels,
            batch,
            classes,
            ..
        } => (*logits, *labels, *batch, *classes, None),
        Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            ..
        } => (*logits, *labels, *batch, *classes, Some(*grad)),
        _ => return Err(Error::invalid("cpu execute", "not a softmax_xent")),
    };
    let xg = read(logits)?.read();
    let x = floats::<T>(&xg, "softmax_xent logits")?;
    let y = load_ids(read, labels, "softmax_xent labels", classes)?;
    if x.len() < batch * classes || y.len() < batch {
        return Err(Error::invalid("cpu softmax_xent", "input too short"));
    }
    let Some(grad) = grad else {
        if o.len() != 1 {
            return Err(Error::invalid("cpu softmax_xent", "the loss is one value"));
        }
        let mut total = 0.0f64;
        for b in 0..batch {
            let row = &x[b * classes..(b + 1) * classes];
            let (m, log_sum) = row_stats(row);
            total += (log_sum - (row[y[b] as usize] - m)).to_f64();
        }
        o[0] = T::from_f64(total / batch.max(1) as f64);
        return Ok(());
    };
    if o.len() != batch * classes {
        return Err(Error::invalid(
            "cpu softmax_xent",
            "gradient of another size",
        ));
    }
    if classes == 0 {
        return Ok(());
    }
    let g = scalar_of::<T>(read, grad)?;
    let scale = g / T::from_f64(batch.max(1) as f64);
    pool.rows(o, classes, 4 * classes, |first, part| {
        for (r, dst) in part.chunks_mut(classes).enumerate() {
            let b = first + r;
            let row = &x[b * classes..(b + 1) * classes];
            let (m, log_sum) = row_stats(row);
            for (c, (d, &v)) in dst.iter_mut().zip(row).enumerate() {
                let p = ((v - m) - log_sum).exp();
                let t = if c == y[b] as usize { T::ONE } else { T::ZERO };
                *d = (p - t) * scale;
            }
        }
    });
    Ok(())
}

/// Work of one logit in `pool.rows` units: an `exp` costs about as much
/// as a dozen simple operations.
const EXP_WORK: usize = 16;

/// Softmax cross-entropy (mean over the batch) into `loss` and its
/// gradient into `grad`, in one pass over the logits: each row's maximum
/// and log-sum serve both, rows go to threads in fixed groups, and the
/// rows' loss terms are summed in order afterwards. Each value is computed
/// as `softmax_xent` computes it, so fused and unfused plans agree exactly.
pub(super) fn softmax_xent_with_grad<T: Typed>(
    k: &Kernel,
    read: &Reader<'_>,
    (loss, grad_out): (&mut [T], &mut [T]),
    pool: &Pool,
) -> Result<()> {
    let Kernel::SoftmaxXentWithGrad {
        logits,
        labels,
        grad,
        batch,
        classes,
        ..
    } = *k
    else {
        return Err(Error::invalid(
            "cpu execute",
            "not a softmax_xent_with_grad",
        ));
    };
    let xg = read(logits)?.read();
    let x = floats::<T>(&xg, "softmax_xent logits")?;
    let y = load_ids(read, labels, "softmax_xent labels", classes)?;
    if x.len() < batch * classes || y.len() < batch {
        return Err(Error::invalid("cpu softmax_xent", "input too short"));
    }
    if loss.len() != 1 || grad_out.len() != batch * classes {
        return Err(Error::invalid(
            "cpu softmax_xent",
            "outputs of another size",
        ));
    }
    let scale = scalar_of::<T>(read, grad)? / T::from_f64(batch.max(1) as f64);
    let total = f64::with_scratch(batch, |terms| {
        let at = SendPtr(terms.as_mut_ptr());
        let classes = classes.max(1);
        pool.rows(grad_out, classes, EXP_WORK * classes, |first, part| {
            for (r, dst) in part.chunks_mut(classes).enumerate() {
                let b = first + r;
                let row = &x[b * classes..(b + 1) * classes];
                let (m, log_sum) = row_stats(row);
                let label = y[b] as usize;
                // SAFETY: row b belongs to this piece alone, and `terms`
                // holds `batch` values.
                unsafe { *at.at(b) = (log_sum - (row[label] - m)).to_f64() };
                for (c, (d, &v)) in dst.iter_mut().zip(row).enumerate() {
                    let p = ((v - m) - log_sum).exp();
                    let t = if c == label { T::ONE } else { T::ZERO };
                    *d = (p - t) * scale;
                }
            }
        });
        terms.iter().fold(0.0f64, |s, &t| s + t)
    });
    loss[0] = T::from_f64(total / batch.max(1) as f64);
    Ok(())
}

/// Mean binary cross-entropy with logits, or its gradient, into `o`.
pub(super) fn logistic<T: Typed>(
    k: &Kernel,
    read: &Reader<'_>,
    o: &mut [T],
    pool: &Pool,
) -> Result<()> {
    let (logits, targets, n, grad) = match k {
        Kernel::LogisticLoss {
            logits, targets, n, ..
        } => (*logits, *targets, *n, None),
        Kernel::LogisticLossGrad {
            logits,
            targets,
            grad,
            n,
            ..
        } => (*logits, *targets, *n, Some(*grad)),
        _ => return Err(Error::invalid("cpu execute", "not a logistic loss")),
    };
    let xg = read(logits)?.read();
    let x = floats::<T>(&xg, "logistic_loss logits")?;
    let tg = read(targets)?.read();
    let t = floats::<T>(&tg, "logistic_loss targets")?;
    if x.len() < n || t.len() < n {
        return Err(Error::invalid("cpu logistic_loss", "input too short"));
    }
    let Some(grad) = grad else {
        if o.len() != 1 {
            return Err(Error::invalid("cpu logistic_loss", "the loss is one value"));
        }
        let mut total = 0.0f64;
        for i in 0..n {
            let (x, t) = (x[i].to_f64(), t[i].to_f64());
            total += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
        }
        o[0] = T::from_f64(total / n.max(1) as f64);
        return Ok(());
    };
    if o.len() != n {
        return Err(Error::invalid(
            "cpu logistic_loss",
            "gradient of another size",
        ));
    }
    let g = scalar_of::<T>(read, grad)?;
    let scale = g / T::from_f64(n.max(1) as f64);
    pool.rows(o, 1, 8, |first, part| {
        for (i, d) in part.iter_mut().enumerate() {
            *d = (sigmoid(x[first + i]) - t[first + i]) * scale;
        }
    });
    Ok(())
}
