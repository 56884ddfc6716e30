//! `Tensor::custom`: applying a user-defined op (the trait is in
//! `ir::custom`), and its backward rule, which calls the op's own.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::{CustomOp, Op};
use crate::tensor::Tensor;

impl Tensor {
    /// Applies a user-defined op to `inputs` (at least one, all float and on
    /// one device); the output has the shape `op.output_shape` gives and the
    /// first input's dtype.
    ///
    /// Gradient: for input `i`, the op's own rule,
    /// `op.backward(inputs, shapes, upstream, i)`; none for an input where
    /// `op.differentiable(i)` is false. The gradient nodes are themselves
    /// custom nodes without a backward rule, so differentiating twice
    /// through a custom op is an error.
    pub fn custom(op: Arc<dyn CustomOp>, inputs: &[&Tensor]) -> Result<Tensor> {
        let first = inputs
            .first()
            .ok_or_else(|| Error::invalid("custom", "needs at least one input"))?;
        for t in inputs {
            super::same_device("custom", first, t)?;
            super::float("custom", t)?;
        }
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let shape = op.output_shape(&shapes)?;
        Ok(Tensor::op(
            Op::Custom {
                op,
                backward_input: None,
            },
            inputs.iter().map(|t| (*t).clone()).collect(),
            shape,
            first.dtype(),
        ))
    }
}

pub(crate) fn backward(
    op: &Arc<dyn CustomOp>,
    inputs: &[Tensor],
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let mut args = inputs.to_vec();
    args.push(g.clone());
    Ok((0..inputs.len())
        .map(|i| {
            op.differentiable(i).then(|| {
                Tensor::op(
                    Op::Custom {
                        op: op.clone(),
                        backward_input: Some(i),
                    },
                    args.clone(),
                    inputs[i].shape().to_vec(),
                    inputs[i].dtype(),
                )
            })
        })
        .collect())
}
