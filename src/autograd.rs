//! Reverse-mode autodiff. `backward` walks the graph from a scalar in
//! reverse topological order, applying each node's local rule
//! (\[downstream\] = \[upstream\] × \[local\]) and summing gradients where a node
//! feeds several others. The rules build ordinary graph nodes, so the
//! backward pass is planned and fused with the forward.
//!
//! [`grad`] and [`grad_with`] return gradients instead of accumulating them
//! on the leaves (PyTorch's `torch.autograd.grad`). With `create_graph` the
//! rules run with recording on, so the gradients are themselves
//! differentiable: every rule is built from differentiable ops, including
//! the second-order rules of the fused losses. A custom op's backward is
//! first-order only (differentiating it again is an error naming the op).

use crate::error::{Error, Result};
use crate::graph::{self, Visit, enable_grad, no_grad};
use crate::hash::{FastMap, FastSet};
use crate::ops;
use crate::tensor::Tensor;

/// The gradients of the one-element `outputs` (summed) with respect to
/// `inputs`, which must require grad: one entry per input, `None` where no
/// output depends on it. Leaves' `grad()` is left untouched. With
/// `create_graph` the gradients record the graph, so they can be
/// differentiated again (Hessian-vector products, `functional::hessian`);
/// without it they are constants. Nothing is computed until a value is
/// read.
///
/// ```
/// use deltagrad::{Tensor, autograd::grad};
/// let x = Tensor::from_vec(vec![3.0f64], &[])?.requires_grad();
/// let y = x.mul(&x)?.mul(&x)?; // x³
/// let dy = grad(&[&y], &[&x], true)?[0].clone().unwrap(); // 3x²
/// let d2y = grad(&[&dy], &[&x], false)?[0].clone().unwrap(); // 6x
/// assert_eq!((dy.item()?, d2y.item()?), (27.0, 18.0));
/// # Ok::<(), deltagrad::Error>(())
/// ```
pub fn grad(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    let mut seeds = Vec::with_capacity(outputs.len());
    for (k, y) in outputs.iter().enumerate() {
        if y.numel() != 1 {
            return Err(Error::invalid(
                "grad",
                format!(
                    "output {k} has shape {:?}; grad needs one-element outputs \
                     (grad_with takes an upstream gradient for others)",
                    y.shape()
                ),
            ));
        }
        seeds.push(Tensor::ones(y.shape(), y.dtype(), &y.device()));
    }
    grad_with(
        outputs,
        &seeds.iter().collect::<Vec<_>>(),
        inputs,
        create_graph,
    )
}

/// As [`grad`], for outputs of any shape: output `k` is seeded with the
/// upstream gradient `grad_outputs[k]` (same shape, dtype and device), so
/// the result is the vector-Jacobian product Σₖ grad_outputsₖᵀ · ∂outputsₖ/∂input.
pub fn grad_with(
    outputs: &[&Tensor],
    grad_outputs: &[&Tensor],
    inputs: &[&Tensor],
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    check_grad_args(outputs, grad_outputs, inputs)?;
    let roots: Vec<&Tensor> = outputs
        .iter()
        .copied()
        .filter(|y| y.requires_grad_flag())
        .collect();
    let order: Vec<Tensor> =
        graph::topo_order(&roots.iter().map(|t| &t.0).collect::<Vec<_>>(), |n| {
            if n.requires_grad() {
                Visit::Expand
            } else {
                Visit::Skip
            }
        })
        .iter()
        .map(Tensor::from_arc)
        .collect();
    // Only nodes on a path from an input to an output need a rule.
    let targets: FastSet<u64> = inputs.iter().map(|x| x.id()).collect();
    let mut leads = targets.clone();
    for t in &order {
        if t.node().inputs.iter().any(|i| leads.contains(&i.id)) {
            leads.insert(t.id());
        }
    }
    let run = || propagate(outputs, grad_outputs, &order, &leads, &targets);
    let mut found = if create_graph {
        enable_grad(run)?
    } else {
        no_grad(run)?
    };
    Ok(inputs.iter().map(|x| found.remove(&x.id())).collect())
}

/// One upstream gradient per output, of its shape, dtype and device; every
/// input requires grad.
fn check_grad_args(
    outputs: &[&Tensor],
    grad_outputs: &[&Tensor],
    inputs: &[&Tensor],
) -> Result<()> {
    if outputs.len() != grad_outputs.len() {
        return Err(Error::invalid(
            "grad",
            format!(
                "{} outputs but {} upstream gradients",
                outputs.len(),
                grad_outputs.len()
            ),
        ));
    }
    for (k, (y, gy)) in outputs.iter().zip(grad_outputs).enumerate() {
        if y.shape() != gy.shape() {
            return Err(Error::shape_detail(
                "grad",
                y.shape(),
                gy.shape(),
                format!("upstream gradient {k} must have its output's shape"),
            ));
        }
        ops::same_float("grad", y, gy)?;
        ops::same_device("grad", y, gy)?;
    }
    for (k, x) in inputs.iter().enumerate() {
        if !x.requires_grad_flag() {
            return Err(Error::invalid(
                "grad",
                format!("input {k} (shape {:?}) does not require grad", x.shape()),
            ));
        }
    }
    Ok(())
}

