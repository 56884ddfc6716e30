//! Movement ops: reshape, permute/transpose, expand. They move no data when
//! the scheduler can express them as strided views.

use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

impl Tensor {
    /// Same elements (row-major order), new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::shape_detail(
                "reshape",
                self.shape(),
                shape,
                format!("{} elements cannot become {n}", self.numel()),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Tensor::op(
            Op::Reshape,
            vec![self.clone()],
            shape.to_vec(),
            self.dtype(),
        ))
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank()
            || perm
                .iter()
                .any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::shape_detail(
                "permute",
                self.shape(),
                perm,
                "not a permutation of the axes",
            ));
        }
        let shape = perm.iter().map(|&p| self.shape()[p]).collect();
        Ok(Tensor::op(
            Op::Permute(perm.to_vec()),
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// The transpose of a 2-D tensor.
    pub fn transpose(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::shape_detail(
                "transpose",
                self.shape(),
                &[],
                "expected a 2-D tensor",
            ));
        }
        self.permute(&[1, 0])
    }

    /// Broadcasts to `shape` (NumPy rules) without copying.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let b = super::elementwise::broadcast_shapes("expand", self.shape(), shape)?;
        if b != shape {
            return Err(Error::shape_detail(
                "expand",
                self.shape(),
                shape,
                "cannot broadcast to the target",
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(Tensor::op(
            Op::Expand,
            vec![self.clone()],
            shape.to_vec(),
            self.dtype(),
        ))
    }
}

pub(crate) fn backward(op: &Op, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        Op::Reshape => g.reshape(x.shape()),
        Op::Permute(p) => {
            let mut inv = vec![0; p.len()];
            for (i, &pi) in p.iter().enumerate() {
                inv[pi] = i;
            }
            g.permute(&inv)
        }
        Op::Expand => g.sum_to_shape(x.shape()),
        _ => Err(Error::invalid("shape backward", op.name())),
    }
}
