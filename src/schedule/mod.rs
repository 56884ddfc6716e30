//! The scheduler: a pending step (forward, backward and optimizer update),
//! described as a list of graph nodes, is lowered to one `Plan`, cached by
//! its structure and device, and executed; the next step with the same
//! structure replays the cached plan, uploading nothing but new inputs.
//!
//! It knows nodes only through [`NodeDesc`] (op, operands, shape, dtype) and
//! devices only through their backend: the tensor layer above gathers the
//! step and applies the storages it gets back.

mod cache;
pub mod explain;
mod key;
mod liveness;
mod lower;

use std::cell::Cell;

use crate::backend::Storage;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::flags::with_flag;
use crate::ir::{Op, Plan};
pub use cache::{Stats, stats, thread_stats};

/// How a node's operand is referenced: another node of the step, or one
/// of the step's realized inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ref {
    Node(usize),
    Input(usize),
}

/// A graph node to compute: its op, operands, shape and dtype. Operands
/// that are nodes come earlier in the step's list.
#[derive(Clone, Debug)]
pub struct NodeDesc {
    pub op: Op,
    pub inputs: Vec<Ref>,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// What a step must produce beyond its launches.
#[derive(Clone, Debug)]
pub enum Goal {
    /// Node `node` becomes output `k` (outputs are numbered from 0 in
    /// order of first mention).
    Output { node: usize, k: usize },
    /// `target[ids[i], :] += scale · rows[i, :]` in place; `target` is an
    /// input (a parameter). The sparse embedding update.
    Rows {
        target: usize,
        ids: Ref,
        rows: Ref,
        scale: f64,
    },
}

/// A pending step: its nodes (inputs before users), the shapes and dtypes
/// of the realized inputs it reads, and its goals.
#[derive(Clone, Debug, Default)]
pub struct StepDesc {
    pub nodes: Vec<NodeDesc>,
    pub inputs: Vec<(Vec<usize>, DType)>,
    pub goals: Vec<Goal>,
}

impl StepDesc {
    /// Number of outputs the goals ask for.
    pub fn n_outputs(&self) -> usize {
        self.goals
            .iter()
            .filter_map(|g| match g {
                Goal::Output { k, .. } => Some(k + 1),
                Goal::Rows { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }
}

thread_local! {
    static FUSION: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with fusion switched on or off (plans for both are cached
/// separately); unfused plans run one launch per primitive op.
pub fn with_fusion<R>(on: bool, f: impl FnOnce() -> R) -> R {
    with_flag(&FUSION, on, f)
}

pub fn fusion_enabled() -> bool {
    FUSION.with(|c| c.get())
}

/// The plan `step` lowers to with fusion on or off (not cached, not run).
pub fn lower(step: &StepDesc, fuse: bool) -> Result<Plan> {
    Ok(lower::Lowering::new(&step.nodes, &step.inputs, fuse)
        .run(&step.goals)?
        .0)
}

/// Runs `step` on `device` with `inputs` (one storage per entry of
/// `step.inputs`) and returns its outputs in order. The plan comes from the
/// cache when a step of the same structure ran on this device before.
pub fn execute(device: &Device, step: &StepDesc, mut inputs: Vec<Storage>) -> Result<Vec<Storage>> {
    if inputs.len() != step.inputs.len() {
        return Err(Error::invalid(
            "realize",
            format!(
                "the step reads {} inputs, {} given",
                step.inputs.len(),
                inputs.len()
            ),
        ));
    }
    let fuse = fusion_enabled();
    let key = key::plan_key(device.id(), step, fuse);
    let (plan, consts) = cache::lookup_or_lower(device, key, || {
        lower::Lowering::new(&step.nodes, &step.inputs, fuse).run(&step.goals)
    })?;
    for &(v, dtype) in consts.iter() {
        inputs.push(cache::constant(device, dtype, v)?);
    }
    if plan.launches.is_empty() && plan.n_outputs == 0 {
        return Ok(vec![]);
    }
    let outputs = device.backend().execute(&plan, &inputs)?;
    if outputs.len() < step.n_outputs() {
        return Err(Error::Other(format!(
            "realize: the plan returned {} outputs, {} expected",
            outputs.len(),
            step.n_outputs()
        )));
    }
    Ok(outputs)
}
