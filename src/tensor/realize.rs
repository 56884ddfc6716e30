//! Realization: gathers the pending subgraph a step needs (and the parameter
//! updates it performs), describes it to the scheduler, and puts the
//! storages the scheduler returns into the graph's nodes.

use std::sync::Arc;

use super::Tensor;
use crate::backend::Storage;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::graph::{Node, Visit, topo_order};
use crate::hash::FastMap;
use crate::ir::Plan;
use crate::schedule::{self, Goal, NodeDesc, Ref, StepDesc};

/// A parameter update performed by a realization.
pub enum Assign {
    /// `target`'s value becomes `value`'s.
    Dense {
        /// A realized leaf (a parameter).
        target: Tensor,
        /// Its new value: same shape and dtype, usually pending.
        value: Tensor,
    },
    /// In place: `target[ids[i], :] += scale · rows[i, :]` (the sparse
    /// embedding update; only the rows the batch touched are written).
    Rows {
        /// A realized `[rows, dim]` leaf (an embedding table).
        target: Tensor,
        /// The `n` u32 row ids.
        ids: Tensor,
        /// The `[n, dim]` rows added.
        rows: Tensor,
        /// Their factor (−learning rate for an SGD step).
        scale: f64,
    },
}

/// Computes `outputs` that are pending.
pub fn realize(outputs: &[Tensor]) -> Result<()> {
    realize_step(outputs, &[])
}

/// A step gathered from the graph: the description the scheduler takes,
/// and what to do with its results.
struct Gathered {
    desc: StepDesc,
    device: Device,
    /// The step's pending nodes, in `desc.nodes` order.
    nodes: Vec<Arc<Node>>,
    /// The realized tensors it reads, in `desc.inputs` order.
    inputs: Vec<Arc<Node>>,
    /// Output k is `nodes[out_nodes[k]]`.
    out_nodes: Vec<usize>,
    /// Dense assignment targets and the output holding their new value.
    dense_targets: Vec<(Tensor, usize)>,
    /// Dense assignments whose value is already realized.
    immediate: Vec<(Tensor, Storage)>,
}

impl Gathered {
    fn output_of(&mut self, node: usize) -> usize {
        if let Some(k) = self.out_nodes.iter().position(|&n| n == node) {
            return k;
        }
        self.out_nodes.push(node);
        let k = self.out_nodes.len() - 1;
        self.desc.goals.push(Goal::Output { node, k });
        k
    }
}

/// Checks the assignments and the devices; returns the roots to walk and
/// the assignment targets.
fn roots_of<'a>(
    pending: &[&'a Tensor],
    assigns: &'a [Assign],
) -> Result<(Vec<&'a Tensor>, Vec<&'a Tensor>)> {
    let mut roots: Vec<&Tensor> = pending.to_vec();
    let mut targets: Vec<&Tensor> = Vec::new();
    for a in assigns {
        match a {
            Assign::Dense { target, value } => {
                check_assign(target, value)?;
                targets.push(target);
                roots.push(value);
            }
            Assign::Rows {
                target, ids, rows, ..
            } => {
                targets.push(target);
                roots.push(ids);
                roots.push(rows);
            }
        }
    }
    for t in &targets {
        if !t.is_realized() || !t.0.inputs.is_empty() {
            return Err(Error::invalid(
                "assign",
                "the target must be a realized leaf (a parameter)",
            ));
        }
    }
    if let Some(first) = roots.first() {
        let device = first.device();
        for t in roots.iter().chain(&targets) {
            if t.device() != device {
                return Err(Error::Device {
                    op: "realize",
                    lhs: device.to_string(),
                    rhs: t.device().to_string(),
                });
            }
        }
    }
    Ok((roots, targets))
}

