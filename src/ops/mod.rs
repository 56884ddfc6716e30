//! One file per op family; each op's backward rule sits right under its
//! forward. `backward` dispatches on the node's op.

pub mod custom;
pub mod elementwise;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod shape;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

/// The local backward rule of `out`'s op: given the upstream gradient `g`
/// (shaped like `out`), the gradient for each input (`None` where an input
/// takes none).
pub(crate) fn backward(out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let x = &out.inputs();
    match &out.node().op {
        Op::Leaf | Op::Fill(_) | Op::Detach => Ok(vec![None; x.len()]),
        Op::Unary(u) => elementwise::unary_backward(*u, &x[0], out, g).map(|t| vec![Some(t)]),
        Op::Binary(b) => elementwise::binary_backward(*b, &x[0], &x[1], out, g),
        Op::Where => elementwise::where_backward(&x[0], &x[1], &x[2], g),
        Op::Matmul => matmul::backward(&x[0], &x[1], g),
        Op::Reduce(r, axis) => reduce::backward(*r, *axis, &x[0], out, g).map(|t| vec![Some(t)]),
        Op::ArgMax { .. } => Ok(vec![None]),
        Op::Reshape | Op::Permute(_) | Op::Expand | Op::Narrow { .. } | Op::Pad { .. } => {
            shape::backward(&out.node().op, &x[0], g).map(|t| vec![Some(t)])
        }
        Op::Gather => gather::gather_backward(&x[0], &x[1], g),
        Op::ScatterAdd => gather::scatter_add_backward(&x[0], &x[1], g),
        Op::SoftmaxXent => loss::softmax_xent_backward(&x[0], &x[1], g),
        Op::LogSoftmax => loss::log_softmax_backward(out, g).map(|t| vec![Some(t)]),
        Op::LogisticLoss => loss::logistic_loss_backward(&x[0], &x[1], g),
        Op::SoftmaxXentGrad => loss::softmax_xent_grad_backward(&x[0], &x[1], &x[2], g),
        Op::LogisticLossGrad => loss::logistic_loss_grad_backward(&x[0], &x[1], &x[2], g),
        Op::Custom { op, backward_input } => match backward_input {
            None => custom::backward(op, x, g),
            Some(_) => Err(Error::invalid(
                "backward",
                format!("second derivative of custom op {}", op.name()),
            )),
        },
    }
}

/// Both tensors on one device, or an error naming `op`.
pub(crate) fn same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<Device> {
    let (da, db) = (a.device(), b.device());
    if da != db {
        return Err(Error::Device {
            op,
            lhs: da.to_string(),
            rhs: db.to_string(),
        });
    }
    Ok(da)
}

/// Both float, same dtype, or an error naming `op`.
pub(crate) fn same_float(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DType {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        });
    }
    float(op, a)
}

pub(crate) fn float(op: &'static str, a: &Tensor) -> Result<()> {
    if !a.dtype().is_float() {
        return Err(Error::invalid(
            op,
            format!("needs a float tensor, got {}", a.dtype()),
        ));
    }
    Ok(())
}
