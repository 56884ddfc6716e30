//! 2-D matrix product. Backward: ∂A = g·Bᵀ, ∂B = Aᵀ·g (the transposes are
//! views; the scheduler folds them into the kernel's transpose flags).

use super::{same_device, same_float};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

impl Tensor {
    /// The matrix product `[m, k] · [k, n] → [m, n]` (2-D only; both float,
    /// of one dtype, on one device). Gradient: g·Bᵀ to `self` (A) and
    /// Aᵀ·g to `other` (B); the transposes are views the kernel reads as
    /// such.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        same_device("matmul", self, other)?;
        same_float("matmul", self, other)?;
        let (a, b) = (self.shape(), other.shape());
        if a.len() != 2 || b.len() != 2 || a[1] != b[0] {
            return Err(Error::shape_detail(
                "matmul",
                a,
                b,
                "expected [m, k] and [k, n]",
            ));
        }
        Ok(Tensor::op(
            Op::Matmul,
            vec![self.clone(), other.clone()],
            vec![a[0], b[1]],
            self.dtype(),
        ))
    }

    /// `x·W + b` with `x: [batch, in]`, `W: [in, out]`, `b: [out]` (any shape
    /// that broadcasts to `[batch, out]`). Composed of `matmul` and `add`;
    /// its gradient is that of the composition: g·Wᵀ to x, xᵀ·g to W, g
    /// summed over the batch to b. The scheduler fuses the bias (and an
    /// activation after it) into the matmul's epilogue.
    pub fn linear(&self, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.matmul(w)?.add(b)
    }
}

pub(crate) fn backward(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![
        Some(g.matmul(&b.transpose()?)?),
        Some(a.transpose()?.matmul(g)?),
    ])
}
