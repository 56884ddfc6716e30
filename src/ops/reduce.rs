//! Sum and max along an axis (and over everything); mean, min and
//! log-sum-exp compose them. Backward: sum spreads g back over the axis;
//! max routes g to the maxima (split evenly between ties). `argmax` and
//! `argmin` give indices (u32, no gradient).

use super::float;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::ir::ReduceOp;
use crate::tensor::Tensor;

/// A float tensor with `axis < rank`, or an error naming `op` and the shape.
fn check_axis(name: &'static str, x: &Tensor, axis: usize) -> Result<()> {
    float(name, x)?;
    if axis >= x.rank() {
        return Err(Error::shape_detail(
            name,
            x.shape(),
            &[axis],
            format!("axis {axis} out of range for rank {}", x.rank()),
        ));
    }
    Ok(())
}

fn reduce(op: ReduceOp, name: &'static str, x: &Tensor, axis: usize) -> Result<Tensor> {
    check_axis(name, x, axis)?;
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    Ok(Tensor::op(
        Op::Reduce(op, axis),
        vec![x.clone()],
        shape,
        x.dtype(),
    ))
}

impl Tensor {
    /// Sum along `axis` (removed from the shape; an empty axis sums to 0).
    /// Gradient: g broadcast back along the axis.
    pub fn sum_axis(&self, axis: usize) -> Result<Tensor> {
        reduce(ReduceOp::Sum, "sum", self, axis)
    }
    /// Maximum along `axis` (removed from the shape; NaN-propagating).
    /// Gradient: g routed to the maxima, split evenly between ties (a
    /// maximum that is NaN matches nothing, so its row's gradient is NaN).
    pub fn max_axis(&self, axis: usize) -> Result<Tensor> {
        reduce(ReduceOp::Max, "max", self, axis)
    }
    /// Mean along `axis` (removed from the shape): `sum_axis` times 1/len.
    /// Gradient: g / len broadcast back along the axis.
    pub fn mean_axis(&self, axis: usize) -> Result<Tensor> {
        let len = self.shape().get(axis).copied().unwrap_or(1).max(1);
        self.sum_axis(axis)?.mul_scalar(1.0 / len as f64)
    }
    /// Sum of all elements, as a 0-d tensor. Gradient: g to every element.
    pub fn sum(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.sum_axis(0)
    }
    /// Maximum of all elements, as a 0-d tensor (NaN-propagating).
    /// Gradient: g routed to the maxima, split evenly between ties.
    pub fn max(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.max_axis(0)
    }
    /// Mean of all elements, as a 0-d tensor. Gradient: g / numel to every
    /// element.
    pub fn mean(&self) -> Result<Tensor> {
        self.sum()?.mul_scalar(1.0 / self.numel().max(1) as f64)
    }

    /// Minimum along `axis` (removed from the shape; NaN-propagating),
    /// composed as −max(−x). Gradient: g routed to the minima, split
    /// evenly between ties.
    pub fn min_axis(&self, axis: usize) -> Result<Tensor> {
        check_axis("min", self, axis)?;
        self.neg()?.max_axis(axis)?.neg()
    }
    /// Minimum of all elements, as a 0-d tensor. Gradient: g routed to
    /// the minima, split evenly between ties.
    pub fn min(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.min_axis(0)
    }

    /// `log Σ exp(x)` along `axis` (removed from the shape), computed
    /// stably as `m + log Σ exp(x − m)` with `m` the (detached) maximum, as
    /// in PyTorch: `m` is taken as 0 where it is ±∞, so a row of −∞ gives
    /// −∞, a +∞ gives +∞, a NaN gives NaN, and an empty axis gives −∞.
    /// Gradient: g ⊙ softmax(x) along the axis (exactly, since `m` cancels).
    pub fn logsumexp(&self, axis: usize) -> Result<Tensor> {
        check_axis("logsumexp", self, axis)?;
        let m = self.stable_shift(axis)?;
        let mut keep = self.shape().to_vec();
        keep[axis] = 1;
        self.sub(&m.reshape(&keep)?)?
            .exp()?
            .sum_axis(axis)?
            .log()?
            .add(&m)
    }

    /// `x − logsumexp(x)` along any `axis` (the shape is kept), formed as
    /// `(x − m) − log Σ exp(x − m)` so large |m| loses no precision. A 2-D
    /// tensor along axis 1 uses the fused row kernel (`log_softmax`).
    /// Gradient: g − softmax(x) · Σ g along the axis.
    pub fn log_softmax_axis(&self, axis: usize) -> Result<Tensor> {
        check_axis("log_softmax", self, axis)?;
        if self.rank() == 2 && axis == 1 {
            return self.log_softmax();
        }
        let mut keep = self.shape().to_vec();
        keep[axis] = 1;
        let z = self.sub(&self.stable_shift(axis)?.reshape(&keep)?)?;
        let log_sum = z.exp()?.sum_axis(axis)?.log()?.reshape(&keep)?;
        z.sub(&log_sum)
    }

