//! Lowers a pending subgraph to a `Plan`.
//!
//! Walking the nodes in topological order, each node gets a value:
//! a slot (materialized), a strided view of a slot (permute, expand), a
//! constant, or a *pending* element-wise expression that its single consumer
//! may absorb. A matmul is pending too, with its accumulator as `acc`, so the
//! element-wise ops after it (bias, activation, the backward Hadamard
//! product, an SGD update) become its epilogue; so is a reduction (a bias
//! gradient and its SGD update are one launch). A node read by several
//! consumers is materialized once — that is how each δ is computed once and
//! shared by ∂W, ∂b and ∂x. With fusion on, the softmax cross-entropy's
//! gradient joins the launch of its forward (same logits and labels): one
//! kernel, two outputs. A sparse update's rows scaled by a one-element
//! rate (`rows · lr`, the learning rate as data) leave the multiply to the
//! in-place kernel (`rows_fold`).

use super::{Goal, NodeDesc, Ref};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Epilogue, Expr, Kernel, Launch, Op, Plan, Slot, SlotId, SlotKind, View};

/// Element-wise work not yet emitted, so that its one consumer can absorb
/// it; with a `producer`, the work is that kernel's epilogue (`Expr::Acc`
/// is its accumulator).
#[derive(Clone, Debug)]
struct Pending {
    expr: Expr,
    inputs: Vec<View>,
    /// A `Kernel::Matmul` or `Kernel::Reduce` whose epilogue and output are
    /// filled when emitted.
    producer: Option<Kernel>,
    fused: Vec<String>,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            expr: Expr::Acc,
            inputs: vec![],
            producer: None,
            fused: vec![],
        }
    }
}

/// Where intermediate values go (liveness assigns the buffer later).
const TEMP: SlotKind = SlotKind::Temp { buffer: 0 };

#[derive(Clone, Debug)]
enum Val {
    Slot(SlotId),
    /// A strided view (strides over the node's own shape).
    View(View),
    Const(f64),
    Pending(Pending),
}

pub(crate) struct Lowering<'a> {
    nodes: &'a [NodeDesc],
    input_meta: &'a [(Vec<usize>, DType)],
    fuse: bool,
    slots: Vec<Slot>,
    launches: Vec<Launch>,
    vals: Vec<Option<Val>>,
    consumers: Vec<usize>,
    input_slots: Vec<SlotId>,
    /// Constants that had to become buffers (e.g. a loss's seed gradient):
    /// (value, dtype) per extra input, after the graph's own inputs.
    pub const_inputs: Vec<(f64, DType)>,
}

fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Strides of a view of `shape` (with `strides`) broadcast to `target`.
fn broadcast_strides(strides: &[usize], shape: &[usize], target: &[usize]) -> Vec<usize> {
    let off = target.len() - shape.len().min(target.len());
    (0..target.len())
        .map(|d| {
            if d < off {
                0
            } else {
                let sd = d - off;
                if shape[sd] == 1 && target[d] != 1 {
                    0
                } else {
                    strides[sd]
                }
            }
        })
        .collect()
}

