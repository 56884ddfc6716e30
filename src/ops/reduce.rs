//! Sum and max along an axis (and over everything); mean composes them.
//! Backward: sum spreads g back over the axis; max routes g to the maxima
//! (split evenly between ties).

use super::float;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::ir::ReduceOp;
use crate::tensor::Tensor;

fn reduce(op: ReduceOp, name: &'static str, x: &Tensor, axis: usize) -> Result<Tensor> {
    float(name, x)?;
    if axis >= x.rank() {
        return Err(Error::shape_detail(
            name,
            x.shape(),
            &[axis],
            format!("axis {axis} out of range for rank {}", x.rank()),
        ));
    }
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
    /// Sum along `axis` (removed from the shape).
    pub fn sum_axis(&self, axis: usize) -> Result<Tensor> {
        reduce(ReduceOp::Sum, "sum", self, axis)
    }
    /// Maximum along `axis` (removed from the shape).
    pub fn max_axis(&self, axis: usize) -> Result<Tensor> {
        reduce(ReduceOp::Max, "max", self, axis)
    }
    /// Mean along `axis` (removed from the shape).
    pub fn mean_axis(&self, axis: usize) -> Result<Tensor> {
        let len = self.shape().get(axis).copied().unwrap_or(1).max(1);
        self.sum_axis(axis)?.mul_scalar(1.0 / len as f64)
    }
    /// Sum of all elements, as a 0-d tensor.
    pub fn sum(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.sum_axis(0)
    }
    /// Maximum of all elements, as a 0-d tensor.
    pub fn max(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.max_axis(0)
    }
    /// Mean of all elements, as a 0-d tensor.
    pub fn mean(&self) -> Result<Tensor> {
        self.sum()?.mul_scalar(1.0 / self.numel().max(1) as f64)
    }

    /// Sums a broadcast gradient back to `shape` (the inverse of NumPy
    /// broadcasting): extra leading axes and stretched size-1 axes are summed.
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