    /// Softmax along any `axis`: `exp(log_softmax_axis(axis))`.
    /// Gradient: softmax ⊙ (g − Σ g ⊙ softmax) along the axis.
    pub fn softmax_axis(&self, axis: usize) -> Result<Tensor> {
        self.log_softmax_axis(axis)?.exp()
    }

    /// The detached maximum along `axis`, with ±∞ replaced by 0 (the
    /// shift that keeps `exp` from overflowing).
    fn stable_shift(&self, axis: usize) -> Result<Tensor> {
        let m = self.max_axis(axis)?.detach();
        let infinite = m.abs()?.eq_mask(&self.constant_like(f64::INFINITY))?;
        infinite.where_cond(&self.constant_like(0.0), &m)
    }

    /// Index (u32) of the largest element along `axis` (removed from the
    /// shape), computed on the device. Ties give the first index; a NaN
    /// counts as the largest, so the first NaN wins (as in PyTorch). The
    /// ids can feed `gather_rows`, `embedding` or `softmax_cross_entropy`,
    /// which read them back to the host once (ids are checked there).
    /// No gradient.
    pub fn argmax(&self, axis: usize) -> Result<Tensor> {
        arg_extreme(self, axis, false)
    }

    /// Index (u32) of the smallest element along `axis`; as `argmax`
    /// (ties: the first; a NaN counts as the smallest). No gradient.
    pub fn argmin(&self, axis: usize) -> Result<Tensor> {
        arg_extreme(self, axis, true)
    }

    /// Sums a broadcast gradient back to `shape` (the inverse of NumPy
    /// broadcasting): extra leading axes and stretched size-1 axes are
    /// summed; an error when `self` is not a broadcast of `shape`.
    /// Composed of `sum_axis` and `reshape`; its gradient is that of the
    /// composition: g broadcast back to `self`'s shape.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let extra = self.rank().checked_sub(shape.len()).ok_or_else(|| {
            Error::shape_detail("sum_to_shape", self.shape(), shape, "target has more axes")
        })?;
        let mut t = self.clone();
        for _ in 0..extra {
            t = t.sum_axis(0)?;
        }
        for (axis, &s) in shape.iter().enumerate() {
            if s == 1 && t.shape()[axis] != 1 {
                let mut keep = t.shape().to_vec();
                keep[axis] = 1;
                t = t.sum_axis(axis)?.reshape(&keep)?;
            }
        }
        if t.shape() != shape {
            return Err(Error::shape_detail(
                "sum_to_shape",
                self.shape(),
                shape,
                "not a broadcast of the target",
            ));
        }
        Ok(t)
    }
}

fn arg_extreme(x: &Tensor, axis: usize, min: bool) -> Result<Tensor> {
    let name = if min { "argmin" } else { "argmax" };
    check_axis(name, x, axis)?;
    let len = x.shape()[axis];
    if len == 0 || u32::try_from(len).is_err() {
        return Err(Error::shape_detail(
            name,
            x.shape(),
            &[axis],
            format!("axis {axis} has {len} elements; needs 1 to 2^32 - 1"),
        ));
    }
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    Ok(Tensor::op(
        Op::ArgMax { axis, min },
        vec![x.clone()],
        shape,
        DType::U32,
    ))
}

/// `x` reduced along `axis` to `out`; `g` is shaped like `out`.
pub(crate) fn backward(
    op: ReduceOp,
    axis: usize,
    x: &Tensor,
    out: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    let mut keep = x.shape().to_vec();
    keep[axis] = 1;
    let spread = |t: &Tensor| t.reshape(&keep)?.expand(x.shape());
    match op {
        ReduceOp::Sum => spread(g),
        ReduceOp::Max => {
            // The mask compares x with its maximum bit for bit. When the
            // maximum was realized by an earlier plan and x was not, x is
            // recomputed in this one — on a GPU possibly in another fused
            // kernel, with other rounding — so the maximum is recomputed
            // here too, from the very same values.
            let m = if out.is_realized() && !x.is_realized() {
                x.detach().max_axis(axis)?
            } else {
                out.clone()
            };
            let is_max = x.eq_mask(&spread(&m)?)?;
            let ties = spread(&is_max.sum_axis(axis)?)?;
            spread(g)?.mul(&is_max)?.div(&ties)
        }
    }
}