impl<'a> Lowering<'a> {
    pub fn new(
        nodes: &'a [NodeDesc],
        input_meta: &'a [(Vec<usize>, DType)],
        fuse: bool,
    ) -> Lowering<'a> {
        let mut consumers = vec![0; nodes.len()];
        for n in nodes {
            for r in &n.inputs {
                if let Ref::Node(i) = r {
                    consumers[*i] += 1;
                }
            }
        }
        let mut slots = Vec::new();
        let mut input_slots = Vec::new();
        for (k, (shape, dtype)) in input_meta.iter().enumerate() {
            input_slots.push(slots.len());
            slots.push(Slot {
                len: shape.iter().product(),
                dtype: *dtype,
                kind: SlotKind::Input(k),
            });
        }
        Lowering {
            nodes,
            input_meta,
            fuse,
            slots,
            launches: Vec::new(),
            vals: vec![None; nodes.len()],
            consumers,
            input_slots,
            const_inputs: Vec::new(),
        }
    }

    pub fn run(mut self, goals: &[Goal]) -> Result<(Plan, Vec<(f64, DType)>)> {
        // Goals count as consumers so that their nodes are materialized
        // (outputs first: an output is never folded away).
        for g in goals {
            if let Goal::Output { node, .. } = g {
                let c = self.consumers.get_mut(*node).ok_or_else(|| {
                    Error::invalid("scheduler", format!("goal names node {node}"))
                })?;
                *c += 2;
            }
        }
        let folds: Vec<Option<(Ref, Ref)>> = goals.iter().map(|g| self.rows_fold(g)).collect();
        for (g, fold) in goals.iter().zip(&folds) {
            if let Goal::Rows { ids, rows, .. } = g {
                let (rows, factor) = fold.map_or((*rows, None), |(r, f)| (r, Some(f)));
                for r in [*ids, rows].into_iter().chain(factor) {
                    if let Ref::Node(i) = r {
                        self.consumers[i] += 2;
                    }
                }
            }
        }
        // A folded product that nothing else reads is never computed.
        let skipped: Vec<usize> = goals
            .iter()
            .zip(&folds)
            .filter_map(|(g, f)| match (g, f) {
                (
                    Goal::Rows {
                        rows: Ref::Node(i), ..
                    },
                    Some(_),
                ) if self.consumers[*i] == 0 => Some(*i),
                _ => None,
            })
            .collect();
        for i in 0..self.nodes.len() {
            if skipped.contains(&i) {
                continue;
            }
            let v = self.lower_node(i)?;
            let keep_pending = self.fuse && self.consumers[i] == 1;
            self.vals[i] = Some(v);
            if !keep_pending && matches!(self.vals[i], Some(Val::Pending(_))) {
                self.materialize(Ref::Node(i), SlotKind::Temp { buffer: 0 })?;
            }
        }
        let mut n_outputs = 0;
        let mut in_place = Vec::new();
        for (g, fold) in goals.iter().zip(folds) {
            match g {
                Goal::Output { node, k } => {
                    self.materialize_output(*node, *k)?;
                    n_outputs = n_outputs.max(k + 1);
                }
                Goal::Rows {
                    target,
                    ids,
                    rows,
                    scale,
                } => {
                    let rows = fold.map_or(*rows, |(r, _)| r);
                    let factor = match fold {
                        Some((_, f)) => Some(self.materialize(f, TEMP)?),
                        None => None,
                    };
                    let src = self.materialize(rows, SlotKind::Temp { buffer: 0 })?;
                    let ids = self.materialize(*ids, SlotKind::Temp { buffer: 0 })?;
                    let (shape, _) = &self.input_meta[*target];
                    let mut fused = Vec::new();
                    if factor.is_some() {
                        fused.push("mul".to_string());
                    }
                    fused.push("sparse row update".to_string());
                    in_place.push(Launch {
                        kernel: Kernel::IndexAddInPlace {
                            src,
                            ids,
                            scale: scale.to_bits(),
                            factor,
                            rows: shape[0],
                            dim: shape.get(1).copied().unwrap_or(1),
                            n: self.slots[ids].len,
                            out: self.input_slots[*target],
                        },
                        fused,
                    });
                }
            }
        }
        // In-place updates go last: every other reader of the parameter
        // has run by then.
        self.launches.extend(in_place);
        let n_inputs = self.input_meta.len() + self.const_inputs.len();
        let n_temp_buffers = super::liveness::assign_buffers(&mut self.slots, &self.launches);
        Ok((
            Plan {
                id: 0,
                slots: self.slots,
                launches: self.launches,
                n_inputs,
                n_outputs,
                n_temp_buffers,
            },
            self.const_inputs,
        ))
    }

    /// For a sparse update whose rows are `x · f` with `f` one element (a
    /// learning rate given as data) and read by nothing else, `(x, f)`: the
    /// in-place kernel multiplies by `f` itself, which saves a launch and a
    /// pass over the rows. Only where the constant scale is ±1, so that
    /// `scale · f` is exact and the update rounds as `x · f` would.
    fn rows_fold(&self, g: &Goal) -> Option<(Ref, Ref)> {
        let Goal::Rows {
            rows: Ref::Node(i),
            scale,
            ..
        } = g
        else {
            return None;
        };
        let nd = &self.nodes[*i];
        if !self.fuse
            || scale.abs() != 1.0
            || self.consumers[*i] != 0
            || !matches!(nd.op, Op::Binary(BinaryOp::Mul))
        {
            return None;
        }
        let one = |r: Ref| {
            self.shape_of(r).iter().product::<usize>() == 1 && self.dtype_of(r) == nd.dtype
        };
        match nd.inputs[..] {
            [x, f] if one(f) && self.shape_of(x) == nd.shape.as_slice() => Some((x, f)),
            [f, x] if one(f) && self.shape_of(x) == nd.shape.as_slice() => Some((x, f)),
            _ => None,
        }
    }

    fn shape_of(&self, r: Ref) -> &[usize] {
        match r {
            Ref::Node(i) => &self.nodes[i].shape,
            Ref::Input(k) => &self.input_meta[k].0,
        }
    }

    fn dtype_of(&self, r: Ref) -> DType {
        match r {
            Ref::Node(i) => self.nodes[i].dtype,
            Ref::Input(k) => self.input_meta[k].1,
        }
    }

    fn val(&self, r: Ref) -> Result<Val> {
        match r {
            Ref::Input(k) => Ok(Val::Slot(self.input_slots[k])),
            Ref::Node(i) => self.vals[i]
                .clone()
                .ok_or_else(|| Error::Other(format!("scheduler: node {i} used before lowered"))),
        }
    }

    fn new_slot(&mut self, len: usize, dtype: DType, kind: SlotKind) -> SlotId {
        self.slots.push(Slot { len, dtype, kind });
        self.slots.len() - 1
    }

    fn push(&mut self, kernel: Kernel, fused: Vec<String>) {
        self.launches.push(Launch { kernel, fused });
    }

    /// A buffer holding a constant: an extra plan input, uploaded once.
    fn const_slot(&mut self, v: f64, dtype: DType) -> SlotId {
        if let Some(p) = self
            .const_inputs
            .iter()
            .position(|&(c, d)| c.to_bits() == v.to_bits() && d == dtype)
        {
            return self.input_slots[self.input_meta.len() + p];
        }
        let k = self.input_meta.len() + self.const_inputs.len();
        self.const_inputs.push((v, dtype));
        let s = self.new_slot(1, dtype, SlotKind::Input(k));
        self.input_slots.push(s);
        s
    }

    /// A dense slot holding `r`'s value, emitting a kernel if needed.
    fn materialize(&mut self, r: Ref, kind: SlotKind) -> Result<SlotId> {
        let shape = self.shape_of(r).to_vec();
        let dtype = self.dtype_of(r);
        let slot = match self.val(r)? {
            Val::Slot(s) => return Ok(s),
            Val::Const(v) if shape.iter().product::<usize>() == 1 => self.const_slot(v, dtype),
            Val::Const(v) => {
                let out = self.new_slot(shape.iter().product(), dtype, kind);
                self.push(
                    Kernel::Elementwise {
                        shape,
                        inputs: vec![],
                        expr: Expr::constant(v),
                        out,
                    },
                    vec![format!("fill({v})")],
                );
                out
            }
            Val::View(v) => {
                let out = self.new_slot(shape.iter().product(), dtype, kind);
                self.push(
                    Kernel::Elementwise {
                        shape,
                        inputs: vec![v],
                        expr: Expr::Input(0),
                        out,
                    },
                    vec!["copy (strided)".into()],
                );
                out
            }
            Val::Pending(p) => self.emit_pending(p, &shape, dtype, kind),
        };
        if let Ref::Node(i) = r {
            self.vals[i] = Some(Val::Slot(slot));
        }
        Ok(slot)
    }

    fn materialize_output(&mut self, node: usize, k: usize) -> Result<()> {
        let shape = self.nodes[node].shape.clone();
        let dtype = self.nodes[node].dtype;
        let kind = SlotKind::Output(k);
        match self.val(Ref::Node(node))? {
            Val::Slot(s) if matches!(self.slots[s].kind, SlotKind::Temp { .. }) => {
                // Produced by this plan: promote the slot itself.
                self.slots[s].kind = kind;
            }
            Val::Slot(s) => {
                // An input or another output (an alias): copy.
                let out = self.new_slot(shape.iter().product(), dtype, kind);
                let strides = contiguous(&shape);
                self.push(
                    Kernel::Elementwise {
                        shape,
                        inputs: vec![View {
                            slot: s,
                            strides,
                            offset: 0,
                        }],
                        expr: Expr::Input(0),
                        out,
                    },
                    vec!["copy".into()],
                );
            }
            Val::Const(v) => {
                // Its own slot: `materialize` would hand back the shared
                // one-element constant input for a one-element constant.
                let out = self.new_slot(shape.iter().product(), dtype, kind);
                self.push(
                    Kernel::Elementwise {
                        shape,
                        inputs: vec![],
                        expr: Expr::constant(v),
                        out,
                    },
                    vec![format!("fill({v})")],
                );
            }
            _ => {
                self.materialize(Ref::Node(node), kind)?;
            }
        }
        Ok(())
    }

    fn emit_pending(
        &mut self,
        p: Pending,
        shape: &[usize],
        dtype: DType,
        kind: SlotKind,
    ) -> SlotId {
        let out = self.new_slot(shape.iter().product(), dtype, kind);
        let (expr, inputs) = dedupe_inputs(p.expr, p.inputs);
        let kernel = match p.producer {
            Some(Kernel::Matmul {
                m,
                k,
                n,
                a,
                b,
                trans_a,
                trans_b,
                ..
            }) => Kernel::Matmul {
                m,
                k,
                n,
                a,
                b,
                trans_a,
                trans_b,
                epilogue: (expr != Expr::Acc).then_some(Epilogue { inputs, expr }),
                out,
            },
            Some(reduce @ Kernel::Reduce { .. }) => {
                return self.emit_reduce(reduce, expr, inputs, shape, out, p.fused);
            }
            _ => Kernel::Elementwise {
                shape: shape.to_vec(),
                inputs,
                expr,
                out,
            },
        };
        self.push(kernel, p.fused);
        out
    }

    /// A reduction into `out` with `expr` over `inputs` as its epilogue.
    /// The epilogue reads its views over [outer, inner]; when no two
    /// strides describe one of them, the reduction and the element-wise work
    /// are two launches.
    fn emit_reduce(
        &mut self,
        reduce: Kernel,
        expr: Expr,
        inputs: Vec<View>,
        shape: &[usize],
        out: SlotId,
        fused: Vec<String>,
    ) -> SlotId {
        let Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            ..
        } = reduce
        else {
            return out;
        };
        let flat: Option<Vec<View>> = inputs
            .iter()
            .map(|v| view_2d(v, shape, outer, inner))
            .collect();
        let with = |epilogue, out| Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            epilogue,
            out,
        };
        let kernel = match flat {
            _ if expr == Expr::Acc => with(None, out),
            Some(flat) => with(Some(Epilogue { inputs: flat, expr }), out),
            None => {
                let acc = self.new_slot(outer * inner, self.slots[out].dtype, TEMP);
                self.push(with(None, acc), vec![op.name().to_string()]);
                let mut inputs = inputs;
                inputs.push(View::dense(acc, shape));
                let expr = replace_acc(expr, &Expr::Input(inputs.len() - 1));
                Kernel::Elementwise {
                    shape: shape.to_vec(),
                    inputs,
                    expr,
                    out,
                }
            }
        };
        self.push(kernel, fused);
        out
    }

    /// `r` as an operand of an element-wise node of shape `target`.
    /// `reserve`: inputs the caller will still add after this operand.
    fn operand(
        &mut self,
        r: Ref,
        target: &[usize],
        acc: &mut Pending,
        reserve: usize,
    ) -> Result<Expr> {
        let shape = self.shape_of(r).to_vec();
        let view = match self.val(r)? {
            Val::Const(v) => return Ok(Expr::constant(v)),
            Val::Pending(p)
                if shape == target
                    && !(p.producer.is_some() && acc.producer.is_some())
                    && fits(acc, &p, reserve) =>
            {
                let base = acc.inputs.len();
                acc.inputs.extend(p.inputs);
                acc.fused.extend(p.fused);
                if p.producer.is_some() {
                    acc.producer = p.producer;
                }
                return Ok(p.expr.map_inputs(&|i| i + base));
            }
            Val::Pending(_) | Val::Slot(_) => {
                let s = self.materialize(r, SlotKind::Temp { buffer: 0 })?;
                View {
                    slot: s,
                    strides: contiguous(&shape),
                    offset: 0,
                }
            }
            Val::View(v) => v,
        };
        acc.inputs.push(View {
            slot: view.slot,
            strides: broadcast_strides(&view.strides, &shape, target),
            offset: view.offset,
        });
        Ok(Expr::Input(acc.inputs.len() - 1))
    }

    /// A matmul operand: a dense slot, or the transpose view of one.
    fn matmul_operand(&mut self, r: Ref) -> Result<(SlotId, bool)> {
        let shape = self.shape_of(r).to_vec();
        if let Val::View(v) = self.val(r)?
            && v.strides == [1, shape[0]]
            && v.offset == 0
        {
            return Ok((v.slot, true));
        }
        Ok((self.materialize(r, SlotKind::Temp { buffer: 0 })?, false))
    }

    fn lower_node(&mut self, i: usize) -> Result<Val> {
        let nd = &self.nodes[i];
        let (op, ins, shape, dtype) =
            (nd.op.clone(), nd.inputs.clone(), nd.shape.clone(), nd.dtype);
        let name = op.name().into_owned();
        Ok(match op {
            Op::Leaf => return Err(Error::Other("scheduler: unrealized leaf".into())),
            Op::Fill(v) => Val::Const(v),
            Op::Detach => self.val(ins[0])?,
            Op::Reshape | Op::Permute(_) | Op::Expand | Op::Narrow { .. } => {
                self.movement(&op, ins[0], &shape)?
            }
            Op::Unary(_) | Op::Binary(_) | Op::Where => {
                self.elementwise(&op, &ins, &shape, name)?
            }
            Op::Matmul => self.matmul(ins[0], ins[1], &shape)?,
            Op::Reduce(..) | Op::Pad { .. } | Op::ArgMax { .. } => {
                self.along_axis(&op, ins[0], &shape, dtype, name)?
            }
            _ => {
                let slots: Vec<SlotId> = ins
                    .iter()
                    .map(|&r| self.materialize(r, TEMP))
                    .collect::<Result<_>>()?;
                let in_shapes: Vec<Vec<usize>> =
                    ins.iter().map(|&r| self.shape_of(r).to_vec()).collect();
                let out = self.new_slot(shape.iter().product(), dtype, TEMP);
                let kernel = special_kernel(&op, &slots, &in_shapes, &shape, out)?;
                if self.fuse && self.join_xent_forward(&kernel, &name) {
                    return Ok(Val::Slot(out));
                }
                self.push(kernel, vec![name]);
                Val::Slot(out)
            }
        })
    }

    /// A unary, binary or `where` op: pending work over its operands,
    /// absorbing those that are pending themselves.
    fn elementwise(&mut self, op: &Op, ins: &[Ref], shape: &[usize], name: String) -> Result<Val> {
        let mut p = Pending::new();
        let mut args = Vec::with_capacity(ins.len());
        for (j, &r) in ins.iter().enumerate() {
            // Room is kept for the operands still to come.
            args.push(self.operand(r, shape, &mut p, ins.len() - 1 - j)?);
        }
        let mut args = args.into_iter();
        let mut next = || {
            args.next()
                .ok_or_else(|| Error::Other(format!("scheduler: {name} lacks an operand")))
        };
        p.expr = match op {
            Op::Unary(u) => Expr::unary(*u, next()?),
            Op::Binary(b) => Expr::binary(*b, next()?, next()?),
            _ => Expr::select(next()?, next()?, next()?),
        };
        p.fused.push(name);
        Ok(Val::Pending(p))
    }

    /// A reduction (pending, so that an element-wise consumer such as an
    /// SGD update becomes its epilogue), a pad or an arg-max along one axis
    /// of `input`, seen as `[outer, len, inner]`.
    fn along_axis(
        &mut self,
        op: &Op,
        input: Ref,
        shape: &[usize],
        dtype: DType,
        name: String,
    ) -> Result<Val> {
        let in_shape = self.shape_of(input).to_vec();
        let axis = match op {
            Op::Reduce(_, axis) | Op::Pad { axis, .. } | Op::ArgMax { axis, .. } => *axis,
            _ => return Err(Error::Other("scheduler: not an axis op".into())),
        };
        let (outer, len, inner) = (
            in_shape[..axis].iter().product(),
            in_shape[axis],
            in_shape[axis + 1..].iter().product(),
        );
        let input = self.materialize(input, TEMP)?;
        let kernel = |out| match *op {
            Op::Reduce(rop, _) => Kernel::Reduce {
                op: rop,
                input,
                outer,
                len,
                inner,
                epilogue: None,
                out,
            },
            Op::Pad { before, .. } => Kernel::Pad {
                input,
                outer,
                len,
                inner,
                before,
                total: shape[axis],
                out,
            },
            _ => Kernel::ArgMax {
                input,
                outer,
                len,
                inner,
                min: matches!(op, Op::ArgMax { min: true, .. }),
                out,
            },
        };
        if let Op::Reduce(..) = op {
            return Ok(Val::Pending(Pending {
                expr: Expr::Acc,
                inputs: vec![],
                producer: Some(kernel(0)),
                fused: vec![name],
            }));
        }
        let out = self.new_slot(shape.iter().product(), dtype, TEMP);
        self.push(kernel(out), vec![name]);
        Ok(Val::Slot(out))
    }

    /// A softmax cross-entropy gradient joins the launch of its forward
    /// when that launch reads the same logits and labels and the upstream
    /// gradient is already written there: the launch becomes one
    /// `SoftmaxXentWithGrad` writing both. Returns whether it did.
    fn join_xent_forward(&mut self, k: &Kernel, name: &str) -> bool {
        let Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            out: grad_out,
        } = *k
        else {
            return false;
        };
        let written_at = |launches: &[Launch], slot: SlotId| {
            launches
                .iter()
                .position(|l| l.kernel.outputs().contains(&slot))
        };
        let Some(at) = self.launches.iter().position(|l| {
            matches!(l.kernel, Kernel::SoftmaxXent { logits: x, labels: y, .. }
                if x == logits && y == labels)
        }) else {
            return false;
        };
        let grad_ready = match self.slots[grad].kind {
            SlotKind::Input(_) => true,
            _ => written_at(&self.launches, grad).is_some_and(|w| w < at),
        };
        if !grad_ready {
            return false;
        }
        let Kernel::SoftmaxXent { out, .. } = self.launches[at].kernel else {
            return false;
        };
        let l = &mut self.launches[at];
        l.kernel = Kernel::SoftmaxXentWithGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            out,
            grad_out,
        };
        l.fused.push(name.to_string());
        true
    }

    /// Reshape, permute, expand and narrow: a constant stays one; permute,
    /// expand and narrow become strided views (no data moves; narrow adds
    /// an offset), and so does a reshape of a view that only adds or drops
    /// axes of size 1; any other reshape needs a dense slot. Narrowing
    /// pending element-wise work narrows the views it reads, so the work
    /// stays fusable and runs only over the slice.
    fn movement(&mut self, op: &Op, input: Ref, shape: &[usize]) -> Result<Val> {
        let in_shape = self.shape_of(input).to_vec();
        let val = self.val(input)?;
        if let Val::Const(v) = val {
            return Ok(Val::Const(v));
        }
        if let (Op::Reshape, Val::View(v)) = (op, &val)
            && let Some(strides) = unit_axes_reshape(&v.strides, &in_shape, shape)
        {
            return Ok(Val::View(View {
                slot: v.slot,
                strides,
                offset: v.offset,
            }));
        }
        if let (Op::Narrow { axis, start }, Val::Pending(p)) = (op, &val)
            && p.producer.is_none()
            && self.fuse
        {
            let mut p = p.clone();
            for v in &mut p.inputs {
                v.offset += start * v.strides[*axis];
            }
            p.fused.push(op.name().into_owned());
            return Ok(Val::Pending(p));
        }
        let view = match val {
            Val::View(v) if !matches!(op, Op::Reshape) => v,
            _ => {
                let slot = self.materialize(input, TEMP)?;
                if matches!(op, Op::Reshape) {
                    return Ok(Val::Slot(slot));
                }
                View {
                    slot,
                    strides: contiguous(&in_shape),
                    offset: 0,
                }
            }
        };
        let (strides, offset) = match op {
            Op::Permute(perm) => (perm.iter().map(|&p| view.strides[p]).collect(), view.offset),
            Op::Narrow { axis, start } => (
                view.strides.clone(),
                view.offset + start * view.strides[*axis],
            ),
            _ => (
                broadcast_strides(&view.strides, &in_shape, shape),
                view.offset,
            ),
        };
        Ok(Val::View(View {
            slot: view.slot,
            strides,
            offset,
        }))
    }

    /// A pending matmul (its element-wise consumers may become its epilogue).
    fn matmul(&mut self, a: Ref, b: Ref, shape: &[usize]) -> Result<Val> {
        let k = self.shape_of(a)[1];
        let (a, trans_a) = self.matmul_operand(a)?;
        let (b, trans_b) = self.matmul_operand(b)?;
        let fused = vec![format!(
            "matmul{}{}",
            if trans_a { " Aᵀ" } else { "" },
            if trans_b { " Bᵀ" } else { "" }
        )];
        Ok(Val::Pending(Pending {
            expr: Expr::Acc,
            inputs: vec![],
            producer: Some(Kernel::Matmul {
                m: shape[0],
                k,
                n: shape[1],
                a,
                b,
                trans_a,
                trans_b,
                epilogue: None,
                out: 0,
            }),
            fused,
        }))
    }
}

