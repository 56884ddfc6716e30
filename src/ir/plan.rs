//! The plan: what the scheduler hands a backend. A list of kernel launches
//! over numbered buffer slots; every slot is a dense, row-major array.
//!
//! Both backends execute the same `Plan`, so a fused plan and an unfused one
//! can be compared on either.

use std::sync::Arc;

use super::custom::CustomOp;
use super::expr::Expr;
use crate::dtype::DType;

/// Index of a buffer slot in a plan.
pub type SlotId = usize;

/// Where a slot's buffer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// The `i`-th input of the plan (a realized tensor: parameter, data).
    Input(usize),
    /// Scratch space owned by the plan; slots with disjoint lifetimes share
    /// a `buffer` number (assigned by liveness).
    Temp { buffer: usize },
    /// The `i`-th output of the plan (a tensor the caller asked for).
    Output(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    pub len: usize,
    pub dtype: DType,
    pub kind: SlotKind,
}

/// A read of a slot by an element-wise kernel whose output has shape
/// `shape`: element `idx` (a multi-index over `shape`) is read at
/// `offset + sum(idx[d] * strides[d])`. A stride of 0 broadcasts; permuted
/// strides transpose; an offset starts a slice (`narrow`) inside the slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct View {
    pub slot: SlotId,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl View {
    /// The dense, row-major view of a whole slot of shape `shape`.
    pub fn dense(slot: SlotId, shape: &[usize]) -> View {
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        View {
            slot,
            strides,
            offset: 0,
        }
    }

    /// The largest element index read over `shape`, or `None` for an empty
    /// shape.
    pub fn reach(&self, shape: &[usize]) -> Option<usize> {
        if shape.contains(&0) {
            return None;
        }
        Some(
            self.offset
                + shape
                    .iter()
                    .zip(&self.strides)
                    .map(|(&d, &s)| (d - 1) * s)
                    .sum::<usize>(),
        )
    }
}

/// A reduction along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    /// NaN-propagating maximum.
    Max,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
        }
    }
}

/// Element-wise work applied to a matmul's or a reduction's result before
/// it is stored: `out[r, c] = expr(acc = (A·B)[r, c], inputs viewed over
/// [m, n])`; for a reduction, `acc` is the reduced value and the views are
/// over `[outer, inner]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Epilogue {
    pub inputs: Vec<View>,
    pub expr: Expr,
}

