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
    /// Index into the step's `nodes`.
    Node(usize),
    /// Index into the step's `inputs` (realized storages).
    Input(usize),
}

/// A graph node to compute: its op, operands, shape and dtype. Operands
/// that are nodes come earlier in the step's list.
#[derive(Clone, Debug)]
pub struct NodeDesc {
    /// The primitive op.
    pub op: Op,
    /// Its operands, in the op's order.
    pub inputs: Vec<Ref>,
    /// The result's shape.
    pub shape: Vec<usize>,
    /// The result's dtype.
    pub dtype: DType,
}

/// What a step must produce beyond its launches.
#[derive(Clone, Debug)]
pub enum Goal {
    /// Node `node` becomes output `k` (outputs are numbered from 0 in
    /// order of first mention).
    Output {
        /// Index into the step's `nodes`.
        node: usize,
        /// The output's number.
        k: usize,
    },
    /// `target[ids[i], :] += scale · rows[i, :]` in place; `target` is an
    /// input (a parameter). The sparse embedding update.
    Rows {
        /// Index of the parameter in the step's `inputs`; `[rows, dim]`.
        target: usize,
        /// The `n` u32 row ids.
        ids: Ref,
        /// The `[n, dim]` rows added.
        rows: Ref,
        /// Their factor (−learning rate for an SGD step).
        scale: f64,
    },
}

/// A pending step: its nodes (inputs before users), the shapes and dtypes
/// of the realized inputs it reads, and its goals.
#[derive(Clone, Debug, Default)]
pub struct StepDesc {
    /// The nodes to compute, each after its operands.
    pub nodes: Vec<NodeDesc>,
    /// Shape and dtype of each realized input, in `Ref::Input` order.
    pub inputs: Vec<(Vec<usize>, DType)>,
    /// What the step must produce.
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

/// Whether plans are fused on this thread (true unless inside
/// `with_fusion(false, …)`).
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