/// Walks `order` in reverse from the seeded outputs, applying each node's
/// rule on the paths in `leads` and summing at branches; returns the
/// gradients reaching `targets`.
fn propagate(
    outputs: &[&Tensor],
    grad_outputs: &[&Tensor],
    order: &[Tensor],
    leads: &FastSet<u64>,
    targets: &FastSet<u64>,
) -> Result<FastMap<u64, Tensor>> {
    let mut grads: FastMap<u64, Tensor> = FastMap::default();
    let accumulate = |grads: &mut FastMap<u64, Tensor>, id: u64, g: Tensor| -> Result<()> {
        let sum = match grads.remove(&id) {
            Some(prev) => prev.add(&g)?,
            None => g,
        };
        grads.insert(id, sum);
        Ok(())
    };
    for (y, gy) in outputs.iter().zip(grad_outputs) {
        if leads.contains(&y.id()) {
            accumulate(&mut grads, y.id(), (*gy).clone())?;
        }
    }
    let mut found = FastMap::default();
    for t in order.iter().rev() {
        if !leads.contains(&t.id()) {
            continue;
        }
        let Some(g) = grads.remove(&t.id()) else {
            continue;
        };
        if targets.contains(&t.id()) {
            found.insert(t.id(), g.clone());
        }
        let inputs = t.inputs();
        if inputs.is_empty() {
            continue;
        }
        let local = ops::backward(t, &g)?;
        for (input, gi) in inputs.iter().zip(local) {
            let Some(gi) = gi else { continue };
            if leads.contains(&input.id()) {
                check_shape(t, input, &gi)?;
                accumulate(&mut grads, input.id(), gi)?;
            }
        }
    }
    Ok(found)
}

/// Every gradient has its input's shape (the lecture's shape convention).
fn check_shape(node: &Tensor, input: &Tensor, gi: &Tensor) -> Result<()> {
    if gi.shape() != input.shape() {
        return Err(Error::shape_detail(
            "backward",
            input.shape(),
            gi.shape(),
            format!("gradient of {} has the wrong shape", node.node().op.name()),
        ));
    }
    Ok(())
}

/// Nodes reachable from `root` that need a gradient, inputs before users.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    graph::topo_order(&[&root.0], |n| {
        if n.requires_grad() {
            Visit::Expand
        } else {
            Visit::Skip
        }
    })
    .iter()
    .map(Tensor::from_arc)
    .collect()
}

impl Tensor {
    /// Computes the gradient of this scalar with respect to every leaf it
    /// depends on that requires one (parameters, inputs marked with
    /// `requires_grad`), and adds it to that leaf's `grad()`; intermediate
    /// results get none. Nothing is computed until a value is read (or an
    /// optimizer steps). The gradients are built with recording off, so
    /// they are constants; for gradients of gradients use [`grad`] with
    /// `create_graph`. An error for a tensor of more than one element, or
    /// one that depends on nothing that requires grad.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "backward",
                format!("needs a scalar (one element), got shape {:?}", self.shape()),
            ));
        }
        if !self.requires_grad_flag() {
            return Err(Error::invalid(
                "backward",
                "the tensor does not depend on anything that requires grad",
            ));
        }
        let order = topo_order(self);
        no_grad(|| {
            let mut grads: FastMap<u64, Tensor> = FastMap::default();
            grads.insert(
                self.id(),
                Tensor::ones(self.shape(), self.dtype(), &self.device()),
            );
            for t in order.iter().rev() {
                let Some(g) = grads.remove(&t.id()) else {
                    continue;
                };
                let inputs = t.inputs();
                if inputs.is_empty() {
                    let total = match t.grad() {
                        Some(prev) => prev.add(&g)?,
                        None => g,
                    };
                    t.set_grad(Some(total));
                    continue;
                }
                let local = ops::backward(t, &g)?;
                for (input, gi) in inputs.iter().zip(local) {
                    let Some(gi) = gi else { continue };
                    if !input.requires_grad_flag() {
                        continue;
                    }
                    check_shape(t, input, &gi)?;
                    let sum = match grads.remove(&input.id()) {
                        Some(prev) => prev.add(&gi)?,
                        None => gi,
                    };
                    grads.insert(input.id(), sum);
                }
            }
            Ok(())
        })
    }
}