/// One kernel launch. Every kernel writes the slot `out`; a few also write
/// a second one (`SoftmaxXentWithGrad`'s `grad_out`: see
/// [`Kernel::outputs`]). A kernel reads no slot it writes, except the
/// in-place updates flagged below.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// `out[idx] = expr(inputs[j] at idx)` for every multi-index over `shape`.
    /// `out` may equal an input's slot only when that input's strides are the
    /// contiguous strides of `shape` (each element reads then writes itself).
    Elementwise {
        shape: Vec<usize>,
        inputs: Vec<View>,
        expr: Expr,
        out: SlotId,
    },
    /// `out[m, n] = epilogue(Σ_k A[m, k] · B[k, n])`. `a` holds A as
    /// `[m, k]`, or `[k, m]` when `trans_a`; `b` holds B as `[k, n]`, or
    /// `[n, k]` when `trans_b`.
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        a: SlotId,
        b: SlotId,
        trans_a: bool,
        trans_b: bool,
        epilogue: Option<Epilogue>,
        out: SlotId,
    },
    /// Input seen as `[outer, len, inner]`;
    /// `out[o, i] = epilogue(reduce_l in[o, l, i])` (no epilogue: the
    /// reduced value itself). An epilogue reads its views over
    /// `[outer, inner]`; that is how a bias gradient and its SGD update are
    /// one launch.
    Reduce {
        op: ReduceOp,
        input: SlotId,
        outer: usize,
        len: usize,
        inner: usize,
        epilogue: Option<Epilogue>,
        out: SlotId,
    },
    /// Zero padding: input seen as `[outer, len, inner]`, output as
    /// `[outer, total, inner]`; `out[o, before + l, i] = in[o, l, i]` and
    /// every other element is 0 (`before + len <= total`).
    Pad {
        input: SlotId,
        outer: usize,
        len: usize,
        inner: usize,
        before: usize,
        total: usize,
        out: SlotId,
    },
    /// Input seen as `[outer, len, inner]` (`len >= 1`); `out[o, i]` (u32)
    /// is the first `l` where `in[o, l, i]` is largest (smallest when
    /// `min`). A NaN counts as the extreme, so the first NaN wins.
    ArgMax {
        input: SlotId,
        outer: usize,
        len: usize,
        inner: usize,
        min: bool,
        out: SlotId,
    },
    /// `out[i, :] = table[ids[i], :]`; `table` is `[rows, dim]`, `ids` u32 of
    /// length `n`, all ids `< rows` (checked when the op was built).
    Gather {
        table: SlotId,
        ids: SlotId,
        rows: usize,
        dim: usize,
        n: usize,
        out: SlotId,
    },
    /// `out = zeros([rows, dim]); out[ids[i], :] += src[i, :]`, summed in
    /// the order of `i` so that the result is deterministic.
    ScatterAdd {
        src: SlotId,
        ids: SlotId,
        rows: usize,
        dim: usize,
        n: usize,
        out: SlotId,
    },
    /// In place: `target[ids[i], :] += scale · src[i, :]` (rows summed in the
    /// order of `i`). `target` is an input slot (a parameter); `out == target`.
    /// This is the sparse embedding update.
    IndexAddInPlace {
        src: SlotId,
        ids: SlotId,
        scale: u64,
        rows: usize,
        dim: usize,
        n: usize,
        out: SlotId,
    },
    /// Mean over the batch of `-log softmax(logits[b])[labels[b]]`; `out` is a
    /// one-element slot. `labels` are u32 `< classes`.
    SoftmaxXent {
        logits: SlotId,
        labels: SlotId,
        batch: usize,
        classes: usize,
        out: SlotId,
    },
    /// `out[b, c] = (softmax(logits[b])[c] - [c == labels[b]]) · grad / batch`,
    /// where `grad` is a one-element slot (the upstream gradient of the loss).
    SoftmaxXentGrad {
        logits: SlotId,
        labels: SlotId,
        grad: SlotId,
        batch: usize,
        classes: usize,
        out: SlotId,
    },
    /// `SoftmaxXent` and `SoftmaxXentGrad` over the same logits in one
    /// launch: `out` gets the mean loss (one element), `grad_out` the
    /// gradient `(softmax - onehot) · grad / batch`. `grad` must be written
    /// before this launch (the scheduler fuses only then).
    SoftmaxXentWithGrad {
        logits: SlotId,
        labels: SlotId,
        grad: SlotId,
        batch: usize,
        classes: usize,
        out: SlotId,
        grad_out: SlotId,
    },
    /// Row-wise log-softmax of a `[rows, cols]` slot.
    LogSoftmax {
        input: SlotId,
        rows: usize,
        cols: usize,
        out: SlotId,
    },
    /// Mean over `n` of `max(x, 0) - x·t + log(1 + exp(-|x|))`: binary cross
    /// entropy with logits `x` and float targets `t` in [0, 1].
    LogisticLoss {
        logits: SlotId,
        targets: SlotId,
        n: usize,
        out: SlotId,
    },
    /// `out[i] = (sigmoid(x[i]) - t[i]) · grad / n`.
    LogisticLossGrad {
        logits: SlotId,
        targets: SlotId,
        grad: SlotId,
        n: usize,
        out: SlotId,
    },
    /// A user-defined op, run on the host (inputs are read back, the result
    /// uploaded). `backward_input` is `None` for the forward, or which input's
    /// gradient to compute (then `inputs` end with the upstream gradient).
    Custom {
        op: Arc<dyn CustomOp>,
        inputs: Vec<SlotId>,
        input_shapes: Vec<Vec<usize>>,
        backward_input: Option<usize>,
        out_shape: Vec<usize>,
        out: SlotId,
    },
}

impl Kernel {
    pub fn out(&self) -> SlotId {
        match self {
            Kernel::Elementwise { out, .. }
            | Kernel::Matmul { out, .. }
            | Kernel::Reduce { out, .. }
            | Kernel::Pad { out, .. }
            | Kernel::ArgMax { out, .. }
            | Kernel::Gather { out, .. }
            | Kernel::ScatterAdd { out, .. }
            | Kernel::IndexAddInPlace { out, .. }
            | Kernel::SoftmaxXent { out, .. }
            | Kernel::SoftmaxXentGrad { out, .. }
            | Kernel::SoftmaxXentWithGrad { out, .. }
            | Kernel::LogSoftmax { out, .. }
            | Kernel::LogisticLoss { out, .. }
            | Kernel::LogisticLossGrad { out, .. }
            | Kernel::Custom { out, .. } => *out,
        }
    }

