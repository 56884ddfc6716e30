//! Reverse-mode autodiff. `backward` walks the graph from a scalar in
//! reverse topological order, applying each node's local rule
//! ([downstream] = [upstream] × [local]) and summing gradients where a node
//! feeds several others. The rules build ordinary graph nodes, so the
//! backward pass is planned and fused with the forward.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::graph::{self, Visit, no_grad};
use crate::ops;
use crate::tensor::Tensor;

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
    /// Computes the gradient of this scalar with respect to every tensor it
    /// depends on that requires one, and adds it to that tensor's `grad()`.
    /// Nothing is computed until a value is read (or an optimizer steps).
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
            let mut grads: HashMap<u64, Tensor> = HashMap::new();
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
                    if gi.shape() != input.shape() {
                        return Err(Error::shape_detail(
                            "backward",
                            input.shape(),
                            gi.shape(),
                            format!("gradient of {} has the wrong shape", t.node().op.name()),
                        ));
                    }
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
