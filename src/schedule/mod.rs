//! The scheduler: when a value is needed, the whole pending subgraph
//! (forward, backward and optimizer update of a step) is lowered to one
//! `Plan`, cached by its structure, and replayed on the next step with the
//! same structure, uploading nothing but new inputs.

pub mod explain;
mod key;
mod liveness;
mod lower;
pub mod plan;

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::Storage;
use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use lower::{Goal, Lowering, NodeDesc, Ref};
use plan::Plan;

/// A parameter update performed by a realization.
pub enum Assign {
    /// `target`'s value becomes `value`'s.
    Dense { target: Tensor, value: Tensor },
    /// In place: `target[ids[i], :] += scale · rows[i, :]` (the sparse
    /// embedding update; only the rows the batch touched are written).
    Rows {
        target: Tensor,
        ids: Tensor,
        rows: Tensor,
        scale: f64,
    },
}

thread_local! {
    static FUSION: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with fusion switched on or off (plans for both are cached
/// separately); unfused plans run one launch per primitive op.
pub fn with_fusion<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FUSION.with(|c| c.set(self.0));
        }
    }
    let _r = Restore(FUSION.with(|c| c.replace(on)));
    f()
}

pub fn fusion_enabled() -> bool {
    FUSION.with(|c| c.get())
}

/// Plans kept per process; a new batch size makes a new plan, so the cache
/// is bounded and evicts the least recently used.
const CACHE_CAPACITY: usize = 64;

/// A compiled plan and the constants it takes as extra inputs.
type Compiled = (Arc<Plan>, Vec<(f64, DType)>);

struct Cache {
    plans: HashMap<Vec<u64>, Compiled>,
    order: VecDeque<Vec<u64>>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);
static STATS: Mutex<Stats> = Mutex::new(Stats {
    hits: 0,
    misses: 0,
    evictions: 0,
});
/// Constant buffers (a loss's seed gradient) per device, dtype and value.
static CONSTS: Mutex<Vec<(Device, DType, u64, Storage)>> = Mutex::new(Vec::new());

/// Plan-cache statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub fn stats() -> Stats {
    *STATS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Computes `outputs` that are pending.
pub fn realize(outputs: &[Tensor]) -> Result<()> {
    realize_step(outputs, &[])
}

/// The pending subgraph of a step, gathered from the tensors it must produce.
struct Step {
    /// Unrealized nodes, inputs before users.
    nodes: Vec<Tensor>,
    /// Realized tensors the step reads.
    inputs: Vec<Tensor>,
    refs: HashMap<u64, Ref>,
}

fn collect(roots: &[&Tensor], extra_inputs: &[&Tensor]) -> Step {
    let mut step = Step {
        nodes: vec![],
        inputs: vec![],
        refs: HashMap::new(),
    };
    for t in extra_inputs {
        if !step.refs.contains_key(&t.id()) {
            step.refs.insert(t.id(), Ref::Input(step.inputs.len()));
            step.inputs.push((*t).clone());
        }
    }
    let mut visiting = HashSet::new();
    for root in roots {
        let mut stack = vec![((*root).clone(), false)];
        while let Some((t, expanded)) = stack.pop() {
            if step.refs.contains_key(&t.id()) {
                continue;
            }
            if t.is_realized() {
                step.refs.insert(t.id(), Ref::Input(step.inputs.len()));
                step.inputs.push(t);
                continue;
            }
            if expanded {
                step.refs.insert(t.id(), Ref::Node(step.nodes.len()));
                step.nodes.push(t);
                continue;
            }
            if !visiting.insert(t.id()) {
                continue;
            }
            stack.push((t.clone(), true));
            for i in t.node().inputs.iter().rev() {
                stack.push((i.clone(), false));
            }
        }
    }
    step
}

/// A step gathered and described, ready to be lowered or looked up.
struct Prepared {
    step: Step,
    device: Device,
    goals: Vec<(usize, Goal)>,
    /// Output k is node `out_nodes[k]`.
    out_nodes: Vec<usize>,
    /// Dense assignment targets and the output holding their new value.
    dense_targets: Vec<(Tensor, usize)>,
    /// Dense assignments whose value is already realized.
    immediate: Vec<(Tensor, Storage)>,
    descs: Vec<NodeDesc>,
    input_meta: Vec<(Vec<usize>, DType)>,
}