/// Walks the graph from the roots: pending nodes become the step's nodes,
/// realized ones its inputs (assignment targets first).
fn gather(pending: &[&Tensor], assigns: &[Assign]) -> Result<Option<Gathered>> {
    let (roots, targets) = roots_of(pending, assigns)?;
    let Some(first) = roots.first() else {
        return Ok(None);
    };
    let device = first.device();
    let mut refs: FastMap<u64, Ref> = FastMap::default();
    let mut inputs: Vec<Arc<Node>> = Vec::new();
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    for t in &targets {
        if let std::collections::hash_map::Entry::Vacant(e) = refs.entry(t.id()) {
            e.insert(Ref::Input(inputs.len()));
            inputs.push(t.0.clone());
        }
    }
    let root_nodes: Vec<&Arc<Node>> = roots.iter().map(|t| &t.0).collect();
    let order = topo_order(&root_nodes, |n| {
        if refs.contains_key(&n.id) || n.is_realized() {
            Visit::Source
        } else {
            Visit::Expand
        }
    });
    for n in order {
        if refs.contains_key(&n.id) {
            continue;
        }
        if n.is_realized() {
            refs.insert(n.id, Ref::Input(inputs.len()));
            inputs.push(n);
        } else {
            refs.insert(n.id, Ref::Node(nodes.len()));
            nodes.push(n);
        }
    }
    let r = |n: &Arc<Node>| refs[&n.id];
    let desc = StepDesc {
        nodes: nodes
            .iter()
            .map(|n| NodeDesc {
                op: n.op.clone(),
                inputs: n.inputs.iter().map(r).collect(),
                shape: n.shape.clone(),
                dtype: n.dtype,
            })
            .collect(),
        inputs: inputs.iter().map(|n| (n.shape.clone(), n.dtype)).collect(),
        goals: Vec::new(),
    };
    let mut g = Gathered {
        desc,
        device,
        nodes,
        inputs,
        out_nodes: Vec::new(),
        dense_targets: Vec::new(),
        immediate: Vec::new(),
    };
    for t in pending {
        if let Ref::Node(i) = r(&t.0) {
            g.output_of(i);
        }
    }
    add_assigns(&mut g, assigns, &r)?;
    Ok(Some(g))
}

fn add_assigns(g: &mut Gathered, assigns: &[Assign], r: &dyn Fn(&Arc<Node>) -> Ref) -> Result<()> {
    for a in assigns {
        match a {
            Assign::Dense { target, value } => match r(&value.0) {
                Ref::Node(i) => {
                    let k = g.output_of(i);
                    g.dense_targets.push((target.clone(), k));
                }
                Ref::Input(_) => {
                    let s = value
                        .0
                        .storage()
                        .ok_or_else(|| Error::Other("assign: lost value".into()))?;
                    g.immediate.push((target.clone(), s));
                }
            },
            Assign::Rows {
                target,
                ids,
                rows,
                scale,
            } => {
                let Ref::Input(t) = r(&target.0) else {
                    return Err(Error::invalid("assign", "target is not an input"));
                };
                g.desc.goals.push(Goal::Rows {
                    target: t,
                    ids: r(&ids.0),
                    rows: r(&rows.0),
                    scale: *scale,
                });
            }
        }
    }
    Ok(())
}

/// Realizes `outputs` and performs `assigns` in one plan (one submission
/// on the GPU).
pub fn realize_step(outputs: &[Tensor], assigns: &[Assign]) -> Result<()> {
    let pending: Vec<&Tensor> = outputs.iter().filter(|t| !t.is_realized()).collect();
    let Some(g) = gather(&pending, assigns)? else {
        return Ok(());
    };
    let storages: Vec<Storage> = g
        .inputs
        .iter()
        .map(|n| {
            n.storage()
                .ok_or_else(|| Error::Other("realize: input lost its value".into()))
        })
        .collect::<Result<_>>()?;
    let results = schedule::execute(&g.device, &g.desc, storages)?;
    let result = |k: usize| {
        results
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Other(format!("realize: plan returned no output {k}")))
    };
    for (k, &node) in g.out_nodes.iter().enumerate() {
        g.nodes[node].set_storage(result(k)?);
    }
    for (target, k) in &g.dense_targets {
        target.0.set_storage(result(*k)?);
    }
    for (target, s) in g.immediate {
        target.0.set_storage(s);
    }
    Ok(())
}

fn check_assign(target: &Tensor, value: &Tensor) -> Result<()> {
    if target.shape() != value.shape() || target.dtype() != value.dtype() {
        return Err(Error::shape_detail(
            "assign",
            target.shape(),
            value.shape(),
            format!("{} vs {}", target.dtype(), value.dtype()),
        ));
    }
    Ok(())
}

/// The plan that realizing `outputs` and `assigns` would run (lowered
/// with the current fusion setting, not executed).
pub fn plan_for(outputs: &[Tensor], assigns: &[Assign]) -> Result<Option<Plan>> {
    let pending: Vec<&Tensor> = outputs.iter().filter(|t| !t.is_realized()).collect();
    match gather(&pending, assigns)? {
        Some(g) => Ok(Some(schedule::lower(&g.desc, schedule::fusion_enabled())?)),
        None => Ok(None),
    }
}
