//! The primitive ops of the computation graph. Everything else composes
//! these; each has its backward rule in the ops layer.

use std::borrow::Cow;
use std::sync::Arc;

use super::custom::CustomOp;
use super::expr::{BinaryOp, UnaryOp};
use super::plan::ReduceOp;

/// A primitive operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// Data that is already realized (an input or a parameter).
    Leaf,
    /// A constant filling the node's shape; never stored, folded into the
    /// kernels that read it.
    Fill(f64),
    /// An element-wise unary op from the table in `unary.rs`.
    Unary(UnaryOp),
    /// Element-wise with NumPy broadcasting of both inputs to the node's shape.
    Binary(BinaryOp),
    /// `if cond != 0 { a } else { b }` element-wise; inputs cond, a, b,
    /// broadcast to the node's shape.
    Where,
    /// 2-D matrix product `[m, k] · [k, n]`.
    Matmul,
    /// Reduction over one axis (removed from the shape).
    Reduce(ReduceOp, usize),
    /// Same elements, new shape.
    Reshape,
    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// Broadcast to the node's shape (size-1 or missing leading axes repeat).
    Expand,
    /// The slice `start..start + len` along `axis` (`len` from the node's
    /// shape): a strided view with an offset, no data moved.
    Narrow {
        /// The axis sliced.
        axis: usize,
        /// Index of the slice's first element along `axis`.
        start: usize,
    },
    /// Zero padding along `axis`: `before` zeros, the input, then zeros up
    /// to the node's length (the adjoint of `Narrow`).
    Pad {
        /// The axis padded.
        axis: usize,
        /// Zeros before the input along `axis`.
        before: usize,
    },
    /// The index (u32) of the largest element along `axis` (removed from
    /// the shape), or of the smallest when `min`; ties give the first
    /// index and a NaN counts as the extreme. No gradient.
    ArgMax {
        /// The axis searched (removed from the shape).
        axis: usize,
        /// Argmin instead of argmax.
        min: bool,
    },
    /// Rows of a `[rows, dim]` table picked by u32 ids: `[n, dim]`.
    Gather,
    /// `[n, dim]` rows summed into `[rows, dim]` at u32 ids.
    ScatterAdd,
    /// Mean softmax cross-entropy of `[batch, classes]` logits and u32 labels.
    SoftmaxXent,
    /// Its gradient with respect to the logits; inputs: logits, labels,
    /// upstream gradient (a scalar).
    SoftmaxXentGrad,
    /// Row-wise log-softmax of a 2-D tensor.
    LogSoftmax,
    /// Mean binary cross-entropy with logits.
    LogisticLoss,
    /// Its gradient with respect to the logits; inputs: logits, targets,
    /// upstream gradient.
    LogisticLossGrad,
    /// Identity that stops gradients.
    Detach,
    /// A user-defined op (forward, or the gradient for one input).
    Custom {
        /// The op.
        op: Arc<dyn CustomOp>,
        /// `None`: the forward; `Some(i)`: the gradient for input `i` (the
        /// node's inputs are the forward's, then the upstream gradient).
        backward_input: Option<usize>,
    },
}

impl Op {
    /// A short snake_case name for error messages and `explain`.
    pub fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Op::Leaf => "leaf",
            Op::Fill(v) => return Cow::Owned(format!("fill({v})")),
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Matmul => "matmul",
            Op::Reduce(r, axis) => return Cow::Owned(format!("{}(axis {axis})", r.name())),
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Expand => "expand",
            Op::Narrow { axis, start } => {
                return Cow::Owned(format!("narrow(axis {axis}, start {start})"));
            }
            Op::Pad { axis, before } => {
                return Cow::Owned(format!("pad(axis {axis}, before {before})"));
            }
            Op::ArgMax { axis, min } => {
                let name = if *min { "argmin" } else { "argmax" };
                return Cow::Owned(format!("{name}(axis {axis})"));
            }
            Op::Gather => "gather",
            Op::ScatterAdd => "scatter_add",
            Op::SoftmaxXent => "softmax_xent",
            Op::SoftmaxXentGrad => "softmax_xent_grad",
            Op::LogSoftmax => "log_softmax",
            Op::LogisticLoss => "logistic_loss",
            Op::LogisticLossGrad => "logistic_loss_grad",
            Op::Detach => "detach",
            Op::Custom { op, backward_input } => {
                return Cow::Owned(match backward_input {
                    None => op.name().to_string(),
                    Some(i) => format!("{}_grad{i}", op.name()),
                });
            }
        })
    }
}
