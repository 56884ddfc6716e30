//! Movement ops: reshape, permute/transpose, expand, narrow (slices) and
//! their adjoint, zero padding; concat and stack compose them. All but
//! padding move no data when the scheduler can express them as strided
//! views (a slice is a view with an offset).

use super::{float, same_device, same_float};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

/// `axis < rank`, or an error naming `op` and the shape.
fn check_axis(op: &'static str, x: &Tensor, axis: usize) -> Result<()> {
    if axis >= x.rank() {
        return Err(Error::shape_detail(
            op,
            x.shape(),
            &[axis],
            format!("axis {axis} out of range for rank {}", x.rank()),
        ));
    }
    Ok(())
}

impl Tensor {
    /// Same elements (row-major order), new shape with the same number of
    /// elements. Gradient: g reshaped back.
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

    /// Reorders axes: output axis `i` is input axis `perm[i]` (a view; the
    /// scheduler reads it through strides). Gradient: g permuted by the
    /// inverse permutation.
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

    /// The transpose of a 2-D tensor (`permute(&[1, 0])`, a view).
    /// Gradient: gᵀ.
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

    /// Broadcasts to `shape` (NumPy rules) without copying: stride-0 reads.
    /// Gradient: g summed back over the broadcast axes (`sum_to_shape`).
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

impl Tensor {
    /// The slice `start..start + len` along `axis` (PyTorch's `narrow`;
    /// NumPy's `x[.., start:start + len, ..]`): a strided view with an
    /// offset, so no data is copied and element-wise consumers read it in
    /// place. Float tensors only. Gradient: g placed back at `start`, zeros
    /// elsewhere (`pad_axis`).
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        float("narrow", self)?;
        check_axis("narrow", self, axis)?;
        let dim = self.shape()[axis];
        if start.checked_add(len).is_none_or(|end| end > dim) {
            return Err(Error::shape_detail(
                "narrow",
                self.shape(),
                &[start, len],
                format!("slice {start}..{start}+{len} outside axis {axis} of length {dim}"),
            ));
        }
        if start == 0 && len == dim {
            return Ok(self.clone());
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        Ok(Tensor::op(
            Op::Narrow { axis, start },
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// The slice `start..end` along `axis`: `narrow(axis, start, end - start)`.
    /// Gradient: as `narrow`'s.
    pub fn slice(&self, axis: usize, start: usize, end: usize) -> Result<Tensor> {
        if end < start {
            return Err(Error::shape_detail(
                "slice",
                self.shape(),
                &[start, end],
                format!("slice {start}..{end} ends before it starts"),
            ));
        }
        self.narrow(axis, start, end - start)
    }

    /// Index `index` along `axis`, which is removed from the shape
    /// (PyTorch's `select`; NumPy's `x[.., index, ..]`): a view, no copy.
    /// Gradient: g placed at `index` along a new axis, zeros elsewhere.
    pub fn select(&self, axis: usize, index: usize) -> Result<Tensor> {
        float("select", self)?;
        check_axis("select", self, axis)?;
        if index >= self.shape()[axis] {
            return Err(Error::shape_detail(
                "select",
                self.shape(),
                &[axis, index],
                format!(
                    "index {index} out of range for axis {axis} of length {}",
                    self.shape()[axis]
                ),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(axis);
        self.narrow(axis, index, 1)?.reshape(&shape)
    }

    /// Zero padding along `axis`: `before` zeros, the tensor, `after` zeros
    /// (one kernel; the adjoint of `narrow`). Float tensors only. Gradient:
    /// the slice of g where the tensor was (`narrow`).
    pub fn pad_axis(&self, axis: usize, before: usize, after: usize) -> Result<Tensor> {
        float("pad", self)?;
        check_axis("pad", self, axis)?;
        if before == 0 && after == 0 {
            return Ok(self.clone());
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = before
            .checked_add(shape[axis])
            .and_then(|d| d.checked_add(after))
            .ok_or_else(|| {
                Error::shape_detail("pad", self.shape(), &[before, after], "size overflows")
            })?;
        Ok(Tensor::op(
            Op::Pad { axis, before },
            vec![self.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// A new axis of size 1 at `axis` (`0..=rank`). A view.
    /// Gradient: g with that axis removed.
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::shape_detail(
                "unsqueeze",
                self.shape(),
                &[axis],
                format!("axis {axis} out of range for rank {} + 1", self.rank()),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Removes `axis`, which must have size 1. A view.
    /// Gradient: g with the axis put back.
    pub fn squeeze(&self, axis: usize) -> Result<Tensor> {
        check_axis("squeeze", self, axis)?;
        if self.shape()[axis] != 1 {
            return Err(Error::shape_detail(
                "squeeze",
                self.shape(),
                &[axis],
                format!("axis {axis} has size {}, not 1", self.shape()[axis]),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(axis);
        self.reshape(&shape)
    }

    /// Joins `tensors` along an existing `axis`; every other axis must
    /// agree (no broadcasting), as must dtypes (float) and devices. Built
    /// as the sum of each tensor zero-padded to the result, so it costs one
    /// pad per tensor plus fused additions. Gradient: each tensor gets its
    /// slice of g (a view).
    pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = *tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "needs at least one tensor"))?;
        float("concat", first)?;
        check_axis("concat", first, axis)?;
        let mut total = 0usize;
        for t in tensors {
            same_device("concat", first, t)?;
            same_float("concat", first, t)?;
            let same_rest = t.rank() == first.rank()
                && (0..first.rank()).all(|d| d == axis || t.shape()[d] == first.shape()[d]);
            if !same_rest {
                return Err(Error::shape_detail(
                    "concat",
                    first.shape(),
                    t.shape(),
                    format!("every axis but {axis} must agree"),
                ));
            }
            total += t.shape()[axis];
        }
        if tensors.len() == 1 {
            return Ok(first.clone());
        }
        let mut out: Option<Tensor> = None;
        let mut at = 0;
        for t in tensors {
            let len = t.shape()[axis];
            let padded = t.pad_axis(axis, at, total - at - len)?;
            at += len;
            out = Some(match out {
                None => padded,
                Some(acc) => acc.add(&padded)?,
            });
        }
        out.ok_or_else(|| Error::invalid("concat", "needs at least one tensor"))
    }

    /// Joins equally shaped `tensors` along a new `axis` (`0..=rank`):
    /// `concat` of each with that axis inserted. Gradient: each tensor gets
    /// its slice of g, with the axis removed.
    pub fn stack(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = *tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(Error::shape_detail(
                    "stack",
                    first.shape(),
                    t.shape(),
                    "every tensor must have the same shape",
                ));
            }
        }
        let parts = tensors
            .iter()
            .map(|t| t.unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&parts.iter().collect::<Vec<_>>(), axis)
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
        Op::Narrow { axis, start } => {
            let after = x.shape()[*axis] - start - g.shape()[*axis];
            g.pad_axis(*axis, *start, after)
        }
        Op::Pad { axis, before } => g.narrow(*axis, *before, x.shape()[*axis]),
        _ => Err(Error::invalid("shape backward", op.name())),
    }
}