/// The strides, over `shape`, of a view that has `strides` over
/// `in_shape`, when the two shapes differ only by axes of size 1 (their
/// stride never matters); `None` for any other reshape.
fn unit_axes_reshape(strides: &[usize], in_shape: &[usize], shape: &[usize]) -> Option<Vec<usize>> {
    let not_one = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    if not_one(in_shape) != not_one(shape) {
        return None;
    }
    let mut kept = in_shape
        .iter()
        .zip(strides)
        .filter(|(d, _)| **d != 1)
        .map(|(_, s)| *s);
    Some(
        shape
            .iter()
            .map(|&d| if d == 1 { 0 } else { kept.next().unwrap_or(0) })
            .collect(),
    )
}

/// The kernels that are neither element-wise, matmul nor reduce.
fn special_kernel(
    op: &Op,
    s: &[SlotId],
    shapes: &[Vec<usize>],
    shape: &[usize],
    out: SlotId,
) -> Result<Kernel> {
    Ok(match op {
        Op::Gather => Kernel::Gather {
            table: s[0],
            ids: s[1],
            rows: shapes[0][0],
            dim: shapes[0][1],
            n: shapes[1][0],
            out,
        },
        Op::ScatterAdd => Kernel::ScatterAdd {
            src: s[0],
            ids: s[1],
            rows: shape[0],
            dim: shape[1],
            n: shapes[1][0],
            out,
        },
        Op::SoftmaxXent => Kernel::SoftmaxXent {
            logits: s[0],
            labels: s[1],
            batch: shapes[0][0],
            classes: shapes[0][1],
            out,
        },
        Op::SoftmaxXentGrad => Kernel::SoftmaxXentGrad {
            logits: s[0],
            labels: s[1],
            grad: s[2],
            batch: shapes[0][0],
            classes: shapes[0][1],
            out,
        },
        Op::LogSoftmax => Kernel::LogSoftmax {
            input: s[0],
            rows: shapes[0][0],
            cols: shapes[0][1],
            out,
        },
        Op::LogisticLoss => Kernel::LogisticLoss {
            logits: s[0],
            targets: s[1],
            n: shapes[0].iter().product(),
            out,
        },
        Op::LogisticLossGrad => Kernel::LogisticLossGrad {
            logits: s[0],
            targets: s[1],
            grad: s[2],
            n: shapes[0].iter().product(),
            out,
        },
        Op::Custom { op, backward_input } => {
            let n_forward = if backward_input.is_some() {
                shapes.len() - 1
            } else {
                shapes.len()
            };
            Kernel::Custom {
                op: op.clone(),
                inputs: s.to_vec(),
                input_shapes: shapes[..n_forward].to_vec(),
                backward_input: *backward_input,
                out_shape: shape.to_vec(),
                out,
            }
        }
        other => {
            return Err(Error::Other(format!(
                "scheduler: no kernel for {}",
                other.name()
            )));
        }
    })
}