fn prepare(outputs: &[Tensor], assigns: &[Assign]) -> Result<Option<Prepared>> {
    let pending: Vec<&Tensor> = outputs.iter().filter(|t| !t.is_realized()).collect();
    let mut roots: Vec<&Tensor> = pending.clone();
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
    if roots.is_empty() {
        return Ok(None);
    }
    for t in &targets {
        if !t.is_realized() || !t.node().inputs.is_empty() {
            return Err(Error::invalid(
                "assign",
                "the target must be a realized leaf (a parameter)",
            ));
        }
    }
    let device = roots[0].device();
    for t in roots.iter().chain(&targets) {
        if t.device() != device {
            return Err(Error::Device {
                op: "realize",
                lhs: device.to_string(),
                rhs: t.device().to_string(),
            });
        }
    }
    let step = collect(&roots, &targets);
    let r = |t: &Tensor| step.refs[&t.id()];
    let mut p = Prepared {
        goals: Vec::new(),
        out_nodes: Vec::new(),
        dense_targets: Vec::new(),
        immediate: Vec::new(),
        descs: step
            .nodes
            .iter()
            .map(|t| NodeDesc::from_tensor(t, t.node().inputs.iter().map(r).collect()))
            .collect(),
        input_meta: step
            .inputs
            .iter()
            .map(|t| (t.shape().to_vec(), t.dtype()))
            .collect(),
        device,
        step: Step {
            nodes: vec![],
            inputs: vec![],
            refs: HashMap::new(),
        },
    };
    for t in &pending {
        if let Ref::Node(i) = r(t) {
            p.output_of(i);
        }
    }
    for a in assigns {
        match a {
            Assign::Dense { target, value } => match r(value) {
                Ref::Node(i) => {
                    let k = p.output_of(i);
                    p.dense_targets.push((target.clone(), k));
                }
                Ref::Input(_) => {
                    let s = value
                        .node()
                        .storage()
                        .ok_or_else(|| Error::Other("assign: lost value".into()))?;
                    p.immediate.push((target.clone(), s));
                }
            },
            Assign::Rows {
                target,
                ids,
                rows,
                scale,
            } => {
                let Ref::Input(t) = r(target) else {
                    return Err(Error::invalid("assign", "target is not an input"));
                };
                p.goals.push((
                    0,
                    Goal::Rows {
                        target: t,
                        ids: r(ids),
                        rows: r(rows),
                        scale: *scale,
                    },
                ));
            }
        }
    }
    p.step = step;
    Ok(Some(p))
}

impl Prepared {
    fn output_of(&mut self, node: usize) -> usize {
        if let Some(k) = self.out_nodes.iter().position(|&n| n == node) {
            return k;
        }
        self.out_nodes.push(node);
        let k = self.out_nodes.len() - 1;
        self.goals.push((node, Goal::Output(k)));
        k
    }

    fn lower(&self, fuse: bool) -> Result<(Plan, Vec<(f64, DType)>)> {
        Lowering::new(&self.descs, &self.input_meta, fuse).run(&self.goals)
    }
}

/// Realizes `outputs` and performs `assigns` in one plan (one submission
/// on the GPU).
pub fn realize_step(outputs: &[Tensor], assigns: &[Assign]) -> Result<()> {
    let Some(p) = prepare(outputs, assigns)? else {
        return Ok(());
    };
    let fuse = fusion_enabled();
    let key = key::plan_key(&p.descs, &p.input_meta, &p.goals, fuse);
    let (plan, consts) = lookup_or_lower(&p.device, key, || p.lower(fuse))?;
    let mut storages: Vec<Storage> = p
        .step
        .inputs
        .iter()
        .map(|t| {
            t.node()
                .storage()
                .ok_or_else(|| Error::Other("realize: input lost its value".into()))
        })
        .collect::<Result<_>>()?;
    for (v, dtype) in &consts {
        storages.push(constant(&p.device, *dtype, *v)?);
    }
    let results = if plan.launches.is_empty() && plan.n_outputs == 0 {
        vec![]
    } else {
        p.device.backend().execute(&plan, &storages)?
    };
    let result = |k: usize| {
        results
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Other(format!("realize: plan returned no output {k}")))
    };
    for (k, &node) in p.out_nodes.iter().enumerate() {
        p.step.nodes[node].node().set_storage(result(k)?);
    }
    for (target, k) in &p.dense_targets {
        target.node().set_storage(result(*k)?);
    }
    for (target, s) in p.immediate {
        target.node().set_storage(s);
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

fn lookup_or_lower(
    device: &Device,
    key: Vec<u64>,
    lower: impl FnOnce() -> Result<(Plan, Vec<(f64, DType)>)>,
) -> Result<Compiled> {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(|| Cache {
        plans: HashMap::new(),
        order: VecDeque::new(),
    });
    let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, c)) = cache.plans.get(&key) {
        stats.hits += 1;
        let hit = (p.clone(), c.clone());
        if let Some(pos) = cache.order.iter().position(|k| *k == key)
            && let Some(k) = cache.order.remove(pos)
        {
            cache.order.push_back(k);
        }
        return Ok(hit);
    }
    stats.misses += 1;
    let (mut plan, consts) = lower()?;
    plan.id = NEXT_PLAN.fetch_add(1, Ordering::Relaxed);
    let plan = Arc::new(plan);
    if cache.plans.len() >= CACHE_CAPACITY
        && let Some(old) = cache.order.pop_front()
        && let Some((p, _)) = cache.plans.remove(&old)
    {
        device.backend().forget_plan(p.id);
        stats.evictions += 1;
    }
    cache.order.push_back(key.clone());
    cache.plans.insert(key, (plan.clone(), consts.clone()));
    Ok((plan, consts))
}

fn constant(device: &Device, dtype: DType, v: f64) -> Result<Storage> {
    let mut consts = CONSTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, _, s)) = consts
        .iter()
        .find(|(d, t, b, _)| d == device && *t == dtype && *b == v.to_bits())
    {
        return Ok(s.clone());
    }
    let s = device.backend().upload(&HostData::from_f64(&[v], dtype))?;
    consts.push((device.clone(), dtype, v.to_bits(), s.clone()));
    Ok(s)
}

/// The plan that realizing `outputs` and `assigns` would run (lowered
/// with the current fusion setting, not executed).
pub fn plan_for(outputs: &[Tensor], assigns: &[Assign]) -> Result<Option<Plan>> {
    match prepare(outputs, assigns)? {
        Some(p) => Ok(Some(p.lower(fusion_enabled())?.0)),
        None => Ok(None),
    }
}