    /// Every slot this kernel writes: `out` first, then any second output.
    pub fn outputs(&self) -> Vec<SlotId> {
        match self {
            Kernel::SoftmaxXentWithGrad { out, grad_out, .. } => vec![*out, *grad_out],
            k => vec![k.out()],
        }
    }

    /// Slots this kernel reads.
    pub fn reads(&self) -> Vec<SlotId> {
        let epilogue_reads = |first: Vec<SlotId>, e: &Option<Epilogue>| {
            let mut r = first;
            if let Some(e) = e {
                r.extend(e.inputs.iter().map(|v| v.slot));
            }
            r
        };
        match self {
            Kernel::Elementwise { inputs, .. } => inputs.iter().map(|v| v.slot).collect(),
            Kernel::Matmul { a, b, epilogue, .. } => epilogue_reads(vec![*a, *b], epilogue),
            Kernel::Reduce {
                input, epilogue, ..
            } => epilogue_reads(vec![*input], epilogue),
            Kernel::Pad { input, .. } | Kernel::ArgMax { input, .. } => vec![*input],
            Kernel::Gather { table, ids, .. } => vec![*table, *ids],
            Kernel::ScatterAdd { src, ids, .. } => vec![*src, *ids],
            Kernel::IndexAddInPlace { src, ids, out, .. } => vec![*src, *ids, *out],
            Kernel::SoftmaxXent { logits, labels, .. } => vec![*logits, *labels],
            Kernel::SoftmaxXentGrad {
                logits,
                labels,
                grad,
                ..
            }
            | Kernel::SoftmaxXentWithGrad {
                logits,
                labels,
                grad,
                ..
            } => vec![*logits, *labels, *grad],
            Kernel::LogSoftmax { input, .. } => vec![*input],
            Kernel::LogisticLoss {
                logits, targets, ..
            } => vec![*logits, *targets],
            Kernel::LogisticLossGrad {
                logits,
                targets,
                grad,
                ..
            } => vec![*logits, *targets, *grad],
            Kernel::Custom { inputs, .. } => inputs.clone(),
        }
    }

    /// Short name for `explain` and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Elementwise { .. } => "elementwise",
            Kernel::Matmul { .. } => "matmul",
            Kernel::Reduce { .. } => "reduce",
            Kernel::Pad { .. } => "pad",
            Kernel::ArgMax { min: false, .. } => "argmax",
            Kernel::ArgMax { min: true, .. } => "argmin",
            Kernel::Gather { .. } => "gather",
            Kernel::ScatterAdd { .. } => "scatter_add",
            Kernel::IndexAddInPlace { .. } => "index_add_in_place",
            Kernel::SoftmaxXent { .. } => "softmax_xent",
            Kernel::SoftmaxXentGrad { .. } => "softmax_xent_grad",
            Kernel::SoftmaxXentWithGrad { .. } => "softmax_xent_with_grad",
            Kernel::LogSoftmax { .. } => "log_softmax",
            Kernel::LogisticLoss { .. } => "logistic_loss",
            Kernel::LogisticLossGrad { .. } => "logistic_loss_grad",
            Kernel::Custom { .. } => "custom",
        }
    }
}

/// A launch plus what the scheduler folded into it (for `explain`).
#[derive(Clone, Debug)]
pub struct Launch {
    pub kernel: Kernel,
    /// Human-readable list of the graph ops this launch computes.
    pub fused: Vec<String>,
}

/// A whole realization: launches in execution order over `slots`.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Unique per compiled plan; backends key their per-plan caches on it.
    pub id: u64,
    pub slots: Vec<Slot>,
    pub launches: Vec<Launch>,
    /// Number of input slots (`SlotKind::Input(0..n_inputs)`).
    pub n_inputs: usize,
    /// Number of output slots.
    pub n_outputs: usize,
    /// Number of distinct temp buffers after liveness sharing.
    pub n_temp_buffers: usize,
}