/// Storage buffers a fused kernel may read besides its output (and a
/// matmul's two operands): WebGPU guarantees 8 per shader stage.
const MAX_FUSED_INPUTS: usize = 6;
const MAX_EPILOGUE_INPUTS: usize = 4;

/// Whether absorbing `p` into `acc` keeps the kernel within the binding
/// limits, with `reserve` more inputs still to come.
fn fits(acc: &Pending, p: &Pending, reserve: usize) -> bool {
    let limit = if acc.producer.is_some() || p.producer.is_some() {
        MAX_EPILOGUE_INPUTS
    } else {
        MAX_FUSED_INPUTS
    };
    acc.inputs.len() + p.inputs.len() + reserve <= limit
}

/// Merges identical views so that each is loaded once per element.
fn dedupe_inputs(e: Expr, inputs: Vec<View>) -> (Expr, Vec<View>) {
    let mut unique: Vec<View> = Vec::new();
    let mut map = Vec::with_capacity(inputs.len());
    for v in inputs {
        match unique.iter().position(|u| *u == v) {
            Some(p) => map.push(p),
            None => {
                map.push(unique.len());
                unique.push(v);
            }
        }
    }
    (e.map_inputs(&|i| map[i]), unique)
}

/// `e` with the accumulator replaced by `with`.
fn replace_acc(e: Expr, with: &Expr) -> Expr {
    match e {
        Expr::Acc => with.clone(),
        Expr::Unary(op, a) => Expr::unary(op, replace_acc(*a, with)),
        Expr::Binary(op, a, b) => Expr::binary(op, replace_acc(*a, with), replace_acc(*b, with)),
        Expr::Select(c, a, b) => Expr::select(
            replace_acc(*c, with),
            replace_acc(*a, with),
            replace_acc(*b, with),
        ),
        other => other,
    }
}

/// `v`, a view over `shape` (which holds `outer · inner` elements, row
/// major), as a view over `[outer, inner]`: the dimensions up to the first
/// point where their product is `outer` must collapse into one stride, and
/// the rest into another. `None` when they do not.
fn view_2d(v: &View, shape: &[usize], outer: usize, inner: usize) -> Option<View> {
    if outer * inner == 0 {
        return Some(View {
            slot: v.slot,
            strides: vec![0, 0],
            offset: v.offset,
        });
    }
    let mut prefix = 1;
    let mut split = 0;
    while prefix != outer {
        prefix *= *shape.get(split)?;
        split += 1;
    }
    // The stride of a run of dimensions read as one, if they collapse.
    let collapse = |dims: std::ops::Range<usize>| -> Option<usize> {
        let live: Vec<usize> = dims.filter(|&d| shape[d] > 1).collect();
        for w in live.windows(2) {
            if v.strides[w[0]] != v.strides[w[1]] * shape[w[1]] {
                return None;
            }
        }
        Some(live.last().map_or(0, |&d| v.strides[d]))
    };
    Some(View {
        slot: v.slot,
        strides: vec![collapse(0..split)?, collapse(split..shape.len())?],
        offset: v.offset,
    })
}
